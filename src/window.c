/*
 * window.c - the failure-rate and slow-call window: buckets, the floor,
 * the bad-bucket hint, and the sums (see cb_config in cbreaker.h for the
 * rules, policies.md for the design).
 *
 * A window of window_ms is split into CB_BUCKETS buckets of width
 * window_ms / CB_BUCKETS, laid from the window's floor: the moment the
 * window of the current CLOSED (or METRICS_ONLY) generation began
 * (window_floor = generation << 36 | ms). A report made at now counts in
 * the bucket that starts at floor + k x width <= now, slot k %
 * CB_BUCKETS, of the reporting thread's stripe: three kinds (calls,
 * failures, slow calls), one word each, start (36 bits of ms) << 28 |
 * count. The stripe's owner thread is its only writer, so it counts with
 * a plain load and store (a start that differs from its bucket's means
 * the slot held an older bucket: the count starts again at 1); threads
 * sharing stripe 0 count with a CAS loop. Word by word, so a reader never
 * sees a count under another bucket's start; the kinds of one report are
 * not one atomic change, and a sum may catch a call without its failure
 * (display, and a rate decided a report early or late: the next report
 * decides again).
 *
 * A bucket counts when it lies in the window ending at now (its start
 * less than CB_BUCKETS widths before now's bucket, modulo 2^36) and
 * starts at or after the floor. The process whose CAS closed the circuit
 * writes the floor after its CAS; anyone who counts or evaluates and
 * finds another generation's floor writes it itself (the closer may be
 * slow or dead), by CAS, while the state word still holds its generation
 * (a report whose generation is gone counts nowhere), strictly after the
 * floor it replaces (two closes within one ms get two grids). Every
 * bucket of an earlier generation started before the floor (buckets are
 * laid from that generation's floor, and it ended before this one's
 * began), so reports counted before the circuit closed never count again
 * after, also when it closes within a bucket's width of them.
 *
 * bad_bucket holds CB_BAD_SET | the start of the newest bucket holding a
 * failure or a slow call, CAS-ed forward only when it changes (once per
 * bucket). A success that is not slow sums the window only if that
 * bucket is in it: otherwise the window has no failure nor slow call and
 * no rule can be true. Nothing here decides a transition: the state word
 * does (breaker.c), these are the numbers it is decided on, and none of
 * these CASes is in the spin model.
 *
 * Stripes in use: stripes_used (1 + the highest stripe ever claimed,
 * stripes.c) bounds the sum, so a circuit used by a few threads sums a
 * few stripes.
 */
#include "window.h"
#include "state_word.h"

#define HALF_RANGE (CB_STAMP_MASK / 2u)

__thread struct cb_bucket cb_tls_bucket __attribute__((tls_model("initial-exec")));

/* a is at or after b on the 36-bit clock (within half its range). */
static int not_before(uint64_t a, uint64_t b) { return ((a - b) & CB_STAMP_MASK) < HALF_RANGE; }

void cb_window_locate(uint64_t now, uint32_t window_ms, uint64_t floor, struct cb_bucket *out)
{
    /* A stored window is >= CB_WINDOW_MS_MIN; a scribbled one must not
     * divide by 0. A floor ahead of this process's clock: its first
     * bucket. */
    uint64_t width = window_ms / CB_BUCKETS ? window_ms / CB_BUCKETS : 1u;
    uint64_t since = (now - floor) & CB_STAMP_MASK, n;
    if (((floor - now) & CB_STAMP_MASK) < CB_FLOOR_AHEAD_MAX)
        since = 0; /* a floor a little ahead of this process's clock */
    n = since / width;
    out->tag = (floor + n * width) & CB_STAMP_MASK;
    out->width = width;
    out->floor = floor;
    out->window_ms = window_ms;
    out->slot = (unsigned)(n % CB_BUCKETS);
}

void cb_window_count_shared(struct cb_segment *seg, enum cb_bucket_kind kind, const struct cb_bucket *at)
{
    _Atomic uint64_t *bucket = &seg->stripes[0].bucket[kind][at->slot];
    uint64_t seen = atomic_load_explicit(bucket, memory_order_relaxed), next;
    do {
        if (seen >> CB_BUCKET_COUNT_BITS == at->tag)
            next = (seen & CB_BUCKET_COUNT_MAX) == CB_BUCKET_COUNT_MAX ? seen : seen + 1u;
        else
            next = at->tag << CB_BUCKET_COUNT_BITS | 1u;
        /* Shared stripe 0: the CAS fails if another thread counted first;
         * the retry counts on top of it. */
    } while (!atomic_compare_exchange_weak_explicit(bucket, &seen, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void cb_window_mark_bad(struct cb_segment *seg, const struct cb_bucket *at)
{
    uint64_t mark = CB_BAD_SET | at->tag;
    uint64_t seen = atomic_load_explicit(&seg->bad_bucket, memory_order_relaxed);
    /* Forward only, and only when it changes: once per bucket. The CAS
     * fails if another process moved it; retry while ours is newer. */
    while (seen != mark && (!(seen & CB_BAD_SET) || !not_before(seen & CB_STAMP_MASK, at->tag)) &&
           !atomic_compare_exchange_weak_explicit(&seg->bad_bucket, &seen, mark, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

uint64_t cb_window_floor(struct cb_segment *seg, uint64_t gen, uint64_t now, int help)
{
    uint64_t floor = atomic_load_explicit(&seg->window_floor, memory_order_relaxed);
    for (;;) {
        if ((floor >> CB_STAMP_BITS & CB_GEN_MASK) == (gen & CB_GEN_MASK))
            return floor & CB_STAMP_MASK;
        /* The floor is another generation's. gen's own is written only
         * while the word still holds gen: once it moved on, a report of
         * gen is late and counts nowhere (CB_WINDOW_STALE). A reader only
         * looks: gen's window starts just after now. */
        if (sw_gen(atomic_load_explicit(&seg->state, memory_order_relaxed)) != (gen & CB_GEN_MASK))
            return CB_WINDOW_STALE;
        /* Strictly after the floor it replaces (two closes within one ms
         * must not share a grid) and after now (a report counted at now,
         * before the close, is in a bucket that starts before it). */
        uint64_t old = floor & CB_STAMP_MASK, start = (now + 1u) & CB_STAMP_MASK;
        if (not_before(old, start))
            start = (old + 1u) & CB_STAMP_MASK;
        if (!help)
            return start;
        /* The CAS fails if anyone wrote the floor since the load; the loop
         * then reads whose it is. */
        if (atomic_compare_exchange_weak_explicit(&seg->window_floor, &floor,
                                                  (gen & CB_GEN_MASK) << CB_STAMP_BITS | start,
                                                  memory_order_relaxed, memory_order_relaxed))
            return start;
    }
}

void cb_window_sum(const struct cb_segment *seg, const struct cb_bucket *at, struct cb_window_sums *out)
{
    uint64_t sum[CB_B_COUNT] = {0};
    uint64_t used = atomic_load_explicit(&seg->stripes_used, memory_order_relaxed);
    if (used < 1 || used > CB_STRIPES)
        used = used < 1 ? 1 : CB_STRIPES;
    for (unsigned s = 0; s < used; s++)
        for (unsigned k = 0; k < CB_B_COUNT; k++)
            for (unsigned i = 0; i < CB_BUCKETS; i++) {
                uint64_t v = atomic_load_explicit(&seg->stripes[s].bucket[k][i], memory_order_relaxed);
                uint64_t start = v >> CB_BUCKET_COUNT_BITS;
                /* In the window, and laid since its floor (between the
                 * floor and now's bucket: a bucket of an earlier
                 * generation starts before the floor). */
                if (cb_window_in_span(at, start) &&
                    ((start - at->floor) & CB_STAMP_MASK) <= ((at->tag - at->floor) & CB_STAMP_MASK))
                    sum[k] += v & CB_BUCKET_COUNT_MAX;
            }
    out->calls = sum[CB_B_CALLS];
    out->failures = sum[CB_B_FAILURES];
    out->slow = sum[CB_B_SLOW];
}

unsigned cb_window_rules(const struct cb_window_sums *s, uint32_t failure_rate, uint32_t slow_call_ms,
                         uint32_t slow_call_rate, uint32_t minimum_calls)
{
    unsigned rules = 0;
    /* A scribbled slot's rate (over 100) must not overflow the products. */
    uint64_t failure_pct = failure_rate < 100u ? failure_rate : 100u;
    uint64_t slow_pct = slow_call_rate < 100u ? slow_call_rate : 100u;
    if (s->calls == 0 || s->calls < minimum_calls)
        return 0;
    if (failure_rate && s->failures * 100u >= failure_pct * s->calls)
        rules |= CB_RULE_FAILURE_RATE;
    if (slow_call_ms && s->slow * 100u >= slow_pct * s->calls)
        rules |= CB_RULE_SLOW_CALL_RATE;
    return rules;
}
