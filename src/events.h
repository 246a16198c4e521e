/*
 * events.h - announcing a transition this process made.
 */
#ifndef CB_EVENTS_H
#define CB_EVENTS_H

#include "handle.h"

/* Record the transition from word `from` to word `to` in the history ring
 * and pass it to the handle's listener. Call only after the winning CAS. */
void cb_emit(cb_breaker *b, uint64_t from, uint64_t to, cb_reason reason, uint32_t failures,
             uint64_t mono_ms);

/* METRICS_ONLY: pass a would-open event (from CLOSED, to OPEN, reason the
 * rule that would have tripped, generation of word) to the listener, not
 * to the history. Call only after the CAS that set the crossing mark. */
void cb_announce_would_open(cb_breaker *b, uint64_t word, cb_reason reason, uint32_t failures,
                            uint64_t mono_ms);

#endif
