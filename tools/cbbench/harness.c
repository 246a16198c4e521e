/*
 * harness.c - forked processes started together, pinned if asked, timed
 * with CLOCK_MONOTONIC; the shared clock the storms move by hand.
 *
 * run_processes() forks the children (they inherit the circuit the master
 * opened, as a pre-fork server's workers do). Each child pins itself,
 * warms up untimed, then says it is ready and spins (yielding) until the
 * master sets go, so the timed parts overlap; it timestamps its own calls
 * and writes its figures into the shared run_shared, then exits. The
 * master sleeps while they run and checks every child's exit status.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_clock_read(void *clock)
{
    return atomic_load_explicit(&((struct bench_clock *)clock)->now_ms, memory_order_acquire);
}

void *shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("cbbench: mmap");
        exit(1);
    }
    return p; /* fresh anonymous pages are zero */
}

void shared_free(void *p, size_t size) { munmap(p, size); }

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

void wait_for_go(struct run_shared *rs)
{
    while (!atomic_load_explicit(&rs->go, memory_order_acquire))
        sched_yield();
}

static int pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

int run_processes(struct circuit *c, int nprocs, const struct options *opt, child_fn fn,
                  master_fn at_ready, void *arg, struct run_shared *rs)
{
    pid_t pids[CBB_MAX_PROCS];
    memset(rs, 0, sizeof *rs);
    fflush(NULL);
    for (int i = 0; i < nprocs; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("cbbench: fork");
            for (int j = 0; j < i; j++)
                kill(pids[j], SIGKILL);
            for (int j = 0; j < i; j++)
                waitpid(pids[j], NULL, 0);
            return -1;
        }
        if (pid == 0) {
            rs->proc[i].pid = (int)getpid();
            rs->proc[i].cpu = -1;
            if (opt->pin) {
                int cpu = opt->cpu_ids[i % opt->cpus];
                if (pin_to(cpu) == 0)
                    rs->proc[i].cpu = cpu;
            }
            int rc = circuit_child_init(c);
            if (rc == 0)
                rc = fn(c, rs, i, arg);
            circuit_child_fini(c);
            rs->proc[i].ok = rc == 0;
            _exit(rc == 0 ? 0 : 1);
        }
        pids[i] = pid;
    }
    /* Everyone warmed up and waiting: start them together. A child may
     * finish before the others are ready (a storm's winner can); only one
     * that fails, or exits without having got ready, stops the run. */
    int failed = 0, status[CBB_MAX_PROCS], reaped[CBB_MAX_PROCS] = {0};
    while (!failed && atomic_load_explicit(&rs->ready, memory_order_acquire) < nprocs) {
        int st;
        pid_t gone = waitpid(-1, &st, WNOHANG);
        for (int i = 0; i < nprocs && gone > 0; i++)
            if (pids[i] == gone) {
                reaped[i] = 1;
                status[i] = st;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !rs->proc[i].ok) {
                    failed = 1;
                    fprintf(stderr, "cbbench: process %d of %d failed before the start (status %d)\n", i,
                            nprocs, st);
                }
            }
        if (gone <= 0)
            nap_us(200);
    }
    if (failed)
        for (int i = 0; i < nprocs; i++)
            if (!reaped[i])
                kill(pids[i], SIGKILL);
    if (!failed) {
        if (at_ready)
            at_ready(rs, arg);
        else
            atomic_store_explicit(&rs->go, 1, memory_order_release);
    }
    for (int i = 0; i < nprocs; i++) {
        if (!reaped[i]) {
            status[i] = 0;
            while (waitpid(pids[i], &status[i], 0) < 0 && errno == EINTR)
                ;
        }
        if (!failed && (!WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0 || !rs->proc[i].ok)) {
            fprintf(stderr, "cbbench: process %d of %d failed (status %d)\n", i, nprocs, status[i]);
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}
