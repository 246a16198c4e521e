/*
 * measure.c - one timed measurement (a scenario, an implementation, P
 * processes, one round), the checks that the circuit counted every call,
 * and the statistics over rounds.
 *
 * A round forks P processes on the circuit the master opened. Each warms
 * up untimed, waits at the start barrier, then times a fixed number of
 * calls with CLOCK_MONOTONIC; the round's figure is the mean over the
 * processes of their ns per call (per-process cost), and the slowest
 * process is kept too. Each also reads its CPU time around the calls:
 * ns of CPU per call leaves out the time a process waited for a CPU
 * (other work on the machine, or P > CPUs), and the overlap (how long
 * all P ran at once) says whether they really competed. Where the implementation keeps counters (ours,
 * mutex) the master checks afterwards that every call was counted and,
 * for the failing scenario, that the shared failure count lost nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct timed_arg {
    enum scenario sc;
    long warmup, calls;
};

static int timed_child(struct circuit *c, struct run_shared *rs, int i, void *arg)
{
    const struct timed_arg *a = arg;
    struct proc_result *me = &rs->proc[i];
    me->unexpected = scenario_loop(c, a->sc, a->warmup);
    atomic_fetch_add_explicit(&rs->ready, 1, memory_order_acq_rel);
    wait_for_go(rs);
    uint64_t c0 = cpu_now_ns(), t0 = now_ns();
    long bad = scenario_loop(c, a->sc, a->calls);
    uint64_t t1 = now_ns(), c1 = cpu_now_ns();
    me->cpu_ns = c1 - c0;
    me->start_ns = t0;
    me->end_ns = t1;
    me->calls = a->calls;
    me->unexpected += bad;
    return 0;
}

/* Did the circuit count what the processes did? */
static void check_counts(struct measurement *m, const cb_counters *before, const cb_counters *after,
                         uint32_t failures, cb_state state, long per_proc)
{
    uint64_t total = (uint64_t)per_proc * (uint64_t)m->procs;
    uint64_t allowed = after->allowed - before->allowed, rejected = after->rejected - before->rejected;
    uint64_t successes = after->successes - before->successes;
    uint64_t failed = after->failures - before->failures;
    const char *why = NULL;
    switch (m->sc) {
    case SC_HEALTHY:
    case SC_HEALTHY_POL:
        if (allowed != total || successes != total || state != CB_CLOSED)
            why = "allowed/successes do not add up";
        break;
    case SC_REJECTED:
        if (rejected != total || state != CB_OPEN)
            why = "rejections do not add up";
        break;
    default:
        if (allowed != total || failed != total || failures != total || state != CB_CLOSED)
            why = "lost failures: the shared count is not the number reported";
        break;
    }
    if (why && !m->check_failed) {
        m->check_failed = 1;
        snprintf(m->check_note, sizeof m->check_note,
                 "%s (expected %llu; allowed %llu rejected %llu successes %llu failures %llu count %u)",
                 why, (unsigned long long)total, (unsigned long long)allowed,
                 (unsigned long long)rejected, (unsigned long long)successes,
                 (unsigned long long)failed, failures);
    }
}

int measure_round(struct circuit *c, struct measurement *m, const struct options *opt,
                  struct run_shared *rs)
{
    struct timed_arg a = {m->sc, opt->warmup, opt->calls};
    if (m->impl == IMPL_REDIS) {
        a.calls = opt->redis_calls;
        a.warmup = opt->redis_calls / 10;
    }
    m->calls = a.calls;
    scenario_prepare(c, m->sc);
    cb_counters before, after;
    uint32_t failures;
    cb_state state;
    int counted = circuit_counters(c, &before, &failures, &state) == 0;
    if (run_processes(c, m->procs, opt, timed_child, NULL, &a, rs) != 0)
        return -1;
    if (counted && circuit_counters(c, &after, &failures, &state) == 0)
        check_counts(m, &before, &after, failures, state, a.warmup + a.calls);
    double sum = 0, worst = 0, dur = 0, cpu = 0, share = 0;
    uint64_t first_start = UINT64_MAX, last_start = 0, first_end = UINT64_MAX, last_end = 0;
    for (int i = 0; i < m->procs; i++) {
        const struct proc_result *p = &rs->proc[i];
        double ns = (double)(p->end_ns - p->start_ns) / (double)p->calls;
        first_start = p->start_ns < first_start ? p->start_ns : first_start;
        last_start = p->start_ns > last_start ? p->start_ns : last_start;
        first_end = p->end_ns < first_end ? p->end_ns : first_end;
        last_end = p->end_ns > last_end ? p->end_ns : last_end;
        dur += (double)(p->end_ns - p->start_ns) / m->procs;
        sum += ns;
        cpu += (double)p->cpu_ns / (double)p->calls / m->procs;
        if (p->end_ns > p->start_ns)
            share += (double)p->cpu_ns / (double)(p->end_ns - p->start_ns) / m->procs;
        if (ns > worst)
            worst = ns;
        m->unexpected += rs->proc[i].unexpected;
    }
    m->round_ns[m->nrounds] = sum / m->procs;
    m->round_max_ns[m->nrounds] = worst;
    m->round_cpu_ns[m->nrounds] = cpu;
    m->round_cpu_share[m->nrounds] = share;
    /* Did the processes really run at the same time? 1.0: all the time. */
    m->round_overlap[m->nrounds] =
        first_end > last_start && dur > 0 ? (double)(first_end - last_start) / dur : 0.0;
    m->round_agg_ns[m->nrounds] = (double)(last_end - first_start) / ((double)a.calls * m->procs);
    m->nrounds++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median_of(const double *v, int n)
{
    if (n <= 0)
        return 0;
    double s[CBB_MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

void stats_fill(struct measurement *m)
{
    m->median = median_of(m->round_ns, m->nrounds);
    m->cpu_median = median_of(m->round_cpu_ns, m->nrounds);
    m->min = m->max = m->nrounds ? m->round_ns[0] : 0;
    for (int i = 1; i < m->nrounds; i++) {
        if (m->round_ns[i] < m->min)
            m->min = m->round_ns[i];
        if (m->round_ns[i] > m->max)
            m->max = m->round_ns[i];
    }
}

void storm_stats(struct storm_result *s)
{
    double v[CBB_MAX_ROUNDS];
    int n = 0;
    s->exactly_one_rounds = 0;
    for (int i = 0; i < s->nrounds; i++) {
        s->exactly_one_rounds += s->probes[i] == 1 && (s->info_probes[i] < 0 || s->info_probes[i] == 1);
        if (s->win_us[i] >= -1e9)
            v[n++] = s->win_us[i];
    }
    s->median_us = median_of(v, n);
    s->min_us = s->max_us = n ? v[0] : 0;
    for (int i = 1; i < n; i++) {
        if (v[i] < s->min_us)
            s->min_us = v[i];
        if (v[i] > s->max_us)
            s->max_us = v[i];
    }
}
