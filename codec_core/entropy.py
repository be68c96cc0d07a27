"""Entropy coding of wavelet decompositions and masked residual planes.

A decomposition is coded as one *segment per resolution*: segment 0 holds the
LL band (as its median-edge-detector residual), segment r holds the three detail
bands of the r-th coarsest level. Each segment has its own range coder and raw
bit stream and fresh adaptive models, so a reader that wants 1/2^k resolution
stops after the first ``levels - k + 1`` segments.

Segment layout: ``varint(len(arith)) arith raw`` (see docs/FORMAT.md).
"""
from __future__ import annotations

import numpy as np

from .errors import CorruptStreamError
from .transform import band_shapes

_EMPTY = np.zeros((0, 0), dtype=np.int32)
_EMPTY_MASK = np.zeros((0, 0), dtype=np.uint8)
# Model groups: LL, finest level, second finest, all coarser levels, residual planes.
_G_LL, _G_L1, _G_L2, _G_LN, _G_RES = 0, 1, 2, 3, 4
_GROUPS = 5


def _k():
    from . import _kernels  # lazy: numba costs ~0.3 s to import
    return _kernels


def _group_of(resolution: int, levels: int) -> int:
    level = levels - resolution + 1  # 1 = finest
    return _G_L1 if level == 1 else _G_L2 if level == 2 else _G_LN


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 35:
            raise CorruptStreamError("bad length field in a coded segment")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


class _Encoder:
    """One range coder + raw bit writer, grown and retried on overflow."""

    def __init__(self, n_symbols: int) -> None:
        k = _k()
        self.k = k
        self.cap = 2 * n_symbols + 64
        self.freq, self.tot = k.new_models(_GROUPS)
        self.st = k.new_encoder()
        self.out = np.empty(self.cap, np.uint8)
        self.raw = np.empty(3 * n_symbols + 64, np.uint8)

    def finish(self) -> bytes:
        self.k.finish_encoder(self.st, self.out, self.raw)
        n_out, n_raw = int(self.st[self.k.E_POS]), int(self.st[self.k.E_RAWPOS])
        if n_out > self.out.shape[0] or n_raw > self.raw.shape[0]:
            raise OverflowError  # caller retries with bigger buffers (never in practice)
        return _varint(n_out) + self.out[:n_out].tobytes() + self.raw[:n_raw].tobytes()


def _split_segment(seg: bytes) -> tuple[np.ndarray, np.ndarray]:
    n_arith, pos = _read_varint(seg, 0)
    if pos + n_arith > len(seg):
        raise CorruptStreamError("coded segment shorter than its length field")
    buf = np.frombuffer(seg, dtype=np.uint8)
    return buf[pos:pos + n_arith], buf[pos + n_arith:]


def _decoder(seg: bytes):
    k = _k()
    inp, raw = _split_segment(seg)
    dt = np.zeros(8, np.int64)
    k.start_decoder(dt, inp)
    freq, tot = k.new_models(_GROUPS)
    return k, dt, inp, raw, freq, tot


def _encode_with_retry(fn, n_symbols: int) -> bytes:
    scale = 1
    while True:
        enc = _Encoder(n_symbols * scale)
        fn(enc)
        try:
            return enc.finish()
        except OverflowError:
            scale *= 4


def encode_decomposition(bands: list, levels: int) -> list[bytes]:
    """Code an integer decomposition; returns ``levels + 1`` segments."""
    k = _k()
    segs = []
    ll_res = k.med_residual(np.ascontiguousarray(bands[0], dtype=np.int32))

    def code_ll(enc):
        k.encode_band(ll_res, _EMPTY, _EMPTY, _EMPTY, _EMPTY_MASK, enc.st, enc.out, enc.raw,
                      enc.freq, enc.tot, _G_LL * k.NCTX)

    segs.append(_encode_with_retry(code_ll, ll_res.size))
    for r in range(1, levels + 1):
        hl, lh, hh = (np.ascontiguousarray(b, dtype=np.int32) for b in bands[r])
        parents = bands[r - 1] if r > 1 else (_EMPTY, _EMPTY, _EMPTY)
        g = _group_of(r, levels) * k.NCTX

        def code_level(enc, hl=hl, lh=lh, hh=hh, parents=parents, g=g):
            args = (enc.st, enc.out, enc.raw, enc.freq, enc.tot, g)
            k.encode_band(hl, _as32(parents[0]), _EMPTY, _EMPTY, _EMPTY_MASK, *args)
            k.encode_band(lh, _as32(parents[1]), hl, _EMPTY, _EMPTY_MASK, *args)
            k.encode_band(hh, _as32(parents[2]), hl, lh, _EMPTY_MASK, *args)

        segs.append(_encode_with_retry(code_level, hl.size + lh.size + hh.size))
    return segs


def _as32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def decode_decomposition(segs: list[bytes], rows: int, cols: int, levels: int,
                         upto: int | None = None) -> list:
    """Decode segments 0..upto (default all) into bands; missing levels are None."""
    shapes = band_shapes(rows, cols, levels)
    upto = levels if upto is None else upto
    k, dt, inp, raw, freq, tot = _decoder(segs[0])
    res = np.empty(shapes[0], np.int32)
    k.decode_band(res, _EMPTY, _EMPTY, _EMPTY, _EMPTY_MASK, dt, inp, raw, freq, tot, _G_LL * k.NCTX)
    bands: list = [k.med_reconstruct(res)]
    for r in range(1, upto + 1):
        k, dt, inp, raw, freq, tot = _decoder(segs[r])
        hl, lh, hh = (np.empty(s, np.int32) for s in shapes[r])
        parents = bands[r - 1] if r > 1 else (_EMPTY, _EMPTY, _EMPTY)
        args = (dt, inp, raw, freq, tot, _group_of(r, levels) * k.NCTX)
        k.decode_band(hl, parents[0], _EMPTY, _EMPTY, _EMPTY_MASK, *args)
        k.decode_band(lh, parents[1], hl, _EMPTY, _EMPTY_MASK, *args)
        k.decode_band(hh, parents[2], hl, lh, _EMPTY_MASK, *args)
        bands.append((hl, lh, hh))
    return bands


def encode_masked_plane(values: np.ndarray, mask: np.ndarray) -> bytes:
    """Code an int32 plane only where ``mask`` is set (ROI residual layer)."""
    k = _k()
    v = _as32(values)
    m = np.ascontiguousarray(mask, dtype=np.uint8)

    def code(enc):
        k.encode_band(v, _EMPTY, _EMPTY, _EMPTY, m, enc.st, enc.out, enc.raw,
                      enc.freq, enc.tot, _G_RES * k.NCTX)

    return _encode_with_retry(code, int(m.sum()) + 1)


def decode_masked_plane(seg: bytes, mask: np.ndarray) -> np.ndarray:
    k, dt, inp, raw, freq, tot = _decoder(seg)
    out = np.empty(mask.shape, np.int32)
    k.decode_band(out, _EMPTY, _EMPTY, _EMPTY, np.ascontiguousarray(mask, dtype=np.uint8),
                  dt, inp, raw, freq, tot, _G_RES * k.NCTX)
    return out
