/* The lossy decoder's reconstruction: dequantisation and the inverse 9/7, in one kernel.
 *
 * The same IEEE float32 operations, in the same order, as the numpy reference
 * (codec_core/quantize.py dequantise, codec_core/transform.py _inv97_lift and
 * dwt97_inverse_rounded), so its output is identical to the reference's bit for bit
 * (tests/test_kernels.py; built with -ffp-contract=off: no fused multiply-add):
 *   detail value = sign(q) * ((float)|q| + recon) * step, 0 for q = 0; LL = (float)q * step;
 *   each level: the rows of LL|HL and of LH|HH synthesised along x, then the columns;
 *   synthesis: s *= K, d *= 2/K, s -= D(d[i-1] + d[i]), d -= G(s[i] + s[i+1]),
 *   s -= B(d[i-1] + d[i]), d -= A(s[i] + s[i+1]), whole-sample symmetric extension,
 *   an axis of one sample left as it is; the result rounded half to even and clipped.
 * Each level is one pipelined pass down its rows (synth_level): a row is dequantised
 * from its bands, synthesised along x and scaled into a ring of six rows, and the four
 * column lifting steps follow it a row or two behind, so each row is touched while in
 * cache; finished rows go straight to the next level's LL or, rounded, to the output.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3") /* vectorised lifting loops: 2-3x faster measured; same IEEE operations */
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"


static const double A97 = -1.586134342059924, B97 = -0.052980118572961, G97 = 0.882911075530934,
                    D97 = 0.443506852043971, K97 = 1.230174104914001;

/* x[i] += c * (y[i-1] + y[i]) for i < nx, y mirrored at both ends (the s update);
   nx = ny or ny + 1. Interior without branches (the compiler vectorises it). */
static void lift_left(float *x, int nx, const float *y, int ny, float c) {
    float t = y[0] + y[0];
    t = t * c;
    x[0] = x[0] + t;
    int m = nx < ny ? nx : ny;
    for (int i = 1; i < m; i++) {
        float u = y[i - 1] + y[i];
        u = u * c;
        x[i] = x[i] + u;
    }
    if (nx > ny) {
        float u = y[ny - 1] + y[ny - 1];
        u = u * c;
        x[ny] = x[ny] + u;
    }
}

/* d[i] += c * (s[i] + s[i+1]) for i < nd, s mirrored past its end (the d update). */
static void lift_right(float *d, int nd, const float *s, int ns, float c) {
    int m = ns > nd ? nd : nd - 1;
    for (int i = 0; i < m; i++) {
        float u = s[i] + s[i + 1];
        u = u * c;
        d[i] = d[i] + u;
    }
    if (m < nd) {
        float u = s[nd - 1] + s[nd - 1];
        u = u * c;
        d[nd - 1] = d[nd - 1] + u;
    }
}

/* clip(rint(x), lo, hi) into the output's type, one row. The bounds are integers, so
   rounding the clipped value is the same (v == lo keeps lo, which differs from v at most
   in the sign of a zero: the same integer); below 2^22 in magnitude, adding and taking
   away 1.5 x 2^23 rounds half to even like rintf (which, without SSE4.1, is a call). */
#define WRITE_ROW(T, ROUND)                                                   \
    {                                                                         \
        T *o = (T *)out + at;                                                 \
        for (int j = 0; j < w; j++) {                                         \
            float v = x[j];                                                   \
            v = v > flo ? v : flo; /* (NaN: lo; the maxps / minps pattern) */ \
            v = v < fhi ? v : fhi;                                            \
            o[j] = (T)(ROUND);                                                \
        }                                                                     \
    }
#define MAGIC_ROUND ((v + 12582912.0f) - 12582912.0f)

static void write_row(void *out, int otype, size_t at, const float *x, int w, double lo, double hi) {
    const float flo = (float)lo, fhi = (float)hi;  /* (exact: bounds within 2^30, 16-bit values) */
    if (lo < -4194304.0 || hi > 4194304.0) {
        WRITE_ROW(int32_t, rintf(v))  /* (only int32 output has such bounds) */
        return;
    }
    switch (otype) {
    case HLC_OUT_I32: WRITE_ROW(int32_t, MAGIC_ROUND) break;
    case HLC_OUT_I16: WRITE_ROW(int16_t, MAGIC_ROUND) break;
    case HLC_OUT_U16: WRITE_ROW(uint16_t, MAGIC_ROUND) break;
    case HLC_OUT_I8: WRITE_ROW(int8_t, MAGIC_ROUND) break;
    default: WRITE_ROW(uint8_t, MAGIC_ROUND) break;
    }
}

/* ------------------------------------------------------------ synthesis, one pass a level */

/* Where a level's rows come from: an int32 band (dequantised: LL or detail) or float32 rows. */
enum { SRC_F32, SRC_LL, SRC_DETAIL, SRC_DETAIL16 };  /* (16: int16 quantised indices) */
typedef struct {
    const void *p;
    size_t stride; /* elements between rows */
    int kind;
    float step;
} Src;

/* Where its rows go: float32 rows (otype < 0) or rounded and clipped samples of otype. */
typedef struct {
    void *p;
    size_t stride;
    int otype;
    double lo, hi;
} Sink;

/* One detail coefficient dequantised: sign(v) ((float)|v| + recon) step, without
   branches so that it vectorises: (float)|v| as |(float)v| (int32 to float rounds to
   nearest, symmetric about 0, and -2^31 is exact: the same value, where the int64
   conversion of |v| has no SSE2 vector form), -m as m with its sign bit flipped (what
   negation does), 0 for v = 0 as all bits clear. */
static inline __attribute__((always_inline)) float dequant(int32_t v, float recon, float step) {
    float m = fabsf((float)v);
    m = m + recon;
    m = m * step;
    uint32_t bits;
    memcpy(&bits, &m, sizeof bits);
    bits ^= (uint32_t)v & 0x80000000u;
    bits &= (uint32_t)-(int32_t)(v != 0);
    memcpy(&m, &bits, sizeof bits);
    return m;
}

/* n samples of row r of src into dst, each then times k if scale (the row synthesis's
   first step, s *= K or d *= 2/K, folded in: the same two operations per sample, in
   one pass over the row). */
static inline __attribute__((always_inline)) void load_row(float *dst, const Src *src, int r, int n, float recon,
                                                            int scale, float k) {
    if (src->kind == SRC_F32) {
        const float *x = (const float *)src->p + (size_t)r * src->stride;
        if (!scale) { memcpy(dst, x, sizeof(float) * (size_t)n); return; }
        for (int j = 0; j < n; j++) dst[j] = x[j] * k;
        return;
    }
    const float step = src->step;
    if (src->kind == SRC_DETAIL16) {  /* (the same integers as int32: the same floats) */
        const int16_t *q16 = (const int16_t *)src->p + (size_t)r * src->stride;
        if (scale)
            for (int j = 0; j < n; j++) dst[j] = dequant(q16[j], recon, step) * k;
        else
            for (int j = 0; j < n; j++) dst[j] = dequant(q16[j], recon, step);
        return;
    }
    const int32_t *q = (const int32_t *)src->p + (size_t)r * src->stride;
    if (src->kind == SRC_LL) {
        if (scale)
            for (int j = 0; j < n; j++) { float v = (float)q[j] * step; dst[j] = v * k; }
        else
            for (int j = 0; j < n; j++) dst[j] = (float)q[j] * step;
    } else if (scale) {
        for (int j = 0; j < n; j++) dst[j] = dequant(q[j], recon, step) * k;
    } else {
        for (int j = 0; j < n; j++) dst[j] = dequant(q[j], recon, step);
    }
}

/* Whether row r of src (n samples) is an int32 detail row of zeros only: dequantised
   it is n samples of +0.0, and a lifting step that adds c (0 + 0) to x for c < 0 adds
   -0.0, which leaves every x as it is, to the bit (x + -0.0 == x, -0.0 included). */
static inline __attribute__((always_inline)) int zero_row(const Src *src, int r, int n) {
    if (src->kind == SRC_DETAIL16) {
        const int16_t *q16 = (const int16_t *)src->p + (size_t)r * src->stride;
        int16_t any16 = 0;
        for (int j = 0; j < n; j++) any16 |= q16[j];
        return any16 == 0;
    }
    if (src->kind != SRC_DETAIL) return 0;
    const int32_t *q = (const int32_t *)src->p + (size_t)r * src->stride;
    int32_t any = 0;
    for (int j = 0; j < n; j++) any |= q[j];
    return any == 0;
}

/* Row r of a level of width w synthesised along x from a (the s half, ns_h samples) and
   b (the d half), interleaved into dst, each sample then times kc if col (the column
   synthesis's first step). tmp: w floats. Returns whether the row is all +0.0: both
   halves are rows of zeros, and every step then gives +0.0 (0 + c (0 + 0) with c < 0 is
   0 + -0.0 = +0.0; with c > 0, 0 + +0.0; times K, 2/K, kc > 0: +0.0), so it is cleared
   instead. A d half of zeros skips the first step (s -= D (d + d): adds -0.0). */
static inline __attribute__((always_inline)) int level_row(float *dst, const Src *a, const Src *b, int r, int w,
                                                           float recon, int col, float kc, float *tmp) {
    int ns = (w + 1) / 2, nd = w / 2;
    float *s = tmp, *d = tmp + ns;
    int dz = nd > 0 && zero_row(b, r, nd);
    if (dz && zero_row(a, r, ns)) {
        memset(dst, 0, sizeof(float) * (size_t)w);
        return 1;
    }
    load_row(s, a, r, ns, recon, nd > 0, (float)K97);
    if (dz) memset(d, 0, sizeof(float) * (size_t)nd);
    else load_row(d, b, r, nd, recon, 1, (float)(2.0 / K97));
    if (nd > 0) {
        if (!dz) lift_left(s, ns, d, nd, (float)-D97);
        lift_right(d, nd, s, ns, (float)-G97);
        lift_left(s, ns, d, nd, (float)-B97);
        lift_right(d, nd, s, ns, (float)-A97);
    }
    if (col) {
        for (int i = 0; i < nd; i++) { dst[2 * i] = s[i] * kc; dst[2 * i + 1] = d[i] * kc; }
        if (ns > nd) dst[w - 1] = s[ns - 1] * kc;
    } else {
        for (int i = 0; i < nd; i++) { dst[2 * i] = s[i]; dst[2 * i + 1] = d[i]; }
        if (ns > nd) dst[w - 1] = s[ns - 1];
    }
    return 0;
}

/* x[j] += c * (y0[j] + y1[j]): one column lifting step on one row. */
static void lift_row(float *restrict x, const float *y0, const float *y1, float c, int w) {
    for (int j = 0; j < w; j++) {
        float t = y0[j] + y1[j];
        t = t * c;
        x[j] = x[j] + t;
    }
}

/* The four column steps of an iteration t with 2 <= t < nd (no mirrored index: six
   distinct rows), in one pass over the row: for each sample the same operations in the
   same order as the four lift_row calls (each step reads only its own column), so the
   same bits; step 1 left out if !first (its two d rows +0.0: it would add -0.0). */
static inline __attribute__((always_inline)) void lift4_rows(float *restrict s0, float *restrict s1,
                                                             float *restrict s2, const float *restrict d0,
                                                             float *restrict d1, float *restrict d2, int first,
                                                             int w) {
    const float c1 = (float)-D97, c2 = (float)-G97, c3 = (float)-B97, c4 = (float)-A97;
    for (int j = 0; j < w; j++) {  /* (the test of first is taken out of the loop: -O3 unswitches it) */
        float a = s0[j], t;
        if (first) {
            t = d1[j] + d0[j];
            t = t * c1;
            a = a + t;
            s0[j] = a;
        }
        t = s1[j] + a;
        t = t * c2;
        float b = d1[j] + t;
        d1[j] = b;
        t = d2[j] + b;
        t = t * c3;
        float c = s1[j] + t;
        s1[j] = c;
        t = s2[j] + c;
        t = t * c4;
        d2[j] = d2[j] + t;
    }
}

static void emit_row(const Sink *o, int r, const float *x, int w) {
    if (o->otype < 0) memcpy((float *)o->p + (size_t)r * o->stride, x, sizeof(float) * (size_t)w);
    else write_row(o->p, o->otype, (size_t)r * o->stride, x, w, o->lo, o->hi);
}

/* One synthesis level of h x w from ll|hl (rows of s) and lh|hh (rows of d) into out.
   Column steps at iteration t: s_t -= D(d_t-1 + d_t), d_t-1 -= G(s_t-1 + s_t),
   s_t-1 -= B(d_t-2 + d_t-1), d_t-2 -= A(s_t-2 + s_t-1) (indices mirrored at both ends
   as in the whole-column steps); each reads only values its step's predecessor has
   finished and that no later step has overwritten, so every sample goes through the
   same operations on the same operands as six whole passes would. Rows t-2 are then
   final. work: 7 w floats (a ring of three s rows and three d rows, and a row). */
static inline __attribute__((always_inline)) int synth_level_body(
        const Src *ll, const Src *hl, const Src *lh, const Src *hh, float recon, int h, int w, const Sink *out,
        float *work) {
    int ns = (h + 1) / 2, nd = h / 2;
    float *tmp = work + 6 * (size_t)w;
    if (h == 0 || w == 0) return 0;
    if (nd == 0) {  /* one row: no column synthesis */
        level_row(work, ll, hl, 0, w, recon, 0, 1.0f, tmp);
        emit_row(out, 0, work, w);
        return 0;
    }
#define S_(i) (work + (size_t)((i) % 3) * w)
#define D_(i) (work + (size_t)(3 + (i) % 3) * w)
    int dzero[3] = {0, 0, 0};  /* whether D_(i) is a row of +0.0 from level_row, until its first update */
    for (int t = 0; t <= ns + 1; t++) {
        if (t < ns) level_row(S_(t), ll, hl, t, w, recon, 1, (float)K97, tmp);
        if (t < nd) dzero[t % 3] = level_row(D_(t), lh, hh, t, w, recon, 1, (float)(2.0 / K97), tmp);
        /* (s_t -= D (d_t-1 + d_t) with both d rows +0.0 adds -0.0: skipped, same bits) */
        int first = !(dzero[(t ? t - 1 : 0) % 3] && dzero[(t < nd ? t : nd - 1) % 3]);
        if (t >= 2 && t < nd) {
            lift4_rows(S_(t), S_(t - 1), S_(t - 2), D_(t), D_(t - 1), D_(t - 2), first, w);
            emit_row(out, 2 * (t - 2), S_(t - 2), w);
            emit_row(out, 2 * (t - 2) + 1, D_(t - 2), w);
            continue;
        }
        if (t < ns && first)
            lift_row(S_(t), D_(t ? t - 1 : 0), D_(t < nd ? t : nd - 1), (float)-D97, w);
        if (t >= 1 && t - 1 < nd) lift_row(D_(t - 1), S_(t - 1), S_(t < ns ? t : t - 1), (float)-G97, w);
        if (t >= 1 && t - 1 < ns) lift_row(S_(t - 1), D_(t >= 2 ? t - 2 : 0), D_(t - 1 < nd ? t - 1 : nd - 1),
                                           (float)-B97, w);
        if (t >= 2 && t - 2 < nd) lift_row(D_(t - 2), S_(t - 2), S_(t - 1 < ns ? t - 1 : t - 2), (float)-A97, w);
        if (t >= 2) {
            emit_row(out, 2 * (t - 2), S_(t - 2), w);
            if (t - 2 < nd) emit_row(out, 2 * (t - 2) + 1, D_(t - 2), w);
        }
    }
#undef S_
#undef D_
    return 0;
}

/* The synthesis level in two vector builds (kernels.h: HLC_VECTOR_BUILDS): AVX2 ~1.5-1.7x
   the baseline (benchmarks/results/lossy_speed.md, "Branch dec"). */
HLC_VECTOR_BUILDS(int, synth_level, (const Src *ll, const Src *hl, const Src *lh, const Src *hh, float recon, int h,
                                     int w, const Sink *out, float *work), (ll, hl, lh, hh, recon, h, w, out, work))

/* bands: LL, then (HL, LH, HH) per level, coarsest first, shapes as band_shapes(H, W, levels);
   steps: one per band. out: H x W of otype, values clipped to [lo, hi] (lo <= hi, both within
   the type). Each level's float result feeds the next from one of two buffers taken in turn
   (a quarter and a sixteenth of the plane). Returns -1 if out of memory. */
int hlc_synth97(const int32_t *const *bands, int levels, const float *steps, float recon,
                int H, int W, void *out, int otype, double lo, double hi) {
    int hs[64], ws[64];
    hs[0] = H; ws[0] = W;
    for (int k = 1; k <= levels; k++) { hs[k] = (hs[k - 1] + 1) / 2; ws[k] = (ws[k - 1] + 1) / 2; }
    size_t nbuf[2] = {levels > 1 ? (size_t)hs[1] * ws[1] : 0, levels > 2 ? (size_t)hs[2] * ws[2] : 0};
    float *work = malloc(sizeof(float) * (7 * (size_t)W + nbuf[0] + nbuf[1]) + 16);
    if (!work) return -1;
    float *buf[2] = {work + 7 * (size_t)W, work + 7 * (size_t)W + nbuf[0]};
    Src ll = {bands[0], (size_t)ws[levels], SRC_LL, steps[0]};
    Sink last = {out, (size_t)W, otype, lo, hi};
    if (levels == 0) {
        for (int r = 0; r < H; r++) {
            load_row(work, &ll, r, W, recon, 0, 1.0f);
            emit_row(&last, r, work, W);
        }
    }
    for (int lev = levels; lev >= 1; lev--) {
        int h = hs[lev - 1], w = ws[lev - 1], ns_h = (w + 1) / 2, b = 1 + 3 * (levels - lev);
        Src hl = {bands[b], (size_t)(w / 2), SRC_DETAIL, steps[b]};
        Src lh = {bands[b + 1], (size_t)ns_h, SRC_DETAIL, steps[b + 1]};
        Src hh = {bands[b + 2], (size_t)(w / 2), SRC_DETAIL, steps[b + 2]};
        Sink next = {buf[lev % 2], (size_t)w, -1, 0.0, 0.0};
        synth_level(&ll, &hl, &lh, &hh, recon, h, w, lev == 1 ? &last : &next, work);
        ll = (Src){next.p, (size_t)w, SRC_F32, 0.0f};
    }
    free(work);
    return 0;
}

/* One synthesis level in the caller's band arrays, for planes too large for hlc_synth97's
   buffers (pipeline.py: each level's bands freed after it): ll (ns_v x ns_h; int32 to
   dequantise with ll_step if ll_int, else float32), hl (ns_v x nd_h), lh (nd_v x ns_h),
   hh (nd_v x nd_h) int32, read only. out: h rows of w, ostride elements apart (>= w: a
   tile of a larger image is written in place), float32 (otype < 0) or of otype clipped
   to [lo, hi]. work: HLC_SYNTH97_WORK(w) floats. */
void hlc_synth97_level(void *ll, int ll_int, float ll_step, void *hl, void *lh, void *hh, int d16, const float *steps,
                       float recon, int h, int w, void *out, size_t ostride, int otype, double lo, double hi,
                       float *work) {
    int ns_h = (w + 1) / 2, nd_h = w / 2, kind = d16 ? SRC_DETAIL16 : SRC_DETAIL;
    Src a = {ll, (size_t)ns_h, ll_int ? SRC_LL : SRC_F32, ll_step};
    Src b = {hl, (size_t)nd_h, kind, steps[0]};
    Src c = {lh, (size_t)ns_h, kind, steps[1]};
    Src d = {hh, (size_t)nd_h, kind, steps[2]};
    Sink o = {out, ostride, otype, lo, hi};
    synth_level(&a, &b, &c, &d, recon, h, w, &o, work);
}

/* ------------------------------------------------------------ forward 9/7 (analysis)
 *
 * The lossy encoder's analysis, in place on a float32 plane: the same IEEE float32
 * operations in the same order as the numpy lifting of codec_core/transform.py
 * (_fwd97_lift: along the columns first, then along the rows of each half), so the
 * bands are the reference's bit for bit (tests/test_transform.py):
 *   d += A(s[i] + s[i+1]), s += B(d[i-1] + d[i]), d += G(s[i] + s[i+1]),
 *   s += D(d[i-1] + d[i]), s *= 1/K, d *= K/2 (an axis of one sample left as it is).
 * Each level leaves its region packed as four contiguous bands [LL | HL | LH | HH],
 * so the next level works on the LL prefix and the result is every band, contiguous,
 * in decomposition order (LL, then HL, LH, HH coarsest first): no copy per band. */

/* The row analysis of one row of n samples, each sample first times kc if col (the
   column analysis's last step, folded in): x becomes [s | d] (via tmp). */
static void analyse_row(float *x, int n, float *tmp, int col, float kc) {
    int ns = (n + 1) / 2, nd = n / 2;
    if (nd == 0) {
        if (col) x[0] = x[0] * kc;
        return;
    }
    float *s = tmp, *d = tmp + ns;
    if (col) {
        for (int i = 0; i < ns; i++) s[i] = x[2 * i] * kc;
        for (int i = 0; i < nd; i++) d[i] = x[2 * i + 1] * kc;
    } else {
        for (int i = 0; i < ns; i++) s[i] = x[2 * i];
        for (int i = 0; i < nd; i++) d[i] = x[2 * i + 1];
    }
    lift_right(d, nd, s, ns, (float)A97);
    lift_left(s, ns, d, nd, (float)B97);
    lift_right(d, nd, s, ns, (float)G97);
    lift_left(s, ns, d, nd, (float)D97);
    const float k = (float)(1.0 / K97), k2 = (float)(K97 / 2.0);
    for (int i = 0; i < ns; i++) x[i] = s[i] * k;
    for (int i = 0; i < nd; i++) x[ns + i] = d[i] * k2;
}

/* One analysis level of the h x w region x (rows w apart; even rows s, odd d), in place,
   in one pass down its rows: at iteration t, d_t += A(s_t + s_t+1), s_t += B(d_t-1 + d_t),
   d_t-1 += G(s_t-1 + s_t), s_t-1 += D(d_t-2 + d_t-1) (indices mirrored at both ends, as
   in whole-column passes), each reading only values its predecessor step has finished
   and no later step has overwritten; s_t-1 and then d_t-2 are final: scaled (1/K, K/2)
   and analysed along x while in cache. Same operations on the same operands per sample
   as six whole passes and a row pass. tmp: n floats. */
static void analyse_level(float *x, int h, int w, float *tmp) {
    int ns = (h + 1) / 2, nd = h / 2;
    if (nd == 0) {  /* one row: no column analysis */
        analyse_row(x, w, tmp, 0, 1.0f);
        return;
    }
    const float ks = (float)(1.0 / K97), kd = (float)(K97 / 2.0);
#define S_(i) (x + (size_t)(2 * (i)) * w)
#define D_(i) (x + (size_t)(2 * (i) + 1) * w)
    for (int t = 0; t <= ns + 1; t++) {
        if (t < nd) lift_row(D_(t), S_(t), S_(t + 1 < ns ? t + 1 : t), (float)A97, w);
        if (t < ns) lift_row(S_(t), D_(t ? t - 1 : 0), D_(t < nd ? t : nd - 1), (float)B97, w);
        if (t >= 1 && t - 1 < nd) lift_row(D_(t - 1), S_(t - 1), S_(t < ns ? t : t - 1), (float)G97, w);
        if (t >= 1 && t - 1 < ns) {
            lift_row(S_(t - 1), D_(t >= 2 ? t - 2 : 0), D_(t - 1 < nd ? t - 1 : nd - 1), (float)D97, w);
            analyse_row(S_(t - 1), w, tmp, 1, ks);
        }
        if (t >= 2 && t - 2 < nd) analyse_row(D_(t - 2), w, tmp, 1, kd);
    }
#undef S_
#undef D_
}

/* Rows of an h x w region reordered even rows first, then odd ones, in place: the
   permutation's cycles followed with one row of temporary (row) and a flag per row. */
void hlc_unshuffle_rows(uint32_t *x, int h, int w, uint32_t *row, unsigned char *seen) {
    if (h < 2 || w < 1) return;  /* (one row: nothing to reorder) */
    int ns = (h + 1) / 2;
    size_t bytes = sizeof(uint32_t) * (size_t)w;
    memset(seen, 0, (unsigned)h);
    for (int start = 0; start < h; start++) {
        if (seen[start]) continue;
        /* the row at `start` goes to dest(start); follow the cycle */
        memcpy(row, x + (size_t)start * w, bytes);
        int r = start;
        for (;;) {
            int dst = r % 2 ? ns + r / 2 : r / 2;
            seen[r] = 1;
            if (dst == start) { memcpy(x + (size_t)dst * w, row, bytes); break; }
            /* swap the carried row with the one at dst */
            uint32_t *p = x + (size_t)dst * w;
            for (int j = 0; j < w; j++) { uint32_t t = p[j]; p[j] = row[j]; row[j] = t; }
            r = dst;
        }
    }
}

/* n rows of [a (na) | b (nb)] (rows na + nb apart) made [a rows ... | b rows ...], m rows
   at a time through scratch (m (na + nb) floats, not all n rows' b parts: the working
   memory was a quarter of the plane, 0.5x a 16-bit image, beside the plane): after k rows
   the region holds [a_0 .. a_k-1 | b_0 .. b_k-1 | rows k ..]; the next rows go to scratch,
   the b parts so far move right past the chunk's a parts (within the rows done and the
   chunk's, which scratch holds), and the chunk's a and b parts go to their places. */
void hlc_pack_half(uint32_t *x, int n, int na, int nb, uint32_t *scratch, int m) {
    size_t w = (size_t)na + nb, e = sizeof(uint32_t);
    for (int k = 0; k < n; k += m) {
        int c = n - k < m ? n - k : m;
        uint32_t *sa = scratch, *sb = scratch + (size_t)c * na;
        for (int i = 0; i < c; i++) {
            const uint32_t *row = x + (size_t)(k + i) * w;
            memcpy(sa + (size_t)i * na, row, e * na);
            memcpy(sb + (size_t)i * nb, row + na, e * nb);
        }
        memmove(x + (size_t)(k + c) * na, x + (size_t)k * na, e * (size_t)k * nb);
        memcpy(x + (size_t)k * na, sa, e * (size_t)c * na);
        memcpy(x + (size_t)(k + c) * na + (size_t)k * nb, sb, e * (size_t)c * nb);
    }
}

/* Rows pack_half moves at a time for a plane of H rows: an eighth of a half (the b parts
   so far moved 3.5 times over, a fraction of the lifting's time). */
int hlc_fwd97_chunk(int H) {
    int m = ((H + 1) / 2 + 7) / 8;
    return m < 1 ? 1 : m;
}

/* levels of analysis of the H x W plane x (int32 made float32 first if from_int). scratch:
   (hlc_fwd97_chunk(H) + 1) * W floats, seen: H bytes (the caller's: memory it can account for). */
static inline __attribute__((always_inline)) int fwd97_body(float *x, int H, int W, int levels, int from_int,
                                                             float *scratch, unsigned char *seen) {
    int h = H, w = W;
    if (from_int) {  /* int32 samples made float32 in the same bytes (as numpy's astype rounds) */
        const int32_t *q = (const int32_t *)(void *)x;
        for (size_t i = 0, n = (size_t)H * W; i < n; i++) {
            int32_t v = q[i];
            x[i] = (float)v;
        }
    }
    float *tmp = scratch + (size_t)hlc_fwd97_chunk(H) * W;
    for (int lev = 0; lev < levels; lev++) {
        analyse_level(x, h, w, tmp);
        /* (the layout's moves take the samples' bits as uint32: wavelet97.c and transform53.c share them) */
        uint32_t *u = (uint32_t *)(void *)x, *us = (uint32_t *)(void *)scratch;
        hlc_unshuffle_rows(u, h, w, (uint32_t *)(void *)tmp, seen);
        int ns_v = (h + 1) / 2, nd_v = h / 2, ns_h = (w + 1) / 2, nd_h = w / 2, m = hlc_fwd97_chunk(h);
        hlc_pack_half(u, ns_v, ns_h, nd_h, us, m);                    /* LL | HL */
        hlc_pack_half(u + (size_t)ns_v * w, nd_v, ns_h, nd_h, us, m); /* LH | HH */
        h = ns_v;
        w = ns_h;
    }
    return 0;
}

/* The analysis in two vector builds (kernels.h): AVX2 1.2-1.3x the baseline on 512^2 to
   2048^2 planes (bench_synth97.py, "Stop 28"). */
HLC_VECTOR_BUILDS(int, fwd97, (float *x, int H, int W, int levels, int from_int, float *scratch, unsigned char *seen),
                  (x, H, W, levels, from_int, scratch, seen))

void hlc_fwd97(float *x, int H, int W, int levels, int from_int, float *scratch, unsigned char *seen) {
    fwd97(x, H, W, levels, from_int, scratch, seen);
}
