/*
 * permit.c - Permit: one cb_permit from Handle.acquire().
 *
 * The first report (success, failure, release, or report(exc), which
 * picks one from an exception) consumes it; later reports do nothing, as
 * in the library. A permit dropped without a report is released, so a
 * forgotten probe frees its slot at once rather than when its lease runs
 * out; but only in the process that acquired it: a copy that a fork()
 * child drops must not free the parent's probe. As a context manager it
 * reports what the block did.
 */
#include "cbext.h"

void cbext_report(HandleObject *h, cb_permit *permit, enum cbext_verdict v)
{
    if (v == CBEXT_SUCCESS)
        cb_success(h->b, permit);
    else if (v == CBEXT_FAILURE)
        cb_failure(h->b, permit);
    else
        cb_release(h->b, permit);
    if (h->npending)
        handle_flush_events(h);
}

enum cbext_verdict cbext_verdict_for(HandleObject *h, PyObject *exc)
{
    if (!exc || exc == Py_None)
        return CBEXT_SUCCESS;
    if (!PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception))
        return CBEXT_RELEASE;
    PyObject *exclude = h->exclude;
    if (exclude && PyTuple_GET_SIZE(exclude) > 0 && PyErr_GivenExceptionMatches(exc, exclude))
        return CBEXT_RELEASE;
    return CBEXT_FAILURE;
}

static void apply(PermitObject *p, enum cbext_verdict v)
{
    if (p->reported)
        return;
    p->reported = 1;
    cbext_report(p->handle, &p->permit, v);
}

static PyObject *Permit_success(PermitObject *self, PyObject *unused)
{
    (void)unused;
    apply(self, CBEXT_SUCCESS);
    return Py_NewRef(Py_None);
}

static PyObject *Permit_failure(PermitObject *self, PyObject *unused)
{
    (void)unused;
    apply(self, CBEXT_FAILURE);
    return Py_NewRef(Py_None);
}

static PyObject *Permit_release(PermitObject *self, PyObject *unused)
{
    (void)unused;
    apply(self, CBEXT_RELEASE);
    return Py_NewRef(Py_None);
}

static PyObject *Permit_report(PermitObject *self, PyObject *exc)
{
    if (exc != Py_None && !PyExceptionInstance_Check(exc)) {
        PyErr_Format(PyExc_TypeError, "report() takes an exception or None, not %.100s", Py_TYPE(exc)->tp_name);
        return NULL;
    }
    apply(self, cbext_verdict_for(self->handle, exc));
    return Py_NewRef(Py_None);
}

static PyObject *Permit_enter(PermitObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self);
}

static PyObject *Permit_exit(PermitObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes 3 arguments");
        return NULL;
    }
    PyObject *type = args[0], *exc = args[1];
    apply(self, type == Py_None                 ? CBEXT_SUCCESS
                : PyExceptionInstance_Check(exc) ? cbext_verdict_for(self->handle, exc)
                                                 : CBEXT_FAILURE);
    return Py_NewRef(Py_False);
}

static PyObject *Permit_get_is_probe(PermitObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->verdict == CB_PROBE);
}

static PyObject *Permit_get_reported(PermitObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->reported);
}

static void Permit_dealloc(PermitObject *self)
{
    if (!self->reported && self->handle->b && self->forks == cbext_forks) {
        self->reported = 1;
        cb_release(self->handle->b, &self->permit); /* never a transition: no event */
    }
    Py_DECREF(self->handle);
    PyObject_Free(self);
}

static PyMethodDef Permit_methods[] = {
    {"success", (PyCFunction)Permit_success, METH_NOARGS, "Report that the call succeeded (cb_success)."},
    {"failure", (PyCFunction)Permit_failure, METH_NOARGS, "Report that the dependency failed (cb_failure)."},
    {"release", (PyCFunction)Permit_release, METH_NOARGS, "Give the permit back without a verdict (cb_release)."},
    {"report", (PyCFunction)Permit_report, METH_O,
     "report(exc): None is a success; an excluded exception or one that is not an Exception\n"
     "(CancelledError, KeyboardInterrupt) releases; any other exception is a failure."},
    {"__enter__", (PyCFunction)Permit_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Permit_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Permit_getset[] = {
    {"is_probe", (getter)Permit_get_is_probe, NULL, "True if this is the one HALF_OPEN probe", NULL},
    {"reported", (getter)Permit_get_reported, NULL, "True once a report consumed it", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject Permit_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cbreaker._cbreaker.Permit",
    .tp_doc = PyDoc_STR("A permission to call the dependency once (cb_permit), from Handle.acquire()."),
    .tp_basicsize = sizeof(PermitObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_dealloc = (destructor)Permit_dealloc,
    .tp_methods = Permit_methods,
    .tp_getset = Permit_getset,
};
