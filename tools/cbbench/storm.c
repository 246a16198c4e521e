/*
 * storm.c - the half-open storm: P processes hammer cb_acquire on an OPEN
 * circuit whose reset timeout is about to pass. Measured: the time from
 * the moment the timeout passes until one process holds the probe, and
 * how many probes were granted (must be exactly one, every round).
 *
 * Two clocks:
 *   injected  the circuit reads a clock in shared memory (cb_set_clock);
 *             the master moves it past the reset timeout at a known
 *             CLOCK_MONOTONIC instant while every process is spinning, so
 *             the figure is the pure hand-over cost under contention;
 *   coarse    the real CLOCK_MONOTONIC_COARSE, as in production: the
 *             master trips the circuit, notes when the timeout will pass,
 *             and the figure includes the clock's tick (the library pads
 *             every timeout by one tick so that a probe is never early).
 *
 * After a win (or once it sees another's win) every process keeps calling
 * for a while, so a second grant would be caught. The count comes from the
 * processes themselves and, for ours and mutex, also from the circuit's
 * own probe counter, read by the master afterwards. The private baseline
 * grants one probe per process by design: each worker has its own circuit.
 */
#include <stdio.h>
#include <time.h>

#include "bench.h"

#define INJECTED_RESET_MS 1000u
#define COARSE_RESET_MS 30u
#define STORM_DEADLINE_NS (5ull * 1000000000ull)

struct storm_arg {
    enum storm_clock clock;
    struct bench_clock *bclock;
    uint64_t base_ms;     /* injected: the trip time on the shared clock */
    uint64_t passes_ns;   /* CLOCK_MONOTONIC instant the timeout passes */
    long after;           /* calls each process makes after the win */
    int late;             /* coarse: the processes were not all spinning in time */
};

static int storm_child(struct circuit *c, struct run_shared *rs, int i, void *arg)
{
    const struct storm_arg *a = arg;
    struct proc_result *me = &rs->proc[i];
    long calls = 0, after = 0;
    uint64_t start = now_ns();
    atomic_fetch_add_explicit(&rs->ready, 1, memory_order_acq_rel);
    for (;;) {
        bench_permit p;
        cb_verdict v = circuit_acquire(c, &p);
        calls++;
        if (v == CB_PROBE) {
            if (me->probes++ == 0)
                me->win_ns = now_ns();
            atomic_store_explicit(&rs->done, 1, memory_order_release);
        } else if (v == CB_ALLOWED) {
            me->unexpected++;
        }
        if (atomic_load_explicit(&rs->done, memory_order_acquire) && ++after >= a->after)
            break;
        if ((calls & 255) == 0 && now_ns() - start > STORM_DEADLINE_NS) {
            fprintf(stderr, "cbbench: storm: no probe within 5 s\n");
            break;
        }
    }
    me->calls = calls;
    me->calls_after_win = after;
    return 0; /* the probe is never reported: its lease keeps the others out */
}

/* All processes spin on acquire: let the reset timeout pass. */
static void storm_master(struct run_shared *rs, void *arg)
{
    struct storm_arg *a = arg;
    if (a->clock == STORM_INJECTED) {
        struct timespec nap = {0, 2000000}; /* let every process reach its loop */
        nanosleep(&nap, NULL);
        a->passes_ns = now_ns();
        atomic_store_explicit(&a->bclock->now_ms, a->base_ms + INJECTED_RESET_MS, memory_order_release);
    } else {
        a->late = now_ns() >= a->passes_ns;
    }
    atomic_store_explicit(&rs->go, 1, memory_order_release);
}

int storm_run(enum impl impl, enum storm_clock clock, int procs, const struct options *opt,
              struct storm_result *out)
{
    struct bench_clock *bclock = shared_alloc(sizeof *bclock);
    struct run_shared *rs = shared_alloc(sizeof *rs);
    cb_config cfg = {.failure_threshold = 3,
                     .reset_timeout_ms = clock == STORM_INJECTED ? INJECTED_RESET_MS : COARSE_RESET_MS,
                     .probe_timeout_ms = 3600000}; /* the lease outlives the round */
    struct storm_arg a = {.clock = clock, .bclock = bclock, .base_ms = 1000000,
                         .after = impl == IMPL_REDIS ? 50 : 20000};
    struct circuit *c = NULL;
    char label[32];
    snprintf(label, sizeof label, "storm%d-%s", procs, clock == STORM_INJECTED ? "inj" : "coarse");
    out->impl = impl;
    out->clock = clock;
    out->procs = procs;
    out->nrounds = 0;
    atomic_store(&bclock->now_ms, a.base_ms);
    int rc = circuit_open(impl, label, &cfg, clock == STORM_INJECTED ? bclock : NULL, opt, &c);
    for (int r = 0; rc == 0 && r < opt->storm_rounds && r < CBB_MAX_ROUNDS; r++) {
        a.base_ms += 100000; /* each round trips at a fresh time */
        atomic_store(&bclock->now_ms, a.base_ms);
        circuit_reset(c);
        cb_counters before, after;
        uint32_t failures;
        cb_state state;
        int counted = circuit_counters(c, &before, &failures, &state) == 0;
        circuit_trip(c);
        a.late = 0;
        if (clock == STORM_COARSE)
            a.passes_ns = now_ns() + (uint64_t)COARSE_RESET_MS * 1000000u;
        if (run_processes(c, procs, opt, storm_child, storm_master, &a, rs) != 0) {
            out->failed = 1;
            rc = -1;
            break;
        }
        int probes = 0;
        uint64_t win = 0;
        for (int i = 0; i < procs; i++) {
            probes += (int)rs->proc[i].probes;
            if (rs->proc[i].probes && (!win || rs->proc[i].win_ns < win))
                win = rs->proc[i].win_ns;
            if (rs->proc[i].unexpected)
                out->failed = 1;
        }
        out->probes[r] = probes;
        out->info_probes[r] = -1;
        if (counted && circuit_counters(c, &after, &failures, &state) == 0)
            out->info_probes[r] = (int)(after.probes - before.probes);
        out->win_us[r] = win && !a.late ? ((double)win - (double)a.passes_ns) / 1000.0 : -1e18;
        out->nrounds++;
    }
    circuit_close(c);
    storm_stats(out);
    shared_free(rs, sizeof *rs);
    shared_free(bclock, sizeof *bclock);
    return rc;
}
