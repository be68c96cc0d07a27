/* Coefficient coder of lossy (9/7) detail bands (stream flag LOSSY_CONTEXTS).
 *
 * The bands of one resolution level (HL, LH, HH, in that order) share one range coder
 * (rangecoder.h) and one set of models, fresh per level, as in bandcoder.c, and the
 * same raster order. Most lossy coefficients are 0 or +-1, so every coefficient codes:
 *
 *   - "zero?", then "one?": binary decisions with adaptive probabilities (16 bits, a
 *     count-based rate, 1/(n+2) for a context's first LB_RATE_CAP symbols, then fixed)
 *     in contexts of three dimensions: the band (HL/LH/HH) x the activity of the causal
 *     neighbours (3 W, WW, 3 N, NW, NE, NN; LB_NACT buckets) x the parent and its four
 *     neighbours (LB_NPAR buckets);
 *   - a magnitude m >= 2: m - 2 as a hybrid integer in LB_NREM contexts of activity
 *     plus twice the parent;
 *   - the sign: a binary decision in contexts of the band x the signs of W, N and the
 *     parent (27 per band).
 *
 * No zero runs (bandcoder.c codes them where the neighbourhood is zero): a zero in a
 * zero neighbourhood costs ~0.01 bit here, and on the dev images (benchmarks/
 * bench_lossy.py DEV) the run mode made these streams 5-6% larger.
 *
 * One function serves both directions (`decoding` is a compile-time constant in each
 * of the two callers), so encoder and decoder cannot drift apart.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rangecoder.h"

/* ------------------------------------------------------------- binary models */

/* A binary model: bits 0..15 the probability of a 1 (of 2^16), bits 16.. the count
   of symbols coded in it (up to LB_RATE_CAP). */
#define LB_PMIN 64
#define LB_PMAX (65536 - LB_PMIN)

/* ceil(2^32 / (n + 2)): (x * RECIP[n]) >> 32 is x / (n + 2) exactly for 0 <= x <= 65536
   (checked for every x and n; a division took a fifth of the coder's time) */
#define R(n) (uint32_t)((0x100000000ull + (n) + 1) / ((n) + 2))
#define R8(n) R(n), R(n + 1), R(n + 2), R(n + 3), R(n + 4), R(n + 5), R(n + 6), R(n + 7)
static const uint32_t RECIP[64] = {R8(0), R8(8), R8(16), R8(24), R8(32), R8(40), R8(48), R8(56)};
#undef R8
#undef R

static inline void bit_update(int32_t *m, int bit) {
    int32_t p = *m & 0xFFFF, n = (*m >> 16) & 0x7FFF;
    if (n > LB_RATE_CAP) n = LB_RATE_CAP;  /* a foreign state */
    /* p += (target - p) / (n + 2), truncating toward zero */
    uint32_t r = RECIP[n];
    if (bit) p += (int32_t)(((uint64_t)(uint32_t)(65536 - p) * r) >> 32);
    else p -= (int32_t)(((uint64_t)(uint32_t)p * r) >> 32);
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
    enc_normalise(e);
    bit_update(m, bit);
}

static inline int dec_bit(Decoder *d, int32_t *m) {
    uint32_t bound = (d->range >> 16) * (uint32_t)bit_p(m);
    int bit = d->code < bound;
    if (bit) d->range = bound;
    else { d->code -= bound; d->range -= bound; }
    dec_normalise(d);
    bit_update(m, bit);
    return bit;
}

/* ------------------------------------------------------------- contexts */

static inline int act_bucket(int64_t a) {
    int b = activity_bucket((uint64_t)a, 64);
    return b < LB_NACT ? b : LB_NACT - 1;
}

/* The bucket of the parent P at (pi, pj) and its four neighbours: s = 4|P| + |P_W| +
   |P_E| + |P_N| + |P_S| (past the last row or column clamped, before the first 0). */
static inline uint8_t parent_bucket(RefBand r, int pi, int pj) {
    int64_t s = 4 * abs64(ref_at(r, pi, pj)) + abs64(ref_at(r, pi, pj + 1)) + abs64(ref_at(r, pi + 1, pj))
                + (pj > 0 ? abs64(ref_at(r, pi, pj - 1)) : 0) + (pi > 0 ? abs64(ref_at(r, pi - 1, pj)) : 0);
    return s == 0 ? 0 : s < 4 ? 1 : s < 6 ? 2 : s < 10 ? 3 : s < 18 ? 4 : 5;
}

/* Every parent position's bucket (ph x pw), made once per band; NULL: no memory. */
static uint8_t *parent_buckets(RefBand r) {
    uint8_t *pb = malloc((size_t)(r.h ? r.h : 1) * (r.w ? r.w : 1));
    if (pb && r.h)
        for (int pi = 0; pi < r.h; pi++)
            for (int pj = 0; pj < r.w; pj++) pb[(size_t)pi * r.w + pj] = parent_bucket(r, pi, pj);
    return pb;
}

/* Whether the four coefficients from (i, j) would all be coded in the quietest context
   (activity 0, parent bucket 0) were they zero: W, WW, the row above from j - 1 to
   j + 4, the row above that from j to j + 3, and the parents of j and j + 2 are zero. */
static inline int quiet4(const int32_t *magrow, const int32_t *n, const int32_t *nn, const uint8_t *pbrow, int pw,
                         int j) {
    if (magrow[j - 1] | magrow[j - 2] | n[j - 1] | n[j] | n[j + 1] | n[j + 2] | n[j + 3] | n[j + 4]
        | nn[j] | nn[j + 1] | nn[j + 2] | nn[j + 3])
        return 0;
    return !pw || !(pbrow[imin(j >> 1, pw - 1)] | pbrow[imin((j >> 1) + 1, pw - 1)]);
}

/* The models of one segment: binary zero / one decisions (3 bands x LB_NZ), signs
   (3 bands x 27) and quiet groups of four (3), and the hybrid-integer models of
   magnitude - 2. */
typedef struct { int32_t *zero, *one, *sign, *group, *freq, *tot; } Models;

/* A nonzero coefficient after its zero decision: the one decision (model `one`),
   |v| - 2 in remainder table `rem` if more, the sign (model `sm`); returns the value
   (decoding) or v itself. */
static inline __attribute__((always_inline)) int64_t code_nonzero(
        int decoding, Encoder *e, Decoder *d, Models md, int32_t *one, int32_t *sm, int rem, int32_t v) {
    int64_t m = abs64(v);
    int more = decoding ? !dec_bit(d, one) : (enc_bit(e, one, m == 1), m > 1);
    Model rm = model_at(md.freq, md.tot, HLC_NSYM, rem);
    if (!more) m = 1;
    else if (decoding) m = (int64_t)dec_uint(d, rm) + 2;
    else enc_uint(e, rm, (uint64_t)(m - 2));
    if (m > 0x3FFFFFFF) m = 0x3FFFFFFF;  /* damaged streams only */
    if (decoding) return dec_bit(d, sm) ? -m : m;
    enc_bit(e, sm, v < 0);
    return v;
}

static inline __attribute__((always_inline)) int code_lossy(
        int decoding, int32_t *band, int H, int W, int orient, RefBand parent, Encoder *e, Decoder *d, Models md) {
    int stride = W + 4;
    int32_t *mag = calloc((size_t)(H + 2) * stride, sizeof(int32_t));
    uint8_t *pb = parent_buckets(parent);
    if (!mag || !pb) {
        free(mag);
        free(pb);
        return -1;
    }
    if (!decoding)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                mag[(size_t)(i + 2) * stride + j + 2] = (int32_t)abs64(band[(size_t)i * W + j]);
    int32_t *zero = md.zero + (size_t)orient * LB_NZ, *one = md.one + (size_t)orient * LB_NZ;
    int32_t *sgn = md.sign + (size_t)orient * 27;
    for (int i = 0; i < H; i++) {
        int32_t *row = band + (size_t)i * W, *magrow = mag + (size_t)(i + 2) * stride + 2;
        const int32_t *up = i > 0 ? row - W : NULL;
        const int32_t *nn = mag + (size_t)i * stride + 2, *n = nn + stride;  /* rows i - 2, i - 1 */
        int pi = parent.h ? imin(i >> 1, parent.h - 1) : 0;  /* the parent's row, clamped */
        const int32_t *prow = parent.h ? parent.p + (size_t)pi * parent.w : NULL;
        const uint8_t *pbrow = pb + (size_t)pi * (parent.w ? parent.w : 1);
        int gend = -1, gzero = 0;  /* a group of four known not all zero: its end, its zeros so far */
        for (int j = 0; j < W; j++) {
            if (!(j & 3) && j + 4 <= W && quiet4(magrow, n, nn, pbrow, parent.h ? parent.w : 0, j)) {
                /* four quiet coefficients: one decision says whether all are zero */
                int all = decoding ? 0 : !(row[j] | row[j + 1] | row[j + 2] | row[j + 3]);
                if (decoding) all = dec_bit(d, md.group + orient);
                else enc_bit(e, md.group + orient, all);
                if (all) {
                    if (decoding) memset(row + j, 0, 4 * sizeof(int32_t));
                    j += 3;
                    continue;
                }
                gend = j + 4;
                gzero = 0;
            }
            int pj = parent.h ? imin(j >> 1, parent.w - 1) : 0;
            int64_t pv = prow ? prow[pj] : 0, pm = abs64(pv);
            int64_t a = 3 * (int64_t)magrow[j - 1] + magrow[j - 2] + 3 * (int64_t)n[j] + n[j - 1] + n[j + 1] + nn[j];
            int ctx = act_bucket(a) * LB_NPAR + (prow ? pbrow[pj] : 0);
            int64_t m = decoding ? 0 : abs64(row[j]);
            int nonzero = 1;  /* the last of a group whose first three are zero is not */
            if (j != gend - 1 || gzero < 3)
                nonzero = decoding ? !dec_bit(d, zero + ctx) : (enc_bit(e, zero + ctx, m == 0), m != 0);
            gzero += !nonzero;
            if (nonzero) {
                int sc = 9 * (sign3(j > 0 ? row[j - 1] : 0) + 1) + 3 * (sign3(up ? up[j] : 0) + 1) + sign3(pv) + 1;
                m = code_nonzero(decoding, e, d, md, one + ctx, sgn + sc, activity_bucket((uint64_t)(a + 2 * pm), LB_NREM),
                                 decoding ? 0 : row[j]);
            }
            if (decoding) {
                row[j] = (int32_t)m;
                magrow[j] = (int32_t)abs64(m);
            }
        }
    }
    free(mag);
    free(pb);
    return 0;
}

int hlc_lossy_band(int decoding, int32_t *band, int H, int W, int orient, const int32_t *parent, int ph, int pw,
                   Encoder *e, Decoder *d, int32_t *freq, int32_t *tot, int32_t *bits) {
    RefBand p = {parent, ph, pw};
    Models md = {bits, bits + 3 * LB_NZ, bits + 6 * LB_NZ, bits + 6 * LB_NZ + 3 * 27, freq, tot};
    /* two specialisations: `decoding` is a constant inside each */
    if (decoding) return code_lossy(1, band, H, W, orient, p, NULL, d, md);
    return code_lossy(0, band, H, W, orient, p, e, NULL, md);
}
