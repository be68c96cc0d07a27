/* Coefficient coder of lossy (9/7) detail bands (stream flag LOSSY_CONTEXTS).
 *
 * The bands of one resolution level (HL, LH, HH, in that order) share one range coder
 * (rangecoder.h) and one set of models, as in bandcoder.c, and the same raster order
 * and zero runs (where the whole neighbourhood is zero, the length of the run of zeros;
 * 0 = it reaches the end of the row). What differs is the modelling of the coefficients
 * outside runs, where most lossy coefficients are 0 or +-1:
 *
 *   - "zero?" and "one?" are binary decisions with adaptive probabilities (16 bits,
 *     a count-based rate: 1/(n+2) for a context's first LB_RATE_CAP symbols, then
 *     fixed), in contexts of two dimensions: the band (HL/LH/HH) x the activity of
 *     the causal neighbours and co-located coefficients of earlier bands x the
 *     parent's magnitude bucket (0, 1, 2, 3+);
 *   - magnitudes >= 2 code m - 2 as a hybrid integer in LB_NREM activity contexts;
 *   - signs are binary decisions in contexts of the band x the signs of W, N and the
 *     parent (27 per band).
 *
 * One function serves both directions (`decoding` is a compile-time constant in each
 * of the two callers), so encoder and decoder cannot drift apart.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rangecoder.h"

/* An earlier band the context reads (parent, or a band of the same level). */
typedef struct { const int32_t *p; int h, w; } Ref;

static inline int64_t labs64(int64_t v) { return v < 0 ? -v : v; }
static inline int lmin(int a, int b) { return a < b ? a : b; }
static inline int lsign3(int64_t v) { return (v > 0) - (v < 0); }

static inline int64_t ref_at(Ref r, int i, int j) {
    if (r.h == 0) return 0;
    return r.p[(size_t)lmin(i, r.h - 1) * r.w + lmin(j, r.w - 1)];
}

/* ------------------------------------------------------------- binary models */

/* A binary model: bits 0..15 the probability of a 1 (of 2^16), bits 16.. the count
   of symbols coded in it (up to LB_RATE_CAP). */
#define LB_PMIN 64
#define LB_PMAX (65536 - 64)

static inline void bit_update(int32_t *m, int bit) {
    int32_t p = *m & 0xFFFF, n = (*m >> 16) & 0x7FFF;
    int32_t target = bit ? 65536 : 0;
    p += (target - p) / (n + 2);
    if (p < LB_PMIN) p = LB_PMIN;
    if (p > LB_PMAX) p = LB_PMAX;
    if (n < LB_RATE_CAP) n++;
    *m = (n << 16) | p;
}

static inline int32_t bit_p(const int32_t *m) {
    int32_t p = *m & 0xFFFF;   /* a foreign state is clamped, never trusted */
    return p < LB_PMIN ? LB_PMIN : p > LB_PMAX ? LB_PMAX : p;
}

static inline void enc_bit(Encoder *e, int32_t *m, int bit) {
    uint32_t bound = (e->range >> 16) * (uint32_t)bit_p(m);
    if (bit) e->range = bound;
    else { e->low += bound; e->range -= bound; }
    while (e->range < HLC_TOP) {
        e->range <<= 8;
        enc_shift_low(e);
    }
    bit_update(m, bit);
}

static inline int dec_bit(Decoder *d, int32_t *m) {
    uint32_t bound = (d->range >> 16) * (uint32_t)bit_p(m);
    int bit = d->code < bound;
    if (bit) d->range = bound;
    else { d->code -= bound; d->range -= bound; }
    while (d->range < HLC_TOP) {
        uint64_t byte = 0;
        if (d->pos < d->in_len) byte = d->in[d->pos];
        else d->overrun++;
        d->pos++;
        d->code = ((d->code << 8) | byte) & 0xFFFFFFFFFFull;  /* bounded on damaged input */
        d->range <<= 8;
    }
    bit_update(m, bit);
    return bit;
}

/* ------------------------------------------------------------- contexts */

static inline int parent_bucket(int64_t p) { return p > 3 ? 3 : (int)p; }

static inline int act_bucket(int64_t a) {
    int b = activity_bucket((uint64_t)a, 64);
    return b < LB_NACT ? b : LB_NACT - 1;
}

typedef struct {
    int32_t *zero, *one, *sign;     /* binary models of this band */
    int32_t *freq, *tot;            /* hybrid-integer models: remainder, run, run end */
} Models;

static inline __attribute__((always_inline)) int code_lossy(
        int decoding, int32_t *band, int H, int W, int orient, Ref parent, Ref x1, Ref x2,
        Encoder *e, Decoder *d, Models md) {
    int stride = W + 4;
    int32_t *mag = calloc((size_t)(H + 2) * stride, sizeof(int32_t));
    if (!mag) return -1;
    if (!decoding)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                mag[(size_t)(i + 2) * stride + j + 2] = (int32_t)labs64(band[(size_t)i * W + j]);
    Model run = model_at(md.freq, md.tot, HLC_NSYM, LB_NREM);
    int32_t *zero = md.zero + (size_t)orient * LB_NACT * 4, *one = md.one + (size_t)orient * LB_NACT * 4;
    int32_t *sgn = md.sign + (size_t)orient * 27;
    for (int i = 0; i < H; i++) {
        int32_t *row = band + (size_t)i * W, *magrow = mag + (size_t)(i + 2) * stride + 2;
        const int32_t *up = i > 0 ? row - W : NULL;
        const int32_t *nn = mag + (size_t)i * stride + 2, *n = nn + stride;
        int j = 0;
        while (j < W) {
            int64_t pv = ref_at(parent, i >> 1, j >> 1), pm = labs64(pv);
            int64_t a = 3 * (int64_t)magrow[j - 1] + magrow[j - 2] + 3 * (int64_t)n[j] + n[j - 1] + n[j + 1] + nn[j]
                        + labs64(ref_at(x1, i, j)) + labs64(ref_at(x2, i, j));
            int64_t m;
            int ctx;
            if (a == 0 && pm == 0) {  /* run mode */
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
                ctx = 0;  /* the coefficient that ends the run is not zero */
                m = 1;
            } else {
                ctx = act_bucket(a) * 4 + parent_bucket(pm);
                if (decoding) m = !dec_bit(d, zero + ctx);
                else { m = labs64(row[j]); enc_bit(e, zero + ctx, m == 0); }
            }
            if (m) {
                int32_t *om = one + ctx;
                int more = decoding ? !dec_bit(d, om) : 0;
                if (!decoding) { m = labs64(row[j]); more = m > 1; enc_bit(e, om, !more); }
                if (more) {
                    int rc = lmin(act_bucket(a + 2 * pm), LB_NREM - 1);
                    Model rm = model_at(md.freq, md.tot, HLC_NSYM, rc);
                    if (decoding) m = (int64_t)dec_uint(d, rm) + 2;
                    else enc_uint(e, rm, (uint64_t)(m - 2));
                } else m = 1;
                if (m > 0x3FFFFFFF) m = 0x3FFFFFFF;  /* damaged streams only */
                int sc = 9 * (lsign3(j > 0 ? row[j - 1] : 0) + 1) + 3 * (lsign3(up ? up[j] : 0) + 1) + lsign3(pv) + 1;
                if (decoding) m = dec_bit(d, sgn + sc) ? -m : m;
                else enc_bit(e, sgn + sc, row[j] < 0);
            }
            if (decoding) {
                row[j] = (int32_t)m;
                magrow[j] = (int32_t)labs64(m);
            }
            j++;
        }
    }
    free(mag);
    return 0;
}

int hlc_lossy_band(int decoding, int32_t *band, int H, int W, int orient, const int32_t *parent, int ph, int pw,
                   const int32_t *x1, int h1, int w1, const int32_t *x2, int h2, int w2,
                   Encoder *e, Decoder *d, int32_t *freq, int32_t *tot, int32_t *bits) {
    Ref p = {parent, ph, pw}, a = {x1, h1, w1}, b = {x2, h2, w2};
    Models md = {bits, bits + 3 * LB_NACT * 4, bits + 6 * LB_NACT * 4, freq, tot};
    /* two specialisations: `decoding` is a constant inside each */
    if (decoding) return code_lossy(1, band, H, W, orient, p, a, b, NULL, d, md);
    return code_lossy(0, band, H, W, orient, p, a, b, e, NULL, md);
}
