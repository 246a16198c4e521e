/*
 * shm.c - finding, creating and attaching a circuit's segment.
 *
 * Creation never makes a half-made object visible under a circuit's name:
 *
 *   1. shm_open the name. It exists: attach (below). ENOENT: create.
 *   2. Create in an unnamed file: open("/dev/shm", O_TMPFILE), fchmod to
 *      exactly cfg->mode, ftruncate, mmap, fill every field, READY last.
 *   3. Publish: linkat("/proc/self/fd/N", "/dev/shm/cbreaker.NAME",
 *      AT_SYMLINK_FOLLOW). linkat never replaces a name: exactly one
 *      creator wins (CB_CREATED, its own segment with its own mode). The
 *      losers (EEXIST) drop theirs and attach to the winner's, step 1.
 *      (linkat with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH; the
 *      /proc route needs none.)
 *   Without O_TMPFILE (old kernel, no /proc) step 2 uses a temporary name
 *   that cb_list does not list, /dev/shm/.cbreaker-new.PID.TID.N, and
 *   step 3 links it, then unlinks the temporary name.
 *
 * A creator that dies before step 3 leaves nothing under the name (the
 * unnamed file goes with its last fd; the fallback leaves only its dot
 * file). Thread cancellation is off while a call runs, so a cancelled
 * thread leaks no fd and no mapping and leaves no temporary name.
 *
 * Attach: the object must be a regular file (a FIFO planted under our name
 * is refused at once: objects are opened O_NONBLOCK), owned by the caller's
 * euid or root (or, with CB_OPEN_TRUST_GROUP, by a user of a group of the
 * caller's), and not writable by others: else CB_EOWNER, before a byte of
 * it is read or written. Then cb_segment_check decides: READY and a
 * valid header attaches; no ready word yet (size 0, ready word 0 or a claim
 * of cbreaker 0.1's creation protocol: only an older library mid-creation,
 * or something it left, makes one) is CB_EBUSY at once, without waiting;
 * anything else is an error of its own. Nothing is read before fstat says
 * it is there, so a short object gives an error, never SIGBUS.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "claim_locks.h"
#include "config.h"
#include "handle.h"
#include "shm.h"
#include "state_word.h"

/* Rounds of "open: ENOENT, create: EEXIST" (the name removed and made
 * again between our two steps each time) before giving up with -EAGAIN. */
#define CB_OPEN_RETRIES 100

int cb_check_name(const char *name)
{
    if (!name)
        return -EINVAL;
    size_t len = strlen(name);
    if (len == 0 || len > CB_NAME_MAX)
        return CB_ENAME;
    for (const char *c = name; *c; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                 (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-';
        if (!ok)
            return CB_ENAME;
    }
    return 0;
}

void cb_shm_path(char out[CB_SHM_PATH_MAX], const char *name)
{
    snprintf(out, CB_SHM_PATH_MAX, "%s%s", CB_SHM_PREFIX, name);
}

static uint32_t fresh_instance(void)
{
    uint32_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x) {
        struct timespec ts; /* entropy not ready yet (early boot) */
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec;
    }
    return x | 1u; /* never 0: an empty permit carries instance 0 */
}

/* Nobody else sees seg yet (an unnamed file, or private memory). */
void cb_segment_init(struct cb_segment *seg, const cb_config *cfg)
{
    memset((char *)seg + CB_PREFIX_SIZE, 0, CB_SEGMENT_SIZE - CB_PREFIX_SIZE);
    seg->magic = CB_MAGIC;
    seg->layout_version = CB_LAYOUT_VERSION;
    seg->shape = CB_SHAPE;
    seg->size = CB_SEGMENT_SIZE;
    seg->instance = fresh_instance();
    cb_config_init(seg, cfg);
    atomic_store_explicit(&seg->state, sw_make(CB_CLOSED, 0, 0), memory_order_relaxed);
    /* Release: everything above happens-before any acquire load of READY
     * (the name is published only later, but a reader of another library
     * version may rely on the order). */
    atomic_store_explicit(&seg->ready, CB_READY, memory_order_release);
}

int cb_segment_check(const struct cb_segment *seg, uint64_t file_size)
{
    uint64_t ready = atomic_load_explicit(&seg->ready, memory_order_acquire);
    if (ready != CB_READY) {
        if (ready != 0 && (ready & CB_CLAIM_MASK) != CB_CLAIM_TAG)
            return CB_ENOTCB;
        /* An older library mid-creation (it sized first), or not ours. */
        return file_size == CB_SEGMENT_SIZE ? CB_EBUSY : CB_ENOTCB;
    }
    if (seg->magic != CB_MAGIC)
        return CB_ENOTCB;
    if (seg->layout_version != CB_LAYOUT_VERSION)
        return CB_EVERSION;
    if (seg->size != file_size || file_size != CB_SEGMENT_SIZE)
        return CB_ESIZE;
    if (seg->shape != CB_SHAPE)
        return CB_ELAYOUT;
    return 0;
}

int cb_open_error(int err)
{
    /* A directory (EISDIR, which glibc's shm_open turns into EINVAL: our
     * names are valid by then) or a socket (ENXIO) under our name. */
    return err == EISDIR || err == EINVAL || err == ENXIO ? CB_ENOTCB : -err;
}

/* 1 if gid is the caller's effective group or one of its supplementary
 * groups. */
static int in_my_groups(gid_t gid)
{
    if (gid == getegid())
        return 1;
    int n = getgroups(0, NULL);
    if (n <= 0)
        return 0;
    gid_t *groups = malloc((size_t)n * sizeof *groups);
    if (!groups)
        return 0;
    n = getgroups(n, groups); /* -1 if the list grew meanwhile: not found */
    int found = 0;
    for (int i = 0; i < n && !found; i++)
        found = groups[i] == gid;
    free(groups);
    return found;
}

/*
 * Whether an existing object may hold our circuit. Whoever may write it
 * may trip, wedge or truncate the circuit, so: owned by us or root (or,
 * opted in, by a user of one of our groups), and writable by nobody
 * beyond its owner and group. The owner may chmod it later: the owner
 * is trusted anyway.
 */
static int check_owner(const struct stat *st, uint32_t flags)
{
    if (st->st_mode & S_IWOTH)
        return CB_EOWNER;
    /* A second name for the file: someone allowed to write one circuit
     * hard-linked it under another circuit's name (ours are published
     * with one link), to make that circuit theirs. */
    if (st->st_nlink != 1)
        return CB_EOWNER;
    if (st->st_uid == geteuid() || st->st_uid == 0)
        return 0;
    if ((flags & CB_OPEN_TRUST_GROUP) && in_my_groups(st->st_gid))
        return 0;
    return CB_EOWNER;
}

/* Attach to the existing object behind fd: 0 and *out mapped, or an
 * error, with nothing read or written before the owner check passed. */
static int attach_existing(int fd, uint32_t flags, struct cb_segment **out, uint32_t *mode)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return CB_ENOTCB; /* a FIFO, directory or device under our name */
    int rc = check_owner(&st, flags);
    if (rc)
        return rc;
    *mode = (uint32_t)st.st_mode & 0777u;
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0)
        return CB_EBUSY; /* an older library's creator has not sized it yet */
    if (size < CB_PREFIX_SIZE)
        return CB_ESIZE;
    /* Never map (or touch) past the object's end: no SIGBUS. */
    size_t len = size < CB_SEGMENT_SIZE ? (size_t)size : (size_t)CB_SEGMENT_SIZE;
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return -errno;
    rc = cb_segment_check(map, size);
    if (rc) {
        munmap(map, len);
        return rc;
    }
    *out = map;
    return 0;
}

/* Fill fd's file (reachable by nobody else yet) as a complete segment with
 * cfg and exactly cfg->mode; *out is its mapping. */
static int build(int fd, const cb_config *cfg, struct cb_segment **out)
{
    if (ftruncate(fd, (off_t)CB_SEGMENT_SIZE) != 0)
        return -errno;
    /* tmpfs gives a page only when it is first written: on a full /dev/shm
     * (any local user can fill it) that write would fault with SIGBUS.
     * Take every page now, while a full file system is still an error. */
    int err = posix_fallocate(fd, 0, (off_t)CB_SEGMENT_SIZE);
    if (err)
        return -err;
    void *map = mmap(NULL, CB_SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return -errno;
    cb_segment_init(map, cfg);
    /* open's mode went through the umask: set it exactly, last, so that
     * the fallback's temporary name is ours alone while it is filled. */
    if (fchmod(fd, (mode_t)cfg->mode) != 0) {
        err = -errno;
        munmap(map, CB_SEGMENT_SIZE);
        return err;
    }
    *out = map;
    return 0;
}

/* create_*: 0 (published, *out mapped), -EEXIST (another creator was
 * first; ours is gone), NO_TMPFILE or -errno. */
#define NO_TMPFILE 1

/* Build in an O_TMPFILE file and link it in through /proc. */
static int create_unnamed(const char *dev_path, const cb_config *cfg, struct cb_segment **out,
                          struct cb_claim_file *claim_file)
{
    int fd = open(CB_SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) /* the kernel or the file system has no O_TMPFILE */
        return errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL ? NO_TMPFILE : -errno;
    int rc = build(fd, cfg, out);
    if (rc == 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        /* Never replaces a name: of all creators, one links, the rest get
         * EEXIST. ENOENT: no /proc (the name's directory is there). */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, dev_path, AT_SYMLINK_FOLLOW) != 0) {
            rc = errno == ENOENT ? NO_TMPFILE : -errno;
            munmap(*out, CB_SEGMENT_SIZE);
        }
    }
    if (rc == 0)
        cb_claim_file_of(fd, claim_file);
    close(fd);
    return rc;
}

/* Build under a temporary name that cb_list does not list, link it under
 * the real name, and remove the temporary one. */
static int create_named_temp(const char *dev_path, const cb_config *cfg, struct cb_segment **out,
                             struct cb_claim_file *claim_file)
{
    static _Atomic unsigned serial;
    char tmp[96];
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < CB_OPEN_RETRIES; attempt++) {
        snprintf(tmp, sizeof tmp, "%s/%s%d.%d.%u", CB_SHM_DIR, CB_SHM_TEMP_PREFIX, (int)getpid(), (int)gettid(),
                 atomic_fetch_add_explicit(&serial, 1, memory_order_relaxed));
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            return -errno;
    }
    if (fd < 0)
        return -EAGAIN;
    int rc = build(fd, cfg, out);
    /* Never replaces a name, like linkat above, and leaves the file one
     * link (attach refuses a second: see check_owner). link + unlink only
     * where the file system has no RENAME_NOREPLACE. */
    if (rc == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dev_path, RENAME_NOREPLACE) != 0) {
        if (errno == EINVAL && link(tmp, dev_path) == 0)
            rc = 0;
        else
            rc = -errno;
        if (rc)
            munmap(*out, CB_SEGMENT_SIZE);
    }
    unlink(tmp); /* gone already when renamed */
    if (rc == 0)
        cb_claim_file_of(fd, claim_file);
    close(fd);
    return rc;
}

/*
 * The segment under name: CB_OPENED (an existing one, *seg mapped,
 * *mode its permission bits), CB_CREATED (ours, published), or an error.
 * cfg NULL: never create. *claim_file: which file it is, for the stripe
 * claims (claim_locks.h).
 */
static int attach_or_create(const char *name, const cb_config *cfg, uint32_t flags, struct cb_segment **seg,
                            uint32_t *mode, struct cb_claim_file *claim_file)
{
    char path[CB_SHM_PATH_MAX], dev_path[sizeof CB_SHM_DIR + CB_SHM_PATH_MAX];
    cb_shm_path(path, name);
    snprintf(dev_path, sizeof dev_path, "%s%s", CB_SHM_DIR, path);
    for (int attempt = 0; attempt < CB_OPEN_RETRIES; attempt++) {
        int fd = shm_open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
        if (fd >= 0) {
            int rc = attach_existing(fd, flags, seg, mode);
            if (rc == 0)
                cb_claim_file_of(fd, claim_file);
            close(fd);
            return rc ? rc : CB_OPENED;
        }
        if (errno != ENOENT || !cfg)
            return cb_open_error(errno);
        int rc = create_unnamed(dev_path, cfg, seg, claim_file);
        if (rc == NO_TMPFILE)
            rc = create_named_temp(dev_path, cfg, seg, claim_file);
        if (rc == 0) {
            *mode = cfg->mode;
            return CB_CREATED;
        }
        if (rc != -EEXIST)
            return rc;
        /* Another creator published first: attach to theirs. */
    }
    return -EAGAIN; /* the name was removed again after every EEXIST */
}

void cb_handle_fill(cb_breaker *b, struct cb_segment *seg, const char *name, uint32_t mode)
{
    b->seg = seg;
    b->instance = seg->instance;
    b->clock_tick_ms = cb_clock_default_tick();
    b->mode = mode;
    snprintf(b->name, sizeof b->name, "%s", name);
}

/* cfg NULL with may_create: attach, or create with the defaults. */
static int open_circuit(const char *name, const cb_config *cfg, int may_create, cb_breaker **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int rc = cb_check_name(name);
    if (rc)
        return rc;
    cb_config resolved;
    rc = cb_resolve_config(cfg, &resolved);
    if (rc)
        return rc;
    uint32_t flags = resolved.flags; /* known bits only (cb_resolve_config) */
    /* Off while we hold fds and mappings: a cancelled caller leaks none
     * and leaves no temporary name (open and close are cancellation
     * points, and so is getrandom in glibc). */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    struct cb_segment *seg = NULL;
    uint32_t mode = 0;
    struct cb_claim_file claim_file = {CB_CLAIMS_NONE, -1, 0, 0};
    rc = attach_or_create(name, may_create ? &resolved : NULL, flags, &seg, &mode, &claim_file);
    pthread_setcancelstate(cancel_state, NULL);
    if (rc < 0)
        return rc;
    cb_breaker *b = calloc(1, sizeof *b);
    if (!b) {
        munmap(seg, CB_SEGMENT_SIZE);
        cb_claim_file_close(&claim_file);
        return -ENOMEM;
    }
    cb_handle_fill(b, seg, name, mode);
    b->claim_file = claim_file; /* stripe claims lock bytes of the file (stripes.c) */
    /* A server's handle gets its lock file now, not at its first claim:
     * pre-fork workers often drop privileges after fork (nginx: root
     * master, nobody workers, a 0600 circuit), and the fork handler
     * reopens the entry for the child while it may still; a worker's own
     * reopen would be refused, and it would count in the shared stripe. */
    if (may_create)
        cb_claim_locks_find(name, &b->claim_file);
    *out = b;
    if (rc == CB_CREATED)
        return CB_CREATED;
    if (cfg && !(resolved.flags & CB_OPEN_KEEP_CONFIG) && cb_store_config(seg, &resolved))
        return CB_CONFIG_UPDATED;
    return CB_OPENED;
}

int cb_open(const char *name, const cb_config *cfg, cb_breaker **out)
{
    return open_circuit(name, cfg, 1, out);
}

int cb_attach(const char *name, cb_breaker **out)
{
    return open_circuit(name, NULL, 0, out);
}

void cb_close(cb_breaker *b)
{
    if (!b)
        return;
    munmap(b->seg, CB_SEGMENT_SIZE);
    cb_claim_file_close(&b->claim_file);
    free(b);
}

int cb_unlink(const char *name)
{
    int rc = cb_check_name(name);
    if (rc)
        return rc;
    char path[CB_SHM_PATH_MAX];
    cb_shm_path(path, name);
    return shm_unlink(path) == 0 ? 0 : -errno;
}
