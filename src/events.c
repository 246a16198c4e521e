/*
 * events.c - transition events: the history record, the listener, and the
 * ready-made key=value log listener (the line itself: cb_format_event,
 * record.c).
 *
 * Only the process whose CAS made a transition calls cb_emit() for it, so
 * each transition is recorded and announced exactly once, host-wide. A
 * would-open announcement (METRICS_ONLY) is made by the process whose CAS
 * set the crossing mark, likewise once, and is not recorded: the state
 * did not change.
 */
#include <unistd.h>

#include "events.h"
#include "history.h"
#include "state_word.h"

static void fill(cb_event *ev, const cb_breaker *b, uint64_t from, uint64_t to, cb_reason reason,
                 uint32_t failures, uint64_t mono_ms)
{
    *ev = (cb_event){
        .circuit = b->name,
        .transition = {
            /* What callers see: a mode word looks CLOSED or OPEN. */
            .from = (cb_state)sw_apparent(from),
            .to = (cb_state)sw_apparent(to),
            .reason = reason,
            .failures = failures,
            .pid = (int32_t)getpid(),
            .wall_ms = cb_clock_wall_ms(),
            .generation = (uint32_t)sw_gen(to),
            .mode = (cb_mode)sw_mode(to),
        },
        .mono_ms = mono_ms,
    };
}

void cb_emit(cb_breaker *b, uint64_t from, uint64_t to, cb_reason reason, uint32_t failures,
             uint64_t mono_ms)
{
    cb_event ev;
    fill(&ev, b, from, to, reason, failures, mono_ms);
    cb_history_record(b->seg, sw_gen(to), &ev.transition);
    if (b->listener)
        b->listener(&ev, b->listener_ctx);
}

void cb_announce_would_open(cb_breaker *b, uint64_t word, cb_reason reason, uint32_t failures,
                            uint64_t mono_ms)
{
    if (!b->listener)
        return;
    cb_event ev;
    fill(&ev, b, word, word, reason, failures, mono_ms);
    ev.transition.from = CB_CLOSED;
    ev.transition.to = CB_OPEN;
    ev.transition.would_open = 1;
    b->listener(&ev, b->listener_ctx);
}

void cb_set_listener(cb_breaker *b, cb_listener fn, void *ctx)
{
    if (!b)
        return;
    b->listener = fn;
    b->listener_ctx = ctx;
}

const char *cb_state_name(cb_state s)
{
    switch (s) {
    case CB_CLOSED:
        return "CLOSED";
    case CB_OPEN:
        return "OPEN";
    case CB_HALF_OPEN:
        return "HALF_OPEN";
    }
    return "INVALID";
}

const char *cb_reason_name(cb_reason r)
{
    switch (r) {
    case CB_REASON_THRESHOLD:
        return "threshold_reached";
    case CB_REASON_TIMEOUT:
        return "reset_timeout_elapsed";
    case CB_REASON_PROBE_SUCCEEDED:
        return "probe_succeeded";
    case CB_REASON_PROBE_FAILED:
        return "probe_failed";
    case CB_REASON_LEASE_EXPIRED:
        return "probe_lease_expired";
    case CB_REASON_RESET:
        return "reset";
    case CB_REASON_TRIP:
        return "trip";
    case CB_REASON_FAILURE_RATE:
        return "failure_rate";
    case CB_REASON_SLOW_CALL_RATE:
        return "slow_call_rate";
    case CB_REASON_MODE:
        return "mode";
    }
    return "unknown";
}

const char *cb_mode_name(cb_mode m)
{
    switch (m) {
    case CB_MODE_NORMAL:
        return "normal";
    case CB_MODE_DISABLED:
        return "disabled";
    case CB_MODE_FORCED_OPEN:
        return "forced_open";
    case CB_MODE_METRICS_ONLY:
        return "metrics_only";
    }
    return "unknown";
}

/* Named after the state entered, as the reference's log events are. */
const char *cb_event_name(const cb_transition *t)
{
    if (t && t->would_open)
        return "circuit_breaker_would_open";
    switch (t ? t->to : (cb_state)-1) {
    case CB_CLOSED:
        return "circuit_breaker_closed";
    case CB_OPEN:
        return "circuit_breaker_opened";
    case CB_HALF_OPEN:
        return "circuit_breaker_half_open";
    }
    return "circuit_breaker_unknown";
}

void cb_log_listener(const cb_event *event, void *ctx)
{
    (void)ctx;
    char line[512];
    int n = cb_format_event(event, line, sizeof line - 1);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    /* One write(2), so lines from many workers never interleave. */
    ssize_t written = write(STDERR_FILENO, line, len);
    (void)written;
}
