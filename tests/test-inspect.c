/*
 * test-inspect.c - the library's read side for tools, and the private
 * circuit:
 *
 *   cb_inspect       the same snapshot as cb_get_info on an attached
 *                    handle (state, count, config, mode, counters,
 *                    history with its generations); every error it
 *                    documents (NULL, bad name, missing, garbage, short,
 *                    other layout version, size 0, impossible state with
 *                    *out still filled, a FIFO and a directory refused at
 *                    once with CB_ENOTCB); never
 *                    changes a byte of the object; needs read permission
 *                    only (a child running as nobody inspects a 0644
 *                    circuit it cannot attach to, and gets -EACCES on a
 *                    0600 one; skipped when not root); survives a
 *                    segment that its owner (nobody, when run as root)
 *                    keeps shrinking to 4096 bytes and growing back:
 *                    thousands of cb_inspect and cb_list calls and runs
 *                    of the real cbctl list, show and metrics (path in
 *                    $CBCTL) within a bounded time, never a signal, each
 *                    result a valid snapshot or CB_ESIZE; a history entry
 *                    whose words belong to two generations (what a copy
 *                    taken mid-write holds) is left out.
 *   cb_list          reports valid and invalid objects alike (a FIFO and
 *                    a directory too, without blocking), in name order,
 *                    with the snapshot (valid) or NULL and the reason
 *                    (invalid); stops at the first non-zero return
 *                    of the callback and returns that value; -EINVAL for
 *                    a NULL callback.
 *   cb_open_private  each forked child has its own copy: failures in one
 *                    are seen neither by the parent nor by a sibling, and
 *                    nothing appears in /dev/shm.
 *
 * Other test programs run at the same time on this host, so cb_list tests
 * only look at the names they made. White box: src/segment.h and
 * src/state_word.h give the offsets used to forge broken segments. Every
 * object made is remembered in memory shared with the runner, whose tcase
 * teardown removes them even after a failed assertion.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"
#include "segment.h"
#include "state_word.h"
#include "testlib.h"

#define NOBODY 65534

/* ---- names made, removed by the tcase teardown ---- */

#define REGISTRY_MAX 256
struct registry {
    _Atomic unsigned count;
    char names[REGISTRY_MAX][CB_NAME_MAX + 2];
};
static struct registry *registry;

static const char *remember(const char *name)
{
    unsigned i = atomic_fetch_add(&registry->count, 1);
    if (i < REGISTRY_MAX)
        snprintf(registry->names[i], sizeof registry->names[i], "%.*s", CB_NAME_MAX + 1, name);
    return name;
}

static const char *unique_name(const char *tag)
{
    char t[64];
    snprintf(t, sizeof t, "inspect-%s", tag);
    return remember(tl_unique_name(t));
}

static void shm_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "/cbreaker.%s", name);
}

static void forget_all(void)
{
    unsigned n = atomic_load(&registry->count);
    for (unsigned i = 0; i < n && i < REGISTRY_MAX; i++) {
        char path[CB_NAME_MAX + 32];
        shm_path(path, sizeof path, registry->names[i]);
        if (shm_unlink(path) != 0) {
            snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", registry->names[i]);
            rmdir(path); /* the directories made by the tests */
        }
    }
    atomic_store(&registry->count, 0);
}

/* ---- forging objects ---- */

static void write_object(const char *name, const void *bytes, size_t len)
{
    char path[CB_NAME_MAX + 16];
    shm_path(path, sizeof path, name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ck_assert_msg(fd >= 0, "shm_open %s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

static void write_garbage(const char *name, size_t len)
{
    unsigned char *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(getrandom(buf, len, 0), (ssize_t)len);
    buf[0] = 'x'; /* never the magic */
    write_object(name, buf, len);
    free(buf);
}

static void patch(const char *name, size_t offset, const void *bytes, size_t len)
{
    char path[CB_NAME_MAX + 16];
    shm_path(path, sizeof path, name);
    int fd = shm_open(path, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, bytes, len, (off_t)offset), (ssize_t)len);
    close(fd);
}

static const char *dev_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "/dev/shm/cbreaker.%s", name);
    return out;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static unsigned char *read_object(const char *name, size_t *len)
{
    char path[CB_NAME_MAX + 16];
    shm_path(path, sizeof path, name);
    int fd = shm_open(path, O_RDONLY, 0);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    unsigned char *buf = malloc(*len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(pread(fd, buf, *len, 0), (ssize_t)*len);
    close(fd);
    return buf;
}

static cb_breaker *open_circuit(const char *name, uint32_t threshold, uint32_t reset_ms, uint32_t mode)
{
    cb_config cfg = {.failure_threshold = threshold, .reset_timeout_ms = reset_ms, .mode = mode};
    cb_breaker *b = NULL;
    int rc = cb_open(name, &cfg, &b);
    ck_assert_msg(rc == CB_CREATED, "cb_open(%s) = %d (%s)", name, rc, cb_strerror(rc));
    return b;
}

static void fail_n(cb_breaker *b, int n)
{
    for (int i = 0; i < n; i++) {
        cb_permit p;
        if (cb_acquire(b, &p) != CB_REJECTED)
            cb_failure(b, &p);
    }
}

static void succeed_n(cb_breaker *b, int n)
{
    for (int i = 0; i < n; i++) {
        cb_permit p;
        if (cb_acquire(b, &p) != CB_REJECTED)
            cb_success(b, &p);
    }
}

/* ---- cb_inspect ---- */

static void assert_same_info(const cb_info *a, const cb_info *b)
{
    ck_assert_str_eq(a->name, b->name);
    ck_assert_int_eq(a->state, b->state);
    ck_assert_uint_eq(a->failures, b->failures);
    ck_assert_uint_eq(a->config.failure_threshold, b->config.failure_threshold);
    ck_assert_uint_eq(a->config.reset_timeout_ms, b->config.reset_timeout_ms);
    ck_assert_uint_eq(a->config.probe_timeout_ms, b->config.probe_timeout_ms);
    ck_assert_uint_eq(a->config.mode, b->config.mode);
    ck_assert_uint_eq(a->generation, b->generation);
    ck_assert_uint_eq(a->layout_version, b->layout_version);
    ck_assert_uint_eq(a->segment_size, b->segment_size);
    ck_assert(memcmp(&a->counters, &b->counters, sizeof a->counters) == 0);
    ck_assert_uint_eq(a->history_len, b->history_len);
    for (unsigned i = 0; i < a->history_len; i++) {
        ck_assert_int_eq(a->history[i].from, b->history[i].from);
        ck_assert_int_eq(a->history[i].to, b->history[i].to);
        ck_assert_int_eq(a->history[i].reason, b->history[i].reason);
        ck_assert_int_eq(a->history[i].pid, b->history[i].pid);
        ck_assert_uint_eq(a->history[i].wall_ms, b->history[i].wall_ms);
        ck_assert_uint_eq(a->history[i].generation, b->history[i].generation);
    }
}

START_TEST(test_inspect_matches_get_info)
{
    const char *name = unique_name("same");
    cb_breaker *b = open_circuit(name, 4, 5000, 0640);
    static cb_info via_handle, via_name;

    /* CLOSED with a count. */
    succeed_n(b, 5);
    fail_n(b, 2);
    ck_assert_int_eq(cb_get_info(b, &via_handle), 0);
    ck_assert_int_eq(cb_inspect(name, &via_name), 0);
    assert_same_info(&via_handle, &via_name);
    ck_assert_int_eq(via_name.state, CB_CLOSED);
    ck_assert_uint_eq(via_name.failures, 2);
    ck_assert_uint_eq(via_name.config.mode, 0640);
    ck_assert_uint_eq(via_name.counters.allowed, 7);
    ck_assert_uint_eq(via_name.counters.successes, 5);
    ck_assert_uint_eq(via_name.counters.failures, 2);

    /* OPEN by the threshold, then by the operator. */
    fail_n(b, 2);
    ck_assert_int_eq(cb_inspect(name, &via_name), 0);
    ck_assert_int_eq(via_name.state, CB_OPEN);
    ck_assert_uint_gt(via_name.ms_until_probe, 0);
    ck_assert_uint_le(via_name.ms_until_probe, 5000 + 100);
    ck_assert_uint_eq(via_name.history_len, 1);
    ck_assert_int_eq(via_name.history[0].reason, CB_REASON_THRESHOLD);
    ck_assert_uint_eq(via_name.history[0].failures, 4);
    ck_assert_int_eq(via_name.history[0].pid, getpid());
    ck_assert_uint_eq(via_name.history[0].generation, 1);
    ck_assert_uint_eq(via_name.generation, 1);
    ck_assert_int_eq(cb_trip(b), CB_OPEN); /* it was OPEN by the threshold */
    ck_assert_int_eq(cb_get_info(b, &via_handle), 0);
    ck_assert_int_eq(cb_inspect(name, &via_name), 0);
    assert_same_info(&via_handle, &via_name);
    ck_assert_int_eq(via_name.history[0].reason, CB_REASON_TRIP);
    ck_assert_uint_eq(via_name.counters.trips, 2);
    /* Newest first, each with the generation of the state it entered. */
    ck_assert_uint_eq(via_name.history_len, 2);
    ck_assert_uint_eq(via_name.generation, 2);
    ck_assert_uint_eq(via_name.history[0].generation, 2);
    ck_assert_uint_eq(via_name.history[1].generation, 1);

    /* Inspecting changes nothing. */
    size_t n0, n1;
    unsigned char *before = read_object(name, &n0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(cb_inspect(name, &via_name), 0);
    unsigned char *after = read_object(name, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert(memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_inspect_errors)
{
    static cb_info info;
    ck_assert_int_eq(cb_inspect("x", NULL), -EINVAL);
    ck_assert_int_eq(cb_inspect(NULL, &info), -EINVAL);
    ck_assert_int_eq(cb_inspect("", &info), CB_ENAME);
    ck_assert_int_eq(cb_inspect("bad name", &info), CB_ENAME);
    ck_assert_int_eq(cb_inspect("a/b", &info), CB_ENAME);
    ck_assert_int_eq(cb_inspect(unique_name("missing"), &info), -ENOENT);

    const char *garbage = unique_name("garbage");
    write_garbage(garbage, (size_t)CB_SEGMENT_SIZE);
    size_t n0, n1;
    unsigned char *before = read_object(garbage, &n0);
    ck_assert_int_eq(cb_inspect(garbage, &info), CB_ENOTCB);
    unsigned char *after = read_object(garbage, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert(memcmp(before, after, n0) == 0); /* read-only: untouched */
    free(before);
    free(after);

    const char *small = unique_name("short");
    write_garbage(small, 10);
    ck_assert_int_eq(cb_inspect(small, &info), CB_ESIZE);

    const char *empty = unique_name("empty");
    write_object(empty, "", 0);
    ck_assert_int_eq(cb_inspect(empty, &info), CB_EBUSY);

    const char *version = unique_name("version");
    cb_close(open_circuit(version, 0, 0, 0));
    uint32_t other = CB_LAYOUT_VERSION + 1;
    patch(version, offsetof(struct cb_segment, layout_version), &other, sizeof other);
    ck_assert_int_eq(cb_inspect(version, &info), CB_EVERSION);

    const char *grown = unique_name("grown");
    cb_close(open_circuit(grown, 0, 0, 0));
    patch(grown, (size_t)CB_SEGMENT_SIZE, "x", 1);
    ck_assert_int_eq(cb_inspect(grown, &info), CB_ESIZE);

    /* An impossible state: the error, and the rest still filled in. */
    const char *corrupt = unique_name("corrupt");
    cb_close(open_circuit(corrupt, 7, 9000, 0));
    uint64_t word = sw_make(CB_STATE_MODE, 5, 0);
    patch(corrupt, offsetof(struct cb_segment, state), &word, sizeof word);
    memset(&info, 0, sizeof info);
    ck_assert_int_eq(cb_inspect(corrupt, &info), CB_ECORRUPT);
    ck_assert_str_eq(info.name, corrupt);
    ck_assert_uint_eq(info.config.failure_threshold, 7);
    ck_assert_uint_eq(info.config.reset_timeout_ms, 9000);
    ck_assert_uint_eq(info.generation, 5);
    /* cb_reset repairs it. */
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_attach(corrupt, &b), 0);
    ck_assert_int_eq(cb_reset(b), CB_STATE_MODE); /* it replaced state 3 */
    cb_close(b);
    ck_assert_int_eq(cb_inspect(corrupt, &info), 0);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.generation, 6);
    ck_assert_uint_eq(info.history_len, 1);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_RESET);
    ck_assert_uint_eq(info.history[0].generation, 6);

    /* Not regular files: CB_ENOTCB at once. A FIFO nobody writes to would
     * block an O_RDONLY open without O_NONBLOCK. */
    char path[1024];
    const char *fifo = unique_name("fifo");
    ck_assert_int_eq(mkfifo(dev_path(path, sizeof path, fifo), 0600), 0);
    const char *dir = unique_name("dir");
    ck_assert_int_eq(mkdir(dev_path(path, sizeof path, dir), 0700), 0);
    const char *const odd[] = {fifo, dir};
    for (int i = 0; i < 2; i++) {
        uint64_t t0 = mono_ms();
        int rc = cb_inspect(odd[i], &info);
        uint64_t took = mono_ms() - t0;
        ck_assert_msg(rc == CB_ENOTCB, "%s: cb_inspect = %d (%s)", odd[i], rc, cb_strerror(rc));
        ck_assert_msg(took < 100, "%s: cb_inspect took %llu ms", odd[i], (unsigned long long)took);
    }
    forget_all();
}
END_TEST

struct nobody_arg {
    const char *readable;   /* 0644: inspect yes, attach no */
    const char *unreadable; /* 0600: neither */
};

static int as_nobody(void *argp)
{
    const struct nobody_arg *a = argp;
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
        return 90;
    static cb_info info;
    cb_breaker *b = NULL;
    int bad = 0;
    int rc = cb_inspect(a->readable, &info);
    if (rc != 0 || info.state != CB_OPEN || info.config.failure_threshold != 2) {
        fprintf(stderr, "nobody: cb_inspect(0644) = %d (%s)\n", rc, cb_strerror(rc));
        bad |= 1;
    }
    if ((rc = cb_attach(a->readable, &b)) != -EACCES) {
        fprintf(stderr, "nobody: cb_attach(0644) = %d\n", rc);
        bad |= 2;
    }
    if ((rc = cb_inspect(a->unreadable, &info)) != -EACCES) {
        fprintf(stderr, "nobody: cb_inspect(0600) = %d\n", rc);
        bad |= 4;
    }
    return bad;
}

START_TEST(test_inspect_read_permission_is_enough)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_inspect_read_permission_is_enough: skipped (needs root to become nobody)\n");
        return;
    }
    struct nobody_arg a = {unique_name("r0644"), unique_name("r0600")};
    cb_breaker *b = open_circuit(a.readable, 2, 60000, 0644);
    fail_n(b, 2);
    cb_close(b);
    cb_close(open_circuit(a.unreadable, 0, 0, 0600));
    tl_wait_ok(tl_spawn(as_nobody, &a));
    forget_all();
}
END_TEST

/* What a copy caught between two writers of a slot holds: one word of
 * generation 2's entry already rewritten by generation 34's writer. */
START_TEST(test_inspect_skips_entry_of_two_generations)
{
    const char *name = unique_name("torn");
    cb_breaker *b = open_circuit(name, 1, 60000, 0600);
    fail_n(b, 1);                       /* generation 1: CLOSED -> OPEN */
    ck_assert_int_eq(cb_reset(b), CB_OPEN); /* generation 2: OPEN -> CLOSED */
    fail_n(b, 1);                       /* generation 3 */
    cb_close(b);
    static cb_info info;
    ck_assert_int_eq(cb_inspect(name, &info), 0);
    ck_assert_uint_eq(info.history_len, 3);

    uint64_t pid_word = (uint64_t)(2 + CB_RING) << CB_RING_VALUE_BITS | 4242u;
    patch(name, offsetof(struct cb_segment, ring[2].word[CB_RW_PID]), &pid_word, sizeof pid_word);
    ck_assert_int_eq(cb_inspect(name, &info), 0);
    ck_assert_uint_eq(info.history_len, 2);
    ck_assert_uint_eq(info.history[0].generation, 3);
    ck_assert_uint_eq(info.history[1].generation, 1);
    for (unsigned i = 0; i < info.history_len; i++)
        ck_assert_int_eq(info.history[i].pid, getpid());
    forget_all();
}
END_TEST

/* ---- a segment shrunk and grown under the reader ---- */

#define RESIZE_RUN_MS 2000u
#define RESIZE_INSPECTS 5000
#define RESIZE_CBCTL_RUNS 300

struct resizer {
    const char *name;
    _Atomic int ready, stop;
    _Atomic unsigned long resizes;
};

/* The hostile owner: creates the circuit (as nobody when we are root, so
 * the object is another user's), then shrinks it to one page and grows it
 * back as fast as it can until told to stop. */
static int resize_forever(void *argp)
{
    struct resizer *r = argp;
    if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
        return 90;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* after setuid, which clears it */
    if (getppid() == 1)
        return 94;
    cb_config cfg = {.failure_threshold = 2, .reset_timeout_ms = 60000, .mode = 0644};
    cb_breaker *b;
    if (cb_open(r->name, &cfg, &b) != CB_CREATED)
        return 91;
    fail_n(b, 2); /* OPEN, with a history and counters to read */
    cb_close(b);
    char path[CB_NAME_MAX + 16];
    shm_path(path, sizeof path, r->name);
    int fd = shm_open(path, O_RDWR, 0);
    if (fd < 0)
        return 92;
    atomic_store(&r->ready, 1);
    while (!atomic_load(&r->stop)) {
        if (ftruncate(fd, 4096) != 0 || ftruncate(fd, (off_t)CB_SEGMENT_SIZE) != 0)
            return 93;
        atomic_fetch_add(&r->resizes, 1);
    }
    close(fd);
    return 0;
}

static void assert_snapshot_or_esize(const char *name, int rc, const cb_info *info)
{
    ck_assert_msg(rc == 0 || rc == CB_ESIZE, "%s: %d (%s), want a snapshot or CB_ESIZE", name, rc,
                  cb_strerror(rc));
    if (rc == 0) {
        ck_assert_str_eq(info->name, name);
        ck_assert_int_le(info->state, CB_HALF_OPEN);
        ck_assert_uint_eq(info->segment_size, CB_SEGMENT_SIZE);
        ck_assert_uint_eq(info->config.failure_threshold, 2);
    }
}

struct listed {
    const char *name;
    unsigned seen;
};

static int check_listed(const char *name, const cb_info *info, int err, void *ctx)
{
    struct listed *l = ctx;
    if (strcmp(name, l->name) == 0) {
        assert_snapshot_or_esize(name, err, info);
        l->seen++;
    }
    return 0;
}

/* Run the built cbctl (root, output discarded); its exit status. */
static int run_cbctl(const char *cbctl, const char *verb, const char *arg)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(cbctl, cbctl, verb, arg, (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(!WIFSIGNALED(status), "cbctl %s %s died of signal %d", verb, arg ? arg : "",
                  WTERMSIG(status));
    return WEXITSTATUS(status);
}

START_TEST(test_inspect_survives_segment_shrunk_under_it)
{
    const char *cbctl = getenv("CBCTL");
    ck_assert_msg(cbctl != NULL, "CBCTL must name the built cbctl (meson sets it)");
    struct resizer *r = tl_shared(sizeof *r);
    r->name = unique_name("shrink");
    pid_t owner = tl_spawn(resize_forever, r);
    while (!atomic_load(&r->ready))
        tl_sleep_ms(1);

    cb_info *info = malloc(sizeof *info);
    ck_assert_ptr_nonnull(info);
    unsigned snapshots = 0, short_ones = 0;
    struct listed l = {r->name, 0};
    uint64_t end = mono_ms() + RESIZE_RUN_MS;
    for (int i = 0; i < RESIZE_INSPECTS && mono_ms() < end; i++) {
        int rc = cb_inspect(r->name, info);
        assert_snapshot_or_esize(r->name, rc, info);
        rc == 0 ? snapshots++ : short_ones++;
        if (i % 16 == 0)
            ck_assert_int_eq(cb_list(check_listed, &l), 0);
    }
    ck_assert_uint_gt(l.seen, 0);

    unsigned runs = 0;
    end = mono_ms() + RESIZE_RUN_MS;
    for (; runs < RESIZE_CBCTL_RUNS && mono_ms() < end; runs++) {
        int code = run_cbctl(cbctl, "show", r->name);
        ck_assert_msg(code == 0 || code == 4, "cbctl show exited %d", code); /* 4: not a valid circuit */
        run_cbctl(cbctl, "list", NULL);
        run_cbctl(cbctl, "metrics", NULL);
    }
    atomic_store(&r->stop, 1);
    tl_wait_ok(owner);
    fprintf(stderr, "shrunk under the reader: %lu resizes, %u snapshots, %u CB_ESIZE, %u listings, "
                    "%u x cbctl show/list/metrics\n",
            atomic_load(&r->resizes), snapshots, short_ones, l.seen, runs);
    ck_assert_uint_gt(atomic_load(&r->resizes), 0);
    free(info);
    forget_all();
}
END_TEST

/* ---- cb_list ---- */

struct seen {
    char prefix[96];
    int calls_after_stop;
    int stop_at_first; /* return 42 on our first entry */
    int stopped;
    unsigned n;
    char names[8][128];
    int errs[8];
    int had_info[8];
    cb_state states[8];
};

static int collect(const char *name, const cb_info *info, int err, void *ctx)
{
    struct seen *s = ctx;
    if (s->stopped)
        s->calls_after_stop++;
    if (strncmp(name, s->prefix, strlen(s->prefix)) != 0)
        return 0; /* another test program's circuit */
    if (s->n < 8) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
        s->errs[s->n] = err;
        s->had_info[s->n] = info != NULL;
        s->states[s->n] = info ? info->state : (cb_state)-1;
        if (info)
            ck_assert_str_eq(info->name, name);
        s->n++;
    }
    if (s->stop_at_first) {
        s->stopped = 1;
        return 42;
    }
    return 0;
}

START_TEST(test_list_valid_and_invalid_in_order)
{
    struct seen s;
    memset(&s, 0, sizeof s);
    snprintf(s.prefix, sizeof s.prefix, "test.inspect-list.%d.", (int)getpid());
    /* Made out of order; listed in name order. */
    static const char *const suffix[] = {"d-short", "a-closed", "c-open", "b-garbage", "f-fifo", "e-dir"};
    char names[6][128], path[1024];
    for (int i = 0; i < 6; i++) {
        snprintf(names[i], sizeof names[i], "%s%s", s.prefix, suffix[i]);
        cb_unlink(names[i]);
        rmdir(dev_path(path, sizeof path, names[i]));
        remember(names[i]);
    }
    write_garbage(names[0], 10);
    cb_close(open_circuit(names[1], 0, 0, 0));
    cb_breaker *b = open_circuit(names[2], 1, 60000, 0);
    fail_n(b, 1);
    cb_close(b);
    write_garbage(names[3], (size_t)CB_SEGMENT_SIZE);
    ck_assert_int_eq(mkfifo(dev_path(path, sizeof path, names[4]), 0600), 0);
    ck_assert_int_eq(mkdir(dev_path(path, sizeof path, names[5]), 0700), 0);

    ck_assert_int_eq(cb_list(collect, &s), 0);
    ck_assert_uint_eq(s.n, 6);
    static const int order[6] = {1, 3, 2, 0, 5, 4}; /* a, b, c, d, e, f */
    static const int want_err[6] = {0, CB_ENOTCB, 0, CB_ESIZE, CB_ENOTCB, CB_ENOTCB};
    for (int i = 0; i < 6; i++) {
        ck_assert_str_eq(s.names[i], names[order[i]]);
        ck_assert_msg(s.errs[i] == want_err[i], "%s: err %d (%s), want %d", s.names[i], s.errs[i],
                      cb_strerror(s.errs[i]), want_err[i]);
        ck_assert_int_eq(s.had_info[i], want_err[i] == 0);
    }
    ck_assert_int_eq(s.states[0], CB_CLOSED);
    ck_assert_int_eq(s.states[2], CB_OPEN);
    forget_all();
}
END_TEST

START_TEST(test_list_stops_on_nonzero)
{
    struct seen s;
    memset(&s, 0, sizeof s);
    snprintf(s.prefix, sizeof s.prefix, "test.inspect-stop.%d.", (int)getpid());
    s.stop_at_first = 1;
    for (int i = 0; i < 3; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s%d", s.prefix, i);
        cb_unlink(name);
        cb_close(open_circuit(remember(name), 0, 0, 0));
    }
    ck_assert_int_eq(cb_list(collect, &s), 42);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(s.calls_after_stop, 0);
    ck_assert_int_eq(cb_list(NULL, NULL), -EINVAL);
    forget_all();
}
END_TEST

/* ---- cb_open_private ---- */

struct private_arg {
    cb_breaker *b;
};

/* A child fails its copy open; exits 0 if its own copy says so. */
static int child_trips_own_copy(void *argp)
{
    cb_breaker *b = ((struct private_arg *)argp)->b;
    static cb_info info;
    if (cb_get_state(b) != CB_CLOSED)
        return 1; /* a sibling's failure leaked in */
    cb_get_info(b, &info);
    if (info.counters.allowed != 0 || info.counters.failures != 0)
        return 2;
    fail_n(b, 1);
    if (cb_get_state(b) != CB_OPEN)
        return 3;
    cb_permit p;
    return cb_acquire(b, &p) == CB_REJECTED ? 0 : 4;
}

START_TEST(test_open_private_each_child_own_copy)
{
    const char *name = unique_name("private");
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open_private(name, &cfg, &b), CB_CREATED);
    struct private_arg arg = {b};
    /* One after the other: the second must not see the first's trip. */
    tl_wait_ok(tl_spawn(child_trips_own_copy, &arg));
    tl_wait_ok(tl_spawn(child_trips_own_copy, &arg));
    /* Two at once, too. */
    pid_t p1 = tl_spawn(child_trips_own_copy, &arg);
    pid_t p2 = tl_spawn(child_trips_own_copy, &arg);
    tl_wait_ok(p1);
    tl_wait_ok(p2);

    static cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.counters.allowed, 0);
    ck_assert_uint_eq(info.history_len, 0);
    ck_assert_str_eq(info.name, name);
    /* Nothing shared was made. */
    ck_assert_int_eq(cb_inspect(name, &info), -ENOENT);
    cb_close(b);

    ck_assert_int_eq(cb_open_private("bad name", NULL, &b), CB_ENAME);
    ck_assert_int_eq(cb_open_private(name, NULL, NULL), -EINVAL);
    cb_config bad_mode = {.mode = 01777};
    ck_assert_int_eq(cb_open_private(name, &bad_mode, &b), -EINVAL);
}
END_TEST

static Suite *inspect_suite(void)
{
    Suite *s = suite_create("inspect");
    TCase *tc = tcase_create("inspect");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_inspect_matches_get_info);
    tcase_add_test(tc, test_inspect_errors);
    tcase_add_test(tc, test_inspect_read_permission_is_enough);
    tcase_add_test(tc, test_inspect_skips_entry_of_two_generations);
    tcase_add_test(tc, test_inspect_survives_segment_shrunk_under_it);
    suite_add_tcase(s, tc);

    tc = tcase_create("list");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_list_valid_and_invalid_in_order);
    tcase_add_test(tc, test_list_stops_on_nonzero);
    suite_add_tcase(s, tc);

    tc = tcase_create("private");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_open_private_each_child_own_copy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    registry = mmap(NULL, sizeof *registry, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (registry == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    int status = tl_run_suite(inspect_suite());
    forget_all();
    return status;
}
