/*
 * circuits.c - one interface over the four implementations under test, for
 * everything but the timed loops (opening, preparing, checking, storms).
 *
 * ours     cb_open(): a named segment in /dev/shm, opened by the master
 *          before fork() and inherited, as a pre-fork server does;
 * private  cb_open_private(): the same code on private memory, so after
 *          fork() every child has its own circuit (one breaker per worker);
 * mutex    baseline_mutex.c; redis  baseline_redis.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baseline_mutex.h"
#include "baseline_redis.h"
#include "bench.h"
#include "circuit.h"

static const char *const names[IMPL_COUNT] = {"ours", "private", "mutex", "redis"};

const char *impl_name(enum impl impl) { return names[impl]; }

int circuit_open(enum impl impl, const char *label, const cb_config *cfg, struct bench_clock *clock,
                 const struct options *opt, struct circuit **out)
{
    struct circuit *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->impl = impl;
    snprintf(c->name, sizeof c->name, "cbbench.%d.%s.%s", (int)getpid(), label, names[impl]);
    uint64_t (*now)(void *) = clock ? bench_clock_read : NULL;
    int rc = 0;
    switch (impl) {
    case IMPL_OURS:
        cb_unlink(c->name); /* a crashed run's leftover */
        rc = cb_open(c->name, cfg, &c->cb);
        /* The processes share it through the inherited handle: the name
         * can go at once, so nothing is left behind even if we are killed,
         * and other users of /dev/shm never see it. */
        if (rc >= 0)
            cb_unlink(c->name);
        break;
    case IMPL_PRIVATE:
        rc = cb_open_private(c->name, cfg, &c->cb);
        break;
    case IMPL_MUTEX:
        c->mx = mx_open(cfg, now, clock);
        rc = c->mx ? 0 : -1;
        break;
    case IMPL_REDIS:
        c->rd = rd_open(opt->redis_host, opt->redis_port, c->name, cfg, now, clock);
        rc = c->rd ? 0 : -1;
        break;
    default:
        rc = -1;
    }
    if (rc < 0) {
        if (impl == IMPL_OURS || impl == IMPL_PRIVATE)
            fprintf(stderr, "cbbench: %s: %s\n", c->name, cb_strerror(rc));
        free(c);
        return -1;
    }
    if (c->cb && clock)
        cb_set_clock(c->cb, bench_clock_read, clock);
    *out = c;
    return 0;
}

void circuit_close(struct circuit *c)
{
    if (!c)
        return;
    switch (c->impl) {
    case IMPL_OURS:
    case IMPL_PRIVATE:
        cb_close(c->cb);
        break;
    case IMPL_MUTEX:
        mx_close(c->mx);
        break;
    default:
        rd_close(c->rd);
        break;
    }
    free(c);
}

void circuit_reset(struct circuit *c)
{
    if (c->cb)
        cb_reset(c->cb);
    else if (c->mx)
        mx_reset(c->mx);
    else
        rd_reset(c->rd);
}

void circuit_trip(struct circuit *c)
{
    if (c->cb)
        cb_trip(c->cb);
    else if (c->mx)
        mx_trip(c->mx);
    else
        rd_trip(c->rd);
}

int circuit_child_init(struct circuit *c) { return c->rd ? rd_connect(c->rd) : 0; }

void circuit_child_fini(struct circuit *c)
{
    if (c->rd)
        rd_disconnect(c->rd);
}

int circuit_counters(struct circuit *c, cb_counters *out, uint32_t *failures, cb_state *state)
{
    if (c->impl == IMPL_OURS) {
        cb_info info;
        if (cb_get_info(c->cb, &info) != 0)
            return -1;
        *out = info.counters;
        *failures = info.failures;
        *state = info.state;
        return 0;
    }
    if (c->impl == IMPL_MUTEX) {
        mx_counters(c->mx, out, failures, state);
        return 0;
    }
    return -1; /* private: the children's copies are gone; redis: no counters */
}

cb_verdict circuit_acquire(struct circuit *c, bench_permit *p)
{
    if (c->cb)
        return cb_acquire(c->cb, &p->cb);
    if (c->mx)
        return mx_acquire(c->mx, &p->aux);
    return rd_acquire(c->rd, &p->aux);
}

void circuit_success(struct circuit *c, bench_permit *p)
{
    if (c->cb)
        cb_success(c->cb, &p->cb);
    else if (c->mx)
        mx_success(c->mx, p->aux);
    else
        rd_success(c->rd, p->aux);
}

void circuit_failure(struct circuit *c, bench_permit *p)
{
    if (c->cb)
        cb_failure(c->cb, &p->cb);
    else if (c->mx)
        mx_failure(c->mx, p->aux);
    else
        rd_failure(c->rd, p->aux);
}
