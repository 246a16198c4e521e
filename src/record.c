/*
 * record.c - transitions for callers that cannot take a callback: the
 * one-line key=value format of an event (shared with cb_log_listener), and
 * a ready-made listener that copies each event into a caller-owned
 * cb_record for the caller to poll (the LuaJIT binding does, after each
 * acquire and report, so no C -> Lua callback ever runs on its hot path).
 */
#include <errno.h>
#include <stdio.h>

#include "cbreaker.h"

int cb_format_event(const cb_event *event, char *buf, size_t len)
{
    if (!event || !buf || len == 0)
        return -EINVAL;
    const cb_transition *t = &event->transition;
    /* mode= last: lines of cbreaker 0.2 are a prefix of these. */
    int n = snprintf(buf, len,
                     "event=%s circuit=%s from=%s to=%s reason=%s failures=%u pid=%d wall_ms=%llu mode=%s",
                     cb_event_name(t), event->circuit ? event->circuit : "", cb_state_name(t->from),
                     cb_state_name(t->to), cb_reason_name(t->reason), (unsigned)t->failures, (int)t->pid,
                     (unsigned long long)t->wall_ms, cb_mode_name(t->mode));
    return n < 0 ? -EINVAL : n;
}

void cb_record_listener(const cb_event *event, void *ctx)
{
    cb_record *rec = ctx;
    if (!event || !rec)
        return;
    if (rec->len < CB_RECORD_MAX)
        rec->events[rec->len++] = *event;
    else
        rec->dropped++;
}
