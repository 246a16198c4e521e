/*
 * probe-observer.h - an independent observer of "one probe at a time" for
 * stress tests on a real clock with a finite probe lease (test-chaos.c,
 * test-threads.c). Header only: static functions, no library internals.
 *
 * The library may hand out a second probe while the first holder is still
 * working, but only once the first holder's lease has expired (or after an
 * operator reset/trip, which disowns it). So "never two probes in flight"
 * is checked as "never two holders whose leases were both live", with
 * bounds that need no margin at all:
 *
 *  - Each holder owns one slot (per worker process or per thread) and
 *    records, around its cb_acquire() that returned CB_PROBE:
 *      before  CLOCK_MONOTONIC_COARSE ms read before the call; the lease
 *              stamp L the library took inside the call is >= before
 *              (the library reads the coarse clock, or a test clock that
 *              returns it, after we did);
 *      after   CLOCK_MONOTONIC ms read after the call returned; the
 *              library's "now" at the grant is <= after (coarse <= fine);
 *      ops     the operator-done counter read before the call.
 *    The slot says HOLDING from then until just before the holder reports
 *    (it clears the slot first, then a seq_cst fence, then reports). A
 *    holder killed while HOLDING stays HOLDING: its lease is still in the
 *    state word until it expires, so it still counts.
 *  - If holders X and Y were HOLDING at one common moment (each granted
 *    before the other reported) and no operator action began in between,
 *    then the later grant, say Y's, was legitimate only by lease expiry:
 *    now_Y >= L_X + probe_timeout, hence after_Y >= before_X + probe_timeout.
 *    We do not know which came first, so the pair is a violation iff
 *        after_Y < before_X + probe_timeout  and  after_X < before_Y + probe_timeout
 *    (po_pair_violates). The library adds its clock tick on top; we do not,
 *    so the check is conservative: it can miss a violation by a tick, it
 *    can never report one that did not happen.
 *  - "Common moment" evidence: (a) a new holder scans every other slot
 *    right after publishing its own (po_granted): a slot still HOLDING
 *    then had not reported before our grant (seq_cst fences pair the
 *    clear-then-report of the other holder with our grant-then-scan);
 *    (b) a third party reads slot X, then slot Y, then X again
 *    (po_scan_all): X HOLDING with the same record both times brackets Y.
 *  - Operator actions: the operator bumps ops_begun before cb_reset /
 *    cb_trip and ops_done after. A pair is only judged if ops_begun, read
 *    at the check, equals the ops_done both holders read before their
 *    acquire: then no operator action can lie between the two grants.
 *
 * Slots are read with a per-slot sequence number (odd while the owner
 * rewrites the record), so a reader never mixes two records.
 */
#ifndef CB_PROBE_OBSERVER_H
#define CB_PROBE_OBSERVER_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { PO_FREE = 0, PO_HOLDING = 1 };

struct po_slot {
    _Atomic uint64_t seq;    /* even: stable; odd: the owner is rewriting */
    _Atomic uint64_t state;  /* PO_FREE or PO_HOLDING */
    _Atomic uint64_t before; /* coarse ms before the acquire */
    _Atomic uint64_t after;  /* fine ms after CB_PROBE returned */
    _Atomic uint64_t ops;    /* ops_done read before the acquire */
    _Atomic uint64_t who;    /* pid << 32 | thread index, for messages */
    uint8_t pad[16];
};

struct po {
    _Atomic uint64_t ops_begun, ops_done; /* operator actions */
    _Atomic uint64_t grants;              /* CB_PROBE verdicts seen */
    _Atomic uint64_t pairs_checked;       /* pairs both HOLDING, judged */
    _Atomic uint64_t pairs_skipped_ops;   /* ... not judged: operator between */
    _Atomic uint64_t violations;
    _Atomic int msg_taken;
    char msg[512]; /* the first violation, written once (msg_taken) */
    uint64_t probe_timeout_ms;
    unsigned nslots;
    int quiet; /* the observer's self-test: violations on purpose, no stderr */
    struct po_slot slot[];
};

/* What a caller notes before cb_acquire(). */
struct po_ticket {
    uint64_t before;
    uint64_t ops;
};

static inline uint64_t po_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
static inline uint64_t po_coarse_ms(void) { return po_ms(CLOCK_MONOTONIC_COARSE); }
static inline uint64_t po_fine_ms(void) { return po_ms(CLOCK_MONOTONIC); }

static inline size_t po_size(unsigned nslots)
{
    return sizeof(struct po) + (size_t)nslots * sizeof(struct po_slot);
}

/* p points to zeroed shared memory of po_size(nslots) bytes. */
static inline void po_init(struct po *p, unsigned nslots, uint64_t probe_timeout_ms)
{
    p->nslots = nslots;
    p->probe_timeout_ms = probe_timeout_ms;
}

/* The pure rule: records X and Y, both HOLDING at a common moment and no
 * operator action in between, are two live leases at once. */
static inline int po_pair_violates(uint64_t before_x, uint64_t after_x, uint64_t before_y, uint64_t after_y,
                                   uint64_t probe_timeout_ms)
{
    return after_y < before_x + probe_timeout_ms && after_x < before_y + probe_timeout_ms;
}

static inline void po_fail(struct po *p, const char *fmt, unsigned long long a, unsigned long long b,
                           unsigned long long c, unsigned long long d, unsigned long long e,
                           unsigned long long f)
{
    atomic_fetch_add(&p->violations, 1);
    char buf[sizeof p->msg];
    snprintf(buf, sizeof buf, fmt, a, b, c, d, e, f);
    if (!p->quiet)
        fprintf(stderr, "probe observer: %s\n", buf);
    int none = 0;
    if (atomic_compare_exchange_strong(&p->msg_taken, &none, 1)) {
        for (size_t i = 0; i < sizeof buf; i++) /* byte by byte: no torn memcpy */
            ((volatile char *)p->msg)[i] = buf[i];
    }
}

/* A consistent copy of slot i; returns 1 if it was HOLDING. */
struct po_rec {
    uint64_t seq, before, after, ops, who;
};
static inline int po_read(struct po *p, unsigned i, struct po_rec *r)
{
    struct po_slot *s = &p->slot[i];
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t s1 = atomic_load(&s->seq);
        if (s1 & 1u)
            continue;
        uint64_t st = atomic_load(&s->state);
        r->before = atomic_load(&s->before);
        r->after = atomic_load(&s->after);
        r->ops = atomic_load(&s->ops);
        r->who = atomic_load(&s->who);
        if (atomic_load(&s->seq) != s1)
            continue;
        r->seq = s1;
        return st == PO_HOLDING;
    }
    return 0; /* the owner keeps rewriting: it is busy, not holding a stale probe */
}

/* Judge a pair seen HOLDING at a common moment; ops_begun read after. */
static inline void po_judge(struct po *p, const struct po_rec *x, const struct po_rec *y, uint64_t ops_begun,
                            const char *where)
{
    if (x->ops != ops_begun || y->ops != ops_begun) {
        atomic_fetch_add(&p->pairs_skipped_ops, 1);
        return;
    }
    atomic_fetch_add(&p->pairs_checked, 1);
    if (po_pair_violates(x->before, x->after, y->before, y->after, p->probe_timeout_ms)) {
        char fmt[160];
        snprintf(fmt, sizeof fmt,
                 "TWO LIVE PROBES (%s): holder %%llx [before %%llu, after %%llu] and holder %%llx "
                 "[before %%llu, after %%llu] ms, probe timeout %llu ms",
                 where, (unsigned long long)p->probe_timeout_ms);
        po_fail(p, fmt, (unsigned long long)x->who, (unsigned long long)x->before,
                (unsigned long long)x->after, (unsigned long long)y->who, (unsigned long long)y->before,
                (unsigned long long)y->after);
    }
}

/* Before cb_acquire(). */
static inline void po_ticket_take(struct po *p, struct po_ticket *t)
{
    t->ops = atomic_load(&p->ops_done);
    t->before = po_coarse_ms();
    atomic_thread_fence(memory_order_seq_cst);
}

/* After cb_acquire() returned CB_PROBE: publish slot i, then look at every
 * other slot. Returns the number of violations this grant revealed. */
static inline unsigned po_granted(struct po *p, unsigned i, const struct po_ticket *t, uint64_t who)
{
    /* Pairs the library's (relaxed) grant CAS with other holders' fences. */
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t after = po_fine_ms();
    struct po_slot *s = &p->slot[i];
    uint64_t seq = atomic_load(&s->seq);
    atomic_store(&s->seq, seq + 1);
    atomic_store(&s->before, t->before);
    atomic_store(&s->after, after);
    atomic_store(&s->ops, t->ops);
    atomic_store(&s->who, who);
    atomic_store(&s->state, PO_HOLDING);
    atomic_store(&s->seq, seq + 2);
    atomic_fetch_add(&p->grants, 1);
    atomic_thread_fence(memory_order_seq_cst);
    struct po_rec me = {seq + 2, t->before, after, t->ops, who}, other;
    uint64_t v0 = atomic_load(&p->violations);
    for (unsigned j = 0; j < p->nslots; j++) {
        if (j == i || !po_read(p, j, &other))
            continue;
        po_judge(p, &other, &me, atomic_load(&p->ops_begun), "seen by the new holder");
    }
    return (unsigned)(atomic_load(&p->violations) - v0);
}

/* Before reporting a probe (success, failure or release). */
static inline void po_reporting(struct po *p, unsigned i)
{
    atomic_store(&p->slot[i].state, PO_FREE);
    atomic_thread_fence(memory_order_seq_cst);
}

/* A third party's sweep over all pairs (X, Y, X again). */
static inline void po_scan_all(struct po *p)
{
    for (unsigned i = 0; i < p->nslots; i++) {
        struct po_rec x, y, x2;
        if (!po_read(p, i, &x))
            continue;
        for (unsigned j = i + 1; j < p->nslots; j++) {
            if (!po_read(p, j, &y))
                continue;
            if (!po_read(p, i, &x2) || x2.seq != x.seq)
                break; /* X reported meanwhile: no common moment proven */
            po_judge(p, &x, &y, atomic_load(&p->ops_begun), "seen by a third party");
        }
    }
}

/* Operator actions (cb_reset / cb_trip) go between these. */
static inline void po_op_begin(struct po *p)
{
    atomic_fetch_add(&p->ops_begun, 1);
    atomic_thread_fence(memory_order_seq_cst);
}
static inline void po_op_end(struct po *p)
{
    atomic_thread_fence(memory_order_seq_cst);
    atomic_fetch_add(&p->ops_done, 1);
}

/* Slot i of a holder that died: free it once its lease has certainly
 * expired (lease start <= after, library timeout <= probe_timeout + tick).
 * Returns 1 when the slot is free (or was not holding). */
static inline int po_release_dead(struct po *p, unsigned i, uint64_t tick_ms)
{
    struct po_rec r;
    if (!po_read(p, i, &r))
        return 1;
    if (po_fine_ms() <= r.after + p->probe_timeout_ms + tick_ms + 50u)
        return 0;
    atomic_store(&p->slot[i].state, PO_FREE);
    return 1;
}

#endif
