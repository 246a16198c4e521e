/*
 * test-multiprocess.c - real multi-process tests of one shared circuit.
 *
 * Every test forks worker processes with tl_spawn(), lines them up on a
 * tl_barrier in shared memory so they really race, and the test process
 * (the "parent") asserts every child's exit status with tl_wait_ok(). A
 * child never trusts the library to check itself: each check it makes is
 * against an independent observer, i.e. counters and flags in tl_shared()
 * memory that the TEST maintains next to the library's calls, and a failed
 * check makes the child exit nonzero with a message on stderr. The parent
 * then compares the observer with cb_get_info().
 *
 * Time: no test depends on a sleep winning a race. Every process uses the
 * same manual clock (struct tl_clock in shared memory, installed with
 * cb_set_clock by tl_open_clocked, or before fork() for inherited
 * handles); time moves only when the test says so. Any wait for another
 * process is a yielding spin on shared memory, bounded by DEADLINE_MS and
 * by alarm() in every child (against hangs only, never to order events).
 *
 * What is covered, and who checks which invariant:
 *
 *  1. No lost failure (tcase "no-lost-failure"). 8 processes x 200
 *     failures. Threshold N*M+1: parent checks CLOSED, count == N*M,
 *     failures == N*M, no trip. Threshold N*M: parent checks exactly one
 *     trip, at the last failure (history failures == N*M, trips == 1);
 *     children check (observer "begun", bumped before each cb_failure)
 *     that no acquire was rejected and the circuit was never seen non-CLOSED
 *     before all N*M reports had begun; afterwards every child is rejected.
 *  2. Defaults across processes ("defaults"). NULL config = threshold 3,
 *     60 s. Three processes fail once each; every process, old and new, is
 *     rejected until exactly 60000 ms have passed on the manual clock; then
 *     16 processes race on a barrier and the observer counts exactly one
 *     CB_PROBE.
 *  3. Probe storm ("probe-storm"). 8 processes x 20000 random iterations,
 *     threshold 2, reset 5 ms, probe lease 10^9 ms so a lease can never
 *     legitimately expire. A holder of CB_PROBE bumps an observer counter,
 *     which must go 0 -> 1 (else a violation is recorded), works, drops it,
 *     then reports. Parent: violations == 0, probes > 0, no lease-expired
 *     transition, allowed == successes + failures + released + late, and
 *     the observer's verdict counts equal the library's counters.
 *     Two deterministic companions reproduce the interleaving the storm
 *     can hit by chance: a process is "preempted" between reading the
 *     clock and its compare-and-swap (its cb_set_clock callback stalls
 *     after reading the shared clock) while another process takes the
 *     probe (and, in the second, fails it).
 *  4. Probe holder killed ("probe-holder-killed"). A child takes CB_PROBE
 *     and the parent SIGKILLs it and reaps it (status must be SIGKILL).
 *     Until probe_timeout has passed (manual clock, checked at -1 ms) every
 *     process is rejected; at probe_timeout exactly one of 16 racing
 *     processes gets the probe, and the newest history entry is
 *     probe_lease_expired by that process.
 *  5. Pre-fork patterns ("prefork"). (a) the master opens before fork and
 *     children use the inherited handle; (b) children race to open by name
 *     after fork (observer: exactly one CB_CREATED). In both, one failure
 *     per child trips the circuit for every child, and the striped
 *     counters sum every child's calls exactly. Also: more live processes
 *     than counter stripes, and waves of processes that outnumber the
 *     stripes over time (reaped owners' stripes are taken over), still sum
 *     exactly.
 *  6. Exactly-once transitions ("transitions"). Every child's listener
 *     counts transitions by kind and logs them in shared memory; probes
 *     are never released, so every generation bump is a transition. Parent:
 *     listener calls == generation, the events' generations are exactly
 *     1..generation, each once, opened events == counters.trips,
 *     half-open events == counters.probes, every transition announced by
 *     the process whose CAS made it, per-state flow is conserved, and the
 *     history ring (generations G, G-1, ...) matches the listeners' log
 *     entry for entry.
 *  7. State survives processes ("persistence"). The workers trip the
 *     circuit and all exit, the parent never maps it; a new process opens
 *     it by name and finds it OPEN, with the stored config and the very
 *     counters the last worker saw.
 *  8. Operator controls from another process ("operator"). Workers loop
 *     on an inherited handle; a controller process that opened the circuit
 *     by name calls cb_trip then cb_reset (which return the CLOSED and
 *     the OPEN they replaced), publishing a phase before and after each
 *     call. An acquire that began after cb_trip returned and
 *     ended before cb_reset began must be rejected, one that began after
 *     cb_reset returned must be allowed, one that ended before cb_trip
 *     began must be allowed (checked by the workers against the phase,
 *     read before and after each acquire); each worker records the change
 *     it observed, the generation, and the controller's history entry.
 *
 * Every snapshot the parent takes (info_of) also checks that the history's
 * generations decrease strictly, newest first, none above the circuit's;
 * where the last change was a transition, the newest entry's generation is
 * the circuit's.
 *
 * Each test uses a fresh tl_unique_name() and cb_unlink()s it at the end.
 * Runs in Check's fork mode by default; CK_FORK=no (the valgrind setup)
 * works too, since children report only through their exit status.
 */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"
#include "testlib.h"

#define START_MS 1000000u  /* manual clocks start far from 0 */
#define DEADLINE_MS 20000u /* bound on any spin in a child (hang guard only) */
#define CHILD_ALARM_S 45u  /* a child still alive after this is killed */
#define MAX_KIDS 96

typedef _Atomic uint64_t counter_t;

/* ---- helpers ---------------------------------------------------------- */

struct kid {
    void *sh; /* the test's shared block */
    int idx;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* First thing every child does: never outlive the test, never hang. */
static void child_begin(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(CHILD_ALARM_S);
}

static int child_failed(int line, const char *what)
{
    fprintf(stderr, "test-multiprocess.c:%d: child %d: check failed: %s\n", line, (int)getpid(), what);
    return 1;
}

/* In a child's function only: exit nonzero, saying what failed. */
#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return child_failed(__LINE__, #cond);                                                  \
    } while (0)

/* Yielding spin until *v >= target; 0 if DEADLINE_MS passed first. */
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

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static uint64_t rng_seed(int idx)
{
    return (uint64_t)(idx + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)getpid() << 17 ^ mono_ms();
}

static void spawn_kids(int (*fn)(void *), void *sh, int n, struct kid *kids, pid_t *pids, int first_idx)
{
    ck_assert_int_le(n, MAX_KIDS);
    for (int i = 0; i < n; i++) {
        kids[i].sh = sh;
        kids[i].idx = first_idx + i;
        pids[i] = tl_spawn(fn, &kids[i]);
    }
}

static void wait_kids(const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        tl_wait_ok(pids[i]);
}

/* Fork n children running fn, and assert each exits 0. */
static void run_kids(int (*fn)(void *), void *sh, int n)
{
    struct kid kids[MAX_KIDS];
    pid_t pids[MAX_KIDS];
    spawn_kids(fn, sh, n, kids, pids, 0);
    wait_kids(pids, n);
}

static void info_of(cb_breaker *b, cb_info *info)
{
    int rc = cb_get_info(b, info);
    ck_assert_msg(rc == 0, "cb_get_info: %s", cb_strerror(rc));
    /* No test here comes near the 22-bit wrap. */
    for (unsigned h = 0; h < info->history_len; h++) {
        uint32_t g = info->history[h].generation;
        ck_assert_msg(g >= 1 && g <= info->generation, "history[%u].generation %u, circuit at %u", h, g,
                      info->generation);
        if (h > 0)
            ck_assert_msg(g < info->history[h - 1].generation, "history[%u].generation %u not below %u", h, g,
                          info->history[h - 1].generation);
    }
}

/* The last change of the word was a transition: the newest entry. */
static void assert_newest_is_current(const cb_info *info)
{
    ck_assert_uint_ge(info->history_len, 1);
    ck_assert_msg(info->history[0].generation == info->generation, "history[0].generation %u, circuit at %u",
                  info->history[0].generation, info->generation);
}

static void assert_accounted(const cb_counters *c)
{
    ck_assert_msg(c->allowed == c->successes + c->failures + c->released + c->late,
                  "allowed %llu != successes %llu + failures %llu + released %llu + late %llu",
                  (unsigned long long)c->allowed, (unsigned long long)c->successes,
                  (unsigned long long)c->failures, (unsigned long long)c->released,
                  (unsigned long long)c->late);
}

static void assert_transition(const cb_transition *t, cb_state from, cb_state to, cb_reason reason)
{
    ck_assert_msg(t->from == from && t->to == to && t->reason == reason,
                  "transition %s -> %s (%s), expected %s -> %s (%s)", cb_state_name(t->from),
                  cb_state_name(t->to), cb_reason_name(t->reason), cb_state_name(from), cb_state_name(to),
                  cb_reason_name(reason));
}

/* ---- 1. no lost failure ------------------------------------------------ */

#define T1_N 8
#define T1_M 200
#define T1_TOTAL ((uint64_t)T1_N * T1_M)

struct t1 {
    const char *name;
    struct tl_clock *clock;
    struct tl_barrier *start, *reported;
    uint64_t threshold;
    int acquire_after;       /* acquire once more after every report is in */
    counter_t begun;         /* failure reports started (bumped BEFORE cb_failure) */
    counter_t allowed;       /* CB_ALLOWED in the failure loop */
    counter_t rejected;      /* CB_REJECTED in the failure loop */
    counter_t rejected_early; /* ... while begun < N*M */
    counter_t early_trip;    /* circuit seen not CLOSED while begun < threshold */
    counter_t final_rejected;
};

static int t1_child(void *arg)
{
    struct kid *k = arg;
    struct t1 *s = k->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    tl_barrier_wait(s->start);
    for (int i = 0; i < T1_M; i++) {
        cb_permit p;
        if (cb_acquire(b, &p) != CB_ALLOWED) {
            atomic_fetch_add(&s->rejected, 1);
            if (atomic_load(&s->begun) < T1_TOTAL)
                atomic_fetch_add(&s->rejected_early, 1);
            continue;
        }
        atomic_fetch_add(&s->allowed, 1);
        atomic_fetch_add(&s->begun, 1);
        cb_failure(b, &p);
        /* begun >= every failure the library has seen so far. */
        if (cb_get_state(b) != CB_CLOSED && atomic_load(&s->begun) < s->threshold)
            atomic_fetch_add(&s->early_trip, 1);
    }
    tl_barrier_wait(s->reported);
    if (s->acquire_after) {
        cb_permit p;
        CHILD_CHECK(cb_acquire(b, &p) == CB_REJECTED);
        atomic_fetch_add(&s->final_rejected, 1);
    }
    cb_close(b);
    return 0;
}

static struct t1 *t1_run(const char *name, uint32_t threshold, int acquire_after, cb_info *info)
{
    struct t1 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->start = tl_barrier_new(T1_N);
    s->reported = tl_barrier_new(T1_N);
    s->threshold = threshold;
    s->acquire_after = acquire_after;
    cb_config cfg = {.failure_threshold = threshold, .reset_timeout_ms = 60000};
    cb_breaker *b = tl_open_clocked(name, &cfg, s->clock); /* creates; children attach */
    run_kids(t1_child, s, T1_N);
    info_of(b, info);
    cb_close(b);
    return s;
}

START_TEST(test_no_lost_failure_below_threshold)
{
    const char *name = tl_unique_name("mp-nolost");
    cb_info info;
    struct t1 *s = t1_run(name, (uint32_t)T1_TOTAL + 1, 0, &info);
    ck_assert_uint_eq(atomic_load(&s->rejected), 0);
    ck_assert_uint_eq(atomic_load(&s->early_trip), 0);
    ck_assert_uint_eq(atomic_load(&s->allowed), T1_TOTAL);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.failures, T1_TOTAL);
    ck_assert_uint_eq(info.counters.failures, T1_TOTAL);
    ck_assert_uint_eq(info.counters.allowed, T1_TOTAL);
    ck_assert_uint_eq(info.counters.rejected, 0);
    ck_assert_uint_eq(info.counters.late, 0);
    ck_assert_uint_eq(info.counters.trips, 0);
    ck_assert_uint_eq(info.generation, 0);
    ck_assert_uint_eq(info.history_len, 0);
    assert_accounted(&info.counters);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_no_lost_failure_trips_at_last)
{
    const char *name = tl_unique_name("mp-trip-last");
    cb_info info;
    struct t1 *s = t1_run(name, (uint32_t)T1_TOTAL, 1, &info);
    ck_assert_msg(atomic_load(&s->rejected_early) == 0, "%llu acquires rejected before all %llu failures",
                  (unsigned long long)atomic_load(&s->rejected_early), (unsigned long long)T1_TOTAL);
    ck_assert_uint_eq(atomic_load(&s->rejected), 0);
    ck_assert_msg(atomic_load(&s->early_trip) == 0, "circuit left CLOSED before the last failure");
    ck_assert_uint_eq(atomic_load(&s->allowed), T1_TOTAL);
    ck_assert_uint_eq(atomic_load(&s->final_rejected), T1_N);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_eq(info.counters.failures, T1_TOTAL);
    ck_assert_uint_eq(info.counters.trips, 1);
    ck_assert_uint_eq(info.counters.allowed, T1_TOTAL);
    ck_assert_uint_eq(info.counters.rejected, T1_N);
    ck_assert_uint_eq(info.counters.late, 0);
    ck_assert_uint_eq(info.generation, 1);
    ck_assert_uint_eq(info.history_len, 1);
    assert_transition(&info.history[0], CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD);
    ck_assert_uint_eq(info.history[0].failures, T1_TOTAL);
    assert_newest_is_current(&info);
    assert_accounted(&info.counters);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ---- 2. defaults across processes ------------------------------------- */

#define T2_FAILERS 3
#define T2_LATECOMERS 4
#define T2_STORM 16

struct t2 {
    const char *name;
    struct tl_clock *clock;
    struct tl_barrier *start, *tripped, *storm, *storm_done;
    counter_t probes, rejected, allowed;
    _Atomic int32_t probe_pid;
};

static int t2_failer(void *arg)
{
    struct t2 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_info info;
    CHILD_CHECK(cb_get_info(b, &info) == 0);
    CHILD_CHECK(info.config.failure_threshold == CB_DEFAULT_FAILURE_THRESHOLD);
    CHILD_CHECK(info.config.reset_timeout_ms == CB_DEFAULT_RESET_TIMEOUT_MS);
    CHILD_CHECK(info.config.probe_timeout_ms == CB_DEFAULT_RESET_TIMEOUT_MS);
    tl_barrier_wait(s->start);
    cb_permit p;
    CHILD_CHECK(cb_acquire(b, &p) == CB_ALLOWED);
    cb_failure(b, &p);
    tl_barrier_wait(s->tripped); /* all three failures are in */
    CHILD_CHECK(cb_get_state(b) == CB_OPEN);
    CHILD_CHECK(cb_acquire(b, &p) == CB_REJECTED);
    cb_close(b);
    return 0;
}

static int t2_rejected(void *arg)
{
    struct t2 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_permit p;
    CHILD_CHECK(cb_acquire(b, &p) == CB_REJECTED);
    cb_close(b);
    return 0;
}

static int t2_storm(void *arg)
{
    struct t2 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_permit p;
    tl_barrier_wait(s->storm);
    cb_verdict v = cb_acquire(b, &p);
    if (v == CB_PROBE) {
        atomic_fetch_add(&s->probes, 1);
        atomic_store(&s->probe_pid, (int32_t)getpid());
    } else if (v == CB_REJECTED) {
        atomic_fetch_add(&s->rejected, 1);
    } else {
        atomic_fetch_add(&s->allowed, 1);
    }
    tl_barrier_wait(s->storm_done); /* every racer has its verdict */
    if (v == CB_PROBE)
        cb_success(b, &p);
    cb_close(b);
    return 0;
}

START_TEST(test_defaults_across_processes)
{
    const char *name = tl_unique_name("mp-defaults");
    struct t2 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->start = tl_barrier_new(T2_FAILERS);
    s->tripped = tl_barrier_new(T2_FAILERS);
    s->storm = tl_barrier_new(T2_STORM);
    s->storm_done = tl_barrier_new(T2_STORM);

    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    cb_set_clock(b, tl_clock_read, s->clock);
    cb_info info;
    info_of(b, &info);
    ck_assert_uint_eq(info.config.failure_threshold, 3);
    ck_assert_uint_eq(info.config.reset_timeout_ms, 60000);
    ck_assert_uint_eq(info.config.probe_timeout_ms, 60000);

    run_kids(t2_failer, s, T2_FAILERS);
    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_eq(info.counters.trips, 1);
    ck_assert_uint_eq(info.counters.failures, T2_FAILERS);
    ck_assert_uint_eq(info.ms_until_probe, 60000);
    assert_transition(&info.history[0], CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD);
    ck_assert_uint_eq(info.history[0].failures, 3);
    ck_assert_uint_eq(info.generation, 1);
    assert_newest_is_current(&info);

    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_REJECTED); /* the parent too */
    run_kids(t2_rejected, s, T2_LATECOMERS);          /* and new processes */

    tl_clock_advance(s->clock, 59999);
    info_of(b, &info);
    ck_assert_uint_eq(info.ms_until_probe, 1);
    run_kids(t2_rejected, s, T2_LATECOMERS); /* 1 ms early: still rejected */

    tl_clock_advance(s->clock, 1);
    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_eq(info.ms_until_probe, 0);
    run_kids(t2_storm, s, T2_STORM);
    ck_assert_msg(atomic_load(&s->probes) == 1, "%llu of %d racing processes got CB_PROBE",
                  (unsigned long long)atomic_load(&s->probes), T2_STORM);
    ck_assert_uint_eq(atomic_load(&s->rejected), T2_STORM - 1);
    ck_assert_uint_eq(atomic_load(&s->allowed), 0);

    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.counters.probes, 1);
    ck_assert_uint_eq(info.counters.allowed, T2_FAILERS + 1);
    ck_assert_uint_eq(info.counters.rejected, T2_FAILERS + 1 + 2 * T2_LATECOMERS + T2_STORM - 1);
    ck_assert_uint_ge(info.history_len, 3);
    assert_transition(&info.history[0], CB_HALF_OPEN, CB_CLOSED, CB_REASON_PROBE_SUCCEEDED);
    assert_transition(&info.history[1], CB_OPEN, CB_HALF_OPEN, CB_REASON_TIMEOUT);
    ck_assert_int_eq(info.history[0].pid, atomic_load(&s->probe_pid));
    ck_assert_int_eq(info.history[1].pid, atomic_load(&s->probe_pid));
    /* trip 1, probe 2, close 3: every generation a transition. */
    ck_assert_uint_eq(info.generation, 3);
    ck_assert_uint_eq(info.history_len, 3);
    for (unsigned h = 0; h < 3; h++)
        ck_assert_uint_eq(info.history[h].generation, 3 - h);
    assert_accounted(&info.counters);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ---- 3. probe storm ---------------------------------------------------- */

#define T3_N 8
#define T3_ITERS 20000
#define T3_PROBE_TIMEOUT_MS 1000000000u /* never reached: total advance < 10^5 ms */

struct t3 {
    const char *name;
    struct tl_clock *clock;
    cb_breaker *b; /* opened before fork, clock set: inherited */
    struct tl_barrier *start;
    _Atomic int in_probe;  /* observer: processes holding CB_PROBE right now */
    counter_t violations;  /* CB_PROBE while another process held it */
    counter_t calls, probes, rejected;
    counter_t lease_expired; /* listener: HALF_OPEN -> HALF_OPEN transitions */
};

static void t3_listener(const cb_event *ev, void *ctx)
{
    struct t3 *s = ctx;
    if (ev->transition.reason == CB_REASON_LEASE_EXPIRED)
        atomic_fetch_add(&s->lease_expired, 1);
}

static int t3_child(void *arg)
{
    struct kid *k = arg;
    struct t3 *s = k->sh;
    child_begin();
    cb_breaker *b = s->b;
    cb_set_listener(b, t3_listener, s);
    uint64_t rng = rng_seed(k->idx);
    tl_barrier_wait(s->start);
    for (int i = 0; i < T3_ITERS; i++) {
        uint64_t r = rng_next(&rng);
        if ((r & 3) == 0)
            tl_clock_advance(s->clock, 1); /* the reset timeout passes under load */
        cb_permit p;
        cb_verdict v = cb_acquire(b, &p);
        if (v == CB_REJECTED) {
            atomic_fetch_add(&s->rejected, 1);
            continue;
        }
        if (v == CB_PROBE) {
            atomic_fetch_add(&s->probes, 1);
            if (atomic_fetch_add(&s->in_probe, 1) != 0)
                atomic_fetch_add(&s->violations, 1);
            for (unsigned w = (unsigned)(r >> 8) % 4; w > 0; w--)
                sched_yield(); /* the probe's call: let others try meanwhile */
            /* Leave the observer before reporting: after the report a new
             * probe may legitimately be granted. */
            atomic_fetch_sub(&s->in_probe, 1);
        } else {
            atomic_fetch_add(&s->calls, 1);
        }
        unsigned outcome = (unsigned)(r >> 16) % 10;
        if (outcome < 4)
            cb_success(b, &p);
        else if (outcome < 8)
            cb_failure(b, &p);
        else
            cb_release(b, &p);
    }
    return 0;
}

START_TEST(test_probe_storm)
{
    const char *name = tl_unique_name("mp-storm");
    struct t3 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->start = tl_barrier_new(T3_N);
    cb_config cfg = {.failure_threshold = 2, .reset_timeout_ms = 5, .probe_timeout_ms = T3_PROBE_TIMEOUT_MS};
    s->b = tl_open_clocked(name, &cfg, s->clock); /* clock set before fork */
    run_kids(t3_child, s, T3_N);

    cb_info info;
    info_of(s->b, &info);
    cb_close(s->b);
    ck_assert_int_eq(cb_unlink(name), 0); /* first, so that a failure leaves nothing behind */
    uint64_t probes = atomic_load(&s->probes);
    fprintf(stderr, "probe storm: %llu calls, %llu probes, %llu rejected, %llu trips, generation %u, "
                    "clock +%llu ms, %llu lease takeovers, %llu probe violations\n",
            (unsigned long long)atomic_load(&s->calls), (unsigned long long)probes,
            (unsigned long long)atomic_load(&s->rejected), (unsigned long long)info.counters.trips,
            info.generation, (unsigned long long)(tl_clock_read(s->clock) - START_MS),
            (unsigned long long)atomic_load(&s->lease_expired), (unsigned long long)atomic_load(&s->violations));
    ck_assert_msg(probes > 0, "the storm never reached HALF_OPEN");
    ck_assert_uint_lt(tl_clock_read(s->clock) - START_MS, T3_PROBE_TIMEOUT_MS);
    ck_assert_uint_eq(info.counters.probes, probes);
    ck_assert_uint_eq(info.counters.allowed, atomic_load(&s->calls) + probes);
    ck_assert_uint_eq(info.counters.rejected, atomic_load(&s->rejected));
    assert_accounted(&info.counters);
    ck_assert_msg(atomic_load(&s->lease_expired) == 0,
                  "%llu probe leases were taken over although no lease can reach probe_timeout",
                  (unsigned long long)atomic_load(&s->lease_expired));
    ck_assert_msg(atomic_load(&s->violations) == 0, "%llu times a second process held CB_PROBE",
                  (unsigned long long)atomic_load(&s->violations));
}
END_TEST

/*
 * The interleaving the storm hits by chance, made deterministic. Process A
 * reads the (shared, manual) clock inside cb_acquire and is "preempted"
 * right after: its cb_set_clock callback stalls once after the read. While
 * it stalls, time moves on by 1 ms and process B takes the probe (and, in
 * the second scenario, fails it, re-opening the circuit). A then resumes
 * with its clock reading, which is 1 ms older than the word it now sees.
 * A correct library rejects A in both scenarios: the lease of B's probe
 * (10^6 ms) and the fresh reset_timeout (10 ms) have not passed.
 */
struct t3s {
    const char *name;
    struct tl_clock *clock;
    int b_fails_probe;
    counter_t step; /* 1: A has read the clock; 2: B acted; 3: A decided */
    _Atomic int a_verdict, b_verdict;
};

static int t3s_armed; /* process A only: stall on the next clock read */

static uint64_t t3s_stalling_clock(void *ctx)
{
    struct t3s *s = ctx;
    uint64_t now = tl_clock_read(s->clock);
    if (t3s_armed) {
        t3s_armed = 0;
        atomic_store(&s->step, 1);
        await_at_least(&s->step, 2);
    }
    return now;
}

static int t3s_a(void *arg)
{
    struct t3s *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_set_clock(b, t3s_stalling_clock, s); /* the same shared clock, read by a hook */
    cb_permit p;
    t3s_armed = 1;
    cb_verdict v = cb_acquire(b, &p);
    atomic_store(&s->a_verdict, (int)v);
    atomic_store(&s->step, 3);
    CHILD_CHECK(!t3s_armed); /* the hook did run */
    /* A's verdict is judged by the parent; keep any probe unreported. */
    cb_close(b);
    return 0;
}

static int t3s_b(void *arg)
{
    struct t3s *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    CHILD_CHECK(await_at_least(&s->step, 1));
    tl_clock_advance(s->clock, 1);
    cb_permit p;
    cb_verdict v = cb_acquire(b, &p);
    atomic_store(&s->b_verdict, (int)v);
    if (s->b_fails_probe)
        cb_failure(b, &p);
    atomic_store(&s->step, 2);
    CHILD_CHECK(await_at_least(&s->step, 3));
    if (!s->b_fails_probe)
        cb_success(b, &p);
    cb_close(b);
    return 0;
}

static void t3s_run(int b_fails_probe)
{
    const char *name = tl_unique_name(b_fails_probe ? "mp-stale-open" : "mp-stale-half");
    struct t3s *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->b_fails_probe = b_fails_probe;
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = 10, .probe_timeout_ms = 1000000};
    cb_breaker *b = tl_open_clocked(name, &cfg, s->clock);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
    cb_failure(b, &p); /* OPEN at START_MS */
    tl_clock_advance(s->clock, 10);

    struct kid kids[2];
    pid_t pids[2];
    spawn_kids(t3s_a, s, 1, &kids[0], &pids[0], 0);
    spawn_kids(t3s_b, s, 1, &kids[1], &pids[1], 1);
    wait_kids(pids, 2);

    cb_info info;
    info_of(b, &info);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0); /* first: this test fails on a buggy library */
    ck_assert_int_eq(atomic_load(&s->b_verdict), CB_PROBE);
    ck_assert_msg(atomic_load(&s->a_verdict) == CB_REJECTED,
                  "%s: a process whose clock reading predates its failed CAS got verdict %d "
                  "(newest transition: %s -> %s, %s); expected CB_REJECTED",
                  b_fails_probe ? "probe after a fresh re-open, before reset_timeout"
                                : "second probe while the first is held",
                  atomic_load(&s->a_verdict), cb_state_name(info.history[0].from),
                  cb_state_name(info.history[0].to), cb_reason_name(info.history[0].reason));
    ck_assert_uint_eq(info.counters.probes, 1);
    if (b_fails_probe) {
        ck_assert_int_eq(info.state, CB_OPEN);
        ck_assert_uint_eq(info.ms_until_probe, 10);
    } else {
        ck_assert_int_eq(info.state, CB_CLOSED);
        ck_assert_uint_eq(info.counters.late, 0);
    }
}

START_TEST(test_stale_clock_second_probe) { t3s_run(0); }
END_TEST

START_TEST(test_stale_clock_probe_before_reset_timeout) { t3s_run(1); }
END_TEST

/* ---- 4. probe holder killed -------------------------------------------- */

#define T4_REJECTERS 8
#define T4_STORM 16
#define T4_RESET_MS 1000u
#define T4_PROBE_MS 5000u

struct t4 {
    const char *name;
    struct tl_clock *clock;
    struct tl_barrier *storm, *storm_done;
    _Atomic int killed_verdict;
    counter_t holding; /* the doomed child has its verdict */
    counter_t probes, rejected, allowed;
    _Atomic int32_t probe_pid;
};

static int t4_doomed(void *arg)
{
    struct t4 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_permit p;
    cb_verdict v = cb_acquire(b, &p);
    atomic_store(&s->killed_verdict, (int)v);
    atomic_store(&s->holding, 1);
    CHILD_CHECK(v == CB_PROBE);
    for (;;)
        pause(); /* holds the probe until the parent SIGKILLs it */
}

static int t4_rejected(void *arg)
{
    struct t4 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_permit p;
    CHILD_CHECK(cb_acquire(b, &p) == CB_REJECTED);
    cb_close(b);
    return 0;
}

static int t4_storm(void *arg)
{
    struct t4 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_permit p;
    tl_barrier_wait(s->storm);
    cb_verdict v = cb_acquire(b, &p);
    if (v == CB_PROBE) {
        atomic_fetch_add(&s->probes, 1);
        atomic_store(&s->probe_pid, (int32_t)getpid());
    } else if (v == CB_REJECTED) {
        atomic_fetch_add(&s->rejected, 1);
    } else {
        atomic_fetch_add(&s->allowed, 1);
    }
    tl_barrier_wait(s->storm_done);
    /* The winner keeps its probe: the parent inspects the lease. */
    cb_close(b);
    return 0;
}

START_TEST(test_probe_holder_killed)
{
    const char *name = tl_unique_name("mp-killed");
    struct t4 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->storm = tl_barrier_new(T4_STORM);
    s->storm_done = tl_barrier_new(T4_STORM);
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = T4_RESET_MS, .probe_timeout_ms = T4_PROBE_MS};
    cb_breaker *b = tl_open_clocked(name, &cfg, s->clock);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
    cb_failure(b, &p);
    ck_assert_int_eq(cb_get_state(b), CB_OPEN);
    tl_clock_advance(s->clock, T4_RESET_MS);

    struct kid kid;
    kid.sh = s;
    kid.idx = 0;
    pid_t doomed = tl_spawn(t4_doomed, &kid);
    uint64_t deadline = mono_ms() + DEADLINE_MS;
    while (atomic_load(&s->holding) == 0 && mono_ms() < deadline)
        sched_yield();
    ck_assert_int_eq(kill(doomed, SIGKILL), 0); /* dies holding the probe, unreported */
    int status;
    ck_assert_int_eq(waitpid(doomed, &status, 0), doomed);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "probe holder %d: status 0x%x, verdict %d (expected killed holding CB_PROBE)", (int)doomed,
                  status, atomic_load(&s->killed_verdict));
    ck_assert_int_eq(atomic_load(&s->killed_verdict), CB_PROBE);

    cb_info info;
    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_HALF_OPEN);
    ck_assert_int_eq(info.probe_pid, doomed);
    ck_assert_uint_eq(info.probe_lease_ms, T4_PROBE_MS);
    assert_transition(&info.history[0], CB_OPEN, CB_HALF_OPEN, CB_REASON_TIMEOUT);
    ck_assert_int_eq(info.history[0].pid, doomed);
    assert_newest_is_current(&info);

    /* The dead holder's lease is still running: everyone is rejected. */
    run_kids(t4_rejected, s, T4_REJECTERS);
    ck_assert_int_eq(cb_acquire(b, &p), CB_REJECTED);
    tl_clock_advance(s->clock, T4_PROBE_MS - 1);
    info_of(b, &info);
    ck_assert_uint_eq(info.probe_lease_ms, 1);
    run_kids(t4_rejected, s, T4_REJECTERS);

    /* The lease expires: exactly one of many racers takes over. */
    tl_clock_advance(s->clock, 1);
    run_kids(t4_storm, s, T4_STORM);
    ck_assert_msg(atomic_load(&s->probes) == 1, "%llu of %d racing processes got CB_PROBE",
                  (unsigned long long)atomic_load(&s->probes), T4_STORM);
    ck_assert_uint_eq(atomic_load(&s->rejected), T4_STORM - 1);
    ck_assert_uint_eq(atomic_load(&s->allowed), 0);

    info_of(b, &info);
    int32_t winner = atomic_load(&s->probe_pid);
    ck_assert_int_eq(info.state, CB_HALF_OPEN);
    ck_assert_int_eq(info.probe_pid, winner);
    ck_assert_uint_eq(info.probe_lease_ms, T4_PROBE_MS);
    ck_assert_uint_ge(info.history_len, 3);
    assert_transition(&info.history[0], CB_HALF_OPEN, CB_HALF_OPEN, CB_REASON_LEASE_EXPIRED);
    ck_assert_str_eq(cb_reason_name(info.history[0].reason), "probe_lease_expired");
    ck_assert_int_eq(info.history[0].pid, winner);
    assert_transition(&info.history[1], CB_OPEN, CB_HALF_OPEN, CB_REASON_TIMEOUT);
    ck_assert_int_eq(info.history[1].pid, doomed);
    assert_newest_is_current(&info);
    ck_assert_uint_eq(info.history[1].generation, info.generation - 1);
    ck_assert_uint_eq(info.counters.probes, 2);
    ck_assert_uint_eq(info.counters.rejected, 2 * T4_REJECTERS + 1 + T4_STORM - 1);
    /* Two permits (the dead holder's and the winner's) were never reported. */
    ck_assert_uint_eq(info.counters.allowed, info.counters.successes + info.counters.failures +
                                                 info.counters.released + info.counters.late + 2);
    ck_assert_int_eq(cb_acquire(b, &p), CB_REJECTED); /* the new lease holds */
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ---- 5. pre-fork patterns and striped counters ------------------------- */

#define T5_N 6
#define T5_S 500

struct t5 {
    const char *name;
    struct tl_clock *clock;
    cb_config cfg;
    cb_breaker *inherited; /* (a): opened by the master before fork */
    struct tl_barrier *start, *healthy, *failed;
    counter_t acquires, allowed, rejected;
    counter_t created, opened, other_rc;
};

static int t5_child(void *arg)
{
    struct t5 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = s->inherited;
    if (!b) {
        int rc = cb_open(s->name, &s->cfg, &b);
        if (rc < 0)
            fprintf(stderr, "cb_open(%s): %s\n", s->name, cb_strerror(rc));
        CHILD_CHECK(rc >= 0);
        atomic_fetch_add(rc == CB_CREATED ? &s->created : rc == CB_OPENED ? &s->opened : &s->other_rc, 1);
        cb_set_clock(b, tl_clock_read, s->clock);
    }
    cb_permit p;
    tl_barrier_wait(s->start);
    for (int i = 0; i < T5_S; i++) {
        atomic_fetch_add(&s->acquires, 1);
        CHILD_CHECK(cb_acquire(b, &p) == CB_ALLOWED);
        atomic_fetch_add(&s->allowed, 1);
        cb_success(b, &p);
    }
    tl_barrier_wait(s->healthy); /* no success can clear a failure below */
    atomic_fetch_add(&s->acquires, 1);
    CHILD_CHECK(cb_acquire(b, &p) == CB_ALLOWED);
    atomic_fetch_add(&s->allowed, 1);
    cb_failure(b, &p);
    tl_barrier_wait(s->failed); /* every child's failure is in: tripped for all */
    atomic_fetch_add(&s->acquires, 1);
    CHILD_CHECK(cb_acquire(b, &p) == CB_REJECTED);
    atomic_fetch_add(&s->rejected, 1);
    CHILD_CHECK(cb_get_state(b) == CB_OPEN);
    if (!s->inherited)
        cb_close(b);
    return 0;
}

static void t5_run(int inherited)
{
    const char *name = tl_unique_name(inherited ? "mp-prefork-a" : "mp-prefork-b");
    struct t5 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->cfg = (cb_config){.failure_threshold = T5_N, .reset_timeout_ms = 60000};
    s->start = tl_barrier_new(T5_N);
    s->healthy = tl_barrier_new(T5_N);
    s->failed = tl_barrier_new(T5_N);
    uint64_t parent_calls = 0;
    if (inherited) {
        s->inherited = tl_open_clocked(name, &s->cfg, s->clock);
        /* The master uses the circuit before forking, so the children
         * inherit whatever per-thread state that leaves behind. */
        cb_permit p;
        ck_assert_int_eq(cb_acquire(s->inherited, &p), CB_ALLOWED);
        cb_success(s->inherited, &p);
        parent_calls = 1;
    } else {
        cb_breaker *none = NULL;
        ck_assert_int_eq(cb_attach(name, &none), -ENOENT); /* the children create it */
    }
    run_kids(t5_child, s, T5_N);

    cb_breaker *b = s->inherited;
    if (!b) {
        ck_assert_uint_eq(atomic_load(&s->created), 1);
        ck_assert_uint_eq(atomic_load(&s->opened), T5_N - 1);
        ck_assert_uint_eq(atomic_load(&s->other_rc), 0);
        ck_assert_int_eq(cb_attach(name, &b), CB_OPENED);
        cb_set_clock(b, tl_clock_read, s->clock);
    }
    cb_info info;
    info_of(b, &info);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_eq(atomic_load(&s->acquires), (uint64_t)T5_N * (T5_S + 2));
    ck_assert_uint_eq(info.counters.allowed, atomic_load(&s->allowed) + parent_calls);
    ck_assert_uint_eq(info.counters.allowed, (uint64_t)T5_N * (T5_S + 1) + parent_calls);
    ck_assert_uint_eq(info.counters.rejected, atomic_load(&s->rejected));
    ck_assert_uint_eq(info.counters.rejected, T5_N);
    ck_assert_uint_eq(info.counters.allowed + info.counters.rejected, atomic_load(&s->acquires) + parent_calls);
    ck_assert_uint_eq(info.counters.successes, (uint64_t)T5_N * T5_S + parent_calls);
    ck_assert_uint_eq(info.counters.failures, T5_N);
    ck_assert_uint_eq(info.counters.late, 0);
    ck_assert_uint_eq(info.counters.trips, 1);
    assert_transition(&info.history[0], CB_CLOSED, CB_OPEN, CB_REASON_THRESHOLD);
    ck_assert_uint_eq(info.history[0].failures, T5_N);
    ck_assert_uint_eq(info.generation, 1);
    assert_newest_is_current(&info);
    assert_accounted(&info.counters);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}

START_TEST(test_prefork_inherited_handle) { t5_run(1); }
END_TEST

START_TEST(test_prefork_open_after_fork) { t5_run(0); }
END_TEST

/* More processes than counter stripes, at once and over time. */
#define T5X_LIVE 80  /* alive together */
#define T5X_WAVE 40  /* per wave; waves are reaped in between */
#define T5X_WAVES 3
#define T5X_CALLS 50

struct t5x {
    const char *name;
    struct tl_clock *clock;
    cb_breaker *b; /* inherited */
    struct tl_barrier *start, *end;
    counter_t allowed;
};

static int t5x_child(void *arg)
{
    struct t5x *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_permit p;
    tl_barrier_wait(s->start);
    for (int i = 0; i < T5X_CALLS; i++) {
        CHILD_CHECK(cb_acquire(s->b, &p) == CB_ALLOWED);
        atomic_fetch_add(&s->allowed, 1);
        if (i % 2)
            cb_success(s->b, &p);
        else
            cb_release(s->b, &p);
    }
    tl_barrier_wait(s->end); /* stay alive until everyone has counted */
    return 0;
}

static void t5x_check(struct t5x *s, uint64_t processes)
{
    cb_info info;
    info_of(s->b, &info);
    uint64_t calls = processes * T5X_CALLS;
    ck_assert_uint_eq(atomic_load(&s->allowed), calls);
    ck_assert_uint_eq(info.counters.allowed, calls);
    ck_assert_uint_eq(info.counters.successes, calls / 2);
    ck_assert_uint_eq(info.counters.released, calls / 2);
    ck_assert_uint_eq(info.counters.rejected, 0);
    assert_accounted(&info.counters);
}

START_TEST(test_counters_more_processes_than_stripes)
{
    const char *name = tl_unique_name("mp-stripes");
    struct t5x *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->b = tl_open_clocked(name, NULL, s->clock);

    s->start = tl_barrier_new(T5X_LIVE);
    s->end = tl_barrier_new(T5X_LIVE);
    run_kids(t5x_child, s, T5X_LIVE);
    t5x_check(s, T5X_LIVE);

    uint64_t processes = T5X_LIVE;
    for (int wave = 0; wave < T5X_WAVES; wave++) {
        s->start = tl_barrier_new(T5X_WAVE);
        s->end = tl_barrier_new(T5X_WAVE);
        run_kids(t5x_child, s, T5X_WAVE);
        processes += T5X_WAVE;
        t5x_check(s, processes);
    }
    cb_close(s->b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ---- 6. exactly-once transitions --------------------------------------- */

#define T6_N 8
#define T6_ITERS 5000
#define T6_LOG_MAX (1u << 17)

struct t6_rec {
    int32_t pid;
    uint8_t from, to, reason;
    uint32_t failures;
    uint64_t wall_ms;
    uint32_t generation;
};

struct t6 {
    const char *name;
    struct tl_clock *clock;
    struct tl_barrier *start;
    counter_t pair[3][3];   /* listener calls by from -> to */
    counter_t reason[CB_REASON_TRIP + 1];
    counter_t ev_opened, ev_half_open, ev_closed;
    counter_t foreign, bad, overflow;
    counter_t calls, probes, rejected;
    counter_t nlog;
    struct t6_rec log[T6_LOG_MAX];
};

static void t6_listener(const cb_event *ev, void *ctx)
{
    struct t6 *s = ctx;
    const cb_transition *t = &ev->transition;
    if (t->pid != (int32_t)getpid()) /* announced by the process that made it */
        atomic_fetch_add(&s->foreign, 1);
    if ((unsigned)t->from > 2 || (unsigned)t->to > 2 || (unsigned)t->reason > CB_REASON_TRIP ||
        strcmp(ev->circuit, s->name) != 0) {
        atomic_fetch_add(&s->bad, 1);
        return;
    }
    atomic_fetch_add(&s->pair[t->from][t->to], 1);
    atomic_fetch_add(&s->reason[t->reason], 1);
    const char *n = cb_event_name(t);
    if (strcmp(n, "circuit_breaker_opened") == 0)
        atomic_fetch_add(&s->ev_opened, 1);
    else if (strcmp(n, "circuit_breaker_half_open") == 0)
        atomic_fetch_add(&s->ev_half_open, 1);
    else if (strcmp(n, "circuit_breaker_closed") == 0)
        atomic_fetch_add(&s->ev_closed, 1);
    else
        atomic_fetch_add(&s->bad, 1);
    uint64_t i = atomic_fetch_add(&s->nlog, 1);
    if (i >= T6_LOG_MAX) {
        atomic_fetch_add(&s->overflow, 1);
        return;
    }
    s->log[i] = (struct t6_rec){t->pid, (uint8_t)t->from, (uint8_t)t->to, (uint8_t)t->reason, t->failures,
                                t->wall_ms, t->generation};
}

static int t6_child(void *arg)
{
    struct kid *k = arg;
    struct t6 *s = k->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock);
    cb_set_listener(b, t6_listener, s);
    uint64_t rng = rng_seed(k->idx);
    tl_barrier_wait(s->start);
    for (int i = 0; i < T6_ITERS; i++) {
        uint64_t r = rng_next(&rng);
        if ((r & 3) == 0)
            tl_clock_advance(s->clock, 1);
        cb_permit p;
        cb_verdict v = cb_acquire(b, &p);
        if (v == CB_REJECTED) {
            atomic_fetch_add(&s->rejected, 1);
            continue;
        }
        atomic_fetch_add(v == CB_PROBE ? &s->probes : &s->calls, 1);
        if ((r >> 8) % 4 == 0)
            sched_yield(); /* a slow call: leases may expire meanwhile */
        unsigned outcome = (unsigned)(r >> 16) % 10;
        /* Probes are never released: every generation is then a transition. */
        if (outcome < 4 || (v == CB_PROBE && outcome < 6))
            cb_success(b, &p);
        else if (outcome < 8 || v == CB_PROBE)
            cb_failure(b, &p);
        else
            cb_release(b, &p);
    }
    cb_close(b);
    return 0;
}

static int t6_rec_matches(const struct t6_rec *r, const cb_transition *t)
{
    return r->pid == t->pid && r->from == (uint8_t)t->from && r->to == (uint8_t)t->to &&
           r->reason == (uint8_t)t->reason && r->failures == t->failures && r->wall_ms == t->wall_ms &&
           r->generation == t->generation;
}

START_TEST(test_transitions_exactly_once)
{
    const char *name = tl_unique_name("mp-once");
    struct t6 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->start = tl_barrier_new(T6_N);
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 4, .probe_timeout_ms = 8};
    cb_breaker *b = tl_open_clocked(name, &cfg, s->clock);
    run_kids(t6_child, s, T6_N);

    cb_info info;
    info_of(b, &info);
    const cb_counters *c = &info.counters;
    uint64_t p[3][3], total = 0;
    for (int f = 0; f < 3; f++)
        for (int t = 0; t < 3; t++)
            total += p[f][t] = atomic_load(&s->pair[f][t]);
    uint64_t nlog = atomic_load(&s->nlog);
    fprintf(stderr, "transitions: %llu events, generation %u, trips %llu, probes %llu, "
                    "C->O %llu O->H %llu H->C %llu H->O %llu H->H %llu\n",
            (unsigned long long)total, info.generation, (unsigned long long)c->trips,
            (unsigned long long)c->probes, (unsigned long long)p[0][1], (unsigned long long)p[1][2],
            (unsigned long long)p[2][0], (unsigned long long)p[2][1], (unsigned long long)p[2][2]);

    ck_assert_uint_eq(atomic_load(&s->foreign), 0);
    ck_assert_uint_eq(atomic_load(&s->bad), 0);
    ck_assert_uint_eq(atomic_load(&s->overflow), 0);
    ck_assert_uint_eq(nlog, total);
    /* Every generation bump is a transition here (no probe is released),
     * so one listener call per generation, none twice, none missing. */
    ck_assert_uint_lt(total, 1u << 22); /* the generation has not wrapped */
    ck_assert_uint_eq(total, info.generation);
    /* Each event carries the generation of the state it entered: all of
     * 1..generation, each exactly once, whichever process announced it. */
    unsigned char *gen_seen = calloc((size_t)total + 1, 1);
    ck_assert_ptr_nonnull(gen_seen);
    for (uint64_t i = 0; i < nlog; i++) {
        uint32_t g = s->log[i].generation;
        ck_assert_msg(g >= 1 && g <= total, "event %llu: generation %u outside 1..%llu", (unsigned long long)i, g,
                      (unsigned long long)total);
        ck_assert_msg(!gen_seen[g], "generation %u announced twice", g);
        gen_seen[g] = 1;
    }
    free(gen_seen);
    /* Only the five automatic transitions exist, each with its reason. */
    ck_assert_uint_eq(p[0][0] + p[0][2] + p[1][0] + p[1][1], 0);
    ck_assert_uint_eq(atomic_load(&s->reason[CB_REASON_THRESHOLD]), p[0][1]);
    ck_assert_uint_eq(atomic_load(&s->reason[CB_REASON_TIMEOUT]), p[1][2]);
    ck_assert_uint_eq(atomic_load(&s->reason[CB_REASON_PROBE_SUCCEEDED]), p[2][0]);
    ck_assert_uint_eq(atomic_load(&s->reason[CB_REASON_PROBE_FAILED]), p[2][1]);
    ck_assert_uint_eq(atomic_load(&s->reason[CB_REASON_LEASE_EXPIRED]), p[2][2]);
    ck_assert_uint_eq(atomic_load(&s->reason[CB_REASON_RESET]) + atomic_load(&s->reason[CB_REASON_TRIP]), 0);
    /* Listener calls against the counters. */
    ck_assert_uint_eq(atomic_load(&s->ev_opened), c->trips);
    ck_assert_uint_eq(p[0][1] + p[2][1], c->trips);
    ck_assert_uint_eq(atomic_load(&s->ev_half_open), c->probes);
    ck_assert_uint_eq(p[1][2] + p[2][2], c->probes);
    ck_assert_uint_eq(atomic_load(&s->ev_closed), p[2][0]);
    ck_assert_uint_eq(atomic_load(&s->probes), c->probes);
    ck_assert_uint_eq(atomic_load(&s->calls) + atomic_load(&s->probes), c->allowed);
    ck_assert_uint_eq(atomic_load(&s->rejected), c->rejected);
    assert_accounted(c);
    /* Flow: from CLOSED, every state was entered as often as it was left,
     * except the one the circuit is in now (self-loops aside). */
    ck_assert_int_eq((int64_t)p[2][0] - (int64_t)p[0][1] + 1, info.state == CB_CLOSED);
    ck_assert_int_eq((int64_t)(p[0][1] + p[2][1]) - (int64_t)p[1][2], info.state == CB_OPEN);
    ck_assert_int_eq((int64_t)p[1][2] - (int64_t)(p[2][0] + p[2][1]), info.state == CB_HALF_OPEN);
    /* The storm did go round several times. */
    ck_assert_uint_ge(c->trips, 5);
    ck_assert_uint_ge(p[2][0], 2);
    /* The history ring: the newest transitions, chained, each one a
     * listener call made by the process named in it. */
    ck_assert_uint_eq(info.history_len, total < CB_HISTORY_MAX ? total : CB_HISTORY_MAX);
    ck_assert_int_eq(info.history[0].to, info.state);
    for (unsigned h = 0; h < info.history_len; h++) {
        const cb_transition *t = &info.history[h];
        ck_assert_uint_eq(t->generation, info.generation - h); /* no gap: every generation a transition */
        if (h + 1 < info.history_len)
            ck_assert_msg(info.history[h + 1].to == t->from, "history[%u] starts in %s, history[%u] ended in %s",
                          h, cb_state_name(t->from), h + 1, cb_state_name(info.history[h + 1].to));
        int found = 0;
        for (uint64_t i = 0; i < nlog && !found; i++)
            found = t6_rec_matches(&s->log[i], t);
        ck_assert_msg(found, "history[%u] %s -> %s (%s) by %d was never announced", h, cb_state_name(t->from),
                      cb_state_name(t->to), cb_reason_name(t->reason), (int)t->pid);
    }
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ---- 7. state survives processes ---------------------------------------- */

#define T7_N 4
#define T7_TRIES 3
#define T7_THRESHOLD 5u
#define T7_RESET_MS 1000u

struct t7 {
    const char *name;
    struct tl_clock *clock;
    struct tl_barrier *start;
    counter_t done, allowed, rejected;
    cb_counters snap; /* taken by the last worker to finish */
    uint32_t snap_generation;
    counter_t snap_taken;
};

static int t7_worker(void *arg)
{
    struct t7 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_config cfg = {.failure_threshold = T7_THRESHOLD, .reset_timeout_ms = T7_RESET_MS};
    cb_breaker *b = tl_open_clocked(s->name, &cfg, s->clock);
    tl_barrier_wait(s->start);
    for (int i = 0; i < T7_TRIES; i++) {
        cb_permit p;
        if (cb_acquire(b, &p) == CB_REJECTED) {
            atomic_fetch_add(&s->rejected, 1);
            continue;
        }
        atomic_fetch_add(&s->allowed, 1);
        cb_failure(b, &p);
    }
    if (atomic_fetch_add(&s->done, 1) + 1 == T7_N) {
        /* Every worker's calls are in: this is the state they leave. */
        cb_info info;
        CHILD_CHECK(cb_get_info(b, &info) == 0);
        CHILD_CHECK(info.state == CB_OPEN);
        s->snap = info.counters;
        s->snap_generation = info.generation;
        atomic_store(&s->snap_taken, 1);
    }
    cb_close(b);
    return 0;
}

static int t7_newcomer(void *arg)
{
    struct t7 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = NULL;
    CHILD_CHECK(cb_open(s->name, NULL, &b) == CB_OPENED); /* found, not created */
    cb_set_clock(b, tl_clock_read, s->clock);
    cb_info info;
    CHILD_CHECK(cb_get_info(b, &info) == 0);
    CHILD_CHECK(info.state == CB_OPEN);
    CHILD_CHECK(info.config.failure_threshold == T7_THRESHOLD); /* NULL kept the stored config */
    CHILD_CHECK(info.config.reset_timeout_ms == T7_RESET_MS);
    CHILD_CHECK(info.ms_until_probe == T7_RESET_MS);
    CHILD_CHECK(info.generation == s->snap_generation);
    CHILD_CHECK(memcmp(&info.counters, &s->snap, sizeof info.counters) == 0);
    CHILD_CHECK(info.counters.allowed == atomic_load(&s->allowed));
    CHILD_CHECK(info.counters.rejected == atomic_load(&s->rejected));
    CHILD_CHECK(info.counters.failures == T7_THRESHOLD);
    CHILD_CHECK(info.counters.trips == 1);
    CHILD_CHECK(info.history_len == 1);
    CHILD_CHECK(info.history[0].reason == CB_REASON_THRESHOLD);
    CHILD_CHECK(info.history[0].failures == T7_THRESHOLD);
    CHILD_CHECK(info.history[0].generation == info.generation);
    cb_permit p;
    CHILD_CHECK(cb_acquire(b, &p) == CB_REJECTED);
    tl_clock_advance(s->clock, T7_RESET_MS);
    CHILD_CHECK(cb_acquire(b, &p) == CB_PROBE); /* and it goes on from there */
    cb_success(b, &p);
    CHILD_CHECK(cb_get_state(b) == CB_CLOSED);
    cb_close(b);
    return 0;
}

START_TEST(test_state_survives_processes)
{
    const char *name = tl_unique_name("mp-survive");
    struct t7 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->start = tl_barrier_new(T7_N);
    /* The parent never maps the circuit: once the workers exit, nothing
     * has it open. */
    run_kids(t7_worker, s, T7_N);
    ck_assert_uint_eq(atomic_load(&s->snap_taken), 1);
    ck_assert_uint_eq(atomic_load(&s->allowed) + atomic_load(&s->rejected), T7_N * T7_TRIES);
    ck_assert_uint_ge(atomic_load(&s->allowed), T7_THRESHOLD);
    run_kids(t7_newcomer, s, 1);
    ck_assert_int_eq(cb_unlink(name), 0);
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_attach(name, &b), -ENOENT);
}
END_TEST

/* ---- 8. operator controls from another process ------------------------- */

#define T8_N 4
#define T8_WARMUP 200 /* calls each worker makes before the trip */

/* Published by the controller: *_ING before its call (then a fence), the
 * past tense after the call has returned. */
enum { T8_RUNNING, T8_TRIPPING, T8_TRIPPED, T8_RESETTING, T8_RESET, T8_STOP };

struct t8 {
    const char *name;
    struct tl_clock *clock;
    cb_breaker *b; /* workers: inherited */
    struct tl_barrier *start;
    _Atomic int32_t controller_pid;
    counter_t phase;
    counter_t warm, saw_open, saw_reset;
    counter_t allowed, rejected, violations;
    uint32_t gen_seen_open[T8_N], gen_seen_reset[T8_N];
};

/*
 * What an acquire must return, given the phase read just before it (p1)
 * and just after it (p2, behind an acquire fence). cb_trip() returned
 * before p1 was published, so p1 >= TRIPPED means the acquire started
 * after the trip; the controller fences between publishing *_ING and its
 * call, so if the acquire had seen that call's word, p2 would show the
 * *_ING phase (fence-fence synchronization through the state word).
 */
static int t8_verdict_ok(uint64_t p1, uint64_t p2, cb_verdict v)
{
    if (p2 == T8_RUNNING)
        return v == CB_ALLOWED; /* no trip yet */
    if (p1 == T8_TRIPPED && p2 == T8_TRIPPED)
        return v == CB_REJECTED; /* after the trip, before the reset */
    if (p1 >= T8_RESET)
        return v == CB_ALLOWED; /* after the reset; nothing trips again */
    return 1; /* the acquire overlapped an operator call: either is right */
}

static int t8_worker(void *arg)
{
    struct kid *k = arg;
    struct t8 *s = k->sh;
    child_begin();
    cb_breaker *b = s->b;
    int seen_open = 0, seen_reset = 0;
    uint64_t calls = 0, deadline = mono_ms() + DEADLINE_MS;
    tl_barrier_wait(s->start);
    for (;;) {
        CHILD_CHECK(mono_ms() < deadline);
        uint64_t p1 = atomic_load(&s->phase);
        if (p1 == T8_STOP)
            break;
        cb_permit p;
        cb_verdict v = cb_acquire(b, &p);
        atomic_thread_fence(memory_order_seq_cst);
        uint64_t p2 = atomic_load(&s->phase);
        if (!t8_verdict_ok(p1, p2, v))
            atomic_fetch_add(&s->violations, 1);
        if (v == CB_REJECTED) {
            atomic_fetch_add(&s->rejected, 1);
            if (!seen_open) {
                /* The first rejection: only the controller's trip explains
                 * it. Its record is complete once cb_trip has returned. */
                seen_open = 1;
                CHILD_CHECK(await_at_least(&s->phase, T8_TRIPPED));
                cb_info info;
                CHILD_CHECK(cb_get_info(b, &info) == 0);
                CHILD_CHECK(info.state == CB_OPEN); /* nobody resets before we report */
                CHILD_CHECK(info.history_len >= 1);
                CHILD_CHECK(info.history[0].reason == CB_REASON_TRIP);
                CHILD_CHECK(info.history[0].pid == atomic_load(&s->controller_pid));
                CHILD_CHECK(info.history[0].generation == info.generation);
                s->gen_seen_open[k->idx] = info.generation;
                atomic_fetch_add(&s->saw_open, 1);
            }
            continue;
        }
        CHILD_CHECK(v == CB_ALLOWED);
        atomic_fetch_add(&s->allowed, 1);
        if (seen_open && !seen_reset) {
            /* Allowed again after a rejection: only the reset explains it. */
            seen_reset = 1;
            CHILD_CHECK(await_at_least(&s->phase, T8_RESET));
            cb_info info;
            CHILD_CHECK(cb_get_info(b, &info) == 0);
            CHILD_CHECK(info.state == CB_CLOSED);
            CHILD_CHECK(info.history[0].reason == CB_REASON_RESET);
            CHILD_CHECK(info.history[0].pid == atomic_load(&s->controller_pid));
            CHILD_CHECK(info.history[0].generation == info.generation);
            s->gen_seen_reset[k->idx] = info.generation;
            atomic_fetch_add(&s->saw_reset, 1);
        }
        if (calls % 3 == 0)
            sched_yield(); /* some calls straddle the operator's action: late */
        cb_success(b, &p);
        if (++calls == T8_WARMUP)
            atomic_fetch_add(&s->warm, 1);
    }
    CHILD_CHECK(seen_open && seen_reset);
    return 0;
}

static int t8_controller(void *arg)
{
    struct t8 *s = ((struct kid *)arg)->sh;
    child_begin();
    cb_breaker *b = tl_open_clocked(s->name, NULL, s->clock); /* by name, not inherited */
    tl_barrier_wait(s->start);
    CHILD_CHECK(await_at_least(&s->warm, T8_N)); /* every worker is looping */
    atomic_store(&s->phase, T8_TRIPPING);
    atomic_thread_fence(memory_order_seq_cst);
    CHILD_CHECK(cb_trip(b) == CB_CLOSED); /* workers only succeed */
    atomic_store(&s->phase, T8_TRIPPED);
    CHILD_CHECK(await_at_least(&s->saw_open, T8_N));
    CHILD_CHECK(cb_get_state(b) == CB_OPEN); /* the clock stood still: no probe */
    atomic_store(&s->phase, T8_RESETTING);
    atomic_thread_fence(memory_order_seq_cst);
    CHILD_CHECK(cb_reset(b) == CB_OPEN); /* what its trip left */
    atomic_store(&s->phase, T8_RESET);
    CHILD_CHECK(await_at_least(&s->saw_reset, T8_N));
    atomic_store(&s->phase, T8_STOP);
    cb_close(b);
    return 0;
}

START_TEST(test_operator_controls_from_another_process)
{
    const char *name = tl_unique_name("mp-operator");
    struct t8 *s = tl_shared(sizeof *s);
    s->name = name;
    s->clock = tl_clock_new(START_MS);
    s->start = tl_barrier_new(T8_N + 1);
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000};
    s->b = tl_open_clocked(name, &cfg, s->clock);

    struct kid kids[T8_N + 1];
    pid_t pids[T8_N + 1];
    spawn_kids(t8_worker, s, T8_N, kids, pids, 0);
    /* Workers learn the controller's pid before it can act (barrier). */
    kids[T8_N].sh = s;
    kids[T8_N].idx = T8_N;
    pid_t controller = fork();
    ck_assert_int_ge(controller, 0);
    if (controller == 0) {
        atomic_store(&s->controller_pid, (int32_t)getpid());
        _exit(t8_controller(&kids[T8_N]));
    }
    pids[T8_N] = controller;
    wait_kids(pids, T8_N + 1);

    ck_assert_int_eq(atomic_load(&s->controller_pid), controller);
    ck_assert_msg(atomic_load(&s->violations) == 0,
                  "%llu acquires ignored an operator action that completed before they began",
                  (unsigned long long)atomic_load(&s->violations));
    for (int i = 0; i < T8_N; i++) {
        ck_assert_uint_eq(s->gen_seen_open[i], 1);
        ck_assert_uint_eq(s->gen_seen_reset[i], 2);
    }
    cb_info info;
    info_of(s->b, &info);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.generation, 2);
    ck_assert_uint_eq(info.counters.trips, 1);
    ck_assert_uint_eq(info.counters.allowed, atomic_load(&s->allowed));
    ck_assert_uint_eq(info.counters.rejected, atomic_load(&s->rejected));
    ck_assert_uint_eq(info.counters.failures, 0);
    ck_assert_uint_eq(info.counters.released, 0);
    ck_assert_uint_eq(info.counters.allowed, info.counters.successes + info.counters.late);
    ck_assert_uint_eq(info.history_len, 2);
    assert_transition(&info.history[0], CB_OPEN, CB_CLOSED, CB_REASON_RESET);
    assert_transition(&info.history[1], CB_CLOSED, CB_OPEN, CB_REASON_TRIP);
    ck_assert_int_eq(info.history[0].pid, controller);
    ck_assert_int_eq(info.history[1].pid, controller);
    ck_assert_uint_eq(info.history[0].generation, 2);
    ck_assert_uint_eq(info.history[1].generation, 1);
    cb_close(s->b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ---- the suite ----------------------------------------------------------- */

static TCase *tcase(Suite *suite, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(suite, tc);
    return tc;
}

static Suite *multiprocess_suite(void)
{
    Suite *s = suite_create("multiprocess");
    TCase *tc = tcase(s, "no-lost-failure");
    tcase_add_test(tc, test_no_lost_failure_below_threshold);
    tcase_add_test(tc, test_no_lost_failure_trips_at_last);
    tc = tcase(s, "defaults");
    tcase_add_test(tc, test_defaults_across_processes);
    tc = tcase(s, "probe-storm");
    tcase_add_test(tc, test_probe_storm);
    tcase_add_test(tc, test_stale_clock_second_probe);
    tcase_add_test(tc, test_stale_clock_probe_before_reset_timeout);
    tc = tcase(s, "probe-holder-killed");
    tcase_add_test(tc, test_probe_holder_killed);
    tc = tcase(s, "prefork");
    tcase_add_test(tc, test_prefork_inherited_handle);
    tcase_add_test(tc, test_prefork_open_after_fork);
    tcase_add_test(tc, test_counters_more_processes_than_stripes);
    tc = tcase(s, "transitions");
    tcase_add_test(tc, test_transitions_exactly_once);
    tc = tcase(s, "persistence");
    tcase_add_test(tc, test_state_survives_processes);
    tc = tcase(s, "operator");
    tcase_add_test(tc, test_operator_controls_from_another_process);
    return s;
}

int main(void)
{
    return tl_run_suite(multiprocess_suite());
}
