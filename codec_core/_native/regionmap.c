/* The region map's row runs (codec_core/regions.py pack_map / unpack_map).
 *
 * A map is coded row by row: a row with as many runs of the same classes as the row
 * above is 0 and the zig-zagged shifts of its run starts; any other row is 1 + n, its
 * n classes and its n run lengths. The values go through varints and zlib in Python;
 * these loops replace the per-row numpy calls (17 ms each way on a 512-row map).
 */
#include <stdint.h>
#include <math.h>
#include <stddef.h>

#include "kernels.h"

static inline int64_t zigzag(int64_t v) { return v >= 0 ? 2 * v : -2 * v - 1; }
static inline int64_t unzigzag(int64_t z) { return (z & 1) ? -((z + 1) / 2) : z / 2; }

/* cmap (frames, rows, cols) -> vals (room for cap values); scratch holds 4 * cols int64.
   Returns the count (at most frames * rows * (2 * cols + 1); 1 + 2 n a row of n runs),
   or -1 where vals has too little room. */
int64_t hlc_pack_map(const uint8_t *cmap, int frames, int rows, int cols, int64_t *vals, int64_t cap,
                     int64_t *scratch) {
    int64_t *starts = scratch, *labels = scratch + cols, *pstarts = scratch + 2 * (size_t)cols,
            *plabels = scratch + 3 * (size_t)cols, at = 0;
    for (int f = 0; f < frames; f++) {
        int pn = 0;
        for (int r = 0; r < rows; r++) {
            const uint8_t *row = cmap + ((size_t)f * rows + r) * cols;
            int n = 0;
            for (int j = 0; j < cols; j++)
                if (j == 0 || row[j] != row[j - 1]) { starts[n] = j; labels[n] = row[j]; n++; }
            if (cap - at < 1 + 2 * (int64_t)n) return -1;
            int same = n == pn;
            for (int k = 0; same && k < n; k++) same = labels[k] == plabels[k];
            if (same) {
                vals[at++] = 0;
                for (int k = 0; k < n; k++) vals[at++] = zigzag(starts[k] - pstarts[k]);
            } else {
                vals[at++] = n + 1;
                for (int k = 0; k < n; k++) vals[at++] = labels[k];
                for (int k = 0; k < n; k++) vals[at++] = (k + 1 < n ? starts[k + 1] : cols) - starts[k];
            }
            for (int k = 0; k < n; k++) { pstarts[k] = starts[k]; plabels[k] = labels[k]; }
            pn = n;
        }
    }
    return at;
}

/* The varint at raw[*at] (7 bits a byte, low first, in its fewest bytes: a last byte
   of 0 only alone; at most 4 bytes: below 2^28), *at moved past it; -HLC_MAP_VALUE_CUT
   if raw ends inside it, -HLC_MAP_VALUE_LARGE if it runs past 4 bytes or is longer than
   its value needs (the inflate bound counts the fewest bytes). */
static inline int64_t next_varint(const uint8_t *raw, size_t len, size_t *at) {
    int64_t v = 0;
    for (int k = 0; k < 4; k++) {
        if (*at >= len) return -HLC_MAP_VALUE_CUT;
        uint8_t b = raw[(*at)++];
        v |= (int64_t)(b & 0x7F) << (7 * k);
        if (!(b & 0x80)) return k > 0 && b == 0 ? -HLC_MAP_VALUE_LARGE : v;
    }
    return -HLC_MAP_VALUE_LARGE;
}

/* Every varint of raw from *at on, checked (the values past a complete map are read as
   any other: a damaged one is reported, not passed over). */
static int check_varints(const uint8_t *raw, size_t len, size_t at) {
    while (at < len) {
        int64_t v = next_varint(raw, len, &at);
        if (v < 0) return (int)-v;
    }
    return 0;
}

/* code, unless a varint of raw from at on is damaged: that is reported first, as if
   every varint were read before the runs */
static int map_error(const uint8_t *raw, size_t len, size_t at, int code) {
    int c = check_varints(raw, len, at);
    return c ? c : code;
}

/* raw (len bytes: pack_map's values as varints) -> cmap (frames, rows, cols): frames
   first .. first + frames - 1 of the map (the frames before are read, not kept; the
   ones after are not read: one frame asked of a stack claiming thousands kept them all,
   a gigabyte from 28 kB); scratch holds 2 * cols int64. The values are read from the
   bytes as they are needed (a map's varints unpacked first into int64 arrays were 8
   bytes a byte, several times over: a zlib bomb of 43 kB took 2.4 GB). Returns 0, or
   HLC_MAP_CUT (the values end early), HLC_MAP_FILL (run lengths do not fill a row),
   HLC_MAP_RUNS (runs out of order or out of the row, or a class >= classes),
   HLC_MAP_VALUE_CUT / HLC_MAP_VALUE_LARGE (a varint cut off at the end of raw, or longer
   than 4 bytes: anywhere in raw, when these are the map's last frames (`last`); else raw
   may end inside the frames after them, inflated only so far). */
int hlc_unpack_map(const uint8_t *raw, size_t len, uint8_t *cmap, int first, int frames, int rows, int cols,
                   int classes, int64_t *scratch, int last) {
    int64_t *starts = scratch, *labels = scratch + cols;
    size_t at = 0;
    int64_t v;
#define NEXT(dst)                                                         \
    do {                                                                  \
        if (at >= len) return HLC_MAP_CUT;                                \
        if ((v = next_varint(raw, len, &at)) < 0) return (int)-v;         \
        (dst) = v;                                                        \
    } while (0)
    for (int f = 0; f < first + frames; f++) {
        int64_t n = 0;
        for (int r = 0; r < rows; r++) {
            int64_t head;
            NEXT(head);
            if (head == 0) {
                for (int64_t k = 0; k < n; k++) {
                    int64_t z;
                    NEXT(z);
                    starts[k] += unzigzag(z);
                }
            } else {
                n = head - 1;
                if (n > cols) return map_error(raw, len, at, HLC_MAP_RUNS);
                for (int64_t k = 0; k < n; k++) NEXT(labels[k]);
                int64_t sum = 0;
                for (int64_t k = 0; k < n; k++) {
                    int64_t length;
                    NEXT(length);
                    starts[k] = sum;
                    sum += length;
                }
                if (sum != cols) return map_error(raw, len, at, HLC_MAP_FILL);
            }
            if (n == 0 || starts[0] != 0) return map_error(raw, len, at, HLC_MAP_RUNS);
            for (int64_t k = 0; k < n; k++) {
                int64_t end = k + 1 < n ? starts[k + 1] : cols;
                if (end <= starts[k] || end > cols || labels[k] >= classes)
                    return map_error(raw, len, at, HLC_MAP_RUNS);
            }
            if (f < first) continue;  /* (read, not kept) */
            uint8_t *row = cmap + ((size_t)(f - first) * rows + r) * cols;
            for (int64_t k = 0; k < n; k++) {
                int64_t end = k + 1 < n ? starts[k + 1] : cols;
                for (int64_t j = starts[k]; j < end; j++) row[j] = (uint8_t)labels[k];
            }
        }
    }
#undef NEXT
    return last ? check_varints(raw, len, at) : 0;
}

/* The FLAT pixels of a decoded region stream (regions.py _set_flat): every sample of a
   pixel whose class is flat set to value, in place; out holds n pixels of ch samples of
   type otype (HLC_OUT_*), classes n bytes. Returns 1 if every pixel's class is claimed
   (claimed: 256 flags), else 0. A numpy band loop was ~30% of a padded CT's decode;
   this is two vectorised passes over the map (the largest class found with the fill;
   then the unclaimed classes up to it, four at a time: a claimed[] lookup per pixel
   does not vectorise and took longer than both passes). */
#define HLC_SET_FLAT(T)                                                                  \
    do {                                                                                 \
        T *o = (T *)out, v = (T)value;                                                   \
        if (ch == 1) {                                                                   \
            for (int64_t i = 0; i < n; i++) {                                            \
                o[i] = classes[i] == flat ? v : o[i];                                    \
                top = classes[i] > top ? classes[i] : top;                               \
            }                                                                            \
        } else {                                                                         \
            for (int64_t i = 0; i < n; i++) {                                            \
                top = classes[i] > top ? classes[i] : top;                               \
                if (classes[i] == flat)                                                  \
                    for (int c = 0; c < ch; c++) o[i * ch + c] = v;                      \
            }                                                                            \
        }                                                                                \
    } while (0)

int hlc_set_flat(void *out, int otype, int ch, const uint8_t *classes, int64_t n, int64_t value, uint8_t flat,
                 const uint8_t *claimed) {
    uint8_t top = 0;
    HLC_BY_TYPE(otype, HLC_SET_FLAT);
    for (int k = 0; k <= top;) {
        uint8_t u[4];
        int m = 0;
        for (; k <= top && m < 4; k++)
            if (!claimed[k]) u[m++] = (uint8_t)k;
        if (m == 0) break;
        for (int j = m; j < 4; j++) u[j] = u[0];
        uint8_t seen = 0;
        for (int64_t i = 0; i < n; i++)
            seen |= (uint8_t)((classes[i] == u[0]) | (classes[i] == u[1]) | (classes[i] == u[2]) | (classes[i] == u[3]));
        if (seen) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ the padding fill (push-pull)
 *
 * regions._push_pull's float64 steps, in numpy's order (so the same values): the sums
 * of the known samples over 2 x 2 cells ((a00 + a10) + a01) + a11 (a missing row or
 * column adds nothing, as numpy's zero padding: no sum is -0.0), and the doubling
 * (_double: each sample repeated, then ((2 y + y_before) + y_after) / 4 down the
 * rows, then along them, the edge rows repeated). The pyramid above the 4 x 4 cells
 * stays in numpy (1/16 of the plane); these make its base, and the 2 x 2 level and
 * the plane from its estimate, a row at a time (the band loops were ~25% of a padded
 * CT's lossy encode).
 */

/* Row r of the plane as doubles where known (0.0 elsewhere), and known as 0 / 1. */
static void fill_load(const void *x, int xtype, const ptrdiff_t *xs, const uint8_t *known, int r, int cols,
                      double *v, double *w) {
    const uint8_t *k = known + (size_t)r * cols;
#define HLC_FILL_LOAD(T)                                                                    \
    do {                                                                                    \
        const T *p = (const T *)x + r * xs[0];                                              \
        for (int j = 0; j < cols; j++) v[j] = k[j] ? (double)p[j * xs[1]] : 0.0;            \
    } while (0)
    HLC_BY_TYPE(xtype, HLC_FILL_LOAD);
#undef HLC_FILL_LOAD
    for (int j = 0; j < cols; j++) w[j] = k[j] ? 1.0 : 0.0;
}

/* Sums of 2 x 2 cells of rows a and b (b NULL: past the plane's edge) of n samples. */
static void fill_halve(const double *a, const double *b, int n, double *out) {
    for (int m = 0; 2 * m < n; m++) {
        double s = a[2 * m];
        if (b) s += b[2 * m];
        if (2 * m + 1 < n) {
            s += a[2 * m + 1];
            if (b) s += b[2 * m + 1];
        }
        out[m] = s;
    }
}

/* Sums (v) and counts (w) of the known samples over the 2 x 2 cells of row i1 of the
   2 x 2 level (rows 2 i1, 2 i1 + 1 of the plane); s holds 4 * cols doubles. */
static void fill_level1(const void *x, int xtype, const ptrdiff_t *xs, const uint8_t *known, int rows, int cols,
                        int i1, double *v, double *w, double *s) {
    double *va = s, *wa = s + cols, *vb = s + 2 * (size_t)cols, *wb = s + 3 * (size_t)cols;
    int two = 2 * i1 + 1 < rows;
    fill_load(x, xtype, xs, known, 2 * i1, cols, va, wa);
    if (two) fill_load(x, xtype, xs, known, 2 * i1 + 1, cols, vb, wb);
    fill_halve(va, two ? vb : NULL, cols, v);
    fill_halve(wa, two ? wb : NULL, cols, w);
}

/* v2, w2 (ceil(rows / 4), ceil(cols / 4)): the sums and counts of the known samples over
   4 x 4 cells, as two halvings. scratch: 6 * cols + 8 doubles. */
void hlc_fill_sums(const void *x, int xtype, const ptrdiff_t *xs, const uint8_t *known, int rows, int cols,
                   double *v2, double *w2, double *scratch) {
    int rows1 = (rows + 1) / 2, cols1 = (cols + 1) / 2, cols2 = (cols1 + 1) / 2;
    double *s = scratch, *va = s + 4 * (size_t)cols, *wa = va + cols1, *vb = wa + cols1, *wb = vb + cols1;
    for (int i2 = 0; 2 * i2 < rows1; i2++) {
        int two = 2 * i2 + 1 < rows1;
        fill_level1(x, xtype, xs, known, rows, cols, 2 * i2, va, wa, s);
        if (two) fill_level1(x, xtype, xs, known, rows, cols, 2 * i2 + 1, vb, wb, s);
        fill_halve(va, two ? vb : NULL, cols1, v2 + (size_t)i2 * cols2);
        fill_halve(wa, two ? wb : NULL, cols1, w2 + (size_t)i2 * cols2);
    }
}

/* Along a row: R (m values) doubled into out (2 m values), each sample repeated and
   then ((2 y + y_before) + y_after) / 4, the edge samples repeated. */
static void fill_double_cols(const double *R, int m, double *out) {
    out[0] = ((R[0] * 2 + R[0]) + R[0]) / 4;  /* (the edges: the sample itself each side) */
    out[2 * m - 1] = ((R[m - 1] * 2 + R[m - 1]) + R[m - 1]) / 4;
    for (int q = 1; q < m; q++) out[2 * q] = ((R[q] * 2 + R[q - 1]) + R[q]) / 4;
    for (int q = 0; q + 1 < m; q++) out[2 * q + 1] = ((R[q] * 2 + R[q]) + R[q + 1]) / 4;
}

/* Row j of _double(e (n rows, m cols), ...): down the rows from e's rows, then along
   the row, out: 2 m values; R holds m doubles. */
static void fill_double_row(const double *e, int n, int m, int j, double *R, double *out) {
    int k = j >> 1;
    const double *cur = e + (size_t)k * m;
    const double *before = (j & 1) ? cur : e + (size_t)(k > 0 ? k - 1 : 0) * m;
    const double *after = (j & 1) ? e + (size_t)(k + 1 < n ? k + 1 : k) * m : cur;
    for (int q = 0; q < m; q++) R[q] = ((cur[q] * 2 + before[q]) + after[q]) / 4;
    fill_double_cols(R, m, out);
}

/* The plane's holes (known 0) set to the push-pull fill from est2, the estimate at the
   4 x 4 cells (n2 x m2): the 2 x 2 level's estimate is each cell's mean where it has a
   known sample, the doubled est2 elsewhere; the plane is its doubling, rounded half to
   even and clipped to out's type. scratch: 11 * cols + 16 doubles. */
void hlc_fill_plane(const void *x, int xtype, const ptrdiff_t *xs, const uint8_t *known, int rows, int cols,
                    const double *est2, int n2, int m2, void *out, const ptrdiff_t *os, double *scratch) {
    int rows1 = (rows + 1) / 2, cols1 = (cols + 1) / 2;
    double *s = scratch, *v1 = s + 4 * (size_t)cols, *w1 = v1 + cols1, *R = w1 + cols1, *D = R + cols1 + 1;
    double *E = D + 2 * (size_t)cols1 + 2, *P = E + 3 * (size_t)cols1, *row = P + cols1 + 1;  /* row: 2 cols1 + 2 */
    int tag[3] = {-1, -1, -1};
    double lo, hi;
    switch (xtype) {
    case HLC_OUT_I32: lo = -2147483648.0; hi = 2147483647.0; break;
    case HLC_OUT_I16: lo = -32768.0; hi = 32767.0; break;
    case HLC_OUT_U16: lo = 0.0; hi = 65535.0; break;
    case HLC_OUT_I8: lo = -128.0; hi = 127.0; break;
    default: lo = 0.0; hi = 255.0; break;
    }
    for (int r = 0; r < rows; r++) {
        const uint8_t *k = known + (size_t)r * cols;
        int hole = 0;
        for (int c = 0; c < cols; c++) hole |= !k[c];
        if (!hole) continue;
        int j = r >> 1, rows_e[3] = {j > 0 ? j - 1 : 0, j, j + 1 < rows1 ? j + 1 : j};
        for (int t = 0; t < 3; t++) {  /* the 2 x 2 level's rows this plane row reaches */
            int i1 = rows_e[t];
            if (tag[i1 % 3] == i1) continue;
            double *e = E + (size_t)(i1 % 3) * cols1;
            fill_level1(x, xtype, xs, known, rows, cols, i1, v1, w1, s);
            fill_double_row(est2, n2, m2, i1, R, D);
            for (int c = 0; c < cols1; c++) e[c] = w1[c] > 0 ? v1[c] / (w1[c] > 1e-12 ? w1[c] : 1e-12) : D[c];
            tag[i1 % 3] = i1;
        }
        /* _double of the 2 x 2 level's estimate, row r (its rows j - 1 .. j + 1, as cached) */
        const double *cur = E + (size_t)(j % 3) * cols1;
        const double *before = (r & 1) ? cur : E + (size_t)(rows_e[0] % 3) * cols1;
        const double *after = (r & 1) ? E + (size_t)(rows_e[2] % 3) * cols1 : cur;
        for (int q = 0; q < cols1; q++) P[q] = ((cur[q] * 2 + before[q]) + after[q]) / 4;
        fill_double_cols(P, cols1, row);
        for (int c = 0; c < cols; c++) {  /* rint: the fill lies between samples (|f| < 2^31) */
            double f = (row[c] + 6755399441055744.0) - 6755399441055744.0;  /* half to even, as np.rint */
            row[c] = f < lo ? lo : f > hi ? hi : f;
        }
#define HLC_FILL_STORE(T)                                                                   \
    do {                                                                                    \
        T *o = (T *)out + r * os[0];                                                        \
        for (int c = 0; c < cols; c++)                                                      \
            if (!k[c]) o[c * os[1]] = (T)row[c];                                            \
    } while (0)
        HLC_BY_TYPE(xtype, HLC_FILL_STORE);
#undef HLC_FILL_STORE
    }
}

/* counts[v - lo] += 1 for every sample v of x (n samples of type xtype) where mask is
   set (regions._most_common: the padding's value). Samples outside [lo, lo + nbins)
   are skipped (the caller takes lo and nbins from x's range: there are none). */
void hlc_masked_histogram(const void *x, int xtype, const uint8_t *mask, int64_t n, int64_t lo, int64_t *counts,
                          int64_t nbins) {
#define HLC_HIST(T)                                                                          \
    do {                                                                                     \
        const T *p = (const T *)x;                                                           \
        for (int64_t i = 0; i < n; i++) {                                                    \
            uint64_t b = (uint64_t)((int64_t)p[i] - lo);                                     \
            if (mask[i] && b < (uint64_t)nbins) counts[b]++;                                 \
        }                                                                                    \
    } while (0)
    HLC_BY_TYPE(xtype, HLC_HIST);
#undef HLC_HIST
}
