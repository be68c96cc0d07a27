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
