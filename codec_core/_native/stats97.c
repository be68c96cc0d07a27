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

/* Log-spaced bin of a magnitude: 0 for zero (and NaN), else floor(log2(a) * per) + off
   clipped to 1 .. n - 1; log2 from the float's exponent and its mantissa against the
   per-octave thresholds thr[k] = 2^(k / per) (no logarithm call per coefficient). */
static inline int bin_of(float a, int per, const float *thr, int off, int n) {
    if (!(a > 0.0f)) return 0;
    uint32_t u;
    memcpy(&u, &a, 4);
    int e = (int)(u >> 23) - 127;
    if (e < -126) return 1;  /* subnormal: far below the lowest bin */
    uint32_t mu = (u & 0x7fffffu) | 0x3f800000u;
    float m;
    memcpy(&m, &mu, 4);
    int k = 0;
    for (int t = 1; t < per; t++) k += m >= thr[t];
    int v = e * per + k + off;
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

/* hist (nx x nm int64) += the band's counts. rows: two rows of W + 2 floats (scratch).
   nx = 2 octaves xper + 2, nm = 2 octaves mper + 2. */
void hlc_stats97(const float *band, int H, int W, int is_ll, int64_t *hist, int xper, int mper, int octaves,
                 float *rows) {
    int nx = 2 * octaves * xper + 2, nm = 2 * octaves * mper + 2;
    int xoff = octaves * xper + 1, moff = octaves * mper + 1;
    float xthr[65], mthr[65];
    for (int t = 0; t <= xper; t++) xthr[t] = (float)pow(2.0, (double)t / xper);
    for (int t = 0; t <= mper; t++) mthr[t] = (float)pow(2.0, (double)t / mper);
    float *above = rows, *cur = rows + W + 2;  /* each with a zero column on either side */
    memset(rows, 0, sizeof(float) * 2 * (size_t)(W + 2));
    for (int i = 0; i < H; i++) {
        const float *src = band + (size_t)i * W;
        for (int j = 0; j < W; j++) cur[j + 1] = fabsf(is_ll ? med_residual(band, i, j, W) : src[j]);
        for (int j = 0; j < W; j++) {
            float m = cur[j] + above[j + 1];   /* W + N */
            m = 3.0f * m;
            m = m + above[j];                  /* NW */
            m = m + above[j + 2];              /* NE */
            m = m * 0.125f;
            int key = bin_of(cur[j + 1], xper, xthr, xoff, nx) * nm + bin_of(m, mper, mthr, moff, nm);
            hist[key]++;
        }
        float *t = above; above = cur; cur = t;
    }
}
