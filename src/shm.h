/*
 * shm.h - names of circuits and their shared-memory objects.
 */
#ifndef CB_SHM_H
#define CB_SHM_H

#include "segment.h"

#define CB_SHM_PREFIX "/cbreaker."
#define CB_SHM_DIR "/dev/shm" /* where Linux keeps POSIX shm objects */
/* Temporary names of segments being built where O_TMPFILE is missing
 * (shm.c); cb_list lists only names starting with CB_SHM_PREFIX. */
#define CB_SHM_TEMP_PREFIX ".cbreaker-new."
#define CB_SHM_PATH_MAX (sizeof CB_SHM_PREFIX + CB_NAME_MAX)

/* 0 if name is a valid circuit name, CB_ENAME or -EINVAL (NULL) if not. */
int cb_check_name(const char *name);
/* "/cbreaker.NAME" for a checked name. */
void cb_shm_path(char out[CB_SHM_PATH_MAX], const char *name);
/* Replace the segment's threshold and timeouts (each word on its own). */
void cb_store_config(struct cb_segment *seg, const cb_config *cfg);
/* cfg with zero fields replaced by the defaults; -EINVAL for bad mode bits. */
int cb_resolve_config(const cb_config *in, cb_config *out);
/* Fill a segment nobody else sees yet (unnamed, or private memory); READY
 * last. */
void cb_segment_init(struct cb_segment *seg, const cb_config *cfg);

/* shm_open's errno as our error: CB_ENOTCB for what cannot be a segment. */
int cb_open_error(int err);

/* What one look at an object found (cb_shm_look), besides 0 (a ready,
 * valid segment, mapped) and negative errors. */
enum {
    CB_LOOK_UNREADY = 1,    /* our size, not initialized yet: mapped */
    CB_LOOK_UNSIZED = 2,    /* size 0: nobody has sized it yet */
    CB_LOOK_OTHER_SIZE = 3  /* not initialized and not our size */
};
/* Look at fd's object once, mapping it read-write or read-only, without
 * ever touching bytes past its end. *out and *ready_seen are set when the
 * result is 0 or CB_LOOK_UNREADY; the mapping is CB_SEGMENT_SIZE long. */
int cb_shm_look(int fd, int writable, struct cb_segment **out, uint64_t *ready_seen);

#endif
