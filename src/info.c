/*
 * info.c - cb_get_info(): a snapshot of everything a segment holds.
 *
 * Readers never write. The state word is read once and everything derived
 * from it (count, time until the probe, lease, mode, backoff step and open
 * period) is computed from that one value; the window, counters and
 * history are read after it and may be a little newer.
 */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "handle.h"
#include "history.h"
#include "state_word.h"
#include "stripes.h"
#include "window.h"

static uint64_t ms_left(uint64_t now, uint64_t since, uint64_t timeout)
{
    uint64_t elapsed = sw_elapsed(now, since);
    return elapsed < timeout ? timeout - elapsed : 0;
}

int cb_get_info(cb_breaker *b, cb_info *out)
{
    if (!b || !out)
        return -EINVAL;
    struct cb_segment *seg = b->seg;
    memset(out, 0, sizeof *out);
    memcpy(out->name, b->name, sizeof out->name);
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_acquire);
    uint64_t now = cb_clock_now(b);
    out->state = (cb_state)sw_apparent(w);
    out->mode = (cb_mode)sw_mode(w);
    out->generation = (uint32_t)sw_gen(w);
    cb_config_read(seg, &out->config);
    out->layout_version = seg->layout_version;
    out->segment_size = seg->size;
    const cb_config *c = &out->config;
    unsigned step = sw_state(w) == CB_OPEN || sw_state(w) == CB_HALF_OPEN ? sw_step(w) : 0;
    out->backoff_step = step;
    out->open_timeout_ms = cb_open_period(c->reset_timeout_ms, c->backoff_multiplier_pct,
                                          c->max_reset_timeout_ms, step);
    /* The window: of this generation while it counts (CLOSED,
     * METRICS_ONLY); else (OPEN, HALF_OPEN, FORCED_OPEN) of the generation
     * whose window was last in force, as it ages: what tripped it. */
    int windowed = 0, stored_floor = 1;
    switch (sw_state(w)) {
    case CB_CLOSED:
        out->failures = (uint32_t)sw_payload(w);
        windowed = 1;
        break;
    case CB_OPEN:
        windowed = 1;
        out->ms_until_probe = ms_left(now, sw_stamp(w), out->open_timeout_ms + b->clock_tick_ms);
        break;
    case CB_HALF_OPEN:
        windowed = 1;
        if (sw_stamp(w) != CB_SLOT_FREE) {
            uint64_t holder = atomic_load_explicit(&seg->probe_holder, memory_order_acquire);
            /* The pid belongs to this probe only if its generation matches. */
            if (holder >> 32 == sw_gen(w))
                out->probe_pid = (int32_t)(uint32_t)holder;
            out->probe_lease_ms = ms_left(now, sw_stamp(w), out->config.probe_timeout_ms + b->clock_tick_ms);
        }
        break;
    default: /* a mode; FORCED_OPEN never probes: ms_until_probe stays 0 */
        if (sw_mode(w) == CB_MODE_METRICS_ONLY) {
            out->failures = (uint32_t)(sw_payload(w) >> CB_MODE_COUNT_SHIFT);
            windowed = 1;
            stored_floor = 0;
        } else if (sw_mode(w) == CB_MODE_FORCED_OPEN) {
            windowed = 1;
        }
        break;
    }
    if (windowed) {
        /* A reader never writes: without this generation's floor (its
         * closer has not written it yet), the window starts now. */
        struct cb_window_sums sums;
        struct cb_bucket at;
        uint64_t floor = sw_state(w) == CB_CLOSED || !stored_floor
                             ? cb_window_floor(seg, sw_gen(w), now, 0)
                             : atomic_load_explicit(&seg->window_floor, memory_order_relaxed) & CB_STAMP_MASK;
        if (floor == CB_WINDOW_STALE) /* the word moved on since it was read */
            floor = (now + 1u) & CB_STAMP_MASK;
        cb_window_locate(now, c->window_ms, floor, &at);
        cb_window_sum(seg, &at, &sums);
        out->window_calls = sums.calls;
        out->window_failures = sums.failures;
        out->window_slow_calls = sums.slow;
    }
    cb_stripes_sum(seg, &out->counters);
    out->history_len = cb_history_read(seg, sw_gen(w), out->history);
    out->config.mode = b->mode;
    return sw_state(w) == CB_STATE_MODE && sw_mode(w) == CB_MODE_NORMAL ? CB_ECORRUPT : 0;
}
