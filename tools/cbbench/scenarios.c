/*
 * scenarios.c - the timed loops: what one call of each scenario is, per
 * implementation.
 *
 *   healthy   acquire + success on a CLOSED circuit (expect CB_ALLOWED)
 *   healthy-pol  the same with the policies of issue 10 on: failure rate
 *             50% and slow calls (> 1 s: none are), so acquire reads the
 *             clock and success counts in the window (ours and private
 *             only: the baselines have no policies)
 *   rejected  acquire on an OPEN circuit whose reset timeout is an hour
 *             away (expect CB_REJECTED): the short-circuit path
 *   failing   acquire + failure on a CLOSED circuit whose threshold is
 *             never reached: every report is a compare-and-swap (ours) or
 *             a locked update (mutex) of the shared count
 *
 * Each implementation has its own loop calling its functions directly (no
 * function pointer per call), in a noinline function so that callgrind can
 * name it and the compiler cannot hoist anything across calls. Every
 * verdict is checked; a loop returns how many were not the expected one.
 */
#include <stdint.h>

#include "baseline_mutex.h"
#include "baseline_redis.h"
#include "circuit.h"

#define LOOP __attribute__((noinline))

static const char *const names[SC_COUNT] = {"healthy", "healthy-pol", "rejected", "failing"};

const char *scenario_name(enum scenario sc) { return names[sc]; }

cb_config scenario_config(enum scenario sc)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000};
    if (sc == SC_REJECTED)
        cfg.reset_timeout_ms = 3600000; /* stays OPEN for the whole run */
    if (sc == SC_FAILING)
        cfg.failure_threshold = UINT32_MAX; /* never trips */
    if (sc == SC_HEALTHY_POL) {
        cfg.failure_rate = 50;
        cfg.slow_call_ms = 1000;
    }
    return cfg;
}

int scenario_runs(enum scenario sc, enum impl impl)
{
    return sc != SC_HEALTHY_POL || impl == IMPL_OURS || impl == IMPL_PRIVATE;
}

void scenario_prepare(struct circuit *c, enum scenario sc)
{
    circuit_reset(c);
    if (sc == SC_REJECTED)
        circuit_trip(c);
}

/* ---- cbreaker (ours and private: the same calls) -------------------- */

static LOOP long cb_loop_healthy(cb_breaker *b, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        cb_permit p;
        bad += cb_acquire(b, &p) != CB_ALLOWED;
        cb_success(b, &p);
    }
    return bad;
}

static LOOP long cb_loop_rejected(cb_breaker *b, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        cb_permit p;
        if (cb_acquire(b, &p) != CB_REJECTED) {
            bad++;
            cb_release(b, &p);
        }
    }
    return bad;
}

static LOOP long cb_loop_failing(cb_breaker *b, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        cb_permit p;
        bad += cb_acquire(b, &p) != CB_ALLOWED;
        cb_failure(b, &p);
    }
    return bad;
}

/* ---- mutex ---------------------------------------------------------- */

static LOOP long mx_loop_healthy(struct mx_circuit *m, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        uint64_t p;
        bad += mx_acquire(m, &p) != CB_ALLOWED;
        mx_success(m, p);
    }
    return bad;
}

static LOOP long mx_loop_rejected(struct mx_circuit *m, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        uint64_t p;
        if (mx_acquire(m, &p) != CB_REJECTED) {
            bad++;
            mx_release(m, p);
        }
    }
    return bad;
}

static LOOP long mx_loop_failing(struct mx_circuit *m, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        uint64_t p;
        bad += mx_acquire(m, &p) != CB_ALLOWED;
        mx_failure(m, p);
    }
    return bad;
}

/* ---- redis ---------------------------------------------------------- */

static LOOP long rd_loop(struct rd_circuit *r, enum scenario sc, long n)
{
    long bad = 0;
    for (long i = 0; i < n; i++) {
        uint64_t p;
        cb_verdict v = rd_acquire(r, &p);
        bad += v != (sc == SC_REJECTED ? CB_REJECTED : CB_ALLOWED);
        if (sc == SC_HEALTHY || sc == SC_HEALTHY_POL)
            rd_success(r, p);
        else if (sc == SC_FAILING)
            rd_failure(r, p);
    }
    return bad;
}

long scenario_loop(struct circuit *c, enum scenario sc, long n)
{
    switch (c->impl) {
    case IMPL_OURS:
    case IMPL_PRIVATE:
        return sc == SC_HEALTHY || sc == SC_HEALTHY_POL ? cb_loop_healthy(c->cb, n)
               : sc == SC_REJECTED                      ? cb_loop_rejected(c->cb, n)
                                                        : cb_loop_failing(c->cb, n);
    case IMPL_MUTEX:
        return sc == SC_HEALTHY || sc == SC_HEALTHY_POL ? mx_loop_healthy(c->mx, n)
               : sc == SC_REJECTED                      ? mx_loop_rejected(c->mx, n)
                                                        : mx_loop_failing(c->mx, n);
    default:
        return rd_loop(c->rd, sc, n);
    }
}
