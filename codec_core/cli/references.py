"""The reference codecs HLC is measured against (imagecodecs), in one table.

``hlc bench`` and ``hlc demo`` (:mod:`codec_core.cli.bench`) and the benchmark
scripts (``benchmarks/bench_codecs.py``, ``bench_near_lossless.py``,
``bench_roi.py``) call the codecs through these wrappers, so that every figure
comes from the same settings: one thread, the bits stored given to the codecs
that take them, JPEG 2000 9/7 by OpenJPEG's quality (a PSNR with the nominal peak)
and JPEG XL by its distance.

JPEG-LS, PNG and JPEG XL take unsigned samples only (:attr:`Reference.unsigned_only`):
signed images are given to them offset to unsigned (:func:`to_unsigned`), and the
offset is taken off again after decoding (:func:`from_unsigned`), as their users do;
each caller chooses the offset and says which (``hlc bench``: minus the image's
minimum; the benchmark of record: 2^(bits_stored - 1)). imagecodecs is imported
when a codec first runs.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Reference", "lossless_references", "jpegls_near", "jpeg2k_97", "jpegxl_lossy", "avif_lossy",
           "AVIF_MAX_BITS", "htj2k_available",
           "to_unsigned", "from_unsigned", "frames_of", "stack_frames", "short_error", "UNSIGNED_ONLY"]


def _ic() -> Any:
    import imagecodecs

    return imagecodecs


@dataclass(frozen=True)
class Reference:
    """One reference codec at one setting."""

    key: str                                   # short name for tables: "j2k53"
    name: str                                  # as hlc bench shows it: "JPEG 2000 5/3"
    label: str                                 # with its library: "JPEG 2000 5/3 (OpenJPEG)"
    unsigned_only: bool                        # signed images are offset to unsigned for it
    encode: Callable[[np.ndarray, int], bytes]  # (frame, bits stored) -> stream
    decode: Callable[[bytes], np.ndarray]


#: Codecs that take unsigned samples only, by :attr:`Reference.name`.
UNSIGNED_ONLY = ("JPEG-LS", "PNG", "JPEG XL")


def htj2k_available() -> bool:
    return bool(getattr(getattr(_ic(), "HTJ2K", None), "available", False))


def _j2k_lossless(frame: np.ndarray, bits: int) -> bytes:
    return bytes(_ic().jpeg2k_encode(frame, level=0, reversible=True, bitspersample=bits, numthreads=1))


def _j2k_decode(data: bytes) -> np.ndarray:
    return np.asarray(_ic().jpeg2k_decode(data, numthreads=1))


def _htj2k(frame: np.ndarray, bits: int) -> bytes:
    return bytes(_ic().htj2k_encode(frame, reversible=True))


def _htj2k_decode(data: bytes) -> np.ndarray:
    return np.asarray(_ic().htj2k_decode(data))


def _jpegls(frame: np.ndarray, bits: int) -> bytes:
    return bytes(_ic().jpegls_encode(frame))


def _jpegls_decode(data: bytes) -> np.ndarray:
    return np.asarray(_ic().jpegls_decode(data))


def _png(frame: np.ndarray, bits: int) -> bytes:
    return bytes(_ic().png_encode(frame, level=9))


def _png_decode(data: bytes) -> np.ndarray:
    return np.asarray(_ic().png_decode(data))


def _jpegxl_decode(data: bytes) -> np.ndarray:
    return np.asarray(_ic().jpegxl_decode(data, numthreads=1))


def lossless_references(*, jpegxl_effort: int | None, htj2k: bool = True) -> list[Reference]:
    """JPEG 2000 5/3, HTJ2K (when imagecodecs has it and ``htj2k``), JPEG-LS, PNG and,
    unless ``jpegxl_effort`` is None, JPEG XL lossless at that effort."""
    refs = [Reference("j2k53", "JPEG 2000 5/3", "JPEG 2000 5/3 (OpenJPEG)", False, _j2k_lossless, _j2k_decode)]
    if htj2k and htj2k_available():
        refs.append(Reference("htj2k", "HTJ2K", "HTJ2K (OpenJPH)", False, _htj2k, _htj2k_decode))
    refs.append(Reference("jls", "JPEG-LS", "JPEG-LS (CharLS)", True, _jpegls, _jpegls_decode))
    if jpegxl_effort is not None:
        effort = jpegxl_effort

        def jxl(frame: np.ndarray, bits: int) -> bytes:
            return bytes(_ic().jpegxl_encode(frame, lossless=True, effort=effort, bitspersample=bits,
                                             numthreads=1))

        refs.append(Reference(f"jxl{effort}", "JPEG XL", f"JPEG XL lossless e{effort}", True, jxl, _jpegxl_decode))
    refs.append(Reference("png", "PNG", "PNG (zlib level 9)", True, _png, _png_decode))
    return refs


def jpegls_near(k: int) -> Reference:
    """JPEG-LS NEAR = k (CharLS): every sample within k."""
    def encode(frame: np.ndarray, bits: int) -> bytes:
        return bytes(_ic().jpegls_encode(frame, level=k))

    return Reference("jls", "JPEG-LS", f"JPEG-LS NEAR={k}", True, encode, _jpegls_decode)


def jpeg2k_97(quality: float) -> Reference:
    """JPEG 2000 9/7 (OpenJPEG) at ``quality``: OpenJPEG's PSNR target, whose peak is
    the nominal 2^bits - 1."""
    def encode(frame: np.ndarray, bits: int) -> bytes:
        return bytes(_ic().jpeg2k_encode(frame, level=quality, reversible=False, bitspersample=bits,
                                         numthreads=1))

    return Reference("j2k97", "JPEG 2000 9/7", "JPEG 2000 9/7 (OpenJPEG)", False, encode, _j2k_decode)


def jpegxl_lossy(distance: float) -> Reference:
    """JPEG XL (libjxl) at ``distance`` (smaller is better)."""
    def encode(frame: np.ndarray, bits: int) -> bytes:
        return bytes(_ic().jpegxl_encode(frame, distance=distance, bitspersample=bits, numthreads=1))

    return Reference("jxl", "JPEG XL", "JPEG XL lossy", True, encode, _jpegxl_decode)


#: The deepest samples AVIF (libavif with libaom) takes: 8, 10 or 12 bits.
AVIF_MAX_BITS = 12


def avif_bits(top: int) -> int | None:
    """The AVIF depth that holds unsigned samples up to ``top`` (None above 12 bits)."""
    for bits in (8, 10, AVIF_MAX_BITS):
        if top < 1 << bits:
            return bits
    return None


def _avif_decode(data: bytes) -> np.ndarray:
    return np.asarray(_ic().avif_decode(data, numthreads=1))


def avif_lossy(level: float, bits: int, speed: int = 6) -> Reference:
    """AVIF (libavif + libaom) at quality ``level`` (0..100, higher is better) of
    unsigned samples of ``bits`` (8, 10 or 12: :func:`avif_bits`), one thread;
    colour as 4:4:4. imagecodecs codes a one-channel image losslessly whatever the
    level, so grey images are given as three equal channels coded 4:0:0 (luma only:
    the luma of equal R, G, B is the grey value), and decode as one channel."""
    def encode(frame: np.ndarray, _bits: int) -> bytes:
        ic = _ic()
        grey = frame.ndim == 2
        pf = ic.AVIF.PIXEL_FORMAT.YUV400 if grey else ic.AVIF.PIXEL_FORMAT.YUV444
        src = np.repeat(frame[..., None], 3, axis=-1) if grey else frame
        return bytes(ic.avif_encode(src, level=int(round(level)), speed=speed, bitspersample=bits,
                                    pixelformat=pf, numthreads=1))

    return Reference("avif", "AVIF", f"AVIF (libaom speed {speed})", True, encode, _avif_decode)


# ------------------------------------------------------------------ helpers

def to_unsigned(a: np.ndarray, offset: int, dtype: Any = np.uint16) -> np.ndarray:
    """Signed samples plus ``offset``, as an unsigned-only codec takes them."""
    return (a.astype(np.int32) + offset).astype(dtype)


def from_unsigned(a: np.ndarray, offset: int, dtype: Any) -> np.ndarray:
    """The inverse of :func:`to_unsigned`, back in the image's ``dtype``."""
    return (a.astype(np.int32) - offset).astype(dtype)


def frames_of(a: np.ndarray, axes: str) -> list[np.ndarray]:
    """The frames the reference codecs code one by one (a single image is one frame)."""
    return [np.ascontiguousarray(a[i]) for i in range(a.shape[0])] if axes.startswith("Z") else [a]


def stack_frames(frames: list[np.ndarray], axes: str) -> np.ndarray:
    """The inverse of :func:`frames_of`."""
    return np.stack(frames) if axes.startswith("Z") else frames[0]


def short_error(e: BaseException, limit: int = 80) -> str:
    """An exception on one line of at most ``limit`` characters, for a table cell."""
    s = f"{type(e).__name__}: {e}".replace("\n", " ").replace("|", "/")
    return s if len(s) <= limit else s[:limit - 3] + "..."
