/*
 * probe.c - instruction counts of one call, from callgrind: a figure that
 * machine noise cannot move.
 *
 * `cbbench --probe SCENARIO --impl IMPL --calls N` opens one circuit in
 * this process, warms it up with 1000 calls, then runs N calls of the
 * scenario's loop (scenarios.c) and exits. `cbbench --callgrind` runs that
 * under `valgrind --tool=callgrind` twice, with N and 2N calls, and takes
 * (Ir(2N) - Ir(N)) / N: everything that does not depend on N (start-up,
 * opening, the warm-up, the stripe claim) cancels out exactly, and what is
 * left is the instructions of one loop iteration. Two views:
 *   whole  the loop iteration as a caller pays it: both calls, their PLT
 *          stubs, the verdict check and the loop itself;
 *   inside only inside the named library functions (--toggle-collect),
 *          without the PLT stubs and the caller's loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

int probe_main(enum impl impl, enum scenario sc, long calls, const struct options *opt)
{
    cb_config cfg = scenario_config(sc);
    struct circuit *c;
    if (circuit_open(impl, "probe", &cfg, NULL, opt, &c) != 0)
        return 1;
    scenario_prepare(c, sc);
    long bad = scenario_loop(c, sc, 1000);
    bad += scenario_loop(c, sc, calls);
    circuit_close(c);
    if (bad) {
        fprintf(stderr, "cbbench: probe: %ld unexpected verdicts\n", bad);
        return 1;
    }
    return 0;
}

/* Run callgrind on self --probe ...; the run's total Ir, or -1. */
static double callgrind_total(const char *self, enum impl impl, enum scenario sc, long calls,
                              const char *const *toggles)
{
    char out[64], calls_s[32];
    snprintf(out, sizeof out, "/tmp/cbbench-callgrind.%d", (int)getpid());
    snprintf(calls_s, sizeof calls_s, "%ld", calls);
    char out_opt[96];
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s", out);
    const char *argv[16];
    int k = 0;
    argv[k++] = "valgrind";
    argv[k++] = "--tool=callgrind";
    argv[k++] = out_opt;
    char toggle_opts[2][64];
    for (int t = 0; t < 2 && toggles[t]; t++) {
        snprintf(toggle_opts[t], sizeof toggle_opts[t], "--toggle-collect=%s", toggles[t]);
        argv[k++] = toggle_opts[t];
    }
    argv[k++] = self;
    argv[k++] = "--probe";
    argv[k++] = scenario_name(sc);
    argv[k++] = "--impl";
    argv[k++] = impl_name(impl);
    argv[k++] = "--calls";
    argv[k++] = calls_s;
    argv[k] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execvp("valgrind", (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    double total = -1;
    FILE *f = fopen(out, "re");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "summary:", 8) == 0 || strncmp(line, "totals:", 7) == 0)
            total = strtod(line + (line[0] == 's' ? 8 : 7), NULL);
    }
    if (f)
        fclose(f);
    unlink(out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return total;
}

int callgrind_run(const char *self, struct report *r)
{
    static const struct {
        enum impl impl;
        enum scenario sc;
        const char *toggles[2]; /* collect only inside these; none: all */
        const char *what;
    } runs[] = {
        {IMPL_OURS, SC_HEALTHY, {0}, "ours healthy: acquire+success, whole loop iteration"},
        {IMPL_OURS, SC_HEALTHY, {"cb_acquire", "cb_success"}, "ours healthy: inside cb_acquire+cb_success"},
        {IMPL_OURS, SC_HEALTHY, {"cb_acquire", 0}, "ours healthy: inside cb_acquire"},
        {IMPL_OURS, SC_HEALTHY, {"cb_success", 0}, "ours healthy: inside cb_success"},
        {IMPL_OURS, SC_REJECTED, {0}, "ours rejected: acquire, whole loop iteration"},
        {IMPL_OURS, SC_HEALTHY_POL, {0}, "ours healthy-pol: acquire+success, policies on, whole loop"},
        {IMPL_OURS, SC_HEALTHY_POL, {"cb_acquire", "cb_success"}, "ours healthy-pol: inside cb_acquire+cb_success"},
        {IMPL_OURS, SC_FAILING, {0}, "ours failing: acquire+failure, whole loop iteration"},
        {IMPL_PRIVATE, SC_HEALTHY, {0}, "private healthy: acquire+success, whole loop iteration"},
        {IMPL_MUTEX, SC_HEALTHY, {0}, "mutex healthy: acquire+success, whole loop iteration"},
    };
    const long n = 100000;
    int failed = 0;
    r->nprobes = 0;
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        double a = callgrind_total(self, runs[i].impl, runs[i].sc, n, runs[i].toggles);
        double b = callgrind_total(self, runs[i].impl, runs[i].sc, 2 * n, runs[i].toggles);
        struct probe_result *p = &r->probes[r->nprobes++];
        p->what = runs[i].what;
        p->ok = a >= 0 && b >= 0;
        p->ir_per_call = p->ok ? (b - a) / (double)n : 0;
        if (!p->ok) {
            fprintf(stderr, "cbbench: callgrind run failed (is valgrind installed?)\n");
            failed = 1;
            break;
        }
    }
    return failed ? -1 : 0;
}
