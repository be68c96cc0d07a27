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
 *
 * Speed (issue 18, branch enc): each row is first made by loops without branches that
 * gcc vectorises at -O3 (the division, the rounded levels, the activity sums, the
 * small-magnitude flags, the dead zone's signed levels; a level beyond the limit is
 * flagged and refused after the row); only then are the few nonzero rounded levels
 * visited one by one (groups of four zeros skipped at once), with the RD costs' rate
 * terms lambda x (bits + raw + sign) looked up from a per-call table (the same float64
 * operations in the same order: the same levels). The histogram counts the commonest
 * cell (level 0 in activity 0) in a register.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define RECON_OFFSET 0.10
#define ISOLATED_ZERO_BELOW 0.85f
#define HLC_DIRECT 8
#define NSYM_MAX HLC_RDO_NSYM
/* the reference's levels reach at most MAX_COEFFICIENT (2^27): anything from 2^30 up
   (or NaN) is refused before the int cast */
#define LEVEL_LIMIT 1073741824.0f
/* rows whose rounded levels all stay below this take the int32 activity sums (10 x
   2^24 < 2^31) and the float exponent's buckets and tokens (exact below 2^24) */
#define FAST_BELOW (1 << 24)

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

/* raw bits sent with symbol s (a function of the symbol: its exponent) */
static inline int raw_of(int s) { return s < HLC_DIRECT ? 0 : (s - HLC_DIRECT) / 2 + 2; }

/* quantize._activity of the coefficient at column j (rows padded by 2 columns each side) */
static inline int activity(const int32_t *r, const int32_t *n, const int32_t *nn, int j) {
    int64_t a = 3 * (int64_t)r[j - 1] + r[j - 2] + 3 * (int64_t)n[j] + n[j - 1] + n[j + 1] + nn[j];
    if (a < 4) return (int)a;
    if (a >= (1 << 24)) return NCTX_ACT - 1;  /* (float32 frexp is exact below 2^24) */
    int b = bit_length((uint64_t)a);  /* (rangecoder.h) */
    int k = 2 * b - 2 + (int)((a >> (b - 2)) & 1);
    return k < NCTX_ACT - 1 ? k : NCTX_ACT - 1;
}

/* activity's bucket of a sum 0 <= a < 2^31, branch-free: for a >= 4 the float's
   exponent and first mantissa bit are bit_length and the bit below the leading one
   (exact below 2^24; from there on the bucket is clipped to NCTX_ACT - 1 anyway, and
   the float's rounding only ever raises it) */
static inline int32_t bucket(int32_t a) {
    union { float f; int32_t i; } u;  /* (masks, not ?: -- gcc vectorises these) */
    u.f = (float)a;
    int32_t k = (u.i >> 22) - 254, big = -(int32_t)(k > NCTX_ACT - 1), small = -(int32_t)(a < 4);
    k = (k & ~big) | ((NCTX_ACT - 1) & big);
    return (a & small) | (k & ~small);
}

/* rounded levels floor(|c| / step + 0.5f) of one row into r (padded), and x = |c| / step
   (when x is not NULL); returns the OR of the levels (-1 on a level beyond the limit).
   No branch in the loop: gcc vectorises it. */
static int32_t rounded_row(const float *c, int W, float step, int32_t *r, float *x) {
    int bad = 0;
    int32_t any = 0;
    for (int j = 0; j < W; j++) {
        float xj = fabsf(c[j]) / step, y = xj + 0.5f;
        int ok = y < LEVEL_LIMIT;  /* (false for NaN) */
        bad |= !ok;
        int32_t v = (int32_t)(ok ? y : 0.0f);  /* (y >= 0: truncation is floor) */
        r[j] = v;
        any |= v;
        if (x) x[j] = xj;
    }
    return bad ? -1 : any;
}

/* the activity buckets of row r (int32 sums: every level of r, n, nn below FAST_BELOW) */
static void bucket_row(const int32_t *r, const int32_t *n, const int32_t *nn, int W, int32_t *ctx) {
    for (int j = 0; j < W; j++)
        ctx[j] = bucket(3 * r[j - 1] + r[j - 2] + 3 * n[j] + n[j - 1] + n[j + 1] + nn[j]);
}

/* the token of each level of a row (all below 2^24: the float's exponent and first
   mantissa bit, as token's), keyed by its activity bucket: key = ctx x cap + symbol;
   returns the largest symbol. Branch-free (vectorised). */
static int32_t key_row(const int32_t *r, const int32_t *ctx, int W, int cap, int32_t *key) {
    int32_t top = 0;
    for (int j = 0; j < W; j++) {
        union { float f; int32_t i; } u;
        int32_t v = r[j], direct = -(int32_t)(v < HLC_DIRECT);
        u.f = (float)v;
        int32_t s = (v & direct) | (((u.i >> 22) - 252) & ~direct);
        top = s > top ? s : top;
        key[j] = ctx[j] * cap + s;
    }
    return top;
}

/* rows of the general case: one coefficient at a time (int64 sums, any level) */
static int count_row_slow(const int32_t *r, const int32_t *n, const int32_t *nn, int W, int64_t *counts,
                          int cap, int *nsym) {
    for (int j = 0; j < W; j++) {
        int raw, s = token(r[j], &raw);
        if (s >= cap) return -1;
        if (s + 1 > *nsym) *nsym = s + 1;
        counts[(size_t)activity(r, n, nn, j) * cap + s]++;
    }
    return 0;
}

/* scratch (rows): HLC_COUNT_SCRATCH(W) int32: 3 (W + 4) levels, W + 4 buckets, W + 4
   keys, two uint32 histograms of NCTX_ACT x NSYM_MAX (counted alternately, so that runs
   of one cell are not one chain of increments; added to counts at the end) */
static inline __attribute__((always_inline)) int rdo_count_body(const float *band, int H, int W, float step,
                                                                 int64_t *counts, int nsym_cap, int32_t *rows) {
    size_t S = (size_t)W + 4, cells = (size_t)NCTX_ACT * NSYM_MAX;
    int nsym = 1, local = nsym_cap <= NSYM_MAX;
    int32_t *ctx = rows + 3 * S, *key = ctx + S, ors[3] = {0, 0, 0};
    uint32_t *h0 = (uint32_t *)(key + S), *h1 = h0 + cells;
    int64_t quiet = 0, held = 0;  /* quiet: level 0 in activity 0; held: counts in h0, h1 */
    memset(rows, 0, sizeof(int32_t) * 3 * S);
    memset(h0, 0, sizeof(uint32_t) * 2 * cells);
    for (int i = 0; i < H; i++) {
        int32_t *r = rows + (size_t)(i % 3) * S + 2, *n = rows + (size_t)((i + 2) % 3) * S + 2,
                *nn = rows + (size_t)((i + 1) % 3) * S + 2;
        int32_t any = rounded_row(band + (size_t)i * W, W, step, r, NULL);
        if (any < 0) return -1;
        ors[i % 3] = any;
        int32_t near = ors[0] | ors[1] | ors[2];
        if (!near) { quiet += W; continue; }  /* (no level near this row) */
        if (near >= FAST_BELOW || !local) {  /* (a large level nearby: the int64 sums) */
            if (count_row_slow(r, n, nn, W, counts, nsym_cap, &nsym)) return -1;
            continue;
        }
        bucket_row(r, n, nn, W, ctx);
        int32_t top = key_row(r, ctx, W, nsym_cap, key);
        if (top >= nsym_cap) return -1;
        if (top + 1 > nsym) nsym = top + 1;
        if (held + W > (int64_t)1 << 31) {  /* (uint32 histograms: added up before they could wrap) */
            for (size_t k = 0; k < cells; k++) counts[k] += (int64_t)h0[k] + h1[k], h0[k] = h1[k] = 0;
            held = 0;
        }
        int j = 0;
        for (; j + 1 < W; j += 2) {
            h0[key[j]]++;
            h1[key[j + 1]]++;
        }
        if (j < W) h0[key[j]]++;
        held += W;
    }
    if (local)  /* (keys are ctx x nsym_cap + symbol: the first 36 x cap cells) */
        for (size_t k = 0; k < (size_t)NCTX_ACT * nsym_cap; k++) counts[k] += (int64_t)h0[k] + h1[k];
    counts[0] += quiet;
    return nsym;
}

/* Both kernels of this file in two vector builds (kernels.h: HLC_VECTOR_BUILDS): the
   counts and levels are integers and the float operations the same in both, so the same
   counts, levels and returned values. */
HLC_VECTOR_BUILDS(int, rdo_count, (const float *band, int H, int W, float step, int64_t *counts, int nsym_cap,
                                   int32_t *rows), (band, H, W, step, counts, nsym_cap, rows))

int hlc_rdo_count(const float *band, int H, int W, float step, int64_t *counts, int nsym_cap, int32_t *rows) {
    return rdo_count(band, H, W, step, counts, nsym_cap, rows);
}

/* The RDO level of x (rounded r > 0, context ctx): quantize.rdo_levels' choice, with
   rate terms rate[s] = lam x ((bits[ctx][s] + raw(s)) + sign) precomputed (the same
   float64 operations in the same order as the reference's). */
static inline double rate_of(int s, int raw, const double *rate, int nrate, const double *b, int nsym, double lam) {
    return s < nrate ? rate[s] : lam * ((b[s < nsym ? s : nsym - 1] + (double)raw) + 1.0);
}

static inline int32_t rdo_level(float x, int32_t r, const double *rate, int nrate, const double *b, int nsym,
                                double lam) {
    double xs = (double)x;
    int raw, s = token(r, &raw);
    double d = (xs - (double)r) - RECON_OFFSET;
    double best = d * d + rate_of(s, raw, rate, nrate, b, nsym, lam);
    /* r - 1 (r = 1: r - 1 is the 0 candidate, left out), then 0: selects, not branches
       (the choice is unpredictable) */
    int32_t v = r - 1, level = r;
    s = token(v, &raw);
    d = (xs - (double)v) - RECON_OFFSET;
    double cost = r > 1 ? d * d + rate_of(s, raw, rate, nrate, b, nsym, lam) : INFINITY;
    int lower = cost < best;
    best = lower ? cost : best;
    level = lower ? v : level;
    return xs * xs + rate[0] < best ? 0 : level;
}

/* isolated +-1 levels of row i (pre-thresholding levels q and its neighbour rows up and
   down, each padded by a zero column either side; a zero row outside the band) at small
   positions become 0 in out. Branch-free (vectorised): masks, not tests. */
static void zero_isolated(int32_t *restrict out, const int32_t *q, const int32_t *up, const int32_t *down,
                          const int32_t *small, int W) {
    for (int j = 0; j < W; j++) {
        int32_t ring = q[j - 1] | q[j + 1] | up[j - 1] | up[j] | up[j + 1] | down[j - 1] | down[j] | down[j + 1];
        int32_t kill = small[j] & -(int32_t)(((q[j] == 1) | (q[j] == -1)) & (ring == 0));
        out[j] &= ~kill;
    }
}

/* The dead zone's signed levels of one row (rounding offset rounding) and its small
   masks; returns the largest magnitude, or -1 on one beyond the limit. Branch-free. */
static int32_t deadzone_row(const float *c, int W, float step, float rounding, float thr, int thresh,
                            int32_t *q, int32_t *sm) {
    int bad = 0;
    int32_t top = 0;
    for (int j = 0; j < W; j++) {
        float a = fabsf(c[j]), lv = a / step + rounding;
        sm[j] = -(int32_t)(thresh & (a < thr));
        int ok = lv < LEVEL_LIMIT;
        bad |= !ok;
        int32_t v = (int32_t)(ok ? lv : 0.0f);  /* floor (lv >= 0); exact in float32 */
        top = v > top ? v : top;
        q[j] = c[j] < 0.0f ? -v : v;
    }
    return bad ? -1 : top;
}

/* The RDO levels of one row (rounded levels r, the rows above n and nn, whose levels'
   OR is near; x = |c| / step into x), signed into q; returns the largest magnitude as a
   float (-1: beyond the limit). The nonzero rounded levels are listed first (at):
   the loop over them has no unpredictable branch. */
static float rdo_row(const float *c, int W, float step, float thr, int thresh, int32_t *r, const int32_t *n,
                     const int32_t *nn, int32_t *ors, float *x, int32_t *q, int32_t *sm, int32_t *at,
                     const double *rate, int nsym, const double *bits, double lam) {
    int32_t any = rounded_row(c, W, step, r, x);
    if (any < 0) return -1.0f;
    ors[0] = any;
    int fast = (ors[0] | ors[1] | ors[2]) < FAST_BELOW, nrate = nsym < NSYM_MAX ? nsym : NSYM_MAX, m = 0;
    for (int j = 0; j < W; j++) {
        sm[j] = -(int32_t)(thresh & (fabsf(c[j]) < thr));
        q[j] = 0;
    }
    if (any)
        for (int j = 0; j < W; j++) {
            at[m] = j;
            m += r[j] != 0;
        }
    for (int k = 0; k < m; k++) {
        int j = at[k];
        int ctx = fast ? bucket(3 * r[j - 1] + r[j - 2] + 3 * n[j] + n[j - 1] + n[j + 1] + nn[j]) : activity(r, n, nn, j);
        float lv = (float)rdo_level(x[j], r[j], rate + (size_t)ctx * NSYM_MAX, nrate, bits + (size_t)ctx * nsym,
                                    nsym, lam);
        q[j] = (int32_t)lv;  /* (the reference's float level: exact below 2^24) */
    }
    int32_t top = 0;
    for (int j = 0; j < W; j++) {
        int32_t v = q[j];
        top = v > top ? v : top;
        q[j] = c[j] < 0.0f ? -v : v;
    }
    return (float)top;
}

/* scratch (HLC_QUANT_SCRATCH(W) int32, 8-aligned): NCTX_ACT x NSYM_MAX float64 (rate
   terms), 3 (W + 4) int32 (rounded levels), 3 (W + 2) int32 (levels, a zero column
   either side) and a zero row of W + 2, W float (|c| / step), W int32 (nonzero columns),
   2 W int32 (small-magnitude masks of two rows) */
static inline __attribute__((always_inline)) double quant_band_body(
        const float *band, int32_t *out, int H, int W, float step, int rdo, double lam, const double *bits, int nsym,
        int32_t *scratch, float rounding) {
    size_t S = (size_t)W + 4, Q = (size_t)W + 2;
    double *rate = (double *)(void *)scratch;
    int32_t *rr = scratch + 2 * NCTX_ACT * NSYM_MAX, *qq = rr + 3 * S, *zero = qq + 3 * Q + 1;
    float *x = (float *)(void *)(qq + 4 * Q);
    /* small: int32 masks (vectorised with the levels); ors: the levels' OR of rows i, i - 1, i - 2 */
    int32_t *at = qq + 4 * Q + W, *small = at + W, ors[3] = {0, 0, 0};
    float thr = ISOLATED_ZERO_BELOW * step, top = 0.0f;
    int thresh = step >= 1.0f;
    memset(qq, 0, sizeof(int32_t) * 4 * Q);  /* (the padding columns and the zero row stay 0) */
    if (rdo) {
        memset(rr, 0, sizeof(int32_t) * 3 * S);
        for (int k = 0; k < NCTX_ACT; k++)
            for (int s = 0; s < nsym && s < NSYM_MAX; s++)
                rate[k * NSYM_MAX + s] = lam * ((bits[(size_t)k * nsym + s] + (double)raw_of(s)) + (s > 0 ? 1.0 : 0.0));
    }
    for (int i = 0; i <= H; i++) {
        if (i < H) {
            const float *c = band + (size_t)i * W;
            int32_t *q = qq + (size_t)(i % 3) * Q + 1;
            int32_t *sm = small + (size_t)(i % 2) * W;
            float t;
            if (rdo) {
                ors[2] = ors[1], ors[1] = ors[0];
                t = rdo_row(c, W, step, thr, thresh, rr + (size_t)(i % 3) * S + 2, rr + (size_t)((i + 2) % 3) * S + 2,
                            rr + (size_t)((i + 1) % 3) * S + 2, ors, x, q, sm, at, rate, nsym, bits, lam);
            }
            else
                t = (float)deadzone_row(c, W, step, rounding, thr, thresh, q, sm);
            if (t < 0.0f) return INFINITY;
            if (t > top) top = t;
            memcpy(out + (size_t)i * W, q, sizeof(int32_t) * W);
        }
        if (i >= 1 && thresh) {  /* row i - 1 now has both its neighbours' levels */
            int k = i - 1;
            zero_isolated(out + (size_t)k * W, qq + (size_t)(k % 3) * Q + 1, k ? qq + (size_t)((k + 2) % 3) * Q + 1 : zero,
                          k + 1 < H ? qq + (size_t)((k + 1) % 3) * Q + 1 : zero, small + (size_t)(k % 2) * W, W);
        }
    }
    return (double)top;
}

HLC_VECTOR_BUILDS(double, quant_band, (const float *band, int32_t *out, int H, int W, float step, int rdo, double lam,
                                       const double *bits, int nsym, int32_t *scratch, float rounding),
                  (band, out, H, W, step, rdo, lam, bits, nsym, scratch, rounding))

double hlc_quant_band(const float *band, int32_t *out, int H, int W, float step, int rdo, double lam,
                      const double *bits, int nsym, int32_t *scratch, float rounding) {
    return quant_band(band, out, H, W, step, rdo, lam, bits, nsym, scratch, rounding);
}
