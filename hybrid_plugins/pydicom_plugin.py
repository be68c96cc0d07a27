"""pydicom encoder/decoder plugin for the private HLC transfer syntax.

>>> import pydicom
>>> from hybrid_plugins import HLC_TRANSFER_SYNTAX_UID
>>> ds = pydicom.dcmread("ct.dcm")
>>> ds.compress(HLC_TRANSFER_SYNTAX_UID, mode="near-lossless", max_error=2)
>>> ds.save_as("ct_hlc.dcm")
>>> pydicom.pixels.pixel_array("ct_hlc.dcm", index=0)    # one frame, others untouched

Encoding options (keyword arguments of ``compress``, which pydicom hands the encoder
as runner options) are those :mod:`codec_core.options` offers to pydicom: ``mode``,
``max_error``, ``bpp``, ``psnr``, ``roi``, ``roi_max_error``, ``ecc``, ``preprocess``,
``levels``, ``threads``; the bits stored are the dataset's. ``roi`` may also be a
DICOM Segmentation dataset whose frames match the image.

Each frame is one HLC stream in its own fragment, with a Basic Offset Table (pydicom's
``encapsulate``), so one frame decodes without the others.

**Source encodings.** Any uncompressed source works: implicit or explicit VR, little
or big endian, deflated, or a compressed file after ``decompress()``. What is written
is explicit VR little endian throughout, because :data:`HLC_TRANSFER_SYNTAX_UID` is a
``UID`` that carries that encoding and ``compress()`` copies it into the dataset.
Pass that object, not the digits as a ``str``: from a ``str`` pydicom makes a UID
without an encoding, and its writer then falls back to the source's encoding (an
implicit VR source comes out implicit VR under a transfer syntax that says explicit,
a malformed file). With only the string at hand, write with
``ds.save_as(path, implicit_vr=False, little_endian=True)``. The pixels of a big
endian, 1-bit or YBR_FULL_422 source are decoded by pydicom before encoding (pydicom
hands encoders raw bytes as little endian samples, one per pixel and sample), and a
dataset being compressed is readied for its new encoding
(:func:`as_explicit_little_endian`: big endian OW/OF/... values such as palettes and
LUTs are byte-swapped, which pydicom's writer leaves to the caller).

**Lossy results.** Encoding a dataset (``ds.compress(uid)``) that turns out lossy
sets Lossy Image Compression "01", appends the ratio and method to earlier values and
gives a new SOP Instance UID (PS3.3 C.7.6.1.1.5); a lossless result leaves those
alone. With ``ds.compress(uid, arr)`` pydicom hands the encoder the array only, so a
lossy result warns (:class:`LossyNotRecordedWarning`) and the caller marks the
dataset with :func:`mark_lossy` after ``compress()``.

**Registration.** :func:`register` uses pydicom's public API where it has one:
``pydicom.uid.register_transfer_syntax`` for the transfer syntax, and the
``raw_element_value`` hook (:mod:`pydicom.hooks`) so that a Transfer Syntax UID read
from a file is the registered UID object: ``pydicom.pixels.pixel_array(path)`` reads
the file meta itself and needs the UID's encoding. pydicom allows one callback per
hook; the plugin wraps the callback in place when it registers, and a callback
registered later replaces it (call :func:`register` again afterwards). pydicom 3.0
has no public registry of pixel data codecs: :func:`_install_codecs` is the one place
that writes pydicom's private tables, and it fails with an error naming the table if
pydicom changes them. pydicom 3.0's ``decompress()`` writes 1-bit pixels one byte each
under Bits Allocated 1 (an invalid file): :func:`register` also wraps it, so that the
bits of a 1-bit HLC dataset are packed afterwards (:func:`_pack_bits_on_decompress`).
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.pixels.decoders import base as _decoders
from pydicom.pixels.encoders import base as _encoders
from pydicom.uid import UID

from codec_core.options import PYDICOM, EncodeOptions, options_for, unknown_options

from ._common import core, describe_error, palette_refusal
from ._constants import HLC_UID_STRING

__all__ = ["HLC_TRANSFER_SYNTAX_UID", "LOSSY_METHOD", "NEAR_LOSSLESS_METHOD", "HYBRID_METHOD",
           "LossyNotRecordedWarning", "mark_lossy", "register", "is_available"]

#: The HLC transfer syntax as a pydicom UID that carries its encoding (explicit VR,
#: little endian). ``UID(HLC_TRANSFER_SYNTAX_UID)`` copies the encoding, so it
#: survives ``compress()`` and the ``deepcopy`` of the file meta in ``dcmwrite``.
HLC_TRANSFER_SYNTAX_UID = UID(HLC_UID_STRING)
HLC_TRANSFER_SYNTAX_UID.set_private_encoding(False, True)

PLUGIN_LABEL = "hlc"
#: Value written to Lossy Image Compression Method (0028,2114) (CS, at most 16 chars).
LOSSY_METHOD = "HLC_DWT"
#: The method of a near-lossless result (the predictive coder, every sample within a
#: stated error, which Derivation Description (0008,2111) records); also a lossy request
#: the near-lossless coder served.
NEAR_LOSSLESS_METHOD = "HLC_NEARLOSSLESS"
#: The method of a hybrid (region layers): each region's coder and what it got are
#: written to Derivation Description (0008,2111).
HYBRID_METHOD = "HLC_HYBRID"

ENCODER_DEPENDENCIES = {HLC_TRANSFER_SYNTAX_UID: ("numpy", "hlc-codec")}
DECODER_DEPENDENCIES = {HLC_TRANSFER_SYNTAX_UID: ("numpy", "hlc-codec")}

# Runner option names this plugin keeps for itself while a dataset is encoded.
_FRAME_COUNTER = "hlc_next_frame"
_ROI_MASK = "hlc_roi_mask"


class LossyNotRecordedWarning(UserWarning):
    """A lossy HLC result from ``compress(uid, arr)``: the dataset is not marked yet."""


def is_available(uid: str) -> bool:
    """True for the HLC transfer syntax (numpy and codec_core ship with this package)."""
    return uid == HLC_TRANSFER_SYNTAX_UID


# ---------------------------------------------------------------------- encode

def _bits_refusal(bits: Any) -> str | None:
    """Why samples of ``bits`` bits cannot be HLC, or None."""
    if bits is not None and not 1 <= int(bits) <= 16:
        return f"HLC stores 1 to 16 bits per sample, this image has Bits Stored {bits}"
    return None


def _frame_array(src: bytes, runner: Any) -> tuple[Any, str]:
    """One frame of raw DICOM pixel bytes as an array HLC stores, and its axes."""
    import numpy as np

    bits = runner.bits_stored
    refusal = _bits_refusal(bits)
    if refusal:
        raise ValueError(refusal)
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
    # pydicom encodes frames in order from 0 (iter_encode), or the one frame given
    # (HlcEncoder.encode sets the counter to its index)
    index = runner.get_option(_FRAME_COUNTER, 0)
    runner.set_option(_FRAME_COUNTER, index + 1)
    arr, axes = _frame_array(src, runner)
    values = {opt.name: runner.get_option(opt.name, opt.default) for opt in options_for(PYDICOM)}
    values["roi"] = _frame_roi(runner, index)
    return core().encode_with(arr, EncodeOptions(axes=axes, bits_stored=runner.bits_stored, **values))


def _is_big_endian(ds: Any) -> bool:
    """True when the dataset's pixel data (and other binary values) are big endian."""
    tsyntax = ds.get("file_meta", {}).get("TransferSyntaxUID")
    if tsyntax is not None and UID(tsyntax).is_transfer_syntax:
        return not UID(tsyntax).is_little_endian
    return ds.original_encoding[1] is False


# Binary VRs whose values pydicom keeps as raw bytes in the file's byte order, and
# the size of the numbers they hold. (OB and UN are bytes, or of unknown structure.)
_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)


def as_explicit_little_endian(ds: Any) -> None:
    """Ready every value of `ds` to be written explicit VR little endian, in place.

    pydicom's writer copies raw (not yet decoded) elements as they were read when the
    dataset's own encoding does not change, nested sequence items included, and it
    never byte-swaps OW, OF, OL, OD or OV values (see ``dcmwrite``'s warning). So
    every element is decoded here (a raw sequence of implicit VR items, or a raw
    element read without its VR, would otherwise be copied as it is), and a big endian
    dataset's binary values (palettes, LUTs, overlays) are swapped, after which the
    dataset is told that its values are little endian (``save_as`` refuses to change
    the byte order of a dataset read as big endian). Pixel data is left alone: the
    caller replaces it.
    """
    import numpy as np

    big = _is_big_endian(ds)
    for elem in ds.iterall():  # (iterating decodes raw elements, at every level)
        size = _WORD_SIZES.get(elem.VR) if big else None
        if size and elem.tag not in _PIXEL_TAGS and isinstance(elem.value, bytes) and elem.value:
            usable = len(elem.value) - len(elem.value) % size
            words = np.frombuffer(elem.value, f">u{size}", count=usable // size)
            elem.value = words.astype(f"<u{size}").tobytes() + elem.value[usable:]
    if big:
        ds.set_original_encoding(False, True)


def _mark_lossy(ds: Any, ratio: float, regions: str = "", near_lossless: int | None = None) -> None:
    """Lossy Image Compression attributes, appended as PS3.3 C.7.6.1.1.5 asks; for a
    hybrid, the method HLC_HYBRID and what each region got in Derivation Description; for
    a near-lossless result (every frame; ``near_lossless`` its max error), the method
    HLC_NEARLOSSLESS and that bound there."""
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
    earlier_text = str(ds.get("DerivationDescription", "") or "")
    if regions:
        method, text = HYBRID_METHOD, regions
    elif near_lossless is not None:
        text = f"HLC near-lossless: every sample within {near_lossless} of the image coded"
        method = NEAR_LOSSLESS_METHOD
    else:  # (after an earlier step's text, whose bound no longer holds, say what this one did)
        method, text = LOSSY_METHOD, "HLC lossy (9/7 wavelet)" if earlier_text else ""
    ds.LossyImageCompressionMethod = [*methods, method]
    if text:
        ds.DerivationDescription = ((earlier_text + "; ") if earlier_text else "")[:1024 - len(text)] + text
    # A lossy image is a new image: it needs a new SOP Instance UID even when the
    # caller asked pydicom to keep the old one (generate_instance_uid=False).
    if "SOPInstanceUID" in ds:
        ds.SOPInstanceUID = generate_uid()
        if "file_meta" in ds.__dict__ or hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def region_summary(meta: dict) -> str:
    """What each region of a hybrid stream got, as one line of text (``info()``'s regions)."""
    parts = []
    for name, r in meta["regions"].items():
        got = "exact" if r["max_error"] == 0 else (f"max error {r['max_error']}, PSNR {r['psnr']:.1f} dB")
        parts.append(f"{name} {100 * r['fraction']:.1f}% {r['coder']} {got}")
    return "HLC hybrid: " + "; ".join(parts)


class _Tally:
    """Whether any frame is lossy, and the raw and encoded sizes, frame by frame."""

    def __init__(self) -> None:
        self.lossy, self.samples, self.encoded = False, 0, 0
        self.regions = ""
        self.all_near_lossless, self.max_error = True, 0  # (of the lossy frames)

    @property
    def near_lossless(self) -> int | None:
        """The max error when every lossy frame is near-lossless, else None."""
        return self.max_error if self.lossy and self.all_near_lossless else None

    def add(self, stream: bytes) -> bytes:
        meta = core().info(stream)
        if meta["lossy"]:
            self.all_near_lossless = self.all_near_lossless and meta["mode"] == "near-lossless"
            self.max_error = max(self.max_error, int(meta["max_error"] or 0))
        self.lossy = self.lossy or bool(meta["lossy"])
        if meta.get("regions") and meta["roi"] and not self.regions:  # (the first hybrid frame speaks for the rest)
            self.regions = region_summary(meta)
        self.samples += meta["rows"] * meta["cols"] * meta["channels"]
        self.encoded += len(stream)
        return stream

    def ratio(self, ds: Any) -> float:
        return self.samples * int(ds.get("BitsAllocated", 16)) / 8 / max(1, self.encoded)


def mark_lossy(ds: Any) -> bool:
    """Record a lossy HLC compression in `ds`; call it once, right after ``compress``.

    For ``ds.compress(HLC_TRANSFER_SYNTAX_UID, arr, ...)``, where pydicom gives the
    encoder no dataset to mark. Reads the HLC frames now in Pixel Data; if any is
    lossy (near-lossless included), sets Lossy Image Compression "01", appends the
    ratio and method to earlier values and gives a new SOP Instance UID, as encoding
    a dataset does. Returns True if the data are lossy, False (nothing changed) if not.
    """
    from pydicom.encaps import generate_frames

    tsyntax = ds.get("file_meta", {}).get("TransferSyntaxUID")
    if tsyntax != HLC_UID_STRING:
        raise ValueError(f"mark_lossy: the Transfer Syntax UID is {tsyntax!r}, not HLC's; call it "
                         "after ds.compress(HLC_TRANSFER_SYNTAX_UID, ...)")
    offsets = None
    if "ExtendedOffsetTable" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    tally = _Tally()
    for stream in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1),
                                  extended_offsets=offsets):
        tally.add(stream)
    if tally.lossy:
        _mark_lossy(ds, tally.ratio(ds), tally.regions, tally.near_lossless)
    return tally.lossy


def _relabel_full_ybr(ds: Any) -> None:
    """Call YBR_FULL_422 pixel data that holds every sample of every pixel YBR_FULL.

    pydicom's ``decompress(as_rgb=False)`` of a YBR_FULL_422 JPEG leaves that label on
    the full, upsampled samples libjpeg gives (and warns that the data is a third
    larger than the label says); the data is YBR_FULL, and HLC stores it as such.
    """
    if ds.get("PhotometricInterpretation") != "YBR_FULL_422" or "PixelData" not in ds:
        return
    tsyntax = ds.get("file_meta", {}).get("TransferSyntaxUID")
    if tsyntax is not None and UID(tsyntax).is_compressed:
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    full = frames * int(ds.Rows) * int(ds.Columns) * 3 * ((int(ds.get("BitsAllocated", 8)) + 7) // 8)
    if len(ds.PixelData) in (full, full + 1):  # (+1: the even-length pad byte)
        ds.PhotometricInterpretation = "YBR_FULL"


def _runner_source(src: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The source to give pydicom's encode runner, and its options.

    The runner hands encoders a dataset's raw pixel bytes as little endian samples,
    one per pixel and sample. That is wrong for big endian data, for packed 1-bit
    data and for YBR_FULL_422 (two luminance samples share a pair of chroma samples):
    for those, the pixels pydicom decodes are encoded instead.
    """
    from pydicom.dataset import Dataset

    if isinstance(src, Dataset):
        _relabel_full_ybr(src)
    if not isinstance(src, Dataset) or not (
            _is_big_endian(src) or src.get("BitsAllocated") == 1
            or src.get("PhotometricInterpretation") == "YBR_FULL_422"):
        return src, kwargs
    from pydicom.pixels import as_pixel_options, pixel_array

    return pixel_array(src, raw=True), {**as_pixel_options(src), **kwargs}


def _describe_stored(ds: Any, was_422: bool) -> None:
    """Make a dataset whose pixels were just encoded describe what HLC stores
    (``was_422``: the dataset was labelled YBR_FULL_422 before encoding).

    (Bits Allocated stays: the decoder gives pydicom the size of what it decodes.)
    """
    as_explicit_little_endian(ds)
    if was_422:
        ds.PhotometricInterpretation = "YBR_FULL"  # HLC keeps every sample of every pixel
        ds.PlanarConfiguration = 1  # (what the US image IODs require with YBR_FULL)


def _check_options(src: Any, kwargs: dict[str, Any]) -> None:
    """Refuse, as ValueError: an option that is neither HLC's nor pydicom's (a misspelt
    ``max_eror=2`` would give another image than the one asked for, with no word), an
    HLC option's bad value, a PALETTE COLOR image in any mode but lossless
    (:func:`palette_refusal`) and samples of more than 16 bits. pydicom's names are
    those of its encoders' options (``EncodeOptions``: the pixel description that
    ``compress(uid, arr)`` passes, ``byteorder``...) and of ``iter_encode``'s arguments."""
    own = set(getattr(_encoders.EncodeOptions, "__annotations__", {})) | {"encoding_plugin", "validate", "index"}
    message = unknown_options("compress() to HLC", (k for k in kwargs if k not in own),
                              [opt.name for opt in options_for(PYDICOM)])
    if message:
        raise ValueError(message)
    # Everything refused here is refused before pydicom's runner, which would give it as a
    # RuntimeError of all its plugins: the options' values (every check that needs no
    # image: OptionError is a ValueError), then what the image is.
    EncodeOptions(**{opt.name: kwargs[opt.name] for opt in options_for(PYDICOM) if opt.name in kwargs})
    photometric = kwargs.get("photometric_interpretation", getattr(src, "PhotometricInterpretation", None))
    refusal = palette_refusal(photometric, kwargs.get("mode", "lossless"), "the image", "mode='lossless'") \
        or _bits_refusal(kwargs.get("bits_stored", getattr(src, "BitsStored", None)))
    if refusal:
        raise ValueError(refusal)


class HlcEncoder(_encoders.Encoder):
    """pydicom Encoder that takes any uncompressed source and records lossy compression.

    ``iter_encode`` (what ``compress()`` calls) changes the dataset it is given once
    every frame is encoded, because ``compress()`` is about to make it an explicit VR
    little endian HLC dataset: its values are made ready for that
    (:func:`as_explicit_little_endian`), a YBR_FULL_422 image becomes YBR_FULL (HLC
    keeps every sample), and a lossy result is marked.
    ``encode(ds, index)`` changes nothing.
    """

    def encode(self, src: Any, index: int | None = None, **kwargs: Any) -> bytes:
        _check_options(src, kwargs)
        src, kwargs = _runner_source(src, kwargs)
        options: dict[str, Any] = {**kwargs, _FRAME_COUNTER: index or 0}  # (frame `index`'s ROI)
        return super().encode(src, index=index, **options)

    def iter_encode(self, src: Any, **kwargs: Any) -> Iterator[bytes]:
        from pydicom.dataset import Dataset

        _check_options(src, kwargs)
        ds = src if isinstance(src, Dataset) else None
        was_422 = ds is not None and ds.get("PhotometricInterpretation") == "YBR_FULL_422"
        source, options = _runner_source(src, kwargs)
        tally = _Tally()
        for data in super().iter_encode(source, **options):
            yield tally.add(data)
        if ds is not None:
            _describe_stored(ds, was_422)
            if tally.lossy:
                _mark_lossy(ds, tally.ratio(ds), tally.regions, tally.near_lossless)
        elif tally.lossy:
            warnings.warn(
                "HLC compressed the array lossily, and pydicom gives the encoder no dataset "
                "to mark: call hybrid_plugins.pydicom_plugin.mark_lossy(ds) after compress() "
                "to set Lossy Image Compression, its ratio and method, and a new SOP Instance UID",
                LossyNotRecordedWarning, stacklevel=2)


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


def _resolving(method: Callable[..., Any]) -> Callable[..., Any]:
    """A Decoder method that first gives the source the registered HLC UID object."""
    @functools.wraps(method)
    def resolving(self: HlcDecoder, src: Any, **kwargs: Any) -> Any:
        file_meta = getattr(src, "file_meta", None)
        if file_meta is not None and file_meta.get("TransferSyntaxUID") == self.UID \
                and file_meta.TransferSyntaxUID is not self.UID:
            file_meta.TransferSyntaxUID = self.UID
        return method(self, src, **kwargs)

    return resolving


class HlcDecoder(_decoders.Decoder):
    """pydicom Decoder that resolves the transfer syntax UID read from a file.

    A file read in a fresh process carries the UID as a plain ``UID`` without the
    private encoding registered for it, so pydicom would call it "not a transfer
    syntax"; each of pydicom's four decoding entry points gives the dataset the
    registered UID object first.
    """

    as_array = _resolving(_decoders.Decoder.as_array)
    as_buffer = _resolving(_decoders.Decoder.as_buffer)
    iter_array = _resolving(_decoders.Decoder.iter_array)
    iter_buffer = _resolving(_decoders.Decoder.iter_buffer)


# ------------------------------------------------------------------- register

def _resolve_transfer_syntax_on_read() -> None:
    """Make the HLC Transfer Syntax UID read from a file the registered UID object.

    ``pydicom.pixels.pixel_array(path)`` and ``iter_pixels(path)`` read the file meta
    themselves and ask the UID for its encoding; a UID made from the file's bytes has
    none. The ``raw_element_value`` hook is wrapped: every value still comes from the
    callback that was there, and only a UI value equal to the HLC UID is replaced, by
    the registered object (an equal string).
    """
    from pydicom.hooks import hooks

    previous = hooks.raw_element_value
    if getattr(previous, "hlc_wraps", None) is not None:
        return

    def raw_element_value(raw: Any, data: dict[str, Any], **kwargs: Any) -> None:
        previous(raw, data, **kwargs)
        if data.get("VR") == "UI" and data.get("value") == HLC_UID_STRING:
            data["value"] = HLC_TRANSFER_SYNTAX_UID

    raw_element_value.hlc_wraps = previous  # type: ignore[attr-defined]
    hooks.register_callback("raw_element_value", raw_element_value)


def _pack_bits_on_decompress() -> None:
    """Make pydicom's ``decompress()`` of a 1-bit HLC dataset write its bits packed.

    pydicom 3.0's ``decompress()`` writes each decoded frame's bytes as they come (one
    byte a pixel) and keeps Bits Allocated 1: the file it makes is invalid, its Pixel
    Data 8 times the length Bits Allocated says (no standard compressed transfer syntax
    carries 1-bit pixels, so pydicom meets this only here). ``decompress`` is wrapped
    where pydicom names it (:mod:`pydicom.pixels`, its ``utils`` module, and
    :mod:`pydicom.dataset`, whose ``Dataset.decompress`` calls it), each name's current
    function on its own, so one another library replaced is wrapped too: after it, the
    Pixel Data of a dataset that was 1-bit HLC is packed as PS3.5 8.1.1 has it, frames
    concatenated first, as ``hlc decode`` writes it. Any other dataset, and Pixel Data
    already packed (by a wrapper met twice, or a pydicom that packs), are left alone.
    """
    import pydicom.dataset
    import pydicom.pixels
    from pydicom.pixels import utils

    for module in (utils, pydicom.pixels, pydicom.dataset):
        previous = getattr(module, "decompress", None)
        if previous is None or getattr(previous, "hlc_wraps", None) is not None:
            continue
        module.decompress = _packing(previous)  # type: ignore[attr-defined]


def _packing(previous: Callable[..., Any]) -> Callable[..., Any]:
    """``previous`` (a pydicom ``decompress``) followed by packing a 1-bit HLC dataset's bits."""
    @functools.wraps(previous)
    def decompress(ds: Any, *args: Any, **kwargs: Any) -> Any:
        one_bit = ds.get("BitsAllocated") == 1 and \
            ds.get("file_meta", {}).get("TransferSyntaxUID") == HLC_TRANSFER_SYNTAX_UID
        result = previous(ds, *args, **kwargs)
        if one_bit:
            _pack_unpacked_bits(ds)
        return result

    decompress.hlc_wraps = previous  # type: ignore[attr-defined]
    return decompress


def _pack_unpacked_bits(ds: Any) -> None:
    """Pack a native 1-bit dataset's Pixel Data if it holds one byte a pixel (0 or 1,
    an even-length pad at most). Where packed data could be read as that (2 pixels or
    fewer), packing it gives the same bytes."""
    import numpy as np
    from pydicom.pixels import pack_bits

    count = int(ds.get("NumberOfFrames", 1) or 1) * ds.Rows * ds.Columns * ds.SamplesPerPixel
    data = ds.PixelData
    if len(data) not in (count, count + 1):
        return
    pixels = np.frombuffer(data, np.uint8, count)
    if pixels.size and pixels.max() > 1:
        return
    ds.PixelData = pack_bits(pixels)
    ds["PixelData"].VR = "OB"


#: pydicom's private codec tables, (module, name): pydicom 3.0 has no public registry.
PRIVATE_TABLES = ((_decoders, "_PIXEL_DATA_DECODERS"), (_encoders, "_PIXEL_DATA_ENCODERS"))


def _install_codecs() -> None:
    """Put the HLC decoder and encoder into pydicom's private tables (idempotent).

    The only place that touches private pydicom names. A table that is missing or no
    longer maps UIDs to ``(coder, version)`` pairs raises, naming the table.
    """
    import pydicom

    for (module, name), (cls, function) in zip(PRIVATE_TABLES, ((HlcDecoder, "_decode_frame"),
                                                                (HlcEncoder, "_encode_frame")), strict=True):
        table = getattr(module, name, None)
        if not isinstance(table, dict) or not all(isinstance(v, tuple) and len(v) == 2
                                                  for v in table.values()):
            raise RuntimeError(f"pydicom {pydicom.__version__} changed its private table "
                               f"{module.__name__}.{name}, where the HLC plugin registers its "
                               "codec: use pydicom 3.0.x, or an hlc-codec release that supports it")
        if HLC_TRANSFER_SYNTAX_UID not in table:
            coder = cls(HLC_TRANSFER_SYNTAX_UID)
            coder.add_plugin(PLUGIN_LABEL, (__name__, function))
            table[HLC_TRANSFER_SYNTAX_UID] = (coder, PLUGIN_LABEL)


def register() -> None:
    """Register the transfer syntax, the encoder and the decoder with pydicom (idempotent)."""
    from pydicom.uid import register_transfer_syntax

    register_transfer_syntax(HLC_TRANSFER_SYNTAX_UID, implicit_vr=False, little_endian=True)
    _resolve_transfer_syntax_on_read()
    _pack_bits_on_decompress()
    _install_codecs()
