/*
 * timeline.c - what the master prints: the run's header, one row per
 * second from the pool's counters, the upstream going down and coming
 * back, and the closing summary of the outage.
 *
 * The transition lines between the rows are printed by the workers that
 * made them (worker.c), so each shows the pid whose compare-and-swap won.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbdemo.h"

struct snap {
    uint64_t requests, via_upstream, fallback_open, fallback_error, upstream_calls, upstream_failed, probes;
};

struct timeline {
    const struct demo_options *o;
    struct demo_shared *sh;
    cb_breaker *b; /* the shared circuit; NULL with --per-process */
    struct snap prev;
    uint64_t prev_rejected[DEMO_MAX_WORKERS];
    double prev_t;
    int upstream_up;
    int outages;                /* how many times the upstream went down */
    struct snap at_down, at_up; /* counters when it last went down and came back */
    uint64_t late_down, late_up; /* the shared circuit's late reports then */
    double down_t, up_t;
    uint64_t up_wall_ms;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void take(const struct demo_shared *sh, struct snap *s)
{
    const struct demo_counters *c = &sh->c;
    *s = (struct snap){atomic_load(&c->requests),       atomic_load(&c->via_upstream),
                       atomic_load(&c->fallback_open),  atomic_load(&c->fallback_error),
                       atomic_load(&c->upstream_calls), atomic_load(&c->upstream_failed),
                       atomic_load(&c->probes)};
}

struct timeline *timeline_new(const struct demo_options *o, struct demo_shared *sh, cb_breaker *shared_circuit)
{
    struct timeline *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->o = o;
    t->sh = sh;
    t->b = shared_circuit;
    t->upstream_up = 1;
    return t;
}

void timeline_free(struct timeline *t)
{
    free(t);
}

void timeline_header(struct timeline *t, unsigned port)
{
    const struct demo_options *o = t->o;
    if (o->per_process)
        say("cbdemo: listening on 127.0.0.1:%u (master pid %d); %u workers, each with a private breaker "
            "(--per-process): threshold %u, reset %u ms\n",
            port, (int)getpid(), o->workers, o->threshold, o->reset_ms);
    else
        say("cbdemo: listening on 127.0.0.1:%u (master pid %d); %u workers share circuit %s: threshold %u, "
            "reset %u ms\n",
            port, (int)getpid(), o->workers, o->name, o->threshold, o->reset_ms);
    char upstream[160], load[96], run[64];
    if (o->redis)
        snprintf(upstream, sizeof upstream, "redis at %s (GET route:NAME)", o->redis);
    else if (o->down_at_s >= 0 && o->up_at_s >= 0)
        snprintf(upstream, sizeof upstream, "embedded, down from %.1f s to %.1f s", o->down_at_s, o->up_at_s);
    else if (o->down_at_s >= 0)
        snprintf(upstream, sizeof upstream, "embedded, down from %.1f s", o->down_at_s);
    else
        snprintf(upstream, sizeof upstream, "embedded (kill -USR1 %d toggles it)", (int)getpid());
    if (o->load)
        snprintf(load, sizeof load, "%u clients, %u requests/s", o->clients, o->rate);
    else
        snprintf(load, sizeof load, "none (send ROUTE name or GET /route/name)");
    if (o->duration_s > 0)
        snprintf(run, sizeof run, "%g s", o->duration_s);
    else
        snprintf(run, sizeof run, "until Ctrl-C");
    say("upstream: %s; load: %s; run: %s\n", upstream, load, run);
}

void timeline_columns(struct timeline *t)
{
    const struct demo_options *o = t->o;
    say("%6s %-8s %-9s %7s %8s %8s %6s %6s %9s\n", "t(s)", "upstream", o->per_process ? "circuits" : "circuit",
        "served", "fallback", "up.calls", "failed", "probes", "rejecting");
}

void timeline_row(struct timeline *t)
{
    const struct demo_options *o = t->o;
    double now = since_start_s(t->sh);
    struct snap s;
    take(t->sh, &s);
    const struct snap *p = &t->prev;
    uint64_t calls = s.upstream_calls - p->upstream_calls, failed = s.upstream_failed - p->upstream_failed;
    const char *upstream;
    if (!o->redis)
        upstream = t->upstream_up ? "up" : "DOWN"; /* as the master last set it */
    else /* Redis: what the calls of this second found */
        upstream = calls == 0 ? "-" : failed == 0 ? "ok" : failed == calls ? "failing" : "mixed";
    char circuit[DEMO_MAX_WORKERS + 1];
    if (t->b)
        snprintf(circuit, sizeof circuit, "%s", cb_state_name(cb_get_state(t->b)));
    else {
        for (unsigned i = 0; i < o->workers; i++)
            circuit[i] = state_letter(atomic_load(&t->sh->w[i].state));
        circuit[o->workers] = '\0';
    }
    unsigned rejecting = 0;
    for (unsigned i = 0; i < o->workers; i++) {
        uint64_t r = atomic_load(&t->sh->w[i].rejected);
        rejecting += r != t->prev_rejected[i];
        t->prev_rejected[i] = r;
    }
    char rej[32];
    snprintf(rej, sizeof rej, "%u of %u", rejecting, o->workers);
    say("%6.2f %-8s %-9s %7llu %8llu %8llu %6llu %6llu %9s\n", now, upstream, circuit,
        (unsigned long long)(s.requests - p->requests),
        (unsigned long long)(s.fallback_open + s.fallback_error - p->fallback_open - p->fallback_error),
        (unsigned long long)calls, (unsigned long long)failed, (unsigned long long)(s.probes - p->probes), rej);
    t->prev = s;
    t->prev_t = now;
}

double timeline_since_row(const struct timeline *t)
{
    return since_start_s(t->sh) - t->prev_t;
}

static uint64_t late_reports(const struct timeline *t)
{
    cb_info info;
    return t->b && cb_get_info(t->b, &info) == 0 ? info.counters.late : 0;
}

void timeline_upstream(struct timeline *t, int up)
{
    if (up == t->upstream_up)
        return;
    t->upstream_up = up;
    double now = since_start_s(t->sh);
    if (!up) {
        t->late_down = late_reports(t);
        take(t->sh, &t->at_down);
        t->down_t = now;
        t->outages++;
        say("%6.2f  upstream DOWN: it stops listening and drops its connections (calls are refused)\n", now);
    } else {
        take(t->sh, &t->at_up);
        t->late_up = late_reports(t);
        t->up_t = now;
        t->up_wall_ms = wall_ms();
        say("%6.2f  upstream UP again\n", now);
    }
}

/* The first probe_succeeded close after the upstream came back. */
static int recovery_close(const struct timeline *t, cb_transition *out)
{
    cb_info *info = malloc(sizeof *info);
    int found = 0;
    if (info && t->b && cb_get_info(t->b, info) == 0)
        for (unsigned i = info->history_len; i-- > 0;) /* oldest first */
            if (info->history[i].reason == CB_REASON_PROBE_SUCCEEDED && info->history[i].wall_ms >= t->up_wall_ms) {
                *out = info->history[i];
                found = 1;
                break;
            }
    free(info);
    return found;
}

static void summary_outage(const struct timeline *t, const struct snap *end)
{
    const struct demo_options *o = t->o;
    const struct snap *a = &t->at_down, *b = &t->at_up;
    double outage = t->up_t - t->down_t;
    unsigned windows = (unsigned)(outage * 1000 / o->reset_ms);
    /* The calls that met the dead upstream: all failed. (A call let in
     * just before it went down may still have succeeded: not counted.) */
    uint64_t calls = b->upstream_failed - a->upstream_failed, probes = b->probes - a->probes;
    uint64_t before_trip = calls > probes ? calls - probes : 0;
    say("\nsummary: the upstream was down from %.2f s to %.2f s (%.2f s, %u reset windows of %u ms)\n", t->down_t,
        t->up_t, outage, windows, o->reset_ms);
    say("  upstream calls during the outage: %llu = %llu before the trip%s + %llu probes (%.2f probes per "
        "window)\n",
        (unsigned long long)calls, (unsigned long long)before_trip, o->per_process ? "s" : "",
        (unsigned long long)probes, windows ? (double)probes / windows : 0.0);
    if (!o->per_process) {
        /* Calls already under way when the circuit tripped report late:
         * they were let in by the CLOSED state, not by a probe. */
        uint64_t late = t->late_up - t->late_down;
        unsigned bound = o->threshold + windows;
        say("  one circuit for the pool: at most threshold + windows = %u + %u = %u calls: %s\n", o->threshold,
            windows, bound, calls - late <= bound ? "yes" : "NO, more");
        if (late)
            say("  (%llu of the calls were already under way when the circuit tripped: late reports, ignored)\n",
                (unsigned long long)late);
        say("  (with a breaker per worker, each of the %u workers trips and probes on its own: try --per-process)\n",
            o->workers);
    } else {
        say("  a breaker per worker: each of the %u workers needed %u failures of its own to trip, and each "
            "probes every window\n",
            o->workers, o->threshold);
        say("  (the shared circuit makes at most %u + %u = %u calls here: run without --per-process)\n",
            o->threshold, windows, o->threshold + windows);
    }
    uint64_t fallback = b->fallback_open - a->fallback_open;
    if (o->load)
        say("  %llu requests were answered from the fallback without calling the upstream; slowest fallback "
            "answer: %.1f ms\n",
            (unsigned long long)fallback,
            (double)atomic_load(&t->sh->load.max_us[LOAD_FALLBACK_OPEN]) / 1000);
    uint64_t probes_after = end->probes - b->probes;
    cb_transition close;
    if (t->b && recovery_close(t, &close))
        say("  recovery: pid %d's probe closed the circuit %.2f s after the upstream came back; probes since "
            "it came back: %llu\n",
            (int)close.pid, (double)(close.wall_ms - t->up_wall_ms) / 1000, (unsigned long long)probes_after);
    else
        say("  recovery: probes since the upstream came back: %llu%s\n", (unsigned long long)probes_after,
            o->per_process ? " (one per worker: each closes its own circuit)" : "");
}

void timeline_summary(struct timeline *t)
{
    struct snap s;
    take(t->sh, &s);
    if (t->outages == 1 && !t->upstream_up) {
        say("\nsummary: the upstream is still down\n");
    } else if (t->outages == 1) {
        summary_outage(t, &s);
    } else {
        say("\nsummary: %llu requests: %llu from %s, %llu from the fallback (circuit open), %llu after a "
            "failed call; %llu upstream calls, %llu of them probes\n",
            (unsigned long long)s.requests, (unsigned long long)s.via_upstream, t->o->redis ? "redis" : "the upstream",
            (unsigned long long)s.fallback_open, (unsigned long long)s.fallback_error,
            (unsigned long long)s.upstream_calls, (unsigned long long)s.probes);
    }
    if (t->o->load) {
        const struct load_counters *lc = &t->sh->load;
        say("  load: %llu requests sent, %llu answered, %llu lost or unanswered\n",
            (unsigned long long)atomic_load(&lc->sent),
            (unsigned long long)(atomic_load(&lc->sent) - atomic_load(&lc->count[LOAD_LOST])),
            (unsigned long long)atomic_load(&lc->count[LOAD_LOST]));
    }
    uint64_t restarts = atomic_load(&t->sh->restarts);
    if (restarts)
        say("  workers restarted by the master: %llu\n", (unsigned long long)restarts);
}
