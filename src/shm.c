/*
 * shm.c - finding, creating and attaching a circuit's segment.
 *
 * Creation protocol (any number of processes may run it on one name at
 * once; the ready word is at a fixed offset in every layout version):
 *
 *   1. shm_open(O_CREAT|O_EXCL); on EEXIST, shm_open the existing object.
 *   2. fstat. Size 0: nobody has sized it yet, or its creator died before
 *      doing so; ftruncate it to our size (idempotent: every opener of this
 *      layout version asks for the same size).
 *   3. Map it and read the ready word:
 *        READY       validate magic, layout version, size, shape; done.
 *        0           unclaimed: CAS 0 -> CLAIMED(our pid). The winner fills
 *                    the segment and stores READY with release order; the
 *                    losers wait for READY.
 *        CLAIMED(p)  p is initializing. If p is dead (kill(p, 0) fails with
 *                    ESRCH, or p is a zombie), CAS CLAIMED(p) -> CLAIMED(us)
 *                    and initialize it ourselves. If p lives and has not
 *                    finished within CB_INIT_WAIT_MS, fail with CB_EBUSY.
 *        other       not ours: CB_ENOTCB.
 *
 * So a creator killed at any step leaves either a size-0 object (fixed by
 * step 2), an unclaimed one (step 3, 0) or a claim by a dead pid (step 3,
 * CLAIMED): no name is wedged. Nothing is read before fstat says it is
 * there, so a short object gives an error, never SIGBUS. Objects are
 * opened O_NONBLOCK and must be regular files, so a FIFO planted under
 * our name is refused at once instead of hanging the opener.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "handle.h"
#include "shm.h"
#include "state_word.h"

#define CB_INIT_WAIT_MS 2000
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

int cb_resolve_config(const cb_config *in, cb_config *out)
{
    static const cb_config none;
    if (!in)
        in = &none;
    if (in->mode & ~0777u)
        return -EINVAL;
    out->failure_threshold = in->failure_threshold ? in->failure_threshold : CB_DEFAULT_FAILURE_THRESHOLD;
    out->reset_timeout_ms = in->reset_timeout_ms ? in->reset_timeout_ms : CB_DEFAULT_RESET_TIMEOUT_MS;
    out->probe_timeout_ms = in->probe_timeout_ms ? in->probe_timeout_ms : out->reset_timeout_ms;
    out->mode = in->mode ? in->mode : CB_DEFAULT_MODE;
    return 0;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void nap_1ms(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* A zombie still answers kill(pid, 0) but will never finish anything. */
static int process_is_dead(pid_t pid)
{
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return 1;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* comm may contain spaces */
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static uint32_t fresh_instance(void)
{
    uint32_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x)
        x = (uint32_t)getpid() * 2654435761u ^ (uint32_t)mono_ms();
    return x | 1u; /* never 0: an empty permit carries instance 0 */
}

void cb_store_config(struct cb_segment *seg, const cb_config *cfg)
{
    atomic_store_explicit(&seg->failure_threshold, cfg->failure_threshold, memory_order_relaxed);
    atomic_store_explicit(&seg->reset_timeout_ms, cfg->reset_timeout_ms, memory_order_relaxed);
    atomic_store_explicit(&seg->probe_timeout_ms, cfg->probe_timeout_ms, memory_order_relaxed);
}

/* We hold the claim: nobody else reads past the prefix until READY. */
void cb_segment_init(struct cb_segment *seg, const cb_config *cfg)
{
    memset((char *)seg + CB_PREFIX_SIZE, 0, CB_SEGMENT_SIZE - CB_PREFIX_SIZE);
    seg->magic = CB_MAGIC;
    seg->layout_version = CB_LAYOUT_VERSION;
    seg->shape = CB_SHAPE;
    seg->size = CB_SEGMENT_SIZE;
    seg->instance = fresh_instance();
    cb_store_config(seg, cfg);
    atomic_store_explicit(&seg->state, sw_make(CB_CLOSED, 0, 0), memory_order_relaxed);
    /* Publish: everything above happens-before any acquire load of READY. */
    atomic_store_explicit(&seg->ready, CB_READY, memory_order_release);
}

/* Checks in the order the prefix lays them out; says which one failed. */
static int validate(const struct cb_segment *seg, uint64_t file_size)
{
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

/* Try to take the claim from `seen` and initialize. 1 if we did. */
static int claim_and_initialize(struct cb_segment *seg, uint64_t seen, const cb_config *cfg)
{
    if (seen != 0) {
        pid_t holder = CB_CLAIM_PID(seen);
        if (holder == getpid() || !process_is_dead(holder))
            return 0;
    }
    /* Only one of the processes that saw `seen` gets to replace it. */
    if (!atomic_compare_exchange_strong_explicit(&seg->ready, &seen, CB_CLAIMED(getpid()),
                                                 memory_order_acquire, memory_order_relaxed))
        return 0;
    cb_segment_init(seg, cfg);
    return 1;
}

int cb_shm_look(int fd, int writable, struct cb_segment **out, uint64_t *ready_seen)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return CB_ENOTCB; /* a FIFO, directory or device under our name */
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0)
        return CB_LOOK_UNSIZED;
    if (size < CB_PREFIX_SIZE)
        return CB_ESIZE;
    /* Never map (or touch) past the object's end: no SIGBUS. */
    size_t len = size < CB_SEGMENT_SIZE ? (size_t)size : (size_t)CB_SEGMENT_SIZE;
    int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    void *map = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return -errno;
    struct cb_segment *seg = map;
    uint64_t ready = atomic_load_explicit(&seg->ready, memory_order_acquire);
    int rc;
    if (ready == CB_READY)
        rc = validate(seg, size);
    else if (ready != 0 && (ready & CB_CLAIM_MASK) != CB_CLAIM_TAG)
        rc = CB_ENOTCB;
    else if (size != CB_SEGMENT_SIZE)
        rc = CB_LOOK_OTHER_SIZE; /* zeros, or another version mid-creation */
    else
        rc = CB_LOOK_UNREADY;
    if (rc == 0 || rc == CB_LOOK_UNREADY) {
        *out = seg;
        *ready_seen = ready;
    } else {
        munmap(map, len);
    }
    return rc;
}

/* Map fd's object as a ready segment. cfg NULL: never initialize. */
static int map_segment(int fd, const cb_config *cfg, struct cb_segment **out, int *created)
{
    uint64_t deadline = mono_ms() + CB_INIT_WAIT_MS;
    for (;;) {
        struct cb_segment *seg;
        uint64_t ready;
        int rc = cb_shm_look(fd, 1, &seg, &ready);
        switch (rc) {
        case 0:
            *out = seg;
            return 0;
        case CB_LOOK_UNSIZED:
            if (cfg) {
                if (ftruncate(fd, (off_t)CB_SEGMENT_SIZE) != 0)
                    return -errno;
                continue;
            }
            break;
        case CB_LOOK_UNREADY:
            if (cfg && claim_and_initialize(seg, ready, cfg)) {
                *created = 1;
                *out = seg;
                return 0;
            }
            munmap(seg, CB_SEGMENT_SIZE);
            break;
        case CB_LOOK_OTHER_SIZE:
            /* Not one of ours being created: those are sized first. */
            return CB_ENOTCB;
        default:
            return rc;
        }
        if (mono_ms() > deadline)
            return CB_EBUSY;
        nap_1ms();
    }
}

int cb_open_error(int err)
{
    /* A directory (EISDIR, which glibc's shm_open turns into EINVAL: our
     * names are valid by then) or a socket (ENXIO) under our name. */
    return err == EISDIR || err == EINVAL || err == ENXIO ? CB_ENOTCB : -err;
}

/* Open the object itself; creates it only when cfg is given. */
static int open_object(const char *path, const cb_config *cfg)
{
    for (int attempt = 0; attempt < CB_OPEN_RETRIES; attempt++) {
        if (cfg) {
            int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NONBLOCK, (mode_t)cfg->mode);
            if (fd >= 0) {
                /* shm_open's mode passed through the umask; set it exactly. */
                if (fchmod(fd, (mode_t)cfg->mode) != 0) {
                    int err = -errno;
                    close(fd);
                    return err;
                }
                return fd;
            }
            if (errno != EEXIST)
                return cb_open_error(errno);
        }
        int fd = shm_open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
        if (fd >= 0 || errno != ENOENT || !cfg)
            return fd >= 0 ? fd : cb_open_error(errno);
        /* Unlinked between our two opens: create it again. */
    }
    return -EAGAIN;
}

static int config_differs(const struct cb_segment *seg, const cb_config *cfg)
{
    return atomic_load_explicit(&seg->failure_threshold, memory_order_relaxed) != cfg->failure_threshold ||
           atomic_load_explicit(&seg->reset_timeout_ms, memory_order_relaxed) != cfg->reset_timeout_ms ||
           atomic_load_explicit(&seg->probe_timeout_ms, memory_order_relaxed) != cfg->probe_timeout_ms;
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
    char path[CB_SHM_PATH_MAX];
    cb_shm_path(path, name);
    int fd = open_object(path, may_create ? &resolved : NULL);
    if (fd < 0)
        return fd;
    struct cb_segment *seg = NULL;
    struct stat st;
    int created = 0;
    rc = map_segment(fd, may_create ? &resolved : NULL, &seg, &created);
    if (rc == 0 && fstat(fd, &st) != 0) {
        rc = -errno;
        munmap(seg, CB_SEGMENT_SIZE);
    }
    close(fd);
    if (rc < 0)
        return rc;
    cb_breaker *b = calloc(1, sizeof *b);
    if (!b) {
        munmap(seg, CB_SEGMENT_SIZE);
        return -ENOMEM;
    }
    cb_handle_fill(b, seg, name, (uint32_t)st.st_mode & 0777u);
    *out = b;
    if (created)
        return CB_CREATED;
    if (cfg && config_differs(seg, &resolved)) {
        cb_store_config(seg, &resolved);
        return CB_CONFIG_UPDATED;
    }
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
