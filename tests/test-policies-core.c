/*
 * test-policies-core.c - smoke tests of the policies (issue 10), one per
 * rule, written with the library: config storage and checks, backoff,
 * the failure-rate and slow-call windows, the window's restart on close,
 * and the operator modes. The full proof of every rule is
 * tests/test-policies.c; these show the library does each at all.
 * Single process, on the injectable clock (cb_set_clock: no tick).
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "testlib.h"

#define T0 1000000u

struct fx {
    const char *name;
    struct tl_clock *clk;
    cb_breaker *b;
    cb_record rec;
};

static struct fx fx_open(const char *tag, const cb_config *cfg)
{
    struct fx f;
    memset(&f, 0, sizeof f);
    f.name = tl_unique_name(tag);
    f.clk = tl_clock_new(T0);
    f.b = tl_open_clocked(f.name, cfg, f.clk);
    return f;
}

static void fx_listen(struct fx *f) { cb_set_listener(f->b, cb_record_listener, &f->rec); }

static void fx_done(struct fx *f)
{
    cb_close(f->b);
    ck_assert_int_eq(cb_unlink(f->name), 0);
}

static cb_info info_of(cb_breaker *b)
{
    cb_info i;
    ck_assert_int_eq(cb_get_info(b, &i), 0);
    return i;
}

/* One call with a verdict: 1 success, 0 failure; asserts it was allowed. */
static void call(cb_breaker *b, int ok)
{
    cb_permit p;
    ck_assert_int_ne(cb_acquire(b, &p), CB_REJECTED);
    if (ok)
        cb_success(b, &p);
    else
        cb_failure(b, &p);
}

START_TEST(config_resolved_and_checked)
{
    cb_config cfg = {.failure_rate = 50, .backoff_multiplier_pct = 100};
    struct fx f = fx_open("cfg", &cfg);
    cb_info i = info_of(f.b);
    ck_assert_uint_eq(i.config.failure_rate, 50);
    ck_assert_uint_eq(i.config.minimum_calls, CB_DEFAULT_MINIMUM_CALLS);
    ck_assert_uint_eq(i.config.window_ms, CB_DEFAULT_WINDOW_MS);
    ck_assert_uint_eq(i.config.slow_call_ms, 0);
    ck_assert_uint_eq(i.config.slow_call_rate, CB_DEFAULT_SLOW_CALL_RATE);
    ck_assert_uint_eq(i.config.backoff_multiplier_pct, 0); /* 100 is off */
    ck_assert_uint_eq(i.config.max_reset_timeout_ms, CB_DEFAULT_MAX_RESET_TIMEOUT_MS);

    static const cb_config bad[] = {
        {.failure_rate = 101},          {.slow_call_rate = 101},
        {.window_ms = CB_WINDOW_MS_MIN - 1}, {.window_ms = CB_WINDOW_MS_MAX + 1},
        {.slow_call_ms = CB_SLOW_CALL_MS_MAX + 1}, {.backoff_multiplier_pct = 99},
        {.backoff_multiplier_pct = 1},  {.backoff_multiplier_pct = CB_BACKOFF_MULTIPLIER_MAX + 1},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cb_breaker *b = (cb_breaker *)&b;
        ck_assert_msg(cb_open(f.name, &bad[k], &b) == -EINVAL, "row %zu", k);
        ck_assert_int_eq(cb_set_config(f.b, &bad[k]), -EINVAL);
    }
    ck_assert_uint_eq(info_of(f.b).config.failure_rate, 50); /* nothing changed */

    /* cb_set_config: 0 keeps, CB_CONFIG_OFF turns the policy off. */
    cb_config set = {.slow_call_ms = 200};
    ck_assert_int_eq(cb_set_config(f.b, &set), 1);
    i = info_of(f.b);
    ck_assert_uint_eq(i.config.failure_rate, 50);
    ck_assert_uint_eq(i.config.slow_call_ms, 200);
    set = (cb_config){.failure_rate = CB_CONFIG_OFF, .window_ms = CB_CONFIG_OFF};
    ck_assert_int_eq(cb_set_config(f.b, &set), 1);
    i = info_of(f.b);
    ck_assert_uint_eq(i.config.failure_rate, 0);
    ck_assert_uint_eq(i.config.window_ms, CB_DEFAULT_WINDOW_MS);
    ck_assert_uint_eq(i.config.slow_call_ms, 200);

    /* cb_open compares the policy fields too. */
    cb_config other = {.failure_rate = 60};
    cb_breaker *b2 = NULL;
    ck_assert_int_eq(cb_open(f.name, &other, &b2), CB_CONFIG_UPDATED);
    ck_assert_uint_eq(info_of(b2).config.failure_rate, 60);
    ck_assert_uint_eq(info_of(b2).config.slow_call_ms, 0);
    cb_close(b2);
    fx_done(&f);
}
END_TEST

/* A probe at exactly `period` ms after the last trip, failed: the next
 * period; returns the open period cb_info shows afterwards. */
static uint64_t fail_probe_after(struct fx *f, uint64_t period)
{
    cb_permit p;
    tl_clock_advance(f->clk, period - 1);
    ck_assert_int_eq(cb_acquire(f->b, &p), CB_REJECTED);
    tl_clock_advance(f->clk, 1);
    ck_assert_int_eq(cb_acquire(f->b, &p), CB_PROBE);
    cb_failure(f->b, &p);
    return info_of(f->b).open_timeout_ms;
}

START_TEST(backoff_grows_caps_and_resets)
{
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = 1000, .backoff_multiplier_pct = 200,
                     .max_reset_timeout_ms = 3500};
    struct fx f = fx_open("backoff", &cfg);
    call(f.b, 0);
    cb_info i = info_of(f.b);
    ck_assert_int_eq(i.state, CB_OPEN);
    ck_assert_uint_eq(i.backoff_step, 0);
    ck_assert_uint_eq(i.open_timeout_ms, 1000);
    ck_assert_uint_eq(fail_probe_after(&f, 1000), 2000);
    ck_assert_uint_eq(fail_probe_after(&f, 2000), 3500); /* 4000 capped */
    ck_assert_uint_eq(info_of(f.b).backoff_step, 2);
    ck_assert_uint_eq(fail_probe_after(&f, 3500), 3500); /* at the cap: the step stays */
    ck_assert_uint_eq(info_of(f.b).backoff_step, 2);

    /* A successful probe closes: back to reset_timeout on the next trip. */
    cb_permit p;
    tl_clock_advance(f.clk, 3500);
    ck_assert_int_eq(cb_acquire(f.b, &p), CB_PROBE);
    cb_success(f.b, &p);
    i = info_of(f.b);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_uint_eq(i.backoff_step, 0);
    call(f.b, 0);
    ck_assert_uint_eq(info_of(f.b).open_timeout_ms, 1000);
    fx_done(&f);
}
END_TEST

START_TEST(failure_rate_trips_at_minimum_calls)
{
    cb_config cfg = {.failure_threshold = 100, .failure_rate = 50, .minimum_calls = 4, .window_ms = 1000};
    struct fx f = fx_open("rate", &cfg);
    fx_listen(&f);
    call(f.b, 1);
    call(f.b, 0);
    call(f.b, 0); /* 2 of 3 failed, but 3 < minimum_calls */
    cb_info i = info_of(f.b);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_uint_eq(i.window_calls, 3);
    ck_assert_uint_eq(i.window_failures, 2);
    ck_assert_uint_eq(f.rec.len, 0);
    call(f.b, 1); /* 4 calls, 2 failures: 50% */
    ck_assert_int_eq(cb_get_state(f.b), CB_OPEN);
    ck_assert_uint_eq(f.rec.len, 1);
    ck_assert_int_eq(f.rec.events[0].transition.reason, CB_REASON_FAILURE_RATE);
    ck_assert_uint_eq(info_of(f.b).counters.trips, 1);
    fx_done(&f);
}
END_TEST

START_TEST(failures_age_out_of_the_window)
{
    cb_config cfg = {.failure_threshold = 100, .failure_rate = 50, .minimum_calls = 2, .window_ms = 1000};
    struct fx f = fx_open("aging", &cfg);
    call(f.b, 0);
    tl_clock_advance(f.clk, 1000); /* its bucket has left the window */
    ck_assert_uint_eq(info_of(f.b).window_failures, 0);
    call(f.b, 1);
    call(f.b, 1);
    cb_info i = info_of(f.b);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_uint_eq(i.window_calls, 2);
    fx_done(&f);
}
END_TEST

START_TEST(slow_calls_trip)
{
    cb_config cfg = {.slow_call_ms = 100, .slow_call_rate = 100, .minimum_calls = 2, .window_ms = 10000};
    struct fx f = fx_open("slow", &cfg);
    fx_listen(&f);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(f.b, &p), CB_ALLOWED);
    tl_clock_advance(f.clk, 100); /* not more than slow_call_ms: not slow */
    cb_success(f.b, &p);
    ck_assert_uint_eq(info_of(f.b).window_slow_calls, 0);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(cb_acquire(f.b, &p), CB_ALLOWED);
        tl_clock_advance(f.clk, 101);
        cb_success(f.b, &p);
    }
    /* 3 calls, 2 slow: 66% < 100% */
    cb_info i = info_of(f.b);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_uint_eq(i.window_slow_calls, 2);
    cfg = (cb_config){.slow_call_rate = 60};
    ck_assert_int_eq(cb_set_config(f.b, &cfg), 1);
    ck_assert_int_eq(cb_acquire(f.b, &p), CB_ALLOWED);
    cb_success(f.b, &p); /* fast, but 2 of 4 = 50% < 60% */
    ck_assert_int_eq(cb_get_state(f.b), CB_CLOSED);
    ck_assert_int_eq(cb_acquire(f.b, &p), CB_ALLOWED);
    tl_clock_advance(f.clk, 101);
    cb_failure(f.b, &p); /* a slow failure: 3 of 5 = 60% */
    ck_assert_int_eq(cb_get_state(f.b), CB_OPEN);
    ck_assert_uint_eq(f.rec.len, 1);
    ck_assert_int_eq(f.rec.events[0].transition.reason, CB_REASON_SLOW_CALL_RATE);
    fx_done(&f);
}
END_TEST

START_TEST(reset_restarts_the_window)
{
    cb_config cfg = {.failure_threshold = 100, .failure_rate = 50, .minimum_calls = 2, .window_ms = 1000};
    struct fx f = fx_open("restart", &cfg);
    call(f.b, 0);
    tl_clock_advance(f.clk, 100); /* the next bucket */
    ck_assert_int_eq(cb_reset(f.b), CB_CLOSED);
    cb_info i = info_of(f.b);
    ck_assert_uint_eq(i.window_calls, 0);
    call(f.b, 1);
    call(f.b, 1); /* the old failure would make it 1 of 3 */
    i = info_of(f.b);
    ck_assert_uint_eq(i.window_calls, 2);
    ck_assert_uint_eq(i.window_failures, 0);
    fx_done(&f);
}
END_TEST

START_TEST(modes)
{
    cb_config cfg = {.failure_threshold = 2};
    struct fx f = fx_open("modes", &cfg);
    fx_listen(&f);
    cb_permit p;

    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_DISABLED), CB_MODE_NORMAL);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_DISABLED), CB_MODE_DISABLED); /* no transition */
    ck_assert_uint_eq(f.rec.len, 1);
    ck_assert_int_eq(f.rec.events[0].transition.reason, CB_REASON_MODE);
    ck_assert_int_eq(f.rec.events[0].transition.mode, CB_MODE_DISABLED);
    for (int k = 0; k < 5; k++)
        call(f.b, 0); /* nothing counts towards a trip */
    cb_info i = info_of(f.b);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_int_eq(i.mode, CB_MODE_DISABLED);
    ck_assert_uint_eq(i.counters.failures, 5);
    ck_assert_int_eq(cb_reset(f.b), CB_EMODE);
    ck_assert_int_eq(cb_trip(f.b), CB_EMODE);

    ck_assert_int_eq(cb_acquire(f.b, &p), CB_ALLOWED); /* late once the mode changes */
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_FORCED_OPEN), CB_MODE_DISABLED);
    cb_success(f.b, &p);
    ck_assert_uint_eq(info_of(f.b).counters.late, 1);
    ck_assert_int_eq(cb_get_state(f.b), CB_OPEN);
    tl_clock_advance(f.clk, 1000000);
    ck_assert_int_eq(cb_acquire(f.b, &p), CB_REJECTED); /* no probe, ever */

    f.rec.len = 0;
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_FORCED_OPEN);
    ck_assert_int_eq(cb_get_state(f.b), CB_CLOSED);
    call(f.b, 0);
    call(f.b, 0); /* threshold reached: a would-open event, no trip */
    call(f.b, 0);
    ck_assert_int_eq(cb_get_state(f.b), CB_CLOSED);
    ck_assert_uint_eq(f.rec.len, 2);
    cb_transition t = f.rec.events[1].transition;
    ck_assert_uint_eq(t.would_open, 1);
    ck_assert_int_eq(t.from, CB_CLOSED);
    ck_assert_int_eq(t.to, CB_OPEN);
    ck_assert_int_eq(t.reason, CB_REASON_THRESHOLD);
    ck_assert_int_eq(t.mode, CB_MODE_METRICS_ONLY);
    ck_assert_str_eq(cb_event_name(&t), "circuit_breaker_would_open");
    ck_assert_uint_eq(info_of(f.b).failures, 3);

    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_NORMAL), CB_MODE_METRICS_ONLY);
    i = info_of(f.b);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_int_eq(i.mode, CB_MODE_NORMAL);
    ck_assert_uint_eq(i.failures, 0);
    ck_assert_int_eq(i.history[0].reason, CB_REASON_MODE); /* recorded, with its mode */
    ck_assert_int_eq(i.history[0].mode, CB_MODE_NORMAL);
    ck_assert_int_eq(i.history[1].mode, CB_MODE_METRICS_ONLY);
    ck_assert_int_eq(i.history[2].to, CB_OPEN); /* FORCED_OPEN looks OPEN */
    ck_assert_int_eq(cb_set_mode(f.b, (cb_mode)4), -EINVAL);
    ck_assert_str_eq(cb_mode_name(CB_MODE_METRICS_ONLY), "metrics_only");
    fx_done(&f);
}
END_TEST

START_TEST(metrics_only_rate_announces_once_per_crossing)
{
    cb_config cfg = {.failure_threshold = 100, .failure_rate = 50, .minimum_calls = 2, .window_ms = 10000};
    struct fx f = fx_open("mrate", &cfg);
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_METRICS_ONLY), CB_MODE_NORMAL);
    fx_listen(&f);
    call(f.b, 1);
    call(f.b, 0); /* 1 of 2: crossed */
    call(f.b, 0); /* still crossed: no second event */
    ck_assert_uint_eq(f.rec.len, 1);
    cb_transition t = f.rec.events[0].transition;
    ck_assert_uint_eq(t.would_open, 1);
    ck_assert_int_eq(t.reason, CB_REASON_FAILURE_RATE);
    ck_assert_int_eq(cb_get_state(f.b), CB_CLOSED);
    for (int k = 0; k < 3; k++)
        call(f.b, 1); /* 2 of 6: below, the mark clears */
    ck_assert_uint_eq(f.rec.len, 1);
    call(f.b, 0);
    call(f.b, 0); /* 4 of 8: crossed again */
    ck_assert_uint_eq(f.rec.len, 2);
    ck_assert_int_eq(f.rec.events[1].transition.reason, CB_REASON_FAILURE_RATE);
    cb_info i = info_of(f.b);
    ck_assert_uint_eq(i.window_calls, 8);
    ck_assert_uint_eq(i.counters.trips, 0);

    /* DISABLED counts nothing in the window. */
    ck_assert_int_eq(cb_set_mode(f.b, CB_MODE_DISABLED), CB_MODE_METRICS_ONLY);
    call(f.b, 0);
    ck_assert_uint_eq(info_of(f.b).window_calls, 0);
    fx_done(&f);
}
END_TEST

START_TEST(trip_keeps_the_backoff_step)
{
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = 1000, .backoff_multiplier_pct = 300};
    struct fx f = fx_open("tripstep", &cfg);
    call(f.b, 0);
    cb_permit p;
    tl_clock_advance(f.clk, 1000);
    ck_assert_int_eq(cb_acquire(f.b, &p), CB_PROBE);
    cb_failure(f.b, &p);
    ck_assert_uint_eq(info_of(f.b).open_timeout_ms, 3000);
    ck_assert_int_eq(cb_trip(f.b), CB_OPEN);
    ck_assert_uint_eq(info_of(f.b).backoff_step, 1); /* kept */
    ck_assert_int_eq(cb_reset(f.b), CB_OPEN);
    call(f.b, 0); /* a trip from CLOSED: step 0 */
    ck_assert_uint_eq(info_of(f.b).open_timeout_ms, 1000);
    fx_done(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policies-core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, config_resolved_and_checked);
    tcase_add_test(tc, backoff_grows_caps_and_resets);
    tcase_add_test(tc, failure_rate_trips_at_minimum_calls);
    tcase_add_test(tc, failures_age_out_of_the_window);
    tcase_add_test(tc, slow_calls_trip);
    tcase_add_test(tc, reset_restarts_the_window);
    tcase_add_test(tc, modes);
    tcase_add_test(tc, metrics_only_rate_announces_once_per_crossing);
    tcase_add_test(tc, trip_keeps_the_backoff_step);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
