/*
 * info.c - cb_get_info(): a snapshot of everything a segment holds.
 *
 * Readers never write. The state word is read once and everything derived
 * from it (count, time until the probe, lease) is computed from that one
 * value; counters and history are read after it and may be a little newer.
 */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "handle.h"
#include "history.h"
#include "state_word.h"
#include "stripes.h"

static uint64_t ms_left(uint64_t now, uint64_t since, uint64_t timeout)
{
    uint64_t elapsed = sw_elapsed(now, since);
    return elapsed < timeout ? timeout - elapsed : 0;
}

int cb_get_info(cb_breaker *b, cb_info *out)
{
    if (!b || !out)
        return -EINVAL;
    const struct cb_segment *seg = b->seg;
    memset(out, 0, sizeof *out);
    memcpy(out->name, b->name, sizeof out->name);
    uint64_t w = atomic_load_explicit(&seg->state, memory_order_acquire);
    uint64_t now = cb_clock_now(b);
    out->state = (cb_state)sw_state(w);
    out->generation = (uint32_t)sw_gen(w);
    cb_config_read(seg, &out->config);
    out->layout_version = seg->layout_version;
    out->segment_size = seg->size;
    switch (sw_state(w)) {
    case CB_CLOSED:
        out->failures = (uint32_t)sw_payload(w);
        break;
    case CB_OPEN:
        out->ms_until_probe = ms_left(now, sw_payload(w), out->config.reset_timeout_ms + b->clock_tick_ms);
        break;
    case CB_HALF_OPEN:
        if (sw_payload(w) != CB_SLOT_FREE) {
            uint64_t holder = atomic_load_explicit(&seg->probe_holder, memory_order_acquire);
            /* The pid belongs to this probe only if its generation matches. */
            if (holder >> 32 == sw_gen(w))
                out->probe_pid = (int32_t)(uint32_t)holder;
            out->probe_lease_ms = ms_left(now, sw_payload(w), out->config.probe_timeout_ms + b->clock_tick_ms);
        }
        break;
    }
    cb_stripes_sum(seg, &out->counters);
    out->history_len = cb_history_read(seg, sw_gen(w), out->history);
    out->config.mode = b->mode;
    return sw_state(w) == CB_STATE_MODE && sw_mode(w) == CB_MODE_NORMAL ? CB_ECORRUPT : 0;
}
