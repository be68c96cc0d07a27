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
 * Quiet runs (stream flag LOSSY_RUNS, the `runs` variant; the coder above is unchanged
 * inside it): every band row starts with a decision "the row is all zero" (contexts:
 * the band x the row above all zero x the parent's bucket row all zero, LB_NROWCTX),
 * and an all-zero row codes nothing more; in the other rows, each run of LB_RUN
 * coefficients from a column multiple of LB_RUN whose north parts and W, WW are zero
 * starts with a decision "the run is all zero" (contexts: the band x any parent bucket
 * of the run nonzero, LB_NRUNCTX), and a run that is not codes its groups of four as
 * above. At 0.25 bpp this halves the binary decisions per coefficient on the dev
 * images (benchmarks/results/lossy_speed.md, stop 26).
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
   of symbols coded in it (up to LB_RATE_CAP). Every model of a band is brought into
   range once before it is coded (sanitise_models), so the coding loop trusts them. */
#define LB_PMIN 64
#define LB_PMAX (65536 - LB_PMIN)

/* ceil(2^32 / (n + 2)): (x * RECIP[n]) >> 32 is x / (n + 2) exactly for 0 <= x <= 65536
   (checked for every x and n; a division took a fifth of the coder's time) */
#define R(n) (uint32_t)((0x100000000ull + (n) + 1) / ((n) + 2))
#define R8(n) R(n), R(n + 1), R(n + 2), R(n + 3), R(n + 4), R(n + 5), R(n + 6), R(n + 7)
static const uint32_t RECIP[64] = {R8(0), R8(8), R8(16), R8(24), R8(32), R8(40), R8(48), R8(56)};
#undef R8
#undef R

/* A model state from outside (a foreign or damaged one) clamped into range: p within
   [LB_PMIN, LB_PMAX], the count at most LB_RATE_CAP. */
static void sanitise_models(int32_t *bits) {
    for (int k = 0; k < LB_NBITS; k++) {
        int32_t p = bits[k] & 0xFFFF, n = (bits[k] >> 16) & 0x7FFF;
        p = p < LB_PMIN ? LB_PMIN : p > LB_PMAX ? LB_PMAX : p;
        bits[k] = ((n > LB_RATE_CAP ? LB_RATE_CAP : n) << 16) | p;
    }
}

/* p += (target - p) / (n + 2), truncating toward zero, kept within [LB_PMIN, LB_PMAX];
   both directions computed and one selected (no branch on the bit) */
static inline __attribute__((always_inline)) void bit_update(int32_t *m, int bit) {
    int32_t s = *m, p = s & 0xFFFF, n = s >> 16;
    uint64_t r = RECIP[n];
    int32_t up = p + (int32_t)(((uint64_t)(uint32_t)(65536 - p) * r) >> 32);
    int32_t down = p - (int32_t)(((uint64_t)(uint32_t)p * r) >> 32);
    up = up > LB_PMAX ? LB_PMAX : up;
    down = down < LB_PMIN ? LB_PMIN : down;
    *m = ((n + (n < LB_RATE_CAP)) << 16) | (bit ? up : down);
}

static inline __attribute__((always_inline)) void enc_bit(Encoder *e, int32_t *m, int bit) {
    uint32_t bound = (e->range >> 16) * (uint32_t)(*m & 0xFFFF);
    e->low += bit ? 0 : bound;
    e->range = bit ? bound : e->range - bound;
    if (e->range < HLC_TOP) enc_normalise(e);
    bit_update(m, bit);
}

static inline __attribute__((always_inline)) int dec_bit(Decoder *d, int32_t *m) {
    uint32_t bound = (d->range >> 16) * (uint32_t)(*m & 0xFFFF);
    int bit = d->code < bound;
    d->code -= bit ? 0 : bound;
    d->range = bit ? bound : d->range - bound;
    if (d->range < HLC_TOP) dec_normalise(d);
    bit_update(m, bit);
    return bit;
}

/* ------------------------------------------------------------- contexts */

/* Magnitudes in the neighbourhood rows are kept as bytes, capped at MAG_CAP: an
   activity sum with a capped term is >= MAG_CAP either way, past the last bucket of
   both activity scales (LB_NACT: 96, LB_NREM: 192), so every context is as with the
   full magnitudes. */
#define MAG_CAP 255

/* activity_bucket(a, 64) capped at LB_NACT - 1 (from a = 96 on) and activity_bucket(a,
   LB_NREM) (capped from a = 192), as tables; made once, when the module is loaded
   (hlc_lossy_init). ACT covers every activity a row can have (3 W + WW + its north
   part, each term at most MAG_CAP: 5 x 255 + 255), so the loop looks it up unclamped;
   REM is looked up with a clamped at 255. */
#define ACT_SIZE (6 * MAG_CAP + 1)
static uint8_t ACT[ACT_SIZE], REM[256];

void hlc_lossy_init(void) {
    for (int a = 0; a < ACT_SIZE; a++) {
        int b = activity_bucket((uint64_t)a, 64);
        ACT[a] = (uint8_t)(b < LB_NACT ? b : LB_NACT - 1);
        if (a < 256) REM[a] = (uint8_t)activity_bucket((uint64_t)a, LB_NREM);
    }
}

static inline uint8_t sat8(int64_t m) { return (uint8_t)(m < MAG_CAP ? m : MAG_CAP); }

/* The bucket of a parent of sum t = 4|P| + |P_W| + |P_E| + |P_N| + |P_S|: 0, 1..3,
   4..5, 6..9, 10..17, 18.. (comparisons, not a table: the loop vectorises) */
static inline uint8_t pbucket(uint8_t t) {
    return (uint8_t)((t > 0) + (t >= 4) + (t >= 6) + (t >= 10) + (t >= 18));
}

/* |x| capped at 18: a sum with a capped term is >= 18 either way, the last bucket */
static inline uint32_t sabs(int32_t x) {
    uint32_t u = x < 0 ? 0u - (uint32_t)x : (uint32_t)x;
    return u < 18 ? u : 18;
}

/* Parent row k's magnitudes capped at 18 into out[0 .. w), with out[-1] = 0 (before
   the first column) and out[w] = out[w - 1] (past the last, clamped). */
static void capped_row(RefBand r, int k, uint8_t *out) {
    const int32_t *c = r.p + (size_t)k * r.w;
    for (int pj = 0; pj < r.w; pj++) out[pj] = (uint8_t)sabs(c[pj]);
    out[-1] = 0;
    out[r.w] = out[r.w - 1];
}

/* The parent rows around the current one, capped (rows of r.w + 2 bytes, the first
   byte the pad): N (zeros above the first row), the row itself, S (clamped). */
typedef struct { uint8_t *n, *c, *s; int row; } ParentRows;

/* The buckets of parent row pi into out (r.w bytes), from its capped rows, moved on
   from row pi - 1 (or made afresh). */
static void parent_bucket_row(RefBand r, int pi, ParentRows *pr, uint8_t *out) {
    if (pi == pr->row + 1 && pr->row >= 0) {  /* the next row: N <- this, this <- S, a new S */
        uint8_t *t = pr->n;
        pr->n = pr->c, pr->c = pr->s, pr->s = t;
        capped_row(r, imin(pi + 1, r.h - 1), pr->s + 1);
    } else {
        memset(pr->n, 0, (size_t)r.w + 2);
        if (pi > 0) capped_row(r, pi - 1, pr->n + 1);
        capped_row(r, pi, pr->c + 1);
        capped_row(r, imin(pi + 1, r.h - 1), pr->s + 1);
    }
    pr->row = pi;
    const uint8_t *n = pr->n + 1, *c = pr->c + 1, *s = pr->s + 1;
    for (int pj = 0; pj < r.w; pj++) {  /* (byte sums, at most 8 x 18) */
        uint8_t t = (uint8_t)(4 * c[pj] + c[pj + 1] + c[pj - 1] + s[pj] + n[pj]);
        out[pj] = pbucket(t);
    }
}

/* The models of one segment: binary zero / one decisions (3 bands x LB_NZ), signs
   (3 bands x 27) and quiet groups of four (3), and the hybrid-integer models of
   magnitude - 2. */
typedef struct { int32_t *zero, *one, *sign, *group, *rowz, *runz, *freq, *tot; } Models;

/* A nonzero coefficient after its zero decision: the one decision (model `one`),
   |v| - 2 in remainder table `rem` if more, the sign (model `sm`); returns the value
   (decoding) or v itself. */
static inline __attribute__((always_inline)) int64_t code_nonzero(
        int decoding, Encoder *e, Decoder *d, Models md, int32_t *one, int32_t *sm, int rem, int32_t v) {
    int64_t m = abs64(v);
    int more = decoding ? !dec_bit(d, one) : (enc_bit(e, one, m == 1), m > 1);
    Model rm = model_at(md.freq, md.tot, NULL, HLC_NSYM, rem);
    if (!more) m = 1;
    else if (decoding) m = (int64_t)dec_uint(d, rm) + 2;
    else enc_uint(e, rm, (uint64_t)(m - 2));
    if (m > 0x3FFFFFFF) m = 0x3FFFFFFF;  /* damaged streams only */
    if (decoding) return dec_bit(d, sm) ? -m : m;
    enc_bit(e, sm, v < 0);
    return v;
}

/* One row's view for the coefficient coder: the band row and the one above (a row of
   zeros above the first), the magnitude row (bytes, 2 columns of zeros either side;
   cleared when the row starts, only nonzero magnitudes written), and, per column, the
   part of the activity the rows above give (3 N + NW + NE + NN, capped at MAG_CAP: a
   capped sum is past the last bucket either way) and the parent's bucket (0 without a
   parent); the parent row (NULL without a parent). Made for the whole row before it is
   coded, in passes the compiler vectorises. */
typedef struct {
    int32_t *row;
    const int32_t *up, *prow;
    uint8_t *mag;
    const uint8_t *north, *pcol;
    int pw1;  /* the parent's last column */
} Row;

/* The coefficients west of the one being coded, carried in registers along a row:
   the magnitudes (capped) of W and WW and the sign of W. */
typedef struct { int w1, w2, sw; } West;

/* Codes the coefficient at column j of a row; `implied`: it is the last of a group
   whose first three are zero, so it is nonzero without a zero decision. Returns
   whether it was zero. (A zero writes nothing: the band row and the magnitude row
   were cleared when the row started.) */
static inline __attribute__((always_inline)) int code_coef(
        int decoding, Encoder *e, Decoder *d, Models md, int32_t *zero, int32_t *one, int32_t *sgn, Row r, int j,
        int implied, West *w) {
    int a = 3 * w->w1 + w->w2 + r.north[j];
    int ctx = ACT[a] * LB_NPAR + r.pcol[j];
    int32_t v = decoding ? 0 : r.row[j];
    int nonzero = 1;
    w->w2 = w->w1;
    if (!implied) nonzero = decoding ? !dec_bit(d, zero + ctx) : (enc_bit(e, zero + ctx, v == 0), v != 0);
    if (!nonzero) {
        w->w1 = w->sw = 0;
        return 1;
    }
    int64_t pv = r.prow ? r.prow[imin(j >> 1, r.pw1)] : 0, ra = a + 2 * abs64(pv);
    int sc = 9 * (w->sw + 1) + 3 * (sign3(r.up[j]) + 1) + sign3(pv) + 1;
    int64_t m = code_nonzero(decoding, e, d, md, one + ctx, sgn + sc, REM[ra < 255 ? ra : 255], v);
    if (decoding) r.row[j] = (int32_t)m;
    r.mag[j] = (uint8_t)(w->w1 = sat8(abs64(m)));
    w->sw = sign3(m);
    return 0;
}

/* Whether the four coefficients from (i, j) would all be coded in the quietest context
   (activity 0, parent bucket 0) were they zero: W and WW (`west`: their magnitudes
   OR-ed) and the north parts and parent buckets of the four are zero (a north part of
   0 for columns j .. j + 3: the row above from j - 1 to j + 4 and the row above that
   from j to j + 3 are zero). */
static inline int quiet4(Row r, int j, int west) {
    uint32_t n4, p4;
    memcpy(&n4, r.north + j, 4);
    memcpy(&p4, r.pcol + j, 4);
    return !(n4 | p4 | (uint32_t)west);
}

/* The group of four at column j (a quiet one led by a group decision). */
static inline __attribute__((always_inline)) void code_group(
        int decoding, Encoder *e, Decoder *d, Models md, int32_t *zero, int32_t *one, int32_t *sgn, int32_t *group,
        Row r, int j, West *w) {
    if (quiet4(r, j, w->w1 | w->w2)) {
        /* four quiet coefficients: one decision says whether all are zero */
        int all;
        if (decoding) all = dec_bit(d, group);
        else {
            all = !(r.row[j] | r.row[j + 1] | r.row[j + 2] | r.row[j + 3]);
            enc_bit(e, group, all);
        }
        if (all) {
            w->w1 = w->w2 = w->sw = 0;
            return;
        }
        int z = code_coef(decoding, e, d, md, zero, one, sgn, r, j, 0, w);
        z += code_coef(decoding, e, d, md, zero, one, sgn, r, j + 1, 0, w);
        z += code_coef(decoding, e, d, md, zero, one, sgn, r, j + 2, 0, w);
        code_coef(decoding, e, d, md, zero, one, sgn, r, j + 3, z == 3, w);
        return;
    }
    for (int k = 0; k < 4; k++) code_coef(decoding, e, d, md, zero, one, sgn, r, j + k, 0, w);
}

/* Whether the LB_RUN coefficients from column j form a quiet run: their north parts,
   W and WW (`west`) are zero and their parent buckets at most 1 (the buckets OR-ed:
   at most 1); *busy: whether a parent bucket is 1. */
_Static_assert(LB_RUN == 16, "quiet_run reads a run as two 8-byte words");
static inline int quiet_run(Row r, int j, int west, int *busy) {
    uint64_t n, n2, p, p2;
    if (west) return 0;  /* (often, past the lowest rates: no loads then) */
    memcpy(&n, r.north + j, 8);
    memcpy(&n2, r.north + j + 8, 8);
    if (n | n2) return 0;
    memcpy(&p, r.pcol + j, 8);
    memcpy(&p2, r.pcol + j + 8, 8);
    p |= p2;
    p |= p >> 32;
    p |= p >> 16;
    p |= p >> 8;
    p &= 0xFF;
    *busy = p != 0;
    return p <= 1;
}

/* Whether the LB_RUN coefficients of a band row from column j are all zero. */
static inline int run_is_zero(const int32_t *row, int j) {
    int32_t t = 0;
    for (int k = 0; k < LB_RUN; k++) t |= row[j + k];
    return t == 0;
}

/* One row of the band: groups of four (the quiet ones led by a group decision), then
   the last W % 4 coefficients; `runs`: runs of LB_RUN quiet coefficients first led by
   a run decision (a compile-time constant, as `decoding`). */
static inline __attribute__((always_inline)) void code_row(
        int decoding, int runs, Encoder *e, Decoder *d, Models md, int orient, Row r, int W) {
    int32_t *zero = md.zero + (size_t)orient * LB_NZ, *one = md.one + (size_t)orient * LB_NZ;
    int32_t *sgn = md.sign + (size_t)orient * 27, *group = md.group + orient;
    int32_t *runz = md.runz + (size_t)orient * 2, *fgroup = md.runz + 6 + orient;
    West w = {0, 0, 0};
    int j = 0, next = runs ? 0 : W;  /* (runs) where the next run starts */
    int32_t *g = group;  /* the group model: fgroup in a run not all zero */
    for (; j + 4 <= W; j += 4) {
        if (runs && j == next) {
            int busy;
            g = group;
            next = j + LB_RUN <= W ? j + LB_RUN : W;
            if (next == j + LB_RUN && quiet_run(r, j, w.w1 | w.w2, &busy)) {
                int32_t *m = runz + busy;
                int all = decoding ? 0 : run_is_zero(r.row, j);
                if (decoding) all = dec_bit(d, m);
                else enc_bit(e, m, all);
                if (all) {
                    w.w1 = w.w2 = w.sw = 0;
                    j += LB_RUN - 4;
                    continue;
                }
                g = fgroup;
            }
        }
        code_group(decoding, e, d, md, zero, one, sgn, g, r, j, &w);
    }
    for (; j < W; j++) code_coef(decoding, e, d, md, zero, one, sgn, r, j, 0, &w);
}

/* The north part of the activity of every column of a row, from the magnitude rows
   above (n: i - 1, nn: i - 2; zero columns either side), capped at MAG_CAP. */
static void north_row(const uint8_t *n, const uint8_t *nn, int W, uint8_t *out) {
    for (int j = 0; j < W; j++) {
        int t = 3 * n[j] + n[j - 1] + n[j + 1] + nn[j];
        out[j] = (uint8_t)(t < MAG_CAP ? t : MAG_CAP);
    }
}

/* The parent bucket of every column of a row (pb: the parent row's buckets, pw of
   them; the column j's parent is j / 2, clamped to the last). */
static void parent_cols(const uint8_t *pb, int pw, int W, uint8_t *out) {
    int half = imin(W / 2, pw - 1 > 0 ? pw - 1 : 0);
    for (int k = 0; k < half; k++) out[2 * k] = out[2 * k + 1] = pb[k];
    for (int j = 2 * half; j < W; j++) out[j] = pw > 0 ? pb[imin(j >> 1, pw - 1)] : 0;
}

/* Whether any of n bytes is nonzero. */
static int any_byte(const uint8_t *b, int n) {
    uint8_t t = 0;
    for (int k = 0; k < n; k++) t |= b[k];
    return t != 0;
}

/* A decoded row into int16 storage; returns nonzero if a coefficient does not fit. */
static int narrow_row(const int32_t *src, int16_t *dst, int W) {
    uint32_t out = 0;
    for (int j = 0; j < W; j++) {
        out |= (uint32_t)(src[j] + 32768) >> 16;  /* (|m| <= 0x3FFFFFFF: no overflow) */
        dst[j] = (int16_t)src[j];
    }
    return out != 0;
}

/* Whether a band row of W coefficients is all zero. */
static int row_is_zero(const int32_t *row, int W) {
    int32_t t = 0;
    for (int j = 0; j < W; j++) t |= row[j];
    return t == 0;
}

static inline __attribute__((always_inline)) int code_lossy(
        int decoding, int runs, int32_t *band, int16_t *out16, int H, int W, int orient, RefBand parent, Encoder *ep,
        Decoder *dp, Models md) {
    if (W == 0) return 0;  /* nothing to code (and no row decisions) */
    int stride = W + 4;
    /* magnitude rows i, i - 1, i - 2 in turn, the current parent row's buckets, the
       north parts and parent buckets per column (8 bytes more: a group reads four
       from its column), and a row of zeros (the row above the first); out16: two
       int32 rows in turn (the row and the one above: all the coder reads of its band) */
    size_t pw2 = (size_t)parent.w + 2;
    size_t bytes = (size_t)3 * stride + 4 * pw2 + 2 * ((size_t)W + 8) + sizeof(int32_t) * ((size_t)W + 1)
                   + (out16 ? sizeof(int32_t) * (2 * (size_t)W + 1) : 0);  /* (+1: zrow's alignment, up to 3 bytes) */
    uint8_t *mag = calloc(bytes, 1), *pb = mag + (size_t)3 * stride;
    if (!mag) return -1;
    uint8_t *north = pb + 4 * pw2, *pcol = north + W + 8;
    int32_t *zrow = (int32_t *)(void *)(pcol + W + 8 + (-(uintptr_t)(pcol + W + 8) & 3));
    int32_t *ring = zrow + W + 1;  /* (out16 only) */
    int rc = 0;
    ParentRows pr = {pb + pw2, pb + 2 * pw2, pb + 3 * pw2, -1};
    sanitise_models(md.zero);
    /* the coder's state in locals: stores into the band cannot alias it */
    Encoder e = {0};
    Decoder d = {0};
    if (decoding) d = *dp;
    else e = *ep;
    int pcol_row = -2;  /* the parent row pcol holds (-1: none, zeros) */
    int pbusy = 0, above_zero = 1;  /* (runs) any parent bucket of the row nonzero; the row above all zero */
    int32_t *rowz = md.rowz + (size_t)orient * 4;
    for (int i = 0; i < H; i++) {
        Row r;
        if (out16) {
            r.row = ring + (size_t)(i & 1) * W;
            r.up = i > 0 ? ring + (size_t)((i - 1) & 1) * W : zrow;
        } else {
            r.row = band + (size_t)i * W;
            r.up = i > 0 ? r.row - W : zrow;
        }
        r.mag = mag + (size_t)(i % 3) * stride + 2;
        memset(r.mag - 2, 0, (size_t)stride);
        if (decoding) memset(r.row, 0, sizeof(int32_t) * (size_t)W);
        int pi = parent.h ? imin(i >> 1, parent.h - 1) : -1;  /* the parent's row, clamped */
        r.prow = parent.h ? parent.p + (size_t)pi * parent.w : NULL;
        if (pi != pcol_row) {
            if (parent.h) {
                if (pi != pr.row) parent_bucket_row(parent, pi, &pr, pb);
                parent_cols(pb, parent.w, W, pcol);
                if (runs) pbusy = any_byte(pcol, W);
            }
            pcol_row = pi;
        }
        if (runs) {  /* the row's zero decision */
            int32_t *m = rowz + 2 * above_zero + pbusy;
            above_zero = decoding ? 0 : row_is_zero(r.row, W);
            if (decoding) above_zero = dec_bit(&d, m);
            else enc_bit(&e, m, above_zero);
            if (above_zero) {
                if (out16) memset(out16 + (size_t)i * W, 0, sizeof(int16_t) * (size_t)W);
                continue;
            }
        }
        north_row(mag + (size_t)((i + 2) % 3) * stride + 2, mag + (size_t)((i + 1) % 3) * stride + 2, W, north);
        r.north = north;
        r.pcol = pcol;
        r.pw1 = parent.w - 1;
        code_row(decoding, runs, &e, &d, md, orient, r, W);
        if (out16 && narrow_row(r.row, out16 + (size_t)i * W, W)) {
            rc = HLC_LOSSY_WIDE;
            break;
        }
    }
    if (decoding) *dp = d;
    else *ep = e;
    free(mag);
    return rc;
}

int hlc_lossy_band(int decoding, int runs, int32_t *band, int16_t *out16, int H, int W, int orient,
                   const int32_t *parent, int ph, int pw, Encoder *e, Decoder *d, int32_t *freq, int32_t *tot,
                   int32_t *bits) {
    RefBand p = {parent, ph, pw};
    int32_t *group = bits + 6 * LB_NZ + 3 * 27, *rowz = group + 3;
    Models md = {bits, bits + 3 * LB_NZ, bits + 6 * LB_NZ, group, rowz, rowz + LB_NROWCTX, freq, tot};
    /* four specialisations: `decoding` and `runs` are constants inside each */
    if (decoding) return runs ? code_lossy(1, 1, band, out16, H, W, orient, p, NULL, d, md)
                              : code_lossy(1, 0, band, out16, H, W, orient, p, NULL, d, md);
    return runs ? code_lossy(0, 1, band, NULL, H, W, orient, p, e, NULL, md)
                : code_lossy(0, 0, band, NULL, H, W, orient, p, e, NULL, md);
}
