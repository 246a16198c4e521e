/*
 * claim_locks.c - the process's table of circuit files it locks stripes
 * in: one open file description (OFD) per circuit file, and which stripe
 * bytes it holds a lock on (the protocol that uses them: stripes.c).
 *
 * An entry is made when cb_open returns a handle (before a pre-fork
 * server's workers can drop the privileges a reopen needs), or at a
 * thread's first claim in a circuit the process has no entry for (a
 * cb_attach handle, as cbctl's, takes none until it counts), by opening /proc/self/fd/N of a descriptor the handle keeps
 * until cb_close, or, if the handle has none (few to spare), the circuit's
 * name again, used only if it still leads to the very file the handle
 * mapped (device and inode); otherwise the threads use the shared stripe.
 * The entry's description is one of its own, never a dup() of the
 * mapping's: a mapping holds its description open, so a fork child
 * inheriting the mapping would keep the parent's locks after the parent
 * died. The entry is kept until the process exits: a thread's claim
 * outlives the handle it was made through (claims are never given back,
 * and a thread's claim cache may hit again for a new mapping at the same
 * address), so its lock must too. The cost: one descriptor per open
 * handle, and one per circuit the process has counted in, whose memory
 * stays allocated until the process exits even if the circuit is removed.
 * Handles of one circuit share the entry (looked up by device and inode);
 * two threads opening the same circuit at once may make two entries, whose
 * locks then exclude each other as if they were two processes: safe, only
 * less sharing. The table has CB_LOCK_FILES entries and takes a
 * descriptor only while fewer than half of RLIMIT_NOFILE are in use; a
 * circuit that finds no entry has no locks, and its threads use the shared
 * stripe.
 *
 * Entries are published lock-free: a free slot is taken by CAS (FREE ->
 * BUSY), filled, then released as READY; readers acquire READY before the
 * key. After fork() the child must not use its parent's OFDs (a lock
 * through a shared OFD is one lock: the child would think it held what
 * the parent holds, and would keep the parent's locks alive after the
 * parent dies). A fork handler gives each entry a description of its own
 * by opening /proc/self/fd/N (which names the same file even if it was
 * unlinked) and dup3() over N; the child then holds no locks. If that
 * fails, the entry is closed and dead: the child's threads use the shared
 * stripe for that circuit. A fork that happens while another thread is
 * between opening and publishing may leave the child a reference to the
 * parent's description: it then keeps the parent's locks, hence its
 * stripes, from being taken over until the child exits (a leak, never a
 * lost count).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "claim_locks.h"
#include "segment.h"
#include "shm.h"

#define CB_LOCK_FILES 128

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY, SLOT_DEAD };

struct lock_file {
    _Atomic int state;
    uint64_t dev; /* key, written before READY is released */
    uint64_t ino;
    _Atomic int fd;
    _Atomic uint64_t held; /* bit s: this process holds stripe s's lock */
};

static struct lock_file table[CB_LOCK_FILES];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

_Static_assert(CB_STRIPES <= 64, "one bit per stripe in held");

/* "/proc/self/fd/" and n, without snprintf (the child of a threaded
 * process may only call async-signal-safe functions). */
static void proc_fd_path(char out[32], int n)
{
    static const char prefix[] = "/proc/self/fd/";
    char digits[12];
    unsigned len = 0, u = (unsigned)n;
    do
        digits[len++] = (char)('0' + u % 10u);
    while ((u /= 10u) != 0);
    unsigned i = 0;
    for (; prefix[i]; i++)
        out[i] = prefix[i];
    while (len)
        out[i++] = digits[--len];
    out[i] = '\0';
}

/* A new open file description of fd's file, or -1. */
static int open_again(int fd)
{
    char path[32];
    proc_fd_path(path, fd);
    return open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
}

static void own_descriptions_in_child(void)
{
    for (unsigned i = 0; i < CB_LOCK_FILES; i++) {
        struct lock_file *f = &table[i];
        if (atomic_load_explicit(&f->state, memory_order_acquire) != SLOT_READY)
            continue;
        int fd = atomic_load_explicit(&f->fd, memory_order_relaxed);
        int mine = open_again(fd);
        atomic_store_explicit(&f->held, 0, memory_order_relaxed);
        if (mine >= 0 && dup3(mine, fd, O_CLOEXEC) == fd) {
            close(mine);
            continue;
        }
        if (mine >= 0)
            close(mine);
        close(fd);
        atomic_store_explicit(&f->fd, -1, memory_order_relaxed);
        atomic_store_explicit(&f->state, SLOT_DEAD, memory_order_relaxed);
    }
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, own_descriptions_in_child);
}

static int few_descriptors_left(int fd)
{
    struct rlimit lim;
    return getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
           (rlim_t)fd >= lim.rlim_cur / 2u;
}

void cb_claim_file_of(int fd, struct cb_claim_file *out)
{
    struct stat st;
    *out = (struct cb_claim_file){CB_CLAIMS_NONE, -1, 0, 0};
    if (fstat(fd, &st) != 0)
        return;
    int kept = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (kept >= 0 && few_descriptors_left(kept)) {
        close(kept);
        kept = -1;
    }
    *out = (struct cb_claim_file){CB_CLAIMS_FILE, kept, (uint64_t)st.st_dev, (uint64_t)st.st_ino};
}

void cb_claim_file_close(struct cb_claim_file *file)
{
    if (file->kind == CB_CLAIMS_FILE && file->fd >= 0) {
        /* close() is a cancellation point: a caller cancelled in cb_close
         * would leak the descriptor. */
        int cancel_state;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
        close(file->fd);
        pthread_setcancelstate(cancel_state, NULL);
    }
    file->fd = -1;
}

/* A new description of the circuit's file: from the handle's descriptor,
 * else by name; only if it is `file`. */
static int open_file(const char *name, const struct cb_claim_file *file)
{
    int fd = file->fd >= 0 ? open_again(file->fd) : -1;
    if (fd < 0) {
        char path[CB_SHM_PATH_MAX];
        cb_shm_path(path, name);
        fd = shm_open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
    }
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_dev != file->dev || (uint64_t)st.st_ino != file->ino ||
        few_descriptors_left(fd)) {
        close(fd);
        return -1;
    }
    return fd;
}

int cb_claim_locks_find(const char *name, const struct cb_claim_file *file)
{
    pthread_once(&atfork_once, register_atfork);
    for (unsigned i = 0; i < CB_LOCK_FILES; i++) {
        struct lock_file *f = &table[i];
        int state = atomic_load_explicit(&f->state, memory_order_acquire);
        if ((state == SLOT_READY || state == SLOT_DEAD) && f->dev == file->dev && f->ino == file->ino)
            return state == SLOT_READY ? (int)i + 1 : 0;
    }
    for (unsigned i = 0; i < CB_LOCK_FILES; i++) {
        struct lock_file *f = &table[i];
        int expected = SLOT_FREE;
        /* Exactly one thread turns a free slot busy; only it fills it. */
        if (!atomic_compare_exchange_strong_explicit(&f->state, &expected, SLOT_BUSY, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        int mine = open_file(name, file);
        if (mine < 0) {
            atomic_store_explicit(&f->state, SLOT_FREE, memory_order_release);
            return 0;
        }
        atomic_store_explicit(&f->fd, mine, memory_order_relaxed);
        atomic_store_explicit(&f->held, 0, memory_order_relaxed);
        f->dev = file->dev;
        f->ino = file->ino;
        atomic_store_explicit(&f->state, SLOT_READY, memory_order_release);
        return (int)i + 1;
    }
    return 0;
}

int cb_claim_lock(int ref, unsigned s)
{
    struct lock_file *f = &table[ref - 1];
    uint64_t bit = UINT64_C(1) << s;
    if (atomic_load_explicit(&f->held, memory_order_relaxed) & bit)
        return 1;
    int fd = atomic_load_explicit(&f->fd, memory_order_relaxed);
    if (fd < 0)
        return 0;
    /* One byte per stripe, at the stripe's own offset in the file. */
    struct flock lock = {.l_type = F_WRLCK,
                         .l_whence = SEEK_SET,
                         .l_start = (off_t)offsetof(struct cb_segment, stripes) + (off_t)s * CB_LINE,
                         .l_len = 1};
    if (fcntl(fd, F_OFD_SETLK, &lock) != 0)
        return 0;
    atomic_fetch_or_explicit(&f->held, bit, memory_order_relaxed);
    return 1;
}
