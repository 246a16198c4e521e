/*
 * inspect.c - reading circuits without using them: cb_inspect() and
 * cb_list(), for tools such as cbctl.
 *
 * Read-only: the object is opened O_RDONLY and mapped PROT_READ, so a user
 * with read permission only can inspect, and nothing is created, repaired
 * or waited for. Listing enumerates CB_SHM_DIR, where Linux keeps POSIX
 * shm objects, and reports every cbreaker.* entry: a valid circuit with
 * its snapshot, anything else with the error that says why it is not one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handle.h"
#include "shm.h"

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
    struct cb_segment *seg = NULL;
    uint64_t ready;
    struct stat st;
    rc = cb_shm_look(fd, 0, &seg, &ready);
    if (rc == 0 && fstat(fd, &st) != 0)
        rc = -errno;
    close(fd);
    switch (rc) {
    case 0:
        break;
    case CB_LOOK_UNREADY:
        munmap(seg, CB_SEGMENT_SIZE);
        return CB_EBUSY;
    case CB_LOOK_UNSIZED:
        return CB_EBUSY;
    case CB_LOOK_OTHER_SIZE:
        return CB_ENOTCB;
    default:
        return rc; /* nothing is mapped */
    }
    cb_breaker b = {0};
    cb_handle_fill(&b, seg, name, (uint32_t)st.st_mode & 0777u);
    rc = cb_get_info(&b, out);
    munmap(seg, CB_SEGMENT_SIZE);
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
