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

import math
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


def damaged_signature(head: bytes) -> bool:
    """Whether ``head`` starts with an HLC signature one byte of which is damaged: no
    signature but one byte away from one (the header's copies and the ECC parity can
    then still read the stream). No other format's is that close (PNG's differs from
    MAGIC in 3 bytes); the chunk envelope's own signature is not damage."""
    first = bytes(head[:8])
    if len(first) < 8 or first in SIGNATURES or first == ENVELOPE_MAGIC:
        return False
    return any(sum(a != b for a, b in zip(first, sig, strict=True)) == 1 for sig in SIGNATURES)


class Version(IntEnum):
    """Format versions. V2: per-channel step multipliers, a varint segment index,
    empty detail segments, the lossy LL band in float32. V3: the lean header (varint
    fields, optional fields by key, steps as 16-bit codes, a varint header length) and
    its backup copy only where it is cheap or asked for (docs/FORMAT.md)."""

    V1 = 1
    V2 = 2
    V3 = 3


#: The version the encoder writes, and those the decoder reads (plain ints, as stored).
VERSION = int(Version.V3)
SUPPORTED_VERSIONS = tuple(int(v) for v in Version)

#: The Reed-Solomon wrapper's own version, and its flags byte (no flag is defined:
#: any other value is a damaged or unknown wrapper), docs/FORMAT_ECC.md.
ECC_VERSION = 1
ECC_FLAGS = 0
#: Reed-Solomon protection levels: parity bytes per 255-byte codeword (the ``nsym``
#: the wrapper's header stores; why these values: codec_core/ecc.py).
ECC_LEVELS: dict[str, int] = {"low": 16, "medium": 24, "high": 64}

#: The stream's first bytes up to v2: magic[8], version u8, u32 length of the header
#: body. From v3 the length is a varint of at most 4 bytes (the body is below 2^26
#: bytes), so these 13 bytes always hold it too.
PREFIX = struct.Struct("<8sBI")


def header_end(prefix: bytes) -> int | None:
    """Where the header block of a plain stream ends (magic, version, length, body,
    CRC), from its first :data:`PREFIX` bytes; None if ``prefix`` is not the start of
    a plain HLC stream (or its length field is damaged)."""
    if len(prefix) < PREFIX.size or prefix[:len(MAGIC)] != MAGIC:
        return None
    _, version, body = PREFIX.unpack_from(prefix)
    if version < Version.V3:
        return PREFIX.size + body + 4
    n = shift = 0
    for i in range(len(MAGIC) + 1, PREFIX.size):
        n |= (prefix[i] & 0x7F) << shift
        shift += 7
        if not prefix[i] & 0x80:
            return i + 1 + n + 4
    return None


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
    LOSSY_CONTEXTS = 16  # lossy: detail bands by the lossy band coder (codec_core/_native/lossyband.c)
    LOSSY_RUNS = 32     # with LOSSY_CONTEXTS: that coder's quiet-run variant (zero rows, runs of 16)


FLAG_DENOISED = HeaderFlag.DENOISED
FLAG_VALUE_TABLE = HeaderFlag.VALUE_TABLE
FLAG_ROI = HeaderFlag.ROI
FLAG_REGIONS = HeaderFlag.REGIONS
FLAG_LOSSY_CONTEXTS = HeaderFlag.LOSSY_CONTEXTS
FLAG_LOSSY_RUNS = HeaderFlag.LOSSY_RUNS
KNOWN_FLAGS = int(FLAG_DENOISED | FLAG_VALUE_TABLE | FLAG_ROI | FLAG_REGIONS | FLAG_LOSSY_CONTEXTS | FLAG_LOSSY_RUNS)

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

#: v3: the fixed part of the header body, in stream order: (field, kind), kind "u8"
#: (one byte), "uv" (unsigned LEB128 varint) or "sv" (zig-zag signed varint).
HEADER_FIELDS_V3: tuple[tuple[str, str], ...] = (
    ("mode", "u8"), ("dtype", "u8"), ("bits_stored", "u8"), ("axes", "u8"),
    ("frames", "uv"), ("rows", "uv"), ("cols", "uv"), ("channels", "u8"),
    ("tile_rows", "uv"), ("tile_cols", "uv"), ("levels", "u8"), ("transform", "u8"),
    ("colour", "u8"), ("vmin", "sv"), ("vmax", "sv"), ("flags", "uv"),
)


class OptionalField(IntEnum):
    """v3: keys of the optional header fields, each stored as varint key, varint
    length, bytes, in increasing key order, each at most once, and only when its value
    is not the default (docs/FORMAT.md section 1). An odd key is *ancillary*: a reader
    that does not know it skips it. An even key is *critical*: a reader that does not
    know it refuses the stream (UnsupportedStreamError). Keys 32..63 are reserved for
    the hybrid's region layers (issue 20)."""

    PSNR_TARGET = 1         # f32, informative
    ROI_FRACTION = 3        # f32, informative
    MAX_ERROR = 2           # uv: near-lossless bound k
    STEPS = 4               # the subbands' steps: u16 top code, u8 per band (:func:`pack_steps`)
    RECON_OFFSET = 6        # f32
    CHANNEL_MULT = 8        # f32 per channel
    CLASS_MULT = 10         # f32 per importance class
    ROI_MAX_ERROR = 12      # uv
    ROI_BLOCK = 14          # uv
    VALUE_TABLE = 16        # bytes (flag bit 1)
    CLASS_MAP = 18          # bytes (flag bit 2)


#: v3 optional fields: key -> (Header attribute, kind, default). Kinds: "uv" varint,
#: "f32" one little-endian float32, "f32s" a list of them, "steps" the subbands'
#: steps (:func:`pack_steps`), "bytes" raw. The one table the container packs and unpacks by.
OPTIONAL_FIELDS: dict[int, tuple[str, str, Any]] = {
    OptionalField.PSNR_TARGET: ("psnr_target", "f32", 0.0),
    OptionalField.MAX_ERROR: ("max_error", "uv", 0),
    OptionalField.ROI_FRACTION: ("roi_fraction", "f32", 0.0),
    OptionalField.STEPS: ("steps", "steps", []),
    OptionalField.RECON_OFFSET: ("recon_offset", "f32", 0.0),
    OptionalField.CHANNEL_MULT: ("channel_mult", "f32s", []),
    OptionalField.CLASS_MULT: ("class_mult", "f32s", []),
    OptionalField.ROI_MAX_ERROR: ("roi_max_error", "uv", 0),
    OptionalField.ROI_BLOCK: ("roi_block", "uv", 0),
    OptionalField.VALUE_TABLE: ("value_table", "bytes", b""),
    OptionalField.CLASS_MAP: ("class_map", "bytes", b""),
}


def optional_field_is_critical(key: int) -> bool:
    """Whether a reader must refuse a stream with this key if it does not know it."""
    return key % 2 == 0


# v3 step codes: a quantiser step is (1024 + m) * 2^(e - 50), code = 1024 e + m
# (e < 64, m < 1024): 11 significant bits (0.1% apart), 9e-13 .. 1.7e7, and exact
# in float32 and float64 on every platform (a power of two times an integer).
_STEP_MANTISSA = 1024
_STEP_BIAS = 50


def step_value(code: int) -> float:
    """The quantiser step of a 16-bit step code."""
    e, m = divmod(code, _STEP_MANTISSA)
    return math.ldexp(_STEP_MANTISSA + m, e - _STEP_BIAS)


def step_code(step: float) -> int:
    """The code of the representable step nearest ``step`` (clamped to the range)."""
    if not step > 0:
        return 0
    f, p = math.frexp(step)          # step = f 2^p, 0.5 <= f < 1
    m = round(f * 2 * _STEP_MANTISSA)
    if m == 2 * _STEP_MANTISSA:
        m, p = _STEP_MANTISSA, p + 1
    e = p - 11 + _STEP_BIAS
    if e < 0:
        return 0
    if e > 63:
        return 0xFFFF
    return e * _STEP_MANTISSA + (m - _STEP_MANTISSA)


def round_step(step: float) -> float:
    """``step`` rounded to the nearest step code."""
    return step_value(step_code(step))


#: The subbands' steps are stored as the largest one's code and, per band, how many
#: STEP_GRID codes below it its code is (one byte: down to 8 octaves below; 1/32 of
#: an octave's codes apart, 2-3% in step, where the rate-distortion curve is flat).
STEP_GRID = 32
_MAX_STEP_DROP = 255


def grid_steps(steps: list[float]) -> list[float]:
    """The nearest steps at or above ``steps`` (never finer: a step floor holds) that
    :func:`pack_steps` stores exactly."""
    codes = [_code_at_least(s) for s in steps]
    top = max(codes, default=0)
    drops = [min(_MAX_STEP_DROP, (top - c) // STEP_GRID) for c in codes]
    return [step_value(top - STEP_GRID * d) for d in drops]


def _code_at_least(step: float) -> int:
    c = step_code(step)
    return c + 1 if step_value(c) < step and c < 0xFFFF else c


def pack_steps(steps: list[float]) -> bytes:
    """u16 code of the largest step, then per band one byte: (top - code) / STEP_GRID.
    ValueError for steps not on that grid (:func:`grid_steps`)."""
    codes = [step_code(s) for s in steps]
    top = max(codes, default=0)
    drops = [(top - c) // STEP_GRID for c in codes]
    if [step_value(top - STEP_GRID * d) for d in drops] != list(steps) or max(drops, default=0) > _MAX_STEP_DROP:
        raise ValueError(f"internal error: steps {steps} are not on the header's grid (format.grid_steps)")
    return struct.pack("<H", top) + bytes(drops)


def unpack_steps(data: bytes) -> list[float]:
    """The steps :func:`pack_steps` stored; ValueError if malformed."""
    if len(data) < 2:
        raise ValueError("step field too short")
    (top,) = struct.unpack_from("<H", data)
    if any(STEP_GRID * d > top for d in data[2:]):
        raise ValueError("a step below the smallest code")
    return [step_value(top - STEP_GRID * d) for d in data[2:]]


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
