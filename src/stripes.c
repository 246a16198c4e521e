/*
 * stripes.c - claiming a counter stripe per thread and segment, and
 * summing the stripes.
 *
 * A stripe's owner word holds nonce << 44 | pid << 22 | tid of the thread
 * that claimed it, or 0 (Linux pids and tids stay below 2^22). A thread
 * claims a stripe with one CAS (0 -> itself), or takes over the stripe of
 * a thread that no longer exists (tgkill(pid, tid, 0) fails with ESRCH)
 * with one CAS from that owner; the CAS makes the claim exclusive, so only
 * the owner ever writes the stripe's counters, and the counts a dead owner
 * left are kept and continued. Claims are never given back (a thread
 * cannot know the segment is still mapped when it exits); a thread that
 * opens the same circuit again finds its own claim first. The nonce is
 * random per process, so a process that inherits a recycled pid and tid
 * never mistakes a dead thread's claim for its own; it only keeps that
 * claim from being taken over while it lives.
 *
 * Each thread caches its claims in thread-local storage, most recent in
 * front (one compare on the hot path), keyed by mapping address and the
 * segment's instance id, so a different circuit mapped at a reused address
 * misses. A fork() handler empties the cache in the child, which must not
 * write its parent's stripes.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "stripes.h"

#define CB_CLAIM_CACHE 8

struct claim {
    const void *seg;
    uint32_t instance;
    unsigned stripe;
};

/* The front entry, split out so the hot path reads three plain TLS words. */
__thread const void *cb_tls_front_seg __attribute__((tls_model("initial-exec")));
__thread uint32_t cb_tls_front_instance __attribute__((tls_model("initial-exec")));
__thread unsigned cb_tls_front_stripe __attribute__((tls_model("initial-exec")));
static __thread struct claim tls_older[CB_CLAIM_CACHE - 1] __attribute__((tls_model("initial-exec")));
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t process_nonce; /* 0: not drawn yet */

static void forget_claims_in_child(void)
{
    cb_tls_front_seg = NULL;
    memset(tls_older, 0, sizeof tls_older);
    atomic_store_explicit(&process_nonce, 0, memory_order_relaxed);
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_claims_in_child);
}

#define ID_BITS 22u
#define ID_MASK ((UINT64_C(1) << ID_BITS) - 1u)

static uint64_t nonce(void)
{
    uint64_t n = atomic_load_explicit(&process_nonce, memory_order_relaxed);
    if (n == 0) {
        uint32_t r;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = (uint32_t)(uintptr_t)&r ^ (uint32_t)getpid() * 2654435761u;
        n = (r & 0xfffffu) | 1u; /* 20 bits */
        uint64_t none = 0; /* threads racing here all end with one nonce */
        if (!atomic_compare_exchange_strong_explicit(&process_nonce, &none, n, memory_order_relaxed,
                                                     memory_order_relaxed))
            n = none;
    }
    return n;
}

static uint64_t this_thread(void)
{
    return nonce() << (2 * ID_BITS) | ((uint64_t)getpid() & ID_MASK) << ID_BITS |
           ((uint64_t)syscall(SYS_gettid) & ID_MASK);
}

static int thread_is_gone(uint64_t owner)
{
    pid_t pid = (pid_t)((owner >> ID_BITS) & ID_MASK), tid = (pid_t)(owner & ID_MASK);
    return syscall(SYS_tgkill, pid, tid, 0) == -1 && errno == ESRCH;
}

static int take(struct cb_segment *seg, unsigned s, uint64_t from, uint64_t me)
{
    /* Exactly one thread moves the owner word away from `from`. */
    return atomic_compare_exchange_strong_explicit(&seg->stripes[s].owner, &from, me,
                                                   memory_order_acquire, memory_order_relaxed);
}

static unsigned claim_in_segment(struct cb_segment *seg)
{
    uint64_t me = this_thread();
    unsigned first = 1u + (unsigned)(me % (CB_STRIPES - 1u)), s;
    for (s = 1; s < CB_STRIPES; s++)
        if (atomic_load_explicit(&seg->stripes[s].owner, memory_order_relaxed) == me)
            return s;
    for (unsigned i = 0; i < CB_STRIPES - 1u; i++) {
        s = 1u + (first - 1u + i) % (CB_STRIPES - 1u);
        if (take(seg, s, 0, me))
            return s;
    }
    for (s = 1; s < CB_STRIPES; s++) {
        uint64_t owner = atomic_load_explicit(&seg->stripes[s].owner, memory_order_relaxed);
        if (owner != 0 && thread_is_gone(owner) && take(seg, s, owner, me))
            return s;
    }
    return CB_SHARED_STRIPE;
}

unsigned cb_stripe_claimed(const cb_breaker *b)
{
    struct claim found = {b->seg, b->instance, CB_SHARED_STRIPE};
    unsigned i;
    for (i = 0; i < CB_CLAIM_CACHE - 1; i++)
        if (tls_older[i].seg == b->seg && tls_older[i].instance == b->instance)
            break;
    if (i < CB_CLAIM_CACHE - 1) {
        found.stripe = tls_older[i].stripe;
    } else {
        pthread_once(&atfork_once, register_atfork);
        found.stripe = claim_in_segment(b->seg);
        i = CB_CLAIM_CACHE - 2; /* the oldest entry makes room */
    }
    /* Move the entries before i back one and put the old front first. */
    memmove(&tls_older[1], &tls_older[0], i * sizeof tls_older[0]);
    tls_older[0] = (struct claim){cb_tls_front_seg, cb_tls_front_instance, cb_tls_front_stripe};
    cb_tls_front_seg = found.seg;
    cb_tls_front_instance = found.instance;
    cb_tls_front_stripe = found.stripe;
    return found.stripe;
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
