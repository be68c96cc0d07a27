"""Public API: ``encode``, ``decode``, ``info``.

See docs/FORMAT.md for the stream and ../README.md for examples. Arguments are
checked here, once; everything below works on validated int32 arrays.
"""
from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np

from . import container as ct
from . import pipeline as pl
from .decoder import DecodeReport, decode_stream
from .encoder import LossyCoder, Source, encode_reversible
from .errors import CorruptStreamError, DecompressionBombError, HlcError
from .transform import synthesis_gains_97

Mode = Literal["lossless", "near-lossless", "lossy"]

#: Default pixel limit for ``decode`` (same as Pillow's decompression-bomb error
#: threshold). Raise it, or pass ``max_pixels=None``, for files you trust.
MAX_PIXELS = 2 * 89_478_485
#: With the pixel limit on, a stream may claim at most this many samples per byte it
#: holds (beyond a floor of 2**20), so decode time and memory stay proportional to the
#: stream size. The densest real output, a constant image, is ~3,700 samples/byte.
MAX_SAMPLES_PER_BYTE = 1 << 14

_AXES_NDIM = {"YX": 2, "YXC": 3, "ZYX": 3, "ZYXC": 4, "X": 1}
_ECC_MAGIC = b"\x89HLE\r\n\x1a\n"


# ----------------------------------------------------------------- validation

def _check_dtype(arr: np.ndarray) -> int:
    dt = arr.dtype.newbyteorder("=") if arr.dtype.byteorder not in "=|" else arr.dtype
    for code, d in enumerate(ct.DTYPES):
        if dt == d:
            return code
    raise ValueError(f"unsupported dtype {arr.dtype}: HLC encodes uint8, int8, uint16 and int16 arrays")


def _guess_axes(arr: np.ndarray, axes: str | None) -> str:
    if axes is not None:
        if axes not in _AXES_NDIM:
            raise ValueError(f"axes={axes!r} is not one of {sorted(_AXES_NDIM)}")
        if arr.ndim != _AXES_NDIM[axes]:
            raise ValueError(f"axes={axes!r} needs a {_AXES_NDIM[axes]}-D array, got shape {arr.shape}")
        if axes.endswith("C") and arr.shape[-1] != 3:
            raise ValueError(f"axes={axes!r} needs 3 colour samples in the last axis, got shape {arr.shape}")
        return axes
    if arr.ndim == 1:
        return "X"
    if arr.ndim == 2:
        return "YX"
    if arr.ndim == 3:
        return "YXC" if arr.shape[-1] == 3 else "ZYX"
    if arr.ndim == 4 and arr.shape[-1] == 3:
        return "ZYXC"
    raise ValueError(f"unsupported shape {arr.shape}: use (rows, cols), (rows, cols, 3), "
                     "(frames, rows, cols) or (frames, rows, cols, 3), or pass axes=")


def _to_fyxc(arr: np.ndarray, axes: str) -> np.ndarray:
    """A (frames, rows, cols, channels) view: no copy of the image is made."""
    a = arr.reshape(1, -1) if axes == "X" else arr
    if axes in ("YX", "X"):
        return a[None, :, :, None]
    if axes == "YXC":
        return a[None]
    if axes == "ZYX":
        return a[..., None]
    return a


def _value_limits(dtype: np.dtype, bits: int) -> tuple[int, int]:
    if dtype.kind == "i":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}={value} is out of range: allowed {lo}..{hi}")
    return int(value)


# --------------------------------------------------------------------- encode

def encode(arr: np.ndarray, mode: Mode = "lossless", *, bits_stored: int | None = None,
           max_error: int | None = None, bpp: float | None = None, psnr: float | None = None,
           roi: Any = None, roi_max_error: int = 0, ecc: str | None = None,
           axes: str | None = None, preprocess: str | None = None,
           tile_size: int | None = None, levels: int | None = None, threads: int | None = None) -> bytes:
    """Compress an integer image to HLC bytes.

    ``mode`` is "lossless" (bit-exact), "near-lossless" (every sample within
    ``max_error``) or "lossy" (target ``bpp`` or ``psnr``, peak = max - min; where
    the near-lossless coder at some max error does better than the 9/7, the stream
    is that, and says so in ``info()``).
    ``roi`` ("auto" or a boolean mask) keeps the region within ``roi_max_error``
    in lossy mode (where coding the whole image within that error is smaller, the
    stream is that: lossless or near-lossless, with no ROI in ``info()``). ``ecc`` ("low", "medium", "high") adds Reed-Solomon parity.
    ``levels`` sets the wavelet depth (default 5 for lossless and near-lossless,
    so ``decode(level=k)`` reaches 1/32; 3 for lossy, which codes better).
    ``tile_size`` (a power of two, default 512): larger tiles code a little better
    at low rates, smaller ones need less memory. ``threads`` (default: up to two,
    one for small images, whose working memory a second tile would double) codes
    tiles in parallel; the bytes are the same for any number.
    """
    arr = np.asarray(arr)
    dcode = _check_dtype(arr)
    dtype = ct.DTYPES[dcode]
    if arr.size == 0:
        raise ValueError(f"cannot encode an empty array (shape {arr.shape})")
    if mode not in ct.MODES:
        raise ValueError(f"mode={mode!r} is not one of {ct.MODES}")
    axes = _guess_axes(arr, axes)
    nbits = 8 * dtype.itemsize
    bits = nbits if bits_stored is None else _check_int("bits_stored", bits_stored, 1, nbits)
    lo_lim, hi_lim = _value_limits(dtype, bits)
    img = _to_fyxc(arr, axes)
    vmin, vmax = int(img.min()), int(img.max())
    if vmin < lo_lim or vmax > hi_lim:
        raise ValueError(f"values {vmin}..{vmax} do not fit bits_stored={bits} for {dtype} "
                         f"(allowed {lo_lim}..{hi_lim})")
    if mode != "near-lossless" and max_error not in (None, 0):
        raise ValueError(f"max_error is for mode='near-lossless', not mode={mode!r}")
    if mode != "lossy" and (bpp is not None or psnr is not None):
        raise ValueError(f"bpp and psnr are targets for mode='lossy', not mode={mode!r}")
    if mode == "lossy":
        if (bpp is None) == (psnr is None):
            raise ValueError("mode='lossy' needs exactly one target: bpp=... or psnr=...")
        if bpp is not None and not (isinstance(bpp, (int, float)) and 0 < bpp <= 64 and math.isfinite(bpp)):
            raise ValueError(f"bpp={bpp!r} is out of range: allowed 0 < bpp <= 64")
        if psnr is not None and not (isinstance(psnr, (int, float)) and 1 <= psnr <= 200):
            raise ValueError(f"psnr={psnr!r} is out of range: allowed 1..200 dB")
    if roi is not None and mode != "lossy":
        raise ValueError(f"roi is used with mode='lossy' (mode={mode!r} already bounds every sample)")
    if ecc is not None:
        from . import ecc as _ecc
        if ecc not in _ecc.ECC_LEVELS:
            raise ValueError(f"ecc={ecc!r} is not one of {sorted(_ecc.ECC_LEVELS)} or None")
    if preprocess not in (None, "denoise"):
        raise ValueError(f"preprocess={preprocess!r}: allowed None or 'denoise'")
    if preprocess == "denoise" and mode == "lossless":
        raise ValueError("preprocess='denoise' changes pixels, so it is not allowed with mode='lossless'")
    tile = pl.TILE if tile_size is None else _check_int("tile_size", tile_size, 16, 1 << 16)
    if tile & (tile - 1):
        raise ValueError(f"tile_size={tile} must be a power of two")
    nthreads = None if threads is None else _check_int("threads", threads, 1, 256)
    nlevels = None if levels is None else _check_int("levels", levels, 0, 8)

    frames, rows, cols, ch = img.shape
    th = min(tile, rows)
    # short images get wide tiles of about the same area (a 1 x N signal is not
    # cut into thousands of 1 x 512 tiles); widths stay powers of two
    wide = tile * (1 << max(0, (tile // th).bit_length() - 1))
    tw = min(wide, cols)
    h = ct.Header(mode=ct.MODES.index(mode), dtype=dcode, bits_stored=bits, axes=list(_AXES_NDIM).index(axes),
                  frames=frames, rows=rows, cols=cols, channels=ch, tile_rows=th, tile_cols=tw,
                  levels=pl.choose_levels(th, tw, mode) if nlevels is None else nlevels, transform=0,
                  colour=1 if ch == 3 and mode != "near-lossless" else 0,
                  max_error=0, vmin=vmin, vmax=vmax)
    if preprocess == "denoise":
        from . import roi as _roi
        den = [_roi.denoise(frame[..., 0] if ch == 1 else frame, bits_stored=bits) for frame in img]
        img = np.clip(np.stack(den).reshape(img.shape), vmin, vmax).astype(dtype)
        h.flags |= ct.FLAG_DENOISED
    src = Source(image=img, header=h, threads=pl.auto_threads(h, frames) if nthreads is None else nthreads)
    if mode == "lossless":
        src.table = pl.choose_value_table(img, vmin, vmax)
        if src.table is not None:
            h.flags |= ct.FLAG_VALUE_TABLE
            h.value_table = pl.pack_value_table(src.table)
        body = encode_reversible(src)
    elif mode == "near-lossless":
        if max_error is None:
            raise ValueError("mode='near-lossless' needs max_error=k (k >= 1)")
        h.max_error = _check_int("max_error", max_error, 0, 65535)
        body = encode_reversible(src)
    else:
        body = _encode_lossy(src, arr, bpp, psnr, roi, roi_max_error)
    stream = ct.pack(h, body)
    if mode == "lossy" and roi is None and TRY_NEAR_LOSSLESS:
        stream = _near_lossless_if_better(src, stream, bpp, psnr) or stream
    elif roi is not None and preprocess is None and WHOLE_IMAGE_IF_SMALLER:
        stream = _whole_image_if_smaller(arr, stream, h, psnr, bits_stored=bits, axes=axes,
                                         tile_size=tile_size, threads=threads) or stream
    if ecc is not None:
        from . import ecc as _ecc
        stream = _ecc.protect(stream, ecc)
    return stream


def _encode_lossy(src: Source, arr: np.ndarray, bpp, psnr, roi, roi_max_error) -> list[bytes]:
    h = src.header
    h.transform = 1
    h.recon_offset = pl.quantize.RECON_OFFSET
    if h.colour == 1:
        h.channel_mult = list(pl.quantize.RCT_CHANNEL_MULT)
    if roi is not None:
        e = _check_int("roi_max_error", roi_max_error, 0, 65535)
        src.cmap, h.roi_block = _importance_map(roi, src, arr)
        h.flags |= ct.FLAG_ROI
        h.roi_max_error = e
        h.class_mult = list(pl.CLASS_MULT)
        roi_px = sum(int((pl.pixel_classes(src.cmap[f], h.roi_block, (0, h.rows, 0, h.cols)) >= 1).sum())
                     for f in range(h.frames))
        h.roi_fraction = roi_px / (h.rows * h.cols * h.frames)
        h.class_map = pl.pack_class_map(src.cmap)
    coder = LossyCoder(src)
    span = max(1, h.vmax - h.vmin)
    start = span / 64.0
    # the finest step the search may try: the largest magnitude the 9/7 sees is a
    # sample's, or a colour difference (B - G, R - G) of up to the span
    peak = max(abs(h.vmin), abs(h.vmax), span if h.colour == 1 else 0)
    floor = pl.quantize.step_floor(h.levels, peak)
    if bpp is not None:
        target = bpp * h.rows * h.cols * h.frames / 8.0
        # Only one coded body is kept: the one of the finest step whose file fits
        # (the best answer seen, whichever step the search ends on).
        fit_step, fit_body = math.inf, None

        def size(step: float) -> float:
            nonlocal fit_step, fit_body
            h.steps = pl.quantize.subband_steps(step, h.levels)
            body = coder.encode(h.steps)
            n = len(ct.pack(h, body))  # the exact final size
            if n <= target and step < fit_step:
                fit_step, fit_body = step, body
            return n

        step = pl.quantize.search_step(size, target, start, want_at_most=True, tolerance=0.005,
                                       log_value=True, floor=floor)
        if fit_body is not None:
            step, body = fit_step, fit_body
        else:  # the target is below the smallest possible file: the coarsest step tried
            body = coder.encode(pl.quantize.subband_steps(step, h.levels))
        h.steps = pl.quantize.subband_steps(step, h.levels)
        return body

    peak2 = float(span) ** 2
    n = h.frames * h.rows * h.cols * h.channels
    h.psnr_target = float(psnr)

    def quality(step: float) -> float:
        se = coder.squared_error(pl.quantize.subband_steps(step, h.levels))
        return 200.0 if se == 0 else 10 * math.log10(peak2 * n / se)

    step = pl.quantize.search_step(quality, float(psnr), start, want_at_most=False, tolerance=0.05,
                                   log_value=False, floor=floor)
    h.steps = pl.quantize.subband_steps(step, h.levels)
    return coder.encode(h.steps)


# Lossy mode has a second coder: the near-lossless predictive coder at the max error k
# that meets the target, kept when it beats the 9/7 (a smaller error at the size
# asked for, or a smaller file at the PSNR asked for). Images with few distinct
# values or large flat areas (CT with padding, overlays, ultrasound) often code far
# better that way; the stream then says near-lossless, with its max error.
TRY_NEAR_LOSSLESS = True


def _near_lossless_if_better(src: Source, lossy: bytes, bpp: float | None, psnr: float | None) -> bytes | None:
    h0 = src.header
    n = h0.frames * h0.rows * h0.cols * h0.channels
    streams: dict[int, bytes] = {}

    def stream(k: int) -> bytes:
        if k not in streams:
            h = ct.Header(mode=1, dtype=h0.dtype, bits_stored=h0.bits_stored, axes=h0.axes, frames=h0.frames,
                          rows=h0.rows, cols=h0.cols, channels=h0.channels, tile_rows=h0.tile_rows,
                          tile_cols=h0.tile_cols, levels=pl.choose_levels(h0.tile_rows, h0.tile_cols),
                          transform=0, colour=0, max_error=k, vmin=h0.vmin, vmax=h0.vmax,
                          flags=h0.flags & ct.FLAG_DENOISED)
            streams[k] = ct.pack(h, encode_reversible(Source(image=src.image, header=h, threads=src.threads)))
        return streams[k]

    def k_near(mse: float) -> int:
        # errors within +-k, spread about evenly, have a mean square near k(k+1)/3
        return min(65535, max(1, math.ceil(math.sqrt(3 * mse))))

    if bpp is not None:
        # the smallest k that fits (sizes fall as k grows), if it fits at all
        target = bpp * h0.rows * h0.cols * h0.frames / 8.0
        # the 9/7's mean square error is below 0.42 base^2 (a coefficient zeroed by the
        # dead zone errs by at most 0.65 of its step), so no useful k exceeds ~1.13 base:
        # judge that k on a sample before spending a pass on the exact error
        base = h0.steps[0] * math.sqrt(synthesis_gains_97(h0.levels)[0])
        if _unlikely(src, k_near(0.42 * base * base), bpp):
            return None
        # then the k whose error matches the 9/7's, from up to 8 of its tiles
        items = pl.planes(h0)
        items = items[::-(-len(items) // 8)]
        px = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in (h0.tile_box(t) for _, t in items)) * h0.channels
        lo, hi = 1, k_near(LossyCoder(src).squared_error(h0.steps, items) / px)
        if _unlikely(src, hi, bpp) or len(stream(hi)) > target:
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if len(stream(mid)) <= target else (mid + 1, hi)
        lossy_se = LossyCoder(src).squared_error(h0.steps)  # the exact error, tile by tile
        return streams[lo] if _squared_error(streams[lo], src) < lossy_se else None
    # psnr: the largest k that meets it (the error grows with k); every k with k^2
    # within the allowed mean square does, and none much beyond k_near is likely to
    allowed = float(max(1, h0.vmax - h0.vmin)) ** 2 * n / 10 ** (psnr / 10)
    lo, hi = int(math.isqrt(int(allowed / n))), min(65535, 2 * k_near(allowed / n))
    lossy_bpp = 8.0 * len(lossy) / (h0.frames * h0.rows * h0.cols)
    if _unlikely(src, hi, lossy_bpp) or len(stream(hi)) >= len(lossy):  # it cannot be the smaller file
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _squared_error(stream(mid), src) <= allowed else (lo, mid - 1)
    # lo may be the starting k, never coded if every k tried above it failed (k^2 <= the
    # allowed mean square meets the target by itself): stream() codes it then
    return stream(lo) if lo and len(stream(lo)) < len(lossy) else None


# Hybrid mode: where the ROI covers most of an image, or the background is nearly
# as cheap to keep exact as to code lossy, coding the whole image within
# roi_max_error (lossless for 0) can be the smaller file. It keeps every promise of
# the hybrid (ROI within the error, background within it too), so it is kept then;
# the stream says lossless or near-lossless, and info() reports no ROI.
WHOLE_IMAGE_IF_SMALLER = True


def _whole_image_if_smaller(arr: np.ndarray, hybrid: bytes, h: ct.Header, psnr: float | None,
                            **kw: Any) -> bytes | None:
    e = h.roi_max_error
    if psnr is not None and e > 0 and 20 * math.log10(max(1, h.vmax - h.vmin) / e) < psnr:
        return None  # (errors within +-e: PSNR >= 20 log10(peak / e); below the target it may fail)
    whole = encode(arr, "near-lossless", max_error=e, **kw) if e else encode(arr, "lossless", **kw)
    return whole if len(whole) < len(hybrid) else None


def _unlikely(src: Source, k: int, bpp: float) -> bool:
    """Whether the near-lossless coder at max error k is plainly bigger than ``bpp``,
    judged on a 4 x 4 grid of 64 x 64 blocks spread over the middle frame (body and
    background alike) or, in a stack of smaller frames, on four frames spread over it,
    so that an image the 9/7 codes better is not coded whole a second time. A single
    small frame is not judged (coding it whole costs little)."""
    h, b = src.header, 64
    if h.rows >= 8 * b and h.cols >= 8 * b:
        f = h.frames // 2
        ys = [(h.rows * (2 * i + 1)) // 8 - b // 2 for i in range(4)]
        xs = [(h.cols * (2 * j + 1)) // 8 - b // 2 for j in range(4)]
        sample = np.concatenate([np.concatenate([src.image[f, y:y + b, x:x + b] for x in xs], axis=1)
                                 for y in ys], axis=0)[None]
    elif h.frames >= 8:
        sample = src.image[[(h.frames * (2 * i + 1)) // 8 for i in range(4)]]
    else:
        return False
    axes = "ZYX" if h.channels == 1 else "ZYXC"
    data = encode(sample[..., 0] if h.channels == 1 else sample, mode="near-lossless", max_error=k,
                  bits_stored=h.bits_stored, threads=1, axes=axes)
    return 8.0 * len(data) / (sample.shape[0] * sample.shape[1] * sample.shape[2]) > 1.3 * bpp


def _squared_error(stream: bytes, src: Source) -> float:
    """Sum of squared errors of a (near-lossless) stream against the source: decoded
    a frame at a time, compared in bands of rows (no image-sized float array)."""
    return sum(pl.squared_error(decode(stream, frame=f, threads=src.threads).reshape(src.image.shape[1:]),
                                src.image[f]) for f in range(src.header.frames))


def _importance_map(roi: Any, src: Source, arr: np.ndarray) -> tuple[np.ndarray, int]:
    h = src.header
    if isinstance(roi, str):
        if roi != "auto":
            raise ValueError(f"roi={roi!r}: allowed None, 'auto' or a boolean mask")
        from . import roi as _roi
        maps = []
        for f in range(h.frames):
            frame = src.image[f]
            frame = frame[..., 0] if h.channels == 1 else frame
            maps.append(np.asarray(_roi.auto_importance_map(frame, bits_stored=h.bits_stored), np.uint8))
        block = int(_roi.ROI_BLOCK)
        want = (-(-h.rows // block), -(-h.cols // block))
        cmap = np.stack(maps)
        if cmap.shape[1:] != want or cmap.max(initial=0) > 2:
            raise RuntimeError(f"automatic ROI returned a map of shape {cmap.shape[1:]}, expected {want}")
        return cmap, block
    mask = np.asarray(roi)
    if mask.dtype != bool:
        raise ValueError(f"roi mask must be a boolean array, got dtype {mask.dtype}")
    shape = arr.shape if arr.ndim > 1 else (1,) + arr.shape
    if ct.AXES[h.axes].endswith("C") and mask.ndim == arr.ndim - 1:
        mask = mask[..., None]  # a (rows, cols) mask covers all colour samples
    try:
        full = np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"roi mask of shape {mask.shape} does not broadcast to the image shape {arr.shape}") from None
    m = _to_fyxc(full, ct.AXES[h.axes]).any(axis=-1)
    b = pl.ROI_USER_BLOCK
    by, bx = -(-h.rows // b), -(-h.cols // b)
    padded = np.zeros((h.frames, by * b, bx * b), bool)
    padded[:, :h.rows, :h.cols] = m
    blocks = padded.reshape(h.frames, by, b, bx, b).any(axis=(2, 4))
    return np.where(blocks, 2, 0).astype(np.uint8), b


# --------------------------------------------------------------------- decode

def _as_bytes(data: Any, caller: str) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"{caller}() takes bytes, got {type(data).__name__}")
    return data


def _is_protected(data: bytes) -> bool:
    """An ECC-wrapped stream: its magic, or (magic damaged) a readable wrapper header."""
    if len(data) < 8 or data[:8] == ct.MAGIC:
        return False
    if data[:8] == _ECC_MAGIC:
        return True
    from . import ecc as _ecc
    try:
        return bool(_ecc.is_protected(data))
    except Exception:
        return False


def _unwrap(data: Any, strict: bool) -> tuple[bytes, Any]:
    data = _as_bytes(data, "decode")
    if _is_protected(data):
        from . import ecc as _ecc
        return _ecc.unprotect(data, strict=strict)
    return data, None


@overload
def decode(data: bytes, *, level: int = 0, frame: int | None = None, strict: Literal[True] = True,
           max_pixels: int | None = ..., threads: int | None = None) -> np.ndarray: ...
@overload
def decode(data: bytes, *, level: int = 0, frame: int | None = None, strict: Literal[False],
           max_pixels: int | None = ..., threads: int | None = None) -> tuple[np.ndarray, dict]: ...


def decode(data, *, level=0, frame=None, strict=True, max_pixels=-1, threads=None):
    """Decode HLC bytes to an array of the original shape and dtype.

    ``level=k`` returns 1/2^k resolution from the coarse subbands only;
    ``frame=i`` decodes one frame. With ``strict=False`` damage is concealed
    and ``(array, report)`` is returned; otherwise damage raises an HlcError.
    ``threads`` as in :func:`encode` (tiles decoded in parallel; default: up to
    two, one for small images).
    """
    report = DecodeReport()
    _load_kernels()
    try:
        stream, ecc_report = _unwrap(data, strict)
        report.ecc = ecc_report
        if ecc_report is not None and getattr(ecc_report, "codewords_failed", 0):
            report.exact = False
        limit = MAX_PIXELS if max_pixels == -1 else max_pixels
        h, start = ct.parse_header(stream, None, allow_truncated=not strict)
        if h.from_backup:
            report.repaired.append("header damaged: read from its copy at the end of the stream")
        if _check_int("level", level, 0, 64) > h.levels:
            raise ValueError(f"level={level} is beyond the {h.levels} wavelet levels in this stream")
        if frame is not None:
            f = _check_int("frame", frame, 0, h.frames - 1)
            frames = [f]
        else:
            frames = list(range(h.frames))
        samples = len(frames) * h.rows * h.cols * h.channels
        if limit and samples > limit:
            raise DecompressionBombError(
                f"image claims {len(frames)}x{h.rows}x{h.cols}x{h.channels} samples, over the limit of "
                f"{limit} (pass max_pixels=None to decode(), or raise codec_core.MAX_PIXELS, if you trust it)")
        if limit and samples > max(1 << 20, MAX_SAMPLES_PER_BYTE * len(stream)):
            raise DecompressionBombError(
                f"a {len(stream)}-byte stream claims {len(frames)}x{h.rows}x{h.cols}x{h.channels} samples, more "
                f"than {MAX_SAMPLES_PER_BYTE} per byte (pass max_pixels=None to decode() if you trust it)")
        nthreads = pl.auto_threads(h, len(frames)) if threads is None else _check_int("threads", threads, 1, 256)
        try:
            out = decode_stream(stream, h, start, level=level, frames=frames, strict=strict,
                                threads=nthreads, report=report)
        except (ValueError, TypeError) as e:  # raised by the stream's content, not by an argument
            raise CorruptStreamError(f"stream could not be decoded: {type(e).__name__}: {e}") from e
    except (HlcError, ValueError, TypeError):
        raise
    except ImportError:  # the installation, not the stream
        raise
    except Exception as e:  # a bug or damage we did not foresee: never leak another type
        raise CorruptStreamError(f"stream could not be decoded: {type(e).__name__}: {e}") from e
    axes = ct.AXES[h.axes]
    if frame is not None or axes in ("YX", "YXC", "X"):
        out = out[0]
    if axes in ("YX", "ZYX", "X"):
        out = out[..., 0]
    if axes == "X":
        out = out[0]
    if strict:
        return out
    return out, report.as_dict()


def _load_kernels() -> None:
    """Import the compiled kernels (C) before decode's damage handling: a
    failure there is a problem of the installation, never a damaged stream."""
    from . import _kernels, _predictive_kernels  # noqa: F401


def _header_bytes(data: Any) -> tuple[bytes, dict | None]:
    """Enough of the (unwrapped) stream to parse its header, and the ECC facts.

    A protected stream is not repaired for this: the inner header is read from its
    CRC-checked chunks, and only if one of those is damaged is the stream repaired."""
    data = _as_bytes(data, "info")
    if not _is_protected(data):
        return data, None
    from . import ecc as _ecc
    facts = _ecc.peek(data)
    head = _ecc.payload_prefix(data, 13)
    if head is not None and head[:8] == ct.MAGIC:
        head = _ecc.payload_prefix(data, 17 + int.from_bytes(head[9:13], "little"))
    if head is None:
        head, _ = _ecc.unprotect(data, strict=False)
    return head, facts


def info(data: bytes) -> dict:
    """Header facts, cheap: no pixel is decoded."""
    try:
        stream, ecc_facts = _header_bytes(data)
        h, start = ct.parse_header(stream, None, allow_truncated=True)
    except (HlcError, TypeError):
        raise
    except Exception as e:
        raise CorruptStreamError(f"header could not be read: {type(e).__name__}: {e}") from e
    axes = ct.AXES[h.axes]
    shape = {"YX": (h.rows, h.cols), "YXC": (h.rows, h.cols, 3), "ZYX": (h.frames, h.rows, h.cols),
             "ZYXC": (h.frames, h.rows, h.cols, 3), "X": (h.cols,)}[axes]
    layout = ct.segment_layout(h)
    frame_sizes = []
    for f in range(h.frames):
        a = layout.plane(h, f, 0, 0)
        b = layout.plane(h, f + 1, 0, 0) if f + 1 < h.frames else layout.count
        frame_sizes.append(sum(n for n, _ in h.segments[a:b]))
    mode = ct.MODES[h.mode]
    d = {
        "version": h.version, "shape": shape, "dtype": str(h.np_dtype), "bits_stored": h.bits_stored,
        "axes": axes, "frames": h.frames, "rows": h.rows, "cols": h.cols, "channels": h.channels,
        "mode": mode, "lossy": mode != "lossless" or bool(h.flags & ct.FLAG_DENOISED),
        "max_error": 0 if mode == "lossless" else h.max_error if mode == "near-lossless" else None,
        "transform": ct.TRANSFORMS[h.transform], "colour_transform": bool(h.colour), "levels": h.levels,
        "tile_shape": (h.tile_rows, h.tile_cols), "tiles": h.n_tiles,
        "roi": bool(h.flags & ct.FLAG_ROI), "roi_fraction": h.roi_fraction if h.flags & ct.FLAG_ROI else 0.0,
        "roi_max_error": h.roi_max_error if h.flags & ct.FLAG_ROI else None,
        "preprocess": "denoise" if h.flags & ct.FLAG_DENOISED else None,
        "value_range": (h.vmin, h.vmax), "compressed_size": len(data),
        "frame_sizes": frame_sizes, "ecc": None, "ecc_overhead": 0.0,
        # the bytes every segment needs (all of an ECC wrapper), and whether they are there
        "bytes_needed": start + sum(n for n, _ in h.segments),
    }
    complete = d["bytes_needed"] <= len(stream)
    if ecc_facts is not None:
        facts = dict(ecc_facts)
        complete = d["bytes_needed"] <= facts["protected_bytes"]  # the protected stream is whole
        d["bytes_needed"] = facts.pop("ecc_total_bytes")           # and so is its wrapper:
        complete = complete and d["bytes_needed"] <= len(data)
        d.update(facts)
    d["complete"] = complete
    d["bpp"] = 8.0 * len(data) / (h.rows * h.cols * h.frames)
    d["compression_ratio"] = h.pixels * h.np_dtype.itemsize / len(data)
    return d
