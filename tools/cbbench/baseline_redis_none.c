/*
 * baseline_redis_none.c - the Redis baseline when hiredis was not found at
 * build time: rd_available() says so, and --redis is refused.
 */
#include <stddef.h>

#include "baseline_redis.h"

int rd_available(void) { return 0; }

struct rd_circuit *rd_open(const char *host, int port, const char *ns, const cb_config *cfg,
                           uint64_t (*now_ms)(void *), void *clock_ctx)
{
    (void)host, (void)port, (void)ns, (void)cfg, (void)now_ms, (void)clock_ctx;
    return NULL;
}

void rd_close(struct rd_circuit *r) { (void)r; }
int rd_connect(struct rd_circuit *r) { (void)r; return -1; }
void rd_disconnect(struct rd_circuit *r) { (void)r; }
cb_verdict rd_acquire(struct rd_circuit *r, uint64_t *permit) { (void)r; *permit = 0; return CB_REJECTED; }
void rd_success(struct rd_circuit *r, uint64_t permit) { (void)r, (void)permit; }
void rd_failure(struct rd_circuit *r, uint64_t permit) { (void)r, (void)permit; }
void rd_reset(struct rd_circuit *r) { (void)r; }
void rd_trip(struct rd_circuit *r) { (void)r; }
