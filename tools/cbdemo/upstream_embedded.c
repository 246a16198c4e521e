/*
 * upstream_embedded.c - the default upstream: a small route service in a
 * process of its own, so the demo needs nothing installed.
 *
 * Protocol, one line each way on a kept-alive connection:
 *   GET <route>\n   ->   <backend>\n
 * Every route resolves to a backend derived from its name. The service
 * goes down on SIGUSR1: it closes its listening socket and every
 * connection, so calls fail at once with "connection refused", as they do
 * when a Redis process dies. On SIGUSR2 it listens on the same port again.
 * The master sends both, on its schedule or when asked (SIGUSR1 to the
 * master toggles).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream.h"

#define MAX_CONN 256
#define LINE_MAX_LEN 256

/* ---- the service ---- */

static volatile sig_atomic_t want_down, want_up, want_exit;

static void on_signal(int sig)
{
    if (sig == SIGUSR1) {
        want_down = 1;
        want_up = 0;
    } else if (sig == SIGUSR2) {
        want_up = 1;
        want_down = 0;
    } else {
        want_exit = 1;
    }
}

struct conn {
    int fd;
    size_t used;
    char buf[LINE_MAX_LEN];
};

static void backend_for(const char *key, char *out, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = key; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    snprintf(out, len, "10.0.%u.%u:8080", (h >> 8) & 0xff, (h & 0xfe) + 1);
}

/* Answer every complete line in c's buffer; -1 when c must be closed. */
static int serve_lines(struct conn *c)
{
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->used))) {
        *nl = '\0';
        char reply[LINE_MAX_LEN];
        if (strncmp(c->buf, "GET ", 4) == 0) {
            backend_for(c->buf + 4, reply, sizeof reply - 1);
            strcat(reply, "\n");
        } else {
            snprintf(reply, sizeof reply, "ERR unknown command\n");
        }
        if (write_all(c->fd, reply, strlen(reply)) < 0)
            return -1;
        size_t line = (size_t)(nl - c->buf) + 1;
        memmove(c->buf, nl + 1, c->used - line);
        c->used -= line;
    }
    return c->used == sizeof c->buf ? -1 : 0;
}

static void drop_all(struct conn *conns, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++)
        close(conns[i].fd);
    *n = 0;
}

static void serve(struct demo_shared *sh, int lfd, unsigned port)
{
    static struct conn conns[MAX_CONN];
    unsigned nconn = 0;
    sigset_t empty;
    sigemptyset(&empty);
    atomic_store(&sh->upstream_up, 1);
    while (!want_exit) {
        if (want_down && lfd >= 0) {
            close(lfd);
            lfd = -1;
            drop_all(conns, &nconn);
            atomic_store(&sh->upstream_up, 0);
        }
        if (want_up && lfd < 0) {
            int fd = listen_loopback(port, NULL);
            if (fd >= 0) {
                lfd = fd;
                want_up = 0;
                atomic_store(&sh->upstream_up, 1);
            }
        }
        struct pollfd fds[MAX_CONN + 1];
        unsigned nfds = 0;
        if (lfd >= 0)
            fds[nfds++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (unsigned i = 0; i < nconn; i++)
            fds[nfds++] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        /* Signals are blocked except inside ppoll: none is missed. A
         * failed re-listen is retried every 100 ms. */
        struct timespec retry = {0, 100000000L};
        int n = ppoll(fds, nfds, want_up && lfd < 0 ? &retry : NULL, &empty);
        if (n <= 0)
            continue;
        unsigned first = 0;
        if (lfd >= 0) {
            first = 1;
            if (fds[0].revents & POLLIN) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0 && nconn < MAX_CONN)
                    conns[nconn++] = (struct conn){.fd = fd};
                else if (fd >= 0)
                    close(fd);
            }
        }
        /* Walk backwards so that removing conns[i] keeps the rest paired
         * with their pollfd. */
        for (unsigned k = nfds; k-- > first;) {
            if (!fds[k].revents)
                continue;
            unsigned i = k - first;
            struct conn *c = &conns[i];
            ssize_t r = read(c->fd, c->buf + c->used, sizeof c->buf - c->used);
            if (r > 0) {
                c->used += (size_t)r;
                if (serve_lines(c) == 0)
                    continue;
            } else if (r < 0 && errno == EINTR) {
                continue;
            }
            close(c->fd);
            conns[i] = conns[--nconn];
        }
    }
    drop_all(conns, &nconn);
    if (lfd >= 0)
        close(lfd);
}

pid_t embedded_server_spawn(struct demo_shared *sh, unsigned *port)
{
    int lfd = listen_loopback(0, port);
    if (lfd < 0) {
        fprintf(stderr, "cbdemo: embedded upstream: cannot listen on loopback: %s\n", strerror(-lfd));
        return -1;
    }
    /* Blocked across fork(): a signal sent before the child's handlers
     * are in place waits for its ppoll() instead of killing it. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid != 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(lfd);
        if (pid < 0)
            perror("cbdemo: fork");
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGINT, SIG_IGN); /* the master decides when we stop */
    signal(SIGPIPE, SIG_IGN);
    if (getppid() == 1)
        _exit(0);
    serve(sh, lfd, *port);
    _exit(0);
}

/* ---- a worker's client ---- */

struct embedded_client {
    upstream base;
    unsigned port;
    unsigned timeout_ms;
    int fd;
};

static void set_err(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s", what);
}

static int embedded_lookup(upstream *u, const char *key, char *backend, size_t len, char *err, size_t errlen)
{
    struct embedded_client *c = (struct embedded_client *)u;
    if (c->fd >= 0 && peer_closed(c->fd)) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->fd < 0) {
        int fd = connect_tcp("127.0.0.1", c->port, c->timeout_ms);
        if (fd < 0) {
            set_err(err, errlen, strerror(-fd));
            return -1;
        }
        c->fd = fd;
    }
    char line[LINE_MAX_LEN];
    int n = snprintf(line, sizeof line, "GET %s\n", key);
    ssize_t r = write_all(c->fd, line, (size_t)n);
    if (r == 0)
        r = read_line(c->fd, line, sizeof line);
    if (r <= 0 || line[r - 1] != '\n' || strncmp(line, "ERR", 3) == 0) {
        set_err(err, errlen, r < 0 ? strerror((int)-r) : r == 0 ? "connection closed by upstream" : "bad reply");
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    line[r - 1] = '\0';
    snprintf(backend, len, "%s", line);
    return 0;
}

static void embedded_free(upstream *u)
{
    struct embedded_client *c = (struct embedded_client *)u;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

upstream *embedded_client_new(unsigned port, unsigned timeout_ms)
{
    struct embedded_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = (upstream){.label = "upstream", .lookup = embedded_lookup, .free = embedded_free};
    c->port = port;
    c->timeout_ms = timeout_ms;
    c->fd = -1;
    return &c->base;
}
