/*
 * config.h - the config a segment stores: threshold, timeouts and policies in slots,
 * one of them in force (see config.c for how they are replaced).
 */
#ifndef CB_CONFIG_H
#define CB_CONFIG_H

#include "segment.h"

/* The config in force's value of one field, for the hot path: two plain
 * loads (acquire pairs with the release that published the slot). */
static inline uint32_t cb_config_value(const struct cb_segment *seg, enum cb_config_field field)
{
    uint64_t current = atomic_load_explicit(&seg->config_current, memory_order_acquire);
    return (uint32_t)atomic_load_explicit(&seg->config[current % CB_CONFIG_SLOTS].word[field],
                                          memory_order_relaxed);
}

/* The open period after `step` failed probes in a row: reset_timeout,
 * then each step multiplies it by mult / 100 (integer, 64-bit), up to
 * cap = max(max_reset, reset); mult 0 (or 100) keeps it at reset. */
static inline uint64_t cb_open_period(uint32_t reset, uint32_t mult, uint32_t max_reset, unsigned step)
{
    uint64_t cap = max_reset > reset ? max_reset : reset, p = reset;
    if (mult <= 100u)
        return p;
    for (unsigned s = 0; s < step && p < cap; s++) {
        p = p * mult / 100u > p ? p * mult / 100u : p + 1u; /* a short period grows too */
        if (p > cap)
            p = cap;
    }
    return p;
}

/* The step after a failed probe at `step`: one more while backoff is on,
 * the period has not reached the cap and CB_BACKOFF_STEPS_MAX allows. */
static inline unsigned cb_next_step(uint32_t reset, uint32_t mult, uint32_t max_reset, unsigned step)
{
    uint64_t cap = max_reset > reset ? max_reset : reset;
    if (mult > 100u && step < CB_BACKOFF_STEPS_MAX && cb_open_period(reset, mult, max_reset, step) < cap)
        return step + 1u;
    return step;
}

/* cfg with zero fields replaced by the defaults; -EINVAL for bad mode bits
 * or unknown flags. NULL means all zeros. */
int cb_resolve_config(const cb_config *in, cb_config *out);
/* The first config of a segment being initialized (nobody reads it yet). */
void cb_config_init(struct cb_segment *seg, const cb_config *cfg);
/* Replace the stored config with resolved cfg (all of it), as one update.
 * 1 if the stored config changed, 0 if it already held those values. */
int cb_store_config(struct cb_segment *seg, const cb_config *cfg);
/* The config in force into *out (mode and flags 0).
 * 1 if they are one update's, 0 if the slot in force was damaged (see
 * config.c: only a storm of concurrent updates or a hostile writer). */
int cb_config_read(const struct cb_segment *seg, cb_config *out);

#endif
