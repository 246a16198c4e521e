/*
 * stripes.h - the segment's striped counters.
 *
 * Every call adds to a counter, and a counter written by every process
 * would bounce one cache line between CPUs on every call. Each thread
 * writes only its own stripe (one line pair); readers sum all stripes.
 */
#ifndef CB_STRIPES_H
#define CB_STRIPES_H

#include "segment.h"

/* The stripe the calling thread writes. */
unsigned cb_stripe_index(void);

static inline void cb_count(struct cb_segment *seg, unsigned stripe, enum cb_counter c)
{
    /* Relaxed: counters order nothing; readers want eventual sums. */
    atomic_fetch_add_explicit(&seg->stripes[stripe].count[c], 1, memory_order_relaxed);
}

/* Sum of every stripe, into the fields of out. */
void cb_stripes_sum(const struct cb_segment *seg, cb_counters *out);

#endif
