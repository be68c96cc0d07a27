"""Hybrid coding by region layers (header flag REGIONS; docs/FORMAT.md §6).

The importance map gives every pixel one of three classes: detail (kept within
``roi_max_error``), body (within ``body_max_error``, by default the same) and
background (its own target). Each *layer* is a complete HLC stream of the image in
which the pixels of the other layers are filled in so that they cost next to
nothing; the decoder decodes the layers and takes every pixel from the layer its
class names. It runs no model: the map is in the stream.

- A bounded layer (the region of interest; the background too with
  ``background_max_error``) is the image with every other pixel set to one value
  (the median of those pixels), coded as the whole image is coded within its bound:
  lossless picks the 5/3 wavelet or the predictive coder (and a value table) as it
  does for any image, near-lossless is the predictive coder at ±bound. So the ROI
  layer costs what the *free-background limit* costs, by construction. Classes with
  the same bound share one layer.
- The lossy background layer is the image with the region of interest filled by a
  smooth continuation of the background (push-pull), so the 9/7 spends nothing
  there, coded by lossy mode (which also tries the near-lossless coder and keeps it
  where that is smaller) at the rate that meets the background's own target:
  ``background_psnr`` (PSNR of the background samples alone, peak = max − min of the
  image; default :data:`DEFAULT_BACKGROUND_PSNR`), a whole-image ``psnr`` (turned
  into the background PSNR that gives it, the ROI's error counted) or ``bpp`` (the
  bytes the other layers leave; never below :data:`BACKGROUND_PSNR_FLOOR`, with a
  warning when that does not fit).

The region block (segment 0) is self-describing: its own version byte and length,
the target, the map (a lossless HLC stream of the class of every block), the layer
slots and what each class reached (for ``info()``).
"""
from __future__ import annotations

import copy
import math
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from . import container as ct
from .decoder import DecodeReport, decode_stream
from .errors import CorruptStreamError, HlcError, UnsupportedStreamError
from .format import FLAG_DENOISED, FLAG_REGIONS, IMPORTANCE_CLASSES, Importance, Mode, Transform
from .options import PSNR_TOLERANCE, EncodeOptions
from .pipeline import area_reduce, deflate, inflate, release_free_memory

if TYPE_CHECKING:
    from .strategy import CheckedImage

#: The region block's own version (its first byte).
BLOCK_VERSION = 1
#: Layer slots (segments 1..3 of the stream): at most one layer per class.
SLOTS = ct.REGION_SEGMENTS - 1
#: A hybrid with no target keeps its background at this PSNR (its own samples).
DEFAULT_BACKGROUND_PSNR = 40.0
#: A whole-image ``bpp`` or ``psnr`` never takes the background below this PSNR.
BACKGROUND_PSNR_FLOOR = 30.0
#: The first rate the background's 9/7 layer is tried at (bits per pixel of the image).
FIRST_BPP = 0.05
# The background PSNR is met from above within PSNR_TOLERANCE, lossy mode's promise
# (it was 0.1 dB; with the lossy detail-band coder, streams a size step apart can
# differ by 0.5 dB at a 40 dB background, and the size search cannot land between).
#: ``decode(level=k)`` of a region stream: the area mean, down to 1/2^MAX_LEVEL.
MAX_LEVEL = 8
NO_BOUND = 0xFFFF
UNUSED = 0xFF
#: The map's fourth class: background padding, every pixel one value (stored in the
#: block), exact. Large flat areas of the background (the outside of a CT
#: reconstruction circle, a scanner's padding) are found by the encoder.
FLAT = IMPORTANCE_CLASSES
MAP_CLASSES = FLAT + 1
#: Flat padding is marked only where it is solid (an opening by a square this wide)
#: and covers at least this share of the image.
FLAT_OPENING = 5
FLAT_MIN_SHARE = 0.01
CLASS_NAMES = {Importance.DETAIL: "detail", Importance.BODY: "body", Importance.BACKGROUND: "background"}

_HEAD = struct.Struct("<BI")            # block version, length of the rest
_TARGET = struct.Struct("<BfHi")        # target kind, target value, map block size, flat value
_SLOT = struct.Struct("<BHB")           # classes (bit c: class c), bound (NO_BOUND: lossy), coder (stream mode)
_REACHED = struct.Struct("<ffI")        # per class: fraction of pixels, PSNR (inf: exact), max error


class Target(IntEnum):
    """What the background's rate was set by (the region block's first field)."""

    DEFAULT = 0                 # no target given: background_psnr = DEFAULT_BACKGROUND_PSNR
    BACKGROUND_PSNR = 1
    BACKGROUND_MAX_ERROR = 2
    BPP = 3                     # whole image
    PSNR = 4                    # whole image


TARGET_NAMES = {Target.DEFAULT: "background_psnr (default)", Target.BACKGROUND_PSNR: "background_psnr",
                Target.BACKGROUND_MAX_ERROR: "background_max_error", Target.BPP: "bpp", Target.PSNR: "psnr"}


def target_of(opts: EncodeOptions) -> tuple[Target, float]:
    """The one target of a hybrid's options and its value."""
    for kind, value in ((Target.BACKGROUND_PSNR, opts.background_psnr),
                        (Target.BACKGROUND_MAX_ERROR, opts.background_max_error),
                        (Target.BPP, opts.bpp), (Target.PSNR, opts.psnr)):
        if value is not None:
            return kind, float(value)
    return Target.DEFAULT, DEFAULT_BACKGROUND_PSNR


# ----------------------------------------------------------------- the block

@dataclass
class Slot:
    classes: tuple[int, ...]    # importance classes whose pixels come from this layer
    bound: int | None           # every pixel within +-bound; None: lossy (the target's)
    coder: int = UNUSED         # the layer stream's mode (what info() reports)

    @property
    def bits(self) -> int:
        return sum(1 << c for c in self.classes)


@dataclass
class RegionBlock:
    target: Target
    value: float
    block: int                  # map block size in pixels
    map_stream: bytes
    slots: list[Slot]
    reached: list[tuple[float, float, int]] = field(default_factory=list)  # per class
    flat: int = 0               # the value of FLAT pixels

    def pack(self) -> bytes:
        body = _TARGET.pack(self.target, self.value, self.block, self.flat)
        body += struct.pack("<I", len(self.map_stream)) + self.map_stream
        for i in range(SLOTS):
            s = self.slots[i] if i < len(self.slots) else None
            body += _SLOT.pack(0, 0, UNUSED) if s is None else _SLOT.pack(
                s.bits, NO_BOUND if s.bound is None else s.bound, s.coder)
        for c in range(IMPORTANCE_CLASSES):
            frac, psnr, err = self.reached[c] if self.reached else (0.0, 0.0, 0)
            body += _REACHED.pack(frac, psnr, min(err, 0xFFFFFFFF))
        return _HEAD.pack(BLOCK_VERSION, len(body)) + body


def unpack_block(seg: bytes) -> RegionBlock:
    """The region block of segment 0 (CorruptStreamError if malformed)."""
    try:
        version, n = _HEAD.unpack_from(seg)
        if version != BLOCK_VERSION:
            raise UnsupportedStreamError(f"region block version {version} is not supported (this decoder "
                                         f"reads {BLOCK_VERSION})")
        if _HEAD.size + n > len(seg):
            raise CorruptStreamError("region block runs past its segment", "region block")
        pos = _HEAD.size
        kind, value, block, flat = _TARGET.unpack_from(seg, pos)
        pos += _TARGET.size
        (m,) = struct.unpack_from("<I", seg, pos)
        map_stream = bytes(seg[pos + 4:pos + 4 + m])
        pos += 4 + m
        slots = []
        for _ in range(SLOTS):
            bits, bound, coder = _SLOT.unpack_from(seg, pos)
            pos += _SLOT.size
            if bits:
                slots.append(Slot(tuple(c for c in range(IMPORTANCE_CLASSES) if bits >> c & 1),
                                  None if bound == NO_BOUND else bound, coder))
        reached = []
        for _ in range(IMPORTANCE_CLASSES):
            reached.append(_REACHED.unpack_from(seg, pos))
            pos += _REACHED.size
        target = Target(kind)
    except (struct.error, ValueError) as e:
        raise CorruptStreamError(f"region block is malformed: {e}", "region block") from None
    covered = [c for s in slots for c in s.classes]
    if len(covered) != len(set(covered)) or bits >> IMPORTANCE_CLASSES or not 1 <= block <= 4096:
        raise CorruptStreamError("region block: layer slots overlap or name unknown classes", "region block")
    return RegionBlock(target, value, block, map_stream, slots, reached, flat)


# ----------------------------------------------------------------- fills

def constant_fill(pixels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``pixels`` (frames, rows, cols, channels) with every pixel outside ``keep``
    set to one value per channel: the median of those pixels."""
    if keep.all():
        return pixels
    out = np.array(pixels)
    rest = ~keep
    for c in range(pixels.shape[-1]):  # (a mask of every axis: no int64 index arrays)
        value = np.rint(np.median(pixels[..., c][rest])).astype(pixels.dtype)
        np.copyto(out[..., c], value, where=rest)
    return out


def _halve(x: np.ndarray) -> np.ndarray:
    """Sums of 2 x 2 cells (a missing row or column counts 0)."""
    r, c = x.shape
    if x.dtype == np.float64 and not (r & 1 or c & 1):  # (no zero-padded copy: the same sums)
        return x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]
    p = np.zeros((r + (r & 1), c + (c & 1)))
    p[:r, :c] = x
    return p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]


def _double(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Twice the size (each sample repeated, then a [1 2 1]/4 filter each way), cropped.
    The filter runs in place as ((2 y + y_before) + y_after) / 4, the same sums as
    (y_before + 2 y + y_after) / 4 (IEEE addition commutes): two planes alive, not five."""
    y = np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)
    for axis in (0, 1):
        if y.shape[axis] > 1:
            t = y * 2
            yv, tv = (y, t) if axis == 0 else (y.T, t.T)
            tv[1:] += yv[:-1]
            tv[:1] += yv[:1]
            tv[:-1] += yv[1:]
            tv[-1:] += yv[-1:]
            t /= 4
            del yv, tv
            y = t
    return y[:shape[0], :shape[1]]


def _mean_or(v: np.ndarray, w: np.ndarray, up: np.ndarray) -> np.ndarray:
    """The mean of the known samples of each cell (sums ``v``, counts ``w``: whole
    numbers), ``up`` where none is: written into ``up``, which is returned (no
    quotient, divisor or result plane beside it: the padding fill's peak was those
    three at its finest level, 0.75x a 16-bit image's raw size)."""
    np.divide(v, w, out=up, where=w > 0)
    return up


def _push_pull(x: np.ndarray, known: np.ndarray, out: np.ndarray) -> None:
    """Write into ``out`` (``x``'s shape, an integer type) where ``known`` is not set a
    smooth continuation of the known samples of ``x``: means of the known samples over
    ever larger cells, brought back down by interpolation (float64), rounded and
    clipped to ``out``'s type. The pyramid starts at 4 x 4 cells, whose sums and the
    2 x 2 level and plane below them are compiled (regionmap.c fill_sums, fill_plane:
    numpy's operations in its order, a row at a time: no plane-sized float array; the
    values the whole planes give: tests/test_padding_fill.py)."""
    rows, cols = known.shape
    if -(-rows // 2) * -(-cols // 2) == 1:  # (the 2 x 2 level is the top: one mean)
        _push_pull_one_cell(x, known, out)
        return
    from ._hlc import fill_plane, fill_sums

    flags = np.ascontiguousarray(known).view(np.uint8)
    scratch = np.empty(11 * cols + 16)
    v, w = np.empty((2, -(-rows // 4), -(-cols // 4)))
    fill_sums(x, flags, v, w, scratch)
    pyramid = [(v, w)]
    while pyramid[-1][0].size > 1:
        v, w = pyramid[-1]
        pyramid.append((_halve(v), _halve(w)))
    v, w = pyramid[-1]
    est = v / np.maximum(w, 1e-12)
    for v, w in reversed(pyramid[:-1]):
        est = _mean_or(v, w, _double(est, v.shape))
    del pyramid, v, w
    fill_plane(x, flags, np.ascontiguousarray(est), out, scratch)


def _push_pull_one_cell(x: np.ndarray, known: np.ndarray, out: np.ndarray) -> None:
    """:func:`_push_pull` of a plane of at most 2 x 2 samples: the mean of the known
    ones, doubled."""
    rows, cols = known.shape
    info = np.iinfo(out.dtype)
    est1 = np.full((1, 1), float(x[known].sum()) / max(int(known.sum()), 1e-12))
    hole = ~known
    if hole.any():
        fill = _double(est1, (2, cols))[:rows][hole]
        np.rint(fill, out=fill)
        out[hole] = np.clip(fill, info.min, info.max, out=fill).astype(out.dtype)


def smooth_fill(pixels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``pixels`` with every pixel outside ``keep`` replaced by a smooth continuation
    of the kept ones, frame by frame and channel by channel (a frame with nothing
    kept takes the median of the image's kept pixels)."""
    if keep.all():
        return pixels
    out = np.array(pixels)
    info = np.iinfo(pixels.dtype)
    fallback = None  # (per channel; made once, and only if a frame keeps nothing)
    for f in range(pixels.shape[0]):
        if keep[f].all():
            continue
        if not keep[f].any():
            if fallback is None:
                fallback = np.clip(np.rint(np.median(
                    pixels[keep] if keep.any() else pixels.reshape(-1, pixels.shape[-1]), axis=0)), info.min, info.max)
            out[f] = fallback
            continue
        for c in range(pixels.shape[-1]):
            _push_pull(pixels[f, :, :, c], keep[f], out[f, :, :, c])
    return out


# ----------------------------------------------------------------- encoding

def in_classes(classes: np.ndarray, wanted: Any) -> np.ndarray:
    """Where ``classes`` (a uint8 map) is one of ``wanted``: comparisons a band of rows
    at a time (a table lookup, ``table[classes]``, was 25x slower on a 512^2 map, and
    np.isin sorts an int64 copy: 7 bytes a pixel, 3.5x a 16-bit image's raw size)."""
    values = sorted({int(c) for c in np.atleast_1d(np.asarray(wanted, np.int64))})
    out = np.zeros(classes.shape, bool)
    if not values or classes.size == 0:
        return out
    rows = classes.reshape(-1, classes.shape[-1])
    flat = out.reshape(rows.shape)
    step = max(1, MEASURE_SAMPLES // max(1, rows.shape[1]))
    for r in range(0, len(rows), step):
        band, into = rows[r:r + step], flat[r:r + step]
        np.equal(band, values[0], out=into)
        for v in values[1:]:
            into |= band == v
    return out


def pixel_classes(cmap: np.ndarray, block: int, rows: int, cols: int) -> np.ndarray:
    """The class of every pixel (frames, rows, cols) from a block map."""
    if block == 1:
        return cmap
    return cmap[:, np.arange(rows) // block][:, :, np.arange(cols) // block]


#: Samples an error measure works on at a time (its float64 or int64 differences).
MEASURE_SAMPLES = 1 << 14


class _Encoder:
    """The layers of one image, coded and measured."""

    def __init__(self, image: CheckedImage, opts: EncodeOptions, pixels: np.ndarray, classes: np.ndarray) -> None:
        self.image, self.opts, self.pixels, self.classes = image, opts, pixels, classes
        self.peak = float(max(1, image.vmax - image.vmin))
        self.threads = opts.threads

    # -- one stream of the image (or a filled copy of it)
    def code(self, pixels: np.ndarray, rdo: bool = False, size_of: Any = None, coder: Any = None,
             **options: Any) -> bytes:
        """``pixels`` coded with ``options`` (``size_of``: what a bpp target counts;
        ``coder``: the 9/7 layer's coder; strategy.encode_image)."""
        from .strategy import CheckedImage, encode_image, packed_size

        im = self.image
        img = CheckedImage(pixels=pixels, dtype=im.dtype, bits_stored=im.bits_stored, axes=im.axes,
                           vmin=int(pixels.min()), vmax=int(pixels.max()), shape=im.shape)
        o = self.opts
        if options.get("mode") == "lossy":
            options.setdefault("levels", o.levels)
        return encode_image(img, EncodeOptions(bits_stored=im.bits_stored, axes=im.axes, tile_size=o.tile_size,
                                               threads=o.threads, **options), padding=False, rdo=rdo,
                            size_of=size_of or packed_size, coder=coder)

    def bounded(self, pixels: np.ndarray, bound: int, **options: Any) -> bytes:
        return self.code(pixels, mode="near-lossless", max_error=bound, **options) if bound else \
            self.code(pixels, **options)

    def decoded(self, stream: bytes) -> np.ndarray:
        return decode_layer(stream, self.pixels.shape, list(range(self.pixels.shape[0])), True,
                            self.threads or 1, DecodeReport())

    # -- measures
    def _differences(self, decoded: np.ndarray, where: np.ndarray | None,
                     dtype: type) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """``decoded`` - the image (as ``dtype``) and the part of ``where`` (None:
        everywhere) it counts in, MEASURE_SAMPLES at a time: no image-sized float64 or
        int64 plane, no gathered copy (the reductions take the mask)."""
        frames, rows, cols, channels = decoded.shape
        step = max(1, MEASURE_SAMPLES // (cols * channels))
        for f in range(frames):
            for r in range(0, rows, step):
                d: np.ndarray = decoded[f, r:r + step].astype(dtype)
                d -= self.pixels[f, r:r + step]
                yield d, None if where is None else np.broadcast_to(where[f, r:r + step, :, None], d.shape)

    def squared_error(self, decoded: np.ndarray, where: np.ndarray | None) -> tuple[float, int]:
        """The sum of squared errors where ``where`` is set (None: everywhere) and their
        count. (The squares and their partial sums are integers: the sum is exact below
        2^53 however it is split. No BLAS: np.dot threads on a busy machine.)"""
        se, n = 0.0, 0
        for d, inside in self._differences(decoded, where, np.float64):
            se += float(np.square(d, out=d).sum(where=True if inside is None else inside))
            n += d.size if inside is None else int(np.count_nonzero(inside))
        return se, n

    def max_error(self, decoded: np.ndarray, where: np.ndarray | None) -> int:
        return max(int(np.abs(d, out=d).max(initial=0, where=True if inside is None else inside))
                   for d, inside in self._differences(decoded, where, np.int64))

    def psnr(self, se: float, n: int) -> float:
        return math.inf if se == 0 else 10 * math.log10(self.peak ** 2 * n / se)

    def background_psnr(self, decoded: np.ndarray, where: np.ndarray) -> float:
        """PSNR over the background (FLAT included, exact) of ``decoded`` in ``where``."""
        se, _ = self.squared_error(decoded, where)
        n = int(in_classes(self.classes, (Importance.BACKGROUND, FLAT)).sum()) * self.pixels.shape[-1]
        return self.psnr(se, n)

    # -- the lossy background layer
    def lossy_at_psnr(self, filled: np.ndarray, where: np.ndarray, want: float) -> tuple[bytes, np.ndarray]:
        """The smaller of the 9/7 (:meth:`wavelet_at_psnr`) and the near-lossless coder
        (:meth:`near_lossless_at_psnr`) at the background PSNR ``want``."""
        wavelet = self.wavelet_at_psnr(filled, where, want)
        near = self.near_lossless_at_psnr(filled, where, want, len(wavelet[0]))
        return near if near is not None and len(near[0]) < len(wavelet[0]) else wavelet

    def _measured(self, stream: bytes, where: np.ndarray) -> tuple[bytes, None, float]:
        """A stream and its background PSNR (its decoded image is not kept: a search
        tries up to a dozen, and only the one kept is decoded again)."""
        return stream, None, self.background_psnr(self.decoded(stream), where)

    def wavelet_at_psnr(self, filled: np.ndarray, where: np.ndarray, want: float) -> tuple[bytes, np.ndarray]:
        """The smallest 9/7 stream of ``filled`` tried whose background (``where``, and
        FLAT) reaches ``want`` dB, aiming at want .. want + PSNR_TOLERANCE.

        Searched by size, from :data:`FIRST_BPP`: the PSNR is nearly linear in log
        size, and the size search is fine-grained (lossy mode's PSNR search lands on
        one of the steps it tries, 0.2 dB apart on a background, and costs 4 x more).
        When a size asked for gives a stream already tried, asks once just above it
        (a few hundred bytes of background can jump 1 dB a byte)."""
        pixels = filled.shape[0] * filled.shape[1] * filled.shape[2]
        tried = [self._measured(self.code(filled, mode="lossy", bpp=FIRST_BPP, try_near_lossless=False), where)]
        for _ in range(10):
            size = _next_size(tried, want)
            if size is None or size * 8.0 / pixels > 64:
                break
            s = self.code(filled, mode="lossy", bpp=size * 8.0 / pixels, try_near_lossless=False)
            if any(s == t[0] for t in tried):
                above = self._above(filled, s, tried, want)
                if above is None:
                    break
                s = above
            tried.append(self._measured(s, where))
        ok = [t for t in tried if t[2] >= want]
        if not ok:
            return self.code(filled), filled
        s = min(ok, key=lambda t: len(t[0]))[0]
        return s, self.decoded(s)

    def _above(self, filled: np.ndarray, again: bytes, tried: list, want: float) -> bytes | None:
        """A stream just above ``again`` (a size asked for gave a stream already tried:
        lossy mode's size window of SIZE_TOLERANCE held it), if one fits below the
        smallest size tried that passes; None when there is none to try."""
        from .strategy import SIZE_TOLERANCE

        pixels = filled.shape[0] * filled.shape[1] * filled.shape[2]
        size = len(again) / (1 - SIZE_TOLERANCE) + 1
        if size >= min((len(t[0]) for t in tried if t[2] >= want), default=math.inf):
            return None
        s = self.code(filled, mode="lossy", bpp=size * 8.0 / pixels, try_near_lossless=False)
        return None if any(s == t[0] for t in tried) else s

    def near_lossless_at_psnr(self, filled: np.ndarray, where: np.ndarray, want: float,
                              beat: int) -> tuple[bytes, np.ndarray] | None:
        """The near-lossless stream at the largest k whose background reaches ``want``
        dB (errors within +-k have a mean square near k(k+1)/3), if smaller than ``beat``."""
        k = int(math.sqrt(3 * self.peak ** 2 / 10 ** (want / 10)))
        for _ in range(4):
            if k < 1:
                return None
            s, _, got = self._measured(self.code(filled, mode="near-lossless", max_error=k), where)
            if len(s) >= beat:
                return None
            if got >= want:
                return s, self.decoded(s)
            k = int(k * 10 ** ((got - want) / 20)) if k > 1 else 0
        return None


def _next_size(tried: list, want: float) -> float | None:
    """The next size to try for a background PSNR of ``want`` .. want + PSNR_TOLERANCE
    (None: done). ``tried``: (stream, decoded, PSNR) so far. Between a failing and a
    passing size: interpolated in log size (PSNR ~ linear there), kept inside the
    bracket; beyond one side: the slope of the last two (1..12 dB a doubling), at
    most 4 x."""
    ok = [t for t in tried if t[2] >= want]
    if ok and min(t[2] for t in ok) <= want + PSNR_TOLERANCE:
        return None
    lo = max((t for t in tried if t[2] < want), key=lambda t: len(t[0]), default=None)
    hi = min(ok, key=lambda t: len(t[0]), default=None)
    aim = want + PSNR_TOLERANCE / 2
    if lo is not None and hi is not None:
        a, b = math.log(len(lo[0])), math.log(len(hi[0]))
        if b - a < 0.002:
            return None
        top = min(hi[2], want + 12.0)  # (an exact stream's PSNR is infinite)
        frac = min(0.8, max(0.2, (aim - lo[2]) / max(1e-9, top - lo[2])))
        return math.exp(a + frac * (b - a))
    t = lo or hi
    assert t is not None
    slope = 6.0
    if len(tried) > 1 and len(tried[-1][0]) != len(tried[-2][0]) and math.isfinite(tried[-1][2] + tried[-2][2]):
        (s1, _, p1), (s2, _, p2) = tried[-2:]
        slope = min(12.0, max(1.0, (p2 - p1) / math.log2(len(s2) / len(s1))))
    return max(1.0, len(t[0]) * min(4.0, max(0.25, 2 ** ((aim - t[2]) / slope))))


def encode_regions(image: CheckedImage, opts: EncodeOptions, pixels: np.ndarray, header: ct.Header) -> bytes:
    """The region-layer hybrid stream of ``pixels`` (the image as coded), or the whole
    image within ``roi_max_error`` where that is the smaller file and meets the target."""
    from .roi.mask import importance_map

    frames, rows, cols, _ = pixels.shape
    cmap, block = importance_map(opts.roi, pixels, image.bits_stored, image.axes, image.shape, block=1)
    classes = np.array(pixel_classes(cmap, block, rows, cols), np.uint8)  # the map is kept per pixel
    flat = _mark_flat(pixels, classes)
    enc = _Encoder(image, opts, pixels, classes)
    target, value = target_of(opts)
    e = opts.roi_max_error
    bounds: dict[int, int | None] = {
        Importance.DETAIL: e, Importance.BODY: e if opts.body_max_error is None else opts.body_max_error,
        Importance.BACKGROUND: opts.background_max_error}
    present = set(np.flatnonzero(np.bincount(classes.ravel(), minlength=MAP_CLASSES)).tolist())
    slots = _plan(bounds, present)
    rb = RegionBlock(target, value, 1, _map_stream(classes), slots, flat=flat)
    layers = _code_layers(enc, slots, target, value, len(rb.map_stream))
    stream, whole_psnr = _pack(header, rb, enc, layers, classes)
    if opts.whole_image_if_smaller and opts.preprocess is None:
        whole = _whole_if_smaller(enc, stream, target, value, e)
        if whole is not None:  # (it meets a PSNR target: _whole_if_smaller measures; a bpp it may miss)
            stream, whole_psnr = whole, math.inf
    _warn_if_unreached(target, value, 8.0 * len(stream) / (frames * rows * cols), whole_psnr)
    return stream


def _warn_if_unreached(target: Target, value: float, bpp: float, psnr: float) -> None:
    """The warning that a whole-image ``bpp`` or ``psnr`` target is out of the hybrid's
    reach with its ROI bound (whichever stream it returns: ``bpp``, ``psnr`` that one's),
    at encode()'s caller (this, encode_regions, encode_image, encode_with, encode)."""
    if target == Target.BPP and bpp > value:
        warnings.warn(f"bpp={value} is below what the hybrid reaches with its ROI bound and the background "
                      f"at {BACKGROUND_PSNR_FLOOR} dB or better: {bpp:.3f} bpp (info() reports what each region "
                      "got)", stacklevel=6)
    if target == Target.PSNR and psnr < value:
        warnings.warn(f"psnr={value} is above what the hybrid reaches with its ROI bound: {psnr:.2f} dB "
                      "(info() reports what each region got)", stacklevel=6)


def _opening(mask: np.ndarray, size: int) -> np.ndarray:
    """Opening of a 2-D mask by a ``size`` square (outside the image counts as unset),
    in numpy (a hybrid with a mask needs no scipy): four passes, each a new plane made
    from shifted slices of the last in place (no padded copy, no window temporaries)."""
    def along(x: np.ndarray, axis: int, erode: bool) -> np.ndarray:
        out = x.copy()
        op = np.logical_and if erode else np.logical_or
        n = x.shape[axis]
        for k in range(1, size // 2 + 1):
            if k >= n:  # (every window reaches outside)
                if erode:
                    out[...] = False
                break
            lo, hi = [slice(None)] * 2, [slice(None)] * 2
            lo[axis], hi[axis] = slice(0, n - k), slice(k, n)
            op(out[tuple(hi)], x[tuple(lo)], out=out[tuple(hi)])  # the sample k before
            op(out[tuple(lo)], x[tuple(hi)], out=out[tuple(lo)])  # the sample k after
            if erode:  # (outside the image: unset)
                edge = [slice(None)] * 2
                edge[axis] = slice(0, k)
                out[tuple(edge)] = False
                edge[axis] = slice(n - k, n)
                out[tuple(edge)] = False
        return out

    x = along(mask, 0, True)  # (two planes alive at most)
    x = along(x, 1, True)
    x = along(x, 0, False)
    return along(x, 1, False)


def _mark_flat(pixels: np.ndarray, classes: np.ndarray) -> int:
    """Mark solid areas of the background's most common value FLAT (in ``classes``);
    returns that value (0, nothing marked, for colour images or too little padding).
    A frame's masks at a time beside the background's (no stack of them)."""
    bg = classes == Importance.BACKGROUND
    if pixels.shape[-1] != 1 or bg.sum() < FLAT_MIN_SHARE * bg.size:
        return 0
    v = _most_common(pixels[..., 0], bg)
    for f in range(bg.shape[0]):  # (bg becomes the solid areas, frame by frame)
        bg[f] &= pixels[f, :, :, 0] == v
        bg[f] = _opening(bg[f], FLAT_OPENING)
    if bg.sum() < FLAT_MIN_SHARE * bg.size:
        return 0
    np.copyto(classes, FLAT, where=bg)  # (no index arrays: 8 bytes a marked pixel)
    return v


#: Bins of _most_common's histogram it takes for any image (beyond, a range wider than
#: an eighth of the samples: np.unique).
MODE_SAMPLES = 1 << 11


def _most_common(x: np.ndarray, where: np.ndarray) -> int:
    """The most common value of ``x`` (frames, rows, cols; integers) where ``where`` is
    set (some sample is), the smallest of equally common ones (np.unique's answer): a
    histogram over x's range in one compiled pass (regionmap.c masked_histogram), no
    gathered or sorted copy of the image. (A range wider than an eighth of the
    samples, where the histogram would outgrow the image: np.unique.)"""
    from ._hlc import masked_histogram

    lo, hi = int(x.min()), int(x.max())
    if hi - lo + 1 > max(MODE_SAMPLES, x.size // 8):
        values, counts = np.unique(x[where], return_counts=True)
        return int(values[np.argmax(counts)])
    counts = np.zeros(hi - lo + 1, np.int64)
    masked_histogram(np.ascontiguousarray(x), np.ascontiguousarray(where).view(np.uint8), lo, counts)
    return lo + int(np.argmax(counts))


def _plan(bounds: dict[int, int | None], present: set[int]) -> list[Slot]:
    """One slot per distinct bound (lossy: its own), most important classes first."""
    slots: dict[Any, Slot] = {}
    for c in (Importance.DETAIL, Importance.BODY, Importance.BACKGROUND):
        if c in present:
            b = bounds[c]
            key = "lossy" if b is None else b
            slot = slots.setdefault(key, Slot((), b))
            slot.classes = (*slot.classes, int(c))
    return list(slots.values())


def _code_layers(enc: _Encoder, slots: list[Slot], target: Target, value: float,
                 map_bytes: int) -> list[tuple[bytes, np.ndarray | None]]:
    """The stream and the decoded image of every slot (None for a bounded one: _pack
    decodes it again, so that none is held while the background codes), bounded ones
    first (the lossy background's rate depends on what they cost and how far they err)."""
    out: dict[int, tuple[bytes, np.ndarray | None]] = {}
    fixed, se = map_bytes, 0.0
    for i, s in enumerate(slots):
        if s.bound is not None:
            keep = in_classes(enc.classes, s.classes)
            stream = enc.bounded(constant_fill(enc.pixels, keep), s.bound)
            out[i] = (stream, None)
            fixed += len(stream)
            se += enc.squared_error(enc.decoded(stream), keep)[0]
            del keep
    for i, s in enumerate(slots):
        if s.bound is None:
            where = in_classes(enc.classes, s.classes)
            out[i] = _background(enc, smooth_fill(enc.pixels, where), where, target, value, fixed, se)
    for i, s in enumerate(slots):
        s.coder = ct.parse_header(out[i][0])[0].mode
    return [out[i] for i in range(len(slots))]


#: Bytes of a region stream besides its layers and map: header, index, block, and the
#: header's backup copy.
OVERHEAD = 400


def _background(enc: _Encoder, filled: np.ndarray, where: np.ndarray, target: Target, value: float,
                fixed: int, roi_se: float) -> tuple[bytes, np.ndarray]:
    """The lossy background layer at the rate its target asks for (``fixed``: the bytes
    of the other layers and the map; ``roi_se``: their squared error)."""
    if target in (Target.DEFAULT, Target.BACKGROUND_PSNR):
        return enc.lossy_at_psnr(filled, where, value)
    if target == Target.PSNR:
        return enc.lossy_at_psnr(filled, where, _background_psnr_for(enc, where, roi_se, value))
    # bpp: the bytes the other layers leave
    frames, rows, cols, _ = enc.pixels.shape
    budget = value * frames * rows * cols / 8.0 - fixed - OVERHEAD
    if budget > 64:
        s = enc.code(filled, mode="lossy", bpp=min(64.0, 8.0 * budget / (frames * rows * cols)))
        d = enc.decoded(s)
        if enc.background_psnr(d, where) >= BACKGROUND_PSNR_FLOOR:
            return s, d
    return enc.lossy_at_psnr(filled, where, BACKGROUND_PSNR_FLOOR)


def _background_psnr_for(enc: _Encoder, where: np.ndarray, roi_se: float, psnr: float) -> float:
    """The background PSNR that gives the whole image ``psnr``, the ROI's own error
    counted (the floor if that is lower; warned when the ROI's error alone misses it)."""
    allowed = enc.peak ** 2 * enc.pixels.size / 10 ** (psnr / 10)
    left = allowed - roi_se
    n_bg = int(in_classes(enc.classes, (Importance.BACKGROUND, FLAT)).sum()) * enc.pixels.shape[-1]
    if left <= 0:  # (the ROI's error alone misses it: the background lossless; encode_regions warns)
        return 200.0
    return max(BACKGROUND_PSNR_FLOOR, enc.psnr(left, n_bg))


def _map_stream(cmap: np.ndarray) -> bytes:
    """The class map (frames, block rows, block cols) as row runs (:func:`pack_map`)."""
    return pack_map(np.asarray(cmap, np.uint8))


# ----------------------------------------------------------------- the map as row runs

def _varints(values: np.ndarray) -> bytes:
    """LEB128 varints of non-negative int64 ``values`` (as codec_core.container.varint),
    built a byte position at a time."""
    v = values.astype(np.uint64)
    n = np.ones(len(v), np.int64)
    for k in range(1, 10):
        n += v >= np.uint64(1 << (7 * k))
    out = np.empty(int(n.sum()), np.uint8)
    first = np.cumsum(n) - n
    for k in range(int(n.max(initial=0))):
        sel = n > k
        byte = (v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        out[first[sel] + k] = byte | np.where(n[sel] > k + 1, np.uint64(0x80), np.uint64(0))
    return out.tobytes()


def pack_map(cmap: np.ndarray) -> bytes:
    """zlib of the map's rows as runs (frame after frame, row after row, varints): a
    row with as many runs of the same classes as the row above is 0 and the
    zig-zagged shifts of its run starts; any other row is 1 + n, the n classes and
    the n run lengths (the loop over rows is compiled: codec_core/_native/regionmap.c).
    Half the size of the map coded as an image by the predictive coder on a 512 x 512
    CT, a seventh on a 1760 x 1760 CR (pixel-exact masks)."""
    from ._hlc import pack_map as pack_runs
    cmap = np.ascontiguousarray(cmap, np.uint8)
    frames, rows, cols = cmap.shape
    vals = np.empty(_runs_bound(cmap), np.int64)
    count = pack_runs(cmap, vals, np.empty(4 * cols, np.int64))
    return deflate(_varints(vals[:count]))


def _runs_bound(cmap: np.ndarray) -> int:
    """At most how many values :func:`pack_map` gives: 1 + 2 n a row of n runs (the
    worst case, 2 cols + 1 a row, is 8 x a 16-bit image's raw size as int64), counted
    a band of rows at a time."""
    flat = cmap.reshape(-1, cmap.shape[-1])
    step = max(1, MEASURE_SAMPLES // flat.shape[1])
    runs = sum(int(np.count_nonzero(flat[r:r + step, 1:] != flat[r:r + step, :-1])) for r in range(0, len(flat), step))
    return len(flat) * 3 + 2 * runs


def _map_bytes_bound(shape: tuple[int, int, int]) -> int:
    """The most bytes :func:`pack_map` gives a map of ``shape`` before zlib: a row of n
    runs is 1 + n + n values (its head, classes of one byte, lengths up to cols) or
    1 + n (0 and its start shifts, zig-zagged below 2 cols), each value a varint of the
    fewest bytes. A map is inflated to this much at most (a zlib bomb of a 43 kB stream
    inflated to 10 bytes a pixel before, and its values to int64 several times over:
    2.4 GB)."""
    frames, rows, cols = shape
    size = max(1, -(-(2 * cols + 1).bit_length() // 7))  # (bytes of a varint up to 2 cols)
    return frames * rows * (size + cols * (1 + size))


def unpack_map(data: bytes, shape: tuple[int, int, int], first: int = 0, count: int | None = None) -> np.ndarray:
    """Inverse of :func:`pack_map`, every claim checked (CorruptStreamError): frames
    ``first`` .. ``first + count - 1`` of a map of ``shape`` (default: all), read by the
    compiled loop (codec_core/_native/regionmap.c) from the bytes inflated so far (one
    frame asked of a stack claiming thousands kept every frame: a gigabyte from 28 kB)."""
    frames, rows, cols = shape
    count = frames - first if count is None else count
    if not 0 <= first < first + count <= frames:
        raise ValueError(f"frames {first}..{first + count - 1} of a map of {frames}")
    raw = inflate(data, _map_bytes_bound((first + count, rows, cols)), "importance map")
    from . import _hlc
    out = np.empty((count, rows, cols), np.uint8)
    rc = _hlc.unpack_map(raw, out, first, MAP_CLASSES, np.empty(2 * cols, np.int64), first + count == frames)
    if rc:
        why = {_hlc.MAP_CUT: "is cut short", _hlc.MAP_FILL: "has runs that do not fill a row",
               _hlc.MAP_VALUE_CUT: "ends inside a value",
               _hlc.MAP_VALUE_LARGE: "has a value that is too large or longer than it needs"}
        raise CorruptStreamError(f"importance map {why.get(rc, 'has invalid runs')}", "importance map")
    return out


def _pack(header: ct.Header, rb: RegionBlock, enc: _Encoder, layers: list[tuple[bytes, np.ndarray | None]],
          classes: np.ndarray) -> tuple[bytes, float]:
    """The stream (header, region block with what each class reached, layer streams)
    and the whole image's PSNR. The decoded image is put together in the first
    layer's decoded image (its last use; a copy only where that is the image itself);
    a layer without its decoded image is decoded here, one at a time."""
    def decoded(layer: tuple[bytes, np.ndarray | None]) -> np.ndarray:
        return enc.decoded(layer[0]) if layer[1] is None else layer[1]

    if not layers:  # every pixel flat: nothing was coded
        merged = np.empty_like(enc.pixels)
    else:
        merged = decoded(layers[0])
        if np.may_share_memory(merged, enc.pixels):
            merged = np.array(merged)
    # (copyto with a mask of every axis: indexing the image by a mask of its first three
    # axes would make int64 index arrays, 3.6x raw on a padded CT)
    np.copyto(merged, rb.flat, where=(classes == FLAT)[..., None])
    for slot, layer in zip(rb.slots[1:], layers[1:], strict=True):
        np.copyto(merged, decoded(layer), where=in_classes(classes, slot.classes)[..., None])
    rb.reached = []
    for c in range(IMPORTANCE_CLASSES):
        where = in_classes(classes, (c, FLAT) if c == Importance.BACKGROUND else (c,))
        if not where.any():
            rb.reached.append((0.0, 0.0, 0))
            continue
        se, n = enc.squared_error(merged, where)
        err = enc.max_error(merged, where)
        rb.reached.append((float(where.mean()), enc.psnr(se, n), err))
    stream = _region_stream(header, rb, [s for s, _ in layers], enc.opts.roi_max_error,
                            float(in_classes(classes, (Importance.BODY, Importance.DETAIL)).mean()))
    return stream, enc.psnr(*enc.squared_error(merged, None))


def _region_stream(h: ct.Header, rb: RegionBlock, layers: list[bytes], roi_max_error: int,
                   roi_fraction: float, stripped: bool = False) -> bytes:
    """The region stream of header ``h`` (made a region stream's), block and layers
    (``stripped``: already without their header copies). Its size does not depend on
    what ``rb.reached`` holds (fixed-size fields)."""
    h.mode, h.levels, h.transform, h.steps = Mode.LOSSY, 0, Transform.DWT53, [1.0]
    h.flags |= FLAG_REGIONS
    h.roi_max_error = roi_max_error
    h.roi_block = rb.block
    h.roi_fraction = roi_fraction
    h.psnr_target = rb.value
    h.tile_rows, h.tile_cols = h.rows, h.cols
    segs = [rb.pack()] + [s if stripped else without_backup(s) for s in layers] + [b""] * (SLOTS - len(layers))
    return ct.pack(h, segs)


def without_backup(stream: bytes) -> bytes:
    """A layer stream without the copy of its header at its end: inside a region stream
    the segment's CRC and the region stream's own header copy protect it (~100 bytes a
    layer; the decoder reads the header at the start and never needs the copy)."""
    h, start = ct.parse_header(stream)
    return stream[:start + sum(n for n, _ in h.segments)]


def _whole_if_smaller(enc: _Encoder, hybrid: bytes, target: Target, value: float, e: int) -> bytes | None:
    """The whole image within ±e (lossless for 0), if smaller than the hybrid and it
    meets the target (a bpp and a max error it meets by being smaller and within ±e)."""
    # a stream of its own: with ecc asked, its header copy as the container's rule says
    whole = enc.bounded(enc.pixels, e, ecc=enc.opts.ecc)
    if len(whole) >= len(hybrid):
        return None
    psnr_target = target in (Target.DEFAULT, Target.BACKGROUND_PSNR, Target.PSNR)
    if psnr_target and e and 20 * math.log10(enc.peak / e) < value:  # (not guaranteed by +-e: measured)
        whole_image = target == Target.PSNR
        decoded = enc.decoded(whole)
        got = enc.psnr(*enc.squared_error(decoded, None)) if whole_image else \
            enc.background_psnr(decoded, in_classes(enc.classes, (Importance.BACKGROUND, FLAT)))
        if got < value:
            return None
    return whole


# ----------------------------------------------------------------- lossy mode's padding

#: Plain lossy mode keeps flat padding exact and out of the 9/7 where it covers at
#: least this share of the image (below it the map and a second header cost more than
#: the field-of-view edge's ringing).
PADDING_MIN_SHARE = 0.05
#: ... and where it is a field-of-view edge: the pixels next to it differ from its value
#: by a median of at least this share of the image's span (scanner padding outside
#: the reconstruction circle of a CT, a test pattern's flat fields: 0.16 to 0.92 of the
#: span; an MR's zeroed air or an NM's empty rows next to their own noise: 0.004 to
#: 0.03, where keeping them exact lost 0.1 to 8 dB). Set on the dev images
#: (benchmarks/results/lossy.md names them), checked on the held-out ones.
PADDING_MIN_JUMP = 0.05
#: The range of a PSNR target (options.py: psnr).
PSNR_MIN, PSNR_MAX = 1.0, 200.0


def encode_padded(image: CheckedImage, opts: EncodeOptions, pixels: np.ndarray,
                  header: ct.Header) -> tuple[bytes, float] | None:
    """Lossy mode (no ROI) of a one-plane image with flat padding kept exact: a region stream of one lossy
    layer (the image with its padding filled smoothly, so the field-of-view edge does
    not ring) and the FLAT class, set back exactly on decode. The whole image's
    ``bpp`` (within [-3%, 0]) or ``psnr`` (within +0.3 dB) is met as lossy mode meets
    it. Returns the stream and its squared error; None where there is too little
    padding, or the target is out of reach."""
    if pixels.shape[-1] != 1 or header.frames * header.n_tiles > 1:
        # (one plane only: a region stream's layer is one segment, so a damaged byte
        # would cost every tile and frame of a larger image, not its own tile)
        return None
    classes = np.full(pixels.shape[:3], Importance.BACKGROUND, np.uint8)
    flat = _mark_flat(pixels, classes)
    pad = classes == FLAT
    if pad.mean() < PADDING_MIN_SHARE or _edge_jump(pixels[..., 0], pad, flat) < PADDING_MIN_JUMP * max(
            1, image.vmax - image.vmin):
        return None
    del pad
    # (the padding path measures with its own masks: the encoder keeps no class map)
    enc = _Encoder(image, opts, pixels, np.empty((0, 0, 0), np.uint8))
    target, value = (Target.BPP, opts.bpp) if opts.bpp is not None else (Target.PSNR, opts.psnr)
    assert value is not None  # (lossy options have exactly one target)
    rb = RegionBlock(target, float(value), 1, _map_stream(classes), [Slot((int(Importance.BACKGROUND),), None)],
                     flat=flat)
    keep = classes != FLAT  # (the class map is in rb: only this mask is alive while the fill runs)
    del classes
    # the masks and openings of the padding's detection, freed, stay resident in the heap
    # (0.5-1.1x the raw image on 693_UNCR) under the fill's copy and pyramid: given back
    release_free_memory()
    filled = smooth_fill(pixels, keep)
    if target == Target.BPP:  # (no image-sized mask alive while the layer codes: the map is unpacked after)
        del keep
        coded = _padded_at_size(enc, rb, header, filled)
        del filled  # (before the layer is decoded)
        # the coding's freed heap memory given back before the decode, and the
        # decoder's before the class map and masks _pack makes (resident under them:
        # 3.9x raw on 693_UNCR at 0.5 bpp, given back 3.5x)
        release_free_memory()
        layer = None if coded is None else (coded, enc.decoded(coded))
        release_free_memory()
    else:  # (the quality path's coder counts the kept pixels' error as it codes; one frame)
        layer = _padded_at_quality(enc, rb, header, filled, keep[0])
        del keep, filled
    if layer is None:
        return None
    rb.slots[0].coder = ct.parse_header(layer[0])[0].mode
    stream, psnr = _pack(header, rb, enc, [layer], unpack_map(rb.map_stream, pixels.shape[:3]))
    return stream, enc.peak ** 2 * pixels.size / 10 ** (psnr / 10) if math.isfinite(psnr) else 0.0


def _edge_jump(plane: np.ndarray, pad: np.ndarray, value: int) -> float:
    """The median of |pixel - value| over the pixels next to (4-neighbours of) the
    padding ``pad`` (frames, rows, cols) and not in it."""
    p = np.pad(pad, ((0, 0), (1, 1), (1, 1)))
    ring = p[:, :-2, 1:-1] | p[:, 2:, 1:-1]  # (ORed in place: one plane, not four)
    ring |= p[:, 1:-1, :-2]
    ring |= p[:, 1:-1, 2:]
    del p
    ring &= ~pad
    if not ring.any():
        return 0.0
    # (16-bit samples less a 16-bit value: int32 holds it)
    jump = plane[ring].astype(np.int32 if plane.dtype.itemsize <= 2 else np.int64)
    jump -= value
    return float(np.median(np.abs(jump, out=jump)))


def _padded_layer(enc: _Encoder, filled: np.ndarray, near: bool, **target: Any) -> bytes:
    """The layer of ``filled``: 9/7, or the near-lossless coder where ``near`` and it
    does better (strategy.encode_image)."""
    return enc.code(filled, rdo=True, mode="lossy", try_near_lossless=near, **target)


#: Bytes a region stream's index may grow by beyond an empty layer's (its length varint).
INDEX_GROWTH = 4


def _padded_at_size(enc: _Encoder, rb: RegionBlock, header: ct.Header, filled: np.ndarray) -> bytes | None:
    """The layer whose region stream fits the whole image's bpp (within its window):
    one rate control, which counts the whole region stream (region block, map, index,
    header; less the layer's header copy, dropped inside a region stream) for each body
    it codes; the near-lossless trial (as lossy mode's) is asked for what the region
    stream leaves it. None if even the smallest layer does not fit."""
    frames, rows, cols, _ = enc.pixels.shape
    target = float(rb.value) * frames * rows * cols / 8.0

    def region_size(layer: bytes, stripped: bool = False) -> int:
        return len(_region_stream(copy.copy(header), rb, [layer], enc.opts.roi_max_error, 0.0, stripped))

    rest = region_size(b"", stripped=True) + INDEX_GROWTH  # the region stream without its layer

    def size_of(h: ct.Header, body: list[bytes]) -> int:
        backup, h.backup = h.backup, False  # (the layer as the region stream holds it)
        try:
            return region_size(ct.pack(h, body), stripped=True) - rest
        finally:
            h.backup = backup

    if target - rest < 64:
        return None
    near = enc.opts.try_near_lossless
    for _ in range(1 + near):  # (a near-lossless layer that does not fit: the 9/7's)
        layer = _padded_layer(enc, filled, near, bpp=8.0 * (target - rest) / (frames * rows * cols), size_of=size_of)
        if region_size(layer) <= target:
            return layer
        near = False
    return None


def _kept_pixels_coder(kept: np.ndarray) -> Any:
    """The padding path's 9/7 coder for a quality target: its squared error counts the
    kept pixels only (the padding comes back exact), so the layer's own rate control
    meets the whole image's PSNR (one tile and frame: as encode_padded takes them)."""
    from .strategy import RdoCoder

    class KeptPixels(RdoCoder):
        keep = kept  # (rows, cols: no error where the padding is)

    return KeptPixels


def _padded_at_quality(enc: _Encoder, rb: RegionBlock, header: ct.Header, filled: np.ndarray,
                       keep: np.ndarray) -> tuple[bytes, np.ndarray] | None:
    """A layer whose kept pixels (``keep``: rows, cols; the one frame's pixels not
    FLAT) give the whole image its PSNR (the padding is exact),
    within +PSNR_TOLERANCE (lossy mode's): the layer's own
    quality rate control, on the error of the kept pixels, at the PSNR that error
    makes on the layer's peak (its range) and sample count (the image's); checked on
    the decoded layer. None where it misses (a target beyond the PSNRs lossy mode takes)."""
    span = float(max(1, int(filled.max()) - int(filled.min())))
    want = float(rb.value)
    ask = want + 20 * math.log10(span / enc.peak)
    if not PSNR_MIN <= ask <= PSNR_MAX:
        return None
    near = enc.opts.try_near_lossless
    for _ in range(1 + near):  # (a near-lossless layer beyond the window: the 9/7's)
        stream = _padded_layer(enc, filled, near, psnr=ask, coder=_kept_pixels_coder(keep))
        layer = stream, enc.decoded(stream)
        got = enc.psnr(enc.squared_error(layer[1], keep[None])[0], enc.pixels.size)
        if want <= got <= want + PSNR_TOLERANCE or math.isinf(got):
            return layer
        near = False
    return None


# ----------------------------------------------------------------- decoding

def decode_layer(stream: bytes, shape: tuple[int, ...], frames: list[int], strict: bool, threads: int,
                 report: DecodeReport, dtype: np.dtype | None = None) -> np.ndarray:
    """The frames ``frames`` of one layer stream, (frames, rows, cols, channels); its
    geometry must be ``shape`` (the image's, frames included) and its samples of
    ``dtype`` (the image's, when given)."""
    h, start = ct.parse_header(stream, None, allow_truncated=not strict)
    if (h.frames, h.rows, h.cols, h.channels) != tuple(shape) or h.flags & FLAG_REGIONS or (
            dtype is not None and np.dtype(h.np_dtype) != np.dtype(dtype)):
        raise CorruptStreamError("a region layer does not match the image", "region layer")
    return decode_stream(stream, h, start, level=0, frames=frames, strict=strict, threads=threads, report=report)


def class_map(rb: RegionBlock, h: ct.Header, frames: list[int] | None = None) -> np.ndarray:
    """The block map (frames, block rows, block cols) of a region block: every frame, or
    those of ``frames`` (only the map up to the last of them is read, and only from the
    first of them kept)."""
    shape = (h.frames, -(-h.rows // rb.block), -(-h.cols // rb.block))
    if not frames:
        return unpack_map(rb.map_stream, shape)
    lo, hi = min(frames), max(frames)
    cmap = unpack_map(rb.map_stream, shape, lo, hi - lo + 1)
    return cmap if frames == list(range(lo, hi + 1)) else cmap[[f - lo for f in frames]]


def region_block(stream: bytes, h: ct.Header, start: int) -> RegionBlock:
    """The region block of a parsed region stream (segment 0, CRC checked)."""
    return unpack_block(ct.read_segment(stream, h, ct.segment_offsets(h, start), 0))


def stream_classes(stream: bytes) -> np.ndarray:
    """The class of every pixel (frames, rows, cols) of a plain region stream."""
    h, start = ct.parse_header(stream)
    rb = region_block(stream, h, start)
    classes = pixel_classes(class_map(rb, h), rb.block, h.rows, h.cols)
    return np.where(classes == FLAT, np.uint8(Importance.BACKGROUND), classes)


def decode_regions(stream: bytes, h: ct.Header, start: int, *, level: int, frames: list[int], strict: bool,
                   threads: int, report: DecodeReport) -> np.ndarray:
    """The frames asked for of a region stream, (frames, rows, cols, channels), each
    pixel from the layer of its class; at 1/2^level, the area mean of each block.
    The first layer read is the output's buffer, and the class map is made once it is
    read (no second image-sized array while a layer decodes: a padded lossy stream
    decodes within 4x its raw size); FLAT pixels are set a band of rows at a time."""
    offsets = ct.segment_offsets(h, start)
    try:
        rb: RegionBlock | None = unpack_block(ct.read_segment(stream, h, offsets, 0))
    except (CorruptStreamError, ValueError) as err:
        _block_lost(err, strict, report)
        rb = None
    shape = (h.frames, h.rows, h.cols, h.channels)
    out, classes = None, None
    claimed = np.zeros(256, bool)  # the classes a layer read has set
    for i in range(SLOTS if rb is None else len(rb.slots)):
        try:
            layer = decode_layer(ct.read_segment(stream, h, offsets, 1 + i), shape, frames, strict, threads, report,
                                 h.np_dtype)
        except HlcError as err:
            if strict:
                raise CorruptStreamError(f"region layer {i} is damaged: {err}", f"region layer {i}") from None
            report.exact = False
            report.damaged_segments.append(1 + i)
            continue
        if rb is not None and classes is None:
            try:
                classes = pixel_classes(class_map(rb, h, frames), rb.block, h.rows, h.cols)
            except (CorruptStreamError, ValueError) as err:
                _block_lost(err, strict, report)
                rb = None
        if rb is None or classes is None:
            out = layer
            break
        if out is None:  # (pixels no layer claims keep this first layer's values: the concealment)
            out = layer
        else:
            np.copyto(out, layer, where=in_classes(classes, rb.slots[i].classes)[..., None])
        claimed[list(rb.slots[i].classes)] = True
    if out is None:
        out = np.full((len(frames), h.rows, h.cols, h.channels), (h.vmin + h.vmax) // 2, h.np_dtype)
        report.concealed.append("region layers lost: the image is shown flat")
    elif rb is not None and classes is not None:
        claimed[FLAT] = True
        if not _set_flat(out, classes, int(np.clip(rb.flat, h.vmin, h.vmax)), claimed):
            report.concealed.append("region layer lost: its pixels shown from another layer")
    # within the header's value range, as every decoded sample is (a layer's own range
    # is its stream's: one that claims more was shown as it came)
    np.clip(out, h.vmin, h.vmax, out=out)
    if level:
        out = _reduced(out, level, h)
    return out


def _block_lost(err: Exception, strict: bool, report: DecodeReport) -> None:
    """A damaged region block (or map): raised when strict, else reported (the image
    is then shown from its first readable layer)."""
    if strict:
        raise CorruptStreamError(f"region block is damaged: {err}", "region block") from None
    report.exact = False
    report.damaged_segments.append(0)
    report.concealed.append("region block lost: the image is shown from its first readable layer")


def _set_flat(out: np.ndarray, classes: np.ndarray, value: int, claimed: np.ndarray) -> bool:
    """``value`` in every FLAT pixel of ``out`` (in place, no image-sized mask: one
    compiled pass, regionmap.c); whether every pixel's class is ``claimed``."""
    from ._hlc import set_flat

    return bool(set_flat(out, np.ascontiguousarray(classes), value, FLAT, claimed.view(np.uint8)))


def _reduced(x: np.ndarray, level: int, h: ct.Header) -> np.ndarray:
    """1/2^level of every frame and channel: the area mean of each block."""
    planes = [[area_reduce(x[f, :, :, c], level) for c in range(x.shape[-1])] for f in range(x.shape[0])]
    return np.stack([np.stack(p, axis=-1) for p in planes]).clip(h.vmin, h.vmax).astype(h.np_dtype)


def facts(rb: RegionBlock, h: ct.Header) -> dict[str, Any]:
    """What ``info()`` says of a region stream: each region's share, bound, coder, bytes
    and what it reached, and the background's target."""
    regions = {}
    layer_of = {c: i for i, s in enumerate(rb.slots) for c in s.classes}
    for c in (Importance.DETAIL, Importance.BODY, Importance.BACKGROUND):
        frac, psnr, err = rb.reached[c] if rb.reached else (0.0, 0.0, 0)
        if c in layer_of:
            i = layer_of[c]
            slot = rb.slots[i]
            regions[CLASS_NAMES[c]] = {
                "fraction": frac, "max_error_bound": slot.bound, "psnr": psnr, "max_error": err,
                "coder": Mode(slot.coder).label if slot.coder < len(Mode) else "unknown",
                "layer": i, "layer_bytes": h.segments[1 + i][0]}
        elif frac > 0:  # a background that is all flat padding: exact, no layer
            regions[CLASS_NAMES[c]] = {"fraction": frac, "max_error_bound": 0, "psnr": psnr, "max_error": err,
                                       "coder": "flat", "layer": None, "layer_bytes": 0}
    return {"regions": regions, "target": {"name": TARGET_NAMES[rb.target], "value": rb.value},
            "map_block": rb.block, "map_bytes": len(rb.map_stream), "flat_value": rb.flat}


def is_regions(h: ct.Header) -> bool:
    return bool(h.flags & FLAG_REGIONS)


__all__ = ["encode_regions", "decode_regions", "facts", "region_block", "stream_classes", "is_regions",
           "constant_fill", "smooth_fill", "DEFAULT_BACKGROUND_PSNR", "BACKGROUND_PSNR_FLOOR", "FLAG_DENOISED"]
