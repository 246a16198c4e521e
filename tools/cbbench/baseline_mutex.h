/*
 * baseline_mutex.h - the "obvious shared design": cbreaker's state machine
 * in shared memory behind one robust, process-shared pthread mutex.
 */
#ifndef CBBENCH_MUTEX_H
#define CBBENCH_MUTEX_H

#include <stdint.h>

#include <cbreaker.h>

struct mx_circuit;

/* A circuit in MAP_SHARED anonymous memory (inherited across fork, as a
 * pre-fork server's workers inherit it). now_ms NULL: the coarse
 * monotonic clock, as cbreaker uses. NULL on error. */
struct mx_circuit *mx_open(const cb_config *cfg, uint64_t (*now_ms)(void *), void *clock_ctx);
void mx_close(struct mx_circuit *m);

/* The same contract as cb_acquire/cb_success/cb_failure/cb_release; the
 * permit is generation << 2 | kind. */
cb_verdict mx_acquire(struct mx_circuit *m, uint64_t *permit);
void mx_success(struct mx_circuit *m, uint64_t permit);
void mx_failure(struct mx_circuit *m, uint64_t permit);
void mx_release(struct mx_circuit *m, uint64_t permit);
void mx_reset(struct mx_circuit *m);
void mx_trip(struct mx_circuit *m);
void mx_counters(struct mx_circuit *m, cb_counters *out, uint32_t *failures, cb_state *state);

#endif
