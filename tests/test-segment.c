/*
 * test-segment.c - naming, creation, attach validation and bad input.
 *
 * What a circuit's shared-memory object /cbreaker.NAME (/dev/shm/...) goes
 * through before any state change happens:
 *
 *   names      NULL, empty, 200 and 201 characters, every kind of bad
 *              character, the good punctuation; the same for cb_open,
 *              cb_attach and cb_unlink, and a rejected name creates nothing.
 *   lifecycle  CB_CREATED then CB_OPENED; cb_attach never creates; cb_unlink
 *              removes the name (twice: -ENOENT) and open handles go on
 *              working on the unlinked segment.
 *   mode       new segments are 0600 (or cfg.mode) whatever the umask; bits
 *              beyond 0777, or others-write (0002: a segment every opener
 *              would refuse), are -EINVAL; the mode of an existing segment is
 *              never changed by a reopen.
 *   access     as root, a child running as nobody gets -EACCES from cb_open,
 *              cb_attach and cb_unlink on a root-owned segment it may not
 *              write, and CB_EOWNER on one anyone may write (skipped,
 *              with a message, when not root).
 *   owner      (as root, children with real uids: nobody, 4242..4244,
 *              group 4300) a squatter's segment (0666, 0644, garbage)
 *              and a world-writable one are refused with CB_EOWNER by
 *              root and by others, and left byte for byte unchanged,
 *              config included; the nginx pattern (root creates 0660 with
 *              the workers' group, workers open it by name) works;
 *              CB_OPEN_TRUST_GROUP trusts a member's 0660 segment (group
 *              as egid or supplementary), never a 0666 one; unknown flag
 *              bits are -EINVAL.
 *   foreign    objects that are not (or no longer) valid segments: garbage,
 *              short objects, a valid segment with its magic, layout
 *              version, size field, shape changed, truncated or grown.
 *              Each gives its own error from cb_open and cb_attach, never
 *              SIGBUS, and is left byte-for-byte unchanged. Objects that
 *              are not regular files (a FIFO nobody writes to, a character
 *              device, a directory) are refused at once (well under
 *              100 ms: no hang, no 2 s wait) and left as they are.
 *   legacy     objects an older library left unready (size 0, ready word
 *              0, its claim by a live or dead pid): CB_EBUSY at once,
 *              untouched; once removed, the name is created afresh.
 *   create     (see src/shm.c) no half-made object is ever visible: an
 *              observer polls the name while creators are SIGKILLed at
 *              random points; creators whose main thread called
 *              pthread_exit(), creators in another pid namespace, two
 *              users of one group under umask 077: always exactly one
 *              CB_CREATED and one circuit (a trip by one is seen by all,
 *              generation 1, every failure counted); a thread cancelled in
 *              cb_open wedges nothing and leaks no fd; without /proc the
 *              temporary-name fallback does the same and leaves no name.
 *   race       16 processes open one new name at the same instant: exactly
 *              one creates, all share one circuit, and the creator finds
 *              its own mode on it (each racer asks for another one);
 *              repeated with fresh names.
 *   config     reopen with another config: CB_CONFIG_UPDATED and the new
 *              values; the same config: CB_OPENED.
 *   survival   the circuit outlives the processes that used it.
 *   strerror   every CB_E* code has its own message, errno codes the
 *              system's text, anything else "unknown error"; cb_version().
 *
 * White box: reads src/segment.h for the offsets of the frozen prefix.
 * Every name comes from tl_unique_name() and every test removes what it
 * made; names are also remembered in memory shared with the runner, whose
 * tcase teardown removes them even after a failed assertion.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include) && __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
/* Rounds of a repeated race; a fifth under valgrind, which runs them
 * (forks included) some 30 times slower and looks for memory errors. */
#define ROUNDS(n) (RUNNING_ON_VALGRIND ? ((n) + 4) / 5 : (n))

#include "cbreaker.h"
#include "segment.h"
#include "shm.h"
#include "testlib.h"

#define NOBODY 65534
#define RACERS 16
#define RACE_ROUNDS 20

#define OFF_MAGIC offsetof(struct cb_segment, magic)
#define OFF_VERSION offsetof(struct cb_segment, layout_version)
#define OFF_SHAPE offsetof(struct cb_segment, shape)
#define OFF_SIZE offsetof(struct cb_segment, size)
#define OFF_READY offsetof(struct cb_segment, ready)

/* ------------------------------------------------------------------ */
/* Names used, remembered in memory shared with the runner process so  */
/* that a failed test's objects are removed by the tcase teardown.     */
/* ------------------------------------------------------------------ */

#define REGISTRY_MAX 4096 /* the create tcase alone names some 1200 */

struct registry {
    _Atomic unsigned count;
    char names[REGISTRY_MAX][CB_NAME_MAX + 2];
};
static struct registry *registry;

static void remember(const char *name)
{
    if (!registry || strlen(name) > CB_NAME_MAX + 1)
        return;
    unsigned i = atomic_fetch_add(&registry->count, 1);
    if (i < REGISTRY_MAX)
        snprintf(registry->names[i], sizeof registry->names[i], "%s", name);
}

/* tl_unique_name(), remembered for the safety-net cleanup. */
static const char *unique_name(const char *tag)
{
    char seg_tag[64];
    snprintf(seg_tag, sizeof seg_tag, "seg-%s", tag); /* ours, at a glance */
    const char *name = tl_unique_name(seg_tag);
    remember(name);
    return name;
}

/* Unchecked teardown (runs in the runner, even after a failure). */
static void forget_all(void)
{
    unsigned n = atomic_load(&registry->count);
    for (unsigned i = 0; i < n && i < REGISTRY_MAX; i++) {
        char path[CB_NAME_MAX + 64];
        snprintf(path, sizeof path, "%s%s", CB_SHM_PREFIX, registry->names[i]);
        if (shm_unlink(path) != 0) {
            snprintf(path, sizeof path, "/dev/shm%s%s", CB_SHM_PREFIX, registry->names[i]);
            rmdir(path); /* a directory made by test_foreign_not_regular */
        }
    }
    atomic_store(&registry->count, 0);
}

/* ------------------------------------------------------------------ */
/* Helpers: the object behind a name, reached without the library.     */
/* ------------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* "/cbreaker.NAME", as shm_open wants it. */
static const char *shm_name(const char *name)
{
    static char buf[4][2048];
    static unsigned next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s%s", CB_SHM_PREFIX, name);
    return p;
}

/* "/dev/shm/cbreaker.NAME", for stat. */
static const char *dev_path(const char *name)
{
    static char buf[4][2048];
    static unsigned next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "/dev/shm%s%s", CB_SHM_PREFIX, name);
    return p;
}

static int obj_exists(const char *name)
{
    struct stat st;
    return stat(dev_path(name), &st) == 0;
}

static struct stat obj_stat(const char *name)
{
    struct stat st;
    ck_assert_msg(stat(dev_path(name), &st) == 0, "stat %s: %s", dev_path(name), strerror(errno));
    return st;
}

static mode_t obj_mode(const char *name)
{
    return obj_stat(name).st_mode & 07777;
}

static uint64_t obj_size(const char *name)
{
    return (uint64_t)obj_stat(name).st_size;
}

/* Remove whatever a test left; the name may be invalid or already gone. */
static void obj_cleanup(const char *name)
{
    shm_unlink(shm_name(name));
}

/* All bytes of the object (malloc'd; *len gets the size). */
static unsigned char *obj_read(const char *name, size_t *len)
{
    int fd = shm_open(shm_name(name), O_RDONLY, 0);
    ck_assert_msg(fd >= 0, "shm_open %s: %s", name, strerror(errno));
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    unsigned char *buf = malloc(*len + 1);
    ck_assert_ptr_nonnull(buf);
    size_t done = 0;
    while (done < *len) {
        ssize_t n = pread(fd, buf + done, *len - done, (off_t)done);
        ck_assert_msg(n > 0, "pread %s: %s", name, strerror(errno));
        done += (size_t)n;
    }
    close(fd);
    return buf;
}

/* Create a foreign object with exactly these bytes (len may be 0). */
static void obj_create(const char *name, const void *data, size_t len, mode_t mode)
{
    int fd = shm_open(shm_name(name), O_RDWR | O_CREAT | O_EXCL, mode);
    ck_assert_msg(fd >= 0, "shm_open(O_CREAT|O_EXCL) %s: %s", name, strerror(errno));
    ck_assert_int_eq(fchmod(fd, mode), 0);
    if (len) {
        ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
        ck_assert_int_eq(pwrite(fd, data, len, 0), (ssize_t)len);
    }
    close(fd);
}

static void obj_pwrite(const char *name, size_t off, const void *data, size_t len)
{
    int fd = shm_open(shm_name(name), O_RDWR, 0);
    ck_assert_msg(fd >= 0, "shm_open %s: %s", name, strerror(errno));
    ck_assert_int_eq(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void obj_truncate(const char *name, uint64_t len)
{
    int fd = shm_open(shm_name(name), O_RDWR, 0);
    ck_assert_msg(fd >= 0, "shm_open %s: %s", name, strerror(errno));
    ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
    close(fd);
}

/* A segment-sized image: every byte `fill`, the ready word `ready`. */
static unsigned char *image(unsigned char fill, uint64_t ready)
{
    unsigned char *img = malloc(CB_SEGMENT_SIZE);
    ck_assert_ptr_nonnull(img);
    memset(img, fill, CB_SEGMENT_SIZE);
    memcpy(img + OFF_READY, &ready, sizeof ready);
    return img;
}

/* A valid segment made by the library, closed again. A mode others may
 * write, which the library refuses to create, is set afterwards (what a
 * careless or hostile owner's chmod does). */
static void make_valid(const char *name, const cb_config *cfg)
{
    cb_config safe = cfg ? *cfg : (cb_config){0};
    safe.mode &= ~0002u;
    cb_breaker *b = NULL;
    int rc = cb_open(name, cfg ? &safe : NULL, &b);
    ck_assert_msg(rc == CB_CREATED, "cb_open(%s) = %d (%s), want CB_CREATED", name, rc, cb_strerror(rc));
    cb_close(b);
    if (cfg && cfg->mode != safe.mode)
        ck_assert_int_eq(chmod(dev_path(name), (mode_t)cfg->mode), 0);
}

/* The frozen prefix of a segment the library initialized. */
static void assert_initialized_prefix(const char *name)
{
    size_t len;
    unsigned char *img = obj_read(name, &len);
    ck_assert_uint_eq(len, CB_SEGMENT_SIZE);
    uint64_t magic, size, ready;
    uint32_t version, shape;
    memcpy(&magic, img + OFF_MAGIC, 8);
    memcpy(&version, img + OFF_VERSION, 4);
    memcpy(&shape, img + OFF_SHAPE, 4);
    memcpy(&size, img + OFF_SIZE, 8);
    memcpy(&ready, img + OFF_READY, 8);
    ck_assert_uint_eq(magic, CB_MAGIC);
    ck_assert_uint_eq(version, CB_LAYOUT_VERSION);
    ck_assert_uint_eq(shape, CB_SHAPE);
    ck_assert_uint_eq(size, CB_SEGMENT_SIZE);
    ck_assert_uint_eq(ready, CB_READY);
    free(img);
}

/*
 * A freshly initialized circuit with this threshold that works: nothing
 * left over from whatever was in the object before, threshold failures
 * trip it, and a second handle (cb_attach) sees the same circuit.
 */
static void assert_fresh_and_working(const char *name, cb_breaker *b, uint32_t threshold)
{
    assert_initialized_prefix(name);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.failures, 0);
    ck_assert_uint_eq(info.config.failure_threshold, threshold);
    ck_assert_uint_eq(info.layout_version, CB_LAYOUT_VERSION);
    ck_assert_uint_eq(info.segment_size, CB_SEGMENT_SIZE);
    ck_assert_uint_eq(info.history_len, 0);
    ck_assert_uint_eq(info.counters.allowed + info.counters.rejected + info.counters.successes +
                          info.counters.failures + info.counters.released + info.counters.late +
                          info.counters.trips + info.counters.probes,
                      0);
    for (uint32_t i = 0; i < threshold; i++) {
        cb_permit p;
        ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
        cb_failure(b, &p);
    }
    ck_assert_int_eq(cb_get_state(b), CB_OPEN);
    cb_breaker *other = NULL;
    ck_assert_int_eq(cb_attach(name, &other), CB_OPENED);
    ck_assert_int_eq(cb_get_state(other), CB_OPEN);
    ck_assert_int_eq(cb_get_info(other, &info), 0);
    ck_assert_uint_eq(info.counters.failures, threshold);
    ck_assert_uint_eq(info.counters.trips, 1);
    ck_assert_uint_eq(info.history_len, 1);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_THRESHOLD);
    cb_close(other);
}

/* A child that just lives (until killed, or 60 s as a safety net). */
static int sleeper(void *arg)
{
    (void)arg;
    alarm(60);
    for (;;)
        pause();
    return 0;
}

/* Kill and reap a sleeper; it must have died of SIGKILL. */
static void kill_and_reap(pid_t pid)
{
    int status;
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* The pid of a process that existed and is now dead and reaped. */
static pid_t dead_pid(void)
{
    pid_t pid = tl_spawn(sleeper, NULL);
    kill_and_reap(pid);
    ck_assert_int_eq(kill(pid, 0), -1);
    ck_assert_int_eq(errno, ESRCH);
    return pid;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

/* A name of exactly len characters, unique to this process. */
static void long_name(char *out, size_t len, const char *tag)
{
    const char *base = unique_name(tag);
    size_t n = strlen(base);
    ck_assert_uint_le(n, len);
    memcpy(out, base, n);
    for (size_t i = n; i < len; i++)
        out[i] = (char)('a' + i % 26);
    out[len] = '\0';
    remember(out);
    obj_cleanup(out);
}

/* name is rejected with `want` by all three entry points; nothing appears. */
static void assert_name_rejected(const char *name, int want)
{
    if (name) { /* in case a broken library creates it (or a cut-off form) */
        char cut[CB_NAME_MAX + 1];
        snprintf(cut, sizeof cut, "%s", name);
        remember(cut);
        remember(name);
    }
    cb_breaker *b = (cb_breaker *)&b; /* must be reset to NULL */
    cb_config cfg = {.failure_threshold = 5, .reset_timeout_ms = 1000};
    int rc = cb_open(name, NULL, &b);
    ck_assert_msg(rc == want, "cb_open(\"%s\") = %d, want %d", name ? name : "(null)", rc, want);
    ck_assert_ptr_null(b);
    b = (cb_breaker *)&b;
    rc = cb_open(name, &cfg, &b);
    ck_assert_msg(rc == want, "cb_open(\"%s\", cfg) = %d, want %d", name ? name : "(null)", rc, want);
    ck_assert_ptr_null(b);
    b = (cb_breaker *)&b;
    rc = cb_attach(name, &b);
    ck_assert_msg(rc == want, "cb_attach(\"%s\") = %d, want %d", name ? name : "(null)", rc, want);
    ck_assert_ptr_null(b);
    rc = cb_unlink(name);
    ck_assert_msg(rc == want, "cb_unlink(\"%s\") = %d, want %d", name ? name : "(null)", rc, want);
    if (name) {
        int exists = obj_exists(name);
        obj_cleanup(name);
        ck_assert_msg(!exists, "rejected name \"%s\" created %s", name, dev_path(name));
    }
}

/* name works with cb_open, cb_attach and cb_unlink. */
static void assert_name_works(const char *name)
{
    remember(name);
    obj_cleanup(name);
    cb_breaker *b = NULL;
    int rc = cb_open(name, NULL, &b);
    ck_assert_msg(rc == CB_CREATED, "cb_open(\"%s\") = %d (%s)", name, rc, cb_strerror(rc));
    ck_assert_msg(obj_exists(name), "%s missing after cb_open", dev_path(name));
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_str_eq(info.name, name);
    cb_breaker *a = NULL;
    rc = cb_attach(name, &a);
    ck_assert_msg(rc == CB_OPENED, "cb_attach(\"%s\") = %d (%s)", name, rc, cb_strerror(rc));
    cb_close(a);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
    ck_assert(!obj_exists(name));
    ck_assert_int_eq(cb_unlink(name), -ENOENT);
    ck_assert_int_eq(cb_attach(name, &a), -ENOENT);
}

START_TEST(test_name_null_and_empty)
{
    assert_name_rejected(NULL, -EINVAL);
    assert_name_rejected("", CB_ENAME);

    /* out NULL: -EINVAL, and nothing is created. */
    const char *name = unique_name("nullout");
    ck_assert_int_eq(cb_open(name, NULL, NULL), -EINVAL);
    ck_assert_int_eq(cb_attach(name, NULL), -EINVAL);
    ck_assert(!obj_exists(name));
}
END_TEST

START_TEST(test_name_length)
{
    char name[CB_NAME_MAX + 2];

    long_name(name, CB_NAME_MAX + 1, "len201");
    ck_assert_uint_eq(strlen(name), 201);
    assert_name_rejected(name, CB_ENAME);

    /* Much longer than any file name may be. */
    char huge[1024];
    long_name(huge, sizeof huge - 1, "len1023");
    assert_name_rejected(huge, CB_ENAME);

    long_name(name, CB_NAME_MAX, "len200");
    ck_assert_uint_eq(strlen(name), 200);
    assert_name_works(name);
}
END_TEST

START_TEST(test_name_bad_chars)
{
    static const char *bad[] = {"/", " ", ":", "\n", "*", "\t", "\\", "%", "?", "+", "\x7f",
                                "\x01", "\x80", "\xff", "\xc3\xa9" /* U+00E9 in UTF-8 */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *base = unique_name("bad");
        char name[256];
        snprintf(name, sizeof name, "%s%sx", base, bad[i]); /* inside */
        assert_name_rejected(name, CB_ENAME);
        snprintf(name, sizeof name, "%s%s", base, bad[i]); /* at the end */
        assert_name_rejected(name, CB_ENAME);
        snprintf(name, sizeof name, "%s%s", bad[i], base); /* at the start */
        assert_name_rejected(name, CB_ENAME);
    }
    /* Path tricks. */
    const char *base = unique_name("trick");
    char name[256];
    snprintf(name, sizeof name, "../%s", base);
    assert_name_rejected(name, CB_ENAME);
    snprintf(name, sizeof name, "%s/..", base);
    assert_name_rejected(name, CB_ENAME);
}
END_TEST

START_TEST(test_name_good_chars)
{
    const char *base = unique_name("a.b_c-d.0123456789");
    char name[256];

    assert_name_works(base);

    snprintf(name, sizeof name, "%s", base);
    for (char *c = name; *c; c++)
        if (*c == '.')
            *c = '_';
    assert_name_works(name); /* underscores only */
    for (char *c = name; *c; c++)
        if (*c == '_')
            *c = '-';
    assert_name_works(name); /* dashes only */

    snprintf(name, sizeof name, ".%s", base);
    assert_name_works(name); /* leading dot */
    snprintf(name, sizeof name, "-%s", base);
    assert_name_works(name); /* leading dash */
    snprintf(name, sizeof name, "%s.", base);
    assert_name_works(name); /* trailing dot */
    snprintf(name, sizeof name, "UPPER.%s", base);
    assert_name_works(name);

    /* Digits only, still unique to this process. */
    size_t n = 0;
    for (const char *c = base; *c && n < sizeof name - 1; c++)
        if (*c >= '0' && *c <= '9')
            name[n++] = *c;
    name[n] = '\0';
    ck_assert_uint_gt(n, 0);
    assert_name_works(name);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */
/* ------------------------------------------------------------------ */

START_TEST(test_created_then_opened)
{
    const char *name = unique_name("created");
    cb_config cfg = {.failure_threshold = 4, .reset_timeout_ms = 1000};
    cb_breaker *b1 = NULL, *b2 = NULL, *b3 = NULL;

    ck_assert(!obj_exists(name));
    ck_assert_int_eq(cb_open(name, &cfg, &b1), CB_CREATED);
    ck_assert_ptr_nonnull(b1);
    ck_assert(obj_exists(name));
    ck_assert_uint_eq(obj_size(name), CB_SEGMENT_SIZE);
    assert_initialized_prefix(name);
    ck_assert_int_eq(cb_open(name, &cfg, &b2), CB_OPENED);
    ck_assert_int_eq(cb_open(name, NULL, &b3), CB_OPENED);

    /* One circuit behind all three handles. */
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b2, &p), CB_ALLOWED);
    cb_failure(b2, &p);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b3, &info), 0);
    ck_assert_uint_eq(info.failures, 1);
    ck_assert_uint_eq(info.config.failure_threshold, 4);

    cb_close(b1);
    cb_close(b2);
    cb_close(b3);
    cb_close(NULL); /* ignored */

    /* The circuit stays after every handle is closed. */
    ck_assert(obj_exists(name));
    ck_assert_int_eq(cb_open(name, &cfg, &b1), CB_OPENED);
    ck_assert_int_eq(cb_get_info(b1, &info), 0);
    ck_assert_uint_eq(info.failures, 1);
    cb_close(b1);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_defaults_on_create)
{
    const char *name = unique_name("defaults");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_uint_eq(info.config.failure_threshold, CB_DEFAULT_FAILURE_THRESHOLD);
    ck_assert_uint_eq(info.config.reset_timeout_ms, CB_DEFAULT_RESET_TIMEOUT_MS);
    ck_assert_uint_eq(info.config.probe_timeout_ms, CB_DEFAULT_RESET_TIMEOUT_MS);
    ck_assert_uint_eq(info.config.mode, CB_DEFAULT_MODE);
    ck_assert_int_eq(info.state, CB_CLOSED);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_attach_missing)
{
    const char *name = unique_name("missing");
    cb_breaker *b = (cb_breaker *)&b;
    ck_assert_int_eq(cb_attach(name, &b), -ENOENT);
    ck_assert_ptr_null(b);
    ck_assert(!obj_exists(name));
    /* Twice: still nothing. */
    ck_assert_int_eq(cb_attach(name, &b), -ENOENT);
    ck_assert(!obj_exists(name));
    ck_assert_int_eq(cb_unlink(name), -ENOENT);
}
END_TEST

START_TEST(test_unlink)
{
    const char *name = unique_name("unlink");
    make_valid(name, NULL);
    ck_assert(obj_exists(name));
    ck_assert_int_eq(cb_unlink(name), 0);
    ck_assert(!obj_exists(name));
    ck_assert_int_eq(cb_unlink(name), -ENOENT);
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_attach(name, &b), -ENOENT);
}
END_TEST

START_TEST(test_handle_survives_unlink)
{
    const char *name = unique_name("survive");
    cb_config cfg = {.failure_threshold = 2, .reset_timeout_ms = 60000};
    cb_breaker *old = NULL, *fresh = NULL;
    ck_assert_int_eq(cb_open(name, &cfg, &old), CB_CREATED);
    ck_assert_int_eq(cb_unlink(name), 0);
    ck_assert(!obj_exists(name));

    /* The unlinked segment still works through the old handle. */
    cb_permit p;
    ck_assert_int_eq(cb_acquire(old, &p), CB_ALLOWED);
    cb_failure(old, &p);
    cb_info info;
    ck_assert_int_eq(cb_get_info(old, &info), 0);
    ck_assert_uint_eq(info.failures, 1);
    ck_assert_int_eq(cb_acquire(old, &p), CB_ALLOWED);
    cb_failure(old, &p);
    ck_assert_int_eq(cb_get_state(old), CB_OPEN);
    ck_assert_int_eq(cb_reset(old), CB_OPEN);
    ck_assert_int_eq(cb_get_state(old), CB_CLOSED);
    ck_assert_int_eq(cb_trip(old), CB_CLOSED);
    ck_assert_int_eq(cb_get_state(old), CB_OPEN);

    /* A new open of the name is a new, independent circuit. */
    ck_assert_int_eq(cb_open(name, &cfg, &fresh), CB_CREATED);
    ck_assert_int_eq(cb_get_state(fresh), CB_CLOSED);
    ck_assert_int_eq(cb_get_info(fresh, &info), 0);
    ck_assert_uint_eq(info.counters.trips, 0);
    ck_assert_int_eq(cb_acquire(fresh, &p), CB_ALLOWED);
    cb_failure(fresh, &p);
    ck_assert_int_eq(cb_get_state(old), CB_OPEN);
    ck_assert_int_eq(cb_get_info(old, &info), 0);
    ck_assert_uint_eq(info.counters.failures, 2);
    ck_assert_int_eq(cb_get_info(fresh, &info), 0);
    ck_assert_uint_eq(info.failures, 1);

    cb_close(old);
    cb_close(fresh);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Mode                                                                */
/* ------------------------------------------------------------------ */

/* Create name under umask `mask` with cfg (may be NULL); mode must be want. */
static void assert_created_mode(const char *tag, mode_t mask, const cb_config *cfg, mode_t want)
{
    const char *name = unique_name(tag);
    mode_t old = umask(mask);
    cb_breaker *b = NULL;
    int rc = cb_open(name, cfg, &b);
    umask(old);
    ck_assert_msg(rc == CB_CREATED, "cb_open = %d (%s)", rc, cb_strerror(rc));
    mode_t got = obj_mode(name);
    ck_assert_msg(got == want, "umask %03o, cfg.mode %04o: object mode %04o, want %04o", (unsigned)mask,
                  cfg ? cfg->mode : 0u, (unsigned)got, (unsigned)want);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_uint_eq(info.config.mode, want);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}

START_TEST(test_mode_default)
{
    cb_config zero = {0};
    assert_created_mode("mode077", 077, NULL, 0600);
    assert_created_mode("mode000", 0, NULL, 0600);
    assert_created_mode("mode022", 022, NULL, 0600);
    assert_created_mode("mode777", 0777, NULL, 0600);
    assert_created_mode("modezero077", 077, &zero, 0600);
    assert_created_mode("modezero000", 0, &zero, 0600);
}
END_TEST

START_TEST(test_mode_explicit)
{
    cb_config c0640 = {.mode = 0640};
    cb_config c0664 = {.mode = 0664};
    cb_config c0400 = {.mode = 0400};
    assert_created_mode("m0640u077", 077, &c0640, 0640);
    assert_created_mode("m0640u000", 0, &c0640, 0640);
    assert_created_mode("m0664u022", 022, &c0664, 0664);
    assert_created_mode("m0400u000", 0, &c0400, 0400);

    /* cfg.mode applies only to a new segment: a reopen leaves it alone. */
    const char *name = unique_name("modekeep");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &c0640, &b), CB_CREATED);
    cb_close(b);
    cb_config c0600 = {.mode = 0600};
    ck_assert_int_eq(cb_open(name, &c0600, &b), CB_OPENED);
    ck_assert_uint_eq(obj_mode(name), 0640);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_mode_invalid)
{
    static const uint32_t bad[] = {01000, 02000, 04000, 0100000, 0100600, 01777, 0xffffffffu,
                                   0666, 0602, 0002, 0777}; /* others may write */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *name = unique_name("badmode");
        cb_config cfg = {.mode = bad[i]};
        cb_breaker *b = (cb_breaker *)&b;
        int rc = cb_open(name, &cfg, &b);
        ck_assert_msg(rc == -EINVAL, "cfg.mode %o: cb_open = %d, want -EINVAL", bad[i], rc);
        ck_assert_ptr_null(b);
        int exists = obj_exists(name);
        obj_cleanup(name);
        ck_assert_msg(!exists, "cfg.mode %o: object created anyway", bad[i]);
    }
    /* Also on an existing circuit. */
    const char *name = unique_name("badmode-existing");
    make_valid(name, NULL);
    cb_config cfg = {.mode = 01000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &cfg, &b), -EINVAL);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Permission denied                                                   */
/* ------------------------------------------------------------------ */

struct as_nobody_arg {
    const char *name;
    int want; /* from cb_open (NULL cfg and cfg) and cb_attach */
    int want_unlink;
};

/* Drops to nobody, then opens; exits 0 if every result was as wanted. */
static int as_nobody(void *argp)
{
    const struct as_nobody_arg *arg = argp;
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
        fprintf(stderr, "as_nobody: dropping privileges: %s\n", strerror(errno));
        return 90;
    }
    if (geteuid() != NOBODY || getegid() != NOBODY || setuid(0) == 0) {
        fprintf(stderr, "as_nobody: still privileged\n");
        return 91;
    }
    int bad = 0;
    cb_config cfg = {0};
    cb_breaker *b = NULL;
    int rc = cb_open(arg->name, NULL, &b);
    if (rc != arg->want) {
        fprintf(stderr, "as_nobody: cb_open(%s) = %d (%s), want %d\n", arg->name, rc, cb_strerror(rc), arg->want);
        bad |= 1;
    }
    if (rc >= 0) {
        cb_permit p;
        if (cb_acquire(b, &p) != CB_ALLOWED)
            bad |= 2;
        cb_failure(b, &p);
        cb_close(b);
    }
    rc = cb_open(arg->name, &cfg, &b);
    if (rc != arg->want) {
        fprintf(stderr, "as_nobody: cb_open(%s, cfg) = %d (%s), want %d\n", arg->name, rc, cb_strerror(rc), arg->want);
        bad |= 4;
    }
    if (rc >= 0)
        cb_close(b);
    rc = cb_attach(arg->name, &b);
    if (rc != arg->want) {
        fprintf(stderr, "as_nobody: cb_attach(%s) = %d (%s), want %d\n", arg->name, rc, cb_strerror(rc), arg->want);
        bad |= 8;
    }
    if (rc >= 0)
        cb_close(b);
    rc = cb_unlink(arg->name);
    if (rc != arg->want_unlink) {
        fprintf(stderr, "as_nobody: cb_unlink(%s) = %d (%s), want %d\n", arg->name, rc, cb_strerror(rc),
                arg->want_unlink);
        bad |= 16;
    }
    return bad;
}

/* A root-owned circuit of `mode`, tried by nobody. */
static void try_as_nobody(const char *tag, uint32_t mode, int want, int want_unlink)
{
    const char *name = unique_name(tag);
    cb_config cfg = {.mode = mode};
    make_valid(name, &cfg);
    struct stat st = obj_stat(name);
    ck_assert_uint_eq(st.st_uid, 0);
    ck_assert_uint_eq(st.st_mode & 0777, mode);
    size_t n0, n1;
    unsigned char *before = obj_read(name, &n0);

    struct as_nobody_arg arg = {name, want, want_unlink};
    tl_wait_ok(tl_spawn(as_nobody, &arg));

    /* Still there and untouched, unless nobody was allowed in. */
    ck_assert(obj_exists(name));
    if (want < 0) {
        unsigned char *after = obj_read(name, &n1);
        ck_assert_uint_eq(n0, n1);
        ck_assert(memcmp(before, after, n0) == 0);
        free(after);
    }
    cb_info info; /* read-only: root does not attach to a 0666 segment */
    ck_assert_int_eq(cb_inspect(name, &info), 0);
    ck_assert_uint_eq(info.counters.failures, want < 0 ? 0 : 1);
    free(before);
    ck_assert_int_eq(cb_unlink(name), 0);
}

START_TEST(test_permission_denied)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_permission_denied: skipped, needs root to switch to uid %d\n", NOBODY);
        return;
    }
    try_as_nobody("perm0600", 0600, -EACCES, -EACCES);
    /* Read access is not enough: the segment is opened read-write. */
    try_as_nobody("perm0644", 0644, -EACCES, -EACCES);
    /* Writable by anyone: nobody could write it, but refuses to trust it
     * (and may not remove root's name from the sticky /dev/shm). The
     * control, a shared circuit, is test_owner_nginx_pattern. */
    try_as_nobody("perm0666", 0666, CB_EOWNER, -EACCES);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Foreign and damaged objects                                         */
/* ------------------------------------------------------------------ */

struct expect_arg {
    const char *name;
    int want;
};

/* In a child: both entry points give want (and the child does not die). */
static int open_expecting(void *argp)
{
    const struct expect_arg *arg = argp;
    cb_config cfg = {.failure_threshold = 5, .reset_timeout_ms = 1000};
    cb_breaker *b = NULL;
    int bad = 0, rc;
    if ((rc = cb_open(arg->name, NULL, &b)) != arg->want) {
        fprintf(stderr, "cb_open(%s) = %d (%s), want %d\n", arg->name, rc, cb_strerror(rc), arg->want);
        bad |= 1;
    }
    if ((rc = cb_open(arg->name, &cfg, &b)) != arg->want) {
        fprintf(stderr, "cb_open(%s, cfg) = %d (%s), want %d\n", arg->name, rc, cb_strerror(rc), arg->want);
        bad |= 2;
    }
    if ((rc = cb_attach(arg->name, &b)) != arg->want) {
        fprintf(stderr, "cb_attach(%s) = %d (%s), want %d\n", arg->name, rc, cb_strerror(rc), arg->want);
        bad |= 4;
    }
    return bad;
}

/*
 * cb_open (with and without cfg) and cb_attach all fail with want, first
 * in a child (so that a SIGBUS shows up as a bad exit), then here; the
 * object keeps its bytes, size and mode.
 */
static void assert_rejected(const char *name, int want, const char *what)
{
    size_t n0, n1;
    unsigned char *before = obj_read(name, &n0);
    mode_t mode0 = obj_mode(name);

    struct expect_arg arg = {name, want};
    tl_wait_ok(tl_spawn(open_expecting, &arg));

    cb_config cfg = {.failure_threshold = 5, .reset_timeout_ms = 1000};
    cb_breaker *b = (cb_breaker *)&b;
    int rc = cb_open(name, NULL, &b);
    ck_assert_msg(rc == want, "%s: cb_open = %d (%s), want %d (%s)", what, rc, cb_strerror(rc), want,
                  cb_strerror(want));
    ck_assert_ptr_null(b);
    b = (cb_breaker *)&b;
    rc = cb_open(name, &cfg, &b);
    ck_assert_msg(rc == want, "%s: cb_open(cfg) = %d (%s), want %d (%s)", what, rc, cb_strerror(rc), want,
                  cb_strerror(want));
    ck_assert_ptr_null(b);
    b = (cb_breaker *)&b;
    rc = cb_attach(name, &b);
    ck_assert_msg(rc == want, "%s: cb_attach = %d (%s), want %d (%s)", what, rc, cb_strerror(rc), want,
                  cb_strerror(want));
    ck_assert_ptr_null(b);

    unsigned char *after = obj_read(name, &n1);
    ck_assert_msg(n0 == n1, "%s: size changed from %zu to %zu", what, n0, n1);
    ck_assert_msg(n0 == 0 || memcmp(before, after, n0) == 0, "%s: object modified by a failed open", what);
    ck_assert_uint_eq(obj_mode(name), mode0);
    free(before);
    free(after);
}

START_TEST(test_foreign_garbage)
{
    /* Random bytes, exactly the segment size. */
    const char *name = unique_name("garbage");
    unsigned char *img = malloc(CB_SEGMENT_SIZE);
    ck_assert_ptr_nonnull(img);
    ck_assert_int_eq(getrandom(img, CB_SEGMENT_SIZE, 0), (ssize_t)CB_SEGMENT_SIZE);
    uint64_t ready;
    memcpy(&ready, img + OFF_READY, 8);
    if (ready == 0 || (ready & CB_CLAIM_MASK) == CB_CLAIM_TAG) /* odds 2^-40: keep it garbage */
        img[OFF_READY + 7] ^= 0x80;
    obj_create(name, img, CB_SEGMENT_SIZE, 0600);
    assert_rejected(name, CB_ENOTCB, "random garbage");
    shm_unlink(shm_name(name));

    /* Random bytes, but a ready word that says READY. */
    name = unique_name("garbage-ready");
    ready = CB_READY;
    memcpy(img + OFF_READY, &ready, 8);
    obj_create(name, img, CB_SEGMENT_SIZE, 0600);
    assert_rejected(name, CB_ENOTCB, "random garbage, ready word READY");
    shm_unlink(shm_name(name));

    /* A text file of the segment size. */
    name = unique_name("garbage-text");
    for (size_t i = 0; i < CB_SEGMENT_SIZE; i++)
        img[i] = (unsigned char)"not a circuit breaker\n"[i % 22];
    obj_create(name, img, CB_SEGMENT_SIZE, 0600);
    assert_rejected(name, CB_ENOTCB, "text");
    shm_unlink(shm_name(name));
    free(img);

    /* Zeros with a ready word that is neither 0, READY nor a claim. */
    static const uint64_t odd_ready[] = {1, CB_READY ^ 1, CB_READY << 8, CB_CLAIM_TAG ^ (UINT64_C(1) << 63),
                                         UINT64_MAX};
    for (size_t i = 0; i < sizeof odd_ready / sizeof odd_ready[0]; i++) {
        name = unique_name("odd-ready");
        img = image(0, odd_ready[i]);
        obj_create(name, img, CB_SEGMENT_SIZE, 0600);
        char what[64];
        snprintf(what, sizeof what, "ready word 0x%016llx", (unsigned long long)odd_ready[i]);
        assert_rejected(name, CB_ENOTCB, what);
        shm_unlink(shm_name(name));
        free(img);
    }
}
END_TEST

START_TEST(test_foreign_short)
{
    /* Shorter than the 32-byte frozen prefix: CB_ESIZE, never SIGBUS. */
    static const size_t sizes[] = {1, 7, 24, 31};
    unsigned char junk[32];
    memset(junk, 0x5a, sizeof junk);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const char *name = unique_name("short");
        obj_create(name, junk, sizes[i], 0600);
        char what[64];
        snprintf(what, sizeof what, "%zu garbage bytes", sizes[i]);
        assert_rejected(name, CB_ESIZE, what);
        shm_unlink(shm_name(name));
    }

    /* Just the 32-byte prefix of a valid segment. */
    const char *name = unique_name("prefix-only");
    make_valid(name, NULL);
    obj_truncate(name, CB_PREFIX_SIZE);
    assert_rejected(name, CB_ESIZE, "valid prefix only");
    shm_unlink(shm_name(name));

    /* A valid segment cut inside the prefix, before the ready word ends. */
    name = unique_name("cut-prefix");
    make_valid(name, NULL);
    obj_truncate(name, OFF_READY + 4);
    assert_rejected(name, CB_ESIZE, "valid segment cut to 28 bytes");
    shm_unlink(shm_name(name));
}
END_TEST

/* A segment of cbreaker 0.2 (layout 2: 32-byte config slots, one line pair
 * per stripe, 10112 bytes), as the old library left it: CB_EVERSION, read
 * and changed by nothing, and the message says how to replace it. */
START_TEST(test_layout2_segment)
{
    const uint64_t old_size = 3 * CB_LINE + CB_CONFIG_SLOTS * 32u + CB_STRIPES * CB_LINE + CB_RING * 32u;
    unsigned char *img = calloc(1, old_size);
    ck_assert_ptr_nonnull(img);
    uint64_t magic = CB_MAGIC, ready = CB_READY;
    uint32_t version = 2, shape = CB_SHAPE;
    memcpy(img + OFF_MAGIC, &magic, 8);
    memcpy(img + OFF_VERSION, &version, 4);
    memcpy(img + OFF_VERSION + 4, &shape, 4);
    memcpy(img + OFF_SIZE, &old_size, 8);
    memcpy(img + OFF_READY, &ready, 8);
    const char *name = unique_name("layout2");
    obj_create(name, img, old_size, 0600);
    assert_rejected(name, CB_EVERSION, "a layout-2 segment");
    ck_assert_ptr_nonnull(strstr(cb_strerror(CB_EVERSION), "cbctl rm"));
    cb_info info;
    ck_assert_int_eq(cb_inspect(name, &info), CB_EVERSION);
    shm_unlink(shm_name(name));
    free(img);
}
END_TEST

/* A valid segment with `len` bytes at `off` replaced: want; restored: fine. */
static void assert_field_checked(const char *tag, size_t off, const void *val, size_t len, int want,
                                 const char *what)
{
    const char *name = unique_name(tag);
    make_valid(name, NULL);
    size_t n;
    unsigned char *orig = obj_read(name, &n);
    ck_assert_uint_eq(n, CB_SEGMENT_SIZE);
    ck_assert_msg(memcmp(orig + off, val, len) != 0, "%s: test value equals the original", what);
    obj_pwrite(name, off, val, len);
    assert_rejected(name, want, what);

    /* Put the original bytes back: the segment is accepted again. */
    obj_pwrite(name, off, orig + off, len);
    cb_breaker *b = NULL;
    int rc = cb_open(name, NULL, &b);
    ck_assert_msg(rc == CB_OPENED, "%s restored: cb_open = %d (%s)", what, rc, cb_strerror(rc));
    cb_close(b);
    free(orig);
    ck_assert_int_eq(cb_unlink(name), 0);
}

START_TEST(test_foreign_header_fields)
{
    uint64_t magic = __builtin_bswap64(CB_MAGIC);
    assert_field_checked("magic-swapped", OFF_MAGIC, &magic, 8, CB_ENOTCB, "magic byte-swapped");
    magic = CB_MAGIC ^ 1;
    assert_field_checked("magic-bit", OFF_MAGIC, &magic, 8, CB_ENOTCB, "magic one bit off");
    magic = 0;
    assert_field_checked("magic-zero", OFF_MAGIC, &magic, 8, CB_ENOTCB, "magic zero");

    uint32_t version = CB_LAYOUT_VERSION + 1;
    assert_field_checked("version-next", OFF_VERSION, &version, 4, CB_EVERSION, "layout_version + 1");
    version = 0;
    assert_field_checked("version-zero", OFF_VERSION, &version, 4, CB_EVERSION, "layout_version 0");
    version = __builtin_bswap32(CB_LAYOUT_VERSION);
    assert_field_checked("version-swap", OFF_VERSION, &version, 4, CB_EVERSION, "layout_version swapped");

    uint64_t size = CB_SEGMENT_SIZE + CB_LINE;
    assert_field_checked("size-big", OFF_SIZE, &size, 8, CB_ESIZE, "size field + 128");
    size = CB_SEGMENT_SIZE - CB_LINE;
    assert_field_checked("size-small", OFF_SIZE, &size, 8, CB_ESIZE, "size field - 128");
    size = 0;
    assert_field_checked("size-zero", OFF_SIZE, &size, 8, CB_ESIZE, "size field 0");

    /* Each constant the shape packs: line, stripes, ring, word size. */
    for (unsigned byte = 0; byte < 4; byte++) {
        uint32_t shape = CB_SHAPE ^ (UINT32_C(1) << (8 * byte + 1));
        char what[64];
        snprintf(what, sizeof what, "shape byte %u changed", byte);
        assert_field_checked("shape", OFF_SHAPE, &shape, 4, CB_ELAYOUT, what);
    }
    uint32_t shape = 0;
    assert_field_checked("shape-zero", OFF_SHAPE, &shape, 4, CB_ELAYOUT, "shape 0");

    /* Fields are checked in prefix order: the first bad one is reported. */
    struct {
        uint32_t version, shape;
    } vs = {CB_LAYOUT_VERSION + 1, 0};
    assert_field_checked("version-shape", OFF_VERSION, &vs, 8, CB_EVERSION, "version and shape");
    struct {
        uint32_t shape;
        uint64_t size;
    } __attribute__((packed)) ss = {0, 1};
    assert_field_checked("shape-size", OFF_SHAPE, &ss, 12, CB_ESIZE, "shape and size");
}
END_TEST

START_TEST(test_foreign_resized)
{
    /* Truncated to half its size: CB_ESIZE, no SIGBUS (assert_rejected runs
     * the opens in a child first). */
    const char *name = unique_name("half");
    make_valid(name, NULL);
    obj_truncate(name, CB_SEGMENT_SIZE / 2);
    assert_rejected(name, CB_ESIZE, "truncated to half");
    shm_unlink(shm_name(name));

    /* One byte short; one page. */
    name = unique_name("minus1");
    make_valid(name, NULL);
    obj_truncate(name, CB_SEGMENT_SIZE - 1);
    assert_rejected(name, CB_ESIZE, "one byte short");
    shm_unlink(shm_name(name));

    name = unique_name("page");
    make_valid(name, NULL);
    obj_truncate(name, 4096);
    assert_rejected(name, CB_ESIZE, "truncated to 4096");
    shm_unlink(shm_name(name));

    /* Grown to double, and one byte. */
    name = unique_name("double");
    make_valid(name, NULL);
    obj_truncate(name, CB_SEGMENT_SIZE * 2);
    assert_rejected(name, CB_ESIZE, "grown to double");
    shm_unlink(shm_name(name));

    name = unique_name("plus1");
    make_valid(name, NULL);
    obj_truncate(name, CB_SEGMENT_SIZE + 1);
    assert_rejected(name, CB_ESIZE, "one byte more");
    shm_unlink(shm_name(name));

    /* Grown to double with a size field to match: still not our size. */
    name = unique_name("double-field");
    make_valid(name, NULL);
    obj_truncate(name, CB_SEGMENT_SIZE * 2);
    uint64_t size = CB_SEGMENT_SIZE * 2;
    obj_pwrite(name, OFF_SIZE, &size, 8);
    assert_rejected(name, CB_ESIZE, "grown to double, size field agrees");
    shm_unlink(shm_name(name));
}
END_TEST

/*
 * cb_open (with and without cfg) and cb_attach on an object that is not a
 * regular file: each returns want (or want_alt, if not 0) in well under
 * 100 ms, gives no handle, and leaves the object as it was.
 */
static void assert_refused_at_once(const char *name, int want, int want_alt, const char *what)
{
    struct stat st0, st1;
    ck_assert_int_eq(lstat(dev_path(name), &st0), 0);
    cb_config cfg = {.failure_threshold = 5, .reset_timeout_ms = 1000};
    for (int call = 0; call < 3; call++) {
        static const char *const calls[] = {"cb_open", "cb_open(cfg)", "cb_attach"};
        cb_breaker *b = (cb_breaker *)&b;
        uint64_t t0 = now_ms();
        int rc = call == 0 ? cb_open(name, NULL, &b) : call == 1 ? cb_open(name, &cfg, &b) : cb_attach(name, &b);
        uint64_t took = now_ms() - t0;
        ck_assert_msg(rc == want || (want_alt && rc == want_alt), "%s: %s = %d (%s), want %d (%s)", what, calls[call],
                      rc, cb_strerror(rc), want, cb_strerror(want));
        ck_assert_msg(took < 100, "%s: %s took %llu ms", what, calls[call], (unsigned long long)took);
        ck_assert_ptr_null(b);
    }
    ck_assert_int_eq(lstat(dev_path(name), &st1), 0);
    ck_assert_msg((st1.st_mode & S_IFMT) == (st0.st_mode & S_IFMT) && st1.st_ino == st0.st_ino &&
                      (st1.st_mode & 07777) == (st0.st_mode & 07777),
                  "%s: the object was replaced or changed", what);
}

START_TEST(test_foreign_not_regular)
{
    /* A FIFO with no writer: an O_RDONLY open would block, O_RDWR would
     * succeed; either way it is not a segment. */
    const char *fifo = unique_name("fifo");
    ck_assert_int_eq(mkfifo(dev_path(fifo), 0600), 0);
    assert_refused_at_once(fifo, CB_ENOTCB, 0, "FIFO");
    ck_assert_int_eq(cb_unlink(fifo), 0); /* and it can be removed by name */
    ck_assert(!obj_exists(fifo));

    /* A character device (/dev/null's numbers), where devices may be
     * opened at all (as root; not on a nodev mount). */
    struct statvfs vfs;
    const char *dev = unique_name("chardev");
    if (statvfs("/dev/shm", &vfs) == 0 && (vfs.f_flag & ST_NODEV)) {
        fprintf(stderr, "test_foreign_not_regular: device case skipped (/dev/shm is mounted nodev)\n");
    } else if (mknod(dev_path(dev), S_IFCHR | 0600, makedev(1, 3)) != 0) {
        ck_assert_msg(errno == EPERM, "mknod: %s", strerror(errno));
        fprintf(stderr, "test_foreign_not_regular: device case skipped (mknod needs root)\n");
    } else {
        assert_refused_at_once(dev, CB_ENOTCB, 0, "character device");
        ck_assert_int_eq(cb_unlink(dev), 0);
        ck_assert(!obj_exists(dev));
    }

    /* A directory. The header promises CB_ENOTCB; shm_open(O_RDWR) fails
     * on a directory with EISDIR, which glibc reports as EINVAL, before
     * the library can look at it: -EINVAL is accepted for now (reported;
     * tighten to CB_ENOTCB alone when the library maps it). */
    const char *dir = unique_name("dir");
    ck_assert_int_eq(mkdir(dev_path(dir), 0700), 0);
    assert_refused_at_once(dir, CB_ENOTCB, -EINVAL, "directory");
    ck_assert_int_eq(rmdir(dev_path(dir)), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Objects an older library left unready                               */
/* ------------------------------------------------------------------ */

/*
 * cbreaker 0.1 created segments in place: shm_open(O_CREAT|O_EXCL), size,
 * claim the ready word (CB_CLAIM_TAG | pid), fill, READY. Only such a
 * library (mid-creation, or killed there) or a foreign writer can leave an
 * existing object without READY now. It is CB_EBUSY at once, never taken
 * over (taking over is what let two creators initialize one circuit), and
 * left exactly as it was; removing the name frees it.
 */
static void assert_legacy_busy(const char *name, const char *what)
{
    uint64_t t0 = now_ms();
    assert_rejected(name, CB_EBUSY, what); /* in a child, then here; unchanged */
    ck_assert_msg(now_ms() - t0 < 1500, "%s: CB_EBUSY took %llu ms: no wait expected", what,
                  (unsigned long long)(now_ms() - t0));
    /* Once removed, the name is created afresh, with the creator's mode. */
    ck_assert_int_eq(cb_unlink(name), 0);
    cb_config cfg = {.failure_threshold = 2, .reset_timeout_ms = 60000, .mode = 0640};
    cb_breaker *b = NULL;
    mode_t old = umask(077);
    int rc = cb_open(name, &cfg, &b);
    umask(old);
    ck_assert_msg(rc == CB_CREATED, "%s, removed: cb_open = %d (%s)", what, rc, cb_strerror(rc));
    ck_assert_uint_eq(obj_mode(name), 0640);
    assert_fresh_and_working(name, b, 2);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}

START_TEST(test_legacy_unready)
{
    /* Size 0 (the old creator died right after shm_open). Before: the next
     * cb_open finished it and said CB_CREATED with the dead creator's mode
     * (0600), not its own cfg.mode (0640). */
    const char *name = unique_name("legacy-size0");
    obj_create(name, NULL, 0, 0600);
    assert_legacy_busy(name, "size-0 object");

    name = unique_name("legacy-zeros");
    unsigned char *img = image(0, 0);
    obj_create(name, img, CB_SEGMENT_SIZE, 0600);
    free(img);
    assert_legacy_busy(name, "sized, ready word 0");

    name = unique_name("legacy-dead-claim");
    img = image(0xa5, CB_CLAIM_TAG | (uint64_t)dead_pid());
    obj_create(name, img, CB_SEGMENT_SIZE, 0600);
    free(img);
    assert_legacy_busy(name, "claimed by a dead process");

    name = unique_name("legacy-live-claim");
    pid_t holder = tl_spawn(sleeper, NULL);
    img = image(0, CB_CLAIM_TAG | (uint64_t)holder);
    obj_create(name, img, CB_SEGMENT_SIZE, 0600);
    free(img);
    assert_legacy_busy(name, "claimed by a live process");
    kill_and_reap(holder);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Many processes create one name at once                              */
/* ------------------------------------------------------------------ */

struct race {
    struct tl_barrier *barrier;
    const char *name;
    _Atomic int rc[RACERS];
};

struct racer {
    struct race *race;
    int idx;
};

static int racer(void *argp)
{
    const struct racer *arg = argp;
    struct race *race = arg->race;
    cb_config cfg = {.failure_threshold = 1000, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    tl_barrier_wait(race->barrier);
    int rc = cb_open(race->name, &cfg, &b);
    atomic_store(&race->rc[arg->idx], rc);
    if (rc < 0) {
        fprintf(stderr, "racer %d: cb_open = %d (%s)\n", arg->idx, rc, cb_strerror(rc));
        return 1;
    }
    cb_permit p;
    if (cb_acquire(b, &p) != CB_ALLOWED)
        return 2;
    cb_failure(b, &p);
    cb_close(b);
    return 0;
}

/* RACERS processes open name at once: one creates, all share it. */
static void race_once(const char *name, int round, mode_t want_mode)
{
    struct race *race = tl_shared(sizeof *race);
    race->barrier = tl_barrier_new(RACERS);
    race->name = name;
    for (int i = 0; i < RACERS; i++)
        atomic_store(&race->rc[i], INT_MIN);

    struct racer args[RACERS];
    pid_t pids[RACERS];
    for (int i = 0; i < RACERS; i++) {
        args[i].race = race;
        args[i].idx = i;
        pids[i] = tl_spawn(racer, &args[i]);
    }
    for (int i = 0; i < RACERS; i++)
        tl_wait_ok(pids[i]);

    int created = 0, opened = 0;
    for (int i = 0; i < RACERS; i++) {
        int rc = atomic_load(&race->rc[i]);
        if (rc == CB_CREATED)
            created++;
        else if (rc == CB_OPENED)
            opened++;
        else
            ck_abort_msg("round %d, racer %d: cb_open = %d (%s)", round, i, rc, cb_strerror(rc));
    }
    ck_assert_msg(created == 1, "round %d: %d racers got CB_CREATED", round, created);
    ck_assert_int_eq(opened, RACERS - 1);

    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_attach(name, &b), CB_OPENED);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_msg(info.failures == RACERS, "round %d: failure count %u, want %d", round, info.failures, RACERS);
    ck_assert_uint_eq(info.counters.failures, RACERS);
    ck_assert_uint_eq(info.counters.allowed, RACERS);
    ck_assert_uint_eq(info.config.failure_threshold, 1000);
    ck_assert_uint_eq(obj_mode(name), want_mode);
    cb_close(b);
    assert_initialized_prefix(name);
    ck_assert_int_eq(cb_unlink(name), 0);

    munmap(race->barrier, sizeof *race->barrier);
    munmap(race, sizeof *race);
}

START_TEST(test_race_fresh_name)
{
    for (int round = 0; round < RACE_ROUNDS; round++)
        race_once(unique_name("race"), round, 0600);
}
END_TEST

/* Every racer opens with its own mode (umask 077): the one told
 * CB_CREATED finds exactly its mode on the object. */
static const uint32_t racer_modes[RACERS] = {0600, 0640, 0660, 0620, 0400, 0440, 0460, 0420,
                                             0604, 0644, 0664, 0624, 0404, 0444, 0464, 0424};

struct mode_race {
    struct tl_barrier *barrier;
    const char *name;
    _Atomic int rc[RACERS];
    _Atomic uint32_t mode_seen[RACERS];
};

struct mode_racer {
    struct mode_race *race;
    int idx;
};

static int mode_racer(void *argp)
{
    const struct mode_racer *arg = argp;
    struct mode_race *race = arg->race;
    cb_config cfg = {.failure_threshold = 1000, .reset_timeout_ms = 60000, .mode = racer_modes[arg->idx]};
    umask(077);
    cb_breaker *b = NULL;
    tl_barrier_wait(race->barrier);
    int rc = cb_open(race->name, &cfg, &b);
    atomic_store(&race->rc[arg->idx], rc);
    if (rc < 0)
        return 1;
    struct stat st;
    if (stat(dev_path(race->name), &st) != 0)
        return 2;
    atomic_store(&race->mode_seen[arg->idx], (uint32_t)st.st_mode & 07777);
    cb_close(b);
    return 0;
}

START_TEST(test_race_mode_of_creator)
{
    for (int round = 0; round < RACE_ROUNDS; round++) {
        const char *name = unique_name("race-mode");
        struct mode_race *race = tl_shared(sizeof *race);
        race->barrier = tl_barrier_new(RACERS);
        race->name = name;
        struct mode_racer args[RACERS];
        pid_t pids[RACERS];
        for (int i = 0; i < RACERS; i++) {
            atomic_store(&race->rc[i], INT_MIN);
            args[i].race = race;
            args[i].idx = i;
            pids[i] = tl_spawn(mode_racer, &args[i]);
        }
        for (int i = 0; i < RACERS; i++)
            tl_wait_ok(pids[i]);
        int created = -1;
        for (int i = 0; i < RACERS; i++) {
            int rc = atomic_load(&race->rc[i]);
            ck_assert_msg(rc == CB_CREATED || rc == CB_OPENED, "round %d racer %d: %d", round, i, rc);
            if (rc == CB_CREATED) {
                ck_assert_msg(created < 0, "round %d: racers %d and %d both CB_CREATED", round, created, i);
                created = i;
                ck_assert_msg(atomic_load(&race->mode_seen[i]) == racer_modes[i],
                              "round %d: creator with mode %04o found %04o", round, racer_modes[i],
                              atomic_load(&race->mode_seen[i]));
            }
        }
        ck_assert_msg(created >= 0, "round %d: nobody created", round);
        ck_assert_uint_eq(obj_mode(name), racer_modes[created]);
        ck_assert_int_eq(cb_unlink(name), 0);
        munmap(race->barrier, sizeof *race->barrier);
        munmap(race, sizeof *race);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Creation never shows a half-made object                             */
/* ------------------------------------------------------------------ */

#define ROUNDS_MAX 500

/* A barrier for many rounds (tl_barrier is for one). */
struct rounds {
    _Atomic unsigned arrived, round;
    unsigned parties;
};

static void rounds_wait(struct rounds *r)
{
    unsigned round = atomic_load(&r->round);
    if (atomic_fetch_add(&r->arrived, 1) + 1 == r->parties) {
        atomic_store(&r->arrived, 0);
        atomic_store(&r->round, round + 1);
        return;
    }
    while (atomic_load(&r->round) == round)
        sched_yield();
}

/* Shared state of a many-round test: round r works on "BASE.r". */
struct many {
    struct rounds rounds;
    char base[180]; /* names are BASE.ROUND */
    unsigned n_rounds;
    uint32_t cfg_flags;
    _Atomic int rc[ROUNDS_MAX][RACERS];
    _Atomic int bad; /* first complaint of a child, for the message */
    char why[256];
};

static struct many *many_new(const char *tag, unsigned n_rounds, unsigned parties)
{
    ck_assert_uint_le(n_rounds, ROUNDS_MAX);
    struct many *m = tl_shared(sizeof *m);
    snprintf(m->base, sizeof m->base, "%s", unique_name(tag));
    m->n_rounds = n_rounds;
    m->rounds.parties = parties;
    for (unsigned r = 0; r < n_rounds; r++) {
        char name[CB_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s.%u", m->base, r);
        remember(name);
        for (unsigned i = 0; i < RACERS; i++)
            atomic_store(&m->rc[r][i], INT_MIN);
    }
    return m;
}

static void many_name(const struct many *m, unsigned round, char out[CB_NAME_MAX + 1])
{
    snprintf(out, CB_NAME_MAX + 1, "%s.%u", m->base, round);
}

static void many_complain(struct many *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void many_complain(struct many *m, const char *fmt, ...)
{
    int expected = 0;
    va_list ap;
    va_start(ap, fmt);
    if (atomic_compare_exchange_strong(&m->bad, &expected, 1)) {
        vsnprintf(m->why, sizeof m->why, fmt, ap);
        fprintf(stderr, "%s\n", m->why); /* the child's exit status fails first */
    }
    va_end(ap);
}

/*
 * Each round: every racer opens the round's name at once, reports a
 * failure, waits for all, racer (round % parties) trips the circuit, and
 * after another wait every racer must see it OPEN (one circuit: nobody
 * initialized it again under the others). Returns 0 if all went well.
 */
static int many_race(struct many *m, unsigned idx)
{
    alarm(300); /* a lost racer must not hang the others forever */
    int bad = 0;
    for (unsigned r = 0; r < m->n_rounds; r++) {
        char name[CB_NAME_MAX + 1];
        many_name(m, r, name);
        cb_config cfg = {.failure_threshold = 1000, .reset_timeout_ms = 60000, .mode = 0660, .flags = m->cfg_flags};
        cb_breaker *b = NULL;
        rounds_wait(&m->rounds);
        int rc = cb_open(name, &cfg, &b);
        atomic_store(&m->rc[r][idx], rc);
        if (rc < 0) {
            many_complain(m, "round %u racer %u: cb_open = %d (%s)", r, idx, rc, cb_strerror(rc));
            bad = 1;
        } else {
            cb_permit p;
            if (cb_acquire(b, &p) != CB_ALLOWED)
                bad = 1;
            cb_failure(b, &p);
        }
        rounds_wait(&m->rounds);
        if (b && r % m->rounds.parties == idx)
            cb_trip(b);
        rounds_wait(&m->rounds);
        if (b && cb_get_state(b) != CB_OPEN) {
            many_complain(m, "round %u racer %u: the trip is lost (state %s)", r, idx,
                          cb_state_name(cb_get_state(b)));
            bad = 1;
        }
        cb_close(b);
    }
    return bad;
}

/* After many_race: one creator per round, one circuit that every racer
 * counted into and that the one trip opened; then the names go. */
static void many_check(struct many *m, unsigned parties)
{
    ck_assert_msg(!atomic_load(&m->bad), "%s", m->why);
    for (unsigned r = 0; r < m->n_rounds; r++) {
        char name[CB_NAME_MAX + 1];
        many_name(m, r, name);
        int created = 0;
        for (unsigned i = 0; i < parties; i++) {
            int rc = atomic_load(&m->rc[r][i]);
            ck_assert_msg(rc == CB_CREATED || rc == CB_OPENED, "round %u racer %u: cb_open = %d (%s)", r, i, rc,
                          cb_strerror(rc));
            created += rc == CB_CREATED;
        }
        ck_assert_msg(created == 1, "round %u: %d racers got CB_CREATED", r, created);
        cb_info info; /* read-only: also where root does not trust the owner */
        ck_assert_int_eq(cb_inspect(name, &info), 0);
        ck_assert_int_eq(info.state, CB_OPEN);
        ck_assert_msg(info.counters.failures == parties, "round %u: %llu failures counted, want %u", r,
                      (unsigned long long)info.counters.failures, parties);
        ck_assert_uint_eq(info.counters.trips, 1);
        ck_assert_uint_eq(info.history_len, 1);
        ck_assert_uint_eq(info.generation, 1);
        ck_assert_uint_eq(obj_mode(name), 0660);
        ck_assert_int_eq(cb_unlink(name), 0);
    }
}

/*
 * A creator whose main thread called pthread_exit() (its /proc/PID/stat
 * says Z while another thread creates circuits) races with a plain one.
 * Before: the other took it for dead, both initialized, both got
 * CB_CREATED, and the late initialization wrote CLOSED generation 0 over
 * a circuit in use: the trip was lost.
 */
#define LEADER_PAIRS 4

struct zombie_leader_arg {
    struct many *m;
    unsigned idx;
};

static void *zombie_leader_worker(void *argp)
{
    const struct zombie_leader_arg *arg = argp;
    tl_exit(many_race(arg->m, arg->idx)); /* exit(): ends the whole process */
}

static int plain_racer(void *argp);

static int zombie_leader_racer(void *argp)
{
    /* valgrind stops scanning an exited thread's stack, where Check's
     * runner keeps pointers to its heap: its leak check would fail the
     * process. Its run (meson test --setup valgrind) looks for memory
     * errors; the exited leader is tested by the plain run. */
    if (RUNNING_ON_VALGRIND)
        return plain_racer(argp);
    pthread_t t;
    if (pthread_create(&t, NULL, zombie_leader_worker, argp) != 0)
        return 90;
    pthread_exit(NULL);
}

static int plain_racer(void *argp)
{
    const struct zombie_leader_arg *arg = argp;
    return many_race(arg->m, arg->idx);
}

START_TEST(test_create_leader_exited)
{
    struct many *m = many_new("zleader", ROUNDS(300), 2 * LEADER_PAIRS);
    static struct zombie_leader_arg args[2 * LEADER_PAIRS];
    pid_t pids[2 * LEADER_PAIRS];
    for (unsigned i = 0; i < 2 * LEADER_PAIRS; i++) {
        args[i].m = m;
        args[i].idx = i;
        pids[i] = tl_spawn(i % 2 ? plain_racer : zombie_leader_racer, &args[i]);
    }
    for (unsigned i = 0; i < 2 * LEADER_PAIRS; i++)
        tl_wait_ok(pids[i]);
    many_check(m, 2 * LEADER_PAIRS);
}
END_TEST

/*
 * Creators in another pid namespace (there kill(pid, 0) cannot see them:
 * before, their claims looked dead and were taken over) race with
 * creators here, every round on a fresh name.
 */
#define NS_RACERS (RACERS / 2)

struct ns_arg {
    struct many *m;
    unsigned idx;
};

static int ns_racer(void *argp)
{
    const struct ns_arg *arg = argp;
    return many_race(arg->m, arg->idx);
}

/* pid 1 of the new namespace: racer NS_RACERS, parent of the others. */
static int ns_init(void *argp)
{
    struct many *m = argp;
    if (getpid() != 1)
        return 72;
    static struct ns_arg args[NS_RACERS];
    pid_t pids[NS_RACERS];
    for (unsigned i = 1; i < NS_RACERS; i++) {
        args[i].m = m;
        args[i].idx = NS_RACERS + i;
        pids[i] = tl_spawn(ns_racer, &args[i]);
    }
    int bad = many_race(m, NS_RACERS);
    for (unsigned i = 1; i < NS_RACERS; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bad |= 2;
    }
    return bad;
}

static int ns_parent(void *argp)
{
    if (unshare(CLONE_NEWPID) != 0) {
        fprintf(stderr, "unshare(CLONE_NEWPID): %s\n", strerror(errno));
        return 70;
    }
    pid_t init = tl_spawn(ns_init, argp); /* pid 1 of the new namespace */
    int status;
    if (waitpid(init, &status, 0) != init || !WIFEXITED(status))
        return 73;
    return WEXITSTATUS(status);
}

START_TEST(test_create_other_pid_namespace)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_create_other_pid_namespace: skipped, unshare(CLONE_NEWPID) needs root\n");
        return;
    }
    struct many *m = many_new("pidns", ROUNDS(60), RACERS);
    static struct ns_arg args[NS_RACERS];
    pid_t pids[NS_RACERS + 1];
    for (unsigned i = 0; i < NS_RACERS; i++) {
        args[i].m = m;
        args[i].idx = i;
        pids[i] = tl_spawn(ns_racer, &args[i]);
    }
    pids[NS_RACERS] = tl_spawn(ns_parent, m);
    for (unsigned i = 0; i <= NS_RACERS; i++)
        tl_wait_ok(pids[i]);
    many_check(m, RACERS);
}
END_TEST

/*
 * Observer: polls the current round's name and complains about anything
 * but a complete segment (segment size, ready word READY, magic, the
 * creators' mode) while creators are SIGKILLed at random points of
 * cb_open. Before, a killed creator left a size-0 or unready object.
 */
struct observe {
    _Atomic unsigned round;
    _Atomic int stop;
    _Atomic unsigned seen; /* complete segments seen */
    _Atomic unsigned ready, go; /* creators waiting; round + 1 to start */
    char base[180]; /* names are BASE.ROUND */
    char why[256];
};

static int observer(void *argp)
{
    struct observe *o = argp;
    alarm(300);
    while (!atomic_load(&o->stop)) {
        char name[CB_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s.%u", o->base, atomic_load(&o->round));
        int fd = shm_open(shm_name(name), O_RDONLY | O_NONBLOCK, 0);
        if (fd < 0)
            continue;
        struct stat st;
        uint64_t head[4] = {0, 0, 0, 0};
        int ok = fstat(fd, &st) == 0;
        ssize_t n = ok ? pread(fd, head, sizeof head, 0) : -1;
        close(fd);
        const char *what = !ok                                  ? "fstat failed"
                           : (uint64_t)st.st_size != CB_SEGMENT_SIZE ? "wrong size"
                           : (st.st_mode & 07777) != 0640          ? "wrong mode"
                           : n != (ssize_t)sizeof head             ? "short read"
                           : head[0] != CB_MAGIC                   ? "no magic"
                           : head[3] != CB_READY                   ? "ready word not READY"
                                                                   : NULL;
        if (what) {
            snprintf(o->why, sizeof o->why, "%s: %s (size %lld, mode %04o, ready 0x%llx)", name, what,
                     (long long)st.st_size, (unsigned)(st.st_mode & 07777), (unsigned long long)head[3]);
            return 1;
        }
        atomic_fetch_add(&o->seen, 1);
    }
    return 0;
}

static struct observe *doomed_observe;

static int doomed_creator(void *name)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000, .mode = 0640};
    cb_breaker *b = NULL;
    umask(077);
    unsigned round = atomic_load(&doomed_observe->round);
    atomic_fetch_add(&doomed_observe->ready, 1);
    while (atomic_load(&doomed_observe->go) != round + 1)
        sched_yield();
    int rc = cb_open(name, &cfg, &b);
    return rc < 0 ? 1 : 0;
}

START_TEST(test_create_killed_never_visible)
{
    struct observe *o = tl_shared(sizeof *o);
    doomed_observe = o;
    snprintf(o->base, sizeof o->base, "%s", unique_name("killed"));
    pid_t watcher = tl_spawn(observer, o);
    enum { CREATORS = 4 };
    const unsigned n_rounds = ROUNDS(150);
    unsigned survived = 0;
    for (unsigned r = 0; r < n_rounds && !o->why[0]; r++) {
        char name[CB_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s.%u", o->base, r);
        remember(name);
        atomic_store(&o->round, r);
        pid_t pids[CREATORS];
        atomic_store(&o->ready, 0);
        for (int i = 0; i < CREATORS; i++)
            pids[i] = tl_spawn(doomed_creator, name);
        while (atomic_load(&o->ready) < CREATORS)
            sched_yield();
        atomic_store(&o->go, r + 1); /* all at once, then the kill comes */
        uint32_t delay_us;
        ck_assert_int_eq(getrandom(&delay_us, sizeof delay_us, 0), (ssize_t)sizeof delay_us);
        struct timespec ts = {0, (long)(delay_us % 200) * 1000L};
        nanosleep(&ts, NULL);
        for (int i = 0; i < CREATORS; i++)
            kill(pids[i], SIGKILL);
        for (int i = 0; i < CREATORS; i++) {
            int status;
            ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
            ck_assert_msg((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                              (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                          "round %u: creator status 0x%x", r, status);
        }
        /* Nothing, or a complete circuit that works. */
        cb_breaker *b = NULL;
        int rc = cb_attach(name, &b);
        ck_assert_msg(rc == -ENOENT || rc == CB_OPENED, "round %u: cb_attach = %d (%s)", r, rc, cb_strerror(rc));
        if (rc == CB_OPENED) {
            survived++;
            ck_assert_uint_eq(obj_mode(name), 0640);
            assert_fresh_and_working(name, b, 3);
            cb_close(b);
            ck_assert_int_eq(cb_unlink(name), 0);
        }
    }
    atomic_store(&o->stop, 1);
    int status;
    ck_assert_int_eq(waitpid(watcher, &status, 0), watcher);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "observer: %s", o->why);
    fprintf(stderr, "test_create_killed_never_visible: %u of %u rounds published a circuit, observer saw %u\n",
            survived, n_rounds, atomic_load(&o->seen));
}
END_TEST

/*
 * Two users of one group (umask 077, mode 0660, CB_OPEN_TRUST_GROUP) open
 * a new name at once, round after round. Before, the creator's object had
 * mode 0600 (the umask) until its fchmod, and the other got -EACCES.
 */
#define USER_A 4242
#define USER_B 4243
#define USER_C 4244
#define GROUP_G 4300

struct identity {
    uid_t uid;
    gid_t gid;
    int ngroups;
    gid_t groups[2];
};

/* Become id for good (in a forked child); 0 or a complaint and -1. */
static int become(const struct identity *id)
{
    if (setgroups((size_t)id->ngroups, id->groups) != 0 || setgid(id->gid) != 0 || setuid(id->uid) != 0) {
        fprintf(stderr, "become uid %d: %s\n", (int)id->uid, strerror(errno));
        return -1;
    }
    if (geteuid() != id->uid || getegid() != id->gid || (id->uid != 0 && setuid(0) == 0)) {
        fprintf(stderr, "become uid %d: not what was asked\n", (int)id->uid);
        return -1;
    }
    return 0;
}

static const struct identity user_a = {USER_A, GROUP_G, 1, {GROUP_G}};
static const struct identity user_b = {USER_B, USER_B, 1, {GROUP_G}};
static const struct identity user_b_egid = {USER_B, GROUP_G, 0, {0}};
static const struct identity user_c = {USER_C, USER_C, 0, {0}};
static const struct identity nobody = {NOBODY, NOBODY, 0, {0}};

struct group_racer_arg {
    struct many *m;
    const struct identity *id;
    unsigned idx;
};

static int group_racer(void *argp)
{
    const struct group_racer_arg *arg = argp;
    if (become(arg->id) != 0)
        return 90;
    umask(077);
    return many_race(arg->m, arg->idx);
}

START_TEST(test_create_umask_group_race)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_create_umask_group_race: skipped, needs root to switch users\n");
        return;
    }
    struct many *m = many_new("umask", ROUNDS(400), 2);
    m->cfg_flags = CB_OPEN_TRUST_GROUP;
    static const struct identity a = {USER_A, GROUP_G, 1, {GROUP_G}};
    static const struct identity b = {USER_B, GROUP_G, 1, {GROUP_G}};
    struct group_racer_arg args[2] = {{m, &a, 0}, {m, &b, 1}};
    pid_t pa = tl_spawn(group_racer, &args[0]);
    pid_t pb = tl_spawn(group_racer, &args[1]);
    tl_wait_ok(pa);
    tl_wait_ok(pb);
    many_check(m, 2);
}
END_TEST

/*
 * A thread cancelled at a random point of cb_open (a new name, or one
 * another thread is creating) wedges nothing: the name is then absent or
 * a complete circuit that another process opens at once, no fd leaked,
 * no temporary name left. Before: cancelled in getrandom between its
 * claim and READY, it left a claim by a live pid: CB_EBUSY for everyone.
 */
struct cancel_arg {
    const char *name;
    _Atomic int started;
};

static void *cancel_victim(void *argp)
{
    struct cancel_arg *arg = argp;
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000, .mode = 0600};
    atomic_store(&arg->started, 1);
    for (;;) {
        pthread_testcancel(); /* cb_open itself is not cancellable */
        cb_breaker *b = NULL;
        if (cb_open(arg->name, &cfg, &b) >= 0)
            cb_close(b);
        cb_unlink(arg->name);
    }
    return NULL;
}

static int count_fds(void)
{
    int n = 0;
    char path[64];
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        n += access(path, F_OK) == 0;
    }
    return n;
}

/* In another process: the name opens (or is created) at once. */
static int opens_at_once(void *argp)
{
    const char *name = argp;
    cb_breaker *b = NULL;
    uint64_t t0 = now_ms();
    int rc = cb_open(name, NULL, &b);
    if (rc < 0 || now_ms() - t0 > 1000) {
        fprintf(stderr, "opens_at_once(%s): cb_open = %d (%s) after %llu ms\n", name, rc, cb_strerror(rc),
                (unsigned long long)(now_ms() - t0));
        return 1;
    }
    cb_close(b);
    return 0;
}

START_TEST(test_create_cancelled_thread)
{
    /* cb_open keeps one descriptor per circuit for its stripe locks, in a
     * table of its own until the process exits (claim_locks.c): fill the
     * table first, so that what is left over below is a leak. */
    for (int same = 0, n = count_fds(), i = 0; same < 3 && i < 300; i++) {
        const char *name = unique_name("fill");
        tl_wait_ok(tl_spawn(opens_at_once, (void *)name)); /* creates it */
        cb_breaker *b = NULL;
        ck_assert_int_ge(cb_open(name, NULL, &b), 0);
        cb_close(b);
        cb_unlink(name);
        int now = count_fds();
        same = now == n ? same + 1 : 0;
        n = now;
    }
    int fds0 = count_fds();
    for (int round = 0; round < (int)ROUNDS(200); round++) {
        struct cancel_arg arg = {unique_name("cancel"), 0};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, cancel_victim, &arg), 0);
        while (!atomic_load(&arg.started))
            sched_yield();
        uint32_t delay_us;
        ck_assert_int_eq(getrandom(&delay_us, sizeof delay_us, 0), (ssize_t)sizeof delay_us);
        struct timespec ts = {0, (long)(delay_us % 500) * 1000L};
        nanosleep(&ts, NULL);
        ck_assert_int_eq(pthread_cancel(t), 0);
        void *res;
        ck_assert_int_eq(pthread_join(t, &res), 0);
        ck_assert_ptr_eq(res, PTHREAD_CANCELED);
        tl_wait_ok(tl_spawn(opens_at_once, (void *)arg.name));
        cb_unlink(arg.name);
    }
    ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

/*
 * Without /proc (a mount namespace where it is unmounted) linkat has no
 * /proc/self/fd/N: creation falls back to a temporary name, still
 * publishes only complete segments, one creator per name, and leaves no
 * temporary name behind.
 */
static int no_tmp_names_left(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    char mine[64];
    snprintf(mine, sizeof mine, "%s%d.", CB_SHM_TEMP_PREFIX, (int)getpid());
    int left = 0;
    for (struct dirent *e; (e = readdir(d));)
        left += strncmp(e->d_name, mine, strlen(mine)) == 0;
    closedir(d);
    return left == 0;
}

struct noproc_arg {
    struct many *m;
    unsigned idx;
};

static int noproc_racer(void *argp)
{
    const struct noproc_arg *arg = argp;
    int bad = many_race(arg->m, arg->idx);
    return bad ? bad : no_tmp_names_left() ? 0 : 5;
}

static int without_proc(void *argp)
{
    struct many *m = argp;
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
        umount2("/proc", MNT_DETACH) != 0) {
        fprintf(stderr, "without_proc: %s\n", strerror(errno));
        return 70;
    }
    if (access("/proc/self/fd", F_OK) == 0) {
        fprintf(stderr, "without_proc: /proc still there\n");
        return 71;
    }
    static struct noproc_arg args[4];
    pid_t pids[4];
    for (unsigned i = 0; i < 4; i++) {
        args[i].m = m;
        args[i].idx = i;
        pids[i] = tl_spawn(noproc_racer, &args[i]);
    }
    int bad = 0;
    for (unsigned i = 0; i < 4; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bad = 73;
    }
    return bad;
}

START_TEST(test_create_without_proc)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_create_without_proc: skipped, unmounting /proc needs root\n");
        return;
    }
    struct many *m = many_new("noproc", ROUNDS(30), 4);
    tl_wait_ok(tl_spawn(without_proc, m));
    many_check(m, 4);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Who owns an existing object                                         */
/* ------------------------------------------------------------------ */

struct as_user_arg {
    const struct identity *id;
    const char *name;
    uint32_t mode;  /* make_as: the mode to create with */
    uint32_t flags; /* open_as: cfg.flags */
    int want;       /* open_as: from every entry point that takes it */
};

/* As id: create name (through the library) with mode. */
static int make_as(void *argp)
{
    const struct as_user_arg *arg = argp;
    if (become(arg->id) != 0)
        return 90;
    cb_config cfg = {.failure_threshold = 7, .reset_timeout_ms = 1234, .mode = arg->mode & ~0002u};
    cb_breaker *b = NULL;
    int rc = cb_open(arg->name, &cfg, &b);
    if (rc != CB_CREATED) {
        fprintf(stderr, "make_as %d: cb_open(%s) = %d (%s)\n", (int)arg->id->uid, arg->name, rc, cb_strerror(rc));
        return 1;
    }
    cb_close(b);
    /* others-write is refused by cb_open: a squatter chmods it after */
    return cfg.mode != arg->mode && chmod(dev_path(arg->name), (mode_t)arg->mode) != 0 ? 2 : 0;
}

/* As id: cb_open (NULL and a cfg with flags) give want, and so does
 * cb_attach when flags is 0; where they succeed, the circuit works. */
static int open_as(void *argp)
{
    const struct as_user_arg *arg = argp;
    if (become(arg->id) != 0)
        return 90;
    int bad = 0;
    cb_config cfg = {.failure_threshold = 7, .reset_timeout_ms = 1234, .flags = arg->flags}; /* the config it was made with */
    for (int call = 0; call < 3; call++) {
        if (call == 2 && arg->flags)
            break; /* cb_attach has no flags */
        cb_breaker *b = (cb_breaker *)&b;
        int rc = call == 0 ? cb_open(arg->name, arg->flags ? &cfg : NULL, &b)
                 : call == 1 ? cb_open(arg->name, &cfg, &b)
                             : cb_attach(arg->name, &b);
        if (rc != arg->want) {
            fprintf(stderr, "uid %d, call %d: %s = %d (%s), want %d (%s)\n", (int)arg->id->uid, call, arg->name, rc,
                    cb_strerror(rc), arg->want, cb_strerror(arg->want));
            bad |= 1 << call;
        }
        if (rc < 0) {
            if (b)
                bad |= 8;
            continue;
        }
        cb_permit p;
        if (cb_acquire(b, &p) != CB_ALLOWED)
            bad |= 16;
        cb_failure(b, &p);
        cb_close(b);
    }
    return bad;
}

static void run_as(int (*fn)(void *), const struct identity *id, const char *name, uint32_t mode, uint32_t flags,
                   int want)
{
    struct as_user_arg arg = {id, name, mode, flags, want};
    tl_wait_ok(tl_spawn(fn, &arg));
}

static int skip_unless_root(const char *test)
{
    if (geteuid() == 0)
        return 0;
    fprintf(stderr, "%s: skipped, needs root to switch to other uids\n", test);
    return 1;
}

/* Refused by root (here and in a child, every entry point), by another
 * user, and left byte for byte as it was: config included. */
static void assert_not_trusted(const char *name, const char *what)
{
    assert_rejected(name, CB_EOWNER, what);
    size_t n0, n1;
    unsigned char *before = obj_read(name, &n0);
    run_as(open_as, &user_c, name, 0, 0, CB_EOWNER);
    run_as(open_as, &user_c, name, 0, CB_OPEN_TRUST_GROUP, CB_EOWNER);
    unsigned char *after = obj_read(name, &n1);
    ck_assert_msg(n0 == n1 && memcmp(before, after, n0) == 0, "%s: changed by a refused open", what);
    free(before);
    free(after);
}

START_TEST(test_owner_squatter)
{
    if (skip_unless_root("test_owner_squatter"))
        return;
    /* nobody creates the server's circuit first, open to all. Before, root
     * attached and even replaced its config (CB_CONFIG_UPDATED). */
    const char *name = unique_name("squat0666");
    run_as(make_as, &nobody, name, 0666, 0, 0);
    ck_assert_uint_eq(obj_stat(name).st_uid, NOBODY);
    assert_not_trusted(name, "nobody's 0666 segment");
    ck_assert_int_eq(cb_unlink(name), 0); /* the fix: root removes it */

    /* Read-only for others: root could still write it (no permission
     * check for root): refused too. */
    name = unique_name("squat0644");
    run_as(make_as, &nobody, name, 0644, 0, 0);
    assert_rejected(name, CB_EOWNER, "nobody's 0644 segment");
    ck_assert_int_eq(cb_unlink(name), 0);

    /* Garbage is refused for its owner before its bytes are looked at. */
    name = unique_name("squat-garbage");
    unsigned char *img = image(0x77, CB_READY);
    obj_create(name, img, CB_SEGMENT_SIZE, 0600);
    free(img);
    ck_assert_int_eq(chown(dev_path(name), NOBODY, NOBODY), 0);
    assert_rejected(name, CB_EOWNER, "nobody's garbage");
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_owner_world_writable)
{
    if (skip_unless_root("test_owner_world_writable"))
        return;
    /* Root's own segment, but anyone may write it: nobody trusts it, root
     * neither. */
    static const uint32_t modes[] = {0666, 0606, 0646};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        const char *name = unique_name("world");
        cb_config cfg = {.failure_threshold = 7, .reset_timeout_ms = 1234, .mode = modes[i]};
        make_valid(name, &cfg);
        char what[64];
        snprintf(what, sizeof what, "root's %04o segment", modes[i]);
        assert_not_trusted(name, what);
        run_as(open_as, &nobody, name, 0, 0, CB_EOWNER);
        ck_assert_int_eq(cb_unlink(name), 0);
    }
    /* A group member's 0666 segment, even with CB_OPEN_TRUST_GROUP. */
    const char *name = unique_name("world-group");
    run_as(make_as, &user_a, name, 0666, 0, 0);
    run_as(open_as, &user_b, name, 0, CB_OPEN_TRUST_GROUP, CB_EOWNER);
    run_as(open_as, &user_b_egid, name, 0, CB_OPEN_TRUST_GROUP, CB_EOWNER);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* A second name for a trusted segment (a user allowed to write circuit A
 * hard-links it under B's name): B would be A. Refused under both names;
 * before, cb_open(B) attached to A and replaced A's config. */
START_TEST(test_owner_hard_link)
{
    if (skip_unless_root("test_owner_hard_link"))
        return;
    const char *a = unique_name("linkA");
    const char *b = unique_name("linkB");
    cb_config cfg = {.failure_threshold = 7, .reset_timeout_ms = 1234, .mode = 0660};
    make_valid(a, &cfg);
    char path_a[PATH_MAX];
    snprintf(path_a, sizeof path_a, "%s", dev_path(a));
    ck_assert_int_eq(link(path_a, dev_path(b)), 0);
    assert_rejected(b, CB_EOWNER, "a hard link to another circuit");
    assert_rejected(a, CB_EOWNER, "a circuit with a second name");
    cb_info info;
    ck_assert_int_eq(cb_inspect(a, &info), 0);
    ck_assert_uint_eq(info.config.failure_threshold, 7); /* config untouched */
    ck_assert_int_eq(cb_unlink(b), 0);
    cb_breaker *h = NULL; /* one name again: trusted again */
    ck_assert_int_eq(cb_open(a, &cfg, &h), CB_OPENED);
    cb_close(h);
    ck_assert_int_eq(cb_unlink(a), 0);
}
END_TEST

/* In a mount namespace of its own, /dev/shm is a 16 KiB tmpfs, nearly
 * full: creating a circuit is -ENOSPC. Before, ftruncate succeeded (tmpfs
 * reserves nothing) and the first write to the mapping raised SIGBUS. */
static int create_on_full_shm(void *unused)
{
    (void)unused;
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("cbtest", CB_SHM_DIR, "tmpfs", 0, "size=16k") != 0) {
        fprintf(stderr, "create_on_full_shm: %s\n", strerror(errno));
        return 70;
    }
    int fd = open(CB_SHM_DIR "/filler", O_RDWR | O_CREAT, 0600);
    static char page[8192];
    if (fd < 0 || write(fd, page, sizeof page) != (ssize_t)sizeof page)
        return 71;
    close(fd);
    cb_breaker *b = NULL;
    int rc = cb_open("full", NULL, &b);
    if (rc != -ENOSPC) {
        fprintf(stderr, "create_on_full_shm: cb_open = %d (%s), want -ENOSPC\n", rc, cb_strerror(rc));
        return 1;
    }
    return access(CB_SHM_DIR "/cbreaker.full", F_OK) == 0 ? 2 : 0; /* nothing published */
}

START_TEST(test_create_on_full_shm)
{
    if (skip_unless_root("test_create_on_full_shm"))
        return;
    tl_wait_ok(tl_spawn(create_on_full_shm, NULL));
}
END_TEST

START_TEST(test_owner_nginx_pattern)
{
    if (skip_unless_root("test_owner_nginx_pattern"))
        return;
    /* The master (root) creates the circuit 0660 with the workers' group;
     * workers (another uid, in that group) open it by name, without any
     * flag, with and without a config. */
    const char *name = unique_name("nginx");
    cb_config cfg = {.failure_threshold = 7, .reset_timeout_ms = 1234, .mode = 0660};
    make_valid(name, &cfg);
    ck_assert_int_eq(chown(dev_path(name), 0, GROUP_G), 0);
    static const struct identity worker = {USER_B, USER_B, 1, {GROUP_G}};
    static const struct identity worker_nobody = {NOBODY, NOBODY, 1, {GROUP_G}};
    run_as(open_as, &worker, name, 0, 0, CB_OPENED);
    run_as(open_as, &worker_nobody, name, 0, 0, CB_OPENED);
    /* Not in the group: the mode keeps it out. */
    run_as(open_as, &user_c, name, 0, 0, -EACCES);
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_attach(name, &b), CB_OPENED);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_uint_eq(info.counters.failures, 6); /* 3 calls x 2 workers */
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_owner_trust_group)
{
    if (skip_unless_root("test_owner_trust_group"))
        return;
    /* user_a creates with egid GROUP_G, so the segment's group is GROUP_G. */
    const char *name = unique_name("group");
    run_as(make_as, &user_a, name, 0660, 0, 0);
    struct stat st = obj_stat(name);
    ck_assert_uint_eq(st.st_uid, USER_A);
    ck_assert_uint_eq(st.st_gid, GROUP_G);
    /* Another member: refused by default, trusted when opted in, through
     * a supplementary group or the effective one. */
    run_as(open_as, &user_b, name, 0, 0, CB_EOWNER);
    run_as(open_as, &user_b, name, 0, CB_OPEN_TRUST_GROUP, CB_OPENED);
    run_as(open_as, &user_b_egid, name, 0, CB_OPEN_TRUST_GROUP, CB_OPENED);
    /* Root trusts only its own (and root's): opting in is for members. */
    assert_rejected(name, CB_EOWNER, "user_a's group segment, for root");
    cb_breaker *b = NULL;
    cb_config trusting = {.failure_threshold = 7, .reset_timeout_ms = 1234, .flags = CB_OPEN_TRUST_GROUP};
    ck_assert_int_eq(cb_open(name, &trusting, &b), CB_EOWNER); /* root is not in GROUP_G */
    ck_assert_ptr_null(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_owner_flags_unknown)
{
    const char *name = unique_name("flags");
    static const uint32_t bad[] = {1u << 8, 1u << 31, ~CB_OPEN_TRUST_GROUP};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cb_config cfg = {.flags = bad[i]};
        cb_breaker *b = (cb_breaker *)&b;
        ck_assert_int_eq(cb_open(name, &cfg, &b), -EINVAL);
        ck_assert_ptr_null(b);
        ck_assert(!obj_exists(name));
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Config on reopen                                                    */
/* ------------------------------------------------------------------ */

static void assert_config(cb_breaker *b, uint32_t threshold, uint32_t reset, uint32_t probe)
{
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_uint_eq(info.config.failure_threshold, threshold);
    ck_assert_uint_eq(info.config.reset_timeout_ms, reset);
    ck_assert_uint_eq(info.config.probe_timeout_ms, probe);
}

START_TEST(test_config_reopen)
{
    const char *name = unique_name("config");
    cb_config c1 = {.failure_threshold = 5, .reset_timeout_ms = 1000, .probe_timeout_ms = 500};
    cb_breaker *first = NULL, *b = NULL;
    ck_assert_int_eq(cb_open(name, &c1, &first), CB_CREATED);
    assert_config(first, 5, 1000, 500);

    ck_assert_int_eq(cb_open(name, &c1, &b), CB_OPENED);
    cb_close(b);
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_OPENED); /* NULL: keep */
    assert_config(b, 5, 1000, 500);
    cb_close(b);

    cb_config c2 = {.failure_threshold = 7, .reset_timeout_ms = 1000, .probe_timeout_ms = 500};
    ck_assert_int_eq(cb_open(name, &c2, &b), CB_CONFIG_UPDATED);
    assert_config(b, 7, 1000, 500);
    assert_config(first, 7, 1000, 500); /* one stored config */
    cb_close(b);
    ck_assert_int_eq(cb_open(name, &c2, &b), CB_OPENED);
    cb_close(b);

    /* A mode is not part of the stored config. */
    cb_config c2m = {.failure_threshold = 7, .reset_timeout_ms = 1000, .probe_timeout_ms = 500, .mode = 0640};
    ck_assert_int_eq(cb_open(name, &c2m, &b), CB_OPENED);
    cb_close(b);

    /* Each timeout on its own counts. */
    cb_config c3 = {.failure_threshold = 7, .reset_timeout_ms = 1000, .probe_timeout_ms = 800};
    ck_assert_int_eq(cb_open(name, &c3, &b), CB_CONFIG_UPDATED);
    assert_config(first, 7, 1000, 800);
    cb_close(b);
    cb_config c4 = {.failure_threshold = 7, .reset_timeout_ms = 2000}; /* probe 0: follows reset */
    ck_assert_int_eq(cb_open(name, &c4, &b), CB_CONFIG_UPDATED);
    assert_config(first, 7, 2000, 2000);
    cb_close(b);
    ck_assert_int_eq(cb_open(name, &c4, &b), CB_OPENED);
    cb_close(b);

    /* All zeros means the defaults, which differ from what is stored. */
    cb_config zero = {0};
    ck_assert_int_eq(cb_open(name, &zero, &b), CB_CONFIG_UPDATED);
    assert_config(first, CB_DEFAULT_FAILURE_THRESHOLD, CB_DEFAULT_RESET_TIMEOUT_MS, CB_DEFAULT_RESET_TIMEOUT_MS);
    cb_close(b);
    ck_assert_int_eq(cb_open(name, &zero, &b), CB_OPENED);
    cb_close(b);

    /* cb_attach never changes it. */
    ck_assert_int_eq(cb_attach(name, &b), CB_OPENED);
    cb_close(b);

    /* The new threshold is the one that trips. */
    cb_config c5 = {.failure_threshold = 2, .reset_timeout_ms = 60000};
    ck_assert_int_eq(cb_open(name, &c5, &b), CB_CONFIG_UPDATED);
    cb_close(b);
    for (int i = 0; i < 2; i++) {
        cb_permit p;
        ck_assert_int_eq(cb_acquire(first, &p), CB_ALLOWED);
        cb_failure(first, &p);
    }
    ck_assert_int_eq(cb_get_state(first), CB_OPEN);
    cb_close(first);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The circuit outlives its processes                                  */
/* ------------------------------------------------------------------ */

static int trip_and_exit(void *name)
{
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    int rc = cb_open(name, &cfg, &b);
    if (rc != CB_CREATED) {
        fprintf(stderr, "trip_and_exit: cb_open = %d (%s)\n", rc, cb_strerror(rc));
        return 1;
    }
    if (cb_trip(b) != CB_CLOSED || cb_get_state(b) != CB_OPEN)
        return 2;
    cb_close(b);
    return 0;
}

START_TEST(test_state_survives_processes)
{
    const char *name = unique_name("outlive");
    pid_t child = tl_spawn(trip_and_exit, (void *)name);
    tl_wait_ok(child);

    /* No process has it mapped any more. */
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &cfg, &b), CB_OPENED);
    ck_assert_int_eq(cb_get_state(b), CB_OPEN);
    cb_info info;
    ck_assert_int_eq(cb_get_info(b, &info), 0);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_eq(info.counters.trips, 1);
    ck_assert_uint_ge(info.history_len, 1);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_TRIP);
    ck_assert_int_eq(info.history[0].to, CB_OPEN);
    ck_assert_int_eq(info.history[0].pid, child);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_REJECTED);
    cb_close(b);

    /* And by attach, from yet another process's view. */
    ck_assert_int_eq(cb_attach(name, &b), CB_OPENED);
    ck_assert_int_eq(cb_get_state(b), CB_OPEN);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* cb_strerror and cb_version                                          */
/* ------------------------------------------------------------------ */

START_TEST(test_strerror)
{
    const char *unknown = cb_strerror(CB_ERROR_BASE - 1000);
    ck_assert_ptr_nonnull(unknown);
    ck_assert_str_eq(unknown, "unknown error");

    /* Every library code, CB_ERROR_BASE - 1 down to CB_ELAST. */
    const char *msgs[16];
    int count = 0;
    for (int code = CB_ERROR_BASE - 1; code >= CB_ELAST; code--) {
        ck_assert_int_lt(count, 16);
        const char *m = cb_strerror(code);
        ck_assert_msg(m != NULL, "cb_strerror(%d) is NULL", code);
        ck_assert_msg(m[0] != '\0', "cb_strerror(%d) is empty", code);
        ck_assert_msg(strcmp(m, "unknown error") != 0, "cb_strerror(%d) is unknown", code);
        for (int i = 0; i < count; i++)
            ck_assert_msg(strcmp(m, msgs[i]) != 0, "cb_strerror(%d) repeats \"%s\"", code, m);
        msgs[count++] = m;
    }
    ck_assert_int_eq(count, 9);
    static const int named[] = {CB_ENAME, CB_ENOTCB,   CB_EVERSION, CB_ESIZE, CB_ELAYOUT,
                                CB_EBUSY, CB_ECORRUPT, CB_EOWNER,   CB_EMODE};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        ck_assert_str_eq(cb_strerror(named[i]), msgs[i]);

    /* System errors: the system's text. */
    static const int sys[] = {ENOENT, EACCES, EINVAL, ENOMEM, EMFILE, ENOSPC, EAGAIN};
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
        const char *m = cb_strerror(-sys[i]);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m, strerror(sys[i]));
        for (int j = 0; j < count; j++)
            ck_assert_str_ne(m, msgs[j]);
    }

    /* Anything else. */
    static const int other[] = {CB_ERROR_BASE, CB_ELAST - 1, CB_ERROR_BASE - 1000, CB_ERROR_BASE + 1,
                                -4095, INT_MIN, INT_MIN + 1, 1, 42, CB_CREATED + 1000, INT_MAX};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        const char *m = cb_strerror(other[i]);
        ck_assert_msg(m != NULL, "cb_strerror(%d) is NULL", other[i]);
        ck_assert_msg(strcmp(m, "unknown error") == 0, "cb_strerror(%d) = \"%s\"", other[i], m);
    }
    ck_assert_ptr_nonnull(cb_strerror(0));
}
END_TEST

START_TEST(test_version)
{
    ck_assert_ptr_nonnull(cb_version());
    ck_assert_str_eq(cb_version(), CB_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", CB_VERSION_MAJOR, CB_VERSION_MINOR, CB_VERSION_PATCH);
    ck_assert_str_eq(cb_version(), want);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *segment_suite(void)
{
    Suite *s = suite_create("segment");
    TCase *tc;

    tc = tcase_create("names");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_name_null_and_empty);
    tcase_add_test(tc, test_name_length);
    tcase_add_test(tc, test_name_bad_chars);
    tcase_add_test(tc, test_name_good_chars);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_created_then_opened);
    tcase_add_test(tc, test_defaults_on_create);
    tcase_add_test(tc, test_attach_missing);
    tcase_add_test(tc, test_unlink);
    tcase_add_test(tc, test_handle_survives_unlink);
    tcase_add_test(tc, test_state_survives_processes);
    suite_add_tcase(s, tc);

    tc = tcase_create("mode");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_mode_default);
    tcase_add_test(tc, test_mode_explicit);
    tcase_add_test(tc, test_mode_invalid);
    tcase_add_test(tc, test_permission_denied);
    suite_add_tcase(s, tc);

    tc = tcase_create("foreign");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_foreign_garbage);
    tcase_add_test(tc, test_foreign_short);
    tcase_add_test(tc, test_foreign_header_fields);
    tcase_add_test(tc, test_layout2_segment);
    tcase_add_test(tc, test_foreign_resized);
    tcase_add_test(tc, test_foreign_not_regular);
    suite_add_tcase(s, tc);

    tc = tcase_create("legacy");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_legacy_unready);
    suite_add_tcase(s, tc);

    tc = tcase_create("create");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_create_killed_never_visible);
    tcase_add_test(tc, test_create_leader_exited);
    tcase_add_test(tc, test_create_other_pid_namespace);
    tcase_add_test(tc, test_create_umask_group_race);
    tcase_add_test(tc, test_create_cancelled_thread);
    tcase_add_test(tc, test_create_without_proc);
    suite_add_tcase(s, tc);

    tc = tcase_create("owner");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_owner_squatter);
    tcase_add_test(tc, test_owner_world_writable);
    tcase_add_test(tc, test_owner_hard_link);
    tcase_add_test(tc, test_create_on_full_shm);
    tcase_add_test(tc, test_owner_nginx_pattern);
    tcase_add_test(tc, test_owner_trust_group);
    tcase_add_test(tc, test_owner_flags_unknown);
    suite_add_tcase(s, tc);

    tc = tcase_create("race");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_race_fresh_name);
    tcase_add_test(tc, test_race_mode_of_creator);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_config_reopen);
    suite_add_tcase(s, tc);

    tc = tcase_create("strerror");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_version);
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
    return tl_run_suite(segment_suite());
}
