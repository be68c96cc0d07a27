"""numcodecs codec ``"hlc"``: HLC compression of array chunks (zarr format 2, or direct use).

>>> import numcodecs, numpy as np
>>> codec = numcodecs.get_codec({"id": "hlc", "mode": "near-lossless", "max_error": 2})
>>> chunk = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
>>> out = codec.decode(codec.encode(chunk))

Chunks are encoded with their shape: the last two axes are the image, leading axes
are frames (with ``rgb=True`` the last axis holds the 3 colour samples). The codec is
found through the ``numcodecs.codecs`` entry point, so a fresh process needs no import.
"""
from __future__ import annotations

from typing import Any

from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ensure_ndarray, ndarray_copy

from ._common import as_frames, check_dtype, core

__all__ = ["HybridCodec"]


class HybridCodec(Codec):
    """HLC codec for numcodecs; the configuration is the public attributes.

    Parameters are those of :func:`codec_core.encode`: `mode` ("lossless",
    "near-lossless", "lossy"), `max_error`, `bpp`, `psnr`, `bits_stored`,
    `roi` (None or "auto": a per-array mask cannot follow the chunks),
    `roi_max_error` and `ecc`; `rgb` marks the last chunk axis as colour samples.
    """

    codec_id = "hlc"

    def __init__(self, mode: str = "lossless", max_error: int | None = None, bpp: float | None = None,
                 psnr: float | None = None, bits_stored: int | None = None, roi: str | None = None,
                 roi_max_error: int = 0, ecc: str | None = None, rgb: bool = False) -> None:
        if roi not in (None, "auto"):
            raise ValueError("HybridCodec takes roi=None or roi='auto'; a mask array cannot be "
                             "stored in a chunk codec's configuration")
        if mode not in ("lossless", "near-lossless", "lossy"):
            raise ValueError(f"mode must be 'lossless', 'near-lossless' or 'lossy', not {mode!r}")
        self.mode = mode
        self.max_error = max_error
        self.bpp = bpp
        self.psnr = psnr
        self.bits_stored = bits_stored
        self.roi = roi
        self.roi_max_error = roi_max_error
        self.ecc = ecc
        self.rgb = bool(rgb)

    def encode_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`codec_core.encode` (shared with the zarr v3 codec)."""
        return {"mode": self.mode, "max_error": self.max_error, "bpp": self.bpp, "psnr": self.psnr,
                "bits_stored": self.bits_stored, "roi": self.roi,
                "roi_max_error": self.roi_max_error, "ecc": self.ecc}

    def encode(self, buf: Any) -> bytes:
        arr = ensure_ndarray(buf)
        check_dtype(arr.dtype)
        frames, axes = as_frames(arr, rgb=self.rgb)
        return core().encode(frames, axes=axes, **self.encode_kwargs())

    def decode(self, buf: Any, out: Any = None) -> Any:
        decoded = core().decode(ensure_bytes(buf))
        return ndarray_copy(decoded, out)
