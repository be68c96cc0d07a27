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
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rangecoder.h"

#define CTX_RUN NCTX_ACT
#define CTX_RUN_END (NCTX_ACT + 1)

static inline int64_t ref_mag(RefBand r, int i, int j) { return abs64(ref_at(r, i, j)); }

/* The neighbourhood activity of (i, j). `mag` holds |band| with two rows of zeros
   above and two columns either side, so the causal neighbours need no bounds tests. */
static inline int64_t activity(const int32_t *mag, int stride, int i, int j,
                               RefBand parent, RefBand x1, RefBand x2) {
    const int32_t *nn = mag + (size_t)i * stride + j + 2;    /* row i - 2 */
    const int32_t *n = nn + stride, *w = n + stride;          /* rows i - 1 and i */
    int64_t a = 3 * (int64_t)w[-1] + w[-2] + 3 * (int64_t)n[0] + n[-1] + n[1] + nn[0];
    return a + 2 * ref_mag(parent, i >> 1, j >> 1) + ref_mag(x1, i, j) + ref_mag(x2, i, j);
}

static inline int sign_context(const int32_t *row, const int32_t *up, int j) {
    return 3 * (sign3(j > 0 ? row[j - 1] : 0) + 1) + sign3(up ? up[j] : 0) + 1;
}

static inline __attribute__((always_inline)) int code_band(
        int decoding, int32_t *band, int H, int W, RefBand parent, RefBand x1, RefBand x2,
        Encoder *e, Decoder *d, int32_t *freq, int32_t *tot, int gbase, int32_t *sfreq, int32_t *stot) {
    int stride = W + 4;
    int32_t *mag = calloc((size_t)(H + 2) * stride, sizeof(int32_t));
    if (!mag) return -1;
    if (!decoding)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                mag[(size_t)(i + 2) * stride + j + 2] = (int32_t)abs64(band[(size_t)i * W + j]);
    int sbase = (gbase / NCTX) * NSIGN_CTX;
    Model run = model_at(freq, tot, HLC_NSYM, gbase + CTX_RUN);
    Model run_end = model_at(freq, tot, HLC_NSYM, gbase + CTX_RUN_END);
    for (int i = 0; i < H; i++) {
        int32_t *row = band + (size_t)i * W, *magrow = mag + (size_t)(i + 2) * stride + 2;
        const int32_t *up = i > 0 ? row - W : NULL;
        int j = 0;
        while (j < W) {
            int64_t a = activity(mag, stride, i, j, parent, x1, x2);
            int64_t m;
            Model mm;
            if (a == 0) {  /* run mode */
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
                if (j == W) continue;
                mm = run_end;  /* the coefficient that ends the run: magnitude - 1 */
                if (decoding) m = (int64_t)dec_uint(d, mm) + 1;
                else { m = abs64(row[j]); enc_uint(e, mm, (uint64_t)(m - 1)); }
            } else {
                mm = model_at(freq, tot, HLC_NSYM, gbase + activity_bucket((uint64_t)a, NCTX_ACT));
                if (decoding) m = (int64_t)dec_uint(d, mm);
                else { m = abs64(row[j]); enc_uint(e, mm, (uint64_t)m); }
            }
            if (m > 0x3FFFFFFF) m = 0x3FFFFFFF;  /* damaged streams only */
            if (m) {
                Model sm = model_at(sfreq, stot, 2, sbase + sign_context(row, up, j));
                if (decoding) m = dec_symbol(d, sm) ? -m : m;
                else enc_symbol(e, sm, row[j] < 0);
            }
            if (decoding) {
                row[j] = (int32_t)m;
                magrow[j] = (int32_t)abs64(m);
            }
            j++;
        }
    }
    free(mag);
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

static inline int64_t med(const int32_t *x, int W, int i, int j) {
    if (i == 0 && j == 0) return 0;
    if (i == 0) return x[j - 1];
    const int32_t *row = x + (size_t)i * W;
    if (j == 0) return row[j - W];
    int64_t a = row[j - 1], b = row[j - W], c = row[j - W - 1];
    int64_t mx = a > b ? a : b, mn = a < b ? a : b;
    if (c >= mx) return mn;
    if (c <= mn) return mx;
    return a + b - c;
}

void hlc_med_residual(const int32_t *x, int32_t *e, int H, int W) {
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            e[(size_t)i * W + j] = (int32_t)(x[(size_t)i * W + j] - med(x, W, i, j));
}

void hlc_med_reconstruct(const int32_t *e, int32_t *x, int H, int W) {
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            int64_t v = (int64_t)e[(size_t)i * W + j] + med(x, W, i, j);
            if (v > 0x3FFFFFFF) v = 0x3FFFFFFF;   /* damaged residuals stay bounded */
            else if (v < -0x3FFFFFFF) v = -0x3FFFFFFF;
            x[(size_t)i * W + j] = (int32_t)v;
        }
}
