/*
 * config.c - the one table of cb_config fields the Python API exposes.
 *
 * Each row names a cb_config member and its unit; everything else (the
 * keyword arguments of CircuitBreaker, their validation, seconds to ms,
 * the signature and docstring help() shows, info()["config"]) is derived
 * from it, here and in cbreaker/_config.py. A new cb_config field is one
 * more row. Units: "ms" fields are keywords in seconds without the _ms
 * suffix; "count" fields are positive ints; "percent" fields are ints in
 * percent (backoff_multiplier_pct=200 doubles the open period); "mode" is
 * permission bits; "flags" are how to open (CB_OPEN_*), not stored: info()
 * leaves them out. Every field is a uint32_t, zero (None in Python)
 * meaning the library's default, or the policy off. Each row also gives
 * the range a value given in Python must fall in, in the C unit, from the
 * header's limits (0, 0: none checked here: mode and flags have their own
 * rules); the library checks again (cb_open: -EINVAL, a ValueError).
 */
#include <stddef.h>
#include <string.h>

#include "cbext.h"

struct config_field {
    const char *name;
    size_t offset;
    const char *unit;
    uint32_t min, max; /* range of a value given, in the C unit */
    const char *doc;
};

/* offsetof, refusing (at compile time) a member that is not 32 bits. */
#define U32_OFFSET(f) \
    (offsetof(cb_config, f) + 0 * sizeof(char[sizeof(((cb_config *)0)->f) == sizeof(uint32_t) ? 1 : -1]))
#define FIELD(f, unit, min, max, doc) { #f, U32_OFFSET(f), unit, min, max, doc }

static const struct config_field fields[] = {
    FIELD(failure_threshold, "count", 1, UINT32_MAX, "consecutive failures that trip the circuit (library default 3)"),
    FIELD(reset_timeout_ms, "ms", 1, UINT32_MAX, "time OPEN before one probe may go (library default 60 s)"),
    FIELD(probe_timeout_ms, "ms", 1, UINT32_MAX, "lease of a probe that is never reported (default: reset_timeout)"),
    FIELD(mode, "mode", 0, 0, "permission bits of a segment created here (default 0o600)"),
    FIELD(failure_rate, "percent", 1, 100,
          "failures in the window, in percent of its calls, that trip the circuit (default: rule off)"),
    FIELD(minimum_calls, "count", 1, UINT32_MAX, "calls in the window before a rate rule may trip (default 10)"),
    FIELD(window_ms, "ms", CB_WINDOW_MS_MIN, CB_WINDOW_MS_MAX,
          "span of the rate rules' window, 10 buckets (default 10 s; 0.01 s to 1 h)"),
    FIELD(slow_call_ms, "ms", 1, CB_SLOW_CALL_MS_MAX,
          "a call reported later than this after its acquire is slow (default: rule off; at most 1 day)"),
    FIELD(slow_call_rate, "percent", 1, 100,
          "slow calls in the window, in percent of its calls, that trip (default 100)"),
    FIELD(backoff_multiplier_pct, "percent", 100, CB_BACKOFF_MULTIPLIER_MAX,
          "each failed probe multiplies the open period by this / 100: 200 doubles (default: off)"),
    FIELD(max_reset_timeout_ms, "ms", 1, UINT32_MAX,
          "cap of the open period grown by backoff (default 300 s; never below reset_timeout)"),
    FIELD(flags, "flags", 0, 0, "cbreaker.OPEN_TRUST_GROUP | cbreaker.OPEN_KEEP_CONFIG (default 0)"),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static uint32_t *member(cb_config *cfg, const struct config_field *f)
{
    return (uint32_t *)((char *)cfg + f->offset);
}

PyObject *config_fields_tuple(void)
{
    PyObject *t = PyTuple_New((Py_ssize_t)NFIELDS);
    for (size_t i = 0; t && i < NFIELDS; i++) {
        PyObject *row = Py_BuildValue("(sskks)", fields[i].name, fields[i].unit, (unsigned long)fields[i].min,
                                      (unsigned long)fields[i].max, fields[i].doc);
        if (!row) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, row);
    }
    return t;
}

int config_from_dict(PyObject *dict, cb_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "config must be a dict of cb_config field names to ints");
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        const struct config_field *f = NULL;
        for (size_t i = 0; !f && i < NFIELDS; i++)
            if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, fields[i].name) == 0)
                f = &fields[i];
        if (!f) {
            PyErr_Format(PyExc_TypeError, "unknown cb_config field %R", key);
            return -1;
        }
        if (!PyLong_Check(value) || PyBool_Check(value)) {
            PyErr_Format(PyExc_TypeError, "cb_config field %s must be an int, not %.100s", f->name,
                         Py_TYPE(value)->tp_name);
            return -1;
        }
        unsigned long long v = PyLong_AsUnsignedLongLong(value);
        if (PyErr_Occurred() || v > UINT32_MAX) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "cb_config field %s must be in 0..%lu, not %R", f->name,
                         (unsigned long)UINT32_MAX, value);
            return -1;
        }
        *member(cfg, f) = (uint32_t)v;
    }
    return 0;
}

PyObject *config_to_dict(const cb_config *cfg)
{
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < NFIELDS; i++) {
        if (strcmp(fields[i].unit, "flags") == 0)
            continue;
        uint32_t raw = *(const uint32_t *)((const char *)cfg + fields[i].offset);
        char octal[16];
        snprintf(octal, sizeof octal, "%04o", (unsigned)raw); /* as cbctl prints a mode */
        PyObject *v = strcmp(fields[i].unit, "mode") == 0 ? PyUnicode_FromString(octal)
                                                          : PyLong_FromUnsignedLong(raw);
        if (!v || PyDict_SetItemString(d, fields[i].name, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}
