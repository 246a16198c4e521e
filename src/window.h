/*
 * window.h - the failure-rate and slow-call window (window.c): counting
 * reports in per-stripe buckets, where the window of a generation starts,
 * and the sums the rate rules are decided on.
 */
#ifndef CB_WINDOW_H
#define CB_WINDOW_H

#include "segment.h"

struct cb_window_sums {
    uint64_t calls, failures, slow;
};

/* Rules found true by cb_window_rules. */
#define CB_RULE_FAILURE_RATE 1u
#define CB_RULE_SLOW_CALL_RATE 2u

/* Count one report with a verdict, made at now, in stripe's buckets: a
 * call, and a failure and/or a slow call. Marks the bucket as holding a
 * failure or slow call (bad_bucket) when it does. */
void cb_window_count(struct cb_segment *seg, unsigned stripe, uint64_t now, uint32_t window_ms, int failure,
                     int slow);

/* Whether the newest bucket holding a failure or a slow call lies in the
 * window ending at now: if not, the window holds neither, and a success
 * that is not slow cannot make a rule true. One shared load. */
int cb_window_bad_recent(const struct cb_segment *seg, uint64_t now, uint32_t window_ms);

/* Where the window of CLOSED (or METRICS_ONLY) generation gen starts (ms,
 * modulo 2^36). If the floor is another generation's: with help, write
 * (gen, now) by CAS (the closer may have died before writing it) and
 * start at now; without (a reader), start at now and write nothing. */
uint64_t cb_window_floor(struct cb_segment *seg, uint64_t gen, uint64_t now, int help);

/* The closer of generation gen (probe success, reset, NORMAL or
 * METRICS_ONLY set) starts its window at now, after its CAS. */
static inline void cb_window_restart(struct cb_segment *seg, uint64_t gen, uint64_t now)
{
    (void)cb_window_floor(seg, gen, now, 1);
}

/* Sum the buckets of every stripe in use that lie in the window ending at
 * now and do not start before the floor's bucket. */
void cb_window_sum(const struct cb_segment *seg, uint64_t now, uint32_t window_ms, uint64_t floor_ms,
                   struct cb_window_sums *out);

/* Which rate rules the sums make true (CB_RULE_* bits) under the config
 * values: failure_rate 0 and slow_call_ms 0 turn a rule off. */
unsigned cb_window_rules(const struct cb_window_sums *s, uint32_t failure_rate, uint32_t slow_call_ms,
                         uint32_t slow_call_rate, uint32_t minimum_calls);

#endif
