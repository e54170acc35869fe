/* sako.i — SWIG interface of the raw extension module sako._sako.
 *
 * Users never import _sako: the package `sako` (sako/_engine.py) wraps it. This layer
 * only moves data across the boundary and keeps three promises:
 *
 *  1. Every C call runs with the GIL released (one %exception below), so threads
 *     calling recommend() run in parallel; the GIL is taken back before anything
 *     touches a Python object or raises.
 *  2. Every failing status becomes the Python exception registered for its code (one
 *     typemap on the `sako_rc` return type, the classes come from the single table in
 *     sako/_errors.py), with sako_errmsg() as its text.
 *  3. No crash from misuse: a closed engine answers SAKO_MISUSE "engine is closed",
 *     and close() waits for calls in flight on other threads before freeing anything.
 *
 * Arrays cross over the buffer protocol (Py_buffer): inputs must be 1-D, C-contiguous
 * and of the exact item type (the Python layer converts with numpy first); outputs are
 * caller-allocated writable buffers. The library never keeps a pointer to them.
 */
%module _sako

%{
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <time.h>
#include <sched.h>
#include "sako.h"
#include <structmember.h> /* T_OBJECT_EX */

/* ------------------------------------------------------------ the handle */

/* What Python holds instead of a bare sako_engine*: the count of calls in flight lets
 * close() wait for other threads, and `closed` turns later calls into SAKO_MISUSE. */
/* The status a wrapped call returns (see the sako_rc typemap). */
typedef int sako_rc;

typedef struct sakopy_engine {
    sako_engine *eng;
    int closed;     /* set once by close(); read atomically */
    long inflight;  /* calls currently inside the C library */
} sakopy_engine;

/* Message of a failure detected by this layer rather than by libsako (per thread,
 * read by sakopy_raise() right after the call, with the GIL held again). */
static __thread char sakopy_msg[320];
static __thread int sakopy_have_msg;

static int sakopy_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sakopy_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sakopy_msg, sizeof sakopy_msg, fmt, ap);
    va_end(ap);
    sakopy_have_msg = 1;
    return rc;
}

/* Enter a call: sets *e to the engine and returns 1, or returns 0 (with the message
 * "engine is closed") when the handle is closed. Sequentially consistent atomics pair
 * with sakopy_close(): either close sees our increment and waits, or we see `closed`
 * and back out. A NULL handle enters with e = NULL: libsako then reports SAKO_MISUSE. */
static int sakopy_enter(sakopy_engine *h, sako_engine **e)
{
    *e = NULL;
    if (!h)
        return 1;
    __atomic_add_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->closed, __ATOMIC_SEQ_CST)) {
        __atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
        sakopy_fail(SAKO_MISUSE, "engine is closed");
        return 0;
    }
    *e = h->eng;
    return 1;
}

static void sakopy_leave(sakopy_engine *h)
{
    if (h)
        __atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
}


/* --------------------------------------------------------------- errors */

static PyObject *sakopy_error_map; /* {status code: exception class}, from sako/_errors.py */

static void sakopy_raise(int rc)
{
    const char *msg;
    PyObject *cls = NULL, *key, *text;

    if (sakopy_have_msg) {
        msg = sakopy_msg;
        sakopy_have_msg = 0;
    } else {
        msg = sako_errmsg();
    }
    if (!msg || !*msg)
        msg = sako_errstr(rc);
    key = PyLong_FromLong(rc);
    if (key && sakopy_error_map) {
        cls = PyDict_GetItemWithError(sakopy_error_map, key);
        if (!cls && !PyErr_Occurred()) /* an unknown code: the base class (key None) */
            cls = PyDict_GetItemWithError(sakopy_error_map, Py_None);
    }
    Py_XDECREF(key);
    if (PyErr_Occurred())
        return;
    if (!cls)
        cls = PyExc_RuntimeError; /* only before sako/_errors.py registered its table */
    text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    if (text) {
        PyErr_SetObject(cls, text);
        Py_DECREF(text);
    }
}

/* ------------------------------------------------------- result objects */

/* sako.Recommendation (a __slots__ class) registered by sako/_engine.py: results are
 * built here directly, filling the three slots through their member offsets, which is
 * several times cheaper than calling the class from Python for every item. */
static PyTypeObject *sakopy_rec_type;
static Py_ssize_t sakopy_rec_off[3];
static PyObject *sakopy_source_names; /* {source code: str} */

static PyObject *sakopy_rec_new(const sako_rec *r)
{
    PyObject *o, *v[3];
    int i;

    if (!sakopy_rec_type)
        return Py_BuildValue("(Ldi)", (long long)r->item_id, r->score, r->source);
    v[0] = PyLong_FromLongLong((long long)r->item_id);
    v[1] = PyFloat_FromDouble(r->score);
    v[2] = NULL;
    if (sakopy_source_names) {
        PyObject *key = PyLong_FromLong(r->source);
        v[2] = key ? PyDict_GetItemWithError(sakopy_source_names, key) : NULL;
        Py_XDECREF(key);
        Py_XINCREF(v[2]);
    }
    if (!v[2] && !PyErr_Occurred())
        v[2] = PyUnicode_FromFormat("source_%d", r->source);
    o = (v[0] && v[1] && v[2]) ? sakopy_rec_type->tp_alloc(sakopy_rec_type, 0) : NULL;
    if (!o) {
        for (i = 0; i < 3; i++)
            Py_XDECREF(v[i]);
        return NULL;
    }
    for (i = 0; i < 3; i++)
        *(PyObject **)((char *)o + sakopy_rec_off[i]) = v[i];
    return o;
}

/* --------------------------------------------------------------- buffers */

/* Get a 1-D C-contiguous buffer of one item type: 'q' int64, 'i' int32, 'd' double.
 * No conversion happens here; the Python layer converts with numpy first. */
static int sakopy_buffer(Py_buffer *v, PyObject *o, char kind, int writable, const char *what)
{
    const char *f;
    Py_ssize_t want = kind == 'i' ? 4 : 8;
    int ok;

    if (!PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a 1-D array (buffer), got %.100s", what,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(o, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT |
                                     (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_Format(PyExc_ValueError, "%s: unusable buffer (%S); pass a C-contiguous%s array",
                     what, value ? value : Py_None, writable ? " writable" : "");
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return -1;
    }
    f = v->format ? v->format : "B";
    if (*f == '@' || *f == '=' || *f == (PY_LITTLE_ENDIAN ? '<' : '>'))
        f++;
    if (kind == 'q')
        ok = (f[0] == 'q' || f[0] == 'l');
    else if (kind == 'i')
        ok = (f[0] == 'i' || f[0] == 'l');
    else
        ok = f[0] == 'd';
    ok = ok && f[1] == '\0' && v->itemsize == want;
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected %s items, got format '%s' of %zd bytes", what,
                     kind == 'q' ? "int64" : kind == 'i' ? "int32" : "float64",
                     v->format ? v->format : "B", v->itemsize);
        PyBuffer_Release(v);
        return -1;
    }
    if (v->ndim > 1) {
        PyErr_Format(PyExc_ValueError, "%s: expected a 1-D array, got %d dimensions", what,
                     v->ndim);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- options */

typedef struct sakopy_field {
    const char *name;
    char type; /* 'd' double, 'i' int, 'u' uint64 */
    size_t off;
} sakopy_field;

static const sakopy_field sakopy_option_fields[] = {
    {"reward_click", 'd', offsetof(sako_options, reward_click)},
    {"reward_cart", 'd', offsetof(sako_options, reward_cart)},
    {"reward_purchase", 'd', offsetof(sako_options, reward_purchase)},
    {"penalty_impression", 'd', offsetof(sako_options, penalty_impression)},
    {"prior", 'i', offsetof(sako_options, prior)},
    {"prior_strength", 'd', offsetof(sako_options, prior_strength)},
    {"category_shrinkage", 'd', offsetof(sako_options, category_shrinkage)},
    {"prior_refresh_events", 'u', offsetof(sako_options, prior_refresh_events)},
    {"seed", 'u', offsetof(sako_options, seed)},
    {"durability", 'i', offsetof(sako_options, durability)},
    {"unknown_items", 'i', offsetof(sako_options, unknown_items)},
    {"busy_timeout_ms", 'i', offsetof(sako_options, busy_timeout_ms)},
    {NULL, 0, 0}};

static int sakopy_options_from(PyObject *d, sako_options *o)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;

    if (d == Py_None)
        return 0;
    if (!PyDict_Check(d)) {
        PyErr_SetString(PyExc_TypeError, "options must be a dict");
        return -1;
    }
    while (PyDict_Next(d, &pos, &key, &value)) {
        const sakopy_field *f;
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!name) {
            PyErr_SetString(PyExc_TypeError, "option names must be str");
            return -1;
        }
        for (f = sakopy_option_fields; f->name; f++)
            if (strcmp(f->name, name) == 0)
                break;
        if (!f->name) {
            PyErr_Format(PyExc_TypeError, "unknown option '%s'", name);
            return -1;
        }
        if (f->type == 'd') {
            double x = PyFloat_AsDouble(value);
            if (x == -1.0 && PyErr_Occurred())
                return -1;
            *(double *)((char *)o + f->off) = x;
        } else if (f->type == 'i') {
            long x = PyLong_AsLong(value);
            if (x == -1 && PyErr_Occurred())
                return -1;
            if (x < INT32_MIN || x > INT32_MAX) {
                PyErr_Format(PyExc_OverflowError, "option '%s' out of range", name);
                return -1;
            }
            *(int *)((char *)o + f->off) = (int)x;
        } else {
            unsigned long long x = PyLong_AsUnsignedLongLong(value);
            if (x == (unsigned long long)-1 && PyErr_Occurred())
                return -1;
            *(uint64_t *)((char *)o + f->off) = (uint64_t)x;
        }
    }
    return 0;
}

static PyObject *sakopy_options_dict(const sako_options *o)
{
    const sakopy_field *f;
    PyObject *d = PyDict_New();
    for (f = sakopy_option_fields; d && f->name; f++) {
        const char *p = (const char *)o + f->off;
        PyObject *v = f->type == 'd'   ? PyFloat_FromDouble(*(const double *)p)
                      : f->type == 'i' ? PyLong_FromLong(*(const int *)p)
                                       : PyLong_FromUnsignedLongLong(*(const uint64_t *)p);
        if (!v || PyDict_SetItemString(d, f->name, v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(v);
    }
    return d;
}

#define SAKOPY_SET(d, key, mk)                                        \
    do {                                                              \
        PyObject *v_ = (mk);                                          \
        if (!v_ || PyDict_SetItemString((d), (key), v_) < 0) {        \
            Py_XDECREF(v_);                                           \
            Py_CLEAR(d);                                              \
            goto done;                                                \
        }                                                             \
        Py_DECREF(v_);                                                \
    } while (0)

static PyObject *sakopy_item_info_dict(const sako_item_info *i)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    SAKOPY_SET(d, "id", PyLong_FromLongLong(i->id));
    SAKOPY_SET(d, "category_id", PyLong_FromLongLong(i->category_id));
    SAKOPY_SET(d, "active", PyBool_FromLong(i->active));
    SAKOPY_SET(d, "added_at", PyLong_FromLongLong(i->added_at));
    SAKOPY_SET(d, "last_event_at", PyLong_FromLongLong(i->last_event_at));
    SAKOPY_SET(d, "impressions", PyFloat_FromDouble(i->impressions));
    SAKOPY_SET(d, "clicks", PyFloat_FromDouble(i->clicks));
    SAKOPY_SET(d, "carts", PyFloat_FromDouble(i->carts));
    SAKOPY_SET(d, "purchases", PyFloat_FromDouble(i->purchases));
    SAKOPY_SET(d, "prior_mean", PyFloat_FromDouble(i->prior_mean));
    SAKOPY_SET(d, "alpha", PyFloat_FromDouble(i->alpha));
    SAKOPY_SET(d, "beta", PyFloat_FromDouble(i->beta));
done:
    return d;
}

static PyObject *sakopy_stats_dict(const sako_stats *s)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    SAKOPY_SET(d, "n_items", PyLong_FromUnsignedLongLong(s->n_items));
    SAKOPY_SET(d, "n_active_items", PyLong_FromUnsignedLongLong(s->n_active_items));
    SAKOPY_SET(d, "n_categories", PyLong_FromUnsignedLongLong(s->n_categories));
    SAKOPY_SET(d, "n_users", PyLong_FromUnsignedLongLong(s->n_users));
    SAKOPY_SET(d, "n_events", PyLong_FromUnsignedLongLong(s->n_events));
    SAKOPY_SET(d, "events_since_refresh", PyLong_FromUnsignedLongLong(s->events_since_refresh));
    SAKOPY_SET(d, "model_version", PyLong_FromLongLong(s->model_version));
    SAKOPY_SET(d, "global_mean", PyFloat_FromDouble(s->global_mean));
done:
    return d;
}
%}

%include <stdint.i>

/* The status every wrapped call returns; SAKO_OK becomes None, a failure the
 * exception registered for its code. This is the one place errors are raised. */
typedef int sako_rc;
%typemap(out) sako_rc {
    if ($1 < 0) {
        sakopy_raise($1);
        SWIG_fail;
    }
    $result = Py_None;
    Py_INCREF(Py_None);
}

typedef struct sakopy_engine sakopy_engine;

/* ------------------------------------------------------------- typemaps */

/* Read-only arrays, None allowed (NULL, 0). */
%define SAKOPY_IN_ARRAY(CTYPE, KIND)
%typemap(in) (const CTYPE *IN_ARRAY, size_t IN_LEN) (Py_buffer view, int got = 0) {
    if ($input == Py_None) {
        $1 = NULL;
        $2 = 0;
    } else {
        if (sakopy_buffer(&view, $input, KIND, 0, "$1_name") < 0)
            SWIG_fail;
        got = 1;
        $1 = (CTYPE *)view.buf;
        $2 = (size_t)(view.len / view.itemsize);
    }
}
%typemap(freearg) (const CTYPE *IN_ARRAY, size_t IN_LEN) {
    if (got$argnum)
        PyBuffer_Release(&view$argnum);
}
%typemap(in) (CTYPE *OUT_ARRAY, size_t OUT_LEN) (Py_buffer view, int got = 0) {
    if ($input == Py_None) {
        $1 = NULL;
        $2 = 0;
    } else {
        if (sakopy_buffer(&view, $input, KIND, 1, "$1_name") < 0)
            SWIG_fail;
        got = 1;
        $1 = (CTYPE *)view.buf;
        $2 = (size_t)(view.len / view.itemsize);
    }
}
%typemap(freearg) (CTYPE *OUT_ARRAY, size_t OUT_LEN) {
    if (got$argnum)
        PyBuffer_Release(&view$argnum);
}
%enddef
SAKOPY_IN_ARRAY(int64_t, 'q')
SAKOPY_IN_ARRAY(int32_t, 'i')
SAKOPY_IN_ARRAY(double, 'd')

%apply (const int64_t *IN_ARRAY, size_t IN_LEN) {
    (const int64_t *exclude, size_t n_exclude), (const int64_t *recent, size_t n_recent),
    (const int64_t *users, size_t n_users), (const int64_t *items, size_t n_items),
    (const int64_t *times, size_t n_times), (const int64_t *rec_ids, size_t n_rec_ids),
    (const int64_t *ids, size_t n_ids), (const int64_t *parents, size_t n_parents),
    (const int64_t *categories, size_t n_categories), (const int64_t *added_at, size_t n_added)
};
%apply (const int32_t *IN_ARRAY, size_t IN_LEN) {
    (const int32_t *types, size_t n_types), (const int32_t *active, size_t n_active)
};
%apply (int64_t *OUT_ARRAY, size_t OUT_LEN) { (int64_t *ids_out, size_t n_ids_out) };
%apply (double *OUT_ARRAY, size_t OUT_LEN) { (double *scores_out, size_t n_scores_out) };
%apply (int32_t *OUT_ARRAY, size_t OUT_LEN) { (int32_t *sources_out, size_t n_sources_out) };

/* Category names: a tuple of str or None, turned into UTF-8 pointers that stay valid
 * while the tuple is alive (the caller keeps it alive for the whole call). */
%typemap(in) (const char **names, size_t n_names) (PyObject *tup = NULL, const char **arr = NULL) {
    if ($input == Py_None) {
        $1 = NULL;
        $2 = 0;
    } else {
        Py_ssize_t i, n;
        if (!PyTuple_Check($input)) {
            PyErr_SetString(PyExc_TypeError, "names must be a tuple of str or None");
            SWIG_fail;
        }
        tup = $input;
        n = PyTuple_GET_SIZE(tup);
        arr = (const char **)PyMem_Calloc(n ? (size_t)n : 1, sizeof *arr);
        if (!arr) {
            PyErr_NoMemory();
            SWIG_fail;
        }
        for (i = 0; i < n; i++) {
            PyObject *s = PyTuple_GET_ITEM(tup, i);
            Py_ssize_t len;
            if (s == Py_None)
                continue;
            if (!PyUnicode_Check(s)) {
                PyErr_Format(PyExc_TypeError, "names[%zd] must be str or None", i);
                SWIG_fail;
            }
            arr[i] = PyUnicode_AsUTF8AndSize(s, &len);
            if (!arr[i])
                SWIG_fail;
            if ((size_t)len != strlen(arr[i])) {
                sakopy_fail(SAKO_INVALID, "names[%zd] contains a NUL character", i);
                sakopy_raise(SAKO_INVALID);
                SWIG_fail;
            }
        }
        $1 = ($1_ltype)arr;
        $2 = (size_t)n;
    }
}
%typemap(freearg) (const char **names, size_t n_names) {
    PyMem_Free((void *)arr$argnum);
}

/* Options: a dict of field names (see sako_options), applied over SAKO_OPTIONS_INIT. */
%typemap(in) const sako_options *opts (sako_options tmp = SAKO_OPTIONS_INIT) {
    if (sakopy_options_from($input, &tmp) < 0)
        SWIG_fail;
    $1 = &tmp;
}

/* The new handle of open(). */
%typemap(in, numinputs = 0) sakopy_engine **handle_out (sakopy_engine *tmp = NULL) {
    $1 = &tmp;
}
%typemap(argout) sakopy_engine **handle_out {
    Py_DECREF($result);
    $result = SWIG_NewPointerObj(SWIG_as_voidptr(*$1), $descriptor(sakopy_engine *), 0);
}

/* Recommendations as a list of sako.Recommendation (tuples before registration). */
%typemap(in, numinputs = 0) (sako_rec *recs, size_t cap, size_t *n_recs)
    (sako_rec tmp[SAKO_MAX_K], size_t n = 0) {
    $1 = tmp;
    $2 = SAKO_MAX_K;
    $3 = &n;
}
%typemap(argout) (sako_rec *recs, size_t cap, size_t *n_recs) {
    PyObject *list = PyList_New((Py_ssize_t)*$3);
    size_t i;
    if (!list)
        SWIG_fail;
    for (i = 0; i < *$3; i++) {
        PyObject *t = sakopy_rec_new(&$1[i]);
        if (!t) {
            Py_DECREF(list);
            SWIG_fail;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    Py_DECREF($result);
    $result = list;
}

/* Counts written to caller buffers. */
%typemap(in, numinputs = 0) size_t *n_written (size_t n = 0) {
    $1 = &n;
}
%typemap(argout) size_t *n_written {
    Py_DECREF($result);
    $result = PyLong_FromSize_t(*$1);
}

%typemap(in, numinputs = 0) sako_item_info *info_out (sako_item_info tmp) {
    memset(&tmp, 0, sizeof tmp);
    $1 = &tmp;
}
%typemap(argout) sako_item_info *info_out {
    Py_DECREF($result);
    $result = sakopy_item_info_dict($1);
    if (!$result)
        SWIG_fail;
}

%typemap(in, numinputs = 0) sako_stats *stats_out (sako_stats tmp) {
    memset(&tmp, 0, sizeof tmp);
    $1 = &tmp;
}
%typemap(argout) sako_stats *stats_out {
    Py_DECREF($result);
    $result = sakopy_stats_dict($1);
    if (!$result)
        SWIG_fail;
}

%typemap(in, numinputs = 0) double *mean_out (double tmp = 0.0) {
    $1 = &tmp;
}
%typemap(argout) double *mean_out {
    Py_DECREF($result);
    $result = PyFloat_FromDouble(*$1);
}

/* Raw names lose their C prefix: _sako.recommend, _sako.update... */
%rename("%(strip:[sakopy_])s") "";

/* ---------------------------------------- calls that need the GIL held */
%inline %{
/* Register {status code or None: exception class}; called once by sako/_errors.py. */
static PyObject *sakopy_set_error_classes(PyObject *mapping)
{
    if (!PyDict_Check(mapping)) {
        PyErr_SetString(PyExc_TypeError, "expected a dict");
        return NULL;
    }
    Py_INCREF(mapping);
    Py_XSETREF(sakopy_error_map, mapping);
    Py_RETURN_NONE;
}

/* Register the result class (with __slots__ item_id, score, source) and the source
 * names; called once by sako/_engine.py. */
static PyObject *sakopy_set_result_class(PyObject *cls, PyObject *source_names)
{
    static const char *slots[3] = {"item_id", "score", "source"};
    Py_ssize_t off[3];
    int i;

    if (!PyType_Check(cls) || !PyDict_Check(source_names)) {
        PyErr_SetString(PyExc_TypeError, "expected a class and a dict");
        return NULL;
    }
    for (i = 0; i < 3; i++) {
        PyObject *d = PyObject_GetAttrString(cls, slots[i]);
        if (!d)
            return NULL;
        if (Py_TYPE(d) != &PyMemberDescr_Type ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            Py_DECREF(d);
            PyErr_Format(PyExc_TypeError, "%s must be a __slots__ member", slots[i]);
            return NULL;
        }
        off[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
    }
    Py_INCREF(cls);
    Py_INCREF(source_names);
    Py_XSETREF(sakopy_rec_type, (PyTypeObject *)cls);
    Py_XSETREF(sakopy_source_names, source_names);
    memcpy(sakopy_rec_off, off, sizeof off);
    Py_RETURN_NONE;
}

/* SAKO_OPTIONS_INIT as a dict: the defaults of the library actually linked. */
static PyObject *sakopy_default_options(void)
{
    sako_options o = SAKO_OPTIONS_INIT;
    return sakopy_options_dict(&o);
}
%}

/* ------------------------------------- every other call: GIL released */
%exception {
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}

%inline %{
static sako_rc sakopy_open(sakopy_engine **handle_out, const char *path, const sako_options *opts)
{
    sakopy_engine *h = (sakopy_engine *)calloc(1, sizeof *h);
    int rc;
    if (!h)
        return sakopy_fail(SAKO_NOMEM, "out of memory allocating the engine handle");
    rc = sako_init(&h->eng, path, opts);
    if (rc != SAKO_OK) {
        free(h);
        return rc;
    }
    *handle_out = h;
    return SAKO_OK;
}

/* Close: idempotent; waits until calls in flight on other threads have left. */
static void sakopy_close(sakopy_engine *h)
{
    if (!h || __atomic_exchange_n(&h->closed, 1, __ATOMIC_SEQ_CST))
        return;
    while (__atomic_load_n(&h->inflight, __ATOMIC_SEQ_CST) > 0) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    sako_close(h->eng);
    h->eng = NULL;
}

/* Close if needed and free the handle itself (called when the Python object dies). */
static void sakopy_free(sakopy_engine *h)
{
    sakopy_close(h);
    free(h);
}

static int sakopy_is_closed(sakopy_engine *h)
{
    return !h || __atomic_load_n(&h->closed, __ATOMIC_SEQ_CST);
}

static sako_rc sakopy_recommend(sakopy_engine *h, int64_t user_id, int k, int64_t category_id,
                                const int64_t *exclude, size_t n_exclude,
                                const int64_t *recent, size_t n_recent,
                                sako_rec *recs, size_t cap, size_t *n_recs)
{
    sako_query q = SAKO_QUERY_INIT;
    sako_engine *e;
    int rc;
    if (!sakopy_enter(h, &e))
        return SAKO_MISUSE;
    q.user_id = user_id;
    q.k = k;
    q.category_id = category_id;
    q.exclude = exclude;
    q.n_exclude = n_exclude;
    q.recent = recent;
    q.n_recent = n_recent;
    rc = sako_recommend(e, &q, recs, cap, n_recs);
    sakopy_leave(h);
    return rc;
}

/* The same query, results written into caller arrays (ids, scores, optional sources). */
static sako_rc sakopy_recommend_into(sakopy_engine *h, int64_t user_id, int k, int64_t category_id,
                                     const int64_t *exclude, size_t n_exclude,
                                     const int64_t *recent, size_t n_recent,
                                     int64_t *ids_out, size_t n_ids_out,
                                     double *scores_out, size_t n_scores_out,
                                     int32_t *sources_out, size_t n_sources_out,
                                     size_t *n_written)
{
    sako_rec recs[SAKO_MAX_K];
    sako_query q = SAKO_QUERY_INIT;
    size_t cap, i, n = 0;
    sako_engine *e;
    int rc;

    cap = n_ids_out < n_scores_out ? n_ids_out : n_scores_out;
    if (sources_out && n_sources_out < cap)
        cap = n_sources_out;
    if (cap > SAKO_MAX_K)
        cap = SAKO_MAX_K;
    if (!sakopy_enter(h, &e))
        return SAKO_MISUSE;
    q.user_id = user_id;
    q.k = k;
    q.category_id = category_id;
    q.exclude = exclude;
    q.n_exclude = n_exclude;
    q.recent = recent;
    q.n_recent = n_recent;
    rc = sako_recommend(e, &q, recs, cap, &n);
    sakopy_leave(h);
    if (rc != SAKO_OK)
        return rc;
    for (i = 0; i < n; i++) {
        ids_out[i] = recs[i].item_id;
        scores_out[i] = recs[i].score;
        if (sources_out)
            sources_out[i] = recs[i].source;
    }
    *n_written = n;
    return SAKO_OK;
}

/* Events from parallel arrays; times and rec_ids may be None (all 0: "now", "none").
 * The struct array is built here, without the GIL, and freed before returning. */
static sako_rc sakopy_update(sakopy_engine *h, const int64_t *users, size_t n_users,
                             const int64_t *items, size_t n_items,
                             const int32_t *types, size_t n_types,
                             const int64_t *times, size_t n_times,
                             const int64_t *rec_ids, size_t n_rec_ids)
{
    sako_event *ev;
    sako_engine *e;
    size_t i, n = n_users;
    int rc;

    if (n_items != n || n_types != n || (times && n_times != n) || (rec_ids && n_rec_ids != n))
        return sakopy_fail(SAKO_INVALID,
                           "event arrays differ in length: users %zu, items %zu, types %zu, "
                           "times %zu, rec_ids %zu",
                           n_users, n_items, n_types, times ? n_times : n,
                           rec_ids ? n_rec_ids : n);
    if (n > SAKO_MAX_BATCH)
        return sakopy_fail(SAKO_RANGE, "batch of %zu events exceeds SAKO_MAX_BATCH (%d)", n,
                           SAKO_MAX_BATCH);
    ev = (sako_event *)malloc((n ? n : 1) * sizeof *ev);
    if (!ev)
        return sakopy_fail(SAKO_NOMEM, "out of memory for %zu events", n);
    for (i = 0; i < n; i++) {
        ev[i].user_id = users[i];
        ev[i].item_id = items[i];
        ev[i].type = types[i];
        ev[i].time = times ? times[i] : 0;
        ev[i].rec_id = rec_ids ? rec_ids[i] : 0;
    }
    if (!sakopy_enter(h, &e)) {
        free(ev);
        return SAKO_MISUSE;
    }
    rc = sako_update(e, n ? ev : NULL, n);
    sakopy_leave(h);
    free(ev);
    return rc;
}

/* Categories from arrays; parents may be None (all 0), names None (all NULL). */
static sako_rc sakopy_categories_upsert(sakopy_engine *h, const int64_t *ids, size_t n_ids,
                                        const int64_t *parents, size_t n_parents,
                                        const char **names, size_t n_names)
{
    sako_category *c;
    sako_engine *e;
    size_t i, n = n_ids;
    int rc;

    if ((parents && n_parents != n) || (names && n_names != n))
        return sakopy_fail(SAKO_INVALID,
                           "category arrays differ in length: ids %zu, parents %zu, names %zu",
                           n, parents ? n_parents : n, names ? n_names : n);
    if (n > SAKO_MAX_BATCH)
        return sakopy_fail(SAKO_RANGE, "batch of %zu categories exceeds SAKO_MAX_BATCH (%d)", n,
                           SAKO_MAX_BATCH);
    c = (sako_category *)malloc((n ? n : 1) * sizeof *c);
    if (!c)
        return sakopy_fail(SAKO_NOMEM, "out of memory for %zu categories", n);
    for (i = 0; i < n; i++) {
        c[i].id = ids[i];
        c[i].parent_id = parents ? parents[i] : 0;
        c[i].name = names ? names[i] : NULL;
    }
    if (!sakopy_enter(h, &e)) {
        free(c);
        return SAKO_MISUSE;
    }
    rc = sako_categories_upsert(e, n ? c : NULL, n);
    sakopy_leave(h);
    free(c);
    return rc;
}

/* Items from arrays; categories None (0), active None (1), added_at None (0 = now). */
static sako_rc sakopy_items_upsert(sakopy_engine *h, const int64_t *ids, size_t n_ids,
                                   const int64_t *categories, size_t n_categories,
                                   const int32_t *active, size_t n_active,
                                   const int64_t *added_at, size_t n_added)
{
    sako_item *it;
    sako_engine *e;
    size_t i, n = n_ids;
    int rc;

    if ((categories && n_categories != n) || (active && n_active != n) ||
        (added_at && n_added != n))
        return sakopy_fail(SAKO_INVALID,
                           "item arrays differ in length: ids %zu, categories %zu, active %zu, "
                           "added_at %zu",
                           n, categories ? n_categories : n, active ? n_active : n,
                           added_at ? n_added : n);
    if (n > SAKO_MAX_BATCH)
        return sakopy_fail(SAKO_RANGE, "batch of %zu items exceeds SAKO_MAX_BATCH (%d)", n,
                           SAKO_MAX_BATCH);
    it = (sako_item *)malloc((n ? n : 1) * sizeof *it);
    if (!it)
        return sakopy_fail(SAKO_NOMEM, "out of memory for %zu items", n);
    for (i = 0; i < n; i++) {
        it[i].id = ids[i];
        it[i].category_id = categories ? categories[i] : 0;
        it[i].active = active ? active[i] : 1;
        it[i].added_at = added_at ? added_at[i] : 0;
    }
    if (!sakopy_enter(h, &e)) {
        free(it);
        return SAKO_MISUSE;
    }
    rc = sako_items_upsert(e, n ? it : NULL, n);
    sakopy_leave(h);
    free(it);
    return rc;
}

static sako_rc sakopy_retrain(sakopy_engine *h)
{
    sako_engine *e;
    int rc;
    if (!sakopy_enter(h, &e))
        return SAKO_MISUSE;
    rc = sako_retrain(e);
    sakopy_leave(h);
    return rc;
}

static sako_rc sakopy_item_get(sakopy_engine *h, int64_t item_id, sako_item_info *info_out)
{
    sako_engine *e;
    int rc;
    if (!sakopy_enter(h, &e))
        return SAKO_MISUSE;
    rc = sako_item_get(e, item_id, info_out);
    sakopy_leave(h);
    return rc;
}

static sako_rc sakopy_category_prior(sakopy_engine *h, int64_t category_id, double *mean_out)
{
    sako_engine *e;
    int rc;
    if (!sakopy_enter(h, &e))
        return SAKO_MISUSE;
    rc = sako_category_prior(e, category_id, mean_out);
    sakopy_leave(h);
    return rc;
}

static sako_rc sakopy_stats_get(sakopy_engine *h, sako_stats *stats_out)
{
    sako_engine *e;
    int rc;
    if (!sakopy_enter(h, &e))
        return SAKO_MISUSE;
    rc = sako_stats_get(e, stats_out);
    sakopy_leave(h);
    return rc;
}

/* A status code pushed through the error path, so tests can check every mapping. */
static sako_rc sakopy_raise_status(int status)
{
    if (status < 0)
        sakopy_fail(status, "raised on request: %s", sako_errstr(status));
    return status;
}

/* Bench: the same call through the whole binding, doing nothing in C (measures the
 * SWIG + GIL overhead alone). */
static sako_rc sakopy_noop(sakopy_engine *h)
{
    sako_engine *e;
    if (!sakopy_enter(h, &e))
        return SAKO_MISUSE;
    (void)e;
    sakopy_leave(h);
    return SAKO_OK;
}

/* Bench: nanoseconds per sako_recommend() over `iters` calls timed in C, no Python in
 * the loop; negative status on failure. */
static double sakopy_bench_recommend(sakopy_engine *h, int64_t user_id, int k, long iters)
{
    sako_rec recs[SAKO_MAX_K];
    sako_query q = SAKO_QUERY_INIT;
    struct timespec t0, t1;
    sako_engine *e;
    size_t n;
    long i;
    int rc = SAKO_OK;
    if (!sakopy_enter(h, &e) || !e)
        return SAKO_MISUSE;
    q.user_id = user_id;
    q.k = k;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < iters && rc == SAKO_OK; i++)
        rc = sako_recommend(e, &q, recs, SAKO_MAX_K, &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sakopy_leave(h);
    if (rc != SAKO_OK)
        return rc;
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
           (double)(iters > 0 ? iters : 1);
}

static const char *sakopy_version_string(void) { return sako_version_string(); }
static int sakopy_version_number(void) { return sako_version_number(); }
static const char *sakopy_errstr(int status) { return sako_errstr(status); }
static int sakopy_threadsafe(void) { return sako_threadsafe(); }
%}

/* Constants and enumerators of sako.h (SAKO_OK, SAKO_MAX_K, SAKO_EVENT_CLICK...); its
 * functions and structs are not wrapped directly, the helpers above are. */
%exception;
%constant long long SAKO_ID_MAX = SAKO_ID_MAX; /* a cast SWIG does not evaluate */
%rename("$ignore", %$isfunction) "";
%rename("$ignore", %$isclass) "";
%include "sako.h"
