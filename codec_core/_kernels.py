"""Compiled entropy-coding kernels (numba).

One adaptive multi-symbol range coder (LZMA-style carry propagation, 32-bit
range) codes *tokens*; the low bits of large magnitudes and the signs go to a
separate raw bit stream, which costs nothing to model and is fast to read.

Magnitudes are split into tokens in the style of JPEG XL's hybrid integers:
0..7 are their own token; larger values code their exponent and the bit below
the leading one as the token, and the remaining bits raw.

The coefficient coder walks a subband in raster order. Its context is the
quantised log of a weighted sum of the magnitudes of already-coded neighbours
(W, N, NW, NE, WW, NN), the parent coefficient in the next coarser subband and
the co-located coefficients of the subbands of the same level coded earlier.
Where that whole neighbourhood is zero the coder switches to run mode and codes
the length of the run of zeros instead (run-length coding of zeros; a run that
reaches the end of the row has a token of its own); this is
what makes flat background and coarsely quantised bands cheap and fast.

This module is imported lazily (numba's import costs ~0.3 s); kernels release
the GIL so tiles decode in parallel threads. All state lives in small arrays so
that one coder can span several calls (all subbands of one resolution level).
Kernels never index outside their buffers, whatever the input bytes: the
decoder reads zeros past the end of its input, and the encoder reports an
overflow instead of writing past its output buffer.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Token alphabet (hybrid integers): 8 direct values + 2 tokens per exponent 3..27.
DIRECT = 8
NSYM = DIRECT + 2 * 25
# Adaptive frequency model: increment per coded symbol and rescale limit.
INC = 32
LIMIT = 1 << 15
# Contexts per model group: activity buckets, plus run-length and run-interrupt.
NCTX_ACT = 36
CTX_RUN = NCTX_ACT
CTX_RUNI = NCTX_ACT + 1
NCTX = NCTX_ACT + 2
TOP = 1 << 24
# Sign contexts: signs (-, 0, +) of the W and N neighbours.
NSIGN_CTX = 9

# Encoder state indices (int64 array of 8).
E_LOW, E_RANGE, E_CACHE, E_CSIZE, E_POS, E_ACC, E_NBITS, E_RAWPOS = range(8)
# Decoder state indices (int64 array of 8).
D_CODE, D_RANGE, D_POS, D_ACC, D_NBITS, D_RAWPOS, D_OVER = 0, 1, 2, 3, 4, 5, 6


def new_models(groups: int) -> tuple[np.ndarray, np.ndarray]:
    freq = np.ones((groups * NCTX, NSYM), dtype=np.int32)
    tot = np.full(groups * NCTX, NSYM, dtype=np.int32)
    return freq, tot


def new_sign_models(groups: int) -> tuple[np.ndarray, np.ndarray]:
    freq = np.ones((groups * NSIGN_CTX, 2), dtype=np.int32)
    tot = np.full(groups * NSIGN_CTX, 2, dtype=np.int32)
    return freq, tot


def new_encoder() -> np.ndarray:
    st = np.zeros(8, dtype=np.int64)
    st[E_RANGE] = 0xFFFFFFFF
    st[E_CSIZE] = 1
    return st


# ----------------------------------------------------------------- primitives

@njit(inline="always")
def _bitlen(v):
    n = 0
    while v >= 256:
        v >>= 8
        n += 8
    while v > 0:
        v >>= 1
        n += 1
    return n


@njit(inline="always")
def _emit(st, out, byte):
    p = st[E_POS]
    if p < out.shape[0]:
        out[p] = byte
    st[E_POS] = p + 1  # counted even past the end so the caller sees the overflow


@njit(inline="always")
def _shift_low(st, out):
    low = st[E_LOW]
    if low < 0xFF000000 or low >= 0x100000000:
        carry = low >> 32
        temp = st[E_CACHE]
        while True:
            _emit(st, out, (temp + carry) & 0xFF)
            temp = 0xFF
            st[E_CSIZE] -= 1
            if st[E_CSIZE] == 0:
                break
        st[E_CACHE] = (low >> 24) & 0xFF
    st[E_CSIZE] += 1
    st[E_LOW] = (low & 0x00FFFFFF) << 8


@njit(inline="always")
def _update(freq, tot, ctx, s):
    freq[ctx, s] += INC
    t = tot[ctx] + INC
    if t > LIMIT:
        t = 0
        for k in range(freq.shape[1]):
            f = (freq[ctx, k] + 1) >> 1
            freq[ctx, k] = f
            t += f
    tot[ctx] = t


@njit(inline="always")
def _enc_sym(st, out, freq, tot, ctx, s):
    c = 0
    for k in range(s):
        c += freq[ctx, k]
    r = st[E_RANGE] // tot[ctx]
    st[E_LOW] += r * c
    st[E_RANGE] = r * freq[ctx, s]
    while st[E_RANGE] < TOP:
        st[E_RANGE] <<= 8
        _shift_low(st, out)
    _update(freq, tot, ctx, s)


@njit(inline="always")
def _next_byte(dt, inp):
    p = dt[D_POS]
    dt[D_POS] = p + 1
    if p < inp.shape[0]:
        return np.int64(inp[p])
    dt[D_OVER] += 1
    return np.int64(0)


@njit(inline="always")
def _dec_sym(dt, inp, freq, tot, ctx):
    r = dt[D_RANGE] // tot[ctx]
    v = dt[D_CODE] // r
    if v >= tot[ctx]:
        v = tot[ctx] - 1
    c = 0
    s = 0
    last = freq.shape[1] - 1
    while s < last:
        f = freq[ctx, s]
        if c + f > v:
            break
        c += f
        s += 1
    dt[D_CODE] -= r * c
    dt[D_RANGE] = r * freq[ctx, s]
    while dt[D_RANGE] < TOP:
        # mask keeps a corrupt stream's state bounded (no overflow, no UB)
        dt[D_CODE] = ((dt[D_CODE] << 8) | _next_byte(dt, inp)) & 0xFFFFFFFFFF
        dt[D_RANGE] <<= 8
    _update(freq, tot, ctx, s)
    return s


@njit(inline="always")
def _put_bits(st, raw, value, n):
    # n <= 32; LSB-first accumulator
    acc = st[E_ACC] | (value << st[E_NBITS])
    nb = st[E_NBITS] + n
    while nb >= 8:
        p = st[E_RAWPOS]
        if p < raw.shape[0]:
            raw[p] = acc & 0xFF
        st[E_RAWPOS] = p + 1
        acc >>= 8
        nb -= 8
    st[E_ACC] = acc
    st[E_NBITS] = nb


@njit(inline="always")
def _get_bits(dt, raw, n):
    acc = dt[D_ACC]
    nb = dt[D_NBITS]
    while nb < n:
        p = dt[D_RAWPOS]
        if p < raw.shape[0]:
            acc |= np.int64(raw[p]) << nb
        else:
            dt[D_OVER] += 1
        dt[D_RAWPOS] = p + 1
        nb += 8
    v = acc & ((np.int64(1) << n) - 1)
    dt[D_ACC] = acc >> n
    dt[D_NBITS] = nb - n
    return v


@njit(inline="always")
def _enc_uint(st, out, raw, freq, tot, ctx, m):
    if m < DIRECT:
        _enc_sym(st, out, freq, tot, ctx, m)
    else:
        e = _bitlen(m) - 1  # >= 3
        msb = (m >> (e - 1)) & 1
        _enc_sym(st, out, freq, tot, ctx, DIRECT + 2 * (e - 3) + msb)
        _put_bits(st, raw, m & ((np.int64(1) << (e - 1)) - 1), e - 1)


@njit(inline="always")
def _dec_uint(dt, inp, raw, freq, tot, ctx):
    t = _dec_sym(dt, inp, freq, tot, ctx)
    if t < DIRECT:
        return np.int64(t)
    e = (t - DIRECT) // 2 + 3
    msb = (t - DIRECT) & 1
    return (np.int64(1) << e) | (np.int64(msb) << (e - 1)) | _get_bits(dt, raw, e - 1)


@njit(inline="always")
def _bucket(a):
    # quantised log2 with half steps: 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, 4..5 -> 4, 6..7 -> 5, ...
    if a < 4:
        return a
    n = _bitlen(a)
    b = 2 * n - 2 + ((a >> (n - 2)) & 1)
    return b if b < NCTX_ACT else NCTX_ACT - 1


@njit(inline="always")
def _sign_ctx(band, i, j):
    w = band[i, j - 1] if j > 0 else 0
    n = band[i - 1, j] if i > 0 else 0
    return 3 * ((w > 0) - (w < 0) + 1) + (n > 0) - (n < 0) + 1


@njit(inline="always")
def _activity(band, i, j, H, W, parent, x1, x2):
    a = np.int64(0)
    if j > 0:
        a += 3 * abs(np.int64(band[i, j - 1]))
        if j > 1:
            a += abs(np.int64(band[i, j - 2]))
    if i > 0:
        a += 3 * abs(np.int64(band[i - 1, j]))
        if j > 0:
            a += abs(np.int64(band[i - 1, j - 1]))
        if j + 1 < W:
            a += abs(np.int64(band[i - 1, j + 1]))
        if i > 1:
            a += abs(np.int64(band[i - 2, j]))
    if parent.shape[0] > 0 and parent.shape[1] > 0:
        pi = min(i >> 1, parent.shape[0] - 1)
        pj = min(j >> 1, parent.shape[1] - 1)
        a += 2 * abs(np.int64(parent[pi, pj]))
    if x1.shape[0] > 0 and x1.shape[1] > 0:
        a += abs(np.int64(x1[min(i, x1.shape[0] - 1), min(j, x1.shape[1] - 1)]))
    if x2.shape[0] > 0 and x2.shape[1] > 0:
        a += abs(np.int64(x2[min(i, x2.shape[0] - 1), min(j, x2.shape[1] - 1)]))
    return a


# ------------------------------------------------------------ band coder

@njit(nogil=True, cache=True)
def encode_band(band, parent, x1, x2, mask, st, out, raw, freq, tot, gbase, sfreq, stot):
    """Code one subband (int32 2-D). ``mask`` (uint8 2-D or 0x0): code only where
    mask != 0 (other positions must hold 0 and are skipped; run mode is off)."""
    H, W = band.shape
    use_mask = mask.shape[0] > 0
    sbase = (gbase // NCTX) * NSIGN_CTX
    for i in range(H):
        j = 0
        while j < W:
            if use_mask and mask[i, j] == 0:
                j += 1
                continue
            a = _activity(band, i, j, H, W, parent, x1, x2)
            if a == 0 and not use_mask:
                # run mode: zeros up to the next nonzero or the row end
                r = 0
                while j + r < W and band[i, j + r] == 0:
                    r += 1
                # 0 = the run reaches the row end (the common case in sparse bands)
                _enc_uint(st, out, raw, freq, tot, gbase + CTX_RUN, 0 if j + r == W else r + 1)
                j += r
                if j < W:
                    v = np.int64(band[i, j])
                    m = abs(v)
                    _enc_uint(st, out, raw, freq, tot, gbase + CTX_RUNI, m - 1)
                    _enc_sym(st, out, sfreq, stot, sbase + _sign_ctx(band, i, j), 1 if v < 0 else 0)
                    j += 1
                continue
            v = np.int64(band[i, j])
            m = abs(v)
            _enc_uint(st, out, raw, freq, tot, gbase + _bucket(a), m)
            if m != 0:
                _enc_sym(st, out, sfreq, stot, sbase + _sign_ctx(band, i, j), 1 if v < 0 else 0)
            j += 1


@njit(nogil=True, cache=True)
def decode_band(band, parent, x1, x2, mask, dt, inp, raw, freq, tot, gbase, sfreq, stot):
    H, W = band.shape
    use_mask = mask.shape[0] > 0
    sbase = (gbase // NCTX) * NSIGN_CTX
    for i in range(H):
        j = 0
        while j < W:
            if use_mask and mask[i, j] == 0:
                band[i, j] = 0
                j += 1
                continue
            a = _activity(band, i, j, H, W, parent, x1, x2)
            if a == 0 and not use_mask:
                r = _dec_uint(dt, inp, raw, freq, tot, gbase + CTX_RUN)
                r = W - j if r == 0 else r - 1
                if r > W - j:
                    r = W - j  # corrupt stream: clamp, CRC reports it
                for k in range(r):
                    band[i, j + k] = 0
                j += r
                if j < W:
                    m = _dec_uint(dt, inp, raw, freq, tot, gbase + CTX_RUNI) + 1
                    if m > 0x3FFFFFFF:
                        m = 0x3FFFFFFF
                    s = _dec_sym(dt, inp, sfreq, stot, sbase + _sign_ctx(band, i, j))
                    band[i, j] = -m if s else m
                    j += 1
                continue
            m = _dec_uint(dt, inp, raw, freq, tot, gbase + _bucket(a))
            if m > 0x3FFFFFFF:
                m = 0x3FFFFFFF
            if m != 0 and _dec_sym(dt, inp, sfreq, stot, sbase + _sign_ctx(band, i, j)):
                m = -m
            band[i, j] = m
            j += 1


@njit(nogil=True, cache=True)
def finish_encoder(st, out, raw):
    for _ in range(5):
        _shift_low(st, out)
    if st[E_NBITS] > 0:
        p = st[E_RAWPOS]
        if p < raw.shape[0]:
            raw[p] = st[E_ACC] & 0xFF
        st[E_RAWPOS] = p + 1
        st[E_ACC] = 0
        st[E_NBITS] = 0


@njit(nogil=True, cache=True)
def start_decoder(dt, inp):
    dt[:] = 0
    dt[D_RANGE] = 0xFFFFFFFF
    code = np.int64(0)
    for _ in range(5):
        code = ((code << 8) | _next_byte(dt, inp)) & 0xFFFFFFFFFF
    dt[D_CODE] = code


# --------------------------------------------------- spatial prediction (LL)

@njit(nogil=True, cache=True)
def med_residual(x):
    """LOCO-I median edge detector residual of a 2-D int32 array."""
    H, W = x.shape
    e = np.empty((H, W), dtype=np.int32)
    for i in range(H):
        for j in range(W):
            e[i, j] = x[i, j] - _med(x, i, j)
    return e


@njit(nogil=True, cache=True)
def med_reconstruct(e):
    H, W = e.shape
    x = np.empty((H, W), dtype=np.int32)
    for i in range(H):
        for j in range(W):
            # wrap-safe: corrupt residuals must not overflow into UB
            v = np.int64(e[i, j]) + _med(x, i, j)
            if v > 0x3FFFFFFF:
                v = 0x3FFFFFFF
            elif v < -0x3FFFFFFF:
                v = -0x3FFFFFFF
            x[i, j] = v
    return x


@njit(inline="always")
def _med(x, i, j):
    if i == 0 and j == 0:
        return np.int64(0)
    if i == 0:
        return np.int64(x[i, j - 1])
    if j == 0:
        return np.int64(x[i - 1, j])
    a = np.int64(x[i, j - 1])
    b = np.int64(x[i - 1, j])
    c = np.int64(x[i - 1, j - 1])
    if c >= max(a, b):
        return min(a, b)
    if c <= min(a, b):
        return max(a, b)
    return a + b - c
