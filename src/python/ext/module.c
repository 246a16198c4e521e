/*
 * module.c - the extension module cbreaker._cbreaker: its types
 * (Handle, Permit), the functions that need no handle (unlink, inspect,
 * list_circuits, version), and the constants the Python layer derives
 * its API from (CONFIG_FIELDS, MODES). Users import cbreaker, not this.
 */
#include <pthread.h>

#include "cbext.h"

unsigned long cbext_forks;

static void count_fork(void)
{
    cbext_forks++;
}

int cbext_name(PyObject *name, const char **out)
{
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "circuit name must be a str, not %.100s", Py_TYPE(name)->tp_name);
        return -1;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(name, &len);
    if (!s)
        return -1;
    if ((size_t)len != strlen(s)) {
        PyErr_Format(PyExc_ValueError, "%R: %s", name, cb_strerror(CB_ENAME));
        return -1;
    }
    *out = s;
    return 0;
}

static PyObject *mod_unlink(PyObject *mod, PyObject *name)
{
    (void)mod;
    const char *s;
    if (cbext_name(name, &s) < 0)
        return NULL;
    int rc = cb_unlink(s);
    if (rc < 0)
        return cbext_raise(rc, s);
    return Py_NewRef(Py_None);
}

static PyObject *mod_inspect(PyObject *mod, PyObject *name)
{
    (void)mod;
    const char *s;
    if (cbext_name(name, &s) < 0)
        return NULL;
    cb_info *in = PyMem_Malloc(sizeof *in);
    if (!in)
        return PyErr_NoMemory();
    int rc = cb_inspect(s, in);
    PyObject *d = rc == 0 || rc == CB_ECORRUPT ? info_to_dict(in) : cbext_raise(rc, s);
    PyMem_Free(in);
    return d;
}

/* cb_list callback: the names of valid circuits (a corrupt state word is
 * still a circuit: reset repairs it). */
static int collect_name(const char *name, const cb_info *info, int err, void *ctx)
{
    (void)info;
    if (err != 0 && err != CB_ECORRUPT)
        return 0;
    PyObject *s = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace");
    int rc = s ? PyList_Append(ctx, s) : -1;
    Py_XDECREF(s);
    return rc < 0 ? 1 : 0;
}

static PyObject *mod_list_circuits(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    PyObject *names = PyList_New(0);
    if (!names)
        return NULL;
    int rc = cb_list(collect_name, names);
    if (rc == 0)
        return names;
    Py_DECREF(names);
    return rc > 0 ? NULL : cbext_raise(rc, NULL); /* >0: collect_name stopped with an exception */
}

/* The exception a library error code becomes (errors.c), returned, not
 * raised: the mapping's own test reaches codes no call can provoke. */
static PyObject *mod_exception_for(PyObject *mod, PyObject *args)
{
    (void)mod;
    int code;
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "i|z:_exception_for", &code, &name))
        return NULL;
    if (code >= 0) {
        PyErr_SetString(PyExc_ValueError, "error codes are negative");
        return NULL;
    }
    cbext_raise(code, name);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

static PyObject *mod_version(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyUnicode_FromString(cb_version());
}

static PyMethodDef module_functions[] = {
    {"unlink", mod_unlink, METH_O, "unlink(name): cb_unlink."},
    {"inspect", mod_inspect, METH_O, "inspect(name) -> dict: cb_inspect, read-only, as `cbctl show --json`."},
    {"list_circuits", mod_list_circuits, METH_NOARGS, "list_circuits() -> list[str]: valid circuits (cb_list)."},
    {"_exception_for", mod_exception_for, METH_VARARGS, "_exception_for(code, name=None): for tests."},
    {"version", mod_version, METH_NOARGS, "version() -> str: the library's version (cb_version)."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *m)
{
    if (pthread_atfork(NULL, NULL, count_fork) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
        return -1;
    }
    PyObject *errors = PyImport_ImportModule("cbreaker._errors");
    if (!errors)
        return -1;
    cbext_open_exception = PyObject_GetAttrString(errors, "CircuitBreakerOpenException");
    cbext_segment_error = PyObject_GetAttrString(errors, "SegmentError");
    cbext_mode_error = PyObject_GetAttrString(errors, "ModeError");
    Py_DECREF(errors);
    if (!cbext_open_exception || !cbext_segment_error || !cbext_mode_error)
        return -1;
    if (PyType_Ready(&Handle_Type) < 0 || PyType_Ready(&Permit_Type) < 0 ||
        PyModule_AddObjectRef(m, "Handle", (PyObject *)&Handle_Type) < 0 ||
        PyModule_AddObjectRef(m, "Permit", (PyObject *)&Permit_Type) < 0)
        return -1;
    PyObject *fields = config_fields_tuple();
    if (!fields || PyModule_AddObject(m, "CONFIG_FIELDS", fields) < 0) {
        Py_XDECREF(fields);
        return -1;
    }
    PyObject *modes = Py_BuildValue("(ssss)", cb_mode_name(CB_MODE_NORMAL), cb_mode_name(CB_MODE_DISABLED),
                                    cb_mode_name(CB_MODE_FORCED_OPEN), cb_mode_name(CB_MODE_METRICS_ONLY));
    if (!modes || PyModule_AddObject(m, "MODES", modes) < 0) {
        Py_XDECREF(modes);
        return -1;
    }
    if (PyModule_AddIntConstant(m, "FOREIGN_OWNER_CODE", CB_EOWNER) < 0 ||
        PyModule_AddIntConstant(m, "MODE_ERROR_CODE", CB_EMODE) < 0 ||
        PyModule_AddIntConstant(m, "OPEN_TRUST_GROUP", CB_OPEN_TRUST_GROUP) < 0 ||
        PyModule_AddIntConstant(m, "OPEN_KEEP_CONFIG", CB_OPEN_KEEP_CONFIG) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "NAME_MAX", CB_NAME_MAX);
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cbreaker._cbreaker",
    .m_doc = "The C layer of cbreaker: thin types over libcbreaker. Import cbreaker instead.",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC PyInit__cbreaker(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && module_exec(m) < 0)
        Py_CLEAR(m);
    return m;
}
