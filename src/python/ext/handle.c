/*
 * handle.c - Handle: one cb_breaker (cb_open, cb_attach or
 * cb_open_private), the calls on it, and its transition events.
 *
 * Events: the library calls the listener synchronously, inside the call
 * that made the transition, only in the process whose CAS made it. The
 * listener here runs no Python: it copies the transition into the
 * handle. When the library call has returned, the method hands what was
 * recorded to on_events (the Python layer logs it), so every transition
 * is announced once on the host, by the process that made it. The GIL is
 * held throughout: the library calls take nanoseconds and never block.
 */
#include "cbext.h"

static void record_transition(const cb_event *ev, void *ctx)
{
    HandleObject *h = ctx;
    if (h->npending < CBEXT_PENDING_MAX)
        h->pending[h->npending++] = ev->transition;
    else
        h->dropped++;
}

void handle_flush_events(HandleObject *h)
{
    cb_transition events[CBEXT_PENDING_MAX];
    unsigned n = h->npending;
    memcpy(events, h->pending, n * sizeof events[0]);
    h->npending = 0; /* before any Python runs: it may call into this handle */
    if (!h->on_events || h->on_events == Py_None)
        return;
    PyObject *list = PyList_New(n);
    for (unsigned i = 0; list && i < n; i++) {
        const cb_transition *t = &events[i];
        PyObject *item = Py_BuildValue("(ssssIiKs)", cb_event_name(t), cb_state_name(t->from), cb_state_name(t->to),
                                       cb_reason_name(t->reason), (unsigned)t->failures, (int)t->pid,
                                       (unsigned long long)t->wall_ms, cb_mode_name(t->mode));
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    PyObject *result = list ? PyObject_CallOneArg(h->on_events, list) : NULL;
    Py_XDECREF(list);
    if (!result) /* a logging failure must not lose the caller's permit */
        PyErr_WriteUnraisable(h->on_events);
    Py_XDECREF(result);
}

static inline void flush_if_pending(HandleObject *h)
{
    if (h->npending)
        handle_flush_events(h);
}

static int Handle_init(HandleObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "config", "private", "attach", NULL};
    PyObject *name = Py_None, *config = Py_None;
    int is_private = 0, attach = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|pp:Handle", kwlist, &name, &config, &is_private, &attach))
        return -1;
    if (self->b) {
        PyErr_SetString(PyExc_RuntimeError, "Handle is already open");
        return -1;
    }
    const char *cname = "private"; /* only labels an unnamed private breaker */
    if (name != Py_None && cbext_name(name, &cname) < 0)
        return -1;
    if (name == Py_None && !is_private) {
        PyErr_SetString(PyExc_ValueError, "a shared circuit needs a name");
        return -1;
    }
    cb_config cfg;
    if (config != Py_None && config_from_dict(config, &cfg) < 0)
        return -1;
    if (attach && (is_private || config != Py_None)) {
        PyErr_SetString(PyExc_ValueError, "attach takes a name only");
        return -1;
    }
    const cb_config *cfgp = config == Py_None ? NULL : &cfg;
    cb_breaker *b = NULL;
    int rc = is_private ? cb_open_private(cname, cfgp, &b) : attach ? cb_attach(cname, &b) : cb_open(cname, cfgp, &b);
    if (rc < 0) {
        cbext_raise(rc, name == Py_None ? NULL : cname);
        return -1;
    }
    self->b = b;
    self->is_private = is_private;
    Py_INCREF(name);
    Py_XSETREF(self->name, name);
    cb_set_listener(b, record_transition, self);
    return 0;
}

static PyObject *Handle_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    HandleObject *self = (HandleObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->name = Py_NewRef(Py_None);
    self->exclude = PyTuple_New(0);
    self->on_events = Py_NewRef(Py_None);
    if (!self->exclude) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int Handle_traverse(HandleObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->exclude);
    Py_VISIT(self->on_events);
    return 0;
}

static int Handle_clear(HandleObject *self)
{
    Py_CLEAR(self->exclude);
    Py_CLEAR(self->on_events);
    return 0;
}

static void Handle_dealloc(HandleObject *self)
{
    PyObject_GC_UnTrack(self);
    Handle_clear(self);
    Py_CLEAR(self->name);
    cb_close(self->b);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Every method needs an open handle: Handle.__new__ without __init__ has none. */
static int check_open(HandleObject *self)
{
    if (self->b)
        return 0;
    PyErr_SetString(PyExc_ValueError, "Handle is not open");
    return -1;
}

static cb_info *snapshot(HandleObject *self)
{
    cb_info *in = PyMem_Malloc(sizeof *in);
    if (!in) {
        PyErr_NoMemory();
        return NULL;
    }
    int rc = cb_get_info(self->b, in);
    if (rc < 0 && rc != CB_ECORRUPT) {
        PyMem_Free(in);
        cbext_raise(rc, NULL);
        return NULL;
    }
    return in;
}

/* CircuitBreakerOpenException(name, state, retry_after) for a rejection;
 * retry_after None when an operator forced the circuit open: no time
 * admits a call then, only a change of mode. */
static PyObject *raise_open(HandleObject *self)
{
    cb_info *in = snapshot(self);
    if (!in)
        return NULL;
    uint64_t ms = in->state == CB_OPEN ? in->ms_until_probe : in->state == CB_HALF_OPEN ? in->probe_lease_ms : 0;
    PyObject *retry = in->mode == CB_MODE_FORCED_OPEN ? Py_NewRef(Py_None) : PyFloat_FromDouble((double)ms / 1000.0);
    PyObject *exc = retry ? PyObject_CallFunction(cbext_open_exception, "OsO", self->name, cb_state_name(in->state),
                                                  retry)
                          : NULL;
    Py_XDECREF(retry);
    PyMem_Free(in);
    if (exc) {
        PyErr_SetObject(cbext_open_exception, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *Handle_acquire(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (check_open(self))
        return NULL;
    PermitObject *p = PyObject_New(PermitObject, &Permit_Type);
    if (!p)
        return NULL;
    p->handle = (HandleObject *)Py_NewRef(self);
    p->reported = 0;
    p->forks = cbext_forks;
    p->verdict = (int)cb_acquire(self->b, &p->permit);
    if (p->verdict == CB_REJECTED) {
        p->reported = 1;
        Py_DECREF(p);
        return raise_open(self);
    }
    flush_if_pending(self);
    return (PyObject *)p;
}

/* call_sync(func, *args, **kwargs): acquire, call, report, all here (the
 * sync hot path: no permit object, no Python frame of ours). The
 * exception func raised propagates unchanged; events are handed on
 * while it is set aside, so the logger never runs with it pending. */
static PyObject *Handle_call_sync(HandleObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call_sync() needs the function to call");
        return NULL;
    }
    if (check_open(self))
        return NULL;
    cb_permit permit;
    if (cb_acquire(self->b, &permit) == CB_REJECTED)
        return raise_open(self);
    flush_if_pending(self);
    PyObject *result = PyObject_Vectorcall(args[0], args + 1, (size_t)(nargs - 1), kwnames);
    if (result) {
        cbext_report(self, &permit, CBEXT_SUCCESS);
        return result;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb)
        PyException_SetTraceback(value, tb);
    cbext_report(self, &permit, cbext_verdict_for(self, value));
    PyErr_Restore(type, value, tb);
    return NULL;
}

/* The circuit's name for an error message; NULL for an unnamed one. */
static const char *error_name(HandleObject *self)
{
    return PyUnicode_Check(self->name) ? PyUnicode_AsUTF8(self->name) : NULL;
}

static PyObject *force(HandleObject *self, int (*fn)(cb_breaker *))
{
    if (check_open(self))
        return NULL;
    int rc = fn(self->b);
    if (rc < 0)
        return cbext_raise(rc, error_name(self)); /* CB_EMODE: ModeError */
    flush_if_pending(self);
    return PyUnicode_FromString(cb_state_name((cb_state)rc));
}

static PyObject *Handle_reset(HandleObject *self, PyObject *unused)
{
    (void)unused;
    return force(self, cb_reset);
}

static PyObject *Handle_trip(HandleObject *self, PyObject *unused)
{
    (void)unused;
    return force(self, cb_trip);
}

/* set_mode(name) -> the name of the mode replaced (cb_set_mode). */
static PyObject *Handle_set_mode(HandleObject *self, PyObject *name)
{
    if (check_open(self))
        return NULL;
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "mode must be a str (cbreaker.MODE_*), not %.100s", Py_TYPE(name)->tp_name);
        return NULL;
    }
    int mode = -1;
    for (int m = CB_MODE_NORMAL; mode < 0 && m <= CB_MODE_METRICS_ONLY; m++)
        if (PyUnicode_CompareWithASCIIString(name, cb_mode_name((cb_mode)m)) == 0)
            mode = m;
    if (mode < 0) {
        PyErr_Format(PyExc_ValueError, "mode must be 'normal', 'disabled', 'forced_open' or 'metrics_only', not %R",
                     name);
        return NULL;
    }
    int rc = cb_set_mode(self->b, (cb_mode)mode);
    if (rc < 0)
        return cbext_raise(rc, error_name(self));
    flush_if_pending(self);
    return PyUnicode_FromString(cb_mode_name((cb_mode)rc));
}

static PyObject *Handle_info(HandleObject *self, PyObject *unused)
{
    (void)unused;
    if (check_open(self))
        return NULL;
    cb_info *in = snapshot(self);
    if (!in)
        return NULL;
    PyObject *d = info_to_dict(in);
    PyMem_Free(in);
    return d;
}

static PyObject *Handle_get_state(HandleObject *self, void *closure)
{
    (void)closure;
    if (check_open(self))
        return NULL;
    return PyUnicode_FromString(cb_state_name(cb_get_state(self->b)));
}

static PyObject *Handle_get_failures(HandleObject *self, void *closure)
{
    (void)closure;
    if (check_open(self))
        return NULL;
    cb_info *in = snapshot(self);
    if (!in)
        return NULL;
    PyObject *n = PyLong_FromUnsignedLong(in->failures);
    PyMem_Free(in);
    return n;
}

static PyObject *Handle_get_mode(HandleObject *self, void *closure)
{
    (void)closure;
    if (check_open(self))
        return NULL;
    cb_info *in = snapshot(self);
    if (!in)
        return NULL;
    PyObject *m = PyUnicode_FromString(cb_mode_name(in->mode));
    PyMem_Free(in);
    return m;
}

static PyObject *Handle_get_exclude(HandleObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->exclude);
}

static int Handle_set_exclude(HandleObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (!value || !PyTuple_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "exclude must be a tuple of exception classes");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(value); i++) {
        PyObject *c = PyTuple_GET_ITEM(value, i);
        if (!PyExceptionClass_Check(c)) {
            PyErr_Format(PyExc_TypeError, "exclude must hold exception classes, not %R", c);
            return -1;
        }
    }
    Py_XSETREF(self->exclude, Py_NewRef(value));
    return 0;
}

static PyObject *Handle_get_on_events(HandleObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->on_events);
}

static int Handle_set_on_events(HandleObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (!value || (value != Py_None && !PyCallable_Check(value))) {
        PyErr_SetString(PyExc_TypeError, "on_events must be a callable or None");
        return -1;
    }
    Py_XSETREF(self->on_events, Py_NewRef(value));
    return 0;
}

static PyObject *Handle_get_name(HandleObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(self->name);
}

static PyObject *Handle_get_private(HandleObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->is_private);
}

static PyObject *Handle_get_dropped(HandleObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(self->dropped);
}

static PyMethodDef Handle_methods[] = {
    {"acquire", (PyCFunction)Handle_acquire, METH_NOARGS,
     "acquire() -> Permit: cb_acquire; raises CircuitBreakerOpenException when rejected."},
    {"call_sync", (PyCFunction)(void (*)(void))Handle_call_sync, METH_FASTCALL | METH_KEYWORDS,
     "call_sync(func, *args, **kwargs): func through the breaker (see CircuitBreaker.call_sync)."},
    {"reset", (PyCFunction)Handle_reset, METH_NOARGS, "reset() -> str: cb_reset; returns the state replaced."},
    {"trip", (PyCFunction)Handle_trip, METH_NOARGS, "trip() -> str: cb_trip; returns the state replaced."},
    {"set_mode", (PyCFunction)Handle_set_mode, METH_O,
     "set_mode(name) -> str: cb_set_mode; returns the name of the mode replaced."},
    {"info", (PyCFunction)Handle_info, METH_NOARGS, "info() -> dict: cb_get_info as `cbctl show --json`."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Handle_getset[] = {
    {"state", (getter)Handle_get_state, NULL, "'CLOSED', 'OPEN' or 'HALF_OPEN' (cb_get_state)", NULL},
    {"failures", (getter)Handle_get_failures, NULL, "consecutive failures counted in CLOSED", NULL},
    {"mode", (getter)Handle_get_mode, NULL, "the operator mode: 'normal', 'disabled', 'forced_open', 'metrics_only'",
     NULL},
    {"exclude", (getter)Handle_get_exclude, (setter)Handle_set_exclude,
     "exception classes that release a permit instead of failing it", NULL},
    {"on_events", (getter)Handle_get_on_events, (setter)Handle_set_on_events,
     "called with a list of (event, from, to, reason, failures, pid, wall_ms, mode) after a call made transitions",
     NULL},
    {"name", (getter)Handle_get_name, NULL, "the circuit name, None for an unnamed private breaker", NULL},
    {"private", (getter)Handle_get_private, NULL, "True for a process-private breaker", NULL},
    {"dropped", (getter)Handle_get_dropped, NULL, "transitions not handed to on_events (overflow)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject Handle_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cbreaker._cbreaker.Handle",
    .tp_doc = PyDoc_STR("Handle(name, config, private=False, attach=False): one cb_breaker.\n\n"
                        "name: str, or None for an unnamed private breaker; config: dict of cb_config\n"
                        "field names to ints (zero: the library default), or None."),
    .tp_basicsize = sizeof(HandleObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Handle_new,
    .tp_init = (initproc)Handle_init,
    .tp_dealloc = (destructor)Handle_dealloc,
    .tp_traverse = (traverseproc)Handle_traverse,
    .tp_clear = (inquiry)Handle_clear,
    .tp_methods = Handle_methods,
    .tp_getset = Handle_getset,
};
