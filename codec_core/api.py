"""Public API: ``encode``, ``decode``, ``info``: arguments checked here, then dispatched.

See docs/FORMAT.md for the stream and README.md for examples. ``encode`` checks its
options once (:class:`~codec_core.options.EncodeOptions`) and the array against
them, then hands the checked image to :func:`codec_core.strategy.encode_image` (the
header, rate control and the choice of coder) and the stream to
:mod:`codec_core.ecc` if parity is asked for. ``decode`` and ``info`` check their
arguments and the stream's claims, then call :mod:`codec_core.decoder`. Everything
below works on validated arrays.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from . import container as ct
from . import pipeline as pl
from .decoder import DecodeReport, decode_stream
from .errors import CorruptStreamError, DecompressionBombError, HlcError, NotHlcError
from .format import (
    AXES,
    ECC_MAGIC,
    MAGIC,
    Mode,
    ModeName,
    check_axes,
    guess_axes,
    header_end,
    image_shape,
    to_fyxc,
    value_limits,
)
from .options import OPTIONS, EncodeOptions, describe, unknown_options
from .strategy import CheckedImage, encode_image

if TYPE_CHECKING:
    from .ecc import EccReport


#: Default pixel limit for ``decode`` (same as Pillow's decompression-bomb error
#: threshold). Raise it, or pass ``max_pixels=None``, for files you trust.
MAX_PIXELS = 2 * 89_478_485
#: With the pixel limit on, a stream may claim at most this many samples per byte it
#: holds (beyond a floor of 2**20), so decode time and memory stay proportional to the
#: stream size. The densest real output, a constant image, is ~3,700 samples/byte.
MAX_SAMPLES_PER_BYTE = 1 << 14


# ----------------------------------------------------------------- validation

def _check_dtype(arr: np.ndarray) -> int:
    dt = arr.dtype.newbyteorder("=") if arr.dtype.byteorder not in "=|" else arr.dtype
    for code, d in enumerate(ct.DTYPES):
        if dt == d:
            return code
    raise ValueError(f"unsupported dtype {arr.dtype}: HLC encodes uint8, int8, uint16 and int16 arrays")


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}={value} is out of range: allowed {lo}..{hi}")
    return int(value)


def _checked_array(arr: Any) -> np.ndarray:
    """An array of a type HLC stores, not empty (checked before any option)."""
    arr = np.asarray(arr)
    _check_dtype(arr)
    if arr.size == 0:
        raise ValueError(f"cannot encode an empty array (shape {arr.shape})")
    return arr


def _checked_image(arr: np.ndarray, opts: EncodeOptions) -> CheckedImage:
    """The checks that need the image: its layout, its bits, its values."""
    dcode = _check_dtype(arr)
    dtype = ct.DTYPES[dcode]
    axes = guess_axes(arr.shape) if opts.axes is None else check_axes(opts.axes, arr.shape)
    nbits = 8 * dtype.itemsize
    bits = nbits if opts.bits_stored is None else _check_int("bits_stored", opts.bits_stored, 1, nbits)
    lo_lim, hi_lim = value_limits(bits, dtype.kind == "i")
    # in the machine's byte order (a copy only of a big-endian array: the kernels and
    # the 9/7's trials read native samples)
    img = to_fyxc(arr.astype(dtype, copy=False), axes)
    vmin, vmax = int(img.min()), int(img.max())
    if vmin < lo_lim or vmax > hi_lim:
        raise ValueError(f"values {vmin}..{vmax} do not fit bits_stored={bits} for {dtype} "
                         f"(allowed {lo_lim}..{hi_lim})")
    return CheckedImage(pixels=img, dtype=dcode, bits_stored=bits, axes=axes, vmin=vmin, vmax=vmax,
                        shape=tuple(arr.shape))


# --------------------------------------------------------------------- encode

def encode(arr: np.ndarray, mode: ModeName = "lossless", **options: Any) -> bytes:
    """Compress an integer image to HLC bytes.

    ``mode`` is "lossless" (bit-exact), "near-lossless" (every sample within
    ``max_error``) or "lossy" (target ``bpp`` or ``psnr``). The other options are
    keywords, those of :class:`~codec_core.options.EncodeOptions` (one table, which
    the adapters and the ``hlc`` command offer too); bad values raise ValueError
    naming the option:

    {options}
    """
    unknown = unknown_options("encode()", options, [opt.name for opt in OPTIONS if opt.name != "mode"])
    if unknown:
        raise TypeError(unknown)
    arr = _checked_array(arr)  # (the array's type is checked before any option)
    return encode_with(arr, EncodeOptions(mode=mode, **options))


encode.__doc__ = (encode.__doc__ or "").replace("{options}", describe().replace("\n", "\n    "))


def encode_with(arr: np.ndarray, options: EncodeOptions) -> bytes:
    """:func:`encode` with options already made (the adapters' entry point)."""
    image = _checked_image(_checked_array(arr), options)
    stream = encode_image(image, options)
    if options.ecc is not None:
        from . import ecc

        stream = ecc.protect(stream, options.ecc)
    return stream


# --------------------------------------------------------------------- decode

def _as_bytes(data: Any, caller: str) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"{caller}() takes bytes, got {type(data).__name__}")
    return data


def _is_protected(data: bytes) -> bool:
    """An ECC-wrapped stream: its magic, or (magic damaged) a readable wrapper header."""
    if len(data) < 8 or data[:8] == MAGIC:
        return False
    if data[:8] == ECC_MAGIC:
        return True
    from . import ecc as _ecc
    try:
        return bool(_ecc.is_protected(data))
    except Exception:
        return False


def _unwrap(data: Any, strict: bool) -> tuple[bytes, EccReport | None]:
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
        out, h = _decode(data, level, frame, strict, MAX_PIXELS if max_pixels == -1 else max_pixels,
                         threads, report)
    except (HlcError, ValueError, TypeError):
        raise
    except ImportError:  # the installation, not the stream
        raise
    except Exception as e:  # a bug or damage we did not foresee: never leak another type
        raise CorruptStreamError(f"stream could not be decoded: {type(e).__name__}: {e}") from e
    axes = AXES[h.axes]
    if frame is not None or axes in ("YX", "YXC", "X"):
        out = out[0]
    if axes in ("YX", "ZYX", "X"):
        out = out[..., 0]
    if axes == "X":
        out = out[0]
    if strict:
        return out
    return out, report.as_dict()


def _decode(data: Any, level: Any, frame: Any, strict: bool, limit: int | None, threads: Any,
            report: DecodeReport) -> tuple[np.ndarray, ct.Header]:
    """The frames asked for, (frames, rows, cols, channels), once every claim is checked."""
    stream, ecc_report = _unwrap(data, strict)
    report.ecc = ecc_report
    if ecc_report is not None and ecc_report.codewords_failed:
        report.exact = False
    h, start = _parse_inner(stream, ecc_report is not None, allow_truncated=not strict)
    if h.from_backup:
        report.repaired.append("header damaged: read from its copy at the end of the stream")
    regions = bool(h.flags & ct.FLAG_REGIONS)
    levels = _regions().MAX_LEVEL if regions else h.levels
    if _check_int("level", level, 0, 64) > levels:
        raise ValueError(f"level={level} is beyond the {levels} wavelet levels in this stream")
    one = None if frame is None else _check_int("frame", frame, 0, h.frames - 1)
    _check_claims(h, h.frames if one is None else 1, len(stream), limit)  # (before a list of the frames)
    frames = list(range(h.frames)) if one is None else [one]
    nthreads = pl.auto_threads(h, len(frames)) if threads is None else _check_int("threads", threads, 1, 256)
    try:
        if regions:
            out = _regions().decode_regions(stream, h, start, level=level, frames=frames, strict=strict,
                                            threads=nthreads, report=report)
        else:  # (nothing after it: its scratch is kept for the next decode, codec_core/_native/planedecode.c)
            out = decode_stream(stream, h, start, level=level, frames=frames, strict=strict, threads=nthreads,
                                report=report, keep_scratch=True)
    except (ValueError, TypeError) as e:  # raised by the stream's content, not by an argument
        raise CorruptStreamError(f"stream could not be decoded: {type(e).__name__}: {e}") from e
    return out, h


def _parse_inner(stream: bytes, wrapped: bool, allow_truncated: bool) -> tuple[ct.Header, int]:
    """``ct.parse_header``; inside an ECC wrapper (``wrapped``) a stream that does not start
    as HLC is damage the parity could not mend, not another format."""
    try:
        return ct.parse_header(stream, None, allow_truncated=allow_truncated)
    except NotHlcError:
        if not wrapped:
            raise
        raise CorruptStreamError("the stream inside the ECC wrapper is damaged beyond repair at its start",
                                 "header") from None


def _check_claims(h: ct.Header, frames: int, size: int, limit: int | None) -> None:
    """The pixel limit, and the samples a stream of ``size`` bytes may claim."""
    samples = frames * h.rows * h.cols * h.channels
    if limit and samples > limit:
        raise DecompressionBombError(
            f"image claims {frames}x{h.rows}x{h.cols}x{h.channels} samples, over the limit of "
            f"{limit} (pass max_pixels=None to decode(), or raise codec_core.MAX_PIXELS, if you trust it)")
    if limit and samples > max(1 << 20, MAX_SAMPLES_PER_BYTE * size):
        raise DecompressionBombError(
            f"a {size}-byte stream claims {frames}x{h.rows}x{h.cols}x{h.channels} samples, more "
            f"than {MAX_SAMPLES_PER_BYTE} per byte (pass max_pixels=None to decode() if you trust it)")


def _regions() -> Any:
    """codec_core.regions, imported when a stream or an encode needs it."""
    from . import regions

    return regions


def release_memory() -> None:
    """Give back the memory HLC keeps for reuse: the decoder's block cache (the memory of
    decoded images that are gone and of its last plane's scratch, at most 32 MB, which
    spares the next image of the same size its page faults) and the C heap's free pages
    (glibc ``malloc_trim``). Nothing else changes; the next decode allocates afresh."""
    from . import _hlc

    _hlc.release_cache()
    pl.release_free_memory()


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
    head = _ecc.payload_prefix(data, ct.PREFIX.size)
    end = header_end(head) if head is not None else None
    if end is not None:
        head = _ecc.payload_prefix(data, end)
    if head is None:
        head, _ = _ecc.unprotect(data, strict=False)
    return head, facts


def _header_facts(h: ct.Header, start: int) -> dict[str, Any]:
    """What :func:`info` says of a parsed header (``start``: where its segments begin)."""
    axes = AXES[h.axes]
    layout = ct.segment_layout(h)
    frame_sizes = []
    regions = bool(h.flags & ct.FLAG_REGIONS)
    for f in range(h.frames):
        if regions:  # (layers code every frame together: their bytes shared out evenly)
            frame_sizes.append(sum(n for n, _ in h.segments) // h.frames)
            continue
        a = layout.plane(h, f, 0, 0)
        b = layout.plane(h, f + 1, 0, 0) if f + 1 < h.frames else layout.count
        frame_sizes.append(sum(n for n, _ in h.segments[a:b]))
    mode = Mode(h.mode)
    # a region stream keeps an ROI when some of it is detail or body: lossy mode's
    # exact-padding streams are region streams with none (roi_fraction 0)
    roi = bool(h.flags & ct.FLAG_ROI) or bool(h.flags & ct.FLAG_REGIONS and h.roi_fraction > 0)
    return {
        "version": h.version, "shape": image_shape(axes, h.frames, h.rows, h.cols), "dtype": str(h.np_dtype),
        "bits_stored": h.bits_stored, "axes": axes, "frames": h.frames, "rows": h.rows, "cols": h.cols,
        "channels": h.channels, "mode": mode.label,
        "lossy": mode != Mode.LOSSLESS or bool(h.flags & ct.FLAG_DENOISED),
        "max_error": {Mode.LOSSLESS: 0, Mode.NEAR_LOSSLESS: h.max_error}.get(mode),
        "transform": ct.TRANSFORMS[h.transform], "colour_transform": bool(h.colour), "levels": h.levels,
        "tile_shape": (h.tile_rows, h.tile_cols), "tiles": h.n_tiles,
        "roi": roi, "roi_fraction": h.roi_fraction if roi else 0.0,
        "roi_max_error": h.roi_max_error if roi else None,
        "preprocess": "denoise" if h.flags & ct.FLAG_DENOISED else None,
        "value_range": (h.vmin, h.vmax), "compressed_size": None,
        "frame_sizes": frame_sizes, "ecc": None, "ecc_overhead": 0.0,
        # the bytes every segment needs (all of an ECC wrapper), and whether they are there
        "bytes_needed": start + sum(n for n, _ in h.segments),
    }


def _region_facts(data: Any, stream: bytes, h: ct.Header, start: int) -> dict[str, Any]:
    """What each region of a region-layer hybrid got (its block, segment 0, is read)."""
    regions = _regions()
    need = start + h.segments[0][0]
    if len(stream) < need and _is_protected(_as_bytes(data, "info")):
        from . import ecc as _ecc
        stream = _ecc.payload_prefix(data, need) or _ecc.unprotect(data, strict=False)[0]
    try:
        block = regions.region_block(stream, h, start)
    except HlcError:
        return {"regions": None}
    return regions.facts(block, h)


def info(data: bytes) -> dict:
    """Header facts, cheap: no pixel is decoded."""
    try:
        stream, ecc_facts = _header_bytes(data)
        h, start = _parse_inner(stream, ecc_facts is not None, allow_truncated=True)
    except (HlcError, TypeError):
        raise
    except Exception as e:
        raise CorruptStreamError(f"header could not be read: {type(e).__name__}: {e}") from e
    d = _header_facts(h, start)
    if h.flags & ct.FLAG_REGIONS:
        d.update(_region_facts(data, stream, h, start))
    d["compressed_size"] = len(data)
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
