/*
 * baseline_redis.h - the circuit kept in Redis, as pybreaker's
 * CircuitRedisStorage (and ganesha) keep it.
 */
#ifndef CBBENCH_REDIS_H
#define CBBENCH_REDIS_H

#include <stdint.h>

#include <cbreaker.h>

struct rd_circuit;

/* 1 when built with hiredis. */
int rd_available(void);
/* Describe a circuit at host:port under key prefix ns and write its
 * initial keys (CLOSED, count 0). NULL on error (message printed). */
struct rd_circuit *rd_open(const char *host, int port, const char *ns, const cb_config *cfg,
                           uint64_t (*now_ms)(void *), void *clock_ctx);
/* Delete the keys and disconnect. */
void rd_close(struct rd_circuit *r);
/* Drop the inherited connection and make this process's own (after fork). */
int rd_connect(struct rd_circuit *r);
void rd_disconnect(struct rd_circuit *r);

/* permit: 1 call, 2 probe, 0 none. */
cb_verdict rd_acquire(struct rd_circuit *r, uint64_t *permit);
void rd_success(struct rd_circuit *r, uint64_t permit);
void rd_failure(struct rd_circuit *r, uint64_t permit);
void rd_reset(struct rd_circuit *r);
void rd_trip(struct rd_circuit *r);

#endif
