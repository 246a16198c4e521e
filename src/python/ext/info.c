/*
 * info.c - a cb_info snapshot as the dict `cbctl show --json` prints
 * under "circuit" (tools/cbctl/show.c): same keys, same nesting, same
 * null-when-not-applicable fields, so a script can move from one to the
 * other.
 */
#include <time.h>

#include "cbext.h"

/* "2026-11-27T17:35:10.123Z", as cbctl's format_iso_time. */
static PyObject *iso_time(uint64_t wall_ms)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    char base[48];
    if (!gmtime_r(&t, &tm) || !strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm))
        return PyUnicode_FromString("?");
    return PyUnicode_FromFormat("%s.%03uZ", base, (unsigned)(wall_ms % 1000));
}

/* PyDict_SetItemString that steals value; -1 if value is NULL or on error. */
static int put(PyObject *d, const char *key, PyObject *value)
{
    if (!value)
        return -1;
    int rc = PyDict_SetItemString(d, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *uint_or_none(int applies, uint64_t v)
{
    if (applies)
        return PyLong_FromUnsignedLongLong(v);
    return Py_NewRef(Py_None);
}

static PyObject *transition_dict(const cb_transition *t)
{
    PyObject *d = PyDict_New();
    if (!d || put(d, "time", iso_time(t->wall_ms)) || put(d, "wall_ms", PyLong_FromUnsignedLongLong(t->wall_ms)) ||
        put(d, "event", PyUnicode_FromString(cb_event_name(t))) ||
        put(d, "from", PyUnicode_FromString(cb_state_name(t->from))) ||
        put(d, "to", PyUnicode_FromString(cb_state_name(t->to))) ||
        put(d, "reason", PyUnicode_FromString(cb_reason_name(t->reason))) ||
        put(d, "failures", PyLong_FromUnsignedLong(t->failures)) ||
        put(d, "pid", PyLong_FromUnsignedLong((uint32_t)t->pid)) ||
        put(d, "mode", PyUnicode_FromString(cb_mode_name(t->mode))))
        Py_CLEAR(d);
    return d;
}

static PyObject *counters_dict(const cb_counters *k)
{
    PyObject *d = PyDict_New();
    if (!d || put(d, "allowed", PyLong_FromUnsignedLongLong(k->allowed)) ||
        put(d, "rejected", PyLong_FromUnsignedLongLong(k->rejected)) ||
        put(d, "successes", PyLong_FromUnsignedLongLong(k->successes)) ||
        put(d, "failures", PyLong_FromUnsignedLongLong(k->failures)) ||
        put(d, "released", PyLong_FromUnsignedLongLong(k->released)) ||
        put(d, "late", PyLong_FromUnsignedLongLong(k->late)) ||
        put(d, "trips", PyLong_FromUnsignedLongLong(k->trips)) ||
        put(d, "probes", PyLong_FromUnsignedLongLong(k->probes)))
        Py_CLEAR(d);
    return d;
}

/* part x 100 / whole floored to hundredths, as cbctl's format_percent;
 * None for an empty window. */
static PyObject *rate(uint64_t part, uint64_t whole)
{
    if (whole == 0)
        return Py_NewRef(Py_None);
    return PyFloat_FromDouble((double)(part * 10000 / whole) / 100.0);
}

/* The rate rules' window now: its span, the sums over it, the rates. */
static PyObject *window_dict(const cb_info *in)
{
    PyObject *d = PyDict_New();
    if (!d || put(d, "span_ms", PyLong_FromUnsignedLong(in->config.window_ms)) ||
        put(d, "bucket_ms", PyLong_FromUnsignedLong(in->config.window_ms / 10)) ||
        put(d, "calls", PyLong_FromUnsignedLongLong(in->window_calls)) ||
        put(d, "failures", PyLong_FromUnsignedLongLong(in->window_failures)) ||
        put(d, "slow_calls", PyLong_FromUnsignedLongLong(in->window_slow_calls)) ||
        put(d, "failure_rate", rate(in->window_failures, in->window_calls)) ||
        put(d, "slow_call_rate", rate(in->window_slow_calls, in->window_calls)))
        Py_CLEAR(d);
    return d;
}

static PyObject *segment_dict(const cb_info *in)
{
    PyObject *d = PyDict_New();
    if (!d || put(d, "layout_version", PyLong_FromUnsignedLong(in->layout_version)) ||
        put(d, "size", PyLong_FromUnsignedLongLong(in->segment_size)))
        Py_CLEAR(d);
    return d;
}

static PyObject *history_list(const cb_info *in)
{
    unsigned n = in->history_len < CB_HISTORY_MAX ? in->history_len : CB_HISTORY_MAX;
    PyObject *l = PyList_New(n);
    for (unsigned i = 0; l && i < n; i++) {
        PyObject *t = transition_dict(&in->history[i]);
        if (!t)
            Py_CLEAR(l);
        else
            PyList_SET_ITEM(l, i, t);
    }
    return l;
}

PyObject *info_to_dict(const cb_info *in)
{
    PyObject *d = PyDict_New();
    if (!d || put(d, "name", PyUnicode_FromString(in->name)) ||
        put(d, "state", PyUnicode_FromString(cb_state_name(in->state))) ||
        put(d, "failures", PyLong_FromUnsignedLong(in->failures)) ||
        put(d, "generation", PyLong_FromUnsignedLong(in->generation)) ||
        put(d, "ms_until_probe",
            uint_or_none(in->state == CB_OPEN && in->mode != CB_MODE_FORCED_OPEN, in->ms_until_probe)) ||
        put(d, "probe_pid", uint_or_none(in->probe_pid != 0, (uint64_t)in->probe_pid)) ||
        put(d, "probe_lease_ms", uint_or_none(in->state == CB_HALF_OPEN, in->probe_lease_ms)) ||
        put(d, "mode", PyUnicode_FromString(cb_mode_name(in->mode))) ||
        put(d, "open_timeout_ms", PyLong_FromUnsignedLongLong(in->open_timeout_ms)) ||
        put(d, "backoff_step", PyLong_FromUnsignedLong(in->backoff_step)) || put(d, "window", window_dict(in)) ||
        put(d, "config", config_to_dict(&in->config)) || put(d, "segment", segment_dict(in)) ||
        put(d, "counters", counters_dict(&in->counters)) || put(d, "history", history_list(in)))
        Py_CLEAR(d);
    return d;
}
