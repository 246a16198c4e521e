/*
 * clock.c - the time a circuit's timeouts are measured with.
 *
 * CLOCK_MONOTONIC_COARSE: shared by every process on the host (within one
 * time namespace), unaffected by changes to the wall clock, and a few ns to
 * read from the vDSO, against ~20 ns for CLOCK_MONOTONIC: the OPEN path
 * reads it on every rejected call. Its tick (4 ms at HZ=250) is added to
 * every timeout so that coarse stamps never admit a probe early.
 * Tests replace it per handle with cb_set_clock().
 */
#include <time.h>

#include "handle.h"

static uint64_t ms_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000u + (uint64_t)ts->tv_nsec / 1000000u;
}

uint64_t cb_clock_now(const cb_breaker *b)
{
    if (b->now_ms)
        return b->now_ms(b->clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ms_of(&ts);
}

uint64_t cb_clock_default_tick(void)
{
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
        return 10;
    return ((uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec + 999999u) / 1000000u;
}

uint64_t cb_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ms_of(&ts);
}

void cb_set_clock(cb_breaker *b, uint64_t (*now_ms)(void *ctx), void *ctx)
{
    if (!b)
        return;
    b->now_ms = now_ms;
    b->clock_ctx = ctx;
    b->clock_tick_ms = now_ms ? 0 : cb_clock_default_tick();
}
