/*
 * test-cbctl.c - the built cbctl, run as a real process (fork + exec; the
 * path comes from meson in $CBCTL, or argv[1]), with its stdout, stderr
 * and exit status checked, against circuits that live worker processes
 * are using:
 *
 *   see      list and show report what the workers did (state, counters,
 *            the trip and the worker whose CAS made it); with the workers
 *            paused, --json documents parse (a strict JSON reader here,
 *            and python3 -m json.tool when there is one) and carry exactly
 *            the values cb_inspect reads; metrics is valid exposition
 *            format (HELP and TYPE before every family's samples, names
 *            and labels well formed, values numeric) with the same values.
 *   control  trip and reset reach the workers: their next cb_acquire is
 *            rejected, then allowed again; state and is-closed answer;
 *            the history names cbctl's pid for the operator transitions;
 *            the state printed before the arrow is the one replaced, also
 *            when it is the state forced (CLOSED -> CLOSED, OPEN -> OPEN).
 *   create   create (options, durations 500ms/30s/5m, mode), create again
 *            (idempotent, only given options change), rm; a server that
 *            creates the circuit at the worst moment (a preloaded shim)
 *            keeps every option cbctl was not given.
 *   exits    every exit code: 0; 1 no such circuit; 2 usage errors (each
 *            kind); 3 permission denied, as nobody on a root-owned 0600
 *            circuit (and read-only access to a 0644 one; skipped when not
 *            root); 4 for garbage, short, other-version and corrupt
 *            segments, a directory, a FIFO (both ENOTCB, each command done
 *            at once: under 1 s) and a symbolic link. Errors are one line
 *            on stderr naming the circuit, with nothing on stdout.
 *   broken   list reports broken objects with their reason and goes on;
 *            show exits 4; nothing ever dies of a signal.
 *   watch    not on a terminal: one line per transition as it happens, in
 *            order, with who made it, two transitions alike in every field
 *            but the generation as two lines, every transition of a
 *            circuit removed and created again (its generations starting
 *            over at ones seen before); on a pseudo-terminal: the
 *            redrawn table. SIGTERM ends it with status 0.
 *
 * Runs as nobody exec a copy of cbctl (and of its libcbreaker) in a 0755
 * directory of /tmp: the checkout may be out of nobody's reach (/root).
 *
 * Other test programs run at the same time on this host: only the rows of
 * names made here are checked. Every object made is remembered in memory
 * shared with the runner, whose teardown removes them even after a failed
 * assertion; workers exit when their parent (the test) is gone.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"
#include "segment.h"
#include "state_word.h"
#include "testlib.h"

#define NOBODY 65534
#define WORKERS 4
#define RUN_TIMEOUT_MS 30000

static const char *cbctl_path;
/* nobody may not reach the build tree (a checkout under /root, mode 0700):
 * runs as nobody exec a copy of cbctl, and of the libcbreaker it links,
 * in a directory of /tmp anyone may enter (made by main when root). */
static char nobody_dir[64];
static char nobody_cbctl[sizeof nobody_dir + 16];
static char nobody_lib[sizeof nobody_dir + 64];

/* ------------------------------------------------------------------ */
/* Names made here, removed by the teardown even after a failure.      */
/* ------------------------------------------------------------------ */

#define REGISTRY_MAX 256
struct registry {
    _Atomic unsigned count;
    char names[REGISTRY_MAX][CB_NAME_MAX + 2];
};
static struct registry *registry;

static const char *remember(const char *name)
{
    unsigned i = atomic_fetch_add(&registry->count, 1);
    if (i < REGISTRY_MAX)
        snprintf(registry->names[i], sizeof registry->names[i], "%.*s", CB_NAME_MAX + 1, name);
    return name;
}

static const char *unique_name(const char *tag)
{
    char t[64];
    snprintf(t, sizeof t, "cbctl-%s", tag);
    return remember(tl_unique_name(t));
}

static const char *dev_path(const char *name)
{
    static char buf[4][CB_NAME_MAX + 32];
    static unsigned next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "/dev/shm/cbreaker.%s", name);
    return p;
}

static void forget_all(void)
{
    unsigned n = atomic_load(&registry->count);
    for (unsigned i = 0; i < n && i < REGISTRY_MAX; i++) {
        const char *path = dev_path(registry->names[i]);
        if (unlink(path) != 0 && errno == EISDIR)
            rmdir(path);
    }
    atomic_store(&registry->count, 0);
}

/* ------------------------------------------------------------------ */
/* Running a program: stdout, stderr and the exit status.               */
/* ------------------------------------------------------------------ */

struct run {
    int code;     /* exit status; 128 + signal if killed */
    int signaled;
    pid_t pid;
    char *out, *err;
    uint64_t ms; /* from fork to the end of its output */
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static void drop_to_nobody(void)
{
    if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
        fprintf(stderr, "cannot become nobody: %s\n", strerror(errno));
        _exit(126);
    }
}

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Run argv (argv[0] a path, or a program found in PATH), as nobody if
 * asked, with `input` on stdin. */
static struct run run_argv(int as_nobody, const char *input, const char *const argv[])
{
    int out[2], err[2], in[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(err), 0);
    ck_assert_int_eq(pipe(in), 0);
    uint64_t started = mono_ms();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        for (int fd = 3; fd < 64; fd++)
            close(fd);
        if (as_nobody) {
            drop_to_nobody();
            /* The copy's libcbreaker (this process is single-threaded) */
            setenv("LD_LIBRARY_PATH", nobody_dir, 1);
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (input) {
        size_t n = strlen(input), done = 0;
        while (done < n) {
            ssize_t w = write(in[1], input + done, n - done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
    }
    close(in[1]);
    struct buf bo = {0}, be = {0};
    buf_add(&bo, "", 0);
    buf_add(&be, "", 0);
    struct pollfd pf[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    uint64_t deadline = mono_ms() + RUN_TIMEOUT_MS;
    int open_fds = 2;
    while (open_fds > 0) {
        ck_assert_msg(mono_ms() < deadline, "%s %s: no end after %d ms", argv[0], argv[1] ? argv[1] : "",
                      RUN_TIMEOUT_MS);
        if (poll(pf, 2, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[4096];
            ssize_t n = read(pf[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                buf_add(i == 0 ? &bo : &be, chunk, (size_t)n);
            } else {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            }
        }
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    struct run r = {0, 0, pid, bo.p, be.p, mono_ms() - started};
    if (WIFSIGNALED(status)) {
        r.signaled = 1;
        r.code = 128 + WTERMSIG(status);
    } else {
        r.code = WEXITSTATUS(status);
    }
    ck_assert_msg(!r.signaled, "%s %s died of signal %d; stderr: %s", argv[0], argv[1] ? argv[1] : "",
                  r.code - 128, r.err);
    return r;
}

#define CBCTL(...) run_argv(0, NULL, (const char *const[]){cbctl_path, __VA_ARGS__, NULL})
#define CBCTL_AS_NOBODY(...) run_argv(1, NULL, (const char *const[]){nobody_cbctl, __VA_ARGS__, NULL})

static void assert_ok(const struct run *r)
{
    ck_assert_msg(r->code == 0, "exit %d, stderr: %s", r->code, r->err);
    ck_assert_msg(r->err[0] == '\0', "unexpected stderr: %s", r->err);
}

/* The error contract: exit code, nothing on stdout, one line on stderr
 * that starts with "cbctl: " and holds `want` (the name, the reason). */
static void assert_error(const struct run *r, int code, const char *want1, const char *want2)
{
    ck_assert_msg(r->code == code, "exit %d, want %d; stderr: %s", r->code, code, r->err);
    ck_assert_msg(r->out[0] == '\0', "stdout on error: %s", r->out);
    size_t len = strlen(r->err);
    ck_assert_msg(len > 0 && r->err[len - 1] == '\n' && strchr(r->err, '\n') == r->err + len - 1,
                  "stderr is not one line: '%s'", r->err);
    ck_assert_msg(strncmp(r->err, "cbctl: ", 7) == 0, "stderr: %s", r->err);
    if (want1)
        ck_assert_msg(strstr(r->err, want1), "stderr lacks '%s': %s", want1, r->err);
    if (want2)
        ck_assert_msg(strstr(r->err, want2), "stderr lacks '%s': %s", want2, r->err);
}

/* The line of `text` that starts with `name` and a space, or NULL. */
static const char *row_of(const char *text, const char *name, char *line, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == ':')) {
            size_t l = strcspn(p, "\n");
            snprintf(line, len, "%.*s", (int)l, p);
            return line;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* A strict JSON reader (RFC 8259), enough to check cbctl's documents.  */
/* ------------------------------------------------------------------ */

struct jv {
    enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } kind;
    int boolean;
    int is_uint;
    unsigned long long uint;
    double number; /* any number */
    char *str;
    size_t n;
    struct jv *items; /* array items, object values */
    char **keys;      /* object keys */
};

struct jparser {
    const char *p;
    const char *error;
};

static void jskip(struct jparser *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static int jfail(struct jparser *j, const char *why)
{
    if (!j->error)
        j->error = why;
    return -1;
}

static int jstring(struct jparser *j, char **out)
{
    if (*j->p != '"')
        return jfail(j, "string expected");
    j->p++;
    struct buf b = {0};
    buf_add(&b, "", 0);
    for (;;) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '\0')
            return free(b.p), jfail(j, "unterminated string");
        if (c < 0x20)
            return free(b.p), jfail(j, "control character in string");
        j->p++;
        if (c == '"')
            break;
        if (c != '\\') {
            buf_add(&b, (const char *)&c, 1);
            continue;
        }
        char e = *j->p++;
        const char *plain = strchr("\"\\/bfnrt", e);
        if (e && plain) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            buf_add(&b, &map[plain - "\"\\/bfnrt"], 1);
        } else if (e == 'u') {
            for (int i = 0; i < 4; i++)
                if (!isxdigit((unsigned char)j->p[i]))
                    return free(b.p), jfail(j, "bad \\u escape");
            j->p += 4;
            buf_add(&b, "?", 1);
        } else {
            return free(b.p), jfail(j, "bad escape");
        }
    }
    *out = b.p;
    return 0;
}

static int jvalue(struct jparser *j, struct jv *v, int depth);

static int jnumber(struct jparser *j, struct jv *v)
{
    const char *s = j->p;
    int integral = 1;
    if (*j->p == '-')
        j->p++, integral = 0;
    if (*j->p == '0')
        j->p++;
    else if (*j->p >= '1' && *j->p <= '9')
        while (isdigit((unsigned char)*j->p))
            j->p++;
    else
        return jfail(j, "bad number");
    if (*j->p == '.') {
        j->p++, integral = 0;
        if (!isdigit((unsigned char)*j->p))
            return jfail(j, "bad fraction");
        while (isdigit((unsigned char)*j->p))
            j->p++;
    }
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++, integral = 0;
        if (*j->p == '+' || *j->p == '-')
            j->p++;
        if (!isdigit((unsigned char)*j->p))
            return jfail(j, "bad exponent");
        while (isdigit((unsigned char)*j->p))
            j->p++;
    }
    v->kind = J_NUMBER;
    v->is_uint = integral;
    v->number = strtod(s, NULL);
    if (integral)
        v->uint = strtoull(s, NULL, 10);
    return 0;
}

static int jcontainer(struct jparser *j, struct jv *v, int depth, int object)
{
    char close = object ? '}' : ']';
    v->kind = object ? J_OBJECT : J_ARRAY;
    j->p++;
    jskip(j);
    if (*j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
        v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
        ck_assert(v->items && v->keys);
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        v->keys[v->n] = NULL;
        if (object) {
            jskip(j);
            if (jstring(j, &v->keys[v->n]))
                return -1;
            jskip(j);
            if (*j->p++ != ':')
                return jfail(j, "':' expected");
        }
        v->n++;
        if (jvalue(j, &v->items[v->n - 1], depth + 1))
            return -1;
        jskip(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == close) {
            j->p++;
            return 0;
        }
        return jfail(j, "',' or end of container expected");
    }
}

static int jvalue(struct jparser *j, struct jv *v, int depth)
{
    if (depth > 32)
        return jfail(j, "too deep");
    jskip(j);
    switch (*j->p) {
    case '{':
        return jcontainer(j, v, depth, 1);
    case '[':
        return jcontainer(j, v, depth, 0);
    case '"':
        v->kind = J_STRING;
        return jstring(j, &v->str);
    case 't':
    case 'f':
    case 'n': {
        static const char *const words[] = {"true", "false", "null"};
        for (int i = 0; i < 3; i++)
            if (strncmp(j->p, words[i], strlen(words[i])) == 0) {
                j->p += strlen(words[i]);
                v->kind = i == 2 ? J_NULL : J_BOOL;
                v->boolean = i == 0;
                return 0;
            }
        return jfail(j, "bad literal");
    }
    default:
        return jnumber(j, v);
    }
}

static void jfree(struct jv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

/* Parse all of text; fails the test on any syntax error. */
static struct jv jparse(const char *text)
{
    struct jparser j = {text, NULL};
    struct jv v;
    memset(&v, 0, sizeof v);
    int rc = jvalue(&j, &v, 0);
    if (rc == 0) {
        jskip(&j);
        if (*j.p)
            rc = jfail(&j, "text after the value");
    }
    ck_assert_msg(rc == 0, "invalid JSON (%s) at offset %ld: %.40s", j.error, (long)(j.p - text), j.p);
    return v;
}

/* The value at a dotted path of object keys, or NULL. */
static const struct jv *jget(const struct jv *v, const char *path)
{
    char key[64];
    while (v && *path) {
        size_t len = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)len, path);
        path += len + (path[len] == '.');
        const struct jv *found = NULL;
        for (size_t i = 0; v->kind == J_OBJECT && i < v->n && !found; i++)
            if (strcmp(v->keys[i], key) == 0)
                found = &v->items[i];
        v = found;
    }
    return v;
}

static unsigned long long juint(const struct jv *v, const char *path)
{
    const struct jv *x = jget(v, path);
    ck_assert_msg(x && x->kind == J_NUMBER && x->is_uint, "%s is not an unsigned integer", path);
    return x->uint;
}

/* A number written with two decimals at most (a rate): value x 100. */
static long jcents(const struct jv *v, const char *path)
{
    const struct jv *x = jget(v, path);
    ck_assert_msg(x && x->kind == J_NUMBER, "%s is not a number", path);
    return (long)(x->number * 100 + 0.5);
}

static const char *jstr(const struct jv *v, const char *path)
{
    const struct jv *x = jget(v, path);
    ck_assert_msg(x && x->kind == J_STRING, "%s is not a string", path);
    return x->str;
}

static int jis_null(const struct jv *v, const char *path)
{
    const struct jv *x = jget(v, path);
    ck_assert_msg(x != NULL, "%s is missing", path);
    return x->kind == J_NULL;
}

/* The element of array `circuits` whose "name" is name. */
static const struct jv *jcircuit(const struct jv *doc, const char *name)
{
    const struct jv *arr = jget(doc, "circuits");
    ck_assert_msg(arr && arr->kind == J_ARRAY, "no circuits array");
    for (size_t i = 0; i < arr->n; i++) {
        const struct jv *name_v = jget(&arr->items[i], "name");
        if (name_v && name_v->kind == J_STRING && strcmp(name_v->str, name) == 0)
            return &arr->items[i];
    }
    return NULL;
}

/* The document header every --json output starts with. */
static void check_json_header(const struct jv *doc)
{
    ck_assert_int_eq(doc->kind, J_OBJECT);
    ck_assert_uint_eq(juint(doc, "version"), 1);
    ck_assert_str_eq(jstr(doc, "cbreaker"), cb_version());
    const char *ts = jstr(doc, "timestamp");
    ck_assert_msg(strlen(ts) == 24 && ts[10] == 'T' && ts[23] == 'Z', "timestamp %s", ts);
    unsigned long long ms = juint(doc, "timestamp_ms");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    ck_assert_msg(ms / 1000 + 60 > (unsigned long long)now.tv_sec && ms / 1000 <= (unsigned long long)now.tv_sec,
                  "timestamp_ms %llu is not now", ms);
}

/* A second opinion when the system has one. */
static void check_json_with_python(const char *text)
{
    struct run r = run_argv(0, text, (const char *const[]){"python3", "-m", "json.tool", NULL});
    if (r.code == 127 && strstr(r.err, "exec python3")) {
        fprintf(stderr, "check_json_with_python: no python3, skipped\n");
    } else {
        ck_assert_msg(r.code == 0, "python3 -m json.tool rejects it: %s", r.err);
    }
    run_free(&r);
}

/* ------------------------------------------------------------------ */
/* The Prometheus text exposition format, checked line by line.         */
/* ------------------------------------------------------------------ */

static int metric_name_ok(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return 0;
    return 1;
}

/* NULL when text is valid exposition format; else what is wrong. */
static const char *exposition_error(const char *text, char *why, size_t len)
{
    char typed[64][96], helped[64][96], current[96] = "";
    unsigned ntyped = 0, nhelped = 0, samples = 0;
    size_t text_len = strlen(text);
    if (text_len == 0 || text[text_len - 1] != '\n')
        return snprintf(why, len, "does not end with a newline"), why;
    for (const char *line = text; *line;) {
        size_t l = strcspn(line, "\n");
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)l, line);
        line += l + 1;
        if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
            int is_type = buf[2] == 'T';
            const char *name = buf + 7;
            size_t nl = strcspn(name, " ");
            if (!metric_name_ok(name, nl) || name[nl] != ' ')
                return snprintf(why, len, "bad comment line: %s", buf), why;
            char fam[96];
            snprintf(fam, sizeof fam, "%.*s", (int)nl, name);
            if (is_type) {
                const char *type = name + nl + 1;
                if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
                    strcmp(type, "summary") && strcmp(type, "untyped"))
                    return snprintf(why, len, "bad type: %s", buf), why;
                for (unsigned i = 0; i < ntyped; i++)
                    if (strcmp(typed[i], fam) == 0)
                        return snprintf(why, len, "second TYPE for %s", fam), why;
                int has_help = 0;
                for (unsigned i = 0; i < nhelped; i++)
                    has_help |= strcmp(helped[i], fam) == 0;
                if (!has_help)
                    return snprintf(why, len, "TYPE without HELP for %s", fam), why;
                if (ntyped < 64)
                    snprintf(typed[ntyped++], sizeof typed[0], "%s", fam);
                snprintf(current, sizeof current, "%s", fam);
            } else if (nhelped < 64) {
                snprintf(helped[nhelped++], sizeof helped[0], "%s", fam);
            }
            continue;
        }
        if (buf[0] == '#' || buf[0] == '\0')
            return snprintf(why, len, "unexpected line: '%s'", buf), why;
        /* A sample: name{label="value",...} value */
        size_t nl = strcspn(buf, "{ ");
        if (!metric_name_ok(buf, nl))
            return snprintf(why, len, "bad metric name: %s", buf), why;
        if (strlen(current) != nl || strncmp(buf, current, nl) != 0)
            return snprintf(why, len, "sample not under its TYPE (current family '%s'): %s", current, buf), why;
        const char *p = buf + nl;
        if (*p == '{') {
            p++;
            while (*p != '}') {
                size_t ln = strcspn(p, "=");
                if (!metric_name_ok(p, ln) || p[ln] != '=' || p[ln + 1] != '"')
                    return snprintf(why, len, "bad label: %s", buf), why;
                p += ln + 2;
                while (*p && *p != '"')
                    p += *p == '\\' ? 2 : 1;
                if (*p != '"')
                    return snprintf(why, len, "unterminated label value: %s", buf), why;
                p++;
                if (*p == ',')
                    p++;
                else if (*p != '}')
                    return snprintf(why, len, "bad label list: %s", buf), why;
            }
            p++;
        }
        if (*p != ' ')
            return snprintf(why, len, "no value: %s", buf), why;
        p++;
        char *end;
        strtod(p, &end);
        if (end == p || (*end != '\0' && *end != ' '))
            return snprintf(why, len, "value not numeric: %s", buf), why;
        samples++;
    }
    return NULL;
}

static void assert_exposition(const char *text)
{
    char why[1200];
    const char *e = exposition_error(text, why, sizeof why);
    ck_assert_msg(e == NULL, "metrics: %s", e);
}

/* The value of one sample, e.g. "cbreaker_state{circuit=\"x\"}". */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    ck_abort_msg("no sample %s", series);
    return -1;
}

/* Two sample values equal to the last printed decimal. */
static int close_to(double got, double want)
{
    double d = got - want;
    return d < 0.0001 && d > -0.0001;
}

/* ------------------------------------------------------------------ */
/* Live workers: a pre-fork pool using one circuit.                     */
/* ------------------------------------------------------------------ */

struct pool;
struct worker {
    struct pool *pool;
    int index;
    _Atomic int pid;
    _Atomic uint64_t iterations;
    _Atomic int verdict;
};
struct pool {
    char name[CB_NAME_MAX + 1];
    pid_t parent;
    _Atomic int stop, fail, pause;
    _Atomic unsigned paused, started;
    struct worker w[WORKERS];
};

static int worker_main(void *arg)
{
    struct worker *me = arg;
    struct pool *pool = me->pool;
    cb_breaker *b = NULL;
    if (cb_open(pool->name, NULL, &b) < 0) /* by name, after fork */
        return 1;
    me->pid = getpid();
    atomic_fetch_add(&pool->started, 1);
    while (!pool->stop && getppid() == pool->parent) {
        if (pool->pause) {
            atomic_fetch_add(&pool->paused, 1);
            while (pool->pause && !pool->stop && getppid() == pool->parent)
                tl_sleep_ms(1);
            atomic_fetch_sub(&pool->paused, 1);
            continue;
        }
        cb_permit p;
        cb_verdict v = cb_acquire(b, &p);
        if (v != CB_REJECTED) {
            if (pool->fail)
                cb_failure(b, &p);
            else
                cb_success(b, &p);
        }
        me->verdict = (int)v;
        me->iterations++;
        tl_sleep_ms(1);
    }
    cb_close(b);
    return 0;
}

static void wait_until(int (*cond)(struct pool *), struct pool *pool, const char *what)
{
    uint64_t deadline = mono_ms() + 10000;
    while (!cond(pool)) {
        ck_assert_msg(mono_ms() < deadline, "timed out waiting until %s", what);
        tl_sleep_ms(1);
    }
}

static int all_started(struct pool *p) { return p->started == WORKERS; }
static int all_paused(struct pool *p) { return p->paused == WORKERS; }

/* A circuit (threshold 3, reset 60 s) and WORKERS processes using it. */
static struct pool *pool_start(const char *tag)
{
    struct pool *pool = tl_shared(sizeof *pool);
    snprintf(pool->name, sizeof pool->name, "%s", unique_name(tag));
    pool->parent = getpid();
    cb_config cfg = {.failure_threshold = 3, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(pool->name, &cfg, &b), CB_CREATED);
    cb_close(b);
    for (int i = 0; i < WORKERS; i++) {
        pool->w[i].pool = pool;
        pool->w[i].index = i;
        tl_spawn(worker_main, &pool->w[i]);
    }
    wait_until(all_started, pool, "the workers run");
    return pool;
}

static void pool_pause(struct pool *pool)
{
    pool->pause = 1;
    wait_until(all_paused, pool, "the workers pause");
}

static void pool_resume(struct pool *pool) { pool->pause = 0; }

static void pool_stop(struct pool *pool)
{
    pool->stop = 1;
    for (int i = 0; i < WORKERS; i++)
        tl_wait_ok(pool->w[i].pid);
}

/* Every worker's next acquires (after now) got `want`. */
static void assert_workers_get(struct pool *pool, cb_verdict want)
{
    uint64_t seen[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        seen[i] = pool->w[i].iterations;
    uint64_t deadline = mono_ms() + 10000;
    for (int i = 0; i < WORKERS; i++) {
        while (pool->w[i].iterations < seen[i] + 2) {
            ck_assert_msg(mono_ms() < deadline, "worker %d is stuck", i);
            tl_sleep_ms(1);
        }
        ck_assert_msg(pool->w[i].verdict == (int)want, "worker %d got verdict %d, want %d", i,
                      pool->w[i].verdict, (int)want);
    }
}

static int is_worker(struct pool *pool, int pid)
{
    for (int i = 0; i < WORKERS; i++)
        if (pool->w[i].pid == pid)
            return 1;
    return 0;
}

static void inspect(const char *name, cb_info *info)
{
    int rc = cb_inspect(name, info);
    ck_assert_msg(rc == 0, "cb_inspect(%s) = %s", name, cb_strerror(rc));
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_list_and_show_see_workers)
{
    struct pool *pool = pool_start("see");
    static cb_info info;
    char line[1024];

    /* Healthy: CLOSED, calls allowed. */
    assert_workers_get(pool, CB_ALLOWED);
    struct run r = CBCTL("list");
    assert_ok(&r);
    ck_assert_msg(strncmp(r.out, "NAME ", 5) == 0, "no header: %s", r.out);
    ck_assert_msg(row_of(r.out, pool->name, line, sizeof line), "no row for %s in\n%s", pool->name, r.out);
    ck_assert_msg(strstr(line, " CLOSED ") && strstr(line, "/3"), "row: %s", line);
    run_free(&r);

    /* The dependency fails: the pool trips together, and then rejects.
     * (Wait for the trip first: one worker may make several allowed calls
     * before the third failure lands, as under valgrind.) */
    pool->fail = 1;
    uint64_t deadline = mono_ms() + 10000;
    for (inspect(pool->name, &info); info.state != CB_OPEN; inspect(pool->name, &info)) {
        ck_assert_msg(mono_ms() < deadline, "the workers' failures never tripped the circuit");
        tl_sleep_ms(1);
    }
    assert_workers_get(pool, CB_REJECTED);
    inspect(pool->name, &info);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_ge(info.history_len, 1);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_THRESHOLD);
    ck_assert(is_worker(pool, info.history[0].pid));
    ck_assert_uint_eq(info.counters.trips, 1);

    r = CBCTL("list");
    assert_ok(&r);
    ck_assert_msg(row_of(r.out, pool->name, line, sizeof line), "no row for %s", pool->name);
    ck_assert_msg(strstr(line, " OPEN ") && strstr(line, "threshold_reached") && strstr(line, " ago "),
                  "row: %s", line);
    run_free(&r);

    r = CBCTL("show", pool->name);
    assert_ok(&r);
    char want[256];
    snprintf(want, sizeof want, "circuit %s\n", pool->name);
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "show: %s", r.out);
    ck_assert_msg(strstr(r.out, "state           OPEN\n"), "show: %s", r.out);
    ck_assert_msg(strstr(r.out, "threshold       3 failures\n"), "show: %s", r.out);
    ck_assert_msg(strstr(r.out, "reset timeout   1m00s\n"), "show: %s", r.out);
    snprintf(want, sizeof want, "threshold_reached          3  %7d  normal\n", (int)info.history[0].pid);
    ck_assert_msg(strstr(r.out, want), "show lacks '%s': %s", want, r.out);
    run_free(&r);

    /* Paused, the numbers hold still: the documents carry exactly them. */
    pool_pause(pool);
    inspect(pool->name, &info);

    r = CBCTL("show", "--json", pool->name);
    assert_ok(&r);
    check_json_with_python(r.out);
    struct jv doc = jparse(r.out);
    check_json_header(&doc);
    ck_assert_str_eq(jstr(&doc, "circuit.name"), pool->name);
    ck_assert_str_eq(jstr(&doc, "circuit.state"), "OPEN");
    ck_assert_uint_eq(juint(&doc, "circuit.generation"), info.generation);
    ck_assert_uint_le(juint(&doc, "circuit.ms_until_probe"), 60000 + 100);
    ck_assert_uint_gt(juint(&doc, "circuit.ms_until_probe"), 50000);
    ck_assert(jis_null(&doc, "circuit.probe_pid"));
    ck_assert_uint_eq(juint(&doc, "circuit.config.failure_threshold"), 3);
    ck_assert_uint_eq(juint(&doc, "circuit.config.reset_timeout_ms"), 60000);
    ck_assert_uint_eq(juint(&doc, "circuit.config.probe_timeout_ms"), 60000);
    ck_assert_str_eq(jstr(&doc, "circuit.config.mode"), "0600");
    ck_assert_uint_eq(juint(&doc, "circuit.segment.layout_version"), info.layout_version);
    ck_assert_uint_eq(juint(&doc, "circuit.segment.size"), info.segment_size);
    ck_assert_uint_eq(juint(&doc, "circuit.counters.allowed"), info.counters.allowed);
    ck_assert_uint_eq(juint(&doc, "circuit.counters.rejected"), info.counters.rejected);
    ck_assert_uint_eq(juint(&doc, "circuit.counters.successes"), info.counters.successes);
    ck_assert_uint_eq(juint(&doc, "circuit.counters.failures"), info.counters.failures);
    ck_assert_uint_eq(juint(&doc, "circuit.counters.late"), info.counters.late);
    ck_assert_uint_eq(juint(&doc, "circuit.counters.trips"), 1);
    ck_assert_uint_eq(juint(&doc, "circuit.counters.probes"), 0);
    const struct jv *hist = jget(&doc, "circuit.history");
    ck_assert(hist && hist->kind == J_ARRAY);
    ck_assert_uint_eq(hist->n, info.history_len);
    ck_assert_str_eq(jstr(&hist->items[0], "reason"), "threshold_reached");
    ck_assert_str_eq(jstr(&hist->items[0], "event"), "circuit_breaker_opened");
    ck_assert_str_eq(jstr(&hist->items[0], "from"), "CLOSED");
    ck_assert_str_eq(jstr(&hist->items[0], "to"), "OPEN");
    ck_assert_uint_eq(juint(&hist->items[0], "failures"), 3);
    ck_assert_uint_eq(juint(&hist->items[0], "pid"), (unsigned)info.history[0].pid);
    ck_assert_uint_eq(juint(&hist->items[0], "wall_ms"), info.history[0].wall_ms);
    jfree(&doc);
    run_free(&r);

    r = CBCTL("list", "--json");
    assert_ok(&r);
    check_json_with_python(r.out);
    doc = jparse(r.out);
    check_json_header(&doc);
    const struct jv *c = jcircuit(&doc, pool->name);
    ck_assert_msg(c != NULL, "%s not in list --json", pool->name);
    ck_assert(jget(c, "valid")->kind == J_BOOL && jget(c, "valid")->boolean);
    ck_assert_str_eq(jstr(c, "state"), "OPEN");
    ck_assert_uint_eq(juint(c, "failures"), 0);
    ck_assert_uint_eq(juint(c, "threshold"), 3);
    ck_assert_uint_eq(juint(c, "allowed"), info.counters.allowed);
    ck_assert_uint_eq(juint(c, "rejected"), info.counters.rejected);
    ck_assert_uint_eq(juint(c, "failures_total"), info.counters.failures);
    ck_assert_uint_eq(juint(c, "trips"), 1);
    ck_assert_uint_eq(juint(c, "generation"), info.generation);
    ck_assert_uint_eq(juint(c, "last_transition_ms"), info.history[0].wall_ms);
    ck_assert_str_eq(jstr(c, "last_reason"), "threshold_reached");
    ck_assert(jis_null(c, "probe_pid"));
    jfree(&doc);
    run_free(&r);

    /* -o picks columns, in order. */
    r = CBCTL("list", "-o", "name,trips,state", "--noheadings");
    assert_ok(&r);
    ck_assert_msg(row_of(r.out, pool->name, line, sizeof line), "no row: %s", r.out);
    char col1[256], col2[64], col3[64], col4[64];
    ck_assert_msg(sscanf(line, "%255s %63s %63s %63s", col1, col2, col3, col4) == 3, "row: %s", line);
    ck_assert_str_eq(col2, "1");
    ck_assert_str_eq(col3, "OPEN");
    ck_assert_msg(strncmp(r.out, "NAME", 4) != 0, "header despite --noheadings");
    run_free(&r);

    r = CBCTL("metrics");
    /* stderr may tell of other programs' objects (being created, say). */
    ck_assert_msg(r.code == 0, "metrics: exit %d: %s", r.code, r.err);
    ck_assert_msg(!strstr(r.err, pool->name), "metrics: %s", r.err);
    assert_exposition(r.out);
    char series[512];
#define SERIES(fmt, ...) (snprintf(series, sizeof series, fmt, __VA_ARGS__), series)
    ck_assert(sample(r.out, SERIES("cbreaker_state{circuit=\"%s\"}", pool->name)) == 1.0);
    ck_assert(sample(r.out, SERIES("cbreaker_failures{circuit=\"%s\"}", pool->name)) == 0.0);
    ck_assert(sample(r.out, SERIES("cbreaker_calls_total{circuit=\"%s\",result=\"allowed\"}", pool->name)) ==
              (double)info.counters.allowed);
    ck_assert(sample(r.out, SERIES("cbreaker_calls_total{circuit=\"%s\",result=\"rejected\"}", pool->name)) ==
              (double)info.counters.rejected);
    ck_assert(sample(r.out, SERIES("cbreaker_calls_total{circuit=\"%s\",result=\"success\"}", pool->name)) ==
              (double)info.counters.successes);
    ck_assert(sample(r.out, SERIES("cbreaker_calls_total{circuit=\"%s\",result=\"failure\"}", pool->name)) ==
              (double)info.counters.failures);
    ck_assert(sample(r.out, SERIES("cbreaker_calls_total{circuit=\"%s\",result=\"released\"}", pool->name)) ==
              0.0);
    ck_assert(sample(r.out, SERIES("cbreaker_calls_total{circuit=\"%s\",result=\"late\"}", pool->name)) ==
              (double)info.counters.late);
    ck_assert(sample(r.out, SERIES("cbreaker_trips_total{circuit=\"%s\"}", pool->name)) == 1.0);
    ck_assert(sample(r.out, SERIES("cbreaker_probes_total{circuit=\"%s\"}", pool->name)) == 0.0);
    double until = sample(r.out, SERIES("cbreaker_seconds_until_probe{circuit=\"%s\"}", pool->name));
    ck_assert_msg(until > 50.0 && until <= 60.1, "seconds until probe %f", until);
    const char *families[] = {"cbreaker_state", "cbreaker_failures", "cbreaker_calls_total",
                              "cbreaker_trips_total", "cbreaker_probes_total", "cbreaker_seconds_until_probe"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        ck_assert_msg(strstr(r.out, SERIES("# HELP %s ", families[i])), "no HELP for %s", families[i]);
        ck_assert_msg(strstr(r.out, SERIES("# TYPE %s ", families[i])), "no TYPE for %s", families[i]);
    }
    ck_assert(strstr(r.out, "# TYPE cbreaker_calls_total counter\n"));
    ck_assert(strstr(r.out, "# TYPE cbreaker_state gauge\n"));
    run_free(&r);

    pool_resume(pool);
    pool_stop(pool);
    ck_assert_int_eq(cb_unlink(pool->name), 0);
}
END_TEST

START_TEST(test_trip_and_reset_reach_workers)
{
    struct pool *pool = pool_start("control");
    static cb_info info;
    char want[512];
    assert_workers_get(pool, CB_ALLOWED);

    struct run r = CBCTL("is-closed", pool->name);
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, "");
    run_free(&r);

    struct run trip = CBCTL("trip", pool->name);
    assert_ok(&trip);
    snprintf(want, sizeof want, "%s: CLOSED -> OPEN\n", pool->name);
    ck_assert_str_eq(trip.out, want);
    assert_workers_get(pool, CB_REJECTED);

    r = CBCTL("state", pool->name);
    assert_ok(&r);
    ck_assert_str_eq(r.out, "OPEN\n");
    run_free(&r);
    r = CBCTL("is-closed", pool->name);
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.out, "");
    ck_assert_str_eq(r.err, "");
    run_free(&r);

    struct run reset = CBCTL("reset", pool->name);
    assert_ok(&reset);
    snprintf(want, sizeof want, "%s: OPEN -> CLOSED\n", pool->name);
    ck_assert_str_eq(reset.out, want);
    assert_workers_get(pool, CB_ALLOWED);
    r = CBCTL("state", pool->name);
    ck_assert_str_eq(r.out, "CLOSED\n");
    run_free(&r);

    /* The history names cbctl (its pid) as the operator. */
    inspect(pool->name, &info);
    ck_assert_uint_ge(info.history_len, 2);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_RESET);
    ck_assert_int_eq(info.history[0].pid, reset.pid);
    ck_assert_int_eq(info.history[1].reason, CB_REASON_TRIP);
    ck_assert_int_eq(info.history[1].pid, trip.pid);
    run_free(&trip);
    run_free(&reset);

    /* Forcing the state it is in is still a transition, and says so. */
    r = CBCTL("reset", pool->name);
    assert_ok(&r);
    snprintf(want, sizeof want, "%s: CLOSED -> CLOSED\n", pool->name);
    ck_assert_str_eq(r.out, want);
    inspect(pool->name, &info);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_RESET);
    ck_assert_int_eq(info.history[0].from, CB_CLOSED);
    ck_assert_int_eq(info.history[0].pid, r.pid);
    ck_assert_uint_eq(info.history[0].generation, info.generation);
    run_free(&r);
    for (int i = 0; i < 2; i++) {
        r = CBCTL("trip", pool->name);
        assert_ok(&r);
        snprintf(want, sizeof want, "%s: %s -> OPEN\n", pool->name, i ? "OPEN" : "CLOSED");
        ck_assert_str_eq(r.out, want);
        run_free(&r);
    }
    assert_workers_get(pool, CB_REJECTED);
    r = CBCTL("reset", pool->name);
    snprintf(want, sizeof want, "%s: OPEN -> CLOSED\n", pool->name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    assert_workers_get(pool, CB_ALLOWED);

    /* Quiet: the same effect, nothing printed. */
    r = CBCTL("--quiet", "trip", pool->name);
    assert_ok(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    assert_workers_get(pool, CB_REJECTED);
    r = CBCTL("reset", "-q", pool->name);
    assert_ok(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    assert_workers_get(pool, CB_ALLOWED);

    pool_stop(pool);
    ck_assert_int_eq(cb_unlink(pool->name), 0);
}
END_TEST

START_TEST(test_create_and_rm)
{
    const char *name = unique_name("create");
    static cb_info info;
    char want[512];

    struct run r = CBCTL("create", name, "--threshold", "5", "--reset-timeout", "30s", "--probe-timeout",
                         "500ms", "--mode", "0640");
    assert_ok(&r);
    snprintf(want, sizeof want,
             "%s: created (threshold 5, reset timeout 30s, probe timeout 500ms, mode 0640)\n", name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_threshold, 5);
    ck_assert_uint_eq(info.config.reset_timeout_ms, 30000);
    ck_assert_uint_eq(info.config.probe_timeout_ms, 500);
    struct stat st;
    ck_assert_int_eq(stat(dev_path(name), &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0640);

    /* Again: harmless; only the options given change. */
    r = CBCTL("create", name);
    assert_ok(&r);
    ck_assert_msg(strstr(r.out, "exists, unchanged"), "%s", r.out);
    run_free(&r);
    r = CBCTL("create", name, "--reset-timeout", "5m", "--threshold=7");
    assert_ok(&r);
    snprintf(want, sizeof want,
             "%s: exists, config updated (threshold 7, reset timeout 5m00s, probe timeout 500ms, mode 0640)\n",
             name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_threshold, 7);
    ck_assert_uint_eq(info.config.reset_timeout_ms, 300000);
    ck_assert_uint_eq(info.config.probe_timeout_ms, 500);

    r = CBCTL("rm", name);
    assert_ok(&r);
    snprintf(want, sizeof want, "%s: removed\n", name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    ck_assert_int_eq(cb_inspect(name, &info), -ENOENT);

    /* Defaults. */
    r = CBCTL("create", "-q", name);
    assert_ok(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_threshold, CB_DEFAULT_FAILURE_THRESHOLD);
    ck_assert_uint_eq(info.config.reset_timeout_ms, CB_DEFAULT_RESET_TIMEOUT_MS);
    ck_assert_uint_eq(info.config.mode, 0600);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* A server creates the circuit with threshold 7 at the worst moment for
 * cbctl create --reset-timeout 5s (the preloaded shim, just after any
 * look cbctl takes first, or just before it opens): the circuit keeps
 * threshold 7 and only the reset timeout changes (the probe timeout,
 * which followed it, follows on). */
START_TEST(test_create_race_keeps_server_config)
{
    const char *shim = getenv("CBCTL_RACE_SHIM");
    ck_assert_msg(shim != NULL, "CBCTL_RACE_SHIM is not set (meson test sets it)");
    const char *name = unique_name("create-race");
    char asan[512];
    const char *asan_was = getenv("ASAN_OPTIONS");
    /* A sanitizer build's cbctl must accept the shim ahead of its runtime. */
    snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", asan_was ? asan_was : "", asan_was ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    setenv("CB_RACE_NAME", name, 1);
    setenv("LD_PRELOAD", shim, 1);
    struct run r = CBCTL("create", name, "--reset-timeout", "5s");
    unsetenv("LD_PRELOAD");
    unsetenv("CB_RACE_NAME");
    if (asan_was)
        setenv("ASAN_OPTIONS", asan_was, 1);
    else
        unsetenv("ASAN_OPTIONS");
    assert_ok(&r);
    char want[512];
    snprintf(want, sizeof want,
             "%s: exists, config updated (threshold 7, reset timeout 5.0s, probe timeout 5.0s, mode 0600)\n", name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    static cb_info info;
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_threshold, 7);
    ck_assert_uint_eq(info.config.reset_timeout_ms, 5000);
    ck_assert_uint_eq(info.config.probe_timeout_ms, 5000);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_usage_errors_exit_2)
{
    const char *name = unique_name("usage");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    cb_close(b);
    static const char *const cases[][6] = {
        {NULL},
        {"frobnicate", NULL},
        {"list", "--bogus", NULL},
        {"list", "-x", NULL},
        {"list", "extra", NULL},
        {"show", NULL},
        {"show", "a", "b", NULL},
        {"reset", "--json", "@", NULL},
        {"list", "--threshold", "3", NULL},
        {"list", "-o", "NAME,BOGUS", NULL},
        {"list", "-o", NULL},
        {"show", "bad name", NULL},
        {"show", "a/b", NULL},
        {"create", "@", "--threshold", "0", NULL},
        {"create", "@", "--threshold", "x", NULL},
        {"create", "@", "--reset-timeout", "30", NULL},
        {"create", "@", "--reset-timeout", "0s", NULL},
        {"create", "@", "--probe-timeout", "5x", NULL},
        {"create", "@", "--mode", "999", NULL},
        {"create", "@", "--mode", "01777", NULL},
        {"watch", "--interval", "fast", NULL},
        {"metrics", "--json", NULL},
        {"enable", NULL},
        {"force-open", "a", "b", NULL},
        {"disable", "--json", "@", NULL},
        {"metrics-only", "--threshold", "3", "@", NULL},
        {"list", "--failure-rate", "50", NULL},
        {"create", "@", "--failure-rate", "0", NULL},
        {"create", "@", "--failure-rate", "101", NULL},
        {"create", "@", "--failure-rate", "5x", NULL},
        {"create", "@", "--minimum-calls", "0", NULL},
        {"create", "@", "--minimum-calls", "off", NULL},
        {"create", "@", "--window", "10", NULL},
        {"create", "@", "--window", "9ms", NULL},
        {"create", "@", "--window", "2h", NULL},
        {"create", "@", "--window", "off", NULL},
        {"create", "@", "--slow-call", "25h", NULL},
        {"create", "@", "--slow-call", "0ms", NULL},
        {"create", "@", "--slow-call-rate", "0", NULL},
        {"create", "@", "--slow-call-rate", "off", NULL},
        {"create", "@", "--backoff", "99", NULL},
        {"create", "@", "--backoff", "10001", NULL},
        {"create", "@", "--backoff", "2x", NULL},
        {"create", "@", "--max-reset-timeout", "5", NULL},
        {"create", "@", "--max-reset-timeout", "off", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[8] = {cbctl_path};
        int n = 1;
        for (int k = 0; k < 6 && cases[i][k]; k++)
            argv[n++] = strcmp(cases[i][k], "@") == 0 ? name : cases[i][k];
        argv[n] = NULL;
        struct run r = run_argv(0, NULL, argv);
        assert_error(&r, 2, NULL, NULL);
        run_free(&r);
    }
    struct run r = CBCTL("show", "bad name");
    assert_error(&r, 2, "bad name", "invalid circuit name");
    run_free(&r);
    /* The circuit was not touched by any of that. */
    static cb_info info;
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_threshold, CB_DEFAULT_FAILURE_THRESHOLD);
    ck_assert_uint_eq(info.history_len, 0);

    r = CBCTL("--help");
    assert_ok(&r);
    const char *words[] = {"Usage: cbctl", "list", "show NAME", "reset NAME", "trip NAME", "create NAME",
                           "rm NAME", "watch [NAME]", "metrics", "state NAME", "is-closed NAME", "--json",
                           "--quiet", "Exit status", "  3  permission denied", "500ms", "force-open NAME",
                           "disable NAME", "metrics-only NAME", "enable NAME", "--failure-rate",
                           "--minimum-calls", "--window", "--slow-call", "--slow-call-rate", "--backoff",
                           "--max-reset-timeout", "  5  reset, trip: refused", "OPMODE"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        ck_assert_msg(strstr(r.out, words[i]), "--help lacks '%s'", words[i]);
    run_free(&r);
    r = CBCTL("-h");
    assert_ok(&r);
    run_free(&r);
    r = CBCTL("-V");
    assert_ok(&r);
    char want[64];
    snprintf(want, sizeof want, "cbctl %s\n", cb_version());
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    r = CBCTL("--version");
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* Long options: one without a value given "=value" (also abbreviated) is
 * a usage error naming it; one with a value takes it after '='; unknown
 * ones are named without their value. Nothing is touched. */
START_TEST(test_long_option_values)
{
    const char *name = unique_name("optval");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    cb_close(b);
    static const char *const flags[][2] = {
        {"--json=1", "--json"}, {"--js=1", "--json"}, {"--quiet=yes", "--quiet"},
        {"--noheadings=", "--noheadings"}, {"--help=1", "--help"}, {"--version=1", "--version"},
    };
    char want[128];
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        struct run r = CBCTL(flags[i][0], "list");
        snprintf(want, sizeof want, "option '%s' takes no value", flags[i][1]);
        assert_error(&r, 2, want, NULL);
        run_free(&r);
    }
    static const char *const valued[][4] = {
        {"list", "--output=BOGUS", NULL, "'BOGUS'"},
        {"watch", "--interval=fast", NULL, "--interval: 'fast'"},
        {"create", "--threshold=0", "@", "--threshold: '0'"},
        {"create", "--reset-timeout=5", "@", "--reset-timeout: '5'"},
        {"create", "--probe-timeout=5x", "@", "--probe-timeout: '5x'"},
        {"create", "--mode=999", "@", "--mode: '999'"},
        {"create", "--failure-rate=101", "@", "--failure-rate: '101' is not a percentage from 1 to 100"},
        {"create", "--minimum-calls=0", "@", "--minimum-calls: '0' is not a whole number"},
        {"create", "--window=2h", "@", "--window: '2h' is not a duration from 10ms to 1h"},
        {"create", "--slow-call=25h", "@", "--slow-call: '25h' is not a duration up to 24h"},
        {"create", "--slow-call-rate=0", "@", "--slow-call-rate: '0' is not a percentage"},
        {"create", "--backoff=50", "@", "--backoff: '50' is not a percentage from 100 to 10000"},
        {"create", "--max-reset-timeout=5", "@", "--max-reset-timeout: '5' is not a duration"},
        {"list", "--bogus", NULL, "unknown option '--bogus'"},
        {"list", "--bogus=1", NULL, "unknown option '--bogus'"},
        {"list", "-x", NULL, "unknown option '-x'"},
    };
    for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++) {
        const char *arg = valued[i][2] ? name : NULL;
        struct run r = run_argv(0, NULL, (const char *const[]){cbctl_path, valued[i][0], valued[i][1], arg, NULL});
        assert_error(&r, 2, valued[i][3], NULL);
        ck_assert_msg(!strstr(r.err, "=1'"), "the value in the name: %s", r.err);
        run_free(&r);
    }
    static cb_info info;
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_threshold, CB_DEFAULT_FAILURE_THRESHOLD);
    ck_assert_uint_eq(info.config.mode, 0600);
    ck_assert_uint_eq(info.history_len, 0);

    /* Values after '=' are taken. */
    struct run r = CBCTL("list", "--output=name,state", "--noheadings");
    assert_ok(&r);
    char line[1024];
    ck_assert_msg(row_of(r.out, name, line, sizeof line), "no row for %s: %s", name, r.out);
    char field[2][256], extra[8];
    ck_assert_msg(sscanf(line, "%255s %255s %7s", field[0], field[1], extra) == 2 &&
                      strcmp(field[1], "CLOSED") == 0, "row: %s", line);
    run_free(&r);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_no_such_circuit_exit_1)
{
    const char *name = unique_name("missing");
    static const char *const verbs[] = {"show",    "state",      "is-closed",    "reset",  "trip", "rm",
                                        "watch",   "force-open", "metrics-only", "disable", "enable"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        struct run r = CBCTL(verbs[i], name);
        assert_error(&r, 1, name, "no such circuit");
        run_free(&r);
    }
    struct run r = CBCTL("show", "--json", name);
    assert_error(&r, 1, name, "no such circuit");
    run_free(&r);
    ck_assert_int_eq(access(dev_path(name), F_OK), -1); /* nothing created */
}
END_TEST

START_TEST(test_permission_denied_exit_3)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_permission_denied_exit_3: skipped (needs root to become nobody)\n");
        return;
    }
    const char *secret = unique_name("secret");
    const char *shared = unique_name("readable");
    cb_config mode600 = {.failure_threshold = 2, .reset_timeout_ms = 60000, .mode = 0600};
    cb_config mode644 = {.failure_threshold = 2, .reset_timeout_ms = 60000, .mode = 0644};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(secret, &mode600, &b), CB_CREATED);
    cb_close(b);
    ck_assert_int_eq(cb_open(shared, &mode644, &b), CB_CREATED);
    cb_close(b);

    static const char *const verbs[] = {"show",  "state",      "is-closed", "reset",        "trip",
                                        "create", "rm",        "watch",     "force-open",   "disable",
                                        "enable", "metrics-only"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        struct run r = CBCTL_AS_NOBODY(verbs[i], secret);
        assert_error(&r, 3, secret, "permission denied");
        ck_assert_msg(strstr(r.err, "owned by root, mode 0600"), "%s", r.err);
        run_free(&r);
    }
    /* Read permission is enough to look, not to control. */
    struct run r = CBCTL_AS_NOBODY("show", shared);
    assert_ok(&r);
    ck_assert(strstr(r.out, "state           CLOSED\n"));
    run_free(&r);
    r = CBCTL_AS_NOBODY("reset", shared);
    assert_error(&r, 3, shared, "permission denied");
    run_free(&r);
    r = CBCTL_AS_NOBODY("force-open", shared);
    assert_error(&r, 3, shared, "permission denied");
    run_free(&r);

    /* list goes on past what it may not read. */
    char line[1024];
    r = CBCTL_AS_NOBODY("list");
    assert_ok(&r);
    ck_assert_msg(row_of(r.out, secret, line, sizeof line), "no row for %s", secret);
    ck_assert_msg(strstr(line, "invalid: permission denied (EACCES)"), "row: %s", line);
    ck_assert_msg(row_of(r.out, shared, line, sizeof line) && strstr(line, "CLOSED"), "row: %s", line);
    run_free(&r);

    /* Nothing was changed by nobody. */
    static cb_info info;
    inspect(secret, &info);
    ck_assert_uint_eq(info.history_len, 0);
    ck_assert_int_eq(cb_unlink(secret), 0);
    ck_assert_int_eq(cb_unlink(shared), 0);
}
END_TEST

/* A broken object: list reports it and goes on, show exits 4; with
 * max_ms, each command on it alone ends within max_ms. */
/* A segment root does not trust (another user's, or writable by anyone):
 * controls refuse it with exit 3 and say whose it is; show still reads it. */
START_TEST(test_untrusted_owner_exit_3)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_untrusted_owner_exit_3: skipped (needs root to give a segment away)\n");
        return;
    }
    const char *foreign = unique_name("foreign");
    const char *world = unique_name("world");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(foreign, NULL, &b), CB_CREATED);
    cb_close(b);
    ck_assert_int_eq(chown(dev_path(foreign), 65534, 65534), 0);
    ck_assert_int_eq(cb_open(world, NULL, &b), CB_CREATED);
    cb_close(b);
    ck_assert_int_eq(chmod(dev_path(world), 0666), 0);

    static const char *const verbs[] = {"reset", "trip", "create", "force-open", "disable", "metrics-only", "enable"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        struct run r = CBCTL(verbs[i], foreign);
        assert_error(&r, 3, foreign, "not trusted (segment owned by nobody, mode 0600)");
        ck_assert_msg(strstr(r.err, "cbctl rm"), "%s", r.err);
        run_free(&r);
        r = CBCTL(verbs[i], world);
        assert_error(&r, 3, world, "not trusted (segment owned by root, mode 0666)");
        run_free(&r);
    }
    struct run r = CBCTL("show", foreign);
    assert_ok(&r);
    ck_assert(strstr(r.out, "state           CLOSED\n"));
    run_free(&r);
    static cb_info info;
    inspect(foreign, &info);
    ck_assert_uint_eq(info.history_len, 0); /* nothing was changed */
    r = CBCTL("rm", foreign);
    assert_ok(&r);
    run_free(&r);
    r = CBCTL("rm", world);
    assert_ok(&r);
    run_free(&r);
}
END_TEST

static void assert_broken(const char *name, const char *reason, const char *error, const char *after,
                          unsigned max_ms)
{
    char line[1024];
    struct run r = CBCTL("list");
    assert_ok(&r);
    ck_assert_msg(row_of(r.out, name, line, sizeof line), "no row for %s in\n%s", name, r.out);
    char want[256];
    const char *invalid = strstr(line, "  invalid: ");
    ck_assert_msg(invalid && strstr(invalid, reason) && strstr(invalid, error), "row: %s", line);
    ck_assert_msg(row_of(r.out, after, line, sizeof line) && strstr(line, "CLOSED"),
                  "listing stopped before %s", after);
    run_free(&r);

    r = CBCTL("list", "--json");
    assert_ok(&r);
    struct jv doc = jparse(r.out);
    const struct jv *c = jcircuit(&doc, name);
    ck_assert_msg(c != NULL, "%s not in list --json", name);
    ck_assert(!jget(c, "valid")->boolean);
    char bare[32];
    snprintf(bare, sizeof bare, "%.*s", (int)strlen(error) - 2, error + 1); /* "(ENOTCB)" -> "ENOTCB" */
    ck_assert_str_eq(jstr(c, "error"), bare);
    jfree(&doc);
    run_free(&r);

    static const char *const verbs[] = {"show", "state", "is-closed", "reset", "trip", "create", "force-open",
                                        "enable"};
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        r = CBCTL(verbs[i], name);
        assert_error(&r, 4, name, reason);
        ck_assert_msg(!max_ms || r.ms < max_ms, "%s %s took %llu ms", verbs[i], name, (unsigned long long)r.ms);
        run_free(&r);
    }
    r = CBCTL("metrics");
    ck_assert_int_eq(r.code, 0);
    assert_exposition(r.out);
    snprintf(want, sizeof want, "\"%s\"", name);
    ck_assert_msg(!strstr(r.out, want), "metrics has %s", name);
    snprintf(want, sizeof want, "cbctl: %s: left out: ", name);
    const char *told = strstr(r.err, want);
    ck_assert_msg(told && strstr(told, reason) < strchr(told, '\n') && strstr(told, reason),
                  "metrics stderr: %s", r.err);
    run_free(&r);
}

static void write_file(const char *name, const void *bytes, size_t len)
{
    int fd = open(dev_path(name), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_msg(fd >= 0, "%s: %s", dev_path(name), strerror(errno));
    ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

static void patch(const char *name, size_t offset, const void *bytes, size_t len)
{
    int fd = open(dev_path(name), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, bytes, len, (off_t)offset), (ssize_t)len);
    close(fd);
}

START_TEST(test_broken_segments_exit_4)
{
    /* A valid circuit that sorts after every broken one. */
    char after[128];
    snprintf(after, sizeof after, "%s.zz", unique_name("broken"));
    cb_unlink(remember(after));
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(after, NULL, &b), CB_CREATED);
    cb_close(b);

    const char *garbage = unique_name("broken-garbage");
    static unsigned char random_bytes[16384];
    ck_assert_int_eq(getrandom(random_bytes, sizeof random_bytes, 0), (ssize_t)sizeof random_bytes);
    random_bytes[0] = 'x';
    write_file(garbage, random_bytes, sizeof random_bytes);
    assert_broken(garbage, "not a cbreaker segment", "(ENOTCB)", after, 0);

    const char *small = unique_name("broken-short");
    write_file(small, random_bytes, 10);
    assert_broken(small, "segment size is wrong", "(ESIZE)", after, 0);

    const char *version = unique_name("broken-version");
    ck_assert_int_eq(cb_open(version, NULL, &b), CB_CREATED);
    cb_close(b);
    uint32_t other = CB_LAYOUT_VERSION + 1;
    patch(version, offsetof(struct cb_segment, layout_version), &other, sizeof other);
    assert_broken(version, "another layout version", "(EVERSION)", after, 0);
    struct run rv = CBCTL("show", version);
    char rm_hint[256];
    snprintf(rm_hint, sizeof rm_hint, "cbctl rm %s", version); /* the way out, with the name filled in */
    assert_error(&rv, 4, version, rm_hint);
    run_free(&rv);

    /* Not regular files: the library refuses them at once (a FIFO with no
     * writer must not block the open), and cbctl says what they are. At
     * once: under 1 s, half the library's 2 s wait for a creator, which a
     * busy machine (a coverage build on 2 shared cores took 123 ms) leaves
     * far behind a 100 ms bound. */
    const char *dir = unique_name("broken-dir");
    ck_assert_int_eq(mkdir(dev_path(dir), 0700), 0);
    assert_broken(dir, "not a regular file, so not a cbreaker segment", "(ENOTCB)", after, 1000);

    const char *fifo = unique_name("broken-fifo");
    ck_assert_int_eq(mkfifo(dev_path(fifo), 0600), 0);
    assert_broken(fifo, "not a regular file, so not a cbreaker segment", "(ENOTCB)", after, 1000);
    struct stat st;
    ck_assert_int_eq(lstat(dev_path(fifo), &st), 0);
    ck_assert(S_ISFIFO(st.st_mode)); /* create did not replace it */

    const char *link = unique_name("broken-link");
    ck_assert_int_eq(symlink(dev_path(after), dev_path(link)), 0);
    assert_broken(link, "symbolic link", "(ELOOP)", after, 0);

    /* An impossible state: reported, and reset repairs it. */
    const char *corrupt = unique_name("broken-corrupt");
    ck_assert_int_eq(cb_open(corrupt, NULL, &b), CB_CREATED);
    cb_close(b);
    uint64_t word = sw_make(CB_STATE_MODE, 9, 0);
    patch(corrupt, offsetof(struct cb_segment, state), &word, sizeof word);
    struct run r = CBCTL("show", corrupt);
    assert_error(&r, 4, corrupt, "impossible state");
    ck_assert(strstr(r.err, "cbctl reset"));
    run_free(&r);
    char line[1024];
    r = CBCTL("list");
    ck_assert_msg(row_of(r.out, corrupt, line, sizeof line) && strstr(line, "(ECORRUPT)"), "row: %s", line);
    run_free(&r);
    r = CBCTL("reset", corrupt);
    assert_ok(&r);
    char want[256];
    snprintf(want, sizeof want, "%s: INVALID -> CLOSED\n", corrupt);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    r = CBCTL("state", corrupt);
    ck_assert_str_eq(r.out, "CLOSED\n");
    run_free(&r);
    /* Any mode replaces an impossible state too: enable repairs it. */
    static const char *const modes[][3] = {{"enable", "normal", "CLOSED\n"}, {"force-open", "forced_open", "OPEN\n"}};
    for (int i = 0; i < 2; i++) {
        patch(corrupt, offsetof(struct cb_segment, state), &word, sizeof word);
        r = CBCTL(modes[i][0], corrupt);
        assert_ok(&r);
        snprintf(want, sizeof want, "%s: mode invalid -> %s\n", corrupt, modes[i][1]);
        ck_assert_str_eq(r.out, want);
        run_free(&r);
        r = CBCTL("state", corrupt);
        ck_assert_str_eq(r.out, modes[i][2]);
        run_free(&r);
    }

    /* rm removes what is not a circuit, too. */
    r = CBCTL("rm", garbage);
    assert_ok(&r);
    run_free(&r);
    ck_assert_int_eq(access(dev_path(garbage), F_OK), -1);
    forget_all();
}
END_TEST

/* ---- watch ---- */

struct proc {
    pid_t pid;
    int fd; /* its stdout (and stderr when on a terminal) */
    struct buf got;
};

static struct proc spawn_watch(const char *const argv[], int on_pty)
{
    struct proc p = {0};
    int fds[2], slave = -1;
    if (on_pty) {
        int master = posix_openpt(O_RDWR | O_NOCTTY);
        ck_assert_int_ge(master, 0);
        ck_assert_int_eq(grantpt(master), 0);
        ck_assert_int_eq(unlockpt(master), 0);
        slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        ck_assert_int_ge(slave, 0);
        fds[0] = master;
        fds[1] = slave;
    } else {
        ck_assert_int_eq(pipe(fds), 0);
    }
    p.pid = fork();
    ck_assert_int_ge(p.pid, 0);
    if (p.pid == 0) {
        if (on_pty)
            setsid();
        dup2(fds[1], 1);
        if (on_pty)
            dup2(fds[1], 2);
        for (int fd = 3; fd < 64; fd++)
            close(fd);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    p.fd = fds[0];
    buf_add(&p.got, "", 0);
    return p;
}

/* Read until `text` has arrived (after offset `from`), or ms passed. */
static const char *wait_for(struct proc *p, size_t from, const char *text, unsigned ms)
{
    uint64_t deadline = mono_ms() + ms;
    for (;;) {
        const char *at = strstr(p->got.p + from, text);
        if (at)
            return at;
        int left = (int)(deadline - mono_ms());
        if (mono_ms() >= deadline)
            return NULL;
        struct pollfd pf = {p->fd, POLLIN, 0};
        if (poll(&pf, 1, left) <= 0)
            continue;
        char chunk[4096];
        ssize_t n = read(p->fd, chunk, sizeof chunk);
        if (n <= 0)
            return NULL;
        buf_add(&p->got, chunk, (size_t)n);
    }
}

/* Take in whatever arrives within ms. */
static void drain(struct proc *p, unsigned ms)
{
    uint64_t deadline = mono_ms() + ms;
    for (;;) {
        int left = (int)(deadline - mono_ms());
        struct pollfd pf = {p->fd, POLLIN, 0};
        if (mono_ms() >= deadline || poll(&pf, 1, left) <= 0)
            return;
        char chunk[4096];
        ssize_t n = read(p->fd, chunk, sizeof chunk);
        if (n <= 0)
            return;
        buf_add(&p->got, chunk, (size_t)n);
    }
}

/* SIGTERM, read to the end (a full terminal would block it), status 0. */
static void stop_watch(struct proc *p)
{
    ck_assert_int_eq(kill(p->pid, SIGTERM), 0);
    char chunk[4096];
    struct pollfd pf = {p->fd, POLLIN, 0};
    uint64_t deadline = mono_ms() + 10000;
    while (mono_ms() < deadline && poll(&pf, 1, 100) >= 0)
        if ((pf.revents & (POLLIN | POLLHUP | POLLERR)) && read(p->fd, chunk, sizeof chunk) <= 0)
            break;
    int status;
    ck_assert_int_eq(waitpid(p->pid, &status, 0), p->pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "watch ended with status 0x%x", status);
    close(p->fd);
    free(p->got.p);
}

START_TEST(test_watch_prints_transitions)
{
    const char *name = unique_name("watch");
    cb_config cfg = {.failure_threshold = 2, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &cfg, &b), CB_CREATED);
    ck_assert_int_eq(cb_trip(b), CB_CLOSED); /* before watch: not printed */
    struct proc w = spawn_watch((const char *const[]){cbctl_path, "watch", name, NULL}, 0);

    /* Prime until watch reports: then it has taken its first look. */
    char line[512];
    const char *seen = NULL;
    for (int i = 0; i < 100 && !seen; i++) {
        ck_assert_int_eq(cb_trip(b), CB_OPEN);
        snprintf(line, sizeof line, "reason=trip failures=0 pid=%d ", (int)getpid());
        seen = wait_for(&w, 0, line, 200);
    }
    ck_assert_msg(seen, "watch printed nothing: %s", w.got.p);
    ck_assert_msg(strncmp(w.got.p, "event=circuit_breaker_opened circuit=", 37) == 0, "%s", w.got.p);
    drain(&w, 300);
    size_t mark = w.got.len;

    /* Three transitions by three actors, in order. */
    struct run reset = CBCTL("reset", name);
    assert_ok(&reset);
    for (int i = 0; i < 2; i++) {
        cb_permit p;
        ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
        cb_failure(b, &p);
    }
    struct run trip = CBCTL("trip", name);
    assert_ok(&trip);
    char want[3][512];
    snprintf(want[0], sizeof want[0],
             "event=circuit_breaker_closed circuit=%s from=OPEN to=CLOSED reason=reset failures=0 pid=%d wall_ms=",
             name, (int)reset.pid);
    snprintf(want[1], sizeof want[1],
             "event=circuit_breaker_opened circuit=%s from=CLOSED to=OPEN reason=threshold_reached failures=2 "
             "pid=%d wall_ms=",
             name, (int)getpid());
    snprintf(want[2], sizeof want[2],
             "event=circuit_breaker_opened circuit=%s from=OPEN to=OPEN reason=trip failures=0 pid=%d wall_ms=",
             name, (int)trip.pid);
    size_t from = mark;
    for (int i = 0; i < 3; i++) {
        const char *at = wait_for(&w, from, want[i], 5000);
        ck_assert_msg(at != NULL, "watch did not print '%s'; got:\n%s", want[i], w.got.p + mark);
        ck_assert_msg(at == w.got.p + from, "unexpected output before '%s':\n%s", want[i], w.got.p + from);
        from = (size_t)(strchr(at, '\n') - w.got.p) + 1;
    }
    drain(&w, 300);
    ck_assert_msg(w.got.len == from, "more than one line per transition:\n%s", w.got.p + mark);

    /* Two transitions alike in all but their generation (same process,
     * likely the same millisecond, between two looks): two lines. */
    ck_assert_int_eq(cb_trip(b), CB_OPEN);
    ck_assert_int_eq(cb_trip(b), CB_OPEN);
    snprintf(line, sizeof line, "from=OPEN to=OPEN reason=trip failures=0 pid=%d ", (int)getpid());
    const char *first = wait_for(&w, from, line, 5000);
    ck_assert_msg(first, "watch did not print the trips: %s", w.got.p + from);
    size_t after_first = (size_t)(strchr(first, '\n') - w.got.p) + 1;
    ck_assert_msg(wait_for(&w, after_first, line, 5000), "one line for two trips: %s", w.got.p + from);
    drain(&w, 300);
    unsigned lines = 0;
    for (const char *p = w.got.p + from; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    ck_assert_msg(lines == 2, "%u lines for two trips:\n%s", lines, w.got.p + from);
    run_free(&reset);
    run_free(&trip);
    stop_watch(&w);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* Lines printed after offset `from`. */
static unsigned lines_after(const struct proc *p, size_t from)
{
    unsigned lines = 0;
    for (const char *c = p->got.p + from; (c = strchr(c, '\n')) != NULL; c++)
        lines++;
    return lines;
}

/* A circuit removed and created again under its name between two looks
 * starts its generations over, at ones watch saw of the old circuit: every
 * transition of the new one is printed all the same, once, in order. */
START_TEST(test_watch_follows_a_recreated_circuit)
{
    const char *name = unique_name("watch-again");
    cb_config cfg = {.failure_threshold = 2, .reset_timeout_ms = 60000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &cfg, &b), CB_CREATED);
    struct proc w = spawn_watch((const char *const[]){cbctl_path, "watch", name, NULL}, 0);
    char line[512];
    snprintf(line, sizeof line, "from=OPEN to=OPEN reason=trip failures=0 pid=%d ", (int)getpid());
    const char *seen = NULL;
    ck_assert_int_eq(cb_trip(b), CB_CLOSED);
    for (int i = 0; i < 100 && !seen; i++) {
        ck_assert_int_eq(cb_trip(b), CB_OPEN);
        seen = wait_for(&w, 0, line, 200);
    }
    ck_assert_msg(seen, "watch printed nothing: %s", w.got.p);
    /* Three more, all seen: watch has had generations 1 to 4 at least. */
    drain(&w, 300);
    size_t mark = w.got.len;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cb_trip(b), CB_OPEN);
    for (uint64_t deadline = mono_ms() + 5000; lines_after(&w, mark) < 3 && mono_ms() < deadline;)
        drain(&w, 100);
    ck_assert_msg(lines_after(&w, mark) == 3, "not three lines for three trips:\n%s", w.got.p + mark);
    cb_close(b);

    /* Removed and made again; its transitions take generations 1, 2, 3. */
    mark = w.got.len;
    ck_assert_int_eq(cb_unlink(name), 0);
    ck_assert_int_eq(cb_open(name, &cfg, &b), CB_CREATED);
    ck_assert_int_eq(cb_trip(b), CB_CLOSED);
    ck_assert_int_eq(cb_reset(b), CB_OPEN);
    ck_assert_int_eq(cb_trip(b), CB_CLOSED);
    static cb_info info;
    inspect(name, &info);
    ck_assert_uint_eq(info.history_len, 3);
    ck_assert_uint_eq(info.history[0].generation, 3); /* newest first */
    const char *want[3] = {"from=CLOSED to=OPEN reason=trip", "from=OPEN to=CLOSED reason=reset",
                           "from=CLOSED to=OPEN reason=trip"};
    size_t from = mark;
    for (int i = 0; i < 3; i++) {
        const char *at = wait_for(&w, from, want[i], 5000);
        ck_assert_msg(at != NULL, "watch did not print '%s' of the new circuit; got:\n%s", want[i],
                      w.got.p + mark);
        ck_assert_msg(strchr(w.got.p + from, '\n') > at, "unexpected output before '%s':\n%s", want[i],
                      w.got.p + from);
        from = (size_t)(strchr(at, '\n') - w.got.p) + 1;
    }
    drain(&w, 300);
    ck_assert_msg(lines_after(&w, mark) == 3, "not three lines for three transitions:\n%s", w.got.p + mark);
    stop_watch(&w);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

START_TEST(test_watch_redraws_on_a_terminal)
{
    const char *name = unique_name("watch-tty");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    struct proc w = spawn_watch((const char *const[]){cbctl_path, "watch", "-i", "100ms", name, NULL}, 1);
    const char *first = wait_for(&w, 0, "\033[H\033[J", 5000);
    ck_assert_msg(first, "no screen clear: %s", w.got.p);
    size_t after_first = (size_t)(first - w.got.p) + 1; /* the buffer may move */
    ck_assert_msg(wait_for(&w, 0, name, 5000) && wait_for(&w, 0, "CLOSED", 5000), "no row: %s", w.got.p);
    ck_assert_int_eq(cb_trip(b), CB_CLOSED);
    ck_assert_msg(wait_for(&w, after_first, " OPEN ", 5000), "no redraw: %s", w.got.p);
    stop_watch(&w);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* ---- operator modes and policies ---- */

/* cbctl VERB NAME prints "NAME: mode FROM -> TO" (and "(unchanged)" when
 * it was already set); returns cbctl's pid. */
static pid_t set_mode_ok(const char *verb, const char *name, const char *from, const char *to)
{
    struct run r = CBCTL(verb, name);
    assert_ok(&r);
    char want[512];
    snprintf(want, sizeof want, "%s: mode %s -> %s%s\n", name, from, to,
             strcmp(from, to) == 0 ? " (unchanged)" : "");
    ck_assert_str_eq(r.out, want);
    pid_t pid = r.pid;
    run_free(&r);
    return pid;
}

/* reset and trip refused in a mode: exit 5, the mode named, the way out. */
static void assert_refused_in_mode(const char *name, const char *mode, const char *verb)
{
    static cb_info before, after;
    inspect(name, &before);
    char want[512], hint[512];
    static const char *const controls[] = {"reset", "trip"};
    for (int i = 0; i < 2; i++) {
        struct run r = CBCTL(controls[i], name);
        snprintf(want, sizeof want, "%s refused: operator mode %s is set (cbctl %s)", controls[i], mode, verb);
        snprintf(hint, sizeof hint, "run 'cbctl enable %s' first", name);
        assert_error(&r, 5, want, hint);
        run_free(&r);
    }
    inspect(name, &after);
    ck_assert_uint_eq(after.generation, before.generation); /* nothing changed */
    ck_assert_uint_eq(after.history_len, before.history_len);
    ck_assert_int_eq(after.mode, before.mode);
}

START_TEST(test_modes_reach_workers)
{
    struct pool *pool = pool_start("modes");
    static cb_info info;
    char want[512], line[1024], series[512];
    assert_workers_get(pool, CB_ALLOWED);

    /* force-open: every worker rejected, whatever the timeouts. */
    pid_t by = set_mode_ok("force-open", pool->name, "normal", "forced_open");
    assert_workers_get(pool, CB_REJECTED);
    inspect(pool->name, &info);
    ck_assert_int_eq(info.mode, CB_MODE_FORCED_OPEN);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_ge(info.history_len, 1);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_MODE);
    ck_assert_int_eq(info.history[0].mode, CB_MODE_FORCED_OPEN);
    ck_assert_int_eq(info.history[0].pid, by);
    uint32_t generation = info.generation;
    /* Again: nothing to change, and no transition. */
    set_mode_ok("force-open", pool->name, "forced_open", "forced_open");
    inspect(pool->name, &info);
    ck_assert_uint_eq(info.generation, generation);

    struct run r = CBCTL("state", pool->name);
    assert_ok(&r);
    ck_assert_str_eq(r.out, "OPEN\n");
    run_free(&r);
    r = CBCTL("is-closed", pool->name);
    ck_assert_int_eq(r.code, 1);
    run_free(&r);

    r = CBCTL("show", pool->name);
    assert_ok(&r);
    ck_assert_msg(strstr(r.out, "  state           OPEN\n"), "show: %s", r.out);
    ck_assert_msg(strstr(r.out, "  operator mode   forced_open (every call rejected, no probe)\n"), "show: %s", r.out);
    snprintf(want, sizeof want, "  probe in        never (forced open: 'cbctl enable %s' resumes)\n", pool->name);
    ck_assert_msg(strstr(r.out, want), "show: %s", r.out);
    ck_assert_msg(!strstr(r.out, "due"), "show: %s", r.out);
    snprintf(want, sizeof want, "  CLOSED     OPEN       mode                       0  %7d  forced_open\n", (int)by);
    ck_assert_msg(strstr(r.out, want), "show lacks '%s': %s", want, r.out);
    run_free(&r);

    r = CBCTL("list");
    assert_ok(&r);
    ck_assert_msg(row_of(r.out, pool->name, line, sizeof line), "no row for %s", pool->name);
    ck_assert_msg(strstr(line, " FORCED_OPEN ") && strstr(line, " mode") && !strstr(line, " due "), "row: %s", line);
    run_free(&r);
    r = CBCTL("list", "-o", "name,opmode,state", "-n");
    assert_ok(&r);
    ck_assert_msg(row_of(r.out, pool->name, line, sizeof line), "no row for %s", pool->name);
    /* Columns are as wide as their widest value in all of /dev/shm
     * (another test's circuit may be metrics_only): any run of spaces. */
    const char *mode_col = strstr(line, " forced_open ");
    ck_assert_msg(mode_col && strncmp(mode_col + strspn(mode_col + 12, " ") + 12, "FORCED_OPEN", 11) == 0,
                  "row: %s", line);
    run_free(&r);

    r = CBCTL("list", "--json");
    assert_ok(&r);
    struct jv doc = jparse(r.out);
    const struct jv *c = jcircuit(&doc, pool->name);
    ck_assert_msg(c != NULL, "%s not in list --json", pool->name);
    ck_assert_str_eq(jstr(c, "state"), "OPEN"); /* scripts keep their three states */
    ck_assert_str_eq(jstr(c, "operator_mode"), "forced_open");
    ck_assert(jis_null(c, "ms_until_probe"));
    jfree(&doc);
    run_free(&r);

    r = CBCTL("show", "--json", pool->name);
    assert_ok(&r);
    check_json_with_python(r.out);
    doc = jparse(r.out);
    ck_assert_str_eq(jstr(&doc, "circuit.state"), "OPEN");
    ck_assert_str_eq(jstr(&doc, "circuit.mode"), "forced_open");
    ck_assert(jis_null(&doc, "circuit.ms_until_probe"));
    const struct jv *hist = jget(&doc, "circuit.history");
    ck_assert(hist && hist->kind == J_ARRAY && hist->n >= 1);
    ck_assert_str_eq(jstr(&hist->items[0], "reason"), "mode");
    ck_assert_str_eq(jstr(&hist->items[0], "mode"), "forced_open");
    ck_assert_uint_eq(juint(&hist->items[0], "pid"), (unsigned)by);
    jfree(&doc);
    run_free(&r);

#define SERIES(fmt, ...) (snprintf(series, sizeof series, fmt, __VA_ARGS__), series)
    r = CBCTL("metrics");
    ck_assert_msg(r.code == 0, "metrics: exit %d: %s", r.code, r.err);
    assert_exposition(r.out);
    ck_assert(sample(r.out, SERIES("cbreaker_mode{circuit=\"%s\"}", pool->name)) == 2.0);
    ck_assert(sample(r.out, SERIES("cbreaker_state{circuit=\"%s\"}", pool->name)) == 1.0);
    ck_assert(sample(r.out, SERIES("cbreaker_seconds_until_probe{circuit=\"%s\"}", pool->name)) == 0.0);
    run_free(&r);

    assert_refused_in_mode(pool->name, "forced_open", "force-open");

    /* enable: CLOSED again, calls go through. */
    set_mode_ok("enable", pool->name, "forced_open", "normal");
    assert_workers_get(pool, CB_ALLOWED);
    inspect(pool->name, &info);
    ck_assert_int_eq(info.mode, CB_MODE_NORMAL);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_int_eq(info.history[0].reason, CB_REASON_MODE);
    ck_assert_int_eq(info.history[0].from, CB_OPEN);
    ck_assert_int_eq(info.history[0].to, CB_CLOSED);
    set_mode_ok("enable", pool->name, "normal", "normal");

    /* disable: the dependency fails, nothing trips, every call goes on. */
    set_mode_ok("disable", pool->name, "normal", "disabled");
    uint64_t trips = info.counters.trips;
    pool->fail = 1;
    for (int i = 0; i < 3; i++)
        assert_workers_get(pool, CB_ALLOWED); /* 4 workers x 2 failures, 3 times: past any threshold */
    inspect(pool->name, &info);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.counters.trips, trips);
    r = CBCTL("list");
    ck_assert_msg(row_of(r.out, pool->name, line, sizeof line) && strstr(line, " DISABLED "), "row: %s", line);
    run_free(&r);
    r = CBCTL("metrics");
    ck_assert(sample(r.out, SERIES("cbreaker_mode{circuit=\"%s\"}", pool->name)) == 1.0);
    ck_assert(sample(r.out, SERIES("cbreaker_state{circuit=\"%s\"}", pool->name)) == 0.0);
    run_free(&r);
    r = CBCTL("show", pool->name);
    ck_assert_msg(strstr(r.out, "  operator mode   disabled (every call allowed, nothing trips it)\n"), "show: %s",
                  r.out);
    run_free(&r);
    assert_refused_in_mode(pool->name, "disabled", "disable");

    /* metrics-only: still failing, still allowed, the state never changes. */
    set_mode_ok("metrics-only", pool->name, "disabled", "metrics_only");
    for (int i = 0; i < 3; i++)
        assert_workers_get(pool, CB_ALLOWED);
    inspect(pool->name, &info);
    ck_assert_int_eq(info.state, CB_CLOSED);
    ck_assert_uint_eq(info.counters.trips, trips);
    r = CBCTL("list");
    ck_assert_msg(row_of(r.out, pool->name, line, sizeof line) && strstr(line, " METRICS_ONLY "), "row: %s", line);
    run_free(&r);
    r = CBCTL("metrics");
    ck_assert(sample(r.out, SERIES("cbreaker_mode{circuit=\"%s\"}", pool->name)) == 3.0);
    run_free(&r);
    r = CBCTL("show", pool->name);
    ck_assert_msg(strstr(r.out, "  operator mode   metrics_only (every call allowed, would-open events only)\n"),
                  "show: %s", r.out);
    run_free(&r);
    assert_refused_in_mode(pool->name, "metrics_only", "metrics-only");
    pool->fail = 0;
    set_mode_ok("enable", pool->name, "metrics_only", "normal");
    assert_workers_get(pool, CB_ALLOWED);

    /* Quiet: the same effect, nothing printed. */
    r = CBCTL("-q", "force-open", pool->name);
    assert_ok(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    assert_workers_get(pool, CB_REJECTED);
    r = CBCTL("enable", "--quiet", pool->name);
    assert_ok(&r);
    ck_assert_str_eq(r.out, "");
    run_free(&r);
    assert_workers_get(pool, CB_ALLOWED);
#undef SERIES

    pool_stop(pool);
    ck_assert_int_eq(cb_unlink(pool->name), 0);
}
END_TEST

/* part x 100 / whole floored to one decimal, as cbctl show writes it. */
static const char *percent1(uint64_t part, uint64_t whole, char *buf, size_t len)
{
    uint64_t v = part * 1000 / whole;
    snprintf(buf, len, "%llu.%llu", (unsigned long long)(v / 10), (unsigned long long)(v % 10));
    return buf;
}

/* The window's figures and the policy config, in show, show --json, list
 * -o and metrics, exactly as cb_inspect reads them. The window is an hour
 * long, so nothing ages out while the test runs. */
START_TEST(test_show_window_and_policies)
{
    const char *name = unique_name("window");
    cb_config cfg = {.failure_threshold = 100, .reset_timeout_ms = 60000, .failure_rate = 50,
                     .minimum_calls = 1000, .window_ms = 3600000, .slow_call_ms = 100, .slow_call_rate = 80,
                     .backoff_multiplier_pct = 300, .max_reset_timeout_ms = 600000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &cfg, &b), CB_CREATED);
    cb_permit p;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
        cb_success(b, &p);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
        cb_failure(b, &p);
    }
    ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
    tl_sleep_ms(300); /* slow: over 100 ms, whatever the clock's tick */
    cb_success(b, &p);
    cb_close(b);
    static cb_info info;
    inspect(name, &info);
    ck_assert_uint_eq(info.window_calls, 9);
    ck_assert_uint_eq(info.window_failures, 3);
    /* At least the slow one (a quick call stalled past 100 ms counts too). */
    ck_assert_uint_ge(info.window_slow_calls, 1);
    uint64_t slow = info.window_slow_calls;
    char want[512], pct[32], line[1024], series[512];

    struct run r = CBCTL("show", name);
    assert_ok(&r);
    const char *lines[] = {
        "  operator mode   normal\n",
        "  failures        0 of 100\n",
        "  open period     1m00s (backoff step 0)\n",
        "window (last 1h00m, 10 buckets of 6m00s)\n",
        "  calls           9\n",
        "  failures        3 (33.3%)\n",
        "config\n  threshold       100 failures\n  reset timeout   1m00s\n  probe timeout   1m00s\n"
        "  failure rate    50%\n  minimum calls   1000\n  window          1h00m\n  slow call       100ms\n"
        "  slow call rate  80%\n  backoff         300% per failed probe\n  max reset       10m00s\n"
        "  mode            0600\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        ck_assert_msg(strstr(r.out, lines[i]), "show lacks '%s': %s", lines[i], r.out);
    snprintf(want, sizeof want, "  slow calls      %llu (%s%%)\n", (unsigned long long)slow,
             percent1(slow, 9, pct, sizeof pct));
    ck_assert_msg(strstr(r.out, want), "show lacks '%s': %s", want, r.out);
    run_free(&r);

    r = CBCTL("show", "--json", name);
    assert_ok(&r);
    check_json_with_python(r.out);
    struct jv doc = jparse(r.out);
    check_json_header(&doc);
    ck_assert_str_eq(jstr(&doc, "circuit.mode"), "normal");
    ck_assert_uint_eq(juint(&doc, "circuit.open_timeout_ms"), 60000);
    ck_assert_uint_eq(juint(&doc, "circuit.backoff_step"), 0);
    ck_assert_uint_eq(juint(&doc, "circuit.window.span_ms"), 3600000);
    ck_assert_uint_eq(juint(&doc, "circuit.window.bucket_ms"), 360000);
    ck_assert_uint_eq(juint(&doc, "circuit.window.calls"), 9);
    ck_assert_uint_eq(juint(&doc, "circuit.window.failures"), 3);
    ck_assert_uint_eq(juint(&doc, "circuit.window.slow_calls"), slow);
    ck_assert_int_eq(jcents(&doc, "circuit.window.failure_rate"), 3333); /* floored */
    ck_assert_int_eq(jcents(&doc, "circuit.window.slow_call_rate"), (long)(slow * 10000 / 9));
    ck_assert_uint_eq(juint(&doc, "circuit.config.failure_threshold"), 100);
    ck_assert_uint_eq(juint(&doc, "circuit.config.failure_rate"), 50);
    ck_assert_uint_eq(juint(&doc, "circuit.config.minimum_calls"), 1000);
    ck_assert_uint_eq(juint(&doc, "circuit.config.window_ms"), 3600000);
    ck_assert_uint_eq(juint(&doc, "circuit.config.slow_call_ms"), 100);
    ck_assert_uint_eq(juint(&doc, "circuit.config.slow_call_rate"), 80);
    ck_assert_uint_eq(juint(&doc, "circuit.config.backoff_multiplier_pct"), 300);
    ck_assert_uint_eq(juint(&doc, "circuit.config.max_reset_timeout_ms"), 600000);
    jfree(&doc);
    run_free(&r);

    r = CBCTL("list", "-o", "name,w_calls,w_fails,w_slow,opmode,open_period,step", "-n");
    assert_ok(&r);
    ck_assert_msg(row_of(r.out, name, line, sizeof line), "no row: %s", r.out);
    char col[7][256];
    ck_assert_msg(sscanf(line, "%255s %255s %255s %255s %255s %255s %255s", col[0], col[1], col[2], col[3], col[4],
                         col[5], col[6]) == 7, "row: %s", line);
    ck_assert_str_eq(col[1], "9");
    ck_assert_str_eq(col[2], "3");
    ck_assert_uint_eq(strtoull(col[3], NULL, 10), slow);
    ck_assert_str_eq(col[4], "normal");
    ck_assert_str_eq(col[5], "1m00s");
    ck_assert_str_eq(col[6], "0");
    run_free(&r);
    r = CBCTL("list", "--json");
    doc = jparse(r.out);
    const struct jv *c = jcircuit(&doc, name);
    ck_assert(c != NULL);
    ck_assert_str_eq(jstr(c, "operator_mode"), "normal");
    ck_assert_uint_eq(juint(c, "window_calls"), 9);
    ck_assert_uint_eq(juint(c, "window_failures"), 3);
    ck_assert_uint_eq(juint(c, "window_slow_calls"), slow);
    ck_assert_uint_eq(juint(c, "open_timeout_ms"), 60000);
    ck_assert_uint_eq(juint(c, "backoff_step"), 0);
    jfree(&doc);
    run_free(&r);

#define SERIES(fmt, ...) (snprintf(series, sizeof series, fmt, __VA_ARGS__), series)
    r = CBCTL("metrics");
    ck_assert_msg(r.code == 0, "metrics: exit %d: %s", r.code, r.err);
    assert_exposition(r.out);
    ck_assert(close_to(sample(r.out, SERIES("cbreaker_failure_rate{circuit=\"%s\"}", name)), 33.33));
    ck_assert(close_to(sample(r.out, SERIES("cbreaker_slow_call_rate{circuit=\"%s\"}", name)),
                        (double)(slow * 10000 / 9) / 100));
    ck_assert(sample(r.out, SERIES("cbreaker_open_seconds{circuit=\"%s\"}", name)) == 60.0);
    ck_assert(sample(r.out, SERIES("cbreaker_mode{circuit=\"%s\"}", name)) == 0.0);
    const char *families[] = {"cbreaker_failure_rate", "cbreaker_slow_call_rate", "cbreaker_open_seconds",
                              "cbreaker_mode"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        ck_assert_msg(strstr(r.out, SERIES("# HELP %s ", families[i])), "no HELP for %s", families[i]);
        ck_assert_msg(strstr(r.out, SERIES("# TYPE %s gauge\n", families[i])), "no TYPE for %s", families[i]);
    }
    ck_assert(strstr(r.out, "# HELP cbreaker_mode Operator mode: 0 normal, 1 disabled, 2 forced_open, 3 metrics_only."));
    run_free(&r);
#undef SERIES
    ck_assert_int_eq(cb_unlink(name), 0);

    /* No rate rule: the window is off, its rates have no calls to be of. */
    name = unique_name("window-off");
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    cb_close(b);
    r = CBCTL("show", name);
    assert_ok(&r);
    const char *off[] = {"window (last 10s, 10 buckets of 1.0s; off: no rate rule)\n", "  calls           0\n",
                         "  failures        0 (-)\n", "  failure rate    off\n", "  minimum calls   10\n",
                         "  slow call       off\n", "  slow call rate  100%\n", "  backoff         off\n",
                         "  max reset       5m00s\n"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++)
        ck_assert_msg(strstr(r.out, off[i]), "show lacks '%s': %s", off[i], r.out);
    run_free(&r);
    r = CBCTL("show", "--json", name);
    doc = jparse(r.out);
    ck_assert(jis_null(&doc, "circuit.window.failure_rate"));
    ck_assert(jis_null(&doc, "circuit.window.slow_call_rate"));
    ck_assert_uint_eq(juint(&doc, "circuit.config.failure_rate"), 0);
    ck_assert_uint_eq(juint(&doc, "circuit.config.backoff_multiplier_pct"), 0);
    jfree(&doc);
    run_free(&r);
    r = CBCTL("metrics");
    snprintf(series, sizeof series, "cbreaker_failure_rate{circuit=\"%s\"}", name);
    ck_assert(sample(r.out, series) == 0.0);
    run_free(&r);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* A failed probe with backoff on: the open period and the step, in show,
 * --json and metrics; reset returns it to the reset timeout. */
START_TEST(test_show_backoff_step)
{
    const char *name = unique_name("backoff");
    cb_config cfg = {.failure_threshold = 1, .reset_timeout_ms = 50, .backoff_multiplier_pct = 200,
                     .max_reset_timeout_ms = 10000};
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, &cfg, &b), CB_CREATED);
    cb_permit p;
    ck_assert_int_eq(cb_acquire(b, &p), CB_ALLOWED);
    cb_failure(b, &p);
    uint64_t deadline = mono_ms() + 10000;
    while (cb_acquire(b, &p) != CB_PROBE) {
        ck_assert_msg(mono_ms() < deadline, "no probe after the reset timeout");
        tl_sleep_ms(5);
    }
    cb_failure(b, &p); /* OPEN again, for twice as long; nobody asks again */
    cb_close(b);
    static cb_info info;
    inspect(name, &info);
    ck_assert_int_eq(info.state, CB_OPEN);
    ck_assert_uint_eq(info.backoff_step, 1);
    ck_assert_uint_eq(info.open_timeout_ms, 100);

    struct run r = CBCTL("show", name);
    assert_ok(&r);
    ck_assert_msg(strstr(r.out, "  open period     100ms (backoff step 1)\n"), "show: %s", r.out);
    ck_assert_msg(strstr(r.out, "  backoff         200% per failed probe\n  max reset       10s\n"), "show: %s",
                  r.out);
    ck_assert_msg(strstr(r.out, "probe_failed"), "show: %s", r.out);
    run_free(&r);
    r = CBCTL("show", "--json", name);
    struct jv doc = jparse(r.out);
    ck_assert_uint_eq(juint(&doc, "circuit.open_timeout_ms"), 100);
    ck_assert_uint_eq(juint(&doc, "circuit.backoff_step"), 1);
    jfree(&doc);
    run_free(&r);
    char series[512];
    snprintf(series, sizeof series, "cbreaker_open_seconds{circuit=\"%s\"}", name);
    r = CBCTL("metrics");
    ck_assert(close_to(sample(r.out, series), 0.1));
    run_free(&r);

    r = CBCTL("reset", name);
    assert_ok(&r);
    run_free(&r);
    r = CBCTL("show", name);
    ck_assert_msg(strstr(r.out, "  open period     50ms (backoff step 0)\n"), "show: %s", r.out);
    run_free(&r);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* create takes the policy options: on a new circuit, then on the existing
 * one (only the options given change; "off" turns a policy off). */
START_TEST(test_create_policies)
{
    const char *name = unique_name("create-pol");
    static cb_info info;
    char want[1024];
    struct run r = CBCTL("create", name, "--failure-rate", "40", "--minimum-calls", "20", "--window", "30s",
                         "--slow-call", "2s", "--slow-call-rate", "60%", "--backoff", "200", "--max-reset-timeout",
                         "10m");
    assert_ok(&r);
    snprintf(want, sizeof want,
             "%s: created (threshold 3, reset timeout 1m00s, probe timeout 1m00s, failure rate 40%%, slow call 2.0s "
             "at 60%% (minimum 20 calls in 30s), backoff 200%% up to 10m00s, mode 0600)\n", name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_rate, 40);
    ck_assert_uint_eq(info.config.minimum_calls, 20);
    ck_assert_uint_eq(info.config.window_ms, 30000);
    ck_assert_uint_eq(info.config.slow_call_ms, 2000);
    ck_assert_uint_eq(info.config.slow_call_rate, 60);
    ck_assert_uint_eq(info.config.backoff_multiplier_pct, 200);
    ck_assert_uint_eq(info.config.max_reset_timeout_ms, 600000);

    /* Off, on the existing circuit: the rest is kept. */
    r = CBCTL("create", name, "--failure-rate", "off", "--backoff", "100");
    assert_ok(&r);
    snprintf(want, sizeof want,
             "%s: exists, config updated (threshold 3, reset timeout 1m00s, probe timeout 1m00s, slow call 2.0s at "
             "60%% (minimum 20 calls in 30s), mode 0600)\n", name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_rate, 0);
    ck_assert_uint_eq(info.config.backoff_multiplier_pct, 0);
    ck_assert_uint_eq(info.config.slow_call_ms, 2000);
    ck_assert_uint_eq(info.config.minimum_calls, 20);
    ck_assert_uint_eq(info.config.max_reset_timeout_ms, 600000);
    r = CBCTL("create", name, "--slow-call=off", "--backoff=off");
    assert_ok(&r);
    snprintf(want, sizeof want,
             "%s: exists, config updated (threshold 3, reset timeout 1m00s, probe timeout 1m00s, mode 0600)\n", name);
    ck_assert_str_eq(r.out, want);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.slow_call_ms, 0);
    ck_assert_uint_eq(info.config.window_ms, 30000);

    /* The limits themselves are accepted. */
    r = CBCTL("create", name, "--window", "10ms", "--slow-call", "24h", "--backoff", "10000", "--failure-rate",
              "100", "--slow-call-rate", "1");
    assert_ok(&r);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.window_ms, CB_WINDOW_MS_MIN);
    ck_assert_uint_eq(info.config.slow_call_ms, CB_SLOW_CALL_MS_MAX);
    ck_assert_uint_eq(info.config.backoff_multiplier_pct, CB_BACKOFF_MULTIPLIER_MAX);
    r = CBCTL("create", name, "--window", "1h");
    assert_ok(&r);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.window_ms, CB_WINDOW_MS_MAX);
    ck_assert_int_eq(cb_unlink(name), 0);

    /* "off" when creating: the policy is simply not set. */
    r = CBCTL("create", name, "--failure-rate", "off", "--slow-call", "off", "--backoff", "off");
    assert_ok(&r);
    run_free(&r);
    inspect(name, &info);
    ck_assert_uint_eq(info.config.failure_rate, 0);
    ck_assert_uint_eq(info.config.slow_call_ms, 0);
    ck_assert_uint_eq(info.config.backoff_multiplier_pct, 0);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

/* watch prints mode changes as they happen, with the reason and mode. */
START_TEST(test_watch_prints_mode_changes)
{
    const char *name = unique_name("watch-mode");
    cb_breaker *b = NULL;
    ck_assert_int_eq(cb_open(name, NULL, &b), CB_CREATED);
    ck_assert_int_eq(cb_trip(b), CB_CLOSED);
    struct proc w = spawn_watch((const char *const[]){cbctl_path, "watch", name, NULL}, 0);
    char line[512];
    const char *seen = NULL;
    for (int i = 0; i < 100 && !seen; i++) {
        ck_assert_int_eq(cb_trip(b), CB_OPEN);
        snprintf(line, sizeof line, "reason=trip failures=0 pid=%d ", (int)getpid());
        seen = wait_for(&w, 0, line, 200);
    }
    ck_assert_msg(seen, "watch printed nothing: %s", w.got.p);
    drain(&w, 300);
    size_t from = w.got.len, mark = from;

    pid_t by[4];
    by[0] = set_mode_ok("force-open", name, "normal", "forced_open");
    by[1] = set_mode_ok("enable", name, "forced_open", "normal");
    by[2] = set_mode_ok("metrics-only", name, "normal", "metrics_only");
    by[3] = set_mode_ok("disable", name, "metrics_only", "disabled");
    const char *moves[4][3] = {{"OPEN", "OPEN", "forced_open"},
                               {"OPEN", "CLOSED", "normal"},
                               {"CLOSED", "CLOSED", "metrics_only"},
                               {"CLOSED", "CLOSED", "disabled"}};
    for (int i = 0; i < 4; i++) {
        char want[512];
        snprintf(want, sizeof want, "circuit=%s from=%s to=%s reason=mode failures=0 pid=%d ", name, moves[i][0],
                 moves[i][1], (int)by[i]);
        const char *at = wait_for(&w, from, want, 5000);
        ck_assert_msg(at != NULL, "watch did not print '%s'; got:\n%s", want, w.got.p + mark);
        const char *end = strchr(at, '\n');
        snprintf(want, sizeof want, "mode=%s", moves[i][2]);
        const char *m = strstr(at, want);
        ck_assert_msg(m && m < end, "no %s in the line: %.*s", want, (int)(end - at), at);
        ck_assert_msg(strchr(w.got.p + from, '\n') == end, "unexpected output before it:\n%s", w.got.p + from);
        from = (size_t)(end - w.got.p) + 1;
    }
    set_mode_ok("enable", name, "disabled", "normal");
    stop_watch(&w);
    cb_close(b);
    ck_assert_int_eq(cb_unlink(name), 0);
}
END_TEST

static Suite *cbctl_suite(void)
{
    Suite *s = suite_create("cbctl");
    TCase *tc = tcase_create("workers");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_list_and_show_see_workers);
    tcase_add_test(tc, test_trip_and_reset_reach_workers);
    tcase_add_test(tc, test_modes_reach_workers);
    suite_add_tcase(s, tc);

    tc = tcase_create("commands");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_create_and_rm);
    tcase_add_test(tc, test_create_race_keeps_server_config);
    tcase_add_test(tc, test_create_policies);
    tcase_add_test(tc, test_show_window_and_policies);
    tcase_add_test(tc, test_show_backoff_step);
    suite_add_tcase(s, tc);

    tc = tcase_create("exit-codes");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_usage_errors_exit_2);
    tcase_add_test(tc, test_long_option_values);
    tcase_add_test(tc, test_no_such_circuit_exit_1);
    tcase_add_test(tc, test_permission_denied_exit_3);
    tcase_add_test(tc, test_untrusted_owner_exit_3);
    tcase_add_test(tc, test_broken_segments_exit_4);
    suite_add_tcase(s, tc);

    tc = tcase_create("watch");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, NULL, forget_all);
    tcase_add_test(tc, test_watch_prints_transitions);
    tcase_add_test(tc, test_watch_follows_a_recreated_circuit);
    tcase_add_test(tc, test_watch_redraws_on_a_terminal);
    tcase_add_test(tc, test_watch_prints_mode_changes);
    suite_add_tcase(s, tc);
    return s;
}

/* Copy the file `from` to `to`, mode 0755; 0 or -1 (message printed). */
static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    char chunk[65536];
    ssize_t n = 0;
    while (rc == 0 && (n = read(in, chunk, sizeof chunk)) > 0)
        if (write(out, chunk, (size_t)n) != n)
            rc = -1;
    if (n < 0 || (out >= 0 && close(out) != 0))
        rc = -1;
    if (in >= 0)
        close(in);
    if (rc != 0)
        fprintf(stderr, "test-cbctl: copying %s to %s: %s\n", from, to, strerror(errno));
    return rc;
}

/* dl_iterate_phdr: the path of the libcbreaker.so* loaded here, if any. */
static int find_libcbreaker(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const char *slash = strrchr(info->dlpi_name, '/');
    if (!slash || strncmp(slash + 1, "libcbreaker.so", 14) != 0)
        return 0;
    *(const char **)data = info->dlpi_name;
    return 1;
}

/* As root: copy cbctl, and the libcbreaker.so this test uses (the same
 * build's, which cbctl links unless built static), into a new 0755
 * directory of /tmp for the runs as nobody. */
static int stage_for_nobody(void)
{
    snprintf(nobody_dir, sizeof nobody_dir, "/tmp/cbreaker-test-cbctl.XXXXXX");
    if (!mkdtemp(nobody_dir) || chmod(nobody_dir, 0755) != 0) {
        fprintf(stderr, "test-cbctl: mkdtemp %s: %s\n", nobody_dir, strerror(errno));
        nobody_dir[0] = '\0';
        return -1;
    }
    snprintf(nobody_cbctl, sizeof nobody_cbctl, "%s/cbctl", nobody_dir);
    if (copy_file(cbctl_path, nobody_cbctl) != 0)
        return -1;
    const char *lib = NULL;
    if (!dl_iterate_phdr(find_libcbreaker, &lib))
        return 0; /* linked statically */
    snprintf(nobody_lib, sizeof nobody_lib, "%s/%s", nobody_dir, strrchr(lib, '/') + 1);
    return copy_file(lib, nobody_lib);
}

static void unstage_for_nobody(void)
{
    if (!nobody_dir[0])
        return;
    unlink(nobody_cbctl);
    if (nobody_lib[0])
        unlink(nobody_lib);
    rmdir(nobody_dir);
}

int main(int argc, char **argv)
{
    cbctl_path = getenv("CBCTL");
    if (!cbctl_path && argc > 1)
        cbctl_path = argv[1];
    if (!cbctl_path || access(cbctl_path, X_OK) != 0) {
        fprintf(stderr, "test-cbctl: set CBCTL (or pass the path) to the built cbctl\n");
        return 1;
    }
    registry = mmap(NULL, sizeof *registry, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (registry == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Removed at the end of main, not atexit: Check's forked tests exit. */
    if (geteuid() == 0 && stage_for_nobody() != 0) {
        unstage_for_nobody();
        return 2;
    }
    int status = tl_run_suite(cbctl_suite());
    forget_all();
    unstage_for_nobody();
    return status;
}
