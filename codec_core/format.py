"""The HLC format's named values: signatures, codes and their names, axes, value limits.

Every value the stream stores as a code (mode, dtype, axes, transform, colour
transform, plane coder, colour plane, header flags) has its name here, and the
container, the encoder, the decoder, the adapters and the command line compare
against these names, never against bare numbers or bytes. docs/FORMAT.md describes
the same values field by field.

This module is small and cheap to import on purpose (the standard library only, no
numpy): the Pillow and pydicom hooks, the numcodecs codec and ``hlc --help`` import
it without loading the codec. Its functions take shapes, dtype *names* and objects
that merely have ``.shape``/``.reshape`` (numpy arrays), so that nothing here needs
numpy itself.
"""
from __future__ import annotations

import struct
from enum import IntEnum
from typing import Any, Literal, get_args

# ----------------------------------------------------------------- signatures

#: A plain HLC stream starts with these 8 bytes (PNG-style: the high byte catches
#: 7-bit transfers, CR LF and LF catch line-ending conversion, 1A stops DOS ``type``).
MAGIC = b"\x89HLC\r\n\x1a\n"
#: A stream wrapped in Reed-Solomon parity (docs/FORMAT_ECC.md).
ECC_MAGIC = b"\x89HLE\r\n\x1a\n"
#: Both signatures an HLC stream may start with.
SIGNATURES = (MAGIC, ECC_MAGIC)
#: A chunk envelope of the numcodecs/zarr codec (hybrid_plugins/numcodecs_codec.py):
#: neither HLC signature, so a reader never takes one for the other.
ENVELOPE_MAGIC = b"\x89HLM\r\n\x1a\n"
#: The last 4 bytes of a stream: the mark after the header's backup copy.
BACKUP_MARK = b"HLCb"


class Version(IntEnum):
    """Format versions. V2: per-channel step multipliers, a varint segment index,
    empty detail segments, the lossy LL band in float32 (docs/FORMAT.md)."""

    V1 = 1
    V2 = 2


#: The version the encoder writes, and those the decoder reads (plain ints, as stored).
VERSION = int(Version.V2)
SUPPORTED_VERSIONS = tuple(int(v) for v in Version)

#: The Reed-Solomon wrapper's own version, and its flags byte (no flag is defined:
#: any other value is a damaged or unknown wrapper), docs/FORMAT_ECC.md.
ECC_VERSION = 1
ECC_FLAGS = 0
#: Reed-Solomon protection levels: parity bytes per 255-byte codeword (the ``nsym``
#: the wrapper's header stores; why these values: codec_core/ecc.py).
ECC_LEVELS: dict[str, int] = {"low": 16, "medium": 24, "high": 64}

#: The stream's first bytes: magic[8], version u8, u32 length of the header body.
PREFIX = struct.Struct("<8sBI")


def header_end(prefix: bytes) -> int | None:
    """Where the header block of a plain stream ends (magic, version, length, body,
    CRC: 17 + the body's length), from its first :data:`PREFIX` bytes; None if
    ``prefix`` is not the start of a plain HLC stream."""
    if len(prefix) < PREFIX.size or prefix[:len(MAGIC)] != MAGIC:
        return None
    _, _, body = PREFIX.unpack_from(prefix)
    return PREFIX.size + body + 4


# ----------------------------------------------------------------- header codes

class Mode(IntEnum):
    """The ``mode`` field, and the ``mode=`` argument of ``encode`` (by its label)."""

    LOSSLESS = 0
    NEAR_LOSSLESS = 1
    LOSSY = 2

    @property
    def label(self) -> str:
        """The name the API uses: "lossless", "near-lossless" or "lossy"."""
        return MODES[self]

    @classmethod
    def of(cls, label: str) -> Mode:
        """The mode named ``label`` (ValueError for an unknown one)."""
        return cls(MODES.index(label))


#: The modes' labels, as ``encode(mode=...)`` takes them, in code order:
#: ``MODES[Mode.LOSSY] == "lossy"``.
ModeName = Literal["lossless", "near-lossless", "lossy"]
MODES: tuple[str, ...] = get_args(ModeName)


class Transform(IntEnum):
    """The ``transform`` field: the wavelet of every plane."""

    DWT53 = 0   # reversible integer 5/3 (lossless, near-lossless)
    DWT97 = 1   # irreversible CDF 9/7 (lossy)

    @property
    def label(self) -> str:
        return TRANSFORMS[self]


#: Transform labels, in code order (what ``info()`` reports).
TRANSFORMS = ("5/3", "9/7")


class ColourTransform(IntEnum):
    """The ``colour`` field."""

    NONE = 0
    RCT = 1     # reversible colour transform: Y = (R + 2G + B) >> 2, Cb = B - G, Cr = R - G


class HeaderFlag(IntEnum):
    """Bits of the ``flags`` field; an unknown bit makes a stream unsupported.

    An IntEnum, not an IntFlag: their combinations are plain ints, and ``~`` is the
    integer complement (IntFlag's ``~`` keeps only the defined bits, so
    ``flags & ~KNOWN_FLAGS`` would never see an unknown bit)."""

    DENOISED = 1        # denoised before coding (a lossy step)
    VALUE_TABLE = 2     # lossless ranks in a value table (side data in the header)
    ROI = 4             # importance map and ROI layer
    REGIONS = 8         # hybrid by region layers: a region block and one stream per layer (codec_core/regions.py)


FLAG_DENOISED = HeaderFlag.DENOISED
FLAG_VALUE_TABLE = HeaderFlag.VALUE_TABLE
FLAG_ROI = HeaderFlag.ROI
FLAG_REGIONS = HeaderFlag.REGIONS
KNOWN_FLAGS = int(FLAG_DENOISED | FLAG_VALUE_TABLE | FLAG_ROI | FLAG_REGIONS)

class Importance(IntEnum):
    """A block's class in the importance map (hybrid streams): one step multiplier each.
    Body and detail are the region of interest."""

    BACKGROUND = 0
    BODY = 1
    DETAIL = 2


#: Importance classes of the map (background, body, detail).
IMPORTANCE_CLASSES = len(Importance)
#: The lowest class inside the region of interest: ``classes >= ROI_CLASS`` is the ROI.
ROI_CLASS = Importance.BODY


class PlaneCoder(IntEnum):
    """The first byte of resolution segment 0 of a reversible plane (docs/FORMAT.md §3)."""

    WAVELET = 0             # 5/3 bands, one segment per resolution
    PREDICTIVE = 1          # i32 lo, i32 hi, one predictive segment of the whole plane
    PREDICTIVE_COLOUR = 2   # near-lossless RGB: a tile's three planes coded together

    @property
    def tag(self) -> bytes:
        """The byte that starts a segment coded this way."""
        return bytes([self])


def plane_coder(segment: bytes) -> int | None:
    """The coder byte a reversible plane's first segment starts with (None if empty);
    compare it with :class:`PlaneCoder`."""
    return segment[0] if segment else None


class ColourPlane(IntEnum):
    """First byte of a non-reference colour plane of a predictive colour tile."""

    PLAIN = 0         # the channel itself
    DIFFERENCE = 1    # i32 lo, i32 hi, then the channel minus the reconstructed reference


#: The head of a predictive plane (:data:`PlaneCoder.PREDICTIVE`) and of a colour plane
#: coded as a difference (:data:`ColourPlane.DIFFERENCE`): its code byte, then i32 lo,
#: i32 hi, the range of the values coded.
RANGE_HEAD = struct.Struct("<Bii")


#: The fixed part of the header body, in stream order: (field, struct code). The
#: container packs and unpacks the header by these names (docs/FORMAT.md §1).
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("mode", "B"), ("dtype", "B"), ("bits_stored", "B"), ("axes", "B"),
    ("frames", "I"), ("rows", "I"), ("cols", "I"), ("channels", "B"),
    ("tile_rows", "I"), ("tile_cols", "I"), ("levels", "B"), ("transform", "B"),
    ("colour", "B"), ("max_error", "H"), ("vmin", "i"), ("vmax", "i"), ("flags", "B"),
    ("roi_max_error", "H"), ("roi_block", "H"), ("roi_fraction", "f"),
    ("recon_offset", "f"), ("psnr_target", "f"),
)

# ----------------------------------------------------------------- sample types

#: The sample types HLC stores, by name; the ``dtype`` field is the index.
DTYPES = ("uint8", "int8", "uint16", "int16")
#: Bits per sample at most (the largest type's).
MAX_BITS = 16


def dtype_code(name: str) -> int:
    """The ``dtype`` field of a sample type name (ValueError for another type)."""
    return DTYPES.index(name)


def value_limits(bits: int, signed: bool) -> tuple[int, int]:
    """The smallest and largest value ``bits`` stored bits hold (two's complement if signed)."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


# ----------------------------------------------------------------- axes

#: Axes layouts, in code order (the ``axes`` field), and the dimensions of each.
AXES = ("YX", "YXC", "ZYX", "ZYXC", "X")
AXES_NDIM = {"YX": 2, "YXC": 3, "ZYX": 3, "ZYXC": 4, "X": 1}
#: Samples of a colour pixel (the C axis).
COLOUR_SAMPLES = 3


def guess_axes(shape: tuple[int, ...]) -> str:
    """The layout of an array of ``shape``: (rows, cols), (rows, cols, 3) colour,
    (frames, rows, cols), (frames, rows, cols, 3), or 1-D; ValueError otherwise."""
    ndim = len(shape)
    if ndim == 1:
        return "X"
    if ndim == 2:
        return "YX"
    if ndim == 3:
        return "YXC" if shape[-1] == COLOUR_SAMPLES else "ZYX"
    if ndim == 4 and shape[-1] == COLOUR_SAMPLES:
        return "ZYXC"
    raise ValueError(f"unsupported shape {tuple(shape)}: use (rows, cols), (rows, cols, 3), "
                     "(frames, rows, cols) or (frames, rows, cols, 3), or pass axes=")


def check_axes(axes: str, shape: tuple[int, ...]) -> str:
    """``axes`` if it names a layout that fits ``shape``; ValueError saying why not."""
    if axes not in AXES_NDIM:
        raise ValueError(f"axes={axes!r} is not one of {sorted(AXES_NDIM)}")
    if len(shape) != AXES_NDIM[axes]:
        raise ValueError(f"axes={axes!r} needs a {AXES_NDIM[axes]}-D array, got shape {tuple(shape)}")
    if axes.endswith("C") and shape[-1] != COLOUR_SAMPLES:
        raise ValueError(f"axes={axes!r} needs 3 colour samples in the last axis, got shape {tuple(shape)}")
    return axes


def to_fyxc(arr: Any, axes: str) -> Any:
    """A (frames, rows, cols, channels) view of a numpy array laid out as ``axes``:
    no copy of the image is made."""
    a = arr.reshape(1, -1) if axes == "X" else arr
    if axes in ("YX", "X"):
        return a[None, :, :, None]
    if axes == "YXC":
        return a[None]
    if axes == "ZYX":
        return a[..., None]
    return a


def image_shape(axes: str, frames: int, rows: int, cols: int) -> tuple[int, ...]:
    """The array shape of an image of ``axes`` (the inverse of :func:`to_fyxc`)."""
    return {"YX": (rows, cols), "YXC": (rows, cols, COLOUR_SAMPLES), "ZYX": (frames, rows, cols),
            "ZYXC": (frames, rows, cols, COLOUR_SAMPLES), "X": (cols,)}[axes]
