/*
 * read.c - snapshots of every object in /dev/shm named cbreaker.*
 * (cb_list), kept in an array so that the formatters can size their
 * columns. One circuit is read with cb_inspect directly.
 *
 * Neither ever blocks: the library opens objects with O_NONBLOCK and
 * refuses anything that is not a regular file (a FIFO, a directory, a
 * device) at once with CB_ENOTCB; error_text_for() says which it was.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cbctl.h"

static int keep(const char *name, const cb_info *info, int err, void *ctx)
{
    struct entries *e = ctx;
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 16;
        struct entry *v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        e->v = v;
        e->cap = cap;
    }
    struct entry *x = &e->v[e->n++];
    /* Anyone may name a file in /dev/shm: never print its bytes raw to a
     * terminal (valid names are plain ASCII and stay as they are). */
    snprintf(x->name, sizeof x->name, "%s", name);
    for (char *c = x->name; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    /* A corrupt state word makes the circuit unusable until reset: it is
     * listed as invalid, with the reason, like a foreign object. */
    x->err = err;
    if (info && err == 0)
        x->info = *info;
    else
        memset(&x->info, 0, sizeof x->info);
    return 0;
}

int read_all(struct entries *out)
{
    memset(out, 0, sizeof *out);
    int rc = cb_list(keep, out);
    if (rc != 0) {
        entries_free(out);
        return rc > 0 ? -EIO : rc;
    }
    return 0;
}

void entries_free(struct entries *e)
{
    free(e->v);
    memset(e, 0, sizeof *e);
}
