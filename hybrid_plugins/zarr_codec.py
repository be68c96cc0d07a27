"""zarr format 3 array-to-bytes codec ``"hlc"``, used as ``serializer=``.

>>> import zarr
>>> from hybrid_plugins.zarr_codec import HlcCodec
>>> z = zarr.create_array(store, shape=(4, 512, 512), chunks=(1, 512, 512), dtype="int16",
...                       serializer=HlcCodec(mode="near-lossless", max_error=1), compressors=None)

A bytes-to-bytes codec would lose the chunk shape, so HLC sits in the array-to-bytes
slot. The codec is found through the ``zarr.codecs`` entry point (name ``"hlc"``), so
arrays written with it open in a fresh process without importing this package. The
chunk layout rules and the configuration are those of
:class:`~hybrid_plugins.numcodecs_codec.HybridCodec`, which does the work; so is the
handling of edge chunks (zarr pads them to the chunk shape with the fill value: in
lossy mode only the part before a constant margin is coded, so the lossy target is
met on the real samples; see that module).

The codec keeps its configuration as a dict, as zarr's own wrappers of numcodecs
codecs do (``zarr.codecs.numcodecs``): its keys are HybridCodec's, which come from
the options table of :mod:`codec_core.options`, so an option added there needs no
change here. Options read as attributes too (``codec.mode``).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from ._common import check_dtype
from .numcodecs_codec import HybridCodec

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["HlcCodec"]


@dataclass(frozen=True, init=False)
class HlcCodec(ArrayBytesCodec):
    """HLC serializer for zarr format 3; arguments as for
    :class:`~hybrid_plugins.numcodecs_codec.HybridCodec` (``mode``, the encode options,
    ``rgb``)."""

    codec_name = "hlc"
    is_fixed_size = False

    configuration: dict[str, Any]
    _numcodec: HybridCodec = field(repr=False, compare=False)

    def __init__(self, **configuration: Any) -> None:
        # HybridCodec checks the arguments and holds the chunk rules; its configuration,
        # every option with its default filled in, is this codec's
        numcodec = HybridCodec(**configuration)
        config = numcodec.get_config()
        del config["id"]
        object.__setattr__(self, "configuration", config)
        object.__setattr__(self, "_numcodec", numcodec)

    def __getattr__(self, name: str) -> Any:
        if name in ("configuration", "_numcodec"):  # (not set yet)
            raise AttributeError(name)
        try:
            return self.configuration[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.configuration.items())))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HlcCodec:
        _, configuration = parse_named_configuration(data, cls.codec_name, require_configuration=False)
        return cls(**(configuration or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.codec_name, "configuration": dict(self.configuration)}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        check_dtype(dtype.to_native_dtype())
        chunk_shape = getattr(chunk_grid, "chunk_shape", None)
        if self._numcodec.rgb and chunk_shape is not None and (len(chunk_shape) < 3 or chunk_shape[-1] != 3):
            raise ValueError(f"rgb=True needs chunks whose last axis is 3, got chunks {chunk_shape}")

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("HLC output size depends on the data")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        # zarr 3 hands the serializer the chunk as an array and reshapes what decode
        # returns to the chunk shape in C order, so the image is coded, not its memory:
        # a Fortran-ordered chunk (order="F", or after a transpose codec) is made C-ordered.
        data = self._numcodec.encode(np.ascontiguousarray(chunk_array.as_numpy_array()))
        return chunk_spec.prototype.buffer.from_bytes(data)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        arr = self._numcodec.decode(chunk_bytes.to_bytes()).reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(arr)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)
