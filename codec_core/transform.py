"""Wavelet and colour transforms.

Both wavelets are lifting schemes with whole-sample symmetric extension, as in
JPEG 2000 Part 1: the integer 5/3 is reversible (lossless and near-lossless),
the 9/7 is the irreversible CDF 9/7 (lossy). Any length works: a length-1 axis
is left as it is, so tiny and 1-D images need no special case.

A decomposition is a list: ``[LL, (HL, LH, HH) coarsest, ..., (HL, LH, HH) finest]``
where HL is high-pass along columns (horizontal detail), LH along rows.
The numpy lifting is vectorised with slicing over the other axis; the 9/7 analysis
and synthesis of the lossy coder run in the compiled kernels (codec_core/_native/
wavelet97.c: :func:`forward` and pipeline.reconstruct_lossy_plane), which do the same
float32 operations in the same order (tests/test_transform.py, tests/test_kernels.py).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

Bands = list  # [LL, (HL, LH, HH), ...]

# CDF 9/7 lifting constants (JPEG 2000 Part 1, Annex F).
_A, _B, _G, _D = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971
_K = 1.230174104914001


def _pair_sum_right(s: np.ndarray, nd: int) -> np.ndarray:
    """s[i] + s[i+1] for i < nd, mirroring past the end (x[n] = x[n-2]).

    One new array, the lifting step's only temporary, laid out like ``s``
    (``empty_like`` keeps the strides' order: a C-ordered result for the
    transposed column passes was measured 10-300% slower)."""
    t = np.empty_like(s, shape=(nd,) + s.shape[1:])
    if s.shape[0] > nd:
        return np.add(s[:nd], s[1:nd + 1], out=t)
    np.add(s[:nd - 1], s[1:nd], out=t[:nd - 1])
    np.add(s[nd - 1], s[nd - 1], out=t[nd - 1])
    return t


def _pair_sum_left(d: np.ndarray, ns: int) -> np.ndarray:
    """d[i-1] + d[i] for i < ns, mirroring at both ends; one new array like d."""
    nd = d.shape[0]
    t = np.empty_like(d, shape=(ns,) + d.shape[1:])
    m = min(nd, ns)
    np.add(d[:m - 1], d[1:m], out=t[1:m])
    np.add(d[0], d[0], out=t[0])
    if ns > nd:  # ns = nd + 1: the mirror of d past its end is its last row
        np.add(d[nd - 1], d[nd - 1], out=t[nd])
    return t


def _fwd53(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # in place, like _fwd97: s and d are views of x (split_forward's half)
    return _fwd53_lift(x[0::2], x[1::2])


def _fwd53_lift(s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 5/3 analysis lifting, in place on even samples ``s`` and odd ``d``."""
    if d.shape[0] == 0:
        return s, d
    t = _pair_sum_right(s, d.shape[0])
    t >>= 1
    d -= t
    del t  # one lifting temporary alive at a time
    t = _pair_sum_left(d, s.shape[0])
    t += 2
    t >>= 2
    s += t
    return s, d


def _interleave(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    x = np.empty((s.shape[0] + d.shape[0],) + s.shape[1:], dtype=s.dtype)
    x[0::2] = s
    x[1::2] = d
    return x


def _inv53(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    if d.shape[0] == 0:
        return s.copy()
    return _interleave(*_inv53_lift(s, d))


def _inv53_lift(s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 5/3 synthesis lifting, in place on the (consumed) bands ``s`` and ``d``."""
    if d.shape[0] == 0:
        return s, d
    t = _pair_sum_left(d, s.shape[0])
    t += 2
    t >>= 2
    s -= t
    del t
    t = _pair_sum_right(s, d.shape[0])
    t >>= 1
    d += t
    return s, d  # (the temporary is freed before the interleaved copy: the decoder's peak)


def _add_scaled(x: np.ndarray, coef: float, pair: np.ndarray) -> None:
    """x += coef * pair, scaling the (temporary) pair sum in place: one temporary
    instead of two, and the same IEEE operations (-(c p) == (-c) p exactly)."""
    pair *= coef
    x += pair


def _fwd97(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # in place: s and d are views of x (split_forward's half, which it owns)
    return _fwd97_lift(x[0::2], x[1::2])


def _fwd97_lift(s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 9/7 analysis lifting, in place on even samples ``s`` and odd ``d``."""
    if d.shape[0] == 0:
        return s, d
    nd, ns = d.shape[0], s.shape[0]
    _add_scaled(d, _A, _pair_sum_right(s, nd))
    _add_scaled(s, _B, _pair_sum_left(d, ns))
    _add_scaled(d, _G, _pair_sum_right(s, nd))
    _add_scaled(s, _D, _pair_sum_left(d, ns))
    s *= np.float32(1.0 / _K)
    d *= np.float32(_K / 2.0)
    return s, d


def _inv97(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    return _interleave(*_inv97_lift(s, d))


def _inv97_lift(s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if d.shape[0] == 0:
        return s.copy(), d
    nd, ns = d.shape[0], s.shape[0]
    s *= _K  # in place: the inverse consumes its bands (half the peak memory)
    d *= 2.0 / _K
    _add_scaled(s, -_D, _pair_sum_left(d, ns))
    _add_scaled(d, -_G, _pair_sum_right(s, nd))
    _add_scaled(s, -_B, _pair_sum_left(d, ns))
    _add_scaled(d, -_A, _pair_sum_right(s, nd))
    return s, d


def _levels_up(bands: Bands, upto: int | None, level: Callable) -> np.ndarray:
    """Synthesis up to ``upto`` detail levels, ``level(parts, last)`` doing one from
    ``parts = [ll, hl, lh, hh]``. Consumes ``bands``: the list is emptied and only
    ``parts`` holds a level's bands, so ``level`` can free each as soon as it is used
    (the decoder's peak memory)."""
    n = len(bands) - 1 if upto is None else upto
    ll, details = bands[0], bands[1:1 + n]
    bands.clear()
    for k in range(len(details)):
        parts = [ll, *details[k]]
        details[k] = None
        del ll
        ll = level(parts, k == len(details) - 1)
    return ll


def _take(parts: list, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Bands i and j of ``parts``, removed from it."""
    a, b = parts[i], parts[j]
    parts[i] = parts[j] = None
    return a, b


def _inverse(bands: Bands, step: Callable, upto: int | None = None,
             last: Callable | None = None) -> np.ndarray:
    """Synthesis by the numpy lifting ``step``; ``last`` (default ``step``) does the
    very last step (see :func:`_levels_up`)."""
    def level(parts: list, final: bool) -> np.ndarray:
        ll, hl = _take(parts, 0, 1)
        lo = step(ll.T, hl.T).T
        del ll, hl
        lh, hh = _take(parts, 2, 3)
        hi = step(lh.T, hh.T).T
        del lh, hh
        return (last or step)(lo, hi) if final else step(lo, hi)

    return _levels_up(bands, upto, level)


def forward(rows: Callable[[slice], np.ndarray], levels: int, wavelet: str, samples: int | None = None) -> Bands:
    """Analysis ("5/3" or "9/7") of the plane whose rows ``sel`` ``rows(sel)`` returns
    as a new array (int32 for "5/3", float32 or int32 for "9/7") that the transform consumes.
    The even and odd rows are asked for apart (:func:`split_forward`), so a caller
    that makes them from its stored samples never builds the whole plane; a 5/3
    plane of at most ``C53_MAX`` ``samples`` is made whole for the compiled kernel."""
    if levels == 0:
        return [rows(slice(None))]
    if wavelet == "9/7":
        return _c97_forward(rows(slice(None)), levels)
    if samples is not None and samples <= C53_MAX:
        return _c53_forward(rows(slice(None)), levels)
    return split_forward([rows(slice(0, None, 2)), rows(slice(1, None, 2))], levels, wavelet)


def _c97_forward(x: np.ndarray, levels: int) -> Bands:
    """9/7 analysis in the compiled kernel (codec_core/_native/wavelet97.c), consuming
    the float32 (or writable int32) plane ``x``: the kernel leaves its buffer holding every band,
    contiguous, in decomposition order, and the bands are views of it (no copy; the
    kernel's working memory is a quarter of the plane). The same values as
    :func:`split_forward`'s numpy lifting, bit for bit."""
    from ._hlc import fwd97

    if not (x.dtype == np.int32 and x.flags.c_contiguous and x.flags.writeable):
        x = np.ascontiguousarray(x, np.float32)
    if x.ndim != 2 or x.size == 0:  # (nothing to transform: the numpy path's answer)
        return split_forward([x[0::2].astype(np.float32), x[1::2].astype(np.float32)], levels, "9/7")
    fwd97(x, levels)  # (an int32 plane is made float32 in place first: no second plane)
    return _packed_bands(x.view(np.float32), levels)


def _packed_bands(x: np.ndarray, levels: int) -> Bands:
    """The bands of a plane the compiled analyses left packed (LL, then HL, LH, HH of
    each level, coarsest first, contiguous), as views of it."""
    shapes = band_shapes(x.shape[0], x.shape[1], levels)
    flat, at, out = x.reshape(-1), 0, []
    for shape in [shapes[0]] + [s for lvl in shapes[1:] for s in lvl]:
        n = shape[0] * shape[1]
        out.append(flat[at:at + n].reshape(shape))
        at += n
    return [out[0]] + [tuple(out[1 + 3 * k:4 + 3 * k]) for k in range(levels)]


#: Planes up to this many samples take the compiled 5/3 (codec_core/_native/
#: transform53.c), which works on a whole int32 plane, its bands left packed in it
#: (scratch: about a sixteenth of it); larger ones (a tile size the caller raised) the
#: numpy lifting of :func:`split_forward`, made from the stored rows as it asks for
#: them, which holds 1.5 planes at its peak.
C53_MAX = 1 << 22


def _c53_forward(x: np.ndarray, levels: int) -> Bands:
    """5/3 analysis in the compiled kernel, consuming the int32 plane ``x``: the kernel
    leaves its buffer holding every band, packed as :func:`_c97_forward`'s, and the
    bands are views of it (each level's bands copied out of the plane held 1.75 planes
    beside it: the lossless encode of a 16-bit single-tile plane reached 5x its raw size)."""
    from ._hlc import fwd53_packed

    if not (x.dtype == np.int32 and x.flags.c_contiguous and x.flags.writeable):
        x = np.ascontiguousarray(x, np.int32)
    if x.ndim != 2 or x.size == 0:  # (nothing to transform: the numpy path's answer)
        return split_forward([x[0::2], x[1::2]], levels, "5/3")
    fwd53_packed(x, levels)
    return _packed_bands(x, levels)


def _c53_level(ll: np.ndarray, hl: np.ndarray, lh: np.ndarray, hh: np.ndarray) -> np.ndarray:
    """One 5/3 synthesis level in the compiled kernel: the bands interleaved, lifted."""
    from ._hlc import inv53

    x = np.empty((ll.shape[0] + lh.shape[0], ll.shape[1] + hl.shape[1]), np.int32)
    for (r, c), band in zip(((0, 0), (0, 1), (1, 0), (1, 1)), (ll, hl, lh, hh), strict=True):
        x[r::2, c::2] = band
    inv53(x)
    return x


def _c53_inverse(bands: Bands, upto: int | None) -> np.ndarray:
    """5/3 synthesis of ``upto`` detail levels in the compiled kernel (consumes ``bands``)."""
    ll = _levels_up(bands, upto, lambda parts, final: _c53_level(*parts))
    return np.ascontiguousarray(ll, dtype=np.int32)


def dwt53_forward(img: np.ndarray, levels: int) -> Bands:
    """5/3 analysis of ``img`` (not modified)."""
    if levels and img.size <= C53_MAX:
        return _c53_forward(np.array(img, dtype=np.int32, order="C"), levels)
    return forward(lambda sel: img[sel].astype(np.int32), levels, "5/3")


def dwt53_inverse(bands: Bands, upto: int | None = None, out: np.ndarray | None = None,
                  finish: Callable | None = None) -> np.ndarray:
    """5/3 synthesis (consumes ``bands``), int32; or, with ``out`` (an integer
    array of the result's shape, e.g. the decoder's output), written into it, each
    half of the last step first passed in place through ``finish`` (the decoder's
    value lookup and clipping): no int32 plane of the whole tile."""
    size = sum(b.size for b in bands[:1]) + sum(b.size for d in bands[1:] for b in d)
    if size <= C53_MAX:
        x = _c53_inverse(bands, upto)
        if out is None:
            return x
        out[...] = finish(x) if finish else x
        return out
    if out is None:
        return _inverse(bands, _inv53, upto)
    done = finish or (lambda a: a)

    def last(s: np.ndarray, d: np.ndarray) -> np.ndarray:
        s, d = _inv53_lift(s, d)
        out[0::2] = done(s)
        del s
        out[1::2] = done(d)
        return out

    x = _inverse(bands, _inv53, upto, last=last)
    if x is not out:  # no detail level: the LL band itself
        out[...] = done(x)
    return out


def dwt97_forward(img: np.ndarray, levels: int) -> Bands:
    """9/7 analysis of ``img`` (any numeric type; not modified), in float32, by the
    compiled kernel.

    float32 halves the working memory; every step is an IEEE elementwise
    operation, so results are the same on every platform."""
    return forward(lambda sel: img[sel].astype(np.float32), levels, "9/7")


def dwt97_forward_numpy(img: np.ndarray, levels: int) -> Bands:
    """:func:`dwt97_forward` by the numpy lifting (the compiled kernel's reference)."""
    if levels == 0:
        return [img.astype(np.float32)]
    return split_forward([img[0::2].astype(np.float32), img[1::2].astype(np.float32)], levels, "9/7")


#: Columns lifted together along the rows in :func:`split_forward`.
LIFT_STRIP = 128


def split_forward(halves: list, levels: int, wavelet: str) -> Bands:
    """Analysis (``levels`` >= 1) of the plane whose even rows are ``halves[0]`` and
    odd rows ``halves[1]`` (int32 for "5/3", float32 for "9/7"). Consumes them:
    the list is emptied and the arrays are worked on in place and freed.

    Same bands as the in-place transform of the whole plane, with less memory:
    each level's two halves are lifted along the rows, then one half's bands are
    copied out and freed before the other's are made: 1.5 planes at the peak,
    where a plane plus its copied-out bands had been 2. Through :func:`forward`,
    a caller that makes the two halves itself never holds the whole plane."""
    step, lift = (_fwd53, _fwd53_lift) if wavelet == "5/3" else (_fwd97, _fwd97_lift)
    even, odd = halves
    halves.clear()
    out: list = []
    while True:
        # along rows, a strip of columns at a time: the lifting temporaries are a
        # strip, not a half plane (columns are independent; same values)
        for c in range(0, even.shape[1], LIFT_STRIP):
            lift(even[:, c:c + LIFT_STRIP], odd[:, c:c + LIFT_STRIP])
        lo, hi = even, odd
        del even, odd
        ll, hl = (np.ascontiguousarray(a.T) for a in step(lo.T))    # columns of the low half
        del lo
        lh, hh = (np.ascontiguousarray(a.T) for a in step(hi.T))
        del hi
        out.append((hl, lh, hh))
        levels -= 1
        if levels == 0:
            return [ll] + out[::-1]
        even, odd = ll[0::2].copy(), ll[1::2].copy()
        del ll


def dwt97_inverse(bands: Bands, upto: int | None = None) -> np.ndarray:
    return _inverse(bands, _inv97, upto)


_INT32_SAFE = (-(1 << 30), 1 << 30)  # a damaged stream's values still fit int32


def _rounded_into(out: np.ndarray, x: np.ndarray, bounds: tuple) -> None:
    np.rint(x, out=x)
    np.clip(x, bounds[0], bounds[1], out=x)
    out[...] = x


def dwt97_inverse_rounded(bands: Bands, upto: int | None = None, out: np.ndarray | None = None,
                          bounds: tuple = _INT32_SAFE, dtype: DTypeLike = np.int32) -> np.ndarray:
    """``clip(rint(dwt97_inverse(bands, upto)), *bounds)`` as ``dtype``, or written
    into ``out`` (any integer array of the result's shape, e.g. the decoder's
    output: no integer plane at all), without the full-size float array: the last
    lifting step writes its even and odd rows straight into the integer result,
    made only then (same values; the float result of the 9/7 inverse is float64
    when the LL band is, 8 bytes a sample). Consumes ``bands`` like
    :func:`dwt97_inverse`."""
    def result(shape: tuple) -> np.ndarray:
        return np.empty(shape, dtype) if out is None else out

    def last(s: np.ndarray, d: np.ndarray) -> np.ndarray:
        s, d = _inv97_lift(s, d)
        res = result((s.shape[0] + d.shape[0],) + s.shape[1:])
        _rounded_into(res[0::2], s, bounds)
        _rounded_into(res[1::2], d, bounds)
        return res

    x = _inverse(bands, _inv97, upto, last=last)
    if x.dtype.kind == "f":  # no detail level: the LL band itself
        res = result(x.shape)
        _rounded_into(res, np.asarray(x, np.float64), bounds)
        x = res
    return x


def band_shapes(rows: int, cols: int, levels: int) -> list:
    """Shapes of every subband, in the order of a decomposition."""
    out = []
    h, w = rows, cols
    for _ in range(levels):
        hl = ((h + 1) // 2, w // 2)
        lh = (h // 2, (w + 1) // 2)
        hh = (h // 2, w // 2)
        out.append((hl, lh, hh))
        h, w = (h + 1) // 2, (w + 1) // 2
    return [(h, w)] + out[::-1]


_GAIN_CACHE: dict = {}


#: Deeper decompositions get their gains from 1-D basis functions (see below).
GAINS_2D_UP_TO = 5


def synthesis_gains_97(levels: int) -> list:
    """Energy (squared L2 norm) of each 9/7 synthesis basis function, per subband,
    in decomposition order. Used to weight quantiser steps for equal MSE slope."""
    if levels in _GAIN_CACHE:
        return _GAIN_CACHE[levels]
    if levels > GAINS_2D_UP_TO:
        _GAIN_CACHE[levels] = _separable_gains_97(levels)
        return _GAIN_CACHE[levels]
    n = 16 << levels
    shapes = band_shapes(n, n, levels)
    zero = [np.zeros(shapes[0])] + [tuple(np.zeros(s) for s in lvl) for lvl in shapes[1:]]
    gains: list = []

    def energy(bands):
        return float(np.sum(dwt97_inverse(bands) ** 2))

    b: list[Any] = [a.copy() if isinstance(a, np.ndarray) else tuple(x.copy() for x in a) for a in zero]
    b[0][shapes[0][0] // 2, shapes[0][1] // 2] = 1.0
    gains.append(energy(b))
    for lvl in range(1, levels + 1):
        g3 = []
        for o in range(3):
            b = [a.copy() if isinstance(a, np.ndarray) else tuple(x.copy() for x in a) for a in zero]
            sh = shapes[lvl][o]
            b[lvl][o][sh[0] // 2, sh[1] // 2] = 1.0
            g3.append(energy(b))
        gains.append(tuple(g3))
    _GAIN_CACHE[levels] = gains
    return gains


def _separable_gains_97(levels: int) -> list:
    """:func:`synthesis_gains_97` from 1-D basis functions: a 2-D basis function is the
    product of a row and a column one, so its energy is the product of theirs. The
    2-D computation inverts (16 * 2^levels)^2 images, 30 s at 8 levels; this takes
    milliseconds. It agrees with it to ~1e-15 relative, but the default depths (up to
    5) keep the 2-D values, which the header's steps of existing streams came from."""
    n = 16 << levels

    def energy(j: int, high: bool) -> float:
        """Energy of the 1-D synthesis function of a coefficient at depth j (lowpass or
        highpass), from a column signal: (n, 1) keeps the transform on one axis."""
        shapes = band_shapes(n, 1, j)
        bands: list[Any] = [np.zeros(shapes[0])] + [tuple(np.zeros(s) for s in lvl) for lvl in shapes[1:]]
        band = bands[1][1] if high else bands[0]  # LH: highpass along the rows
        band[band.shape[0] // 2, 0] = 1.0
        return float(np.sum(dwt97_inverse(bands) ** 2))

    low = {j: energy(j, False) for j in range(1, levels + 1)}
    high = {j: energy(j, True) for j in range(1, levels + 1)}
    gains: list = [low[levels] ** 2]
    for j in range(levels, 0, -1):  # coarsest level first
        gains.append((low[j] * high[j], low[j] * high[j], high[j] ** 2))
    return gains


def rct_forward(rgb: np.ndarray) -> np.ndarray:
    """Reversible colour transform (JPEG 2000): int32 (…, 3) -> Y, Cb, Cr planes."""
    out = np.empty(rgb.shape, np.int32)
    for c in range(3):
        rct_channel(rgb, c, out[..., c])
    return out


def rct_channel(rgb: np.ndarray, c: int, out: np.ndarray | None = None) -> np.ndarray:
    """Channel ``c`` (0 Y, 1 Cb, 2 Cr) of :func:`rct_forward`, as int32, alone: the
    lossy coder transforms one plane at a time instead of holding all three."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if out is None:
        out = np.empty(rgb.shape[:-1], np.int32)
    if c == 1:
        return np.subtract(b, g, out=out, dtype=np.int32)
    if c == 2:
        return np.subtract(r, g, out=out, dtype=np.int32)
    np.add(r, b, out=out, dtype=np.int32)
    out += g
    out += g
    out >>= 2
    return out


def rct_inverse(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rct_forward`, in place on an int32 array."""
    y, cb, cr = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    g = cb + cr
    g >>= 2
    np.subtract(y, g, out=g)  # G
    cb += g                   # B
    cr += g                   # R
    ycc[..., 0] = cr  # channel order R, G, B: R first, then B over Cb, then G
    ycc[..., 2] = cb
    ycc[..., 1] = g
    return ycc
