/*
 * stripes.c - which stripe a thread writes, and summing them.
 *
 * A thread's stripe is derived from its pid and a per-process thread
 * number, so forked workers (consecutive pids) land on different stripes.
 * It is cached in thread-local storage; a fork() handler clears the cache
 * in the child, which would otherwise keep writing its parent's stripe.
 * Two threads that do share a stripe stay correct (the adds are atomic),
 * only slower.
 */
#include <pthread.h>
#include <unistd.h>

#include "stripes.h"

#define CB_NO_STRIPE (~0u)

static __thread unsigned tls_stripe __attribute__((tls_model("initial-exec"))) = CB_NO_STRIPE;
static _Atomic unsigned thread_seq;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_stripe_in_child(void)
{
    tls_stripe = CB_NO_STRIPE;
    atomic_store_explicit(&thread_seq, 0, memory_order_relaxed);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_stripe_in_child);
}

unsigned cb_stripe_index(void)
{
    unsigned s = tls_stripe;
    if (__builtin_expect(s != CB_NO_STRIPE, 1))
        return s;
    pthread_once(&atfork_once, register_atfork);
    unsigned nth = atomic_fetch_add_explicit(&thread_seq, 1, memory_order_relaxed);
    /* 7 is odd, so the threads of one process walk all stripes. */
    s = ((unsigned)getpid() + nth * 7u) & (CB_STRIPES - 1u);
    tls_stripe = s;
    return s;
}

void cb_stripes_sum(const struct cb_segment *seg, cb_counters *out)
{
    uint64_t sum[CB_C_COUNT] = {0};
    for (unsigned s = 0; s < CB_STRIPES; s++)
        for (unsigned c = 0; c < CB_C_COUNT; c++)
            sum[c] += atomic_load_explicit(&seg->stripes[s].count[c], memory_order_relaxed);
    out->allowed = sum[CB_C_ALLOWED];
    out->rejected = sum[CB_C_REJECTED];
    out->successes = sum[CB_C_SUCCESSES];
    out->failures = sum[CB_C_FAILURES];
    out->released = sum[CB_C_RELEASED];
    out->late = sum[CB_C_LATE];
    out->trips = sum[CB_C_TRIPS];
    out->probes = sum[CB_C_PROBES];
}
