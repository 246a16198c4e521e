/*
 * segment.h - the layout of a circuit's shared-memory segment (private).
 *
 * Never installed: tools read a circuit through cb_get_info(), not through
 * this struct. One segment per circuit, in /dev/shm/cbreaker.NAME:
 *
 *   header   magic, layout version, shape, size, ready word; which config
 *            slot is in force
 *   state    the one word every state change is a CAS on, alone on its line
 *   probe    who holds the probe (display only), on its own line
 *   window   where the failure-rate window restarts, the newest bucket
 *            holding a failure or slow call, stripes ever used (window.c)
 *   config   slots of threshold, timeouts and policies, one in force
 *            (config.c)
 *   stripes  per-thread counter stripes and window buckets, three line
 *            pairs each (stripes.c, window.c)
 *   history  ring of the last transitions, slot = generation % ring size
 *
 * The first 32 bytes (magic, version, shape, size, ready) are frozen for
 * every layout version to come, so that any version of the library can
 * tell a segment of another version from garbage. Anything else may change
 * with a new CB_LAYOUT_VERSION: new fields go in a new version, never into
 * spare bytes silently. Version 3 (cbreaker 0.3) added the policies:
 * window buckets, the backoff step and modes in the state word, the
 * policy config fields.
 *
 * Lines are padded to 128 bytes, not 64: Intel's adjacent-line prefetcher
 * fetches 128-byte pairs, so two processes writing neighbouring 64-byte
 * lines would still slow each other down.
 */
#ifndef CB_SEGMENT_H
#define CB_SEGMENT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "cbreaker.h"

#define CB_LAYOUT_VERSION 3u
/* "cbreaker" in memory order on a little-endian host; a byte-swapped
 * reading is 0x6362726561... and fails the check. */
#define CB_MAGIC UINT64_C(0x72656b6165726263)
#define CB_LINE 128u
#define CB_STRIPES 64u
#define CB_RING CB_HISTORY_MAX
#define CB_CONFIG_SLOTS 16u
#define CB_BUCKETS 10u

/* Values of the ready word. This library publishes a segment under its
 * name only once it holds READY (see shm.c). cbreaker 0.1 created segments
 * in place and, while it filled one, held the ready word at CB_CLAIM_TAG |
 * pid (pid in the low 24 bits): such a word, like 0, means "an older
 * library is creating this, or left it half-made" (CB_EBUSY), not garbage. */
#define CB_READY UINT64_C(0x0000007964616572)      /* "ready" */
#define CB_CLAIM_TAG UINT64_C(0x6d69616c63000000)  /* "claim" << 24 */
#define CB_CLAIM_MASK UINT64_C(0xffffffffff000000)

/* What shapes the layout besides its version: checked on attach. */
#define CB_SHAPE ((CB_LINE / 8u) << 24 | CB_STRIPES << 16 | CB_RING << 8 | 8u)

/* Counters of one stripe; cb_counters lists the same fields. */
enum cb_counter {
    CB_C_ALLOWED,
    CB_C_REJECTED,
    CB_C_SUCCESSES,
    CB_C_FAILURES,
    CB_C_RELEASED,
    CB_C_LATE,
    CB_C_TRIPS,
    CB_C_PROBES,
    CB_C_COUNT
};

/* What a window bucket counts. */
enum cb_bucket_kind { CB_B_CALLS, CB_B_FAILURES, CB_B_SLOW, CB_B_COUNT };

/* A window bucket word: the bucket's start (monotonic ms, aligned to the
 * bucket width, modulo 2^36) << CB_BUCKET_COUNT_BITS | count (saturates).
 * One word, so a reader never sees a count under another bucket's start. */
#define CB_BUCKET_COUNT_BITS 28u
#define CB_BUCKET_COUNT_MAX ((UINT64_C(1) << CB_BUCKET_COUNT_BITS) - 1u)

/* owner: the thread that claimed it (stripes.c), 0 if free. bucket: its
 * share of the window, slot = (start / width) % CB_BUCKETS (window.c). */
struct cb_stripe {
    _Atomic uint64_t owner;
    _Atomic uint64_t count[CB_C_COUNT];
    _Atomic uint64_t bucket[CB_B_COUNT][CB_BUCKETS];
    uint8_t pad[3 * CB_LINE - 8 - CB_C_COUNT * 8 - CB_B_COUNT * CB_BUCKETS * 8];
};

/* The stored config's fields, in a slot's word order. CB_CF_POLICY is
 * derived (CB_POLICY_* bits), so the hot path tests one word. */
enum cb_config_field {
    CB_CF_THRESHOLD,
    CB_CF_RESET_TIMEOUT,
    CB_CF_PROBE_TIMEOUT,
    CB_CF_FAILURE_RATE,
    CB_CF_MINIMUM_CALLS,
    CB_CF_WINDOW,
    CB_CF_SLOW_CALL_MS,
    CB_CF_SLOW_CALL_RATE,
    CB_CF_BACKOFF,
    CB_CF_MAX_RESET_TIMEOUT,
    CB_CF_POLICY,
    CB_CF_COUNT
};
#define CB_POLICY_WINDOW 1u /* failure_rate or slow_call_ms set: count the window */
#define CB_POLICY_SLOW 2u   /* slow_call_ms set: stamp permits at acquire */

/* One config (config.c): claim is ticket << 32 | base, the update that
 * writes it and the config_current it read; each word is ticket << 32 |
 * value, the update that wrote it. */
struct cb_config_slot {
    _Atomic uint64_t claim;
    _Atomic uint64_t word[CB_CF_COUNT];
    uint8_t pad[CB_LINE - 8 - CB_CF_COUNT * 8];
};

/* One remembered transition: four words, each holding the generation it
 * belongs to in its top CB_RING_TAG_BITS bits and one field below (see
 * history.c for why every word carries it). */
enum cb_ring_word {
    CB_RW_WHAT,     /* CB_RW_WRITTEN | from | to << 8 | reason << 16 |
                       mode << CB_RW_MODE_SHIFT */
    CB_RW_FAILURES, /* consecutive failures that caused it */
    CB_RW_PID,      /* the process whose CAS made it */
    CB_RW_WALL_MS,  /* CLOCK_REALTIME ms, modulo 2^42 (year 2109) */
    CB_RW_COUNT
};
#define CB_RING_TAG_BITS 22u /* = CB_GEN_BITS (state_word.h) */
#define CB_RING_VALUE_BITS (64u - CB_RING_TAG_BITS)
#define CB_RING_VALUE_MASK ((UINT64_C(1) << CB_RING_VALUE_BITS) - 1u)
/* Set in every what word written: tells generation 0 from zeroed memory. */
#define CB_RW_WRITTEN (UINT64_C(1) << 24)
/* The operator mode in force after the transition (2 bits). */
#define CB_RW_MODE_SHIFT 25u

struct cb_ring_entry {
    _Atomic uint64_t word[CB_RW_COUNT];
};

struct cb_segment {
    /* Frozen prefix: the same offsets in every layout version. */
    uint64_t magic;
    uint32_t layout_version;
    uint32_t shape;
    uint64_t size;
    _Atomic uint64_t ready;
    /* Header, written at initialization; the config in force changes. */
    uint32_t instance; /* random, ties permits to this segment */
    uint32_t pad_instance;
    _Atomic uint64_t config_current; /* ticket of the config in force */
    _Atomic uint64_t config_tickets; /* last ticket handed to an update */
    uint8_t pad0[CB_LINE - 56];

    _Atomic uint64_t state; /* state_word.h */
    uint8_t pad1[CB_LINE - 8];

    _Atomic uint64_t probe_holder; /* generation << 32 | pid of the probe */
    uint8_t pad2[CB_LINE - 8];

    /* Rarely written (window.c): generation << 36 | ms where the window of
     * that CLOSED (or METRICS_ONLY) generation starts; CB_BAD_SET | start
     * of the newest bucket holding a failure or slow call; 1 + the highest
     * stripe ever claimed. */
    _Atomic uint64_t window_floor;
    _Atomic uint64_t bad_bucket;
    _Atomic uint64_t stripes_used;
    uint8_t pad3[CB_LINE - 24];

    struct cb_config_slot config[CB_CONFIG_SLOTS]; /* in force: current % slots */

    struct cb_stripe stripes[CB_STRIPES];
    struct cb_ring_entry ring[CB_RING];
};

#define CB_BAD_SET (UINT64_C(1) << 63)

#define CB_PREFIX_SIZE 32u
#define CB_SEGMENT_SIZE ((uint64_t)sizeof(struct cb_segment))

/* 2 means "always lock-free": a libatomic fallback would lock a table
 * private to each process and silently break exclusion between them. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && sizeof(long long) == 8,
               "the 64-bit state word must always be lock-free");
_Static_assert(sizeof(struct cb_stripe) == 3 * CB_LINE, "one stripe per three line pairs");
_Static_assert(__builtin_offsetof(struct cb_segment, ready) == 24,
               "the frozen prefix must not move");
_Static_assert(__builtin_offsetof(struct cb_segment, pad0) <= CB_LINE, "header fits a line");
_Static_assert(__builtin_offsetof(struct cb_segment, state) == CB_LINE, "state word on line 1");
_Static_assert(sizeof(struct cb_config_slot) == CB_LINE, "one config slot per line pair");
_Static_assert(__builtin_offsetof(struct cb_segment, config) % CB_LINE == 0, "config slots aligned");
_Static_assert((CB_CONFIG_SLOTS & (CB_CONFIG_SLOTS - 1)) == 0, "config slot count is a power of two");
_Static_assert(__builtin_offsetof(struct cb_segment, stripes) % CB_LINE == 0, "stripes aligned");
_Static_assert((CB_STRIPES & (CB_STRIPES - 1)) == 0, "stripe count is a power of two");
_Static_assert((CB_RING & (CB_RING - 1)) == 0, "ring size is a power of two");

#endif
