"""Predictive lossless / near-lossless coding of one plane (max error ``k``).

``encode_plane(plane, k, vmin, vmax)`` codes a 2-D integer plane so that every
decoded sample is within ``±k`` of the input (``k = 0``: bit-exact);
``decode_plane(seg, rows, cols, k, vmin, vmax)`` returns that reconstruction.
``vmin``/``vmax`` bound the samples (every input sample must lie inside; the
decoder clips to them) and, like ``k`` and the shape, are not stored in the
segment: the caller keeps them in its header.

The segment has the layout of :mod:`codec_core.entropy`:
``varint(len(arith)) arith raw``. The coder itself (blended prediction with
bias correction, residual quantised in the loop with step ``2k + 1``, adaptive
context modelling, JPEG-LS-style run mode) is in
:mod:`codec_core._predictive_kernels`.
"""
from __future__ import annotations

import numpy as np

from .entropy import _Decoder, _encode_with_retry
from .errors import CorruptStreamError

_EMPTY_X = np.zeros((0, 0), dtype=np.int32)
_EMPTY_U8 = np.frombuffer(b"", dtype=np.uint8)  # read-only, like a decoder's input
_LIMIT = 1 << 31


def _pk():
    from . import _predictive_kernels  # lazy: numba is slow to import
    return _predictive_kernels


def _check_params(k: int, vmin: int, vmax: int) -> tuple[int, int, int]:
    k, vmin, vmax = int(k), int(vmin), int(vmax)
    if k < 0 or k > 0xFFFF:
        raise ValueError(f"max error k must be in 0..65535, got {k}")
    if not (-_LIMIT <= vmin <= vmax < _LIMIT):
        raise ValueError(f"bad sample range [{vmin}, {vmax}]")
    return k, vmin, vmax


def encode_plane(plane: np.ndarray, k: int, vmin: int, vmax: int) -> bytes:
    """Code a 2-D integer plane with max error ``k``; returns one segment."""
    a = np.asarray(plane)
    if a.ndim != 2:
        raise ValueError("encode_plane expects a 2-D plane")
    k, vmin, vmax = _check_params(k, vmin, vmax)
    rows, cols = a.shape
    if a.size and (int(a.min()) < vmin or int(a.max()) > vmax):
        raise ValueError("plane has samples outside [vmin, vmax]")
    x = np.ascontiguousarray(a, dtype=np.int32)
    pk = _pk()
    from . import _kernels as kk

    def fn(enc):
        freq, tot = pk.new_plane_models()
        P = np.zeros((rows + 2, cols + 4), dtype=np.int32)
        if x.size:
            pk.code_plane(False, x, P, k, vmin, vmax, enc.st, enc.out, enc.raw,
                          _DUMMY_DT, _EMPTY_U8, _EMPTY_U8, freq, tot, pk.RECIP)

    return _encode_with_retry(fn, max(x.size, 1))


_DUMMY_DT = np.zeros(8, dtype=np.int64)
_DUMMY_ST = np.zeros(8, dtype=np.int64)


def decode_plane(seg: bytes, rows: int, cols: int, k: int, vmin: int, vmax: int) -> np.ndarray:
    """Decode one segment into an int32 ``(rows, cols)`` reconstruction.

    Raises :class:`CorruptStreamError` if the segment is malformed (bad length
    field, data ending early, trailing bytes).
    """
    k, vmin, vmax = _check_params(k, vmin, vmax)
    rows, cols = int(rows), int(cols)
    if rows < 0 or cols < 0:
        raise ValueError("negative shape")
    try:
        seg = bytes(seg)
    except Exception as exc:  # not bytes-like
        raise CorruptStreamError("coded segment is not bytes-like") from exc
    dec = _Decoder(seg)  # raises CorruptStreamError on a bad length field
    pk = _pk()
    from . import _kernels as kk
    P = np.zeros((rows + 2, cols + 4), dtype=np.int32)
    if rows and cols:
        freq, tot = pk.new_plane_models()
        pk.code_plane(True, _EMPTY_X, P, k, vmin, vmax, _DUMMY_ST, _EMPTY_OUT, _EMPTY_OUT,
                      dec.dt, dec.inp, dec.raw, freq, tot, pk.RECIP)
    over = int(dec.dt[kk.D_OVER])
    if over > 0 or int(dec.dt[kk.D_RAWPOS]) != dec.raw.shape[0]:
        raise CorruptStreamError("coded plane segment is truncated or has trailing bytes")
    return np.ascontiguousarray(P[2:, 2:cols + 2])


_EMPTY_OUT = np.zeros(0, dtype=np.uint8)
