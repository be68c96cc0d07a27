"""Dead-zone scalar quantisation of 9/7 subbands, steps and rate control.

Subband steps follow the synthesis energy gains of the 9/7 (equal MSE slope at
high rate): ``step_b = base / sqrt(G_b)``. Detail coefficients use a dead-zone
quantiser (rounding offset < 1/2, so small coefficients are thresholded to zero)
and are reconstructed below the interval midpoint, nearer the centroid of their
roughly Laplacian distribution. The LL band is rounded to nearest.

With an importance map, each coefficient's step is multiplied by the multiplier
of the importance class of the image block it sits over.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# HLC_DIRECT, NCTX_ACT: the band coder's hybrid integers (values below HLC_DIRECT are
# symbols, larger ones an exponent-and-one-bit symbol and raw low bits) and activity
# contexts, as the compiled coder has them (tests/test_kernels.py checks the two agree)
from ._kernels import DIRECT as HLC_DIRECT
from ._kernels import NCTX_ACT
from .entropy import MAX_COEFFICIENT
from .format import grid_steps
from .transform import synthesis_gains_97

# Rounding offset of the dead-zone quantiser and reconstruction offset (fractions of a step).
DEADZONE_ROUNDING = 0.35
RECON_OFFSET = 0.10
# Thresholding: a detail coefficient quantised to +-1 with no nonzero neighbour in
# its 3 x 3 window is set to zero when its magnitude is below this many steps.
# Alone, it costs the end of a zero run plus a magnitude and a sign (~6-8 bits);
# zeroing it adds (2(1 + RECON_OFFSET) t - (1 + RECON_OFFSET)^2) step^2 of squared
# error at |c| = t step, which at the usual slope of ~0.1 step^2 per bit pays below
# t ~ 0.85 (measured: +0.03 to +0.05 dB at equal rate on the corpus).
ISOLATED_ZERO_BELOW = 0.85


#: Rate-distortion optimised quantisation of detail bands (``quantise(rdo=True)``,
#: :func:`rdo_levels`): each coefficient's level is the one of {rounded, rounded - 1,
#: 0} with the least D + lambda R. High-rate theory of an entropy-coded uniform
#: quantiser: D(R) ~ step^2 / 12 x 2^(-2 R), so -dD/dR = 2 ln 2 D = (ln 2 / 6) step^2
#: per bit (dev images: 0.08 and 0.17 did no better).
RDO_LAMBDA = math.log(2) / 6


def subband_steps(base: float, levels: int) -> list[float]:
    gains = synthesis_gains_97(levels)
    steps = [base / math.sqrt(gains[0])]
    for g3 in gains[1:]:
        steps.extend(base / math.sqrt(g) for g in g3)
    return grid_steps(steps)  # as stored in the header (v3)


# Lossy colour goes through the RCT (Y = (R + 2G + B) / 4, Cb = B - G, Cr = R - G).
# An error e in Y returns in all of R, G, B (energy 3); an error in Cb or Cr returns
# as -e/4 in G and R, 3e/4 in B (energy 1/16 + 1/16 + 9/16 = 11/16). Equal MSE slope
# in RGB therefore wants the chroma steps sqrt(3 / (11/16)) = sqrt(48/11) times the
# luma steps (format v2 stores these per-channel multipliers).
RCT_CHANNEL_MULT = (1.0, math.sqrt(48 / 11), math.sqrt(48 / 11))


def channel_steps(steps: list[float], channel_mult: list, c: int) -> list[float]:
    """The subband steps of channel ``c`` (encoder and decoder use this one rule)."""
    if not channel_mult:
        return steps
    m = channel_mult[c]
    return [float(np.float32(s * m)) for s in steps]


def _band_list(bands: list) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = [bands[0]]
    for lvl in bands[1:]:
        out.extend(lvl)
    return out


def _take(items: list[np.ndarray | None], i: int) -> np.ndarray:
    """``items[i]``, released from the list (so that it is freed once its user is done)."""
    item, items[i] = items[i], None
    assert item is not None
    return item


def _regroup(flat: list, levels: int) -> list:
    return [flat[0]] + [tuple(flat[1 + 3 * i:4 + 3 * i]) for i in range(levels)]


def quantise(bands: list, steps: list[float], levels: int, mult: list | None = None,
             consume: bool = False, rdo: bool = False, native: bool = True,
             rounding: float = DEADZONE_ROUNDING) -> list:
    """Float bands -> int32 bands. ``mult``: per-band multiplier arrays (or None).
    ``consume``: empty ``bands`` as it goes; each contiguous float32 band is then
    overwritten by its own integers (same 4 bytes a sample: no second set of bands).
    ``rdo``: detail levels by :func:`rdo_levels` where the step is at least one sample
    unit (finer, the decoder's rounding sets the error), else the dead zone's.
    ``native``: detail bands (float32, one step) by the compiled quantiser
    (_native/rdoquant.c: the same levels; False: the numpy reference, as tests take it).
    ``rounding``: the dead zone's rounding offset (0: the floor quantiser)."""
    flat = _band_list(bands)
    if consume:
        bands.clear()
    out = []
    for b, s in enumerate(steps):
        c = _take(flat, b)
        step = np.float32(s) if mult is None else (s * mult[b]).astype(np.float32)
        if b == 0:
            ll = np.rint(c / step)
            _check_magnitude(np.abs(ll), step)
            out.append(ll.astype(np.int32))
            continue
        if native and mult is None and c.dtype == np.float32 and c.ndim == 2 and c.flags.c_contiguous:
            out.append(_native_detail(c, step, rdo, consume, rounding))
            continue
        # floor(|c| / step + rounding) with the sign of c, in place (one float temporary)
        mag = np.abs(c)
        small = _isolated_candidates(mag, step)  # needs |c|: before c is overwritten
        negative = c < 0
        mag /= step
        if rdo and float(np.min(step)) >= 1.0:
            mag[...] = rdo_levels(mag, RDO_LAMBDA)
        else:
            mag += np.float32(rounding)
            np.floor(mag, out=mag)
        _check_magnitude(mag, step)
        in_place = consume and c.dtype == np.float32 and c.flags.c_contiguous
        q = c.view(np.int32) if in_place else np.empty(c.shape, np.int32)
        del c
        np.copyto(q, mag, casting="unsafe")
        del mag
        np.negative(q, out=q, where=negative)
        del negative
        out.append(_zero_isolated(q, small))
    return _regroup(out, levels)


#: Symbols the compiled RDO histogram has room for (levels below 2^30: at most 63).
_NSYM_CAP = 64


def _native_detail(c: np.ndarray, step: np.float32, rdo: bool, consume: bool,
                   rounding: float = DEADZONE_ROUNDING) -> np.ndarray:
    """The detail band ``c``'s signed levels by the compiled quantiser (the numpy
    path's levels; into ``c``'s own memory when ``consume``)."""
    from . import _hlc

    rdo = rdo and float(step) >= 1.0
    bits = None
    if rdo:
        counts = np.zeros((NCTX_ACT, _NSYM_CAP), np.int64)
        nsym = _hlc.rdo_count(c, float(step), counts)
        if not nsym:  # (a level beyond 2^30)
            _check_magnitude(np.array([math.inf]), step)
        bits = np.ascontiguousarray(_token_bits(counts[:, :nsym]))
    q = c.view(np.int32) if consume else np.empty(c.shape, np.int32)
    _check_magnitude(np.array([_hlc.quant_band(c, q, float(step), rdo, RDO_LAMBDA, bits, rounding)]), step)
    return q


def _token_bits(counts: np.ndarray) -> np.ndarray:
    """Bits of each (context, symbol) from a band's own token counts (float64)."""
    nsym = counts.shape[1]
    return -np.log2((counts + 0.5) / (counts.sum(1, keepdims=True) + 0.5 * nsym))


def _bit_length(v: np.ndarray) -> np.ndarray:
    """bit_length of each value of ``v`` (>= 0; exact below 2^24, which is all the
    rate estimate needs), int32."""
    return np.frexp(v.astype(np.float32))[1].astype(np.int32)


def _tokens(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band coder's symbol and raw bit count of each magnitude ``v`` (int32)."""
    sym, raw = v.copy(), np.zeros_like(v)
    big = v >= HLC_DIRECT
    if big.any():
        b = v[big]
        ex = _bit_length(b) - 1  # (>= 3)
        sym[big] = HLC_DIRECT + 2 * (ex - 3) + ((b >> (ex - 1)) & 1)
        raw[big] = ex - 1
    return sym, raw


def _activity(r: np.ndarray) -> np.ndarray:
    """The band coder's activity context (rangecoder.h activity_bucket of 3 W + WW +
    3 N + NW + NE + NN; without the parent and the other bands of the level) of each
    coefficient of magnitudes ``r`` (int32)."""
    p = np.pad(r, ((2, 0), (2, 2)))
    h, w = r.shape
    a = 3 * p[2:, 1:w + 1] + p[2:, 0:w] + 3 * p[1:h + 1, 2:w + 2] + p[1:h + 1, 1:w + 1] + p[1:h + 1, 3:w + 3]
    a += p[0:h, 2:w + 2]
    n = _bit_length(a)
    bucket = 2 * n - 2 + ((a >> np.maximum(n - 2, 0)) & 1)
    return np.minimum(np.where(a < 4, a, bucket), NCTX_ACT - 1)


def rdo_levels(x: np.ndarray, lam: float) -> np.ndarray:
    """Levels (float32, >= 0) of magnitudes ``x`` in steps: per coefficient the one of
    {rounded, rounded - 1, 0} with the least (x - level - RECON_OFFSET)^2 (x^2 for 0)
    + ``lam`` x bits, the bits from the band's own token statistics in the band
    coder's activity contexts (taken from the rounded levels: one pass, no
    iteration), a sign bit for a nonzero level. Only nonzero rounded levels have a
    choice: the costs are reckoned there alone."""
    r = np.floor(x + np.float32(0.5)).astype(np.int32)
    at = np.flatnonzero(r)
    if not at.size:
        return r.astype(np.float32)
    ctx = _activity(r)
    sym = _tokens(r)[0]
    nsym = int(sym.max()) + 1
    counts = np.bincount((ctx * nsym + sym).ravel(), minlength=NCTX_ACT * nsym).reshape(NCTX_ACT, nsym)
    bits = _token_bits(counts)
    xs, rs, cs = x.ravel()[at].astype(np.float64), r.ravel()[at], ctx.ravel()[at]

    def cost(v: np.ndarray) -> np.ndarray:
        s, b = _tokens(v)
        d = np.where(v > 0, xs - v - RECON_OFFSET, xs)
        return d * d + lam * (bits[cs, np.minimum(s, nsym - 1)] + b + (v > 0))

    best, level = cost(rs), rs
    for cand in (rs - 1, np.zeros_like(rs)):
        c = cost(cand)
        better = c < best
        best, level = np.where(better, c, best), np.where(better, cand, level)
    out = r.astype(np.float32)
    out.ravel()[at] = level
    return out


def _isolated_candidates(mag: np.ndarray, step) -> np.ndarray | None:
    """Where |c| (``mag``) is below ISOLATED_ZERO_BELOW steps; None where the step is
    below one sample unit: there the decoder's rounding to integers, not the step,
    sets the error, and the trade-off of ISOLATED_ZERO_BELOW does not hold."""
    small = (mag < np.float32(ISOLATED_ZERO_BELOW) * step) & (step >= 1.0)
    return small if small.any() else None


def _zero_isolated(q: np.ndarray, small: np.ndarray | None) -> np.ndarray:
    """Threshold isolated small coefficients (see ISOLATED_ZERO_BELOW): +-1 values
    at ``small`` positions with no nonzero neighbour become 0."""
    if small is None:
        return q
    cand = small & (np.abs(q) == 1)
    if not cand.any():
        return q
    p = np.pad(q != 0, 1)
    ring = p[:-2, :-2] | p[:-2, 1:-1] | p[:-2, 2:] | p[1:-1, :-2]
    ring |= p[1:-1, 2:]
    ring |= p[2:, :-2]
    ring |= p[2:, 1:-1]
    ring |= p[2:, 2:]
    q[cand & ~ring] = 0
    return q


def dequantise(qbands: list, steps: list[float], levels: int, recon_offset: float,
               mult: list | None = None, upto: int | None = None, consume: bool = False,
               ll_dtype: type = np.float32) -> list:
    """Integer bands -> float bands. ``consume``: empty ``qbands`` as it goes, so
    that each integer band is freed once converted (the decoder's peak memory).
    ``ll_dtype``: float32 from format v2 on; v1 decoders rebuilt the LL band in
    float64, which then carried the low-pass half of every synthesis step (twice the
    memory), and v1 streams keep decoding that way."""
    flat = _band_list(qbands[:1 + (levels if upto is None else upto)])
    if consume:
        qbands.clear()
    out = []
    for b in range(len(flat)):
        q = _take(flat, b)
        step = steps[b] if mult is None else steps[b] * mult[b]
        step = np.asarray(step, np.float32)
        if b == 0:
            out.append(np.multiply(q, step, dtype=ll_dtype))
        else:
            # in place, to keep one float band alive at a time (same IEEE operations)
            mag = np.abs(q).astype(np.float32)
            mag += np.float32(recon_offset)
            mag *= step
            mag[q == 0] = 0
            np.negative(mag, out=mag, where=q < 0)
            out.append(mag)
    n = len(flat)
    return [out[0]] + [tuple(out[1 + 3 * i:4 + 3 * i]) for i in range((n - 1) // 3)]


def step_floor(levels: int, peak: int) -> float:
    """The finest base step rate control may try for samples (or colour-transformed
    planes) of magnitude up to ``peak``: one whose quantised coefficients are sure to
    stay below half of :data:`entropy.MAX_COEFFICIENT`.

    A 9/7 coefficient is at most 2 peak (the largest L1 norm of a 2-D analysis basis
    function is 1.38^2 = 1.91) and band b is quantised with base / sqrt(G_b) (step
    multipliers only make steps coarser). Below this floor the reconstruction is
    exact to within rounding anyway, so nothing is lost; without it the search for a
    size target on a near-empty image halved the step some 30 times, until the
    coefficients overflowed the coder's token tables (memory corruption, a hang)."""
    gains = synthesis_gains_97(levels)
    largest = max([gains[0]] + [g for g3 in gains[1:] for g in g3])
    return 2.0 * max(1, peak) * math.sqrt(largest) / (MAX_COEFFICIENT // 2)


def _check_magnitude(mag: np.ndarray, step) -> None:
    """Refuse quantised magnitudes the entropy coder cannot take (and that the int32
    cast would wrap), instead of letting them reach the compiled coder."""
    top = float(mag.max(initial=0))
    if not top < MAX_COEFFICIENT:  # (also catches NaN)
        raise RuntimeError(f"internal error: a quantised coefficient of {top:.3g} (step {float(np.min(step)):.3g}) "
                           f"is beyond the entropy coder's limit of {MAX_COEFFICIENT}: the step is too fine")


def search_step(g: Callable[[float], float], target: float, start: float, *,
                want_at_most: bool, tolerance: float, log_value: bool, floor: float = 0.0,
                max_iter: int = 16, max_bracket: int = 24) -> float:
    """Find the base step where ``g`` (decreasing in the step) crosses ``target``.

    ``want_at_most``: return a step with ``g <= target`` (file size); otherwise one
    with ``g >= target`` (PSNR). Brackets by doubling, then interpolates in
    log-step (on log g for sizes, on g for PSNR, both nearly linear there).
    Stops when the answer is within ``tolerance`` (relative for sizes, absolute
    for PSNR) of the target. If the target is out of reach, returns the
    nearest end. No step below ``floor`` (:func:`step_floor`) is tried, and ``g``
    is called at most ``1 + max_bracket + max_iter`` times.
    """
    a = b = start = max(start, floor)
    va = vb = g(start)
    n = 0
    while va < target and n < max_bracket and a > floor:  # a: small step, high value
        a = max(a / 2.0, floor)
        va, prev = g(a), va
        n += 1
        if va == prev and n > 2:        # flat: the target is out of reach
            break
    while vb > target and n < max_bracket:                 # b: large step, low value
        b *= 2.0
        vb, prev = g(b), vb
        n += 1
        if vb == prev and n > 2:        # e.g. a flat background already all zero
            break
    if va < target:
        return a
    if vb > target:
        return b

    def close(v: float) -> bool:
        err = abs(v - target)
        return err <= (tolerance * target if log_value else tolerance)

    tr = (lambda v: math.log(max(v, 1e-12))) if log_value else (lambda v: v)
    for _ in range(max_iter):
        if close(vb if want_at_most else va) or math.log(b / a) < 1e-4:
            break
        ta, tb = tr(va), tr(vb)
        frac = 0.5 if ta == tb else min(0.85, max(0.15, (ta - tr(target)) / (ta - tb)))
        m = math.exp(math.log(a) + frac * (math.log(b) - math.log(a)))
        vm = g(m)
        if vm >= target:
            a, va = m, vm
        else:
            b, vb = m, vm
        if vm == target:
            return m
    return b if want_at_most else a
