/*
 * scale.c - many circuits: the segment's size and memory, the time to
 * create, attach and open an existing circuit, cb_list over all of them,
 * what a process holding all of them open costs, and the cleanup.
 *
 * As root the section runs in a child with a mount namespace of its own
 * and a fresh tmpfs on /dev/shm: other users of the host never see the
 * 10,000 circuits, the tmpfs's own usage is an exact memory figure, and
 * nothing survives the child. Otherwise (or with --host-shm) it uses the
 * host's /dev/shm under unique names, unlinks every one, and checks that
 * none is left.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define SHM_DIR "/dev/shm"

static void name_of(char *out, size_t size, int i)
{
    snprintf(out, size, "cbbench-scale.%d.%05d", (int)getpid(), i);
}

static uint64_t tmpfs_used(void)
{
    struct statvfs v;
    if (statvfs(SHM_DIR, &v) != 0)
        return 0;
    return (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize;
}

/* A field of /proc/self/status, in kB; 0 if absent. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long v = 0;
    size_t len = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            v = strtol(line + len + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

struct list_ctx {
    char prefix[64];
    size_t prefix_len;
    int seen, errors;
};

static int count_ours(const char *name, const cb_info *info, int err, void *ctx)
{
    struct list_ctx *l = ctx;
    (void)info;
    if (strncmp(name, l->prefix, l->prefix_len) == 0) {
        l->seen++;
        l->errors += err != 0;
    }
    return 0;
}

static int list_count(struct list_ctx *l)
{
    l->seen = l->errors = 0;
    return cb_list(count_ours, l);
}

static int scale_body(const struct options *opt, struct scale_result *out)
{
    int n = opt->scale_circuits;
    char name[CB_NAME_MAX + 1];
    cb_config cfg = {.failure_threshold = 5, .reset_timeout_ms = 30000};
    cb_breaker **handles = calloc((size_t)n, sizeof *handles);
    if (!handles)
        return -1;
    out->circuits = n;
    uint64_t used0 = tmpfs_used();

    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        name_of(name, sizeof name, i);
        cb_breaker *b;
        int rc = cb_open(name, &cfg, &b);
        if (rc != CB_CREATED) {
            fprintf(stderr, "cbbench: scale: %s: %s\n", name, rc < 0 ? cb_strerror(rc) : "existed");
            if (rc >= 0)
                cb_close(b);
            n = out->circuits = i;
            break;
        }
        cb_close(b);
    }
    out->create_us = n ? (double)(now_ns() - t0) / 1000.0 / n : 0;
    out->mem_bytes = tmpfs_used() - used0;

    cb_info info;
    name_of(name, sizeof name, 0);
    struct stat st;
    char path[300];
    snprintf(path, sizeof path, SHM_DIR "/cbreaker.%s", name);
    if (n && cb_inspect(name, &info) == 0)
        out->segment_bytes = info.segment_size;
    if (n && stat(path, &st) == 0)
        out->segment_mem_bytes = (uint64_t)st.st_blocks * 512u;
    uint64_t blocks = 0;
    for (int i = 0; i < n; i++) {
        name_of(name, sizeof name, i);
        snprintf(path, sizeof path, SHM_DIR "/cbreaker.%s", name);
        if (stat(path, &st) == 0)
            blocks += (uint64_t)st.st_blocks * 512u;
    }
    if (!out->private_tmpfs || out->mem_bytes == 0)
        out->mem_bytes = blocks; /* the host's tmpfs also holds others' files */

    /* cb_list over all of them (the median of three runs). */
    struct list_ctx l;
    snprintf(l.prefix, sizeof l.prefix, "cbbench-scale.%d.", (int)getpid());
    l.prefix_len = strlen(l.prefix);
    double runs[3];
    for (int r = 0; r < 3; r++) {
        t0 = now_ns();
        list_count(&l);
        runs[r] = (double)(now_ns() - t0) / 1e9;
    }
    out->list_s = median_of(runs, 3);
    out->list_seen = l.seen;
    out->list_errors = l.errors;

    /* Attach each existing circuit, keep it, use it once. */
    long rss0 = status_kb("RssShmem"), pte0 = status_kb("VmPTE");
    t0 = now_ns();
    for (int i = 0; i < n; i++) {
        name_of(name, sizeof name, i);
        if (cb_attach(name, &handles[i]) < 0)
            handles[i] = NULL;
    }
    out->attach_us = n ? (double)(now_ns() - t0) / 1000.0 / n : 0;
    for (int i = 0; i < n; i++) {
        cb_permit p;
        if (handles[i] && cb_acquire(handles[i], &p) != CB_REJECTED)
            cb_success(handles[i], &p);
    }
    out->held_rss_kb = status_kb("RssShmem") - rss0;
    out->held_pte_kb = status_kb("VmPTE") - pte0;
    for (int i = 0; i < n; i++)
        cb_close(handles[i]);

    /* cb_open with the same config, as a restarted worker does. */
    t0 = now_ns();
    for (int i = 0; i < n; i++) {
        name_of(name, sizeof name, i);
        cb_breaker *b;
        if (cb_open(name, &cfg, &b) >= 0)
            cb_close(b);
    }
    out->open_existing_us = n ? (double)(now_ns() - t0) / 1000.0 / n : 0;

    t0 = now_ns();
    for (int i = 0; i < n; i++) {
        name_of(name, sizeof name, i);
        cb_unlink(name);
    }
    out->unlink_us = n ? (double)(now_ns() - t0) / 1000.0 / n : 0;
    list_count(&l);
    out->left_over = l.seen;
    free(handles);
    out->ran = 1;
    return 0;
}

/* A mount namespace with a private tmpfs on /dev/shm, or -1. */
static int private_shm(void)
{
    if (unshare(CLONE_NEWNS) != 0)
        return -1;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -1;
    return mount("cbbench", SHM_DIR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

int scale_run(const struct options *opt, struct scale_result *out)
{
    struct scale_result *shared = shared_alloc(sizeof *shared);
    memset(out, 0, sizeof *out);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("cbbench: fork");
        return -1;
    }
    if (pid == 0) {
        shared->private_tmpfs = !opt->host_shm && private_shm() == 0;
        _exit(scale_body(opt, shared) == 0 ? 0 : 1);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *out = *shared;
    shared_free(shared, sizeof *shared);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "cbbench: the scale section failed (status %d)\n", status);
        return -1;
    }
    return 0;
}
