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
/* Fill a segment nobody else sees yet (unnamed, or private memory); READY
 * last. */
void cb_segment_init(struct cb_segment *seg, const cb_config *cfg);

/* shm_open's errno as our error: CB_ENOTCB for what cannot be a segment. */
int cb_open_error(int err);

/* Whether seg (a mapping or a copy of an object of file_size bytes, at
 * least CB_PREFIX_SIZE of them readable) is a ready circuit of this
 * layout: 0, or which check failed, in the order the prefix lays them out
 * (CB_ENOTCB, CB_EVERSION, CB_ESIZE, CB_ELAYOUT; CB_EBUSY for an object
 * an older library left unready). Attach and inspect both use it, so a
 * circuit inspects as valid exactly when it can be attached. */
int cb_segment_check(const struct cb_segment *seg, uint64_t file_size);

#endif
