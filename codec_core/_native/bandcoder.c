/* Coefficient coder for wavelet subbands (stream format v1/v2).
 *
 * A subband is coded in raster order. Each coefficient's magnitude is a hybrid
 * integer in one of NCTX_ACT contexts: the quantised log of a weighted sum of the
 * magnitudes of already-coded neighbours (3 W, WW, 3 N, NW, NE, NN), twice the parent
 * coefficient in the next coarser band, and the co-located coefficients of the bands
 * of the same level coded earlier. Signs are coded in 9 contexts (the signs of W, N).
 * Where the whole neighbourhood is zero the coder codes the length of the run of
 * zeros instead (0 = the run reaches the end of the row) and then the magnitude - 1
 * and sign of the coefficient that ends it.
 *
 * One function serves both directions (`decoding` is a compile-time constant in
 * each of the two callers), so encoder and decoder cannot drift apart.
 *
 * Speed (stop 25, the bytes and the decoding of damaged bytes unchanged:
 * tests/test_bandcoder.py): the neighbours' magnitudes in a ring of three rows, capped
 * (MAG_CAP) so that each row's part known in advance (rows above, reference bands) is
 * summed in one vectorised pass; W, WW and W's sign in registers. 10% fewer
 * instructions encoding, 12% decoding (callgrind, MR2_UNCR's bands).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rangecoder.h"

#define CTX_RUN NCTX_ACT
#define CTX_RUN_END (NCTX_ACT + 1)

/* Magnitudes in the contexts are capped at MAG_CAP (int32 sums of 14 terms cannot
   overflow): a capped term puts the activity past 2^18, into the last bucket
   (NCTX_ACT - 1) whether capped or not, and keeps it non-zero, so every context is
   the uncapped one. */
#define MAG_CAP (1u << 24)

static inline uint32_t cap_mag(int32_t v) {
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    return u < MAG_CAP ? u : MAG_CAP;
}

/* |band| of a reference band's row, clamped into it as ref_at does, added `mul` times
   to the `W` context sums; `half`: the parent (column j / 2). */
static void add_ref(uint32_t *restrict sum, int W, RefBand r, int i, uint32_t mul, int half) {
    if (r.h == 0) return;
    const int32_t *restrict rr = r.p + (size_t)imin(half ? i >> 1 : i, r.h - 1) * r.w;
    int lim = half ? imin(W, 2 * r.w) : imin(W, r.w);
    if (half) {  /* a parent column serves two columns */
        for (int k = 0; k < lim / 2; k++) {
            uint32_t v = mul * cap_mag(rr[k]);
            sum[2 * k] += v;
            sum[2 * k + 1] += v;
        }
        if (lim & 1) sum[lim - 1] += mul * cap_mag(rr[(lim - 1) >> 1]);
    } else {
        for (int j = 0; j < lim; j++) sum[j] += mul * cap_mag(rr[j]);
    }
    uint32_t last = mul * cap_mag(rr[r.w - 1]);
    for (int j = lim; j < W; j++) sum[j] += last;
}

/* The part of row i's activities known before the row: the rows above (`n`, `nn`,
   capped magnitudes with two zero columns either side) and the reference bands. */
static void row_context(uint32_t *restrict sum, int W, const uint32_t *n, const uint32_t *nn, int i, RefBand parent,
                        RefBand x1, RefBand x2) {
    for (int j = 0; j < W; j++) sum[j] = 3 * n[j] + n[j - 1] + n[j + 1] + nn[j];
    add_ref(sum, W, parent, i, 2, 1);
    add_ref(sum, W, x1, i, 1, 0);
    add_ref(sum, W, x2, i, 1, 0);
}

/* One row: `sum` from row_context, `mag` this row's capped magnitudes (the decoder
   writes them), `up` the row above (zeros on the first). W, WW and W's sign are
   carried in registers. The decoder's state is the caller's local copy (stores into
   the band cannot alias it); the encoder's is not (a copy measured slower there). */
static inline __attribute__((always_inline)) void code_row(
        int decoding, int32_t *row, const int32_t *up, int W, const uint32_t *sum, uint32_t *mag, Encoder *e,
        Decoder *d, int32_t *freq, int32_t *tot, uint64_t *rcp, int32_t *sfreq, int32_t *stot, uint64_t *srcp) {
    Model run = model_at(freq, tot, rcp, HLC_NSYM, CTX_RUN);
    Model run_end = model_at(freq, tot, rcp, HLC_NSYM, CTX_RUN_END);
    uint32_t w1 = 0, w2 = 0;
    int sw = 0;
    int j = 0;
    while (j < W) {
        uint32_t a = 3 * w1 + w2 + sum[j];
        int64_t m;
        if (a == 0) {  /* run mode (W and WW are zero: so they stay) */
            int r;
            if (decoding) {
                uint64_t t = dec_uint(d, run);
                r = t == 0 || t - 1 > (uint64_t)(W - j) ? W - j : (int)(t - 1);
                memset(row + j, 0, (size_t)r * sizeof(int32_t));
            } else {
                r = 0;
                while (j + r < W && row[j + r] == 0) r++;
                enc_uint(e, run, j + r == W ? 0 : (uint64_t)r + 1);
            }
            j += r;
            if (j == W) break;
            /* the coefficient that ends the run: magnitude - 1 */
            if (decoding) m = (int64_t)dec_uint(d, run_end) + 1;
            else { m = abs64(row[j]); enc_uint(e, run_end, (uint64_t)(m - 1)); }
        } else {
            Model mm = model_at(freq, tot, rcp, HLC_NSYM, activity_context(a, NCTX_ACT));
            if (decoding) m = (int64_t)dec_uint(d, mm);
            else { m = abs64(row[j]); enc_uint(e, mm, (uint64_t)m); }
        }
        if (m > 0x3FFFFFFF) m = 0x3FFFFFFF;  /* damaged streams only */
        int s = 0;
        if (m) {
            Model sm = model_at(sfreq, stot, srcp, 2, 3 * (sw + 1) + sign3(up[j]) + 1);
            if (decoding) s = dec_symbol2(d, sm);
            else { s = row[j] < 0; enc_symbol(e, sm, s); }
        }
        w2 = w1;
        w1 = m < MAG_CAP ? (uint32_t)m : MAG_CAP;
        sw = m ? 1 - 2 * s : 0;
        if (decoding) {
            row[j] = (int32_t)(s ? -m : m);
            mag[j] = w1;
        }
        j++;
    }
}

/* Neighbour magnitudes in a ring of three rows (not a padded copy of the band). */
static inline __attribute__((always_inline)) int code_band(
        int decoding, int32_t *band, int H, int W, RefBand parent, RefBand x1, RefBand x2,
        Encoder *ep, Decoder *dp, int32_t *freq, int32_t *tot, int gbase, int32_t *sfreq, int32_t *stot) {
    size_t stride = (size_t)W + 4;
    uint32_t *buf = calloc(5 * stride, sizeof(uint32_t));  /* 3 ring rows, the row sums, a zero row */
    if (!buf) return -1;
    uint32_t *sum = buf + 3 * stride;
    const int32_t *zeros = (const int32_t *)(buf + 4 * stride);
    Decoder d = dp ? *dp : (Decoder){0};
    int sbase = (gbase / NCTX) * NSIGN_CTX;
    /* this group's models, and for the decoder their totals' reciprocals (rangecoder.h) */
    freq += (size_t)gbase * HLC_NSYM, tot += gbase, sfreq += (size_t)sbase * 2, stot += sbase;
    uint64_t rcp_store[NCTX], srcp_store[NSIGN_CTX];
    uint64_t *rcp = decoding ? rcp_store : NULL, *srcp = decoding ? srcp_store : NULL;
    if (decoding) {
        rcp_fill(rcp, tot, NCTX);
        rcp_fill(srcp, stot, NSIGN_CTX);
    }
    for (int i = 0; i < H; i++) {
        int32_t *row = band + (size_t)i * W;
        uint32_t *mag = buf + (size_t)((i + 2) % 3) * stride + 2;  /* rows i, i - 1, i - 2 */
        const uint32_t *n = buf + (size_t)((i + 1) % 3) * stride + 2, *nn = buf + (size_t)(i % 3) * stride + 2;
        row_context(sum, W, n, nn, i, parent, x1, x2);
        if (decoding) memset(mag, 0, sizeof(uint32_t) * (size_t)W);
        else for (int j = 0; j < W; j++) mag[j] = cap_mag(row[j]);
        code_row(decoding, row, i > 0 ? row - W : zeros, W, sum, mag, ep, &d, freq, tot, rcp, sfreq, stot, srcp);
    }
    if (decoding) *dp = d;
    free(buf);
    return 0;
}

int hlc_code_band(int decoding, int32_t *band, int H, int W, const int32_t *parent, int ph, int pw,
                  const int32_t *x1, int h1, int w1, const int32_t *x2, int h2, int w2,
                  Encoder *e, Decoder *d, int32_t *freq, int32_t *tot, int gbase, int32_t *sfreq, int32_t *stot) {
    RefBand p = {parent, ph, pw}, a = {x1, h1, w1}, b = {x2, h2, w2};
    /* two specialisations: `decoding` is a constant inside each */
    if (decoding) return code_band(1, band, H, W, p, a, b, NULL, d, freq, tot, gbase, sfreq, stot);
    return code_band(0, band, H, W, p, a, b, e, NULL, freq, tot, gbase, sfreq, stot);
}

/* ------------------------------------------------------ LL band: MED prediction */

/* The median edge detector of W = a, N = b, NW = c: min(a, b) if c >= max(a, b),
   max(a, b) if c <= min(a, b), else a + b - c; that is a + b - c clamped into
   [min(a, b), max(a, b)], computed without a branch on the samples (the branches were
   mispredicted on real bands: the decoder's reconstruction took ~8 ns a sample). */
static inline int64_t med3(int64_t a, int64_t b, int64_t c) {
    int64_t mx = a > b ? a : b, mn = a < b ? a : b, g = a + b - c;
    g = g > mn ? g : mn;
    return g < mx ? g : mx;
}

void hlc_med_residual(const int32_t *x, int32_t *e, int H, int W) {
    for (int i = 0; i < H; i++) {
        const int32_t *row = x + (size_t)i * W, *up = i ? row - W : row;
        int32_t *out = e + (size_t)i * W;
        if (W) out[0] = (int32_t)(row[0] - (i ? (int64_t)up[0] : 0));  /* (the first column from N, (0, 0) from 0) */
        if (i == 0) {
            for (int j = 1; j < W; j++) out[j] = (int32_t)(row[j] - (int64_t)row[j - 1]);
            continue;
        }
        for (int j = 1; j < W; j++) out[j] = (int32_t)(row[j] - med3(row[j - 1], up[j], up[j - 1]));
    }
}

/* x = e + prediction, kept within +-(2^30 - 1) (damaged residuals stay bounded). */
static inline int32_t med_add(int64_t e, int64_t pred) {
    int64_t v = e + pred;
    v = v > 0x3FFFFFFF ? 0x3FFFFFFF : v;
    return (int32_t)(v < -0x3FFFFFFF ? -0x3FFFFFFF : v);
}

void hlc_med_reconstruct(const int32_t *e, int32_t *x, int H, int W) {
    for (int i = 0; i < H; i++) {
        int32_t *row = x + (size_t)i * W;
        const int32_t *up = i ? row - W : row, *res = e + (size_t)i * W;
        if (W) row[0] = med_add(res[0], i ? up[0] : 0);
        if (i == 0) {
            for (int j = 1; j < W; j++) row[j] = med_add(res[j], row[j - 1]);
            continue;
        }
        for (int j = 1; j < W; j++) row[j] = med_add(res[j], med3(row[j - 1], up[j], up[j - 1]));
    }
}
