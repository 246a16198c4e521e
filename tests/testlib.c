/*
 * testlib.c - helpers shared by the test programs (see testlib.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

/* The test program's pid, fixed before main (so before any fork): the
 * run's name prefix in every process of the run. */
static char run_prefix[32];

static __attribute__((constructor)) void set_run_prefix(void)
{
    snprintf(run_prefix, sizeof run_prefix, "test.%d.", (int)getpid());
}

const char *tl_run_prefix(void) { return run_prefix; }

const char *tl_unique_name(const char *tag)
{
    static char names[64][128];
    static unsigned next;
    char *name = names[next++ % 64];
    snprintf(name, sizeof names[0], "%s%s.%d.%u", run_prefix, tag, (int)getpid(), next);
    cb_unlink(name);
    return name;
}

/* Remove every /dev/shm object of this run; returns how many there were,
 * each named on stderr if `report` is set. A directory or fifo (some tests
 * make one to see it refused) goes too. */
static unsigned remove_run_objects(int report)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "cbreaker.%s", run_prefix);
    DIR *dir = opendir("/dev/shm");
    if (!dir) {
        fprintf(stderr, "testlib: opendir /dev/shm: %s\n", strerror(errno));
        return 1;
    }
    unsigned found = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        found++;
        if (report)
            fprintf(stderr, "testlib: a passing run left /dev/shm/%s behind\n", e->d_name);
        if (unlinkat(dirfd(dir), e->d_name, 0) != 0 && unlinkat(dirfd(dir), e->d_name, AT_REMOVEDIR) != 0)
            fprintf(stderr, "testlib: cannot remove /dev/shm/%s: %s\n", e->d_name, strerror(errno));
    }
    closedir(dir);
    return found;
}

int tl_run_suite(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unsigned left = remove_run_objects(failed == 0);
    return failed == 0 && left == 0 ? 0 : 1;
}

void *tl_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

struct tl_clock *tl_clock_new(uint64_t start_ms)
{
    struct tl_clock *c = tl_shared(sizeof *c);
    atomic_store(&c->now_ms, start_ms);
    return c;
}

uint64_t tl_clock_read(void *clock)
{
    return atomic_load(&((struct tl_clock *)clock)->now_ms);
}

void tl_clock_advance(struct tl_clock *clock, uint64_t ms)
{
    atomic_fetch_add(&clock->now_ms, ms);
}

cb_breaker *tl_open_clocked(const char *name, const cb_config *cfg, struct tl_clock *clock)
{
    cb_breaker *b = NULL;
    int rc = cb_open(name, cfg, &b);
    ck_assert_msg(rc >= 0, "cb_open(%s): %s", name, cb_strerror(rc));
    cb_set_clock(b, tl_clock_read, clock);
    return b;
}

struct tl_barrier *tl_barrier_new(unsigned parties)
{
    struct tl_barrier *b = tl_shared(sizeof *b);
    b->parties = parties;
    return b;
}

void tl_barrier_wait(struct tl_barrier *barrier)
{
    atomic_fetch_add(&barrier->arrived, 1);
    while (atomic_load(&barrier->arrived) < barrier->parties)
        sched_yield();
}

pid_t tl_spawn(int (*fn)(void *arg), void *arg)
{
    /* Spill every callee-saved register into this frame: the child's
     * _exit() ends it with the caller's heap pointers possibly held only in
     * registers, which valgrind's leak check (--setup valgrind) does not
     * scan, so it would report them as definitely lost. */
    __builtin_unwind_init();
    fflush(stdout); /* what the parent buffered is the parent's to write */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        tl_exit(fn(arg));
    return pid;
}

void tl_exit(int status)
{
#ifdef CB_TEST_COVERAGE
    /* exit(), not _exit(): each instrumented object, libcbreaker.so too,
     * writes its counts from its destructor. */
    exit(status);
#else
    _exit(status);
#endif
}

void tl_wait_ok(pid_t pid)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child %d did not exit normally (status 0x%x)", (int)pid, status);
    ck_assert_msg(WEXITSTATUS(status) == 0, "child %d exited with %d", (int)pid, WEXITSTATUS(status));
}

void tl_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}
