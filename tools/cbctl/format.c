/*
 * format.c - how cbctl writes durations and times, and what it says about
 * errors: the message, a stable name for scripts, and the exit code.
 *
 * Durations are read as an integer and a unit (500ms, 30s, 5m, 2h) and
 * written with at most two units (850ms, 4.2s, 30s, 5m00s, 2h05m, 3d04h).
 * Times are the history's wall-clock stamps: local time for people, UTC
 * ISO 8601 in JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cbctl.h"

int parse_duration(const char *s, uint32_t *ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        if (n == 0 || n > UINT32_MAX / units[i].ms)
            return -1;
        *ms = (uint32_t)(n * units[i].ms);
        return 0;
    }
    return -1;
}

void format_duration(uint64_t ms, char *buf, size_t len)
{
    uint64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, len, "%" PRIu64 "ms", ms);
    else if (ms < 10000)
        snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "s", s, ms % 1000 / 100);
    else if (s < 60)
        snprintf(buf, len, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

void format_ago(uint64_t wall_ms, uint64_t now_ms, char *buf, size_t len)
{
    if (wall_ms == 0) {
        snprintf(buf, len, "-");
        return;
    }
    char d[32];
    format_duration(now_ms > wall_ms ? now_ms - wall_ms : 0, d, sizeof d);
    snprintf(buf, len, "%s ago", d);
}

void format_percent(uint64_t part, uint64_t whole, int decimals, char *buf, size_t len)
{
    if (whole == 0) {
        snprintf(buf, len, "-");
        return;
    }
    uint64_t scale = decimals == 1 ? 10 : 100;
    uint64_t v = part * 100 * scale / whole; /* window counts: far from overflow */
    snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64, v / scale, decimals == 1 ? 1 : 2, v % scale);
}

static void format_time(uint64_t wall_ms, int utc, char *buf, size_t len)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm))) {
        snprintf(buf, len, "?");
        return;
    }
    char base[48];
    strftime(base, sizeof base, utc ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03u%s", base, (unsigned)(wall_ms % 1000), utc ? "Z" : "");
}

void format_local_time(uint64_t wall_ms, char *buf, size_t len) { format_time(wall_ms, 0, buf, len); }
void format_iso_time(uint64_t wall_ms, char *buf, size_t len) { format_time(wall_ms, 1, buf, len); }

uint64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *error_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
    case CB_ENAME:
        return "ENAME";
    case CB_ENOTCB:
        return "ENOTCB";
    case CB_EVERSION:
        return "EVERSION";
    case CB_ESIZE:
        return "ESIZE";
    case CB_ELAYOUT:
        return "ELAYOUT";
    case CB_EBUSY:
        return "EBUSY";
    case CB_ECORRUPT:
        return "ECORRUPT";
    case CB_EOWNER:
        return "EOWNER";
    case CB_EMODE:
        return "EMODE";
    }
    const char *s = err < 0 && err > CB_ERROR_BASE ? strerrorname_np(-err) : NULL;
    return s ? s : "EUNKNOWN";
}

#define NOT_REGULAR "not a regular file, so not a cbreaker segment"

const char *error_text(int err)
{
    switch (err) {
    case -ENOENT:
        return "no such circuit";
    case -EACCES:
    case -EPERM:
        return "permission denied";
    case -ENODEV:
    case -ENXIO: /* a socket, or a device without a driver */
        return NOT_REGULAR;
    case -ELOOP:
        return "a symbolic link, not a circuit segment";
    }
    return cb_strerror(err);
}

/* The library's text for CB_ENOTCB speaks of a file's bytes (magic, ready
 * word); it also refuses a FIFO, a directory or a device under the name,
 * before reading anything. */
const char *error_text_for(const char *name, int err)
{
    if (err == CB_ENOTCB && name) {
        char path[CB_NAME_MAX + 64];
        struct stat st;
        snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", name);
        if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
            return NOT_REGULAR;
    }
    return error_text(err);
}

int exit_code_for(int err)
{
    switch (err) {
    case 0:
        return CBCTL_OK;
    case -ENOENT:
        return CBCTL_NOENT;
    case CB_ENAME:
    case -EINVAL:
        return CBCTL_USAGE;
    case -EACCES:
    case -EPERM:
    case CB_EOWNER: /* like a permission: fixed by who owns the segment */
        return CBCTL_PERM;
    case CB_EMODE:
        return CBCTL_MODE;
    }
    return CBCTL_INVALID;
}

/* The library's text for CB_EVERSION says how to replace the segment,
 * with the command's NAME left for us to fill in. */
static void report_other_version(const char *name)
{
    const char *text = error_text(CB_EVERSION);
    const char *slot = strstr(text, "cbctl rm NAME");
    if (slot)
        fprintf(stderr, "cbctl: %s: %.*scbctl rm %s%s\n", name, (int)(slot - text), text, name,
                slot + strlen("cbctl rm NAME"));
    else
        fprintf(stderr, "cbctl: %s: %s; 'cbctl rm %s' removes it, then the next open creates it anew\n", name, text,
                name);
}

int report_error(const char *name, int err)
{
    if (err == -EACCES || err == -EPERM || err == CB_EOWNER) {
        /* Say whose it is: the usual fix is to run as that user (or, for
         * a segment we do not trust, to remove it: cbctl rm, as root). */
        char path[CB_NAME_MAX + 64];
        struct stat st;
        snprintf(path, sizeof path, "/dev/shm/cbreaker.%s", name);
        if (lstat(path, &st) == 0) {
            const struct passwd *pw = getpwuid(st.st_uid);
            char uid[16];
            snprintf(uid, sizeof uid, "%u", (unsigned)st.st_uid);
            fprintf(stderr, "cbctl: %s: %s (segment owned by %s, mode %04o)%s\n", name,
                    err == CB_EOWNER ? "not trusted" : "permission denied", pw ? pw->pw_name : uid,
                    (unsigned)(st.st_mode & 07777),
                    err == CB_EOWNER ? ": owned by another user or writable by others; if it is not "
                                       "yours, remove it (cbctl rm, as root or its owner)"
                                     : "");
            return exit_code_for(err);
        }
    }
    if (err == CB_ECORRUPT)
        fprintf(stderr, "cbctl: %s: %s; 'cbctl reset %s' repairs it\n", name,
                "the state word holds an impossible state", name);
    else if (err == CB_EVERSION)
        report_other_version(name);
    else
        fprintf(stderr, "cbctl: %s: %s\n", name, error_text_for(name, err));
    return exit_code_for(err);
}

int usage_error(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cbctl: %s (see cbctl --help)\n", msg);
    return CBCTL_USAGE;
}
