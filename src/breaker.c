/*
 * breaker.c - the state machine: acquire, report, reset, trip.
 *
 * The whole circuit is one 64-bit state word (state_word.h): state,
 * generation, and a payload (failure count, trip time or probe lease).
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
 * Transitions (g = generation, CAS from the left-hand word):
 *   acquire     OPEN(g,t), now-t >= reset       -> HALF_OPEN(g+1, now)  probe
 *               HALF_OPEN(g,FREE)               -> HALF_OPEN(g+1, now)  probe
 *               HALF_OPEN(g,l), now-l >= probe  -> HALF_OPEN(g+1, now)  probe
 *   failure     CLOSED(g,c), c+1 <  threshold   -> CLOSED(g, c+1)
 *               CLOSED(g,c), c+1 >= threshold   -> OPEN(g+1, now)
 *               HALF_OPEN(g,l) of this probe    -> OPEN(g+1, now)
 *   success     CLOSED(g,c>0)                   -> CLOSED(g, 0)
 *               HALF_OPEN(g,l) of this probe    -> CLOSED(g+1, 0)
 *   release     HALF_OPEN(g,l) of this probe    -> HALF_OPEN(g+1, FREE)
 *   reset       any(g)                          -> CLOSED(g+1, 0)
 *   trip        any(g)                          -> OPEN(g+1, now)
 *   refresh     OPEN(g,t) / HALF_OPEN(g,l) that this process just
 *               installed, clock moved on      -> same state (g, now)
 */
#include <errno.h>
#include <unistd.h>

#include "config.h"
#include "events.h"
#include "handle.h"
#include "state_word.h"
#include "stripes.h"

enum permit_kind { PERMIT_NONE = 0, PERMIT_CALL = 1, PERMIT_PROBE = 2 };
enum report { REPORT_SUCCESS, REPORT_FAILURE, REPORT_RELEASE };

#define likely(x) __builtin_expect(!!(x), 1)

static void issue_permit(const cb_breaker *b, cb_permit *p, uint64_t word, unsigned kind)
{
    p->opaque[0] = word;
    p->opaque[1] = (uint64_t)b->instance << 32 | kind;
}

static unsigned permit_kind(const cb_breaker *b, const cb_permit *p)
{
    if (!b || !p || (uint32_t)(p->opaque[1] >> 32) != b->instance)
        return PERMIT_NONE;
    unsigned kind = (unsigned)p->opaque[1];
    return kind <= PERMIT_PROBE ? kind : PERMIT_NONE;
}

static uint64_t config_ms(const cb_breaker *b, enum cb_config_field field)
{
    return (uint64_t)cb_config_value(b->seg, field) + b->clock_tick_ms;
}

static int cas_word(struct cb_segment *seg, uint64_t *expected, uint64_t desired)
{
    return atomic_compare_exchange_strong_explicit(&seg->state, expected, desired,
                                                   memory_order_relaxed, memory_order_relaxed);
}

/* Make the stamp of a word this process has just installed (OPEN with its
 * trip time, or HALF_OPEN with a lease) the time of the CAS, not of the
 * clock reading *stamp_ms taken before it: read the clock again and, while
 * it moved on since the stamp, CAS the word to the same state and
 * generation with the fresh stamp. "Moved on" is any change: with the
 * coarse clock, a reading still equal to the stamp means the CAS ran
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
        uint64_t fresh = sw_make(sw_state(installed), sw_gen(installed), stamp), expected = installed;
        /* Model step "refresh_stamp": expects exactly the word this process
         * installed, so it fails once anything else changed the word (the
         * refresh resurrects nothing); same state and generation, so every
         * permit of that word stays valid; the stamp only moves later. */
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
        /* Read the clock after the word: a time stamp in w is never newer
         * than now. (With a reading from before a failed CAS, the new
         * word's stamp could be, and a wrapped elapsed time would grant a
         * second probe.) */
        uint64_t now = cb_clock_now(b);
        int reason;
        switch (sw_state(w)) {
        case CB_CLOSED:
            cb_count(seg, stripe, CB_C_ALLOWED);
            issue_permit(b, permit, w, PERMIT_CALL);
            return CB_ALLOWED;
        case CB_OPEN:
            if (sw_elapsed(now, sw_payload(w)) < config_ms(b, CB_CF_RESET_TIMEOUT))
                goto reject;
            reason = CB_REASON_TIMEOUT;
            break;
        case CB_HALF_OPEN:
            if (sw_payload(w) == CB_SLOT_FREE)
                reason = -1; /* a released probe: not a transition */
            else if (sw_elapsed(now, sw_payload(w)) >= config_ms(b, CB_CF_PROBE_TIMEOUT))
                reason = CB_REASON_LEASE_EXPIRED;
            else
                goto reject;
            break;
        default: /* corrupt: reject until an operator resets it */
            goto reject;
        }
        uint64_t next = sw_next(w, CB_HALF_OPEN, sw_lease_stamp(now));
        /* Model step "take_probe": the one CAS from w wins the probe; a loser
         * re-reads the word and, seeing a fresh lease, is rejected. */
        if (cas_word(seg, &w, next)) {
            next = refresh_stamp(b, next, &now);
            atomic_store_explicit(&seg->probe_holder, sw_gen(next) << 32 | (uint32_t)getpid(),
                                  memory_order_release);
            cb_count(seg, stripe, CB_C_ALLOWED);
            cb_count(seg, stripe, CB_C_PROBES);
            if (reason >= 0)
                cb_emit(b, w, next, (cb_reason)reason, 0, now);
            issue_permit(b, permit, next, PERMIT_PROBE);
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
    unsigned stripe = cb_stripe_for(b);
    uint64_t w = atomic_load_explicit(&b->seg->state, memory_order_relaxed);
    if (likely(sw_state(w) == CB_CLOSED)) {
        cb_count(b->seg, stripe, CB_C_ALLOWED);
        issue_permit(b, permit, w, PERMIT_CALL);
        return CB_ALLOWED;
    }
    return acquire_slow(b, permit, w, stripe);
}

/* A call admitted while CLOSED reports into the same generation only. */
static void report_call(cb_breaker *b, const cb_permit *p, enum report r)
{
    struct cb_segment *seg = b->seg;
    unsigned stripe = cb_stripe_for(b);
    uint64_t issued_gen = sw_gen(p->opaque[0]);
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed);
    for (;;) {
        if (sw_state(w) != CB_CLOSED || sw_gen(w) != issued_gen) {
            cb_count(seg, stripe, CB_C_LATE);
            return;
        }
        if (r == REPORT_RELEASE) {
            cb_count(seg, stripe, CB_C_RELEASED); /* no verdict: nothing to change */
            return;
        }
        uint64_t count = sw_payload(w), next;
        uint64_t now = 0;
        int trips = 0;
        if (r == REPORT_SUCCESS) {
            if (likely(count == 0))
                break; /* the healthy path: nothing to write */
            next = sw_make(CB_CLOSED, issued_gen, 0);
        } else if (count + 1 >= cb_config_value(seg, CB_CF_THRESHOLD)) {
            now = cb_clock_now(b);
            next = sw_next(w, CB_OPEN, now);
            trips = 1;
        } else {
            next = sw_make(CB_CLOSED, issued_gen, count + 1);
        }
        /* Model steps "count_failure"/"clear_count"/"trip_threshold": the CAS
         * fails if any other report or transition got in first; we then
         * re-check the generation and recount from the new value. */
        if (cas_word(seg, &w, next)) {
            if (trips) {
                next = refresh_stamp(b, next, &now);
                cb_count(seg, stripe, CB_C_TRIPS);
                cb_emit(b, w, next, CB_REASON_THRESHOLD, (uint32_t)(count + 1), now);
            }
            break;
        }
    }
    cb_count(seg, stripe, r == REPORT_SUCCESS ? CB_C_SUCCESSES : CB_C_FAILURES);
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
        next = sw_next(granted, CB_CLOSED, 0);
        counter = CB_C_SUCCESSES;
        reason = CB_REASON_PROBE_SUCCEEDED;
        break;
    case REPORT_FAILURE:
        next = sw_next(granted, CB_OPEN, now);
        counter = CB_C_FAILURES;
        reason = CB_REASON_PROBE_FAILED;
        break;
    default:
        next = sw_next(granted, CB_HALF_OPEN, CB_SLOT_FREE);
        counter = CB_C_RELEASED;
        reason = -1;
        break;
    }
    uint64_t expected = granted;
    /* Model step "probe_report": succeeds only if nobody took over the lease,
     * reset or tripped since the grant (each would have bumped the
     * generation); otherwise the report is late. */
    if (!cas_word(seg, &expected, next)) {
        cb_count(seg, stripe, CB_C_LATE);
        return;
    }
    if (reason == CB_REASON_PROBE_FAILED) {
        next = refresh_stamp(b, next, &now);
        cb_count(seg, stripe, CB_C_TRIPS);
    }
    cb_count(seg, stripe, counter);
    if (reason >= 0)
        cb_emit(b, granted, next, (cb_reason)reason, reason == CB_REASON_PROBE_FAILED, now);
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

void cb_success(cb_breaker *b, cb_permit *permit)
{
    /* Healthy path: a call permit whose word is still current (CLOSED,
     * same generation, count 0) only counts and is consumed; report()
     * would decide the same after decoding the kind and both generations. */
    if (likely(b && permit && permit->opaque[1] == ((uint64_t)b->instance << 32 | PERMIT_CALL) &&
               sw_payload(permit->opaque[0]) == 0 &&
               permit->opaque[0] == atomic_load_explicit(&b->seg->state, memory_order_relaxed))) {
        cb_count(b->seg, cb_stripe_for(b), CB_C_SUCCESSES);
        permit->opaque[0] = permit->opaque[1] = 0;
        return;
    }
    report(b, permit, REPORT_SUCCESS);
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
    return (cb_state)sw_state(atomic_load_explicit(&b->seg->state, memory_order_relaxed));
}

/* Operator transitions: unconditional, from whatever the word holds.
 * Returns the state replaced. */
static int force(cb_breaker *b, cb_state to)
{
    struct cb_segment *seg = b->seg;
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_relaxed), next, now;
    do {
        now = cb_clock_now(b);
        next = sw_next(w, to, to == CB_OPEN ? now : 0);
        /* Model steps "reset"/"trip": any word is replaced; the generation
         * bump makes every permit issued before it late. */
    } while (!cas_word(seg, &w, next));
    if (to == CB_OPEN) {
        next = refresh_stamp(b, next, &now);
        cb_count(seg, cb_stripe_for(b), CB_C_TRIPS);
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
