/*
 * test-state-machine.c - every rule of the circuit's state machine, in one
 * process, on a manual clock (tl_open_clocked): nothing depends on real
 * time and nothing sleeps. With a manual clock the handle's clock tick is
 * 0, so "reset_timeout has passed" means exactly now - t >= reset_timeout.
 *
 * TCases:
 *   names      cb_state_name, cb_reason_name, cb_event_name: every value
 *              and out-of-range values.
 *   config     cb_open(NULL cfg) defaults (3 / 60000 / 60000 / 0600, also
 *              as behaviour), zero fields, CB_CREATED / CB_OPENED /
 *              CB_CONFIG_UPDATED, a new threshold takes effect, NULL cfg
 *              keeps the stored config.
 *   closed     failures count up, success clears, the failure that
 *              reaches the threshold trips (table of thresholds incl. 1).
 *   open       rejected with an empty permit until reset_timeout (at
 *              reset-1 and reset; table of timeouts); the first acquire
 *              after it is the probe, the rest are rejected.
 *   half_open  probe success / failure (fresh timeout measured from the
 *              failure), probe lease expiry (table of the old holder's
 *              report), release of call and probe permits, a second
 *              report of a probe permit (table of 3 x 3 report pairs).
 *   stale      reports from an earlier generation are late and change
 *              nothing: after a trip, in HALF_OPEN, across trip+reset.
 *   operator   cb_reset / cb_trip from CLOSED, OPEN and HALF_OPEN (table):
 *              each returns the state it replaced and makes one
 *              transition; in-flight permits become late.
 *   ignored    empty (rejected), zeroed and foreign permits, NULL args.
 *   counters   exact counters after a scripted sequence; the invariant
 *              allowed == successes + failures + released + late.
 *   events     listener: once per transition with from/to/reason/
 *              failures/pid/circuit/mono_ms/generation, never for count
 *              changes or a probe release, removable; history ring order,
 *              contents, generations and overflow; cb_log_listener's line
 *              on stderr.
 *   call       cb_call: not called when rejected, outcomes recorded,
 *              fn NULL.
 *   clocks     a clock read stalled before a failed CAS is not reused on
 *              the retry (the new lease is a full probe_timeout); a stamp
 *              ahead of the reader's clock has not elapsed (no early or
 *              second probe); a process stalled between its clock read
 *              and its CAS (trip by threshold, probe failure or cb_trip;
 *              probe grant) stamps the moment of its CAS: no probe before
 *              reset_timeout after the trip CAS, a full lease from the
 *              grant; the refresh never touches a word that moved on.
 *   info       ms_until_probe, probe_pid, probe_lease_ms, generation;
 *              corrupt state word (white box, state 3): CB_ECORRUPT,
 *              acquire rejects, cb_reset and cb_trip return 3 and repair.
 *
 * Every snapshot taken with INFO() also checks the history's generations:
 * strictly decreasing, newest first, none newer than cb_info.generation.
 * Every listener made with rec_new() records cb_info.generation as the
 * listener sees it, and rec_done() checks that each event's generation is
 * that value (the generation of the state the transition entered).
 *
 * Every test uses its own tl_unique_name() circuit and unlinks it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cbreaker.h"
#include "handle.h" /* white box: struct cb_breaker -> struct cb_segment */
#include "state_word.h"
#include "testlib.h"

#define T0 UINT64_C(1000000) /* manual clock start, ms */
#define RESET 1000u          /* reset_timeout_ms of most tests */
#define PROBE 300u           /* probe_timeout_ms of most tests */

/* ---------------------------------------------------------------- helpers */

typedef struct fx {
    const char *name;
    struct tl_clock *clk;
    cb_breaker *b;
} fx;

static fx fx_open_cfg(const char *tag, const cb_config *cfg)
{
    fx f;
    f.name = tl_unique_name(tag);
    f.clk = tl_clock_new(T0);
    f.b = tl_open_clocked(f.name, cfg, f.clk);
    return f;
}

static fx fx_open(const char *tag, uint32_t threshold, uint32_t reset_ms, uint32_t probe_ms)
{
    cb_config cfg = {.failure_threshold = threshold, .reset_timeout_ms = reset_ms, .probe_timeout_ms = probe_ms};
    return fx_open_cfg(tag, &cfg);
}

static void fx_done(fx *f)
{
    cb_close(f->b);
    ck_assert_int_eq(cb_unlink(f->name), 0);
    munmap(f->clk, sizeof *f->clk);
}

static void advance(fx *f, uint64_t ms) { tl_clock_advance(f->clk, ms); }
static uint64_t now_of(fx *f) { return tl_clock_read(f->clk); }

/* History generations: strictly decreasing newest first, none newer than
 * the circuit's (no test here comes near the 22-bit wrap). */
static void history_gens_at(int line, const cb_info *i)
{
    for (unsigned k = 0; k < i->history_len; k++) {
        uint32_t g = i->history[k].generation;
        ck_assert_msg(g >= 1 && g <= i->generation, "line %d: history[%u].generation %u, circuit at %u", line, k,
                      g, i->generation);
        if (k > 0)
            ck_assert_msg(g < i->history[k - 1].generation,
                          "line %d: history[%u].generation %u not below history[%u].generation %u", line, k, g,
                          k - 1, i->history[k - 1].generation);
    }
}

#define INFO(b) info_at(__LINE__, (b))
static cb_info info_at(int line, cb_breaker *b)
{
    cb_info i;
    int rc = cb_get_info(b, &i);
    ck_assert_msg(rc == 0, "line %d: cb_get_info: %s", line, cb_strerror(rc));
    history_gens_at(line, &i);
    return i;
}

/* The newest history entry is the last change of the word: a transition. */
#define CK_NEWEST_IS_CURRENT(i) newest_is_current_at(__LINE__, &(i))
static void newest_is_current_at(int line, const cb_info *i)
{
    ck_assert_msg(i->history_len > 0, "line %d: empty history", line);
    ck_assert_msg(i->history[0].generation == i->generation, "line %d: history[0].generation %u, circuit at %u",
                  line, i->history[0].generation, i->generation);
}

/* Acquire and insist on the verdict; a rejection must leave an empty permit. */
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

/* State by cb_get_state and cb_get_info, and the consecutive failure count. */
#define CK_STATE(b, st, fails) state_at(__LINE__, (b), (st), (fails))
static void state_at(int line, cb_breaker *b, cb_state st, uint32_t failures)
{
    cb_info i = info_at(line, b);
    ck_assert_msg(cb_get_state(b) == st && i.state == st, "line %d: state %s/%s, want %s", line,
                  cb_state_name(cb_get_state(b)), cb_state_name(i.state), cb_state_name(st));
    ck_assert_msg(i.failures == failures, "line %d: failures %u, want %u", line, i.failures, failures);
}

/* n calls in a row, each acquired (CLOSED) and reported as a failure. */
#define FAIL_N(b, n) fail_n_at(__LINE__, (b), (n))
static void fail_n_at(int line, cb_breaker *b, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        cb_permit p = acq_at(line, b, CB_ALLOWED);
        cb_failure(b, &p);
    }
}

static void fmt_counters(char *buf, size_t len, const cb_counters *c)
{
    snprintf(buf, len, "allowed=%llu rejected=%llu successes=%llu failures=%llu released=%llu late=%llu trips=%llu probes=%llu",
             (unsigned long long)c->allowed, (unsigned long long)c->rejected,
             (unsigned long long)c->successes, (unsigned long long)c->failures,
             (unsigned long long)c->released, (unsigned long long)c->late,
             (unsigned long long)c->trips, (unsigned long long)c->probes);
}

/* CK_COUNTERS(b, allowed, rejected, successes, failures, released, late, trips, probes) */
#define CK_COUNTERS(b, ...) counters_at(__LINE__, (b), (cb_counters){__VA_ARGS__})
#define CK_COUNTERS_EQ(b, want) counters_at(__LINE__, (b), (want))
static void counters_at(int line, cb_breaker *b, cb_counters want)
{
    cb_counters c = info_at(line, b).counters;
    char got_s[256], want_s[256];
    fmt_counters(got_s, sizeof got_s, &c);
    fmt_counters(want_s, sizeof want_s, &want);
    ck_assert_msg(memcmp(&c, &want, sizeof c) == 0, "line %d: counters\n   got %s\n  want %s", line, got_s, want_s);
}

/* A listener that records every event, and the circuit's generation as
 * seen from inside the listener (called right after the transition). */
#define REC_MAX 64
struct rec {
    cb_breaker *b; /* NULL: no generation is read */
    unsigned n;
    cb_transition t[REC_MAX];
    uint64_t mono[REC_MAX];
    uint32_t gen_after[REC_MAX];
    int info_rc[REC_MAX];
    char circuit[REC_MAX][CB_NAME_MAX + 1];
};

static void rec_listener(const cb_event *e, void *ctx)
{
    struct rec *r = ctx;
    if (r->n < REC_MAX) {
        r->t[r->n] = e->transition;
        r->mono[r->n] = e->mono_ms;
        snprintf(r->circuit[r->n], sizeof r->circuit[0], "%s", e->circuit ? e->circuit : "(null)");
        if (r->b) {
            cb_info i;
            r->info_rc[r->n] = cb_get_info(r->b, &i);
            r->gen_after[r->n] = i.generation;
        }
    }
    r->n++;
}

/* A recorder for b's events (install it with cb_set_listener). */
static struct rec *rec_new(cb_breaker *b)
{
    struct rec *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    r->b = b;
    return r;
}

/* Remove the listener from b; every event's generation was the circuit's
 * right after it, and they increase; then free. */
#define REC_DONE(b, r) rec_done_at(__LINE__, (b), (r))
static void rec_done_at(int line, cb_breaker *b, struct rec *r)
{
    cb_set_listener(b, NULL, NULL);
    ck_assert_msg(r->n <= REC_MAX, "line %d: %u events, more than recorded", line, r->n);
    for (unsigned k = 0; k < r->n && r->b; k++) {
        ck_assert_msg(r->info_rc[k] == 0, "line %d: event %u: cb_get_info in the listener: %s", line, k,
                      cb_strerror(r->info_rc[k]));
        ck_assert_msg(r->t[k].generation == r->gen_after[k], "line %d: event %u (%s): generation %u, circuit at %u",
                      line, k, cb_reason_name(r->t[k].reason), r->t[k].generation, r->gen_after[k]);
        if (k > 0)
            ck_assert_msg(r->t[k].generation > r->t[k - 1].generation, "line %d: event %u: generation %u after %u",
                          line, k, r->t[k].generation, r->t[k - 1].generation);
    }
    free(r);
}

#define CK_TRANSITION(t, f, to_, why, fails) transition_at(__LINE__, (t), (f), (to_), (why), (fails))
static void transition_at(int line, const cb_transition *t, cb_state from, cb_state to, cb_reason reason,
                          uint32_t failures)
{
    ck_assert_msg(t->from == from && t->to == to && t->reason == reason && t->failures == failures,
                  "line %d: transition %s->%s %s failures=%u, want %s->%s %s failures=%u", line,
                  cb_state_name(t->from), cb_state_name(t->to), cb_reason_name(t->reason), t->failures,
                  cb_state_name(from), cb_state_name(to), cb_reason_name(reason), failures);
    ck_assert_msg(t->pid == (int32_t)getpid(), "line %d: pid %d, want %d", line, (int)t->pid, (int)getpid());
}

/* Report kinds, for table-driven tests. */
enum { R_SUCCESS, R_FAILURE, R_RELEASE, R_COUNT };
static const char *const report_names[R_COUNT] = {"success", "failure", "release"};

static void report(cb_breaker *b, cb_permit *p, int kind)
{
    switch (kind) {
    case R_SUCCESS:
        cb_success(b, p);
        break;
    case R_FAILURE:
        cb_failure(b, p);
        break;
    default:
        cb_release(b, p);
        break;
    }
}

/* Trip a fresh circuit by its threshold at the current time. */
static void trip_by_failures(fx *f)
{
    FAIL_N(f->b, INFO(f->b).config.failure_threshold);
    CK_STATE(f->b, CB_OPEN, 0);
}

/* ------------------------------------------------------------------ names */

START_TEST(test_state_names)
{
    static const struct {
        int s;
        const char *name;
    } table[] = {
        {CB_CLOSED, "CLOSED"}, {CB_OPEN, "OPEN"},    {CB_HALF_OPEN, "HALF_OPEN"},
        {3, "INVALID"},        {-1, "INVALID"},      {1000, "INVALID"},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        ck_assert_str_eq(cb_state_name((cb_state)table[k].s), table[k].name);
}
END_TEST

START_TEST(test_reason_names)
{
    static const struct {
        int r;
        const char *name;
    } table[] = {
        {CB_REASON_THRESHOLD, "threshold_reached"},
        {CB_REASON_TIMEOUT, "reset_timeout_elapsed"},
        {CB_REASON_PROBE_SUCCEEDED, "probe_succeeded"},
        {CB_REASON_PROBE_FAILED, "probe_failed"},
        {CB_REASON_LEASE_EXPIRED, "probe_lease_expired"},
        {CB_REASON_RESET, "reset"},
        {CB_REASON_TRIP, "trip"},
        {CB_REASON_FAILURE_RATE, "failure_rate"},
        {CB_REASON_SLOW_CALL_RATE, "slow_call_rate"},
        {CB_REASON_MODE, "mode"},
        {10, "unknown"},
        {-1, "unknown"},
        {255, "unknown"},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        ck_assert_str_eq(cb_reason_name((cb_reason)table[k].r), table[k].name);
}
END_TEST

START_TEST(test_event_names)
{
    static const struct {
        int to;
        const char *name;
    } table[] = {
        {CB_CLOSED, "circuit_breaker_closed"},
        {CB_OPEN, "circuit_breaker_opened"},
        {CB_HALF_OPEN, "circuit_breaker_half_open"},
    };
    /* Named after the state entered, whatever the state left. */
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        for (int from = CB_CLOSED; from <= CB_HALF_OPEN; from++) {
            cb_transition t = {.from = (cb_state)from, .to = (cb_state)table[k].to};
            ck_assert_str_eq(cb_event_name(&t), table[k].name);
        }
    /* Out of range and NULL: some name, never one of the real ones. */
    const int bad[] = {3, -1, 1000};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cb_transition t = {.from = CB_CLOSED, .to = (cb_state)bad[k]};
        const char *n = cb_event_name(&t);
        ck_assert_ptr_nonnull(n);
        for (size_t j = 0; j < sizeof table / sizeof table[0]; j++)
            ck_assert_str_ne(n, table[j].name);
    }
    ck_assert_ptr_nonnull(cb_event_name(NULL));
    ck_assert_str_ne(cb_event_name(NULL), "circuit_breaker_opened");
}
END_TEST

/* ----------------------------------------------------------------- config */

START_TEST(test_config_defaults)
{
    const char *name = tl_unique_name("defaults");
    struct tl_clock *clk = tl_clock_new(T0);
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    cb_set_clock(b, tl_clock_read, clk);

    cb_info i = INFO(b);
    ck_assert_str_eq(i.name, name);
    ck_assert_uint_eq(i.config.failure_threshold, 3);
    ck_assert_uint_eq(i.config.reset_timeout_ms, 60000);
    ck_assert_uint_eq(i.config.probe_timeout_ms, 60000);
    ck_assert_uint_eq(i.config.mode, 0600);
    ck_assert_uint_eq(i.config.failure_threshold, CB_DEFAULT_FAILURE_THRESHOLD);
    ck_assert_uint_eq(i.config.reset_timeout_ms, CB_DEFAULT_RESET_TIMEOUT_MS);
    ck_assert_uint_eq(i.config.mode, CB_DEFAULT_MODE);

    /* The defaults as behaviour: the 3rd failure trips, the probe comes at
     * 60000 ms, its lease lasts 60000 ms. */
    FAIL_N(b, 2);
    CK_STATE(b, CB_CLOSED, 2);
    FAIL_N(b, 1);
    CK_STATE(b, CB_OPEN, 0);
    tl_clock_advance(clk, 59999);
    ACQ(b, CB_REJECTED);
    tl_clock_advance(clk, 1);
    ACQ(b, CB_PROBE);
    tl_clock_advance(clk, 59999);
    ACQ(b, CB_REJECTED);
    tl_clock_advance(clk, 1);
    cb_permit p = ACQ(b, CB_PROBE);
    cb_success(b, &p);
    CK_STATE(b, CB_CLOSED, 0);

    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
    munmap(clk, sizeof *clk);
}
END_TEST

/* Zero fields of a non-NULL cfg resolve to the defaults. */
static const struct {
    cb_config in, want;
} config_table[] = {
    {{0},
     {.failure_threshold = 3, .reset_timeout_ms = 60000, .probe_timeout_ms = 60000, .mode = 0600}},
    {{.failure_threshold = 5},
     {.failure_threshold = 5, .reset_timeout_ms = 60000, .probe_timeout_ms = 60000, .mode = 0600}},
    {{.reset_timeout_ms = 500},
     {.failure_threshold = 3, .reset_timeout_ms = 500, .probe_timeout_ms = 500, .mode = 0600}},
    {{.reset_timeout_ms = 500, .probe_timeout_ms = 200, .mode = 0640},
     {.failure_threshold = 3, .reset_timeout_ms = 500, .probe_timeout_ms = 200, .mode = 0640}},
    {{.failure_threshold = 1, .reset_timeout_ms = 1, .probe_timeout_ms = 1, .mode = 0644},
     {.failure_threshold = 1, .reset_timeout_ms = 1, .probe_timeout_ms = 1, .mode = 0644}},
    {{.probe_timeout_ms = 7},
     {.failure_threshold = 3, .reset_timeout_ms = 60000, .probe_timeout_ms = 7, .mode = 0600}},
};

START_TEST(test_config_zero_fields)
{
    fx f = fx_open_cfg("cfgzero", &config_table[_i].in);
    cb_config got = INFO(f.b).config, want = config_table[_i].want;
    ck_assert_msg(got.failure_threshold == want.failure_threshold && got.reset_timeout_ms == want.reset_timeout_ms &&
                      got.probe_timeout_ms == want.probe_timeout_ms && got.mode == want.mode,
                  "row %d: got {%u,%u,%u,0%o} want {%u,%u,%u,0%o}", _i, got.failure_threshold,
                  got.reset_timeout_ms, got.probe_timeout_ms, got.mode, want.failure_threshold,
                  want.reset_timeout_ms, want.probe_timeout_ms, want.mode);
    fx_done(&f);
}
END_TEST

START_TEST(test_config_update)
{
    const char *name = tl_unique_name("cfgupd");
    struct tl_clock *clk = tl_clock_new(T0);
    cb_config cfg5 = {.failure_threshold = 5, .reset_timeout_ms = RESET, .probe_timeout_ms = PROBE}, 
              cfg2 = {.failure_threshold = 2, .reset_timeout_ms = RESET, .probe_timeout_ms = PROBE};
    cb_breaker *b = NULL, *b2 = NULL;

    ck_assert_int_eq(cb_open(name, &cfg5, &b), CB_CREATED);
    cb_set_clock(b, tl_clock_read, clk);

    /* Same cfg: CB_OPENED. */
    ck_assert_int_eq(cb_open(name, &cfg5, &b2), CB_OPENED);
    cb_close(b2);
    FAIL_N(b, 1);
    CK_STATE(b, CB_CLOSED, 1);

    /* New threshold: CB_CONFIG_UPDATED, and it takes effect at once for
     * every handle (the first handle trips on its 2nd failure). */
    ck_assert_int_eq(cb_open(name, &cfg2, &b2), CB_CONFIG_UPDATED);
    ck_assert_uint_eq(INFO(b).config.failure_threshold, 2);
    ck_assert_uint_eq(INFO(b2).config.failure_threshold, 2);
    cb_close(b2);
    FAIL_N(b, 1);
    CK_STATE(b, CB_OPEN, 0);
    ck_assert_int_eq(cb_reset(b), CB_OPEN);

    /* NULL cfg: CB_OPENED, the stored config stays (not the defaults). */
    ck_assert_int_eq(cb_open(name, NULL, &b2), CB_OPENED);
    cb_info i = INFO(b2);
    ck_assert_uint_eq(i.config.failure_threshold, 2);
    ck_assert_uint_eq(i.config.reset_timeout_ms, RESET);
    ck_assert_uint_eq(i.config.probe_timeout_ms, PROBE);
    cb_close(b2);
    FAIL_N(b, 1);
    CK_STATE(b, CB_CLOSED, 1);
    FAIL_N(b, 1);
    CK_STATE(b, CB_OPEN, 0);

    /* mode applies only to a segment created here: not a config change. */
    cb_config cfg2_mode = cfg2;
    cfg2_mode.mode = 0644;
    ck_assert_int_eq(cb_open(name, &cfg2_mode, &b2), CB_OPENED);
    cb_close(b2);

    /* Zero fields resolve before the comparison. */
    cb_config cfg2_zero_probe = {.failure_threshold = 2, .reset_timeout_ms = RESET}; /* probe = RESET != PROBE */
    ck_assert_int_eq(cb_open(name, &cfg2_zero_probe, &b2), CB_CONFIG_UPDATED);
    ck_assert_uint_eq(INFO(b2).config.probe_timeout_ms, RESET);
    cb_close(b2);
    ck_assert_int_eq(cb_open(name, &cfg2_zero_probe, &b2), CB_OPENED);
    cb_close(b2);

    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
    munmap(clk, sizeof *clk);
}
END_TEST

/* ----------------------------------------------------------------- closed */

static const uint32_t thresholds[] = {1, 2, 3, 5, 10};

START_TEST(test_closed_threshold)
{
    uint32_t thr = thresholds[_i];
    fx f = fx_open("thr", thr, RESET, PROBE);
    struct rec *r = rec_new(f.b);
    cb_set_listener(f.b, rec_listener, r);

    for (uint32_t k = 1; k < thr; k++) {
        FAIL_N(f.b, 1);
        CK_STATE(f.b, CB_CLOSED, k);
    }
    if (thr > 1) {
        /* A success sets the count back to 0: thr-1 more do not trip. */
        cb_permit p = ACQ(f.b, CB_ALLOWED);
        cb_success(f.b, &p);
        CK_STATE(f.b, CB_CLOSED, 0);
        FAIL_N(f.b, thr - 1);
        CK_STATE(f.b, CB_CLOSED, thr - 1);
    }
    ck_assert_uint_eq(r->n, 0);
    ck_assert_uint_eq(INFO(f.b).counters.trips, 0);
    ck_assert_uint_eq(INFO(f.b).generation, 0);

    FAIL_N(f.b, 1); /* the one that reaches the threshold */
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_uint_eq(INFO(f.b).counters.trips, 1);
    ck_assert_uint_eq(INFO(f.b).generation, 1);
    ck_assert_uint_eq(r->n, 1);
    CK_TRANSITION(&r->t[0], CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD, thr);
    ck_assert_uint_eq(r->t[0].generation, 1);
    cb_info i = INFO(f.b);
    ck_assert_uint_eq(i.history_len, 1);
    CK_NEWEST_IS_CURRENT(i);
    ACQ(f.b, CB_REJECTED);

    REC_DONE(f.b, r);
    fx_done(&f);
}
END_TEST

/* A permit issued at count 0 still reports into the same generation after
 * other failures raised the count: its success clears the count. */
START_TEST(test_closed_success_clears_later_count)
{
    fx f = fx_open("clear", 3, RESET, PROBE);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    FAIL_N(f.b, 2);
    CK_STATE(f.b, CB_CLOSED, 2);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_CLOSED, 0);
    CK_COUNTERS(f.b, 3, 0, 1, 2, 0, 0, 0, 0);
    /* Failures admitted before the trip each count once: no lost update. */
    cb_permit q[3];
    for (int k = 0; k < 3; k++)
        q[k] = ACQ(f.b, CB_ALLOWED);
    for (int k = 0; k < 3; k++)
        cb_failure(f.b, &q[k]);
    CK_STATE(f.b, CB_OPEN, 0);
    CK_COUNTERS(f.b, 6, 0, 1, 5, 0, 0, 1, 0);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------- open */

static const uint32_t reset_timeouts[] = {1, 7, RESET, 60000, 86400000};

START_TEST(test_open_rejects_until_reset)
{
    uint32_t reset = reset_timeouts[_i];
    fx f = fx_open("open", 3, reset, PROBE);
    trip_by_failures(&f);
    CK_COUNTERS(f.b, 3, 0, 0, 3, 0, 0, 1, 0);

    ACQ(f.b, CB_REJECTED);
    advance(&f, reset - 1);
    for (int k = 0; k < 3; k++)
        ACQ(f.b, CB_REJECTED);
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_uint_eq(INFO(f.b).ms_until_probe, 1);

    advance(&f, 1);
    ck_assert_uint_eq(INFO(f.b).ms_until_probe, 0);
    ACQ(f.b, CB_PROBE);
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    /* Everyone else is rejected while the probe is in flight. */
    for (int k = 0; k < 5; k++)
        ACQ(f.b, CB_REJECTED);
    advance(&f, PROBE - 1);
    ACQ(f.b, CB_REJECTED);
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    CK_COUNTERS(f.b, 4, 10, 0, 3, 0, 0, 1, 1);
    fx_done(&f);
}
END_TEST

/* Long after the timeout, the first acquire is still the probe. */
START_TEST(test_open_probe_long_after)
{
    fx f = fx_open("openlong", 2, RESET, PROBE);
    trip_by_failures(&f);
    advance(&f, 50 * RESET);
    ACQ(f.b, CB_PROBE);
    ACQ(f.b, CB_REJECTED);
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    fx_done(&f);
}
END_TEST

/* -------------------------------------------------------------- half open */

START_TEST(test_probe_success_closes)
{
    fx f = fx_open("psucc", 3, RESET, PROBE);
    trip_by_failures(&f);
    advance(&f, RESET);
    cb_permit p = ACQ(f.b, CB_PROBE);
    uint32_t gen = INFO(f.b).generation;
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_CLOSED, 0);
    ck_assert_uint_eq(INFO(f.b).generation, gen + 1);
    /* Count restarted at 0: threshold-1 failures do not trip. */
    FAIL_N(f.b, 2);
    CK_STATE(f.b, CB_CLOSED, 2);
    FAIL_N(f.b, 1);
    CK_STATE(f.b, CB_OPEN, 0);
    CK_COUNTERS(f.b, 7, 0, 1, 6, 0, 0, 2, 1);
    fx_done(&f);
}
END_TEST

START_TEST(test_probe_failure_reopens_fresh)
{
    fx f = fx_open("pfail", 3, RESET, PROBE);
    trip_by_failures(&f); /* trip at T0 */
    advance(&f, RESET);
    cb_permit p = ACQ(f.b, CB_PROBE); /* at T0+RESET */
    advance(&f, 200);
    cb_failure(f.b, &p); /* at T0+RESET+200 */
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_uint_eq(INFO(f.b).ms_until_probe, RESET);
    ck_assert_uint_eq(INFO(f.b).counters.trips, 2);
    /* Measured from the failure: neither from the first trip (T0+RESET)
     * nor from the probe grant (T0+2*RESET). */
    advance(&f, RESET - 1);
    ACQ(f.b, CB_REJECTED);
    CK_STATE(f.b, CB_OPEN, 0);
    advance(&f, 1);
    ACQ(f.b, CB_PROBE);
    fx_done(&f);
}
END_TEST

/* The lease expires after probe_timeout; whatever the old holder reports
 * afterwards is late and does not disturb the new probe. */
START_TEST(test_probe_lease_expiry)
{
    int kind = _i;
    fx f = fx_open("lease", 3, RESET, PROBE);
    struct rec *r = rec_new(f.b);
    cb_set_listener(f.b, rec_listener, r);
    trip_by_failures(&f);
    advance(&f, RESET);
    cb_permit old = ACQ(f.b, CB_PROBE);
    advance(&f, PROBE - 1);
    ACQ(f.b, CB_REJECTED);
    ck_assert_uint_eq(r->n, 2);
    advance(&f, 1);
    cb_permit fresh = ACQ(f.b, CB_PROBE);
    ck_assert_uint_eq(r->n, 3);
    CK_TRANSITION(&r->t[2], CB_HALF_OPEN, CB_HALF_OPEN, CB_REASON_LEASE_EXPIRED, 0);

    cb_info before = INFO(f.b);
    report(f.b, &old, kind);
    cb_info after = INFO(f.b);
    ck_assert_msg(after.counters.late == before.counters.late + 1, "%s of the old probe not late", report_names[kind]);
    before.counters.late++;
    CK_COUNTERS_EQ(f.b, before.counters);
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    ck_assert_uint_eq(after.generation, before.generation);
    ck_assert_int_eq(after.probe_pid, getpid());
    ck_assert_uint_eq(after.probe_lease_ms, PROBE);
    ck_assert_uint_eq(r->n, 3);
    ACQ(f.b, CB_REJECTED); /* the fresh probe still holds the slot */

    cb_success(f.b, &fresh);
    CK_STATE(f.b, CB_CLOSED, 0);
    ck_assert_uint_eq(r->n, 4);
    CK_TRANSITION(&r->t[3], CB_HALF_OPEN, CB_CLOSED, CB_REASON_PROBE_SUCCEEDED, 0);
    /* trips: only the threshold trip; probes: 2 */
    CK_COUNTERS(f.b, 5, 2, 1, 3, 0, 1, 1, 2);

    REC_DONE(f.b, r);
    fx_done(&f);
}
END_TEST

START_TEST(test_release_call_permit)
{
    fx f = fx_open("relcall", 3, RESET, PROBE);
    struct rec *r = rec_new(f.b);
    cb_set_listener(f.b, rec_listener, r);
    FAIL_N(f.b, 2);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    cb_release(f.b, &p);
    CK_STATE(f.b, CB_CLOSED, 2);
    ck_assert_uint_eq(INFO(f.b).generation, 0);
    ck_assert_uint_eq(r->n, 0);
    CK_COUNTERS(f.b, 3, 0, 0, 2, 1, 0, 0, 0);

    /* A call permit released after the circuit moved on changes nothing
     * and is accounted for exactly once (as released or late). */
    p = ACQ(f.b, CB_ALLOWED);
    FAIL_N(f.b, 1);
    CK_STATE(f.b, CB_OPEN, 0);
    cb_info before = INFO(f.b);
    cb_release(f.b, &p);
    cb_info after = INFO(f.b);
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_uint_eq(after.generation, before.generation);
    ck_assert_uint_eq(after.ms_until_probe, before.ms_until_probe);
    ck_assert_uint_eq(after.counters.released + after.counters.late,
                      before.counters.released + before.counters.late + 1);
    ck_assert_uint_eq(r->n, 1);

    REC_DONE(f.b, r);
    fx_done(&f);
}
END_TEST

START_TEST(test_release_probe_permit)
{
    fx f = fx_open("relprobe", 3, RESET, PROBE);
    struct rec *r = rec_new(f.b);
    cb_set_listener(f.b, rec_listener, r);
    trip_by_failures(&f);
    advance(&f, RESET);
    cb_permit p1 = ACQ(f.b, CB_PROBE);
    ck_assert_uint_eq(r->n, 2);
    advance(&f, 100);

    cb_release(f.b, &p1);
    cb_info i = INFO(f.b);
    ck_assert_int_eq(i.state, CB_HALF_OPEN);
    ck_assert_int_eq(i.probe_pid, 0);
    ck_assert_uint_eq(i.probe_lease_ms, 0);
    ck_assert_uint_eq(r->n, 2); /* not a transition */
    CK_COUNTERS(f.b, 4, 0, 0, 3, 1, 0, 1, 1);

    /* The slot is free at once: no waiting for the lease. */
    cb_permit p2 = ACQ(f.b, CB_PROBE);
    ck_assert_uint_eq(r->n, 2);
    ck_assert_int_eq(INFO(f.b).probe_pid, getpid());
    ACQ(f.b, CB_REJECTED);
    CK_COUNTERS(f.b, 5, 1, 0, 3, 1, 0, 1, 2);

    /* Its lease runs from the new grant. */
    advance(&f, PROBE - 1);
    ACQ(f.b, CB_REJECTED);
    advance(&f, 1);
    cb_permit p3 = ACQ(f.b, CB_PROBE);
    ck_assert_uint_eq(r->n, 3);
    CK_TRANSITION(&r->t[2], CB_HALF_OPEN, CB_HALF_OPEN, CB_REASON_LEASE_EXPIRED, 0);

    cb_release(f.b, &p1); /* second report of p1: spent, ignored */
    cb_success(f.b, &p2); /* lease lost */
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    CK_COUNTERS(f.b, 6, 2, 0, 3, 1, 1, 1, 3);
    cb_failure(f.b, &p3);
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_uint_eq(r->n, 4);

    REC_DONE(f.b, r);
    fx_done(&f);
}
END_TEST

/* The first report of a probe permit applies and empties the permit; the
 * second (any kind) is ignored: no change, not even a count. _i = first *
 * 3 + second. */
START_TEST(test_probe_double_report)
{
    int first = _i / R_COUNT, second = _i % R_COUNT;
    static const cb_state after_first[R_COUNT] = {CB_CLOSED, CB_OPEN, CB_HALF_OPEN};
    fx f = fx_open("double", 3, RESET, PROBE);
    trip_by_failures(&f);
    advance(&f, RESET);
    cb_permit p = ACQ(f.b, CB_PROBE);
    advance(&f, 10);
    report(f.b, &p, first);
    CK_STATE(f.b, after_first[first], 0);
    ck_assert(p.opaque[0] == 0 && p.opaque[1] == 0); /* spent */
    advance(&f, 10);

    cb_info before = INFO(f.b);
    report(f.b, &p, second);
    cb_info after = INFO(f.b);
    ck_assert_msg(after.state == before.state && after.generation == before.generation &&
                      after.ms_until_probe == before.ms_until_probe && after.failures == before.failures,
                  "%s then %s: the second report changed the circuit", report_names[first], report_names[second]);
    CK_COUNTERS_EQ(f.b, before.counters);
    fx_done(&f);
}
END_TEST

/* A call permit reported twice counts once, whatever the two reports. */
START_TEST(test_call_double_report)
{
    int first = _i / R_COUNT, second = _i % R_COUNT;
    fx f = fx_open("calldouble", 10, RESET, PROBE);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    report(f.b, &p, first);
    ck_assert(p.opaque[0] == 0 && p.opaque[1] == 0); /* spent */
    cb_info before = INFO(f.b);
    report(f.b, &p, second);
    cb_info after = INFO(f.b);
    ck_assert_msg(after.failures == before.failures && after.state == before.state,
                  "%s then %s: the second report changed the circuit", report_names[first], report_names[second]);
    CK_COUNTERS_EQ(f.b, before.counters);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------ stale */

START_TEST(test_stale_failure_does_not_extend_open)
{
    fx f = fx_open("stalefail", 3, RESET, PROBE);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    trip_by_failures(&f); /* OPEN at T0 */
    advance(&f, 500);
    cb_failure(f.b, &p);
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_uint_eq(INFO(f.b).ms_until_probe, RESET - 500);
    CK_COUNTERS(f.b, 4, 0, 0, 3, 0, 1, 1, 0);
    advance(&f, RESET - 500 - 1);
    ACQ(f.b, CB_REJECTED);
    advance(&f, 1);
    ACQ(f.b, CB_PROBE); /* at T0+RESET, not T0+500+RESET */
    fx_done(&f);
}
END_TEST

START_TEST(test_stale_success_does_not_close)
{
    fx f = fx_open("stalesucc", 3, RESET, PROBE);
    cb_permit p = ACQ(f.b, CB_ALLOWED), q = ACQ(f.b, CB_ALLOWED), s = ACQ(f.b, CB_ALLOWED);
    trip_by_failures(&f);
    cb_success(f.b, &p);
    CK_STATE(f.b, CB_OPEN, 0);
    CK_COUNTERS(f.b, 6, 0, 0, 3, 0, 1, 1, 0);

    /* Nor does a call permit from CLOSED settle the HALF_OPEN probe. */
    advance(&f, RESET);
    cb_permit probe = ACQ(f.b, CB_PROBE);
    cb_success(f.b, &q);
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    cb_failure(f.b, &s);
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    ck_assert_int_eq(INFO(f.b).probe_pid, getpid());
    ACQ(f.b, CB_REJECTED);
    CK_COUNTERS(f.b, 7, 1, 0, 3, 0, 3, 1, 1);
    cb_success(f.b, &probe);
    CK_STATE(f.b, CB_CLOSED, 0);
    fx_done(&f);
}
END_TEST

START_TEST(test_stale_across_trip_reset)
{
    fx f = fx_open("stalecycle", 3, RESET, PROBE);
    FAIL_N(f.b, 2);
    cb_permit p = ACQ(f.b, CB_ALLOWED), q = ACQ(f.b, CB_ALLOWED);
    ck_assert_int_eq(cb_trip(f.b), CB_CLOSED);
    ck_assert_int_eq(cb_reset(f.b), CB_OPEN);
    CK_STATE(f.b, CB_CLOSED, 0);
    FAIL_N(f.b, 2);
    CK_STATE(f.b, CB_CLOSED, 2);
    cb_success(f.b, &p); /* would clear the count if applied */
    CK_STATE(f.b, CB_CLOSED, 2);
    cb_failure(f.b, &q); /* would trip if applied */
    CK_STATE(f.b, CB_CLOSED, 2);
    CK_COUNTERS(f.b, 6, 0, 0, 4, 0, 2, 1, 0);
    fx_done(&f);
}
END_TEST

/* --------------------------------------------------------------- operator */

/* _i = start state * 2 + op (0 reset, 1 trip). */
START_TEST(test_operator)
{
    cb_state start = (cb_state)(_i / 2);
    int trip = _i % 2;
    fx f = fx_open("oper", 3, RESET, PROBE);
    cb_permit inflight;
    switch (start) {
    case CB_CLOSED: /* a call in flight, count 2 */
        inflight = ACQ(f.b, CB_ALLOWED);
        FAIL_N(f.b, 2);
        break;
    case CB_OPEN: /* tripped 400 ms ago */
        inflight = ACQ(f.b, CB_ALLOWED);
        trip_by_failures(&f);
        advance(&f, 400);
        break;
    default: /* a probe in flight for 100 ms */
        trip_by_failures(&f);
        advance(&f, RESET);
        inflight = ACQ(f.b, CB_PROBE);
        advance(&f, 100);
        break;
    }
    ck_assert_int_eq(cb_get_state(f.b), start);
    struct rec *r = rec_new(f.b);
    cb_set_listener(f.b, rec_listener, r);
    cb_info before = INFO(f.b);

    /* The state it replaced, also when it is the state it forces. */
    ck_assert_int_eq(trip ? cb_trip(f.b) : cb_reset(f.b), (int)start);

    cb_info after = INFO(f.b);
    cb_state to = trip ? CB_OPEN : CB_CLOSED;
    ck_assert_uint_eq(after.generation, before.generation + 1);
    ck_assert_uint_eq(r->n, 1);
    CK_TRANSITION(&r->t[0], start, to, trip ? CB_REASON_TRIP : CB_REASON_RESET, 0);
    ck_assert_str_eq(r->circuit[0], f.name);
    ck_assert_uint_eq(r->t[0].generation, after.generation);
    ck_assert_uint_eq(after.history_len, before.history_len + 1);
    CK_TRANSITION(&after.history[0], start, to, trip ? CB_REASON_TRIP : CB_REASON_RESET, 0);
    CK_NEWEST_IS_CURRENT(after);
    ck_assert_uint_eq(after.counters.trips, before.counters.trips + (unsigned)trip);
    ck_assert_int_eq(after.probe_pid, 0);
    ck_assert_uint_eq(after.probe_lease_ms, 0);

    if (trip) {
        CK_STATE(f.b, CB_OPEN, 0);
        ck_assert_uint_eq(after.ms_until_probe, RESET); /* fresh, not RESET-400 */
        cb_success(f.b, &inflight); /* late: does not close */
        CK_STATE(f.b, CB_OPEN, 0);
        ck_assert_uint_eq(INFO(f.b).counters.late, before.counters.late + 1);
        advance(&f, RESET - 1);
        ACQ(f.b, CB_REJECTED);
        advance(&f, 1);
        ACQ(f.b, CB_PROBE);
    } else {
        CK_STATE(f.b, CB_CLOSED, 0);
        ck_assert_uint_eq(after.ms_until_probe, 0);
        cb_failure(f.b, &inflight); /* late: does not count (or trip) */
        CK_STATE(f.b, CB_CLOSED, 0);
        ck_assert_uint_eq(INFO(f.b).counters.late, before.counters.late + 1);
        ck_assert_uint_eq(INFO(f.b).counters.failures, before.counters.failures);
        FAIL_N(f.b, 2);
        CK_STATE(f.b, CB_CLOSED, 2);
        FAIL_N(f.b, 1);
        CK_STATE(f.b, CB_OPEN, 0);
    }
    REC_DONE(f.b, r);
    fx_done(&f);
}
END_TEST

/* ---------------------------------------------------------------- ignored */

/* Permits that admit nothing on circuit A: empty (a rejection of A), all
 * zero, and permits of another circuit B (call and probe). */
enum { P_EMPTY, P_ZERO, P_FOREIGN_CALL, P_FOREIGN_PROBE, P_COUNT };

struct ignored_setup {
    fx a, other;
    cb_permit bad[P_COUNT];
};

static void ignored_setup(struct ignored_setup *s, int half_open)
{
    s->a = fx_open("ignA", 3, RESET, PROBE);
    s->other = fx_open("ignB", 1, RESET, PROBE);
    trip_by_failures(&s->a);
    s->bad[P_EMPTY] = ACQ(s->a.b, CB_REJECTED);
    memset(&s->bad[P_ZERO], 0, sizeof s->bad[P_ZERO]);
    s->bad[P_FOREIGN_CALL] = ACQ(s->other.b, CB_ALLOWED);
    FAIL_N(s->other.b, 1);
    advance(&s->other, RESET);
    s->bad[P_FOREIGN_PROBE] = ACQ(s->other.b, CB_PROBE);
    if (half_open) {
        advance(&s->a, RESET);
    } else {
        ck_assert_int_eq(cb_reset(s->a.b), CB_OPEN);
        FAIL_N(s->a.b, 2); /* a failure would trip, a success would clear */
    }
}

static void ignored_check_all(struct ignored_setup *s)
{
    cb_info a0 = INFO(s->a.b), b0 = INFO(s->other.b);
    for (int k = 0; k < P_COUNT; k++)
        for (int rk = 0; rk < R_COUNT; rk++) {
            report(s->a.b, &s->bad[k], rk);
            cb_info a1 = INFO(s->a.b), b1 = INFO(s->other.b);
            ck_assert_msg(a1.state == a0.state && a1.failures == a0.failures && a1.generation == a0.generation &&
                              memcmp(&a1.counters, &a0.counters, sizeof a0.counters) == 0,
                          "permit kind %d, %s: circuit A changed", k, report_names[rk]);
            ck_assert_msg(b1.state == b0.state && b1.generation == b0.generation &&
                              memcmp(&b1.counters, &b0.counters, sizeof b0.counters) == 0,
                          "permit kind %d, %s: circuit B changed", k, report_names[rk]);
        }
}

static void ignored_teardown(struct ignored_setup *s)
{
    fx_done(&s->a);
    fx_done(&s->other);
}

START_TEST(test_ignored_permits_closed)
{
    struct ignored_setup s;
    ignored_setup(&s, 0);
    ignored_check_all(&s);
    CK_STATE(s.a.b, CB_CLOSED, 2);
    /* Positive control: a real permit still trips it. */
    FAIL_N(s.a.b, 1);
    CK_STATE(s.a.b, CB_OPEN, 0);
    ignored_teardown(&s);
}
END_TEST

START_TEST(test_ignored_permits_half_open)
{
    struct ignored_setup s;
    ignored_setup(&s, 1);
    cb_permit probe = ACQ(s.a.b, CB_PROBE);
    ignored_check_all(&s);
    CK_STATE(s.a.b, CB_HALF_OPEN, 0);
    ACQ(s.a.b, CB_REJECTED); /* the probe was not released by them */
    cb_success(s.a.b, &probe);
    CK_STATE(s.a.b, CB_CLOSED, 0);
    /* The foreign permits still work on their own circuit. */
    cb_success(s.other.b, &s.bad[P_FOREIGN_PROBE]);
    CK_STATE(s.other.b, CB_CLOSED, 0);
    ignored_teardown(&s);
}
END_TEST

/* A permit issued through one handle reports through another handle of the
 * same circuit: it is not foreign. */
START_TEST(test_permit_other_handle_same_circuit)
{
    fx f = fx_open("samecirc", 2, RESET, PROBE);
    cb_breaker *b2 = NULL;
    ck_assert_int_eq(cb_open(f.name, NULL, &b2), CB_OPENED);
    cb_set_clock(b2, tl_clock_read, f.clk);
    cb_permit p = ACQ(b2, CB_ALLOWED), q = ACQ(b2, CB_ALLOWED);
    cb_failure(f.b, &p);
    CK_STATE(f.b, CB_CLOSED, 1);
    cb_failure(f.b, &q);
    CK_STATE(b2, CB_OPEN, 0);
    cb_close(b2);
    fx_done(&f);
}
END_TEST

static int ignored_calls;
static cb_outcome count_call(void *arg)
{
    (void)arg;
    ignored_calls++;
    return CB_SUCCESS;
}

START_TEST(test_ignored_null_args)
{
    fx f = fx_open("null", 3, RESET, PROBE);
    FAIL_N(f.b, 2);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    cb_info i0 = INFO(f.b);

    cb_permit np;
    memset(&np, 0xa5, sizeof np);
    ck_assert_int_eq(cb_acquire(NULL, &np), CB_REJECTED);
    ck_assert(np.opaque[0] == 0 && np.opaque[1] == 0);
    cb_success(NULL, &p);
    cb_failure(NULL, &p);
    cb_release(NULL, &p);
    cb_success(f.b, NULL);
    cb_failure(f.b, NULL);
    cb_release(f.b, NULL);
    cb_success(NULL, NULL);
    ignored_calls = 0;
    ck_assert_int_eq(cb_call(NULL, count_call, NULL), CB_REJECTED);
    ck_assert_int_eq(ignored_calls, 0);
    ck_assert_int_eq(cb_get_state(NULL), CB_CLOSED);
    cb_info junk;
    ck_assert_int_eq(cb_get_info(NULL, &junk), -EINVAL);
    ck_assert_int_eq(cb_get_info(f.b, NULL), -EINVAL);
    ck_assert_int_eq(cb_reset(NULL), -EINVAL);
    ck_assert_int_eq(cb_trip(NULL), -EINVAL);
    cb_set_listener(NULL, rec_listener, NULL);
    cb_set_clock(NULL, tl_clock_read, f.clk);
    cb_log_listener(NULL, NULL);
    cb_close(NULL);

    cb_info i1 = INFO(f.b);
    ck_assert_int_eq(i1.state, i0.state);
    ck_assert_uint_eq(i1.failures, 2);
    ck_assert_uint_eq(i1.generation, i0.generation);
    CK_COUNTERS_EQ(f.b, i0.counters);

    /* acquire with a NULL permit: rejected, changes no state. */
    ck_assert_int_eq(cb_acquire(f.b, NULL), CB_REJECTED);
    CK_STATE(f.b, CB_CLOSED, 2);

    /* p was untouched by all of the above: it still trips the circuit. */
    cb_failure(f.b, &p);
    CK_STATE(f.b, CB_OPEN, 0);
    fx_done(&f);
}
END_TEST

/* --------------------------------------------------------------- counters */

struct call_arg {
    int calls;
    cb_outcome outcome;
};

static cb_outcome call_fn(void *arg)
{
    struct call_arg *a = arg;
    a->calls++;
    return a->outcome;
}

START_TEST(test_counters_script)
{
    fx f = fx_open("counters", 2, RESET, PROBE);
    cb_breaker *b = f.b;
    CK_COUNTERS(b, 0, 0, 0, 0, 0, 0, 0, 0);

    cb_permit a = ACQ(b, CB_ALLOWED);
    cb_success(b, &a);
    cb_permit rel = ACQ(b, CB_ALLOWED);
    cb_release(b, &rel);
    CK_COUNTERS(b, 2, 0, 1, 0, 1, 0, 0, 0);

    cb_permit c = ACQ(b, CB_ALLOWED), d = ACQ(b, CB_ALLOWED);
    cb_failure(b, &c);
    cb_permit e = ACQ(b, CB_ALLOWED);
    cb_failure(b, &d); /* trips */
    cb_failure(b, &e); /* late */
    CK_COUNTERS(b, 5, 0, 1, 2, 1, 1, 1, 0);

    for (int k = 0; k < 3; k++)
        ACQ(b, CB_REJECTED);
    advance(&f, RESET);
    cb_permit p1 = ACQ(b, CB_PROBE);
    ACQ(b, CB_REJECTED);
    cb_release(b, &p1);
    cb_permit p2 = ACQ(b, CB_PROBE);
    CK_COUNTERS(b, 7, 4, 1, 2, 2, 1, 1, 2);

    advance(&f, PROBE);
    cb_permit p3 = ACQ(b, CB_PROBE); /* lease expired */
    cb_success(b, &p2);              /* late */
    cb_failure(b, &p3);              /* re-opens */
    CK_COUNTERS(b, 8, 4, 1, 3, 2, 2, 2, 3);

    advance(&f, RESET);
    cb_permit p4 = ACQ(b, CB_PROBE);
    cb_success(b, &p4);
    CK_STATE(b, CB_CLOSED, 0);
    CK_COUNTERS(b, 9, 4, 2, 3, 2, 2, 2, 4);

    struct call_arg ok = {0, CB_SUCCESS}, none = {0, CB_NO_VERDICT}, bad = {0, CB_FAILURE};
    ck_assert_int_eq(cb_call(b, call_fn, &ok), CB_ALLOWED);
    ck_assert_int_eq(cb_call(b, call_fn, &none), CB_ALLOWED);
    ck_assert_int_eq(cb_call(b, call_fn, &bad), CB_ALLOWED);
    CK_STATE(b, CB_CLOSED, 1);
    ck_assert_int_eq(cb_trip(b), CB_CLOSED);
    ck_assert_int_eq(cb_call(b, call_fn, &ok), CB_REJECTED);
    ck_assert_int_eq(cb_reset(b), CB_OPEN);

    CK_COUNTERS(b, 12, 5, 3, 4, 3, 2, 3, 4);
    cb_counters c_ = INFO(b).counters;
    ck_assert_uint_eq(c_.allowed, c_.successes + c_.failures + c_.released + c_.late);
    fx_done(&f);
}
END_TEST

/* ----------------------------------------------------------------- events */

/* A script with every kind of transition and some non-transitions; returns
 * the number of expected events, filled into want[] with their clock. */
struct want_event {
    cb_state from, to;
    cb_reason reason;
    uint32_t failures;
    uint64_t mono;
    uint32_t generation; /* the circuit's, after the call that made it */
};

static unsigned run_event_script(fx *f, struct rec *r, struct want_event *want)
{
    cb_breaker *b = f->b;
    unsigned n = 0;
#define WANT(fr, t, why, fails) \
    (want[n++] = (struct want_event){(fr), (t), (why), (fails), now_of(f), INFO(b).generation})
    FAIL_N(b, 1); /* count change: no event */
    cb_permit s = ACQ(b, CB_ALLOWED);
    cb_success(b, &s); /* count cleared: no event */
    ck_assert_uint_eq(r->n, 0);
    FAIL_N(b, 2);
    WANT(CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD, 2);
    ACQ(b, CB_REJECTED);
    ACQ(b, CB_REJECTED);
    ck_assert_uint_eq(r->n, 1);

    advance(f, RESET);
    cb_permit p1 = ACQ(b, CB_PROBE);
    WANT(CB_OPEN, CB_HALF_OPEN, CB_REASON_TIMEOUT, 0);
    cb_release(b, &p1); /* probe release: no event */
    cb_permit p2 = ACQ(b, CB_PROBE); /* free slot taken: no event */
    ck_assert_uint_eq(r->n, 2);

    advance(f, PROBE);
    cb_permit p3 = ACQ(b, CB_PROBE);
    WANT(CB_HALF_OPEN, CB_HALF_OPEN, CB_REASON_LEASE_EXPIRED, 0);
    cb_success(b, &p2); /* late: no event */
    advance(f, 50);
    cb_failure(b, &p3);
    WANT(CB_HALF_OPEN, CB_OPEN, CB_REASON_PROBE_FAILED, 1);

    advance(f, RESET);
    cb_permit p4 = ACQ(b, CB_PROBE);
    WANT(CB_OPEN, CB_HALF_OPEN, CB_REASON_TIMEOUT, 0);
    advance(f, 10);
    cb_success(b, &p4);
    WANT(CB_HALF_OPEN, CB_CLOSED, CB_REASON_PROBE_SUCCEEDED, 0);

    FAIL_N(b, 1);
    advance(f, 5);
    ck_assert_int_eq(cb_trip(b), CB_CLOSED);
    WANT(CB_CLOSED, CB_OPEN, CB_REASON_TRIP, 0);
    advance(f, 5);
    ck_assert_int_eq(cb_reset(b), CB_OPEN);
    WANT(CB_OPEN, CB_CLOSED, CB_REASON_RESET, 0);
#undef WANT
    return n;
}

START_TEST(test_listener_and_history)
{
    fx f = fx_open("listen", 2, RESET, PROBE);
    struct rec *r = rec_new(f.b);
    struct want_event want[16];
    cb_set_listener(f.b, rec_listener, r);
    unsigned n = run_event_script(&f, r, want);

    ck_assert_uint_eq(r->n, n);
    for (unsigned k = 0; k < n; k++) {
        CK_TRANSITION(&r->t[k], want[k].from, want[k].to, want[k].reason, want[k].failures);
        ck_assert_str_eq(r->circuit[k], f.name);
        ck_assert_msg(r->t[k].generation == want[k].generation, "event %u (%s): generation %u, want %u", k,
                      cb_reason_name(want[k].reason), r->t[k].generation, want[k].generation);
    }
    /* The probe release and the re-take of the free slot (between events
     * 1 and 2) bump the generation without a transition: a gap of 3. */
    static const uint32_t want_gen[] = {1, 2, 5, 6, 7, 8, 9, 10};
    ck_assert_uint_eq(n, sizeof want_gen / sizeof want_gen[0]);
    for (unsigned k = 0; k < n; k++)
        ck_assert_uint_eq(r->t[k].generation, want_gen[k]);

    /* History: the same transitions, newest first. Generation counts the
     * probe release and the re-take too (state_word.h), so it exceeds n. */
    cb_info i = INFO(f.b);
    ck_assert_uint_eq(i.generation, n + 2);
    ck_assert_uint_eq(i.history_len, n);
    CK_NEWEST_IS_CURRENT(i);
    for (unsigned k = 0; k < n; k++) {
        const cb_transition *h = &i.history[k], *e = &r->t[n - 1 - k];
        CK_TRANSITION(h, e->from, e->to, e->reason, e->failures);
        ck_assert_uint_eq(h->wall_ms, e->wall_ms);
        ck_assert_uint_eq(h->generation, e->generation);
    }

    /* Removed: not called any more; the history still records. */
    cb_set_listener(f.b, NULL, NULL);
    ck_assert_int_eq(cb_trip(f.b), CB_CLOSED);
    ck_assert_uint_eq(r->n, n);
    REC_DONE(f.b, r);
    i = INFO(f.b);
    ck_assert_uint_eq(i.history_len, n + 1);
    CK_TRANSITION(&i.history[0], CB_CLOSED, CB_OPEN, CB_REASON_TRIP, 0);
    ck_assert_uint_eq(i.history[0].generation, n + 3);
    CK_NEWEST_IS_CURRENT(i);
    fx_done(&f);
}
END_TEST

/* cb_event.mono_ms is the handle's clock (here the manual one) at every
 * transition. */
START_TEST(test_listener_mono_ms)
{
    fx f = fx_open("mono", 2, RESET, PROBE);
    struct rec *r = rec_new(f.b);
    struct want_event want[16];
    cb_set_listener(f.b, rec_listener, r);
    unsigned n = run_event_script(&f, r, want);
    ck_assert_uint_eq(r->n, n);
    /* Collect every mismatch, clean up, then fail with the whole list. */
    char bad[1024] = "";
    size_t len = 0;
    for (unsigned k = 0; k < n; k++)
        if (r->mono[k] != want[k].mono && len < sizeof bad)
            len += (size_t)snprintf(bad + len, sizeof bad - len, "\n  event %u (%s): mono_ms %llu, want %llu", k,
                                    cb_reason_name(want[k].reason), (unsigned long long)r->mono[k],
                                    (unsigned long long)want[k].mono);
    REC_DONE(f.b, r);
    fx_done(&f);
    ck_assert_msg(bad[0] == '\0', "cb_event.mono_ms is not the handle's clock:%s", bad);
}
END_TEST

/* More than CB_HISTORY_MAX transitions: the ring keeps the newest. */
START_TEST(test_history_overflow)
{
    fx f = fx_open("ring", 3, RESET, PROBE);
    trip_by_failures(&f); /* transition 1: the only THRESHOLD one */
    /* transitions 2..total: even k reset (OPEN->CLOSED), odd k trip. */
    const unsigned total = CB_HISTORY_MAX + 8;
    for (unsigned k = 2; k <= total; k++) {
        /* A trip replaces the CLOSED of a reset, a reset the OPEN of a trip. */
        ck_assert_int_eq(k % 2 ? cb_trip(f.b) : cb_reset(f.b), k % 2 ? CB_CLOSED : CB_OPEN);
        cb_info i = INFO(f.b);
        ck_assert_uint_eq(i.generation, k);
        ck_assert_uint_eq(i.history_len, k < CB_HISTORY_MAX ? k : CB_HISTORY_MAX);
        CK_NEWEST_IS_CURRENT(i);
        if (k == CB_HISTORY_MAX) /* still holds the first */
            CK_TRANSITION(&i.history[CB_HISTORY_MAX - 1], CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD, 3);
    }
    cb_info i = INFO(f.b);
    ck_assert_uint_eq(i.history_len, CB_HISTORY_MAX);
    for (unsigned h = 0; h < CB_HISTORY_MAX; h++) {
        unsigned k = total - h; /* history[h] is transition k, of generation k */
        ck_assert_uint_eq(i.history[h].generation, k);
        if (k % 2)
            CK_TRANSITION(&i.history[h], CB_CLOSED, CB_OPEN, CB_REASON_TRIP, 0);
        else
            CK_TRANSITION(&i.history[h], CB_OPEN, CB_CLOSED, CB_REASON_RESET, 0);
    }
    fx_done(&f);
}
END_TEST

START_TEST(test_log_listener)
{
    fx f = fx_open("log", 3, RESET, PROBE);
    cb_set_listener(f.b, cb_log_listener, NULL);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(pipefd[1], STDERR_FILENO), 0);
    close(pipefd[1]);

    FAIL_N(f.b, 2); /* count changes: nothing written */
    FAIL_N(f.b, 1); /* the trip: one line */

    fflush(stderr);
    dup2(saved, STDERR_FILENO); /* closes the last write end */
    close(saved);
    char buf[2048];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof buf - 1 && (got = read(pipefd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    close(pipefd[0]);
    buf[len] = '\0';

    char want[512];
    snprintf(want, sizeof want,
             "event=circuit_breaker_opened circuit=%s from=CLOSED to=OPEN reason=threshold_reached failures=3 pid=%d ",
             f.name, (int)getpid());
    ck_assert_msg(strstr(buf, want) != NULL, "log output:\n%s\nlacks:\n%s", buf, want);
    ck_assert_msg(strncmp(buf, "event=", 6) == 0, "log output does not start with event=: %s", buf);
    ck_assert_msg(len > 0 && buf[len - 1] == '\n' && strchr(buf, '\n') == buf + len - 1,
                  "want exactly one line, got:\n%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, " wall_ms="));
    cb_set_listener(f.b, NULL, NULL);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------- call */

START_TEST(test_call)
{
    fx f = fx_open("call", 2, RESET, PROBE);
    struct call_arg ok = {0, CB_SUCCESS}, bad = {0, CB_FAILURE}, none = {0, CB_NO_VERDICT};

    ck_assert_int_eq(cb_call(f.b, call_fn, &bad), CB_ALLOWED);
    CK_STATE(f.b, CB_CLOSED, 1);
    ck_assert_int_eq(cb_call(f.b, call_fn, &ok), CB_ALLOWED); /* success recorded: clears */
    CK_STATE(f.b, CB_CLOSED, 0);
    ck_assert_int_eq(cb_call(f.b, call_fn, &bad), CB_ALLOWED);
    ck_assert_int_eq(cb_call(f.b, call_fn, &none), CB_ALLOWED); /* released: count stays */
    CK_STATE(f.b, CB_CLOSED, 1);
    ck_assert_int_eq(cb_call(f.b, call_fn, &bad), CB_ALLOWED); /* failure recorded: trips */
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_int_eq(ok.calls, 1);
    ck_assert_int_eq(bad.calls, 3);
    ck_assert_int_eq(none.calls, 1);

    /* Open: fn is not called. */
    ck_assert_int_eq(cb_call(f.b, call_fn, &ok), CB_REJECTED);
    ck_assert_int_eq(ok.calls, 1);

    /* The probe: CB_PROBE; no verdict frees the slot at once. */
    advance(&f, RESET);
    ck_assert_int_eq(cb_call(f.b, call_fn, &none), CB_PROBE);
    ck_assert_int_eq(none.calls, 2);
    CK_STATE(f.b, CB_HALF_OPEN, 0);
    ck_assert_int_eq(cb_call(f.b, call_fn, &bad), CB_PROBE); /* probe failure */
    CK_STATE(f.b, CB_OPEN, 0);
    advance(&f, RESET);
    ck_assert_int_eq(cb_call(f.b, call_fn, &ok), CB_PROBE); /* probe success */
    CK_STATE(f.b, CB_CLOSED, 0);
    CK_COUNTERS(f.b, 8, 1, 2, 4, 2, 0, 2, 3);

    /* fn NULL: CB_REJECTED, whatever the state, nothing counted. */
    cb_counters c0 = INFO(f.b).counters;
    ck_assert_int_eq(cb_call(f.b, NULL, &ok), CB_REJECTED);
    CK_COUNTERS_EQ(f.b, c0);
    CK_STATE(f.b, CB_CLOSED, 0);
    fx_done(&f);
}
END_TEST

/* ----------------------------------------------------------------- clocks */

/* A handle's clock that lets the world move on before a reading reaches
 * the caller: on each of its next `stalls` readings, meanwhile() runs
 * (other handles act, the shared clock advances) and the value returned is
 * the one read before. That is a process preempted between its clock read
 * and the CAS that uses it. */
struct stalling_clock {
    struct tl_clock *clk;
    void (*meanwhile)(struct stalling_clock *s);
    cb_breaker *other; /* the handle meanwhile() acts through, if any */
    cb_breaker *observer; /* a handle meanwhile() looks through, if any */
    int64_t seen_ms;      /* what meanwhile() saw through it, -1: nothing */
    uint64_t stall_ms; /* how far the shared clock moves on meanwhile */
    unsigned stalls;   /* readings still to stall */
    unsigned reads;    /* readings so far (meanwhile: this one's number) */
};

static uint64_t stalling_read(void *ctx)
{
    struct stalling_clock *s = ctx;
    uint64_t now = tl_clock_read(s->clk);
    s->reads++;
    if (s->stalls > 0) {
        s->stalls--;
        s->meanwhile(s);
    }
    return now;
}

/* Stall the handle's next `stalls` readings with meanwhile(). */
static void stall_next(cb_breaker *b, struct stalling_clock *s, unsigned stalls)
{
    s->stalls = stalls;
    s->reads = 0;
    cb_set_clock(b, stalling_read, s);
}

/* Reading 1 (before A's CAS): B takes the probe and releases it, and time
 * moves on. Every later reading: once a lease is in the word (A's CAS has
 * run), the observer's view of it, as any process sees it right then. */
static void other_takes_and_releases_probe(struct stalling_clock *s)
{
    if (s->reads == 1) {
        cb_permit p;
        ck_assert_int_eq(cb_acquire(s->other, &p), CB_PROBE);
        cb_release(s->other, &p);
        tl_clock_advance(s->clk, s->stall_ms);
        return;
    }
    cb_info i;
    ck_assert_int_eq(cb_get_info(s->observer, &i), 0);
    if (s->seen_ms < 0 && i.state == CB_HALF_OPEN && i.probe_lease_ms > 0) /* not the free slot */
        s->seen_ms = (int64_t)i.probe_lease_ms;
}

/* acquire_slow reads the clock again on every retry: A loads OPEN, reads
 * the clock, and stalls; meanwhile B takes the probe and releases it and
 * most of probe_timeout passes. A's CAS fails, A re-reads the word (a free
 * slot) and takes the probe: its lease starts now, not at the stale
 * reading, so it runs a full probe_timeout, as C sees it right after A's
 * CAS (A's next clock reading), and C is rejected until it ends. (With the
 * reading reused, the lease A's CAS installs has 10 ms left, and only A's
 * stamp refresh after it would hide that from later readers.) */
START_TEST(test_retry_reads_clock_again)
{
    fx a = fx_open("retryclock", 1, RESET, PROBE);
    cb_breaker *b = tl_open_clocked(a.name, NULL, a.clk);
    cb_breaker *c = tl_open_clocked(a.name, NULL, a.clk);
    trip_by_failures(&a);
    advance(&a, RESET);
    struct stalling_clock s = {.clk = a.clk, .meanwhile = other_takes_and_releases_probe, .other = b,
                               .observer = c, .seen_ms = -1, .stall_ms = PROBE - 10};
    stall_next(a.b, &s, 3);
    cb_permit pa = ACQ(a.b, CB_PROBE);
    ck_assert_msg(s.reads >= 2, "the stall did not happen");
    ck_assert_msg(s.seen_ms == PROBE, "right after A's CAS, its lease has %lld ms left, want the full probe_timeout %u",
                  (long long)s.seen_ms, PROBE);
    cb_info i = INFO(c);
    ck_assert_int_eq(i.state, CB_HALF_OPEN);
    ck_assert_uint_eq(i.generation, 4); /* trip, B's probe, B's release, A's probe */
    ck_assert_msg(i.probe_lease_ms == PROBE, "A's lease has %llu ms left, want the full probe_timeout %u",
                  (unsigned long long)i.probe_lease_ms, PROBE);
    advance(&a, PROBE - 1);
    ACQ(c, CB_REJECTED);
    cb_success(a.b, &pa);
    CK_STATE(c, CB_CLOSED, 0);
    cb_close(b);
    cb_close(c);
    fx_done(&a);
}
END_TEST

/* A stamp ahead of the reader's clock (clocks of two processes read at
 * slightly different moments) has not elapsed at all: B, one ms behind A,
 * is rejected after A's trip and sees the whole reset timeout ahead; after
 * A takes the probe, B sees the whole lease and gets no second probe. */
START_TEST(test_stamp_ahead_of_reader)
{
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = RESET, .probe_timeout_ms = PROBE};
    const char *name = tl_unique_name("ahead");
    struct tl_clock *clk_a = tl_clock_new(10000), *clk_b = tl_clock_new(9999);
    cb_breaker *a = tl_open_clocked(name, &cfg, clk_a);
    cb_breaker *b = tl_open_clocked(name, NULL, clk_b);
    FAIL_N(a, 1);
    CK_STATE(a, CB_OPEN, 0);
    ACQ(b, CB_REJECTED);
    ck_assert_uint_eq(INFO(b).ms_until_probe, RESET);

    tl_clock_advance(clk_a, RESET);
    tl_clock_advance(clk_b, RESET);
    cb_permit pa = ACQ(a, CB_PROBE);
    ACQ(b, CB_REJECTED);
    cb_info i = INFO(b);
    ck_assert_int_eq(i.state, CB_HALF_OPEN);
    ck_assert_uint_eq(i.probe_lease_ms, PROBE);
    cb_success(a, &pa);
    CK_STATE(b, CB_CLOSED, 0);
    cb_close(a);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
    munmap(clk_a, sizeof *clk_a);
    munmap(clk_b, sizeof *clk_b);
}
END_TEST

static void time_moves_on(struct stalling_clock *s) { tl_clock_advance(s->clk, s->stall_ms); }

/* Reading 1 (before the CAS) stalls; during reading 2 (the installer's
 * re-read after its CAS) the other handle resets the circuit. */
static void time_moves_on_then_other_resets(struct stalling_clock *s)
{
    if (s->reads == 1)
        tl_clock_advance(s->clk, s->stall_ms);
    else
        ck_assert_int_ge(cb_reset(s->other), 0);
}

#define STALL 300u /* ms a process stalls between its clock read and its CAS */

/* Ways to trip, for table-driven tests. */
enum { TRIP_THRESHOLD, TRIP_PROBE_FAILED, TRIP_OPERATOR, TRIP_KINDS };
static const char *const trip_names[TRIP_KINDS] = {"threshold", "probe failure", "cb_trip"};

/* A permit to trip with: a call permit (CLOSED) or the probe. */
static cb_permit permit_to_trip(fx *f, int how)
{
    if (how != TRIP_PROBE_FAILED)
        return ACQ(f->b, CB_ALLOWED);
    trip_by_failures(f);
    advance(f, RESET);
    return ACQ(f->b, CB_PROBE);
}

static void trip_now(fx *f, cb_permit *p, int how)
{
    if (how == TRIP_OPERATOR) {
        ck_assert_int_ge(cb_trip(f->b), 0);
        cb_release(f->b, p); /* late: the trip made it stale */
    } else {
        cb_failure(f->b, p);
    }
}

/* The trip's stamp is the moment of the CAS that tripped, not the clock
 * reading before it: A reads the clock, stalls STALL ms, then trips (by
 * threshold, by its probe failing, by cb_trip). B must be rejected until
 * reset_timeout after the trip CAS, and the trip's event carries that
 * moment. (Stamped with the reading, the probe came STALL ms early.) */
START_TEST(test_stalled_trip_probe_not_early)
{
    fx a = fx_open("stalltrip", 1, RESET, PROBE);
    cb_breaker *b = tl_open_clocked(a.name, NULL, a.clk);
    struct stalling_clock s = {.clk = a.clk, .meanwhile = time_moves_on, .other = NULL, .stall_ms = STALL};
    cb_permit p = permit_to_trip(&a, _i);
    struct rec *r = rec_new(a.b);
    cb_set_listener(a.b, rec_listener, r);
    stall_next(a.b, &s, 1);
    trip_now(&a, &p, _i);
    ck_assert_msg(s.stalls == 0, "%s: the stall did not happen", trip_names[_i]);
    uint64_t tripped = now_of(&a); /* the clock when the trip CAS ran */
    CK_STATE(b, CB_OPEN, 0);
    cb_permit q;
    for (uint64_t since = 0; since < RESET; since += STALL / 2) {
        advance(&a, tripped + since - now_of(&a));
        ck_assert_msg(cb_acquire(b, &q) == CB_REJECTED, "%s: a probe %llu ms after the trip CAS, reset_timeout %u",
                      trip_names[_i], (unsigned long long)since, RESET);
        ck_assert_uint_eq(INFO(b).ms_until_probe, RESET - since);
    }
    advance(&a, tripped + RESET - 1 - now_of(&a));
    ACQ(b, CB_REJECTED);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_msg(r->mono[0] == tripped, "%s: trip event at %llu, the trip CAS at %llu", trip_names[_i],
                  (unsigned long long)r->mono[0], (unsigned long long)tripped);
    REC_DONE(a.b, r);
    advance(&a, 1);
    q = ACQ(b, CB_PROBE);
    cb_success(b, &q);
    CK_STATE(b, CB_CLOSED, 0);
    ck_assert_uint_eq(INFO(b).counters.late, _i == TRIP_OPERATOR);
    cb_close(b);
    fx_done(&a);
}
END_TEST

/* The lease starts at the CAS that granted the probe: A reads the clock,
 * stalls most of probe_timeout, then takes the probe. Its lease is the full
 * probe_timeout, B is rejected until it runs out, and A's permit (carrying
 * the refreshed lease) still reports. */
START_TEST(test_stalled_grant_full_lease)
{
    fx a = fx_open("stallgrant", 1, RESET, PROBE);
    cb_breaker *b = tl_open_clocked(a.name, NULL, a.clk);
    struct stalling_clock s = {.clk = a.clk, .meanwhile = time_moves_on, .other = NULL, .stall_ms = PROBE - 10};
    trip_by_failures(&a);
    advance(&a, RESET);
    stall_next(a.b, &s, 1);
    cb_permit pa = ACQ(a.b, CB_PROBE);
    ck_assert_msg(s.stalls == 0, "the stall did not happen");
    cb_info i = INFO(b);
    ck_assert_int_eq(i.state, CB_HALF_OPEN);
    ck_assert_uint_eq(i.generation, 2);
    ck_assert_msg(i.probe_lease_ms == PROBE, "the lease has %llu ms left, want the full probe_timeout %u",
                  (unsigned long long)i.probe_lease_ms, PROBE);
    advance(&a, PROBE - 1);
    ACQ(b, CB_REJECTED);
    cb_success(a.b, &pa);
    CK_STATE(b, CB_CLOSED, 0);
    i = INFO(b);
    ck_assert_uint_eq(i.generation, 3);
    ck_assert_uint_eq(i.counters.successes, 1);
    ck_assert_uint_eq(i.counters.late, 0);
    cb_close(b);
    fx_done(&a);
}
END_TEST

/* The refresh of a stamp only replaces the installer's own word: if the
 * circuit moved on between the installing CAS and the refresh (here B
 * resets it), the refresh changes nothing. _i: 0 a trip, 1 a probe grant. */
START_TEST(test_stamp_refresh_after_word_moved)
{
    fx a = fx_open("stallmoved", 1, RESET, PROBE);
    cb_breaker *b = tl_open_clocked(a.name, NULL, a.clk);
    struct stalling_clock s = {.clk = a.clk, .meanwhile = time_moves_on_then_other_resets, .other = b, .stall_ms = STALL};
    cb_permit p;
    if (_i == 0) {
        p = ACQ(a.b, CB_ALLOWED);
        stall_next(a.b, &s, 2);
        cb_failure(a.b, &p); /* trips: generation 1, then B's reset: 2 */
    } else {
        trip_by_failures(&a);
        advance(&a, RESET);
        stall_next(a.b, &s, 2);
        p = ACQ(a.b, CB_PROBE); /* generation 2, then B's reset: 3 */
    }
    ck_assert_msg(s.stalls == 0, "the installer did not read the clock again after its CAS");
    cb_info i = INFO(b);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_uint_eq(i.generation, _i == 0 ? 2 : 3);
    CK_NEWEST_IS_CURRENT(i);
    if (_i == 1) {
        cb_success(a.b, &p); /* the probe's word is gone: late */
        i = INFO(b);
        ck_assert_uint_eq(i.counters.late, 1);
        ck_assert_uint_eq(i.generation, 3);
    }
    ACQ(b, CB_ALLOWED);
    cb_close(b);
    fx_done(&a);
}
END_TEST

/* ------------------------------------------------------------------- info */

START_TEST(test_info_fields)
{
    fx f = fx_open("info", 3, RESET, PROBE);
    cb_info i = INFO(f.b);
    ck_assert_str_eq(i.name, f.name);
    ck_assert_int_eq(i.state, CB_CLOSED);
    ck_assert_uint_eq(i.generation, 0);
    ck_assert_uint_eq(i.layout_version, CB_LAYOUT_VERSION);
    ck_assert_uint_eq(i.segment_size, CB_SEGMENT_SIZE);
    ck_assert_uint_eq(i.history_len, 0);
    ck_assert_uint_eq(i.ms_until_probe, 0);
    ck_assert_int_eq(i.probe_pid, 0);
    ck_assert_uint_eq(i.probe_lease_ms, 0);

    FAIL_N(f.b, 2); /* a count change is not a transition */
    ck_assert_uint_eq(INFO(f.b).generation, 0);
    FAIL_N(f.b, 1);
    i = INFO(f.b);
    ck_assert_uint_eq(i.generation, 1);
    ck_assert_uint_eq(i.ms_until_probe, RESET);
    ck_assert_int_eq(i.probe_pid, 0);
    advance(&f, 250);
    ck_assert_uint_eq(INFO(f.b).ms_until_probe, RESET - 250);
    ACQ(f.b, CB_REJECTED);
    ck_assert_uint_eq(INFO(f.b).generation, 1);
    advance(&f, RESET); /* overdue, but nobody asked yet: still OPEN */
    i = INFO(f.b);
    ck_assert_int_eq(i.state, CB_OPEN);
    ck_assert_uint_eq(i.ms_until_probe, 0);

    ACQ(f.b, CB_PROBE);
    i = INFO(f.b);
    ck_assert_int_eq(i.state, CB_HALF_OPEN);
    ck_assert_uint_eq(i.generation, 2);
    ck_assert_int_eq(i.probe_pid, getpid());
    ck_assert_uint_eq(i.probe_lease_ms, PROBE);
    ck_assert_uint_eq(i.ms_until_probe, 0);
    ck_assert_uint_eq(i.failures, 0);
    /* White box: a holder field left by another generation is not shown. */
    struct cb_segment *seg = f.b->seg;
    uint64_t holder = atomic_load(&seg->probe_holder);
    atomic_store(&seg->probe_holder, ((holder >> 32) - 1) << 32 | (uint32_t)(getpid() + 1));
    ck_assert_int_eq(INFO(f.b).probe_pid, 0);
    atomic_store(&seg->probe_holder, holder);
    ck_assert_int_eq(INFO(f.b).probe_pid, getpid());
    advance(&f, 120);
    ck_assert_uint_eq(INFO(f.b).probe_lease_ms, PROBE - 120);
    advance(&f, PROBE - 120);
    i = INFO(f.b); /* expired, not yet taken over */
    ck_assert_uint_eq(i.probe_lease_ms, 0);
    ck_assert_int_eq(i.probe_pid, getpid());
    cb_permit p = ACQ(f.b, CB_PROBE);
    ck_assert_uint_eq(INFO(f.b).generation, 3);
    cb_success(f.b, &p);
    i = INFO(f.b);
    ck_assert_uint_eq(i.generation, 4);
    ck_assert_int_eq(i.probe_pid, 0);
    ck_assert_uint_eq(i.probe_lease_ms, 0);
    ck_assert_uint_eq(i.history_len, 4);
    /* Every generation here was a transition: 4, 3, 2, 1. */
    for (unsigned k = 0; k < 4; k++)
        ck_assert_uint_eq(i.history[k].generation, 4 - k);
    fx_done(&f);
}
END_TEST

START_TEST(test_info_corrupt)
{
    fx f = fx_open("corrupt", 3, RESET, PROBE);
    FAIL_N(f.b, 1);
    cb_permit p = ACQ(f.b, CB_ALLOWED);
    struct cb_segment *seg = f.b->seg; /* white box */
    uint64_t w = atomic_load(&seg->state);
    atomic_store(&seg->state, sw_make(CB_STATE_MODE, sw_gen(w), 0)); /* mode 0: corrupt */

    cb_info i;
    memset(&i, 0, sizeof i);
    ck_assert_int_eq(cb_get_info(f.b, &i), CB_ECORRUPT);
    ck_assert_int_eq((int)i.state, 3);
    ck_assert_str_eq(i.name, f.name); /* the rest is still filled */
    ck_assert_uint_eq(i.config.failure_threshold, 3);
    ck_assert_uint_eq(i.counters.allowed, 2);
    ck_assert_int_eq((int)cb_get_state(f.b), 3);

    for (int k = 0; k < 3; k++)
        ACQ(f.b, CB_REJECTED);
    cb_failure(f.b, &p); /* from CLOSED: nothing to apply it to */
    ck_assert_int_eq(cb_get_info(f.b, &i), CB_ECORRUPT);
    ck_assert_uint_eq(i.counters.rejected, 3);
    ck_assert_uint_eq(i.counters.late, 1);

    struct rec *r = rec_new(f.b);
    cb_set_listener(f.b, rec_listener, r);
    ck_assert_int_eq(cb_reset(f.b), CB_STATE_MODE); /* the state it replaced: 3 */
    ck_assert_int_eq(cb_get_info(f.b, &i), 0);
    CK_STATE(f.b, CB_CLOSED, 0);
    ck_assert_uint_eq(r->n, 1);
    ck_assert_int_eq(r->t[0].to, CB_CLOSED);
    ck_assert_int_eq(r->t[0].reason, CB_REASON_RESET);
    ck_assert_uint_eq(r->t[0].generation, i.generation);
    ck_assert_uint_eq(i.history[0].generation, i.generation);
    ACQ(f.b, CB_ALLOWED);

    /* cb_trip repairs it too, and says so the same way. */
    w = atomic_load(&seg->state);
    atomic_store(&seg->state, sw_make(CB_STATE_MODE, sw_gen(w), 0)); /* mode 0: corrupt */
    ck_assert_int_eq(cb_trip(f.b), CB_STATE_MODE);
    CK_STATE(f.b, CB_OPEN, 0);
    ck_assert_uint_eq(r->n, 2);
    ck_assert_int_eq(r->t[1].reason, CB_REASON_TRIP);
    REC_DONE(f.b, r);
    fx_done(&f);
}
END_TEST

/* ------------------------------------------------------------------ suite */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *state_machine_suite(void)
{
    Suite *s = suite_create("state-machine");
    TCase *tc;

    tc = tcase_create("names");
    tcase_add_test(tc, test_state_names);
    tcase_add_test(tc, test_reason_names);
    tcase_add_test(tc, test_event_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, test_config_defaults);
    tcase_add_loop_test(tc, test_config_zero_fields, 0, N(config_table));
    tcase_add_test(tc, test_config_update);
    suite_add_tcase(s, tc);

    tc = tcase_create("closed");
    tcase_add_loop_test(tc, test_closed_threshold, 0, N(thresholds));
    tcase_add_test(tc, test_closed_success_clears_later_count);
    suite_add_tcase(s, tc);

    tc = tcase_create("open");
    tcase_add_loop_test(tc, test_open_rejects_until_reset, 0, N(reset_timeouts));
    tcase_add_test(tc, test_open_probe_long_after);
    suite_add_tcase(s, tc);

    tc = tcase_create("half_open");
    tcase_add_test(tc, test_probe_success_closes);
    tcase_add_test(tc, test_probe_failure_reopens_fresh);
    tcase_add_loop_test(tc, test_probe_lease_expiry, 0, R_COUNT);
    tcase_add_test(tc, test_release_call_permit);
    tcase_add_test(tc, test_release_probe_permit);
    tcase_add_loop_test(tc, test_probe_double_report, 0, R_COUNT * R_COUNT);
    tcase_add_loop_test(tc, test_call_double_report, 0, R_COUNT * R_COUNT);
    suite_add_tcase(s, tc);

    tc = tcase_create("stale");
    tcase_add_test(tc, test_stale_failure_does_not_extend_open);
    tcase_add_test(tc, test_stale_success_does_not_close);
    tcase_add_test(tc, test_stale_across_trip_reset);
    suite_add_tcase(s, tc);

    tc = tcase_create("operator");
    tcase_add_loop_test(tc, test_operator, 0, 6);
    suite_add_tcase(s, tc);

    tc = tcase_create("ignored");
    tcase_add_test(tc, test_ignored_permits_closed);
    tcase_add_test(tc, test_ignored_permits_half_open);
    tcase_add_test(tc, test_permit_other_handle_same_circuit);
    tcase_add_test(tc, test_ignored_null_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("counters");
    tcase_add_test(tc, test_counters_script);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_test(tc, test_listener_and_history);
    tcase_add_test(tc, test_listener_mono_ms);
    tcase_add_test(tc, test_history_overflow);
    tcase_add_test(tc, test_log_listener);
    suite_add_tcase(s, tc);

    tc = tcase_create("call");
    tcase_add_test(tc, test_call);
    suite_add_tcase(s, tc);

    tc = tcase_create("clocks");
    tcase_add_test(tc, test_retry_reads_clock_again);
    tcase_add_test(tc, test_stamp_ahead_of_reader);
    tcase_add_loop_test(tc, test_stalled_trip_probe_not_early, 0, TRIP_KINDS);
    tcase_add_test(tc, test_stalled_grant_full_lease);
    tcase_add_loop_test(tc, test_stamp_refresh_after_word_moved, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("info");
    tcase_add_test(tc, test_info_fields);
    tcase_add_test(tc, test_info_corrupt);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    return tl_run_suite(state_machine_suite());
}
