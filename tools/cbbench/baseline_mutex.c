/*
 * baseline_mutex.c - cbreaker's state machine behind a process-shared
 * mutex: the design most people would write first.
 *
 * The rules mirror src/breaker.c one for one (same transitions, same
 * generation check for late reports, same coarse clock read only when not
 * CLOSED, same tick added to timeouts), so the only difference measured is
 * the lock: every acquire and every report takes and releases one robust
 * PTHREAD_PROCESS_SHARED mutex, and the counters are plain fields updated
 * under it. A holder that dies leaves EOWNERDEAD to the next locker, which
 * marks the mutex consistent and carries on (the state it guards is
 * changed only in complete steps under the lock).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "baseline_mutex.h"

enum { K_CALL = 1, K_PROBE = 2 };

struct mx_shared {
    pthread_mutex_t lock;
    cb_state state;
    uint32_t gen;
    uint64_t count;     /* CLOSED: consecutive failures */
    uint64_t stamp;     /* OPEN: trip time; HALF_OPEN: lease start, 0 = free */
    uint32_t threshold, reset_ms, probe_ms;
    cb_counters counters;
};

struct mx_circuit {
    struct mx_shared *s;
    uint64_t (*now_ms)(void *);
    void *clock_ctx;
    uint64_t tick_ms;
};

static uint64_t coarse_ms(void *unused)
{
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t coarse_tick_ms(void)
{
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
        return 10;
    return ((uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec + 999999u) / 1000000u;
}

struct mx_circuit *mx_open(const cb_config *cfg, uint64_t (*now_ms)(void *), void *clock_ctx)
{
    struct mx_circuit *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->s = mmap(NULL, sizeof *m->s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m->s == MAP_FAILED) {
        free(m);
        return NULL;
    }
    memset(m->s, 0, sizeof *m->s);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m->s->lock, &a);
    pthread_mutexattr_destroy(&a);
    m->s->threshold = cfg->failure_threshold ? cfg->failure_threshold : CB_DEFAULT_FAILURE_THRESHOLD;
    m->s->reset_ms = cfg->reset_timeout_ms ? cfg->reset_timeout_ms : CB_DEFAULT_RESET_TIMEOUT_MS;
    m->s->probe_ms = cfg->probe_timeout_ms ? cfg->probe_timeout_ms : m->s->reset_ms;
    m->now_ms = now_ms ? now_ms : coarse_ms;
    m->clock_ctx = clock_ctx;
    m->tick_ms = now_ms ? 0 : coarse_tick_ms();
    return m;
}

void mx_close(struct mx_circuit *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->s->lock);
    munmap(m->s, sizeof *m->s);
    free(m);
}

static void lock(struct mx_shared *s)
{
    if (pthread_mutex_lock(&s->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&s->lock);
}

static void unlock(struct mx_shared *s) { pthread_mutex_unlock(&s->lock); }

static uint64_t elapsed(uint64_t now, uint64_t then) { return now > then ? now - then : 0; }

cb_verdict mx_acquire(struct mx_circuit *m, uint64_t *permit)
{
    struct mx_shared *s = m->s;
    cb_verdict v = CB_REJECTED;
    lock(s);
    if (s->state == CB_CLOSED) {
        s->counters.allowed++;
        *permit = (uint64_t)s->gen << 2 | K_CALL;
        unlock(s);
        return CB_ALLOWED;
    }
    uint64_t now = m->now_ms(m->clock_ctx);
    int take = s->state == CB_OPEN ? elapsed(now, s->stamp) >= s->reset_ms + m->tick_ms
                                   : s->stamp == 0 || elapsed(now, s->stamp) >= s->probe_ms + m->tick_ms;
    if (take) {
        s->state = CB_HALF_OPEN;
        s->gen++;
        s->stamp = now ? now : 1;
        s->counters.allowed++;
        s->counters.probes++;
        *permit = (uint64_t)s->gen << 2 | K_PROBE;
        v = CB_PROBE;
    } else {
        s->counters.rejected++;
        *permit = 0;
    }
    unlock(s);
    return v;
}

enum report { R_SUCCESS, R_FAILURE, R_RELEASE };

static void report(struct mx_circuit *m, uint64_t permit, enum report r)
{
    struct mx_shared *s = m->s;
    unsigned kind = permit & 3u;
    uint32_t gen = (uint32_t)(permit >> 2);
    if (kind != K_CALL && kind != K_PROBE)
        return;
    lock(s);
    if (s->gen != gen || s->state != (kind == K_CALL ? CB_CLOSED : CB_HALF_OPEN)) {
        s->counters.late++;
    } else if (r == R_RELEASE) {
        s->counters.released++;
        if (kind == K_PROBE) {
            s->gen++;
            s->stamp = 0;
        }
    } else if (r == R_SUCCESS) {
        s->counters.successes++;
        if (kind == K_PROBE) {
            s->state = CB_CLOSED;
            s->gen++;
        }
        s->count = 0;
    } else {
        s->counters.failures++;
        if (kind == K_PROBE || s->count + 1 >= s->threshold) {
            s->state = CB_OPEN;
            s->gen++;
            s->stamp = m->now_ms(m->clock_ctx);
            s->count = 0;
            s->counters.trips++;
        } else {
            s->count++;
        }
    }
    unlock(s);
}

void mx_success(struct mx_circuit *m, uint64_t permit) { report(m, permit, R_SUCCESS); }
void mx_failure(struct mx_circuit *m, uint64_t permit) { report(m, permit, R_FAILURE); }
void mx_release(struct mx_circuit *m, uint64_t permit) { report(m, permit, R_RELEASE); }

void mx_reset(struct mx_circuit *m)
{
    lock(m->s);
    m->s->state = CB_CLOSED;
    m->s->gen++;
    m->s->count = 0;
    m->s->stamp = 0;
    unlock(m->s);
}

void mx_trip(struct mx_circuit *m)
{
    lock(m->s);
    m->s->state = CB_OPEN;
    m->s->gen++;
    m->s->count = 0;
    m->s->stamp = m->now_ms(m->clock_ctx);
    m->s->counters.trips++;
    unlock(m->s);
}

void mx_counters(struct mx_circuit *m, cb_counters *out, uint32_t *failures, cb_state *state)
{
    lock(m->s);
    *out = m->s->counters;
    *failures = (uint32_t)m->s->count;
    *state = m->s->state;
    unlock(m->s);
}
