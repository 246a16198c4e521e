/*
 * worker.c - one pre-forked worker: accept() on the shared socket, answer
 * each request by looking its route up in the upstream through the
 * breaker, or at once from the fallback when the breaker rejects.
 *
 * Requests, one per connection, in either form:
 *   ROUTE <name>\n  (or just <name>\n)      GET /route/<name> HTTP/1.x
 *   STATS\n                                 GET /stats HTTP/1.x
 * Replies are one line of key=value fields (the body, for HTTP):
 *   route=shop backend=10.0.3.7:8080 source=upstream worker=4242   (source=redis with --redis)
 *   route=shop backend=static-default:8080 source=fallback reason=circuit_open worker=4242
 *   route=shop backend=static-default:8080 source=fallback reason=upstream_error worker=4242 error="Connection refused"
 * STATS answers the pool's counters (struct demo_counters) and the state
 * of each worker's circuit, one letter per worker (C, O, H).
 *
 * Each transition this worker's compare-and-swap makes is printed by its
 * listener, with its pid: the shared circuit announces each transition
 * once, pool-wide.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream.h"

#define FALLBACK_BACKEND "static-default:8080"
#define CLIENT_TIMEOUT_MS 2000

static volatile sig_atomic_t stopping, idle;

/* SIGTERM: an idle worker (blocked in accept, holding no permit) exits at
 * once; a busy one finishes its request first. */
static void on_term(int sig)
{
    (void)sig;
    if (idle)
        _exit(0);
    stopping = 1;
}

struct worker {
    const struct demo_options *o;
    struct demo_shared *sh;
    cb_breaker *b;
    upstream *up;
    struct demo_worker_slot *slot;
    int pid;
};

static void on_transition(const cb_event *ev, void *ctx)
{
    const struct worker *w = ctx;
    const cb_transition *t = &ev->transition;
    char detail[64] = "";
    if (t->reason == CB_REASON_THRESHOLD || t->reason == CB_REASON_PROBE_FAILED)
        snprintf(detail, sizeof detail, " failures=%u", (unsigned)t->failures);
    say("%6.2f  pid %-6d %-9s -> %-9s  %s%s  event=%s%s%s\n", since_start_s(w->sh), (int)t->pid,
        cb_state_name(t->from), cb_state_name(t->to), cb_reason_name(t->reason), detail, cb_event_name(t),
        w->o->per_process ? " circuit=" : "", w->o->per_process ? ev->circuit : "");
}

char state_letter(int state)
{
    return state == CB_CLOSED ? 'C' : state == CB_OPEN ? 'O' : state == CB_HALF_OPEN ? 'H' : '?';
}

static int stats_line(const struct worker *w, char *out, size_t len)
{
    const struct demo_counters *c = &w->sh->c;
    char circuits[DEMO_MAX_WORKERS + 1];
    unsigned n = w->o->workers;
    for (unsigned i = 0; i < n; i++)
        circuits[i] = state_letter(atomic_load(&w->sh->w[i].state));
    circuits[n] = '\0';
    return snprintf(out, len,
                    "stats requests=%llu via_upstream=%llu fallback_open=%llu fallback_error=%llu "
                    "upstream_calls=%llu upstream_failed=%llu probes=%llu restarts=%llu workers=%u "
                    "circuits=%s mode=%s\n",
                    (unsigned long long)atomic_load(&c->requests), (unsigned long long)atomic_load(&c->via_upstream),
                    (unsigned long long)atomic_load(&c->fallback_open),
                    (unsigned long long)atomic_load(&c->fallback_error),
                    (unsigned long long)atomic_load(&c->upstream_calls),
                    (unsigned long long)atomic_load(&c->upstream_failed), (unsigned long long)atomic_load(&c->probes),
                    (unsigned long long)atomic_load(&w->sh->restarts), n, circuits,
                    w->o->per_process ? "per-process" : "shared");
}

/* The route, through the breaker; the reply line into out. */
static int route_line(struct worker *w, const char *key, char *out, size_t len)
{
    struct demo_counters *c = &w->sh->c;
    cb_permit permit;
    cb_verdict v = cb_acquire(w->b, &permit);
    int n;
    if (v == CB_REJECTED) {
        atomic_fetch_add(&c->fallback_open, 1);
        atomic_fetch_add(&w->slot->rejected, 1);
        n = snprintf(out, len, "route=%s backend=%s source=fallback reason=circuit_open worker=%d\n", key,
                     FALLBACK_BACKEND, w->pid);
    } else {
        atomic_fetch_add(&c->upstream_calls, 1);
        if (v == CB_PROBE)
            atomic_fetch_add(&c->probes, 1);
        char backend[256], err[256];
        if (w->up && w->up->lookup(w->up, key, backend, sizeof backend, err, sizeof err) == 0) {
            cb_success(w->b, &permit);
            atomic_fetch_add(&c->via_upstream, 1);
            if (backend[0])
                n = snprintf(out, len, "route=%s backend=%s source=%s worker=%d\n", key, backend, w->up->label,
                             w->pid);
            else
                n = snprintf(out, len, "route=%s backend=%s source=%s found=no worker=%d\n", key, FALLBACK_BACKEND,
                             w->up->label, w->pid);
        } else {
            if (!w->up)
                snprintf(err, sizeof err, "no upstream client");
            if (v == CB_ALLOWED) /* a probe's failure shows as its transition */
                say("%6.2f  pid %-6d upstream call failed (%s): reports a failure\n", since_start_s(w->sh), w->pid,
                    err);
            cb_failure(w->b, &permit);
            atomic_fetch_add(&c->upstream_failed, 1);
            atomic_fetch_add(&c->fallback_error, 1);
            n = snprintf(out, len,
                         "route=%s backend=%s source=fallback reason=upstream_error worker=%d error=\"%s\"\n", key,
                         FALLBACK_BACKEND, w->pid, err);
        }
    }
    atomic_store(&w->slot->state, (int)cb_get_state(w->b));
    atomic_fetch_add(&c->requests, 1);
    return n;
}

static int valid_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > DEMO_KEY_MAX)
        return 0;
    return strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Read the request line, and for HTTP the headers up to the blank line
 * (unread bytes would make close() reset the connection). */
static ssize_t read_request(int fd, char *buf, size_t len, int *http)
{
    ssize_t n = read_line(fd, buf, len);
    const char *nl = n > 0 ? memchr(buf, '\n', (size_t)n) : NULL;
    if (!nl)
        return -1;
    const char *version = strstr(buf, " HTTP/1.");
    *http = strncmp(buf, "GET ", 4) == 0 && version && version < nl;
    while (*http && !strstr(buf, "\r\n\r\n") && !strstr(buf, "\n\n") && (size_t)n + 1 < len) {
        ssize_t r = read(fd, buf + n, len - 1 - (size_t)n);
        if (r <= 0)
            return -1;
        n += r;
        buf[n] = '\0';
    }
    return n;
}

static void serve(struct worker *w, int fd)
{
    set_io_timeout(fd, CLIENT_TIMEOUT_MS);
    char req[2048];
    int http = 0;
    if (read_request(fd, req, sizeof req, &http) < 0)
        return;
    req[strcspn(req, "\r\n")] = '\0';
    const char *what = req;
    if (http) {
        what = req + 4;
        *strstr(req, " HTTP/1.") = '\0';
        if (strncmp(what, "/route/", 7) == 0)
            what += 7;
        else if (*what == '/')
            what++;
    } else if (strncmp(req, "ROUTE ", 6) == 0) {
        what = req + 6;
    }
    char body[1024];
    int n;
    if (strcmp(what, "STATS") == 0 || strcmp(what, "stats") == 0)
        n = stats_line(w, body, sizeof body);
    else if (valid_key(what))
        n = route_line(w, what, body, sizeof body);
    else
        n = snprintf(body, sizeof body, "error=bad_request expected=\"ROUTE <name>\" name_chars=A-Za-z0-9._- max=%d\n",
                     DEMO_KEY_MAX);
    if (n <= 0 || (size_t)n >= sizeof body)
        return;
    if (http) {
        char head[256];
        const char *src = strstr(body, "source=fallback") ? "fallback" : strncmp(body, "route=", 6) == 0 ? "upstream" : "-";
        int h = snprintf(head, sizeof head,
                         "HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nX-Route-Source: %s\r\n"
                         "Connection: close\r\n\r\n",
                         strncmp(body, "error=", 6) == 0 ? "400 Bad Request" : "200 OK", n, src);
        if (write_all(fd, head, (size_t)h) < 0)
            return;
    }
    (void)write_all(fd, body, (size_t)n);
}

upstream *upstream_for(const struct demo_options *o, unsigned embedded_port)
{
    if (o->redis)
        return redis_client_new(o->redis_host, o->redis_port, o->upstream_timeout_ms);
    return embedded_client_new(embedded_port, o->upstream_timeout_ms);
}

void worker_main(const struct demo_options *o, struct demo_shared *sh, cb_breaker *shared_circuit, int listen_fd,
                 int upstream_port, unsigned slot)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa = {.sa_handler = on_term}; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the master, which stops us in order */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (getppid() == 1)
        _exit(0);

    struct worker w = {.o = o, .sh = sh, .b = shared_circuit, .slot = &sh->w[slot], .pid = (int)getpid()};
    if (o->per_process) {
        /* The baseline: a breaker of this worker alone, same settings. */
        char name[CB_NAME_MAX + 1];
        snprintf(name, sizeof name, "%.190s.w%u", o->name, slot);
        cb_config cfg = {.failure_threshold = o->threshold, .reset_timeout_ms = o->reset_ms};
        int rc = cb_open_private(name, &cfg, &w.b);
        if (rc < 0) {
            fprintf(stderr, "cbdemo: worker %d: cb_open_private: %s\n", w.pid, cb_strerror(rc));
            _exit(1);
        }
    }
    cb_set_listener(w.b, on_transition, &w);
    w.up = upstream_for(o, (unsigned)upstream_port);
    atomic_store(&w.slot->state, (int)cb_get_state(w.b));
    atomic_store(&w.slot->pid, w.pid);

    for (;;) {
        idle = 1;
        if (stopping)
            break;
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        idle = 0;
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                sleep_ms(10); /* EMFILE and friends: do not spin */
            continue;
        }
        serve(&w, fd);
        close(fd);
    }
    if (w.up)
        w.up->free(w.up);
    if (o->per_process)
        cb_close(w.b);
    _exit(0);
}
