/*
 * test-cbdemo-redis.c - cbdemo --redis against a real redis-server: what a
 * shared circuit buys a pre-fork pool when its Redis dies.
 *
 * Twice, once with the shared circuit and once with --per-process: start
 * redis-server on a free loopback port (no persistence), start cbdemo
 * --redis with 4 workers, threshold 3 and a 300 ms reset timeout, drive a
 * steady load from client processes that time every request, SIGKILL
 * Redis, keep the load for 3 s, start Redis again, and read the counters:
 * the library's (cb_inspect) for the shared circuit, cbdemo's STATS for
 * both. Asserted:
 *  - shared: upstream attempts during the outage <= threshold + the reset
 *    windows that passed (one probe per window, pool-wide); per-process:
 *    every worker trips on its own, several times as many attempts;
 *  - every request during the outage got a fallback answer, fast (far
 *    below cbdemo's 1 s connect timeout);
 *  - after Redis is back the circuit closes on one successful probe and
 *    requests are served by Redis again;
 *  - no request lost or unanswered; cbdemo exits 0 on SIGTERM and its
 *    segment is gone.
 * The closing lines compare the two runs.
 *
 * usage: test-cbdemo-redis CBDEMO HAVE_HIREDIS
 * Skips (77) when redis-server or hiredis is missing, unless
 * CBREAKER_REQUIRE_REDIS (set by tools/quickstart) or CI is set: then fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbreaker.h"

#define WORKERS 4
#define THRESHOLD 3
#define RESET_MS 300
#define CONNECT_TIMEOUT_MS 1000 /* cbdemo --timeout-ms */
#define CLIENTS 4
#define RATE 400          /* requests per second, all clients together */
#define STEADY_MS 1000    /* load before the kill */
#define OUTAGE_MS 3000    /* Redis dead */
#define AFTER_MS 1000     /* load after the circuit closed */
#define FAST_MS 250       /* a fallback this slow waited on something (connect timeout: 1000) */
#define CLOSE_WITHIN_MS (RESET_MS + 1500)
#define ANSWER_TIMEOUT_MS 3000
#define MAX_RECORDS 8000  /* per client */

enum cls { UPSTREAM, FALLBACK_OPEN, FALLBACK_ERROR, LOST };

struct record {
    uint64_t start_ns, end_ns;
    int cls;
};

struct load {
    _Atomic int stop;
    _Atomic uint64_t n[CLIENTS];
    struct record rec[CLIENTS][MAX_RECORDS];
};

struct stats { /* cbdemo's STATS line */
    uint64_t requests, upstream_calls, upstream_failed, probes, fallback_open, fallback_error;
    char circuits[WORKERS + 8];
};

struct result {
    unsigned windows;
    double outage_s;
    uint64_t attempts, probes, trip_calls, late;
    uint64_t recovery_probes;
    double close_after_up_s;
    uint64_t outage_requests, outage_max_us, outage_fallbacks;
    uint64_t after_requests, lost, total;
};

/* ---- everything started here is stopped on every path ---- */

static pid_t redis_pid = -1, cbdemo_pid = -1, client_pids[CLIENTS];
static char tmpdir[64], circuit[128];

static void cleanup(void)
{
    if (cbdemo_pid > 0) {
        /* The master stops its workers on SIGTERM; then the whole group
         * (its own) is killed, whatever is left. Orphans come back to us:
         * this process is a child subreaper. */
        kill(cbdemo_pid, SIGTERM);
        for (int i = 0; i < 500 && waitpid(cbdemo_pid, NULL, WNOHANG) == 0; i++)
            usleep(10000);
        kill(-cbdemo_pid, SIGKILL);
    }
    if (redis_pid > 0)
        kill(redis_pid, SIGKILL);
    for (int i = 0; i < CLIENTS; i++)
        if (client_pids[i] > 0)
            kill(client_pids[i], SIGKILL);
    while (waitpid(-1, NULL, 0) > 0)
        ;
    cbdemo_pid = redis_pid = -1;
    if (circuit[0])
        cb_unlink(circuit);
    if (tmpdir[0]) {
        char path[128];
        const char *files[] = {"redis.log", "cbdemo.log"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
}

static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void dump(const char *file)
{
    char path[128], buf[4096];
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fprintf(stderr, "---- %s ----\n", file);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    dump("cbdemo.log");
    dump("redis.log");
    cleanup();
    exit(1);
}

#define check(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (!(cond))                                                                                                 \
            fail(__VA_ARGS__);                                                                                       \
    } while (0)

static void unavailable(const char *what)
{
    if (getenv("CBREAKER_REQUIRE_REDIS") || getenv("CI")) {
        fprintf(stderr, "FAIL: %s\n(tools/quickstart test installs it; this run requires it)\n", what);
        exit(1);
    }
    printf("SKIP: %s\n", what);
    exit(77);
}

/* ---- time and sockets ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int tcp_connect(unsigned port, unsigned timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One connection: send req, read the answer up to its first '\n'. */
static ssize_t exchange(unsigned port, const char *req, char *buf, size_t len, unsigned timeout_ms)
{
    int fd = tcp_connect(port, timeout_ms);
    if (fd < 0)
        return -1;
    size_t n = 0;
    if (write(fd, req, strlen(req)) == (ssize_t)strlen(req))
        while (n + 1 < len) {
            ssize_t r = read(fd, buf + n, len - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            if (memchr(buf, '\n', n))
                break;
        }
    close(fd);
    buf[n] = '\0';
    return n && memchr(buf, '\n', n) ? (ssize_t)n : -1;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    check(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
          "cannot find a free loopback port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- redis-server ---- */

static int find_redis(char *out, size_t len)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/bin:/usr/sbin:/usr/local/bin", path ? path : "");
    for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/redis-server", d);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

static pid_t spawn_logged(char *const argv[], const char *log, int own_group)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, log);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    check(fd >= 0, "open %s: %s", path, strerror(errno));
    pid_t pid = fork();
    check(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (own_group)
            setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, STDIN_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (own_group)
        setpgid(pid, pid); /* also here: no race with kill(-pid) */
    close(fd);
    return pid;
}

static int redis_ok(unsigned port, const char *cmd, const char *want)
{
    char buf[256];
    return exchange(port, cmd, buf, sizeof buf, 500) > 0 && strncmp(buf, want, strlen(want)) == 0;
}

static void start_redis(const char *server, unsigned port)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%u", port);
    char *argv[] = {(char *)server, "--port", portstr, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", tmpdir, "--daemonize", "no", "--logfile", "", NULL};
    redis_pid = spawn_logged(argv, "redis.log", 0);
    uint64_t deadline = now_ns() + 5000000000u;
    while (!redis_ok(port, "PING\r\n", "+PONG")) {
        int status;
        check(waitpid(redis_pid, &status, WNOHANG) == 0, "redis-server on port %u exited at start", port);
        check(now_ns() < deadline, "redis-server on port %u does not answer PING after 5 s", port);
        sleep_ms(10);
    }
    static const char *const keys[] = {"shop", "api", "img", "auth"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "SET route:%s 10.1.0.%zu:8080\r\n", keys[i], i + 1);
        check(redis_ok(port, cmd, "+OK"), "redis SET route:%s failed", keys[i]);
    }
}

static void kill_redis(void)
{
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
}

/* ---- cbdemo ---- */

static unsigned start_cbdemo(const char *cbdemo, unsigned redis_port, int per_process)
{
    char redis[32];
    snprintf(redis, sizeof redis, "127.0.0.1:%u", redis_port);
    char *argv[] = {(char *)cbdemo, "--redis", redis, "--workers", "4", "--threshold", "3", "--reset-ms", "300",
                    "--timeout-ms", "1000", "--no-load", "--port", "0", "--name", circuit,
                    per_process ? "--per-process" : NULL, NULL};
    cbdemo_pid = spawn_logged(argv, "cbdemo.log", 1);
    char path[128];
    snprintf(path, sizeof path, "%s/cbdemo.log", tmpdir);
    for (uint64_t deadline = now_ns() + 5000000000u; now_ns() < deadline; sleep_ms(10)) {
        FILE *f = fopen(path, "r");
        char line[512];
        unsigned port = 0;
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "listening on 127.0.0.1:");
            if (p)
                port = (unsigned)atoi(p + strlen("listening on 127.0.0.1:"));
        }
        if (f)
            fclose(f);
        if (port)
            return port;
        int status;
        check(waitpid(cbdemo_pid, &status, WNOHANG) == 0, "cbdemo exited at start");
    }
    fail("cbdemo did not say where it listens within 5 s");
}

static uint64_t field(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static struct stats get_stats(unsigned port)
{
    char line[1024];
    check(exchange(port, "STATS\n", line, sizeof line, 2000) > 0 && strncmp(line, "stats ", 6) == 0,
          "no STATS answer from cbdemo");
    struct stats s = {field(line, "requests"),      field(line, "upstream_calls"), field(line, "upstream_failed"),
                      field(line, "probes"),        field(line, "fallback_open"),  field(line, "fallback_error"),
                      ""};
    const char *c = strstr(line, " circuits=");
    if (c)
        sscanf(c + 10, "%11[COH?]", s.circuits);
    return s;
}

static cb_info *inspect(cb_info *info)
{
    int rc = cb_inspect(circuit, info);
    check(rc == 0, "cb_inspect(%s): %s", circuit, cb_strerror(rc));
    return info;
}

/* ---- load ---- */

static void client(struct load *ld, unsigned port, unsigned i)
{
    static const char *const keys[] = {"shop", "api", "img", "auth"};
    uint64_t period = 1000000000ull * CLIENTS / RATE, next = now_ns() + period * i / CLIENTS;
    for (uint64_t k = 0; !atomic_load(&ld->stop); k++) {
        struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        next += period;
        uint64_t n = atomic_load(&ld->n[i]);
        if (n == MAX_RECORDS)
            break;
        struct record *r = &ld->rec[i][n];
        char req[64], buf[512];
        snprintf(req, sizeof req, "ROUTE %s\n", keys[k % 4]);
        r->start_ns = now_ns();
        ssize_t got = exchange(port, req, buf, sizeof buf, ANSWER_TIMEOUT_MS);
        r->end_ns = now_ns();
        if (got <= 0 || strncmp(buf, "route=", 6) != 0)
            r->cls = LOST;
        else if (strstr(buf, " source=redis"))
            r->cls = UPSTREAM;
        else if (strstr(buf, " source=fallback reason=circuit_open"))
            r->cls = FALLBACK_OPEN;
        else if (strstr(buf, " source=fallback reason=upstream_error"))
            r->cls = FALLBACK_ERROR;
        else
            r->cls = LOST;
        atomic_store(&ld->n[i], n + 1);
    }
}

static void start_load(struct load *ld, unsigned port)
{
    memset(ld, 0, sizeof *ld);
    for (unsigned i = 0; i < CLIENTS; i++) {
        client_pids[i] = fork();
        check(client_pids[i] >= 0, "fork: %s", strerror(errno));
        if (client_pids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            signal(SIGTERM, SIG_DFL);
            client(ld, port, i);
            _exit(0);
        }
    }
}

static void stop_load(struct load *ld)
{
    atomic_store(&ld->stop, 1);
    for (unsigned i = 0; i < CLIENTS; i++) {
        int status;
        check(waitpid(client_pids[i], &status, 0) == client_pids[i] && WIFEXITED(status) &&
                  WEXITSTATUS(status) == 0,
              "load client %u did not exit cleanly", i);
        client_pids[i] = 0;
    }
}

static uint64_t count_since(const struct load *ld, uint64_t from, int cls)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < CLIENTS; i++)
        for (uint64_t k = 0; k < atomic_load(&ld->n[i]); k++)
            n += ld->rec[i][k].start_ns >= from && ld->rec[i][k].cls == cls;
    return n;
}

/* ---- one run ---- */

static struct result run(const char *cbdemo, const char *server, int per_process, struct load *ld)
{
    const char *mode = per_process ? "per-process" : "shared";
    struct result res = {0};
    char path[128];
    snprintf(path, sizeof path, "%s/cbdemo.log", tmpdir); /* each run logs afresh */
    unlink(path);
    snprintf(path, sizeof path, "%s/redis.log", tmpdir);
    unlink(path);
    snprintf(circuit, sizeof circuit, "test.cbdemo-redis.%d.%s", (int)getpid(), mode);
    cb_unlink(circuit);
    unsigned redis_port = free_port();
    start_redis(server, redis_port);
    unsigned port = start_cbdemo(cbdemo, redis_port, per_process);
    cb_info info0, info1, info_up, info_closed;
    if (per_process) {
        int rc = cb_inspect(circuit, &info0);
        check(rc == -ENOENT, "--per-process made a shared segment (%s)", cb_strerror(rc));
    }
    start_load(ld, port);

    /* Steady: served by Redis. */
    uint64_t t0 = now_ns();
    while (count_since(ld, t0, UPSTREAM) < 10) {
        check(now_ns() - t0 < 5000000000u, "%s: no request served by Redis within 5 s", mode);
        sleep_ms(20);
    }
    sleep_ms(STEADY_MS);

    /* Outage. */
    struct stats s0 = get_stats(port);
    if (!per_process)
        inspect(&info0);
    uint64_t t_kill = now_ns();
    kill_redis();
    /* Requests that started before Redis was surely dead (the kill and the
     * wait take a while, longer under valgrind) may still be answered by it. */
    uint64_t t_dead = now_ns();
    sleep_ms(OUTAGE_MS);
    struct stats s1 = get_stats(port);
    if (!per_process)
        inspect(&info1);
    uint64_t t_restart = now_ns();

    /* Recovery. */
    start_redis(server, redis_port);
    uint64_t t_up = now_ns();
    struct stats s_up = get_stats(port);
    if (!per_process)
        inspect(&info_up);
    uint64_t t_closed;
    struct stats s_closed;
    for (;;) {
        t_closed = now_ns();
        s_closed = get_stats(port);
        int closed = strspn(s_closed.circuits, "C") == WORKERS;
        if (!per_process)
            closed = inspect(&info_closed)->state == CB_CLOSED;
        if (closed)
            break;
        check(t_closed - t_up < CLOSE_WITHIN_MS * 1000000ull, "%s: circuit not closed %d ms after Redis returned",
              mode, CLOSE_WITHIN_MS);
        sleep_ms(5);
    }
    sleep_ms(AFTER_MS);
    stop_load(ld);
    struct stats s_end = get_stats(port);

    /* cbdemo stops cleanly and removes its segment. */
    check(kill(cbdemo_pid, SIGTERM) == 0, "kill cbdemo: %s", strerror(errno));
    int status = -1;
    for (uint64_t deadline = now_ns() + 5000000000u; waitpid(cbdemo_pid, &status, WNOHANG) == 0; sleep_ms(10))
        check(now_ns() < deadline, "%s: cbdemo still running 5 s after SIGTERM", mode);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: cbdemo exit status %d", mode, status);
    pid_t group = cbdemo_pid;
    cbdemo_pid = -1;
    check(kill(-group, 0) < 0 && errno == ESRCH, "%s: cbdemo processes left after the master exited", mode);
    int rc = cb_inspect(circuit, &info0);
    check(rc == -ENOENT, "%s: segment %s still there after cbdemo exited (%s)", mode, circuit, cb_strerror(rc));
    kill_redis();

    /* Figures. */
    res.outage_s = (double)(t_restart - t_kill) / 1e9;
    res.windows = (unsigned)((t_restart - t_kill) / (RESET_MS * 1000000ull));
    /* Attempts during the outage: the calls that met a dead Redis, i.e.
     * failed (a call let in just before the kill may still succeed). */
    res.attempts = s1.upstream_failed - s0.upstream_failed;
    res.probes = s1.probes - s0.probes;
    res.trip_calls = res.attempts - res.probes;
    res.recovery_probes = s_closed.probes - s_up.probes;
    res.close_after_up_s = (double)(t_closed - t_up) / 1e9;
    res.total = 0;
    for (unsigned i = 0; i < CLIENTS; i++)
        for (uint64_t k = 0; k < ld->n[i]; k++) {
            const struct record *r = &ld->rec[i][k];
            res.total++;
            res.lost += r->cls == LOST;
            if (r->start_ns >= t_dead && r->start_ns < t_restart) {
                res.outage_requests++;
                res.outage_fallbacks += r->cls == FALLBACK_OPEN || r->cls == FALLBACK_ERROR;
                uint64_t us = (r->end_ns - r->start_ns) / 1000;
                if (us > res.outage_max_us)
                    res.outage_max_us = us;
            }
            res.after_requests += r->start_ns >= t_closed + 50000000u && r->cls != UPSTREAM;
        }
    uint64_t served_after = count_since(ld, t_closed + 50000000u, UPSTREAM);

    if (!per_process) {
        res.late = info1.counters.late - info0.counters.late;
        uint64_t lib_attempts = info1.counters.failures - info0.counters.failures + res.late;
        uint64_t lib_probes = info1.counters.probes - info0.counters.probes;
        check(lib_attempts + WORKERS >= res.attempts && res.attempts + WORKERS >= lib_attempts,
              "library (%llu) and cbdemo (%llu) disagree on the attempts", (unsigned long long)lib_attempts,
              (unsigned long long)res.attempts);
        res.attempts = lib_attempts; /* the library's count is the reference */
        res.probes = lib_probes;
        res.trip_calls = res.attempts - res.probes;
        check(info1.counters.trips > info0.counters.trips, "shared: the circuit never tripped");
        /* Calls already under way when the circuit tripped report late:
         * the CLOSED state let them in, at most one per other worker. */
        check(res.late < WORKERS, "shared: %llu late reports", (unsigned long long)res.late);
        check(res.attempts - res.late <= THRESHOLD + res.windows,
              "shared: %llu upstream attempts (%llu late) during a %.2f s outage: more than threshold %d + %u "
              "windows",
              (unsigned long long)res.attempts, (unsigned long long)res.late, res.outage_s, THRESHOLD, res.windows);
        check(res.probes <= res.windows, "shared: %llu probes in %u windows", (unsigned long long)res.probes,
              res.windows);
        check(res.probes >= res.windows / 2, "shared: only %llu probes in %u windows",
              (unsigned long long)res.probes, res.windows);
        res.recovery_probes = info_closed.counters.probes - info_up.counters.probes;
        check(info_closed.history_len > 0 && info_closed.history[0].to == CB_CLOSED &&
                  info_closed.history[0].reason == CB_REASON_PROBE_SUCCEEDED,
              "shared: the circuit did not close by a successful probe");
        check(res.recovery_probes <= 1 && info_closed.counters.trips == info_up.counters.trips,
              "shared: %llu probes (and %llu re-trips) after Redis was back; want one successful probe",
              (unsigned long long)res.recovery_probes,
              (unsigned long long)(info_closed.counters.trips - info_up.counters.trips));
    } else {
        check(res.trip_calls >= (uint64_t)WORKERS * THRESHOLD,
              "per-process: %llu failed calls to trip, want each of %d workers to need %d",
              (unsigned long long)res.trip_calls, WORKERS, THRESHOLD);
        check(res.attempts <= (uint64_t)WORKERS * (THRESHOLD + res.windows),
              "per-process: %llu attempts, more than %d workers x (%d + %u)", (unsigned long long)res.attempts,
              WORKERS, THRESHOLD, res.windows);
    }
    check(res.lost == 0, "%s: %llu of %llu requests lost or unanswered", mode, (unsigned long long)res.lost,
          (unsigned long long)res.total);
    check(res.outage_requests > 0 && res.outage_fallbacks == res.outage_requests,
          "%s: %llu of %llu requests during the outage got no fallback answer", mode,
          (unsigned long long)(res.outage_requests - res.outage_fallbacks), (unsigned long long)res.outage_requests);
    check(res.outage_max_us < FAST_MS * 1000u, "%s: slowest answer during the outage took %.1f ms (limit %d ms)",
          mode, (double)res.outage_max_us / 1000, FAST_MS);
    check(served_after > 0 && res.after_requests == 0,
          "%s: after the circuit closed, %llu requests served by Redis and %llu not", mode,
          (unsigned long long)served_after, (unsigned long long)res.after_requests);
    check(s_end.requests >= res.total, "%s: cbdemo counted %llu requests, the clients got %llu answers", mode,
          (unsigned long long)s_end.requests, (unsigned long long)res.total);
    printf("%s: outage %.2f s (%u windows): %llu upstream attempts (%llu to trip + %llu probes, %llu late), "
           "%llu fallback answers (slowest %.2f ms); closed %.3f s after Redis returned with %llu probe(s); "
           "%llu requests, none lost\n",
           mode, res.outage_s, res.windows, (unsigned long long)res.attempts, (unsigned long long)res.trip_calls,
           (unsigned long long)res.probes, (unsigned long long)res.late, (unsigned long long)res.outage_fallbacks,
           (double)res.outage_max_us / 1000, res.close_after_up_s, (unsigned long long)res.recovery_probes,
           (unsigned long long)res.total);
    fflush(stdout);
    return res;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CBDEMO HAVE_HIREDIS\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char server[4096];
    if (find_redis(server, sizeof server) < 0)
        unavailable("redis-server is not installed (apt-get install redis-server)");
    if (strcmp(argv[2], "1") != 0)
        unavailable("cbdemo was built without hiredis (apt-get install libhiredis-dev, then meson setup "
                    "--reconfigure BUILDDIR)");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cbdemo-redis.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    atexit(cleanup);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    struct load *ld = mmap(NULL, sizeof *ld, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ld == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("redis-server %s; cbdemo --redis, %d workers, threshold %d, reset %d ms; %d clients, %d requests/s; "
           "Redis killed for %d ms\n",
           server, WORKERS, THRESHOLD, RESET_MS, CLIENTS, RATE, OUTAGE_MS);
    struct result sh = run(argv[1], server, 0, ld);
    struct result pp = run(argv[1], server, 1, ld);
    check(pp.attempts >= (WORKERS - 1) * sh.attempts,
          "per-process made %llu attempts, shared %llu: want about %d times as many",
          (unsigned long long)pp.attempts, (unsigned long long)sh.attempts, WORKERS);

    printf("\nRedis outage, %d workers, threshold %d, reset %d ms:     shared  per-process\n", WORKERS, THRESHOLD,
           RESET_MS);
    printf("  outage length (s)                                  %6.2f  %11.2f\n", sh.outage_s, pp.outage_s);
    printf("  reset windows passed                               %6u  %11u\n", sh.windows, pp.windows);
    printf("  upstream attempts during the outage                %6llu  %11llu\n", (unsigned long long)sh.attempts,
           (unsigned long long)pp.attempts);
    printf("    failed calls before the trip(s)                  %6llu  %11llu\n", (unsigned long long)sh.trip_calls,
           (unsigned long long)pp.trip_calls);
    printf("    probes                                           %6llu  %11llu\n", (unsigned long long)sh.probes,
           (unsigned long long)pp.probes);
    printf("  probes per reset window                            %6.2f  %11.2f\n",
           sh.windows ? (double)sh.probes / sh.windows : 0.0, pp.windows ? (double)pp.probes / pp.windows : 0.0);
    printf("  probes to close after Redis returned               %6llu  %11llu\n",
           (unsigned long long)sh.recovery_probes, (unsigned long long)pp.recovery_probes);
    printf("  requests during the outage, all fallback answers   %6llu  %11llu\n",
           (unsigned long long)sh.outage_requests, (unsigned long long)pp.outage_requests);
    printf("  slowest answer during the outage (ms)              %6.2f  %11.2f\n", (double)sh.outage_max_us / 1000,
           (double)pp.outage_max_us / 1000);
    printf("  requests lost or unanswered                        %6llu  %11llu\n", (unsigned long long)sh.lost,
           (unsigned long long)pp.lost);
    printf("shared circuit: %.1fx fewer upstream attempts during the outage than a breaker per worker\n",
           sh.attempts ? (double)pp.attempts / (double)sh.attempts : 0.0);
    return 0;
}
