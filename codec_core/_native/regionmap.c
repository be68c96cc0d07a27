/* The region map's row runs (codec_core/regions.py pack_map / unpack_map).
 *
 * A map is coded row by row: a row with as many runs of the same classes as the row
 * above is 0 and the zig-zagged shifts of its run starts; any other row is 1 + n, its
 * n classes and its n run lengths. The values go through varints and zlib in Python;
 * these loops replace the per-row numpy calls (17 ms each way on a 512-row map).
 */
#include <stdint.h>
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

/* vals (nvals, each < 2^28) -> cmap (frames, rows, cols); scratch holds 2 * cols int64.
   Returns 0, or HLC_MAP_CUT (the values end early), HLC_MAP_FILL (run lengths do not
   fill a row), HLC_MAP_RUNS (runs out of order or out of the row, or a class >= classes). */
int hlc_unpack_map(const int64_t *vals, int64_t nvals, uint8_t *cmap, int frames, int rows, int cols,
                   int classes, int64_t *scratch) {
    int64_t *starts = scratch, *labels = scratch + cols, at = 0;
    for (int f = 0; f < frames; f++) {
        int64_t n = 0;
        for (int r = 0; r < rows; r++) {
            if (at >= nvals) return HLC_MAP_CUT;
            int64_t head = vals[at++];
            if (head == 0) {
                if (nvals - at < n) return HLC_MAP_CUT;
                for (int64_t k = 0; k < n; k++) starts[k] += unzigzag(vals[at++]);
            } else {
                n = head - 1;
                if (n > cols) return HLC_MAP_RUNS;
                if (nvals - at < 2 * n) return HLC_MAP_CUT;
                int64_t sum = 0;
                for (int64_t k = 0; k < n; k++) {
                    labels[k] = vals[at + k];
                    starts[k] = sum;
                    sum += vals[at + n + k];
                }
                at += 2 * n;
                if (sum != cols) return HLC_MAP_FILL;
            }
            if (n == 0 || starts[0] != 0) return HLC_MAP_RUNS;
            for (int64_t k = 0; k < n; k++) {
                int64_t end = k + 1 < n ? starts[k + 1] : cols;
                if (end <= starts[k] || end > cols || labels[k] >= classes) return HLC_MAP_RUNS;
            }
            uint8_t *row = cmap + ((size_t)f * rows + r) * cols;
            for (int64_t k = 0; k < n; k++) {
                int64_t end = k + 1 < n ? starts[k + 1] : cols;
                for (int64_t j = starts[k]; j < end; j++) row[j] = (uint8_t)labels[k];
            }
        }
    }
    return 0;
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
    switch (otype) {
    case HLC_OUT_I32: HLC_SET_FLAT(int32_t); break;
    case HLC_OUT_I16: HLC_SET_FLAT(int16_t); break;
    case HLC_OUT_U16: HLC_SET_FLAT(uint16_t); break;
    case HLC_OUT_I8: HLC_SET_FLAT(int8_t); break;
    default: HLC_SET_FLAT(uint8_t); break;
    }
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
