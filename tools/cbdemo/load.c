/*
 * load.c - the load generator: client processes that each send requests at
 * a steady rate (one connection per request, like a browser behind a
 * proxy), time every answer and sort it: from the upstream, from the
 * fallback because the circuit is open, from the fallback because the
 * upstream call failed, or lost (no complete answer in 3 s).
 *
 * The demo forks the clients itself; `cbdemo load` runs them alone
 * against a running cbdemo and prints its own per-second report.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbdemo.h"

#define ANSWER_TIMEOUT_MS 3000

static const char *const keys[] = {"shop", "api", "img", "auth", "cart", "search", "news", "video"};

const char *load_key(uint64_t n)
{
    return keys[n % (sizeof keys / sizeof keys[0])];
}

static volatile sig_atomic_t client_stop;

static void on_term(int sig)
{
    (void)sig;
    client_stop = 1;
}

static enum load_class one_request(unsigned port, const char *key)
{
    int fd = connect_tcp("127.0.0.1", port, ANSWER_TIMEOUT_MS);
    if (fd < 0)
        return LOAD_LOST;
    char line[512];
    int n = snprintf(line, sizeof line, "ROUTE %s\n", key);
    ssize_t r = write_all(fd, line, (size_t)n);
    if (r == 0)
        r = read_line(fd, line, sizeof line);
    close(fd);
    if (r <= 0 || line[r - 1] != '\n' || strncmp(line, "route=", 6) != 0)
        return LOAD_LOST;
    if (!strstr(line, " source=fallback"))
        return LOAD_UPSTREAM;
    return strstr(line, " reason=circuit_open") ? LOAD_FALLBACK_OPEN : LOAD_FALLBACK_ERROR;
}

static void client_main(const struct demo_options *o, struct demo_shared *sh, unsigned port, unsigned client)
{
    struct load_counters *lc = &sh->load;
    uint64_t period = (uint64_t)o->clients * 1000000000u / o->rate;
    uint64_t next = now_ns() + period * client / o->clients; /* clients staggered */
    for (uint64_t n = client; !client_stop && !atomic_load(&sh->stop); n += o->clients) {
        struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0 || client_stop || atomic_load(&sh->stop))
            continue; /* interrupted: the loop condition decides */
        uint64_t t0 = now_ns();
        enum load_class c = one_request(port, load_key(n));
        uint64_t us = (now_ns() - t0) / 1000;
        atomic_fetch_add(&lc->sent, 1);
        atomic_fetch_add(&lc->count[c], 1);
        atomic_max(&lc->max_us[c], us);
        next += period;
        uint64_t now = now_ns();
        if (now > next + 1000000000u) /* fell a second behind: do not burst to catch up */
            next = now;
    }
}

pid_t load_spawn(const struct demo_options *o, struct demo_shared *sh, unsigned port, unsigned client)
{
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0)
            perror("cbdemo: fork");
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGINT, SIG_IGN); /* the parent stops us */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (getppid() == 1)
        _exit(0);
    client_main(o, sh, port, client);
    _exit(0);
}

/* ---- `cbdemo load` ---- */

static volatile sig_atomic_t run_stop;

static void on_stop(int sig)
{
    (void)sig;
    run_stop = 1;
}

static void counts(const struct load_counters *lc, uint64_t out[LOAD_CLASSES + 1])
{
    for (int i = 0; i < LOAD_CLASSES; i++)
        out[i] = atomic_load(&lc->count[i]);
    out[LOAD_CLASSES] = atomic_load(&lc->sent);
}

int load_run(struct demo_options *o)
{
    struct demo_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("cbdemo load: mmap");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sh->start_ns = now_ns();
    say("cbdemo load: %u clients, %u requests/s in all, to 127.0.0.1:%u, %s\n", o->clients, o->rate, o->port,
        o->duration_s > 0 ? "until the duration ends" : "until Ctrl-C");
    pid_t pids[DEMO_MAX_CLIENTS];
    for (unsigned i = 0; i < o->clients; i++)
        pids[i] = load_spawn(o, sh, o->port, i);
    say("%6s %8s %9s %9s %9s %6s\n", "t(s)", "sent", "upstream", "fallback", "fb.error", "lost");
    uint64_t prev[LOAD_CLASSES + 1] = {0}, cur[LOAD_CLASSES + 1];
    uint64_t end = o->duration_s > 0 ? sh->start_ns + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
    for (unsigned sec = 1; !run_stop; sec++) {
        uint64_t at = sh->start_ns + (uint64_t)sec * 1000000000u;
        if (at > end)
            at = end;
        struct timespec ts = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)};
        while (!run_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        counts(&sh->load, cur);
        say("%6.2f %8llu %9llu %9llu %9llu %6llu\n", since_start_s(sh),
            (unsigned long long)(cur[LOAD_CLASSES] - prev[LOAD_CLASSES]),
            (unsigned long long)(cur[LOAD_UPSTREAM] - prev[LOAD_UPSTREAM]),
            (unsigned long long)(cur[LOAD_FALLBACK_OPEN] - prev[LOAD_FALLBACK_OPEN]),
            (unsigned long long)(cur[LOAD_FALLBACK_ERROR] - prev[LOAD_FALLBACK_ERROR]),
            (unsigned long long)(cur[LOAD_LOST] - prev[LOAD_LOST]));
        memcpy(prev, cur, sizeof prev);
        if (now_ns() >= end)
            break;
    }
    atomic_store(&sh->stop, 1);
    for (unsigned i = 0; i < o->clients; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    const struct load_counters *lc = &sh->load;
    counts(lc, cur);
    say("sent %llu: %llu from the upstream (slowest %.1f ms), %llu from the fallback with the circuit open "
        "(slowest %.1f ms), %llu after a failed upstream call, %llu lost\n",
        (unsigned long long)cur[LOAD_CLASSES], (unsigned long long)cur[LOAD_UPSTREAM],
        (double)atomic_load(&lc->max_us[LOAD_UPSTREAM]) / 1000, (unsigned long long)cur[LOAD_FALLBACK_OPEN],
        (double)atomic_load(&lc->max_us[LOAD_FALLBACK_OPEN]) / 1000, (unsigned long long)cur[LOAD_FALLBACK_ERROR],
        (unsigned long long)cur[LOAD_LOST]);
    munmap(sh, sizeof *sh);
    return 0;
}
