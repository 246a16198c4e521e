/*
 * shm.h - names of circuits and their shared-memory objects.
 */
#ifndef CB_SHM_H
#define CB_SHM_H

#include "segment.h"

#define CB_SHM_PREFIX "/cbreaker."
#define CB_SHM_PATH_MAX (sizeof CB_SHM_PREFIX + CB_NAME_MAX)

/* 0 if name is a valid circuit name, CB_ENAME or -EINVAL (NULL) if not. */
int cb_check_name(const char *name);
/* "/cbreaker.NAME" for a checked name. */
void cb_shm_path(char out[CB_SHM_PATH_MAX], const char *name);
/* Replace the segment's threshold and timeouts (each word on its own). */
void cb_store_config(struct cb_segment *seg, const cb_config *cfg);

#endif
