/*
 * testlib.h - what the test programs share: unique circuit names removed
 * after the run even when a test failed (tl_run_suite), a clock
 * that every forked process sees, a start barrier for processes, and
 * fork/wait helpers that fail the test on any bad child exit.
 */
#ifndef CB_TESTLIB_H
#define CB_TESTLIB_H

#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "cbreaker.h"

/* A fresh circuit name, unique to this process and call, under the run's
 * prefix: test.RUNPID.TAG.PID.N, RUNPID the test program's own pid (taken
 * when it starts, before Check forks a test). The segment is unlinked
 * first in case a crashed run left one. */
const char *tl_unique_name(const char *tag);

/* "test.RUNPID.": every name of this run starts with it. */
const char *tl_run_prefix(void);

/* Run the suite (CK_NORMAL) and then remove every /dev/shm object whose
 * name is under tl_run_prefix(), so that a failed test leaves nothing
 * behind. Returns the exit status for main: 0 only if every test passed
 * and the passing run left nothing to remove (a leak is reported on
 * stderr and fails the run). */
int tl_run_suite(Suite *suite);

/* A page of MAP_SHARED anonymous memory, zeroed, inherited across fork. */
void *tl_shared(size_t size);

/* A manual clock in shared memory, for cb_set_clock(). */
struct tl_clock {
    _Atomic uint64_t now_ms;
};
struct tl_clock *tl_clock_new(uint64_t start_ms);
uint64_t tl_clock_read(void *clock);
void tl_clock_advance(struct tl_clock *clock, uint64_t ms);

/* Open name with cfg and the manual clock; fails the test on error. */
cb_breaker *tl_open_clocked(const char *name, const cb_config *cfg, struct tl_clock *clock);

/* A start line for processes: each calls tl_barrier_wait(); all return
 * once `parties` have arrived. */
struct tl_barrier {
    _Atomic unsigned arrived;
    unsigned parties;
};
struct tl_barrier *tl_barrier_new(unsigned parties);
void tl_barrier_wait(struct tl_barrier *barrier);

/* fork(); the child runs fn(arg) and exits with its return value. */
pid_t tl_spawn(int (*fn)(void *arg), void *arg);
/* _exit(status) for a forked child; exit(status) in a coverage build
 * (-Db_coverage=true), so that the child's counts are written. */
void tl_exit(int status) __attribute__((noreturn));
/* waitpid(); fails the test unless the child exited with status 0. */
void tl_wait_ok(pid_t pid);

/* Sleep for ms milliseconds. */
void tl_sleep_ms(unsigned ms);

#endif
