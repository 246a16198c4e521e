/*
 * history.c - a lock-free ring of the last transitions.
 *
 * Slot = generation % CB_RING. Each generation is installed by exactly one
 * winning CAS, so each generation has exactly one writer; writers of
 * generations CB_RING (or a multiple) apart share a slot and may overlap
 * (a writer stalled or killed for CB_RING transitions). A per-slot
 * sequence word cannot cope with that: a stalled writer's late field
 * stores land in an entry a newer writer already completed, under the
 * newer writer's sequence, and a reader sees a mix.
 *
 * So every word of an entry carries the generation it belongs to (top
 * CB_RING_TAG_BITS bits, the generation's full width) beside its field:
 *
 *   writer of g: for each word, CAS it from its current value to
 *                (g, field) while the current value belongs to an older
 *                generation; leave it once it holds g's or a newer one's
 *   reader of g: load the four words; keep the entry iff every one holds
 *                generation g (and the what word its written mark)
 *
 * Only g's writer ever stores a word tagged g, so four words tagged g are
 * all g's writer's fields: an entry is shown whole or not at all, with no
 * ordering between the words needed (relaxed throughout; each word is one
 * atomic value). A writer never replaces a newer generation's word, so a
 * stalled writer cannot clobber a newer entry; its stores into a slot
 * that moved on are dropped. "Older" is taken modulo 2^22 over half the
 * range, as permits take generations (state_word.h): a writer stalled for
 * 2^21 transitions or more may overwrite a newer entry's words, which
 * then read as absent, never mixed.
 *
 * A writer killed mid-entry leaves words of two generations: the slot
 * reads as absent until generation g+CB_RING writes it. Generations that
 * are not transitions (a probe released) leave their slot unwritten, so
 * the ring may show fewer than CB_RING entries. A word tagged ahead of
 * every writer (only a scribbled segment has one) keeps its slot's
 * entries out of view for up to 2^21 generations: display only.
 *
 * This also holds for a copy of the segment taken without any atomicity
 * between words (cb_inspect's pread, which copies each aligned word
 * whole): each word is tagged on its own, so a copy that caught a slot
 * mid-write holds words of two generations and the entry is skipped.
 */
#include "history.h"
#include "state_word.h"

_Static_assert(CB_RING_TAG_BITS == CB_GEN_BITS, "a ring word holds a whole generation");

static uint64_t tag_of(uint64_t word) { return word >> CB_RING_VALUE_BITS; }

static uint64_t tagged(uint64_t gen, uint64_t value)
{
    return (gen & CB_GEN_MASK) << CB_RING_VALUE_BITS | (value & CB_RING_VALUE_MASK);
}

/* tag belongs to a generation before gen (modulo 2^22, half the range). */
static int is_older(uint64_t tag, uint64_t gen)
{
    uint64_t behind = (gen - tag) & CB_GEN_MASK;
    return behind != 0 && behind < (CB_GEN_MASK + 1u) / 2u;
}

void cb_history_words(uint64_t gen, const cb_transition *t, uint64_t words[CB_RW_COUNT])
{
    uint64_t what = CB_RW_WRITTEN | (uint64_t)(t->from & 0xff) | (uint64_t)(t->to & 0xff) << 8 |
                    (uint64_t)(t->reason & 0xff) << 16 | (uint64_t)(t->mode & 3) << CB_RW_MODE_SHIFT;
    words[CB_RW_WHAT] = tagged(gen, what);
    words[CB_RW_FAILURES] = tagged(gen, t->failures);
    words[CB_RW_PID] = tagged(gen, (uint32_t)t->pid);
    words[CB_RW_WALL_MS] = tagged(gen, t->wall_ms);
}

void cb_history_store(struct cb_segment *seg, enum cb_ring_word which, uint64_t word)
{
    uint64_t gen = tag_of(word);
    _Atomic uint64_t *slot = &seg->ring[gen % CB_RING].word[which];
    uint64_t seen = atomic_load_explicit(slot, memory_order_relaxed);
    /* Not in the spin model (display only, no decision reads it). Safe
     * because the CAS replaces only the exact older word it saw: a newer
     * generation's word stored meanwhile fails it, and the retry sees the
     * newer tag and leaves the word alone. */
    while (is_older(tag_of(seen), gen) &&
           !atomic_compare_exchange_weak_explicit(slot, &seen, word, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void cb_history_record(struct cb_segment *seg, uint64_t gen, const cb_transition *t)
{
    uint64_t words[CB_RW_COUNT];
    cb_history_words(gen, t, words);
    for (unsigned w = 0; w < CB_RW_COUNT; w++)
        cb_history_store(seg, (enum cb_ring_word)w, words[w]);
}

static int read_entry(const struct cb_segment *seg, uint64_t gen, cb_transition *out)
{
    const struct cb_ring_entry *e = &seg->ring[gen % CB_RING];
    uint64_t v[CB_RW_COUNT];
    for (unsigned w = 0; w < CB_RW_COUNT; w++) {
        uint64_t word = atomic_load_explicit(&e->word[w], memory_order_relaxed);
        if (tag_of(word) != gen)
            return 0; /* absent, or caught between two writers */
        v[w] = word & CB_RING_VALUE_MASK;
    }
    if (!(v[CB_RW_WHAT] & CB_RW_WRITTEN))
        return 0;
    out->from = (cb_state)(v[CB_RW_WHAT] & 0xff);
    out->to = (cb_state)((v[CB_RW_WHAT] >> 8) & 0xff);
    out->reason = (cb_reason)((v[CB_RW_WHAT] >> 16) & 0xff);
    out->mode = (cb_mode)((v[CB_RW_WHAT] >> CB_RW_MODE_SHIFT) & 3);
    out->would_open = 0; /* never recorded */
    out->failures = (uint32_t)v[CB_RW_FAILURES];
    out->pid = (int32_t)(uint32_t)v[CB_RW_PID];
    out->wall_ms = v[CB_RW_WALL_MS];
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
