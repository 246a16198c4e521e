/*
 * window.h - the failure-rate and slow-call window (window.c): counting
 * reports in per-stripe buckets, where the window of a generation starts,
 * and the sums the rate rules are decided on.
 */
#ifndef CB_WINDOW_H
#define CB_WINDOW_H

#include "segment.h"
#include "state_word.h"

_Static_assert(CB_STAMP_BITS == 36u, "bucket starts keep 36 bits of ms");

struct cb_window_sums {
    uint64_t calls, failures, slow;
};

/* Rules found true by cb_window_rules. */
#define CB_RULE_FAILURE_RATE 1u
#define CB_RULE_SLOW_CALL_RATE 2u

/* The bucket a moment falls in: its start (modulo 2^36, as the bucket
 * words keep it), its width and its slot. Buckets are laid from the
 * window's floor: floor + k x width. */
struct cb_bucket {
    uint64_t tag, width, floor;
    uint32_t window_ms;
    unsigned slot;
};

/* The calling thread's last bucket (window.c), so that reports within
 * one bucket's width divide nothing. */
extern __thread struct cb_bucket cb_tls_bucket __attribute__((tls_model("initial-exec")));
void cb_window_locate(uint64_t now, uint32_t window_ms, uint64_t floor, struct cb_bucket *out);

/* The bucket of now in a window of window_ms that starts at floor. */
static inline const struct cb_bucket *cb_window_bucket(uint64_t now, uint32_t window_ms, uint64_t floor)
{
    struct cb_bucket *c = &cb_tls_bucket;
    if (__builtin_expect(c->window_ms != window_ms || c->floor != floor ||
                             ((now - c->tag) & CB_STAMP_MASK) >= c->width, 0))
        cb_window_locate(now, window_ms, floor, c);
    return c;
}

/* Count in stripe 0 (shared: CAS) or mark bad_bucket (window.c). */
void cb_window_count_shared(struct cb_segment *seg, enum cb_bucket_kind kind, const struct cb_bucket *at);
void cb_window_mark_bad(struct cb_segment *seg, const struct cb_bucket *at);

static inline void cb_window_count_in(struct cb_segment *seg, unsigned stripe, enum cb_bucket_kind kind,
                                      const struct cb_bucket *at)
{
    if (__builtin_expect(stripe == 0, 0)) {
        cb_window_count_shared(seg, kind, at);
        return;
    }
    _Atomic uint64_t *bucket = &seg->stripes[stripe].bucket[kind][at->slot];
    uint64_t seen = atomic_load_explicit(bucket, memory_order_relaxed), next;
    if (seen >> CB_BUCKET_COUNT_BITS == at->tag)
        next = (seen & CB_BUCKET_COUNT_MAX) == CB_BUCKET_COUNT_MAX ? seen : seen + 1u;
    else
        next = at->tag << CB_BUCKET_COUNT_BITS | 1u; /* the slot held an older bucket */
    /* Relaxed plain store: only the owning thread writes its stripe. */
    atomic_store_explicit(bucket, next, memory_order_relaxed);
}

/* Count one report with a verdict in stripe's bucket `at`: a call, and a
 * failure and/or a slow call; then bad_bucket says the bucket holds one. */
static inline void cb_window_count(struct cb_segment *seg, unsigned stripe, const struct cb_bucket *at,
                                   int failure, int slow)
{
    cb_window_count_in(seg, stripe, CB_B_CALLS, at);
    if (failure)
        cb_window_count_in(seg, stripe, CB_B_FAILURES, at);
    if (slow)
        cb_window_count_in(seg, stripe, CB_B_SLOW, at);
    if (failure || slow)
        cb_window_mark_bad(seg, at);
}

/* Whether the bucket starting at start (mod 2^36) is in the window whose
 * newest bucket is at. */
static inline int cb_window_in_span(const struct cb_bucket *at, uint64_t start)
{
    return ((at->tag - start) & (CB_STAMP_MASK)) < CB_BUCKETS * at->width;
}

/* Whether the newest bucket holding a failure or a slow call lies in the
 * window ending at `at`: if not, the window holds neither, and a success
 * that is not slow cannot make a rule true. One shared load. */
static inline int cb_window_bad_recent(const struct cb_segment *seg, const struct cb_bucket *at)
{
    uint64_t bad = atomic_load_explicit(&seg->bad_bucket, memory_order_relaxed);
    return (bad & CB_BAD_SET) && cb_window_in_span(at, bad & (CB_STAMP_MASK));
}

/* Where the window of CLOSED (or METRICS_ONLY) generation gen starts (ms,
 * modulo 2^36). If the floor is another generation's and the word still
 * holds gen: with help, write (gen, just after now and after the old
 * floor) by CAS (the closer may have died before writing it); without (a
 * reader), return that and write nothing. CB_WINDOW_STALE when the word
 * moved on from gen: a report of gen is late and must count nowhere. */
#define CB_WINDOW_STALE UINT64_MAX
/* A floor this far ahead of a clock reading, or less, counts as ahead
 * (another process's clock, a floor just after now); beyond, the
 * reading is that far after it, modulo 2^36 (a window kept for years). */
#define CB_FLOOR_AHEAD_MAX (UINT64_C(1) << 24)
uint64_t cb_window_floor(struct cb_segment *seg, uint64_t gen, uint64_t now, int help);

/* The closer of generation gen (probe success, reset, NORMAL or
 * METRICS_ONLY set) starts its window at now, after its CAS. */
static inline void cb_window_restart(struct cb_segment *seg, uint64_t gen, uint64_t now)
{
    (void)cb_window_floor(seg, gen, now, 1); /* STALE: someone moved on already */
}

/* Sum the buckets of every stripe in use that lie in the window whose
 * newest bucket is at and start at or after its floor. */
void cb_window_sum(const struct cb_segment *seg, const struct cb_bucket *at, struct cb_window_sums *out);

/* Which rate rules the sums make true (CB_RULE_* bits) under the config
 * values: failure_rate 0 and slow_call_ms 0 turn a rule off. */
unsigned cb_window_rules(const struct cb_window_sums *s, uint32_t failure_rate, uint32_t slow_call_ms,
                         uint32_t slow_call_rate, uint32_t minimum_calls);

#endif
