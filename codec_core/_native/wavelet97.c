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
 * Bands are dequantised straight into their place in one float plane, each row and
 * column lifted in place, and the last level's rows written rounded into the output.
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

/* The 1-D synthesis of one row: s = x[0 .. ns), d = x[ns .. n), interleaved into x via tmp. */
static void synth_row(float *x, int n, float *tmp) {
    int ns = (n + 1) / 2, nd = n / 2;
    if (nd == 0) return;
    float *s = x, *d = x + ns;
    const float k = (float)K97, k2 = (float)(2.0 / K97);
    for (int i = 0; i < ns; i++) s[i] = s[i] * k;
    for (int i = 0; i < nd; i++) d[i] = d[i] * k2;
    lift_left(s, ns, d, nd, (float)-D97);
    lift_right(d, nd, s, ns, (float)-G97);
    lift_left(s, ns, d, nd, (float)-B97);
    lift_right(d, nd, s, ns, (float)-A97);
    for (int i = 0; i < ns; i++) tmp[2 * i] = s[i];
    for (int i = 0; i < nd; i++) tmp[2 * i + 1] = d[i];
    memcpy(x, tmp, sizeof(float) * (size_t)n);
}

/* The same along the columns of an h x w region of rows `stride` apart, row by row
   (each update is elementwise across a row: the same operations as column by column). */
static void lift_rows_left(float *s, int ns, const float *d, int nd, float c, int w, size_t stride) {
    for (int i = 0; i < ns; i++) {
        float *x = s + (size_t)i * stride;
        const float *y0 = d + (size_t)(i == 0 ? 0 : i - 1) * stride;
        const float *y1 = d + (size_t)(i < nd ? i : nd - 1) * stride;
        for (int j = 0; j < w; j++) {
            float t = y0[j] + y1[j];
            t = t * c;
            x[j] = x[j] + t;
        }
    }
}

static void lift_rows_right(float *d, int nd, const float *s, int ns, float c, int w, size_t stride) {
    for (int i = 0; i < nd; i++) {
        float *x = d + (size_t)i * stride;
        const float *y0 = s + (size_t)i * stride;
        const float *y1 = s + (size_t)(i + 1 < ns ? i + 1 : i) * stride;
        for (int j = 0; j < w; j++) {
            float t = y0[j] + y1[j];
            t = t * c;
            x[j] = x[j] + t;
        }
    }
}

static void scale_rows(float *x, int n, int w, size_t stride, float k) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < w; j++) x[(size_t)i * stride + j] = x[(size_t)i * stride + j] * k;
}

/* Vertical synthesis of the h x w region at buf (rows W apart), lifted in place. */
static void synth_columns(float *buf, int h, int w, size_t W) {
    int ns = (h + 1) / 2, nd = h / 2;
    if (nd == 0) return;
    float *s = buf, *d = buf + (size_t)ns * W;
    scale_rows(s, ns, w, W, (float)K97);
    scale_rows(d, nd, w, W, (float)(2.0 / K97));
    lift_rows_left(s, ns, d, nd, (float)-D97, w, W);
    lift_rows_right(d, nd, s, ns, (float)-G97, w, W);
    lift_rows_left(s, ns, d, nd, (float)-B97, w, W);
    lift_rows_right(d, nd, s, ns, (float)-A97, w, W);
}

/* Row r of the synthesised region: s row r/2 or d row r/2 (rows W apart). */
static const float *region_row(const float *buf, int h, size_t W, int r) {
    int ns = (h + 1) / 2;
    return buf + (size_t)(r % 2 ? ns + r / 2 : r / 2) * W;
}

static void dequantise(float *dst, size_t W, const int32_t *q, int h, int w, float step, float recon, int ll) {
    for (int i = 0; i < h; i++) {
        const int32_t *src = q + (size_t)i * w;
        float *out = dst + (size_t)i * W;
        if (ll) {
            for (int j = 0; j < w; j++) out[j] = (float)src[j] * step;
        } else {
            for (int j = 0; j < w; j++) {
                int32_t v = src[j];
                float m = (float)(v < 0 ? -(int64_t)v : (int64_t)v);
                m = m + recon;
                m = m * step;
                out[j] = v == 0 ? 0.0f : (v < 0 ? -m : m);
            }
        }
    }
}

/* clip(rint(x), lo, hi) into the output's type, one row. The bounds are integers, so
   rounding the clipped value is the same; below 2^22 in magnitude, adding and taking
   away 1.5 x 2^23 rounds half to even like rintf (which, without SSE4.1, is a call). */
#define WRITE_ROW(T, ROUND)                                                   \
    {                                                                         \
        T *o = (T *)out + at;                                                 \
        for (int j = 0; j < w; j++) {                                         \
            float v = x[j];                                                   \
            v = v >= flo ? v : flo; /* (NaN: lo) */                           \
            v = v <= fhi ? v : fhi;                                           \
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

/* bands: LL, then (HL, LH, HH) per level, coarsest first, shapes as band_shapes(H, W, levels);
   steps: one per band. out: H x W of otype, values clipped to [lo, hi] (lo <= hi, both within
   the type). Returns -1 if out of memory. */
int hlc_synth97(const int32_t *const *bands, int levels, const float *steps, float recon,
                int H, int W, void *out, int otype, double lo, double hi) {
    int hs[64], ws[64];
    hs[0] = H; ws[0] = W;
    for (int k = 1; k <= levels; k++) { hs[k] = (hs[k - 1] + 1) / 2; ws[k] = (ws[k - 1] + 1) / 2; }
    float *buf = malloc(sizeof(float) * (size_t)H * W + sizeof(float) * (size_t)(W > H ? W : H) + 16);
    /* the interleaved rows of a coarser level (at most a quarter of the plane) */
    float *copy = levels > 1 ? malloc(sizeof(float) * (size_t)hs[1] * ws[1] + 16) : NULL;
    if (!buf || (levels > 1 && !copy)) { free(buf); free(copy); return -1; }
    float *tmp = buf + (size_t)H * W;
    size_t S = (size_t)W;
    dequantise(buf, S, bands[0], hs[levels], ws[levels], steps[0], recon, 1);
    for (int lev = levels; lev >= 1; lev--) {
        int h = hs[lev - 1], w = ws[lev - 1], ns_v = (h + 1) / 2, ns_h = (w + 1) / 2;
        int b = 1 + 3 * (levels - lev);
        dequantise(buf + ns_h, S, bands[b], ns_v, w / 2, steps[b], recon, 0);
        dequantise(buf + (size_t)ns_v * S, S, bands[b + 1], h / 2, ns_h, steps[b + 1], recon, 0);
        dequantise(buf + (size_t)ns_v * S + ns_h, S, bands[b + 2], h / 2, w / 2, steps[b + 2], recon, 0);
        for (int r = 0; r < h; r++) synth_row(buf + (size_t)r * S, w, tmp);
        synth_columns(buf, h, w, S);
        if (lev == 1) break;
        /* interleave the rows (the next level's LL), through tmp row by row from the end
           of a copy: the region is copied out first, then written back in order */
        for (int r = 0; r < h; r++) memcpy(copy + (size_t)r * w, region_row(buf, h, S, r), sizeof(float) * w);
        for (int r = 0; r < h; r++) memcpy(buf + (size_t)r * S, copy + (size_t)r * w, sizeof(float) * w);
    }
    for (int r = 0; r < H; r++)
        write_row(out, otype, (size_t)r * W, levels ? region_row(buf, H, S, r) : buf + (size_t)r * S, W, lo, hi);
    free(buf);
    free(copy);
    return 0;
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

/* The column lifting of an h x w region (rows w apart) whose even rows are s, odd d. */
static void analyse_columns(float *x, int h, int w) {
    int ns = (h + 1) / 2, nd = h / 2;
    if (nd == 0) return;
    size_t st = 2 * (size_t)w;
    float *s = x, *d = x + w;
    lift_rows_right(d, nd, s, ns, (float)A97, w, st);
    lift_rows_left(s, ns, d, nd, (float)B97, w, st);
    lift_rows_right(d, nd, s, ns, (float)G97, w, st);
    lift_rows_left(s, ns, d, nd, (float)D97, w, st);
    scale_rows(s, ns, w, st, (float)(1.0 / K97));
    scale_rows(d, nd, w, st, (float)(K97 / 2.0));
}

/* The row analysis of one row of n samples: x becomes [s | d] (via tmp). */
static void analyse_row(float *x, int n, float *tmp) {
    int ns = (n + 1) / 2, nd = n / 2;
    if (nd == 0) return;
    float *s = tmp, *d = tmp + ns;
    for (int i = 0; i < ns; i++) s[i] = x[2 * i];
    for (int i = 0; i < nd; i++) d[i] = x[2 * i + 1];
    lift_right(d, nd, s, ns, (float)A97);
    lift_left(s, ns, d, nd, (float)B97);
    lift_right(d, nd, s, ns, (float)G97);
    lift_left(s, ns, d, nd, (float)D97);
    const float k = (float)(1.0 / K97), k2 = (float)(K97 / 2.0);
    for (int i = 0; i < ns; i++) x[i] = s[i] * k;
    for (int i = 0; i < nd; i++) x[ns + i] = d[i] * k2;
}

/* Rows of an h x w region reordered even rows first, then odd ones, in place: the
   permutation's cycles followed with one row of temporary (row) and a flag per row. */
static void unshuffle_rows(float *x, int h, int w, float *row, unsigned char *seen) {
    if (h < 2 || w < 1) return;  /* (one row: nothing to reorder) */
    int ns = (h + 1) / 2;
    size_t bytes = sizeof(float) * (size_t)w;
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
            float *p = x + (size_t)dst * w;
            for (int j = 0; j < w; j++) { float t = p[j]; p[j] = row[j]; row[j] = t; }
            r = dst;
        }
    }
}

/* n rows of [a (na) | b (nb)] (rows na + nb apart) made [a rows ... | b rows ...], with
   the b parts through scratch (n x nb). */
static void pack_half(float *x, int n, int na, int nb, float *scratch) {
    size_t w = (size_t)na + nb;
    for (int i = 0; i < n; i++) memcpy(scratch + (size_t)i * nb, x + i * w + na, sizeof(float) * nb);
    for (int i = 1; i < n; i++) memmove(x + (size_t)i * na, x + i * w, sizeof(float) * na);
    memcpy(x + (size_t)n * na, scratch, sizeof(float) * (size_t)n * nb);
}

/* levels of analysis of the H x W plane x (int32 made float32 first if from_int). scratch: ((H + 1) / 2) * (W / 2) + W floats,
   seen: H bytes (the caller's: memory it can account for). */
void hlc_fwd97(float *x, int H, int W, int levels, int from_int, float *scratch, unsigned char *seen) {
    int h = H, w = W;
    if (from_int) {  /* int32 samples made float32 in the same bytes (as numpy's astype rounds) */
        const int32_t *q = (const int32_t *)(void *)x;
        for (size_t i = 0, n = (size_t)H * W; i < n; i++) {
            int32_t v = q[i];
            x[i] = (float)v;
        }
    }
    float *tmp = scratch + (size_t)((H + 1) / 2) * (W / 2);
    for (int lev = 0; lev < levels; lev++) {
        analyse_columns(x, h, w);
        for (int r = 0; r < h; r++) analyse_row(x + (size_t)r * w, w, tmp);
        unshuffle_rows(x, h, w, tmp, seen);
        int ns_v = (h + 1) / 2, nd_v = h / 2, ns_h = (w + 1) / 2, nd_h = w / 2;
        pack_half(x, ns_v, ns_h, nd_h, scratch);                    /* LL | HL */
        pack_half(x + (size_t)ns_v * w, nd_v, ns_h, nd_h, scratch); /* LH | HH */
        h = ns_v;
        w = ns_h;
    }
}

/* ------------------------------------------------------------ one synthesis level, in the bands
 *
 * The lossy decoder's reconstruction for planes too large for hlc_synth97's whole float
 * plane: one level at a time, in the caller's band arrays. The detail bands (and the
 * coarsest LL) are dequantised in place, int32 to float32 in the same bytes; each row of
 * LL|HL and of LH|HH is synthesised along x and stored back split at ns_h (its first ns_h
 * samples in the LL/LH row, the rest in the HL/HH row); the columns are then synthesised
 * as two independent regions (LL over LH, HL over HH); the level's result is written
 * row by row into out: float32 for a coarser level, rounded and clipped for the last.
 * Same operations in the same order as hlc_synth97 (and the numpy reference), so the
 * same values to the bit; no plane-sized float buffer. */

static void dequantise_in_place(void *band, size_t n, float step, float recon, int ll) {
    int32_t *q = band;
    float *f = band;
    for (size_t i = 0; i < n; i++) {
        int32_t v = q[i];
        if (ll) { f[i] = (float)v * step; continue; }
        float m = (float)(v < 0 ? -(int64_t)v : (int64_t)v);
        m = m + recon;
        m = m * step;
        f[i] = v == 0 ? 0.0f : (v < 0 ? -m : m);
    }
}

/* The row synthesis of s (ns) and d (nd), stored back split: samples [0, ns) in s, the rest in d. */
static void synth_row_split(float *s, int ns, float *d, int nd, float *tmp) {
    int n = ns + nd;
    memcpy(tmp, s, sizeof(float) * ns);
    memcpy(tmp + ns, d, sizeof(float) * nd);
    synth_row(tmp, n, tmp + n);
    memcpy(s, tmp, sizeof(float) * ns);
    memcpy(d, tmp + ns, sizeof(float) * nd);
}

/* synth_columns for s rows and d rows in separate arrays (rows w apart in both). */
static void synth_columns_split(float *s, int ns, float *d, int nd, int w) {
    if (nd == 0 || w == 0) return;
    scale_rows(s, ns, w, (size_t)w, (float)K97);
    scale_rows(d, nd, w, (size_t)w, (float)(2.0 / K97));
    lift_rows_left(s, ns, d, nd, (float)-D97, w, (size_t)w);
    lift_rows_right(d, nd, s, ns, (float)-G97, w, (size_t)w);
    lift_rows_left(s, ns, d, nd, (float)-B97, w, (size_t)w);
    lift_rows_right(d, nd, s, ns, (float)-A97, w, (size_t)w);
}

/* ll (ns_v x ns_h; int32 to dequantise with ll_step if ll_int, else float32), hl
   (ns_v x nd_h), lh (nd_v x ns_h), hh (nd_v x nd_h) int32, all overwritten. out: h x w,
   float32 (otype < 0) or of otype clipped to [lo, hi]. tmp: 2 (w + 1) floats. */
void hlc_synth97_level(void *ll, int ll_int, float ll_step, void *hl, void *lh, void *hh, const float *steps,
                       float recon, int h, int w, void *out, int otype, double lo, double hi, float *tmp) {
    int ns_v = (h + 1) / 2, nd_v = h / 2, ns_h = (w + 1) / 2, nd_h = w / 2;
    if (ll_int) dequantise_in_place(ll, (size_t)ns_v * ns_h, ll_step, recon, 1);
    dequantise_in_place(hl, (size_t)ns_v * nd_h, steps[0], recon, 0);
    dequantise_in_place(lh, (size_t)nd_v * ns_h, steps[1], recon, 0);
    dequantise_in_place(hh, (size_t)nd_v * nd_h, steps[2], recon, 0);
    float *fll = ll, *fhl = hl, *flh = lh, *fhh = hh;
    for (int r = 0; r < ns_v; r++) synth_row_split(fll + (size_t)r * ns_h, ns_h, fhl + (size_t)r * nd_h, nd_h, tmp);
    for (int r = 0; r < nd_v; r++) synth_row_split(flh + (size_t)r * ns_h, ns_h, fhh + (size_t)r * nd_h, nd_h, tmp);
    synth_columns_split(fll, ns_v, flh, nd_v, ns_h);
    synth_columns_split(fhl, ns_v, fhh, nd_v, nd_h);
    for (int r = 0; r < h; r++) {
        const float *a = r % 2 ? flh + (size_t)(r / 2) * ns_h : fll + (size_t)(r / 2) * ns_h;
        const float *b = r % 2 ? fhh + (size_t)(r / 2) * nd_h : fhl + (size_t)(r / 2) * nd_h;
        if (otype < 0) {
            float *o = (float *)out + (size_t)r * w;
            memcpy(o, a, sizeof(float) * ns_h);
            memcpy(o + ns_h, b, sizeof(float) * nd_h);
        } else {
            write_row(out, otype, (size_t)r * w, a, ns_h, lo, hi);
            write_row(out, otype, (size_t)r * w + ns_h, b, nd_h, lo, hi);
        }
    }
}
