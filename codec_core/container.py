"""The HLC byte stream: signature, header, segment index, segments.

Layout (all integers little-endian; details in docs/FORMAT.md)::

    magic[8] = 89 48 4C 43 0D 0A 1A 0A     PNG-style: catches text-mode damage
    u8  version
    varint header_length                    (v1, v2: u32)
    header[header_length]                   fixed fields, optional fields, segment index
    u32 crc32(version .. header)
    segment 0, segment 1, ...               each checked by its CRC-32 in the index
    backup (see below): version .. crc32 again, u32 its length, "HLCb"

The order of segments is implied by the header (see :func:`segment_layout`), so a
reader finds one frame, one tile or one resolution without touching the rest.
The header is repeated at the end where a damaged byte in it would cost more than
one tile (several tiles or frames), where the copy costs at most 1/BACKUP_SHARE of
the stream, or where it is asked for (``ecc``): then a damaged byte in it costs
nothing, and otherwise it costs the one tile the stream has.
Every claim is checked against the pixel limit and the stream length before
anything large is allocated.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from .errors import (
    CorruptStreamError,
    DecompressionBombError,
    NotHlcError,
    TruncatedStreamError,
    UnsupportedStreamError,
)
from .format import (  # noqa: F401 (re-exported)
    AXES,
    BACKUP_MARK,
    COLOUR_SAMPLES,
    FLAG_DENOISED,
    FLAG_REGIONS,
    FLAG_ROI,
    FLAG_VALUE_TABLE,
    HEADER_FIELDS,
    HEADER_FIELDS_V3,
    IMPORTANCE_CLASSES,
    KNOWN_FLAGS,
    MAGIC,
    MODES,
    OPTIONAL_FIELDS,
    PREFIX,
    SUPPORTED_VERSIONS,
    TRANSFORMS,
    VERSION,
    ColourTransform,
    Mode,
    Version,
    damaged_signature,
    optional_field_is_critical,
    pack_steps,
    unpack_steps,
    value_limits,
)
from .format import DTYPES as DTYPES_BY_NAME

#: numpy dtypes of the sample types (:data:`format.DTYPES`), in code order.
DTYPES = tuple(np.dtype(name) for name in DTYPES_BY_NAME)

_FIXED = struct.Struct("<" + "".join(code for _, code in HEADER_FIELDS))
_FIXED_NAMES = tuple(name for name, _ in HEADER_FIELDS)
_MAX_HEADER = 1 << 26
#: Deepest decomposition a header may claim.
MAX_HEADER_LEVELS = 12


@dataclass
class Header:
    mode: int
    dtype: int
    bits_stored: int
    axes: int
    frames: int
    rows: int
    cols: int
    channels: int
    tile_rows: int
    tile_cols: int
    levels: int
    transform: int
    colour: int
    max_error: int
    vmin: int
    vmax: int
    flags: int = 0
    roi_max_error: int = 0
    roi_block: int = 0
    roi_fraction: float = 0.0
    recon_offset: float = 0.0
    psnr_target: float = 0.0
    steps: list = field(default_factory=list)          # per band, decomposition order
    class_mult: list = field(default_factory=list)     # step multiplier per importance class
    channel_mult: list = field(default_factory=list)   # v2: lossy step multiplier per channel (empty: 1)
    value_table: bytes = b""                           # packed value table (flag bit 1)
    class_map: bytes = b""                             # packed importance map (flag bit 2)
    segments: list = field(default_factory=list)       # [(length, crc32)]
    version: int = VERSION
    from_backup: bool = False                          # the header came from the copy at the end
    backup: bool | None = None                         # pack(): copy the header at the end (None: by size)

    # ---------------------------------------------------------------- derived
    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def tiles_down(self) -> int:
        return -(-self.rows // self.tile_rows)

    @property
    def tiles_across(self) -> int:
        return -(-self.cols // self.tile_cols)

    @property
    def n_tiles(self) -> int:
        return self.tiles_down * self.tiles_across

    @property
    def pixels(self) -> int:
        return self.frames * self.rows * self.cols * self.channels

    def tile_box(self, t: int) -> tuple[int, int, int, int]:
        ty, tx = divmod(t, self.tiles_across)
        y0, x0 = ty * self.tile_rows, tx * self.tile_cols
        return y0, min(y0 + self.tile_rows, self.rows), x0, min(x0 + self.tile_cols, self.cols)


@dataclass(frozen=True)
class Layout:
    """Where each segment sits in the index, derived from the header alone."""
    per_plane: int          # segments per (frame, tile, channel): levels + 1 (+1 ROI layer)
    count: int

    def plane(self, h: Header, frame: int, tile: int, channel: int) -> int:
        return ((frame * h.n_tiles + tile) * h.channels + channel) * self.per_plane


#: A region-layer hybrid (flag REGIONS) has this many segments, whatever its geometry:
#: the region block, then one stream per layer slot (codec_core/regions.py, docs/FORMAT.md §6).
REGION_SEGMENTS = 4


#: Where every layer of a region stream is empty (every pixel flat padding), its frames
#: are bounded by the map: a frame's first row is 3 bytes or more of runs, and zlib does
#: not shrink data past 1032:1.
FRAMES_PER_MAP_BYTE = 344


def _check_region_frames(h: Header) -> None:
    """A region stream's index has 4 entries whatever its frames, so its frames are held
    to its bytes: a layer is a stream whose index has an entry, a byte at least, for each
    frame; without layers the map bounds them (FRAMES_PER_MAP_BYTE). A 3 kB stream once
    claimed 2^24 frames, and info() and decode() spent seconds and gigabytes on them."""
    block, layers = h.segments[0][0], sum(n for n, _ in h.segments[1:])
    if h.frames > (layers if layers else FRAMES_PER_MAP_BYTE * block):
        _bad(f"{h.frames} frames in a region stream of {block + layers} bytes")


def segment_layout(h: Header) -> Layout:
    if h.flags & FLAG_REGIONS:
        return Layout(REGION_SEGMENTS, REGION_SEGMENTS)
    per_plane = h.levels + 1 + (1 if h.flags & FLAG_ROI else 0)
    return Layout(per_plane, h.frames * h.n_tiles * h.channels * per_plane)


#: Without more than one tile (or frame), or ``ecc``, the header's copy at the end is
#: written only if it costs at most 1/BACKUP_SHARE of the stream: a damaged header
#: byte then costs the stream's one tile, which is the promise (docs/FORMAT.md §1).
BACKUP_SHARE = 50


def pack(h: Header, segments: list[bytes]) -> bytes:
    """The stream (format :data:`VERSION`) of header ``h`` and its ``segments``."""
    h.segments = [(len(s), zlib.crc32(s)) for s in segments]
    # side data lives in the header, under its CRC and its backup copy: a damaged
    # byte there would otherwise cost every tile
    body = _pack_body(h)
    head = bytes([VERSION]) + varint(len(body)) + body
    block = head + struct.pack("<I", zlib.crc32(head))
    size = len(MAGIC) + len(block) + sum(map(len, segments))
    parts = [MAGIC, block, *segments]
    if wants_backup(h, len(block), size):
        parts += [block, struct.pack("<I", len(block)), BACKUP_MARK]
    return b"".join(parts)


def wants_backup(h: Header, block: int, size: int) -> bool:
    """Whether a stream of ``size`` bytes whose header block is ``block`` bytes carries
    the block's copy at the end: asked for, or more than one tile, or cheap."""
    if h.backup is not None:
        return h.backup
    return h.frames * h.n_tiles > 1 or BACKUP_SHARE * (block + 8) <= size


def _pack_body(h: Header) -> bytes:
    """v3 header body: the fixed fields, the optional ones, the segment index."""
    out = bytearray()
    for name, kind in HEADER_FIELDS_V3:
        v = getattr(h, name)
        out += bytes([v]) if kind == "u8" else varint(v if kind == "uv" else _zigzag(v))
    fields = []
    for key in sorted(OPTIONAL_FIELDS):
        name, kind, default = OPTIONAL_FIELDS[key]
        value = getattr(h, name)
        if value != default:
            data = _pack_value(kind, value)
            fields.append(varint(key) + varint(len(data)) + data)
    out += varint(len(fields)) + b"".join(fields)
    return bytes(out) + _pack_index(h.segments)


def _pack_value(kind: str, value) -> bytes:
    if kind == "uv":
        return varint(value)
    if kind == "f32":
        return struct.pack("<f", value)
    if kind == "f32s":
        return np.asarray(value, "<f4").tobytes()
    if kind == "steps":
        return pack_steps(value)
    return bytes(value)


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def parse_header(data: bytes, max_pixels: int | None = None, *,
                 allow_truncated: bool = False) -> tuple[Header, int]:
    """Parse and check the header; returns it and the offset of segment 0.

    If the signature or the header is damaged, the copy at the end of the stream
    is used (``Header.from_backup``). With ``allow_truncated`` a stream that ends
    early is accepted here; the segments it lacks are reported as damaged when
    they are read."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    mv = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    try:
        h, start = _parse_block(mv, 8, signature_ok=len(mv) >= 8 and bytes(mv[:8]) == MAGIC)
    except (CorruptStreamError, NotHlcError, UnsupportedStreamError) as first:
        backup = _backup_block(mv)
        if backup is None:
            raise first from None
        h, _ = _parse_block(backup, 0, signature_ok=True)
        h.from_backup = True
        start = 8 + len(backup)
        # trust the copy only if the data sits where it says (text-mode damage
        # shifts everything: then the original error is the right one)
        if h.segments and not _segment_matches(mv, start, h.segments[0]):
            raise first from None
    _validate(h, max_pixels)
    layout = segment_layout(h)
    if len(h.segments) != layout.count:
        raise CorruptStreamError(f"segment index has {len(h.segments)} entries, header implies {layout.count}",
                                 "header")
    if h.flags & FLAG_REGIONS:
        _check_region_frames(h)
    need = start + sum(n for n, _ in h.segments)
    if need > len(mv) and not allow_truncated:
        raise TruncatedStreamError(f"stream is {len(mv)} bytes, segments need {need}", "segments")
    return h, start


def _header_extent(mv: memoryview, at: int, version: int) -> tuple[int, int]:
    """(end, first) of the header body starting at ``at`` as ``version`` lays it out:
    its CRC follows at ``end``; (-1, the length claimed) when the stream cannot hold it."""
    if version >= Version.V3:
        hlen, first = read_varint(mv[:at + 5], at + 1, "header length")
    else:
        (hlen,), first = struct.unpack_from("<I", mv, at + 1), at + 5
    end = first + hlen
    return (end, first) if hlen <= _MAX_HEADER and end + 4 <= len(mv) else (-1, hlen)


def _version_byte_damaged(mv: memoryview, at: int) -> bool:
    """An unknown version byte in whose place a version this decoder reads makes the
    header's CRC hold: one damaged byte (it was reported as UnsupportedStreamError, which
    a transfer would not retry), not a newer format (whose CRC holds over its own byte)."""
    for version in SUPPORTED_VERSIONS:
        try:
            end, _ = _header_extent(mv, at, version)
        except CorruptStreamError:
            continue
        if end >= 0 and zlib.crc32(bytes([version]) + bytes(mv[at + 1:end])) == struct.unpack_from("<I", mv, end)[0]:
            return True
    return False


def _parse_block(mv: memoryview, at: int, signature_ok: bool) -> tuple[Header, int]:
    """The header block (version .. crc) starting at ``at``; returns it and its end."""
    if not signature_ok:
        if (len(mv) >= 4 and bytes(mv[1:4]) == b"HLC") or damaged_signature(bytes(mv[:8])):
            raise CorruptStreamError("the HLC signature is damaged", "signature")
        raise NotHlcError("not an HLC stream: the first 8 bytes are not the HLC signature")
    if len(mv) < at + 5:
        raise TruncatedStreamError("stream ends inside the header", "header")
    version = mv[at]
    if version not in SUPPORTED_VERSIONS:
        if _version_byte_damaged(mv, at):
            raise CorruptStreamError(f"the header is damaged (its format version byte reads {version})", "header")
        raise UnsupportedStreamError(f"HLC format version {version} is not supported "
                                     f"(this decoder reads {SUPPORTED_VERSIONS})")
    end, first = _header_extent(mv, at, version)
    if end < 0:
        raise TruncatedStreamError(f"header claims {first} bytes but the stream has {len(mv)}", "header")
    (crc,) = struct.unpack_from("<I", mv, end)
    if zlib.crc32(bytes(mv[at:end])) != crc:
        raise CorruptStreamError("header CRC mismatch: the header is damaged", "header")
    try:
        body = bytes(mv[first:end])
        h = _unpack_body_v3(body) if version >= Version.V3 else _unpack_body(body, version)
    except (struct.error, ValueError) as e:  # ValueError: np.frombuffer past a cut body
        raise CorruptStreamError(f"malformed header: {e}", "header") from None
    return h, end + 4


def _segment_matches(mv: memoryview, start: int, entry: tuple) -> bool:
    n, crc = entry
    return start + n <= len(mv) and zlib.crc32(bytes(mv[start:start + n])) == crc


def _backup_block(mv: memoryview) -> memoryview | None:
    """The header copy at the end of the stream (one trailing pad byte allowed)."""
    for end in (len(mv), len(mv) - 1):
        if end >= 8 and bytes(mv[end - 4:end]) == BACKUP_MARK:
            (n,) = struct.unpack_from("<I", mv, end - 8)
            if 9 <= n <= end - 16:
                return mv[end - 8 - n:end - 8]
    return None


def _unpack_body(body: bytes, version: int) -> Header:
    fixed = dict(zip(_FIXED_NAMES, _FIXED.unpack_from(body, 0), strict=True))
    pos = _FIXED.size
    (ns,) = struct.unpack_from("<B", body, pos)
    steps = np.frombuffer(body, "<f4", ns, pos + 1).tolist()
    pos += 1 + 4 * ns
    (nc,) = struct.unpack_from("<B", body, pos)
    mult = np.frombuffer(body, "<f4", nc, pos + 1).tolist()
    pos += 1 + 4 * nc
    chan: list = []
    if version >= Version.V2:
        (nch,) = struct.unpack_from("<B", body, pos)
        chan = np.frombuffer(body, "<f4", nch, pos + 1).tolist()
        pos += 1 + 4 * nch
    side = []
    for _ in range(2):
        (n,) = struct.unpack_from("<I", body, pos)
        if pos + 4 + n > len(body):
            raise CorruptStreamError("side data runs past the header", "header")
        side.append(body[pos + 4:pos + 4 + n])
        pos += 4 + n
    segs = _unpack_index(body, pos, version)
    return Header(**fixed, steps=steps, class_mult=mult, channel_mult=chan, value_table=side[0], class_map=side[1],
                  segments=segs, version=version)


def _unpack_body_v3(body: bytes) -> Header:
    """A v3 header body (docs/FORMAT.md §1): fixed fields, optional fields by key
    (unknown critical key: unsupported; unknown ancillary key: skipped; keys out of
    order or repeated: damaged), then the segment index, which ends the body."""
    # (each list default a new list, the rest shared: copy() of every default was ~10 us a parse)
    values: dict = {name: list(default) if isinstance(default, list) else default
                    for name, _, default in OPTIONAL_FIELDS.values()}
    pos = 0
    for name, kind in HEADER_FIELDS_V3:
        if kind == "u8":
            if pos >= len(body):
                raise CorruptStreamError("header body ends inside its fixed fields", "header")
            values[name], pos = body[pos], pos + 1
        else:
            v, pos = read_varint(body, pos, f"header field {name}")
            values[name] = v if kind == "uv" else (v >> 1) ^ -(v & 1)
    count, pos = read_varint(body, pos, "optional field count")
    last = 0
    for _ in range(count):
        key, pos = read_varint(body, pos, "optional field key")
        n, pos = read_varint(body, pos, "optional field length")
        if key <= last or pos + n > len(body):
            raise CorruptStreamError("optional header fields out of order or past the header", "header")
        last, data, pos = key, body[pos:pos + n], pos + n
        if key in OPTIONAL_FIELDS:
            name, kind, _ = OPTIONAL_FIELDS[key]
            values[name] = _unpack_value(kind, data)
        elif optional_field_is_critical(key):
            raise UnsupportedStreamError(f"stream uses an unknown critical header field (key {key})")
    values["segments"], pos = _unpack_index(body, pos, Version.V3, with_end=True)
    if pos != len(body):
        raise CorruptStreamError("bytes after the segment index in the header", "header")
    return Header(**values, version=int(Version.V3))


def _unpack_value(kind: str, data: bytes):
    if kind == "uv":
        v, end = read_varint(data, 0, "optional field")
        if end != len(data):
            raise CorruptStreamError("optional field longer than its value", "header")
        return v
    if kind in ("f32", "f32s"):
        if len(data) % 4 or (kind == "f32" and len(data) != 4):
            raise CorruptStreamError("float field of a wrong length", "header")
        floats = np.frombuffer(data, "<f4").tolist()
        return floats[0] if kind == "f32" else floats
    if kind == "steps":
        return unpack_steps(data)  # (ValueError: reported as a malformed header)
    return data


def varint(n: int) -> bytes:
    """Unsigned LEB128."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, pos: int, what: str) -> tuple[int, int]:
    """Read a LEB128 value below 2^35 at ``pos``; returns it and the next position."""
    if pos < len(buf) and buf[pos] < 0x80:  # (one byte: most header fields and small segments)
        return buf[pos], pos + 1
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 28:
            raise CorruptStreamError(f"bad {what}")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def _pack_index(segments: list) -> bytes:
    """v3 segment index: varint count (v2: u32), then per segment varint(length) and,
    unless the segment is empty, its u32 CRC-32 (small segments are common: half the
    size of the fixed 8-byte entries of v1, which the header's backup copy doubles)."""
    return varint(len(segments)) + index_entries(segments)


def index_entries(segments: list) -> bytes:
    """The entries of a v2/v3 segment index (without its count)."""
    out = bytearray()
    for n, crc in segments:
        out += varint(n)
        if n:
            out += struct.pack("<I", crc)
    return bytes(out)


def _unpack_index(body: bytes, pos: int, version: int, with_end: bool = False):
    """The segment index at ``pos``; with ``with_end``, also where it ends."""
    if version >= Version.V3:
        nseg, pos = read_varint(body, pos, "segment count")
    else:
        (nseg,) = struct.unpack_from("<I", body, pos)
        pos += 4
    v1 = version < Version.V2
    if pos + (8 if v1 else 1) * nseg > len(body):
        raise CorruptStreamError("segment index runs past the header", "header")
    if v1:  # (u32 length, u32 crc) pairs
        return [tuple(s) for s in np.frombuffer(body, "<u4", 2 * nseg, pos).reshape(-1, 2).tolist()]
    segs = []
    for _ in range(nseg):
        n, pos = read_varint(body, pos, "segment index entry")
        crc = 0
        if n:
            if pos + 4 > len(body):
                raise CorruptStreamError("segment index runs past the header", "header")
            (crc,) = struct.unpack_from("<I", body, pos)
            pos += 4
        if n >= 1 << 32:
            raise CorruptStreamError("segment length beyond 32 bits", "header")
        segs.append((n, crc))
    return (segs, pos) if with_end else segs


def _bad(msg: str) -> NoReturn:
    raise CorruptStreamError(f"invalid header: {msg}", "header")


def _validate(h: Header, max_pixels: int | None) -> None:
    """Every check of docs/FORMAT.md §1, in this order (the first failure is reported)."""
    _check_codes(h)
    _check_layout(h)
    _check_lossy(h)
    if max_pixels and h.pixels > max_pixels:
        raise DecompressionBombError(
            f"image claims {h.frames}x{h.rows}x{h.cols}x{h.channels} = {h.pixels} samples, over the "
            f"limit of {max_pixels} (pass max_pixels=None to decode(), or raise codec_core.MAX_PIXELS, "
            "if you trust this file)")
    if h.frames * h.n_tiles * h.channels > (1 << 24):
        _bad("too many tiles")


def _check_codes(h: Header) -> None:
    """Every code is known; geometry and value range are not empty."""
    if h.mode >= len(MODES):
        _bad(f"unknown mode {h.mode}")
    if h.dtype >= len(DTYPES):
        _bad(f"unknown dtype code {h.dtype}")
    if not 1 <= h.bits_stored <= 8 * DTYPES[h.dtype].itemsize:
        _bad(f"bits stored {h.bits_stored} for {DTYPES[h.dtype]}")
    if h.axes >= len(AXES) or h.channels not in (1, COLOUR_SAMPLES) \
            or (h.channels == COLOUR_SAMPLES) != AXES[h.axes].endswith("C"):
        _bad("axes/channels do not agree")
    if min(h.frames, h.rows, h.cols) < 1 or min(h.tile_rows, h.tile_cols) < 1:
        _bad("zero-sized image or tile")
    if h.levels > MAX_HEADER_LEVELS or h.transform >= len(TRANSFORMS) or h.colour > max(ColourTransform):
        _bad("unknown transform parameters")
    if h.flags & ~KNOWN_FLAGS:
        raise UnsupportedStreamError(f"stream uses unknown feature flags {h.flags:#x}")
    if h.vmin > h.vmax:
        _bad("value range")


def _check_layout(h: Header) -> None:
    """Steps, ROI block, colour transform, frames and value range agree with each other."""
    if h.mode == Mode.LOSSY and len(h.steps) != 1 + 3 * h.levels:
        _bad("lossy stream without one step per subband")
    if h.flags & FLAG_ROI and not 1 <= h.roi_block <= 4096:
        _bad("ROI block size")
    if h.colour == ColourTransform.RCT and h.channels != COLOUR_SAMPLES:
        _bad("colour transform on a single-channel image")
    axes = AXES[h.axes]
    if axes in ("YX", "YXC", "X") and h.frames != 1 or axes == "X" and h.rows != 1:
        _bad(f"axes {axes} with {h.frames} frames of {h.rows} rows")
    lo, hi = value_limits(h.bits_stored, DTYPES[h.dtype].kind == "i")
    if h.vmin < lo or h.vmax > hi:
        _bad(f"value range {h.vmin}..{h.vmax} beyond {h.bits_stored} bits stored")


def _check_lossy(h: Header) -> None:
    """The lossy layer's steps and multipliers, and the side data the flags announce."""
    lossy = h.mode == Mode.LOSSY
    if lossy and not all(0 < s < 1e30 for s in h.steps + h.class_mult + h.channel_mult) \
            or not 0 <= h.recon_offset < 1:
        _bad("lossy steps, multipliers or reconstruction offset not finite and positive")
    if lossy and max(h.steps, default=1) * max(h.class_mult, default=1) * max(h.channel_mult, default=1) >= 1e30:
        _bad("lossy step times its multipliers not finite")  # (each below 1e30, their product overflowed float32)
    if h.channel_mult and (not lossy or len(h.channel_mult) != h.channels):
        _bad("channel step multipliers without a lossy layer and one multiplier per channel")
    if bool(h.flags & FLAG_VALUE_TABLE) != bool(h.value_table) or bool(h.flags & FLAG_ROI) != bool(h.class_map):
        _bad("side data does not match the flags")
    if h.flags & FLAG_ROI and (not lossy or len(h.class_mult) != IMPORTANCE_CLASSES):
        _bad("importance map without a lossy layer and one multiplier per class")
    if h.flags & FLAG_REGIONS and (not lossy or h.flags & (FLAG_ROI | FLAG_VALUE_TABLE) or h.levels):
        _bad("region layers in a stream that is not a plain lossy header")


def segment_offsets(h: Header, start: int) -> list[int]:
    offs = [start]
    for n, _ in h.segments:
        offs.append(offs[-1] + n)
    return offs


def read_segment(data: bytes, h: Header, offsets: list[int], i: int) -> bytes:
    """Bytes of segment ``i``; CorruptStreamError if its CRC does not match."""
    if offsets[i + 1] > len(data):
        raise TruncatedStreamError(f"segment {i} is cut off: the stream ends at byte {len(data)}",
                                   f"segment {i}")
    seg = bytes(data[offsets[i]:offsets[i + 1]])
    if zlib.crc32(seg) != h.segments[i][1]:
        raise CorruptStreamError(f"segment {i} CRC mismatch", f"segment {i}")
    return seg
