/* The reversible 5/3 wavelet, one level in place (stream format v1/v2).
 *
 * The same lifting as codec_core/transform.py (JPEG 2000 Part 1, whole-sample
 * symmetric extension) on an interleaved plane: even rows/columns are the low-pass
 * half, odd ones the high-pass half. Analysis lifts along the rows axis first (pairs
 * of rows), then along each row; synthesis undoes it in the opposite order, so both
 * match the numpy steps bit for bit. Sums wrap modulo 2^32 as numpy's int32 do (only
 * a damaged stream's coefficients get that large): the arithmetic is unsigned, the
 * shifts arithmetic on the wrapped value.
 *
 * Why C: in numpy each lifting step is a pass over a temporary; here each level is
 * two passes over the plane, and a band never makes an extra round trip.
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

static inline int32_t add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
/* the predict and update terms: (a + b) >> 1 and (a + b + 2) >> 2 */
static inline int32_t half(int32_t a, int32_t b) { return add(a, b) >> 1; }
static inline int32_t quarter(int32_t a, int32_t b) { return add(add(a, b), 2) >> 2; }

/* One row of n samples, stride 1. */
static void fwd_row(int32_t *x, int n) {
    if (n < 2) return;
    for (int i = 1; i < n; i += 2) x[i] = sub(x[i], half(x[i - 1], x[i + 1 < n ? i + 1 : i - 1]));
    x[0] = add(x[0], quarter(x[1], x[1]));
    for (int i = 2; i < n; i += 2) x[i] = add(x[i], quarter(x[i - 1], x[i + 1 < n ? i + 1 : i - 1]));
}

static void inv_row(int32_t *x, int n) {
    if (n < 2) return;
    x[0] = sub(x[0], quarter(x[1], x[1]));
    for (int i = 2; i < n; i += 2) x[i] = sub(x[i], quarter(x[i - 1], x[i + 1 < n ? i + 1 : i - 1]));
    for (int i = 1; i < n; i += 2) x[i] = add(x[i], half(x[i - 1], x[i + 1 < n ? i + 1 : i - 1]));
}

/* Row r of the plane minus (or plus) a term of rows a and b, across all W columns:
   the rows-axis lifting, a row at a time so the compiler vectorises it. */
static void lift_rows(int32_t *r, const int32_t *a, const int32_t *b, int W, int update, int sign) {
    for (int j = 0; j < W; j++) {
        int32_t t = update ? quarter(a[j], b[j]) : half(a[j], b[j]);
        r[j] = sign > 0 ? add(r[j], t) : sub(r[j], t);
    }
}

void hlc_fwd53(int32_t *x, int H, int W) {
    size_t s = (size_t)W;
    if (H >= 2) {
        for (int i = 1; i < H; i += 2) lift_rows(x + i * s, x + (i - 1) * s, x + (i + 1 < H ? i + 1 : i - 1) * s, W, 0, -1);
        for (int i = 0; i < H; i += 2) {
            const int32_t *a = x + (i > 0 ? i - 1 : 1) * s, *b = x + (i + 1 < H ? i + 1 : i - 1) * s;
            lift_rows(x + i * s, a, b, W, 1, 1);
        }
    }
    for (int i = 0; i < H; i++) fwd_row(x + i * s, W);
}

void hlc_inv53(int32_t *x, int H, int W) {
    size_t s = (size_t)W;
    for (int i = 0; i < H; i++) inv_row(x + i * s, W);
    if (H >= 2) {
        for (int i = 0; i < H; i += 2) {
            const int32_t *a = x + (i > 0 ? i - 1 : 1) * s, *b = x + (i + 1 < H ? i + 1 : i - 1) * s;
            lift_rows(x + i * s, a, b, W, 1, -1);
        }
        for (int i = 1; i < H; i += 2) lift_rows(x + i * s, x + (i - 1) * s, x + (i + 1 < H ? i + 1 : i - 1) * s, W, 0, 1);
    }
}

/* Row r of the plane the four bands of a level interleave into, as the 5/3 lays them
   (even rows: LL at even columns, HL at odd ones; odd rows: LH, HH). */
void hlc_interleave_row(int32_t *row, int r, int W, const int32_t *ll, const int32_t *hl, const int32_t *lh,
                        const int32_t *hh) {
    int sh = (W + 1) / 2, dh = W / 2;
    const int32_t *a = r % 2 ? lh + (size_t)(r / 2) * sh : ll + (size_t)(r / 2) * sh;
    const int32_t *b = r % 2 ? hh + (size_t)(r / 2) * dh : hl + (size_t)(r / 2) * dh;
    for (int j = 0; j < dh; j++) {
        row[2 * j] = a[j];
        row[2 * j + 1] = b[j];
    }
    if (sh > dh) row[W - 1] = a[sh - 1];
}

/* That row lifted along the row. */
static void band_row(int32_t *row, int r, int W, const int32_t *ll, const int32_t *hl, const int32_t *lh,
                     const int32_t *hh) {
    hlc_interleave_row(row, r, W, ll, hl, lh, hh);
    inv_row(row, W);
}

/* hlc_inv53 of that plane without the plane: every row lifted along the row when its
   turn comes, then the rows-axis steps of hlc_inv53 on the same rows in the same order
   of dependence (an even row takes its odd neighbours before their update; an odd row
   its updated even neighbours, the same symmetric extension at both ends), in a ring of
   two even and two odd rows; each finished row goes to the sink, in order. The same
   operations on the same values, so the same samples; the lossless one-call decoder's
   last level held the whole int32 plane beside its bands and the output (5.6x the raw
   size of a 16-bit single-tile plane at its peak). */
void hlc_inv53_rows(const int32_t *ll, const int32_t *hl, const int32_t *lh, const int32_t *hh, int H, int W,
                    int32_t *work, const HlcRowSink *sink) {
    int32_t *even[2] = {work, work + W}, *odd[2] = {work + 2 * (size_t)W, work + 3 * (size_t)W};
    if (H < 2) {  /* one row: no rows-axis step */
        band_row(even[0], 0, W, ll, hl, lh, hh);
        hlc_sink_row(sink, 0, even[0], W);
        return;
    }
    int32_t *olo = NULL, *eprev = NULL;  /* odd row i - 1 (lifted along the row only), even row i - 2 (final) */
    for (int i = 0; i < H; i += 2) {
        int32_t *ohi = NULL;  /* odd row i + 1 */
        if (i + 1 < H) {
            ohi = odd[(i / 2) % 2];
            band_row(ohi, i + 1, W, ll, hl, lh, hh);
        }
        int32_t *e = even[(i / 2) % 2];
        band_row(e, i, W, ll, hl, lh, hh);
        /* hlc_inv53: a = row i - 1 (row 1 for i = 0), b = row i + 1 (row i - 1 past the end) */
        lift_rows(e, i > 0 ? olo : ohi, ohi ? ohi : olo, W, 1, -1);
        if (i > 0) {  /* odd row i - 1 between its even neighbours, now final */
            lift_rows(olo, eprev, e, W, 0, 1);
            hlc_sink_row(sink, i - 1, olo, W);
        }
        hlc_sink_row(sink, i, e, W);
        eprev = e;
        olo = ohi;
    }
    if (olo) {  /* H even: the last odd row, its even neighbour below mirrored (row H - 2) */
        lift_rows(olo, eprev, eprev, W, 0, 1);
        hlc_sink_row(sink, H - 1, olo, W);
    }
}

/* levels of the analysis, the bands packed (kernels.h): hlc_fwd53 leaves a level's bands
   interleaved; each row is split into its even and odd samples, then the rows and halves
   moved as hlc_fwd97 moves them. No band is copied out of the plane: the lossless encoder
   held the plane and every band beside it (5x the raw size of a 16-bit tile). */
void hlc_fwd53_packed(int32_t *x, int H, int W, int levels, int32_t *scratch, unsigned char *seen) {
    int h = H, w = W;
    int32_t *tmp = scratch + (size_t)hlc_fwd97_chunk(H) * W;
    for (int lev = 0; lev < levels; lev++) {
        hlc_fwd53(x, h, w);
        int ns_v = (h + 1) / 2, nd_v = h / 2, ns_h = (w + 1) / 2, nd_h = w / 2, m = hlc_fwd97_chunk(h);
        for (int i = 0; i < h; i++) {  /* [even samples | odd samples] */
            int32_t *row = x + (size_t)i * w;
            for (int j = 0; j < ns_h; j++) tmp[j] = row[2 * j];
            for (int j = 0; j < nd_h; j++) tmp[ns_h + j] = row[2 * j + 1];
            memcpy(row, tmp, sizeof(int32_t) * (size_t)w);
        }
        uint32_t *u = (uint32_t *)(void *)x, *us = (uint32_t *)(void *)scratch;
        hlc_unshuffle_rows(u, h, w, (uint32_t *)(void *)tmp, seen);
        hlc_pack_half(u, ns_v, ns_h, nd_h, us, m);                    /* LL | HL */
        hlc_pack_half(u + (size_t)ns_v * w, nd_v, ns_h, nd_h, us, m); /* LH | HH */
        h = ns_v;
        w = ns_h;
    }
}
