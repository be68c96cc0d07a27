"""numcodecs codec ``"hlc"``: HLC compression of array chunks (zarr format 2, or direct use).

>>> import numcodecs, numpy as np
>>> codec = numcodecs.get_codec({"id": "hlc", "mode": "near-lossless", "max_error": 2})
>>> chunk = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
>>> out = codec.decode(codec.encode(chunk))

Chunks are encoded with their shape: the last two axes are the image, leading axes
are frames (with ``rgb=True`` the last axis holds the 3 colour samples). The codec is
found through the ``numcodecs.codecs`` entry point, so a fresh process needs no import.

numcodecs' conventions (those of :mod:`numcodecs.compat`, which its own compressors
use): an object array, to encode or as ``out=`` of decode, raises TypeError; memory
that is not contiguous raises ValueError; any buffer (bytes, array.array...) is
accepted as a 1-D array. A Fortran-ordered chunk is coded in its memory order, as a
bytes codec sees it: zarr format 2 with ``order="F"`` flattens the decoded chunk in
memory order and reshapes it in Fortran order.

Chunk envelope
--------------
A chunk is normally stored as a plain HLC stream. Two kinds are stored in a small
envelope instead, a prefix before the HLC stream of part of the chunk:

- an empty array (a zero in its shape): the envelope alone, no HLC stream (HLC
  streams hold at least one sample);
- in lossy mode, a chunk with a *constant margin*: trailing rows, columns or frames
  whose samples all equal the chunk's last sample. zarr pads a chunk at the array's
  edge to the full chunk shape with the fill value, and the codec is not told which
  part is real (neither format passes the chunk's position). Coding the padding
  would make the lossy target a whole-chunk figure: near-exact padding dilutes the
  squared error, so a ``psnr=45`` edge chunk showed 39.9 dB on its real samples, and
  ``bpp`` was spent as if the padding were image. So only the box before the margin
  is coded, and the target is met on it; the margin is restored exactly on decode.
  That is exact whatever the chunk is (an interior chunk whose last rows are
  background equal to its last sample loses nothing either), so no padding (edge
  replication or other) is needed. Lossless and near-lossless chunks are coded
  whole: their bounds hold sample by sample, padding or not.

Layout (little-endian)::

    magic[8] = 89 48 4C 4D 0D 0A 1A 0A    ("\\x89HLM\\r\\n\\x1a\\n", neither HLC signature)
    u8       dtype code (0 uint8, 1 int8, 2 uint16, 3 int16, as in the HLC header)
    u8       n, the number of axes (at most 32)
    u32[n]   shape of the chunk
    u32[n]   shape of the coded box, at the origin (each at most the chunk's)
    i32      the margin value: every sample outside the box
    u32      CRC-32 of the bytes from the dtype code to the margin value
    ...      the HLC stream of chunk[box] (absent if the box holds no sample)

A damaged or cut envelope raises :class:`codec_core.CorruptStreamError` (or
:class:`~codec_core.TruncatedStreamError`), like a damaged HLC stream; an empty
buffer is not an empty array but an error (:class:`~codec_core.NotHlcError`).
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import replace
from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes, ensure_contiguous_ndarray, ndarray_copy

from codec_core.format import ENVELOPE_MAGIC, Mode
from codec_core.options import CHUNKS, EncodeOptions, options_for, unknown_options

from ._common import SUPPORTED_DTYPES, as_frames, check_dtype, core

__all__ = ["HybridCodec", "ENVELOPE_MAGIC"]

_MAX_AXES = 32
#: The encode options a chunk codec's configuration holds (codec_core.options' table).
CHUNK_OPTIONS = options_for(CHUNKS)


class HybridCodec(Codec):
    """HLC codec for numcodecs; the configuration is the public attributes.

    Its options are those :mod:`codec_core.options` offers to chunk codecs (``mode``,
    ``max_error``, ``bpp``, ``psnr``, ``bits_stored``, ``roi``, ``roi_max_error``,
    ``ecc``), checked when the codec is made; ``roi`` is None or "auto" (a per-array
    mask cannot follow the chunks). ``rgb`` marks the last chunk axis as colour samples.
    As numcodecs' own codecs, the configuration is the public attributes
    (``get_config``, ``repr``); they are set from the table, so an option added there
    needs no change here.
    """

    codec_id = "hlc"

    def __init__(self, mode: str = "lossless", rgb: bool = False, **options: Any) -> None:
        unknown = unknown_options("HybridCodec", sorted(options), [opt.name for opt in CHUNK_OPTIONS] + ["rgb"])
        if unknown:
            raise TypeError(unknown)
        if options.get("roi") not in (None, "auto"):
            raise ValueError("HybridCodec takes roi=None or roi='auto'; a mask array cannot be "
                             "stored in a chunk codec's configuration")
        config = {opt.name: options.get(opt.name, opt.default) for opt in CHUNK_OPTIONS}
        config["mode"] = mode
        self._options = EncodeOptions(**config)  # every check, once
        for name, value in config.items():
            setattr(self, name, value)
        self.rgb = bool(rgb)

    def encode_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`codec_core.encode`: the configuration without ``rgb``."""
        return {opt.name: getattr(self, opt.name) for opt in CHUNK_OPTIONS}

    def encode(self, buf: Any) -> bytes:
        arr = ensure_contiguous_ndarray(buf, flatten=False)  # TypeError for object arrays
        check_dtype(arr.dtype)
        if not arr.flags.c_contiguous:
            if self.rgb:
                raise ValueError("rgb=True needs C-ordered chunks: in Fortran order the 3 colour "
                                 "samples of a pixel are not next to each other")
            arr = arr.T  # the chunk's memory, C-ordered (see the module docstring)
        if arr.size == 0:
            return _envelope(arr, (0,) * arr.ndim, 0, b"")
        box = _coded_box(arr, self.rgb) if self._options.coding_mode == Mode.LOSSY else arr.shape
        if 0 < math.prod(box) < arr.size:
            part = arr[tuple(slice(0, n) for n in box)]
            return _envelope(arr, box, int(arr.flat[-1]), self._encode(part))
        return self._encode(arr)

    def _encode(self, arr: np.ndarray) -> bytes:
        frames, axes = as_frames(arr, rgb=self.rgb)
        return core().encode_with(frames, replace(self._options, axes=axes))

    def decode(self, buf: Any, out: Any = None) -> Any:
        data = ensure_bytes(buf)
        if out is not None:
            out = ensure_contiguous_ndarray(out)  # TypeError for an object array, before decoding
        decoded = _open_envelope(data) if data[:8] == ENVELOPE_MAGIC else core().decode(data)
        return ndarray_copy(decoded, out)


def _coded_box(arr: np.ndarray, rgb: bool) -> tuple[int, ...]:
    """The smallest box at the origin outside which every sample equals the last one."""
    differs = arr != arr.flat[-1]
    if rgb:  # a margin pixel has all 3 samples equal to it; the sample axis is never cut
        differs = differs.any(axis=-1)
    box = []
    for axis in range(differs.ndim):
        hits = np.flatnonzero(differs.any(axis=tuple(a for a in range(differs.ndim) if a != axis)))
        box.append(int(hits[-1]) + 1 if hits.size else 0)
    return (*box, 3) if rgb else tuple(box)


def _envelope(arr: np.ndarray, box: tuple[int, ...], value: int, stream: bytes) -> bytes:
    n = arr.ndim
    if n > _MAX_AXES:
        raise ValueError(f"HLC stores chunks of at most {_MAX_AXES} axes, got shape {arr.shape}")
    head = struct.pack(f"<BB{n}I{n}Ii", SUPPORTED_DTYPES.index(arr.dtype.name), n, *arr.shape, *box, value)
    return ENVELOPE_MAGIC + head + struct.pack("<I", zlib.crc32(head)) + stream


def _open_envelope(data: bytes) -> np.ndarray:
    """The chunk an envelope describes; HlcErrors for damage, as decode() raises them."""
    hlc = core()
    n = data[9] if len(data) > 9 else 0
    end = 10 + 8 * n + 4  # the end of the margin value, where the CRC starts
    if len(data) < end + 4:
        raise hlc.TruncatedStreamError(f"chunk envelope cut short at {len(data)} bytes", "envelope")
    if zlib.crc32(data[8:end]) != int.from_bytes(data[end:end + 4], "little"):
        raise hlc.CorruptStreamError("chunk envelope CRC mismatch: the envelope is damaged", "envelope")
    code = data[8]
    shape = struct.unpack_from(f"<{n}I", data, 10)
    box = struct.unpack_from(f"<{n}I", data, 10 + 4 * n)
    (value,) = struct.unpack_from("<i", data, 10 + 8 * n)
    if code >= len(SUPPORTED_DTYPES) or n > _MAX_AXES or any(b > s for b, s in zip(box, shape, strict=True)):
        raise hlc.CorruptStreamError("invalid chunk envelope", "envelope")
    dtype = np.dtype(SUPPORTED_DTYPES[code])
    if not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
        raise hlc.CorruptStreamError(f"chunk envelope margin {value} is not a {dtype} value", "envelope")
    limit = hlc.api.MAX_PIXELS
    if limit and math.prod(shape) > limit:
        raise hlc.DecompressionBombError(f"chunk envelope claims shape {shape}, over the limit of "
                                         f"{limit} samples (codec_core.api.MAX_PIXELS)")
    out = np.full(shape, value, dtype)
    stream = data[end + 4:]
    if math.prod(box) == 0:
        if stream:
            raise hlc.CorruptStreamError("chunk envelope without a coded box has data after it", "envelope")
        return out
    part = hlc.decode(stream)
    if part.dtype != dtype or part.size != math.prod(box):
        raise hlc.CorruptStreamError(f"chunk envelope box {box} ({dtype}) does not match its stream "
                                     f"({part.size} {part.dtype} samples)", "envelope")
    out[tuple(slice(0, b) for b in box)] = part.reshape(box)
    return out
