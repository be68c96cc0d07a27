/* Predictive (DPCM) plane coder for lossless and near-lossless planes (format v1/v2).
 *
 * A 2-D plane is coded in raster order with the residual quantised in the loop
 * (step 2k + 1; k = 0 is lossless), as in JPEG-LS / CALIC near-lossless: every
 * prediction and context comes from reconstructed samples, so the decoder follows
 * the encoder exactly and every sample ends within +-k.
 *
 * Prediction: a blend of six predictors (N, W, W+N-NW, W+NE-N, (N+NE)/2, the LOCO-I
 * median), each weighted by the inverse square of its error summed over the causal
 * neighbours W, N, NW, NE, corrected by the running mean of the blend's error in a
 * bias context (activity x the 4-bit texture of N, W, NW, NE against the blend).
 * Coding: the zig-zag folded residual as a hybrid integer in one of NACT activity
 * contexts. Run mode where the gradients NE-N, N-NW, NW-W are all within k: the
 * length of the run of samples equal to W within +-k, then the interrupting sample
 * against W or N (two contexts), as in JPEG-LS.
 * Masked coding (the hybrid's ROI layer): only samples where `mask` is set are coded;
 * the others are clip(base) and ordinary neighbours; the blend gains three
 * base-guided predictors. See codec_core/predictive.py for the full description.
 *
 * One function serves both directions (`decoding` is a compile-time constant in each
 * caller). Any byte string decodes in bounded time without out-of-range indexing:
 * decoded values are clamped, runs are clamped to the row, reconstructions clipped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rangecoder.h"

#define NACT HLC_NACT
#define CTX_RUN NCTX               /* 4 run-length contexts (by the last run length) */
#define CTX_RUN_INTERRUPT (NCTX + 4)
#define NPRED_PLAIN 6
#define NPRED_MASKED 9
#define NBIAS (NACT * 16)
#define BIAS_RESET 64
#define FRAC 2                     /* fixed-point fraction bits of predictions */
#define ONE ((int64_t)1 << FRAC)    /* fixed point: v * ONE (a left shift of a negative value is undefined in C) */
#define MAX_FOLDED (1ll << 30)     /* clamp of decoded folded residuals */
#define MAX_PRED_ERROR (1 << 28)   /* clamp of stored predictor errors (int32) */
#define MAX_BIAS (1 << 20)         /* clamp of the bias correction */
#define RECIP_SIZE 1024
/* The number of predictors, a compile-time constant in each specialisation of
   code_plane (plain or masked), so the loops over them unroll. */
#define NPRED(masked) ((masked) ? NPRED_MASKED : NPRED_PLAIN)

static inline int64_t clip64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }
/* zigzag: 2q for q >= 0, -2q - 1 below; unzigzag its inverse. Both without a branch on
   the sign: it is data, and as a branch it was mispredicted (on a third of the lossless
   encoder's samples for zigzag, whose change alone measured 1.00x). */
static inline uint64_t zigzag(int64_t q) { return ((uint64_t)q << 1) ^ (uint64_t)(q >> 63); }
static inline int64_t unzigzag(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

/* Residual quantiser with step 2k + 1: |e - q * step| <= k. The division is a
   multiply-high by m = ceil(2^(27 + l) / step), l = bit_length(step): exact for every
   numerator below 2^27 (|e| <= 2^24, the span's bound, plus k < 2^16), and 5-20x
   shorter than a 64-bit idiv on the encoder's sample-to-sample chain. */
static inline int64_t quantise(int64_t e, int64_t k, uint64_t m, int sh) {
    if (k == 0) return e;
    int64_t q = (int64_t)(((uint64_t)(abs64(e) + k) * m) >> sh);
    return e >= 0 ? q : -q;
}

uint8_t hlc_act_table[HLC_ACT_TABLE];
_Static_assert(HLC_NACT >= 20 && NCTX_ACT >= 20, "activity_context's table needs caps of 20 and more");

void hlc_act_init(void) {
    for (int a = 0; a < HLC_ACT_TABLE; a++) hlc_act_table[a] = (uint8_t)activity_bucket((uint64_t)a, 64);
}

/* Everything the coder carries from sample to sample. */
typedef struct {
    int H, W, npred, masked;
    int64_t k, step, vmin, vmax, inv_step2;  /* inv_step2: 2 * ceil(2^16 / step) */
    uint64_t qmul;      /* quantise(): the step's reciprocal and its shift */
    int qshift;
    int32_t *P;         /* padded reconstruction: sample (i, j) at row i + 2 (mod 3 in a ring), column j + 2 */
    int ring;           /* P holds 3 rows (encoder without reconstruction; decoder with a sink) */
    const HlcRowSink *sink;  /* decoder with a ring: where each finished row goes */
    /* The two rows of state a sample reads, as narrow as their values allow (a run writes
       them for each of its samples: the narrower rows made near-lossless coding 1.01-1.03x
       faster than 9 errors and an int64 a sample): */
    int32_t *pred_err;  /* [2][W + 4][npred]: each predictor's |error|, this row and the last */
    int32_t *resid;     /* [2][W + 4]: |quantised residual|, this row and the last (below 2^30:
                           the decoder clamps what it reads; the encoder's input lies within
                           [vmin, vmax], as predictive.py checks before calling the kernel) */
    int64_t bias_sum[NBIAS], bias_count[NBIAS], bias[NBIAS];
    const int64_t *recip;
    const uint8_t *mask; const int32_t *base;
    int64_t err_sum, err_count;  /* masked: sum and count of |rec - base| over coded samples */
    int last_run;
    Encoder *e; Decoder *d;
    int32_t *freq, *tot;  /* the models: context c's frequencies at freq + c * HLC_NSYM, its total at tot + c */
} Plane;

/* The plane's k and step: constants in the lossless specialisation of code_plane (exact
   = 1, k = 0), where the step's multiplies and the activity's scaling leave the path from
   one sample to the next (the same values; on the predictive-coded images lossless
   encode 1.008-1.043x, decode 0.997-1.017x faster). */
static inline int64_t k_of(int exact, const Plane *s) { return exact ? 0 : s->k; }
static inline int64_t step_of(int exact, const Plane *s) { return exact ? 1 : s->step; }

static inline int32_t *prow(Plane *s, int i) {  /* padded row of sample row i (i >= -2) */
    int r = i + 2;
    return s->P + (size_t)(s->ring ? r % 3 : r) * (s->W + 4);
}
/* (s->npred is NPRED(masked) of the code_plane specialisation running: the hot paths
   use the constant, the others the field; hlc_*_plane pick the one from the other) */
static inline int32_t *perr(Plane *s, int parity, int pj) {
    return s->pred_err + ((size_t)parity * (s->W + 4) + pj) * (size_t)s->npred;
}
static inline int32_t *resid(Plane *s, int parity) { return s->resid + (size_t)parity * (s->W + 4); }
/* Row i's state, found once a row: the regular mode's samples (the hot path; runs and
   skipped samples still go through the Plane) take their neighbours
   from these instead of recomputing each address from the Plane, whose fields every
   int32 store may alias (so each use reloaded them). 5% fewer instructions a sample
   in the lossless encoder (callgrind, MR-SIEMENS: 363 -> 344); lossless encode and
   decode 1.011x / 1.012x, near-lossless decode 1.015x on the predictive-coded images. */
typedef struct {
    int32_t *cur, *up, *up2;  /* padded reconstruction rows i, i - 1, i - 2 */
    int32_t *ec;              /* predictor errors of row i at column 0 (+ pj * npred) */
    const int32_t *ep;        /* and of row i - 1 */
    int32_t *rc;              /* |quantised residual| of row i */
    const int32_t *rp;        /* and of row i - 1 */
    const int32_t *x;         /* the encoder's input row i (the decoder: NULL) */
    int64_t vmin, vmax;       /* the plane's bounds (in registers, for the same reason) */
} Rows;

static inline Rows rows_of(Plane *s, const int32_t *x, int i) {
    int c = i & 1, p = c ^ 1;
    Rows r = {prow(s, i), prow(s, i - 1), prow(s, i - 2), perr(s, c, 0), perr(s, p, 0), resid(s, c), resid(s, p),
              x ? x + (size_t)i * s->W : NULL, s->vmin, s->vmax};
    return r;
}

static inline int64_t base_at(const Plane *s, int i, int j) {
    return clip64(s->base[(size_t)i * s->W + j], s->vmin, s->vmax);
}

/* Code value `u` in model `ctx` (encoder) or decode one (decoder). */
static inline __attribute__((always_inline)) uint64_t code_value(int decoding, Plane *s, int ctx, uint64_t u) {
    if (decoding) {
        uint64_t v = dec_uint(s->d, model_at(s->freq, s->tot, NULL, HLC_NSYM, ctx));
        return v < (uint64_t)MAX_FOLDED ? v : (uint64_t)MAX_FOLDED;
    }
    enc_uint(s->e, model_at(s->freq, s->tot, NULL, HLC_NSYM, ctx), u);
    return u;
}

/* Set the neighbours of row i before its first sample (left padding, the row above
   on the first row, the right padding of the row above). */
static void start_row(Plane *s, int i) {
    int32_t *cur = prow(s, i), *up = prow(s, i - 1);
    int W = s->W;
    if (i == 0) {
        int64_t mid = (s->vmin + s->vmax) >> 1;
        up[1] = (int32_t)mid;
        cur[1] = (int32_t)mid;
        cur[0] = (int32_t)mid;
    } else {
        cur[1] = up[2];
        cur[0] = up[2];
        up[W + 2] = up[W + 1];
        up[W + 3] = up[W + 1];
    }
    int c = i & 1, p = c ^ 1;
    resid(s, c)[1] = resid(s, p)[2];
    for (int k = 0; k < s->npred; k++) perr(s, c, 1)[k] = perr(s, p, 2)[k];
}

/* State of a sample: reconstruction, |quantised residual|, every predictor's error. */
static inline __attribute__((always_inline)) void set_sample(int masked, Plane *s, int i, int pj, int64_t rec,
                                                             int64_t aq, int64_t pe) {
    prow(s, i)[pj] = (int32_t)rec;
    resid(s, i & 1)[pj] = (int32_t)aq;
    int32_t *e = perr(s, i & 1, pj);
    for (int k = 0; k < NPRED(masked); k++) e[k] = (int32_t)pe;
}

/* Reconstruction of quantised residual q against pred, and the masked error sum. */
static inline __attribute__((always_inline)) int64_t reconstruct(int masked, int exact, Plane *s, int i, int j,
                                                                 int64_t pred, int64_t q) {
    int64_t rec = clip64(pred + q * step_of(exact, s), s->vmin, s->vmax);
    if (masked) {
        s->err_sum += abs64(rec - base_at(s, i, j));
        s->err_count++;
    }
    return rec;
}

/* Run mode at (i, j): the run of samples equal to W within +-k, up to `end`, then the
   sample that interrupts it. Returns the next column. */
static inline __attribute__((always_inline)) int code_run(int decoding, int masked, int exact, Plane *s,
                                                          const int32_t *x, int i, int j, int end) {
    int32_t *cur = prow(s, i), *up = prow(s, i - 1);
    int pj = j + 2;
    int64_t rv = cur[pj - 1];
    int r;
    if (decoding) {
        uint64_t t = code_value(1, s, CTX_RUN + s->last_run, 0);
        r = t == 0 || t - 1 > (uint64_t)(end - j) ? end - j : (int)(t - 1);
    } else {
        const int32_t *xr = x + (size_t)i * s->W;
        r = 0;
        while (j + r < end && abs64((int64_t)xr[j + r] - rv) <= k_of(exact, s)) r++;
        code_value(0, s, CTX_RUN + s->last_run, j + r == end ? 0 : (uint64_t)r + 1);
    }
    /* set_sample(.., rv, 0, 0) on the run's samples, as three fills (a sample's errors are
       contiguous) */
    for (int c = pj; c < pj + r; c++) cur[c] = (int32_t)rv;
    memset(resid(s, i & 1) + pj, 0, sizeof(int32_t) * (size_t)r);
    memset(perr(s, i & 1, pj), 0, sizeof(int32_t) * NPRED(masked) * (size_t)r);
    if (i == 0 && r > 0) {  /* the first row is its own row above */
        int32_t *up2 = prow(s, -2);
        for (int c = pj; c <= pj + r; c++) { up2[c] = (int32_t)rv; up[c] = (int32_t)rv; }
    }
    s->last_run = r < 2 ? 0 : r < 8 ? 1 : r < 64 ? 2 : 3;
    j += r;
    if (j >= end) return j;
    /* the interrupting sample, against W (if N is close to it) or N */
    pj = j + 2;
    int64_t nv = up[pj];
    int type = abs64(rv - nv) <= k_of(exact, s);
    int64_t pred = type ? rv : nv;
    int flip = !type && rv > nv;
    int64_t q;
    if (decoding) {
        q = unzigzag(code_value(1, s, CTX_RUN_INTERRUPT + type, 0) + (uint64_t)type);
        if (flip) q = -q;
    } else {
        q = quantise((int64_t)x[(size_t)i * s->W + j] - pred, k_of(exact, s), s->qmul, s->qshift);
        code_value(0, s, CTX_RUN_INTERRUPT + type, zigzag(flip ? -q : q) - (uint64_t)type);
    }
    int64_t rec = reconstruct(masked, exact, s, i, j, pred, q);
    set_sample(masked, s, i, pj, rec, abs64(q), min64(abs64(rec - pred) * ONE, MAX_PRED_ERROR));
    return j + 1;
}

/* The blended prediction (fixed point, FRAC bits) of sample (i, j) and the predictors. */
static inline __attribute__((always_inline)) int64_t blend(int masked, Plane *s, const Rows *rw, int i, int j,
                                                          int64_t w, int64_t n, int64_t nw, int64_t ne, int64_t *preds,
                                                          double *vout) {
    int pj = j + 2;
    preds[0] = n * ONE;
    preds[1] = w * ONE;
    preds[2] = (w + n - nw) * ONE;
    preds[3] = (w + ne - n) * ONE;
    preds[4] = (n + ne) * (ONE / 2);
    /* the median of w, n and w + n - nw: w + n - nw clipped to [min(w, n), max(w, n)]
       (without a branch: gcc's branches here were mispredicted) */
    int64_t mx = max64(w, n), mn = min64(w, n);
    preds[5] = max64(mn, min64(mx, w + n - nw)) * ONE;
    if (masked) {  /* the base, and the base plus the neighbours' deviation from theirs */
        int64_t b = base_at(s, i, j);
        int64_t dw = j > 0 ? w - base_at(s, i, j - 1) : 0;
        int64_t dn = i > 0 ? n - base_at(s, i - 1, j) : 0;
        preds[6] = b * ONE;
        preds[7] = (b + dw) * ONE;
        preds[8] = ((2 * b + dw + dn) * ONE) >> 1;  /* >> of a negative value: arithmetic (floor) */
    }
    /* weights: inverse square of each predictor's error summed over W, N, NW, NE, in
       int32 (stored errors are within [0, MAX_PRED_ERROR]: sums below 2^31). The order
       of the operations shortens the chain from one sample to the next (the same
       values): W's errors, written by the last sample, are added last; the minimum and
       the sums are trees, not running totals. */
    int32_t sums[NPRED_MASKED];
    const int32_t *ew = rw->ec + (size_t)(pj - 1) * NPRED(masked), *en = rw->ep + (size_t)pj * NPRED(masked),
                  *enw = en - NPRED(masked), *ene = en + NPRED(masked);
    for (int k = 0; k < NPRED(masked); k++) sums[k] = (en[k] + enw[k] + ene[k]) + ew[k];
    int32_t smin = min32(min32(min32(sums[0], sums[1]), min32(sums[2], sums[3])), min32(sums[4], sums[5]));
    if (masked) smin = min32(smin, min32(min32(sums[6], sums[7]), sums[8]));
    int shift = bit_length((uint64_t)(smin >> 8));
    int64_t wt[NPRED_MASKED], wp[NPRED_MASKED];
    for (int k = 0; k < NPRED(masked); k++) {
        wt[k] = s->recip[min64(sums[k] >> shift, RECIP_SIZE - 1)];
        wp[k] = wt[k] * preds[k];
    }
    int64_t total = ((wt[0] + wt[1]) + (wt[2] + wt[3])) + (wt[4] + wt[5]);
    int64_t weighted = ((wp[0] + wp[1]) + (wp[2] + wp[3])) + (wp[4] + wp[5]);
    if (masked) {
        total += (wt[6] + wt[7]) + wt[8];
        weighted += (wp[6] + wp[7]) + wp[8];
    }
    /* IEEE division, exactly rounded: identical in encoder and decoder on any machine;
       the floor by truncation and a correction (floor() is a library call on x86-64
       without SSE4.1: 2% of the decoder's time) */
    double v = (double)weighted / (double)total + 0.5;
    *vout = v;
    int64_t t = (int64_t)v;
    return t - (t > v);
}

/* JPEG-LS style division-free bias update; the sum is kept in (-count, 0]. */
static inline void update_bias(Plane *s, int bc, int64_t err) {
    int64_t count = s->bias_count[bc], sum = s->bias_sum[bc] + err;
    if (count == BIAS_RESET) {
        sum >>= 1;
        count >>= 1;
    }
    count++;
    /* without a branch on the error's sign, which no predictor can foresee: a step
       down and a step up, at most one taken, then the sum clamped to (-count, 0], which
       changes it only where the step left it outside. On the predictive-coded images
       lossless encode 1.022x, decode 1.013x; near-lossless k = 2 1.019x / 1.017x. */
    int64_t down = sum <= -count, up = sum > 0;
    sum += (down - up) * count;
    int64_t b = s->bias[bc] + up - down;
    s->bias[bc] = b < -MAX_BIAS ? -MAX_BIAS : b > MAX_BIAS ? MAX_BIAS : b;
    sum = sum <= -count ? -count + 1 : sum > 0 ? 0 : sum;
    s->bias_sum[bc] = sum;
    s->bias_count[bc] = count;
}

/* Regular mode at (i, j), W's reconstruction w and |quantised residual| aw given (the
   caller keeps them in registers: through memory they were a store and a reload on the
   path from one sample to the next). Returns the reconstruction; *aq: its |residual|. */
static inline __attribute__((always_inline)) int64_t code_regular(int decoding, int masked, int exact, Plane *s,
                                                                 const Rows *rw, int i, int j, int64_t w,
                                                                 int64_t aw, int64_t *aq) {
    int pj = j + 2;
    int32_t *cur = rw->cur;
    const int32_t *up = rw->up, *up2 = rw->up2;
    int64_t n = up[pj], nw = up[pj - 1], ne = up[pj + 1];
    int64_t ww = cur[pj - 2], nn = up2[pj];
    int64_t preds[NPRED_MASKED];
    double v;
    int64_t bl = blend(masked, s, rw, i, j, w, n, nw, ne, preds, &v);
    /* activity context, in units of the quantisation step */
    int64_t g = abs64(ne - n) + abs64(n - nw) + abs64(nw - w) + abs64(w - ww) + abs64(n - nn);
    const int32_t *rc = rw->rc, *rp = rw->rp;
    int64_t a = (2 * (aw + rp[pj]) + rp[pj - 1] + rp[pj + 1] + rc[pj - 2]) * 2
                + (exact ? 2 * g : (g * s->inv_step2) >> 16);  /* (inv_step2 is 2^17 at step 1) */
    int ctx = activity_context((uint64_t)a, NACT);  /* (a >= 0: a sum of magnitudes) */
    /* the texture from v, not from bl = floor(v): for an integer a (exact in a double),
       a > floor(v) exactly when a > v, so the bias it selects is loaded while floor(v)
       is still being computed (the same contexts; 1% of the decoder's time) */
    int tex = (v < (double)(n * ONE)) + 2 * (v < (double)(w * ONE)) + 4 * (v < (double)(nw * ONE))
              + 8 * (v < (double)(ne * ONE));
    int bc = ctx * 16 + tex;
    int64_t pf = bl + s->bias[bc];
    int64_t pred = clip64((pf + ONE / 2) >> FRAC, rw->vmin, rw->vmax);  /* floor of the rounded value */
    int64_t q;
    if (decoding) {
        q = unzigzag(code_value(1, s, ctx, 0));
    } else {
        q = quantise((int64_t)rw->x[j] - pred, k_of(exact, s), s->qmul, s->qshift);
        code_value(0, s, ctx, zigzag(q));
    }
    int64_t rec = reconstruct(masked, exact, s, i, j, pred, q);
    cur[pj] = (int32_t)rec;
    rw->rc[pj] = (int32_t)abs64(q);
    int64_t rf = rec * ONE;
    int32_t *e = rw->ec + (size_t)pj * NPRED(masked);
    /* |rf - pred| <= 2 * span * ONE < 2^27 (module.c bounds the span by 2^24): the
       difference in wrapping int32 arithmetic is exact, and vectorises */
    for (int k = 0; k < NPRED(masked); k++) {
        int32_t dk = (int32_t)((uint32_t)rf - (uint32_t)preds[k]);
        dk = dk < 0 ? -dk : dk;
        e[k] = dk < MAX_PRED_ERROR ? dk : MAX_PRED_ERROR;
    }
    update_bias(s, bc, rf - pf);
    *aq = abs64(q);
    return rec;
}

static inline __attribute__((always_inline)) int code_plane(int decoding, int masked, int exact, Plane *s,
                                                            const int32_t *x) {
    int H = s->H, W = s->W;
    int *next_skip = malloc(sizeof(int) * (size_t)(W + 1));  /* masked: first skipped column >= j */
    if (!next_skip) return -1;
    next_skip[W] = W;
    for (int i = 0; i < H; i++) {
        start_row(s, i);
        int64_t skip_r = 0, skip_pe = 0;
        if (masked) {
            const uint8_t *m = s->mask + (size_t)i * W;
            for (int c = W - 1; c >= 0; c--) next_skip[c] = m[c] ? next_skip[c + 1] : c;
            /* a skipped sample's state: the mean |rec - base| of the coded samples so
               far, as its |residual| (context) and as every predictor's error */
            skip_r = s->err_count > 0 ? (s->err_sum / s->err_count) / s->step : 0;
            skip_pe = min64(skip_r * s->step * ONE, MAX_PRED_ERROR);
        }
        const Rows rw = rows_of(s, x, i);
        int32_t *cur = rw.cur, *up = rw.up, *up2 = rw.up2;
        int32_t *rc = rw.rc;
        int64_t w = cur[1], aw = rc[1];  /* W's reconstruction and |residual| (start_row's padding) */
        int j = 0;
        while (j < W) {
            int pj = j + 2;
            if (i == 0) {  /* the first row's row above is its left neighbour, repeated */
                for (int c = pj - 1; c < pj + 2; c++) { up2[c] = (int32_t)w; up[c] = (int32_t)w; }
            }
            if (masked && !s->mask[(size_t)i * W + j]) {
                w = base_at(s, i, j);
                aw = skip_r;
                set_sample(masked, s, i, pj, w, skip_r, skip_pe);
                j++;
                continue;
            }
            int end = masked ? next_skip[j] : W;
            int64_t n = up[pj], nw = up[pj - 1], ne = up[pj + 1];
            int64_t k = k_of(exact, s);
            if ((abs64(ne - n) <= k) & (abs64(n - nw) <= k) & (abs64(nw - w) <= k)) {  /* one branch */
                j = code_run(decoding, masked, exact, s, x, i, j, end);
                if (j < W) {  /* (the run's last sample, or the one that ended it) */
                    w = cur[j + 1];
                    aw = rc[j + 1];
                }
            } else {
                w = code_regular(decoding, masked, exact, s, &rw, i, j, w, aw, &aw);
                j++;
            }
        }
        if (decoding && s->sink) hlc_sink_row(s->sink, i, cur + 2, W);  /* (the next rows only read its samples) */
    }
    free(next_skip);
    return 0;
}

static int setup(Plane *s, int H, int W, int64_t k, int64_t vmin, int64_t vmax, int32_t *P, int ring,
                 const int64_t *recip, const uint8_t *mask, const int32_t *base, int32_t *freq, int32_t *tot) {
    memset(s, 0, sizeof *s);
    s->H = H; s->W = W; s->k = k; s->step = 2 * k + 1; s->vmin = vmin; s->vmax = vmax;
    s->inv_step2 = 2 * ((65536 + s->step - 1) / s->step);
    s->qshift = 27 + bit_length((uint64_t)s->step);
    s->qmul = (((uint64_t)1 << s->qshift) + (uint64_t)s->step - 1) / (uint64_t)s->step;
    s->P = P; s->ring = ring; s->recip = recip; s->mask = mask; s->base = base;
    s->masked = mask != NULL;
    s->npred = s->masked ? NPRED_MASKED : NPRED_PLAIN;
    s->freq = freq;
    s->tot = tot;
    s->pred_err = calloc((size_t)2 * (W + 4) * (size_t)s->npred, sizeof(int32_t));
    s->resid = calloc((size_t)2 * (W + 4), sizeof(int32_t));
    return s->pred_err && s->resid ? 0 : -1;
}

static void teardown(Plane *s) {
    free(s->pred_err);
    free(s->resid);
}

int hlc_encode_plane(const int32_t *x, int H, int W, int32_t *P, int ring, int64_t k, int64_t vmin, int64_t vmax,
                     Encoder *e, int32_t *freq, int32_t *tot, const int64_t *recip,
                     const uint8_t *mask, const int32_t *base) {
    Plane s;
    int rc = setup(&s, H, W, k, vmin, vmax, P, ring, recip, mask, base, freq, tot);
    s.e = e;
    /* three specialisations: masked, plain, plain lossless */
    if (rc == 0) rc = s.masked ? code_plane(0, 1, 0, &s, x) : k ? code_plane(0, 0, 0, &s, x) : code_plane(0, 0, 1, &s, x);
    teardown(&s);
    return rc;
}

int hlc_decode_plane(int H, int W, int32_t *P, int64_t k, int64_t vmin, int64_t vmax,
                     Decoder *d, int32_t *freq, int32_t *tot, const int64_t *recip,
                     const uint8_t *mask, const int32_t *base, const HlcRowSink *sink) {
    Plane s;
    int rc = setup(&s, H, W, k, vmin, vmax, P, sink != NULL, recip, mask, base, freq, tot);
    s.d = d;
    s.sink = sink;
    if (rc == 0) rc = s.masked ? code_plane(1, 1, 0, &s, NULL) : k ? code_plane(1, 0, 0, &s, NULL) : code_plane(1, 0, 1, &s, NULL);
    teardown(&s);
    return rc;
}
