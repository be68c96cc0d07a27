"""Predictive lossless / near-lossless coding of one plane (max error ``k``).

``encode_plane(plane, k, vmin, vmax)`` codes a 2-D integer plane so that every
decoded sample is within ``±k`` of the input (``k = 0``: bit-exact);
``decode_plane(seg, rows, cols, k, vmin, vmax)`` returns that reconstruction.
``vmin``/``vmax`` bound the samples (every input sample must lie inside; the
decoder clips to them) and, like ``k`` and the shape, are not stored in the
segment: the caller keeps them in its header.

``encode_plane_masked(plane, mask, base, k, vmin, vmax)`` /
``decode_plane_masked(seg, mask, base, k, vmin, vmax)`` code only the samples
where the boolean ``mask`` is set (hybrid ROI coding); the others are taken
from ``base`` (known to the decoder, e.g. the decoded lossy layer), clipped to
``[vmin, vmax]``, and serve as neighbours for the prediction.

``encode_planes`` / ``decode_planes`` code the planes of a colour image, each
later plane possibly as its difference from the reconstructed reference plane.

The segment has the layout of :mod:`codec_core.entropy`:
``varint(len(arith)) arith raw``. The coder itself (blended prediction with
bias correction, residual quantised in the loop with step ``2k + 1``, adaptive
context modelling, JPEG-LS-style run mode) is in
:mod:`codec_core._predictive_kernels`.
"""
from __future__ import annotations

import numpy as np

from .entropy import _Decoder, _encode_with_retry, raw_bits_for
from .errors import CorruptStreamError
from .format import RANGE_HEAD, ColourPlane

# Placeholders for the half of the coder state a call does not use. The kernel
# serves both directions; matching array types keep it to one compiled version.
_EMPTY_X = np.zeros((0, 0), dtype=np.int32)
_EMPTY_IN = np.frombuffer(b"", dtype=np.uint8)  # read-only, like a decoder's input
_EMPTY_OUT = np.zeros(0, dtype=np.uint8)
_DUMMY_STATE = np.zeros(8, dtype=np.int64)
_NO_MASK = np.zeros((0, 0), dtype=np.uint8)  # 0 x 0 mask: every sample is coded
_NO_BASE = np.zeros((0, 0), dtype=np.int32)
_NO_TABLE = np.zeros(0, dtype=np.int32)  # no value table: the samples are values
_LIMIT = 1 << 31
_MAX_SPAN = 1 << 24  # keeps every folded residual inside the token alphabet


def _pk():
    from . import _predictive_kernels  # the compiled kernel, loaded on first use
    return _predictive_kernels


def _check_params(k: int, vmin: int, vmax: int) -> tuple[int, int, int]:
    k, vmin, vmax = int(k), int(vmin), int(vmax)
    if k < 0 or k > 0xFFFF:
        raise ValueError(f"max error k must be in 0..65535, got {k}")
    if not (-_LIMIT <= vmin <= vmax < _LIMIT) or vmax - vmin > _MAX_SPAN:
        raise ValueError(f"sample range [{vmin}, {vmax}] not supported (span <= 2^24)")
    return k, vmin, vmax


def _encode(x: np.ndarray, k: int, vmin: int, vmax: int, mask: np.ndarray, base: np.ndarray,
            n_coded: int, recon: bool = False) -> tuple[bytes, np.ndarray]:
    """Run the kernel as an encoder; returns the segment and the padded
    reconstruction (``recon=True``) or the kernel's last three rows of it (a
    ring: no second plane-sized array when the reconstruction is not wanted)."""
    pk = _pk()
    P = np.zeros((x.shape[0] + 2 if recon else 3, x.shape[1] + 4), dtype=np.int32)

    def fn(enc):
        freq, tot = pk.new_plane_models()
        if x.size:
            pk.code_plane(False, x, P, k, vmin, vmax, enc.st, enc.out, enc.raw,
                          _DUMMY_STATE.copy(), _EMPTY_IN, _EMPTY_IN, freq, tot, pk.RECIP, mask, base)

    # residuals are folded into the range; run lengths are at most a row
    top = max(2 * (vmax - vmin) + 2, x.shape[1] + 1)
    return _encode_with_retry(fn, max(n_coded, 1), raw_bits_for(top)), P


def encode_plane(plane: np.ndarray, k: int, vmin: int, vmax: int, *,
                 return_recon: bool = False):
    """Code a 2-D integer plane with max error ``k``; returns one segment.

    With ``return_recon=True`` returns ``(segment, reconstruction)``: the int32
    plane the decoder will produce (for coding later planes against it), a view into
    the kernel's padded plane (as :func:`decode_plane` gives it: a contiguous copy
    held a third plane beside the coded one and the padded one, the near-lossless
    colour trial's peak).
    """
    a = np.asarray(plane)
    if a.ndim != 2:
        raise ValueError("encode_plane expects a 2-D plane")
    k, vmin, vmax = _check_params(k, vmin, vmax)
    rows, cols = a.shape
    if a.size and (int(a.min()) < vmin or int(a.max()) > vmax):
        raise ValueError("plane has samples outside [vmin, vmax]")
    x = np.ascontiguousarray(a, dtype=np.int32)
    seg, P = _encode(x, k, vmin, vmax, _NO_MASK, _NO_BASE, x.size, recon=return_recon)
    if return_recon:
        del x
        return seg, P[2:, 2:cols + 2]
    return seg


def decode_plane(seg: bytes | memoryview, rows: int, cols: int, k: int, vmin: int, vmax: int,
                 recon: np.ndarray | None = None) -> np.ndarray:
    """Decode one segment into an int32 ``(rows, cols)`` reconstruction (a view
    into the kernel's padded plane: no copy, the decoder's peak memory); ``recon``:
    that padded plane, (rows + 2, cols + 4) C-contiguous int32, given by the caller.

    Raises :class:`CorruptStreamError` if the segment is malformed (bad length
    field, data ending early, trailing bytes) and, since they come from a
    stream header, if ``k``, ``vmin``/``vmax`` or the shape are out of range.
    """
    try:
        k, vmin, vmax = _check_params(k, vmin, vmax)
        rows, cols = int(rows), int(cols)
        if rows < 0 or cols < 0:
            raise ValueError("negative shape")
    except (ValueError, TypeError) as exc:
        raise CorruptStreamError(f"bad predictive plane parameters: {exc}") from None
    return _decode(seg, rows, cols, k, vmin, vmax, _NO_MASK, _NO_BASE, recon)


def decode_plane_into(seg: bytes | memoryview, k: int, vmin: int, vmax: int, out: np.ndarray,
                      table: np.ndarray | None, clip: tuple[int, int]) -> np.ndarray:
    """Decode one segment (coded with max error ``k`` over [vmin, vmax]) straight into
    ``out`` (2-D, any integer type that holds ``clip``, rows in order): each row, once
    the decoder is done with it, through the finish of one channel (ranks to the values
    of ``table``, int32, if given; clipped to ``clip``; cast). The decoder keeps a ring
    of three int32 rows instead of a padded plane of the whole tile, which was 4 bytes a
    sample beside the output (5.3x the raw size of an 8-bit plane). Raises as
    :func:`decode_plane`."""
    try:
        k, vmin, vmax = _check_params(k, vmin, vmax)
    except (ValueError, TypeError) as exc:
        raise CorruptStreamError(f"bad predictive plane parameters: {exc}") from None
    rows, cols = out.shape
    return _decode(seg, rows, cols, k, vmin, vmax, _NO_MASK, _NO_BASE,
                   sink=(out, _NO_TABLE if table is None else table, int(clip[0]), int(clip[1])))


def _new_recon(rows: int, cols: int) -> np.ndarray:
    """The decoder's padded reconstruction, not zeroed: the kernel writes every sample
    and every padding value before it reads it (tests/test_predictive.py decodes into
    garbage to check; a memset of the plane was 1-5% of a near-lossless decode)."""
    return np.empty((rows + 2, cols + 4), dtype=np.int32)


def _decode(seg, rows: int, cols: int, k: int, vmin: int, vmax: int, mask: np.ndarray,
            base: np.ndarray, P: np.ndarray | None = None, sink: tuple | None = None) -> np.ndarray:
    """Run the kernel as a decoder over one segment (into the padded plane ``P`` if
    given); returns the reconstruction, or with ``sink`` (out, table, lo, hi: see
    :func:`decode_plane_into`) out, the rows finished into it from a ring."""
    try:
        view = memoryview(seg)
    except TypeError as exc:  # not bytes-like
        raise CorruptStreamError("coded segment is not bytes-like") from exc
    # a read-only segment's bytes read in place (the decoder's: a lossless plane's
    # segment is ~0.4x its raw size, and a copy of it lived beside the plane); a
    # writable buffer is copied, as its owner may change or resize it while it decodes
    if view.c_contiguous and view.readonly:
        seg = view.cast("B")
    else:
        seg = view.tobytes()
        view.release()  # (no export left on the caller's buffer, even from a traceback)
    dec = _Decoder(seg)  # raises CorruptStreamError on a bad length field
    pk = _pk()
    from . import _kernels as kk
    if sink is not None:
        P = np.empty((3, cols + 4), dtype=np.int32)
    elif P is None:
        P = _new_recon(rows, cols)
    elif P.shape != (rows + 2, cols + 4) or P.dtype != np.int32 or not P.flags.c_contiguous:
        raise ValueError("recon must be a C-contiguous int32 array of shape (rows + 2, cols + 4)")
    if rows and cols:
        freq, tot = pk.new_plane_models()
        pk.code_plane(True, _EMPTY_X, P, k, vmin, vmax, _DUMMY_STATE.copy(), _EMPTY_OUT, _EMPTY_OUT,
                      dec.dt, dec.inp, dec.raw, freq, tot, pk.RECIP, mask, base, *((sink,) if sink else ()))
    if int(dec.dt[kk.D_OVER]) > 0 or int(dec.dt[kk.D_RAWPOS]) != dec.raw.shape[0]:
        raise CorruptStreamError("coded plane segment is truncated or has trailing bytes")
    return sink[0] if sink is not None else P[2:, 2:cols + 2]


# --------------------------------------------------------------- masked planes
def _masked_inputs(mask, base, shape=None):
    m = np.asarray(mask)
    b = np.asarray(base)
    if m.ndim != 2 or b.shape != m.shape or (shape is not None and m.shape != shape):
        raise ValueError("mask and base must be 2-D and of the plane's shape")
    if m.dtype != np.bool_:
        raise ValueError("mask must be a boolean array")
    if b.dtype.kind not in "iu":
        raise ValueError("base must be an integer array")
    if b.dtype.itemsize >= 4 and b.dtype != np.int32:  # saturate into int32 (the kernel clips
        info = np.iinfo(b.dtype)                        # to [vmin, vmax] anyway)
        b = np.clip(b, max(info.min, -_LIMIT), min(info.max, _LIMIT - 1))
    return (np.ascontiguousarray(m, dtype=np.uint8), np.ascontiguousarray(b, dtype=np.int32))


def encode_plane_masked(plane: np.ndarray, mask: np.ndarray, base: np.ndarray, k: int,
                        vmin: int, vmax: int) -> bytes:
    """Code the samples of ``plane`` where ``mask`` is True with max error ``k``.

    Samples where ``mask`` is False are not coded: their reconstruction is
    ``clip(base, vmin, vmax)``, known to the decoder, and they serve as ordinary
    neighbours for the prediction and the contexts of the coded samples.
    """
    a = np.asarray(plane)
    if a.ndim != 2:
        raise ValueError("encode_plane_masked expects a 2-D plane")
    k, vmin, vmax = _check_params(k, vmin, vmax)
    m8, b32 = _masked_inputs(mask, base, a.shape)
    rows, cols = a.shape
    sel = a[m8.view(bool)]
    if sel.size and (int(sel.min()) < vmin or int(sel.max()) > vmax):
        raise ValueError("plane has samples inside the mask outside [vmin, vmax]")
    # samples outside the mask are never read: replace them so the int32 cast is safe
    x = np.ascontiguousarray(np.where(m8.view(bool), a.astype(np.int64), vmin), dtype=np.int32)
    return _encode(x, k, vmin, vmax, m8, b32, int(sel.size))[0]


def decode_plane_masked(seg: bytes, mask: np.ndarray, base: np.ndarray, k: int,
                        vmin: int, vmax: int) -> np.ndarray:
    """Inverse of :func:`encode_plane_masked`: the int32 ``(rows, cols)`` reconstruction.

    ``clip(base)`` outside the mask, the decoded samples inside. Raises
    :class:`CorruptStreamError` on a malformed segment or bad parameters.
    """
    try:
        k, vmin, vmax = _check_params(k, vmin, vmax)
        m8, b32 = _masked_inputs(mask, base)
    except (ValueError, TypeError) as exc:
        raise CorruptStreamError(f"bad masked plane parameters: {exc}") from None
    return _decode(seg, m8.shape[0], m8.shape[1], k, vmin, vmax, m8, b32)


# --------------------------------------------------------------- colour planes
# Planes of one image coded in order; every plane after the reference may be
# coded as its difference from the *reconstructed* reference (inter-channel
# redundancy of RGB; the error bound holds because the reference is known
# exactly to the decoder). Segment of a later plane:
#   ColourPlane.PLAIN + plane segment                  (coded as is)
#   ColourPlane.DIFFERENCE + i32 lo + i32 hi + segment (plane - ref, in [lo, hi]; format.RANGE_HEAD)
# The reference plane's segment is a plain plane segment.


def encode_planes(planes: list, k: int, vmin: int, vmax: int, ref: int = 0) -> list[bytes]:
    """Code same-shape planes (e.g. R, G, B) with max error ``k``; one segment each.

    Plane ``ref`` is coded first on its own; each other plane is coded as is or
    as its difference from the reconstructed reference, whichever has the
    smaller total absolute gradient (a cheap proxy for the coded size).
    """
    planes = [np.asarray(p) for p in planes]
    if not planes or any(p.shape != planes[0].shape or p.ndim != 2 for p in planes):
        raise ValueError("encode_planes expects same-shape 2-D planes")
    segs: list = [b""] * len(planes)
    segs[ref], rec = encode_plane(planes[ref], k, vmin, vmax, return_recon=True)
    for c, p in enumerate(planes):
        if c == ref:
            continue
        d = p.astype(np.int32)  # samples and references fit 17 bits: no overflow
        plain = _activity(d)
        d -= rec  # in place: the plane itself is coded from p
        if d.size and _activity(d) < plain:
            lo, hi = int(d.min()), int(d.max())
            if hi - lo <= _MAX_SPAN:
                segs[c] = RANGE_HEAD.pack(ColourPlane.DIFFERENCE, lo, hi) + encode_plane(d, k, lo, hi)
                del d  # (before the next plane's: one difference plane alive at a time)
                continue
        del d
        segs[c] = bytes([ColourPlane.PLAIN]) + encode_plane(p, k, vmin, vmax)
    return segs


def decode_planes(segs: list, rows: int, cols: int, k: int, vmin: int, vmax: int,
                  ref: int = 0, recon: np.ndarray | None = None) -> list[np.ndarray]:
    """Inverse of :func:`encode_planes`; raises :class:`CorruptStreamError` on bad segments.
    ``recon``: the padded planes, (len(segs), rows + 2, cols + 4) C-contiguous int32:
    each plane is decoded into its own (:func:`decode_plane`), and every plane returned
    is then the view ``recon[c, 2:, 2:cols + 2]`` (a difference plane finished in place)."""
    if not 0 <= ref < len(segs):
        raise CorruptStreamError("bad reference plane index")
    if recon is not None and not (isinstance(recon, np.ndarray) and recon.ndim == 3
                                  and recon.shape[0] == len(segs) and recon.flags.c_contiguous):
        # (C-contiguous: no two planes share memory)
        raise ValueError("recon must be a C-contiguous int32 array of shape (planes, rows + 2, cols + 4)")
    out: list = [None] * len(segs)
    into = [None] * len(segs) if recon is None else list(recon)
    out[ref] = rec = decode_plane(segs[ref], rows, cols, k, vmin, vmax, into[ref])
    for c, seg in enumerate(segs):
        if c == ref:
            continue
        seg = memoryview(seg).tobytes() if not isinstance(seg, bytes) else seg
        kind = seg[0] if seg else None
        if kind == ColourPlane.PLAIN:  # (views of the bytes: decode_plane reads them in place)
            out[c] = decode_plane(memoryview(seg)[1:], rows, cols, k, vmin, vmax, into[c])
        elif kind == ColourPlane.DIFFERENCE and len(seg) >= RANGE_HEAD.size:
            _, lo, hi = RANGE_HEAD.unpack_from(seg)
            d = decode_plane(memoryview(seg)[RANGE_HEAD.size:], rows, cols, k, lo, hi, into[c])
            d += rec  # in place: a difference and its reference fit 25 bits
            out[c] = np.clip(d, vmin, vmax, out=d)
        else:
            raise CorruptStreamError("bad colour plane header")
    return out


def _activity(a: np.ndarray) -> int:
    """Total absolute gradient, in bands of rows (small temporaries; exact integers)."""
    total = 0
    for y in range(0, a.shape[0], 64):
        band = a[y:y + 65]  # one row of overlap for the vertical differences
        total += int(np.abs(np.diff(band, axis=0)).sum(dtype=np.int64))
        total += int(np.abs(np.diff(a[y:y + 64], axis=1)).sum(dtype=np.int64))
    return total
