/*
 * prefork-demo.c - a pre-fork pool sharing one circuit, on screen.
 *
 * The master opens circuit "demo-PID" and forks four workers that call a
 * simulated dependency through it. The dependency is up, goes down for a
 * few seconds, then comes back. Each transition is printed by the worker
 * whose compare-and-swap made it (cb_log_listener), and the master prints
 * a timeline from the circuit's counters: the pool trips together after
 * `threshold` failures, rejects while OPEN, sends exactly one probe per
 * reset window, and closes again once the dependency answers.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"

#define WORKERS 4
#define RUN_MS 7000
#define DOWN_FROM_MS 1500
#define DOWN_UNTIL_MS 4500

struct dependency {
    volatile int up;
    _Atomic unsigned long calls; /* calls that reached the dependency */
    _Atomic unsigned long calls_while_down;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* One request: go through the breaker, or answer from the fallback. */
static void serve_one(cb_breaker *b, struct dependency *dep)
{
    cb_permit permit;
    if (cb_acquire(b, &permit) == CB_REJECTED) {
        sleep_ms(5); /* the fallback answer */
        return;
    }
    dep->calls++;
    if (!dep->up)
        dep->calls_while_down++;
    sleep_ms(10); /* the dependency's latency */
    if (dep->up)
        cb_success(b, &permit);
    else
        cb_failure(b, &permit);
}

static void worker(cb_breaker *b, struct dependency *dep)
{
    cb_set_listener(b, cb_log_listener, NULL);
    for (;;)
        serve_one(b, dep);
}

int main(void)
{
    char name[64];
    snprintf(name, sizeof name, "demo-%d", (int)getpid());
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 500};
    cb_breaker *b;
    int rc = cb_open(name, &cfg, &b);
    if (rc < 0) {
        fprintf(stderr, "prefork-demo: cannot open circuit %s: %s\n", name, cb_strerror(rc));
        return 1;
    }
    struct dependency *dep = mmap(NULL, sizeof *dep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (dep == MAP_FAILED) {
        perror("prefork-demo: mmap");
        return 1;
    }
    dep->up = 1;
    printf("circuit %s: threshold %u, reset timeout %u ms, %d workers; dependency down from %.1f s to %.1f s\n",
           name, cfg.failure_threshold, cfg.reset_timeout_ms, WORKERS, DOWN_FROM_MS / 1000.0, DOWN_UNTIL_MS / 1000.0);
    fflush(stdout);

    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            worker(b, dep); /* the handle opened before fork() is shared */
            _exit(0);
        }
    }
    long start = now_ms();
    printf("%6s %-10s %-9s %9s %9s %9s %7s\n", "t(s)", "dependency", "state", "allowed", "rejected", "dep.calls", "probes");
    for (long t = 0; t < RUN_MS; t = now_ms() - start) {
        dep->up = !(t >= DOWN_FROM_MS && t < DOWN_UNTIL_MS);
        cb_info info;
        cb_get_info(b, &info);
        printf("%6.2f %-10s %-9s %9llu %9llu %9lu %7llu\n", t / 1000.0, dep->up ? "up" : "DOWN",
               cb_state_name(info.state), (unsigned long long)info.counters.allowed,
               (unsigned long long)info.counters.rejected, (unsigned long)dep->calls,
               (unsigned long long)info.counters.probes);
        fflush(stdout);
        sleep_ms(250);
    }
    for (int i = 0; i < WORKERS; i++) {
        kill(pids[i], SIGTERM);
        waitpid(pids[i], NULL, 0);
    }
    cb_info info;
    cb_get_info(b, &info);
    printf("\nduring the %d ms outage the pool of %d workers made %lu calls to the dependency "
           "(threshold %u + one probe per %u ms window), trips %llu, probes %llu\n",
           DOWN_UNTIL_MS - DOWN_FROM_MS, WORKERS, (unsigned long)dep->calls_while_down, cfg.failure_threshold,
           cfg.reset_timeout_ms, (unsigned long long)info.counters.trips, (unsigned long long)info.counters.probes);
    printf("history (newest first):\n");
    for (unsigned i = 0; i < info.history_len; i++)
        printf("  %-9s -> %-9s %-22s pid %d\n", cb_state_name(info.history[i].from),
               cb_state_name(info.history[i].to), cb_reason_name(info.history[i].reason), (int)info.history[i].pid);
    cb_close(b);
    cb_unlink(name);
    return 0;
}
