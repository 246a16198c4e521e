/*
 * cbext.h - what the files of the extension module cbreaker._cbreaker
 * share. The extension is a thin layer over the public API (cbreaker.h):
 * the state machine stays in the library, Python adds no policy.
 *
 *   module.c  the module: types, constants, unlink/inspect/list_circuits
 *   handle.c  Handle: one cb_breaker, its listener and event hook
 *   permit.c  Permit: one cb_permit, consumed by its report
 *   config.c  THE table of cb_config fields: the only place that names them
 *   errors.c  library error codes to Python exceptions
 *   info.c    cb_info to the dict `cbctl show --json` prints
 */
#ifndef CBEXT_H
#define CBEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "cbreaker.h"

/* Transitions the listener keeps until the call that made them returns
 * (one library call makes at most two). */
#define CBEXT_PENDING_MAX 8

typedef struct {
    PyObject_HEAD
    cb_breaker *b;
    int is_private;
    PyObject *name;      /* str, or None for an unnamed private breaker */
    PyObject *exclude;   /* tuple of exception classes: release, not failure */
    PyObject *on_events; /* callable(list of event tuples) or None */
    unsigned npending;   /* written by the listener, read after each call */
    unsigned dropped;    /* transitions beyond CBEXT_PENDING_MAX, not logged */
    cb_transition pending[CBEXT_PENDING_MAX];
} HandleObject;

typedef struct {
    PyObject_HEAD
    HandleObject *handle;
    cb_permit permit;
    int verdict;  /* CB_ALLOWED or CB_PROBE */
    unsigned long forks; /* cbext_forks when acquired: see Permit_dealloc */
    int reported; /* a report (or release) consumed it */
} PermitObject;

extern PyTypeObject Handle_Type;
extern PyTypeObject Permit_Type;

/* Exception classes from cbreaker._errors, imported at module init. */
extern PyObject *cbext_open_exception; /* CircuitBreakerOpenException */
extern PyObject *cbext_segment_error;  /* SegmentError */
extern PyObject *cbext_mode_error;     /* ModeError */

/* ---- module.c ---- */
/* Bumped in every child of fork(): a permit copied into a child is not
 * the child's to release when it is dropped. */
extern unsigned long cbext_forks;
/* The UTF-8 of a circuit name given as a str; -1 with TypeError or
 * ValueError (embedded NUL) set. The library checks the rest. */
int cbext_name(PyObject *name, const char **out);

/* ---- handle.c ---- */
/* Hand the transitions the last library call made to on_events. */
void handle_flush_events(HandleObject *h);

/* ---- permit.c ---- */
enum cbext_verdict { CBEXT_SUCCESS, CBEXT_FAILURE, CBEXT_RELEASE };
/* What an outcome says about the call: no exception (NULL or None) is a
 * success; an exception that is not an Exception (CancelledError,
 * KeyboardInterrupt, SystemExit) or is in h->exclude gives no verdict;
 * any other is a failure of the dependency. */
enum cbext_verdict cbext_verdict_for(HandleObject *h, PyObject *exc);
/* Apply a verdict to *permit (cb_success/cb_failure/cb_release). */
void cbext_report(HandleObject *h, cb_permit *permit, enum cbext_verdict v);

/* ---- config.c ---- */
/* CONFIG_FIELDS: tuple of (c_name, unit, min, max, doc), unit "count",
 * "ms", "percent", "mode" or "flags"; min..max: the range of a value given
 * (C unit; 0, 0: not a range). */
PyObject *config_fields_tuple(void);
/* Fill *cfg from a dict {c_name: int}; 0 on success, -1 with an exception. */
int config_from_dict(PyObject *dict, cb_config *cfg);
/* The config of a snapshot as a dict {c_name: int}, in table order. */
PyObject *config_to_dict(const cb_config *cfg);

/* ---- errors.c ---- */
/* Raise the exception for library error rc about circuit name (may be
 * NULL); returns NULL so callers can `return cbext_raise(...)`. */
PyObject *cbext_raise(int rc, const char *name);

/* ---- info.c ---- */
/* The "circuit" object of `cbctl show --json`, as a dict. */
PyObject *info_to_dict(const cb_info *in);

#endif
