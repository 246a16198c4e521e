/*
 * read.c - snapshots of one circuit (cb_inspect) or of every object in
 * /dev/shm named cbreaker.* (cb_list), kept in an array so that the
 * formatters can size their columns.
 *
 * The guard: cb_inspect opens the object with shm_open(O_RDONLY), and
 * opening a FIFO that way blocks until a writer appears, so a FIFO named
 * /dev/shm/cbreaker.x (anyone may make one) would hang cbctl forever (a
 * library bug; the fix belongs in src/inspect.c: open with O_NONBLOCK and
 * refuse anything that is not a regular file). Until then every library
 * read runs under a one-shot 500 ms interval timer whose SIGALRM, installed
 * without SA_RESTART, makes such an open fail with EINTR; the entry is
 * then reported as not a regular file. cb_inspect never waits otherwise,
 * so the timer fires only for such objects.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "cbctl.h"

#define GUARD_MS 500

static void on_alarm(int sig) { (void)sig; }

static void guard_arm(void)
{
    static int installed;
    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm; /* no SA_RESTART: a blocked open fails */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        installed = 1;
    }
    struct itimerval it = {{0, 0}, {GUARD_MS / 1000, (GUARD_MS % 1000) * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void guard_disarm(void)
{
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* An open interrupted by the guard: say what the object really is. */
static int explain_interrupted(const char *name, int err)
{
    if (err != -EINTR)
        return err;
    char path[CB_NAME_MAX + 64];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", name);
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return -ENODEV;
    return err;
}

int read_circuit(const char *name, cb_info *out)
{
    guard_arm();
    int rc = cb_inspect(name, out);
    guard_disarm();
    return explain_interrupted(name, rc);
}

static int keep(const char *name, const cb_info *info, int err, void *ctx)
{
    guard_disarm();
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
    x->err = explain_interrupted(name, err);
    if (info && err == 0)
        x->info = *info;
    else
        memset(&x->info, 0, sizeof x->info);
    guard_arm();
    return 0;
}

int read_all(struct entries *out)
{
    memset(out, 0, sizeof *out);
    guard_arm();
    int rc = cb_list(keep, out);
    guard_disarm();
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
