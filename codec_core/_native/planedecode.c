/* A plane decoded in one call: its segments to its samples.
 *
 * The decoder's common cases go from a plane's level segments (CRC-checked by the
 * caller) to its samples without returning to Python between the steps, the GIL
 * released throughout (two threads decoding two tiles overlap whole):
 *
 *   - a lossy plane (format v2 or later, coded with the lossy band coder, every
 *     resolution intact, no importance multipliers, the whole resolution): the LL band
 *     (band coder, bandcoder.c, then the MED reconstruction), each level's three detail
 *     bands (lossyband.c, each with its parent band one level up), and the 9/7
 *     synthesis a level at a time (wavelet97.c), rounded and clipped into the output;
 *   - a lossless wavelet plane (every resolution intact, no value table, the whole
 *     resolution): the LL band as above, each level's bands by the band coder (HL, then
 *     LH beside HL, then HH beside both, each with its parent), and the 5/3 synthesis a
 *     level at a time (transform53.c), clipped into the output (colour.c's finish).
 *
 * The steps and their order are those of entropy.decode_decomposition and of
 * pipeline.reconstruct_lossy_plane / transform.dwt53_inverse, which remain the decoder
 * of every other case: the same kernels on the same arrays, so the same samples; memory
 * as those paths hold it (every band while the levels decode, since a level's bands are
 * the next one's parents, then each level's bands freed once its synthesis has read
 * them). At 0.25 bpp the Python between the lossy kernels was 13-19% of a decode, and
 * 10% of a lossless one (benchmarks/results/lossy_speed.md, "Stop 28").
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* ------------------------------------------------------------- block cache
 *
 * A decoded image's memory (module.c's SampleBlock: the decoder's output array) comes
 * from hlc_take() and goes back through hlc_give() when the last array over it is gone;
 * the cache keeps up to CACHE_BLOCKS such blocks, CACHE_BYTES in all, for any thread's
 * next decode, so the next image of a size finds its pages mapped. A fresh page costs a
 * page fault the first time it is written (1.2-2.5 us here, in a virtual machine): at
 * 0.25 bpp, between encodes (whose heap trim gives every free page back), a pass over
 * the 21 benchmark images took 5,400-5,900 of them, a third for the outputs
 * (benchmarks/results/lossy_speed.md, "Stop 28"). A decode's peak is unchanged: a block
 * is kept only once its image is gone. The plane decoders' scratch (bands, float planes)
 * is kept too when the caller asks (decode(): the last level's blocks, the next tile or
 * image of the size takes them back), and otherwise freed as soon as it is done with:
 * kept under what a decode or an encode does next (the padding path's class map, the
 * encoder's passes after its trial decodes) it raised 693_UNCR's lossy decode peak from
 * 3.8x to 4.05-4.5x raw. Blocks come from hlc_raw_alloc (module.c: the Python raw allocator,
 * which tracemalloc sees); one lock, taken a few times a plane. */
#define CACHE_BLOCKS 32
#define CACHE_BYTES HLC_CACHE_BYTES
#define BLOCK_HEAD 64  /* (a block's size before it: the payload stays 64-byte aligned) */
#define MISS_CLEARS ((size_t)64 << 10)  /* a miss for a block this large empties the cache (64 kB: an edge tile's
                                          int16 finest level, 128 x 512, is 96 kB) */

void *(*hlc_raw_alloc)(size_t) = malloc;
void (*hlc_raw_free)(void *) = free;

static struct {
    pthread_mutex_t lock;
    void *p[CACHE_BLOCKS];
    size_t held;
} cache = {PTHREAD_MUTEX_INITIALIZER, {NULL}, 0};

static size_t block_size(void *p) { return *(size_t *)((char *)p - BLOCK_HEAD); }

/* A block freed now, not kept (scratch the caller does not keep, or done with before
   the last level: freed where the decoders freed it before the cache). */
static void drop(void *p) {
    if (p) hlc_raw_free((char *)p - BLOCK_HEAD);
}

/* Every kept block taken out of the cache into out (the lock held); returns how many,
   to be dropped once the lock is released. */
static int empty_cache(void **out) {
    int n = 0;
    for (int i = 0; i < CACHE_BLOCKS; i++)
        if (cache.p[i]) {
            out[n++] = cache.p[i];
            cache.p[i] = NULL;
        }
    cache.held = 0;
    return n;
}

/* A block of at least `bytes`: the smallest kept one that fits and is at most a quarter
   larger (a small image does not hold a large block), else a new one (and for a large
   block, every kept one freed first). */
void *hlc_take(size_t bytes) {
    void *p = NULL;
    pthread_mutex_lock(&cache.lock);
    int best = -1;
#ifndef HLC_NO_BLOCK_CACHE  /* (the sanitized build: every block its exact size, fresh) */
    for (int i = 0; i < CACHE_BLOCKS; i++)
        if (cache.p[i] && block_size(cache.p[i]) >= bytes && block_size(cache.p[i]) - bytes <= bytes / 4
            && (best < 0 || block_size(cache.p[i]) < block_size(cache.p[best])))
            best = i;
#endif
    void *dropped[CACHE_BLOCKS];
    int ndrop = 0;
    if (best >= 0) {
        p = cache.p[best];
        cache.p[best] = NULL;
        cache.held -= block_size(p);
    } else if (bytes >= MISS_CLEARS) {
        /* a large block of a size the cache does not hold: what it holds is of other sizes
           (another image's, or a larger tile's before an edge tile), and kept it would only
           add to this decode's peak (JPGLosslessP14SV1's lossy decode: 2.4x raw became 3.7x) */
        ndrop = empty_cache(dropped);
    }
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < ndrop; i++) drop(dropped[i]);
    if (p) return p;
    char *raw = bytes <= (size_t)-1 - BLOCK_HEAD ? hlc_raw_alloc(BLOCK_HEAD + bytes) : NULL;
    if (!raw) return NULL;
    *(size_t *)raw = bytes;
    return raw + BLOCK_HEAD;
}

/* Every kept block freed (for the tests, and for a caller that wants the memory back). */
void hlc_release_cache(void) {
    void *dropped[CACHE_BLOCKS];
    pthread_mutex_lock(&cache.lock);
    int n = empty_cache(dropped);
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < n; i++) drop(dropped[i]);
}

/* The bytes the cache holds (for the tests: at most CACHE_BYTES). */
size_t hlc_cached_bytes(void) {
    pthread_mutex_lock(&cache.lock);
    size_t n = cache.held;
    pthread_mutex_unlock(&cache.lock);
    return n;
}

/* A block back: kept while the cache has room (the smallest kept blocks make way for a
   larger one), else freed. */
void hlc_give(void *p) {
    if (!p) return;
#ifdef HLC_NO_BLOCK_CACHE
    drop(p);
    return;
#endif
    size_t n = block_size(p);
    void *dropped[CACHE_BLOCKS];
    int ndrop = 0, kept = 0;
    pthread_mutex_lock(&cache.lock);
    while (n <= CACHE_BYTES && cache.held + n > CACHE_BYTES) {  /* make room: drop the smallest */
        int k = -1;
        for (int i = 0; i < CACHE_BLOCKS; i++)
            if (cache.p[i] && (k < 0 || block_size(cache.p[i]) < block_size(cache.p[k]))) k = i;
        if (k < 0) break;
        cache.held -= block_size(cache.p[k]);
        dropped[ndrop++] = cache.p[k];
        cache.p[k] = NULL;
    }
    for (int i = 0; n <= CACHE_BYTES && cache.held + n <= CACHE_BYTES && i < CACHE_BLOCKS; i++)
        if (!cache.p[i]) {
            cache.p[i] = p;
            cache.held += n;
            kept = 1;
            break;
        }
    pthread_mutex_unlock(&cache.lock);
    for (int i = 0; i < ndrop; i++) drop(dropped[i]);
    if (!kept) drop(p);
}

static const int32_t none[1] = {0};  /* a reference band with no sample */

/* int32s of one segment's models: the band coder's (one group: freq, tot, sign freq, sign
   tot) and the lossy band coder's (freq, tot, binary models) */
#define BAND_MODELS ((size_t)NCTX * HLC_NSYM + NCTX + NSIGN_CTX * 2 + NSIGN_CTX)
#define LOSSY_MODELS ((size_t)LB_NREM * HLC_NSYM + LB_NREM + LB_NBITS)

/* A segment's leading varint (LEB128 below 2^35, as container.read_varint reads it):
   the length of its arithmetic part. Returns the position after it, -1 if cut or too
   long. */
static long read_length(const uint8_t *s, size_t n, uint64_t *value) {
    uint64_t v = 0;
    for (int shift = 0, pos = 0; shift <= 28; shift += 7, pos++) {
        if ((size_t)pos >= n) return -1;
        v |= (uint64_t)(s[pos] & 0x7F) << shift;
        if (!(s[pos] & 0x80)) {
            *value = v;
            return pos + 1;
        }
    }
    return -1;
}

/* The decoder of one segment (as entropy._Decoder starts it): the arithmetic part, then
   the raw bits. Returns HLC_PLANE_BAD_LENGTH / HLC_PLANE_SHORT for a damaged length. */
static int start_segment(const uint8_t *s, size_t n, Decoder *d) {
    uint64_t n_arith;
    long pos = read_length(s, n, &n_arith);
    if (pos < 0) return HLC_PLANE_BAD_LENGTH;
    if ((uint64_t)pos + n_arith > n) return HLC_PLANE_SHORT;
    dec_begin(d, s + pos, (size_t)n_arith, s + pos + n_arith, n - (size_t)pos - (size_t)n_arith);
    return 0;
}

/* The LL band (h x w) of segment seg into ll: its MED residual (into residual) by the band
   coder with fresh models of one group (into m), then the MED reconstruction. Returns
   0, a segment error or HLC_PLANE_NO_MEMORY. */
static int decode_ll(const uint8_t *seg, size_t len, int h, int w, const HlcFreshModels *fresh, int32_t *m,
                     int32_t *ll, int32_t *residual) {
    Decoder d;
    int rc = start_segment(seg, len, &d);
    if (rc) return rc;
    int32_t *freq = m, *tot = freq + NCTX * HLC_NSYM, *sfreq = tot + NCTX, *stot = sfreq + NSIGN_CTX * 2;
    hlc_fresh_band_models(fresh, freq, tot, sfreq, stot);
    if (hlc_code_band(1, residual, h, w, none, 0, 0, none, 0, 0, none, 0, 0, NULL, &d, freq, tot, 0, sfreq, stot))
        return HLC_PLANE_NO_MEMORY;
    hlc_med_reconstruct(residual, ll, h, w);
    return 0;
}

/* Every detail level's bands, coarsest level first (r = 1 .. levels), each level's three
   in one block (block[r]; bands[r], their shapes bh[r], bw[r]); an empty segment (v2) a
   level of zeros. lossy: the lossy band coder's bands, each with its parent one level up
   (runs: the quiet-run variant); else the band coder's: HL, LH beside HL, HH beside both,
   each with its parent. Fresh models per segment (m: room for either set). fine16
   (lossy only; else NULL): the finest level's three bands are stored as int16 there
   (block[levels] their block, bands[levels] unset) when every coefficient fits, which
   is all a lossy stream at a useful rate carries: 1.5 bytes a sample less in the
   plane's largest scratch (the finest level is 3/4 of the coefficients); else the level
   is decoded again into int32 (fine16[0] NULL), the same values. Returns 0, a segment
   error or HLC_PLANE_NO_MEMORY. */
static int decode_levels(const uint8_t *const *segs, const size_t *lens, int levels, const int *hs, const int *ws,
                         const HlcFreshModels *fresh, int32_t *m, int lossy, int runs, int32_t **block,
                         int32_t *(*bands)[3], int (*bh)[3], int (*bw)[3], int16_t **fine16) {
    Decoder d;
    for (int r = 1; r <= levels; r++) {
        size_t n = hlc_band_dims(hs[levels - r], ws[levels - r], bh[r], bw[r]);  /* (the plane the level makes) */
        int narrow = fine16 && r == levels;
    again:
        if (narrow) {
            int16_t *b16 = hlc_take(sizeof(int16_t) * (n + 1));
            if (!(block[r] = (int32_t *)(void *)b16)) return HLC_PLANE_NO_MEMORY;
            fine16[0] = b16;
            fine16[1] = fine16[0] + (size_t)bh[r][0] * bw[r][0];
            fine16[2] = fine16[1] + (size_t)bh[r][1] * bw[r][1];
        } else {
            if (!(block[r] = hlc_take(sizeof(int32_t) * (n + 1)))) return HLC_PLANE_NO_MEMORY;
            bands[r][0] = block[r];
            bands[r][1] = bands[r][0] + (size_t)bh[r][0] * bw[r][0];
            bands[r][2] = bands[r][1] + (size_t)bh[r][1] * bw[r][1];
        }
        if (lens[r] == 0) {
            memset(block[r], 0, (narrow ? sizeof(int16_t) : sizeof(int32_t)) * n);
            continue;
        }
        int rc = start_segment(segs[r], lens[r], &d);
        if (rc) return rc;
        int32_t *freq = m, *tot, *bits = NULL, *sfreq = NULL, *stot = NULL;
        if (lossy) {
            tot = freq + LB_NREM * HLC_NSYM, bits = tot + LB_NREM;
            memcpy(freq, fresh->lfreq, sizeof(int32_t) * LB_NREM * HLC_NSYM);
            memcpy(tot, fresh->ltot, sizeof(int32_t) * LB_NREM);
            memcpy(bits, fresh->lbits, sizeof(int32_t) * LB_NBITS);
        } else {
            tot = freq + NCTX * HLC_NSYM, sfreq = tot + NCTX, stot = sfreq + NSIGN_CTX * 2;
            hlc_fresh_band_models(fresh, freq, tot, sfreq, stot);
        }
        for (int o = 0; o < 3; o++) {
            int ph = r > 1 ? bh[r - 1][o] : 0, pw = r > 1 ? bw[r - 1][o] : 0;
            if (!ph || !pw) ph = pw = 0;  /* (a reference band with no sample is none) */
            const int32_t *parent = r > 1 ? bands[r - 1][o] : none;
            if (lossy) {
                rc = hlc_lossy_band(1, runs, narrow ? NULL : bands[r][o], narrow ? fine16[o] : NULL, bh[r][o],
                                    bw[r][o], o, parent, ph, pw, NULL, &d, freq, tot, bits);
                if (rc == HLC_LOSSY_WIDE && narrow) {  /* a coefficient past int16: the level again, int32 */
                    drop(block[r]);
                    block[r] = NULL;
                    fine16[0] = fine16[1] = fine16[2] = NULL;
                    narrow = 0;
                    goto again;
                }
            } else {
                int h1 = o ? bh[r][0] : 0, w1 = o ? bw[r][0] : 0, h2 = o == 2 ? bh[r][1] : 0, w2 = o == 2 ? bw[r][1] : 0;
                if (!h1 || !w1) h1 = w1 = 0;
                if (!h2 || !w2) h2 = w2 = 0;
                rc = hlc_code_band(1, bands[r][o], bh[r][o], bw[r][o], parent, ph, pw, o ? bands[r][0] : none, h1, w1,
                                   o == 2 ? bands[r][1] : none, h2, w2, NULL, &d, freq, tot, 0, sfreq, stot);
            }
            if (rc) return HLC_PLANE_NO_MEMORY;
        }
    }
    return 0;
}

int hlc_decode_lossy_plane(const uint8_t *const *segs, const size_t *lens, int levels, int H, int W, int runs,
                           const HlcFreshModels *fresh, const float *steps, float recon, void *out, size_t ostride,
                           int otype, double lo, double hi, int keep) {
    void (*done_with)(void *) = keep ? hlc_give : drop;  /* the last level's scratch: kept, or freed */
    int hs[HLC_MAX_LEVELS + 1], ws[HLC_MAX_LEVELS + 1];
    hlc_level_dims(H, W, levels, hs, ws);
    /* blocks: [0] the LL band and its residual, [r] level r's three bands; one segment's
       models; the synthesis's work row */
    int32_t *block[HLC_MAX_LEVELS + 1] = {NULL};
    int32_t *bands[HLC_MAX_LEVELS + 1][3];
    int bh[HLC_MAX_LEVELS + 1][3], bw[HLC_MAX_LEVELS + 1][3];
    size_t n_ll = (size_t)hs[levels] * ws[levels];
    int32_t *m = hlc_take(sizeof(int32_t) * (BAND_MODELS > LOSSY_MODELS ? BAND_MODELS : LOSSY_MODELS));
    float *work = hlc_take(sizeof(float) * HLC_SYNTH97_WORK(W)), *src_f = NULL, *dst_f = NULL;
    int rc = 0;
    block[0] = hlc_take(sizeof(int32_t) * (2 * n_ll + 1));
    if (!m || !work || !block[0]) goto no_memory;

    /* the LL band */
    int32_t *ll = block[0];
    if ((rc = decode_ll(segs[0], lens[0], hs[levels], ws[levels], fresh, m, ll, ll + n_ll))) goto done;

    /* the detail bands, coarsest level first, each band after its parent */
    int16_t *fine16[3] = {NULL, NULL, NULL};  /* the finest level's bands, when int16 */
    if ((rc = decode_levels(segs, lens, levels, hs, ws, fresh, m, 1, runs, block, bands, bh, bw, fine16))) goto done;

    /* the synthesis, a level at a time: LL (int32, dequantised with steps[0]) and the
       level's bands into the next level's float LL plane, the last into out */
    for (int k = 0; k < levels; k++) {
        int j = levels - 1 - k;  /* the level makes the plane after j levels */
        if (j > 0 && !(dst_f = hlc_take(sizeof(float) * (size_t)hs[j] * ws[j]))) goto no_memory;
        void *dst = j > 0 ? (void *)dst_f : out;
        int d16 = k == levels - 1 && fine16[0];  /* (the finest level) */
        hlc_synth97_level(k ? (void *)src_f : (void *)ll, !k, steps[0], d16 ? (void *)fine16[0] : bands[k + 1][0],
                          d16 ? (void *)fine16[1] : bands[k + 1][1], d16 ? (void *)fine16[2] : bands[k + 1][2], d16,
                          steps + 1 + 3 * k, recon, hs[j], ws[j], dst, j > 0 ? (size_t)ws[j] : ostride,
                          j > 0 ? -1 : otype, lo, hi, work);
        void (*freed)(void *) = k == levels - 1 ? done_with : drop;  /* (before the last level: freed now) */
        freed(block[k + 1]);
        block[k + 1] = NULL;
        if (!k) {
            freed(block[0]);
            block[0] = NULL;
        }
        freed(src_f);
        src_f = dst_f;
        dst_f = NULL;
    }
    goto done;
no_memory:
    rc = HLC_PLANE_NO_MEMORY;
done:
    for (int r = 0; r <= levels; r++) done_with(block[r]);
    done_with(src_f);
    done_with(dst_f);
    done_with(work);
    done_with(m);
    return rc;
}

/* Level j's plane (h x w) from its LL and detail bands (transform53.c's rows). */
static void interleave(int32_t *x, int h, int w, const int32_t *ll, const int32_t *hl, const int32_t *lh,
                       const int32_t *hh) {
    for (int i = 0; i < h; i++) hlc_interleave_row(x + (size_t)i * w, i, w, ll, hl, lh, hh);
}

int hlc_decode_lossless_plane(const uint8_t *const *segs, const size_t *lens, int levels, int H, int W,
                              const HlcFreshModels *fresh, void *out, size_t ostride, int otype, int32_t lo,
                              int32_t hi, int keep) {
    void (*done_with)(void *) = keep ? hlc_give : drop;  /* (as in the lossy decoder) */
    int hs[HLC_MAX_LEVELS + 1], ws[HLC_MAX_LEVELS + 1];
    hlc_level_dims(H, W, levels, hs, ws);
    int32_t *block[HLC_MAX_LEVELS + 1] = {NULL}, *bands[HLC_MAX_LEVELS + 1][3], *plane = NULL;
    int bh[HLC_MAX_LEVELS + 1][3], bw[HLC_MAX_LEVELS + 1][3];
    size_t n_ll = (size_t)hs[levels] * ws[levels];
    int32_t *m = hlc_take(sizeof(int32_t) * BAND_MODELS);
    int rc = 0;
    block[0] = hlc_take(sizeof(int32_t) * (2 * n_ll + 1));
    if (!m || !block[0]) goto no_memory;
    if ((rc = decode_ll(segs[0], lens[0], hs[levels], ws[levels], fresh, m, block[0], block[0] + n_ll))) goto done;

    /* the detail bands, coarsest level first: HL, LH beside HL, HH beside both */
    if ((rc = decode_levels(segs, lens, levels, hs, ws, fresh, m, 0, 0, block, bands, bh, bw, NULL))) goto done;

    /* the 5/3 synthesis a level at a time, each level's bands freed once read; the last
       level straight into out, a row at a time (hlc_inv53_rows: no plane of the tile),
       each row clipped there (colour.c's finish of one channel, no colour transform) */
    int32_t *cur = block[0];
    for (int k = 0; k < levels - 1; k++) {
        int j = levels - 1 - k;
        int32_t *x = hlc_take(sizeof(int32_t) * ((size_t)hs[j] * ws[j] + 1));
        if (!x) goto no_memory;
        interleave(x, hs[j], ws[j], cur, bands[k + 1][0], bands[k + 1][1], bands[k + 1][2]);
        drop(block[k + 1]);
        block[k + 1] = NULL;
        if (k) drop(cur);
        else {
            drop(block[0]);
            block[0] = NULL;
        }
        hlc_inv53(x, hs[j], ws[j]);
        cur = plane = x;
    }
    int32_t *work = hlc_take(sizeof(int32_t) * (4 * (size_t)W + 1));
    if (!work) goto no_memory;
    HlcRowSink sink = {out, ostride, otype, NULL, 0, lo, hi};
    hlc_inv53_rows(cur, bands[levels][0], bands[levels][1], bands[levels][2], H, W, work, &sink);
    drop(work);
    goto done;
no_memory:
    rc = HLC_PLANE_NO_MEMORY;
done:
    for (int r = 0; r <= levels; r++) done_with(block[r]);
    done_with(plane);
    done_with(m);
    return rc;
}
