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

from ._numba_cache import CACHE  # before numba: where (and whether) kernels are cached
from numba import njit  # noqa: E402

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
# Decoder state indices (int64 array of 8; the 8th is unused).
D_CODE, D_RANGE, D_POS, D_ACC, D_NBITS, D_RAWPOS, D_OVER = 0, 1, 2, 3, 4, 5, 6


def _prior() -> np.ndarray:
    """Initial counts per context: peaked at the token that the context's activity
    suggests (activity ~ 14x a typical magnitude, bucket ~ 2 log2 of it), so the
    first symbols of a context cost less than under a flat start."""
    tokens = np.arange(NSYM)
    prior = np.empty((NCTX, NSYM), np.int32)
    for c in range(NCTX):
        centre = max(0.0, (c - 4) / 2.0) if c < NCTX_ACT else 0.0
        prior[c] = np.maximum(1, (48 * 0.55 ** np.abs(tokens - centre)).astype(np.int32))
    return prior


_PRIOR = _prior()


def new_models(groups: int) -> tuple[np.ndarray, np.ndarray]:
    freq = np.tile(_PRIOR, (groups, 1))
    return freq, freq.sum(axis=1).astype(np.int32)


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
# Coder state travels through the kernels as tuples of scalars, so LLVM keeps it
# in registers (state held in arrays is reloaded around every buffer write).
# Encoder E = (low, range, cache, cache_size, pos, acc, nbits, rawpos);
# decoder D = (code, range, pos, acc, nbits, rawpos, overrun).

_BITLEN = np.array([int(v).bit_length() for v in range(1 << 16)], dtype=np.uint8)


@njit(inline="always")
def _bitlen(v):
    if v < 65536:
        return np.int64(_BITLEN[v])
    n = 16
    v >>= 16
    while v >= 65536:
        v >>= 16
        n += 16
    return n + np.int64(_BITLEN[v])


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
def _shift_low(low, cache, csize, pos, out):
    """LZMA-style output of the top byte of ``low``, with carry propagation."""
    if low < 0xFF000000 or low >= 0x100000000:
        carry = low >> 32
        temp = cache
        while True:
            if pos < out.shape[0]:
                out[pos] = (temp + carry) & 0xFF
            pos += 1  # counted past the end too, so the caller sees the overflow
            temp = 0xFF
            csize -= 1
            if csize == 0:
                break
        cache = (low >> 24) & 0xFF
    csize += 1
    return (low & 0x00FFFFFF) << 8, cache, csize, pos


@njit(inline="always")
def _e_sym(E, out, freq, tot, ctx, s):
    low, rng, cache, csize, pos, acc, nb, rp = E
    c = 0
    for k in range(s):
        c += freq[ctx, k]
    r = rng // tot[ctx]
    low += r * c
    rng = r * freq[ctx, s]
    while rng < TOP:
        rng <<= 8
        low, cache, csize, pos = _shift_low(low, cache, csize, pos, out)
    _update(freq, tot, ctx, s)
    return (low, rng, cache, csize, pos, acc, nb, rp)


@njit(inline="always")
def _e_bits(E, raw, value, n):
    # n <= 32; LSB-first accumulator
    low, rng, cache, csize, pos, acc, nb, rp = E
    acc |= value << nb
    nb += n
    while nb >= 8:
        if rp < raw.shape[0]:
            raw[rp] = acc & 0xFF
        rp += 1
        acc >>= 8
        nb -= 8
    return (low, rng, cache, csize, pos, acc, nb, rp)


@njit(inline="always")
def _e_uint(E, out, raw, freq, tot, ctx, m):
    if m < DIRECT:
        return _e_sym(E, out, freq, tot, ctx, m)
    e = _bitlen(m) - 1  # >= 3
    msb = (m >> (e - 1)) & 1
    E = _e_sym(E, out, freq, tot, ctx, DIRECT + 2 * (e - 3) + msb)
    return _e_bits(E, raw, m & ((np.int64(1) << (e - 1)) - 1), e - 1)


@njit(inline="always")
def _d_sym(D, inp, freq, tot, ctx):
    code, rng, pos, acc, nb, rp, over = D
    r = rng // tot[ctx]
    # find s with r*cum[s] <= code < r*cum[s+1] (no second division; a code past
    # r*total, possible only in a damaged stream, lands on the last symbol)
    c = 0
    s = 0
    last = freq.shape[1] - 1
    while s < last:
        f = freq[ctx, s]
        if code < r * (c + f):
            break
        c += f
        s += 1
    code -= r * c
    rng = r * freq[ctx, s]
    while rng < TOP:
        byte = np.int64(0)
        if pos < inp.shape[0]:
            byte = np.int64(inp[pos])
        else:
            over += 1
        pos += 1
        # the mask keeps a corrupt stream's state bounded (no overflow)
        code = ((code << 8) | byte) & 0xFFFFFFFFFF
        rng <<= 8
    _update(freq, tot, ctx, s)
    return (code, rng, pos, acc, nb, rp, over), s


@njit(inline="always")
def _d_bits(D, raw, n):
    code, rng, pos, acc, nb, rp, over = D
    while nb < n:
        if rp < raw.shape[0]:
            acc |= np.int64(raw[rp]) << nb
        else:
            over += 1
        rp += 1
        nb += 8
    v = acc & ((np.int64(1) << n) - 1)
    return (code, rng, pos, acc >> n, nb - n, rp, over), v


@njit(inline="always")
def _d_uint(D, inp, raw, freq, tot, ctx):
    D, t = _d_sym(D, inp, freq, tot, ctx)
    if t < DIRECT:
        return D, np.int64(t)
    e = (t - DIRECT) // 2 + 3
    msb = (t - DIRECT) & 1
    D, low_bits = _d_bits(D, raw, e - 1)
    return D, (np.int64(1) << e) | (np.int64(msb) << (e - 1)) | low_bits


@njit(inline="always")
def _bucket(a, cap):
    # quantised log2 with half steps: 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, 4..5 -> 4, 6..7 -> 5, ...
    if a < 4:
        return a
    n = _bitlen(a)
    b = 2 * n - 2 + ((a >> (n - 2)) & 1)
    return b if b < cap else cap - 1


@njit(inline="always")
def _sign_ctx(band, row, i, j):
    # row is band[i]: a 1-D view indexes faster than band[i, j]
    w = np.int64(row[j - 1]) if j > 0 else 0
    n = np.int64(band[i - 1, j]) if i > 0 else 0
    return 3 * ((w > 0) - (w < 0) + 1) + (n > 0) - (n < 0) + 1


@njit(nogil=True, cache=CACHE)
def _padded_abs(band):
    """|band| with 2 rows of zeros above and 2 columns of zeros either side: the
    band coders read the neighbours' magnitudes from it without bounds tests.

    The context (written out in both coders: as an inline helper numba compiles
    it ~15% slower) is the quantised log of the weighted magnitudes of the coded
    neighbours W, WW, N, NW, NE, NN, of the parent coefficient and of the
    co-located coefficients of the bands of the same level coded earlier."""
    H, W = band.shape
    A = np.zeros((H + 2, W + 4), np.int32)
    for i in range(H):
        for j in range(W):
            A[i + 2, j + 2] = abs(band[i, j])
    return A


# ------------------------------------------------------------ band coder

@njit(nogil=True, cache=CACHE)
def encode_band(band, parent, x1, x2, st, out, raw, freq, tot, gbase, sfreq, stot):
    """Code one subband (int32 2-D) into the coder state ``st``."""
    H, W = band.shape
    sbase = (gbase // NCTX) * NSIGN_CTX
    E = (st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7])
    A = _padded_abs(band)
    hp, h1, h2 = parent.size > 0, x1.size > 0, x2.size > 0
    for i in range(H):
        j = 0
        r0, r1, r2, br = A[i], A[i + 1], A[i + 2], band[i]
        pi, i1, i2 = min(i >> 1, parent.shape[0] - 1), min(i, x1.shape[0] - 1), min(i, x2.shape[0] - 1)
        while j < W:
            a = np.int64(3 * np.int64(r2[j + 1]) + r2[j] + 3 * np.int64(r1[j + 2])
                         + r1[j + 1] + r1[j + 3] + r0[j + 2])
            if hp:
                a += 2 * abs(np.int64(parent[pi, min(j >> 1, parent.shape[1] - 1)]))
            if h1:
                a += abs(np.int64(x1[i1, min(j, x1.shape[1] - 1)]))
            if h2:
                a += abs(np.int64(x2[i2, min(j, x2.shape[1] - 1)]))
            if a == 0:
                # run mode: zeros up to the next nonzero or the row end
                r = 0
                while j + r < W and br[j + r] == 0:
                    r += 1
                # 0 = the run reaches the row end (the common case in sparse bands)
                E = _e_uint(E, out, raw, freq, tot, gbase + CTX_RUN, 0 if j + r == W else r + 1)
                j += r
                if j < W:
                    v = np.int64(br[j])
                    E = _e_uint(E, out, raw, freq, tot, gbase + CTX_RUNI, abs(v) - 1)
                    E = _e_sym(E, out, sfreq, stot, sbase + _sign_ctx(band, br, i, j), 1 if v < 0 else 0)
                    j += 1
                continue
            v = np.int64(br[j])
            m = abs(v)
            E = _e_uint(E, out, raw, freq, tot, gbase + _bucket(a, NCTX_ACT), m)
            if m != 0:
                E = _e_sym(E, out, sfreq, stot, sbase + _sign_ctx(band, br, i, j), 1 if v < 0 else 0)
            j += 1
    for k in range(8):
        st[k] = E[k]


@njit(nogil=True, cache=CACHE)
def decode_band(band, parent, x1, x2, dt, inp, raw, freq, tot, gbase, sfreq, stot):
    H, W = band.shape
    sbase = (gbase // NCTX) * NSIGN_CTX
    D = (dt[0], dt[1], dt[2], dt[3], dt[4], dt[5], dt[6])
    A = np.zeros((H + 2, W + 4), np.int32)
    hp, h1, h2 = parent.size > 0, x1.size > 0, x2.size > 0
    for i in range(H):
        j = 0
        r0, r1, r2, br = A[i], A[i + 1], A[i + 2], band[i]
        pi, i1, i2 = min(i >> 1, parent.shape[0] - 1), min(i, x1.shape[0] - 1), min(i, x2.shape[0] - 1)
        while j < W:
            a = np.int64(3 * np.int64(r2[j + 1]) + r2[j] + 3 * np.int64(r1[j + 2])
                         + r1[j + 1] + r1[j + 3] + r0[j + 2])
            if hp:
                a += 2 * abs(np.int64(parent[pi, min(j >> 1, parent.shape[1] - 1)]))
            if h1:
                a += abs(np.int64(x1[i1, min(j, x1.shape[1] - 1)]))
            if h2:
                a += abs(np.int64(x2[i2, min(j, x2.shape[1] - 1)]))
            if a == 0:
                D, r = _d_uint(D, inp, raw, freq, tot, gbase + CTX_RUN)
                r = W - j if r == 0 else r - 1
                if r > W - j:
                    r = W - j  # corrupt stream: clamp, the CRC reports it
                for k in range(r):
                    band[i, j + k] = 0
                j += r
                if j < W:
                    D, m = _d_uint(D, inp, raw, freq, tot, gbase + CTX_RUNI)
                    m = min(m + 1, 0x3FFFFFFF)
                    D, s = _d_sym(D, inp, sfreq, stot, sbase + _sign_ctx(band, br, i, j))
                    band[i, j] = -m if s else m
                    A[i + 2, j + 2] = m
                    j += 1
                continue
            D, m = _d_uint(D, inp, raw, freq, tot, gbase + _bucket(a, NCTX_ACT))
            m = min(m, 0x3FFFFFFF)
            if m != 0:
                D, s = _d_sym(D, inp, sfreq, stot, sbase + _sign_ctx(band, br, i, j))
                if s:
                    m = -m
            band[i, j] = m
            A[i + 2, j + 2] = abs(m)
            j += 1
    for k in range(7):
        dt[k] = D[k]


@njit(nogil=True, cache=CACHE)
def finish_encoder(st, out, raw):
    E = (st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7])
    low, rng, cache, csize, pos, acc, nb, rp = E
    for _ in range(5):
        low, cache, csize, pos = _shift_low(low, cache, csize, pos, out)
    if nb > 0:
        if rp < raw.shape[0]:
            raw[rp] = acc & 0xFF
        rp += 1
    st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7] = low, rng, cache, csize, pos, 0, 0, rp


@njit(nogil=True, cache=CACHE)
def start_decoder(dt, inp):
    dt[:] = 0
    dt[D_RANGE] = 0xFFFFFFFF
    code = np.int64(0)
    for p in range(5):
        byte = np.int64(inp[p]) if p < inp.shape[0] else np.int64(0)
        code = ((code << 8) | byte) & 0xFFFFFFFFFF
    dt[D_CODE] = code
    dt[D_POS] = 5
    dt[D_OVER] = max(0, 5 - inp.shape[0])


# --------------------------------------------------- spatial prediction (LL)

@njit(nogil=True, cache=CACHE)
def med_residual(x):
    """LOCO-I median edge detector residual of a 2-D int32 array."""
    H, W = x.shape
    e = np.empty((H, W), dtype=np.int32)
    for i in range(H):
        for j in range(W):
            e[i, j] = x[i, j] - _med(x, i, j)
    return e


@njit(nogil=True, cache=CACHE)
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
