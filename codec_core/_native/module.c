/* Python glue of the compiled kernels: codec_core._hlc.
 *
 * Arrays arrive through the buffer protocol (numpy arrays, C-contiguous); every shape
 * and type is checked here, so the kernels can index without bounds tests. Coder state
 * lives in small int64 arrays owned by the caller, so one coder can span several calls
 * (all subbands of one resolution level). The GIL is released while a kernel runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "kernels.h"

/* ------------------------------------------------------------ buffer checks */

typedef struct { Py_buffer view; int held; } Arr;

static void release(Arr *a, int n) {
    for (int i = 0; i < n; i++)
        if (a[i].held) PyBuffer_Release(&a[i].view);
}

/* type: 'i' int32, 'q' int64, 'Q' uint64, 'B' uint8. ndim: required number of dimensions. */
static int get(PyObject *obj, Arr *a, const char *name, char type, int ndim, int writable) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &a->view, flags) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: a C-contiguous%s array is needed", name, writable ? " writable" : "");
        return -1;
    }
    a->held = 1;
    const char *f = a->view.format ? a->view.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    Py_ssize_t size = a->view.itemsize;
    int ok = type == 'B' ? (*f == 'B' && size == 1)
           : type == 'i' ? ((*f == 'i' || *f == 'l') && size == 4)
           : type == 'Q' ? ((*f == 'Q' || *f == 'L') && size == 8)
           : type == 'd' ? (*f == 'd' && size == 8)
           : type == 'f' ? (*f == 'f' && size == 4)
           : ((*f == 'q' || *f == 'l') && size == 8);
    if (!ok || a->view.ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: expected a %d-D %s array", name, ndim,
                     type == 'B' ? "uint8" : type == 'i' ? "int32" : type == 'Q' ? "uint64"
                     : type == 'd' ? "float64" : type == 'f' ? "float32" : "int64");
        return -1;
    }
    return 0;
}

static Py_ssize_t dim(Arr *a, int k) { return a->view.shape[k]; }
static char fmt(const Py_buffer *v);
static int overlap(const Py_buffer *a, const Py_buffer *b);
static int get_out_plane(PyObject *oout, Arr *out, double lo, double hi, int *otype, int *ph, int *pw,
                         size_t *ostride, Py_buffer *span);

static int check(int ok, const char *message) {
    if (!ok) PyErr_SetString(PyExc_ValueError, message);
    return ok ? 0 : -1;
}

/* Models: frequencies (contexts, nsym) int32 and totals (contexts,) int32. */
static int get_models(PyObject *of, PyObject *ot, Arr *f, Arr *t, int nsym, int first, int count) {
    if (get(of, f, "freq", 'i', 2, 1) || get(ot, t, "tot", 'i', 1, 1)) return -1;
    return check(dim(f, 1) == nsym && dim(t, 0) == dim(f, 0) && first >= 0 && first + count <= dim(f, 0),
                 "model arrays do not hold the contexts asked for");
}

/* ------------------------------------------------------------ coder state */

static Encoder load_encoder(const int64_t *st, Arr *out, Arr *raw) {
    Encoder e = {(uint64_t)st[0], (uint64_t)st[3], (uint64_t)st[4], (uint64_t)st[5], (uint64_t)st[7],
                 (uint32_t)st[1], (uint32_t)st[2], (int)st[6],
                 out->view.buf, (size_t)out->view.len, raw->view.buf, (size_t)raw->view.len};
    return e;
}

static void store_encoder(int64_t *st, const Encoder *e) {
    st[0] = (int64_t)e->low; st[1] = e->range; st[2] = e->cache; st[3] = (int64_t)e->cache_size;
    st[4] = (int64_t)e->pos; st[5] = (int64_t)e->acc; st[6] = e->nbits; st[7] = (int64_t)e->rawpos;
}

static Decoder load_decoder(const int64_t *dt, Arr *in, Arr *raw) {
    Decoder d = {(uint64_t)dt[0], (uint64_t)dt[2], (uint64_t)dt[3], (uint64_t)dt[5], (uint64_t)dt[6],
                 (uint32_t)dt[1], (int)dt[4],
                 in->view.buf, (size_t)in->view.len, raw->view.buf, (size_t)raw->view.len};
    return d;
}

static void store_decoder(int64_t *dt, const Decoder *d) {
    dt[0] = (int64_t)d->code; dt[1] = d->range; dt[2] = (int64_t)d->pos; dt[3] = (int64_t)d->acc;
    dt[4] = d->nbits; dt[5] = (int64_t)d->rawpos; dt[6] = (int64_t)d->overrun;
}

static int check_state(Arr *s, int n) { return check(dim(s, 0) >= n, "coder state array too short"); }

/* A state array must describe a sane coder: a damaged or foreign one is refused. */
static int check_encoder(const int64_t *st) {
    return check(st[1] > 0 && st[1] <= 0xFFFFFFFFll && st[2] >= 0 && st[2] <= 0xFF && st[3] >= 1
                 && st[4] >= 0 && st[6] >= 0 && st[6] < 8 && st[7] >= 0 && st[0] >= 0 && st[0] < (1ll << 40),
                 "invalid encoder state");
}

static int check_decoder(const int64_t *dt) {
    return check(dt[1] > 0 && dt[1] <= 0xFFFFFFFFll && dt[2] >= 0 && dt[4] >= 0 && dt[4] < 64 && dt[5] >= 0
                 && dt[6] >= 0 && dt[0] >= 0, "invalid decoder state");
}

/* ------------------------------------------------------------ band coder */

/* The sizes of a reference band (parent, or an earlier band of the level): one with
   no sample (0 x n) is no reference, both sizes 0. */
static void ref_dims(Arr *a, int *h, int *w) {
    *h = (int)dim(a, 0);
    *w = (int)dim(a, 1);
    if (!*h || !*w) *h = *w = 0;
}

/* The band, its parent band, the coder state and its byte arrays (o and a [0..4])
   checked; the coder loaded into e or d. */
static int get_band_args(PyObject **o, Arr *a, int decoding, Encoder *e, Decoder *d) {
    if (get(o[0], &a[0], "band", 'i', 2, decoding) || get(o[1], &a[1], "parent", 'i', 2, 0)
        || get(o[2], &a[2], "state", 'q', 1, 1) || check_state(&a[2], 8)
        || get(o[3], &a[3], decoding ? "input" : "output", 'B', 1, !decoding)
        || get(o[4], &a[4], "raw", 'B', 1, !decoding))
        return -1;
    if (check(dim(&a[0], 0) < (1 << 30) && dim(&a[0], 1) < (1 << 30), "band too large")) return -1;
    int64_t *state = a[2].view.buf;
    if (decoding ? check_decoder(state) : check_encoder(state)) return -1;
    if (decoding) *d = load_decoder(state, &a[3], &a[4]);
    else *e = load_encoder(state, &a[3], &a[4]);
    return 0;
}

static PyObject *band_done(Arr *a, int decoding, const Encoder *e, const Decoder *d, int rc) {
    if (decoding) store_decoder(a[2].view.buf, d);
    else store_encoder(a[2].view.buf, e);
    if (rc) return PyErr_NoMemory();
    return Py_NewRef(Py_None);
}

static PyObject *py_band(PyObject *args, int decoding) {
    PyObject *o[11];
    int gbase;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOiOO", &o[0], &o[1], &o[5], &o[6], &o[2], &o[3], &o[4], &o[7], &o[8],
                          &gbase, &o[9], &o[10]))
        return NULL;
    Arr a[11]; memset(a, 0, sizeof a);  /* band, parent, state, out/in, raw, x1, x2, freq, tot, sfreq, stot */
    PyObject *result = NULL;
    Encoder e = {0};
    Decoder d = {0};
    if (get_band_args(o, a, decoding, &e, &d) || get(o[5], &a[5], "x1", 'i', 2, 0) || get(o[6], &a[6], "x2", 'i', 2, 0)
        || get_models(o[7], o[8], &a[7], &a[8], HLC_NSYM, gbase, NCTX)
        || get_models(o[9], o[10], &a[9], &a[10], 2, (gbase / NCTX) * NSIGN_CTX, NSIGN_CTX))
        goto done;
    int H = (int)dim(&a[0], 0), W = (int)dim(&a[0], 1), rc, ph, pw, h1, w1, h2, w2;
    ref_dims(&a[1], &ph, &pw);
    ref_dims(&a[5], &h1, &w1);
    ref_dims(&a[6], &h2, &w2);
    const int32_t *p = a[1].view.buf, *x1 = a[5].view.buf, *x2 = a[6].view.buf;
    Py_BEGIN_ALLOW_THREADS
    rc = hlc_code_band(decoding, a[0].view.buf, H, W, p, ph, pw, x1, h1, w1, x2, h2, w2, &e, &d,
                       a[7].view.buf, a[8].view.buf, gbase, a[9].view.buf, a[10].view.buf);
    Py_END_ALLOW_THREADS
    result = band_done(a, decoding, &e, &d, rc);
done:
    release(a, 11);
    return result;
}

/* lossy_band(band, parent, state, out/in, raw, freq, tot, bits, orient[, runs]): runs
   = 1 the quiet-run variant (stream flag LOSSY_RUNS), 0 (the default) the first */
static PyObject *py_lossy(PyObject *args, int decoding) {
    PyObject *o[8];
    int orient, runs = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOOOi|p", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &orient,
                          &runs))
        return NULL;
    Arr a[8]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    Encoder e = {0};
    Decoder d = {0};
    if (get_band_args(o, a, decoding, &e, &d) || get_models(o[5], o[6], &a[5], &a[6], HLC_NSYM, 0, LB_NREM)
        || get(o[7], &a[7], "bits", 'i', 1, 1) || check(dim(&a[7], 0) == LB_NBITS, "bits: wrong number of models")
        || check(orient >= 0 && orient < 3, "orient: 0, 1 or 2"))
        goto done;
    int H = (int)dim(&a[0], 0), W = (int)dim(&a[0], 1), rc, ph, pw;
    ref_dims(&a[1], &ph, &pw);
    Py_BEGIN_ALLOW_THREADS
    rc = hlc_lossy_band(decoding, runs, a[0].view.buf, NULL, H, W, orient, a[1].view.buf, ph, pw, &e, &d,
                        a[5].view.buf, a[6].view.buf, a[7].view.buf);
    Py_END_ALLOW_THREADS
    result = band_done(a, decoding, &e, &d, rc);
done:
    release(a, 8);
    return result;
}

static PyObject *py_encode_lossy_band(PyObject *self, PyObject *args) { return py_lossy(args, 0); }
static PyObject *py_decode_lossy_band(PyObject *self, PyObject *args) { return py_lossy(args, 1); }

static PyObject *py_encode_band(PyObject *self, PyObject *args) { return py_band(args, 0); }
static PyObject *py_decode_band(PyObject *self, PyObject *args) { return py_band(args, 1); }

static PyObject *py_finish_encoder(PyObject *self, PyObject *args) {
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    Arr a[3]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (!get(o[0], &a[0], "state", 'q', 1, 1) && !check_state(&a[0], 8) && !check_encoder(a[0].view.buf)
        && !get(o[1], &a[1], "output", 'B', 1, 1) && !get(o[2], &a[2], "raw", 'B', 1, 1)) {
        int64_t *st = a[0].view.buf;
        Encoder e = load_encoder(st, &a[1], &a[2]);
        enc_finish(&e);
        store_encoder(st, &e);
        result = Py_NewRef(Py_None);
    }
    release(a, 3);
    return result;
}

static PyObject *py_start_decoder(PyObject *self, PyObject *args) {
    PyObject *o[2];
    if (!PyArg_ParseTuple(args, "OO", &o[0], &o[1])) return NULL;
    Arr a[2]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (!get(o[0], &a[0], "state", 'q', 1, 1) && !check_state(&a[0], 7) && !get(o[1], &a[1], "input", 'B', 1, 0)) {
        Decoder d;
        dec_begin(&d, a[1].view.buf, (size_t)a[1].view.len, NULL, 0);
        store_decoder(a[0].view.buf, &d);
        result = Py_NewRef(Py_None);
    }
    release(a, 2);
    return result;
}

static PyObject *py_med(PyObject *args, int reconstruct) {
    PyObject *o[2];
    if (!PyArg_ParseTuple(args, "OO", &o[0], &o[1])) return NULL;
    Arr a[2]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (!get(o[0], &a[0], "input", 'i', 2, 0) && !get(o[1], &a[1], "output", 'i', 2, 1)
        && !check(dim(&a[0], 0) == dim(&a[1], 0) && dim(&a[0], 1) == dim(&a[1], 1), "shapes differ")
        && !check(a[0].view.buf != a[1].view.buf, "output must not be the input")) {
        int H = (int)dim(&a[0], 0), W = (int)dim(&a[0], 1);
        Py_BEGIN_ALLOW_THREADS
        if (reconstruct) hlc_med_reconstruct(a[0].view.buf, a[1].view.buf, H, W);
        else hlc_med_residual(a[0].view.buf, a[1].view.buf, H, W);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    release(a, 2);
    return result;
}

static PyObject *py_med_residual(PyObject *self, PyObject *args) { return py_med(args, 0); }
static PyObject *py_med_reconstruct(PyObject *self, PyObject *args) { return py_med(args, 1); }

/* inv53(x): one 5/3 synthesis level in place on a writable 2-D int32 plane (interleaved bands). */
static PyObject *py_inv53(PyObject *self, PyObject *args) {
    PyObject *o;
    if (!PyArg_ParseTuple(args, "O", &o)) return NULL;
    Arr a; memset(&a, 0, sizeof a);
    PyObject *result = NULL;
    if (!get(o, &a, "plane", 'i', 2, 1)
        && !check(dim(&a, 0) < (1 << 30) && dim(&a, 1) < (1 << 30), "plane too large")) {
        int H = (int)dim(&a, 0), W = (int)dim(&a, 1);
        Py_BEGIN_ALLOW_THREADS
        hlc_inv53(a.view.buf, H, W);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    release(&a, 1);
    return result;
}

/* ------------------------------------------------------------ predictive coder */

/* Whether the sink's rows (the bytes span covers) overlap any of n arrays (raises). */
static int sink_overlaps(const Py_buffer *span, Arr *a, int n) {
    for (int i = 0; i < n; i++)
        if (a[i].held && check(!overlap(&a[i].view, span), "code_plane: the sink's rows overlap an input")) return 1;
    return 0;
}

/* code_plane(decoding, x, P, k, vmin, vmax, enc_state, out, raw_out, dec_state, in, raw_in,
              freq, tot, recip, mask, base[, sink]): the unused half (encoder or decoder) gets empty
   arrays. sink (decoding, no mask): a tuple (rows, table, lo, hi): P is then a ring of 3 rows
   and each decoded row goes through the finish of one channel (ranks to table's values
   unless it is empty, clipped to [lo, hi], cast) into the 2-D integer array rows. */
static PyObject *py_code_plane(PyObject *self, PyObject *args) {
    PyObject *o[17], *otuple = NULL, *osink = NULL, *otable = NULL;
    int decoding, flo = 0, fhi = 0;
    long long k, vmin, vmax;
    if (!PyArg_ParseTuple(args, "pOOLLLOOOOOOOOOOO|O!", &decoding, &o[1], &o[2], &k, &vmin, &vmax, &o[6], &o[7],
                          &o[8], &o[9], &o[10], &o[11], &o[12], &o[13], &o[14], &o[15], &o[16], &PyTuple_Type,
                          &otuple))
        return NULL;
    if (otuple && !PyArg_ParseTuple(otuple, "OOii", &osink, &otable, &flo, &fhi)) return NULL;
    Arr a[11]; memset(a, 0, sizeof a);  /* x, P, enc state, out, raw out, dec state, in, raw in, freq, tot, recip */
    Arr m[2]; memset(m, 0, sizeof m);   /* mask, base */
    Arr s[2]; memset(s, 0, sizeof s);   /* the sink's out and value table */
    HlcRowSink sink = {0};
    int sh = 0, sw = 0;
    PyObject *result = NULL;
    Py_buffer span = {0};
    if (osink) {  /* decoding into a ring of P's rows, each finished into the sink's rows */
        if (check(decoding, "code_plane: a sink is for decoding")
            || get_out_plane(osink, &s[0], flo, fhi, &sink.otype, &sh, &sw, &sink.ostride, &span)
            || get(otable, &s[1], "table", 'i', 1, 0) || check(dim(&s[1], 0) < INT32_MAX, "table too long")
            || check(flo <= fhi, "code_plane: lo > hi") || check(!overlap(&s[1].view, &span), "out overlaps the table"))
            goto done;
        sink.out = s[0].view.buf;
        sink.ntable = (int32_t)dim(&s[1], 0);
        sink.table = sink.ntable ? s[1].view.buf : NULL;
        sink.lo = flo;
        sink.hi = fhi;
    }
    if (get(o[1], &a[0], "x", 'i', 2, 0) || get(o[2], &a[1], "P", 'i', 2, 1)
        || get(o[6], &a[2], "encoder state", 'q', 1, 1) || check_state(&a[2], 8)
        || get(o[7], &a[3], "output", 'B', 1, !decoding) || get(o[8], &a[4], "raw output", 'B', 1, !decoding)
        || get(o[9], &a[5], "decoder state", 'q', 1, 1) || check_state(&a[5], 7)
        || get(o[10], &a[6], "input", 'B', 1, 0) || get(o[11], &a[7], "raw input", 'B', 1, 0)
        || get_models(o[12], o[13], &a[8], &a[9], HLC_NSYM, 0, 2 * NCTX)
        || get(o[14], &a[10], "recip", 'q', 1, 0) || check(dim(&a[10], 0) >= 1024, "recip table too short")
        || get(o[15], &m[0], "mask", 'B', 2, 0) || get(o[16], &m[1], "base", 'i', 2, 0))
        goto done;
    int W = (int)dim(&a[1], 1) - 4;
    int H = sink.out ? sh : decoding ? (int)dim(&a[1], 0) - 2 : (int)dim(&a[0], 0);
    int ring = sink.out || (!decoding && dim(&a[1], 0) < H + 2);
    int masked = dim(&m[0], 0) > 0;
    if (check(W >= 0 && H >= 0 && W < (1 << 30) && H < (1 << 30), "P must be (rows + 2, cols + 4)")
        || check(!sink.out || (dim(&a[1], 0) == 3 && sw == W && !masked),
                 "code_plane: with a sink, P must be 3 rows of its width + 4, and no mask")
        || (sink.out && sink_overlaps(&span, a, 11))
        || check(decoding || (dim(&a[0], 1) == W && (ring ? dim(&a[1], 0) == 3 : dim(&a[1], 0) == H + 2)),
                 "x and P shapes do not match")
        || check(!masked || (dim(&m[0], 0) == H && dim(&m[0], 1) == W && dim(&m[1], 0) == H && dim(&m[1], 1) == W),
                 "mask and base must be 0 x 0 or the plane's shape")
        || check(k >= 0 && k <= 0xFFFF && vmin <= vmax && vmax - vmin <= (1ll << 24)
                 && vmin >= -(1ll << 31) && vmax < (1ll << 31), "k, vmin or vmax out of range")
        || (decoding ? check_decoder(a[5].view.buf) : check_encoder(a[2].view.buf)))
        goto done;
    int rc;
    const uint8_t *mask = masked ? m[0].view.buf : NULL;
    const int32_t *base = masked ? m[1].view.buf : NULL;
    if (decoding) {
        Decoder d = load_decoder(a[5].view.buf, &a[6], &a[7]);
        Py_BEGIN_ALLOW_THREADS
        rc = hlc_decode_plane(H, W, a[1].view.buf, k, vmin, vmax, &d, a[8].view.buf, a[9].view.buf,
                              a[10].view.buf, mask, base, sink.out ? &sink : NULL);
        Py_END_ALLOW_THREADS
        store_decoder(a[5].view.buf, &d);
    } else {
        Encoder e = load_encoder(a[2].view.buf, &a[3], &a[4]);
        Py_BEGIN_ALLOW_THREADS
        rc = hlc_encode_plane(a[0].view.buf, H, W, a[1].view.buf, ring, k, vmin, vmax, &e, a[8].view.buf,
                              a[9].view.buf, a[10].view.buf, mask, base);
        Py_END_ALLOW_THREADS
        store_encoder(a[2].view.buf, &e);
    }
    if (rc) PyErr_NoMemory();
    else result = Py_NewRef(Py_None);
done:
    release(a, 11);
    release(m, 2);
    release(s, 2);
    return result;
}

/* ------------------------------------------------------------ lossy reconstruction */

/* The type code of an output sample buffer (HLC_OUT_*), -1 if not one of them. */
static int out_type(const Py_buffer *v) {
    const char *f = v->format ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (v->itemsize == 4 && (*f == 'i' || *f == 'l')) return HLC_OUT_I32;
    if (v->itemsize == 2 && *f == 'h') return HLC_OUT_I16;
    if (v->itemsize == 2 && *f == 'H') return HLC_OUT_U16;
    if (v->itemsize == 1 && *f == 'b') return HLC_OUT_I8;
    if (v->itemsize == 1 && *f == 'B') return HLC_OUT_U8;
    return -1;
}

static int type_holds(int otype, double lo, double hi) {
    static const double lim[5][2] = {{-2147483648.0, 2147483647.0}, {-32768.0, 32767.0}, {0.0, 65535.0},
                                     {-128.0, 127.0}, {0.0, 255.0}};
    return lo <= hi && lo >= lim[otype][0] && hi <= lim[otype][1];
}

#define MAX_SYNTH_LEVELS 30

/* synth97(bands, steps, recon, out, lo, hi): bands a list of 1 + 3 L int32 2-D arrays
   (LL, then HL, LH, HH per level, coarsest first) of the shapes an out.shape plane
   has after L levels (transform.band_shapes); steps float32 (>= 1 + 3 L); out a
   C-contiguous 2-D int32/int16/uint16/int8/uint8 array, written clip(rint(x), lo, hi). */
static PyObject *py_synth97(PyObject *self, PyObject *args) {
    PyObject *list, *osteps, *oout;
    float recon;
    double lo, hi;
    if (!PyArg_ParseTuple(args, "O!OfOdd", &PyList_Type, &list, &osteps, &recon, &oout, &lo, &hi)) return NULL;
    Py_ssize_t nb = PyList_GET_SIZE(list);
    if (nb < 1 || (nb - 1) % 3 || (nb - 1) / 3 > MAX_SYNTH_LEVELS)
        return PyErr_Format(PyExc_ValueError, "synth97: 1 + 3 L bands are needed, got %zd", nb);
    int levels = (int)((nb - 1) / 3);
    Arr a[1 + 3 * MAX_SYNTH_LEVELS + 2];
    memset(a, 0, sizeof a);
    Arr *st = &a[nb], *out = &a[nb + 1];
    const int32_t *bands[1 + 3 * MAX_SYNTH_LEVELS];
    PyObject *result = NULL;
    int otype = -1;
    if (PyObject_GetBuffer(oout, &out->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyErr_SetString(PyExc_ValueError, "synth97: out must be a writable C-contiguous array");
        goto done;
    }
    out->held = 1;
    otype = out_type(&out->view);
    if (check(otype >= 0 && out->view.ndim == 2, "synth97: out must be a 2-D int32/int16/uint16/int8/uint8 array")
        || check(type_holds(otype, lo, hi), "synth97: bounds beyond the output type")
        || check(dim(out, 0) < (1 << 30) && dim(out, 1) < (1 << 30), "synth97: plane too large"))
        goto done;
    {  /* (a float32 array: the buffer format 'f') */
        if (PyObject_GetBuffer(osteps, &st->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
        st->held = 1;
        const char *f = st->view.format ? st->view.format : "B";
        if (*f == '<' || *f == '=' || *f == '@') f++;
        if (check(*f == 'f' && st->view.itemsize == 4 && st->view.ndim == 1 && dim(st, 0) >= nb,
                  "synth97: steps must be float32, one per band"))
            goto done;
    }
    Py_ssize_t h = dim(out, 0), w = dim(out, 1);
    Py_ssize_t hs[MAX_SYNTH_LEVELS + 1], ws[MAX_SYNTH_LEVELS + 1];
    hs[0] = h; ws[0] = w;
    for (int k = 1; k <= levels; k++) { hs[k] = (hs[k - 1] + 1) / 2; ws[k] = (ws[k - 1] + 1) / 2; }
    for (Py_ssize_t b = 0; b < nb; b++) {
        if (get(PyList_GET_ITEM(list, b), &a[b], "band", 'i', 2, 0)) goto done;
        Py_ssize_t eh, ew;
        if (b == 0) { eh = hs[levels]; ew = ws[levels]; }
        else {
            int lev = levels - (int)((b - 1) / 3), o = (int)((b - 1) % 3);
            Py_ssize_t H = hs[lev - 1], W = ws[lev - 1];
            eh = o == 0 ? (H + 1) / 2 : H / 2;
            ew = o == 1 ? (W + 1) / 2 : W / 2;
        }
        if (check(dim(&a[b], 0) == eh && dim(&a[b], 1) == ew, "synth97: band shapes do not match the plane"))
            goto done;
        bands[b] = a[b].view.buf;
    }
    {
        const float *steps = st->view.buf;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = hlc_synth97(bands, levels, steps, recon, (int)h, (int)w, out->view.buf, otype, lo, hi);
        Py_END_ALLOW_THREADS
        if (rc) PyErr_NoMemory();
        else result = Py_NewRef(Py_None);
    }
done:
    release(a, (int)nb + 2);
    return result;
}

/* fwd97(x, levels) / fwd53_packed(x, levels): the 9/7 (wavelet97.c) or 5/3 (transform53.c)
   analysis of a writable C-contiguous 2-D plane in place: x's buffer becomes the bands,
   contiguous, in decomposition order (LL, then HL, LH, HH per level, coarsest first;
   shapes transform.band_shapes). The 9/7 takes float32 or int32 (made float32 first, in
   the same bytes), the 5/3 int32. Their working memory (an eighth of a half of the plane's
   rows, and a row) comes from the Python allocator, where tracemalloc sees it. */
static PyObject *py_fwd_packed(PyObject *args, int is53) {
    PyObject *o;
    int levels;
    const char *name = is53 ? "fwd53_packed" : "fwd97";
    if (!PyArg_ParseTuple(args, "Oi", &o, &levels)) return NULL;
    Arr a; memset(&a, 0, sizeof a);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o, &a.view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: plane must be a writable C-contiguous array", name);
        return NULL;
    }
    a.held = 1;
    char f = fmt(&a.view);
    if (check((f == 'i' || (f == 'f' && !is53)) && a.view.itemsize == 4 && a.view.ndim == 2,
              is53 ? "fwd53_packed: plane must be a 2-D int32 array" : "fwd97: plane must be a 2-D float32 or int32 array")
        || check(dim(&a, 0) >= 1 && dim(&a, 1) >= 1 && dim(&a, 0) < (1 << 30) && dim(&a, 1) < (1 << 30),
                 "plane empty or too large")
        || check(levels >= 0 && levels <= MAX_SYNTH_LEVELS, "levels out of range"))
        goto done;
    {
        int H = (int)dim(&a, 0), W = (int)dim(&a, 1);
        size_t n = (size_t)(hlc_fwd97_chunk(H) + 1) * (size_t)W;
        float *scratch = PyMem_RawMalloc(sizeof(float) * n + 16);
        unsigned char *seen = PyMem_RawMalloc((size_t)H + 16);
        if (!scratch || !seen) {
            PyMem_RawFree(scratch);
            PyMem_RawFree(seen);
            PyErr_NoMemory();
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        if (is53) hlc_fwd53_packed(a.view.buf, H, W, levels, (int32_t *)(void *)scratch, seen);
        else hlc_fwd97(a.view.buf, H, W, levels, f == 'i', scratch, seen);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(scratch);
        PyMem_RawFree(seen);
        result = Py_NewRef(Py_None);
    }
done:
    release(&a, 1);
    return result;
}

static PyObject *py_fwd97(PyObject *self, PyObject *args) { return py_fwd_packed(args, 0); }
static PyObject *py_fwd53_packed(PyObject *self, PyObject *args) { return py_fwd_packed(args, 1); }

/* stats97(band, is_ll, keys, counts, xper, mper, octaves) -> n: the joint histogram of
   the float32 band (codec_core/ratecontrol.py BandStats) as its n nonzero cells: keys
   (int32: magnitude bin x (2 octaves mper + 2) + neighbourhood bin) and counts (int64)
   written into the first n entries if n fits them (else nothing: call again with room
   for n). The kernel's hash table comes from the Python allocator (tracemalloc sees it). */
static PyObject *py_stats97(PyObject *self, PyObject *args) {
    PyObject *o, *ok, *oc;
    int is_ll, xper, mper, octaves;
    if (!PyArg_ParseTuple(args, "OpOOiii", &o, &is_ll, &ok, &oc, &xper, &mper, &octaves)) return NULL;
    Arr a[3]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o, &a[0].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_SetString(PyExc_ValueError, "stats97: band must be a C-contiguous array");
        return NULL;
    }
    a[0].held = 1;
    if (check(fmt(&a[0].view) == 'f' && a[0].view.itemsize == 4 && a[0].view.ndim == 2,
              "stats97: band must be a 2-D float32 array")
        || check(dim(&a[0], 0) < (1 << 30) && dim(&a[0], 1) < (1 << 30), "stats97: band too large")
        || check(xper >= 1 && xper <= 64 && mper >= 1 && mper <= 64 && octaves >= 1 && octaves <= 64,
                 "stats97: bins out of range")
        || get(ok, &a[1], "keys", 'i', 1, 1) || get(oc, &a[2], "counts", 'q', 1, 1)
        || check(dim(&a[1], 0) == dim(&a[2], 0), "stats97: keys and counts must be as long"))
        goto done;
    {
        int H = (int)dim(&a[0], 0), W = (int)dim(&a[0], 1);
        float *rows = PyMem_RawMalloc(sizeof(float) * 2 * ((size_t)W + 2));
        if (!rows) { PyErr_NoMemory(); goto done; }
        long n;
        Py_BEGIN_ALLOW_THREADS
        n = hlc_stats97(a[0].view.buf, H, W, is_ll, a[1].view.buf, a[2].view.buf, (long)dim(&a[1], 0),
                        xper, mper, octaves, rows, PyMem_RawMalloc, PyMem_RawFree);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(rows);
        if (n < 0) PyErr_NoMemory();
        else result = PyLong_FromLong(n);
    }
done:
    release(a, 3);
    return result;
}

/* model_bits(keys, counts, offsets, steps, is_ll, tiles, xc, mc, contexts, rounding) ->
   the rate model's bits of every band at its step, summed (stats97.c hlc_model_bits;
   codec_core/ratecontrol.py Model.bits); keys: magnitude bin << 16 | neighbourhood bin;
   counts: float32. */
static PyObject *py_model_bits(PyObject *self, PyObject *args) {
    PyObject *o[8];
    int contexts;
    double rounding;
    if (!PyArg_ParseTuple(args, "OOOOOOOOid", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &contexts,
                          &rounding))
        return NULL;
    Arr a[8]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (get(o[0], &a[0], "keys", 'i', 1, 0) || get(o[1], &a[1], "counts", 'f', 1, 0) || get(o[2], &a[2], "offsets", 'q', 1, 0)
        || get(o[3], &a[3], "steps", 'd', 1, 0) || get(o[4], &a[4], "is_ll", 'q', 1, 0) || get(o[5], &a[5], "tiles", 'q', 1, 0)
        || get(o[6], &a[6], "xc", 'd', 1, 0) || get(o[7], &a[7], "mc", 'd', 1, 0)
        || check(dim(&a[0], 0) == dim(&a[1], 0), "model_bits: keys and counts must be as long")
        || check(dim(&a[2], 0) == dim(&a[3], 0) + 1 && dim(&a[4], 0) == dim(&a[3], 0) && dim(&a[5], 0) == dim(&a[3], 0),
                 "model_bits: offsets, steps, is_ll and tiles must describe the same bands")
        || check(dim(&a[6], 0) >= 1 && dim(&a[7], 0) >= 1 && dim(&a[6], 0) < (1 << 15) && dim(&a[7], 0) <= (1 << 16),
                 "model_bits: bins out of range"))
        goto done;
    {
        const int64_t *off = a[2].view.buf;
        const double *steps = a[3].view.buf;
        Py_ssize_t nb = dim(&a[3], 0);
        int ok = off[0] == 0 && off[nb] == dim(&a[0], 0);
        for (Py_ssize_t b = 0; b < nb && ok; b++) ok = off[b] <= off[b + 1] && steps[b] > 0 && isfinite(steps[b]);
        if (check(ok, "model_bits: offsets must rise from 0 to the number of cells, steps be positive")) goto done;
        double bits;
        Py_BEGIN_ALLOW_THREADS
        bits = hlc_model_bits(a[0].view.buf, a[1].view.buf, off, (int)nb, steps, a[4].view.buf, a[5].view.buf,
                              a[6].view.buf, (int)dim(&a[6], 0), a[7].view.buf, (int)dim(&a[7], 0), contexts, rounding);
        Py_END_ALLOW_THREADS
        if (bits == -2.0) PyErr_SetString(PyExc_ValueError, "model_bits: contexts out of range (or no memory)");
        else if (bits < 0) PyErr_SetString(PyExc_ValueError, "model_bits: a key outside the bins");
        else result = PyFloat_FromDouble(bits);
    }
done:
    release(a, 8);
    return result;
}

/* The float32 2-D C-contiguous band of a quantiser call (a[0]). */
static int get_band(PyObject *o, Arr *a, const char *name) {
    if (PyObject_GetBuffer(o, &a->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: band must be a C-contiguous array", name);
        return -1;
    }
    a->held = 1;
    if (fmt(&a->view) != 'f' || a->view.itemsize != 4 || a->view.ndim != 2) {
        PyErr_Format(PyExc_ValueError, "%s: band must be a 2-D float32 array", name);
        return -1;
    }
    return check(dim(a, 0) < (1 << 30) && dim(a, 1) < (1 << 28), "quantiser: band too large");
}

/* rdo_count(band, step, counts) -> nsym (0: a level beyond the coder's range): the
   histogram (NCTX_ACT x cap int64, zeroed by the caller) of the activity context x
   symbol of band's rounded levels |c| / step (codec_core/quantize.py rdo_levels). */
static PyObject *py_rdo_count(PyObject *self, PyObject *args) {
    PyObject *o, *oc;
    float step;
    if (!PyArg_ParseTuple(args, "OfO", &o, &step, &oc)) return NULL;
    Arr a[2]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (get_band(o, &a[0], "rdo_count") || get(oc, &a[1], "counts", 'q', 2, 1)
        || check(dim(&a[1], 0) == 36 && dim(&a[1], 1) >= 1 && dim(&a[1], 1) <= 4096, "rdo_count: counts must be 36 x cap")
        || check(step > 0.0f && isfinite(step), "rdo_count: step must be positive"))
        goto done;
    {
        int H = (int)dim(&a[0], 0), W = (int)dim(&a[0], 1), n;
        int32_t *rows = PyMem_RawMalloc(sizeof(int32_t) * HLC_COUNT_SCRATCH(W));
        if (!rows) { PyErr_NoMemory(); goto done; }
        Py_BEGIN_ALLOW_THREADS
        n = hlc_rdo_count(a[0].view.buf, H, W, step, a[1].view.buf, (int)dim(&a[1], 1), rows);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(rows);
        result = PyLong_FromLong(n < 0 ? 0 : n);
    }
done:
    release(a, 2);
    return result;
}

/* quant_band(band, out, step, rdo, lam, bits[, rounding]) -> top: the signed int32 levels of the
   float32 band into out (same shape; may be the band's own memory), the dead zone's (rounding
   offset, default 0.35) or
   (rdo) the RDO choice with bits (36 x nsym float64, from rdo_count's histogram), then
   the isolated +-1 thresholding; top: the largest magnitude (inf: beyond the coder's
   range, out then incomplete). */
static PyObject *py_quant_band(PyObject *self, PyObject *args) {
    PyObject *o, *oo, *ob;
    float step;
    int rdo;
    double lam;
    float rounding = 0.35f;
    if (!PyArg_ParseTuple(args, "OOfpdO|f", &o, &oo, &step, &rdo, &lam, &ob, &rounding)) return NULL;
    Arr a[3]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (get_band(o, &a[0], "quant_band") || get(oo, &a[1], "out", 'i', 2, 1)
        || check(dim(&a[1], 0) == dim(&a[0], 0) && dim(&a[1], 1) == dim(&a[0], 1), "quant_band: out must be band's shape")
        || check(a[1].view.buf == a[0].view.buf || !overlap(&a[0].view, &a[1].view),
                 "quant_band: out must be the band's memory or apart from it")
        || check(step > 0.0f && isfinite(step), "quant_band: step must be positive"))
        goto done;
    int nsym = 1;
    const double *bits = NULL;
    if (rdo) {
        if (PyObject_GetBuffer(ob, &a[2].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
        a[2].held = 1;
        if (check(fmt(&a[2].view) == 'd' && a[2].view.itemsize == 8 && a[2].view.ndim == 2
                  && dim(&a[2], 0) == 36 && dim(&a[2], 1) >= 1 && dim(&a[2], 1) <= 4096,
                  "quant_band: bits must be a 36 x nsym float64 array"))
            goto done;
        nsym = (int)dim(&a[2], 1);
        bits = a[2].view.buf;
    }
    {
        int H = (int)dim(&a[0], 0), W = (int)dim(&a[0], 1);
        int32_t *scratch = PyMem_RawMalloc(sizeof(int32_t) * HLC_QUANT_SCRATCH(W));
        if (!scratch) { PyErr_NoMemory(); goto done; }
        double top;
        Py_BEGIN_ALLOW_THREADS
        top = hlc_quant_band(a[0].view.buf, a[1].view.buf, H, W, step, rdo, lam, bits, nsym, scratch, rounding);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(scratch);
        result = PyFloat_FromDouble(top);
    }
done:
    release(a, 3);
    return result;
}

/* The format letter of a buffer ('f', 'i', ...), its byte order mark skipped. */
static char fmt(const Py_buffer *v) {
    const char *f = v->format ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    return *f == 'l' && v->itemsize == 4 ? 'i' : *f;
}

static int overlap(const Py_buffer *a, const Py_buffer *b) {
    const char *p = a->buf, *q = b->buf;
    return a->len && b->len && p < q + b->len && q < p + a->len;
}

/* vector_isa(want): the vector build the kernels run (kernels.h: HLC_VECTOR_BUILDS; -1:
   keep; 0 baseline, 1 AVX2 where the processor has it); returns the one in use. For the
   tests: both builds give the same bits. */
static PyObject *py_vector_isa(PyObject *self, PyObject *args) {
    int want;
    if (!PyArg_ParseTuple(args, "i", &want)) return NULL;
    return PyLong_FromLong(hlc_isa_choose(want < 0 ? -1 : want));
}

/* synth97_level(ll, hl, lh, hh, ll_step, steps, recon, out, lo, hi): one 9/7 synthesis
   level from the band arrays (read, not written): ll int32 (dequantised with ll_step) or
   float32, hl/lh/hh int32 (steps[0..2]), writable, C-contiguous, of the shapes an
   out.shape plane has after one level; out float32 (the level's plane) or an
   int32/int16/uint16/int8/uint8 array written clip(rint(x), lo, hi), whose rows may lie
   apart (a tile of the decoder's output: contiguous samples, rows any distance apart). */
static PyObject *py_synth97_level(PyObject *self, PyObject *args) {
    PyObject *o[6];
    float ll_step, recon;
    double lo, hi;
    if (!PyArg_ParseTuple(args, "OOOOfOfOdd", &o[0], &o[1], &o[2], &o[3], &ll_step, &o[4], &recon, &o[5], &lo, &hi))
        return NULL;
    Arr a[6];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    static const char *names[6] = {"ll", "hl", "lh", "hh", "steps", "out"};
    for (int i = 0; i < 6; i++) {
        int flags = (i == 5 ? PyBUF_STRIDES : PyBUF_C_CONTIGUOUS) | PyBUF_FORMAT | (i == 4 ? 0 : PyBUF_WRITABLE);
        if (PyObject_GetBuffer(o[i], &a[i].view, flags) < 0) {
            PyErr_Format(PyExc_ValueError, "synth97_level: %s must be a %s%s array", names[i],
                         i == 5 ? "strided" : "C-contiguous", i == 4 ? "" : " writable");
            goto done;
        }
        a[i].held = 1;
    }
    int ll_int = fmt(&a[0].view) == 'i';
    int is_float = fmt(&a[5].view) == 'f' && a[5].view.itemsize == 4, otype = is_float ? -1 : out_type(&a[5].view);
    if (check((ll_int || fmt(&a[0].view) == 'f') && a[0].view.itemsize == 4 && a[0].view.ndim == 2,
              "synth97_level: ll must be a 2-D int32 or float32 array"))
        goto done;
    for (int i = 1; i < 4; i++)
        if (check(fmt(&a[i].view) == 'i' && a[i].view.itemsize == 4 && a[i].view.ndim == 2,
                  "synth97_level: detail bands must be 2-D int32 arrays"))
            goto done;
    if (check(fmt(&a[4].view) == 'f' && a[4].view.itemsize == 4 && a[4].view.ndim == 1 && dim(&a[4], 0) >= 3,
              "synth97_level: steps must be float32, three of them")
        || check(a[5].view.ndim == 2 && (is_float || (otype >= 0 && type_holds(otype, lo, hi))),
                 "synth97_level: out must be a 2-D float32 array or an integer one whose type holds [lo, hi]")
        || check(dim(&a[5], 0) < (1 << 30) && dim(&a[5], 1) < (1 << 30), "synth97_level: plane too large"))
        goto done;
    Py_ssize_t h = dim(&a[5], 0), w = dim(&a[5], 1), sv = (h + 1) / 2, dv = h / 2, sh = (w + 1) / 2, dh = w / 2;
    /* out's rows: samples contiguous, rows a whole number of samples apart, no two rows
       sharing memory; its span (first to last sample) is what may not meet a band */
    Py_ssize_t isz = a[5].view.itemsize, rs = a[5].view.strides[0];
    if (check(h < 2 || (rs > 0 && rs % isz == 0 && rs >= w * isz),
              "synth97_level: out's rows must come in order, apart, without overlapping")
        || check(w < 2 || a[5].view.strides[1] == isz, "synth97_level: out's samples must be contiguous in a row"))
        goto done;
    size_t ostride = h < 2 ? (size_t)w : (size_t)(rs / isz);
    Py_buffer span = a[5].view;  /* (out's span, first to last sample: the overlap test) */
    span.len = h && w ? (h - 1) * (Py_ssize_t)ostride * isz + w * isz : 0;
    if (check(dim(&a[0], 0) == sv && dim(&a[0], 1) == sh && dim(&a[1], 0) == sv && dim(&a[1], 1) == dh
              && dim(&a[2], 0) == dv && dim(&a[2], 1) == sh && dim(&a[3], 0) == dv && dim(&a[3], 1) == dh,
              "synth97_level: band shapes do not match the plane"))
        goto done;
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++)
            if (i != 4 && j != 4 && check(!overlap(&a[i].view, j == 5 ? &span : &a[j].view),
                                          "synth97_level: arrays overlap"))
                goto done;
    {
        float *tmp = PyMem_RawMalloc(sizeof(float) * HLC_SYNTH97_WORK(w));
        if (!tmp) { PyErr_NoMemory(); goto done; }
        const float *steps = a[4].view.buf;
        Py_BEGIN_ALLOW_THREADS
        hlc_synth97_level(a[0].view.buf, ll_int, ll_step, a[1].view.buf, a[2].view.buf, a[3].view.buf, 0, steps, recon,
                          (int)h, (int)w, a[5].view.buf, ostride, otype, lo, hi, tmp);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(tmp);
        result = Py_NewRef(Py_None);
    }
done:
    release(a, 6);
    return result;
}

/* The arguments the plane decoders share: the level segments (a list of 1 + L
   bytes-like: LL, then the detail levels, coarsest first), the starting models (a tuple
   of nmodels int32 arrays, read only: the band coder's freq, tot, sfreq, stot of one
   group, then the lossy band coder's freq, tot, bits), and out (a 2-D
   int32/int16/uint16/int8/uint8 array whose type holds [lo, hi], rows as synth97_level's
   out). a: 1 + L + nmodels + 2 slots (the last two: steps, out). */
typedef struct {
    int levels, otype, h, w;
    size_t ostride;
    const uint8_t *segs[HLC_MAX_LEVELS + 1];
    size_t lens[HLC_MAX_LEVELS + 1];
    HlcFreshModels fresh;
} PlaneArgs;

/* A plane decoder's out (held in out): a writable 2-D integer array whose type holds [lo,
   hi], rows in order and apart, samples contiguous in a row; its type (HLC_OUT_*), shape,
   row stride in samples and the bytes it spans (for the overlap checks). */
static int get_out_plane(PyObject *oout, Arr *out, double lo, double hi, int *otype, int *ph, int *pw,
                         size_t *ostride, Py_buffer *span) {
    if (PyObject_GetBuffer(oout, &out->view, PyBUF_STRIDES | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyErr_SetString(PyExc_ValueError, "plane decoder: out must be a writable strided array");
        return -1;
    }
    out->held = 1;
    *otype = out_type(&out->view);
    if (check(out->view.ndim == 2 && *otype >= 0 && type_holds(*otype, lo, hi),
              "plane decoder: out must be a 2-D integer array whose type holds [lo, hi]")
        || check(dim(out, 0) >= 1 && dim(out, 1) >= 1 && dim(out, 0) < (1 << 30) && dim(out, 1) < (1 << 30),
                 "plane decoder: plane empty or too large"))
        return -1;
    Py_ssize_t h = dim(out, 0), w = dim(out, 1), isz = out->view.itemsize, rs = out->view.strides[0];
    if (check(h < 2 || (rs > 0 && rs % isz == 0 && rs >= w * isz),
              "plane decoder: out's rows must come in order, apart, without overlapping")
        || check(w < 2 || out->view.strides[1] == isz, "plane decoder: out's samples must be contiguous in a row"))
        return -1;
    *ph = (int)h;
    *pw = (int)w;
    *ostride = h < 2 ? (size_t)w : (size_t)(rs / isz);
    *span = out->view;
    span->len = (h - 1) * (Py_ssize_t)*ostride * isz + w * isz;
    return 0;
}

/* The plane coders' starting models: the first nmodels of the band coder's freq, tot,
   sfreq, stot (one group) and the lossy band coder's freq, tot, bits, as a tuple of read-only
   int32 arrays of their shapes (held in fm[0 .. nmodels - 1]); the others NULL. */
static int get_fresh_models(PyObject *ofresh, int nmodels, Arr *fm, HlcFreshModels *fresh, const char *who) {
    static const char *mnames[7] = {"freq", "tot", "sfreq", "stot", "lfreq", "ltot", "lbits"};
    static const int mdims[7] = {2, 1, 2, 1, 2, 1, 1};
    static const Py_ssize_t mshape[7][2] = {{NCTX, HLC_NSYM}, {NCTX, 0}, {NSIGN_CTX, 2}, {NSIGN_CTX, 0},
                                            {LB_NREM, HLC_NSYM}, {LB_NREM, 0}, {LB_NBITS, 0}};
    if (PyTuple_GET_SIZE(ofresh) != nmodels) {
        PyErr_Format(PyExc_ValueError, "%s: %d model arrays", who, nmodels);
        return -1;
    }
    const int32_t *m[7] = {NULL};
    for (int i = 0; i < nmodels; i++) {
        if (get(PyTuple_GET_ITEM(ofresh, i), &fm[i], mnames[i], 'i', mdims[i], 0)) return -1;
        if (!(dim(&fm[i], 0) == mshape[i][0] && (mdims[i] == 1 || dim(&fm[i], 1) == mshape[i][1]))) {
            PyErr_Format(PyExc_ValueError, "%s: model arrays of the wrong size", who);
            return -1;
        }
        m[i] = fm[i].view.buf;
    }
    HlcFreshModels f = {m[0], m[1], m[2], m[3], m[4], m[5], m[6]};
    *fresh = f;
    return 0;
}

static int plane_args(PyObject *list, PyObject *ofresh, int nmodels, PyObject *oout, double lo, double hi, Arr *a,
                      PlaneArgs *p) {
    Py_ssize_t ns = PyList_GET_SIZE(list);
    if (ns < 2 || ns - 1 > HLC_MAX_LEVELS) {
        PyErr_Format(PyExc_ValueError, "plane decoder: 2 to %d segments are needed, got %zd", HLC_MAX_LEVELS + 1, ns);
        return -1;
    }
    if (PyTuple_GET_SIZE(ofresh) != nmodels) {
        PyErr_Format(PyExc_ValueError, "plane decoder: %d model arrays", nmodels);
        return -1;
    }
    p->levels = (int)(ns - 1);
    for (Py_ssize_t i = 0; i < ns; i++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(list, i), &a[i].view, PyBUF_SIMPLE) < 0) return -1;
        a[i].held = 1;
        p->segs[i] = a[i].view.buf;
        p->lens[i] = (size_t)a[i].view.len;
    }
    if (get_fresh_models(ofresh, nmodels, &a[ns], &p->fresh, "plane decoder")) return -1;
    Arr *out = &a[ns + nmodels + 1];
    Py_buffer span;
    if (get_out_plane(oout, out, lo, hi, &p->otype, &p->h, &p->w, &p->ostride, &span)) return -1;
    for (Py_ssize_t i = 0; i < ns + nmodels + 1; i++)
        if (a[i].held && check(!overlap(&a[i].view, &span), "plane decoder: out overlaps an input")) return -1;
    return 0;
}

#define PLANE_SLOTS (HLC_MAX_LEVELS + 1 + 9)

static PyObject *plane_done(int rc) {
    if (rc == HLC_PLANE_NO_MEMORY) return PyErr_NoMemory();
    return PyLong_FromLong(rc);
}

/* decode_lossy_plane(segs, runs, fresh, steps, recon, out, lo, hi[, keep]): a lossy plane
   (fresh: the 7 model arrays; steps float32, 1 + 3 L) into out, clip(rint(x), lo, hi);
   keep: its scratch goes back to the block cache (planedecode.c), not freed. Returns 0,
   or PLANE_BAD_LENGTH / PLANE_SHORT for a damaged segment (the caller names it). */
static PyObject *py_decode_lossy_plane(PyObject *self, PyObject *args) {
    PyObject *list, *ofresh, *osteps, *oout;
    int runs;
    float recon;
    double lo, hi;
    int keep = 0;
    if (!PyArg_ParseTuple(args, "O!pO!OfOdd|p", &PyList_Type, &list, &runs, &PyTuple_Type, &ofresh, &osteps, &recon,
                          &oout, &lo, &hi, &keep))
        return NULL;
    Arr a[PLANE_SLOTS];
    memset(a, 0, sizeof a);
    PlaneArgs p;
    PyObject *result = NULL;
    if (plane_args(list, ofresh, 7, oout, lo, hi, a, &p)) goto done;
    Arr *st = &a[p.levels + 1 + 7];
    if (get(osteps, st, "steps", 'f', 1, 0) || check(dim(st, 0) >= 1 + 3 * p.levels, "decode_lossy_plane: 1 + 3 L steps")
        || check(!overlap(&st->view, &a[p.levels + 1 + 8].view), "plane decoder: out overlaps an input"))
        goto done;
    {
        const float *steps = st->view.buf;
        void *out = a[p.levels + 1 + 8].view.buf;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = hlc_decode_lossy_plane(p.segs, p.lens, p.levels, p.h, p.w, runs, &p.fresh, steps, recon, out, p.ostride,
                                    p.otype, lo, hi, keep);
        Py_END_ALLOW_THREADS
        result = plane_done(rc);
    }
done:
    release(a, PLANE_SLOTS);
    return result;
}

/* decode_lossless_plane(segs, fresh, out, lo, hi[, keep]): a lossless wavelet plane
   (fresh: the band coder's 4 model arrays; segs without the plane's coder byte) into
   out, clipped to [lo, hi]. keep and the result as decode_lossy_plane's. */
static PyObject *py_decode_lossless_plane(PyObject *self, PyObject *args) {
    PyObject *list, *ofresh, *oout;
    int lo, hi, keep = 0;
    if (!PyArg_ParseTuple(args, "O!O!Oii|p", &PyList_Type, &list, &PyTuple_Type, &ofresh, &oout, &lo, &hi, &keep))
        return NULL;
    Arr a[PLANE_SLOTS];
    memset(a, 0, sizeof a);
    PlaneArgs p;
    PyObject *result = NULL;
    if (!plane_args(list, ofresh, 4, oout, lo, hi, a, &p)) {
        void *out = a[p.levels + 1 + 4 + 1].view.buf;
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = hlc_decode_lossless_plane(p.segs, p.lens, p.levels, p.h, p.w, &p.fresh, out, p.ostride, p.otype, lo, hi,
                                       keep);
        Py_END_ALLOW_THREADS
        result = plane_done(rc);
    }
    release(a, PLANE_SLOTS);
    return result;
}

/* encode_lossless_plane(x, levels, fresh, max_coef): a lossless plane (2-D int32, read
   only) coded as the 5/3 wavelet's levels + 1 segments (planeencode.c; fresh: the band
   coder's 4 model arrays; segment 0 without the plane's coder byte); None if a
   coefficient's magnitude is max_coef or more (the caller raises its error). */
static PyObject *py_encode_lossless_plane(PyObject *self, PyObject *args) {
    PyObject *ox, *ofresh;
    int levels;
    long long max_coef;
    if (!PyArg_ParseTuple(args, "OiO!L", &ox, &levels, &PyTuple_Type, &ofresh, &max_coef)) return NULL;
    Arr a[5];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (get(ox, &a[0], "plane", 'i', 2, 0)
        || check(dim(&a[0], 0) >= 1 && dim(&a[0], 1) >= 1 && dim(&a[0], 0) < (1 << 30) && dim(&a[0], 1) < (1 << 30),
                 "encode_lossless_plane: plane empty or too large")
        || check(levels >= 0 && levels <= HLC_MAX_LEVELS, "encode_lossless_plane: levels out of range"))
        goto done;
    HlcFreshModels fresh;
    if (get_fresh_models(ofresh, 4, &a[1], &fresh, "encode_lossless_plane")) goto done;
    {
        uint8_t *segs[HLC_MAX_LEVELS + 1];
        size_t lens[HLC_MAX_LEVELS + 1];
        int H = (int)dim(&a[0], 0), W = (int)dim(&a[0], 1), rc;
        Py_BEGIN_ALLOW_THREADS
        rc = hlc_encode_lossless_plane(a[0].view.buf, H, W, levels, &fresh, max_coef, segs, lens);
        Py_END_ALLOW_THREADS
        if (rc == HLC_PLANE_COEFFICIENT) {
            result = Py_NewRef(Py_None);
        } else if (rc) {
            PyErr_NoMemory();
        } else {
            result = PyList_New(levels + 1);
            for (int r = 0; r <= levels && result; r++) {
                PyObject *b = PyBytes_FromStringAndSize((const char *)segs[r], (Py_ssize_t)lens[r]);
                if (!b) Py_CLEAR(result);
                else PyList_SET_ITEM(result, r, b);
            }
            for (int r = 0; r <= levels; r++) hlc_raw_free(segs[r]);
        }
    }
done:
    release(a, 5);
    return result;
}

/* sample_block(nbytes): a writable buffer of nbytes for a decoded image (numpy.frombuffer
   makes the array), taken from the decoder's block cache (planedecode.c) and given back
   to it when the last array over it is gone: the next image of the same size finds its
   pages mapped (no page fault per page written). */
typedef struct {
    PyObject_HEAD
    void *p;
    Py_ssize_t n;
} SampleBlock;

static int block_getbuffer(PyObject *o, Py_buffer *view, int flags) {
    SampleBlock *b = (SampleBlock *)o;
    return PyBuffer_FillInfo(view, o, b->p, b->n, 0, flags);
}

static void block_dealloc(PyObject *o) {
    hlc_give(((SampleBlock *)o)->p);
    Py_TYPE(o)->tp_free(o);
}

static PyBufferProcs block_buffer = {block_getbuffer, NULL};

static PyTypeObject SampleBlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "codec_core._hlc.SampleBlock",
    .tp_basicsize = sizeof(SampleBlock),
    .tp_dealloc = block_dealloc,
    .tp_as_buffer = &block_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A decoded image's memory, from the decoder's block cache (planedecode.c).",
};

/* cached_bytes(): the bytes the decoder's block cache holds now, and its limit;
   release_cache(): every kept block freed. */
static PyObject *py_cached_bytes(PyObject *self, PyObject *args) {
    return Py_BuildValue("nn", (Py_ssize_t)hlc_cached_bytes(), (Py_ssize_t)HLC_CACHE_BYTES);
}

static PyObject *py_release_cache(PyObject *self, PyObject *args) {
    hlc_release_cache();
    return Py_NewRef(Py_None);
}

static PyObject *py_sample_block(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    if (n < 0) return PyErr_Format(PyExc_ValueError, "sample_block: %zd bytes", n);
    void *p = hlc_take(n ? (size_t)n : 1);
    if (!p) return PyErr_NoMemory();
    SampleBlock *b = PyObject_New(SampleBlock, &SampleBlockType);
    if (!b) {
        hlc_give(p);
        return NULL;
    }
    b->p = p;
    b->n = n;
    return (PyObject *)b;
}

/* ------------------------------------------------------------ Reed-Solomon parity */

/* parity(data, tab, acc): acc[i] ^= tab[ke - 1 - j][data[j, i]] over message rows j.
   data (ke, m) uint8; tab (rows >= ke, 256, words) uint64; acc (m, words) uint64. */
static PyObject *py_parity(PyObject *self, PyObject *args) {
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (!get(o[0], &a[0], "data", 'B', 2, 0) && !get(o[1], &a[1], "tab", 'Q', 3, 0)
        && !get(o[2], &a[2], "acc", 'Q', 2, 1)
        && !check(dim(&a[1], 0) >= dim(&a[0], 0) && dim(&a[1], 1) == 256 && dim(&a[2], 0) == dim(&a[0], 1)
                  && dim(&a[2], 1) == dim(&a[1], 2), "parity arrays do not match")) {
        Py_ssize_t ke = dim(&a[0], 0), m = dim(&a[0], 1), words = dim(&a[1], 2);
        const uint8_t *data = a[0].view.buf;
        const uint64_t *tab = a[1].view.buf;
        uint64_t *acc = a[2].view.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i0 = 0; i0 < m; i0 += 1024) {  /* a block of acc stays in L1 across rows */
            Py_ssize_t i1 = i0 + 1024 < m ? i0 + 1024 : m;
            for (Py_ssize_t j = 0; j < ke; j++) {
                const uint64_t *t = tab + (size_t)(ke - 1 - j) * 256 * words;
                const uint8_t *row = data + (size_t)j * m;
                for (Py_ssize_t i = i0; i < i1; i++) {
                    const uint64_t *entry = t + (size_t)row[i] * words;
                    for (Py_ssize_t w = 0; w < words; w++) acc[(size_t)i * words + w] ^= entry[w];
                }
            }
        }
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    release(a, 3);
    return result;
}

/* ------------------------------------------------------------ region map row runs */

/* pack_map(cmap (frames, rows, cols) uint8, vals int64 (room for 1 + 2 n values a row of n
   runs), scratch (4 * cols) int64) -> count */
static PyObject *py_pack_map(PyObject *self, PyObject *args) {
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (!get(o[0], &a[0], "cmap", 'B', 3, 0) && !get(o[1], &a[1], "vals", 'q', 1, 1)
        && !get(o[2], &a[2], "scratch", 'q', 1, 1)
        && !check(dim(&a[0], 1) < INT32_MAX && dim(&a[0], 2) < INT32_MAX / 4 && dim(&a[0], 0) < INT32_MAX
                  && dim(&a[2], 0) >= 4 * dim(&a[0], 2), "pack_map arrays are too small")) {
        int64_t n;
        Py_BEGIN_ALLOW_THREADS
        n = hlc_pack_map(a[0].view.buf, (int)dim(&a[0], 0), (int)dim(&a[0], 1), (int)dim(&a[0], 2),
                         a[1].view.buf, (int64_t)dim(&a[1], 0), a[2].view.buf);
        Py_END_ALLOW_THREADS
        if (!check(n >= 0, "pack_map: vals has too little room for the map's runs"))
            result = PyLong_FromLongLong(n);
    }
    release(a, 3);
    return result;
}

/* unpack_map(raw uint8 (pack_map's values as varints), cmap (frames, rows, cols) uint8:
   the map's frames first .. first + frames - 1, first, classes, scratch (2 * cols) int64,
   last: whether those are the map's last frames) -> 0 or an HLC_MAP_* code */
static PyObject *py_unpack_map(PyObject *self, PyObject *args) {
    PyObject *o[3];
    int first, classes, last;
    if (!PyArg_ParseTuple(args, "OOiiOp", &o[0], &o[1], &first, &classes, &o[2], &last)) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (!get(o[0], &a[0], "raw", 'B', 1, 0) && !get(o[1], &a[1], "cmap", 'B', 3, 1)
        && !get(o[2], &a[2], "scratch", 'q', 1, 1)
        && !check(dim(&a[1], 0) < INT32_MAX && dim(&a[1], 1) < INT32_MAX && dim(&a[1], 2) < INT32_MAX / 4
                  && dim(&a[2], 0) >= 2 * dim(&a[1], 2) && first >= 0 && first <= INT32_MAX - dim(&a[1], 0),
                  "unpack_map arrays do not match")) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = hlc_unpack_map(a[0].view.buf, (size_t)dim(&a[0], 0), a[1].view.buf, first, (int)dim(&a[1], 0),
                            (int)dim(&a[1], 1), (int)dim(&a[1], 2), classes, a[2].view.buf, last);
        Py_END_ALLOW_THREADS
        result = PyLong_FromLong(rc);
    }
    release(a, 3);
    return result;
}

/* set_flat(out (frames, rows, cols, channels) int32/int16/uint16/int8/uint8, classes (frames, rows,
   cols) uint8, value, flat, claimed (256,) uint8) -> whether every pixel's class is claimed */
static PyObject *py_set_flat(PyObject *self, PyObject *args) {
    PyObject *o[3];
    long long value;
    int flat;
    if (!PyArg_ParseTuple(args, "OOLiO", &o[0], &o[1], &value, &flat, &o[2])) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o[0], &a[0].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyErr_SetString(PyExc_ValueError, "out: a C-contiguous writable array is needed");
        goto done;
    }
    a[0].held = 1;
    int otype = out_type(&a[0].view);
    if (get(o[1], &a[1], "classes", 'B', 3, 0) || get(o[2], &a[2], "claimed", 'B', 1, 0)
        || check(otype >= 0 && a[0].view.ndim == 4 && dim(&a[2], 0) == 256 && flat >= 0 && flat < 256
                 && type_holds(otype, (double)value, (double)value), "set_flat: arrays or value do not match"))
        goto done;
    for (int k = 0; k < 3; k++)
        if (check(dim(&a[0], k) == dim(&a[1], k), "set_flat: out and classes differ in shape")) goto done;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = hlc_set_flat(a[0].view.buf, otype, (int)dim(&a[0], 3), a[1].view.buf, (int64_t)(a[1].view.len),
                      (int64_t)value, (uint8_t)flat, a[2].view.buf);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(ok ? Py_True : Py_False);
done:
    release(a, 3);
    return result;
}

/* colour_finish(src (rows, cols, ch) int16/int32, out (rows, cols, ch) int32/int16/uint16/int8/uint8,
   rct, lim, vmin, vmax, table (int32, empty: none; not with rct)): any strides (multiples
   of the item size); out may be src. */
static PyObject *py_colour_finish(PyObject *self, PyObject *args) {
    PyObject *o[3];
    int rct, lim, vmin, vmax;
    if (!PyArg_ParseTuple(args, "OOiiiiO", &o[0], &o[1], &rct, &lim, &vmin, &vmax, &o[2])) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o[0], &a[0].view, PyBUF_RECORDS_RO) < 0) goto done;
    a[0].held = 1;
    if (PyObject_GetBuffer(o[1], &a[1].view, PyBUF_RECORDS) < 0) goto done;
    a[1].held = 1;
    if (get(o[2], &a[2], "table", 'i', 1, 0)) goto done;
    int32_t ntable = (int32_t)dim(&a[2], 0);
    if (check(dim(&a[2], 0) < INT32_MAX, "colour_finish: value table too long")
        || check(!(rct && ntable), "colour_finish: a value table with the RCT"))
        goto done;
    char sf = fmt(&a[0].view);
    int otype = out_type(&a[1].view), src_i32 = sf == 'i' && a[0].view.itemsize == 4;
    if (check((src_i32 || (sf == 'h' && a[0].view.itemsize == 2)) && otype >= 0 && a[0].view.ndim == 3
              && a[1].view.ndim == 3 && lim >= 0 && vmin <= vmax
              && type_holds(otype, (double)vmin, (double)vmax), "colour_finish: arrays do not match"))
        goto done;
    ptrdiff_t sstr[3], ostr[3];
    int ok = 1;
    for (int k = 0; k < 3; k++) {
        ok &= dim(&a[0], k) == dim(&a[1], k) && dim(&a[0], k) < INT32_MAX;
        ok &= a[0].view.strides[k] % a[0].view.itemsize == 0 && a[1].view.strides[k] % a[1].view.itemsize == 0;
        sstr[k] = a[0].view.strides[k] / a[0].view.itemsize;
        ostr[k] = a[1].view.strides[k] / a[1].view.itemsize;
    }
    if (check(ok && (!rct || dim(&a[0], 2) == 3), "colour_finish: shapes or strides do not match")) goto done;
    if (overlap(&a[0].view, &a[1].view)
        && check(a[0].view.buf == a[1].view.buf && a[0].view.itemsize == a[1].view.itemsize
                 && sstr[0] == ostr[0] && sstr[1] == ostr[1] && sstr[2] == ostr[2],
                 "colour_finish: out overlaps src other than as src itself"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    hlc_colour_finish(a[0].view.buf, src_i32, sstr, a[1].view.buf, otype, ostr, (int)dim(&a[0], 0),
                      (int)dim(&a[0], 1), (int)dim(&a[0], 2), rct, lim, ntable ? a[2].view.buf : NULL, ntable,
                      vmin, vmax);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(a, 3);
    return result;
}

/* to_ranks(src (rows, cols) int32/int16/uint16/int8/uint8, aligned, any strides; out (rows,
   cols) int32, C-contiguous; lut int32 (n >= 1); first (|first| <= 2^32)): out = lut[src -
   first], clipped to the lut. */
static PyObject *py_to_ranks(PyObject *self, PyObject *args) {
    PyObject *o[3];
    long long first;
    if (!PyArg_ParseTuple(args, "OOOL", &o[0], &o[1], &o[2], &first)) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o[0], &a[0].view, PyBUF_RECORDS_RO) < 0) goto done;
    a[0].held = 1;
    if (get(o[1], &a[1], "out", 'i', 2, 1) || get(o[2], &a[2], "lut", 'i', 1, 0)) goto done;
    int stype = out_type(&a[0].view);
    if (check(stype >= 0 && a[0].view.ndim == 2 && dim(&a[0], 0) == dim(&a[1], 0) && dim(&a[0], 1) == dim(&a[1], 1)
              && dim(&a[1], 0) < INT32_MAX && dim(&a[1], 1) < INT32_MAX && dim(&a[2], 0) >= 1
              && dim(&a[2], 0) < INT32_MAX && a[0].view.strides[0] % a[0].view.itemsize == 0
              && a[0].view.strides[1] % a[0].view.itemsize == 0 && (uintptr_t)a[0].view.buf % a[0].view.itemsize == 0
              && first >= -(1ll << 32) && first <= (1ll << 32) && !overlap(&a[0].view, &a[1].view),
              "to_ranks: arrays do not match"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    hlc_to_ranks(a[0].view.buf, stype, a[0].view.strides[0] / a[0].view.itemsize,
                 a[0].view.strides[1] / a[0].view.itemsize, a[1].view.buf, (int)dim(&a[1], 0), (int)dim(&a[1], 1),
                 a[2].view.buf, (int32_t)dim(&a[2], 0), (int64_t)first);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(a, 3);
    return result;
}

/* A 2-D plane of samples (any strides, multiples of the item size) and its known flags
   (uint8, C-contiguous, the same shape): the padding fill's inputs. */
static int get_fill_plane(PyObject *ox, PyObject *ok, Arr *x, Arr *k, int writable, int *xtype, ptrdiff_t *xs) {
    if (PyObject_GetBuffer(ox, &x->view, writable ? PyBUF_RECORDS : PyBUF_RECORDS_RO) < 0) return -1;
    x->held = 1;
    if (get(ok, k, "known", 'B', 2, 0)) return -1;
    *xtype = out_type(&x->view);
    if (check(*xtype >= 0 && x->view.ndim == 2 && dim(x, 0) == dim(k, 0) && dim(x, 1) == dim(k, 1)
              && dim(k, 0) < INT32_MAX / 4 && dim(k, 1) < INT32_MAX / 16 && dim(k, 0) > 0 && dim(k, 1) > 0
              && x->view.strides[0] % x->view.itemsize == 0 && x->view.strides[1] % x->view.itemsize == 0,
              "fill: the plane and its known flags do not match"))
        return -1;
    xs[0] = x->view.strides[0] / x->view.itemsize;
    xs[1] = x->view.strides[1] / x->view.itemsize;
    return 0;
}

/* The padding fill's five arguments (a zeroed first: the caller releases them), the
   plane and its known flags checked. */
static int fill_args(PyObject *args, PyObject **o, Arr *a, int *xtype, ptrdiff_t *xs) {
    memset(a, 0, 5 * sizeof *a);
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &o[4])) return -1;
    return get_fill_plane(o[0], o[1], &a[0], &a[1], 0, xtype, xs);
}

/* fill_sums(x (rows, cols) int, known (rows, cols) uint8, v2, w2 (ceil(rows/4), ceil(cols/4))
   float64, scratch float64 (>= 6 cols + 8)) */
static PyObject *py_fill_sums(PyObject *self, PyObject *args) {
    PyObject *o[5], *result = NULL;
    Arr a[5];
    int xtype;
    ptrdiff_t xs[2];
    if (!fill_args(args, o, a, &xtype, xs) && !get(o[2], &a[2], "v2", 'd', 2, 1)
        && !get(o[3], &a[3], "w2", 'd', 2, 1) && !get(o[4], &a[4], "scratch", 'd', 1, 1)) {
        int rows = (int)dim(&a[1], 0), cols = (int)dim(&a[1], 1);
        if (!check(dim(&a[2], 0) == (rows + 3) / 4 && dim(&a[2], 1) == (cols + 3) / 4 && dim(&a[3], 0) == dim(&a[2], 0)
                   && dim(&a[3], 1) == dim(&a[2], 1) && dim(&a[4], 0) >= 6 * (Py_ssize_t)cols + 8,
                   "fill_sums: the sums' arrays or the scratch do not match")) {
            Py_BEGIN_ALLOW_THREADS
            hlc_fill_sums(a[0].view.buf, xtype, xs, a[1].view.buf, rows, cols, a[2].view.buf, a[3].view.buf,
                          a[4].view.buf);
            Py_END_ALLOW_THREADS
            result = Py_NewRef(Py_None);
        }
    }
    release(a, 5);
    return result;
}

/* fill_plane(x (rows, cols) int, known (rows, cols) uint8, est2 (ceil(rows/4), ceil(cols/4))
   float64, out (rows, cols) of x's type (any strides; x itself allowed), scratch float64
   (>= 11 cols + 16)) */
static PyObject *py_fill_plane(PyObject *self, PyObject *args) {
    PyObject *o[5], *result = NULL;
    Arr a[5];
    int xtype;
    ptrdiff_t xs[2], os[2];
    if (!fill_args(args, o, a, &xtype, xs) && !get(o[2], &a[2], "est2", 'd', 2, 0)
        && PyObject_GetBuffer(o[3], &a[3].view, PyBUF_RECORDS) == 0) {
        a[3].held = 1;
        int rows = (int)dim(&a[1], 0), cols = (int)dim(&a[1], 1);
        if (!get(o[4], &a[4], "scratch", 'd', 1, 1)
            && !check(dim(&a[2], 0) == (rows + 3) / 4 && dim(&a[2], 1) == (cols + 3) / 4
                      && out_type(&a[3].view) == xtype && a[3].view.ndim == 2 && dim(&a[3], 0) == rows
                      && dim(&a[3], 1) == cols && a[3].view.strides[0] % a[3].view.itemsize == 0
                      && a[3].view.strides[1] % a[3].view.itemsize == 0 && dim(&a[4], 0) >= 11 * (Py_ssize_t)cols + 16,
                      "fill_plane: the estimate, the output or the scratch do not match")) {
            os[0] = a[3].view.strides[0] / a[3].view.itemsize;
            os[1] = a[3].view.strides[1] / a[3].view.itemsize;
            Py_BEGIN_ALLOW_THREADS
            hlc_fill_plane(a[0].view.buf, xtype, xs, a[1].view.buf, rows, cols, a[2].view.buf, (int)dim(&a[2], 0),
                           (int)dim(&a[2], 1), a[3].view.buf, os, a[4].view.buf);
            Py_END_ALLOW_THREADS
            result = Py_NewRef(Py_None);
        }
    }
    release(a, 5);
    return result;
}

/* masked_histogram(x int (any shape, C-contiguous), mask uint8 (x's shape), lo, counts int64):
   counts[v - lo] += 1 for every sample v where mask is set (values outside skipped) */
static PyObject *py_masked_histogram(PyObject *self, PyObject *args) {
    PyObject *o[3];
    long long lo;
    if (!PyArg_ParseTuple(args, "OOLO", &o[0], &o[1], &lo, &o[2])) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o[0], &a[0].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    a[0].held = 1;
    if (PyObject_GetBuffer(o[1], &a[1].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    a[1].held = 1;
    if (get(o[2], &a[2], "counts", 'q', 1, 1)) goto done;
    int xtype = out_type(&a[0].view);
    Py_ssize_t n = a[0].view.itemsize ? a[0].view.len / a[0].view.itemsize : 0;
    if (check(xtype >= 0 && a[1].view.itemsize == 1 && a[1].view.len == n, "masked_histogram: x and mask do not match"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    hlc_masked_histogram(a[0].view.buf, xtype, a[1].view.buf, (int64_t)n, (int64_t)lo, a[2].view.buf,
                         (int64_t)dim(&a[2], 0));
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(a, 3);
    return result;
}

/* range_shares(n, totals, out): the decoders' n / total by reciprocal (rangecoder.h), for
   the tests: out[0] by a model's first reciprocal (hlc_rcp), out[1] by an update's
   (hlc_rcp_update); n int64 in [0, 2^32), totals int64 in [2, HLC_LIMIT], out (2, len). */
static PyObject *py_range_shares(PyObject *self, PyObject *args) {
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2])) return NULL;
    Arr a[3];
    memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (get(o[0], &a[0], "n", 'q', 1, 0) || get(o[1], &a[1], "totals", 'q', 1, 0) || get(o[2], &a[2], "out", 'q', 2, 1))
        goto done;
    Py_ssize_t len = dim(&a[0], 0);
    if (check(dim(&a[1], 0) == len && dim(&a[2], 0) == 2 && dim(&a[2], 1) == len, "range_shares: shapes differ"))
        goto done;
    const int64_t *n = a[0].view.buf, *t = a[1].view.buf;
    int64_t *out = a[2].view.buf;
    for (Py_ssize_t i = 0; i < len; i++)
        if (check(n[i] >= 0 && n[i] <= UINT32_MAX && t[i] >= 2 && t[i] <= HLC_LIMIT, "range_shares: out of range"))
            goto done;
    for (Py_ssize_t i = 0; i < len; i++) {
        out[i] = hlc_div((uint32_t)n[i], hlc_rcp((uint32_t)t[i]));
        out[len + i] = hlc_div((uint32_t)n[i], hlc_rcp_update((uint32_t)t[i]));
    }
    result = Py_NewRef(Py_None);
done:
    release(a, 3);
    return result;
}

/* used_values(samples, vmin, used): used[v - vmin] = 1 for every sample v of a
   C-contiguous int8/uint8/int16/uint16/int32 array of any shape; True if every sample
   was inside used's range (out-of-range samples are skipped). One pass, no temporary:
   the value-table choice reads every sample of a lossless image. */
#define HLC_MARK_USED(T)                                                    \
    do {                                                                    \
        const T *x = (const T *)a[0].view.buf;                              \
        for (Py_ssize_t i = 0; i < count; i++) {                            \
            int64_t v = (int64_t)x[i] - vmin;                               \
            if ((uint64_t)v < (uint64_t)n) used[v] = 1;                     \
            else outside = 1;                                               \
        }                                                                   \
    } while (0)

static PyObject *py_used_values(PyObject *self, PyObject *args) {
    PyObject *o[2];
    long long vmin;
    if (!PyArg_ParseTuple(args, "OLO", &o[0], &vmin, &o[1])) return NULL;
    Arr a[2]; memset(a, 0, sizeof a);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o[0], &a[0].view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_SetString(PyExc_ValueError, "samples: a C-contiguous array is needed");
        goto done;
    }
    a[0].held = 1;
    if (get(o[1], &a[1], "used", 'B', 1, 1)) goto done;
    const char *f = a[0].view.format ? a[0].view.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    Py_ssize_t size = a[0].view.itemsize, count = size > 0 ? a[0].view.len / size : 0, n = dim(&a[1], 0);
    char kind = size == 1 && (*f == 'b' || *f == 'B') ? *f : size == 2 && (*f == 'h' || *f == 'H') ? *f
              : size == 4 && (*f == 'i' || *f == 'l') ? 'i' : 0;
    if (check(kind != 0, "samples: expected int8, uint8, int16, uint16 or int32")) goto done;
    uint8_t *used = a[1].view.buf;
    int outside = 0;
    Py_BEGIN_ALLOW_THREADS
    switch (kind) {
    case 'b': HLC_MARK_USED(int8_t); break;
    case 'B': HLC_MARK_USED(uint8_t); break;
    case 'h': HLC_MARK_USED(int16_t); break;
    case 'H': HLC_MARK_USED(uint16_t); break;
    default: HLC_MARK_USED(int32_t); break;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(outside ? Py_False : Py_True);
done:
    release(a, 2);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_band", py_encode_band, METH_VARARGS, "Code one subband into the encoder state."},
    {"decode_band", py_decode_band, METH_VARARGS, "Decode one subband from the decoder state."},
    {"encode_lossy_band", py_encode_lossy_band, METH_VARARGS, "Code one lossy detail band (lossyband.c)."},
    {"decode_lossy_band", py_decode_lossy_band, METH_VARARGS, "Decode one lossy detail band (lossyband.c)."},
    {"decode_lossy_plane", py_decode_lossy_plane, METH_VARARGS,
     "Decode one lossy plane from its segments into its samples (planedecode.c)."},
    {"sample_block", py_sample_block, METH_VARARGS, "A decoded image's memory (planedecode.c's block cache)."},
    {"cached_bytes", py_cached_bytes, METH_NOARGS, "The bytes the decoder's block cache holds, and its limit."},
    {"release_cache", py_release_cache, METH_NOARGS, "Free every block the decoder's cache keeps."},
    {"encode_lossless_plane", py_encode_lossless_plane, METH_VARARGS,
     "Encode one lossless plane as its 5/3 wavelet's level segments (planeencode.c)."},
    {"decode_lossless_plane", py_decode_lossless_plane, METH_VARARGS,
     "Decode one lossless wavelet plane from its segments into its samples (planedecode.c)."},
    {"finish_encoder", py_finish_encoder, METH_VARARGS, "Flush the range coder and the raw bits."},
    {"start_decoder", py_start_decoder, METH_VARARGS, "Initialise a decoder state over its input."},
    {"inv53", py_inv53, METH_VARARGS, "One 5/3 synthesis level in place (interleaved bands)."},
    {"med_residual", py_med_residual, METH_VARARGS, "LOCO-I median edge detector residual."},
    {"med_reconstruct", py_med_reconstruct, METH_VARARGS, "Inverse of med_residual."},
    {"code_plane", py_code_plane, METH_VARARGS, "Encode or decode one predictive plane."},
    {"range_shares", py_range_shares, METH_VARARGS, "n / total by the decoders' reciprocals (tests)."},
    {"used_values", py_used_values, METH_VARARGS, "Flags of the values a sample array holds."},
    {"parity", py_parity, METH_VARARGS, "Reed-Solomon parity of many codewords (table XOR)."},
    {"synth97", py_synth97, METH_VARARGS, "Dequantisation and inverse 9/7 of one lossy plane, rounded."},
    {"pack_map", py_pack_map, METH_VARARGS, "The region map's row runs as values."},
    {"unpack_map", py_unpack_map, METH_VARARGS, "Inverse of pack_map, every run checked."},
    {"colour_finish", py_colour_finish, METH_VARARGS,
     "Inverse RCT or value table, clips and cast of a decoded tile, one pass."},
    {"to_ranks", py_to_ranks, METH_VARARGS, "A plane's samples to their ranks in a value table, one pass."},
    {"fill_sums", py_fill_sums, METH_VARARGS, "The padding fill's sums over 4 x 4 cells (regions._push_pull)."},
    {"fill_plane", py_fill_plane, METH_VARARGS, "The padding fill's 2 x 2 level and plane, into the holes."},
    {"masked_histogram", py_masked_histogram, METH_VARARGS, "Counts of the values of x where mask is set."},
    {"set_flat", py_set_flat, METH_VARARGS, "A region stream's FLAT pixels set to their value, in place."},
    {"stats97", py_stats97, METH_VARARGS, "Rate-control histogram of one 9/7 band (magnitude x neighbourhood)."},
    {"model_bits", py_model_bits, METH_VARARGS, "Rate model's bits of 9/7 bands at their steps (stats97.c)."},
    {"synth97_level", py_synth97_level, METH_VARARGS, "One 9/7 synthesis level from the band arrays."},
    {"vector_isa", py_vector_isa, METH_VARARGS, "The kernels' vector build (tests: AVX2 or baseline)."},
    {"rdo_count", py_rdo_count, METH_VARARGS, "RDO quantiser's token histogram of one 9/7 detail band."},
    {"quant_band", py_quant_band, METH_VARARGS, "Quantised levels of one 9/7 detail band (dead zone or RDO)."},
    {"fwd97", py_fwd97, METH_VARARGS, "The 9/7 analysis of a float32 plane, in place, bands packed."},
    {"fwd53_packed", py_fwd53_packed, METH_VARARGS, "The 5/3 analysis of an int32 plane, in place, bands packed."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hlc", "HLC's compiled kernels.", -1, methods};

/* The constants the Python side builds its model arrays with (tests/test_kernels.py). */
PyMODINIT_FUNC PyInit__hlc(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyType_Ready(&SampleBlockType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    hlc_raw_alloc = PyMem_RawMalloc;  /* (the block cache's memory, where tracemalloc sees it) */
    hlc_raw_free = PyMem_RawFree;
    hlc_lossy_init();
    hlc_act_init();
    hlc_isa_choose(-1);
    if (PyModule_AddIntConstant(m, "DIRECT", HLC_DIRECT) || PyModule_AddIntConstant(m, "NSYM", HLC_NSYM)
        || PyModule_AddIntConstant(m, "INC", HLC_INC) || PyModule_AddIntConstant(m, "LIMIT", HLC_LIMIT)
        || PyModule_AddIntConstant(m, "NCTX", NCTX) || PyModule_AddIntConstant(m, "NSIGN_CTX", NSIGN_CTX)
        || PyModule_AddIntConstant(m, "NACT", HLC_NACT) || PyModule_AddIntConstant(m, "MAP_CUT", HLC_MAP_CUT)
        || PyModule_AddIntConstant(m, "LB_NBITS", LB_NBITS) || PyModule_AddIntConstant(m, "LB_NREM", LB_NREM)
        || PyModule_AddIntConstant(m, "MAP_FILL", HLC_MAP_FILL) || PyModule_AddIntConstant(m, "MAP_RUNS", HLC_MAP_RUNS)
        || PyModule_AddIntConstant(m, "MAP_VALUE_CUT", HLC_MAP_VALUE_CUT)
        || PyModule_AddIntConstant(m, "MAP_VALUE_LARGE", HLC_MAP_VALUE_LARGE)
        || PyModule_AddIntConstant(m, "PLANE_BAD_LENGTH", HLC_PLANE_BAD_LENGTH)
        || PyModule_AddIntConstant(m, "PLANE_SHORT", HLC_PLANE_SHORT)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
