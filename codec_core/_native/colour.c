/* A decoded tile's finish (pipeline.finish_tile): each pixel's samples clipped to
 * [-lim, lim] and taken through the inverse reversible colour transform (JPEG 2000's
 * RCT, three channels) where asked, or, with a value table (never with the RCT), taken
 * from ranks to values (a rank clipped to the table first), then clipped to
 * [vmin, vmax] and stored in the output's type. One pass, any strides (a
 * planar tile seen as rows x cols x channels, or the output's place in the image): the
 * numpy version made a plane-sized temporary per step (rct_inverse was ~15% of a
 * colour decode). The integer operations are numpy's (arithmetic shift of the sum,
 * no overflow in int16 or int32 for the clipped values), so the values are the same.
 */
#include <stdint.h>
#include <stddef.h>

#include "kernels.h"

static inline int32_t clip32(int32_t v, int32_t lo, int32_t hi) {  /* (two selects: no branch) */
    int32_t a = v < lo ? lo : v;
    return a > hi ? hi : a;
}

/* Pixels a planar row is transformed in before they are interleaved into the output. */
#define HLC_FINISH_CHUNK 256

#define HLC_FINISH(TS, TO)                                                                       \
    do {                                                                                         \
        const TS *s = (const TS *)src;                                                           \
        TO *o = (TO *)out;                                                                       \
        for (int r = 0; r < rows; r++) {                                                         \
            const TS *sr = s + r * s0;                                                           \
            TO *orow = o + r * o0;                                                               \
            if ((rct || (ch == 3 && !table)) && s1 == 1) {                                       \
                /* planar rows: the transform (or the clips alone) vectorised, then interleaved */ \
                for (int j0 = 0; j0 < cols; j0 += HLC_FINISH_CHUNK) {                            \
                    int n = cols - j0 < HLC_FINISH_CHUNK ? cols - j0 : HLC_FINISH_CHUNK;         \
                    const TS *py = sr + j0, *pb = py + s2, *pr = py + 2 * s2;                    \
                    if (rct) {                                                                   \
                        for (int k = 0; k < n; k++) {                                            \
                            int32_t y = clip32(py[k], -lim, lim), cb = clip32(pb[k], -lim, lim), \
                                    cr = clip32(pr[k], -lim, lim);                               \
                            int32_t g = y - ((cb + cr) >> 2);                                    \
                            rgb[0][k] = clip32(cr + g, vmin, vmax);                              \
                            rgb[1][k] = clip32(g, vmin, vmax);                                   \
                            rgb[2][k] = clip32(cb + g, vmin, vmax);                              \
                        }                                                                        \
                    } else { /* (a near-lossless colour tile: three planes, no transform) */     \
                        for (int k = 0; k < n; k++) {                                            \
                            rgb[0][k] = clip32(py[k], vmin, vmax);                               \
                            rgb[1][k] = clip32(pb[k], vmin, vmax);                               \
                            rgb[2][k] = clip32(pr[k], vmin, vmax);                               \
                        }                                                                        \
                    }                                                                            \
                    TO *q = orow + j0 * o1;                                                      \
                    if (o1 == 3 && o2 == 1) { /* (an image's pixels: constant strides vectorise) */ \
                        for (int k = 0; k < n; k++) {                                            \
                            q[3 * k] = (TO)rgb[0][k];                                            \
                            q[3 * k + 1] = (TO)rgb[1][k];                                        \
                            q[3 * k + 2] = (TO)rgb[2][k];                                        \
                        }                                                                        \
                    } else {                                                                     \
                        for (int k = 0; k < n; k++) {                                            \
                            q[k * o1] = (TO)rgb[0][k];                                           \
                            q[k * o1 + o2] = (TO)rgb[1][k];                                      \
                            q[k * o1 + 2 * o2] = (TO)rgb[2][k];                                  \
                        }                                                                        \
                    }                                                                            \
                }                                                                                \
            } else if (rct) {                                                                    \
                for (int j = 0; j < cols; j++) {                                                 \
                    int32_t y = clip32(sr[j * s1], -lim, lim), cb = clip32(sr[j * s1 + s2], -lim, lim), \
                            cr = clip32(sr[j * s1 + 2 * s2], -lim, lim);                         \
                    int32_t g = y - ((cb + cr) >> 2);                                            \
                    orow[j * o1] = (TO)clip32(cr + g, vmin, vmax);                               \
                    orow[j * o1 + o2] = (TO)clip32(g, vmin, vmax);                               \
                    orow[j * o1 + 2 * o2] = (TO)clip32(cb + g, vmin, vmax);                      \
                }                                                                                \
            } else if (table && ch == 1 && s1 == 1 && o1 == 1) {                                 \
                /* one channel, contiguous rows: no loop over channels, no stride products     \
                   (lossless decode 693_UNCR 1.03x, eCT_Supplemental 1.06x) */                  \
                for (int j = 0; j < cols; j++)                                                   \
                    orow[j] = (TO)clip32(table[clip32(sr[j], 0, ntable - 1)], vmin, vmax);       \
            } else if (table) { /* ranks to values (a value table's plane): one gather a sample */ \
                for (int j = 0; j < cols; j++)                                                   \
                    for (int c = 0; c < ch; c++)                                                 \
                        orow[j * o1 + c * o2] =                                                  \
                            (TO)clip32(table[clip32(sr[j * s1 + c * s2], 0, ntable - 1)], vmin, vmax); \
            } else if (ch == 1 && s1 == 1 && o1 == 1) { /* one channel, contiguous rows: vectorises */ \
                for (int j = 0; j < cols; j++) orow[j] = (TO)clip32(sr[j], vmin, vmax);         \
            } else {                                                                             \
                for (int j = 0; j < cols; j++)                                                   \
                    for (int c = 0; c < ch; c++)                                                 \
                        orow[j * o1 + c * o2] = (TO)clip32(sr[j * s1 + c * s2], vmin, vmax);     \
            }                                                                                    \
        }                                                                                        \
    } while (0)

#define HLC_FINISH_I32(TO) HLC_FINISH(int32_t, TO)
#define HLC_FINISH_I16(TO) HLC_FINISH(int16_t, TO)

/* The finish in two vector builds (kernels.h: HLC_VECTOR_BUILDS; its clips as vpminsd /
   vpmaxsd with AVX2: SSE2 has no 32-bit integer min / max). Integer operations: the same
   values in both. AVX2 4x faster than the baseline on a 480 x 640 tile. */
static inline __attribute__((always_inline)) int colour_finish_body(
        const void *src, int src_i32, const ptrdiff_t *sstr, void *out, int otype, const ptrdiff_t *ostr, int rows,
        int cols, int ch, int rct, int32_t lim, const int32_t *table, int32_t ntable, int32_t vmin, int32_t vmax) {
    /* (strides in locals: with -fno-strict-aliasing every store could change them) */
    const ptrdiff_t s0 = sstr[0], s1 = sstr[1], s2 = sstr[2], o0 = ostr[0], o1 = ostr[1], o2 = ostr[2];
    int32_t rgb[3][HLC_FINISH_CHUNK];  /* a chunk of a row's R, G, B (the planar case) */
    if (src_i32) HLC_BY_TYPE(otype, HLC_FINISH_I32);
    else HLC_BY_TYPE(otype, HLC_FINISH_I16);
    return 0;
}

HLC_VECTOR_BUILDS(int, colour_finish, (const void *src, int src_i32, const ptrdiff_t *sstr, void *out, int otype,
                                       const ptrdiff_t *ostr, int rows, int cols, int ch, int rct, int32_t lim,
                                       const int32_t *table, int32_t ntable, int32_t vmin, int32_t vmax),
                  (src, src_i32, sstr, out, otype, ostr, rows, cols, ch, rct, lim, table, ntable, vmin, vmax))

/* src: int32 (src_i32) or int16 samples, out: otype (HLC_OUT_*); strides in elements
   (rows, cols, channels); rct needs ch == 3 (channel order Y Cb Cr in, R G B out) and no
   table (NULL: none; else ntable >= 1 entries). A pixel's samples are all read before any
   is written: out may be src itself. */
void hlc_colour_finish(const void *src, int src_i32, const ptrdiff_t *sstr, void *out, int otype,
                       const ptrdiff_t *ostr, int rows, int cols, int ch, int rct, int32_t lim,
                       const int32_t *table, int32_t ntable, int32_t vmin, int32_t vmax) {
    colour_finish(src, src_i32, sstr, out, otype, ostr, rows, cols, ch, rct, lim, table, ntable, vmin, vmax);
}

/* The encoder's side of a value table: rows x cols samples of type stype (HLC_OUT_*;
   strides s0, s1 in elements) to their ranks, out[r * cols + j] = lut[v - first] with
   v - first clipped to the lut (every sample of a value-table image lies inside it).
   One pass instead of numpy's astype, subtraction and fancy indexing: lossless encode
   1.05x (693_UNCR) and 1.10x (eCT_Supplemental). */
void hlc_to_ranks(const void *src, int stype, ptrdiff_t s0, ptrdiff_t s1, int32_t *out, int rows, int cols,
                  const int32_t *lut, int32_t nlut, int64_t first) {
#define HLC_TO_RANKS(T)                                                                       \
    for (int r = 0; r < rows; r++) {                                                          \
        const T *sr = (const T *)src + r * s0;                                                \
        int32_t *orow = out + (size_t)r * cols;                                               \
        for (int j = 0; j < cols; j++) {                                                      \
            int64_t v = (int64_t)sr[j * s1] - first;                                          \
            orow[j] = lut[v < 0 ? 0 : v >= nlut ? nlut - 1 : v];                              \
        }                                                                                     \
    }
    HLC_BY_TYPE(stype, HLC_TO_RANKS);
#undef HLC_TO_RANKS
}

/* Row i (W int32 samples) of a plane finished into a sink's output (kernels.h's HlcRowSink):
   the finish above for one row of one channel. */
void hlc_sink_row(const HlcRowSink *k, int i, const int32_t *row, int W) {
    static const size_t item[5] = {4, 2, 2, 1, 1};  /* bytes of an HLC_OUT_* sample */
    const ptrdiff_t sstr[3] = {W, 1, 1}, ostr[3] = {(ptrdiff_t)k->ostride, 1, 1};
    char *o = (char *)k->out + (size_t)i * k->ostride * item[k->otype];
    hlc_colour_finish(row, 1, sstr, o, k->otype, ostr, 1, W, 1, 0, 0, k->table, k->ntable, k->lo, k->hi);
}
