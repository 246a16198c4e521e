/*
 * config.h - the config a segment stores: threshold and timeouts in slots,
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

/* cfg with zero fields replaced by the defaults; -EINVAL for bad mode bits
 * or unknown flags. NULL means all zeros. */
int cb_resolve_config(const cb_config *in, cb_config *out);
/* The first config of a segment being initialized (nobody reads it yet). */
void cb_config_init(struct cb_segment *seg, const cb_config *cfg);
/* Replace the stored threshold and timeouts with cfg's, as one update.
 * 1 if the stored config changed, 0 if it already held those values. */
int cb_store_config(struct cb_segment *seg, const cb_config *cfg);
/* The threshold and timeouts in force into *out (mode and flags 0).
 * 1 if they are one update's, 0 if the slot in force was damaged (see
 * config.c: only a storm of concurrent updates or a hostile writer). */
int cb_config_read(const struct cb_segment *seg, cb_config *out);

#endif
