/*
 * history.h - the ring of the last CB_RING transitions in the segment.
 */
#ifndef CB_HISTORY_H
#define CB_HISTORY_H

#include "segment.h"

/* Record transition t, made by the CAS that installed generation gen. */
void cb_history_record(struct cb_segment *seg, uint64_t gen, const cb_transition *t);

/* The two steps of cb_history_record, apart so that a test can interleave
 * two writers word by word: the words of gen's entry for t, and the store
 * of one of them (which never replaces a word of a newer generation). */
void cb_history_words(uint64_t gen, const cb_transition *t, uint64_t words[CB_RW_COUNT]);
void cb_history_store(struct cb_segment *seg, enum cb_ring_word which, uint64_t word);

/* Copy the complete entries, newest first, walking back from generation
 * newest_gen. Returns how many were copied (at most CB_RING). */
unsigned cb_history_read(const struct cb_segment *seg, uint64_t newest_gen, cb_transition *out);

#endif
