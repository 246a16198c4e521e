/*
 * claim_locks.h - this process's lock on a stripe, which the kernel drops
 * when the process dies (claim_locks.c; why: stripes.c).
 */
#ifndef CB_CLAIM_LOCKS_H
#define CB_CLAIM_LOCKS_H

#include <stdint.h>

/* What guards a handle's stripe claims (cb_breaker.claim_file.kind). */
#define CB_CLAIMS_NONE 0     /* nothing: the shared stripe only (cb_inspect) */
#define CB_CLAIMS_PRIVATE 1  /* process-private segment: nothing to lock */
#define CB_CLAIMS_FILE 2     /* locks on the file dev/ino */

/* CB_CLAIMS_FILE: the file the segment was mapped from, and a descriptor
 * of it the handle keeps until cb_close (-1: none to spare; the file is
 * then found again by name). */
struct cb_claim_file {
    int kind;
    int fd;
    uint64_t dev, ino;
};

/* The file fd refers to, as kind CB_CLAIMS_FILE with a duplicate of fd
 * (CB_CLAIMS_NONE if fstat fails). Locks are looked up at the first claim. */
void cb_claim_file_of(int fd, struct cb_claim_file *out);
/* Close what cb_claim_file_of kept (cb_close). */
void cb_claim_file_close(struct cb_claim_file *file);

/* A reference (> 0) to this process's own open file description of the
 * circuit file `file` (opened again from file->fd through /proc, or by
 * name if the name still leads to that very file), kept until the process
 * exits; 0 when none can be had (table full, few descriptors left). */
int cb_claim_locks_find(const char *name, const struct cb_claim_file *file);

/* 1 if this process holds the lock on stripe s of ref's file (taken now
 * with one non-blocking F_OFD_SETLK, or earlier), 0 if another process
 * holds it or no lock can be had. A lock, once held, is kept. */
int cb_claim_lock(int ref, unsigned s);

#endif
