"""Entropy coding of wavelet decompositions.

A decomposition is coded as one *segment per resolution*: segment 0 holds the
LL band (as its median-edge-detector residual), segment r holds the three detail
bands of the r-th coarsest level. Each segment has its own range coder and raw
bit stream and fresh adaptive models, so a reader that wants 1/2^k resolution
stops after the first ``levels - k + 1`` segments.

Segment layout: ``varint(len(arith)) arith raw`` (see docs/FORMAT.md).
"""
from __future__ import annotations

import numpy as np

from .container import read_varint, varint
from .errors import CorruptStreamError
from .transform import band_shapes, dwt53_forward

_EMPTY = np.zeros((0, 0), dtype=np.int32)
_KERNELS = None
#: The token alphabet (``_kernels.NSYM``) codes magnitudes below 2^28; the LL band is
#: coded as its MED residual, up to twice its largest magnitude. Every coefficient
#: handed to the coder must therefore be below 2^27 (checked before coding: a larger
#: one would index past the models' tables in the compiled coder).
MAX_COEFFICIENT = 1 << 27


def _k():
    global _KERNELS
    if _KERNELS is None:
        from . import _kernels  # the compiled kernels, loaded on first use
        _KERNELS = _kernels
    return _KERNELS


class _Encoder:
    """One range coder + raw bit writer; ``finish`` reports a too-small buffer."""

    def __init__(self, n_symbols: int, raw_bits: int, worst_case: bool = False, lossy: bool = False) -> None:
        k = _k()
        self.k = k
        self.models = k.new_lossy_models() if lossy else _new_models(k)
        self.st = k.new_encoder()
        if worst_case:
            n_out, n_raw = worst_case_sizes(n_symbols, raw_bits, LOSSY_SYMBOLS if lossy else 3)
        else:
            # Sized for real data (the worst case is 6 bytes a value): a byte per
            # value for the modelled tokens and signs, and raw_bits per value for the
            # raw low bits. A segment that needs more is coded again into buffers of
            # the worst-case size (finish() reports the overflow; the kernels count
            # bytes past the end instead of writing them).
            n_out, n_raw = n_symbols + 1024, n_symbols * raw_bits // 8 + 1024
        self.out = np.empty(n_out, np.uint8)
        self.raw = np.empty(n_raw, np.uint8)

    def band(self, band, parent=_EMPTY, x1=_EMPTY, x2=_EMPTY) -> None:
        freq, tot, sfreq, stot = self.models
        self.k.encode_band(band, parent, x1, x2, self.st, self.out, self.raw, freq, tot, 0, sfreq, stot)

    def lossy_band(self, band, orient: int, parent=_EMPTY, runs: bool = False) -> None:
        self.k.encode_lossy_band(band, parent, self.st, self.out, self.raw, *self.models, orient, runs)

    def finish(self) -> bytes:
        self.k.finish_encoder(self.st, self.out, self.raw)
        n_out, n_raw = int(self.st[self.k.E_POS]), int(self.st[self.k.E_RAWPOS])
        if n_out > self.out.shape[0] or n_raw > self.raw.shape[0]:
            raise OverflowError  # caller codes again with worst-case buffers
        return varint(n_out) + self.out[:n_out].tobytes() + self.raw[:n_raw].tobytes()


#: Modelled symbols a value can cost in the lossy band coder (lossyband.c): the zero
#: and one decisions, the remainder token and the sign, and (quiet runs) a row's zero
#: decision, one a value in a band one column wide.
LOSSY_SYMBOLS = 5


def worst_case_sizes(n_values: int, raw_bits: int, symbols: int = 3) -> tuple[int, int]:
    """Bytes of range-coder output and of raw bits that ``n_values`` coded values can
    take at most. A value costs at most ``symbols`` modelled symbols (band coder: 3, a
    run token, the token of the value that ends it and a sign; predictive coder: 2
    tokens; lossy band coder: LOSSY_SYMBOLS), and a symbol at most 2 bytes: models are
    rescaled before their total passes 2^15 and binary probabilities stay within
    [2^-10, 1 - 2^-10], so the range shrinks by at most 2^15 per symbol and is
    renormalised by at most 2 byte shifts. Each value sends at most 2 raw fields (a
    run length, a magnitude) of at most ``raw_bits`` bits. Plus the coder's 5 flush
    bytes and slack."""
    return 2 * symbols * n_values + 64, (2 * n_values * raw_bits + 7) // 8 + 64


class _Decoder:
    """Mirror of _Encoder over one segment's bytes."""

    def __init__(self, seg: bytes, lossy: bool = False) -> None:
        k = _k()
        self.k = k
        n_arith, pos = read_varint(seg, 0, "length field in a coded segment")
        if pos + n_arith > len(seg):
            raise CorruptStreamError("coded segment shorter than its length field")
        buf = np.frombuffer(seg, dtype=np.uint8)
        self.inp, self.raw = buf[pos:pos + n_arith], buf[pos + n_arith:]
        self.dt = np.zeros(8, np.int64)
        k.start_decoder(self.dt, self.inp)
        self.models = k.new_lossy_models() if lossy else _new_models(k)

    def lossy_band(self, shape, orient: int, parent=_EMPTY, runs: bool = False) -> np.ndarray:
        out = np.empty(shape, np.int32)
        self.k.decode_lossy_band(out, parent, self.dt, self.inp, self.raw, *self.models, orient, runs)
        return out

    def band(self, shape, parent=_EMPTY, x1=_EMPTY, x2=_EMPTY) -> np.ndarray:
        out = np.empty(shape, np.int32)
        freq, tot, sfreq, stot = self.models
        self.k.decode_band(out, parent, x1, x2, self.dt, self.inp, self.raw, freq, tot, 0, sfreq, stot)
        return out


def _new_models(k) -> tuple:
    """The band coder's models of one segment. The format names four model groups (LL,
    finest level, second finest, coarser: docs/FORMAT.md), but a segment codes all its
    bands in one group and every segment's models start afresh, every group alike: one
    group's models serve any segment (copying four cost ~3 us a segment)."""
    return k.new_models(1) + k.new_sign_models(1)


def raw_bits_for(max_value: int) -> int:
    """Raw bits per symbol that values (magnitudes, run lengths) up to ``max_value``
    can need: a hybrid integer of bit length n sends n - 2 low bits raw."""
    return max(0, int(max_value).bit_length() - 2)


def _encode_with_retry(fn, n_symbols: int, raw_bits: int, lossy: bool = False) -> bytes:
    """``fn(encoder)`` codes a segment; coded again, once, into worst-case buffers if
    the first ones (sized for real data) were too small."""
    for worst_case in (False, True):
        enc = _Encoder(n_symbols, raw_bits, worst_case, lossy)
        fn(enc)
        try:
            return enc.finish()
        except OverflowError:
            pass
    raise RuntimeError(f"internal error: a segment of {n_symbols} values overflowed its worst-case buffers")


def _check_coefficients(mag: int) -> None:
    if mag >= MAX_COEFFICIENT:
        raise RuntimeError(f"internal error: a coefficient of magnitude {mag} is beyond the entropy coder's "
                           f"limit of {MAX_COEFFICIENT}")


def _max_abs(a: np.ndarray) -> int:
    return max(int(a.max(initial=0)), -int(a.min(initial=0)))


def _as32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def encode_decomposition(bands: list, levels: int, lossy: bool = False, runs: bool = False) -> list[bytes]:
    """Code an integer decomposition; returns ``levels + 1`` segments. ``lossy``: the
    detail bands by the lossy band coder (lossyband.c; the stream's LOSSY_CONTEXTS
    flag), the LL band as always; ``runs``: its quiet-run variant (with ``lossy``; the
    stream's LOSSY_RUNS flag)."""
    k = _k()
    ll = _as32(bands[0])
    _check_coefficients(_max_abs(ll))
    ll_res = k.med_residual(ll)
    segs = [_encode_with_retry(lambda enc: enc.band(ll_res), ll_res.size,
                               raw_bits_for(max(_max_abs(ll_res), ll_res.shape[-1] + 1)))]
    for r in range(1, levels + 1):
        hl, lh, hh = (_as32(b) for b in bands[r])
        mag = max(_max_abs(hl), _max_abs(lh), _max_abs(hh))
        _check_coefficients(mag)
        if mag == 0:
            segs.append(b"")  # v2: an empty segment is a level of zeros (7+ bytes saved)
            continue
        top = max(mag, lh.shape[-1] + 1)  # the largest value coded: a magnitude or a run
        p = [_as32(b) for b in bands[r - 1]] if r > 1 else [_EMPTY] * 3

        def code_level(enc, hl=hl, lh=lh, hh=hh, p=p):
            if lossy:
                for orient, band in enumerate((hl, lh, hh)):
                    enc.lossy_band(band, orient, p[orient], runs)
                return
            enc.band(hl, p[0])
            enc.band(lh, p[1], hl)
            enc.band(hh, p[2], hl, lh)

        segs.append(_encode_with_retry(code_level, hl.size + lh.size + hh.size, raw_bits_for(top), lossy))
    return segs


def encode_lossless_plane(plane: np.ndarray, levels: int) -> list[bytes]:
    """A lossless plane held whole, as its 5/3 decomposition's ``levels + 1`` segments:
    ``encode_decomposition(dwt53_forward(plane, levels), levels)`` in one compiled call
    (codec_core/_native/planeencode.c: the same bytes; the Python between the kernels was
    about 60% of the coder choice's wavelet side)."""
    k = _k()
    segs = k.encode_lossless_plane(_as32(plane), levels, k.fresh_plane_models()[:4], MAX_COEFFICIENT)
    if segs is None:  # a coefficient past the coder's limit: the step-by-step coder raises its error
        return encode_decomposition(dwt53_forward(plane, levels), levels)
    return segs


def decode_decomposition(segs: list[bytes], rows: int, cols: int, levels: int,
                         upto: int | None = None, lossy: bool = False, runs: bool = False) -> list:
    """Decode segments 0..upto (default all) into integer bands (``lossy``, ``runs``: as
    :func:`encode_decomposition` coded them with them)."""
    k = _k()
    shapes = band_shapes(rows, cols, levels)
    upto = levels if upto is None else upto
    bands: list = [k.med_reconstruct(_Decoder(segs[0]).band(shapes[0]))]
    for r in range(1, upto + 1):
        if not segs[r]:
            bands.append(tuple(np.zeros(sh, np.int32) for sh in shapes[r]))
            continue
        dec = _Decoder(segs[r], lossy)
        p = bands[r - 1] if r > 1 else (_EMPTY, _EMPTY, _EMPTY)
        if lossy:
            hl, lh, hh = (dec.lossy_band(shapes[r][o], o, p[o], runs) for o in range(3))
        else:
            hl = dec.band(shapes[r][0], p[0])
            lh = dec.band(shapes[r][1], p[1], hl)
            hh = dec.band(shapes[r][2], p[2], hl, lh)
        bands.append((hl, lh, hh))
    return bands
