/*
 * cbdemo.h - what the demo's files share: the options, the memory every
 * process of the demo sees (counters, worker slots, load results), and the
 * small helpers for time, output and loopback sockets (net.c).
 *
 * Processes: the master (master.c) opens the circuit, binds the port and
 * forks the embedded upstream (upstream_embedded.c), N workers (worker.c)
 * and the load clients (load.c); it prints the timeline (timeline.c).
 * Everything they count lives in one MAP_SHARED anonymous mapping made
 * before the forks: struct demo_shared.
 */
#ifndef CBDEMO_H
#define CBDEMO_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "cbreaker.h"

#define DEMO_MAX_WORKERS 64
#define DEMO_MAX_CLIENTS 64
#define DEMO_KEY_MAX 64

struct demo_options {
    unsigned workers;             /* worker processes */
    unsigned port;                /* loopback port; 0: any free port */
    const char *redis;            /* "HOST:PORT", NULL: embedded upstream */
    char redis_host[256];
    unsigned redis_port;
    int per_process;              /* a private breaker in each worker */
    unsigned threshold;           /* failures that trip the circuit */
    unsigned reset_ms;            /* reset timeout */
    unsigned upstream_timeout_ms; /* connect and reply timeout of one upstream call */
    double duration_s;            /* 0: until SIGINT/SIGTERM */
    double down_at_s, up_at_s;    /* embedded upstream schedule; < 0: none */
    unsigned rate;                /* load: requests per second, all clients together */
    unsigned clients;             /* load: client processes */
    int load;                     /* run the built-in load generator */
    char name[CB_NAME_MAX + 1];   /* circuit name */
};

/* What the workers count, summed over the pool. */
struct demo_counters {
    _Atomic uint64_t requests;       /* route requests answered */
    _Atomic uint64_t via_upstream;   /* answered with the upstream's route */
    _Atomic uint64_t fallback_open;  /* breaker rejected: fallback, upstream not called */
    _Atomic uint64_t fallback_error; /* upstream call failed: fallback */
    _Atomic uint64_t upstream_calls; /* calls made to the upstream, probes included */
    _Atomic uint64_t upstream_failed;
    _Atomic uint64_t probes;         /* calls made as the HALF_OPEN probe */
};

struct demo_worker_slot {
    _Atomic int pid;
    _Atomic int state;         /* cb_state of its circuit after its last request */
    _Atomic uint64_t rejected; /* requests it answered from the fallback, circuit open */
};

/* Request outcomes as a client sees them. */
enum load_class { LOAD_UPSTREAM = 0, LOAD_FALLBACK_OPEN, LOAD_FALLBACK_ERROR, LOAD_LOST, LOAD_CLASSES };

struct load_counters {
    _Atomic uint64_t sent;
    _Atomic uint64_t count[LOAD_CLASSES];
    _Atomic uint64_t max_us[LOAD_CLASSES]; /* slowest answer of each class */
};

struct demo_shared {
    uint64_t start_ns;          /* CLOCK_MONOTONIC at the start of the run */
    _Atomic int upstream_up;    /* embedded upstream: 1 while it listens */
    _Atomic int stop;           /* load clients: finish now */
    _Atomic uint64_t restarts;  /* workers restarted by the master */
    struct demo_counters c;
    struct demo_worker_slot w[DEMO_MAX_WORKERS];
    struct load_counters load;
};

/* main.c */
int demo_parse_options(int argc, char **argv, struct demo_options *o, int load_only);

/* master.c: the whole demo; returns the exit status. */
int master_run(struct demo_options *o);

/* worker.c: one worker's life; never returns. */
void worker_main(const struct demo_options *o, struct demo_shared *sh, cb_breaker *shared_circuit,
                 int listen_fd, int upstream_port, unsigned slot) __attribute__((noreturn));

/* worker.c */
char state_letter(int state); /* C, O, H */

/* load.c */
pid_t load_spawn(const struct demo_options *o, struct demo_shared *sh, unsigned port, unsigned client);
int load_run(struct demo_options *o); /* `cbdemo load`: clients plus a per-second report */
const char *load_key(uint64_t n);      /* the route names the clients ask for */

/* timeline.c */
struct timeline;
struct timeline *timeline_new(const struct demo_options *o, struct demo_shared *sh, cb_breaker *shared_circuit);
void timeline_header(struct timeline *t, unsigned port); /* what runs, and how */
void timeline_columns(struct timeline *t);              /* the rows' column names */
void timeline_row(struct timeline *t);
double timeline_since_row(const struct timeline *t); /* seconds since the last row */
void timeline_upstream(struct timeline *t, int up);  /* the embedded upstream went down or up */
void timeline_summary(struct timeline *t);
void timeline_free(struct timeline *t);

/* net.c: time, output, loopback sockets. */
uint64_t now_ns(void);
double since_start_s(const struct demo_shared *sh);
void sleep_ms(unsigned ms);
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* one write(2) to stdout */
int listen_loopback(unsigned port, unsigned *bound_port);              /* fd or -errno */
int connect_tcp(const char *ipv4, unsigned port, unsigned timeout_ms);   /* fd or -errno */
int set_io_timeout(int fd, unsigned timeout_ms);
ssize_t read_line(int fd, char *buf, size_t len); /* up to '\n' (kept); 0 on EOF; -errno */
int write_all(int fd, const char *buf, size_t len);
int peer_closed(int fd); /* an idle connection has EOF or an error pending */
void atomic_max(_Atomic uint64_t *p, uint64_t v);

#endif
