/*
 * test-chaos.c - crash-anywhere chaos test of one shared circuit (issue 6,
 * item 3).
 *
 * A controller process (the Check test function) keeps ALIVE worker
 * processes running on ONE circuit with millisecond timeouts (threshold 3,
 * reset 5 ms, probe lease 20 ms) on the real clock. Workers make random
 * calls (random duration, from none to twice the probe lease) with random
 * outcomes (success, failure, release; the failure rate changes every
 * second or so; every half second or so all callers pause for 30-70 ms),
 * while the controller SIGKILLs random workers at random
 * moments and starts new ones, and now and then resets or trips the
 * circuit the way cbctl does (cb_attach, cb_reset/cb_trip, cb_close).
 *
 * Victims are chosen to hit the dangerous moments: probe holders (workers
 * publish their probe in the observer, probe-observer.h), workers inside
 * a library call between its clock read and its compare-and-swap (half of
 * the workers install a clock with cb_set_clock that returns the real
 * coarse monotonic clock but sometimes stalls after reading it, and
 * publishes that it is stalled, and whether in an acquire or a report),
 * workers holding a permit or reporting one, and anyone.
 *
 * Invariants, checked by the test's own shared-memory observers, never by
 * asking the library to check itself:
 *
 *  1. Never two probes with live leases (probe-observer.h): every new
 *     holder compares itself with every other HOLDING slot, and the
 *     controller sweeps all pairs continuously. A killed holder's slot
 *     stays HOLDING until its lease has certainly expired.
 *  2. No wedge (a dead probe holder's slot is freed, the circuit never
 *     stays OPEN): for every OPEN or HALF_OPEN word (state, generation)
 *     the controller sees, it computes E = first sight + timeout + clock
 *     tick, an upper bound of the moment any acquire must change the
 *     word; after E it snapshots the count of acquires begun (D). Once an
 *     acquire begun after that snapshot has returned (acquires done > D),
 *     the word cannot still be (state, generation): if it is, the circuit
 *     is wedged. No timing margin is needed, and none can make it flaky: a
 *     slow machine only delays the evidence. The time from E to the change
 *     is reported, and for killed probe holders the time from the kill.
 *     Its blind spot, an acquire that never returns (a CAS loop that
 *     livelocks), is covered by timing every library call a worker makes:
 *     none may take HANG_MS (their only waits are the test clock's stalls
 *     of at most 3 ms).
 *  3. The segment stays valid: every 50 ms cb_inspect returns 0 with the
 *     layout version, size and config; the object's size and magic (read
 *     with pread from /dev/shm) are right; the library's counters never
 *     decrease (counts of killed processes are kept when their stripes are
 *     taken over).
 *  4. Counters account for every call: each worker publishes its phase
 *     (acquiring, holding a permit, reporting) and its counts in one
 *     atomic word, so after it is killed the controller knows exactly
 *     what it had done; the library's allowed, rejected, probes and
 *     reports may exceed the test's only by the calls of workers killed
 *     inside cb_acquire or a report.
 *  5. No failure lost or counted twice while CLOSED: a quiescent phase at
 *     the end (no kills) resets the circuit, raises the threshold to
 *     K*M+1, and K workers report M failures each at once: the count must
 *     be exactly K*M, and one more failure trips it with failures K*M+1.
 *     Then the original config is restored and a probe closes the circuit.
 *  6. Every child's exit status: killed ones must have died of SIGKILL,
 *     all others exited 0.
 *
 * The chaos runs twice (tcases "chaos" and "chaos-policies"), each for
 * half of the duration: once with the consecutive-failure threshold only,
 * once with the policies of issue 10 on as well: a failure-rate rule
 * (50% of at least 20 calls in a 200 ms window), a slow-call rule (5% of
 * calls slower than 8 ms, timed on the stalling clock), threshold 8, and
 * backoff x2 per failed probe from 5 ms up to 40 ms. Invariants 1-6 hold
 * in both; the wedge watch takes each OPEN word's timeout from its
 * backoff step, and every snapshot checks that step against the period
 * the test computes itself (cb_info.open_timeout_ms, step 0 and the bare
 * reset timeout while CLOSED). The quiescent phase turns the rate rules
 * off (its K*M failures would trip them) and restores them after. The
 * policies run must have tripped by failure rate and backed off at least
 * once.
 *
 * It prints how many processes were killed (by phase), calls made,
 * transitions seen (by the workers' listeners) and the observers' figures.
 *
 * Duration (both runs together): CHAOS_DEFAULT_SECONDS, or
 * CB_CHAOS_SECONDS=N in the environment, or `test-chaos --seconds N` (with meson:
 * meson test chaos --test-args='--seconds 300' -t 10). CB_CHAOS_SEED=N
 * fixes the random choices (the interleavings stay the machine's).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"
#include "handle.h"
#include "probe-observer.h"
#include "segment.h"
#include "testlib.h"

#define CHAOS_DEFAULT_SECONDS 20u
#define ALIVE 8u            /* workers alive at a time */
#define MAX_POS 16u         /* worker positions (some cool down after a dead holder) */
#define THRESHOLD 3u
#define RESET_MS 5u
#define PROBE_MS 20u
/* The policies run (issue 10): rate rules on a short window, backoff. */
#define POL_THRESHOLD 8u   /* higher, so that the rate rule often fires first */
#define POL_RATE 50u
#define POL_MIN_CALLS 20u
#define POL_WINDOW_MS 200u  /* buckets of 20 ms */
#define POL_SLOW_MS 8u
#define POL_SLOW_RATE 5u
#define POL_BACKOFF 200u    /* 5, 10, 20, 40 ms */
#define POL_MAX_RESET_MS 40u
#define QUIET_K 8u          /* quiescent phase: K workers x M failures */
#define QUIET_M 500u
#define STOP_WAIT_MS 30000u /* workers must all exit within this after stop */
#define HANG_MS 1500u       /* no single library call may take this long */

static unsigned chaos_seconds = CHAOS_DEFAULT_SECONDS;
static uint64_t chaos_seed;

/* Phases a worker publishes in its progress word. */
enum { PH_START = 0, PH_IDLE = 1, PH_ACQUIRING = 2, PH_HOLDING = 3, PH_REPORTING = 4, PH_COUNT = 5 };

/* progress = phase | allowed << 4 | reports << 34: one store per step, so
 * a killed worker's last word says exactly what it had done. */
#define PROG(ph, allowed, reports) ((uint64_t)(ph) | (uint64_t)(allowed) << 4 | (uint64_t)(reports) << 34)
#define PROG_PHASE(p) ((unsigned)((p)&15u))
#define PROG_ALLOWED(p) (((p) >> 4) & ((UINT64_C(1) << 30) - 1u))
#define PROG_REPORTS(p) ((p) >> 34)

struct wslot {
    _Atomic uint64_t progress;
    _Atomic uint64_t rejected; /* bumped before the phase leaves ACQUIRING */
    _Atomic uint64_t probes;   /* idem */
    _Atomic uint64_t in_clock; /* phase, while stalled inside the clock callback */
    _Atomic uint64_t in_call;  /* fine ms a cb_acquire or report began; 0 outside */
    uint8_t pad[128 - 40];
};

struct chaos {
    char name[128];
    cb_config cfg;
    _Atomic int stop;
    _Atomic uint32_t fail_permille; /* the dependency's current failure rate */
    _Atomic uint64_t lull_until;    /* fine ms: no calls before (callers pause) */
    _Atomic uint64_t acq_begun, acq_done;
    cb_config resolved;              /* cfg as stored (zero fields resolved) */
    _Atomic uint64_t trans[10]; /* listener calls, by cb_reason */
    _Atomic uint64_t worker_errors;
    _Atomic int msg_taken;
    char msg[512];
    struct wslot w[MAX_POS];
};

static struct chaos *C;
static struct po *PO;

/* ---- small helpers ------------------------------------------------------ */

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

static uint64_t clock_tick_ms(void)
{
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
        return 10;
    return ((uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec + 999999u) / 1000000u;
}

/* A worker's own check failed: say so once in shared memory. */
static void worker_error(const char *what)
{
    atomic_fetch_add(&C->worker_errors, 1);
    fprintf(stderr, "test-chaos: worker %d: %s\n", (int)getpid(), what);
    int none = 0;
    if (atomic_compare_exchange_strong(&C->msg_taken, &none, 1))
        snprintf(C->msg, sizeof C->msg, "worker %d: %s", (int)getpid(), what);
}

/* ---- workers ------------------------------------------------------------ */

struct wctx {
    unsigned pos;
    unsigned phase; /* this worker's current phase (for the clock callback) */
    uint64_t rng;
};
static struct wctx W; /* per worker process */

/* The real clock (the library's own: coarse monotonic ms), read first and
 * then sometimes held: the caller is "preempted" between its clock read
 * and its compare-and-swap, and publishes so, for the controller to kill
 * it right there. */
static uint64_t stalling_clock(void *ctx)
{
    struct wctx *w = ctx;
    uint64_t now = po_coarse_ms();
    unsigned r = rnd(&w->rng, 64);
    if (w->phase == PH_REPORTING ? r < 24 : r < 4) {
        atomic_store(&C->w[w->pos].in_clock, w->phase);
        sleep_us(100 + rnd(&w->rng, 2900));
        atomic_store(&C->w[w->pos].in_clock, 0);
    } else if (r < 20) {
        sched_yield();
    }
    return now;
}

static void counting_listener(const cb_event *ev, void *ctx)
{
    (void)ctx;
    if ((unsigned)ev->transition.reason < 10)
        atomic_fetch_add(&C->trans[ev->transition.reason], 1);
}

enum { WF_OPEN_BY_NAME = 1, WF_STALL_CLOCK = 2 };

static void call_duration(uint64_t *rng)
{
    unsigned r = rnd(rng, 100);
    if (r < 55)
        return;
    if (r < 75)
        sched_yield();
    else if (r < 92)
        sleep_us(50 + rnd(rng, 2000));
    else if (r < 98)
        sleep_us(2000 + rnd(rng, 8000));
    else
        sleep_us(10000 + rnd(rng, 30000)); /* longer than the probe lease */
}

static int worker_main(cb_breaker *inherited, unsigned flags)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(chaos_seconds + 240u);
    struct wslot *ws = &C->w[W.pos];
    cb_breaker *b = inherited;
    if (flags & WF_OPEN_BY_NAME) {
        int rc = cb_open(C->name, &C->cfg, &b);
        if (rc != CB_OPENED) {
            char m[160];
            snprintf(m, sizeof m, "cb_open by name returned %d (%s), expected CB_OPENED", rc,
                     rc < 0 ? cb_strerror(rc) : "not an error");
            worker_error(m);
            return 1;
        }
    }
    if (flags & WF_STALL_CLOCK)
        cb_set_clock(b, stalling_clock, &W);
    cb_set_listener(b, counting_listener, NULL);
    uint64_t allowed = 0, reports = 0, who = (uint64_t)getpid() << 32 | W.pos;
    atomic_store(&ws->progress, PROG(PH_IDLE, 0, 0));
    while (!atomic_load(&C->stop)) {
        uint64_t lull = atomic_load(&C->lull_until), now = po_fine_ms();
        if (now < lull) {
            sleep_us((unsigned)(lull - now < 100 ? lull - now : 100) * 1000u);
            continue;
        }
        struct po_ticket t;
        cb_permit permit;
        W.phase = PH_ACQUIRING;
        atomic_store(&ws->progress, PROG(PH_ACQUIRING, allowed, reports));
        po_ticket_take(PO, &t);
        atomic_fetch_add(&C->acq_begun, 1);
        atomic_thread_fence(memory_order_seq_cst);
        atomic_store(&ws->in_call, po_fine_ms());
        cb_verdict v = cb_acquire(b, &permit);
        atomic_store(&ws->in_call, 0);
        atomic_fetch_add(&C->acq_done, 1);
        if (v == CB_REJECTED) {
            atomic_fetch_add(&ws->rejected, 1);
            W.phase = PH_IDLE;
            atomic_store(&ws->progress, PROG(PH_IDLE, allowed, reports));
            sleep_us(100 + rnd(&W.rng, 900));
            continue;
        }
        if (v == CB_PROBE) {
            atomic_fetch_add(&ws->probes, 1);
            po_granted(PO, W.pos, &t, who);
        } else if (v != CB_ALLOWED) {
            worker_error("cb_acquire returned an unknown verdict");
            return 1;
        }
        allowed++;
        W.phase = PH_HOLDING;
        atomic_store(&ws->progress, PROG(PH_HOLDING, allowed, reports));
        call_duration(&W.rng);
        unsigned r = rnd(&W.rng, 1000);
        if (v == CB_PROBE)
            po_reporting(PO, W.pos);
        W.phase = PH_REPORTING;
        atomic_store(&ws->progress, PROG(PH_REPORTING, allowed, reports));
        atomic_store(&ws->in_call, po_fine_ms());
        if (r < atomic_load(&C->fail_permille))
            cb_failure(b, &permit);
        else if (r >= 920)
            cb_release(b, &permit);
        else
            cb_success(b, &permit);
        atomic_store(&ws->in_call, 0);
        reports++;
        W.phase = PH_IDLE;
        atomic_store(&ws->progress, PROG(PH_IDLE, allowed, reports));
    }
    if (b != inherited)
        cb_close(b);
    return 0;
}

/* Quiescent phase: M failures, every acquire must be allowed. */
static struct tl_barrier *quiet_start;
static int quiet_worker_main(cb_breaker *inherited, unsigned flags, const cb_config *cfg)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(120);
    cb_breaker *b = inherited;
    if (flags & WF_OPEN_BY_NAME) {
        int rc = cb_open(C->name, cfg, &b);
        if (rc != CB_OPENED) {
            worker_error("quiescent cb_open by name did not return CB_OPENED");
            return 1;
        }
    }
    tl_barrier_wait(quiet_start);
    for (unsigned i = 0; i < QUIET_M; i++) {
        cb_permit p;
        if (cb_acquire(b, &p) != CB_ALLOWED) {
            worker_error("quiescent phase: an acquire was not CB_ALLOWED below the threshold");
            return 1;
        }
        if (i % 64 == 0)
            sched_yield();
        cb_failure(b, &p);
    }
    if (b != inherited)
        cb_close(b);
    return 0;
}

/* ---- the controller ----------------------------------------------------- */

enum { POS_EMPTY = 0, POS_ALIVE, POS_COOLING };

struct pos {
    int state;
    pid_t pid;
    int killed;     /* we sent SIGKILL */
    unsigned flags;
};

struct totals {
    uint64_t spawned, killed, exited;
    uint64_t killed_in[PH_COUNT];
    uint64_t killed_holders, killed_holders_confirmed; /* confirmed: the library's probe_pid */
    uint64_t killed_in_clock_acquire, killed_in_clock_report;
    uint64_t allowed, reports, rejected, probes;
    uint64_t resets, trips;
    uint64_t episodes, episodes_evidenced;
    uint64_t max_past_deadline_ms;
    uint64_t dead_holder_episodes, dead_holder_max_ms;
    uint64_t inspections;
    uint64_t max_step;       /* highest backoff step seen */
    uint64_t backed_off;     /* OPEN words seen with a step > 0 */
};

struct ctl {
    struct pos pos[MAX_POS];
    struct totals t;
    cb_breaker *b; /* the controller's own handle (inherited by some workers) */
    uint64_t rng, tick, t_start;
    char fail[1024]; /* first failure the controller saw */
    /* Wedge tracking of the current non-CLOSED word. */
    int tracking;
    cb_state st;
    uint32_t gen;
    uint64_t word; /* the word itself: a re-stamp (same generation) restarts the wait */
    uint64_t first_seen, deadline, D;
    int have_D;
    uint64_t holder_killed_at; /* fine ms; 0 if no holder of this word was killed */
    cb_counters last;          /* for monotonicity */
};

static void ctl_fail(struct ctl *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_fail(struct ctl *k, const char *fmt, ...)
{
    char m[sizeof k->fail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    fprintf(stderr, "test-chaos: controller: %s\n", m);
    if (!k->fail[0])
        snprintf(k->fail, sizeof k->fail, "%s", m);
}

static unsigned alive_count(const struct ctl *k)
{
    unsigned n = 0;
    for (unsigned i = 0; i < MAX_POS; i++)
        n += k->pos[i].state == POS_ALIVE;
    return n;
}

static void spawn(struct ctl *k, unsigned i)
{
    struct wslot *ws = &C->w[i];
    atomic_store(&ws->progress, PROG(PH_START, 0, 0));
    atomic_store(&ws->rejected, 0);
    atomic_store(&ws->probes, 0);
    atomic_store(&ws->in_clock, 0);
    atomic_store(&ws->in_call, 0);
    unsigned flags = rnd(&k->rng, 4);
    W.pos = i;
    W.phase = PH_START;
    W.rng = rng_next(&k->rng) | 1u;
    pid_t pid = fork();
    if (pid < 0) {
        ctl_fail(k, "fork: %s", strerror(errno));
        return;
    }
    if (pid == 0)
        _exit(worker_main(k->b, flags));
    k->pos[i] = (struct pos){POS_ALIVE, pid, 0, flags};
    k->t.spawned++;
}

/* Account for the worker at position i, which has exited with status. */
static void reaped(struct ctl *k, unsigned i, int status)
{
    struct pos *p = &k->pos[i];
    struct wslot *ws = &C->w[i];
    uint64_t prog = atomic_load(&ws->progress);
    unsigned ph = PROG_PHASE(prog);
    if (p->killed) {
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            ctl_fail(k, "worker %d was sent SIGKILL but ended with status 0x%x", (int)p->pid, status);
        k->t.killed++;
        if (ph < PH_COUNT)
            k->t.killed_in[ph]++;
        unsigned clk = (unsigned)atomic_load(&ws->in_clock);
        if (clk == PH_ACQUIRING)
            k->t.killed_in_clock_acquire++;
        else if (clk == PH_REPORTING)
            k->t.killed_in_clock_report++;
    } else {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ctl_fail(k, "worker %d (never killed) ended with status 0x%x (%s)", (int)p->pid, status,
                     C->msg[0] ? C->msg : "no message");
        k->t.exited++;
    }
    k->t.allowed += PROG_ALLOWED(prog);
    k->t.reports += PROG_REPORTS(prog);
    k->t.rejected += atomic_load(&ws->rejected);
    k->t.probes += atomic_load(&ws->probes);
    atomic_store(&ws->progress, PROG(PH_START, 0, 0));
    atomic_store(&ws->rejected, 0);
    atomic_store(&ws->probes, 0);
    p->state = POS_COOLING; /* until its probe slot, if any, is certainly expired */
    p->pid = 0;
}

static void reap_all(struct ctl *k, int block)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);
        if (pid <= 0)
            return;
        unsigned i;
        for (i = 0; i < MAX_POS; i++)
            if (k->pos[i].state == POS_ALIVE && k->pos[i].pid == pid)
                break;
        if (i == MAX_POS) {
            ctl_fail(k, "reaped an unknown child %d (status 0x%x)", (int)pid, status);
            continue;
        }
        reaped(k, i, status);
        if (block)
            return;
    }
}

static void cool_down(struct ctl *k)
{
    for (unsigned i = 0; i < MAX_POS; i++)
        if (k->pos[i].state == POS_COOLING && po_release_dead(PO, i, k->tick))
            k->pos[i].state = POS_EMPTY;
}

/* No library call of a live worker may hang. */
static void check_hangs(struct ctl *k)
{
    uint64_t now = po_fine_ms();
    for (unsigned i = 0; i < MAX_POS; i++) {
        uint64_t since = atomic_load(&C->w[i].in_call);
        if (k->pos[i].state == POS_ALIVE && !k->pos[i].killed && since && now > since + HANG_MS) {
            ctl_fail(k, "HANG: worker %d has been inside one cb_acquire or report for %llu ms", (int)k->pos[i].pid,
                     (unsigned long long)(now - since));
            atomic_store(&C->w[i].in_call, 0);
        }
    }
}

static int is_alive_holder(struct ctl *k, unsigned i)
{
    struct po_rec r;
    return k->pos[i].state == POS_ALIVE && po_read(PO, i, &r);
}

/* Choose a victim: probe holders, workers stalled between clock read and
 * CAS, workers holding or reporting a permit, or anyone. */
static int pick_victim(struct ctl *k, int kind)
{
    unsigned cand[MAX_POS], n = 0;
    for (unsigned i = 0; i < MAX_POS; i++) {
        if (k->pos[i].state != POS_ALIVE)
            continue;
        unsigned ph = PROG_PHASE(atomic_load(&C->w[i].progress));
        unsigned clk = (unsigned)atomic_load(&C->w[i].in_clock);
        int ok = kind == 0 ? is_alive_holder(k, i)
                 : kind == 1 ? clk == PH_REPORTING
                 : kind == 2 ? clk != 0
                 : kind == 3 ? (ph == PH_HOLDING || ph == PH_REPORTING)
                             : 1;
        if (ok)
            cand[n++] = i;
    }
    return n ? (int)cand[rnd(&k->rng, n)] : -1;
}

static void kill_pos(struct ctl *k, unsigned i)
{
    struct pos *p = &k->pos[i];
    if (is_alive_holder(k, i)) {
        cb_info info;
        k->t.killed_holders++;
        if (cb_get_info(k->b, &info) == 0 && info.state == CB_HALF_OPEN && info.probe_pid == p->pid) {
            k->t.killed_holders_confirmed++;
            if (k->tracking && k->st == CB_HALF_OPEN && k->gen == info.generation && !k->holder_killed_at)
                k->holder_killed_at = po_fine_ms();
        }
    }
    kill(p->pid, SIGKILL);
    p->killed = 1;
}

static void watch_word(struct ctl *k, const cb_config *cfg);

static void do_kill(struct ctl *k, uint64_t now)
{
    unsigned r = rnd(&k->rng, 100);
    int kind = r < 25 ? 0 : r < 40 ? 1 : r < 55 ? 2 : r < 70 ? 3 : 4;
    int v = pick_victim(k, kind);
    if (v < 0 && kind <= 2 && rnd(&k->rng, 2) == 0) {
        /* Wait a little for the moment we want (a stall inside a report,
         * a fresh probe), watching closely. */
        uint64_t until = now + 40;
        while (v < 0 && po_fine_ms() < until) {
            sleep_us(200);
            po_scan_all(PO);
            watch_word(k, &C->resolved);
            v = pick_victim(k, kind);
        }
    }
    if (v < 0)
        v = pick_victim(k, 4);
    if (v >= 0)
        kill_pos(k, (unsigned)v);
    /* Sometimes a second victim at the same moment. */
    if (rnd(&k->rng, 8) == 0 && (v = pick_victim(k, 4)) >= 0)
        kill_pos(k, (unsigned)v);
}

/* cbctl reset / cbctl trip: attach by name, force, close. */
static void do_operator(struct ctl *k)
{
    cb_breaker *h;
    int rc = cb_attach(C->name, &h);
    if (rc != 0) {
        ctl_fail(k, "cb_attach: %s", cb_strerror(rc));
        return;
    }
    cb_set_listener(h, counting_listener, NULL);
    int trip = rnd(&k->rng, 2);
    po_op_begin(PO);
    rc = trip ? cb_trip(h) : cb_reset(h);
    po_op_end(PO);
    if (rc < 0 || rc > 2)
        ctl_fail(k, "cb_%s returned %d", trip ? "trip" : "reset", rc);
    if (trip)
        k->t.trips++;
    else
        k->t.resets++;
    cb_close(h);
}

static void check_counters_monotonic(struct ctl *k, const cb_counters *c)
{
    const uint64_t *now = (const uint64_t *)c, *was = (const uint64_t *)&k->last;
    static const char *const names[] = {"allowed", "rejected", "successes", "failures",
                                        "released", "late", "trips", "probes"};
    for (unsigned i = 0; i < sizeof *c / sizeof(uint64_t); i++)
        if (now[i] < was[i])
            ctl_fail(k, "counter %s went down: %llu -> %llu", names[i], (unsigned long long)was[i],
                     (unsigned long long)now[i]);
    k->last = *c;
}

/* Every field that cb_open compares (all but mode and flags). */
static int same_policy_config(const cb_config *a, const cb_config *b)
{
    return a->failure_threshold == b->failure_threshold && a->reset_timeout_ms == b->reset_timeout_ms &&
           a->probe_timeout_ms == b->probe_timeout_ms && a->failure_rate == b->failure_rate &&
           a->minimum_calls == b->minimum_calls && a->window_ms == b->window_ms &&
           a->slow_call_ms == b->slow_call_ms && a->slow_call_rate == b->slow_call_rate &&
           a->backoff_multiplier_pct == b->backoff_multiplier_pct &&
           a->max_reset_timeout_ms == b->max_reset_timeout_ms;
}

/* The open period after `step` failed probes, computed here from the
 * header's rule: reset_timeout, then each step times the multiplier, up
 * to the cap (max(max_reset_timeout, reset_timeout)); 0 or 100: off. */
static uint64_t open_period(const cb_config *cfg, unsigned step)
{
    uint64_t p = cfg->reset_timeout_ms;
    uint64_t cap = cfg->max_reset_timeout_ms > p ? cfg->max_reset_timeout_ms : p;
    uint32_t mult = cfg->backoff_multiplier_pct;
    if (mult == 0 || mult == 100)
        return p;
    for (unsigned i = 0; i < step && p < cap; i++) {
        p = p * mult / 100u;
        if (p > cap)
            p = cap;
    }
    return p;
}

/* Invariant 3: the segment, as any reader sees it. */
static void check_segment(struct ctl *k, const cb_config *cfg)
{
    cb_info info;
    int rc = cb_inspect(C->name, &info);
    k->t.inspections++;
    if (rc != 0) {
        ctl_fail(k, "cb_inspect: %d (%s)", rc, cb_strerror(rc));
        return;
    }
    if (info.layout_version != CB_LAYOUT_VERSION || info.segment_size != CB_SEGMENT_SIZE)
        ctl_fail(k, "cb_inspect: layout version %u, size %llu", info.layout_version,
                 (unsigned long long)info.segment_size);
    if (!same_policy_config(&info.config, cfg))
        ctl_fail(k, "cb_inspect: config %u/%u/%u, policies %u/%u/%u/%u/%u/%u/%u", info.config.failure_threshold,
                 info.config.reset_timeout_ms, info.config.probe_timeout_ms, info.config.failure_rate,
                 info.config.minimum_calls, info.config.window_ms, info.config.slow_call_ms,
                 info.config.slow_call_rate, info.config.backoff_multiplier_pct, info.config.max_reset_timeout_ms);
    if (info.state > CB_HALF_OPEN)
        ctl_fail(k, "cb_inspect: state %d", (int)info.state);
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", C->name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint64_t magic = 0;
    if (fd < 0 || fstat(fd, &st) != 0 || pread(fd, &magic, sizeof magic, 0) != (ssize_t)sizeof magic) {
        ctl_fail(k, "%s: %s", path, strerror(errno));
    } else {
        if ((uint64_t)st.st_size != CB_SEGMENT_SIZE)
            ctl_fail(k, "%s: size %lld, expected %llu", path, (long long)st.st_size,
                     (unsigned long long)CB_SEGMENT_SIZE);
        if (magic != CB_MAGIC)
            ctl_fail(k, "%s: magic %016llx", path, (unsigned long long)magic);
    }
    if (fd >= 0)
        close(fd);
    check_counters_monotonic(k, &info.counters);
}

/* Invariant 2: one observation of the word. */
static void watch_word(struct ctl *k, const cb_config *cfg)
{
    uint64_t done = atomic_load(&C->acq_done);
    atomic_thread_fence(memory_order_seq_cst);
    cb_info info;
    int rc = cb_get_info(k->b, &info);
    if (rc != 0) {
        ctl_fail(k, "cb_get_info: %d (%s)", rc, cb_strerror(rc));
        return;
    }
    /* The word as a whole, read after the snapshot: its installer may
     * re-stamp it (same state and generation, a newer time stamp: see
     * breaker.c, refresh_stamp), and the timeout runs from the new stamp. */
    uint64_t word = atomic_load_explicit(&k->b->seg->state, memory_order_relaxed);
    uint64_t now = po_coarse_ms();
    /* The open period follows the backoff step (one value of the word). */
    unsigned step = info.state == CB_CLOSED ? 0u : info.backoff_step;
    uint64_t period = open_period(cfg, step);
    if (info.backoff_step > CB_BACKOFF_STEPS_MAX || (info.state == CB_CLOSED && info.backoff_step != 0) ||
        info.open_timeout_ms != period)
        ctl_fail(k, "%s with backoff step %u: open period %llu ms, expected %llu", cb_state_name(info.state),
                 info.backoff_step, (unsigned long long)info.open_timeout_ms, (unsigned long long)period);
    if (step > k->t.max_step)
        k->t.max_step = step;
    if (k->tracking && info.state == k->st && info.generation == k->gen && word == k->word) {
        if (!k->have_D && now >= k->deadline) {
            atomic_thread_fence(memory_order_seq_cst);
            k->D = atomic_load(&C->acq_begun);
            k->have_D = 1;
        } else if (k->have_D && done > k->D) {
            ctl_fail(k,
                     "WEDGED: the circuit is still %s (generation %u), first seen %llu ms ago, although an "
                     "acquire that began after its %s timeout had certainly passed has returned",
                     cb_state_name(info.state), info.generation, (unsigned long long)(now - k->first_seen),
                     info.state == CB_OPEN ? "reset" : "probe");
            k->tracking = 0;
        }
        return;
    }
    /* The word moved on. */
    if (k->tracking) {
        k->t.episodes++;
        if (k->have_D)
            k->t.episodes_evidenced++;
        if (now > k->deadline && now - k->deadline > k->t.max_past_deadline_ms)
            k->t.max_past_deadline_ms = now - k->deadline;
        if (k->holder_killed_at) {
            uint64_t ms = po_fine_ms() - k->holder_killed_at;
            k->t.dead_holder_episodes++;
            if (ms > k->t.dead_holder_max_ms)
                k->t.dead_holder_max_ms = ms;
        }
    }
    k->tracking = info.state != CB_CLOSED;
    if (info.state == CB_OPEN && step > 0)
        k->t.backed_off++;
    k->st = info.state;
    k->gen = info.generation;
    k->word = word;
    k->first_seen = now;
    k->deadline =
        now + (info.state == CB_OPEN ? period : cfg->probe_timeout_ms) + k->tick;
    k->have_D = 0;
    k->holder_killed_at = 0;
}

static void add_trans_report(char *buf, size_t size)
{
    static const char *const r[10] = {"threshold", "reset_timeout", "probe_succeeded", "probe_failed",
                                      "lease_expired", "reset", "trip", "failure_rate",
                                      "slow_call_rate", "mode"};
    size_t n = 0;
    for (unsigned i = 0; i < 10 && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s %llu", i ? ", " : "", r[i],
                              (unsigned long long)atomic_load(&C->trans[i]));
}

/* One chaos run of `seconds` on a new circuit with cfg. */
static void run_chaos(const cb_config *cfg, unsigned seconds)
{
    static struct ctl ctl; /* static: a forked worker's heap holds nothing only the stack knew */
    struct ctl *k = &ctl;
    memset(k, 0, sizeof *k); /* CK_FORK=no runs both in one process */
    C = tl_shared(sizeof *C);
    PO = tl_shared(po_size(MAX_POS));
    po_init(PO, MAX_POS, PROBE_MS);
    snprintf(C->name, sizeof C->name, "%s", tl_unique_name("chaos"));
    C->cfg = *cfg;
    atomic_store(&C->fail_permille, 300);
    int rc = cb_open(C->name, &C->cfg, &k->b);
    ck_assert_msg(rc == CB_CREATED, "cb_open: %d (%s)", rc, rc < 0 ? cb_strerror(rc) : "");
    cb_info info;
    ck_assert_int_eq(cb_get_info(k->b, &info), 0);
    C->resolved = info.config;
    const cb_config *rcfg = &C->resolved;
    k->rng = chaos_seed;
    k->tick = clock_tick_ms();
    k->t_start = po_fine_ms();
    uint64_t end = k->t_start + (uint64_t)seconds * 1000u;
    uint64_t next_kill = k->t_start + 20, next_op = k->t_start + 200, next_health = k->t_start + 500,
             next_inspect = k->t_start, next_lull = k->t_start + 300;
    printf("chaos: circuit %s, threshold %u, reset %u ms, probe lease %u ms (clock tick %llu ms), "
           "%u workers alive, %u s, seed %llu\n",
           C->name, rcfg->failure_threshold, rcfg->reset_timeout_ms, rcfg->probe_timeout_ms,
           (unsigned long long)k->tick, ALIVE, seconds, (unsigned long long)chaos_seed);
    if (rcfg->failure_rate || rcfg->slow_call_ms || rcfg->backoff_multiplier_pct)
        printf("chaos: policies: failure rate %u%%, slow calls (> %u ms) %u%%, of >= %u calls in %u ms; "
               "backoff x%u.%02u up to %u ms\n",
               rcfg->failure_rate, rcfg->slow_call_ms, rcfg->slow_call_rate, rcfg->minimum_calls, rcfg->window_ms,
               rcfg->backoff_multiplier_pct / 100u, rcfg->backoff_multiplier_pct % 100u,
               rcfg->max_reset_timeout_ms);
    fflush(stdout);

    /* ---- chaos ---- */
    for (;;) {
        uint64_t now = po_fine_ms();
        if (now >= end || k->fail[0] || atomic_load(&PO->violations) || atomic_load(&C->worker_errors))
            break;
        reap_all(k, 0);
        cool_down(k);
        for (unsigned i = 0; i < MAX_POS && alive_count(k) < ALIVE; i++)
            if (k->pos[i].state == POS_EMPTY)
                spawn(k, i);
        po_scan_all(PO);
        watch_word(k, &C->resolved);
        check_hangs(k);
        if (now >= next_kill) {
            do_kill(k, now);
            next_kill = po_fine_ms() + 5 + rnd(&k->rng, 55);
        }
        if (now >= next_op) {
            do_operator(k);
            next_op = now + 150 + rnd(&k->rng, 600);
        }
        if (now >= next_health) {
            static const uint32_t rates[] = {20, 300, 700, 980};
            atomic_store(&C->fail_permille, rates[rnd(&k->rng, 4)]);
            next_health = now + 300 + rnd(&k->rng, 1200);
        }
        if (now >= next_lull) {
            /* All callers pause for a moment: words outlive their timeout
             * and the wedge watch sees the first calls after it. */
            atomic_store(&C->lull_until, now + 30 + rnd(&k->rng, 40));
            next_lull = now + 300 + rnd(&k->rng, 600);
        }
        if (now >= next_inspect) {
            check_segment(k, &C->resolved);
            next_inspect = now + 50;
        }
        sleep_us(200 + rnd(&k->rng, 600));
    }
    uint64_t chaos_ms = po_fine_ms() - k->t_start;

    /* ---- stop: no more kills; every worker must exit 0 ---- */
    atomic_store(&C->stop, 1);
    uint64_t stop_deadline = po_fine_ms() + STOP_WAIT_MS;
    while (alive_count(k) > 0 && po_fine_ms() < stop_deadline) {
        reap_all(k, 0);
        po_scan_all(PO);
        watch_word(k, &C->resolved);
        sleep_us(1000);
    }
    if (alive_count(k) > 0) {
        ctl_fail(k, "%u workers did not exit within %u ms of the stop", alive_count(k), STOP_WAIT_MS);
        for (unsigned i = 0; i < MAX_POS; i++)
            if (k->pos[i].state == POS_ALIVE) {
                kill(k->pos[i].pid, SIGKILL);
                k->pos[i].killed = 1;
            }
        while (alive_count(k) > 0)
            reap_all(k, 1);
    }
    check_segment(k, &C->resolved);

    ck_assert_int_eq(cb_get_info(k->b, &info), 0);
    cb_counters c = info.counters;
    uint64_t calls = atomic_load(&C->acq_done);
    char trans[256];
    add_trans_report(trans, sizeof trans);
    printf("chaos: %.1f s: %llu processes started, %llu killed (%llu while acquiring, %llu holding a permit, "
           "%llu reporting, %llu idle, %llu starting), %llu exited at the stop\n",
           (double)chaos_ms / 1000.0, (unsigned long long)k->t.spawned, (unsigned long long)k->t.killed,
           (unsigned long long)k->t.killed_in[PH_ACQUIRING], (unsigned long long)k->t.killed_in[PH_HOLDING],
           (unsigned long long)k->t.killed_in[PH_REPORTING], (unsigned long long)k->t.killed_in[PH_IDLE],
           (unsigned long long)k->t.killed_in[PH_START], (unsigned long long)k->t.exited);
    printf("chaos: killed probe holders %llu (%llu confirmed by the library's probe_pid); killed between the "
           "clock read and the CAS: %llu in an acquire, %llu in a report\n",
           (unsigned long long)k->t.killed_holders, (unsigned long long)k->t.killed_holders_confirmed,
           (unsigned long long)k->t.killed_in_clock_acquire, (unsigned long long)k->t.killed_in_clock_report);
    printf("chaos: calls %llu (allowed %llu, rejected %llu, probes %llu), reports %llu; library: allowed %llu, "
           "rejected %llu, successes %llu, failures %llu, released %llu, late %llu, trips %llu, probes %llu, "
           "generation %u\n",
           (unsigned long long)calls, (unsigned long long)k->t.allowed, (unsigned long long)k->t.rejected,
           (unsigned long long)k->t.probes, (unsigned long long)k->t.reports, (unsigned long long)c.allowed,
           (unsigned long long)c.rejected, (unsigned long long)c.successes, (unsigned long long)c.failures,
           (unsigned long long)c.released, (unsigned long long)c.late, (unsigned long long)c.trips,
           (unsigned long long)c.probes, info.generation);
    printf("chaos: transitions seen by the workers' listeners: %s; operator: %llu resets, %llu trips\n", trans,
           (unsigned long long)k->t.resets, (unsigned long long)k->t.trips);
    printf("chaos: probe observer: %llu grants, %llu pairs of holders judged (%llu skipped: operator between), "
           "%llu violations\n",
           (unsigned long long)atomic_load(&PO->grants), (unsigned long long)atomic_load(&PO->pairs_checked),
           (unsigned long long)atomic_load(&PO->pairs_skipped_ops),
           (unsigned long long)atomic_load(&PO->violations));
    printf("chaos: wedge watch: %llu OPEN/HALF_OPEN words ended (%llu outlived their timeout while watched); "
           "latest change after the timeout: %llu ms; %llu killed holders' leases freed, at most %llu ms after "
           "the kill; %llu segment inspections\n",
           (unsigned long long)k->t.episodes, (unsigned long long)k->t.episodes_evidenced,
           (unsigned long long)k->t.max_past_deadline_ms, (unsigned long long)k->t.dead_holder_episodes,
           (unsigned long long)k->t.dead_holder_max_ms, (unsigned long long)k->t.inspections);
    printf("chaos: backoff: %llu OPEN words with a step > 0, highest step %llu (open period %llu ms)\n",
           (unsigned long long)k->t.backed_off, (unsigned long long)k->t.max_step,
           (unsigned long long)open_period(rcfg, (unsigned)k->t.max_step));
    fflush(stdout);

    ck_assert_msg(atomic_load(&PO->violations) == 0, "%s", PO->msg);
    ck_assert_msg(atomic_load(&C->worker_errors) == 0, "%s", C->msg);
    ck_assert_msg(!k->fail[0], "%s", k->fail);

    /* Invariant 4: counters, with the kills accounted for. */
    uint64_t kacq = k->t.killed_in[PH_ACQUIRING], khold = k->t.killed_in[PH_HOLDING],
             krep = k->t.killed_in[PH_REPORTING];
    uint64_t lib_reports = c.successes + c.failures + c.released + c.late;
    ck_assert_msg(k->t.allowed == k->t.reports + khold + krep,
                  "test bookkeeping: allowed %llu != reports %llu + killed holding %llu + killed reporting %llu",
                  (unsigned long long)k->t.allowed, (unsigned long long)k->t.reports, (unsigned long long)khold,
                  (unsigned long long)krep);
    ck_assert_msg(c.allowed >= k->t.allowed && c.allowed - k->t.allowed <= kacq,
                  "library allowed %llu, test saw %llu, killed while acquiring %llu", (unsigned long long)c.allowed,
                  (unsigned long long)k->t.allowed, (unsigned long long)kacq);
    ck_assert_msg(c.rejected >= k->t.rejected && c.rejected - k->t.rejected <= kacq,
                  "library rejected %llu, test saw %llu, killed while acquiring %llu",
                  (unsigned long long)c.rejected, (unsigned long long)k->t.rejected, (unsigned long long)kacq);
    ck_assert_msg(c.allowed + c.rejected - k->t.allowed - k->t.rejected <= kacq,
                  "library verdicts exceed the test's by more than the workers killed while acquiring");
    ck_assert_msg(c.allowed + c.rejected <= calls + kacq, "more verdicts than acquires");
    ck_assert_msg(c.probes >= k->t.probes && c.probes - k->t.probes <= kacq,
                  "library probes %llu, test saw %llu, killed while acquiring %llu", (unsigned long long)c.probes,
                  (unsigned long long)k->t.probes, (unsigned long long)kacq);
    ck_assert_msg(lib_reports >= k->t.reports && lib_reports - k->t.reports <= krep,
                  "library reports (successes+failures+released+late) %llu, test made %llu, killed reporting %llu",
                  (unsigned long long)lib_reports, (unsigned long long)k->t.reports, (unsigned long long)krep);
    ck_assert_msg(c.allowed >= lib_reports, "more reports than permits");

    /* Non-vacuity: the run really did what it claims. */
    ck_assert_msg(k->t.killed >= (uint64_t)seconds * 5u, "only %llu kills in %u s",
                  (unsigned long long)k->t.killed, seconds);
    ck_assert_msg(k->t.killed_holders_confirmed > 0, "no probe holder was killed");
    ck_assert_msg(atomic_load(&PO->pairs_checked) > 0, "the probe observer never judged a pair");
    ck_assert_msg(k->t.episodes_evidenced > 0, "the wedge watch never saw a word outlive its timeout");
    ck_assert_uint_gt(c.trips, 0);
    ck_assert_uint_gt(c.late, 0);
    if (rcfg->failure_rate)
        ck_assert_msg(atomic_load(&C->trans[CB_REASON_FAILURE_RATE]) > 0, "no trip by the failure rate");
    if (rcfg->backoff_multiplier_pct > 100u)
        ck_assert_msg(k->t.backed_off > 0, "no OPEN word with a backoff step was seen");

    /* ---- invariant 5: quiescent, exact failure counting ---- */
    for (unsigned i = 0; i < MAX_POS; i++)
        k->pos[i].state = POS_EMPTY;
    po_op_begin(PO);
    ck_assert_int_ge(cb_reset(k->b), 0);
    po_op_end(PO);
    cb_config big = C->cfg;
    big.failure_threshold = QUIET_K * QUIET_M + 1u;
    big.failure_rate = 0; /* off: K*M failures would trip them */
    big.slow_call_ms = 0;
    cb_breaker *bq;
    ck_assert_int_eq(cb_open(C->name, &big, &bq), CB_CONFIG_UPDATED);
    cb_info q0, q1;
    ck_assert_int_eq(cb_get_info(bq, &q0), 0);
    ck_assert_int_eq(q0.state, CB_CLOSED);
    ck_assert_uint_eq(q0.failures, 0);
    quiet_start = tl_barrier_new(QUIET_K);
    pid_t qp[QUIET_K];
    for (unsigned i = 0; i < QUIET_K; i++) {
        unsigned flags = i % 2 ? WF_OPEN_BY_NAME : 0;
        qp[i] = fork();
        ck_assert_int_ge(qp[i], 0);
        if (qp[i] == 0)
            _exit(quiet_worker_main(bq, flags, &big));
    }
    for (unsigned i = 0; i < QUIET_K; i++)
        tl_wait_ok(qp[i]);
    ck_assert_msg(atomic_load(&C->worker_errors) == 0, "%s", C->msg);
    ck_assert_int_eq(cb_get_info(bq, &q1), 0);
    ck_assert_int_eq(q1.state, CB_CLOSED);
    ck_assert_msg(q1.failures == QUIET_K * QUIET_M, "after %u x %u failures the count is %u", QUIET_K, QUIET_M,
                  q1.failures);
    ck_assert_uint_eq(q1.counters.failures - q0.counters.failures, QUIET_K * QUIET_M);
    ck_assert_uint_eq(q1.counters.allowed - q0.counters.allowed, QUIET_K * QUIET_M);
    ck_assert_uint_eq(q1.counters.late, q0.counters.late);
    ck_assert_uint_eq(q1.counters.trips, q0.counters.trips);
    ck_assert_uint_eq(q1.generation, q0.generation);
    /* One more failure reaches the threshold: one trip, counting K*M+1. */
    cb_permit p;
    ck_assert_int_eq(cb_acquire(bq, &p), CB_ALLOWED);
    cb_failure(bq, &p);
    ck_assert_int_eq(cb_get_info(bq, &q1), 0);
    ck_assert_int_eq(q1.state, CB_OPEN);
    ck_assert_uint_eq(q1.counters.trips, q0.counters.trips + 1);
    ck_assert_uint_ge(q1.history_len, 1);
    ck_assert_int_eq(q1.history[0].reason, CB_REASON_THRESHOLD);
    ck_assert_uint_eq(q1.history[0].failures, QUIET_K * QUIET_M + 1u);
    ck_assert_int_eq(q1.history[0].pid, (int)getpid());
    printf("chaos: quiescent phase: %u processes x %u failures counted exactly (%u), one more tripped it\n",
           QUIET_K, QUIET_M, q1.history[0].failures - 1u);
    /* The original config back; the circuit still recovers. */
    cb_close(bq);
    ck_assert_int_eq(cb_open(C->name, &C->cfg, &bq), CB_CONFIG_UPDATED);
    tl_sleep_ms(rcfg->reset_timeout_ms + 2u * (unsigned)k->tick + 20u);
    ck_assert_int_eq(cb_acquire(bq, &p), CB_PROBE);
    cb_success(bq, &p);
    ck_assert_int_eq(cb_get_state(bq), CB_CLOSED);
    check_segment(k, &C->resolved);
    ck_assert_msg(!k->fail[0], "%s", k->fail);
    ck_assert_int_eq(cb_get_info(bq, &info), 0);
    c = info.counters;
    ck_assert_uint_ge(c.allowed, c.successes + c.failures + c.released + c.late);
    cb_close(bq);
    cb_close(k->b);
    ck_assert_int_eq(cb_unlink(C->name), 0);
}

/* Each run gets half of the duration. */
static unsigned run_seconds(void) { return chaos_seconds > 1 ? chaos_seconds / 2 : 1; }

START_TEST(test_chaos)
{
    const cb_config cfg = {.failure_threshold = THRESHOLD, .reset_timeout_ms = RESET_MS, .probe_timeout_ms = PROBE_MS};
    run_chaos(&cfg, run_seconds());
}
END_TEST

START_TEST(test_chaos_policies)
{
    const cb_config cfg = {.failure_threshold = POL_THRESHOLD,
                           .reset_timeout_ms = RESET_MS,
                           .probe_timeout_ms = PROBE_MS,
                           .failure_rate = POL_RATE,
                           .minimum_calls = POL_MIN_CALLS,
                           .window_ms = POL_WINDOW_MS,
                           .slow_call_ms = POL_SLOW_MS,
                           .slow_call_rate = POL_SLOW_RATE,
                           .backoff_multiplier_pct = POL_BACKOFF,
                           .max_reset_timeout_ms = POL_MAX_RESET_MS};
    run_chaos(&cfg, run_seconds());
}
END_TEST

/* The observer's rule itself, on made-up records: it must flag two live
 * leases and nothing else. */
START_TEST(test_observer_rule)
{
    const uint64_t pt = 20;
    /* Y granted while X's lease was certainly live. */
    ck_assert(po_pair_violates(1000, 1001, 1005, 1006, pt));
    ck_assert(po_pair_violates(1000, 1001, 1000, 1001, pt));
    /* Y's grant may have come after X's lease ran out. */
    ck_assert(!po_pair_violates(1000, 1001, 1019, 1020, pt));
    ck_assert(!po_pair_violates(1000, 1001, 1030, 1031, pt));
    /* X slow to note its grant: the order is unknown; legal if either works. */
    ck_assert(!po_pair_violates(1000, 1030, 1005, 1006, pt));
    ck_assert(!po_pair_violates(1005, 1006, 1000, 1030, pt));

    /* The whole path: slot 0 holds a fresh probe, slot 1 is granted one. */
    struct po *p = tl_shared(po_size(3));
    po_init(p, 3, pt);
    p->quiet = 1;
    struct po_ticket t;
    po_ticket_take(p, &t);
    ck_assert_uint_eq(po_granted(p, 0, &t, 1), 0);
    po_ticket_take(p, &t);
    ck_assert_uint_eq(po_granted(p, 1, &t, 2), 1);
    ck_assert_uint_eq(atomic_load(&p->violations), 1);
    po_scan_all(p);
    ck_assert_uint_eq(atomic_load(&p->violations), 2);
    ck_assert_ptr_nonnull(strstr(p->msg, "TWO LIVE PROBES"));
    /* After a report, or with an operator action in between: no verdict. */
    po_reporting(p, 1);
    po_scan_all(p);
    ck_assert_uint_eq(atomic_load(&p->violations), 2);
    po_op_begin(p);
    po_op_end(p);
    po_ticket_take(p, &t);
    t.ops = 0; /* as if taken before the operator acted */
    ck_assert_uint_eq(po_granted(p, 2, &t, 3), 0);
    ck_assert_uint_ge(atomic_load(&p->pairs_skipped_ops), 1);
    ck_assert_uint_eq(atomic_load(&p->violations), 2);
    /* A holder whose record is old: its lease has expired, no violation. */
    po_reporting(p, 2);
    po_reporting(p, 0);
    atomic_store(&p->slot[0].state, PO_HOLDING);
    atomic_store(&p->slot[0].before, po_coarse_ms() - 100);
    atomic_store(&p->slot[0].after, po_fine_ms() - 100);
    atomic_store(&p->slot[0].ops, atomic_load(&p->ops_done));
    po_ticket_take(p, &t);
    ck_assert_uint_eq(po_granted(p, 1, &t, 2), 0);
    ck_assert_uint_eq(atomic_load(&p->violations), 2);
}
END_TEST

static Suite *chaos_suite(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = tcase_create("observer");
    tcase_add_test(tc, test_observer_rule);
    suite_add_tcase(s, tc);
    tc = tcase_create("chaos");
    tcase_set_timeout(tc, (double)run_seconds() + 180.0);
    tcase_add_test(tc, test_chaos);
    suite_add_tcase(s, tc);
    tc = tcase_create("chaos-policies");
    tcase_set_timeout(tc, (double)run_seconds() + 180.0);
    tcase_add_test(tc, test_chaos_policies);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    const char *env = getenv("CB_CHAOS_SECONDS");
    if (env && *env)
        chaos_seconds = (unsigned)strtoul(env, NULL, 10);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            chaos_seconds = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strncmp(argv[i], "--seconds=", 10) == 0) {
            chaos_seconds = (unsigned)strtoul(argv[i] + 10, NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--seconds N]   (or CB_CHAOS_SECONDS=N; CB_CHAOS_SEED=N)\n", argv[0]);
            return 2;
        }
    }
    if (chaos_seconds == 0)
        chaos_seconds = 1;
    env = getenv("CB_CHAOS_SEED");
    chaos_seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    chaos_seed |= 1u;
    return tl_run_suite(chaos_suite());
}
