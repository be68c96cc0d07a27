/* Quantisation of one 9/7 detail band (codec_core/quantize.py quantise, rdo_levels,
 * _zero_isolated), with the numpy reference's operations in its order, so the levels
 * are identical: float32 |c| / step, the dead zone's floor(x + rounding) (quantize.py's
 * DEADZONE_ROUNDING 0.35, or 0: the floor quantiser) or the RDO choice among {rounded,
 * rounded - 1, 0} by float64 D + lambda R, then the sign, then the isolated +-1
 * thresholding (ISOLATED_ZERO_BELOW). Built with -ffp-contract=off (no fused
 * multiply-add: the same roundings as numpy).
 *
 * RDO needs the band's token statistics first: hlc_rdo_count makes the histogram of
 * (activity context, symbol) of the rounded levels; the caller turns it into bits
 * (numpy's float64 log2, the reference's expression) and hlc_quant_band makes the
 * levels. Rows go one at a time with small ring buffers, so ``out`` may be ``band``'s
 * own memory (the encoder's consume path overwrites each float32 band by its integers).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define RECON_OFFSET 0.10
#define ISOLATED_ZERO_BELOW 0.85f
#define HLC_DIRECT 8
#define NCTX_ACT 36
/* the reference's levels reach at most MAX_COEFFICIENT (2^27): anything from 2^30 up
   (or NaN) is refused before the int cast */
#define LEVEL_LIMIT 1073741824.0f

/* the band coder's symbol (and raw bit count) of a magnitude (quantize._tokens; its
   bit length is numpy's frexp of the float32 value, as the reference takes it) */
static inline int token(int32_t v, int *raw) {
    if (v < HLC_DIRECT) { *raw = 0; return v; }
    int e;
    if (v < (1 << 24)) e = bit_length((uint64_t)v);  /* (exact in float32: the same) */
    else frexpf((float)v, &e);
    int ex = e - 1;
    *raw = ex - 1;
    return HLC_DIRECT + 2 * (ex - 3) + ((v >> (ex - 1)) & 1);
}

/* quantize._activity of the coefficient at column j (rows padded by 2 columns each side) */
static inline int activity(const int32_t *r, const int32_t *n, const int32_t *nn, int j) {
    int64_t a = 3 * (int64_t)r[j - 1] + r[j - 2] + 3 * (int64_t)n[j] + n[j - 1] + n[j + 1] + nn[j];
    if (a < 4) return (int)a;
    if (a >= (1 << 24)) return NCTX_ACT - 1;  /* (float32 frexp is exact below 2^24) */
    int b = bit_length((uint64_t)a);  /* (rangecoder.h) */
    int k = 2 * b - 2 + (int)((a >> (b - 2)) & 1);
    return k < NCTX_ACT - 1 ? k : NCTX_ACT - 1;
}

/* rounded levels floor(|c| / step + 0.5f) of one row into r (padded); -1 on a level
   beyond the limit */
static int rounded_row(const float *c, int W, float step, int32_t *r) {
    for (int j = 0; j < W; j++) {
        float y = fabsf(c[j]) / step + 0.5f;
        if (!(y < LEVEL_LIMIT)) return -1;
        r[j] = (int32_t)y;  /* (y >= 0: truncation is floor, no libm call without -msse4.1) */
    }
    return 0;
}

int hlc_rdo_count(const float *band, int H, int W, float step, int64_t *counts, int nsym_cap, int32_t *rows) {
    size_t S = (size_t)W + 4;
    int nsym = 1;
    memset(rows, 0, sizeof(int32_t) * 3 * S);
    for (int i = 0; i < H; i++) {
        int32_t *r = rows + (size_t)(i % 3) * S + 2, *n = rows + (size_t)((i + 2) % 3) * S + 2,
                *nn = rows + (size_t)((i + 1) % 3) * S + 2;
        if (rounded_row(band + (size_t)i * W, W, step, r)) return -1;
        for (int j = 0; j < W; j++) {
            int raw, s = token(r[j], &raw);
            if (s >= nsym_cap) return -1;
            if (s + 1 > nsym) nsym = s + 1;
            counts[(size_t)activity(r, n, nn, j) * nsym_cap + s]++;
        }
    }
    return nsym;
}

/* the RDO level of x (rounded r > 0, context ctx): quantize.rdo_levels' choice */
static inline int32_t rdo_level(float x, int32_t r, int ctx, const double *bits, int nsym, double lam) {
    double xs = (double)x, best = 0.0;
    int32_t level = r;
    const double *b = bits + (size_t)ctx * nsym;
    int32_t cand[3] = {r, r - 1, 0};
    for (int k = 0; k < (r > 1 ? 3 : 2); k++) {  /* (r = 1: r - 1 is the 0 candidate) */
        int32_t v = cand[k];
        int raw, s = token(v, &raw);
        double d = v > 0 ? (xs - (double)v) - RECON_OFFSET : xs;
        double cost = d * d + lam * ((b[s < nsym ? s : nsym - 1] + (double)raw) + (v > 0 ? 1.0 : 0.0));
        if (k == 0 || cost < best) { best = cost; level = v; }
    }
    return level;
}

/* isolated +-1 levels of row i (pre-thresholding levels q, q_up, q_down; NULL outside
   the band) at small positions become 0 in out */
static void zero_isolated(int32_t *out, const int32_t *q, const int32_t *up, const int32_t *down,
                          const unsigned char *small, int W) {
    for (int j = 0; j < W; j++) {
        if (!small[j] || (q[j] != 1 && q[j] != -1)) continue;
        int ring = (j > 0 && q[j - 1]) || (j + 1 < W && q[j + 1]);
        for (int k = 0; k < 2 && !ring; k++) {
            const int32_t *o = k ? down : up;
            if (o) ring = (j > 0 && o[j - 1]) || o[j] || (j + 1 < W && o[j + 1]);
        }
        if (!ring) out[j] = 0;
    }
}

/* scratch: 3 (W + 4) int32 (rounded levels) + 3 W int32 (levels) + 2 W bytes (small) */
double hlc_quant_band(const float *band, int32_t *out, int H, int W, float step, int rdo, double lam,
                      const double *bits, int nsym, int32_t *scratch, unsigned char *smalls, float rounding) {
    size_t S = (size_t)W + 4;
    int32_t *rr = scratch, *qq = scratch + 3 * S;
    float thr = ISOLATED_ZERO_BELOW * step, top = 0.0f;
    int thresh = step >= 1.0f;
    memset(rr, 0, sizeof(int32_t) * 3 * S);
    for (int i = 0; i <= H; i++) {
        if (i < H) {
            const float *c = band + (size_t)i * W;
            int32_t *q = qq + (size_t)(i % 3) * W;
            unsigned char *sm = smalls + (size_t)(i % 2) * W;
            int32_t *r = rr + (size_t)(i % 3) * S + 2, *n = rr + (size_t)((i + 2) % 3) * S + 2,
                    *nn = rr + (size_t)((i + 1) % 3) * S + 2;
            if (rdo && rounded_row(c, W, step, r)) return INFINITY;
            for (int j = 0; j < W; j++) {
                float a = fabsf(c[j]);
                sm[j] = thresh && a < thr;
                float x = a / step, lv;
                if (rdo) lv = r[j] ? (float)rdo_level(x, r[j], activity(r, n, nn, j), bits, nsym, lam) : 0.0f;
                else {
                    lv = x + rounding;
                    if (!(lv < LEVEL_LIMIT)) return INFINITY;
                    lv = (float)(int32_t)lv;  /* floor (lv >= 0) */
                }
                if (!(lv < LEVEL_LIMIT)) return INFINITY;
                if (lv > top) top = lv;
                q[j] = c[j] < 0.0f ? -(int32_t)lv : (int32_t)lv;
            }
            memcpy(out + (size_t)i * W, q, sizeof(int32_t) * W);
        }
        if (i >= 1 && thresh) {  /* row i - 1 now has both its neighbours' levels */
            int k = i - 1;
            zero_isolated(out + (size_t)k * W, qq + (size_t)(k % 3) * W, k ? qq + (size_t)((k + 2) % 3) * W : NULL,
                          k + 1 < H ? qq + (size_t)((k + 1) % 3) * W : NULL, smalls + (size_t)(k % 2) * W, W);
        }
    }
    return (double)top;
}
