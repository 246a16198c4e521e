/*
 * stripes.h - the segment's striped counters.
 *
 * Every call adds to a counter, and a counter written by every process
 * would bounce one cache line between CPUs on every call. So each thread
 * claims a stripe of its own in each segment it uses (one line pair) and
 * adds to it with a plain load and store, no locked instruction; readers
 * sum all stripes. Stripe 0 is never claimed: threads that find no free
 * stripe share it, with atomic adds.
 */
#ifndef CB_STRIPES_H
#define CB_STRIPES_H

#include "handle.h"

#define CB_SHARED_STRIPE 0u

/* The calling thread's most recent claim (stripes.c). */
extern __thread const void *cb_tls_front_seg __attribute__((tls_model("initial-exec")));
extern __thread uint32_t cb_tls_front_instance __attribute__((tls_model("initial-exec")));
extern __thread unsigned cb_tls_front_stripe __attribute__((tls_model("initial-exec")));

/* Look up or make a claim for b's segment; the slow half of cb_stripe_for. */
unsigned cb_stripe_claimed(const cb_breaker *b);

/* The stripe the calling thread writes in b's segment. */
static inline unsigned cb_stripe_for(const cb_breaker *b)
{
    if (__builtin_expect(cb_tls_front_seg == b->seg && cb_tls_front_instance == b->instance, 1))
        return cb_tls_front_stripe;
    return cb_stripe_claimed(b);
}

static inline void cb_count(struct cb_segment *seg, unsigned stripe, enum cb_counter c)
{
    _Atomic uint64_t *counter = &seg->stripes[stripe].count[c];
    /* Relaxed: counters order nothing; readers want eventual sums. Only
     * the owning thread writes a claimed stripe, so load + store loses
     * nothing and needs no lock prefix. */
    if (__builtin_expect(stripe != CB_SHARED_STRIPE, 1))
        atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Sum of every stripe, into the fields of out. */
void cb_stripes_sum(const struct cb_segment *seg, cb_counters *out);

#endif
