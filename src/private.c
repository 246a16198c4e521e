/*
 * private.c - a circuit in process-private memory: cb_open_private().
 *
 * The same segment and state machine, mapped MAP_PRIVATE | MAP_ANONYMOUS:
 * after fork() every process has its own copy. This is the per-worker
 * breaker that cbreaker exists to replace, kept so that demos and
 * benchmarks can compare the two with everything else equal.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "config.h"
#include "handle.h"
#include "shm.h"

int cb_open_private(const char *name, const cb_config *cfg, cb_breaker **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    cb_config resolved;
    int rc = cb_check_name(name);
    if (rc == 0)
        rc = cb_resolve_config(cfg, &resolved);
    if (rc)
        return rc;
    struct cb_segment *seg =
        mmap(NULL, CB_SEGMENT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (seg == MAP_FAILED)
        return -errno;
    cb_breaker *b = calloc(1, sizeof *b);
    if (!b) {
        munmap(seg, CB_SEGMENT_SIZE);
        return -ENOMEM;
    }
    cb_segment_init(seg, &resolved);
    cb_handle_fill(b, seg, name, 0);
    b->claim_file.kind = CB_CLAIMS_PRIVATE; /* no other process writes this copy */
    *out = b;
    return CB_CREATED;
}
