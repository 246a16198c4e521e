/*
 * test-threads.c - threaded stress test of one shared circuit: several
 * threads in each of several processes (issue 6, item 1). Built to run
 * under ThreadSanitizer: every variable two threads share is atomic, a
 * permit handed from one thread to another goes through an atomic flag
 * with release/acquire, and per-thread tallies are read only after
 * pthread_join.
 *
 * Every phase forks its processes before any thread exists (TSan does not
 * support threads after a multi-threaded fork), uses a fresh circuit, and
 * ends with the exact counter invariant: no thread is ever killed here, so
 *     library allowed  == test's CB_ALLOWED + CB_PROBE verdicts
 *     library rejected == test's CB_REJECTED verdicts
 *     library probes   == test's CB_PROBE verdicts
 *     successes + failures + released + late == reports the test made
 *                                             == allowed
 * whatever stripe (own, shared stripe 0, or taken over) each count went to.
 *
 *  A. mixed (2 processes x 4 threads, CB_THREADS_SECONDS, default 3 s):
 *     threshold 3, reset 5 ms, probe lease 20 ms, real clock; random calls
 *     (random durations, some longer than the lease) with random outcomes
 *     under a failure rate that the parent changes; a tenth of the call
 *     permits are reported by another thread of the process (mailbox), a
 *     quarter of the probes are held past their lease (so another thread
 *     takes over and the first reports late); an
 *     operator thread resets and trips the circuit now and then; a reader
 *     thread snapshots it. The probe observer (probe-observer.h: one slot
 *     per thread, lease-aware) checks in every new holder and in the
 *     parent, which also watches for a wedged word (as test-chaos.c: an
 *     acquire begun after the timeout had certainly passed has returned,
 *     yet the word is unchanged).
 *  B. exact probe (2 x 4 threads, default 2 s): probe lease 10^9 ms, so a
 *     lease never expires, no operator: the observer is one shared counter
 *     of holders, bumped after CB_PROBE (it must go 0 -> 1) and dropped
 *     before the report.
 *  C. more threads than stripes: 2 processes x 40 threads, all alive
 *     before the first call; 64 stripes, stripe 0 never claimed, so 63
 *     threads get a stripe of their own and 17 share stripe 0 (white-box:
 *     each thread finds its claim by its pid and tid in the owner words).
 *  D. churn: 2 processes each keep 6 threads alive, each thread makes a
 *     random number of calls and exits, replaced at once, 150 threads per
 *     process: claims of exited threads are taken over (counted through
 *     the owner words), a live thread's claim never is (each thread checks
 *     its stripe still names it when it ends), and the counts the dead left
 *     are kept.
 *  E. no lost failure across threads: 2 processes x 4 threads x 500
 *     failures at once below a threshold of 4001: the count is exactly
 *     4000, and one more failure trips the circuit with failures 4001.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"
#include "handle.h"
#include "probe-observer.h"
#include "segment.h"
#include "testlib.h"

#define NPROC 2u
#define NTHR 4u
#define MANY_THR 40u  /* phase C: threads per process, 2 x 40 > 63 stripes */
#define CHURN_ALIVE 6u
#define CHURN_TOTAL 150u
#define FAIL_M 500u   /* phase E: failures per thread */

static unsigned mixed_seconds = 3, exact_seconds = 2;

typedef _Atomic uint64_t counter_t;

/* What each process adds up from its threads (after joining them). */
struct tally {
    counter_t allowed, rejected, probes, reports;
};

struct shared {
    char name[128];
    _Atomic int stop;
    _Atomic uint32_t fail_permille;
    counter_t acq_begun, acq_done;
    counter_t live_probes, probe_violations; /* phase B */
    counter_t errors;
    _Atomic int msg_taken;
    char msg[512];
    struct tally tally;
    /* Phases C and D (white-box stripe bookkeeping). */
    counter_t own_stripe, shared_stripe, stolen_while_alive;
    counter_t claimers[CB_STRIPES];
    struct tl_barrier *start;
};

static struct shared *S;
static struct po *PO;

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}
static unsigned rnd(uint64_t *s, unsigned n) { return (unsigned)(rng_next(s) >> 33) % n; }

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000u, (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void fail_msg(const char *what)
{
    atomic_fetch_add(&S->errors, 1);
    fprintf(stderr, "test-threads: process %d thread %ld: %s\n", (int)getpid(), (long)syscall(SYS_gettid), what);
    int none = 0;
    if (atomic_compare_exchange_strong(&S->msg_taken, &none, 1)) {
        char buf[sizeof S->msg];
        snprintf(buf, sizeof buf, "%s", what);
        for (size_t i = 0; i < sizeof buf; i++)
            ((volatile char *)S->msg)[i] = buf[i];
    }
}

static uint64_t clock_tick_ms(void)
{
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
        return 10;
    return ((uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec + 999999u) / 1000000u;
}

/* ---- per-process machinery ---------------------------------------------- */

#define MAILBOX 16
enum { MB_EMPTY, MB_WRITING, MB_FULL, MB_TAKING };
struct mail {
    _Atomic int state;
    unsigned outcome; /* 0 success, 1 failure, 2 release */
    cb_permit permit;
};

struct proc {
    cb_breaker *b;
    unsigned idx;
    int phase; /* 'A', 'B', 'C', 'D' */
    struct mail mailbox[MAILBOX];
    _Atomic int local_stop;
};

struct thr {
    struct proc *pr;
    unsigned idx;   /* thread index in its process */
    unsigned calls; /* phases C and D: how many */
    uint64_t rng;
    pthread_t tid;
    /* Tallies, read by the main thread after join. */
    uint64_t allowed, rejected, probes, reports;
};

static void report(cb_breaker *b, cb_permit *p, unsigned outcome)
{
    if (outcome == 0)
        cb_success(b, p);
    else if (outcome == 1)
        cb_failure(b, p);
    else
        cb_release(b, p);
}

/* Hand a call permit to whichever thread looks next; 0 if the box is full. */
static int post(struct proc *pr, const cb_permit *p, unsigned outcome)
{
    for (unsigned i = 0; i < MAILBOX; i++) {
        int e = MB_EMPTY;
        if (atomic_compare_exchange_strong_explicit(&pr->mailbox[i].state, &e, MB_WRITING, memory_order_acquire,
                                                    memory_order_relaxed)) {
            pr->mailbox[i].permit = *p;
            pr->mailbox[i].outcome = outcome;
            atomic_store_explicit(&pr->mailbox[i].state, MB_FULL, memory_order_release);
            return 1;
        }
    }
    return 0;
}

/* Report one posted permit, if any; returns the number reported. */
static unsigned collect(struct proc *pr, uint64_t *rng)
{
    unsigned start = rnd(rng, MAILBOX);
    for (unsigned k = 0; k < MAILBOX; k++) {
        unsigned i = (start + k) % MAILBOX;
        int f = MB_FULL;
        if (atomic_compare_exchange_strong_explicit(&pr->mailbox[i].state, &f, MB_TAKING, memory_order_acquire,
                                                    memory_order_relaxed)) {
            cb_permit p = pr->mailbox[i].permit;
            unsigned outcome = pr->mailbox[i].outcome;
            atomic_store_explicit(&pr->mailbox[i].state, MB_EMPTY, memory_order_release);
            report(pr->b, &p, outcome);
            return 1;
        }
    }
    return 0;
}

static void call_duration(uint64_t *rng)
{
    unsigned r = rnd(rng, 100);
    if (r < 60)
        return;
    if (r < 80)
        sched_yield();
    else if (r < 95)
        sleep_us(50 + rnd(rng, 2000));
    else if (r < 99)
        sleep_us(2000 + rnd(rng, 8000));
    else
        sleep_us(10000 + rnd(rng, 30000)); /* beyond the probe lease */
}

/* Phases A and B: random calls until told to stop. */
static void *random_caller(void *arg)
{
    struct thr *t = arg;
    struct proc *pr = t->pr;
    unsigned slot = pr->idx * NTHR + t->idx;
    uint64_t who = (uint64_t)getpid() << 32 | t->idx;
    while (!atomic_load(&pr->local_stop)) {
        t->reports += collect(pr, &t->rng);
        struct po_ticket tk;
        cb_permit p;
        if (pr->phase == 'A')
            po_ticket_take(PO, &tk);
        atomic_fetch_add(&S->acq_begun, 1);
        atomic_thread_fence(memory_order_seq_cst);
        cb_verdict v = cb_acquire(pr->b, &p);
        atomic_fetch_add(&S->acq_done, 1);
        if (v == CB_REJECTED) {
            t->rejected++;
            if (rnd(&t->rng, 2))
                sleep_us(20 + rnd(&t->rng, 400));
            else
                sched_yield();
            continue;
        }
        t->allowed++;
        if (v == CB_PROBE) {
            t->probes++;
            if (pr->phase == 'A') {
                po_granted(PO, slot, &tk, who);
            } else if (atomic_fetch_add(&S->live_probes, 1) != 0) {
                atomic_fetch_add(&S->probe_violations, 1);
                fail_msg("TWO PROBES: CB_PROBE while another probe of an unexpirable lease was in flight");
            }
        }
        if (v == CB_PROBE && pr->phase == 'A' && rnd(&t->rng, 4) == 0)
            sleep_us(22000 + rnd(&t->rng, 20000)); /* outlive the lease: another thread takes over */
        else
            call_duration(&t->rng);
        unsigned r = rnd(&t->rng, 1000);
        unsigned outcome = r < atomic_load(&S->fail_permille) ? 1 : r >= 920 ? 2 : 0;
        if (v == CB_PROBE) {
            if (pr->phase == 'A')
                po_reporting(PO, slot);
            else
                atomic_fetch_sub(&S->live_probes, 1);
        } else if (rnd(&t->rng, 10) == 0 && post(pr, &p, outcome)) {
            continue; /* another thread reports it (and counts it) */
        }
        report(pr->b, &p, outcome);
        t->reports++;
    }
    return NULL;
}

/* Phase A: cb_reset / cb_trip from a thread of one process. */
static void *operator_thread(void *arg)
{
    struct thr *t = arg;
    while (!atomic_load(&t->pr->local_stop)) {
        sleep_us(100000 + rnd(&t->rng, 250000));
        po_op_begin(PO);
        int rc = rnd(&t->rng, 2) ? cb_trip(t->pr->b) : cb_reset(t->pr->b);
        po_op_end(PO);
        if (rc < 0 || rc > 2)
            fail_msg("cb_reset/cb_trip returned an impossible state");
    }
    return NULL;
}

/* Phase A: snapshots racing with everything else. */
static void *reader_thread(void *arg)
{
    struct thr *t = arg;
    while (!atomic_load(&t->pr->local_stop)) {
        cb_info info;
        if (cb_get_info(t->pr->b, &info) != 0 || info.state > CB_HALF_OPEN)
            fail_msg("cb_get_info failed or gave an impossible state");
        if (cb_get_state(t->pr->b) > CB_HALF_OPEN)
            fail_msg("cb_get_state gave an impossible state");
        sleep_us(2000 + rnd(&t->rng, 3000));
    }
    return NULL;
}

/* The stripe whose owner word names this thread (pid and tid; the nonce
 * is the library's), or 0 when it writes the shared stripe. */
static unsigned my_stripe(cb_breaker *b, uint64_t *owner)
{
    uint64_t me = ((uint64_t)getpid() & 0x3fffffu) << 22 | ((uint64_t)syscall(SYS_gettid) & 0x3fffffu);
    for (unsigned s = 1; s < CB_STRIPES; s++) {
        uint64_t o = atomic_load(&b->seg->stripes[s].owner);
        if ((o & ((UINT64_C(1) << 44) - 1u)) == me) {
            *owner = o;
            return s;
        }
    }
    *owner = 0;
    return 0;
}

/* Phases C and D: a fixed number of fast random calls, then note which
 * stripe this thread wrote, and that it is still its own. */
static void *counted_caller(void *arg)
{
    struct thr *t = arg;
    struct proc *pr = t->pr;
    uint64_t owner = 0;
    unsigned stripe = 0;
    for (unsigned i = 0; i < t->calls; i++) {
        cb_permit p;
        cb_verdict v = cb_acquire(pr->b, &p);
        if (i == 0) {
            stripe = my_stripe(pr->b, &owner);
            if (stripe)
                atomic_fetch_add(&S->claimers[stripe], 1);
            atomic_fetch_add(stripe ? &S->own_stripe : &S->shared_stripe, 1);
            if (pr->phase == 'C') /* every thread has claimed before any goes on */
                tl_barrier_wait(S->start);
        }
        if (v == CB_REJECTED) {
            t->rejected++;
            if (rnd(&t->rng, 4) == 0) /* let the reset timeout pass now and then */
                sleep_us(50 + rnd(&t->rng, 250));
            else
                sched_yield();
            continue;
        }
        t->allowed++;
        t->probes += v == CB_PROBE;
        if (rnd(&t->rng, 16) == 0)
            sched_yield();
        unsigned r = rnd(&t->rng, 100);
        report(pr->b, &p, r < 8 ? 1 : r < 14 ? 2 : 0);
        t->reports++;
    }
    if (stripe && atomic_load(&pr->b->seg->stripes[stripe].owner) != owner) {
        atomic_fetch_add(&S->stolen_while_alive, 1);
        fail_msg("a live thread's stripe was taken over");
    }
    return NULL;
}

/* Phase E: FAIL_M failures, each acquire must be allowed. */
static void *failing_caller(void *arg)
{
    struct thr *t = arg;
    tl_barrier_wait(S->start);
    for (unsigned i = 0; i < FAIL_M; i++) {
        cb_permit p;
        if (cb_acquire(t->pr->b, &p) != CB_ALLOWED) {
            fail_msg("an acquire below the threshold was not CB_ALLOWED");
            t->rejected++;
            continue;
        }
        t->allowed++;
        if (rnd(&t->rng, 32) == 0)
            sched_yield();
        cb_failure(t->pr->b, &p);
        t->reports++;
    }
    return NULL;
}

static void add_tally(struct thr *t)
{
    atomic_fetch_add(&S->tally.allowed, t->allowed);
    atomic_fetch_add(&S->tally.rejected, t->rejected);
    atomic_fetch_add(&S->tally.probes, t->probes);
    atomic_fetch_add(&S->tally.reports, t->reports);
}

static void start_thread(struct thr *t, void *(*fn)(void *))
{
    int rc = pthread_create(&t->tid, NULL, fn, t);
    if (rc != 0) {
        fail_msg("pthread_create failed");
        _exit(3);
    }
}

/* One process of a phase. Returns its exit status. */
static int process_main(unsigned idx, int phase)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(600);
    static struct proc pr; /* one per process: lives until exit */
    pr.idx = idx;
    pr.phase = phase;
    int rc = cb_open(S->name, NULL, &pr.b);
    if (rc != CB_OPENED) {
        fail_msg("cb_open by name did not return CB_OPENED");
        return 1;
    }
    uint64_t seed = (uint64_t)getpid() * UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)time(NULL);
    if (phase == 'A' || phase == 'B') {
        struct thr t[NTHR + 2];
        memset(t, 0, sizeof t);
        unsigned n = NTHR;
        for (unsigned i = 0; i < NTHR; i++) {
            t[i] = (struct thr){.pr = &pr, .idx = i, .rng = rng_next(&seed) | 1u};
            start_thread(&t[i], random_caller);
        }
        if (phase == 'A') {
            t[n] = (struct thr){.pr = &pr, .idx = n, .rng = rng_next(&seed) | 1u};
            start_thread(&t[n++], idx == 0 ? operator_thread : reader_thread);
        }
        while (!atomic_load(&S->stop))
            sleep_us(2000);
        atomic_store(&pr.local_stop, 1);
        for (unsigned i = 0; i < n; i++) {
            pthread_join(t[i].tid, NULL);
            add_tally(&t[i]);
        }
        /* Permits posted but not collected yet. */
        uint64_t r = 1;
        struct thr rest = {0};
        while (collect(&pr, &r))
            rest.reports++;
        add_tally(&rest);
    } else if (phase == 'E') {
        struct thr t[NTHR];
        for (unsigned i = 0; i < NTHR; i++) {
            t[i] = (struct thr){.pr = &pr, .idx = i, .rng = rng_next(&seed) | 1u};
            start_thread(&t[i], failing_caller);
        }
        for (unsigned i = 0; i < NTHR; i++) {
            pthread_join(t[i].tid, NULL);
            add_tally(&t[i]);
        }
    } else if (phase == 'C') {
        struct thr *t = calloc(MANY_THR, sizeof *t);
        for (unsigned i = 0; i < MANY_THR; i++) {
            t[i] = (struct thr){.pr = &pr, .idx = i, .calls = 1500, .rng = rng_next(&seed) | 1u};
            start_thread(&t[i], counted_caller);
        }
        for (unsigned i = 0; i < MANY_THR; i++) {
            pthread_join(t[i].tid, NULL);
            add_tally(&t[i]);
        }
        free(t);
    } else {
        struct thr *t = calloc(CHURN_ALIVE, sizeof *t);
        unsigned started = 0;
        for (unsigned i = 0; i < CHURN_ALIVE; i++) {
            t[i] = (struct thr){.pr = &pr, .idx = started++, .calls = 20 + rnd(&seed, 300),
                                .rng = rng_next(&seed) | 1u};
            start_thread(&t[i], counted_caller);
        }
        for (unsigned i = 0; started < CHURN_TOTAL; i = (i + 1) % CHURN_ALIVE) {
            pthread_join(t[i].tid, NULL);
            add_tally(&t[i]);
            t[i] = (struct thr){.pr = &pr, .idx = started++, .calls = 20 + rnd(&seed, 300),
                                .rng = rng_next(&seed) | 1u};
            start_thread(&t[i], counted_caller);
        }
        for (unsigned i = 0; i < CHURN_ALIVE; i++) {
            pthread_join(t[i].tid, NULL);
            add_tally(&t[i]);
        }
        free(t);
    }
    cb_close(pr.b);
    return atomic_load(&S->errors) ? 1 : 0;
}

/* ---- the parent ----------------------------------------------------------- */

static void setup(const char *tag, const cb_config *cfg)
{
    S = tl_shared(sizeof *S);
    PO = tl_shared(po_size(NPROC * NTHR));
    po_init(PO, NPROC * NTHR, cfg->probe_timeout_ms);
    snprintf(S->name, sizeof S->name, "%s", tl_unique_name(tag));
    atomic_store(&S->fail_permille, 300);
    cb_breaker *b;
    int rc = cb_open(S->name, cfg, &b);
    ck_assert_msg(rc == CB_CREATED, "cb_open: %d", rc);
    cb_close(b);
}

static void spawn_procs(pid_t *pids, unsigned n, int phase)
{
    for (unsigned i = 0; i < n; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0)
            _exit(process_main(i, phase));
    }
}

/* The exact counter invariant, and the library's counters == the test's. */
static cb_counters check_counts(const char *phase)
{
    cb_info info;
    int rc = cb_inspect(S->name, &info);
    ck_assert_msg(rc == 0, "cb_inspect: %s", cb_strerror(rc));
    ck_assert_uint_eq(info.layout_version, CB_LAYOUT_VERSION);
    ck_assert_uint_eq(info.segment_size, CB_SEGMENT_SIZE);
    cb_counters c = info.counters;
    uint64_t allowed = atomic_load(&S->tally.allowed), rejected = atomic_load(&S->tally.rejected),
             probes = atomic_load(&S->tally.probes), reports = atomic_load(&S->tally.reports);
    printf("threads %s: test allowed %llu rejected %llu probes %llu reports %llu; library allowed %llu rejected "
           "%llu probes %llu successes %llu failures %llu released %llu late %llu trips %llu\n",
           phase, (unsigned long long)allowed, (unsigned long long)rejected, (unsigned long long)probes,
           (unsigned long long)reports, (unsigned long long)c.allowed, (unsigned long long)c.rejected,
           (unsigned long long)c.probes, (unsigned long long)c.successes, (unsigned long long)c.failures,
           (unsigned long long)c.released, (unsigned long long)c.late, (unsigned long long)c.trips);
    fflush(stdout);
    ck_assert_uint_eq(c.allowed, allowed);
    ck_assert_uint_eq(c.rejected, rejected);
    ck_assert_uint_eq(c.probes, probes);
    ck_assert_uint_eq(reports, allowed);
    ck_assert_msg(c.allowed == c.successes + c.failures + c.released + c.late,
                  "allowed %llu != successes %llu + failures %llu + released %llu + late %llu",
                  (unsigned long long)c.allowed, (unsigned long long)c.successes, (unsigned long long)c.failures,
                  (unsigned long long)c.released, (unsigned long long)c.late);
    return c;
}

static void teardown(void)
{
    ck_assert_msg(atomic_load(&S->errors) == 0, "%s", S->msg);
    ck_assert_int_eq(cb_unlink(S->name), 0);
}

/* Wedge watch (as in test-chaos.c): returns 0, or fails the test. */
struct watch {
    int tracking, have_D;
    cb_state st;
    uint32_t gen;
    uint64_t first_seen, deadline, D, tick, evidenced;
};

static void watch_word(struct watch *w, cb_breaker *b, const cb_config *cfg)
{
    uint64_t done = atomic_load(&S->acq_done);
    atomic_thread_fence(memory_order_seq_cst);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    uint64_t now = po_coarse_ms();
    if (w->tracking && info.state == w->st && info.generation == w->gen) {
        if (!w->have_D && now >= w->deadline) {
            atomic_thread_fence(memory_order_seq_cst);
            w->D = atomic_load(&S->acq_begun);
            w->have_D = 1;
            w->evidenced++;
        } else if (w->have_D && done > w->D) {
            ck_abort_msg("WEDGED: still %s (generation %u) %llu ms after first seen, although an acquire begun "
                         "after its timeout had certainly passed has returned",
                         cb_state_name(info.state), info.generation, (unsigned long long)(now - w->first_seen));
        }
        return;
    }
    w->tracking = info.state != CB_CLOSED;
    w->st = info.state;
    w->gen = info.generation;
    w->first_seen = now;
    w->deadline = now + (info.state == CB_OPEN ? cfg->reset_timeout_ms : cfg->probe_timeout_ms) + w->tick;
    w->have_D = 0;
}

static void run_random_phase(int phase, const cb_config *cfg, unsigned seconds)
{
    pid_t pids[NPROC];
    cb_breaker *b;
    ck_assert_int_eq(cb_open(S->name, NULL, &b), CB_OPENED);
    struct watch w = {.tick = clock_tick_ms()};
    uint64_t rng = (uint64_t)getpid() | 1u, t0 = po_fine_ms(), next_health = t0;
    spawn_procs(pids, NPROC, phase);
    while (po_fine_ms() < t0 + seconds * 1000u && !atomic_load(&S->errors) && !atomic_load(&PO->violations)) {
        if (phase == 'A') {
            po_scan_all(PO);
            watch_word(&w, b, cfg);
        }
        if (po_fine_ms() >= next_health) {
            static const uint32_t rates[] = {20, 300, 700, 980};
            atomic_store(&S->fail_permille, rates[rnd(&rng, 4)]);
            next_health = po_fine_ms() + 200 + rnd(&rng, 600);
        }
        sleep_us(500);
    }
    atomic_store(&S->stop, 1);
    for (unsigned i = 0; i < NPROC; i++)
        tl_wait_ok(pids[i]);
    cb_close(b);
    if (phase == 'A')
        printf("threads A: probe observer: %llu grants, %llu pairs judged (%llu skipped: operator between), %llu "
               "violations; wedge watch: %llu words outlived their timeout while watched\n",
               (unsigned long long)atomic_load(&PO->grants), (unsigned long long)atomic_load(&PO->pairs_checked),
               (unsigned long long)atomic_load(&PO->pairs_skipped_ops),
               (unsigned long long)atomic_load(&PO->violations), (unsigned long long)w.evidenced);
    ck_assert_msg(atomic_load(&PO->violations) == 0, "%s", PO->msg);
}

START_TEST(test_mixed)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 5, .probe_timeout_ms = 20};
    setup("threads-mixed", &cfg);
    run_random_phase('A', &cfg, mixed_seconds);
    cb_counters c = check_counts("A (mixed)");
    ck_assert_uint_gt(c.trips, 0);
    ck_assert_uint_gt(c.probes, 0);
    ck_assert_uint_gt(atomic_load(&PO->grants), 0);
    teardown();
}
END_TEST

START_TEST(test_exact_probe)
{
    cb_config cfg = {.failure_threshold = 2, .reset_timeout_ms = 2, .probe_timeout_ms = 1000000000u};
    setup("threads-probe", &cfg);
    run_random_phase('B', &cfg, exact_seconds);
    cb_counters c = check_counts("B (one probe)");
    ck_assert_uint_eq(atomic_load(&S->probe_violations), 0);
    ck_assert_uint_eq(atomic_load(&S->live_probes), 0);
    ck_assert_uint_gt(c.probes, 0);
    teardown();
}
END_TEST

START_TEST(test_more_threads_than_stripes)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 1, .probe_timeout_ms = 5};
    setup("threads-many", &cfg);
    S->start = tl_barrier_new(NPROC * MANY_THR);
    pid_t pids[NPROC];
    spawn_procs(pids, NPROC, 'C');
    for (unsigned i = 0; i < NPROC; i++)
        tl_wait_ok(pids[i]);
    check_counts("C (80 threads, 63 stripes)");
    uint64_t own = atomic_load(&S->own_stripe), shared = atomic_load(&S->shared_stripe);
    printf("threads C: %llu threads had a stripe of their own, %llu shared stripe 0\n", (unsigned long long)own,
           (unsigned long long)shared);
    ck_assert_uint_eq(own, CB_STRIPES - 1u);
    ck_assert_uint_eq(shared, NPROC * MANY_THR - (CB_STRIPES - 1u));
    for (unsigned s = 1; s < CB_STRIPES; s++)
        ck_assert_uint_eq(atomic_load(&S->claimers[s]), 1);
    /* White-box: stripe 0 really took counts (atomic adds), every other
     * stripe is claimed. */
    cb_breaker *b;
    ck_assert_int_eq(cb_open(S->name, NULL, &b), CB_OPENED);
    uint64_t in0 = 0;
    for (unsigned c = 0; c < CB_C_COUNT; c++)
        in0 += atomic_load(&b->seg->stripes[0].count[c]);
    ck_assert_uint_gt(in0, 0);
    ck_assert_uint_eq(atomic_load(&b->seg->stripes[0].owner), 0);
    for (unsigned s = 1; s < CB_STRIPES; s++)
        ck_assert_uint_ne(atomic_load(&b->seg->stripes[s].owner), 0);
    cb_close(b);
    ck_assert_uint_eq(atomic_load(&S->stolen_while_alive), 0);
    teardown();
}
END_TEST

START_TEST(test_churn)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 1, .probe_timeout_ms = 5};
    setup("threads-churn", &cfg);
    pid_t pids[NPROC];
    spawn_procs(pids, NPROC, 'D');
    for (unsigned i = 0; i < NPROC; i++)
        tl_wait_ok(pids[i]);
    check_counts("D (churn)");
    uint64_t own = atomic_load(&S->own_stripe), shared = atomic_load(&S->shared_stripe), takeovers = 0, used = 0;
    for (unsigned s = 1; s < CB_STRIPES; s++) {
        uint64_t n = atomic_load(&S->claimers[s]);
        used += n > 0;
        takeovers += n > 1 ? n - 1 : 0;
    }
    printf("threads D: %u threads over time (%u alive per process): %llu with a stripe of their own (%llu "
           "stripes used, %llu takeovers of exited threads' stripes), %llu on the shared stripe\n",
           NPROC * CHURN_TOTAL, CHURN_ALIVE, (unsigned long long)own, (unsigned long long)used,
           (unsigned long long)takeovers, (unsigned long long)shared);
    ck_assert_uint_eq(own + shared, NPROC * CHURN_TOTAL);
    ck_assert_uint_gt(takeovers, 0);
    ck_assert_uint_eq(atomic_load(&S->stolen_while_alive), 0);
    teardown();
}
END_TEST

START_TEST(test_no_lost_failure)
{
    const unsigned total = NPROC * NTHR * FAIL_M;
    cb_config cfg = {.failure_threshold = total + 1u, .reset_timeout_ms = 5, .probe_timeout_ms = 20};
    setup("threads-failures", &cfg);
    S->start = tl_barrier_new(NPROC * NTHR);
    pid_t pids[NPROC];
    spawn_procs(pids, NPROC, 'E');
    for (unsigned i = 0; i < NPROC; i++)
        tl_wait_ok(pids[i]);
    cb_counters c = check_counts("E (failures)");
    cb_breaker *b;
    cb_info info;
    ck_assert_int_eq(cb_open(S->name, NULL, &b), CB_OPENED);
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_msg(info.failures == total, "%u threads x %u failures: the count is %u", NPROC * NTHR, FAIL_M,
                  info.failures);
    ck_assert_uint_eq(c.failures, total);
    ck_assert_uint_eq(c.late, 0);
    ck_assert_uint_eq(c.trips, 0);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
    cb_failure(b, &p);
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_ge(info.history_len, 1);
    ck_assert_uint_eq(info.history[0].failures, total + 1u);
    ck_assert_uint_eq(info.counters.trips, 1);
    cb_close(b);
    teardown();
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 300.0 + mixed_seconds + exact_seconds);
    tcase_add_test(tc, test_mixed);
    tcase_add_test(tc, test_exact_probe);
    tcase_add_test(tc, test_more_threads_than_stripes);
    tcase_add_test(tc, test_churn);
    tcase_add_test(tc, test_no_lost_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *env = getenv("CB_THREADS_SECONDS");
    if (env && *env) {
        mixed_seconds = (unsigned)strtoul(env, NULL, 10);
        exact_seconds = mixed_seconds;
    }
    return tl_run_suite(threads_suite());
}
