/*
 * segment.h - the layout of a circuit's shared-memory segment (private).
 *
 * Never installed: tools read a circuit through cb_get_info(), not through
 * this struct. One segment per circuit, in /dev/shm/cbreaker.NAME:
 *
 *   header   magic, layout version, shape, size, ready word, config
 *   state    the one word every state change is a CAS on, alone on its line
 *   probe    who holds the probe (display only), on its own line
 *   stripes  per-thread counter stripes, one line pair each (stripes.c)
 *   history  ring of the last transitions, slot = generation % ring size
 *
 * The first 32 bytes (magic, version, shape, size, ready) are frozen for
 * every layout version to come, so that any version of the library can
 * tell a segment of another version from garbage. Anything else may change
 * with a new CB_LAYOUT_VERSION: new fields (failure-rate windows, slow-call
 * counts, backoff) go in a new version, never into spare bytes silently.
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

#define CB_LAYOUT_VERSION 1u
/* "cbreaker" in memory order on a little-endian host; a byte-swapped
 * reading is 0x6362726561... and fails the check. */
#define CB_MAGIC UINT64_C(0x72656b6165726263)
#define CB_LINE 128u
#define CB_STRIPES 64u
#define CB_RING CB_HISTORY_MAX

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

/* owner: the thread that claimed it (stripes.c), 0 if free. */
struct cb_stripe {
    _Atomic uint64_t owner;
    _Atomic uint64_t count[CB_C_COUNT];
    uint8_t pad[CB_LINE - 8 - CB_C_COUNT * 8];
};

/* One remembered transition: four words, each holding the generation it
 * belongs to in its top CB_RING_TAG_BITS bits and one field below (see
 * history.c for why every word carries it). */
enum cb_ring_word {
    CB_RW_WHAT,     /* CB_RW_WRITTEN | from | to << 8 | reason << 16 */
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
    /* Header, written at initialization; config may be replaced later. */
    uint32_t instance; /* random, ties permits to this segment */
    _Atomic uint32_t failure_threshold;
    _Atomic uint32_t reset_timeout_ms;
    _Atomic uint32_t probe_timeout_ms;
    uint8_t pad0[CB_LINE - 48];

    _Atomic uint64_t state; /* state_word.h */
    uint8_t pad1[CB_LINE - 8];

    _Atomic uint64_t probe_holder; /* generation << 32 | pid of the probe */
    uint8_t pad2[CB_LINE - 8];

    struct cb_stripe stripes[CB_STRIPES];
    struct cb_ring_entry ring[CB_RING];
};

#define CB_PREFIX_SIZE 32u
#define CB_SEGMENT_SIZE ((uint64_t)sizeof(struct cb_segment))

/* 2 means "always lock-free": a libatomic fallback would lock a table
 * private to each process and silently break exclusion between them. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && sizeof(long long) == 8,
               "the 64-bit state word must always be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && sizeof(int) == 4,
               "32-bit config words must always be lock-free");
_Static_assert(sizeof(struct cb_stripe) == CB_LINE, "one stripe per line pair");
_Static_assert(__builtin_offsetof(struct cb_segment, ready) == 24,
               "the frozen prefix must not move");
_Static_assert(__builtin_offsetof(struct cb_segment, pad0) <= CB_LINE, "header fits a line");
_Static_assert(__builtin_offsetof(struct cb_segment, state) == CB_LINE, "state word on line 1");
_Static_assert(__builtin_offsetof(struct cb_segment, stripes) % CB_LINE == 0, "stripes aligned");
_Static_assert((CB_STRIPES & (CB_STRIPES - 1)) == 0, "stripe count is a power of two");
_Static_assert((CB_RING & (CB_RING - 1)) == 0, "ring size is a power of two");

#endif
