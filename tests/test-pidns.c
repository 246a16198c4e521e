/*
 * test-pidns.c - counter stripes shared by processes in different pid
 * namespaces (issue 9, item 5), and the lock rules that make it exact
 * (stripes.c, claim_locks.c).
 *
 * Containers in one pod share /dev/shm but not the pid namespace: a pid
 * and tid read in one mean nothing in the other. Each namespace test runs
 * one process in the test's namespace and one that is pid 1 of a new one
 * (unshare(CLONE_NEWPID), then fork), both on one circuit, and checks what
 * the segment holds against what the processes did:
 *
 *  - two namespaces, 40 threads each (80 threads, 63 stripes), in waves
 *    of threads that exit and are replaced: allowed and successes sum
 *    exactly, and no live thread's stripe was taken over (before the fix
 *    each process took over the other's live stripes: counts were lost in
 *    about one run of two, stripes were taken every time);
 *  - the same while one process closes and reopens the circuit between
 *    waves (its threads' claim caches hit again at the same address);
 *  - a process that dies frees its stripes: 63 threads of a process in
 *    another namespace take over all 63 stripes of a dead one, both ways;
 *  - a fork child never writes its parent's stripe, and does not keep its
 *    parent's claims alive after the parent exits;
 *  - without a descriptor (low RLIMIT_NOFILE) or with the process's table
 *    of circuit files full, threads add to the shared stripe: exact;
 *  - a circuit whose name was removed right after opening still gets
 *    stripes of its own.
 *
 * White-box: reads the owner words and stripe counters (src/segment.h).
 * Needs root for unshare(CLONE_NEWPID): exits 77 (skipped) otherwise.
 */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cbreaker.h"
#include "handle.h"
#include "segment.h"
#include "testlib.h"

#define ID_MASK 0x3fffffu
#define OWNER_PID(o) ((unsigned)((o) >> 22) & ID_MASK)
#define CLAIMABLE (CB_STRIPES - 1u)

struct shared {
    char name[96];
    struct tl_barrier *start;
    _Atomic unsigned bad;       /* calls that were not allowed */
    _Atomic unsigned stolen;    /* live threads whose stripe was taken over */
    _Atomic int release_child;  /* fork test: the grandchild may exit */
    pid_t tester;               /* fork test: it exits early if this dies */
    _Atomic int child_status;   /* fork test: 1 + the grandchild's verdict */
};
static struct shared *S;

/* Calls per thread in the busy tests; fewer under valgrind, which runs
 * one thread at a time (the stripe checks need threads alive at once,
 * not many calls). */
static unsigned calls_per_thread = 20000;

struct caller {
    cb_breaker *b;
    unsigned calls;
    pthread_barrier_t *together; /* all threads of a wave alive at once */
};

/* The stripe whose owner word names the calling thread (pid and tid, in
 * its own namespace; the nonce is the library's), 0 for the shared one. */
static unsigned thread_stripe(cb_breaker *b, uint64_t *owner)
{
    uint64_t me = ((uint64_t)getpid() & ID_MASK) << 22 | ((uint64_t)syscall(SYS_gettid) & ID_MASK);
    for (unsigned s = 1; s < CB_STRIPES; s++) {
        uint64_t o = atomic_load(&b->seg->stripes[s].owner);
        if ((o & ((UINT64_C(1) << 44) - 1u)) == me) {
            *owner = o;
            return s;
        }
    }
    *owner = 0;
    return 0;
}

/* calls acquire + success; afterwards the thread's stripe (if it got one)
 * must still name it: before the fix, threads in the other namespace took
 * over live threads' stripes. */
static void *caller(void *arg)
{
    struct caller *c = arg;
    uint64_t owner = 0;
    unsigned stripe = 0;
    for (unsigned i = 0; i < c->calls; i++) {
        cb_permit p;
        if (cb_acquire(c->b, &p) == CB_ALLOWED)
            cb_success(c->b, &p);
        else
            atomic_fetch_add(&S->bad, 1);
        if (i == 0) {
            stripe = thread_stripe(c->b, &owner);
            pthread_barrier_wait(c->together);
        }
    }
    if (stripe && atomic_load(&c->b->seg->stripes[stripe].owner) != owner)
        atomic_fetch_add(&S->stolen, 1);
    return NULL;
}

/* n threads of `calls` calls each, all alive once each has made its first. */
static void run_wave(cb_breaker *b, unsigned n, unsigned calls)
{
    pthread_t tid[CB_STRIPES + 8];
    struct caller c[CB_STRIPES + 8];
    pthread_barrier_t together;
    ck_assert_uint_le(n, CB_STRIPES + 8);
    pthread_barrier_init(&together, NULL, n);
    for (unsigned i = 0; i < n; i++) {
        c[i] = (struct caller){b, calls, &together};
        ck_assert_int_eq(pthread_create(&tid[i], NULL, caller, &c[i]), 0);
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&together);
}

static cb_breaker *attach(void)
{
    cb_breaker *b = NULL;
    int rc = cb_attach(S->name, &b);
    ck_assert_msg(rc >= 0, "cb_attach(%s): %s", S->name, cb_strerror(rc));
    return b;
}

struct hammer {
    unsigned threads, waves, reopen;
};

static int hammer(void *arg)
{
    const struct hammer *h = arg;
    cb_breaker *b = attach();
    tl_barrier_wait(S->start);
    for (unsigned w = 0; w < h->waves; w++) {
        if (h->reopen && w > 0) {
            cb_close(b);
            b = attach();
        }
        run_wave(b, h->threads, calls_per_thread);
    }
    cb_close(b);
    return 0;
}

/* fork(); the child enters a new pid namespace and forks fn's process,
 * pid 1 there, then exits with its status. */
static pid_t spawn_in_new_pidns(int (*fn)(void *arg), void *arg)
{
    fflush(stdout);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid > 0)
        return pid;
    if (unshare(CLONE_NEWPID) != 0) {
        fprintf(stderr, "unshare(CLONE_NEWPID): %s\n", strerror(errno));
        tl_exit(90);
    }
    pid_t inner = fork();
    if (inner < 0)
        tl_exit(91);
    if (inner == 0) {
        if (getpid() != 1)
            tl_exit(92);
        tl_exit(fn(arg));
    }
    int status;
    if (waitpid(inner, &status, 0) != inner)
        tl_exit(93);
    tl_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 94);
}

static int create(void *arg)
{
    (void)arg;
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(S->name, NULL, &b), CB_CREATED);
    cb_close(b);
    return 0;
}

/* A fresh circuit, created by a child: the test's own process has never
 * opened it when it forks the first workers. */
static void setup(const char *tag)
{
    S = tl_shared(sizeof *S);
    snprintf(S->name, sizeof S->name, "%s", tl_unique_name(tag));
    tl_wait_ok(tl_spawn(create, NULL));
}

static cb_counters counters(void)
{
    cb_breaker *b = attach();
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    cb_close(b);
    return info.counters;
}

static void check_exact(uint64_t calls, const char *what)
{
    cb_counters c = counters();
    unsigned stolen = atomic_load(&S->stolen), bad = atomic_load(&S->bad);
    printf("%s: %llu calls made, %llu allowed and %llu successes counted, %u live threads' stripes taken\n",
           what, (unsigned long long)calls, (unsigned long long)c.allowed, (unsigned long long)c.successes,
           stolen);
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_eq(stolen, 0);
    ck_assert_uint_eq(c.allowed, calls);
    ck_assert_uint_eq(c.successes, calls);
}

static uint64_t shared_stripe_successes(void)
{
    cb_breaker *b = attach();
    uint64_t n = atomic_load(&b->seg->stripes[0].count[CB_C_SUCCESSES]);
    cb_close(b);
    return n;
}

/* How many claimable stripes name pid (as read in its own namespace). */
static unsigned stripes_of(unsigned pid)
{
    cb_breaker *b = attach();
    unsigned n = 0;
    for (unsigned s = 1; s < CB_STRIPES; s++)
        n += OWNER_PID(atomic_load(&b->seg->stripes[s].owner)) == (pid & ID_MASK);
    cb_close(b);
    return n;
}

static void teardown(void)
{
    cb_unlink(S->name);
}

START_TEST(test_two_namespaces_exact)
{
    setup("pidns-exact");
    S->start = tl_barrier_new(2);
    struct hammer h = {.threads = 40, .waves = 3};
    pid_t outside = tl_spawn(hammer, &h), inside = spawn_in_new_pidns(hammer, &h);
    tl_wait_ok(outside);
    tl_wait_ok(inside);
    check_exact(2ull * h.waves * h.threads * calls_per_thread, "two pid namespaces, 2 x 40 threads");
    teardown();
}
END_TEST

START_TEST(test_close_and_reopen_exact)
{
    setup("pidns-reopen");
    S->start = tl_barrier_new(2);
    struct hammer reopening = {.threads = 40, .waves = 4, .reopen = 1}, steady = {.threads = 40, .waves = 4};
    pid_t outside = tl_spawn(hammer, &reopening), inside = spawn_in_new_pidns(hammer, &steady);
    tl_wait_ok(outside);
    tl_wait_ok(inside);
    check_exact(2ull * 4 * 40 * calls_per_thread, "close and reopen between waves, other namespace busy");
    teardown();
}
END_TEST

/* CLAIMABLE threads, all alive at once, one call each. */
static int claim_every_stripe(void *arg)
{
    (void)arg;
    cb_breaker *b = attach();
    run_wave(b, CLAIMABLE, 1);
    cb_close(b);
    return 0;
}

START_TEST(test_dead_process_frees_its_stripes)
{
    setup("pidns-dead");
    pid_t first = spawn_in_new_pidns(claim_every_stripe, NULL);
    tl_wait_ok(first);
    ck_assert_uint_eq(stripes_of(1), CLAIMABLE);
    /* A process of this namespace takes over every stripe of the dead
     * pid 1 of the other: none of its threads is left on stripe 0. */
    pid_t second = tl_spawn(claim_every_stripe, NULL);
    tl_wait_ok(second);
    ck_assert_uint_eq(stripes_of((unsigned)second), CLAIMABLE);
    ck_assert_uint_eq(shared_stripe_successes(), 0);
    /* And the other way round. */
    pid_t third = spawn_in_new_pidns(claim_every_stripe, NULL);
    tl_wait_ok(third);
    ck_assert_uint_eq(stripes_of(1), CLAIMABLE);
    ck_assert_uint_eq(shared_stripe_successes(), 0);
    check_exact(3ull * CLAIMABLE, "three processes claiming every stripe in turn");
    teardown();
}
END_TEST

/* The main thread's stripe in b, by this process's pid. */
static unsigned own_stripe(cb_breaker *b)
{
    for (unsigned s = 1; s < CB_STRIPES; s++)
        if (OWNER_PID(atomic_load(&b->seg->stripes[s].owner)) == ((unsigned)getpid() & ID_MASK))
            return s;
    return 0;
}

static void calls(cb_breaker *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        cb_permit p;
        ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
        cb_success(b, &p);
    }
}

static int parent_and_child(void *arg)
{
    (void)arg;
    cb_breaker *b = attach();
    calls(b, 100);
    unsigned mine = own_stripe(b);
    ck_assert_uint_ne(mine, 0);
    uint64_t owner = atomic_load(&b->seg->stripes[mine].owner);
    fflush(stdout);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        /* The inherited handle, a thread of the child's own, and the main
         * thread whose claim cache the fork emptied. */
        calls(b, 1000);
        run_wave(b, 4, 1000);
        unsigned theirs = own_stripe(b);
        tl_exit(theirs != 0 && theirs != mine ? 0 : 1);
    }
    tl_wait_ok(child);
    ck_assert_uint_eq(atomic_load(&b->seg->stripes[mine].owner), owner);
    ck_assert_uint_eq(atomic_load(&b->seg->stripes[mine].count[CB_C_SUCCESSES]), 100);
    cb_close(b);
    return 0;
}

START_TEST(test_fork_child_never_writes_parent_stripe)
{
    setup("pidns-fork");
    pid_t p = tl_spawn(parent_and_child, NULL);
    tl_wait_ok(p);
    check_exact(100 + 1000 + 4 * 1000, "parent and fork child");
    teardown();
}
END_TEST

/* Claims every stripe, forks a child that outlives it and makes no call. */
static int claim_then_fork(void *arg)
{
    (void)arg;
    cb_breaker *b = attach();
    run_wave(b, CLAIMABLE, 1);
    fflush(stdout);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        while (!atomic_load(&S->release_child) && kill(S->tester, 0) == 0)
            sched_yield();
        atomic_store(&S->child_status, 1 + (own_stripe(b) != 0));
        cb_close(b);
        tl_exit(0);
    }
    cb_close(b);
    return 0; /* the parent exits; the child lives on */
}

START_TEST(test_fork_child_does_not_keep_parent_claims)
{
    setup("pidns-orphan");
    S->tester = getpid();
    pid_t p = tl_spawn(claim_then_fork, NULL);
    tl_wait_ok(p);
    ck_assert_uint_eq(stripes_of((unsigned)p), CLAIMABLE);
    /* The parent is dead, its child alive: the stripes are free. */
    pid_t other = spawn_in_new_pidns(claim_every_stripe, NULL);
    tl_wait_ok(other);
    ck_assert_uint_eq(stripes_of(1), CLAIMABLE);
    ck_assert_uint_eq(shared_stripe_successes(), 0);
    atomic_store(&S->release_child, 1);
    while (!atomic_load(&S->child_status))
        sched_yield();
    ck_assert_int_eq(atomic_load(&S->child_status), 1); /* it claimed nothing */
    check_exact(2ull * CLAIMABLE, "a dead parent's stripes, its child alive");
    teardown();
}
END_TEST

static int few_descriptors(void *arg)
{
    (void)arg;
    struct rlimit lim;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
    lim.rlim_cur = 8; /* the library leaves the upper half to the program */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    cb_breaker *b = attach();
    tl_barrier_wait(S->start);
    run_wave(b, 8, calls_per_thread / 4);
    ck_assert_uint_eq(own_stripe(b), 0);
    cb_close(b);
    return 0;
}

START_TEST(test_no_descriptor_uses_shared_stripe)
{
    setup("pidns-nofd");
    S->start = tl_barrier_new(2);
    struct hammer h = {.threads = 40, .waves = 1};
    pid_t starved = tl_spawn(few_descriptors, NULL), inside = spawn_in_new_pidns(hammer, &h);
    tl_wait_ok(starved);
    tl_wait_ok(inside);
    ck_assert_uint_eq(shared_stripe_successes(), 8ull * (calls_per_thread / 4));
    check_exact(8ull * (calls_per_thread / 4) + 40ull * calls_per_thread, "a process without a descriptor");
    teardown();
}
END_TEST

/* Opens the circuit, removes its name, then counts: still in a stripe of
 * its own (the lock file comes from the handle's descriptor). */
static int unlinked_after_open(void *arg)
{
    (void)arg;
    cb_breaker *b = attach();
    ck_assert_int_eq(cb_unlink(S->name), 0);
    calls(b, 10);
    ck_assert_uint_ne(own_stripe(b), 0);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_uint_eq(info.counters.successes, 10);
    cb_close(b);
    return 0;
}

/* The nginx pattern: a root master opens a 0600 circuit, forks, and the
 * worker drops to nobody before it counts. It still gets a stripe of its
 * own (before: every call an atomic add to the shared stripe 0). */
static int worker_after_setuid(void *arg)
{
    cb_breaker *b = arg;
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        return 90;
    calls(b, 1000);
    if (own_stripe(b) == 0) {
        fprintf(stderr, "worker_after_setuid: no stripe of its own\n");
        return 1;
    }
    return 0;
}

START_TEST(test_worker_dropping_privileges_claims)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_worker_dropping_privileges_claims: skipped (needs root)\n");
        return;
    }
    setup("pidns-setuid");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(S->name, NULL, &b), CB_OPENED);
    uint64_t shared_before = shared_stripe_successes();
    tl_wait_ok(tl_spawn(worker_after_setuid, b));
    ck_assert_uint_eq(shared_stripe_successes(), shared_before);
    cb_close(b);
    teardown();
}
END_TEST

START_TEST(test_unlinked_after_open_claims)
{
    setup("pidns-unlinked");
    tl_wait_ok(tl_spawn(unlinked_after_open, NULL));
}
END_TEST

#define MANY 140 /* more circuits than a process keeps lock files for */

static int many_circuits(void *arg)
{
    const char **names = arg;
    unsigned claimed = 0;
    for (unsigned i = 0; i < MANY; i++) {
        cb_breaker *b = NULL;
        ck_assert_int_eq(cb_open(names[i], NULL, &b), CB_CREATED);
        calls(b, 10);
        claimed += own_stripe(b) != 0;
        cb_info info;
        ck_assert_int_eq(cb_get_info(b, &info), 0);
        ck_assert_uint_eq(info.counters.successes, 10);
        cb_close(b);
    }
    printf("%u circuits, %u with a stripe of their own\n", MANY, claimed);
    ck_assert_uint_lt(claimed, MANY);
    ck_assert_uint_ge(claimed, 64);
    return 0;
}

START_TEST(test_many_circuits_exact)
{
    setup("pidns-many");
    static char names[MANY][64];
    const char *list[MANY];
    for (unsigned i = 0; i < MANY; i++) {
        snprintf(names[i], sizeof names[i], "test.pidns-many.%d.%u", (int)getpid(), i);
        cb_unlink(names[i]);
        list[i] = names[i];
    }
    pid_t p = tl_spawn(many_circuits, list);
    tl_wait_ok(p);
    for (unsigned i = 0; i < MANY; i++)
        cb_unlink(names[i]);
    teardown();
}
END_TEST

/* Whether this process may make a pid namespace (root, not forbidden). */
static const char *why_no_pidns(void)
{
    if (geteuid() != 0)
        return "not root: unshare(CLONE_NEWPID) needs CAP_SYS_ADMIN";
    pid_t pid = fork();
    if (pid < 0)
        return "fork failed";
    if (pid == 0)
        _exit(unshare(CLONE_NEWPID) == 0 ? 0 : 1);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return "unshare(CLONE_NEWPID) failed (a container without CAP_SYS_ADMIN?)";
    return NULL;
}

static Suite *pidns_suite(void)
{
    Suite *s = suite_create("pidns");
    TCase *tc = tcase_create("pidns");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_two_namespaces_exact);
    tcase_add_test(tc, test_close_and_reopen_exact);
    tcase_add_test(tc, test_dead_process_frees_its_stripes);
    tcase_add_test(tc, test_fork_child_never_writes_parent_stripe);
    tcase_add_test(tc, test_fork_child_does_not_keep_parent_claims);
    tcase_add_test(tc, test_no_descriptor_uses_shared_stripe);
    tcase_add_test(tc, test_many_circuits_exact);
    tcase_add_test(tc, test_unlinked_after_open_claims);
    tcase_add_test(tc, test_worker_dropping_privileges_claims);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *why = why_no_pidns();
    if (why) {
        printf("test-pidns skipped: %s\n", why);
        return 77;
    }
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        calls_per_thread = 200;
    const char *env = getenv("CB_PIDNS_CALLS");
    if (env && *env)
        calls_per_thread = (unsigned)strtoul(env, NULL, 10);
    return tl_run_suite(pidns_suite());
}
