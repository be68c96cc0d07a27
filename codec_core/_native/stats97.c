/* The rate control's statistics of one 9/7 band (codec_core/ratecontrol.py BandStats):
 * the joint histogram of each coefficient's magnitude x against its causal
 * neighbourhood's m = (3|W| + 3|N| + |NW| + |NE|) / 8 (zero outside the band), in
 * log-spaced bins, in one pass: no array passes with a logarithm per coefficient.
 * The LL band contributes its median-edge-detector residual (as the coder codes it).
 * The float32 operations are those of the numpy reference (ratecontrol._bin,
 * _neighbourhood, _med_residual); the bin comes from the float's exponent and a
 * comparison of its mantissa with the bin edges 2^(k/per) rounded to float, where numpy
 * takes float32 log2: a value within an ulp or so of an edge may fall in the
 * neighbouring bin (tests/test_ratecontrol.py counts them: none on real bands).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* The per-octave thresholds thr[k] = 2^(k / per) (k = 1 .. per - 1, rounded to float) by
   the mantissa's top 8 bits: below[i] counts the thresholds at or below 1 + i / 256, next[i]
   is the one inside (1 + i / 256, 1 + (i + 1) / 256) if any (at most one: they are more
   than 1/256 apart for per <= 64), else 2. A mantissa m then passes below[i] + (m >= next[i])
   thresholds: the count of thr[k] <= m, exactly, with two loads and one comparison. */
typedef struct { uint8_t below[256]; float next[256]; } BinLut;

static void bin_lut(BinLut *lut, int per) {
    float thr[65];
    for (int t = 0; t <= per; t++) thr[t] = (float)pow(2.0, (double)t / per);
    for (int i = 0; i < 256; i++) {
        float a = 1.0f + (float)i / 256.0f, b = 1.0f + (float)(i + 1) / 256.0f;
        int k = 0;
        for (int t = 1; t < per; t++) k += a >= thr[t];
        lut->below[i] = (uint8_t)k;
        lut->next[i] = 2.0f;
        for (int t = 1; t < per; t++)
            if (thr[t] > a && thr[t] < b) lut->next[i] = thr[t];
    }
}

/* Log-spaced bin of a magnitude: 0 for zero (and NaN), else floor(log2(a) * per) + off
   clipped to 1 .. n - 1; log2 from the float's exponent and its mantissa against the
   per-octave thresholds (bin_lut: no logarithm call per coefficient). */
static inline int bin_of(float a, int per, const BinLut *lut, int off, int n) {
    if (!(a > 0.0f)) return 0;
    uint32_t u;
    memcpy(&u, &a, 4);
    int e = (int)(u >> 23) - 127;
    if (e < -126) return 1;  /* subnormal: far below the lowest bin */
    uint32_t mu = (u & 0x7fffffu) | 0x3f800000u, top = (u >> 15) & 0xffu;
    float m;
    memcpy(&m, &mu, 4);
    int v = e * per + lut->below[top] + (m >= lut->next[top]) + off;
    return v < 1 ? 1 : v > n - 1 ? n - 1 : v;
}

static inline float med_residual(const float *x, int i, int j, int W) {
    float w = j ? x[(size_t)i * W + j - 1] : 0.0f, n = i ? x[(size_t)(i - 1) * W + j] : 0.0f;
    float nw = i && j ? x[(size_t)(i - 1) * W + j - 1] : 0.0f;
    float lo = w < n ? w : n, hi = w < n ? n : w, pred;
    if (nw >= hi) pred = lo;
    else if (nw <= lo) pred = hi;
    else { pred = w + n; pred = pred - nw; }
    return x[(size_t)i * W + j] - pred;
}

/* The band's cells counted in an open-addressing hash table (keys + 1, 0 free) of
   `size` slots (a power of two, at least twice the cells held), grown by doubling;
   its arrays come from the caller's allocator (alloc/release, so the Python side can
   account for them). Counts are uint32 (8 bytes a slot, not 12: the table was the
   rate statistics' largest buffer, 0.9x the raw size of a 512^2 16-bit image): a band
   of fewer than 2^32 coefficients (hlc_stats97 takes no larger one) cannot overflow
   them. Returns the number of cells, or -1 if out of memory. */
typedef struct { int32_t *key; uint32_t *count; size_t size, used; } Table;

static int table_grow(Table *t, void *(*alloc)(size_t), void (*release)(void *)) {
    size_t size = t->size ? 2 * t->size : 4096;
    int32_t *key = alloc(sizeof(int32_t) * size);
    uint32_t *count = alloc(sizeof(uint32_t) * size);
    if (!key || !count) { release(key); release(count); return -1; }
    memset(key, 0, sizeof(int32_t) * size);
    for (size_t i = 0; i < t->size; i++) {
        if (!t->key[i]) continue;
        size_t h = ((uint32_t)t->key[i] * 2654435761u) & (size - 1);
        while (key[h]) h = (h + 1) & (size - 1);
        key[h] = t->key[i];
        count[h] = t->count[i];
    }
    release(t->key);
    release(t->count);
    t->key = key; t->count = count; t->size = size;
    return 0;
}

static inline int table_add(Table *t, int32_t k, int64_t n, void *(*alloc)(size_t), void (*release)(void *)) {
    k += 1;
    size_t h = ((uint32_t)k * 2654435761u) & (t->size - 1);
    while (t->key[h] && t->key[h] != k) h = (h + 1) & (t->size - 1);
    if (t->key[h]) { t->count[h] += (uint32_t)n; return 0; }
    if (2 * (t->used + 1) > t->size) {
        if (table_grow(t, alloc, release)) return -1;
        h = ((uint32_t)k * 2654435761u) & (t->size - 1);
        while (t->key[h]) h = (h + 1) & (t->size - 1);
    }
    t->key[h] = k;
    t->count[h] = (uint32_t)n;
    t->used++;
    return 0;
}

/* The band's cells (magnitude bin x nm + neighbourhood bin) and their counts into the
   caller's arrays keys/counts of `capacity` entries (each key once, in no particular
   order; counted in a dense table of every cell if the band has at least as many
   coefficients, else in the hash table), if they
   fit. Returns the number of cells (more than capacity: nothing written, ask again
   with room for them), -1 if out of memory (or a band of 2^32 coefficients or more).
   rows: two rows of W + 2 floats.
   nx = 2 octaves xper + 2, nm = 2 octaves mper + 2. */
long hlc_stats97(const float *band, int H, int W, int is_ll, int32_t *keys, int64_t *counts, long capacity,
                 int xper, int mper, int octaves, float *rows, void *(*alloc)(size_t), void (*release)(void *)) {
    int nx = 2 * octaves * xper + 2, nm = 2 * octaves * mper + 2;
    int xoff = octaves * xper + 1, moff = octaves * mper + 1;
    BinLut xlut, mlut;
    bin_lut(&xlut, xper);
    bin_lut(&mlut, mper);
    /* a band at least as large as the dense table of every cell (int32 counts: no more
       memory than the band's own floats) is counted there, a smaller one in the hash table */
    if ((uint64_t)H * (uint64_t)W >= ((uint64_t)1 << 32)) return -1;  /* (the hash table's uint32 counts) */
    size_t cells = (size_t)nx * (size_t)nm;
    int32_t *dense = (size_t)H * (size_t)W >= cells && (size_t)H * (size_t)W < ((size_t)1 << 31)
                     ? alloc(sizeof(int32_t) * cells) : NULL;
    Table tab = {NULL, NULL, 0, 0};
    if (dense) memset(dense, 0, sizeof(int32_t) * cells);
    else if (table_grow(&tab, alloc, release)) return -1;
    float *above = rows, *cur = rows + W + 2;  /* each with a zero column on either side */
    memset(rows, 0, sizeof(float) * 2 * (size_t)(W + 2));
    long rc = 0;
    int32_t last = -1;   /* runs of one cell (zeros) counted without a lookup */
    int64_t run = 0;
    for (int i = 0; i < H && rc == 0; i++) {
        const float *src = band + (size_t)i * W;
        for (int j = 0; j < W; j++) cur[j + 1] = fabsf(is_ll ? med_residual(band, i, j, W) : src[j]);
        for (int j = 0; j < W; j++) {
            float m = cur[j] + above[j + 1];   /* W + N */
            m = 3.0f * m;
            m = m + above[j];                  /* NW */
            m = m + above[j + 2];              /* NE */
            m = m * 0.125f;
            int key = bin_of(cur[j + 1], xper, &xlut, xoff, nx) * nm + bin_of(m, mper, &mlut, moff, nm);
            if (dense) { dense[key]++; continue; }
            if (key == last) { run++; continue; }
            if (run && table_add(&tab, last, run, alloc, release)) { rc = -1; break; }
            last = key;
            run = 1;
        }
        float *t = above; above = cur; cur = t;
    }
    if (dense) {
        long used = 0;
        for (size_t k = 0; k < cells; k++) used += dense[k] != 0;
        if (used <= capacity)
            for (size_t k = 0, n = 0; k < cells; k++)
                if (dense[k]) { keys[n] = (int32_t)k; counts[n] = dense[k]; n++; }
        release(dense);
        return used;
    }
    if (rc == 0 && run && table_add(&tab, last, run, alloc, release)) rc = -1;
    if (rc == 0) {
        rc = (long)tab.used;
        if (rc <= capacity)
            for (size_t i = 0, n = 0; i < tab.size; i++)
                if (tab.key[i]) { keys[n] = tab.key[i] - 1; counts[n] = tab.count[i]; n++; }
    }
    release(tab.key);
    release(tab.count);
    return rc;
}

/* ------------------------------------------------------------- the rate model */

/* The coder's token of a magnitude q (values 0-7, then 8 + 2 (e - 3) + the bit below
   the leading one, e = bit length - 1) and the raw bits it sends (e - 1 from 8 on):
   ratecontrol._tokens. */
static inline int model_token(int64_t q, int *raw) {
    if (q < 8) { *raw = 0; return (int)q; }
    int e = 63 - __builtin_clzll((uint64_t)q);
    *raw = e - 1;
    return 8 + 2 * (e - 3) + (int)((q >> (e - 1)) & 1);
}

#define MODEL_NTOK 128   /* tokens of magnitudes below 2^62 */
#define MODEL_NCTX 32

/* The bins the cells keys[from .. to) use, as {xlo, xhi, mlo, mhi} (a small band's are
   a few of the nx x nm); -1 for a key outside the bins. */
static int bin_range(const int32_t *keys, int64_t from, int64_t to, int nx, int nm, int range[4]) {
    int32_t x0 = nx, x1 = -1, m0 = nm, m1 = -1, bad = 0;
    for (int64_t k = from; k < to; k++) {  /* (no exit in the loop: gcc vectorises it) */
        int32_t key = keys[k], xb = key >> 16, mb = key & 0xFFFF;
        bad |= (key < 0) | (xb >= nx) | (mb >= nm);
        x0 = xb < x0 ? xb : x0; x1 = xb > x1 ? xb : x1;
        m0 = mb < m0 ? mb : m0; m1 = mb > m1 ? mb : m1;
    }
    range[0] = x0; range[1] = x1; range[2] = m0; range[3] = m1;
    return bad ? -1 : 0;
}

/* The conditional entropy of a (contexts x ntok, row stride MODEL_NTOK) token table and
   the adaptive models' learning of it over `tiles` tiles ((K - 1) / 2 log2 N a context
   and tile, N at least 2). */
static double table_bits(const double *table, int contexts, int ntok, double tiles) {
    double h = 0.0, learn = 0.0;
    for (int c = 0; c < contexts; c++) {
        const double *row = table + c * MODEL_NTOK;
        double sum = 0.0;
        int used = 0;
        for (int i = 0; i < ntok; i++) { sum += row[i]; used += row[i] > 0; }
        for (int i = 0; i < ntok; i++)
            if (row[i] > 0) h -= row[i] * log2(row[i] / sum);
        double per_tile = sum / tiles;
        if (used > 1) learn += (used - 1) / 2.0 * log2(per_tile > 2.0 ? per_tile : 2.0);
    }
    return h + tiles * learn;
}

/* Modelled bits of every band at its step (ratecontrol.Compact.bits, the numpy
   reference; the sum over bands is returned): the cells keys[off[b] .. off[b + 1])
   (magnitude bin << 16 | neighbourhood bin: no division per cell, which was most of
   a small image's evaluation) with counts n (float32); per band its step, whether
   it is the LL band (rounded, else the dead zone's `rounding`) and the tiles its
   counts came from. xc, mc: the bins' centre values. Per band: the conditional entropy
   of the tokens in the activity contexts of m / step (half-octave classes, 1 ..
   contexts - 1; 0 for m = 0), the adaptive models' learning, the raw bits and a sign
   bit per nonzero value. Returns -1 for a key outside the bins, -2 for contexts out of
   range or no memory. */
double hlc_model_bits(const int32_t *keys, const float *n, const int64_t *off, int nbands, const double *steps,
                      const int64_t *is_ll, const int64_t *tiles, const double *xc, int nx, const double *mc, int nm,
                      int contexts, double rounding) {
    static const double LOG2_LIMIT = 4.0e18;
    double total = 0.0;
    int *tok = malloc(sizeof(int) * (size_t)nx), *raw = malloc(sizeof(int) * (size_t)nx);
    int *ctx = malloc(sizeof(int) * (size_t)nm);
    double *table = malloc(sizeof(double) * MODEL_NCTX * MODEL_NTOK);
    if (!tok || !raw || !ctx || !table || contexts > MODEL_NCTX || contexts < 2) { total = -2.0; goto out; }
    for (int b = 0; b < nbands; b++) {
        double s = steps[b], r = is_ll[b] ? 0.5 : rounding, rawbits = 0.0;
        int range[4], ntok = 0;
        if (bin_range(keys, off[b], off[b + 1], nx, nm, range)) { total = -1.0; break; }
        for (int i = range[0]; i <= range[1]; i++) {
            double q = floor(xc[i] / s + r);
            int64_t qi = q > LOG2_LIMIT ? (int64_t)LOG2_LIMIT : q > 0 ? (int64_t)q : 0;
            tok[i] = model_token(qi, &raw[i]);
            raw[i] += qi > 0;   /* the sign */
            ntok = tok[i] >= ntok ? tok[i] + 1 : ntok;
        }
        for (int j = range[2]; j <= range[3]; j++) {
            double c = j ? floor(2.0 * log2(mc[j] / s)) + 8.0 : 0.0;
            ctx[j] = !j ? 0 : c < 1.0 ? 1 : c > contexts - 1 ? contexts - 1 : (int)c;
        }
        for (int c = 0; c < contexts; c++) memset(table + c * MODEL_NTOK, 0, sizeof(double) * (size_t)ntok);
        for (int64_t k = off[b]; k < off[b + 1]; k++) {
            int xb = keys[k] >> 16, mb = keys[k] & 0xFFFF;
            double nk = n[k];  /* (float32 counts: exact below 2^24 a cell, half the memory) */
            table[ctx[mb] * MODEL_NTOK + tok[xb]] += nk;
            rawbits += nk * raw[xb];
        }
        total += table_bits(table, contexts, ntok, tiles[b] > 0 ? (double)tiles[b] : 1.0) + rawbits;
    }
out:
    free(tok); free(raw); free(ctx); free(table);
    return total;
}
