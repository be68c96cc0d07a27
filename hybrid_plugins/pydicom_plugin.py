"""pydicom encoder/decoder plugin for the private HLC transfer syntax.

>>> import pydicom
>>> from hybrid_plugins import HLC_TRANSFER_SYNTAX_UID
>>> ds = pydicom.dcmread("ct.dcm")
>>> ds.compress(HLC_TRANSFER_SYNTAX_UID, mode="near-lossless", max_error=2)
>>> ds.save_as("ct_hlc.dcm")
>>> pydicom.pixels.pixel_array("ct_hlc.dcm", index=0)    # one frame, others untouched

Encoding options (keyword arguments of ``compress``) are those of
:func:`codec_core.encode`: ``mode``, ``max_error``, ``bpp``, ``psnr``, ``roi``,
``roi_max_error``, ``ecc``, ``preprocess``. ``roi`` may also be a DICOM
Segmentation dataset whose frames match the image.

Each frame is one HLC stream in its own fragment, with a Basic Offset Table (pydicom's
``encapsulate``), so one frame decodes without the others. A lossy result gets Lossy
Image Compression "01", its ratio and method appended to earlier values, and a new
SOP Instance UID (PS3.3 C.7.6.1.1.5); a lossless result leaves those alone.

pydicom 3.0 has no public registry for pixel-data codecs: :func:`register` adds the
transfer syntax with ``pydicom.uid.register_transfer_syntax`` and puts an encoder and
a decoder into pydicom's ``_PIXEL_DATA_ENCODERS`` / ``_PIXEL_DATA_DECODERS`` tables
(private names; the tests pin pydicom 3.0 and check the registration).
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from pydicom.pixels.decoders import base as _decoders
from pydicom.pixels.encoders import base as _encoders

from . import HLC_TRANSFER_SYNTAX_UID
from ._common import core, describe_error

__all__ = ["HLC_TRANSFER_SYNTAX_UID", "LOSSY_METHOD", "register", "is_available"]

PLUGIN_LABEL = "hlc"
#: Value written to Lossy Image Compression Method (0028,2114) (CS, at most 16 chars).
LOSSY_METHOD = "HLC_DWT"

ENCODER_DEPENDENCIES = {HLC_TRANSFER_SYNTAX_UID: ("numpy", "hlc-codec")}
DECODER_DEPENDENCIES = {HLC_TRANSFER_SYNTAX_UID: ("numpy", "hlc-codec")}

# Runner option names this plugin keeps for itself while a dataset is encoded.
_FRAME_COUNTER = "hlc_next_frame"
_ROI_MASK = "hlc_roi_mask"


def is_available(uid: str) -> bool:
    """True for the HLC transfer syntax (numpy and codec_core ship with this package)."""
    return uid == HLC_TRANSFER_SYNTAX_UID


# ---------------------------------------------------------------------- encode

def _frame_array(src: bytes, runner: Any) -> tuple[Any, str]:
    """One frame of raw DICOM pixel bytes as an array HLC stores, and its axes."""
    import numpy as np

    bits = runner.bits_stored
    if not 1 <= bits <= 16:
        raise ValueError(f"HLC stores 1 to 16 bits per sample, this image has Bits Stored {bits}")
    dtype = np.dtype(f"{'<i' if runner.pixel_representation else '<u'}{1 if bits <= 8 else 2}")
    rows, cols, samples = runner.rows, runner.columns, runner.samples_per_pixel
    arr = np.frombuffer(src, dtype=dtype)
    if samples == 1:
        arr, axes = arr.reshape(rows, cols), "YX"
    elif samples == 3:
        planar = runner.planar_configuration == 1 and not runner.is_array
        arr = arr.reshape(3, rows, cols).transpose(1, 2, 0) if planar else arr.reshape(rows, cols, 3)
        arr, axes = np.ascontiguousarray(arr), "YXC"
    else:
        raise ValueError(f"HLC stores 1 or 3 samples per pixel, not {samples}")
    # Bits above Bits Stored are not pixel data (PS3.5 8.1.1): drop them, sign-extend.
    container = arr.dtype.itemsize * 8
    if bits < container:
        unsigned = arr.view(f"<u{arr.dtype.itemsize}")
        low = unsigned & np.array((1 << bits) - 1, unsigned.dtype)
        if runner.pixel_representation:
            sign = np.array(1 << (bits - 1), unsigned.dtype)
            arr = ((low ^ sign) - sign).view(arr.dtype)
        else:
            arr = low
    return arr, axes


def _frame_roi(runner: Any, index: int) -> Any:
    """The ROI for frame `index`: None, "auto", or a (rows, cols) boolean mask."""
    import numpy as np

    roi = runner.get_option("roi")
    if roi is None or isinstance(roi, str):
        return roi
    mask = runner.get_option(_ROI_MASK)
    if mask is None:
        frames, rows, cols = runner.number_of_frames, runner.rows, runner.columns
        if hasattr(roi, "PixelData"):  # a DICOM SEG dataset
            from codec_core.roi import mask_from_seg

            mask = mask_from_seg(roi, (frames, rows, cols) if frames > 1 else (rows, cols))
        else:
            mask = np.asarray(roi, dtype=bool)
        if mask.ndim == 3 and mask.shape[0] != frames:
            raise ValueError(f"roi has {mask.shape[0]} frames but the image has {frames}")
        runner.set_option(_ROI_MASK, mask)
    return mask[index] if mask.ndim == 3 else mask


def _encode_frame(src: bytes, runner: Any) -> bytes:
    """pydicom encoding plugin: one frame of raw pixels -> one HLC stream."""
    index = runner.get_option(_FRAME_COUNTER, 0)  # pydicom encodes frames in order
    runner.set_option(_FRAME_COUNTER, index + 1)
    arr, axes = _frame_array(src, runner)
    return core().encode(
        arr, runner.get_option("mode", "lossless"), axes=axes, bits_stored=runner.bits_stored,
        max_error=runner.get_option("max_error"), bpp=runner.get_option("bpp"),
        psnr=runner.get_option("psnr"), roi=_frame_roi(runner, index),
        roi_max_error=runner.get_option("roi_max_error", 0), ecc=runner.get_option("ecc"),
        preprocess=runner.get_option("preprocess"), levels=runner.get_option("levels"),
        threads=runner.get_option("threads"))


def _calling_dataset() -> Any:
    """The dataset ``pydicom.pixels.compress(ds, uid, arr=...)`` is working on, if any.

    With ``arr=`` pydicom hands the encoder only the array; the dataset that will
    receive the pixel data is a local of ``compress`` two frames up the stack.
    """
    from pydicom.dataset import Dataset

    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            break
        if frame.f_code.co_name == "compress" and isinstance(frame.f_locals.get("ds"), Dataset):
            return frame.f_locals["ds"]
        frame = frame.f_back
    return None


def _mark_lossy(ds: Any, ratio: float) -> None:
    """Lossy Image Compression attributes, appended as PS3.3 C.7.6.1.1.5 asks."""
    from pydicom.uid import generate_uid

    def values(keyword: str) -> list[str]:
        if keyword not in ds or ds[keyword].VM == 0:
            return []
        value = ds[keyword].value
        return [str(v) for v in value] if ds[keyword].VM > 1 else [str(value)]

    earlier = ds.get("LossyImageCompression") == "01"
    ratios = values("LossyImageCompressionRatio") if earlier else []
    methods = values("LossyImageCompressionMethod") if earlier else []
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.6g}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, LOSSY_METHOD]
    # A lossy image is a new image: it needs a new SOP Instance UID even when the
    # caller asked pydicom to keep the old one (generate_instance_uid=False).
    if "SOPInstanceUID" in ds:
        ds.SOPInstanceUID = generate_uid()
        if "file_meta" in ds.__dict__ or hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


class HlcEncoder(_encoders.Encoder):
    """pydicom Encoder that also records lossy compression in the dataset."""

    def iter_encode(self, src: Any, **kwargs: Any) -> Iterator[bytes]:
        from pydicom.dataset import Dataset

        ds = src if isinstance(src, Dataset) else _calling_dataset()
        hlc = core()
        lossy, encoded, raw = False, 0, 0
        frames = super().iter_encode(src, **kwargs)
        for data in frames:
            encoded += len(data)
            meta = hlc.info(data)
            lossy = lossy or meta["lossy"]
            raw += meta["rows"] * meta["cols"] * meta["channels"]
            yield data
        if lossy and ds is not None:
            bits_allocated = int(ds.get("BitsAllocated", 16))
            _mark_lossy(ds, raw * bits_allocated / 8 / max(1, encoded))


# ---------------------------------------------------------------------- decode

def _frame_index(src: bytes, runner: Any) -> int | None:
    """Which frame `src` is, found by scanning the fragments (only on the error path)."""
    from pydicom.encaps import generate_frames

    source = runner.src
    tell = source.tell() if hasattr(source, "tell") else None
    try:
        for i, frame in enumerate(generate_frames(source, number_of_frames=runner.number_of_frames,
                                                  extended_offsets=runner.extended_offsets)):
            if frame == src:
                return i
    except Exception:
        return None
    finally:
        if tell is not None:
            source.seek(tell)
    return None


def _decode_frame(src: bytes, runner: Any) -> Any:
    """pydicom decoding plugin: one fragment -> the frame's pixels as bytes."""
    hlc = core()
    try:
        arr = hlc.decode(src)
    except hlc.HlcError as exc:
        index = _frame_index(src, runner)
        which = f"frame {index} (0-based) of {runner.number_of_frames}" if index is not None else "a frame"
        raise hlc.CorruptStreamError(f"HLC pixel data: {which} cannot be decoded: {describe_error(exc)}",
                                     where=f"frame {index}") from exc
    want = (runner.rows, runner.columns) + ((3,) if runner.samples_per_pixel == 3 else ())
    if arr.shape != want:
        raise hlc.CorruptStreamError(f"HLC fragment holds an image of shape {arr.shape} but the dataset "
                                     f"describes frames of shape {want}")
    if runner.samples_per_pixel == 3:
        runner.set_option("planar_configuration", 0)
    runner.set_option("bits_allocated", arr.dtype.itemsize * 8)
    return arr.tobytes()


class HlcDecoder(_decoders.Decoder):
    """pydicom Decoder that resolves the transfer syntax UID read from a file.

    A file read in a fresh process carries the UID as a plain ``UID`` without the
    private encoding registered for it, so pydicom would call it "not a transfer
    syntax"; the dataset is given the registered UID object before decoding.
    """

    def _resolve(self, src: Any) -> None:
        file_meta = getattr(src, "file_meta", None)
        if file_meta is not None and file_meta.get("TransferSyntaxUID") == self.UID:
            if file_meta.TransferSyntaxUID is not self.UID:
                file_meta.TransferSyntaxUID = self.UID

    def as_array(self, src: Any, **kwargs: Any) -> Any:
        self._resolve(src)
        return super().as_array(src, **kwargs)

    def as_buffer(self, src: Any, **kwargs: Any) -> Any:
        self._resolve(src)
        return super().as_buffer(src, **kwargs)

    def iter_array(self, src: Any, **kwargs: Any) -> Any:
        self._resolve(src)
        return super().iter_array(src, **kwargs)

    def iter_buffer(self, src: Any, **kwargs: Any) -> Any:
        self._resolve(src)
        return super().iter_buffer(src, **kwargs)


# ------------------------------------------------------------------- register

def _resolve_uid_values(uid: Any) -> None:
    """Make UI values read from files come back as the registered HLC UID object.

    ``pydicom.pixels.pixel_array(path)`` reads the Transfer Syntax UID itself and asks
    it for its VR encoding; a plain ``UID("2.25...")`` has none. Wrapping the UI value
    converter (one string comparison per UI element) fixes that for every reader.
    """
    from pydicom.valuerep import VR
    from pydicom.values import converters

    convert = converters[VR.UI]
    if getattr(convert, "hlc_resolves", None) == uid:
        return

    def convert_ui(byte_string: bytes, is_little_endian: bool, struct_format: str | None = None) -> Any:
        value = convert(byte_string, is_little_endian, struct_format)
        return uid if value == uid else value

    convert_ui.hlc_resolves = uid  # type: ignore[attr-defined]
    converters[VR.UI] = convert_ui


def register() -> None:
    """Register the transfer syntax, the encoder and the decoder with pydicom (idempotent)."""
    from pydicom.uid import UID, register_transfer_syntax

    uid = register_transfer_syntax(UID(HLC_TRANSFER_SYNTAX_UID), implicit_vr=False, little_endian=True)
    _resolve_uid_values(uid)
    if uid not in _decoders._PIXEL_DATA_DECODERS:
        decoder = HlcDecoder(uid)
        decoder.add_plugin(PLUGIN_LABEL, (__name__, "_decode_frame"))
        _decoders._PIXEL_DATA_DECODERS[uid] = (decoder, "hlc")
    if uid not in _encoders._PIXEL_DATA_ENCODERS:
        encoder = HlcEncoder(uid)
        encoder.add_plugin(PLUGIN_LABEL, (__name__, "_encode_frame"))
        _encoders._PIXEL_DATA_ENCODERS[uid] = (encoder, "hlc")
