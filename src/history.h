/*
 * history.h - the ring of the last CB_RING transitions in the segment.
 */
#ifndef CB_HISTORY_H
#define CB_HISTORY_H

#include "segment.h"

/* Record transition t, made by the CAS that installed generation gen. */
void cb_history_record(struct cb_segment *seg, uint64_t gen, const cb_transition *t);

/* Copy the complete entries, newest first, walking back from generation
 * newest_gen. Returns how many were copied (at most CB_RING). */
unsigned cb_history_read(const struct cb_segment *seg, uint64_t newest_gen, cb_transition *out);

#endif
