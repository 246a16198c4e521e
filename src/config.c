/*
 * config.c - the stored config: resolving and checking a caller's
 * cb_config, and reading, comparing and replacing the threshold, timeouts
 * and policies a segment holds (cb_open with a config, cb_set_config).
 *
 * A slot holds CB_CF_COUNT words: the cb_config fields, resolved (zero
 * fields already replaced by their defaults; a policy that is off stays
 * 0), and CB_CF_POLICY, derived from them when the slot is written, so
 * the hot path learns from one word whether any policy is on.
 *
 * Several 32-bit values do not fit one 64-bit CAS, and storing them one by
 * one lets two updates leave a mix. So the segment keeps CB_CONFIG_SLOTS
 * slots of them and one word, config_current, that puts one slot in force:
 * the ticket of the update that wrote it; the slot is ticket %
 * CB_CONFIG_SLOTS. Tickets come from config_tickets (fetch_add), so each
 * update's is unique, and config_current only ever changes to a ticket
 * taken after the value it replaces, so it never takes a value twice. A
 * slot's claim word is ticket << 32 | base (the update writing it, and the
 * config_current it read); each of its value words is ticket << 32 |
 * value. Tickets and bases compare for equality on their low 32 bits.
 *
 * An update, from a config `given`:
 *   1. Read the config in force: load config_current (v, acquire), then
 *      slot v's words. It is consistent when every word carries ticket v.
 *   2. Compute the new config from it (cb_set_config keeps the fields it
 *      was not given; cb_open takes given whole). Equal: done, 0.
 *   3. Take a ticket t and claim slot t: CAS its claim to t << 32 | v,
 *      unless it is the slot in force or its update can still publish
 *      (its base is config_current). Otherwise try the next ticket (the
 *      next slot).
 *   4. Write the slot's value words, each by a CAS after checking that the
 *      claim is still ours (if it is not, our update can no longer
 *      publish: go to 1).
 *   5. Publish: CAS config_current v -> t (release). It fails if another
 *      update was published since 1; then go to 1, and compute again from
 *      the config now in force.
 *
 * Hence:
 *  - No mix, no lost field. The slot in force is never claimed, so never
 *    written. A claim is taken from an update only when that update can no
 *    longer publish (config_current moved past its base, and never comes
 *    back), and an update that lost its claim stops writing, or fails the
 *    CAS of the word it loaded before the new owner wrote it; the new
 *    owner's CAS loop writes last. So a slot is published only by the
 *    update that wrote all of it. Two updates racing with A and B leave
 *    the one published last, whole; a partial update is computed from the
 *    config in force when it is published, so it keeps whatever an update
 *    published before it set.
 *  - No wedge, no waiting. Readers read once. A writer killed before its
 *    CAS leaves a claim that is free again after the next publication;
 *    killed after it, it had finished. A publication CAS fails only
 *    because another one succeeded, so updates are lock-free.
 *  - The one way to see a damaged slot: updates of one round (read the
 *    same config_current, not published yet, whether in flight or killed)
 *    can hold every slot but the one in force. After a full round of slots
 *    found held, a writer takes its slot anyway (never the one in force),
 *    so neither a storm of killed writers nor a segment full of garbage
 *    can wedge updates; only if CB_CONFIG_SLOTS - 1 updates of one round
 *    are held and one of them is alive and publishes the slot taken from
 *    it can a damaged slot come into force. Readers see that
 *    (cb_config_read says 0); cb_open then counts the config as different
 *    and rewrites it, which heals it.
 *
 * The hot path (cb_config_value) reads config_current and one word of its
 * slot. A reader preempted between the two loads while an update is
 * published and a later one reuses the slot reads that later update's
 * value: one the circuit is about to take, or would have.
 *
 * tests/model/config.pml models these steps ("Model step" comments) and
 * spin checks that the slot in force is always whole and that updates are
 * linearizable; tests/test-config.c races them in real processes.
 */
#include <errno.h>

#include "config.h"
#include "handle.h"

#define CB_OPEN_KNOWN_FLAGS (CB_OPEN_TRUST_GROUP | CB_OPEN_KEEP_CONFIG)

/* Whether a policy field set by the caller is within its range. */
static int policy_valid(const cb_config *in)
{
    return in->failure_rate <= 100u && in->slow_call_rate <= 100u &&
           (in->window_ms == 0 || (in->window_ms >= CB_WINDOW_MS_MIN && in->window_ms <= CB_WINDOW_MS_MAX)) &&
           in->slow_call_ms <= CB_SLOW_CALL_MS_MAX &&
           (in->backoff_multiplier_pct == 0 ||
            (in->backoff_multiplier_pct >= 100u && in->backoff_multiplier_pct <= CB_BACKOFF_MULTIPLIER_MAX));
}

static uint32_t or_default(uint32_t v, uint32_t def) { return v ? v : def; }

int cb_resolve_config(const cb_config *in, cb_config *out)
{
    static const cb_config none;
    if (!in)
        in = &none;
    /* A segment others may write would be refused by every opener but its
     * creator (CB_EOWNER) and trusted by none: refuse to make one. */
    if ((in->mode & ~0777u) || (in->mode & 0002u) || (in->flags & ~CB_OPEN_KNOWN_FLAGS) || !policy_valid(in))
        return -EINVAL;
    out->failure_threshold = or_default(in->failure_threshold, CB_DEFAULT_FAILURE_THRESHOLD);
    out->reset_timeout_ms = or_default(in->reset_timeout_ms, CB_DEFAULT_RESET_TIMEOUT_MS);
    out->probe_timeout_ms = or_default(in->probe_timeout_ms, out->reset_timeout_ms);
    out->mode = or_default(in->mode, CB_DEFAULT_MODE);
    out->failure_rate = in->failure_rate; /* 0: off */
    out->minimum_calls = or_default(in->minimum_calls, CB_DEFAULT_MINIMUM_CALLS);
    out->window_ms = or_default(in->window_ms, CB_DEFAULT_WINDOW_MS);
    out->slow_call_ms = in->slow_call_ms; /* 0: off */
    out->slow_call_rate = or_default(in->slow_call_rate, CB_DEFAULT_SLOW_CALL_RATE);
    /* 100 multiplies by one: stored as off, so equal configs compare equal. */
    out->backoff_multiplier_pct = in->backoff_multiplier_pct == 100u ? 0 : in->backoff_multiplier_pct;
    out->max_reset_timeout_ms = or_default(in->max_reset_timeout_ms, CB_DEFAULT_MAX_RESET_TIMEOUT_MS);
    out->flags = in->flags;
    return 0;
}

static uint32_t ticket_of(uint64_t word) { return (uint32_t)(word >> 32); }

static uint64_t tagged(uint64_t ticket, uint32_t value) { return (uint64_t)(uint32_t)ticket << 32 | value; }

static void values_of(const cb_config *cfg, uint32_t v[CB_CF_COUNT])
{
    v[CB_CF_THRESHOLD] = cfg->failure_threshold;
    v[CB_CF_RESET_TIMEOUT] = cfg->reset_timeout_ms;
    v[CB_CF_PROBE_TIMEOUT] = cfg->probe_timeout_ms;
    v[CB_CF_FAILURE_RATE] = cfg->failure_rate;
    v[CB_CF_MINIMUM_CALLS] = cfg->minimum_calls;
    v[CB_CF_WINDOW] = cfg->window_ms;
    v[CB_CF_SLOW_CALL_MS] = cfg->slow_call_ms;
    v[CB_CF_SLOW_CALL_RATE] = cfg->slow_call_rate;
    v[CB_CF_BACKOFF] = cfg->backoff_multiplier_pct;
    v[CB_CF_MAX_RESET_TIMEOUT] = cfg->max_reset_timeout_ms;
    /* Derived, so the hot path tests one word for "any policy". */
    v[CB_CF_POLICY] = (cfg->failure_rate || cfg->slow_call_ms ? CB_POLICY_WINDOW : 0u) |
                      (cfg->slow_call_ms ? CB_POLICY_SLOW : 0u);
}

static void config_of(const uint64_t w[CB_CF_COUNT], cb_config *out)
{
    out->failure_threshold = (uint32_t)w[CB_CF_THRESHOLD];
    out->reset_timeout_ms = (uint32_t)w[CB_CF_RESET_TIMEOUT];
    out->probe_timeout_ms = (uint32_t)w[CB_CF_PROBE_TIMEOUT];
    out->failure_rate = (uint32_t)w[CB_CF_FAILURE_RATE];
    out->minimum_calls = (uint32_t)w[CB_CF_MINIMUM_CALLS];
    out->window_ms = (uint32_t)w[CB_CF_WINDOW];
    out->slow_call_ms = (uint32_t)w[CB_CF_SLOW_CALL_MS];
    out->slow_call_rate = (uint32_t)w[CB_CF_SLOW_CALL_RATE];
    out->backoff_multiplier_pct = (uint32_t)w[CB_CF_BACKOFF];
    out->max_reset_timeout_ms = (uint32_t)w[CB_CF_MAX_RESET_TIMEOUT];
    out->mode = out->flags = 0;
}

/* Equal in every stored field (mode and flags are not stored). */
static int same_config(const cb_config *a, const cb_config *b)
{
    uint32_t va[CB_CF_COUNT], vb[CB_CF_COUNT];
    values_of(a, va);
    values_of(b, vb);
    for (unsigned f = 0; f < CB_CF_COUNT; f++)
        if (va[f] != vb[f])
            return 0;
    return 1;
}

void cb_config_init(struct cb_segment *seg, const cb_config *cfg)
{
    /* Ticket 1 in force; the zeroed slots (ticket 0, base 0) are free. */
    uint32_t v[CB_CF_COUNT];
    values_of(cfg, v);
    atomic_store_explicit(&seg->config[1].claim, tagged(1, 0), memory_order_relaxed);
    for (unsigned f = 0; f < CB_CF_COUNT; f++)
        atomic_store_explicit(&seg->config[1].word[f], tagged(1, v[f]), memory_order_relaxed);
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
    config_of(w, out);
    *current = v;
    return consistent;
}

int cb_config_read(const struct cb_segment *seg, cb_config *out)
{
    /* A slow reader can find its slot reused after a newer publication:
     * then config_current has moved on, and reading again finds the new
     * one. Retrying only when it moved never waits for a writer. */
    for (unsigned tries = 0; tries < CB_CONFIG_SLOTS; tries++) {
        uint64_t v;
        if (read_current(seg, out, &v))
            return 1;
        if (atomic_load_explicit(&seg->config_current, memory_order_relaxed) == v)
            break;
    }
    return 0;
}

/* Steps 3 and 4: claim ticket t's slot and write cfg into it, for an
 * update that read config_current v. 0 if the slot was not ours. */
static int fill_slot(struct cb_segment *seg, uint64_t t, uint64_t v, const cb_config *cfg, int anyway)
{
    struct cb_config_slot *slot = &seg->config[t % CB_CONFIG_SLOTS];
    /* Acquire, pairing with the claim CAS's release: config_current is
     * then loaded after the claim, and no older than its owner's base. */
    uint64_t claim = atomic_load_explicit(&slot->claim, memory_order_acquire);
    uint64_t current = atomic_load_explicit(&seg->config_current, memory_order_relaxed);
    if (t % CB_CONFIG_SLOTS == current % CB_CONFIG_SLOTS)
        return 0; /* the slot in force */
    if ((uint32_t)claim == (uint32_t)current && !anyway)
        return 0; /* its update read the config in force: it may publish */
    uint64_t mine = tagged(t, (uint32_t)v);
    /* Model step "claim": safe, as the slot's update can no longer publish
     * (config_current left its base for good, and was loaded after the
     * claim: had it published first, we would see its ticket in force). */
    if (!atomic_compare_exchange_strong_explicit(&slot->claim, &claim, mine, memory_order_release,
                                                 memory_order_relaxed))
        return 0;
    uint32_t values[CB_CF_COUNT];
    values_of(cfg, values);
    for (unsigned f = 0; f < CB_CF_COUNT; f++) {
        /* Acquire/release on the words: had we loaded a new owner's word,
         * its claim would be visible to the check that follows. */
        uint64_t seen = atomic_load_explicit(&slot->word[f], memory_order_acquire);
        do {
            if (atomic_load_explicit(&slot->claim, memory_order_relaxed) != mine)
                return 0; /* taken from us: we cannot publish any more */
            /* Model step "write": fails if a new owner wrote this word
             * since we loaded it; it then writes after us. Readers get
             * these words through the publication CAS's release. */
        } while (!atomic_compare_exchange_weak_explicit(&slot->word[f], &seen, tagged(t, values[f]),
                                                        memory_order_release, memory_order_acquire));
    }
    return 1;
}

typedef void (*compute_fn)(const cb_config *now, const cb_config *given, cb_config *next);

/* Steps 1 to 4; 1 if a new config was published, 0 if it was in force. */
static int update(struct cb_segment *seg, const cb_config *given, compute_fn compute)
{
    unsigned occupied = 0;
    uint64_t last_v = 0;
    for (;;) {
        cb_config now, next;
        uint64_t v;
        int consistent = read_current(seg, &now, &v);
        if (v != last_v)
            occupied = 0; /* a new round: its slots are counted afresh */
        last_v = v;
        compute(&now, given, &next);
        if (consistent && same_config(&now, &next))
            return 0;
        uint64_t t = atomic_fetch_add_explicit(&seg->config_tickets, 1, memory_order_relaxed) + 1;
        if (!fill_slot(seg, t, v, &next, occupied >= CB_CONFIG_SLOTS)) {
            occupied++;
            continue;
        }
        /* Model step "publish": succeeds only if nothing was published
         * since step 1, so next was computed from the config this
         * replaces. Release: whoever reads t here (acquire) sees the slot
         * words written above. */
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

/* One field of cb_set_config: 0 keeps the stored value, CB_CONFIG_OFF
 * takes the zero meaning (the default, or the policy off). */
static uint32_t given_or(uint32_t given, uint32_t stored, uint32_t zero_meaning)
{
    return given == 0 ? stored : given == CB_CONFIG_OFF ? zero_meaning : given;
}

/* given's fields over the config in force (given is checked: see
 * cb_set_config); a probe timeout that followed the reset timeout goes
 * on following it. */
static void take_given(const cb_config *now, const cb_config *given, cb_config *next)
{
    static const cb_config none;
    cb_config zero;
    cb_resolve_config(&none, &zero); /* the zero meaning of every field */
    next->failure_threshold =
        given_or(given->failure_threshold, now->failure_threshold, zero.failure_threshold);
    next->reset_timeout_ms = given_or(given->reset_timeout_ms, now->reset_timeout_ms, zero.reset_timeout_ms);
    if (given->probe_timeout_ms == CB_CONFIG_OFF)
        next->probe_timeout_ms = next->reset_timeout_ms;
    else if (given->probe_timeout_ms)
        next->probe_timeout_ms = given->probe_timeout_ms;
    else if (given->reset_timeout_ms && now->probe_timeout_ms == now->reset_timeout_ms)
        next->probe_timeout_ms = next->reset_timeout_ms;
    else
        next->probe_timeout_ms = now->probe_timeout_ms;
    next->failure_rate = given_or(given->failure_rate, now->failure_rate, zero.failure_rate);
    next->minimum_calls = given_or(given->minimum_calls, now->minimum_calls, zero.minimum_calls);
    next->window_ms = given_or(given->window_ms, now->window_ms, zero.window_ms);
    next->slow_call_ms = given_or(given->slow_call_ms, now->slow_call_ms, zero.slow_call_ms);
    next->slow_call_rate = given_or(given->slow_call_rate, now->slow_call_rate, zero.slow_call_rate);
    next->backoff_multiplier_pct =
        given_or(given->backoff_multiplier_pct, now->backoff_multiplier_pct, zero.backoff_multiplier_pct);
    if (next->backoff_multiplier_pct == 100u)
        next->backoff_multiplier_pct = 0; /* stored as off, as cb_resolve_config does */
    next->max_reset_timeout_ms =
        given_or(given->max_reset_timeout_ms, now->max_reset_timeout_ms, zero.max_reset_timeout_ms);
    next->mode = next->flags = 0;
}

/* given with CB_CONFIG_OFF fields as 0: what cb_resolve_config checks.
 * Every field of the resulting config is either stored (checked when it
 * was stored), a default, or one of these; no rule ties two fields, so
 * checking these checks the result. */
static int given_valid(const cb_config *given)
{
    cb_config c = *given, resolved;
    uint32_t *f[] = {&c.failure_threshold, &c.reset_timeout_ms, &c.probe_timeout_ms, &c.failure_rate,
                     &c.minimum_calls, &c.window_ms, &c.slow_call_ms, &c.slow_call_rate,
                     &c.backoff_multiplier_pct, &c.max_reset_timeout_ms};
    for (unsigned i = 0; i < sizeof f / sizeof f[0]; i++)
        if (*f[i] == CB_CONFIG_OFF)
            *f[i] = 0;
    return cb_resolve_config(&c, &resolved) == 0;
}

int cb_set_config(cb_breaker *b, const cb_config *cfg)
{
    if (!b || !cfg || !given_valid(cfg))
        return -EINVAL;
    return update(b->seg, cfg, take_given);
}
