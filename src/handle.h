/*
 * handle.h - the per-process handle (struct cb_breaker) and the clock it
 * reads.
 *
 * A handle is process-local: a mapping of the segment plus what this
 * process wants (listener, clock). It is inherited across fork(); nothing
 * in it is written on the hot path.
 */
#ifndef CB_HANDLE_H
#define CB_HANDLE_H

#include <stdint.h>

#include "cbreaker.h"
#include "claim_locks.h"
#include "segment.h"

struct cb_breaker {
    struct cb_segment *seg;
    uint32_t instance; /* copy of seg->instance, for permit checks */
    cb_listener listener;
    void *listener_ctx;
    uint64_t (*now_ms)(void *ctx); /* NULL: the coarse monotonic clock */
    void *clock_ctx;
    uint64_t clock_tick_ms; /* added to timeouts so a probe is never early */
    uint32_t mode;          /* permission bits of the object when opened */
    char name[CB_NAME_MAX + 1];
    /* What guards this process's stripe claims (claim_locks.h), set by
     * the opener; zero (CB_CLAIMS_NONE): the shared stripe only. */
    struct cb_claim_file claim_file;
};

/* Point b at a mapped, ready segment, with the default clock. */
void cb_handle_fill(cb_breaker *b, struct cb_segment *seg, const char *name, uint32_t mode);

/* Monotonic ms from the handle's clock. */
uint64_t cb_clock_now(const cb_breaker *b);
/* Resolution of the default clock in ms, rounded up. */
uint64_t cb_clock_default_tick(void);
/* CLOCK_REALTIME in ms, for display. */
uint64_t cb_clock_wall_ms(void);

#endif
