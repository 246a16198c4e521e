/*
 * upstream.h - where a worker looks routes up: the embedded route service
 * (upstream_embedded.c) or a real Redis (upstream_redis.c). Each worker
 * keeps one connection, made on first use and made again after an error.
 */
#ifndef CBDEMO_UPSTREAM_H
#define CBDEMO_UPSTREAM_H

#include <stddef.h>

#include "cbdemo.h"

typedef struct upstream upstream;

struct upstream {
    const char *label; /* "upstream" or "redis": the reply's source= */
    /* Look key up: 0 with the route in backend ("" when the upstream has
     * none), or -1 with why in err. */
    int (*lookup)(upstream *u, const char *key, char *backend, size_t len, char *err, size_t errlen);
    void (*free)(upstream *u);
};

upstream *upstream_for(const struct demo_options *o, unsigned embedded_port);

/* The embedded route service. */
upstream *embedded_client_new(unsigned port, unsigned timeout_ms);
/* Fork the service on a free loopback port; *port gets it. It goes down
 * on SIGUSR1 (stops listening, drops its connections: calls are refused)
 * and comes back on SIGUSR2, and keeps sh->upstream_up up to date. */
pid_t embedded_server_spawn(struct demo_shared *sh, unsigned *port);

/* Redis through hiredis; NULL when built without it (redis_supported()). */
int redis_supported(void);
upstream *redis_client_new(const char *host, unsigned port, unsigned timeout_ms);

#endif
