/*
 * breaker.c - the state machine: acquire, report, reset, trip, modes.
 *
 * The whole circuit is one 64-bit state word (state_word.h): state,
 * generation, and a payload (failure count, trip time or probe lease with
 * the backoff step, or an operator mode).
 * Every change is one compare-and-swap on that word, computed from the
 * value the CAS expects; nothing else in the segment takes part in a
 * decision. Hence:
 *
 *  - Exactly-once transitions. Of all processes that try to move the word
 *    from value w, one CAS succeeds; the others see the new value and
 *    re-decide from it. Only the winner counts, records and announces the
 *    transition.
 *  - One probe. A probe is granted only by a CAS that installs
 *    HALF_OPEN(g+1, lease start); every other caller then reads HALF_OPEN
 *    with a lease that has not expired and is rejected. A second probe can
 *    only be granted by a CAS from that same word after probe_timeout,
 *    which bumps the generation and so disowns the first.
 *  - Stale reports change nothing. A permit carries the word it was issued
 *    under. A call permit reports only while the word is CLOSED with the
 *    same generation; a probe reports only by a CAS that expects exactly
 *    its own word. Any transition in between bumps the generation, the
 *    check fails, and the report is counted as late.
 *  - No lost failure. Failure counting is a CAS loop on the word, so N
 *    concurrent failures in one generation add exactly N.
 *  - No wedge. Time stamps live in the word, so the process that makes a
 *    transition cannot die between the transition and its time stamp. A
 *    probe holder that dies leaves a lease that expires.
 *  - A stamp is the moment of its CAS. The clock is read before the CAS
 *    that installs a stamp (the new word must be computed first), so a
 *    process preempted in between would install an old stamp and the
 *    probe (or a lease's end) would come early. After a winning CAS that
 *    installed a trip time or a lease start, the installer reads the clock
 *    again and, while it moved on, CASes its own word to the same state
 *    and generation with the fresh stamp (refresh_stamp). Safe: the CAS
 *    expects exactly the word this process installed, so it fails, and
 *    the refresh stops, once anything else changed the word (nothing that
 *    moved on is resurrected); keeping the generation keeps every permit
 *    of that word valid, and a probe's permit is issued with the refreshed
 *    word; a stamp only moves later, so no decision another process made
 *    on the older stamp (a rejection) becomes wrong, and, read before its
 *    CAS like every stamp, it is never newer than a reading taken after
 *    loading the word. What remains: a process that loads the word between
 *    the installing CAS and the refresh acts on the older stamp; it can
 *    take a probe early only if the installer stalled for longer than the
 *    timeout (reset_timeout, or probe_timeout for a lease) between its
 *    clock read and its refresh.
 *
 * Memory order: every decision depends only on the word's own value, so
 * loads and CAS on it are relaxed; the probe-holder field and the history
 * ring, written after a winning CAS, carry their own release/acquire pairs
 * (history.c) or are tagged with the generation they belong to.
 *
 * Transitions (g = generation, CAS from the left-hand word; OPEN and
 * HALF_OPEN carry the backoff step s beside the stamp; M(m, k, c) is an
 * operator mode m with crossing marks k and failure count c):
 *   acquire     OPEN(g,s,t), now-t >= period(s) -> HALF_OPEN(g+1, s, now)  probe
 *               HALF_OPEN(g,s,FREE)             -> HALF_OPEN(g+1, s, now)  probe
 *               HALF_OPEN(g,s,l), now-l >= probe -> HALF_OPEN(g+1, s, now) probe
 *               M(DISABLED|METRICS_ONLY)         allowed, no change
 *               M(FORCED_OPEN), M(0) (corrupt)   rejected, no change
 *   failure     CLOSED(g,c), c+1 <  threshold   -> CLOSED(g, c+1)
 *               CLOSED(g,c), c+1 >= threshold   -> OPEN(g+1, 0, now)
 *               HALF_OPEN(g,s,l) of this probe  -> OPEN(g+1, s', now)   backoff_step
 *   success     CLOSED(g,c>0)                   -> CLOSED(g, 0)
 *               HALF_OPEN(g,s,l) of this probe  -> CLOSED(g+1, 0)
 *   rate        CLOSED(g, any c), after a report of generation g made a
 *               rate rule true in the window    -> OPEN(g+1, 0, now)    rate_trip
 *   release     HALF_OPEN(g,s,l) of this probe  -> HALF_OPEN(g+1, s, FREE)
 *   reset       any(g) but a mode               -> CLOSED(g+1, 0)
 *   trip        any(g) but a mode               -> OPEN(g+1, s or 0, now)
 *   set_mode m  any(g) of another mode, m != NORMAL -> M(g+1, m, 0, 0)  set_mode
 *               any(g) of another mode, m == NORMAL -> CLOSED(g+1, 0)   set_mode
 *   in METRICS_ONLY, a report of generation g:
 *               failure  M(g,k,c) -> M(g, k | threshold crossed if c+1 >=
 *                        threshold, c+1)                      metrics_mark
 *               success  M(g,k,c>0) -> M(g, k without threshold, 0)
 *               rate rule true/false -> its mark set/cleared    metrics_mark
 *               (a mark set announces a would-open event; DISABLED counts
 *               the counters only)
 *   refresh     OPEN(g,s,t) / HALF_OPEN(g,s,l) that this process just
 *               installed, clock moved on      -> same state (g, s, now)
 *
 * period(s) = reset_timeout grown s times by the backoff multiplier, up to
 * the cap (config.h); s' = s + 1 while backoff is on, s <
 * CB_BACKOFF_STEPS_MAX and period(s) < the cap, else s. The step lives in
 * the word, so every process computes the same period, and the CAS that
 * ends a probe computes s' from the granted word: one failed probe, one
 * step. A trip from CLOSED starts at step 0; a probe success, reset and
 * NORMAL drop the step with the rest of the word.
 *
 * The window (window.c) is only the evidence: counting a report and
 * summing the buckets change no decision by themselves. A rate trip is
 * the one CAS from CLOSED of the report's generation (retried while only
 * the count changed), so exactly one process trips and announces it; the
 * window of the next CLOSED generation starts where its closer put the
 * floor, so reports of an earlier generation never trip a later one.
 * With every policy off, acquire and success read one more config word
 * (CB_CF_POLICY) and do nothing else new.
 */
#include <errno.h>
#include <unistd.h>

#include "config.h"
#include "events.h"
#include "handle.h"
#include "state_word.h"
#include "stripes.h"
#include "window.h"

/* opaque[1] = instance << 32 | acquire stamp << 2 | kind. The stamp (30
 * bits of ms, never 0 when set) is there only with CB_POLICY_SLOW. */
enum permit_kind { PERMIT_NONE = 0, PERMIT_CALL = 1, PERMIT_PROBE = 2 };
#define PERMIT_KIND_MASK UINT64_C(3)
#define PERMIT_STAMP_SHIFT 2u
#define PERMIT_STAMP_MASK ((UINT64_C(1) << 30) - 1u)
_Static_assert(CB_SLOW_CALL_MS_MAX < (1u << 29), "a slow call is told from a wrapped stamp");

enum report { REPORT_SUCCESS, REPORT_FAILURE, REPORT_RELEASE };

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static void issue_permit(const cb_breaker *b, cb_permit *p, uint64_t word, unsigned kind, uint64_t stamp)
{
    p->opaque[0] = word;
    p->opaque[1] = (uint64_t)b->instance << 32 | (stamp & PERMIT_STAMP_MASK) << PERMIT_STAMP_SHIFT | kind;
}

/* A call permit's acquire stamp: the clock, only with CB_POLICY_SLOW. */
static __attribute__((noinline)) uint64_t clock_stamp(const cb_breaker *b)
{
    uint64_t stamp = cb_clock_now(b) & PERMIT_STAMP_MASK;
    return stamp ? stamp : 1u; /* 0 means "not stamped" */
}

static inline __attribute__((always_inline)) uint64_t call_stamp(const cb_breaker *b)
{
    if (likely(!(cb_config_value(b->seg, CB_CF_POLICY) & CB_POLICY_SLOW)))
        return 0;
    return clock_stamp(b);
}

static unsigned permit_kind(const cb_breaker *b, const cb_permit *p)
{
    if (!b || !p || (uint32_t)(p->opaque[1] >> 32) != b->instance)
        return PERMIT_NONE;
    unsigned kind = (unsigned)(p->opaque[1] & PERMIT_KIND_MASK);
    return kind <= PERMIT_PROBE ? kind : PERMIT_NONE;
}

static uint32_t cfg(const cb_breaker *b, enum cb_config_field field)
{
    return cb_config_value(b->seg, field);
}

/* The open period of a word's backoff step, plus the clock's tick. */
static uint64_t open_period_ms(const cb_breaker *b, uint64_t w)
{
    return cb_open_period(cfg(b, CB_CF_RESET_TIMEOUT), cfg(b, CB_CF_BACKOFF), cfg(b, CB_CF_MAX_RESET_TIMEOUT),
                          sw_step(w)) +
           b->clock_tick_ms;
}

static int cas_word(struct cb_segment *seg, uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(&seg->state, expected, desired,
                                                   memory_order_relaxed, memory_order_relaxed);
}

/* Make the stamp of a word this process has just installed (OPEN with its
 * trip time, or HALF_OPEN with a lease) the time of the CAS, not of the
 * clock reading *stamp_ms taken before it: read the clock again and, while
 * it moved on since the stamp, CAS the word to the same state, generation
 * and backoff step with the fresh stamp. "Moved on" is any change: with
 * the coarse clock, a reading still equal to the stamp means the CAS ran
 * within the stamp's tick, which the tick added to every timeout covers.
 * Returns the word installed now (a probe's permit must carry it) and
 * sets *stamp_ms to its stamp's time. */
static uint64_t refresh_stamp(cb_breaker *b, uint64_t installed, uint64_t *stamp_ms)
{
    for (;;) {
        uint64_t now = cb_clock_now(b);
        if (sw_elapsed(now, *stamp_ms) == 0)
            return installed;
        uint64_t stamp = sw_state(installed) == CB_HALF_OPEN ? sw_lease_stamp(now) : now;
        uint64_t fresh = sw_make(sw_state(installed), sw_gen(installed), sw_timed(sw_step(installed), stamp));
        uint64_t expected = installed;
        /* Model step "refresh_stamp": expects exactly the word this process
         * installed, so it fails once anything else changed the word (the
         * refresh resurrects nothing); same state, generation and step, so
         * every permit of that word stays valid and the period is the same;
         * the stamp only moves later. */
        if (!cas_word(b->seg, &expected, fresh))
            return installed;
        installed = fresh;
        *stamp_ms = now;
    }
}

/* Everything but CLOSED: decide on the clock, maybe take the probe. */
static __attribute__((noinline)) cb_verdict acquire_slow(cb_breaker *b, cb_permit *permit,
                                                         uint64_t w, unsigned stripe)
{
    struct cb_segment *seg = b->seg;
    for (;;) {
        uint64_t now;
        int reason;
        switch (sw_state(w)) {
        case CB_CLOSED:
            cb_count(seg, stripe, CB_C_ALLOWED);
            issue_permit(b, permit, w, PERMIT_CALL, call_stamp(b));
            return CB_ALLOWED;
        case CB_STATE_MODE:
            /* DISABLED and METRICS_ONLY allow every call; FORCED_OPEN
             * rejects without a clock read; mode 0 is corrupt: reject
             * until an operator resets it. */
            if (sw_mode(w) != CB_MODE_DISABLED && sw_mode(w) != CB_MODE_METRICS_ONLY)
                goto reject;
            cb_count(seg, stripe, CB_C_ALLOWED);
            issue_permit(b, permit, w, PERMIT_CALL, call_stamp(b));
            return CB_ALLOWED;
        case CB_OPEN:
            /* Read the clock after the word: a time stamp in w is never
             * newer than now. (With a reading from before a failed CAS,
             * the new word's stamp could be, and a wrapped elapsed time
             * would grant a second probe.) */
            now = cb_clock_now(b);
            if (sw_elapsed(now, sw_stamp(w)) < open_period_ms(b, w))
                goto reject;
            reason = CB_REASON_TIMEOUT;
            break;
        default: /* CB_HALF_OPEN */
            now = cb_clock_now(b);
            if (sw_stamp(w) == CB_SLOT_FREE)
                reason = -1; /* a released probe: not a transition */
            else if (sw_elapsed(now, sw_stamp(w)) >= (uint64_t)cfg(b, CB_CF_PROBE_TIMEOUT) + b->clock_tick_ms)
                reason = CB_REASON_LEASE_EXPIRED;
            else
                goto reject;
            break;
        }
        uint64_t next = sw_next(w, CB_HALF_OPEN, sw_timed(sw_step(w), sw_lease_stamp(now)));
        /* Model step "take_probe": the one CAS from w wins the probe; a loser
         * re-reads the word and, seeing a fresh lease, is rejected. The
         * backoff step goes along unchanged. */
        if (cas_word(seg, &w, next)) {
            next = refresh_stamp(b, next, &now);
            atomic_store_explicit(&seg->probe_holder, sw_gen(next) << 32 | (uint32_t)getpid(),
                                  memory_order_release);
            cb_count(seg, stripe, CB_C_ALLOWED);
            cb_count(seg, stripe, CB_C_PROBES);
            if (reason >= 0)
                cb_emit(b, w, next, (cb_reason)reason, 0, now);
            issue_permit(b, permit, next, PERMIT_PROBE, 0);
            return CB_PROBE;
        }
    }
reject:
    cb_count(seg, stripe, CB_C_REJECTED);
    permit->opaque[0] = permit->opaque[1] = 0;
    return CB_REJECTED;
}

cb_verdict cb_acquire(cb_breaker *b, cb_permit *permit)
{
    if (!b || !permit) {
        if (permit)
            permit->opaque[0] = permit->opaque[1] = 0;
        return CB_REJECTED;
    }
    struct cb_segment *seg = b->seg;
    unsigned stripe = cb_stripe_for(b);
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed);
    if (likely(sw_state(w) == CB_CLOSED)) {
        uint32_t policy = cb_config_value(seg, CB_CF_POLICY);
        cb_count(seg, stripe, CB_C_ALLOWED);
        if (unlikely(policy & CB_POLICY_SLOW))
            issue_permit(b, permit, w, PERMIT_CALL, clock_stamp(b));
        else
            issue_permit(b, permit, w, PERMIT_CALL, 0);
        return CB_ALLOWED;
    }
    return acquire_slow(b, permit, w, stripe);
}

/* Whether a call permit's report is slow: more than slow_call_ms since
 * its acquire, modulo 2^30 (slow_call_ms < 2^29). Unstamped: not slow. */
static int is_slow(const cb_breaker *b, const cb_permit *p, uint64_t now)
{
    uint64_t stamp = p->opaque[1] >> PERMIT_STAMP_SHIFT & PERMIT_STAMP_MASK;
    if (stamp == 0 || !(cfg(b, CB_CF_POLICY) & CB_POLICY_SLOW))
        return 0;
    return ((now - stamp) & PERMIT_STAMP_MASK) > cfg(b, CB_CF_SLOW_CALL_MS);
}

/* Sum the window of generation gen at bucket `at`: the CB_RULE_* bits
 * found true. */
static unsigned window_rules(cb_breaker *b, const struct cb_bucket *at, struct cb_window_sums *sums)
{
    cb_window_sum(b->seg, at, sums);
    return cb_window_rules(sums, cfg(b, CB_CF_FAILURE_RATE), cfg(b, CB_CF_SLOW_CALL_MS),
                           cfg(b, CB_CF_SLOW_CALL_RATE), cfg(b, CB_CF_MINIMUM_CALLS));
}

/* Count a verdict of generation gen in the window and, when it can have
 * changed a rule (a failure, a slow call, a failure or slow call in the
 * window, or force), sum the window: returns the CB_RULE_* bits found
 * true, or -1 when it did not look. */
static int window_report(cb_breaker *b, const cb_permit *p, enum report r, unsigned stripe, uint64_t gen,
                         int force, uint64_t now, struct cb_window_sums *sums)
{
    struct cb_segment *seg = b->seg;
    uint64_t floor = cb_window_floor(seg, gen, now, 1);
    if (floor == CB_WINDOW_STALE)
        return -1; /* the circuit moved on since this report was applied */
    const struct cb_bucket *at = cb_window_bucket(now, cfg(b, CB_CF_WINDOW), floor);
    int failure = r == REPORT_FAILURE, slow = is_slow(b, p, now);
    cb_window_count(seg, stripe, at, failure, slow);
    if (likely(!failure && !slow && !force && !cb_window_bad_recent(seg, at)))
        return -1;
    return (int)window_rules(b, at, sums);
}

static uint32_t capped(uint64_t n) { return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n; }

/* A rate rule is true for CLOSED generation gen: trip, exactly once. */
static void rate_trip(cb_breaker *b, unsigned stripe, uint64_t gen, unsigned rules,
                      const struct cb_window_sums *sums, uint64_t now)
{
    struct cb_segment *seg = b->seg;
    cb_reason reason = rules & CB_RULE_FAILURE_RATE ? CB_REASON_FAILURE_RATE : CB_REASON_SLOW_CALL_RATE;
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed);
    while (sw_state(w) == CB_CLOSED && sw_gen(w) == gen) {
        uint64_t next = sw_next(w, CB_OPEN, sw_timed(0, now));
        /* Model step "rate_trip": from CLOSED of the window's generation,
         * whatever the count (a count change by another report is no
         * reason to give up: retry); once the generation moved, someone
         * else made a transition and this one is not needed. One winner,
         * so one trip and one event. */
        if (cas_word(seg, &w, next)) {
            next = refresh_stamp(b, next, &now);
            cb_count(seg, stripe, CB_C_TRIPS);
            cb_emit(b, w, next, reason,
                    capped(reason == CB_REASON_FAILURE_RATE ? sums->failures : sums->slow), now);
            return;
        }
    }
}

/* METRICS_ONLY: set (or clear) a crossing mark of generation gen's word;
 * a set mark announces a would-open event, once per crossing. */
static void metrics_mark(cb_breaker *b, uint64_t gen, uint64_t mark, int set, cb_reason reason,
                         uint32_t failures, uint64_t now)
{
    struct cb_segment *seg = b->seg;
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed);
    while (sw_mode(w) == CB_MODE_METRICS_ONLY && sw_gen(w) == gen && !!(sw_payload(w) & mark) != set) {
        uint64_t next = sw_make(CB_STATE_MODE, gen, set ? sw_payload(w) | mark : sw_payload(w) & ~mark);
        /* Model step "metrics_mark": same generation (no permit becomes
         * late); of the processes that find the rule crossed, one CAS sets
         * the mark and announces; the others see it set and stop. */
        if (cas_word(seg, &w, next)) {
            if (set)
                cb_announce_would_open(b, next, reason, failures, now);
            return;
        }
    }
}

/* A call of METRICS_ONLY generation gen: the count and marks in the word,
 * then the window. Returns 0 if the report turned out late. */
static int report_metrics(cb_breaker *b, const cb_permit *p, enum report r, unsigned stripe, uint64_t w)
{
    struct cb_segment *seg = b->seg;
    uint64_t gen = sw_gen(w), now = cb_clock_now(b);
    for (;;) {
        if (sw_mode(w) != CB_MODE_METRICS_ONLY || sw_gen(w) != gen)
            return 0;
        uint64_t payload = sw_payload(w);
        uint64_t count = payload >> CB_MODE_COUNT_SHIFT;
        uint64_t marks = payload & ((UINT64_C(1) << CB_MODE_COUNT_SHIFT) - 1u), next;
        int announce = 0;
        if (r == REPORT_SUCCESS) {
            if (count == 0)
                break;
            next = sw_make(CB_STATE_MODE, gen, marks & ~CB_CROSSED_THRESHOLD);
        } else {
            count++;
            if (count >= cfg(b, CB_CF_THRESHOLD) && !(marks & CB_CROSSED_THRESHOLD)) {
                marks |= CB_CROSSED_THRESHOLD;
                announce = 1;
            }
            next = sw_make(CB_STATE_MODE, gen, marks | count << CB_MODE_COUNT_SHIFT);
        }
        /* Model step "metrics_mark" (with the count, as "count_failure"/
         * "clear_count" do in CLOSED): same generation; a CAS that fails
         * re-checks the generation and recounts. */
        if (cas_word(seg, &w, next)) {
            if (announce)
                cb_announce_would_open(b, next, CB_REASON_THRESHOLD, capped(count), now);
            w = next;
            break;
        }
    }
    cb_count(seg, stripe, r == REPORT_SUCCESS ? CB_C_SUCCESSES : CB_C_FAILURES);
    if (!(cfg(b, CB_CF_POLICY) & CB_POLICY_WINDOW))
        return 1;
    struct cb_window_sums sums;
    uint64_t rate_marks = CB_CROSSED_FAILURE_RATE | CB_CROSSED_SLOW_CALL_RATE;
    int rules = window_report(b, p, r, stripe, gen, (sw_payload(w) & rate_marks) != 0, now, &sums);
    if (rules < 0)
        return 1;
    metrics_mark(b, gen, CB_CROSSED_FAILURE_RATE, (rules & CB_RULE_FAILURE_RATE) != 0, CB_REASON_FAILURE_RATE,
                 capped(sums.failures), now);
    metrics_mark(b, gen, CB_CROSSED_SLOW_CALL_RATE, (rules & CB_RULE_SLOW_CALL_RATE) != 0,
                 CB_REASON_SLOW_CALL_RATE, capped(sums.slow), now);
    return 1;
}

/* A report of CLOSED generation gen, applied to the word: count it in
 * the window and trip if that made a rate rule true. */
static void closed_window(cb_breaker *b, const cb_permit *p, enum report r, unsigned stripe, uint64_t gen,
                          uint64_t now)
{
    struct cb_window_sums sums;
    int rules = window_report(b, p, r, stripe, gen, 0, now, &sums);
    if (rules > 0)
        rate_trip(b, stripe, gen, (unsigned)rules, &sums, now);
}

/* A call admitted while CLOSED (or in DISABLED / METRICS_ONLY) reports
 * into the same generation only. */
static void report_call(cb_breaker *b, const cb_permit *p, enum report r)
{
    struct cb_segment *seg = b->seg;
    unsigned stripe = cb_stripe_for(b);
    uint64_t issued = p->opaque[0], issued_gen = sw_gen(issued);
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed);
    uint64_t now = 0;
    for (;;) {
        if (sw_state(w) != sw_state(issued) || sw_gen(w) != issued_gen) {
            cb_count(seg, stripe, CB_C_LATE);
            return;
        }
        if (r == REPORT_RELEASE) {
            cb_count(seg, stripe, CB_C_RELEASED); /* no verdict: nothing to change */
            return;
        }
        if (sw_state(w) == CB_STATE_MODE) {
            if (sw_mode(w) == CB_MODE_DISABLED) /* the counters only */
                cb_count(seg, stripe, r == REPORT_SUCCESS ? CB_C_SUCCESSES : CB_C_FAILURES);
            else if (sw_mode(w) != CB_MODE_METRICS_ONLY || !report_metrics(b, p, r, stripe, w))
                cb_count(seg, stripe, CB_C_LATE);
            return;
        }
        uint64_t count = sw_payload(w), next;
        int trips = 0;
        if (r == REPORT_SUCCESS) {
            if (likely(count == 0))
                break; /* nothing to write */
            next = sw_make(CB_CLOSED, issued_gen, 0);
        } else if (count + 1 >= cfg(b, CB_CF_THRESHOLD)) {
            now = cb_clock_now(b);
            next = sw_next(w, CB_OPEN, sw_timed(0, now));
            trips = 1;
        } else {
            next = sw_make(CB_CLOSED, issued_gen, count + 1);
        }
        /* Model steps "count_failure"/"clear_count"/"trip_threshold": the CAS
         * fails if any other report or transition got in first; we then
         * re-check the generation and recount from the new value. A trip
         * from CLOSED starts at backoff step 0. */
        if (cas_word(seg, &w, next)) {
            if (trips) {
                next = refresh_stamp(b, next, &now);
                cb_count(seg, stripe, CB_C_TRIPS);
                cb_emit(b, w, next, CB_REASON_THRESHOLD, (uint32_t)(count + 1), now);
                cb_count(seg, stripe, CB_C_FAILURES);
                return;
            }
            break;
        }
    }
    cb_count(seg, stripe, r == REPORT_SUCCESS ? CB_C_SUCCESSES : CB_C_FAILURES);
    if (likely(!(cfg(b, CB_CF_POLICY) & CB_POLICY_WINDOW)))
        return;
    closed_window(b, p, r, stripe, issued_gen, cb_clock_now(b));
}

/* A probe reports by one CAS from exactly the word that granted it. */
static void report_probe(cb_breaker *b, const cb_permit *p, enum report r)
{
    struct cb_segment *seg = b->seg;
    unsigned stripe = cb_stripe_for(b);
    uint64_t granted = p->opaque[0], now = cb_clock_now(b), next;
    enum cb_counter counter;
    int reason;
    switch (r) {
    case REPORT_SUCCESS:
        next = sw_next(granted, CB_CLOSED, 0); /* the backoff step is gone */
        counter = CB_C_SUCCESSES;
        reason = CB_REASON_PROBE_SUCCEEDED;
        break;
    case REPORT_FAILURE: {
        unsigned step = cb_next_step(cfg(b, CB_CF_RESET_TIMEOUT), cfg(b, CB_CF_BACKOFF),
                                     cfg(b, CB_CF_MAX_RESET_TIMEOUT), sw_step(granted));
        next = sw_next(granted, CB_OPEN, sw_timed(step, now));
        counter = CB_C_FAILURES;
        reason = CB_REASON_PROBE_FAILED;
        break;
    }
    default:
        next = sw_next(granted, CB_HALF_OPEN, sw_timed(sw_step(granted), CB_SLOT_FREE));
        counter = CB_C_RELEASED;
        reason = -1;
        break;
    }
    uint64_t expected = granted;
    /* Model steps "probe_report"/"backoff_step": succeeds only if nobody
     * took over the lease, reset, tripped or set a mode since the grant
     * (each would have bumped the generation); otherwise the report is
     * late. The new step is computed from the granted word's, so one
     * failed probe grows the period by exactly one step. */
    if (!cas_word(seg, &expected, next)) {
        cb_count(seg, stripe, CB_C_LATE);
        return;
    }
    if (reason == CB_REASON_PROBE_FAILED) {
        next = refresh_stamp(b, next, &now);
        cb_count(seg, stripe, CB_C_TRIPS);
    } else if (reason == CB_REASON_PROBE_SUCCEEDED) {
        cb_window_restart(seg, sw_gen(next), cb_clock_now(b));
    }
    cb_count(seg, stripe, counter);
    if (reason >= 0)
        cb_emit(b, granted, next, (cb_reason)reason, reason == CB_REASON_PROBE_FAILED, now);
}

/* A rate rule may have become true for CLOSED generation gen: look, and
 * trip if so. */
static __attribute__((noinline)) void closed_evaluate(cb_breaker *b, unsigned stripe, uint64_t gen,
                                                      uint64_t now, const struct cb_bucket *at)
{
    struct cb_window_sums sums;
    unsigned rules = window_rules(b, at, &sums);
    if (rules)
        rate_trip(b, stripe, gen, rules, &sums, now);
}

/* A success with a window policy on, for a permit whose word is current
 * (CLOSED, count 0): what report_call would do (no CAS), without decoding
 * the permit again. The healthy case is a clock read, a store to this
 * thread's bucket and one shared load (bad_bucket). */
static __attribute__((noinline)) void success_windowed(cb_breaker *b, cb_permit *p)
{
    struct cb_segment *seg = b->seg;
    unsigned stripe = cb_stripe_for(b);
    uint64_t now = cb_clock_now(b), gen = sw_gen(p->opaque[0]);
    uint64_t floor = cb_window_floor(seg, gen, now, 1);
    int slow = is_slow(b, p, now);
    p->opaque[0] = p->opaque[1] = 0;
    cb_count(seg, stripe, CB_C_SUCCESSES);
    if (unlikely(floor == CB_WINDOW_STALE))
        return; /* the circuit moved on since the permit's word was checked */
    const struct cb_bucket *at = cb_window_bucket(now, cfg(b, CB_CF_WINDOW), floor);
    cb_window_count(seg, stripe, at, 0, slow);
    if (unlikely(slow || cb_window_bad_recent(seg, at)))
        closed_evaluate(b, stripe, gen, now, at);
}

/* A report consumes the permit: reported again, it is empty and ignored,
 * so a double report can never count twice. noinline: keeps cb_success's
 * fast path free of a stack frame. */
static __attribute__((noinline)) void report(cb_breaker *b, cb_permit *p, enum report r)
{
    switch (permit_kind(b, p)) {
    case PERMIT_CALL:
        report_call(b, p, r);
        break;
    case PERMIT_PROBE:
        report_probe(b, p, r);
        break;
    default: /* empty, spent, foreign or NULL: nothing to report */
        return;
    }
    p->opaque[0] = p->opaque[1] = 0;
}

/* cb_success off its fast path. A call permit stamped at acquire
 * (CB_POLICY_SLOW) whose word is current takes success_windowed, as an
 * unstamped one does from cb_success, so that the fast path never masks. */
static __attribute__((noinline)) void success_slow(cb_breaker *b, cb_permit *p)
{
    uint64_t unstamped = b && p ? p->opaque[1] & ~(PERMIT_STAMP_MASK << PERMIT_STAMP_SHIFT) : 0;
    if (b && p && unstamped == ((uint64_t)b->instance << 32 | PERMIT_CALL) && sw_payload(p->opaque[0]) == 0 &&
        p->opaque[0] == atomic_load_explicit(&b->seg->state, memory_order_relaxed) &&
        (cb_config_value(b->seg, CB_CF_POLICY) & CB_POLICY_WINDOW)) {
        success_windowed(b, p);
        return;
    }
    report(b, p, REPORT_SUCCESS);
}

void cb_success(cb_breaker *b, cb_permit *permit)
{
    /* Healthy path: a call permit whose word is still current (CLOSED,
     * same generation, count 0) only counts and is consumed, with every
     * policy off; report() would decide the same after decoding the kind
     * and both generations. With a window policy on: success_windowed. */
    if (likely(b && permit && permit->opaque[1] == ((uint64_t)b->instance << 32 | PERMIT_CALL) &&
               sw_payload(permit->opaque[0]) == 0 &&
               permit->opaque[0] == atomic_load_explicit(&b->seg->state, memory_order_relaxed))) {
        if (unlikely(cb_config_value(b->seg, CB_CF_POLICY) != 0)) {
            success_windowed(b, permit);
            return;
        }
        cb_count(b->seg, cb_stripe_for(b), CB_C_SUCCESSES);
        permit->opaque[0] = permit->opaque[1] = 0;
        return;
    }
    success_slow(b, permit);
}
void cb_failure(cb_breaker *b, cb_permit *permit) { report(b, permit, REPORT_FAILURE); }
void cb_release(cb_breaker *b, cb_permit *permit) { report(b, permit, REPORT_RELEASE); }

cb_verdict cb_call(cb_breaker *b, cb_call_fn fn, void *arg)
{
    cb_permit permit;
    if (!fn)
        return CB_REJECTED;
    cb_verdict v = cb_acquire(b, &permit);
    if (v == CB_REJECTED)
        return v;
    switch (fn(arg)) {
    case CB_SUCCESS:
        cb_success(b, &permit);
        break;
    case CB_FAILURE:
        cb_failure(b, &permit);
        break;
    default:
        cb_release(b, &permit);
        break;
    }
    return v;
}

cb_state cb_get_state(cb_breaker *b)
{
    if (!b)
        return CB_CLOSED;
    return (cb_state)sw_apparent(atomic_load_explicit(&b->seg->state, memory_order_relaxed));
}

/* Operator transitions: from whatever the word holds, but never over an
 * operator mode (CB_EMODE). Returns the state replaced. */
static int force(cb_breaker *b, cb_state to)
{
    struct cb_segment *seg = b->seg;
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed), next, now;
    do {
        /* Checked on the word the CAS expects: a mode set meanwhile fails
         * the CAS and is found here on the retry. */
        if (sw_state(w) == CB_STATE_MODE && sw_mode(w) != CB_MODE_NORMAL)
            return CB_EMODE;
        now = cb_clock_now(b);
        unsigned step = sw_state(w) == CB_OPEN || sw_state(w) == CB_HALF_OPEN ? sw_step(w) : 0;
        next = sw_next(w, to, to == CB_OPEN ? sw_timed(step, now) : 0);
        /* Model steps "reset"/"trip": any word but a mode's is replaced;
         * the generation bump makes every permit issued before it late.
         * A trip keeps the backoff step of OPEN or HALF_OPEN. */
    } while (!cas_word(seg, &w, next));
    if (to == CB_OPEN) {
        next = refresh_stamp(b, next, &now);
        cb_count(seg, cb_stripe_for(b), CB_C_TRIPS);
    } else {
        cb_window_restart(seg, sw_gen(next), cb_clock_now(b));
    }
    cb_emit(b, w, next, to == CB_OPEN ? CB_REASON_TRIP : CB_REASON_RESET, 0, now);
    return (int)sw_state(w);
}

int cb_reset(cb_breaker *b)
{
    return b ? force(b, CB_CLOSED) : -EINVAL;
}

int cb_trip(cb_breaker *b)
{
    return b ? force(b, CB_OPEN) : -EINVAL;
}

int cb_set_mode(cb_breaker *b, cb_mode mode)
{
    if (!b || (unsigned)mode > CB_MODE_METRICS_ONLY)
        return -EINVAL;
    struct cb_segment *seg = b->seg;
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed), next;
    unsigned replaced;
    for (;;) {
        replaced = sw_mode(w); /* 0 for a corrupt word too: NORMAL repairs it */
        int corrupt = sw_state(w) == CB_STATE_MODE && replaced == CB_MODE_NORMAL;
        if (replaced == (unsigned)mode && !corrupt)
            return (int)replaced;
        next = mode == CB_MODE_NORMAL ? sw_next(w, CB_CLOSED, 0) : sw_next(w, CB_STATE_MODE, (uint64_t)mode);
        /* Model step "set_mode": from any word; the generation bump makes
         * every permit issued before it late (and ends a probe's lease and
         * a backoff step); NORMAL resumes from CLOSED with a zero count. */
        if (cas_word(seg, &w, next))
            break;
    }
    uint64_t now = cb_clock_now(b);
    if (mode == CB_MODE_NORMAL || mode == CB_MODE_METRICS_ONLY)
        cb_window_restart(seg, sw_gen(next), now);
    if (mode == CB_MODE_FORCED_OPEN)
        cb_count(seg, cb_stripe_for(b), CB_C_TRIPS);
    cb_emit(b, w, next, CB_REASON_MODE, 0, now);
    return (int)replaced;
}
