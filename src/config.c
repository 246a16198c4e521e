/*
 * config.c - the stored config: resolving a caller's cb_config, and
 * reading, comparing and replacing the threshold and timeouts a segment
 * holds (cb_open with a config, cb_set_config).
 *
 * Three 32-bit values do not fit one 64-bit CAS, and storing them one by
 * one lets two updates leave a mix. So the segment keeps CB_CONFIG_SLOTS
 * slots of them and one word, config_current, that puts one slot in force:
 * it holds the ticket of the update that wrote that slot, and the slot is
 * ticket % CB_CONFIG_SLOTS. Every slot word is ticket << 32 | value, the
 * ticket of the update that wrote it. Tickets come from config_tickets
 * (fetch_add), so each update's is unique, and config_current only ever
 * grows (each CAS on it installs a ticket taken after the value it
 * replaces). Tickets compare wrap-aware on 32 bits.
 *
 * An update, from a config `given`:
 *   1. Read the config in force: load config_current (v, acquire), then
 *      slot v's words. It is consistent when every word carries ticket v.
 *   2. Compute the new config from it (cb_set_config keeps the fields it
 *      was not given; cb_open takes given whole). Equal: done, 0.
 *   3. Take a ticket t. Write slot t's words, each with a CAS that
 *      replaces only a word of a ticket older than v: such an update can
 *      never be published any more (config_current is past it). A word of
 *      ticket v is the slot in force; a newer one belongs to an update
 *      that may still publish. Either way the slot is not ours to take:
 *      leave it (with what we wrote, which no-one can publish) and go to 1
 *      with a new ticket.
 *   4. Publish: CAS config_current v -> t (release). It fails if another
 *      update was published since 1; then go to 1, and compute again from
 *      the config now in force.
 *
 * Hence:
 *  - No mix, no lost field. A slot in force is never written: its words
 *    carry config_current, which is never older than the v of any writer.
 *    A slot is published only by the update that wrote all of it: someone
 *    who overwrote one of its words had read a config_current past its
 *    ticket, so its publication CAS fails. Two updates racing with A and
 *    B leave the one published last, whole; a partial update is computed
 *    from the config in force when it is published, so it keeps whatever
 *    an update published before it set.
 *  - No wedge, no waiting. Readers read once. A writer killed before its
 *    CAS leaves a slot nobody publishes, which is free again after the
 *    next publication; killed after it, it had finished. A publication
 *    CAS fails only because another one succeeded, so updates are
 *    lock-free.
 *  - The one way to see a damaged slot: updates whose tickets are newer
 *    than the config in force (updates in flight, or killed since the last
 *    publication) can occupy every slot but the one in force. After a full
 *    round of slots found occupied, a writer takes its slot anyway (never
 *    the one in force as it read it), so neither a storm of dead writers
 *    nor a segment full of garbage tickets can wedge updates; only if
 *    CB_CONFIG_SLOTS - 1 updates are really in flight at once can a slot
 *    in force then be overwritten. Readers see that (cb_config_read says
 *    0); cb_open then counts the config as different and rewrites it,
 *    which heals it.
 *
 * The hot path (cb_config_value) reads config_current and one word of its
 * slot. A reader preempted between the two loads while an update is
 * published and a later one reuses the slot reads that later update's
 * value: one the circuit is about to take, or would have.
 *
 * The state-word protocol (tests/model/breaker.pml) reads these values but
 * never decides on them together, so none of these CAS steps is in the
 * model; tests/test-config.c races them.
 */
#include <errno.h>

#include "config.h"
#include "handle.h"

#define CB_OPEN_KNOWN_FLAGS (CB_OPEN_TRUST_GROUP | CB_OPEN_KEEP_CONFIG)

int cb_resolve_config(const cb_config *in, cb_config *out)
{
    static const cb_config none;
    if (!in)
        in = &none;
    if ((in->mode & ~0777u) || (in->flags & ~CB_OPEN_KNOWN_FLAGS))
        return -EINVAL;
    out->failure_threshold = in->failure_threshold ? in->failure_threshold : CB_DEFAULT_FAILURE_THRESHOLD;
    out->reset_timeout_ms = in->reset_timeout_ms ? in->reset_timeout_ms : CB_DEFAULT_RESET_TIMEOUT_MS;
    out->probe_timeout_ms = in->probe_timeout_ms ? in->probe_timeout_ms : out->reset_timeout_ms;
    out->mode = in->mode ? in->mode : CB_DEFAULT_MODE;
    out->flags = in->flags;
    return 0;
}

static uint32_t ticket_of(uint64_t word) { return (uint32_t)(word >> 32); }

/* a was handed out before b (32-bit tickets, wrap-aware). */
static int older(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

static void values_of(const cb_config *cfg, uint32_t v[CB_CF_COUNT])
{
    v[CB_CF_THRESHOLD] = cfg->failure_threshold;
    v[CB_CF_RESET_TIMEOUT] = cfg->reset_timeout_ms;
    v[CB_CF_PROBE_TIMEOUT] = cfg->probe_timeout_ms;
}

static int same_config(const cb_config *a, const cb_config *b)
{
    return a->failure_threshold == b->failure_threshold && a->reset_timeout_ms == b->reset_timeout_ms &&
           a->probe_timeout_ms == b->probe_timeout_ms;
}

void cb_config_init(struct cb_segment *seg, const cb_config *cfg)
{
    /* Ticket 1, so that the zeroed slots (ticket 0) count as older. */
    uint32_t v[CB_CF_COUNT];
    values_of(cfg, v);
    for (unsigned f = 0; f < CB_CF_COUNT; f++)
        atomic_store_explicit(&seg->config[1].word[f], UINT64_C(1) << 32 | v[f], memory_order_relaxed);
    atomic_store_explicit(&seg->config_tickets, 1, memory_order_relaxed);
    atomic_store_explicit(&seg->config_current, 1, memory_order_relaxed);
}

/* Step 1: the config in force, and the ticket that put it there. */
static int read_current(const struct cb_segment *seg, cb_config *out, uint64_t *current)
{
    uint64_t v = atomic_load_explicit(&seg->config_current, memory_order_acquire);
    const struct cb_config_slot *slot = &seg->config[v % CB_CONFIG_SLOTS];
    uint64_t w[CB_CF_COUNT];
    int consistent = 1;
    for (unsigned f = 0; f < CB_CF_COUNT; f++) {
        w[f] = atomic_load_explicit(&slot->word[f], memory_order_relaxed);
        consistent &= ticket_of(w[f]) == (uint32_t)v;
    }
    out->failure_threshold = (uint32_t)w[CB_CF_THRESHOLD];
    out->reset_timeout_ms = (uint32_t)w[CB_CF_RESET_TIMEOUT];
    out->probe_timeout_ms = (uint32_t)w[CB_CF_PROBE_TIMEOUT];
    out->mode = out->flags = 0;
    *current = v;
    return consistent;
}

int cb_config_read(const struct cb_segment *seg, cb_config *out)
{
    /* A slow reader can find its slot reused after a newer publication:
     * then config_current has moved on, and reading again finds the new
     * one. Retrying only when it moved never waits for a writer. */
    uint64_t v, again;
    for (unsigned tries = 0; tries < CB_CONFIG_SLOTS; tries++) {
        if (read_current(seg, out, &v))
            return 1;
        again = atomic_load_explicit(&seg->config_current, memory_order_relaxed);
        if (again == v)
            break;
    }
    return 0;
}

/* Step 3: write cfg into ticket t's slot. 0 if the slot was not ours. */
static int fill_slot(struct cb_segment *seg, uint64_t t, uint64_t v, const cb_config *cfg, int anyway)
{
    if (t % CB_CONFIG_SLOTS == v % CB_CONFIG_SLOTS)
        return 0; /* the slot in force */
    struct cb_config_slot *slot = &seg->config[t % CB_CONFIG_SLOTS];
    uint32_t values[CB_CF_COUNT];
    values_of(cfg, values);
    for (unsigned f = 0; f < CB_CF_COUNT; f++) {
        uint64_t seen = atomic_load_explicit(&slot->word[f], memory_order_relaxed);
        uint64_t mine = (uint64_t)(uint32_t)t << 32 | values[f];
        do {
            uint32_t owner = ticket_of(seen);
            if (!older(owner, (uint32_t)v) && !anyway)
                return 0;
            /* Safe: a word older than the config in force belongs to an
             * update that can no longer publish; relaxed, as the
             * publication CAS orders these writes for readers. */
        } while (!atomic_compare_exchange_weak_explicit(&slot->word[f], &seen, mine, memory_order_relaxed,
                                                        memory_order_relaxed));
    }
    return 1;
}

typedef void (*compute_fn)(const cb_config *now, const cb_config *given, cb_config *next);

/* Steps 1 to 4; 1 if a new config was published, 0 if it was in force. */
static int update(struct cb_segment *seg, const cb_config *given, compute_fn compute)
{
    unsigned occupied = 0;
    for (;;) {
        cb_config now, next;
        uint64_t v;
        int consistent = read_current(seg, &now, &v);
        compute(&now, given, &next);
        if (consistent && same_config(&now, &next))
            return 0;
        uint64_t t = atomic_fetch_add_explicit(&seg->config_tickets, 1, memory_order_relaxed) + 1;
        if (!fill_slot(seg, t, v, &next, occupied >= CB_CONFIG_SLOTS)) {
            occupied++;
            continue;
        }
        /* Safe: succeeds only if nothing was published since step 1, so
         * next was computed from the config this replaces. Release: whoever
         * reads t here (acquire) sees the slot words written above. */
        if (atomic_compare_exchange_strong_explicit(&seg->config_current, &v, t, memory_order_release,
                                                    memory_order_relaxed))
            return 1;
    }
}

static void take_whole(const cb_config *now, const cb_config *given, cb_config *next)
{
    (void)now;
    *next = *given;
}

int cb_store_config(struct cb_segment *seg, const cb_config *cfg)
{
    return update(seg, cfg, take_whole);
}

/* Non-zero fields of given; a probe timeout that followed the reset
 * timeout goes on following it. */
static void take_given(const cb_config *now, const cb_config *given, cb_config *next)
{
    next->failure_threshold = given->failure_threshold ? given->failure_threshold : now->failure_threshold;
    next->reset_timeout_ms = given->reset_timeout_ms ? given->reset_timeout_ms : now->reset_timeout_ms;
    if (given->probe_timeout_ms)
        next->probe_timeout_ms = given->probe_timeout_ms;
    else if (given->reset_timeout_ms && now->probe_timeout_ms == now->reset_timeout_ms)
        next->probe_timeout_ms = given->reset_timeout_ms;
    else
        next->probe_timeout_ms = now->probe_timeout_ms;
}

int cb_set_config(cb_breaker *b, const cb_config *cfg)
{
    cb_config checked;
    if (!b || !cfg || cb_resolve_config(cfg, &checked) != 0)
        return -EINVAL;
    return update(b->seg, cfg, take_given);
}
