/* The compiled kernels of codec_core (see module.c for the Python side). */
#ifndef HLC_KERNELS_H
#define HLC_KERNELS_H

#include <stdint.h>

#include "rangecoder.h"

/* An earlier band a coefficient's context reads (a parent, or a band of the same
   level coded before), and the small helpers of the band coders. */
typedef struct { const int32_t *p; int h, w; } RefBand;

static inline int64_t abs64(int64_t v) { return v < 0 ? -v : v; }
static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int sign3(int64_t v) { return (v > 0) - (v < 0); }

/* The value of a reference band at (i, j) clamped into it; 0 for a missing band. */
static inline int64_t ref_at(RefBand r, int i, int j) {
    if (r.h == 0) return 0;
    return r.p[(size_t)imin(i, r.h - 1) * r.w + imin(j, r.w - 1)];
}

#define NCTX_ACT 36                 /* band coder: activity contexts per model group */
#define NCTX (NCTX_ACT + 2)         /* + run length and run end */
#define NSIGN_CTX 9
#define HLC_NACT 32                 /* predictive coder: activity contexts of regular mode */

/* One subband, encoded (decoding = 0: band is read, e used) or decoded (1: band is
   written, d used). */
int hlc_code_band(int decoding, int32_t *band, int H, int W, const int32_t *parent, int ph, int pw,
                  const int32_t *x1, int h1, int w1, const int32_t *x2, int h2, int w2,
                  Encoder *e, Decoder *d, int32_t *freq, int32_t *tot, int gbase, int32_t *sfreq, int32_t *stot);
/* Lossy (9/7) detail bands (lossyband.c): binary models of the zero / one decisions
   (3 bands x LB_NACT activity x LB_NPAR parent buckets each) and of the signs (3 x 27),
   and LB_NREM hybrid-integer models of magnitude - 2. */
#define LB_NACT 14
#define LB_NPAR 6
#define LB_NREM 16
#define LB_RATE_CAP 60
#define LB_NZ (LB_NACT * LB_NPAR)
/* Quiet runs (the `runs` variant, stream flag LOSSY_RUNS): a row's zero decision in
   LB_NROWCTX contexts (3 bands x row above zero x parent buckets nonzero); a run of
   LB_RUN coefficients' zero decision (3 bands x parent buckets nonzero) and the group
   decision inside a run that is not all zero (3 bands): LB_NRUNCTX. Their models follow
   the others (the first variant never touches them). */
#define LB_RUN 16
#define LB_NROWCTX (3 * 4)
#define LB_NRUNCTX (3 * 2 + 3)
#define LB_NBITS (2 * 3 * LB_NZ + 3 * 27 + 3 + LB_NROWCTX + LB_NRUNCTX)
void hlc_lossy_init(void);  /* its context tables, once, before any band is coded */
void hlc_act_init(void);  /* rangecoder.h's activity table, once, before anything is coded */
/* out16 (decoding only; else NULL): the band's rows are stored there as int16 instead
   of in band (unused then); HLC_LOSSY_WIDE if a coefficient does not fit int16 (the
   rows after it are not decoded: the caller decodes the band again into int32). */
#define HLC_LOSSY_WIDE 1
int hlc_lossy_band(int decoding, int runs, int32_t *band, int16_t *out16, int H, int W, int orient,
                   const int32_t *parent, int ph, int pw, Encoder *e, Decoder *d, int32_t *freq, int32_t *tot,
                   int32_t *bits);
void hlc_fwd53(int32_t *x, int H, int W);
void hlc_inv53(int32_t *x, int H, int W);
void hlc_med_residual(const int32_t *x, int32_t *e, int H, int W);
void hlc_med_reconstruct(const int32_t *e, int32_t *x, int H, int W);

int hlc_encode_plane(const int32_t *x, int H, int W, int32_t *P, int ring, int64_t k, int64_t vmin, int64_t vmax,
                     Encoder *e, int32_t *freq, int32_t *tot, const int64_t *recip,
                     const uint8_t *mask, const int32_t *base);
/* Where a decoded plane's rows go as they are finished, when the decoder keeps only a ring
   of three (sink non-NULL; P then 3 x (W + 4)): each row through colour.c's finish of one
   channel (value table or none, clipped to [lo, hi], cast) into row i of out (ostride
   samples apart, HLC_OUT_* type otype). Without it P holds the whole padded plane. */
typedef struct {
    void *out;
    size_t ostride;
    int otype;
    const int32_t *table;
    int32_t ntable, lo, hi;
} HlcRowSink;
int hlc_decode_plane(int H, int W, int32_t *P, int64_t k, int64_t vmin, int64_t vmax,
                     Decoder *d, int32_t *freq, int32_t *tot, const int64_t *recip,
                     const uint8_t *mask, const int32_t *base, const HlcRowSink *sink);
void hlc_sink_row(const HlcRowSink *sink, int i, const int32_t *row, int W);  /* (colour.c) */
void hlc_interleave_row(int32_t *row, int r, int W, const int32_t *ll, const int32_t *hl, const int32_t *lh,
                        const int32_t *hh);  /* row r of a level's plane from its four bands (transform53.c) */
/* The last 5/3 synthesis level (transform53.c) from its four bands straight into a sink:
   hlc_inv53 of the plane the bands interleave into, without that plane (work: 4 W int32). */
void hlc_inv53_rows(const int32_t *ll, const int32_t *hl, const int32_t *lh, const int32_t *hh, int H, int W,
                    int32_t *work, const HlcRowSink *sink);

/* lossy reconstruction (wavelet97.c): output sample types */
#define HLC_OUT_I32 0
#define HLC_OUT_I16 1
#define HLC_OUT_U16 2
#define HLC_OUT_I8 3
#define HLC_OUT_U8 4
/* M(T) for the C type T of an HLC_OUT_* sample type. */
#define HLC_BY_TYPE(otype, M)                          \
    do {                                               \
        switch (otype) {                               \
        case HLC_OUT_I32: M(int32_t); break;           \
        case HLC_OUT_I16: M(int16_t); break;           \
        case HLC_OUT_U16: M(uint16_t); break;          \
        case HLC_OUT_I8: M(int8_t); break;             \
        default: M(uint8_t); break;                    \
        }                                              \
    } while (0)
int hlc_synth97(const int32_t *const *bands, int levels, const float *steps, float recon,
                int H, int W, void *out, int otype, double lo, double hi);
#include <stddef.h>
int hlc_rdo_count(const float *band, int H, int W, float step, int64_t *counts, int nsym_cap, int32_t *rows);
/* the RDO quantiser's activity contexts (the band coder's, whose rate it models) and the
   symbols its tables hold (rdoquant.c) */
#define HLC_RDO_NCTX NCTX_ACT
#define HLC_RDO_NSYM 64
/* int32 scratch of hlc_quant_band and hlc_rdo_count (rdoquant.c) for a band W wide */
#define HLC_COUNT_SCRATCH(W) (5 * ((size_t)(W) + 4) + 2 * HLC_RDO_NCTX * HLC_RDO_NSYM)
#define HLC_QUANT_SCRATCH(W) \
    (2 * HLC_RDO_NCTX * HLC_RDO_NSYM + 3 * ((size_t)(W) + 4) + 4 * ((size_t)(W) + 2) + 4 * (size_t)(W))
double hlc_quant_band(const float *band, int32_t *out, int H, int W, float step, int rdo, double lam,
                      const double *bits, int nsym, int32_t *scratch, float rounding);
long hlc_stats97(const float *band, int H, int W, int is_ll, int32_t *keys, int64_t *counts, long capacity,
                 int xper, int mper, int octaves, float *rows, void *(*alloc)(size_t), void (*release)(void *));
double hlc_model_bits(const int32_t *keys, const float *n, const int64_t *off, int nbands, const double *steps,
                      const int64_t *is_ll, const int64_t *tiles, const double *xc, int nx, const double *mc, int nm,
                      int contexts, double rounding);
void hlc_synth97_level(void *ll, int ll_int, float ll_step, void *hl, void *lh, void *hh, int d16, const float *steps,
                       float recon, int h, int w, void *out, size_t ostride, int otype, double lo, double hi,
                       float *work);
#define HLC_SYNTH97_WORK(w) (7 * (size_t)(w) + 16) /* floats of hlc_synth97_level's work */
/* Decoded images' blocks, and on request the plane decoders' scratch, kept between
   decodes (planedecode.c: at most 32 MB in all, for any thread), from hlc_raw_alloc
   (module.c sets the Python raw allocator). keep: the scratch goes back to the cache. */
extern void *(*hlc_raw_alloc)(size_t);
extern void (*hlc_raw_free)(void *);
void *hlc_take(size_t bytes);
void hlc_give(void *p);
size_t hlc_cached_bytes(void);
void hlc_release_cache(void);
#define HLC_CACHE_BYTES ((size_t)32 << 20)
/* A lossy plane from its segments (planedecode.c): segs[0] the LL band's, segs[1 ..
   levels] the detail levels', coarsest first (empty: a level of zeros); fresh: the
   starting models of the band coder (one group) and of the lossy band coder; steps
   1 + 3 levels float32; out as hlc_synth97_level's last level. Returns 0, or one of: */
#define HLC_PLANE_NO_MEMORY (-1)
#define HLC_PLANE_BAD_LENGTH 1  /* a segment's length field is cut off or too long */
#define HLC_PLANE_SHORT 2       /* a segment is shorter than its length field */
#define HLC_MAX_LEVELS 30
typedef struct {
    const int32_t *freq, *tot, *sfreq, *stot;  /* band coder: NCTX x HLC_NSYM, NCTX, NSIGN_CTX x 2, NSIGN_CTX */
    const int32_t *lfreq, *ltot, *lbits;        /* lossy band coder: LB_NREM x HLC_NSYM, LB_NREM, LB_NBITS */
} HlcFreshModels;
int hlc_decode_lossy_plane(const uint8_t *const *segs, const size_t *lens, int levels, int H, int W, int runs,
                           const HlcFreshModels *fresh, const float *steps, float recon, void *out, size_t ostride,
                           int otype, double lo, double hi, int keep);
/* A lossless wavelet plane likewise (fresh: the band coder's models only), clipped to
   [lo, hi] into out. */
int hlc_decode_lossless_plane(const uint8_t *const *segs, const size_t *lens, int levels, int H, int W,
                              const HlcFreshModels *fresh, void *out, size_t ostride, int otype, int32_t lo,
                              int32_t hi, int keep);
/* The encoder's mirror of it (planeencode.c): a lossless plane (H x W int32, read only)
   to its levels + 1 segments, as transform.dwt53_forward and entropy.encode_decomposition
   make them; segs[r] (lens[r] bytes, 0 for an empty level) from hlc_raw_alloc, the
   caller frees them with hlc_raw_free. Returns 0, HLC_PLANE_NO_MEMORY, or: */
#define HLC_PLANE_COEFFICIENT 3  /* a coefficient's magnitude is max_coef or more (nothing allocated) */
int hlc_encode_lossless_plane(const int32_t *x, int H, int W, int levels, const HlcFreshModels *fresh,
                              int64_t max_coef, uint8_t **segs, size_t *lens);

/* The band coder's starting models (one group), copied for a segment. */
static inline void hlc_fresh_band_models(const HlcFreshModels *fresh, int32_t *freq, int32_t *tot, int32_t *sfreq,
                                         int32_t *stot) {
    memcpy(freq, fresh->freq, sizeof(int32_t) * NCTX * HLC_NSYM);
    memcpy(tot, fresh->tot, sizeof(int32_t) * NCTX);
    memcpy(sfreq, fresh->sfreq, sizeof(int32_t) * NSIGN_CTX * 2);
    memcpy(stot, fresh->stot, sizeof(int32_t) * NSIGN_CTX);
}

/* The plane's dimensions after k levels, k = 0 .. levels (halves rounded up). */
static inline void hlc_level_dims(int H, int W, int levels, int *hs, int *ws) {
    hs[0] = H;
    ws[0] = W;
    for (int k = 1; k <= levels; k++) {
        hs[k] = (hs[k - 1] + 1) / 2;
        ws[k] = (ws[k - 1] + 1) / 2;
    }
}

/* The shapes of the HL, LH and HH bands of a ph x pw plane (transform.band_shapes), and
   their samples. */
static inline size_t hlc_band_dims(int ph, int pw, int *bh, int *bw) {
    int sv = (ph + 1) / 2, dv = ph / 2, sh = (pw + 1) / 2, dh = pw / 2;
    bh[0] = sv, bw[0] = dh;
    bh[1] = dv, bw[1] = sh;
    bh[2] = dv, bw[2] = dh;
    return (size_t)sv * dh + (size_t)dv * sh + (size_t)dv * dh;
}
/* Vector builds (isa.c). A kernel whose loops vectorise is written once, as an
   always_inline body NAME_body returning a value, and HLC_VECTOR_BUILDS makes NAME, which
   runs that body built for the baseline (SSE2) or for AVX2: AVX2 where the processor has
   it, unless hlc_isa_choose (the module's vector_isa, for the tests) said otherwise. The
   same C operations in both builds: -ffp-contract=off forbids fused multiply-adds and
   nothing allows reassociating float sums (no -ffast-math), so both give the same bits
   (tests/test_kernels.py and the kernels' tests run both). An AVX-512 build (F/VL/BW/DQ)
   was measured and dropped: on this AMD EPYC whole decodes took 40.7 ms against AVX2's
   38.7 ms and encodes 543 ms against 521 ms (benchmarks/results/lossy_speed.md, "Stop 28"). */
#define HLC_ISA_BASE 0
#define HLC_ISA_AVX2 1
extern int hlc_isa_in_use;      /* -1 until chosen (when the module loads) */
int hlc_isa_choose(int want);   /* want: a build (the widest up to it the processor has), -1: keep */
static inline int hlc_isa(void) { return hlc_isa_in_use >= 0 ? hlc_isa_in_use : hlc_isa_choose(-1); }
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HLC_VECTOR_BUILDS(ret, name, params, args)                                                            \
    __attribute__((flatten)) static ret name##_base params { return name##_body args; }                      \
    __attribute__((target("avx2"), flatten)) static ret name##_avx2 params { return name##_body args; }      \
    static ret name params { return hlc_isa() == HLC_ISA_AVX2 ? name##_avx2 args : name##_base args; }
#else
#define HLC_VECTOR_BUILDS(ret, name, params, args) static ret name params { return name##_body args; }
#endif
void hlc_fwd97(float *x, int H, int W, int levels, int from_int, float *scratch, unsigned char *seen);
int hlc_fwd97_chunk(int H);
/* The analyses' band layout (wavelet97.c): an h x w region's rows even ones first, then
   odd ones (a row of scratch, a flag a row); n rows of [a (na) | b (nb)] made [a rows | b
   rows], m rows at a time (scratch: m (na + nb)). Bits moved, any 4-byte samples. */
void hlc_unshuffle_rows(uint32_t *x, int h, int w, uint32_t *row, unsigned char *seen);
void hlc_pack_half(uint32_t *x, int n, int na, int nb, uint32_t *scratch, int m);
/* levels of 5/3 analysis of the H x W plane x in place, each level's region left packed as
   [LL | HL | LH | HH] as hlc_fwd97 leaves it: every band contiguous in decomposition order
   (transform53.c; scratch (hlc_fwd97_chunk(H) + 1) W int32, seen H bytes). */
void hlc_fwd53_packed(int32_t *x, int H, int W, int levels, int32_t *scratch, unsigned char *seen);

/* the region map's row runs (regionmap.c) */
#define HLC_MAP_CUT 1
#define HLC_MAP_FILL 2
#define HLC_MAP_RUNS 3
#define HLC_MAP_VALUE_CUT 4
#define HLC_MAP_VALUE_LARGE 5
int64_t hlc_pack_map(const uint8_t *cmap, int frames, int rows, int cols, int64_t *vals, int64_t cap,
                     int64_t *scratch);
int hlc_unpack_map(const uint8_t *raw, size_t len, uint8_t *cmap, int first, int frames, int rows, int cols,
                   int classes, int64_t *scratch, int last);
/* a decoded tile's inverse RCT or value table, clips and cast in one pass (colour.c) */
void hlc_colour_finish(const void *src, int src_i32, const ptrdiff_t *sstr, void *out, int otype,
                       const ptrdiff_t *ostr, int rows, int cols, int ch, int rct, int32_t lim,
                       const int32_t *table, int32_t ntable, int32_t vmin, int32_t vmax);
/* a plane's samples to their ranks in a value table (colour.c) */
void hlc_to_ranks(const void *src, int stype, ptrdiff_t s0, ptrdiff_t s1, int32_t *out, int rows, int cols,
                  const int32_t *lut, int32_t nlut, int64_t first);
void hlc_fill_sums(const void *x, int xtype, const ptrdiff_t *xs, const uint8_t *known, int rows, int cols,
                   double *v2, double *w2, double *scratch);
void hlc_fill_plane(const void *x, int xtype, const ptrdiff_t *xs, const uint8_t *known, int rows, int cols,
                    const double *est2, int n2, int m2, void *out, const ptrdiff_t *os, double *scratch);
void hlc_masked_histogram(const void *x, int xtype, const uint8_t *mask, int64_t n, int64_t lo, int64_t *counts,
                          int64_t nbins);
int hlc_set_flat(void *out, int otype, int ch, const uint8_t *classes, int64_t n, int64_t value, uint8_t flat,
                 const uint8_t *claimed);

#endif
