/*
 * stripes.c - claiming a counter stripe per thread and segment, and
 * summing the stripes.
 *
 * A stripe's owner word holds nonce << 44 | pid << 22 | tid of the thread
 * that claimed it, or 0 (Linux pids and tids stay below 2^22). Only the
 * owner ever writes the stripe's counters (a plain load and store), so two
 * live threads must never own one stripe. A thread claims a stripe with
 * one CAS on its owner word (0 -> itself), or takes over the stripe of a
 * thread that can no longer write it with one CAS from that owner; the
 * CAS makes the claim exclusive, and the counts a dead owner left are kept
 * and continued. Claims are never given back (a thread cannot know the
 * segment is still mapped when it exits); a thread that opens the same
 * circuit again finds its own claim first.
 *
 * Who is gone. A pid and tid mean something only in the pid namespace
 * they were read in: containers that share /dev/shm but not the pid
 * namespace see each other's live threads as gone (tgkill gives ESRCH) or
 * as some unrelated thread, and a takeover on that evidence puts two
 * writers on one stripe and loses counts. So liveness across processes
 * comes from the kernel instead: a process holds an OFD lock (fcntl
 * F_OFD_SETLK, write, non-blocking) on one byte per stripe of the
 * segment's file, at the stripe's offset, for every stripe it has claimed
 * in, through a description of its own that it keeps until it exits
 * (claim_locks.c). The kernel drops the locks when the process dies,
 * whatever namespace it lived in. The protocol, for stripe s:
 *
 *  - A process changes s's owner word only while it holds s's lock, and
 *    takes the lock before it looks at the word for a claim. Hence, once
 *    this process holds the lock, no other live process owns s or can
 *    change its word: a claim by another process is a dead one, and may
 *    be taken over. A lock that another process holds (F_OFD_SETLK fails)
 *    means that process lives, or is claiming s now: s is skipped.
 *  - Threads of one process share its lock, so between them the word
 *    decides: an owner with this process's nonce and pid is one of its own
 *    threads, gone when tgkill(getpid(), tid, 0) gives ESRCH (own process,
 *    own namespace: the check means what it says). The nonce is random per
 *    process; should another process ever match it, holding the lock
 *    proves that process dead, so a mistake can only keep s unclaimed.
 *  - A process without a lock of its own on the file (no descriptor to be
 *    had: thousands of circuits, a low RLIMIT_NOFILE, the circuit's name
 *    removed or replaced before its first claim, or a fork child that
 *    could not reopen /proc/self/fd/N) claims nothing and adds to the
 *    shared stripe 0 with atomic adds: slower, never unsafe.
 *  - A fork child gets descriptions of its own (claim_locks.c), holds no
 *    locks, and forgets its claim cache and nonce: its parent's stripes
 *    are another live process's, locked, and never written by the child.
 *  - A private segment (cb_open_private) is this process's alone: every
 *    claim in it not made by this process was made in a parent's copy,
 *    whose threads never write this one, and needs no lock.
 *  - cb_inspect claims nothing: its handle has no locks and only reads.
 *
 * A process keeps its locks, and so its stripes, until it exits, even
 * after closing every handle of the circuit: a thread's claim outlives the
 * handle it was made through, and its claim cache may hit again for a new
 * mapping at the same address. Nothing of this is on the hot path: the
 * locks are taken only when a thread claims. Rejected alternative:
 * recording the pid namespace next to the owner and taking over only
 * within one's own namespace would be safe, but stripes of processes that
 * died in another namespace (every container restart) would leak for good.
 *
 * Each thread caches its claims in thread-local storage, most recent in
 * front (one compare on the hot path), keyed by mapping address and the
 * segment's instance id, so a different circuit mapped at a reused address
 * misses. A fork() handler empties the cache in the child, which must not
 * write its parent's stripes.
 *
 * Each claim also raises the segment's stripes_used (1 + the highest
 * stripe ever claimed) by a CAS-max, so sums of the window read only the
 * stripes that can hold counts.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "claim_locks.h"
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

/* Whether this process holds stripe s's lock (taken now if need be);
 * locks: a reference to the process's lock file, or -1 for a private
 * segment. */
static int holds_lock(int locks, unsigned s)
{
    return locks < 0 || cb_claim_lock(locks, s);
}

/* For an owner of a stripe whose lock this process holds: whether it can
 * no longer write the stripe. Another process's claim is a dead one (it
 * would hold the lock); a thread of this process is asked directly. */
static int owner_is_gone(uint64_t owner, uint64_t me)
{
    if (owner >> (2 * ID_BITS) != me >> (2 * ID_BITS) || ((owner ^ me) >> ID_BITS & ID_MASK) != 0)
        return 1;
    pid_t tid = (pid_t)(owner & ID_MASK);
    return syscall(SYS_tgkill, (pid_t)getpid(), tid, 0) == -1 && errno == ESRCH;
}

static uint64_t owner_of(const struct cb_segment *seg, unsigned s)
{
    return atomic_load_explicit(&seg->stripes[s].owner, memory_order_relaxed);
}

static int take(struct cb_segment *seg, unsigned s, uint64_t from, uint64_t me)
{
    /* Exactly one thread moves the owner word away from `from`; with this
     * process holding s's lock, all contenders are threads of this process. */
    return atomic_compare_exchange_strong_explicit(&seg->stripes[s].owner, &from, me,
                                                   memory_order_acquire, memory_order_relaxed);
}

static unsigned claim_in_segment(const cb_breaker *b)
{
    struct cb_segment *seg = b->seg;
    uint64_t me = this_thread();
    unsigned first = 1u + (unsigned)(me % (CB_STRIPES - 1u)), s;
    int locks = -1;
    if (b->claim_file.kind == CB_CLAIMS_FILE)
        locks = cb_claim_locks_find(b->name, &b->claim_file);
    else if (b->claim_file.kind != CB_CLAIMS_PRIVATE)
        locks = 0;
    if (locks == 0)
        return CB_SHARED_STRIPE;
    /* Each test reads the word again after the lock is held: before, a
     * process that has since died may have changed it. */
    for (s = 1; s < CB_STRIPES; s++)
        if (owner_of(seg, s) == me && holds_lock(locks, s) && owner_of(seg, s) == me)
            return s;
    for (unsigned i = 0; i < CB_STRIPES - 1u; i++) {
        s = 1u + (first - 1u + i) % (CB_STRIPES - 1u);
        if (owner_of(seg, s) == 0 && holds_lock(locks, s) && take(seg, s, 0, me))
            return s;
    }
    for (s = 1; s < CB_STRIPES; s++) {
        if (owner_of(seg, s) == 0 || !holds_lock(locks, s))
            continue;
        uint64_t owner = owner_of(seg, s);
        if (owner != 0 && owner_is_gone(owner, me) && take(seg, s, owner, me))
            return s;
    }
    return CB_SHARED_STRIPE;
}

/* stripes_used = 1 + the highest stripe ever claimed, so window sums
 * (window.c) read only stripes that may hold counts. The CAS fails if
 * another claim raised it meanwhile; retry while ours is higher. */
static void note_used(struct cb_segment *seg, unsigned s)
{
    uint64_t used = atomic_load_explicit(&seg->stripes_used, memory_order_relaxed);
    while (used < s + 1u &&
           !atomic_compare_exchange_weak_explicit(&seg->stripes_used, &used, s + 1u, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
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
        /* Not cancellable (open, fcntl): a claim half made, a lock file
         * half published, would stay so. */
        int cancel_state;
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
        found.stripe = claim_in_segment(b);
        note_used(b->seg, found.stripe);
        pthread_setcancelstate(cancel_state, NULL);
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
