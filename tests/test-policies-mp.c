/*
 * test-policies-mp.c - the rate policies of issue 10 across real
 * processes: P forked workers report a known mix on one circuit at once,
 * and the circuit must trip where the rate crosses, exactly once, with
 * exactly one event, and with counts summed over the processes exact.
 *
 * One scenario, run for each rate rule ("failure-rate": failure_rate 50,
 * "slow-call-rate": slow_call_ms 100 and slow_call_rate 50), with
 * minimum_calls 100, a 10 s window (buckets of 1 s) and a failure
 * threshold no test reaches:
 *
 *  - Time is a manual clock in shared memory (tl_clock) that only the
 *    parent moves; every process reads it through cb_set_clock. So a call
 *    is slow exactly when the test says so: a worker acquires its "bad"
 *    permits, the parent moves the clock 150 ms, the worker acquires its
 *    "good" permits, the parent moves it 10 ms, and the worker reports all
 *    of them (good first): the bad ones took 160 ms (> 100: slow), the
 *    good ones 10 ms. In the failure-rate run the bad ones are reported
 *    with cb_failure. The batches span about 1.3 s of the clock, so the
 *    window holds every call and two buckets are summed.
 *  - Every process lines up at numbered sync points in shared memory, so
 *    the parent checks the circuit between batches while nobody reports.
 *  - The mix: 3 batches of 14 good + 6 bad per worker (30%: no trip,
 *    although calls are far above minimum_calls), then 4 batches of 8
 *    good + 12 bad (60%) that bring the window to 47% with a margin of 32
 *    calls, checked exact at each sync point (window_calls, _failures,
 *    _slow_calls and the counters equal the sums of what the workers
 *    reported). Then the crossing: every worker holds 16 bad permits and
 *    all report them at once; the rate reaches 50% after 32 of those 64
 *    reports, and every report after that may find it reached. Exactly one
 *    trip: one history entry CLOSED -> OPEN with the rule's reason, trips
 *    1, exactly one event over all the workers' listeners (each counts
 *    its own in shared memory), announced by the process the history
 *    names. The reports that landed before the trip are in the counters,
 *    the others are late (late = 64 - applied), and they hold the rate
 *    (>= 50%), so the trip was not early; cb_info's window, while OPEN,
 *    shows exactly them (checked last).
 *  - After the trip every worker is rejected; the parent moves the clock
 *    past the reset timeout and all workers race: exactly one probe, whose
 *    success closes the circuit and restarts the window (0 calls), and
 *    new calls count alone (old failures never count again). Run with a
 *    reset timeout of 60 s (the close lands in a later bucket) and, for
 *    the failure rate, of 200 ms ("close-in-trip-bucket": the close lands
 *    in the bucket holding the trip's failures, which must not count).
 *  - An observer process (its own handle, opened by name) snapshots the
 *    circuit the whole time and checks, independently of the parent: the
 *    generation never goes back and each generation has its one state
 *    (0 CLOSED, 1 OPEN, 2 HALF_OPEN, 3 CLOSED: nothing else happens); the
 *    circuit never leaves OPEN before the parent announced (in shared
 *    memory, before moving the clock) that the reset timeout is reached;
 *    counters never decrease and trips stay <= 1; while CLOSED before the
 *    trip the window's sums never decrease, and after the close they never
 *    exceed what was reported since.
 *  - The parent asserts every child's exit status (workers and observer
 *    check their own steps and exit nonzero on the first failure).
 */
#include <check.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"
#include "testlib.h"

#define START_MS 1000000u  /* manual clock start: a bucket boundary, far from 0 */
#define DEADLINE_MS 30000u /* bound on any wait for another process (hang guard) */
#define CHILD_ALARM_S 90u
#define WORKERS 4
#define MIN_CALLS 100u
#define RATE 50u
#define WINDOW_MS 10000u
#define SLOW_MS 100u
#define RESET_MS 60000u
#define SHORT_RESET_MS 200u /* the close lands in the trip's bucket */
#define BUCKET_MS (WINDOW_MS / 10u)
#define ADV_BAD 150u  /* clock moved after the bad permits were taken */
#define ADV_GOOD 10u  /* and after the good ones */
#define HELD 16u      /* bad permits each worker reports at the crossing */
#define AFTER_GOOD 10u /* calls after the close, per worker */
#define AFTER_BAD 5u
#define MAX_PERMITS 32u
#define MAX_SYNC 64
#define MAX_LOG 32

typedef _Atomic uint64_t counter_t;

enum rule { RULE_FAILURE, RULE_SLOW };

/* The batches every worker runs: good calls, then bad ones. */
static const struct batch {
    unsigned good, bad;
} batches[] = {{14, 6}, {14, 6}, {14, 6}, {8, 12}, {8, 12}, {8, 12}, {8, 12}, {0, HELD}};
#define NBATCH ((int)(sizeof batches / sizeof batches[0]))
#define CROSSING (NBATCH - 1)

/* What each worker counts of its own calls and of its listener's events. */
struct kid_figures {
    counter_t allowed, rejected, probes, events;
    int pid;
};

struct logged {
    int reason, from, to;
    uint32_t generation;
    int pid;
};

struct mp {
    char name[160];
    enum rule rule;
    struct tl_clock *clock;
    cb_breaker *inherited; /* the parent's handle, inherited by odd workers */
    counter_t sync[MAX_SYNC];
    _Atomic int reset_reached; /* set by the parent before it moves the clock past the reset timeout */
    _Atomic int stop_observer;
    struct kid_figures kid[WORKERS]; /* each written by its worker */
    counter_t nlog;
    struct logged log[MAX_LOG];
    /* observer figures */
    counter_t obs_samples, obs_gen[4];
    _Atomic int msg_taken;
    char msg[512];
};

struct kid {
    struct mp *s;
    int idx;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A child's check failed: say so on stderr and once in shared memory. */
static int child_failed(struct mp *s, int line, const char *what)
{
    fprintf(stderr, "test-policies-mp.c:%d: child %d: check failed: %s\n", line, (int)getpid(), what);
    int none = 0;
    if (atomic_compare_exchange_strong(&s->msg_taken, &none, 1))
        snprintf(s->msg, sizeof s->msg, "line %d, child %d: %s", line, (int)getpid(), what);
    return 1;
}

#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return child_failed(s, __LINE__, #cond);                                               \
    } while (0)

static int await_at_least(counter_t *v, uint64_t target)
{
    uint64_t deadline = mono_ms() + DEADLINE_MS;
    while (atomic_load(v) < target) {
        if (mono_ms() > deadline)
            return 0;
        sched_yield();
    }
    return 1;
}

/* Sync point k: the workers and the parent (WORKERS + 1 parties). */
static int sync_at(struct mp *s, int k)
{
    atomic_fetch_add(&s->sync[k], 1);
    return await_at_least(&s->sync[k], WORKERS + 1);
}

static void parent_sync(struct mp *s, int k)
{
    ck_assert_msg(sync_at(s, k), "sync point %d: the workers did not arrive (%s)", k,
                  s->msg[0] ? s->msg : "no message");
}

/* Sync points: 6 per batch, then the steps after the crossing. The
 * parent checks between two points the workers wait at. */
#define SP(batch, step) ((batch)*6 + (step))
#define SP_AFTER(step) (NBATCH * 6 + (step))

static void kid_listener(const cb_event *ev, void *ctx)
{
    struct kid *k = ctx;
    struct mp *s = k->s;
    atomic_fetch_add(&s->kid[k->idx].events, 1);
    uint64_t i = atomic_fetch_add(&s->nlog, 1);
    if (i < MAX_LOG)
        s->log[i] = (struct logged){(int)ev->transition.reason, (int)ev->transition.from, (int)ev->transition.to,
                                    ev->transition.generation, (int)getpid()};
}

static void child_begin(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(CHILD_ALARM_S);
}

static int worker(void *arg)
{
    struct kid *k = arg;
    struct mp *s = k->s;
    child_begin();
    s->kid[k->idx].pid = (int)getpid();
    cb_breaker *b = s->inherited;
    if (k->idx % 2 == 0)
        b = tl_open_clocked(s->name, NULL, s->clock);
    cb_set_listener(b, kid_listener, k);
    cb_permit bad[MAX_PERMITS], good[MAX_PERMITS];

    for (int n = 0; n < NBATCH; n++) {
        const struct batch *bt = &batches[n];
        for (unsigned i = 0; i < bt->bad; i++) {
            CHILD_CHECK(cb_acquire(b, &bad[i]) == CB_ALLOWED);
            atomic_fetch_add(&s->kid[k->idx].allowed, 1);
        }
        CHILD_CHECK(sync_at(s, SP(n, 0)));
        CHILD_CHECK(sync_at(s, SP(n, 1))); /* the clock moved ADV_BAD */
        for (unsigned i = 0; i < bt->good; i++) {
            CHILD_CHECK(cb_acquire(b, &good[i]) == CB_ALLOWED);
            atomic_fetch_add(&s->kid[k->idx].allowed, 1);
        }
        CHILD_CHECK(sync_at(s, SP(n, 2)));
        CHILD_CHECK(sync_at(s, SP(n, 3))); /* the clock moved ADV_GOOD */
        for (unsigned i = 0; i < bt->good; i++)
            cb_success(b, &good[i]);
        for (unsigned i = 0; i < bt->bad; i++) {
            if (s->rule == RULE_FAILURE)
                cb_failure(b, &bad[i]);
            else
                cb_success(b, &bad[i]);
        }
        CHILD_CHECK(sync_at(s, SP(n, 4)));
        CHILD_CHECK(sync_at(s, SP(n, 5))); /* the parent has checked */
    }

    /* Tripped: rejected, until the reset timeout has passed. */
    cb_permit p;
    CHILD_CHECK(cb_acquire(b, &p) == CB_REJECTED);
    atomic_fetch_add(&s->kid[k->idx].rejected, 1);
    CHILD_CHECK(sync_at(s, SP_AFTER(0)));
    CHILD_CHECK(sync_at(s, SP_AFTER(1))); /* the clock moved past the reset timeout */
    cb_verdict v = cb_acquire(b, &p);
    CHILD_CHECK(v == CB_PROBE || v == CB_REJECTED);
    if (v == CB_PROBE) {
        atomic_fetch_add(&s->kid[k->idx].probes, 1);
        atomic_fetch_add(&s->kid[k->idx].allowed, 1);
    } else {
        atomic_fetch_add(&s->kid[k->idx].rejected, 1);
    }
    CHILD_CHECK(sync_at(s, SP_AFTER(2))); /* everyone has tried while the probe is out */
    CHILD_CHECK(sync_at(s, SP_AFTER(3))); /* the parent has checked */
    if (v == CB_PROBE)
        cb_success(b, &p);
    CHILD_CHECK(sync_at(s, SP_AFTER(4)));
    CHILD_CHECK(sync_at(s, SP_AFTER(5))); /* the parent has checked */

    /* Closed again: a fresh window. */
    for (unsigned i = 0; i < AFTER_GOOD + AFTER_BAD; i++) {
        CHILD_CHECK(cb_acquire(b, &p) == CB_ALLOWED);
        atomic_fetch_add(&s->kid[k->idx].allowed, 1);
        if (i < AFTER_GOOD)
            cb_success(b, &p);
        else
            cb_failure(b, &p);
    }
    CHILD_CHECK(sync_at(s, SP_AFTER(6)));
    if (b != s->inherited)
        cb_close(b);
    return 0;
}

/* The independent observer: snapshots until told to stop. */
static int observer(void *arg)
{
    struct kid *k = arg;
    struct mp *s = k->s;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    static const cb_state by_gen[4] = {CB_CLOSED, CB_OPEN, CB_HALF_OPEN, CB_CLOSED};
    const uint64_t after_calls = (uint64_t)WORKERS * (AFTER_GOOD + AFTER_BAD);
    const uint64_t after_bad = (uint64_t)WORKERS * AFTER_BAD;
    uint32_t last_gen = 0;
    cb_counters last;
    memset(&last, 0, sizeof last);
    uint64_t last_calls = 0, last_failures = 0, last_slow = 0;
    while (!atomic_load(&s->stop_observer)) {
        cb_info info;
        CHILD_CHECK(cb_get_info(b, &info) == 0);
        atomic_thread_fence(memory_order_seq_cst);
        int reset_reached = atomic_load(&s->reset_reached);
        CHILD_CHECK(info.generation >= last_gen);
        CHILD_CHECK(info.generation <= 3);
        CHILD_CHECK(info.state == by_gen[info.generation]);
        CHILD_CHECK(info.mode == CB_MODE_NORMAL);
        /* Never out of OPEN before the reset timeout was reached. */
        CHILD_CHECK(info.generation < 2 || reset_reached);
        const uint64_t *now = (const uint64_t *)&info.counters, *was = (const uint64_t *)&last;
        for (size_t i = 0; i < sizeof last / sizeof(uint64_t); i++)
            CHILD_CHECK(now[i] >= was[i]);
        CHILD_CHECK(info.counters.trips <= 1);
        CHILD_CHECK(info.counters.probes <= 1);
        CHILD_CHECK(info.history_len <= info.generation);
        if (info.generation == 0) {
            /* Nothing ages out (the run spans 1.3 s of a 10 s window). */
            CHILD_CHECK(info.window_calls >= last_calls);
            CHILD_CHECK(info.window_failures >= last_failures);
            CHILD_CHECK(info.window_slow_calls >= last_slow);
            last_calls = info.window_calls;
            last_failures = info.window_failures;
            last_slow = info.window_slow_calls;
        } else if (info.generation == 3) {
            /* The window restarted at the close: only the new calls. */
            CHILD_CHECK(info.window_calls <= after_calls);
            CHILD_CHECK(info.window_failures <= after_bad);
            CHILD_CHECK(info.window_slow_calls == 0);
        }
        last_gen = info.generation;
        last = info.counters;
        atomic_fetch_add(&s->obs_gen[info.generation], 1);
        atomic_fetch_add(&s->obs_samples, 1);
        sched_yield();
    }
    cb_close(b);
    return 0;
}

/* Let the observer take two more snapshots (so it saw the current state). */
static void observer_catch_up(struct mp *s)
{
    uint64_t n = atomic_load(&s->obs_samples);
    ck_assert_msg(await_at_least(&s->obs_samples, n + 2), "the observer stalled (%s)",
                  s->msg[0] ? s->msg : "no message");
}

static void info_of(cb_breaker *b, cb_info *info)
{
    int rc = cb_get_info(b, info);
    ck_assert_msg(rc == 0, "cb_get_info: %s", cb_strerror(rc));
}

static uint64_t sum_kids(struct mp *s, size_t offset)
{
    uint64_t n = 0;
    for (int i = 0; i < WORKERS; i++)
        n += atomic_load((counter_t *)((char *)&s->kid[i] + offset));
    return n;
}

/* The window and counters at a sync point between batches: exact. */
static void check_quiet(struct mp *s, cb_breaker *b, uint64_t good, uint64_t bad, int batch)
{
    cb_info info;
    info_of(b, &info);
    uint64_t calls = (good + bad) * WORKERS, nbad = bad * WORKERS;
    ck_assert_msg(info.state == CB_CLOSED && info.generation == 0 && info.counters.trips == 0,
                  "after batch %d (%llu calls, %llu bad): state %s, generation %u, trips %llu", batch,
                  (unsigned long long)calls, (unsigned long long)nbad, cb_state_name(info.state), info.generation,
                  (unsigned long long)info.counters.trips);
    uint64_t want_failures = s->rule == RULE_FAILURE ? nbad : 0, want_slow = s->rule == RULE_SLOW ? nbad : 0;
    ck_assert_msg(info.window_calls == calls && info.window_failures == want_failures &&
                      info.window_slow_calls == want_slow,
                  "after batch %d: window calls %llu failures %llu slow %llu, expected %llu %llu %llu", batch,
                  (unsigned long long)info.window_calls, (unsigned long long)info.window_failures,
                  (unsigned long long)info.window_slow_calls, (unsigned long long)calls,
                  (unsigned long long)want_failures, (unsigned long long)want_slow);
    ck_assert_uint_eq(info.counters.allowed, calls);
    ck_assert_uint_eq(info.counters.allowed, sum_kids(s, offsetof(struct kid_figures, allowed)));
    ck_assert_uint_eq(info.counters.successes, calls - want_failures);
    ck_assert_uint_eq(info.counters.failures, want_failures);
    ck_assert_uint_eq(info.counters.late, 0);
    ck_assert_uint_eq(info.counters.rejected, 0);
    ck_assert_uint_eq(info.history_len, 0);
    ck_assert_uint_eq(atomic_load(&s->nlog), 0);
}

static void run_rule(enum rule rule, uint32_t reset_ms)
{
    struct mp *s = tl_shared(sizeof *s);
    s->rule = rule;
    snprintf(s->name, sizeof s->name, "%s", tl_unique_name(rule == RULE_FAILURE ? "mprate" : "mpslow"));
    s->clock = tl_clock_new(START_MS);
    cb_config cfg = {.failure_threshold = 1000000u,
                     .reset_timeout_ms = reset_ms,
                     .minimum_calls = MIN_CALLS,
                     .window_ms = WINDOW_MS};
    if (rule == RULE_FAILURE) {
        cfg.failure_rate = RATE;
    } else {
        cfg.slow_call_ms = SLOW_MS;
        cfg.slow_call_rate = RATE;
    }
    cb_breaker *b = NULL;
    int rc = cb_open(s->name, &cfg, &b);
    ck_assert_msg(rc == CB_CREATED, "cb_open: %d (%s)", rc, rc < 0 ? cb_strerror(rc) : "");
    cb_set_clock(b, tl_clock_read, s->clock);
    s->inherited = b;

    struct kid kids[WORKERS + 1];
    pid_t pids[WORKERS + 1];
    for (int i = 0; i <= WORKERS; i++) {
        kids[i] = (struct kid){s, i};
        pids[i] = tl_spawn(i < WORKERS ? worker : observer, &kids[i]);
    }

    /* The batches: the parent moves the clock and checks between them. */
    uint64_t good = 0, bad = 0;
    for (int n = 0; n < NBATCH; n++) {
        parent_sync(s, SP(n, 0));
        tl_clock_advance(s->clock, ADV_BAD);
        parent_sync(s, SP(n, 1));
        parent_sync(s, SP(n, 2));
        tl_clock_advance(s->clock, ADV_GOOD);
        parent_sync(s, SP(n, 3));
        parent_sync(s, SP(n, 4));
        if (n != CROSSING) {
            good += batches[n].good;
            bad += batches[n].bad;
            check_quiet(s, b, good, bad, n);
        }
        if (n == 2) {
            /* 30% bad, calls far above minimum_calls: no trip. */
            ck_assert_uint_ge((good + bad) * WORKERS, 2 * MIN_CALLS);
            observer_catch_up(s);
        }
        parent_sync(s, SP(n, 5));
    }

    /* The crossing: exactly one trip, one event, exact sums. */
    parent_sync(s, SP_AFTER(0)); /* every worker was rejected once */
    cb_info info;
    info_of(b, &info);
    const uint64_t held = (uint64_t)WORKERS * HELD;
    const uint64_t before_calls = (good + bad) * WORKERS, before_bad = bad * WORKERS;
    /* The crossing needs this many of the held reports: the rate is below
     * it before them. */
    ck_assert_uint_lt(before_bad * 100, RATE * before_calls);
    ck_assert_msg(info.state == CB_OPEN && info.generation == 1,
                  "after the crossing: state %s, generation %u (window calls %llu, bad %llu/%llu)",
                  cb_state_name(info.state), info.generation, (unsigned long long)info.window_calls,
                  (unsigned long long)info.window_failures, (unsigned long long)info.window_slow_calls);
    ck_assert_uint_eq(info.counters.trips, 1);
    ck_assert_uint_le(info.counters.late, held);
    const uint64_t applied = held - info.counters.late;
    cb_reason want = rule == RULE_FAILURE ? CB_REASON_FAILURE_RATE : CB_REASON_SLOW_CALL_RATE;
    ck_assert_uint_eq(info.history_len, 1);
    const cb_transition *t = &info.history[0];
    ck_assert_msg(t->from == CB_CLOSED && t->to == CB_OPEN && t->reason == want && t->generation == 1 &&
                      t->mode == CB_MODE_NORMAL && t->would_open == 0,
                  "history[0]: %s -> %s (%s), generation %u, mode %d, would_open %u", cb_state_name(t->from),
                  cb_state_name(t->to), cb_reason_name(t->reason), t->generation, (int)t->mode, t->would_open);
    /* One event over all the processes, from the process the history names. */
    ck_assert_uint_eq(sum_kids(s, offsetof(struct kid_figures, events)), 1);
    ck_assert_uint_eq(atomic_load(&s->nlog), 1);
    ck_assert_int_eq(s->log[0].reason, want);
    ck_assert_int_eq(s->log[0].from, CB_CLOSED);
    ck_assert_int_eq(s->log[0].to, CB_OPEN);
    ck_assert_uint_eq(s->log[0].generation, 1);
    ck_assert_int_eq(s->log[0].pid, t->pid);
    /* The reports that came before the trip (applied, not late) hold
     * the rate: the trip was not early. */
    const uint64_t trip_calls = before_calls + applied, trip_bad = before_bad + applied;
    printf("%s: tripped by %d after %llu of the %llu held reports (%llu late): %llu bad of %llu calls; "
           "cb_info's window while OPEN: %llu calls, %llu failures, %llu slow\n",
           rule == RULE_FAILURE ? "failure rate" : "slow-call rate", t->pid, (unsigned long long)applied,
           (unsigned long long)held, (unsigned long long)info.counters.late, (unsigned long long)trip_bad,
           (unsigned long long)trip_calls, (unsigned long long)info.window_calls,
           (unsigned long long)info.window_failures, (unsigned long long)info.window_slow_calls);
    ck_assert_msg(trip_bad * 100 >= RATE * trip_calls, "tripped at %llu bad of %llu calls (rate %u%%)",
                  (unsigned long long)trip_bad, (unsigned long long)trip_calls, RATE);
    /* The window, while OPEN, still shows what tripped it: exactly those
     * reports (checked at the end, so that the rest is checked first). */
    const cb_info open_info = info;
    /* Counters: every call the workers made, exactly. */
    ck_assert_uint_eq(info.counters.allowed, before_calls + held);
    ck_assert_uint_eq(info.counters.allowed, sum_kids(s, offsetof(struct kid_figures, allowed)));
    ck_assert_uint_eq(info.counters.rejected, WORKERS);
    ck_assert_uint_eq(info.counters.rejected, sum_kids(s, offsetof(struct kid_figures, rejected)));
    if (rule == RULE_FAILURE) {
        ck_assert_uint_eq(info.counters.successes, good * WORKERS);
        ck_assert_uint_eq(info.counters.failures, before_bad + applied);
    } else {
        ck_assert_uint_eq(info.counters.successes, before_calls + applied);
        ck_assert_uint_eq(info.counters.failures, 0);
    }
    ck_assert_uint_eq(info.counters.probes, 0);
    observer_catch_up(s);

    /* Recovery: one probe among all, its success restarts the window. */
    atomic_store(&s->reset_reached, 1);
    uint64_t trip_ms = tl_clock_read(s->clock);
    tl_clock_advance(s->clock, reset_ms);
    int same_bucket = trip_ms / BUCKET_MS == (trip_ms + reset_ms) / BUCKET_MS;
    ck_assert_int_eq(same_bucket, reset_ms == SHORT_RESET_MS);
    parent_sync(s, SP_AFTER(1));
    parent_sync(s, SP_AFTER(2));
    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_HALF_OPEN);
    ck_assert_uint_eq(sum_kids(s, offsetof(struct kid_figures, probes)), 1);
    ck_assert_uint_eq(info.counters.probes, 1);
    ck_assert_uint_eq(info.counters.rejected, 2 * WORKERS - 1);
    parent_sync(s, SP_AFTER(3));
    parent_sync(s, SP_AFTER(4));
    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.generation, 3);
    ck_assert_msg(info.window_calls == 0 && info.window_failures == 0 && info.window_slow_calls == 0,
                  "closed by the probe %s the trip's bucket: the window shows %llu calls, %llu failures, %llu "
                  "slow calls, expected none (calls counted before a close never count again)",
                  same_bucket ? "in" : "after", (unsigned long long)info.window_calls,
                  (unsigned long long)info.window_failures, (unsigned long long)info.window_slow_calls);
    ck_assert_uint_eq(info.history_len, 3);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_PROBE_SUCCEEDED);
    ck_assert_int_eq(info.history[1].reason, CB_REASON_TIMEOUT);
    ck_assert_uint_eq(info.backoff_step, 0);
    ck_assert_uint_eq(info.open_timeout_ms, reset_ms);
    observer_catch_up(s);
    parent_sync(s, SP_AFTER(5));
    parent_sync(s, SP_AFTER(6));
    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.generation, 3);
    ck_assert_uint_eq(info.window_calls, (uint64_t)WORKERS * (AFTER_GOOD + AFTER_BAD));
    ck_assert_uint_eq(info.window_failures, (uint64_t)WORKERS * AFTER_BAD);
    ck_assert_uint_eq(info.window_slow_calls, 0);
    ck_assert_uint_eq(info.counters.trips, 1);
    /* Three transitions in all, each announced once. */
    ck_assert_uint_eq(sum_kids(s, offsetof(struct kid_figures, events)), 3);
    ck_assert_uint_eq(atomic_load(&s->nlog), 3);
    ck_assert_uint_eq(info.counters.allowed, sum_kids(s, offsetof(struct kid_figures, allowed)));
    observer_catch_up(s);

    atomic_store(&s->stop_observer, 1);
    for (int i = 0; i <= WORKERS; i++)
        tl_wait_ok(pids[i]);
    ck_assert_msg(!s->msg[0], "%s", s->msg);
    uint64_t wbad = rule == RULE_FAILURE ? open_info.window_failures : open_info.window_slow_calls;
    uint64_t wother = rule == RULE_FAILURE ? open_info.window_slow_calls : open_info.window_failures;
    ck_assert_msg(open_info.window_calls == trip_calls && wbad == trip_bad && wother == 0,
                  "OPEN after the trip: cb_info's window shows %llu calls, %llu failures, %llu slow calls; "
                  "expected the reports made before the trip: %llu calls, %llu %s",
                  (unsigned long long)open_info.window_calls, (unsigned long long)open_info.window_failures,
                  (unsigned long long)open_info.window_slow_calls, (unsigned long long)trip_calls,
                  (unsigned long long)trip_bad, rule == RULE_FAILURE ? "failures" : "slow calls");
    /* The observer saw each phase. */
    ck_assert_uint_gt(atomic_load(&s->obs_gen[0]), 0);
    ck_assert_uint_gt(atomic_load(&s->obs_gen[1]), 0);
    ck_assert_uint_gt(atomic_load(&s->obs_gen[3]), 0);
    printf("observer: %llu snapshots (generation 0: %llu, 1: %llu, 2: %llu, 3: %llu)\n",
           (unsigned long long)atomic_load(&s->obs_samples), (unsigned long long)atomic_load(&s->obs_gen[0]),
           (unsigned long long)atomic_load(&s->obs_gen[1]), (unsigned long long)atomic_load(&s->obs_gen[2]),
           (unsigned long long)atomic_load(&s->obs_gen[3]));
    cb_close(b);
    ck_assert_int_eq(cb_unlink(s->name), 0);
}

START_TEST(test_failure_rate_mp) { run_rule(RULE_FAILURE, RESET_MS); }
END_TEST

START_TEST(test_slow_call_rate_mp) { run_rule(RULE_SLOW, RESET_MS); }
END_TEST

/* The same, with a reset timeout shorter than a bucket: the probe closes
 * the circuit in the bucket it tripped in, and the trip's failures must
 * not count after the close. */
START_TEST(test_close_in_trip_bucket_mp) { run_rule(RULE_FAILURE, SHORT_RESET_MS); }
END_TEST

static Suite *policies_mp_suite(void)
{
    Suite *s = suite_create("policies-mp");
    TCase *tc = tcase_create("failure-rate");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_failure_rate_mp);
    suite_add_tcase(s, tc);
    tc = tcase_create("slow-call-rate");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_slow_call_rate_mp);
    suite_add_tcase(s, tc);
    tc = tcase_create("close-in-trip-bucket");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_close_in_trip_bucket_mp);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(policies_mp_suite()); }
