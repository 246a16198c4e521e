/*
 * main.c - cbbench: options, and the order of a run.
 *
 *   cbbench [--rounds N] [--calls N] [--warmup N] [--procs 1,2,4] [--pin]
 *           [--scenarios healthy,rejected,failing]
 *           [--redis HOST:PORT] [--redis-calls N] [--storm-rounds N]
 *           [--scale-circuits N] [--no-scale] [--host-shm] [--callgrind]
 *           [--callgrind-only] [--quick] [--json] [--json-file PATH]
 *   cbbench --probe healthy|healthy-pol|rejected|failing --impl ours|private|mutex
 *           --calls N                  (one loop in-process, for callgrind)
 *
 * A run: for each scenario (healthy, rejected, failing) and each process
 * count P, open one circuit per implementation, then for each round
 * measure every implementation in turn, so that noise on the machine
 * lands on all of them alike (healthy with the policies on, healthy-pol,
 * is measured in healthy's rounds, right after the same implementation
 * with them off, so the two are side by side); then the half-open storms, the scale
 * section, and (--callgrind) the instruction counts. Progress goes to
 * stderr; the table (or --json) to stdout.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baseline_redis.h"
#include "bench.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cbbench [options]\n"
            "  --rounds N          timed rounds per measurement (default 5)\n"
            "  --calls N           timed calls per process per round (default 2000000)\n"
            "  --warmup N          untimed calls before the start barrier (default calls/10)\n"
            "  --procs LIST        process counts, e.g. 1,2,4 (default 1..CPUs and 2 x CPUs)\n"
            "  --pin               pin process i to CPU i mod CPUs\n"
            "  --scenarios LIST    scenarios to time, e.g. healthy (default healthy,rejected,failing;\n"
            "                      healthy brings healthy-pol, the same with the policies on)\n"
            "  --redis HOST:PORT   add the Redis baseline (needs hiredis at build time)\n"
            "  --redis-calls N     calls per process per round for Redis (default 20000)\n"
            "  --storm-rounds N    rounds of each half-open storm (default 20)\n"
            "  --scale-circuits N  circuits in the scale section (default 10000)\n"
            "  --no-scale          skip the scale section\n"
            "  --host-shm          scale section in the host's /dev/shm, not a private tmpfs\n"
            "  --callgrind         also count instructions per call with valgrind\n"
            "  --callgrind-only    only count instructions per call (no timing)\n"
            "  --quick             a short smoke run (3 rounds, 200000 calls, 5 storms, 1000 circuits)\n"
            "  --json              print JSON instead of the table\n"
            "  --json-file PATH    also write the JSON to PATH\n"
            "  --probe SCENARIO --impl IMPL --calls N\n"
            "                      run one loop in this process (what --callgrind measures)\n");
}

static long number(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "cbbench: %s wants a number from %ld to %ld, not '%s'\n", opt, lo, hi, s);
        exit(2);
    }
    return v;
}

static int lookup(const char *s, const char *(*name)(int), int count)
{
    for (int i = 0; i < count; i++)
        if (strcmp(s, name(i)) == 0)
            return i;
    fprintf(stderr, "cbbench: unknown name '%s'\n", s);
    exit(2);
}

static const char *impl_name_i(int i) { return impl_name((enum impl)i); }
static const char *scenario_name_i(int i) { return scenario_name((enum scenario)i); }

static void find_cpus(struct options *o)
{
    cpu_set_t set;
    o->cpus = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE && o->cpus < CBB_MAX_PROCS; c++)
            if (CPU_ISSET(c, &set))
                o->cpu_ids[o->cpus++] = c;
    if (o->cpus == 0) {
        o->cpus = 1;
        o->cpu_ids[0] = 0;
    }
}

static void default_plist(struct options *o)
{
    o->nplist = 0;
    for (int p = 1; p <= o->cpus && o->nplist < CBB_MAX_PLIST - 1; p++)
        o->plist[o->nplist++] = p;
    if (2 * o->cpus <= CBB_MAX_PROCS)
        o->plist[o->nplist++] = 2 * o->cpus;
}

static void parse_plist(struct options *o, const char *s)
{
    o->nplist = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->nplist == CBB_MAX_PLIST) {
            fprintf(stderr, "cbbench: at most %d process counts\n", CBB_MAX_PLIST);
            exit(2);
        }
        o->plist[o->nplist++] = (int)number("--procs", t, 1, CBB_MAX_PROCS);
    }
    free(copy);
    if (!o->nplist)
        exit(2);
}

static unsigned parse_scenarios(const char *s)
{
    unsigned mask = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        mask |= 1u << lookup(t, scenario_name_i, SC_COUNT);
    free(copy);
    if (mask & (1u << SC_HEALTHY_POL)) /* measured beside healthy */
        mask |= 1u << SC_HEALTHY;
    return mask;
}

static void parse_redis(struct options *o, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) {
        fprintf(stderr, "cbbench: --redis wants HOST:PORT\n");
        exit(2);
    }
    o->redis_host = strndup(s, (size_t)(colon - s));
    o->redis_port = (int)number("--redis", colon + 1, 1, 65535);
}

int main(int argc, char **argv)
{
    struct options o = {.rounds = 5, .storm_rounds = 20, .calls = 2000000, .warmup = -1,
                        .redis_calls = 20000, .scale = 1, .scale_circuits = 10000, .scenarios = ~0u};
    const char *json_file = NULL;
    int callgrind = 0, probe_sc = -1, probe_impl = IMPL_OURS, plist_given = 0;
    find_cpus(&o);
    default_plist(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VALUE() (v ? (i++, v) : (fprintf(stderr, "cbbench: %s wants a value\n", a), exit(2), ""))
        if (!strcmp(a, "--rounds"))
            o.rounds = (int)number(a, VALUE(), 1, CBB_MAX_ROUNDS);
        else if (!strcmp(a, "--calls"))
            o.calls = number(a, VALUE(), 1, LONG_MAX / 4);
        else if (!strcmp(a, "--warmup"))
            o.warmup = number(a, VALUE(), 0, LONG_MAX / 4);
        else if (!strcmp(a, "--procs"))
            parse_plist(&o, VALUE()), plist_given = 1;
        else if (!strcmp(a, "--pin"))
            o.pin = 1;
        else if (!strcmp(a, "--scenarios"))
            o.scenarios = parse_scenarios(VALUE());
        else if (!strcmp(a, "--redis"))
            parse_redis(&o, VALUE());
        else if (!strcmp(a, "--redis-calls"))
            o.redis_calls = number(a, VALUE(), 1, 100000000);
        else if (!strcmp(a, "--storm-rounds"))
            o.storm_rounds = (int)number(a, VALUE(), 0, CBB_MAX_ROUNDS);
        else if (!strcmp(a, "--scale-circuits"))
            o.scale_circuits = (int)number(a, VALUE(), 1, 1000000);
        else if (!strcmp(a, "--no-scale"))
            o.scale = 0;
        else if (!strcmp(a, "--host-shm"))
            o.host_shm = 1;
        else if (!strcmp(a, "--callgrind"))
            callgrind = 1;
        else if (!strcmp(a, "--callgrind-only"))
            callgrind = 2;
        else if (!strcmp(a, "--quick"))
            o.rounds = 3, o.calls = 200000, o.storm_rounds = 5, o.scale_circuits = 1000, o.redis_calls = 2000;
        else if (!strcmp(a, "--json"))
            o.json = 1;
        else if (!strcmp(a, "--json-file"))
            json_file = VALUE();
        else if (!strcmp(a, "--probe"))
            probe_sc = lookup(VALUE(), scenario_name_i, SC_COUNT);
        else if (!strcmp(a, "--impl"))
            probe_impl = lookup(VALUE(), impl_name_i, IMPL_COUNT);
        else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return usage(stdout), 0;
        else
            return usage(stderr), 2;
#undef VALUE
    }
    (void)plist_given;
    if (o.warmup < 0)
        o.warmup = o.calls / 10;
    if (o.redis_host && !rd_available()) {
        fprintf(stderr, "cbbench: built without hiredis: --redis is not available "
                        "(install libhiredis-dev and reconfigure)\n");
        return 2;
    }
    if (probe_sc >= 0) {
        if (probe_impl == IMPL_REDIS && !o.redis_host)
            return fprintf(stderr, "cbbench: --impl redis needs --redis\n"), 2;
        return probe_main((enum impl)probe_impl, (enum scenario)probe_sc, o.calls, &o);
    }

    int nimpl = o.redis_host ? IMPL_COUNT : IMPL_REDIS;
    struct report r = {.opt = &o};
    r.m = calloc((size_t)(SC_COUNT * o.nplist * nimpl), sizeof *r.m);
    r.storms = calloc((size_t)(STORM_CLOCK_COUNT * o.nplist * nimpl), sizeof *r.storms);
    struct run_shared *rs = shared_alloc(sizeof *rs);
    if (!r.m || !r.storms) {
        free(r.m);
        free(r.storms);
        return 1;
    }
    int failed = 0;

    if (callgrind == 2)
        o.scale = o.storm_rounds = 0;
    for (int sc = 0; sc < SC_COUNT && !failed && callgrind != 2; sc++) {
        /* A group of scenarios measured in the same rounds: healthy and
         * healthy-pol, else the scenario alone. */
        if (sc == SC_HEALTHY_POL || !(o.scenarios & (1u << sc)))
            continue;
        enum scenario group[2] = {(enum scenario)sc, SC_HEALTHY_POL};
        int ng = sc == SC_HEALTHY ? 2 : 1;
        struct circuit *c[2][IMPL_COUNT] = {{0}};
        for (int g = 0; g < ng; g++) {
            cb_config cfg = scenario_config(group[g]);
            for (int i = 0; i < nimpl && !failed; i++)
                if (scenario_runs(group[g], (enum impl)i))
                    failed = circuit_open((enum impl)i, scenario_name(group[g]), &cfg, NULL, &o, &c[g][i]) != 0;
        }
        for (int p = 0; p < o.nplist && !failed; p++) {
            struct measurement *m[2][IMPL_COUNT] = {{0}};
            for (int g = 0; g < ng; g++)
                for (int i = 0; i < nimpl; i++)
                    if (c[g][i]) {
                        m[g][i] = &r.m[r.nm++];
                        *m[g][i] = (struct measurement){.sc = group[g], .impl = (enum impl)i,
                                                        .procs = o.plist[p]};
                    }
            fprintf(stderr, "cbbench: %s%s, %d process%s:", scenario_name(group[0]),
                    ng > 1 ? " (policies off and on)" : "", o.plist[p], o.plist[p] > 1 ? "es" : "");
            for (int round = 0; round < o.rounds && !failed; round++) {
                for (int i = 0; i < nimpl && !failed; i++)
                    for (int g = 0; g < ng && !failed; g++)
                        if (m[g][i])
                            failed = measure_round(c[g][i], m[g][i], &o, rs) != 0;
                fprintf(stderr, " %d", round + 1);
            }
            fprintf(stderr, "\n");
            for (int g = 0; g < ng; g++)
                for (int i = 0; i < nimpl; i++)
                    if (m[g][i])
                        stats_fill(m[g][i]);
        }
        for (int g = 0; g < ng; g++)
            for (int i = 0; i < nimpl; i++)
                circuit_close(c[g][i]);
    }

    for (int clock = 0; clock < STORM_CLOCK_COUNT && !failed && o.storm_rounds > 0; clock++)
        for (int p = 0; p < o.nplist && !failed; p++) {
            if (o.plist[p] < 2)
                continue;
            fprintf(stderr, "cbbench: half-open storm, %s clock, %d processes\n",
                    clock == STORM_INJECTED ? "injected" : "coarse", o.plist[p]);
            for (int i = 0; i < nimpl && !failed; i++)
                failed = storm_run((enum impl)i, (enum storm_clock)clock, o.plist[p], &o,
                                   &r.storms[r.nstorms++]) != 0;
        }

    if (o.scale && !failed) {
        fprintf(stderr, "cbbench: scale, %d circuits\n", o.scale_circuits);
        failed = scale_run(&o, &r.scale) != 0;
    }
    if (callgrind && !failed) {
        char self[PATH_MAX];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0)
            return perror("cbbench: /proc/self/exe"), 1;
        self[len] = '\0';
        fprintf(stderr, "cbbench: callgrind instruction counts\n");
        failed = callgrind_run(self, &r) != 0;
    }

    if (o.json)
        report_json(stdout, &r);
    else
        report_table(stdout, &r);
    if (json_file) {
        FILE *jf = fopen(json_file, "w");
        if (!jf || (report_json(jf, &r), fclose(jf)) != 0) {
            fprintf(stderr, "cbbench: %s: %s\n", json_file, strerror(errno));
            failed = 1;
        }
    }
    shared_free(rs, sizeof *rs);
    free(r.m);
    free(r.storms);
    if (failed)
        fprintf(stderr, "cbbench: the run did not complete\n");
    return failed ? 1 : 0;
}
