/* A lossless wavelet plane encoded in one call: its samples to its level segments.
 *
 * The encoder's mirror of planedecode.c's hlc_decode_lossless_plane, for the planes the
 * encoder holds whole and small: the coder choice's sample blocks (encoder.choose_coders,
 * 19-24% of a predictive-coded image's lossless encode, about 60% of it the Python
 * between the kernels) and the small planes coded both ways (encoder._both_ways). The
 * planes the choice gives the wavelet are coded band by band by encode_decomposition from
 * transform.forward's bands (whose rows come from the stored samples as it asks).
 *
 * The steps and their order are those of transform.dwt53_forward (the 5/3 levels in place,
 * the bands left packed in the plane: transform53.c's hlc_fwd53_packed) and of
 * entropy.encode_decomposition: the LL band's MED residual by the band coder, then each
 * level, coarsest first, HL, LH beside HL and HH beside both, each with its parent one
 * level up; fresh models and a fresh coder a segment; a level of zeros an empty segment
 * (format v2). The same kernels on the same arrays, so the same bytes
 * (tests/test_plane_encode.py).
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static int64_t max_abs(const int32_t *x, size_t n) {
    int64_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v = x[i] < 0 ? -(int64_t)x[i] : x[i];
        m = v > m ? v : m;
    }
    return m;
}

/* Raw bits a value up to v can send (entropy.raw_bits_for): a hybrid integer of bit
   length n sends n - 2 low bits raw. */
static int raw_bits_for(int64_t v) {
    int n = bit_length((uint64_t)v) - 2;
    return n > 0 ? n : 0;
}

/* A segment's coder: the range coder's and the raw bits' buffers, sized for real data
   (entropy._Encoder's first try) and grown if a segment overflowed them (the coder
   counts bytes past the end: the segment is coded again; the bytes do not depend on the
   buffers' sizes). m: one group's models. */
typedef struct {
    uint8_t *out, *raw;
    size_t out_cap, raw_cap;
    int32_t *m;
} SegCoder;

static int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    hlc_raw_free(*buf);
    *cap = need;
    *buf = hlc_raw_alloc(need);
    return *buf ? 0 : -1;
}

/* A level's three bands (HL, LH, HH, or the LL residual alone) and their shapes. */
typedef struct {
    int32_t *p[3];
    int h[3], w[3];
} Level;

/* Band o of a level beside its level's earlier bands (LH beside HL, HH beside both) and
   its parent one level up (none on the coarsest level); a reference with no sample is
   none (module.c's ref_dims). */
static int code_band_of(const Level *lv, const Level *up, int o, Encoder *e, int32_t *freq, int32_t *tot,
                        int32_t *sfreq, int32_t *stot) {
    static const int32_t none[1] = {0};
    int ph = up ? up->h[o] : 0, pw = up ? up->w[o] : 0;
    if (!ph || !pw) ph = pw = 0;
    int h1 = o ? lv->h[0] : 0, w1 = o ? lv->w[0] : 0, h2 = o == 2 ? lv->h[1] : 0, w2 = o == 2 ? lv->w[1] : 0;
    if (!h1 || !w1) h1 = w1 = 0;
    if (!h2 || !w2) h2 = w2 = 0;
    return hlc_code_band(0, lv->p[o], lv->h[o], lv->w[o], up ? up->p[o] : none, ph, pw, o ? lv->p[0] : none, h1, w1,
                         o == 2 ? lv->p[1] : none, h2, w2, e, NULL, freq, tot, 0, sfreq, stot);
}

/* One segment: `nb` bands (the LL residual alone, or a level's three) with fresh models,
   into *seg: varint(arithmetic bytes), those bytes, the raw bytes (entropy._Encoder). */
static int code_segment(SegCoder *c, const Level *lv, const Level *up, int nb, size_t n, int raw_bits,
                        const HlcFreshModels *fresh, uint8_t **seg, size_t *len) {
    if (grow(&c->out, &c->out_cap, n + 1024) || grow(&c->raw, &c->raw_cap, n * (size_t)raw_bits / 8 + 1024))
        return HLC_PLANE_NO_MEMORY;
    for (;;) {
        int32_t *freq = c->m, *tot = freq + NCTX * HLC_NSYM, *sfreq = tot + NCTX, *stot = sfreq + NSIGN_CTX * 2;
        hlc_fresh_band_models(fresh, freq, tot, sfreq, stot);
        Encoder e = enc_begin(c->out, c->out_cap, c->raw, c->raw_cap);
        for (int o = 0; o < nb; o++)
            if (code_band_of(lv, up, o, &e, freq, tot, sfreq, stot)) return HLC_PLANE_NO_MEMORY;
        enc_finish(&e);
        if (e.pos <= c->out_cap && e.rawpos <= c->raw_cap) {
            uint8_t head[10];
            int nh = 0;
            for (uint64_t v = e.pos; ; v >>= 7) {  /* unsigned LEB128 (container.varint) */
                head[nh++] = (uint8_t)((v & 0x7F) | (v >> 7 ? 0x80 : 0));
                if (!(v >> 7)) break;
            }
            *len = (size_t)nh + e.pos + e.rawpos;
            if (!(*seg = hlc_raw_alloc(*len ? *len : 1))) return HLC_PLANE_NO_MEMORY;
            memcpy(*seg, head, (size_t)nh);
            memcpy(*seg + nh, c->out, e.pos);
            memcpy(*seg + nh + e.pos, c->raw, e.rawpos);
            return 0;
        }
        if (grow(&c->out, &c->out_cap, 2 * (e.pos > c->out_cap ? e.pos : c->out_cap))
            || grow(&c->raw, &c->raw_cap, 2 * (e.rawpos > c->raw_cap ? e.rawpos : c->raw_cap)))
            return HLC_PLANE_NO_MEMORY;
    }
}

int hlc_encode_lossless_plane(const int32_t *src, int H, int W, int levels, const HlcFreshModels *fresh,
                              int64_t max_coef, uint8_t **segs, size_t *lens) {
    int hs[HLC_MAX_LEVELS + 1], ws[HLC_MAX_LEVELS + 1];
    hlc_level_dims(H, W, levels, hs, ws);
    Level lv[HLC_MAX_LEVELS + 1];  /* [r]: level r's bands, r = 1 the coarsest (the segments' order) */
    SegCoder c = {NULL, NULL, 0, 0, NULL};
    for (int r = 0; r <= levels; r++) segs[r] = NULL, lens[r] = 0;
    size_t n = (size_t)H * W, n_ll = (size_t)hs[levels] * ws[levels];
    int rc = 0;
    int32_t *x = hlc_raw_alloc(sizeof(int32_t) * (n ? n : 1)), *res = NULL;
    int32_t *scratch = hlc_raw_alloc(sizeof(int32_t) * ((size_t)(hlc_fwd97_chunk(H) + 1) * W + 1));
    unsigned char *seen = hlc_raw_alloc((size_t)H + 1);
    c.m = hlc_raw_alloc(sizeof(int32_t) * (NCTX * HLC_NSYM + NCTX + NSIGN_CTX * 3));
    if (!x || !scratch || !seen || !c.m) goto no_memory;
    memcpy(x, src, sizeof(int32_t) * n);
    /* the analysis leaves the bands packed in x: LL, then HL, LH, HH coarsest first */
    hlc_fwd53_packed(x, H, W, levels, scratch, seen);
    int32_t *at = x + n_ll;
    for (int r = 1; r <= levels; r++) {
        hlc_band_dims(hs[levels - r], ws[levels - r], lv[r].h, lv[r].w);
        for (int o = 0; o < 3; o++) {
            lv[r].p[o] = at;
            at += (size_t)lv[r].h[o] * lv[r].w[o];
        }
    }

    /* the coefficients' limit first (entropy._check_coefficients): nothing coded past it */
    int64_t mag[HLC_MAX_LEVELS + 1];
    mag[0] = max_abs(x, n_ll);
    for (int r = 1; r <= levels; r++)
        mag[r] = max_abs(lv[r].p[0], (size_t)(lv[r].p[2] - lv[r].p[0]) + (size_t)lv[r].h[2] * lv[r].w[2]);
    for (int r = 0; r <= levels; r++)
        if (mag[r] >= max_coef) {
            rc = HLC_PLANE_COEFFICIENT;
            goto done;
        }

    {  /* segment 0: the LL band's MED residual */
        if (!(res = hlc_raw_alloc(sizeof(int32_t) * (n_ll ? n_ll : 1)))) goto no_memory;
        hlc_med_residual(x, res, hs[levels], ws[levels]);
        Level ll = {{res, NULL, NULL}, {hs[levels], 0, 0}, {ws[levels], 0, 0}};
        int64_t top = max_abs(res, n_ll), wide = (int64_t)ws[levels] + 1;
        if ((rc = code_segment(&c, &ll, NULL, 1, n_ll, raw_bits_for(top > wide ? top : wide), fresh, &segs[0],
                               &lens[0])))
            goto done;
    }
    for (int r = 1; r <= levels; r++) {
        if (mag[r] == 0) continue;  /* a level of zeros: an empty segment */
        size_t nb = (size_t)lv[r].h[0] * lv[r].w[0] + (size_t)lv[r].h[1] * lv[r].w[1] + (size_t)lv[r].h[2] * lv[r].w[2];
        int64_t wide = (int64_t)lv[r].w[1] + 1;  /* the largest run length: LH's width + 1 */
        if ((rc = code_segment(&c, &lv[r], r > 1 ? &lv[r - 1] : NULL, 3, nb,
                               raw_bits_for(mag[r] > wide ? mag[r] : wide), fresh, &segs[r], &lens[r])))
            goto done;
    }
    goto done;
no_memory:
    rc = HLC_PLANE_NO_MEMORY;
done:
    if (rc)
        for (int r = 0; r <= levels; r++) {
            hlc_raw_free(segs[r]);
            segs[r] = NULL;
        }
    hlc_raw_free(x);
    hlc_raw_free(res);
    hlc_raw_free(scratch);
    hlc_raw_free(seen);
    hlc_raw_free(c.m);
    hlc_raw_free(c.out);
    hlc_raw_free(c.raw);
    return rc;
}
