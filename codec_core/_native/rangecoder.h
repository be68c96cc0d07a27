/* Adaptive multi-symbol range coder and hybrid-integer tokens (stream format v1/v2).
 *
 * The range coder is LZMA's (32-bit range, carry propagated through a cached byte).
 * A model is a row of symbol frequencies and their total; each coded symbol adds INC
 * to its frequency and the row is halved when the total passes LIMIT.
 *
 * Magnitudes are coded as hybrid integers (in the style of JPEG XL): 0..7 are their
 * own token; a larger value codes its exponent and the bit below its leading one as
 * the token, and its remaining low bits go raw to a separate bit stream.
 *
 * Safety: the encoder never writes past its buffers (it keeps counting, so the caller
 * sees an overflow and retries with larger ones); the decoder reads zeros past the end
 * of its input and counts the overrun, so any byte string decodes in bounded time.
 */
#ifndef HLC_RANGECODER_H
#define HLC_RANGECODER_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define HLC_DIRECT 8                       /* tokens 0..7 are the values themselves */
#define HLC_NSYM (HLC_DIRECT + 2 * 25)     /* + two tokens per exponent 3..27 */
#define HLC_INC 32
#define HLC_LIMIT (1 << 15)
_Static_assert(HLC_LIMIT < (1 << 19), "hlc_rcp_update needs totals below 2^19");
#define HLC_TOP (1u << 24)
#define HLC_SCAN 8                         /* enc_symbol: frequencies summed without a branch */

typedef struct {
    uint64_t low, cache_size, pos, acc, rawpos;
    uint32_t range, cache;
    int nbits;
    uint8_t *out; size_t out_cap;
    uint8_t *raw; size_t raw_cap;
} Encoder;

typedef struct {
    uint64_t code, pos, acc, rawpos, overrun;
    uint32_t range;
    int nbits;
    const uint8_t *in; size_t in_len;
    const uint8_t *raw; size_t raw_len;
} Decoder;

/* range / total without a division on the decoder's chain from one symbol to the next
   (a 32-bit division was its longest step: 12 of the division's cycles against 4 of a
   multiply). A model may keep a reciprocal rcp of its total, and floor(n / total) is
   (rcp * n) >> 64 for every 32-bit n when 2^64 / total <= rcp < 2^64 / total + 2^32 /
   total (then the product's excess over n / total is below 1 / total). ceil(2^64 / total)
   is one such rcp (Lemire, Kaser & Kurz, "Faster remainder by direct computation", 2019).
   Totals are at least 2: every frequency is at least 1 and every model has 2 or more
   symbols. Without a 128-bit product rcp is the total. */
#ifdef __SIZEOF_INT128__
static inline uint64_t hlc_rcp(uint32_t total) { return UINT64_MAX / total + 1; }
/* The reciprocal of a total made by an update (at most HLC_LIMIT), from a double division:
   a 64-bit integer division there cost 3% of a decode (its throughput), a double one has a
   quarter of its cost. 0x1p63 / total is within 2^9 of 2^63 / total (53 bits), so twice its
   integer part is within 2^10 + 2 of 2^64 / total, and with 2^12 added rcp exceeds 2^64 /
   total by 2^13 at most: below the 2^32 / total allowed while total < 2^19. */
static inline uint64_t hlc_rcp_update(uint32_t total) {
    return 2 * (uint64_t)(0x1p63 / (double)total) + 4096;
}
static inline uint32_t hlc_div(uint32_t n, uint64_t rcp) {
    return (uint32_t)(((unsigned __int128)rcp * n) >> 64);
}
#else
static inline uint64_t hlc_rcp(uint32_t total) { return total; }
static inline uint64_t hlc_rcp_update(uint32_t total) { return total; }
static inline uint32_t hlc_div(uint32_t n, uint64_t rcp) { return n / (uint32_t)rcp; }
#endif

/* The reciprocals of n models' totals. */
static inline void rcp_fill(uint64_t *rcp, const int32_t *tot, int n) {
    for (int c = 0; c < n; c++) rcp[c] = hlc_rcp((uint32_t)tot[c]);
}

/* One adaptive model: `nsym` frequencies, their total and, unless rcp is NULL, its
   reciprocal. Who keeps reciprocals (measured per coder, one fresh process per variant):
   the band coder's decoder (lossless wavelet decode 4-6% faster on the large images).
   Not its encoder (the same speed: its chain is not its bound), nor the predictive coder
   (2-3% slower: one more store per symbol cost more than the division saved), nor the
   lossy band coder (its remainders are rare: 0.5% slower). */
typedef struct { int32_t *freq; int32_t *tot; uint64_t *rcp; int nsym; } Model;

/* Context ctx's model; freq, tot and rcp (or NULL) indexed from the same first context. */
static inline Model model_at(int32_t *freq, int32_t *tot, uint64_t *rcp, int nsym, int ctx) {
    Model m = {freq + (size_t)ctx * nsym, tot + ctx, rcp ? rcp + ctx : NULL, nsym};
    return m;
}

/* range / the model's total */
static inline uint32_t model_share(Model m, uint32_t range) {
    return m.rcp ? hlc_div(range, *m.rcp) : range / (uint32_t)*m.tot;
}

static inline int bit_length(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

static inline void model_update(Model m, int s) {
    m.freq[s] += HLC_INC;
    int32_t total = *m.tot + HLC_INC;
    if (total > HLC_LIMIT) {
        total = 0;
        for (int k = 0; k < m.nsym; k++) {
            int32_t f = (m.freq[k] + 1) >> 1;
            m.freq[k] = f;
            total += f;
        }
    }
    *m.tot = total;
    if (m.rcp) *m.rcp = hlc_rcp_update((uint32_t)total);
}

/* ------------------------------------------------------------------ encoder */

static inline void enc_shift_low(Encoder *e) {
    if (e->low < 0xFF000000ull || e->low >= 0x100000000ull) {
        uint32_t carry = (uint32_t)(e->low >> 32);
        uint32_t byte = e->cache;
        do {
            if (e->pos < e->out_cap) e->out[e->pos] = (uint8_t)(byte + carry);
            e->pos++;  /* counted past the end too: the caller sees the overflow */
            byte = 0xFF;
        } while (--e->cache_size != 0);
        e->cache = (uint32_t)((e->low >> 24) & 0xFF);
    }
    e->cache_size++;
    e->low = (e->low & 0x00FFFFFFull) << 8;
}

static inline void enc_normalise(Encoder *e) {
    while (e->range < HLC_TOP) {
        e->range <<= 8;
        enc_shift_low(e);
    }
}

static inline void enc_symbol(Encoder *e, Model m, int s) {
    /* the frequencies below s: the first HLC_SCAN without a branch on s, as two 4-wide
       vectors, a compare, a mask and an add each; any further ones in a loop. gcc had
       made `k < s ? f : 0` branches, mispredicted on a third of the lossless predictive
       encoder's samples; the scalar masked form is not vectorised (40 instructions).
       Lossless encode 1.095x (RG3_UNCR 1.21x, 693_UNCR 1.22x; RG1_UNCR 0.90x, which no
       form of this sum tried changed: benchmarks/results/speed_experiments.md). */
    uint32_t cum = 0;
    if (m.nsym == 2) {
        cum = s ? (uint32_t)m.freq[0] : 0;
    } else {
#if defined(__GNUC__)
        typedef int32_t v4 __attribute__((vector_size(16)));
        v4 lo, hi, sv = {s, s, s, s}, i0 = {0, 1, 2, 3}, i1 = {4, 5, 6, 7};
        memcpy(&lo, m.freq, sizeof lo);
        memcpy(&hi, m.freq + 4, sizeof hi);
        v4 t = (lo & (i0 < sv)) + (hi & (i1 < sv));
        cum = (uint32_t)(t[0] + t[1] + t[2] + t[3]);
#else
        for (int k = 0; k < HLC_SCAN; k++) cum += k < s ? (uint32_t)m.freq[k] : 0;
#endif
        for (int k = HLC_SCAN; k < s; k++) cum += (uint32_t)m.freq[k];
    }
    uint32_t r = model_share(m, e->range);
    e->low += (uint64_t)r * cum;
    e->range = r * (uint32_t)m.freq[s];
    enc_normalise(e);
    model_update(m, s);
}

static inline void enc_raw_bits(Encoder *e, uint64_t value, int n) {  /* n <= 32, LSB first */
    e->acc |= value << e->nbits;
    e->nbits += n;
    while (e->nbits >= 8) {
        if (e->rawpos < e->raw_cap) e->raw[e->rawpos] = (uint8_t)e->acc;
        e->rawpos++;
        e->acc >>= 8;
        e->nbits -= 8;
    }
}

/* Without a branch on v < HLC_DIRECT (it was mispredicted on a sixth of the lossless
   predictive encoder's samples): a direct token sends no raw bits, so both cases take
   one path. Lossless encode 1.009x: RG1_UNCR 1.128x, MR2_UNCR 1.045x, the
   predictive-coded images 0.98-1.00x. */
static inline void enc_uint(Encoder *e, Model m, uint64_t v) {
    int big = v >= HLC_DIRECT;
    int ex = big ? bit_length(v) - 1 : 3;  /* >= 3 */
    int below = (int)((v >> (ex - 1)) & 1);
    int nraw = big ? ex - 1 : 0;
    enc_symbol(e, m, big ? HLC_DIRECT + 2 * (ex - 3) + below : (int)v);
    enc_raw_bits(e, v & ((1ull << nraw) - 1), nraw);
}

/* A fresh encoder writing into out and raw (a new_encoder() state in Python). */
static inline Encoder enc_begin(uint8_t *out, size_t out_cap, uint8_t *raw, size_t raw_cap) {
    Encoder e = {0, 1, 0, 0, 0, 0xFFFFFFFFu, 0, 0, out, out_cap, raw, raw_cap};
    return e;
}

/* The range coder's last bytes and the raw bits' last partial byte: pos and rawpos are
   then the segment's two lengths (past the caps if the buffers were too small). */
static inline void enc_finish(Encoder *e) {
    for (int k = 0; k < 5; k++) enc_shift_low(e);
    if (e->nbits > 0) {
        if (e->rawpos < e->raw_cap) e->raw[e->rawpos] = (uint8_t)e->acc;
        e->rawpos++;
    }
    e->acc = 0;
    e->nbits = 0;
}

/* ------------------------------------------------------------------ decoder */

/* A decoder at the start of its input (`in`, n bytes) and raw bits: its code the first
   five bytes (zeros past the end, counted as overrun). */
static inline void dec_begin(Decoder *d, const uint8_t *in, size_t n, const uint8_t *raw, size_t raw_len) {
    Decoder z = {0};
    *d = z;
    d->in = in;
    d->in_len = n;
    d->raw = raw;
    d->raw_len = raw_len;
    d->range = 0xFFFFFFFFu;
    for (size_t p = 0; p < 5; p++) d->code = ((d->code << 8) | (p < n ? in[p] : 0)) & 0xFFFFFFFFFFull;
    d->pos = 5;
    d->overrun = n < 5 ? 5 - n : 0;
}

/* Reads bytes while the range is below 2^24 (zeros past the end, counted). Away from the
   end of the input the bytes come without a loop: the range needs clz(range) / 8 of them
   (0 to 3: it is never 0), taken from one 4-byte load. The loop's exit depended on the
   data and was mispredicted on a third of the predictive decoder's samples (callgrind,
   693_UNCR lossless). The same bytes are read and the same code results. */
static inline void dec_normalise(Decoder *d) {
    if (__builtin_expect(d->pos + 4 <= d->in_len, 1)) {
        const uint8_t *p = d->in + d->pos;
        int sh = 8 * (__builtin_clz(d->range | 1) >> 3);
        uint64_t next = ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | p[3];
        d->code = ((d->code << sh) | (next >> (32 - sh))) & 0xFFFFFFFFFFull;
        d->range <<= sh;
        d->pos += (uint64_t)(sh >> 3);
        return;
    }
    while (d->range < HLC_TOP) {
        uint64_t byte = 0;
        if (d->pos < d->in_len) byte = d->in[d->pos];
        else d->overrun++;
        d->pos++;
        d->code = ((d->code << 8) | byte) & 0xFFFFFFFFFFull;  /* bounded on damaged input */
        d->range <<= 8;
    }
}

static inline int dec_symbol(Decoder *d, Model m) {
    uint32_t r = model_share(m, d->range);
    /* s with r*cum[s] <= code < r*cum[s+1]; a code past r*total (damaged streams
       only) lands on the last symbol */
    uint64_t cum = 0;
    int s = 0;
    while (s < m.nsym - 1) {
        uint64_t next = cum + (uint64_t)m.freq[s];
        if (d->code < (uint64_t)r * next) break;
        cum = next;
        s++;
    }
    d->code -= (uint64_t)r * cum;
    d->range = r * (uint32_t)m.freq[s];
    dec_normalise(d);
    model_update(m, s);
    return s;
}

/* dec_symbol of a two-symbol model (the band coder's signs) without a branch on the
   symbol: a sign is as likely one way as the other, so the search's one step was
   mispredicted on about half of them. The same symbol, code and range as dec_symbol. */
static inline int dec_symbol2(Decoder *d, Model m) {
    uint32_t r = model_share(m, d->range);
    uint64_t bound = (uint64_t)r * (uint32_t)m.freq[0];
    int s = d->code >= bound;
    d->code -= bound & (0 - (uint64_t)s);
    d->range = r * (uint32_t)m.freq[s];
    dec_normalise(d);
    model_update(m, s);
    return s;
}

static inline uint64_t dec_raw_bits(Decoder *d, int n) {
    while (d->nbits < n) {
        if (d->rawpos < d->raw_len) d->acc |= (uint64_t)d->raw[d->rawpos] << d->nbits;
        else d->overrun++;
        d->rawpos++;
        d->nbits += 8;
    }
    uint64_t v = d->acc & ((1ull << n) - 1);
    d->acc >>= n;
    d->nbits -= n;
    return v;
}

static inline uint64_t dec_uint(Decoder *d, Model m) {
    int t = dec_symbol(d, m);
    if (t < HLC_DIRECT) return (uint64_t)t;
    int ex = (t - HLC_DIRECT) / 2 + 3;
    uint64_t below = (uint64_t)((t - HLC_DIRECT) & 1);
    uint64_t low = dec_raw_bits(d, ex - 1);
    return (1ull << ex) | (below << (ex - 1)) | low;
}

/* Quantised log2 with half steps: 0, 1, 2, 3, then 4..5 -> 4, 6..7 -> 5, 8..11 -> 6, ... */
static inline int activity_bucket(uint64_t a, int cap) {
    if (a < 4) return (int)a;
    int n = bit_length(a);
    int b = 2 * n - 2 + (int)((a >> (n - 2)) & 1);
    return b < cap ? b : cap - 1;
}

/* activity_bucket(a, cap) for a below HLC_ACT_TABLE as a table (hlc_act_table, made once
   when the module is loaded: hlc_act_init in predictive.c), any larger a by the formula: a
   load instead of a bit scan and three steps on the chain from one coded value to the
   next one's context (near-lossless decode 2.5% faster). The cap never applies below the
   table's end (the bucket of 1023 is 19), so one table serves every cap from 20 on. */
#define HLC_ACT_TABLE 1024
extern uint8_t hlc_act_table[HLC_ACT_TABLE];

static inline int activity_context(uint64_t a, int cap) {
    return __builtin_expect(a < HLC_ACT_TABLE, 1) ? hlc_act_table[a] : activity_bucket(a, cap);
}

#endif
