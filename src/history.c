/*
 * history.c - a lock-free ring of the last transitions.
 *
 * Slot = generation % CB_RING. Each generation is installed by exactly one
 * winning CAS, so each slot has at most one writer per generation, and the
 * only writers that can overlap are generations CB_RING apart (a writer
 * stalled or killed for CB_RING transitions). Each slot is a seqlock keyed
 * by the generation:
 *
 *   writer: seq = 2g+1 (relaxed); fields (release); seq = 2g+2 (release)
 *   reader: s1 = seq (acquire); fields (acquire); s2 = seq (relaxed);
 *           keep the entry iff s1 == s2 == 2g+2
 *
 * A reader that sees any new field (acquire) also sees the odd seq
 * stored before it (release), so s2 differs from s1. Ordering by the
 * accesses themselves rather than by fences keeps ThreadSanitizer, which
 * does not model fences, able to check it.
 *
 * A torn or overwritten entry fails the check and is skipped, never shown
 * half-written. A writer killed mid-entry leaves seq odd: the slot reads as
 * absent until generation g+CB_RING writes it. Generations that are not
 * transitions (a probe released) leave their slot unwritten, so the ring
 * may show fewer than CB_RING entries.
 */
#include "history.h"
#include "state_word.h"

void cb_history_record(struct cb_segment *seg, uint64_t gen, const cb_transition *t)
{
    struct cb_ring_entry *e = &seg->ring[gen % CB_RING];
    atomic_store_explicit(&e->seq, 2 * gen + 1, memory_order_relaxed);
    uint64_t what = (uint64_t)t->from | (uint64_t)t->to << 8 | (uint64_t)t->reason << 16 |
                    (uint64_t)t->failures << 32;
    atomic_store_explicit(&e->what, what, memory_order_release);
    atomic_store_explicit(&e->pid, (uint64_t)(uint32_t)t->pid, memory_order_release);
    atomic_store_explicit(&e->wall_ms, t->wall_ms, memory_order_release);
    atomic_store_explicit(&e->seq, 2 * gen + 2, memory_order_release);
}

static int read_entry(const struct cb_segment *seg, uint64_t gen, cb_transition *out)
{
    const struct cb_ring_entry *e = &seg->ring[gen % CB_RING];
    uint64_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
    uint64_t what = atomic_load_explicit(&e->what, memory_order_acquire);
    uint64_t pid = atomic_load_explicit(&e->pid, memory_order_acquire);
    uint64_t wall = atomic_load_explicit(&e->wall_ms, memory_order_acquire);
    uint64_t s2 = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if (s1 != s2 || s1 != 2 * gen + 2)
        return 0;
    out->from = (cb_state)(what & 0xff);
    out->to = (cb_state)((what >> 8) & 0xff);
    out->reason = (cb_reason)((what >> 16) & 0xff);
    out->failures = (uint32_t)(what >> 32);
    out->pid = (int32_t)(uint32_t)pid;
    out->wall_ms = wall;
    out->generation = (uint32_t)gen;
    return 1;
}

unsigned cb_history_read(const struct cb_segment *seg, uint64_t newest_gen, cb_transition *out)
{
    unsigned n = 0;
    for (unsigned back = 0; back < CB_RING; back++)
        n += (unsigned)read_entry(seg, (newest_gen - back) & CB_GEN_MASK, &out[n]);
    return n;
}
