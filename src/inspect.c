/*
 * inspect.c - reading circuits without using them: cb_inspect() and
 * cb_list(), for tools such as cbctl.
 *
 * Read-only, and never through a mapping: the object is opened O_RDONLY
 * and read with pread into a private copy, which is validated and
 * snapshotted. The object belongs to whoever created it, and its owner
 * can shrink it at any moment; a mapping would then fault (SIGBUS) in the
 * reader, a pread just comes back short (CB_ESIZE). So a user with read
 * permission only can inspect, nothing is created, repaired or waited
 * for, and no object can kill the process that lists it.
 *
 * The copy is not atomic with writers. The state word is read again on
 * its own, with one 8-byte pread after the bulk copy, and the snapshot is
 * derived from that value as cb_get_info derives it from a live segment;
 * counters and history come from the bulk copy, a little older than the
 * state, as they come a little newer from a live segment. The history
 * ring tags each word with its generation (history.c), so an entry the
 * copy caught mid-write is skipped, never shown mixed; an entry written
 * after the copy is simply absent. This relies on the kernel copying each
 * aligned 8-byte word in one piece, as Linux does on x86-64 and arm64 in
 * practice (no interface promises it); a word torn anyway could only
 * misdisplay, never crash or fake an impossible state: the state's two
 * bits sit in one byte.
 *
 * Listing enumerates CB_SHM_DIR, where Linux keeps POSIX shm objects, and
 * reports every cbreaker.* entry: a valid circuit with its snapshot,
 * anything else with the error that says why it is not one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handle.h"
#include "shm.h"

/* Read len bytes at offset; CB_ESIZE if the object ends first. */
static int read_fully(int fd, void *buf, size_t len, off_t offset)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, offset + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return CB_ESIZE; /* shrunk since fstat */
        done += (size_t)n;
    }
    return 0;
}

/* The checks cb_open applies on attach (shm.c), in the same order and
 * with the same answers, on the copy: a circuit inspects as valid exactly
 * when it can be attached. */
static int check_copy(const struct cb_segment *seg, uint64_t file_size)
{
    uint64_t ready = atomic_load_explicit(&seg->ready, memory_order_relaxed);
    if (ready != CB_READY) {
        if (ready != 0 && (ready & CB_CLAIM_MASK) != CB_CLAIM_TAG)
            return CB_ENOTCB;
        /* Being created (ours are sized first), or not ours at all. */
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

/* Copy fd's object into *seg and check it; *mode gets its permissions. */
static int copy_segment(int fd, struct cb_segment *seg, uint32_t *mode)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return CB_ENOTCB; /* a FIFO, directory or device under our name */
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0)
        return CB_EBUSY; /* nobody has sized it yet */
    if (size < CB_PREFIX_SIZE)
        return CB_ESIZE;
    *mode = (uint32_t)st.st_mode & 0777u;
    size_t len = size < CB_SEGMENT_SIZE ? (size_t)size : (size_t)CB_SEGMENT_SIZE;
    int rc = read_fully(fd, seg, len, 0);
    if (rc == 0)
        rc = check_copy(seg, size);
    if (rc == 0) {
        uint64_t state; /* the freshest value, in one piece */
        rc = read_fully(fd, &state, sizeof state, (off_t)offsetof(struct cb_segment, state));
        atomic_store_explicit(&seg->state, state, memory_order_relaxed);
    }
    return rc;
}

int cb_inspect(const char *name, cb_info *out)
{
    if (!out)
        return -EINVAL;
    int rc = cb_check_name(name);
    if (rc)
        return rc;
    char path[CB_SHM_PATH_MAX];
    cb_shm_path(path, name);
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0)
        return cb_open_error(errno);
    struct cb_segment *copy = calloc(1, sizeof *copy);
    uint32_t mode = 0;
    rc = copy ? copy_segment(fd, copy, &mode) : -ENOMEM;
    close(fd);
    if (rc == 0) {
        cb_breaker b = {0};
        cb_handle_fill(&b, copy, name, mode);
        rc = cb_get_info(&b, out);
    }
    free(copy);
    return rc;
}

static int is_circuit_entry(const struct dirent *d)
{
    return strncmp(d->d_name, &CB_SHM_PREFIX[1], sizeof CB_SHM_PREFIX - 2) == 0;
}

int cb_list(cb_list_fn fn, void *ctx)
{
    if (!fn)
        return -EINVAL;
    struct dirent **entries;
    int n = scandir(CB_SHM_DIR, &entries, is_circuit_entry, alphasort);
    if (n < 0)
        return -errno;
    int stop = 0;
    cb_info *info = malloc(sizeof *info);
    if (!info)
        stop = -ENOMEM;
    for (int i = 0; i < n; i++) {
        const char *name = entries[i]->d_name + sizeof CB_SHM_PREFIX - 2;
        if (!stop) {
            int rc = cb_inspect(name, info);
            int usable = rc == 0 || rc == CB_ECORRUPT;
            stop = fn(name, usable ? info : NULL, rc, ctx);
        }
        free(entries[i]);
    }
    free(entries);
    free(info);
    return stop;
}
