/*
 * test-policies.c - every rule of issue 10's policies, in one process, on
 * a manual clock (tl_open_clocked: clock tick 0, so "a period has passed"
 * means exactly now - t >= period). Nothing sleeps; nothing depends on
 * real time.
 *
 * Most tests use a window of WIN = 1000 ms (ten buckets of 100 ms) and a
 * failure threshold no test reaches (BIG), so that only the rule under
 * test can trip; the clock starts at T0, a multiple of every bucket width
 * used, so bucket k of the first window spans [T0 + 100k, T0 + 100k + 99].
 *
 * TCases:
 *   window     a failure ages out of the window (counted one ms before
 *              the window ends, not at its end), bucket boundaries, a slot
 *              reused by a newer bucket.
 *   minimum    no trip below minimum_calls, a trip at it, also when the
 *              call that reaches it is a success.
 *   rate       the failure rate exactly at the threshold trips, just below
 *              it does not (table).
 *   slow       slow-call timing (exactly slow_call_ms is not slow, +1 is),
 *              a slow failure counts as both, the slow-call rate trips.
 *   interplay  threshold and rate rules: whichever fires first trips, the
 *              threshold when both fire on one report, the failure rate
 *              before the slow-call rate; reason in history and event.
 *   counted    releases, late reports and probes do not count in the
 *              window; the window restarts on close, cb_reset and leaving
 *              (and entering METRICS_ONLY).
 *   backoff    the open period's sequence (doubling, x1.5 in integers),
 *              the cap (and the cap below reset_timeout), backoff off,
 *              CB_BACKOFF_STEPS_MAX; the step reset by probe success and
 *              cb_reset, kept by cb_trip, lease expiry and release.
 *   modes      DISABLED, FORCED_OPEN, METRICS_ONLY (threshold and rate
 *              would-open events, once per crossing), leaving each mode,
 *              one transition per change, the same mode twice, cb_reset /
 *              cb_trip refused, permits from before a change are late,
 *              bad mode values.
 *   config     -EINVAL for each out-of-range field (cb_open and
 *              cb_set_config), the accepted edges, CB_CONFIG_OFF, 0 keeps,
 *              the defaults in cb_get_info.
 *   names      cb_reason_name, cb_mode_name, cb_event_name, cb_format_event
 *              of a would-open and of a mode event.
 *
 * Every test uses its own tl_unique_name() circuit and unlinks it.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cbreaker.h"
#include "testlib.h"

#define T0 UINT64_C(1000000) /* manual clock start, ms: a multiple of every bucket width */
#define WIN 1000u            /* window_ms of most tests: 10 buckets of 100 ms */
#define BIG 1000000u         /* a failure_threshold no test reaches */
#define RESET 1000u          /* reset_timeout_ms of most tests */
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- helpers */

#define EV_MAX 64
struct events {
    unsigned n;
    cb_event e[EV_MAX];
};

static void events_listener(const cb_event *event, void *ctx)
{
    struct events *ev = ctx;
    if (ev->n < EV_MAX)
        ev->e[ev->n] = *event;
    ev->n++;
}

typedef struct fx {
    const char *name;
    struct tl_clock *clk;
    cb_breaker *b;
    struct events *ev; /* every event of b */
} fx;

static fx fx_open(const char *tag, cb_config cfg)
{
    fx f;
    f.name = tl_unique_name(tag);
    f.clk = tl_clock_new(T0);
    f.b = tl_open_clocked(f.name, &cfg, f.clk);
    f.ev = calloc(1, sizeof *f.ev);
    ck_assert_ptr_nonnull(f.ev);
    cb_set_listener(f.b, events_listener, f.ev);
    return f;
}

static void fx_done(fx *f)
{
    cb_set_listener(f->b, NULL, NULL);
    ck_assert_msg(f->ev->n <= EV_MAX, "%u events, more than recorded", f->ev->n);
    free(f->ev);
    cb_close(f->b);
    ck_assert_int_eq(cb_unlink(f->name), 0);
    munmap(f->clk, sizeof *f->clk);
}

static void advance(fx *f, uint64_t ms) { tl_clock_advance(f->clk, ms); }
static void set_time(fx *f, uint64_t t)
{
    uint64_t now = tl_clock_read(f->clk);
    ck_assert_msg(t >= now, "clock would go back from %llu to %llu", (unsigned long long)now,
                  (unsigned long long)t);
    tl_clock_advance(f->clk, t - now);
}

#define INFO(b) info_at(__LINE__, (b))
static cb_info info_at(int line, cb_breaker *b)
{
    cb_info i;
    int rc = cb_get_info(b, &i);
    ck_assert_msg(rc == 0, "line %d: cb_get_info: %s", line, cb_strerror(rc));
    return i;
}

/* Acquire and insist on the verdict. */
#define ACQ(b, want) acq_at(__LINE__, (b), (want))
static cb_permit acq_at(int line, cb_breaker *b, cb_verdict want)
{
    cb_permit p;
    memset(&p, 0xa5, sizeof p);
    cb_verdict v = cb_acquire(b, &p);
    ck_assert_msg(v == want, "line %d: cb_acquire gave %d, want %d", line, (int)v, (int)want);
    if (v == CB_REJECTED)
        ck_assert_msg(p.opaque[0] == 0 && p.opaque[1] == 0, "line %d: rejected permit not empty", line);
    return p;
}

/* Run a script of calls, each acquired (CB_ALLOWED) and reported at once:
 * 'F' failure, 'S' success, 'R' release. */
#define RUN(f, script) run_at(__LINE__, (f), (script))
static void run_at(int line, fx *f, const char *script)
{
    for (const char *c = script; *c; c++) {
        cb_permit p = acq_at(line, f->b, CB_ALLOWED);
        if (*c == 'F')
            cb_failure(f->b, &p);
        else if (*c == 'S')
            cb_success(f->b, &p);
        else
            cb_release(f->b, &p);
    }
}

/* One call that lasts ms on the manual clock: acquire, advance, report. */
#define TIMED(f, ms, fail) timed_at(__LINE__, (f), (ms), (fail))
static void timed_at(int line, fx *f, uint64_t ms, int fail)
{
    cb_permit p = acq_at(line, f->b, CB_ALLOWED);
    advance(f, ms);
    if (fail)
        cb_failure(f->b, &p);
    else
        cb_success(f->b, &p);
}

/* The window's figures in cb_info. */
#define CK_WINDOW(b, calls, fails, slow) window_at(__LINE__, (b), (calls), (fails), (slow))
static void window_at(int line, cb_breaker *b, uint64_t calls, uint64_t fails, uint64_t slow)
{
    cb_info i = info_at(line, b);
    ck_assert_msg(i.window_calls == calls && i.window_failures == fails && i.window_slow_calls == slow,
                  "line %d: window calls/failures/slow %llu/%llu/%llu, want %llu/%llu/%llu", line,
                  (unsigned long long)i.window_calls, (unsigned long long)i.window_failures,
                  (unsigned long long)i.window_slow_calls, (unsigned long long)calls, (unsigned long long)fails,
                  (unsigned long long)slow);
}

/* State by cb_get_state and cb_get_info. */
#define CK_STATE(b, st) state_at(__LINE__, (b), (st))
static void state_at(int line, cb_breaker *b, cb_state st)
{
    cb_info i = info_at(line, b);
    ck_assert_msg(cb_get_state(b) == st && i.state == st, "line %d: state %s/%s, want %s", line,
                  cb_state_name(cb_get_state(b)), cb_state_name(i.state), cb_state_name(st));
}

#define CK_TRANSITION(t, f_, to_, why) transition_at(__LINE__, (t), (f_), (to_), (why))
static void transition_at(int line, const cb_transition *t, cb_state from, cb_state to, cb_reason reason)
{
    ck_assert_msg(t->from == from && t->to == to && t->reason == reason,
                  "line %d: transition %s->%s %s, want %s->%s %s", line, cb_state_name(t->from),
                  cb_state_name(t->to), cb_reason_name(t->reason), cb_state_name(from), cb_state_name(to),
                  cb_reason_name(reason));
}

/* The circuit tripped once, from CLOSED, for `reason`: OPEN, one trip in
 * the counters, the newest history entry and the newest event (the only
 * event since `events_before`) say so. */
#define CK_TRIPPED(f, reason, events_before) tripped_at(__LINE__, (f), (reason), (events_before))
static void tripped_at(int line, fx *f, cb_reason reason, unsigned events_before)
{
    state_at(line, f->b, CB_OPEN);
    cb_info i = info_at(line, f->b);
    ck_assert_msg(i.counters.trips == 1, "line %d: %llu trips, want 1", line, (unsigned long long)i.counters.trips);
    ck_assert_msg(i.history_len >= 1, "line %d: empty history", line);
    transition_at(line, &i.history[0], CB_CLOSED, CB_OPEN, reason);
    ck_assert_msg(i.history[0].generation == i.generation, "line %d: history[0] is not the current state", line);
    ck_assert_msg(f->ev->n == events_before + 1, "line %d: %u events, want %u", line, f->ev->n, events_before + 1);
    const cb_transition *t = &f->ev->e[f->ev->n - 1].transition;
    transition_at(line, t, CB_CLOSED, CB_OPEN, reason);
    ck_assert_msg(t->would_open == 0 && t->mode == CB_MODE_NORMAL, "line %d: would_open %u mode %d", line,
                  t->would_open, (int)t->mode);
    ck_assert_msg(t->generation == i.generation, "line %d: event generation %u, circuit at %u", line,
                  t->generation, i.generation);
}

/* Still CLOSED, never tripped, no event. */
#define CK_NOT_TRIPPED(f) not_tripped_at(__LINE__, (f))
static void not_tripped_at(int line, fx *f)
{
    state_at(line, f->b, CB_CLOSED);
    cb_info i = info_at(line, f->b);
    ck_assert_msg(i.counters.trips == 0 && f->ev->n == 0, "line %d: %llu trips, %u events, want none", line,
                  (unsigned long long)i.counters.trips, f->ev->n);
}

/* A config with a failure-rate rule over WIN and a threshold never met. */
static cb_config rate_cfg(uint32_t rate, uint32_t minimum)
{
    return (cb_config){.failure_threshold = BIG, .reset_timeout_ms = RESET, .failure_rate = rate,
                       .minimum_calls = minimum, .window_ms = WIN};
}

/* ----------------------------------------------------------------- window */

/* A failure at T0 counts in the window until the window has moved a whole
 * window_ms past its bucket: at T0 + 999 it is there, and a success then
 * reaches minimum_calls 2 at 50% failures and trips. */
START_TEST(test_window_failure_counts_one_ms_before_window_end)
{
    fx f = fx_open("win999", rate_cfg(50, 2));
    RUN(&f, "F");
    CK_WINDOW(f.b, 1, 1, 0);
    set_time(&f, T0 + WIN - 1);
    CK_WINDOW(f.b, 1, 1, 0);
    CK_NOT_TRIPPED(&f);
    RUN(&f, "S");
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    fx_done(&f);
}
END_TEST

/* At T0 + window_ms the failure of T0 has aged out: the window is empty,
 * and the same success does not trip (1 call < minimum_calls 2; with the
 * old failure it would be 2 calls at 50%). */
START_TEST(test_window_failure_aged_out_at_window_end)
{
    fx f = fx_open("win1000", rate_cfg(50, 2));
    RUN(&f, "F");
    set_time(&f, T0 + WIN);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_WINDOW(f.b, 1, 0, 0);
    CK_NOT_TRIPPED(&f);
    /* Another failure now: 2 calls, 1 failure: 50%, it trips. */
    RUN(&f, "F");
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    fx_done(&f);
}
END_TEST

/* Calls anywhere in bucket 1 ([T0+100, T0+199]) leave the window together,
 * when the window's newest bucket starts window_ms after theirs: counted
 * at T0+1099, gone at T0+1100; a call at T0+200 (bucket 2) stays until
 * T0+1199 and leaves at T0+1200. */
START_TEST(test_window_bucket_boundary)
{
    fx f = fx_open("bucket", rate_cfg(100, 1000));
    set_time(&f, T0 + 99);
    RUN(&f, "S"); /* bucket 0 */
    set_time(&f, T0 + 100);
    RUN(&f, "F"); /* bucket 1, its first ms */
    set_time(&f, T0 + 150);
    RUN(&f, "F");
    set_time(&f, T0 + 199);
    RUN(&f, "F"); /* bucket 1, its last ms */
    set_time(&f, T0 + 200);
    RUN(&f, "S"); /* bucket 2 */
    CK_WINDOW(f.b, 5, 3, 0);

    set_time(&f, T0 + 999);
    CK_WINDOW(f.b, 5, 3, 0);
    set_time(&f, T0 + 1000); /* bucket 0 gone */
    CK_WINDOW(f.b, 4, 3, 0);
    set_time(&f, T0 + 1099);
    CK_WINDOW(f.b, 4, 3, 0);
    set_time(&f, T0 + 1100); /* bucket 1 gone, all three of its calls */
    CK_WINDOW(f.b, 1, 0, 0);
    set_time(&f, T0 + 1199);
    CK_WINDOW(f.b, 1, 0, 0);
    set_time(&f, T0 + 1200); /* bucket 2 gone */
    CK_WINDOW(f.b, 0, 0, 0);
    CK_NOT_TRIPPED(&f);
    fx_done(&f);
}
END_TEST

/* A bucket's slot is reused by the bucket a window later: the old count is
 * replaced, not added to. */
START_TEST(test_window_slot_reused_by_newer_bucket)
{
    fx f = fx_open("slot", rate_cfg(100, 1000));
    set_time(&f, T0 + 100);
    RUN(&f, "FFF"); /* bucket 1, slot 1 */
    set_time(&f, T0 + 200);
    RUN(&f, "S"); /* bucket 2, slot 2 */
    set_time(&f, T0 + 1100);
    RUN(&f, "S"); /* bucket 11, slot 1 again */
    CK_WINDOW(f.b, 2, 0, 0);
    set_time(&f, T0 + 1200); /* bucket 2 gone */
    CK_WINDOW(f.b, 1, 0, 0);
    CK_NOT_TRIPPED(&f);
    fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------- minimum */

START_TEST(test_minimum_calls_no_trip_below)
{
    fx f = fx_open("minbelow", rate_cfg(50, 5));
    RUN(&f, "FFFF"); /* 100% failures, but 4 calls < 5 */
    CK_WINDOW(f.b, 4, 4, 0);
    CK_NOT_TRIPPED(&f);
    ck_assert_uint_eq(INFO(f.b).failures, 4);
    fx_done(&f);
}
END_TEST

START_TEST(test_minimum_calls_trip_at_it_by_failure)
{
    fx f = fx_open("minfail", rate_cfg(50, 5));
    RUN(&f, "FFFF");
    CK_NOT_TRIPPED(&f);
    RUN(&f, "F"); /* the 5th call */
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    ACQ(f.b, CB_REJECTED);
    fx_done(&f);
}
END_TEST

/* The call that reaches minimum_calls is a success: 3 failures in 5 calls
 * is 60% >= 50%, and the success trips the circuit. */
START_TEST(test_minimum_calls_trip_at_it_by_success)
{
    fx f = fx_open("minsucc", rate_cfg(50, 5));
    RUN(&f, "FFFS");
    CK_NOT_TRIPPED(&f);
    RUN(&f, "S");
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------- rate */

/* failures x 100 >= failure_rate x calls trips: rows at the threshold
 * exactly (trip) and one percent above the observed rate (no trip). The
 * failures come first, so the rule is decided on the last call, the one
 * that reaches minimum_calls = calls. */
static const struct {
    uint32_t rate, failures, calls;
    int trips;
} rate_table[] = {
    {40, 2, 5, 1},  {41, 2, 5, 0},  /* 40% */
    {33, 2, 6, 1},  {34, 2, 6, 0},  /* 33.3% */
    {50, 1, 2, 1},  {51, 1, 2, 0},  /* 50% */
    {100, 5, 5, 1}, {100, 4, 5, 0}, /* all, all but one */
    {1, 1, 100, 1}, {2, 1, 100, 0}, /* 1% */
    {67, 2, 3, 0},  {66, 2, 3, 1},  /* 66.7% */
};

START_TEST(test_rate_at_threshold_trips_below_does_not)
{
    uint32_t rate = rate_table[_i].rate, fails = rate_table[_i].failures, calls = rate_table[_i].calls;
    fx f = fx_open("rate", rate_cfg(rate, calls));
    for (uint32_t k = 0; k < calls - 1; k++)
        RUN(&f, k < fails ? "F" : "S");
    CK_NOT_TRIPPED(&f);
    RUN(&f, fails == calls ? "F" : "S");
    if (rate_table[_i].trips) {
        CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    } else {
        CK_WINDOW(f.b, calls, fails, 0);
        CK_NOT_TRIPPED(&f);
    }
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------- slow */

/* A call is slow when it lasts > slow_call_ms on the handle's clock, from
 * cb_acquire to the report. slow_call_rate 100 and minimum_calls 1: one
 * slow call trips a fresh circuit, a call that is not slow does not. */
static const struct {
    uint64_t duration;
    int slow;
} slow_table[] = {
    {0, 0}, {99, 0}, {100, 0}, {101, 1}, {5000, 1},
};

START_TEST(test_slow_call_is_longer_than_slow_call_ms)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .minimum_calls = 1, .window_ms = WIN,
                     .slow_call_ms = 100, .slow_call_rate = 100};
    fx f = fx_open("slowms", cfg);
    TIMED(&f, slow_table[_i].duration, 0);
    if (slow_table[_i].slow) {
        CK_TRIPPED(&f, CB_REASON_SLOW_CALL_RATE, 0);
    } else {
        CK_WINDOW(f.b, 1, 0, 0);
        CK_NOT_TRIPPED(&f);
    }
    fx_done(&f);
}
END_TEST

/* The time is the handle's clock between cb_acquire and the report, not
 * between reports: a call acquired before a long gap is slow, calls
 * acquired after it are not. */
START_TEST(test_slow_call_timed_from_acquire)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .minimum_calls = 1000,
                     .window_ms = WIN, .slow_call_ms = 100};
    fx f = fx_open("slowacq", cfg);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    advance(&f, 101);
    RUN(&f, "SS"); /* acquired and reported at once: not slow */
    CK_WINDOW(f.b, 2, 0, 0);
    cb_success(f.b, &p);
    CK_WINDOW(f.b, 3, 0, 1);
    fx_done(&f);
}
END_TEST

/* A slow failure counts as a call, a failure and a slow call. */
START_TEST(test_slow_failure_counts_as_both)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .failure_rate = 100,
                     .minimum_calls = 1000, .window_ms = WIN, .slow_call_ms = 100};
    fx f = fx_open("slowfail", cfg);
    TIMED(&f, 101, 1);
    CK_WINDOW(f.b, 1, 1, 1);
    TIMED(&f, 100, 1); /* a failure, not slow */
    CK_WINDOW(f.b, 2, 2, 1);
    TIMED(&f, 101, 0); /* a slow success */
    CK_WINDOW(f.b, 3, 2, 2);
    CK_NOT_TRIPPED(&f);
    fx_done(&f);
}
END_TEST

/* slow calls x 100 >= slow_call_rate x calls, with minimum_calls: 2 slow
 * in 4 (successes all) is 50%: the 4th call trips; 2 slow in 5 does not
 * reach 50%. */
START_TEST(test_slow_call_rate_trips)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .minimum_calls = 4,
                     .window_ms = WIN, .slow_call_ms = 100, .slow_call_rate = 50};
    fx f = fx_open("slowrate", cfg);
    TIMED(&f, 101, 0);
    TIMED(&f, 10, 0);
    TIMED(&f, 101, 0);
    CK_WINDOW(f.b, 3, 0, 2);
    CK_NOT_TRIPPED(&f);
    TIMED(&f, 10, 0);
    CK_TRIPPED(&f, CB_REASON_SLOW_CALL_RATE, 0);
    fx_done(&f);
}
END_TEST

START_TEST(test_slow_call_rate_below_does_not_trip)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .minimum_calls = 5,
                     .window_ms = WIN, .slow_call_ms = 100, .slow_call_rate = 50};
    fx f = fx_open("slowbelow", cfg);
    TIMED(&f, 101, 0);
    TIMED(&f, 10, 0);
    TIMED(&f, 101, 0);
    TIMED(&f, 10, 0);
    TIMED(&f, 10, 0); /* 2 of 5: 40% */
    CK_WINDOW(f.b, 5, 0, 2);
    CK_NOT_TRIPPED(&f);
    fx_done(&f);
}
END_TEST

/* -------------------------------------------------------------- interplay */

/* The threshold fires first: 3 failures in a row, the rate rule still
 * below minimum_calls. */
START_TEST(test_interplay_threshold_first)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = RESET, .failure_rate = 50,
                     .minimum_calls = 10, .window_ms = WIN};
    fx f = fx_open("thrfirst", cfg);
    RUN(&f, "FF");
    CK_NOT_TRIPPED(&f);
    RUN(&f, "F");
    CK_TRIPPED(&f, CB_REASON_THRESHOLD, 0);
    ck_assert_uint_eq(f.ev->e[0].transition.failures, 3);
    fx_done(&f);
}
END_TEST

/* The rate fires first: failures never come 3 in a row. */
START_TEST(test_interplay_rate_first)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = RESET, .failure_rate = 50,
                     .minimum_calls = 6, .window_ms = WIN};
    fx f = fx_open("ratefirst", cfg);
    RUN(&f, "FFSFF");
    CK_NOT_TRIPPED(&f);
    ck_assert_uint_eq(INFO(f.b).failures, 2);
    RUN(&f, "S"); /* 6 calls, 4 failures */
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    fx_done(&f);
}
END_TEST

/* Both rules fire on the same report: the threshold is checked first. */
START_TEST(test_interplay_both_on_one_report_threshold_wins)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = RESET, .failure_rate = 100,
                     .minimum_calls = 3, .window_ms = WIN};
    fx f = fx_open("both", cfg);
    RUN(&f, "FFF");
    CK_TRIPPED(&f, CB_REASON_THRESHOLD, 0);
    fx_done(&f);
}
END_TEST

/* Failure rate and slow-call rate on the same report: the failure rate is
 * checked first. */
START_TEST(test_interplay_failure_rate_before_slow_rate)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .failure_rate = 100,
                     .minimum_calls = 1, .window_ms = WIN, .slow_call_ms = 100, .slow_call_rate = 100};
    fx f = fx_open("rates", cfg);
    TIMED(&f, 101, 1);
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    fx_done(&f);
}
END_TEST

/* After a rate trip the circuit works as after any trip: the probe comes
 * after reset_timeout; its success closes and the new window is empty. */
START_TEST(test_interplay_rate_trip_then_recovery)
{
    fx f = fx_open("raterec", rate_cfg(50, 2));
    RUN(&f, "FS");
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    advance(&f, RESET - 1);
    ACQ(f.b, CB_REJECTED);
    advance(&f, 1);
    cb_permit p = ACQ(f.b, CB_PROBE);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_CLOSED);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------- counted */

/* Releases have no verdict: not in the window. */
START_TEST(test_release_not_counted)
{
    fx f = fx_open("release", rate_cfg(50, 2));
    RUN(&f, "F");
    RUN(&f, "RRRR");
    CK_WINDOW(f.b, 1, 1, 0);
    ck_assert_uint_eq(INFO(f.b).counters.released, 4);
    CK_NOT_TRIPPED(&f);
    fx_done(&f);
}
END_TEST

/* A slow release is not a slow call either. */
START_TEST(test_slow_release_not_counted)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .minimum_calls = 1,
                     .window_ms = WIN, .slow_call_ms = 100, .slow_call_rate = 100};
    fx f = fx_open("slowrel", cfg);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    advance(&f, 500);
    cb_release(f.b, &p);
    CK_WINDOW(f.b, 0, 0, 0);
    CK_NOT_TRIPPED(&f);
    fx_done(&f);
}
END_TEST

/* Reports of permits from an earlier state are late: not in the window.
 * (They are reported in the bucket of the reset, after the window's
 * restart, so they would show if they were counted.) */
START_TEST(test_late_reports_not_counted)
{
    fx f = fx_open("late", rate_cfg(50, 2));
    cb_permit p[3];
    for (int k = 0; k < 3; k++)
        p[k] = ACQ(f.b, CB_ALLOWED);
    ck_assert_int_eq(cb_trip(f.b), CB_CLOSED);
    advance(&f, 100);
    ck_assert_int_eq(cb_reset(f.b), CB_OPEN);
    cb_failure(f.b, &p[0]);
    cb_success(f.b, &p[1]);
    cb_failure(f.b, &p[2]);
    CK_WINDOW(f.b, 0, 0, 0);
    cb_info i = INFO(f.b);
    ck_assert_uint_eq(i.counters.late, 3);
    ck_assert_uint_eq(i.counters.failures, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* A probe's report decides HALF_OPEN and does not count in the window:
 * after the probe's success the new window is empty, and the next failure
 * alone is 1 call < minimum_calls. */
START_TEST(test_probe_reports_not_counted)
{
    fx f = fx_open("probe", rate_cfg(50, 2));
    ck_assert_int_eq(cb_trip(f.b), CB_CLOSED);
    advance(&f, RESET);
    cb_permit p = ACQ(f.b, CB_PROBE);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_CLOSED);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "F"); /* with the probe counted: 2 calls, 1 failure: a trip */
    CK_WINDOW(f.b, 1, 1, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* A probe's slow report is not a slow call. */
START_TEST(test_slow_probe_not_counted)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .minimum_calls = 1,
                     .window_ms = WIN, .slow_call_ms = 100, .slow_call_rate = 100};
    fx f = fx_open("slowprobe", cfg);
    ck_assert_int_eq(cb_trip(f.b), CB_CLOSED);
    advance(&f, RESET);
    cb_permit p = ACQ(f.b, CB_PROBE);
    advance(&f, 500);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_CLOSED);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_WINDOW(f.b, 1, 0, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* The window restarts when a probe's success closes the circuit: calls
 * counted before the trip never count again (reset_timeout 100 < window,
 * so they have not aged out). */
START_TEST(test_window_restarts_on_probe_success)
{
    cb_config cfg = rate_cfg(50, 4);
    cfg.reset_timeout_ms = 100;
    fx f = fx_open("rsprobe", cfg);
    RUN(&f, "FFF");
    CK_WINDOW(f.b, 3, 3, 0);
    ck_assert_int_eq(cb_trip(f.b), CB_CLOSED);
    advance(&f, 100);
    cb_permit p = ACQ(f.b, CB_PROBE);
    cb_success(f.b, &p);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S"); /* with the old calls: 4 calls, 75% */
    CK_WINDOW(f.b, 1, 0, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* The window restarts on cb_reset, from CLOSED too (in a later bucket). */
START_TEST(test_window_restarts_on_reset)
{
    fx f = fx_open("rsreset", rate_cfg(50, 4));
    RUN(&f, "FFF");
    advance(&f, 100);
    ck_assert_int_eq(cb_reset(f.b), CB_CLOSED);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_WINDOW(f.b, 1, 0, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* The header's promise holds within one bucket too: calls counted before
 * cb_reset never count again, even when the reset comes in their bucket. */
START_TEST(test_window_restarts_on_reset_same_bucket)
{
    fx f = fx_open("rsresetb", rate_cfg(50, 4));
    RUN(&f, "FFF");
    ck_assert_int_eq(cb_reset(f.b), CB_CLOSED);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_WINDOW(f.b, 1, 0, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* Two closes within one ms (review): the second generation's window
 * must not be laid on the first one's grid, or the failures the first
 * counted at that ms trip the second without a failure of its own. */
START_TEST(test_window_restarts_on_two_resets_same_ms)
{
    cb_config cfg = rate_cfg(50, 4);
    cfg.failure_threshold = 3;
    fx f = fx_open("rs2reset", cfg);
    ck_assert_int_eq(cb_reset(f.b), CB_CLOSED);
    RUN(&f, "FFF"); /* the third trips by the threshold */
    CK_STATE(f.b, CB_OPEN);
    ck_assert_int_eq(cb_reset(f.b), CB_OPEN);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "SS");
    CK_STATE(f.b, CB_CLOSED);
    CK_WINDOW(f.b, 2, 0, 0);
    fx_done(&f);
}
END_TEST

/* The same after a probe's success, when reset_timeout_ms is shorter than
 * a bucket: the failures that tripped the circuit by rate must not trip
 * it again on the first success after it closed. */
START_TEST(test_window_restarts_on_probe_success_same_bucket)
{
    cb_config cfg = rate_cfg(50, 4);
    cfg.reset_timeout_ms = 10; /* buckets of 100 ms */
    fx f = fx_open("rsprobeb", cfg);
    RUN(&f, "FFFF");
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    advance(&f, 10);
    cb_permit p = ACQ(f.b, CB_PROBE);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_CLOSED);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S"); /* with the old calls: 5 calls, 80% failures */
    CK_STATE(f.b, CB_CLOSED);
    CK_WINDOW(f.b, 1, 0, 0);
    fx_done(&f);
}
END_TEST

/* Leaving METRICS_ONLY (CB_MODE_NORMAL) starts a new window. */
START_TEST(test_window_restarts_on_leaving_mode)
{
    fx f = fx_open("rsmode", rate_cfg(50, 4));
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    RUN(&f, "FFF");
    CK_WINDOW(f.b, 3, 3, 0);
    advance(&f, 100);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_METRICS_ONLY);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_WINDOW(f.b, 1, 0, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* Entering METRICS_ONLY starts a new window too: calls of NORMAL before
 * it do not count there. */
START_TEST(test_window_restarts_on_entering_metrics_only)
{
    fx f = fx_open("rsmetrics", rate_cfg(50, 4));
    RUN(&f, "FFF");
    advance(&f, 100);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_WINDOW(f.b, 1, 0, 0);
    fx_done(&f);
}
END_TEST

/* Nothing counts while DISABLED, and leaving DISABLED starts empty.
 * (cb_info shows no window in DISABLED; calls counted there would show
 * after leaving it in the same bucket.) */
START_TEST(test_window_not_counted_while_disabled)
{
    fx f = fx_open("rsdis", rate_cfg(50, 2));
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_DISABLED), CB_MODE_NORMAL);
    RUN(&f, "FFFFFS");
    CK_WINDOW(f.b, 0, 0, 0);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_DISABLED);
    CK_WINDOW(f.b, 0, 0, 0);
    RUN(&f, "S");
    CK_WINDOW(f.b, 1, 0, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------- backoff */

/* Trip a threshold-1 circuit, then fail `n` probes in a row; before each
 * probe, cb_info shows the open period and step of the table, and the
 * probe comes exactly when that period has passed since the trip or the
 * last failed probe (not a ms earlier). */
#define MAX_STEPS 20
struct backoff_row {
    uint32_t reset, mult, cap;
    unsigned n;
    uint64_t period[MAX_STEPS];
    uint32_t step[MAX_STEPS];
};

static void check_open_period(int line, fx *f, uint64_t period, uint32_t step, unsigned k)
{
    cb_info i = info_at(line, f->b);
    ck_assert_msg(i.open_timeout_ms == period && i.backoff_step == step,
                  "line %d, probe %u: open_timeout_ms %llu step %u, want %llu step %u", line, k,
                  (unsigned long long)i.open_timeout_ms, i.backoff_step, (unsigned long long)period, step);
}

#define BACKOFF_RUN(row) backoff_run_at(__LINE__, (row))
static void backoff_run_at(int line, const struct backoff_row *row)
{
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = row->reset, .probe_timeout_ms = 1,
                     .backoff_multiplier_pct = row->mult, .max_reset_timeout_ms = row->cap};
    fx f = fx_open("backoff", cfg);
    RUN(&f, "F");
    for (unsigned k = 0; k < row->n; k++) {
        uint64_t period = row->period[k];
        state_at(line, f.b, CB_OPEN);
        check_open_period(line, &f, period, row->step[k], k);
        cb_info i = info_at(line, f.b);
        ck_assert_msg(i.ms_until_probe == period, "line %d, probe %u: ms_until_probe %llu, want %llu", line, k,
                      (unsigned long long)i.ms_until_probe, (unsigned long long)period);
        advance(&f, period - 1);
        acq_at(line, f.b, CB_REJECTED);
        advance(&f, 1);
        cb_permit p = acq_at(line, f.b, CB_PROBE);
        /* HALF_OPEN keeps the step. */
        check_open_period(line, &f, period, row->step[k], k);
        cb_failure(f.b, &p);
    }
    /* The last failed probe's step, and the period that goes with it. */
    check_open_period(line, &f, row->period[row->n], row->step[row->n], row->n);
    fx_done(&f);
}

/* 200%: 1 s, 2 s, 4 s, ... */
START_TEST(test_backoff_doubles_open_period)
{
    static const struct backoff_row row = {
        1000, 200, 0, 7, {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000}, {0, 1, 2, 3, 4, 5, 6, 7}};
    BACKOFF_RUN(&row);
}
END_TEST

/* Integer arithmetic step by step: p = p x mult / 100, rounded down. */
START_TEST(test_backoff_150_pct_in_integers)
{
    static const struct backoff_row row = {1000, 150, 0, 5, {1000, 1500, 2250, 3375, 5062, 7593}, {0, 1, 2, 3, 4, 5}};
    BACKOFF_RUN(&row);
}
END_TEST

/* A period too short for the multiplier to move it in integers still
 * grows by at least 1 ms per failed probe (review: 1 ms x 150% stayed at
 * 1 ms while the step climbed). */
START_TEST(test_backoff_short_period_grows)
{
    static const struct backoff_row row = {1, 150, 0, 5, {1, 2, 3, 4, 6, 9}, {0, 1, 2, 3, 4, 5}};
    BACKOFF_RUN(&row);
}
END_TEST

/* The cap: 1000 x 3^k up to 10000; the step stops once the period is at
 * the cap, the period stays there. */
START_TEST(test_backoff_capped_by_max_reset_timeout)
{
    static const struct backoff_row row = {
        1000, 300, 10000, 6, {1000, 3000, 9000, 10000, 10000, 10000, 10000}, {0, 1, 2, 3, 3, 3, 3}};
    BACKOFF_RUN(&row);
}
END_TEST

/* The default cap is 300000 ms. */
START_TEST(test_backoff_default_cap)
{
    static const struct backoff_row row = {
        100000, 200, 0, 4, {100000, 200000, 300000, 300000, 300000}, {0, 1, 2, 2, 2}};
    BACKOFF_RUN(&row);
}
END_TEST

/* A cap below reset_timeout_ms: the period never goes below
 * reset_timeout_ms (and never grows). */
START_TEST(test_backoff_cap_never_below_reset_timeout)
{
    static const struct backoff_row row = {5000, 200, 2000, 3, {5000, 5000, 5000, 5000}, {0, 0, 0, 0}};
    BACKOFF_RUN(&row);
}
END_TEST

/* Multiplier 100 and 0: backoff off, the period stays reset_timeout_ms. */
START_TEST(test_backoff_off)
{
    static const struct backoff_row rows[] = {
        {1000, 100, 0, 3, {1000, 1000, 1000, 1000}, {0, 0, 0, 0}},
        {1000, 0, 0, 3, {1000, 1000, 1000, 1000}, {0, 0, 0, 0}},
    };
    BACKOFF_RUN(&rows[_i]);
}
END_TEST

/* At most CB_BACKOFF_STEPS_MAX failed probes grow the period (the cap is
 * far away: 1 ms x 2^15 = 32768 ms < 300000); then it stays. */
START_TEST(test_backoff_steps_max)
{
    struct backoff_row row = {1, 200, 0, CB_BACKOFF_STEPS_MAX + 3, {0}, {0}};
    ck_assert_uint_le(CB_BACKOFF_STEPS_MAX + 4, MAX_STEPS);
    for (unsigned k = 0; k <= row.n; k++) {
        uint32_t s = k < CB_BACKOFF_STEPS_MAX ? k : CB_BACKOFF_STEPS_MAX;
        row.step[k] = s;
        row.period[k] = UINT64_C(1) << s;
    }
    ck_assert_uint_eq(row.period[row.n], 32768);
    BACKOFF_RUN(&row);
}
END_TEST

/* Open a doubling circuit (reset 1000) and fail two probes: OPEN at step 2
 * (period 4000), failed at the current time. */
static fx backoff_at_step2(const char *tag)
{
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = 1000, .backoff_multiplier_pct = 200};
    fx f = fx_open(tag, cfg);
    RUN(&f, "F");
    for (uint64_t period = 1000; period <= 2000; period *= 2) {
        advance(&f, period);
        cb_permit p = ACQ(f.b, CB_PROBE);
        cb_failure(f.b, &p);
    }
    check_open_period(__LINE__, &f, 4000, 2, 2);
    return f;
}

START_TEST(test_backoff_step_reset_by_probe_success)
{
    fx f = backoff_at_step2("bosucc");
    advance(&f, 4000);
    cb_permit p = ACQ(f.b, CB_PROBE);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_CLOSED);
    check_open_period(__LINE__, &f, 1000, 0, 0);
    RUN(&f, "F"); /* a trip from CLOSED starts at reset_timeout_ms */
    check_open_period(__LINE__, &f, 1000, 0, 0);
    advance(&f, 999);
    ACQ(f.b, CB_REJECTED);
    advance(&f, 1);
    ACQ(f.b, CB_PROBE);
    fx_done(&f);
}
END_TEST

START_TEST(test_backoff_step_reset_by_cb_reset)
{
    fx f = backoff_at_step2("boreset");
    ck_assert_int_eq(cb_reset(f.b), CB_OPEN);
    check_open_period(__LINE__, &f, 1000, 0, 0);
    RUN(&f, "F");
    check_open_period(__LINE__, &f, 1000, 0, 0);
    advance(&f, 1000);
    ACQ(f.b, CB_PROBE);
    fx_done(&f);
}
END_TEST

/* cb_reset from HALF_OPEN (a probe in flight) also returns the step. */
START_TEST(test_backoff_step_reset_by_cb_reset_half_open)
{
    fx f = backoff_at_step2("boreseth");
    advance(&f, 4000);
    ACQ(f.b, CB_PROBE);
    ck_assert_int_eq(cb_reset(f.b), CB_HALF_OPEN);
    check_open_period(__LINE__, &f, 1000, 0, 0);
    RUN(&f, "F");
    check_open_period(__LINE__, &f, 1000, 0, 0);
    fx_done(&f);
}
END_TEST

/* Leaving a mode closes the circuit: the step is gone with it. */
START_TEST(test_backoff_step_reset_by_leaving_mode)
{
    fx f = backoff_at_step2("bomode");
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_FORCED_OPEN), CB_MODE_NORMAL);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_FORCED_OPEN);
    CK_STATE(f.b, CB_CLOSED);
    check_open_period(__LINE__, &f, 1000, 0, 0);
    RUN(&f, "F");
    check_open_period(__LINE__, &f, 1000, 0, 0);
    advance(&f, 999);
    ACQ(f.b, CB_REJECTED);
    advance(&f, 1);
    ACQ(f.b, CB_PROBE);
    fx_done(&f);
}
END_TEST

/* cb_trip of an OPEN circuit keeps the step, with a fresh stamp. */
START_TEST(test_backoff_cb_trip_keeps_step_open)
{
    fx f = backoff_at_step2("botripo");
    advance(&f, 3000);
    ck_assert_int_eq(cb_trip(f.b), CB_OPEN);
    check_open_period(__LINE__, &f, 4000, 2, 2);
    advance(&f, 3999);
    ACQ(f.b, CB_REJECTED);
    advance(&f, 1);
    cb_permit p = ACQ(f.b, CB_PROBE);
    cb_failure(f.b, &p);
    check_open_period(__LINE__, &f, 8000, 3, 3);
    fx_done(&f);
}
END_TEST

/* cb_trip of a HALF_OPEN circuit keeps the step. */
START_TEST(test_backoff_cb_trip_keeps_step_half_open)
{
    fx f = backoff_at_step2("botriph");
    advance(&f, 4000);
    cb_permit p = ACQ(f.b, CB_PROBE);
    ck_assert_int_eq(cb_trip(f.b), CB_HALF_OPEN);
    check_open_period(__LINE__, &f, 4000, 2, 2);
    cb_failure(f.b, &p); /* late */
    check_open_period(__LINE__, &f, 4000, 2, 2);
    advance(&f, 3999);
    ACQ(f.b, CB_REJECTED);
    advance(&f, 1);
    ACQ(f.b, CB_PROBE);
    fx_done(&f);
}
END_TEST

/* cb_trip from CLOSED starts at step 0. */
START_TEST(test_backoff_cb_trip_from_closed_step0)
{
    fx f = backoff_at_step2("botripc");
    ck_assert_int_eq(cb_reset(f.b), CB_OPEN);
    ck_assert_int_eq(cb_trip(f.b), CB_CLOSED);
    check_open_period(__LINE__, &f, 1000, 0, 0);
    fx_done(&f);
}
END_TEST

/* A probe released without a verdict, or whose lease expires, leaves the
 * step as it was: the next failed probe takes it one further. */
START_TEST(test_backoff_release_keeps_step)
{
    fx f = backoff_at_step2("borel");
    advance(&f, 4000);
    cb_permit p = ACQ(f.b, CB_PROBE);
    cb_release(f.b, &p);
    CK_STATE(f.b, CB_HALF_OPEN);
    check_open_period(__LINE__, &f, 4000, 2, 2);
    p = ACQ(f.b, CB_PROBE);
    cb_failure(f.b, &p);
    check_open_period(__LINE__, &f, 8000, 3, 3);
    fx_done(&f);
}
END_TEST

START_TEST(test_backoff_lease_expiry_keeps_step)
{
    fx f = backoff_at_step2("bolease");
    advance(&f, 4000);
    cb_permit old = ACQ(f.b, CB_PROBE);
    advance(&f, INFO(f.b).config.probe_timeout_ms);
    cb_permit p = ACQ(f.b, CB_PROBE); /* lease expired */
    check_open_period(__LINE__, &f, 4000, 2, 2);
    cb_release(f.b, &old);
    cb_failure(f.b, &p);
    check_open_period(__LINE__, &f, 8000, 3, 3);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------ modes */

/* Check one mode-change transition: cb_set_mode returned `was`, one event
 * and one new history entry (reason mode, the mode, the apparent states),
 * generation one up. */
#define CK_MODE_CHANGE(f, m, rc, was, from, to, before) mode_change_at(__LINE__, (f), (m), (rc), (was), (from), (to), (before))
static void mode_change_at(int line, fx *f, cb_mode m, int rc, cb_mode was, cb_state from, cb_state to,
                           const cb_info *before)
{
    ck_assert_msg(rc == (int)was, "line %d: cb_set_mode(%s) returned %d, want %d", line, cb_mode_name(m), rc,
                  (int)was);
    cb_info i = info_at(line, f->b);
    ck_assert_msg(i.mode == m, "line %d: cb_info.mode %s, want %s", line, cb_mode_name(i.mode), cb_mode_name(m));
    ck_assert_msg(i.generation == before->generation + 1, "line %d: generation %u after %u", line, i.generation,
                  before->generation);
    uint32_t want_len = before->history_len < CB_HISTORY_MAX ? before->history_len + 1 : CB_HISTORY_MAX;
    ck_assert_msg(i.history_len == want_len, "line %d: history_len %u, want %u", line, i.history_len, want_len);
    transition_at(line, &i.history[0], from, to, CB_REASON_MODE);
    ck_assert_msg(i.history[0].mode == m && i.history[0].generation == i.generation && !i.history[0].would_open,
                  "line %d: history[0] mode %s generation %u would_open %u", line, cb_mode_name(i.history[0].mode),
                  i.history[0].generation, i.history[0].would_open);
    ck_assert_msg(f->ev->n >= 1, "line %d: no event", line);
    const cb_transition *t = &f->ev->e[f->ev->n - 1].transition;
    transition_at(line, t, from, to, CB_REASON_MODE);
    ck_assert_msg(t->mode == m && t->generation == i.generation && !t->would_open && t->pid == (int32_t)getpid(),
                  "line %d: event mode %s generation %u would_open %u pid %d", line, cb_mode_name(t->mode),
                  t->generation, t->would_open, (int)t->pid);
}

/* The apparent state of each mode. */
static cb_state apparent(cb_mode m) { return m == CB_MODE_FORCED_OPEN ? CB_OPEN : CB_CLOSED; }

START_TEST(test_mode_disabled_allows_all_never_trips)
{
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = RESET, .failure_rate = 1, .minimum_calls = 1,
                     .window_ms = WIN, .slow_call_ms = 1, .slow_call_rate = 1};
    fx f = fx_open("disabled", cfg);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_DISABLED), CB_MODE_NORMAL);
    unsigned events = f.ev->n;
    RUN(&f, "FFFFFFFFFF");
    TIMED(&f, 1000, 1);
    TIMED(&f, 1000, 0);
    RUN(&f, "SR");
    CK_STATE(f.b, CB_CLOSED);
    cb_info i = INFO(f.b);
    ck_assert_int_eq(i.mode, CB_MODE_DISABLED);
    ck_assert_uint_eq(i.failures, 0);
    CK_WINDOW(f.b, 0, 0, 0);
    /* The counters count. */
    ck_assert_uint_eq(i.counters.allowed, 14);
    ck_assert_uint_eq(i.counters.failures, 11);
    ck_assert_uint_eq(i.counters.successes, 2);
    ck_assert_uint_eq(i.counters.released, 1);
    ck_assert_uint_eq(i.counters.trips, 0);
    ck_assert_uint_eq(i.counters.rejected, 0);
    ck_assert_uint_eq(f.ev->n, events);
    fx_done(&f);
}
END_TEST

/* DISABLED set on an OPEN circuit: every call allowed at once. */
START_TEST(test_mode_disabled_from_open)
{
    fx f = fx_open("disopen", (cb_config){.failure_threshold = 1, .reset_timeout_ms = RESET});
    RUN(&f, "F");
    CK_STATE(f.b, CB_OPEN);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_DISABLED), CB_MODE_NORMAL);
    CK_STATE(f.b, CB_CLOSED);
    RUN(&f, "FFF");
    ck_assert_uint_eq(INFO(f.b).ms_until_probe, 0);
    fx_done(&f);
}
END_TEST

START_TEST(test_mode_forced_open_rejects_all)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = RESET, .probe_timeout_ms = 10};
    fx f = fx_open("forced", cfg);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_FORCED_OPEN), CB_MODE_NORMAL);
    unsigned events = f.ev->n;
    for (int k = 0; k < 5; k++) {
        ACQ(f.b, CB_REJECTED);
        CK_STATE(f.b, CB_OPEN);
        cb_info i = INFO(f.b);
        ck_assert_uint_eq(i.ms_until_probe, 0);
        ck_assert_int_eq(i.mode, CB_MODE_FORCED_OPEN);
        advance(&f, RESET * 100); /* way past every timeout: still no probe */
    }
    cb_info i = INFO(f.b);
    ck_assert_uint_eq(i.counters.rejected, 5);
    ck_assert_uint_eq(i.counters.allowed, 0);
    ck_assert_uint_eq(i.counters.probes, 0);
    ck_assert_uint_eq(f.ev->n, events);
    fx_done(&f);
}
END_TEST

/* FORCED_OPEN set while a probe is out: the probe's report is late, the
 * circuit stays forced open. */
START_TEST(test_mode_forced_open_from_half_open)
{
    fx f = fx_open("forcedho", (cb_config){.failure_threshold = 1, .reset_timeout_ms = RESET});
    RUN(&f, "F");
    advance(&f, RESET);
    cb_permit p = ACQ(f.b, CB_PROBE);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_FORCED_OPEN), CB_MODE_NORMAL);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_OPEN);
    ck_assert_uint_eq(INFO(f.b).counters.late, 1);
    advance(&f, RESET * 10);
    ACQ(f.b, CB_REJECTED);
    fx_done(&f);
}
END_TEST

/* METRICS_ONLY, threshold rule: never rejects, the count is kept, and the
 * failure that reaches the threshold announces one would-open event (not
 * in the history, generation unchanged); more failures announce nothing;
 * a success clears the count and the mark, and the next crossing
 * announces again. */
START_TEST(test_mode_metrics_only_threshold_would_open_once_per_crossing)
{
    fx f = fx_open("metthr", (cb_config){.failure_threshold = 3, .reset_timeout_ms = RESET});
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    cb_info entered = INFO(f.b);
    ck_assert_uint_eq(f.ev->n, 1);

    RUN(&f, "FF");
    ck_assert_uint_eq(INFO(f.b).failures, 2);
    ck_assert_uint_eq(f.ev->n, 1);
    RUN(&f, "F");
    ck_assert_uint_eq(f.ev->n, 2);
    const cb_transition *t = &f.ev->e[1].transition;
    CK_TRANSITION(t, CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD);
    ck_assert_uint_eq(t->would_open, 1);
    ck_assert_int_eq(t->mode, CB_MODE_METRICS_ONLY);
    ck_assert_uint_eq(t->generation, entered.generation);
    ck_assert_uint_eq(t->failures, 3);
    ck_assert_int_eq(t->pid, (int32_t)getpid());

    RUN(&f, "FFFFF"); /* still crossed: nothing more */
    ck_assert_uint_eq(f.ev->n, 2);
    CK_STATE(f.b, CB_CLOSED);
    cb_info i = INFO(f.b);
    ck_assert_uint_eq(i.failures, 8);
    ck_assert_int_eq(i.mode, CB_MODE_METRICS_ONLY);

    RUN(&f, "SFF"); /* cleared; 2 < 3 */
    ck_assert_uint_eq(f.ev->n, 2);
    RUN(&f, "F");
    ck_assert_uint_eq(f.ev->n, 3);
    CK_TRANSITION(&f.ev->e[2].transition, CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD);
    ck_assert_uint_eq(f.ev->e[2].transition.would_open, 1);

    i = INFO(f.b);
    ck_assert_uint_eq(i.generation, entered.generation);
    ck_assert_uint_eq(i.history_len, entered.history_len);
    ck_assert_int_eq(i.history[0].reason, CB_REASON_MODE);
    ck_assert_uint_eq(i.counters.trips, 0);
    ck_assert_uint_eq(i.counters.failures, 11);
    ck_assert_uint_eq(i.counters.rejected, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* METRICS_ONLY, failure rate rule: the window is kept as in CLOSED; the
 * report that makes the rule true announces once; while it stays true,
 * nothing more; once found false, the next crossing announces again. */
START_TEST(test_mode_metrics_only_rate_would_open_once_per_crossing)
{
    fx f = fx_open("metrate", rate_cfg(50, 4));
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    cb_info entered = INFO(f.b);
    RUN(&f, "FSF");
    ck_assert_uint_eq(f.ev->n, 1);
    RUN(&f, "S"); /* 4 calls, 50% */
    ck_assert_uint_eq(f.ev->n, 2);
    const cb_transition *t = &f.ev->e[1].transition;
    CK_TRANSITION(t, CB_CLOSED, CB_OPEN, CB_REASON_FAILURE_RATE);
    ck_assert_uint_eq(t->would_open, 1);
    ck_assert_int_eq(t->mode, CB_MODE_METRICS_ONLY);
    ck_assert_uint_eq(t->generation, entered.generation);
    CK_WINDOW(f.b, 4, 2, 0);

    RUN(&f, "FS"); /* 6 calls, 3 failures: still true */
    ck_assert_uint_eq(f.ev->n, 2);
    RUN(&f, "S"); /* 7 calls, 3 failures: false, the mark clears */
    ck_assert_uint_eq(f.ev->n, 2);
    RUN(&f, "F"); /* 8 calls, 4 failures: true again */
    ck_assert_uint_eq(f.ev->n, 3);
    CK_TRANSITION(&f.ev->e[2].transition, CB_CLOSED, CB_OPEN, CB_REASON_FAILURE_RATE);
    ck_assert_uint_eq(f.ev->e[2].transition.would_open, 1);

    cb_info i = INFO(f.b);
    ck_assert_uint_eq(i.history_len, entered.history_len);
    ck_assert_uint_eq(i.generation, entered.generation);
    ck_assert_uint_eq(i.counters.trips, 0);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* METRICS_ONLY, slow-call rate rule: one would-open per crossing too. */
START_TEST(test_mode_metrics_only_slow_rate_would_open)
{
    cb_config cfg = {.failure_threshold = BIG, .reset_timeout_ms = RESET, .minimum_calls = 2,
                     .window_ms = WIN, .slow_call_ms = 100, .slow_call_rate = 50};
    fx f = fx_open("metslow", cfg);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    TIMED(&f, 10, 0);
    ck_assert_uint_eq(f.ev->n, 1);
    TIMED(&f, 101, 0); /* 2 calls, 1 slow */
    ck_assert_uint_eq(f.ev->n, 2);
    CK_TRANSITION(&f.ev->e[1].transition, CB_CLOSED, CB_OPEN, CB_REASON_SLOW_CALL_RATE);
    ck_assert_uint_eq(f.ev->e[1].transition.would_open, 1);
    TIMED(&f, 101, 0);
    ck_assert_uint_eq(f.ev->n, 2);
    CK_WINDOW(f.b, 3, 0, 2);
    CK_STATE(f.b, CB_CLOSED);
    fx_done(&f);
}
END_TEST

/* The threshold and a rate rule crossing on one report in METRICS_ONLY:
 * each announced once (each rule has its own mark). */
START_TEST(test_mode_metrics_only_two_rules_one_report)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = RESET, .failure_rate = 100,
                     .minimum_calls = 3, .window_ms = WIN};
    fx f = fx_open("mettwo", cfg);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    RUN(&f, "FFF");
    ck_assert_uint_eq(f.ev->n, 3);
    int seen_thr = 0, seen_rate = 0;
    for (unsigned k = 1; k < 3; k++) {
        ck_assert_uint_eq(f.ev->e[k].transition.would_open, 1);
        seen_thr += f.ev->e[k].transition.reason == CB_REASON_THRESHOLD;
        seen_rate += f.ev->e[k].transition.reason == CB_REASON_FAILURE_RATE;
    }
    ck_assert_int_eq(seen_thr, 1);
    ck_assert_int_eq(seen_rate, 1);
    RUN(&f, "FF");
    ck_assert_uint_eq(f.ev->n, 3);
    fx_done(&f);
}
END_TEST

static const cb_mode modes[] = {CB_MODE_DISABLED, CB_MODE_FORCED_OPEN, CB_MODE_METRICS_ONLY};

/* Leaving each mode resumes CLOSED with a zero count: two failures before
 * the mode (threshold 3) and two in it (METRICS_ONLY counts them) are
 * forgotten; the threshold counts from 0 again. */
START_TEST(test_mode_leaving_resumes_closed_count_zero)
{
    cb_mode m = modes[_i];
    fx f = fx_open("leave", (cb_config){.failure_threshold = 3, .reset_timeout_ms = RESET});
    RUN(&f, "FF");
    ck_assert_int_eq(cb_set_mode(f.b, m), CB_MODE_NORMAL);
    if (m != CB_MODE_FORCED_OPEN)
        RUN(&f, "FF");
    cb_info before = INFO(f.b);
    int rc = cb_set_mode(f.b, CB_MODE_NORMAL);
    CK_MODE_CHANGE(&f, CB_MODE_NORMAL, rc, m, apparent(m), CB_CLOSED, &before);
    CK_STATE(f.b, CB_CLOSED);
    ck_assert_uint_eq(INFO(f.b).failures, 0);
    RUN(&f, "FF");
    CK_STATE(f.b, CB_CLOSED);
    RUN(&f, "F");
    CK_STATE(f.b, CB_OPEN);
    fx_done(&f);
}
END_TEST

/* Leaving FORCED_OPEN resumes CLOSED, also when it was set on an OPEN
 * circuit long before its timeout. */
START_TEST(test_mode_leaving_forced_open_from_open)
{
    fx f = fx_open("leaveopen", (cb_config){.failure_threshold = 1, .reset_timeout_ms = RESET});
    RUN(&f, "F");
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_FORCED_OPEN), CB_MODE_NORMAL);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_FORCED_OPEN);
    CK_STATE(f.b, CB_CLOSED);
    RUN(&f, "S");
    fx_done(&f);
}
END_TEST

/* Entering each mode from NORMAL: one transition, reason mode, the mode
 * in history and event; from/to are the apparent states. */
START_TEST(test_mode_change_is_one_transition)
{
    cb_mode m = modes[_i];
    fx f = fx_open("change", (cb_config){.failure_threshold = 3, .reset_timeout_ms = RESET});
    cb_info before = INFO(f.b);
    int rc = cb_set_mode(f.b, m);
    CK_MODE_CHANGE(&f, m, rc, CB_MODE_NORMAL, CB_CLOSED, apparent(m), &before);
    ck_assert_uint_eq(f.ev->n, 1);
    CK_STATE(f.b, apparent(m));
    fx_done(&f);
}
END_TEST

/* From one mode straight to another: one transition, returns the old one. */
START_TEST(test_mode_change_between_modes)
{
    fx f = fx_open("between", (cb_config){.failure_threshold = 3, .reset_timeout_ms = RESET});
    cb_mode prev = CB_MODE_NORMAL;
    static const cb_mode seq[] = {CB_MODE_DISABLED, CB_MODE_FORCED_OPEN, CB_MODE_METRICS_ONLY,
                                  CB_MODE_DISABLED, CB_MODE_METRICS_ONLY, CB_MODE_FORCED_OPEN};
    for (size_t k = 0; k < N(seq); k++) {
        cb_info before = INFO(f.b);
        int rc = cb_set_mode(f.b, seq[k]);
        CK_MODE_CHANGE(&f, seq[k], rc, prev, apparent(prev), apparent(seq[k]), &before);
        ck_assert_uint_eq(f.ev->n, k + 1);
        prev = seq[k];
    }
    fx_done(&f);
}
END_TEST

/* Setting the mode in force changes nothing: no transition, no event,
 * same generation; it returns that mode. NORMAL on an OPEN circuit does
 * not close it. */
START_TEST(test_mode_same_twice_no_transition)
{
    fx f = fx_open("same", (cb_config){.failure_threshold = 1, .reset_timeout_ms = RESET});
    for (size_t k = 0; k < N(modes); k++) {
        ck_assert_int_ge(cb_set_mode(f.b, modes[k]), 0);
        cb_info before = INFO(f.b);
        unsigned events = f.ev->n;
        ck_assert_int_eq(cb_set_mode(f.b, modes[k]), modes[k]);
        cb_info i = INFO(f.b);
        ck_assert_uint_eq(i.generation, before.generation);
        ck_assert_uint_eq(i.history_len, before.history_len);
        ck_assert_uint_eq(f.ev->n, events);
        ck_assert_int_eq(i.mode, modes[k]);
    }
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_METRICS_ONLY);
    RUN(&f, "F");
    CK_STATE(f.b, CB_OPEN);
    cb_info before = INFO(f.b);
    unsigned events = f.ev->n;
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_NORMAL);
    CK_STATE(f.b, CB_OPEN);
    ck_assert_uint_eq(INFO(f.b).generation, before.generation);
    ck_assert_uint_eq(f.ev->n, events);
    fx_done(&f);
}
END_TEST

/* cb_reset and cb_trip in a mode: CB_EMODE, nothing changes. */
START_TEST(test_mode_reset_trip_refused)
{
    cb_mode m = modes[_i];
    fx f = fx_open("emode", (cb_config){.failure_threshold = 3, .reset_timeout_ms = RESET});
    ck_assert_int_eq(cb_set_mode(f.b, m), CB_MODE_NORMAL);
    if (m == CB_MODE_METRICS_ONLY)
        RUN(&f, "FF");
    cb_info before = INFO(f.b);
    unsigned events = f.ev->n;
    ck_assert_int_eq(cb_reset(f.b), CB_EMODE);
    ck_assert_int_eq(cb_trip(f.b), CB_EMODE);
    cb_info i = INFO(f.b);
    ck_assert_int_eq(i.mode, m);
    ck_assert_int_eq(i.state, before.state);
    ck_assert_uint_eq(i.failures, before.failures);
    ck_assert_uint_eq(i.generation, before.generation);
    ck_assert_uint_eq(i.history_len, before.history_len);
    ck_assert_uint_eq(i.counters.trips, before.counters.trips);
    ck_assert_uint_eq(f.ev->n, events);
    ck_assert_str_ne(cb_strerror(CB_EMODE), cb_strerror(CB_ECORRUPT));
    fx_done(&f);
}
END_TEST

/* Permits issued before a mode change are late, whatever they report:
 * entering a mode, leaving it, and from one mode to another. */
START_TEST(test_mode_permits_from_before_are_late)
{
    static const struct {
        cb_mode from, to;
    } changes[] = {
        {CB_MODE_NORMAL, CB_MODE_DISABLED},       {CB_MODE_NORMAL, CB_MODE_FORCED_OPEN},
        {CB_MODE_NORMAL, CB_MODE_METRICS_ONLY},   {CB_MODE_DISABLED, CB_MODE_NORMAL},
        {CB_MODE_METRICS_ONLY, CB_MODE_NORMAL},   {CB_MODE_DISABLED, CB_MODE_METRICS_ONLY},
        {CB_MODE_METRICS_ONLY, CB_MODE_DISABLED}, {CB_MODE_DISABLED, CB_MODE_FORCED_OPEN},
    };
    for (size_t c = 0; c < N(changes); c++) {
        fx f = fx_open("latemode", (cb_config){.failure_threshold = 1, .reset_timeout_ms = RESET});
        if (changes[c].from != CB_MODE_NORMAL)
            ck_assert_int_eq(cb_set_mode(f.b, changes[c].from), CB_MODE_NORMAL);
        cb_permit p[3];
        for (int k = 0; k < 3; k++)
            p[k] = ACQ(f.b, CB_ALLOWED);
        ck_assert_int_eq(cb_set_mode(f.b, changes[c].to), changes[c].from);
        cb_info before = INFO(f.b);
        cb_failure(f.b, &p[0]);
        cb_success(f.b, &p[1]);
        cb_release(f.b, &p[2]);
        cb_info i = INFO(f.b);
        ck_assert_msg(i.counters.late == 3, "%s -> %s: %llu late, want 3", cb_mode_name(changes[c].from),
                      cb_mode_name(changes[c].to), (unsigned long long)i.counters.late);
        ck_assert_uint_eq(i.counters.failures, 0);
        ck_assert_uint_eq(i.counters.successes, 0);
        ck_assert_uint_eq(i.counters.released, 0);
        ck_assert_uint_eq(i.generation, before.generation);
        ck_assert_int_eq(i.state, apparent(changes[c].to));
        ck_assert_uint_eq(i.failures, 0);
        fx_done(&f);
    }
}
END_TEST

START_TEST(test_mode_bad_value_einval)
{
    fx f = fx_open("badmode", (cb_config){.failure_threshold = 3, .reset_timeout_ms = RESET});
    cb_info before = INFO(f.b);
    static const int bad[] = {4, 5, -1, 255, 0x7fffffff};
    for (size_t k = 0; k < N(bad); k++)
        ck_assert_int_eq(cb_set_mode(f.b, (cb_mode)bad[k]), -EINVAL);
    ck_assert_int_eq(cb_set_mode(NULL, CB_MODE_DISABLED), -EINVAL);
    cb_info i = INFO(f.b);
    ck_assert_int_eq(i.mode, CB_MODE_NORMAL);
    ck_assert_uint_eq(i.generation, before.generation);
    ck_assert_uint_eq(f.ev->n, 0);
    fx_done(&f);
}
END_TEST

/* Every process sees the mode on its next call: a second handle on the
 * circuit, with its own clock, is refused in FORCED_OPEN, allowed in
 * DISABLED. */
START_TEST(test_mode_seen_by_other_handle)
{
    fx f = fx_open("otherh", (cb_config){.failure_threshold = 1, .reset_timeout_ms = RESET});
    struct tl_clock *clk2 = tl_clock_new(T0 + 5000);
    cb_breaker *b2 = tl_open_clocked(f.name, NULL, clk2);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_FORCED_OPEN), CB_MODE_NORMAL);
    ACQ(b2, CB_REJECTED);
    ck_assert_int_eq(cb_get_state(b2), CB_OPEN);
    ck_assert_int_eq(cb_set_mode(b2, CB_MODE_DISABLED), CB_MODE_FORCED_OPEN);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    cb_failure(f.b, &p);
    ACQ(b2, CB_ALLOWED);
    cb_close(b2);
    munmap(clk2, sizeof *clk2);
    fx_done(&f);
}
END_TEST

/* ----------------------------------------------------------------- config */

/* Each row: a config with one field out of range. cb_open refuses it
 * (-EINVAL, nothing created), and cb_set_config refuses it on an existing
 * circuit (nothing changed). */
static const struct {
    const char *what;
    cb_config cfg;
} bad_configs[] = {
    {"failure_rate 101", {.failure_rate = 101}},
    {"failure_rate UINT32_MAX-1", {.failure_rate = UINT32_MAX - 1}},
    {"slow_call_rate 101", {.slow_call_ms = 100, .slow_call_rate = 101}},
    {"window_ms below min", {.failure_rate = 50, .window_ms = CB_WINDOW_MS_MIN - 1}},
    {"window_ms 1", {.failure_rate = 50, .window_ms = 1}},
    {"window_ms above max", {.failure_rate = 50, .window_ms = CB_WINDOW_MS_MAX + 1}},
    {"slow_call_ms above max", {.slow_call_ms = CB_SLOW_CALL_MS_MAX + 1}},
    {"backoff 1", {.backoff_multiplier_pct = 1}},
    {"backoff 99", {.backoff_multiplier_pct = 99}},
    {"backoff above max", {.backoff_multiplier_pct = CB_BACKOFF_MULTIPLIER_MAX + 1}},
};

START_TEST(test_config_out_of_range_open_einval)
{
    const char *name = tl_unique_name("badcfg");
    cb_breaker *b = NULL;
    ck_assert_msg(cb_open(name, &bad_configs[_i].cfg, &b) == -EINVAL, "%s: not -EINVAL", bad_configs[_i].what);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(cb_attach(name, &b), -ENOENT);
}
END_TEST

START_TEST(test_config_out_of_range_set_config_einval)
{
    cb_config good = {.failure_threshold = 7, .reset_timeout_ms = 2000, .failure_rate = 50, .minimum_calls = 20,
                      .window_ms = 5000, .slow_call_ms = 300, .slow_call_rate = 80,
                      .backoff_multiplier_pct = 200, .max_reset_timeout_ms = 60000};
    fx f = fx_open("badset", good);
    cb_config before = INFO(f.b).config;
    ck_assert_msg(cb_set_config(f.b, &bad_configs[_i].cfg) == -EINVAL, "%s: not -EINVAL", bad_configs[_i].what);
    cb_config after = INFO(f.b).config;
    ck_assert_msg(memcmp(&before, &after, sizeof before) == 0, "%s: the stored config changed", bad_configs[_i].what);
    fx_done(&f);
}
END_TEST

/* The edges of each range are accepted and stored as given. */
START_TEST(test_config_range_edges_accepted)
{
    static const cb_config ok[] = {
        {.failure_rate = 1, .slow_call_ms = 1, .slow_call_rate = 1, .window_ms = CB_WINDOW_MS_MIN,
         .backoff_multiplier_pct = 101},
        {.failure_rate = 100, .slow_call_ms = CB_SLOW_CALL_MS_MAX, .slow_call_rate = 100,
         .window_ms = CB_WINDOW_MS_MAX, .backoff_multiplier_pct = CB_BACKOFF_MULTIPLIER_MAX},
    };
    for (size_t k = 0; k < N(ok); k++) {
        const char *name = tl_unique_name("okcfg");
        cb_breaker *b = NULL;
        ck_assert_int_eq(cb_open(name, &ok[k], &b), CB_CREATED);
        cb_config c = INFO(b).config;
        ck_assert_uint_eq(c.failure_rate, ok[k].failure_rate);
        ck_assert_uint_eq(c.slow_call_ms, ok[k].slow_call_ms);
        ck_assert_uint_eq(c.slow_call_rate, ok[k].slow_call_rate);
        ck_assert_uint_eq(c.window_ms, ok[k].window_ms);
        ck_assert_uint_eq(c.backoff_multiplier_pct, ok[k].backoff_multiplier_pct);
        cb_close(b);
        ck_assert_int_eq(cb_unlink(name), 0);
    }
}
END_TEST

/* Every policy field zero: the defaults, shown resolved by cb_get_info. */
START_TEST(test_config_defaults_in_info)
{
    fx f = fx_open("cfgdef", (cb_config){0});
    cb_config c = INFO(f.b).config;
    ck_assert_uint_eq(c.failure_rate, 0);
    ck_assert_uint_eq(c.minimum_calls, CB_DEFAULT_MINIMUM_CALLS);
    ck_assert_uint_eq(c.minimum_calls, 10);
    ck_assert_uint_eq(c.window_ms, CB_DEFAULT_WINDOW_MS);
    ck_assert_uint_eq(c.window_ms, 10000);
    ck_assert_uint_eq(c.slow_call_ms, 0);
    ck_assert_uint_eq(c.slow_call_rate, CB_DEFAULT_SLOW_CALL_RATE);
    ck_assert_uint_eq(c.slow_call_rate, 100);
    ck_assert_uint_eq(c.backoff_multiplier_pct, 0);
    ck_assert_uint_eq(c.max_reset_timeout_ms, CB_DEFAULT_MAX_RESET_TIMEOUT_MS);
    ck_assert_uint_eq(c.max_reset_timeout_ms, 300000);
    cb_info i = INFO(f.b);
    ck_assert_int_eq(i.mode, CB_MODE_NORMAL);
    ck_assert_uint_eq(i.open_timeout_ms, CB_DEFAULT_RESET_TIMEOUT_MS);
    ck_assert_uint_eq(i.backoff_step, 0);
    fx_done(&f);
}
END_TEST

/* Backoff 100 (off) is stored as 0; reopening with 0 is the same config. */
START_TEST(test_config_backoff_100_stored_as_off)
{
    fx f = fx_open("cfg100", (cb_config){.backoff_multiplier_pct = 100});
    ck_assert_uint_eq(INFO(f.b).config.backoff_multiplier_pct, 0);
    cb_breaker *b2 = NULL;
    ck_assert_int_eq(cb_open(f.name, &(cb_config){0}, &b2), CB_OPENED);
    cb_close(b2);
    fx_done(&f);
}
END_TEST

/* cb_set_config: CB_CONFIG_OFF sets a field to its zero meaning (off or
 * the default), 0 keeps the stored value; only that field changes. */
static const cb_config all_set = {.failure_threshold = 7, .reset_timeout_ms = 2000, .probe_timeout_ms = 500,
                                  .failure_rate = 50, .minimum_calls = 20, .window_ms = 5000,
                                  .slow_call_ms = 300, .slow_call_rate = 80, .backoff_multiplier_pct = 200,
                                  .max_reset_timeout_ms = 60000};

static uint32_t *cfg_field(cb_config *c, unsigned k)
{
    uint32_t *fields[] = {&c->failure_threshold, &c->reset_timeout_ms, &c->failure_rate, &c->minimum_calls,
                          &c->window_ms, &c->slow_call_ms, &c->slow_call_rate, &c->backoff_multiplier_pct,
                          &c->max_reset_timeout_ms};
    return fields[k];
}
static const struct {
    const char *name;
    uint32_t off_value;
} off_fields[] = {
    {"failure_threshold", CB_DEFAULT_FAILURE_THRESHOLD},
    {"reset_timeout_ms", CB_DEFAULT_RESET_TIMEOUT_MS},
    {"failure_rate", 0},
    {"minimum_calls", CB_DEFAULT_MINIMUM_CALLS},
    {"window_ms", CB_DEFAULT_WINDOW_MS},
    {"slow_call_ms", 0},
    {"slow_call_rate", CB_DEFAULT_SLOW_CALL_RATE},
    {"backoff_multiplier_pct", 0},
    {"max_reset_timeout_ms", CB_DEFAULT_MAX_RESET_TIMEOUT_MS},
};

START_TEST(test_config_off_turns_field_off)
{
    fx f = fx_open("cfgoff", all_set);
    cb_config before = INFO(f.b).config;
    cb_config upd = {0};
    *cfg_field(&upd, _i) = CB_CONFIG_OFF;
    ck_assert_int_eq(cb_set_config(f.b, &upd), 1);
    cb_config after = INFO(f.b).config;
    for (unsigned k = 0; k < N(off_fields); k++) {
        uint32_t want = k == (unsigned)_i ? off_fields[k].off_value : *cfg_field(&before, k);
        ck_assert_msg(*cfg_field(&after, k) == want, "OFF %s: %s is %u, want %u", off_fields[_i].name,
                      off_fields[k].name, *cfg_field(&after, k), want);
    }
    ck_assert_uint_eq(after.probe_timeout_ms, 500);
    /* Once more: already so, nothing changes. */
    ck_assert_int_eq(cb_set_config(f.b, &upd), 0);
    fx_done(&f);
}
END_TEST

START_TEST(test_config_zero_keeps_stored)
{
    fx f = fx_open("cfgkeep", all_set);
    cb_config before = INFO(f.b).config;
    ck_assert_int_eq(cb_set_config(f.b, &(cb_config){0}), 0);
    cb_config after = INFO(f.b).config;
    ck_assert(memcmp(&before, &after, sizeof before) == 0);
    /* One field given: only it changes. */
    ck_assert_int_eq(cb_set_config(f.b, &(cb_config){.failure_rate = 30}), 1);
    after = INFO(f.b).config;
    ck_assert_uint_eq(after.failure_rate, 30);
    after.failure_rate = before.failure_rate;
    ck_assert(memcmp(&before, &after, sizeof before) == 0);
    fx_done(&f);
}
END_TEST

/* Turning the failure rate off by cb_set_config stops rate trips; turning
 * it on again by cb_set_config starts them. */
START_TEST(test_config_off_stops_rate_trips)
{
    fx f = fx_open("cfgoffrate", rate_cfg(50, 2));
    ck_assert_int_eq(cb_set_config(f.b, &(cb_config){.failure_rate = CB_CONFIG_OFF}), 1);
    RUN(&f, "FSFSFF");
    CK_NOT_TRIPPED(&f);
    ck_assert_int_eq(cb_set_config(f.b, &(cb_config){.failure_rate = 50}), 1);
    advance(&f, WIN); /* a fresh window */
    RUN(&f, "FS");
    CK_TRIPPED(&f, CB_REASON_FAILURE_RATE, 0);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------ names */

START_TEST(test_names_new_values)
{
    ck_assert_str_eq(cb_reason_name(CB_REASON_FAILURE_RATE), "failure_rate");
    ck_assert_str_eq(cb_reason_name(CB_REASON_SLOW_CALL_RATE), "slow_call_rate");
    ck_assert_str_eq(cb_reason_name(CB_REASON_MODE), "mode");
    ck_assert_str_eq(cb_reason_name((cb_reason)10), "unknown");
    ck_assert_str_eq(cb_mode_name(CB_MODE_NORMAL), "normal");
    ck_assert_str_eq(cb_mode_name(CB_MODE_DISABLED), "disabled");
    ck_assert_str_eq(cb_mode_name(CB_MODE_FORCED_OPEN), "forced_open");
    ck_assert_str_eq(cb_mode_name(CB_MODE_METRICS_ONLY), "metrics_only");
    ck_assert_str_eq(cb_mode_name((cb_mode)4), "unknown");
    ck_assert_str_eq(cb_mode_name((cb_mode)-1), "unknown");

    cb_transition t = {.from = CB_CLOSED, .to = CB_OPEN, .reason = CB_REASON_THRESHOLD, .would_open = 1,
                       .mode = CB_MODE_METRICS_ONLY};
    ck_assert_str_eq(cb_event_name(&t), "circuit_breaker_would_open");
    t.would_open = 0;
    ck_assert_str_eq(cb_event_name(&t), "circuit_breaker_opened");
    /* A mode event is named after the (apparent) state it enters. */
    cb_transition m = {.from = CB_CLOSED, .to = CB_OPEN, .reason = CB_REASON_MODE, .mode = CB_MODE_FORCED_OPEN};
    ck_assert_str_eq(cb_event_name(&m), "circuit_breaker_opened");
    m = (cb_transition){.from = CB_OPEN, .to = CB_CLOSED, .reason = CB_REASON_MODE, .mode = CB_MODE_NORMAL};
    ck_assert_str_eq(cb_event_name(&m), "circuit_breaker_closed");
}
END_TEST

static void ck_has(const char *line, const char *part)
{
    ck_assert_msg(strstr(line, part) != NULL, "\"%s\" not in \"%s\"", part, line);
}

/* cb_format_event of a would-open event and of a mode event, as recorded
 * from a real circuit. */
START_TEST(test_format_would_open_and_mode_events)
{
    fx f = fx_open("fmt", (cb_config){.failure_threshold = 2, .reset_timeout_ms = RESET});
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    RUN(&f, "FF");
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_FORCED_OPEN), CB_MODE_METRICS_ONLY);
    ck_assert_uint_eq(f.ev->n, 3);
    char line[512];

    /* Entering METRICS_ONLY. */
    int n = cb_format_event(&f.ev->e[0], line, sizeof line);
    ck_assert_int_eq(n, (int)strlen(line));
    ck_has(line, "event=circuit_breaker_closed ");
    ck_has(line, " from=CLOSED to=CLOSED ");
    ck_has(line, " reason=mode ");
    ck_has(line, " mode=metrics_only");
    ck_has(line, f.name);

    /* The would-open announcement. */
    n = cb_format_event(&f.ev->e[1], line, sizeof line);
    ck_assert_int_eq(n, (int)strlen(line));
    ck_has(line, "event=circuit_breaker_would_open ");
    ck_has(line, " from=CLOSED to=OPEN ");
    ck_has(line, " reason=threshold_reached ");
    ck_has(line, " failures=2 ");
    ck_has(line, " mode=metrics_only");

    /* METRICS_ONLY -> FORCED_OPEN. */
    n = cb_format_event(&f.ev->e[2], line, sizeof line);
    ck_assert_int_eq(n, (int)strlen(line));
    ck_has(line, "event=circuit_breaker_opened ");
    ck_has(line, " from=CLOSED to=OPEN ");
    ck_has(line, " reason=mode ");
    ck_has(line, " mode=forced_open");
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_FORCED_OPEN);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *policies_suite(void)
{
    Suite *s = suite_create("policies");
    TCase *tc;

    tc = tcase_create("window");
    tcase_add_test(tc, test_window_failure_counts_one_ms_before_window_end);
    tcase_add_test(tc, test_window_failure_aged_out_at_window_end);
    tcase_add_test(tc, test_window_bucket_boundary);
    tcase_add_test(tc, test_window_slot_reused_by_newer_bucket);
    suite_add_tcase(s, tc);

    tc = tcase_create("minimum");
    tcase_add_test(tc, test_minimum_calls_no_trip_below);
    tcase_add_test(tc, test_minimum_calls_trip_at_it_by_failure);
    tcase_add_test(tc, test_minimum_calls_trip_at_it_by_success);
    suite_add_tcase(s, tc);

    tc = tcase_create("rate");
    tcase_add_loop_test(tc, test_rate_at_threshold_trips_below_does_not, 0, N(rate_table));
    suite_add_tcase(s, tc);

    tc = tcase_create("slow");
    tcase_add_loop_test(tc, test_slow_call_is_longer_than_slow_call_ms, 0, N(slow_table));
    tcase_add_test(tc, test_slow_call_timed_from_acquire);
    tcase_add_test(tc, test_slow_failure_counts_as_both);
    tcase_add_test(tc, test_slow_call_rate_trips);
    tcase_add_test(tc, test_slow_call_rate_below_does_not_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("interplay");
    tcase_add_test(tc, test_interplay_threshold_first);
    tcase_add_test(tc, test_interplay_rate_first);
    tcase_add_test(tc, test_interplay_both_on_one_report_threshold_wins);
    tcase_add_test(tc, test_interplay_failure_rate_before_slow_rate);
    tcase_add_test(tc, test_interplay_rate_trip_then_recovery);
    suite_add_tcase(s, tc);

    tc = tcase_create("counted");
    tcase_add_test(tc, test_release_not_counted);
    tcase_add_test(tc, test_slow_release_not_counted);
    tcase_add_test(tc, test_late_reports_not_counted);
    tcase_add_test(tc, test_probe_reports_not_counted);
    tcase_add_test(tc, test_slow_probe_not_counted);
    tcase_add_test(tc, test_window_restarts_on_probe_success);
    tcase_add_test(tc, test_window_restarts_on_reset);
    tcase_add_test(tc, test_window_restarts_on_reset_same_bucket);
    tcase_add_test(tc, test_window_restarts_on_two_resets_same_ms);
    tcase_add_test(tc, test_window_restarts_on_probe_success_same_bucket);
    tcase_add_test(tc, test_window_restarts_on_leaving_mode);
    tcase_add_test(tc, test_window_restarts_on_entering_metrics_only);
    tcase_add_test(tc, test_window_not_counted_while_disabled);
    suite_add_tcase(s, tc);

    tc = tcase_create("backoff");
    tcase_add_test(tc, test_backoff_doubles_open_period);
    tcase_add_test(tc, test_backoff_150_pct_in_integers);
    tcase_add_test(tc, test_backoff_short_period_grows);
    tcase_add_test(tc, test_backoff_capped_by_max_reset_timeout);
    tcase_add_test(tc, test_backoff_default_cap);
    tcase_add_test(tc, test_backoff_cap_never_below_reset_timeout);
    tcase_add_loop_test(tc, test_backoff_off, 0, 2);
    tcase_add_test(tc, test_backoff_steps_max);
    tcase_add_test(tc, test_backoff_step_reset_by_probe_success);
    tcase_add_test(tc, test_backoff_step_reset_by_cb_reset);
    tcase_add_test(tc, test_backoff_step_reset_by_cb_reset_half_open);
    tcase_add_test(tc, test_backoff_step_reset_by_leaving_mode);
    tcase_add_test(tc, test_backoff_cb_trip_keeps_step_open);
    tcase_add_test(tc, test_backoff_cb_trip_keeps_step_half_open);
    tcase_add_test(tc, test_backoff_cb_trip_from_closed_step0);
    tcase_add_test(tc, test_backoff_release_keeps_step);
    tcase_add_test(tc, test_backoff_lease_expiry_keeps_step);
    suite_add_tcase(s, tc);

    tc = tcase_create("modes");
    tcase_add_test(tc, test_mode_disabled_allows_all_never_trips);
    tcase_add_test(tc, test_mode_disabled_from_open);
    tcase_add_test(tc, test_mode_forced_open_rejects_all);
    tcase_add_test(tc, test_mode_forced_open_from_half_open);
    tcase_add_test(tc, test_mode_metrics_only_threshold_would_open_once_per_crossing);
    tcase_add_test(tc, test_mode_metrics_only_rate_would_open_once_per_crossing);
    tcase_add_test(tc, test_mode_metrics_only_slow_rate_would_open);
    tcase_add_test(tc, test_mode_metrics_only_two_rules_one_report);
    tcase_add_loop_test(tc, test_mode_leaving_resumes_closed_count_zero, 0, N(modes));
    tcase_add_test(tc, test_mode_leaving_forced_open_from_open);
    tcase_add_loop_test(tc, test_mode_change_is_one_transition, 0, N(modes));
    tcase_add_test(tc, test_mode_change_between_modes);
    tcase_add_test(tc, test_mode_same_twice_no_transition);
    tcase_add_loop_test(tc, test_mode_reset_trip_refused, 0, N(modes));
    tcase_add_test(tc, test_mode_permits_from_before_are_late);
    tcase_add_test(tc, test_mode_bad_value_einval);
    tcase_add_test(tc, test_mode_seen_by_other_handle);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_loop_test(tc, test_config_out_of_range_open_einval, 0, N(bad_configs));
    tcase_add_loop_test(tc, test_config_out_of_range_set_config_einval, 0, N(bad_configs));
    tcase_add_test(tc, test_config_range_edges_accepted);
    tcase_add_test(tc, test_config_defaults_in_info);
    tcase_add_test(tc, test_config_backoff_100_stored_as_off);
    tcase_add_loop_test(tc, test_config_off_turns_field_off, 0, N(off_fields));
    tcase_add_test(tc, test_config_zero_keeps_stored);
    tcase_add_test(tc, test_config_off_stops_rate_trips);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_names_new_values);
    tcase_add_test(tc, test_format_would_open_and_mode_events);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    return tl_run_suite(policies_suite());
}
