/*
 * errors.c - library error codes as Python exceptions, with the
 * library's message (cb_strerror):
 *
 *   CB_ENAME, -EINVAL            ValueError
 *   -EACCES, -EPERM, CB_EOWNER   PermissionError (errno EACCES/EPERM;
 *                                CB_EOWNER: a segment whose owner or
 *                                mode the caller does not trust)
 *   CB_EMODE                     cbreaker.ModeError (.code, .name):
 *                                reset/trip refused in an operator mode
 *   any other CB_E* code         cbreaker.SegmentError (.code, .name),
 *                                including codes newer than this file
 *   any other -errno             OSError with that errno (so -ENOENT is
 *                                FileNotFoundError), filename = name
 */
#include <errno.h>

#include "cbext.h"

PyObject *cbext_open_exception;
PyObject *cbext_segment_error;
PyObject *cbext_mode_error;

static PyObject *os_error(int err, const char *msg, const char *name)
{
    PyObject *exc = name ? PyObject_CallFunction(PyExc_OSError, "iss", err, msg, name)
                         : PyObject_CallFunction(PyExc_OSError, "is", err, msg);
    if (exc) { /* OSError(errno, ...) is already the subclass for errno */
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *cbext_raise(int rc, const char *name)
{
    const char *msg = cb_strerror(rc);
    if (rc == CB_ENAME || rc == -EINVAL) {
        if (name)
            PyErr_Format(PyExc_ValueError, "%s: %s", name, msg);
        else
            PyErr_SetString(PyExc_ValueError, msg);
        return NULL;
    }
    if (rc == CB_EOWNER)
        return os_error(EPERM, msg, name);
    if (rc <= CB_ERROR_BASE) {
        PyObject *cls = rc == CB_EMODE ? cbext_mode_error : cbext_segment_error;
        PyObject *exc = PyObject_CallFunction(cls, "siz", msg, rc, name);
        if (exc) {
            PyErr_SetObject(cls, exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    return os_error(-rc, msg, name);
}
