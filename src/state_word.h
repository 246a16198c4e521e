/*
 * state_word.h - encoding of the circuit's 64-bit state word.
 *
 *   bits  0..1   state: CB_CLOSED, CB_OPEN, CB_HALF_OPEN, or CB_STATE_MODE
 *                (an operator mode other than NORMAL is in force)
 *   bits  2..23  generation: bumped by every change except a CLOSED count
 *                (and a METRICS_ONLY count or crossing mark)
 *   bits 24..63  payload, by state:
 *                  CLOSED     consecutive failure count
 *                  OPEN       backoff step << 36 | monotonic ms of the trip
 *                  HALF_OPEN  backoff step << 36 | monotonic ms the probe
 *                             lease began, or CB_SLOT_FREE (stamp 0) when
 *                             no probe is in flight
 *                  MODE       cb_mode (1..3) | crossed marks << 2 |
 *                             consecutive failure count << 5
 *                             (METRICS_ONLY; 0 in the other modes)
 *
 * Everything a decision needs sits in this one word, so every change is a
 * single 64-bit CAS, which is lock-free on every target we build for
 * (segment.h asserts it). The generation lets a report tell whether the
 * circuit moved on since its permit was issued; 22 bits wrap after 4M
 * transitions, so a permit held across exactly a multiple of 4M
 * transitions would be taken as current: accepted. Stamps keep 36 bits of
 * ms (795 days); time differences are taken modulo 2^36, and a stamp
 * ahead of the reader's clock counts as no time elapsed, so a circuit
 * left OPEN and untouched for over 397 days may need a cb_reset. The
 * backoff step (0..CB_BACKOFF_STEPS_MAX) lives in the word beside the
 * stamp, so two processes can never disagree on the open period.
 * A MODE word whose mode is 0 is corrupt (CB_STATE_MODE with nothing
 * set), as no change ever installs one.
 */
#ifndef CB_STATE_WORD_H
#define CB_STATE_WORD_H

#include <stdint.h>

#include "cbreaker.h"

#define CB_GEN_BITS 22u
#define CB_GEN_MASK ((UINT64_C(1) << CB_GEN_BITS) - 1u)
#define CB_PAYLOAD_SHIFT 24u
#define CB_PAYLOAD_MASK ((UINT64_C(1) << 40) - 1u)
#define CB_STAMP_BITS 36u
#define CB_STAMP_MASK ((UINT64_C(1) << CB_STAMP_BITS) - 1u)
#define CB_STEP_MASK UINT64_C(0xf)
#define CB_SLOT_FREE 0u
#define CB_STATE_MODE 3u

/* MODE payload: the mode, the crossing marks (METRICS_ONLY: a would-open
 * event was announced for the rule and it has not been found false
 * since), and the consecutive failure count. */
#define CB_MODE_MASK UINT64_C(3)
#define CB_CROSSED_THRESHOLD (UINT64_C(1) << 2)
#define CB_CROSSED_FAILURE_RATE (UINT64_C(1) << 3)
#define CB_CROSSED_SLOW_CALL_RATE (UINT64_C(1) << 4)
#define CB_MODE_COUNT_SHIFT 5u

_Static_assert(CB_BACKOFF_STEPS_MAX <= CB_STEP_MASK, "the backoff step fits its bits");

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

/* OPEN and HALF_OPEN: the time stamp and the backoff step. */
static inline uint64_t sw_stamp(uint64_t w) { return sw_payload(w) & CB_STAMP_MASK; }
static inline unsigned sw_step(uint64_t w) { return (unsigned)(sw_payload(w) >> CB_STAMP_BITS & CB_STEP_MASK); }
static inline uint64_t sw_timed(unsigned step, uint64_t stamp)
{
    return (uint64_t)(step & CB_STEP_MASK) << CB_STAMP_BITS | (stamp & CB_STAMP_MASK);
}

/* MODE: the operator mode (0 only in a corrupt word). */
static inline unsigned sw_mode(uint64_t w)
{
    return sw_state(w) == CB_STATE_MODE ? (unsigned)(sw_payload(w) & CB_MODE_MASK) : CB_MODE_NORMAL;
}

/* The state a caller sees: FORCED_OPEN looks OPEN, DISABLED and
 * METRICS_ONLY look CLOSED, a corrupt word is CB_STATE_MODE (3). */
static inline unsigned sw_apparent(uint64_t w)
{
    if (sw_state(w) != CB_STATE_MODE)
        return sw_state(w);
    switch (sw_mode(w)) {
    case CB_MODE_FORCED_OPEN:
        return CB_OPEN;
    case CB_MODE_DISABLED:
    case CB_MODE_METRICS_ONLY:
        return CB_CLOSED;
    }
    return CB_STATE_MODE;
}

/* Milliseconds from then to now on the 36-bit clock. A stamp ahead of
 * now (by less than half the clock's range) has not elapsed at all: better
 * a late probe than a second one. */
static inline uint64_t sw_elapsed(uint64_t now, uint64_t then)
{
    uint64_t d = (now - then) & CB_STAMP_MASK;
    return d < CB_STAMP_MASK / 2 ? d : 0;
}

/* A lease start never equals CB_SLOT_FREE. */
static inline uint64_t sw_lease_stamp(uint64_t now)
{
    now &= CB_STAMP_MASK;
    return now == CB_SLOT_FREE ? 1u : now;
}

#endif
