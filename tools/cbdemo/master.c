/*
 * master.c - the pre-fork master: opens the circuit (before any fork, so
 * every worker inherits the one handle), binds the loopback port, forks
 * the embedded upstream, the workers and the load clients, drives the
 * upstream's schedule, restarts a worker that dies, prints the timeline,
 * and on SIGINT/SIGTERM (or when the run's duration is over) stops
 * everything in order: load, workers, upstream; then it removes the
 * circuit's segment.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "upstream.h"

#define RESTART_GAP_NS 1000000000u /* a worker that keeps dying is restarted once a second */
#define STOP_GRACE_MS 3000         /* then SIGKILL */

static volatile sig_atomic_t got_stop, got_toggle;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        got_toggle = 1;
    else if (sig != SIGCHLD)
        got_stop = 1;
    /* SIGCHLD only interrupts the sleep: children are reaped in the loop */
}

struct master {
    struct demo_options *o;
    struct demo_shared *sh;
    cb_breaker *circuit; /* NULL with --per-process */
    struct timeline *tl;
    int listen_fd;
    unsigned port, upstream_port;
    pid_t upstream;
    pid_t workers[DEMO_MAX_WORKERS];
    uint64_t restart_at[DEMO_MAX_WORKERS]; /* 0: running or none due */
    uint64_t last_start[DEMO_MAX_WORKERS];
    pid_t clients[DEMO_MAX_CLIENTS];
    int stopping;
};

static pid_t spawn_worker(struct master *m, unsigned slot)
{
    pid_t pid = fork();
    if (pid == 0)
        worker_main(m->o, m->sh, m->circuit, m->listen_fd, (int)m->upstream_port, slot);
    if (pid < 0)
        perror("cbdemo: fork");
    m->workers[slot] = pid;
    m->last_start[slot] = now_ns();
    m->restart_at[slot] = 0;
    return pid;
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
}

/* Reap every dead child; schedule a restart for each dead worker. */
static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        char how[96];
        describe_exit(status, how, sizeof how);
        if (pid == m->upstream) {
            m->upstream = -1;
            if (!m->stopping)
                say("%6.2f  the embedded upstream (pid %d) %s; upstream calls will fail\n", since_start_s(m->sh),
                    (int)pid, how);
            continue;
        }
        for (unsigned i = 0; i < m->o->workers; i++)
            if (m->workers[i] == pid) {
                m->workers[i] = 0;
                atomic_store(&m->sh->w[i].pid, 0);
                if (m->stopping)
                    break;
                uint64_t now = now_ns(), due = m->last_start[i] + RESTART_GAP_NS;
                m->restart_at[i] = due > now ? due : now;
                say("%6.2f  worker pid %d %s; the master restarts it\n", since_start_s(m->sh), (int)pid, how);
            }
        for (unsigned i = 0; i < m->o->clients; i++)
            if (m->clients[i] == pid)
                m->clients[i] = 0;
    }
}

static void restart_due(struct master *m)
{
    uint64_t now = now_ns();
    for (unsigned i = 0; i < m->o->workers; i++)
        if (m->restart_at[i] && m->restart_at[i] <= now && spawn_worker(m, i) > 0) {
            atomic_fetch_add(&m->sh->restarts, 1);
            say("%6.2f  worker slot %u restarted as pid %d\n", since_start_s(m->sh), i, (int)m->workers[i]);
        }
}

/* Tell the embedded upstream to go down or come back, and wait (500 ms at
 * most) until it has. The outage, for the timeline, runs from the order to
 * go down until the upstream listens again: no failed call is left out. */
static void set_upstream(struct master *m, int up)
{
    if (!up)
        timeline_upstream(m->tl, 0);
    if (m->upstream > 0) {
        kill(m->upstream, up ? SIGUSR2 : SIGUSR1);
        for (int i = 0; i < 500 && atomic_load(&m->sh->upstream_up) != up; i++)
            sleep_ms(1);
    }
    if (up)
        timeline_upstream(m->tl, 1);
}

/* SIGTERM each pid, wait up to STOP_GRACE_MS, then SIGKILL the rest. */
static void stop_all(pid_t *pids, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    uint64_t deadline = now_ns() + (uint64_t)STOP_GRACE_MS * 1000000u;
    for (;;) {
        unsigned left = 0;
        for (unsigned i = 0; i < n; i++)
            if (pids[i] > 0) {
                pid_t r = waitpid(pids[i], NULL, WNOHANG);
                if (r == pids[i] || (r < 0 && errno == ECHILD))
                    pids[i] = 0;
                else
                    left++;
            }
        if (!left)
            return;
        if (now_ns() > deadline)
            break;
        sleep_ms(5);
    }
    for (unsigned i = 0; i < n; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
}

static void check_redis(const struct demo_options *o)
{
    upstream *u = upstream_for(o, 0);
    char backend[256], err[256];
    if (u && u->lookup(u, "shop", backend, sizeof backend, err, sizeof err) == 0)
        say("redis at %s answers (route:shop is %s)\n", o->redis, backend[0] ? backend : "not set");
    else
        say("redis at %s does not answer (%s): the circuit will trip on the first requests\n", o->redis,
            u ? err : "no client");
    if (u)
        u->free(u);
}

static int open_circuit(struct master *m)
{
    const struct demo_options *o = m->o;
    if (o->per_process)
        return 0; /* each worker opens its own */
    cb_config cfg = {.failure_threshold = o->threshold, .reset_timeout_ms = o->reset_ms};
    int rc = cb_open(o->name, &cfg, &m->circuit);
    if (rc < 0) {
        fprintf(stderr, "cbdemo: cannot open circuit %s: %s\n", o->name, cb_strerror(rc));
        return -1;
    }
    if (rc != CB_CREATED) { /* left by an earlier run under this name */
        fprintf(stderr, "cbdemo: circuit %s already existed (was %s); reset to CLOSED for this run\n", o->name,
                cb_state_name(cb_get_state(m->circuit)));
        cb_reset(m->circuit);
    }
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: sleeps end early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The schedule, the toggle, the rows, restarts; until stop or the end. */
static void run(struct master *m)
{
    const struct demo_options *o = m->o;
    uint64_t start = m->sh->start_ns, second = 1000000000u;
    uint64_t end = o->duration_s > 0 ? start + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
    uint64_t down_at = o->down_at_s >= 0 ? start + (uint64_t)(o->down_at_s * 1e9) : UINT64_MAX;
    uint64_t up_at = o->up_at_s >= 0 ? start + (uint64_t)(o->up_at_s * 1e9) : UINT64_MAX;
    uint64_t next_row = start + second;
    int up = 1;
    while (!got_stop) {
        reap(m);
        restart_due(m);
        uint64_t now = now_ns();
        if (!o->redis && up && now >= down_at && down_at != UINT64_MAX) {
            set_upstream(m, up = 0);
            down_at = UINT64_MAX;
        }
        if (!o->redis && !up && now >= up_at && up_at != UINT64_MAX && down_at == UINT64_MAX) {
            set_upstream(m, up = 1);
            up_at = UINT64_MAX;
        }
        if (got_toggle) {
            got_toggle = 0;
            if (!o->redis)
                set_upstream(m, up = !up);
        }
        if (now >= next_row) {
            timeline_row(m->tl);
            while (next_row <= now)
                next_row += second;
        }
        if (now >= end)
            return;
        uint64_t wake = next_row;
        if (end < wake)
            wake = end;
        if (down_at < wake)
            wake = down_at;
        if (up_at < wake && down_at == UINT64_MAX)
            wake = up_at;
        for (unsigned i = 0; i < o->workers; i++)
            if (m->restart_at[i] && m->restart_at[i] < wake)
                wake = m->restart_at[i];
        now = now_ns();
        if (wake > now)
            sleep_ms((unsigned)((wake - now + 999999) / 1000000 < 100 ? (wake - now + 999999) / 1000000 : 100));
    }
    if (timeline_since_row(m->tl) > 0.2)
        timeline_row(m->tl); /* the part of a second before Ctrl-C */
}

int master_run(struct demo_options *o)
{
    struct master m = {.o = o, .listen_fd = -1, .upstream = -1};
    m.sh = mmap(NULL, sizeof *m.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m.sh == MAP_FAILED) {
        perror("cbdemo: mmap");
        return 1;
    }
    int status = 1;
    if (open_circuit(&m) < 0)
        goto out;
    m.listen_fd = listen_loopback(o->port, &m.port);
    if (m.listen_fd < 0) {
        fprintf(stderr, "cbdemo: cannot listen on 127.0.0.1:%u: %s\n", o->port, strerror(-m.listen_fd));
        goto out;
    }
    install_signals();
    m.sh->start_ns = now_ns();
    m.tl = timeline_new(o, m.sh, m.circuit);
    if (!m.tl)
        goto out;
    if (!o->redis) {
        m.upstream = embedded_server_spawn(m.sh, &m.upstream_port);
        if (m.upstream < 0)
            goto out;
    }
    timeline_header(m.tl, m.port);
    if (o->redis)
        check_redis(o);
    char pids[DEMO_MAX_WORKERS * 12] = "";
    for (unsigned i = 0; i < o->workers; i++) {
        if (spawn_worker(&m, i) < 0)
            goto out;
        snprintf(pids + strlen(pids), sizeof pids - strlen(pids), " %d", (int)m.workers[i]);
    }
    say("workers: pids%s%s\n", pids, o->redis ? "" : "; the embedded upstream is its own process");
    timeline_columns(m.tl);
    if (o->load)
        for (unsigned i = 0; i < o->clients; i++)
            m.clients[i] = load_spawn(o, m.sh, m.port, i);
    run(&m);
    status = 0;
out:
    m.stopping = 1;
    atomic_store(&m.sh->stop, 1);
    stop_all(m.clients, o->clients); /* no request in flight when the workers stop */
    stop_all(m.workers, o->workers);
    if (m.upstream > 0)
        stop_all(&m.upstream, 1);
    if (status == 0)
        timeline_summary(m.tl);
    timeline_free(m.tl);
    if (m.listen_fd >= 0)
        close(m.listen_fd);
    if (m.circuit) {
        cb_close(m.circuit);
        cb_unlink(o->name);
    }
    munmap(m.sh, sizeof *m.sh);
    return status;
}
