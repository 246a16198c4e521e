/*
 * state_word.h - encoding of the circuit's 64-bit state word.
 *
 *   bits  0..1   state: CB_CLOSED, CB_OPEN, CB_HALF_OPEN (3 is corrupt)
 *   bits  2..23  generation: bumped by every change except a CLOSED count
 *   bits 24..63  payload, by state:
 *                  CLOSED     consecutive failure count
 *                  OPEN       monotonic ms of the trip
 *                  HALF_OPEN  monotonic ms the probe lease began, or
 *                             CB_SLOT_FREE when no probe is in flight
 *
 * Everything a decision needs sits in this one word, so every change is a
 * single 64-bit CAS, which is lock-free on every target we build for
 * (segment.h asserts it). The generation lets a report tell whether the
 * circuit moved on since its permit was issued; 22 bits wrap after 4M
 * transitions, so a permit held across exactly a multiple of 4M
 * transitions would be taken as current: accepted. 40 bits of ms last 34
 * years of uptime; time differences are taken modulo 2^40, and a stamp
 * ahead of the reader's clock counts as no time elapsed.
 */
#ifndef CB_STATE_WORD_H
#define CB_STATE_WORD_H

#include <stdint.h>

#include "cbreaker.h"

#define CB_GEN_BITS 22u
#define CB_GEN_MASK ((UINT64_C(1) << CB_GEN_BITS) - 1u)
#define CB_PAYLOAD_SHIFT 24u
#define CB_PAYLOAD_MASK ((UINT64_C(1) << 40) - 1u)
#define CB_SLOT_FREE 0u
#define CB_STATE_CORRUPT 3u

static inline uint64_t sw_make(unsigned state, uint64_t gen, uint64_t payload)
{
    return (uint64_t)state | (gen & CB_GEN_MASK) << 2 | (payload & CB_PAYLOAD_MASK) << CB_PAYLOAD_SHIFT;
}

static inline unsigned sw_state(uint64_t w) { return (unsigned)(w & 3u); }
static inline uint64_t sw_gen(uint64_t w) { return (w >> 2) & CB_GEN_MASK; }
static inline uint64_t sw_payload(uint64_t w) { return w >> CB_PAYLOAD_SHIFT; }

/* The word after w with the next generation. */
static inline uint64_t sw_next(uint64_t w, unsigned state, uint64_t payload)
{
    return sw_make(state, sw_gen(w) + 1u, payload);
}

/* Milliseconds from then to now on the 40-bit clock. A stamp ahead of
 * now (by less than half the clock's range) has not elapsed at all: better
 * a late probe than a second one. */
static inline uint64_t sw_elapsed(uint64_t now, uint64_t then)
{
    uint64_t d = (now - then) & CB_PAYLOAD_MASK;
    return d < CB_PAYLOAD_MASK / 2 ? d : 0;
}

/* A lease start never equals CB_SLOT_FREE. */
static inline uint64_t sw_lease_stamp(uint64_t now)
{
    now &= CB_PAYLOAD_MASK;
    return now == CB_SLOT_FREE ? 1u : now;
}

#endif
