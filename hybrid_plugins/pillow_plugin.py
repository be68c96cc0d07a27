"""Pillow plugin for ``.hlc`` files: ``Image.open``, ``im.save`` and ``save_all``.

>>> from PIL import Image
>>> im = Image.open("ct.hlc")            # header only: size, mode, n_frames
>>> im.draft("L", (128, 128))            # a coarse resolution level, as 8-bit grey
>>> im.save("ct_nl.hlc", mode="near-lossless", max_error=2)

Modes: ``L`` (uint8), ``I;16`` (uint16), ``I`` (int16 and int8) and ``RGB`` (uint8
colour). Stacks are frames (``n_frames``/``seek``; ``save_all`` with
``append_images``). ``_open`` reads the header block only; ``load()`` decodes through
:func:`codec_core.decode`, one frame and one resolution level at a time, and closes a
file Pillow opened from a path, as Pillow's plugins do (a stack keeps it for ``seek``,
as an animated PNG does). ``verify()`` checks every CRC without decoding, as PNG's.
Save options are those :mod:`codec_core.options` offers to Pillow (read from
``im.encoderinfo`` by the table's names): ``mode``, ``max_error``, ``bpp``, ``psnr``,
``bits_stored``, ``roi`` (``"auto"``, a boolean array, or an ``L``/``1`` image, a
list of them for ``save_all``), ``roi_max_error``, ``ecc``, ``preprocess``.

Importing this module registers nothing by itself: call :func:`register` (the
start-up hook and :func:`hybrid_plugins.register` do). Only the format's names and the
options table are imported with it (:mod:`codec_core.format`, :mod:`codec_core.options`:
the standard library only); the codec and numpy load on the first open or save, so
``import PIL.Image`` stays fast.
"""
from __future__ import annotations

from typing import IO, Any

from PIL import Image, ImageFile, ImageSequence
from PIL._util import DeferredError

from codec_core.format import PREFIX, damaged_signature, header_end
from codec_core.options import PILLOW, EncodeOptions, options_for, unknown_options

from ._common import MAGICS, core, describe_error
from ._constants import HLC_EXTENSION, HLC_MIME_TYPE

__all__ = ["HlcImageFile", "register", "FORMAT"]

FORMAT = "HLC"

# (dtype, channels) of a stream -> (Pillow mode, raw mode used to unpack it)
_READ_MODES = {
    ("uint8", 1): ("L", "L"),
    ("uint16", 1): ("I;16", "I;16"),
    ("int16", 1): ("I", "I;16S"),
    ("int8", 1): ("I", "I;8S"),
    ("uint8", 3): ("RGB", "RGB"),
}


def _accept(prefix: bytes) -> bool:
    # (a signature with one damaged byte too: the stream's header copies or parity may mend it)
    return prefix[:8] in MAGICS or damaged_signature(prefix)


def _reduced(length: int, level: int) -> int:
    """Samples along an axis at resolution `level` (the wavelet's low band is ceil(n/2))."""
    return -(-length // (1 << level))


class HlcImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "HLC hybrid lossy/lossless medical image"

    def _open(self) -> None:
        meta = self._read_header()
        modes = _READ_MODES.get((meta["dtype"], meta["channels"]))
        if modes is None:
            # an HLC file no other plugin reads: its reason, not Pillow's "cannot identify
            # image file" (which is what a SyntaxError here becomes)
            raise Image.UnidentifiedImageError(
                f"Pillow has no mode for {meta['channels']}-channel {meta['dtype']} images; "
                "read this file with codec_core.decode")
        self._mode, self._rawmode = modes
        self._stream_mode = self._mode
        self._value_range = tuple(meta["value_range"])
        self._full_size = (int(meta["cols"]), int(meta["rows"]))
        self._levels = int(meta["levels"])
        self._multi = meta["axes"] in ("ZYX", "ZYXC")
        self.n_frames = int(meta["frames"]) if self._multi else 1
        self.is_animated = self.n_frames > 1
        # ImageFile.load() closes a file it opened from a path once the pixels are in, as
        # for PNG; a stack keeps it for seek() (as an animated PNG or a GIF does)
        self._close_exclusive_fp_after_loading = self.n_frames == 1
        self.info.update({"bits_stored": meta["bits_stored"], "hlc_mode": meta["mode"],
                          "max_error": meta["max_error"], "lossy": meta["lossy"],
                          "hlc_dtype": meta["dtype"]})
        assert self.fp is not None
        self._fp = self.fp
        self._frame = 0
        self._drafted = False
        self._set_level(0)

    def _read_header(self) -> dict:
        """info() of the header block, the only bytes read. The whole file is read when
        that fails (a damaged header is read from its copy at the end of the stream) and
        for a Reed-Solomon protected file (its wrapper is unwrapped whole)."""
        hlc = core()
        fp = self.fp
        assert fp is not None
        head = fp.read(PREFIX.size)
        size = header_end(head)  # (the header block of a plain stream: docs/FORMAT.md, section 1)
        if size is not None:
            try:
                return hlc.info(head + ImageFile._safe_read(fp, size - len(head)))
            except (OSError, hlc.HlcError):  # OSError: the file ends inside the header
                pass
        fp.seek(0)
        try:
            return hlc.info(fp.read())
        except hlc.HlcError as exc:
            raise SyntaxError(f"unreadable HLC header: {describe_error(exc)}") from exc

    def _set_level(self, level: int) -> None:
        self._level = level
        self._size = (_reduced(self._full_size[0], level), _reduced(self._full_size[1], level))
        frame = self._frame if self._multi else None
        args = (self._rawmode, frame, level, self._value_range)
        self.tile = [ImageFile._Tile("hlc", (0, 0, *self.size), 0, args)]

    def seek(self, frame: int) -> None:
        if not self._seek_check(frame):
            return
        self._frame = frame
        if isinstance(self._fp, DeferredError):  # (closed: as Pillow's own plugins do)
            raise self._fp.ex
        self.fp = self._fp
        self._mode, self._drafted = self._stream_mode, False  # a draft was for the frame before
        self._set_level(0)
        Image._decompression_bomb_check(self.size)

    def tell(self) -> int:
        return self._frame

    def draft(self, mode: str | None, size: tuple[int, int] | None) -> tuple[str, tuple[int, int, float, float]] | None:
        """As JPEG's draft: the coarsest resolution level still at least `size`, and
        mode "L" from any other mode (JPEG gives "L" from colour): colour through
        Pillow's own conversion, 16-bit and int8 grey with the stored value range
        (``info()["value_range"]``, from the header) mapped linearly onto 0..255. Other
        modes are not changed. Returns the mode and the box of the original image in
        the drafted one, as JPEG does; None once loaded, or on a second call."""
        if not self.tile or self._drafted:
            return None
        self._drafted = True
        if mode == "L":
            self._mode = "L"
        level = 0
        while (size and level < self._levels
               and _reduced(self._full_size[0], level + 1) >= size[0]
               and _reduced(self._full_size[1], level + 1) >= size[1]):
            level += 1
        self._set_level(level)
        scale = 1 << level
        return self.mode, (0, 0, self._full_size[0] / scale, self._full_size[1] / scale)

    def verify(self) -> None:
        """Check every CRC of the file (the header, every segment, and the Reed-Solomon
        wrapper of a protected file) without decoding a pixel, as PNG's verify() checks
        its chunks: SyntaxError for a damaged file, OSError for a truncated one. Damage
        the stream repairs itself (a header read from its copy, bytes the parity
        corrects) passes: the pixels come out exact. As for every Pillow image, open
        the file again to load it afterwards."""
        if self.fp is None:
            raise RuntimeError("verify must be called directly after open")
        hlc = core()
        self.fp.seek(0)
        try:
            _check_crcs(self.fp.read())
        except hlc.TruncatedStreamError as exc:
            raise OSError(f"image file is truncated: {describe_error(exc)}") from exc
        except hlc.HlcError as exc:
            raise SyntaxError(f"broken HLC file: {describe_error(exc)}") from exc
        super().verify()

    def reduce(self, factor: int | tuple[int, int], box: tuple[int, int, int, int] | None = None) -> Image.Image:
        """``Image.reduce``; a power-of-two factor on an unloaded image decodes that level only."""
        fx, fy = (factor, factor) if isinstance(factor, int) else factor
        level = fx.bit_length() - 1
        if (box is None and fx == fy and fx > 1 and fx == 1 << level and level <= self._levels
                and self.tile and not self._drafted and self.fp is not None):
            self.fp.seek(0)
            arr = _decode(self.fp.read(), self._frame if self._multi else None, level)
            size = (arr.shape[1], arr.shape[0])
            return Image.frombuffer(self.mode, size, arr.tobytes(), "raw", self._rawmode, 0, 1)
        return super().reduce(factor, box)


def _check_crcs(data: bytes) -> None:
    """Raise the HlcError decode() would for damage a CRC finds, decoding nothing."""
    from codec_core import container, ecc

    if ecc.is_protected(data):
        data, _ = ecc.unprotect(data, strict=True)
    h, start = container.parse_header(data)
    offsets = container.segment_offsets(h, start)
    for i in range(len(h.segments)):
        container.read_segment(data, h, offsets, i)


def _decode(data: bytes, frame: int | None, level: int) -> Any:
    """codec_core.decode with errors turned into the ones Pillow users expect."""
    hlc = core()
    try:
        return hlc.decode(data, frame=frame, level=level)
    except hlc.DecompressionBombError as exc:
        raise Image.DecompressionBombError(describe_error(exc)) from exc
    except hlc.HlcError as exc:
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            try:  # best effort: conceal the damaged parts, as Pillow does for truncated files
                return hlc.decode(data, frame=frame, level=level, strict=False)[0]
            except hlc.HlcError:
                pass
        what = "image file is truncated" if isinstance(exc, hlc.TruncatedStreamError) else "broken HLC data"
        raise OSError(f"{what}: {describe_error(exc)}") from exc


class HlcDecoder(ImageFile.PyDecoder):
    """Decodes a whole frame at one resolution level with codec_core."""

    _pulls_fd = True

    def decode(self, buffer: bytes | bytearray | memoryview | Image.SupportsArrayInterface) -> tuple[int, int]:
        rawmode, frame, level, value_range = self.args
        assert self.fd is not None
        arr = _decode(self.fd.read(), frame, level)
        if self.mode == "L" and rawmode != "L":  # draft("L")
            arr, rawmode = _grey8(arr, value_range), "L"
        self.set_as_raw(arr.tobytes(), rawmode)
        return -1, 0


def _grey8(arr: Any, value_range: tuple[int, int]) -> Any:
    """8-bit grey for draft("L"): colour as Image.convert("L") makes it, grey values
    with the stored range mapped linearly onto 0..255."""
    import numpy as np

    if arr.ndim == 3:
        return np.asarray(Image.fromarray(arr).convert("L"))
    lo, hi = value_range
    scale = 255 / (hi - lo) if hi > lo else 0.0
    return np.rint((arr.astype(np.float32) - lo) * scale).astype(np.uint8)


# ------------------------------------------------------------------------ save

def _frame_arrays(frames: list[Image.Image]) -> list[Any]:
    """Pixels of Pillow frames as the integer arrays HLC stores. Mode I frames (int32)
    take the narrowest type that holds the values of all of them: a stack is one type."""
    import numpy as np

    arrays = []
    for frame in frames:
        if frame.mode not in ("L", "RGB", "I;16", "I"):
            raise OSError(f"cannot write mode {frame.mode} as HLC (convert to L, I;16, I or RGB)")
        arrays.append(np.asarray(frame))
    wide = [a for f, a in zip(frames, arrays, strict=True) if f.mode == "I"]
    if not wide:
        return arrays
    lo = min((int(a.min()) for a in wide if a.size), default=0)
    hi = max((int(a.max()) for a in wide if a.size), default=0)
    dtype: Any
    if all(f.info.get("hlc_dtype") == "int8" for f in frames) and lo >= -128 and hi <= 127:
        dtype = np.int8
    elif lo >= -32768 and hi <= 32767:
        dtype = np.int16
    elif lo >= 0 and hi <= 65535:
        dtype = np.uint16
    else:
        raise ValueError(f"mode I values {lo}..{hi} do not fit 16 bits; HLC stores int16 or uint16")
    return [a.astype(dtype) if f.mode == "I" else a for f, a in zip(frames, arrays, strict=True)]


def _roi_array(roi: Any) -> Any:
    import numpy as np

    if roi is None or isinstance(roi, str):
        return roi
    if isinstance(roi, Image.Image):
        return np.asarray(roi.convert("L")) > 0
    if isinstance(roi, (list, tuple)) and roi and isinstance(roi[0], Image.Image):
        return np.stack([_roi_array(r) for r in roi])
    return np.asarray(roi, dtype=bool)


#: Keys of ``im.encoderinfo`` that are Pillow's own (save_all's), not HLC options.
PILLOW_OWN_KEYS = frozenset({"save_all", "append_images"})


def _write(frames: list[Image.Image], fp: IO[bytes], options: dict[str, Any]) -> None:
    import numpy as np

    arrays = _frame_arrays(frames)
    colour = frames[0].mode == "RGB"
    if len(arrays) == 1:
        arr, axes = arrays[0], "YXC" if colour else "YX"
    else:
        if any(a.shape != arrays[0].shape or a.dtype != arrays[0].dtype for a in arrays):
            raise ValueError("save_all needs frames of one size and mode")
        arr, axes = np.stack(arrays), "ZYXC" if colour else "ZYX"
    offered = [opt.name for opt in options_for(PILLOW)]
    unknown = unknown_options("Image.save() to HLC", (k for k in options if k not in PILLOW_OWN_KEYS), offered)
    if unknown:
        raise ValueError(unknown)
    values = {opt.name: options.get(opt.name, opt.default) for opt in options_for(PILLOW)}
    values["roi"] = _roi_array(values["roi"])
    fp.write(core().encode_with(arr, EncodeOptions(axes=axes, **values)))


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    _write([im], fp, im.encoderinfo)


def _save_all(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    frames = [f.copy() for f in ImageSequence.Iterator(im)]
    frames += list(im.encoderinfo.get("append_images", []))
    im.seek(0)
    _write(frames, fp, im.encoderinfo)


def register() -> None:
    """Register the reader, writer, decoder, extension and MIME type (idempotent)."""
    Image.register_open(FORMAT, HlcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_save_all(FORMAT, _save_all)
    Image.register_decoder("hlc", HlcDecoder)
    Image.register_extension(FORMAT, HLC_EXTENSION)
    Image.register_mime(FORMAT, HLC_MIME_TYPE)
