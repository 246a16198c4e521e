/*
 * claim_locks.h - this process's lock on a stripe, which the kernel drops
 * when the process dies (claim_locks.c; why: stripes.c).
 */
#ifndef CB_CLAIM_LOCKS_H
#define CB_CLAIM_LOCKS_H

/* Values of cb_breaker.claim_locks besides a reference (> 0). */
#define CB_CLAIMS_NONE 0     /* no lock to be had: the shared stripe only */
#define CB_CLAIMS_PRIVATE -1 /* process-private segment: nothing to lock */

/* A reference (> 0) to this process's own open file description of the
 * object fd (opened read-write) refers to, kept until the
 * process exits; CB_CLAIMS_NONE when none can be had (table full, few
 * descriptors left, /proc not mounted). Never fails otherwise. */
int cb_claim_locks_for(int fd);

/* 1 if this process holds the lock on stripe s of ref's file (taken now
 * with one non-blocking F_OFD_SETLK, or earlier), 0 if another process
 * holds it or no lock can be had. A lock, once held, is kept. */
int cb_claim_lock(int ref, unsigned s);

#endif
