/*
 * bench.h - what the files of cbbench share: options, the implementations
 * under test behind one small interface, the process harness, results.
 *
 * cbbench measures cbreaker ("ours": cb_open, one circuit in shared memory)
 * against the designs a user would otherwise pick, in one run, with the
 * same scenarios and the same state machine:
 *   private  cb_open_private: the same code on process-private memory,
 *            one breaker per worker (the lower bound);
 *   mutex    the same rules in shared memory behind a robust process-shared
 *            pthread mutex (baseline_mutex.c);
 *   redis    count and state in Redis, GET/SET/INCR as pybreaker does
 *            (baseline_redis.c; only with --redis and hiredis).
 *
 * Files: main.c (options, order of the run), harness.c (forked processes
 * on a start barrier, pinning, clocks), circuits.c (one interface over the
 * four implementations; circuit.h its struct), scenarios.c (the timed
 * loops), measure.c (one timed round, count checks, statistics), storm.c
 * (the half-open storm), scale.c (many circuits), probe.c (callgrind
 * instruction counts), report.c (table, JSON, targets, machine),
 * baseline_mutex.c, baseline_redis.c (baseline_redis_none.c without
 * hiredis).
 */
#ifndef CBBENCH_H
#define CBBENCH_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <cbreaker.h>

#define CBB_MAX_PROCS 64
#define CBB_MAX_ROUNDS 100
#define CBB_MAX_PLIST 16

enum impl { IMPL_OURS, IMPL_PRIVATE, IMPL_MUTEX, IMPL_REDIS, IMPL_COUNT };
/* SC_HEALTHY_POL: healthy with the rate policies on (issue 10); measured
 * in the same rounds as SC_HEALTHY, by the implementations that have them. */
enum scenario { SC_HEALTHY, SC_HEALTHY_POL, SC_REJECTED, SC_FAILING, SC_COUNT };
enum storm_clock { STORM_INJECTED, STORM_COARSE, STORM_CLOCK_COUNT };

struct options {
    int rounds;             /* timed rounds per measurement */
    int storm_rounds;       /* rounds per half-open storm */
    long calls;             /* timed calls per process per round */
    long warmup;            /* untimed calls before the start barrier */
    long redis_calls;       /* the same for the Redis baseline */
    int pin;                /* pin process i to CPU i mod CPUs */
    int json;               /* JSON on stdout instead of the table */
    int scale;              /* run the scale section */
    int scale_circuits;     /* circuits in the scale section */
    int host_shm;           /* use the host's /dev/shm, not a private tmpfs */
    const char *redis_host; /* NULL: no Redis baseline */
    int redis_port;
    unsigned scenarios;     /* bit (1 << sc) set: run scenario sc */
    int nplist;             /* process counts to run */
    int plist[CBB_MAX_PLIST];
    int cpus;               /* CPUs this process may run on */
    int cpu_ids[CBB_MAX_PROCS];
};

/* ---- clocks --------------------------------------------------------- */

/* A clock in shared memory that the bench moves by hand (cb_set_clock). */
struct bench_clock {
    _Atomic uint64_t now_ms;
};
uint64_t bench_clock_read(void *clock);
uint64_t now_ns(void); /* CLOCK_MONOTONIC */
uint64_t cpu_now_ns(void); /* CLOCK_PROCESS_CPUTIME_ID: excludes waiting for a CPU */
/* MAP_SHARED | MAP_ANONYMOUS, zeroed, inherited across fork; exits on error. */
void *shared_alloc(size_t size);
void shared_free(void *p, size_t size);

/* ---- implementations (circuits.c) ----------------------------------- */

struct circuit; /* one implementation's circuit, opened by the master */

typedef struct bench_permit {
    cb_permit cb;  /* ours, private */
    uint64_t aux;  /* mutex and redis: generation / kind */
} bench_permit;

const char *impl_name(enum impl impl);
/* Open a circuit of impl. clock NULL: the coarse monotonic clock. */
int circuit_open(enum impl impl, const char *label, const cb_config *cfg, struct bench_clock *clock,
                 const struct options *opt, struct circuit **out);
void circuit_close(struct circuit *c); /* and unlink / delete its keys */
void circuit_reset(struct circuit *c); /* CLOSED, count 0 */
void circuit_trip(struct circuit *c);  /* OPEN now */
/* In a forked child, before its first call (Redis connects here). */
int circuit_child_init(struct circuit *c);
void circuit_child_fini(struct circuit *c);
/* Totals the circuit itself keeps, for the checks after a run. 0, or -1
 * if the implementation cannot tell (private, redis). */
int circuit_counters(struct circuit *c, cb_counters *out, uint32_t *failures, cb_state *state);
/* Calls through the uniform interface (setup and storm only: the timed
 * loops in scenarios.c call each implementation directly). */
cb_verdict circuit_acquire(struct circuit *c, bench_permit *p);
void circuit_success(struct circuit *c, bench_permit *p);
void circuit_failure(struct circuit *c, bench_permit *p);

/* ---- scenarios.c ---------------------------------------------------- */

const char *scenario_name(enum scenario sc);
/* Run n calls of scenario sc; returns how many verdicts were not the
 * expected one (0 when all is well). */
long scenario_loop(struct circuit *c, enum scenario sc, long n);
/* Put the circuit in the state sc starts from. */
void scenario_prepare(struct circuit *c, enum scenario sc);
/* The config sc's circuit is opened with. */
cb_config scenario_config(enum scenario sc);
/* Does impl run scenario sc? (mutex and redis have no policies) */
int scenario_runs(enum scenario sc, enum impl impl);

/* ---- harness.c ------------------------------------------------------ */

struct proc_result {
    uint64_t start_ns, end_ns; /* around the timed calls */
    uint64_t cpu_ns;           /* CPU time this process spent in them */
    long calls;
    long unexpected;           /* verdicts not as the scenario expects */
    long probes;               /* storm: CB_PROBE verdicts */
    long calls_after_win;      /* storm: calls made after a probe was seen */
    uint64_t win_ns;           /* storm: when this process won the probe */
    int pid;
    int cpu;                   /* CPU it was pinned to, -1 if not */
    int ok;                    /* 1 when the child finished its work */
};

struct run_shared {
    _Atomic int ready;         /* children past warm-up */
    _Atomic int go;            /* set by the master: start the timed calls */
    _Atomic int done;          /* storm: a probe was granted */
    _Atomic uint64_t winner_pid;
    struct proc_result proc[CBB_MAX_PROCS];
};

/* What a child does; returns 0 on success. i is the child's index. */
typedef int (*child_fn)(struct circuit *c, struct run_shared *rs, int i, void *arg);
/* Called by the master once every child is ready (before go is set). */
typedef void (*master_fn)(struct run_shared *rs, void *arg);

/* Fork nprocs children running fn, let them start together, wait for all;
 * rs is filled. Returns 0, or -1 if a child failed (message printed). */
int run_processes(struct circuit *c, int nprocs, const struct options *opt, child_fn fn,
                  master_fn at_ready, void *arg, struct run_shared *rs);
/* Spin until the master sets go. */
void wait_for_go(struct run_shared *rs);

/* ---- results -------------------------------------------------------- */

struct measurement {
    enum scenario sc;
    enum impl impl;
    int procs;
    int nrounds;
    long calls;
    double round_ns[CBB_MAX_ROUNDS];     /* mean over processes of ns/call */
    double round_max_ns[CBB_MAX_ROUNDS]; /* slowest process */
    double round_overlap[CBB_MAX_ROUNDS]; /* time all P ran at once / mean run */
    double round_agg_ns[CBB_MAX_ROUNDS]; /* wall time of the round / all calls */
    double round_cpu_ns[CBB_MAX_ROUNDS]; /* mean over processes of CPU ns/call */
    double round_cpu_share[CBB_MAX_ROUNDS]; /* mean of CPU time / wall time: 1.0 = a CPU each */
    double cpu_median;
    double median, min, max;
    long unexpected;
    int check_failed;                    /* counters did not add up */
    char check_note[160];
};

struct storm_result {
    enum impl impl;
    enum storm_clock clock;
    int procs;
    int nrounds;
    int probes[CBB_MAX_ROUNDS];      /* probes granted in the round */
    int info_probes[CBB_MAX_ROUNDS]; /* as the circuit's own counters say (-1: n/a) */
    double win_us[CBB_MAX_ROUNDS];   /* time from "timeout passed" to the win */
    double median_us, min_us, max_us;
    int exactly_one_rounds;          /* rounds with exactly one probe */
    int failed;                      /* a process failed */
};

struct scale_result {
    int ran;
    int private_tmpfs;
    int circuits;
    uint64_t segment_bytes;      /* cb_info.segment_size */
    uint64_t segment_mem_bytes;  /* tmpfs blocks of one segment */
    double create_us;            /* cb_open of a new name, each */
    double attach_us;            /* cb_attach + cb_close of an existing one */
    double open_existing_us;     /* cb_open(cfg) + cb_close of an existing one */
    double list_s;               /* cb_list over all of them */
    int list_seen, list_errors;
    uint64_t mem_bytes;          /* tmpfs used by all of them */
    long held_rss_kb;            /* one process with all of them attached and used */
    long held_pte_kb;            /* its page tables for them */
    double unlink_us;
    int left_over;               /* cbreaker.* objects after unlinking */
};

struct probe_result {
    const char *what;
    double ir_per_call;
    int ok;
};

struct report {
    struct options *opt;
    int private_shm;
    struct measurement *m;
    int nm;
    struct storm_result *storms;
    int nstorms;
    struct scale_result scale;
    struct probe_result probes[16];
    int nprobes;
};

/* measure.c: one round of m (appends to m->round_ns). 0 or -1. */
int measure_round(struct circuit *c, struct measurement *m, const struct options *opt,
                  struct run_shared *rs);

void stats_fill(struct measurement *m);
void storm_stats(struct storm_result *s);
double median_of(const double *v, int n);

/* ---- storm.c, scale.c, probe.c, report.c ---------------------------- */

int storm_run(enum impl impl, enum storm_clock clock, int procs, const struct options *opt,
              struct storm_result *out);
int scale_run(const struct options *opt, struct scale_result *out);
/* --probe mode: run one loop in this process (for callgrind). */
int probe_main(enum impl impl, enum scenario sc, long calls, const struct options *opt);
/* --callgrind: run valgrind on ourselves and fill r->probes. */
int callgrind_run(const char *self, struct report *r);
void report_table(FILE *f, const struct report *r);
void report_json(FILE *f, const struct report *r);

#endif
