/* sako.i — SWIG interface of the raw extension module sako._sako.
 *
 * Shaped like FAISS: SWIG wraps sako.h itself (%include at the bottom); this file adds
 * only what a C header cannot say. Users never import _sako; sako/_engine.py wraps it
 * and owns every conversion (struct layouts come from its one table of fields).
 *
 *  1. Every C call runs with the GIL released (the one %exception; update_orders's
 *     adds a length check first).
 *  2. A negative status becomes the exception of sako/_errors.py for its code, with
 *     sako_errmsg() as its text (the one typemap on `int` returns).
 *  3. Python holds a sakopy_engine, never a bare sako_engine*: a closed handle answers
 *     SAKO_MISUSE "engine is closed", and close() waits for calls in flight.
 *  4. Arrays, and the structs C fills, cross as buffers (the one buffer typemap): C
 *     contiguous, exact item size; C never keeps a pointer after the call.
 */
%module _sako

%{
#include <string.h>
#include <time.h>
#include "sako.h"
#include "mf_internal.h" /* sako__mf_train: per-iteration times of mf_fit */

typedef struct sakopy_engine {
    sako_engine *eng;
    int closed;    /* set once by close() */
    long inflight; /* calls inside the C library right now */
} sakopy_engine;

/* Sequentially consistent, paired with sakopy_close(): either close sees our
 * increment and waits, or we see `closed` and back out. */
static int sakopy_enter(sakopy_engine *h)
{
    __atomic_add_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&h->closed, __ATOMIC_SEQ_CST))
        return 1;
    __atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void sakopy_leave(sakopy_engine *h)
{
    __atomic_sub_fetch(&h->inflight, 1, __ATOMIC_SEQ_CST);
}

/* Raise through sako._errors._raise(code, message): the one table of classes lives
 * in Python. Called with the GIL held. */
static void sakopy_raise(int rc, const char *msg)
{
    static PyObject *raiser;
    PyObject *r;
    if (!raiser) {
        PyObject *m = PyImport_ImportModule("sako._errors");
        raiser = m ? PyObject_GetAttrString(m, "_raise") : NULL;
        Py_XDECREF(m);
        if (!raiser)
            return;
    }
    r = PyObject_CallFunction(raiser, "iy", rc, msg ? msg : "");
    if (r) { /* _raise always raises */
        Py_DECREF(r);
        PyErr_SetString(PyExc_RuntimeError, "sako._errors._raise returned");
    }
}

/* A 1-D C-contiguous buffer of items of `size` bytes; `formats` lists the accepted
 * struct-module codes of a scalar type, NULL for a struct (size is then the check). */
static int sakopy_buffer(PyObject *o, Py_buffer *v, Py_ssize_t size, const char *formats,
                         int writable)
{
    const char *f;
    int flags = PyBUF_C_CONTIGUOUS | (formats ? PyBUF_FORMAT : 0) | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(o, v, flags) < 0)
        return -1;
    f = v->format ? v->format : "B";
    f += (*f == '@' || *f == '=' || *f == (PY_LITTLE_ENDIAN ? '<' : '>'));
    if (v->ndim > 1 || v->itemsize != size ||
        (formats && (!f[0] || f[1] || !strchr(formats, f[0])))) {
        PyErr_Format(PyExc_TypeError,
                     "expected a 1-D array of %zd-byte items%s%s, got format '%s' of %zd bytes",
                     size, formats ? " of format " : "", formats ? formats : "",
                     v->format ? v->format : "?", v->itemsize);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}
%}

%include <stdint.i>

/* ------------------------------------------------------------------ the GIL */
%exception {
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}

/* ---------------------------------------------------------------- statuses */
%typemap(out) int {
    if ($1 < 0) {
        sakopy_raise($1, sako_errmsg());
        SWIG_fail;
    }
    $result = SWIG_Py_Void();
}
%typemap(out) int sako_version_number, int sako_threadsafe, int sakopy_is_closed {
    $result = PyLong_FromLong($1);
}

/* ------------------------------------------------------------------ handle */
typedef struct sakopy_engine sakopy_engine;

%typemap(in) sako_engine *engine (sakopy_engine *h = NULL) {
    void *p = NULL;
    if ($input != Py_None && !SWIG_IsOK(SWIG_ConvertPtr($input, &p, $descriptor(sakopy_engine *), 0)))
        SWIG_exception_fail(SWIG_TypeError, "expected an engine handle");
    if (p && !sakopy_enter((sakopy_engine *)p)) {
        sakopy_raise(SAKO_MISUSE, "engine is closed");
        SWIG_fail;
    }
    h = (sakopy_engine *)p;
    $1 = h ? h->eng : NULL; /* NULL: libsako answers SAKO_MISUSE */
}
%typemap(freearg) sako_engine *engine {
    if (h$argnum)
        sakopy_leave(h$argnum);
}

%typemap(in, numinputs = 0) sakopy_engine **out (sakopy_engine *tmp = NULL) {
    $1 = &tmp;
}
%typemap(argout) sakopy_engine **out {
    Py_DECREF($result);
    $result = SWIG_NewPointerObj(*$1, $descriptor(sakopy_engine *), 0);
}

%typemap(in, numinputs = 0) size_t *n_out (size_t n = 0) {
    $1 = &n;
}
%typemap(argout) size_t *n_out {
    Py_DECREF($result);
    $result = PyLong_FromSize_t(*$1);
}

/* ----------------------------------------------------------------- buffers */
%define SAKOPY_BUFFER(TYPE, FORMATS, WRITABLE)
%typemap(in) (TYPE *BUF, size_t LEN) (Py_buffer view, int got = 0) {
    $1 = NULL;
    $2 = 0;
    if ($input != Py_None) {
        if (sakopy_buffer($input, &view, (Py_ssize_t)sizeof(TYPE), FORMATS, WRITABLE) < 0)
            SWIG_fail;
        got = 1;
        $1 = ($1_ltype)view.buf;
        $2 = (size_t)(view.len / view.itemsize);
    }
}
%typemap(freearg) (TYPE *BUF, size_t LEN) {
    if (got$argnum)
        PyBuffer_Release(&view$argnum);
}
/* One struct that C fills: a buffer of at least one item. */
%typemap(in) TYPE *BUF (Py_buffer view, int got = 0) {
    if (sakopy_buffer($input, &view, (Py_ssize_t)sizeof(TYPE), FORMATS, WRITABLE) < 0)
        SWIG_fail;
    got = 1;
    if (view.len < view.itemsize)
        SWIG_exception_fail(SWIG_ValueError, "expected a buffer of at least one item");
    $1 = ($1_ltype)view.buf;
}
%typemap(freearg) TYPE *BUF {
    if (got$argnum)
        PyBuffer_Release(&view$argnum);
}
%enddef
SAKOPY_BUFFER(const int64_t, "qlL", 0)
SAKOPY_BUFFER(const sako_category, NULL, 0)
SAKOPY_BUFFER(const sako_item, NULL, 0)
SAKOPY_BUFFER(const sako_event, NULL, 0)
SAKOPY_BUFFER(const sako_options, NULL, 0)
SAKOPY_BUFFER(sako_rec, NULL, 1)
SAKOPY_BUFFER(sako_item_info, NULL, 1)
SAKOPY_BUFFER(sako_stats, NULL, 1)
SAKOPY_BUFFER(sako_options, NULL, 1)
SAKOPY_BUFFER(sako_user_info, NULL, 1)
SAKOPY_BUFFER(sako_user_item, NULL, 1)
SAKOPY_BUFFER(const sako_policy, NULL, 0)
SAKOPY_BUFFER(sako_policy, NULL, 1)
SAKOPY_BUFFER(sako_retrain_status, NULL, 1)
SAKOPY_BUFFER(sako_verify_report, NULL, 1)
SAKOPY_BUFFER(const sako_compact_options, NULL, 0)
SAKOPY_BUFFER(sako_compact_report, NULL, 1)
SAKOPY_BUFFER(sako_log_stats, NULL, 1)
SAKOPY_BUFFER(sako_version_info, NULL, 1)
SAKOPY_BUFFER(sako_factors_info, NULL, 1)
SAKOPY_BUFFER(const sako_mf_options, NULL, 0)
SAKOPY_BUFFER(sako_mf_options, NULL, 1)
SAKOPY_BUFFER(const int32_t, "i", 0)
SAKOPY_BUFFER(const float, "f", 0)
SAKOPY_BUFFER(float, "f", 1)
SAKOPY_BUFFER(const double, "d", 0)
SAKOPY_BUFFER(double, "d", 1)

%apply (const int64_t *BUF, size_t LEN) {
    (const int64_t *exclude, size_t n_exclude), (const int64_t *recent, size_t n_recent),
    (const int64_t *order_ids, size_t n_orders) };
%apply (const sako_category *BUF, size_t LEN) { (const sako_category *cats, size_t n) };
%apply (const sako_item *BUF, size_t LEN) { (const sako_item *items, size_t n) };
%apply (const sako_event *BUF, size_t LEN) { (const sako_event *events, size_t n) };
%apply (sako_rec *BUF, size_t LEN) { (sako_rec *out, size_t cap) };
%apply const sako_options *BUF { const sako_options *opts };
%apply sako_item_info *BUF { sako_item_info *out };
%apply sako_stats *BUF { sako_stats *out };
%apply sako_options *BUF { sako_options *out };
%apply sako_user_info *BUF { sako_user_info *out };
%apply sako_user_item *BUF { sako_user_item *out };
%apply const sako_policy *BUF { const sako_policy *policy };
%apply sako_policy *BUF { sako_policy *out };
%apply sako_retrain_status *BUF { sako_retrain_status *out };
%apply sako_verify_report *BUF { sako_verify_report *out };
%apply const sako_compact_options *BUF { const sako_compact_options *opt };
%apply sako_compact_report *BUF { sako_compact_report *out };
%apply sako_log_stats *BUF { sako_log_stats *out };
%apply (sako_version_info *BUF, size_t LEN) { (sako_version_info *out, size_t cap) };
%apply sako_version_info *BUF { sako_version_info *out };
%apply sako_factors_info *BUF { sako_factors_info *out };
%apply const sako_mf_options *BUF { const sako_mf_options *mf_opt };
%apply sako_mf_options *BUF { sako_mf_options *mf_out };
%apply (const int64_t *BUF, size_t LEN) { (const int64_t *indptr, size_t n_indptr) };
%apply (const int32_t *BUF, size_t LEN) {
    (const int32_t *indices, size_t n_indices), (const int32_t *items, size_t n_entries) };
%apply (const float *BUF, size_t LEN) {
    (const float *values, size_t n_values), (const float *item_factors, size_t n_factors) };
%apply (float *BUF, size_t LEN) {
    (float *user_factors, size_t n_user), (float *item_factors_out, size_t n_item),
    (float *x, size_t n_x) };
%apply (double *BUF, size_t LEN) { (double *seconds, size_t n_seconds) };
%apply (const double *BUF, size_t LEN) { (const double *gram, size_t n_gram) };
%apply (double *BUF, size_t LEN) { (double *gram_out, size_t n_gram_out) };
%typemap(in, numinputs = 0) double *mean_out (double tmp = 0.0) {
    $1 = &tmp;
}
%typemap(argout) double *mean_out {
    Py_DECREF($result);
    $result = PyFloat_FromDouble(*$1);
}
%typemap(in, numinputs = 0) int *outcome_out (int tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) int *outcome_out {
    Py_DECREF($result);
    $result = PyLong_FromLong(*$1);
}
%typemap(in, numinputs = 0) int64_t *position_out (int64_t tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) int64_t *position_out {
    Py_DECREF($result);
    $result = PyLong_FromLongLong((long long)*$1);
}
%typemap(in, numinputs = 0) int *ready_out (int tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) int *ready_out {
    Py_DECREF($result);
    $result = PyBool_FromLong(*$1);
}

/* ------------------------------------------------------ what sako.h cannot say */
/* Equal lengths, checked with the GIL held so that the error can be raised here
 * (libsako would read past the shorter array). */
%exception sakopy_update_orders {
    if (arg5 != arg3 && arg4) {
        sakopy_raise(SAKO_INVALID, "order_ids and events differ in length");
        SWIG_fail;
    }
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}

/* Matrix factorisation: the arrays' lengths against the matrix and the factors,
 * checked with the GIL held (libsako would read or write past a short array). The
 * matrix's own structure (indptr monotone, columns in range...) is libsako's to check. */
%exception sakopy_mf_fit {
    if (arg2 < 1 || !arg1) {
        sakopy_raise(SAKO_INVALID, "indptr is empty (it has n_rows + 1 entries)");
        SWIG_fail;
    }
    if (arg1[arg2 - 1] != (int64_t)arg4 || arg4 != arg6) {
        sakopy_raise(SAKO_INVALID, "indptr[-1], the length of indices and of data differ");
        SWIG_fail;
    }
    if (arg10 != (arg2 - 1) * (size_t)arg8->factors || arg12 != arg7 * (size_t)arg8->factors) {
        sakopy_raise(SAKO_INVALID, "the factor arrays are not n_rows x factors and n_cols x factors");
        SWIG_fail;
    }
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}
%exception sakopy_mf_gram {
    if (arg3 < 1 || arg2 % arg3 != 0 || arg5 != (size_t)arg3 * arg3) {
        sakopy_raise(SAKO_INVALID, "item_factors is not n_items x factors, or gram not factors x factors");
        SWIG_fail;
    }
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}
%exception sakopy_mf_fold_in {
    size_t k_ = arg9->factors;
    if (k_ < 1 || arg2 % k_ != 0 || (arg3 && arg4 != k_ * k_) || arg6 != arg8 || arg12 != k_) {
        sakopy_raise(SAKO_INVALID, "item_factors is not n_items x factors, gram not factors x "
                     "factors, x not factors long, or items and values differ in length");
        SWIG_fail;
    }
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}
%exception sakopy_update_at {
    if (arg6 != arg4 && arg5) {
        sakopy_raise(SAKO_INVALID, "order_ids and events differ in length");
        SWIG_fail;
    }
    Py_BEGIN_ALLOW_THREADS
    $action
    Py_END_ALLOW_THREADS
}

%rename("%(strip:[sakopy_])s") ""; /* _sako.open, _sako.recommend... */
%inline %{
/* sako_init() into a new handle; free it with sakopy_free(). */
static int sakopy_open(sakopy_engine **out, const char *path, const sako_options *opts)
{
    sakopy_engine *h = (sakopy_engine *)calloc(1, sizeof *h);
    int rc = h ? sako_init(&h->eng, path, opts) : SAKO_NOMEM;
    if (rc == SAKO_OK)
        *out = h;
    else
        free(h);
    return rc;
}

/* Idempotent; waits until calls in flight on other threads have left. */
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

static void sakopy_free(sakopy_engine *h)
{
    sakopy_close(h);
    free(h);
}

static int sakopy_is_closed(sakopy_engine *h)
{
    return !h || __atomic_load_n(&h->closed, __ATOMIC_SEQ_CST);
}

/* sako_recommend() with the query's fields as arguments: building a sako_query from
 * Python would cost more than the call on the hot path. */
static int sakopy_recommend(sako_engine *engine, int64_t user_id, int k, int64_t category_id,
                            const int64_t *exclude, size_t n_exclude,
                            const int64_t *recent, size_t n_recent, int mode, int64_t time,
                            sako_rec *out, size_t cap, size_t *n_out)
{
    sako_query q = SAKO_QUERY_INIT;
    q.user_id = user_id;
    q.k = k;
    q.category_id = category_id;
    q.exclude = exclude;
    q.n_exclude = n_exclude;
    q.recent = recent;
    q.n_recent = n_recent;
    q.mode = mode;
    q.time = time;
    return sako_recommend(engine, &q, out, cap, n_out);
}

/* sako_update_orders() with each array's length: the one buffer typemap pairs a pointer
 * with its own length, and here the two arrays share one n (its %exception above
 * checks that they agree). */
static int sakopy_update_orders(sako_engine *engine, const sako_event *events, size_t n,
                                const int64_t *order_ids, size_t n_orders)
{
    (void)n_orders;
    return sako_update_orders(engine, events, order_ids, n);
}

/* sako_update_at() with each array's length, as sakopy_update_orders. */
static int sakopy_update_at(sako_engine *engine, int64_t position, const sako_event *events,
                            size_t n, const int64_t *order_ids, size_t n_orders, int *outcome_out)
{
    (void)n_orders;
    return sako_update_at(engine, position, events, order_ids, n, outcome_out);
}

/* sako_versions_list() into a buffer (its count returned), and the count alone. */
static int sakopy_versions_list(sako_engine *engine, sako_version_info *out, size_t cap,
                                size_t *n_out)
{
    return sako_versions_list(engine, out, cap, n_out, NULL);
}

static int sakopy_versions_count(sako_engine *engine, size_t *n_out)
{
    size_t none = 0;
    return sako_versions_list(engine, NULL, 0, &none, n_out);
}

/* SAKO_OPTIONS_INIT, a macro SWIG cannot evaluate. */
static int sakopy_options_init(sako_options *out)
{
    sako_options o = SAKO_OPTIONS_INIT;
    *out = o;
    return SAKO_OK;
}

/* The matrix-factorisation calls with each array's length (checked by their
 * %exception blocks above). The matrix's arrays are read in place: no copy. */
typedef struct sakopy_clock {
    double *seconds;
    size_t n;
    struct timespec last;
} sakopy_clock;

static int sakopy_mf_tick(void *arg, uint32_t iteration, const float *u, const float *v)
{
    sakopy_clock *c = (sakopy_clock *)arg;
    struct timespec now;
    (void)u;
    (void)v;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (iteration >= 1 && iteration <= c->n)
        c->seconds[iteration - 1] = (double)(now.tv_sec - c->last.tv_sec) +
                                    1e-9 * (double)(now.tv_nsec - c->last.tv_nsec);
    c->last = now;
    return SAKO_OK;
}

/* seconds (may be None): each iteration's wall time, the first from the call's start
 * (so it holds the setup: transposing the matrix, the initial factors). */
static int sakopy_mf_fit(const int64_t *indptr, size_t n_indptr, const int32_t *indices,
                         size_t n_indices, const float *values, size_t n_values, size_t n_cols,
                         const sako_mf_options *mf_opt, float *user_factors, size_t n_user,
                         float *item_factors_out, size_t n_item, double *seconds,
                         size_t n_seconds)
{
    sako_csr r;
    sakopy_clock c;
    (void)n_values;
    (void)n_user;
    (void)n_item;
    r.n_rows = n_indptr - 1;
    r.n_cols = n_cols;
    r.indptr = indptr;
    r.indices = n_indices ? indices : NULL;
    r.values = n_indices ? values : NULL;
    if (!seconds)
        return sako_mf_fit(&r, mf_opt, user_factors, item_factors_out);
    c.seconds = seconds;
    c.n = n_seconds;
    clock_gettime(CLOCK_MONOTONIC, &c.last);
    return sako__mf_train(&r, mf_opt, 0, sakopy_mf_tick, &c, "sako_mf_fit", user_factors,
                          item_factors_out);
}

static int sakopy_mf_gram(const float *item_factors, size_t n_factors, uint32_t factors,
                          double *gram_out, size_t n_gram_out)
{
    (void)n_gram_out;
    return sako_mf_gram(item_factors, n_factors / factors, factors, gram_out);
}

static int sakopy_mf_fold_in(const float *item_factors, size_t n_factors, const double *gram,
                             size_t n_gram, const int32_t *items, size_t n_entries,
                             const float *values, size_t n_values,
                             const sako_mf_options *mf_opt, int exact, float *x, size_t n_x)
{
    (void)n_gram;
    (void)n_values;
    (void)n_x;
    return sako_mf_fold_in(item_factors, n_factors / mf_opt->factors, gram, items, values,
                           n_entries, mf_opt, exact, x);
}

/* SAKO_MF_OPTIONS_INIT, likewise. */
static int sakopy_mf_options_init(sako_mf_options *mf_out)
{
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    *mf_out = o;
    return SAKO_OK;
}

/* SAKO_POLICY_INIT, likewise. */
static int sakopy_policy_init(sako_policy *out)
{
    sako_policy p = SAKO_POLICY_INIT;
    *out = p;
    return SAKO_OK;
}
%}

/* ------------------------------------------------------------------ sako.h */
%constant long long SAKO_ID_MAX = SAKO_ID_MAX; /* casts SWIG does not evaluate */
%constant long long SAKO_TIME_MAX = SAKO_TIME_MAX;
%ignore SAKO_ID_MAX;
%ignore SAKO_TIME_MAX;
%constant unsigned long long SAKO_POLICY_MAX = SAKO_POLICY_MAX;
%ignore SAKO_POLICY_MAX;
%ignore sako_init;      /* sakopy_open */
%ignore sako_close;     /* sakopy_close, sakopy_free */
%ignore sako_recommend; /* sakopy_recommend */
%ignore sako_update_orders; /* sakopy_update_orders */
%ignore sako_update_at;     /* sakopy_update_at */
%ignore sako_versions_list; /* sakopy_versions_list, sakopy_versions_count */
%ignore sako_errmsg;    /* read by the status typemap */
%ignore sako_factors_vector; /* (C only for now: a float buffer typemap is not written) */
%ignore sako_mf_fit;     /* sakopy_mf_fit */
%ignore sako_mf_gram;    /* sakopy_mf_gram */
%ignore sako_mf_fold_in; /* sakopy_mf_fold_in */
%rename("$ignore", %$isclass) ""; /* struct layouts: the table in sako/_engine.py */
%include "sako.h"
