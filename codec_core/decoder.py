"""Decoding, one tile at a time, straight into an array of the output dtype.

Damage is found by the per-segment CRCs. ``strict=True`` raises
:class:`CorruptStreamError` naming the frame and tile; ``strict=False``
conceals: a tile whose finer resolutions are lost is shown from its coarser
ones (blurred), a tile lost whole is filled with the mean of the rest of its
frame (with the middle of the stored value range if nothing of the frame is left),
and the report lists every such repair. Segments cut off by truncation
count as damaged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import container as ct
from . import entropy, predictive, quantize
from .errors import CorruptStreamError
from .format import (
    FLAG_LOSSY_CONTEXTS,
    FLAG_LOSSY_RUNS,
    RANGE_HEAD,
    ROI_CLASS,
    ColourTransform,
    Mode,
    PlaneCoder,
    Version,
    plane_coder,
)
from .pipeline import (
    area_reduce,
    band_multipliers,
    class_map_shape,
    clip_tile,
    finish_tile,
    lookup_in_place,
    lossy_bounds,
    map_threads,
    new_tile,
    pixel_classes,
    reconstruct_lossy_plane,
    rows_in_place,
    unpack_class_map,
    unpack_value_table,
)
from .transform import band_shapes, dwt53_inverse

_FILLED_MEAN = "filled with the mean of its frame"
_FILLED_MIDDLE = "filled with the middle of its value range (nothing of its frame is left)"


@dataclass
class DecodeReport:
    """What ``decode(strict=False)`` had to repair or could not recover."""
    exact: bool = True
    damaged_segments: list = field(default_factory=list)
    concealed: list = field(default_factory=list)
    repaired: list = field(default_factory=list)
    ecc: object = None

    def as_dict(self) -> dict:
        d = {"exact": self.exact, "damaged_segments": sorted(self.damaged_segments),
             "concealed": list(self.concealed), "repaired": list(self.repaired)}
        if self.ecc is not None:
            d["ecc"] = self.ecc if isinstance(self.ecc, dict) else vars(self.ecc)
        return d


class _Reader:
    """Segments by index, CRC-checked; damage is raised or recorded."""

    def __init__(self, data: bytes, h: ct.Header, start: int, strict: bool, report: DecodeReport):
        self.data, self.h, self.strict, self.report = data, h, strict, report
        self.offsets = ct.segment_offsets(h, start)

    def get(self, i: int) -> bytes:
        return ct.read_segment(self.data, self.h, self.offsets, i)

    def lost(self, what: str, i: int, why: Exception) -> None:
        if self.strict:
            raise CorruptStreamError(f"{what} is damaged: {why}", what) from None
        self.report.exact = False
        self.report.damaged_segments.append(i)


def decode_stream(data: bytes, h: ct.Header, start: int, *, level: int, frames: list[int],
                  strict: bool, threads: int, report: DecodeReport, keep_scratch: bool = False) -> np.ndarray:
    """The frames ``frames`` of a parsed stream at 1/2^level resolution, as an array
    (frames, rows, cols, channels) of the image's dtype; damage raised or concealed.
    ``keep_scratch``: the compiled plane decoders keep their scratch in the block cache
    for the next tile or image (codec_core/_native/planedecode.c; decode() of a plain
    stream, nothing after it in the call: kept under later work it would raise the peak)."""
    scale = 1 << level
    out = new_output((len(frames), -(-h.rows // scale), -(-h.cols // scale), h.channels), h.np_dtype)
    tiles = _TileDecoder(_Reader(data, h, start, strict, report), out, level, keep_scratch, frames)
    items = [(k, f, t) for k, f in enumerate(frames) for t in range(h.n_tiles)]
    if threads > 1:  # the largest tiles first: a large one taken last leaves one thread working alone
        items.sort(key=tiles.coded_bytes, reverse=True)
    holes = [x for x in map_threads(tiles.decode, items, threads) if x is not None]
    if holes:
        _fill_holes(out, holes, h, frames, report)
    return out


def new_output(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An empty array for decoded samples, its memory from the compiled decoder's block
    cache (codec_core/_native/planedecode.c: at most 32 MB kept), where it goes back when
    the array is gone: the next image of its size is written into pages already mapped.
    A fresh page costs a page fault when first written (1.2-2.5 us here): the outputs
    were a third of a decode's faults (benchmarks/results/lossy_speed.md, "Stop 28")."""
    from ._hlc import sample_block

    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not size:
        return np.empty(shape, dtype)
    return np.frombuffer(sample_block(size), dtype).reshape(shape)


def decode_frame(stream: bytes, frame: int, threads: int) -> np.ndarray:
    """Frame ``frame`` (rows, cols, channels) of a plain stream this process has just
    made (the encoder's strategies measure their candidates): strict, no pixel limit."""
    h, start = ct.parse_header(stream)
    return decode_stream(stream, h, start, level=0, frames=[frame], strict=True, threads=threads,
                         report=DecodeReport())[0]


@dataclass(frozen=True)
class _Tile:
    """One tile to decode: where it is in the stream and in the output."""
    k: int                      # index of its frame in the output
    f: int                      # its frame in the stream
    t: int                      # its tile number
    box: tuple[int, int, int, int]
    where: str                  # "frame f tile t", for reports and errors
    classes: np.ndarray | None  # importance class of each pixel (hybrid)
    mult: list | None           # step multipliers per band (hybrid)
    ys: int                     # its place and size in the output
    xs: int
    oh: int
    ow: int

    @property
    def hole(self) -> tuple[int, int, int, int, int]:
        """What :func:`_fill_holes` needs of a wholly lost tile."""
        return self.k, self.ys, self.xs, self.oh, self.ow


class _TileDecoder:
    """Decodes tiles of one stream into ``out`` (one call per tile, from any thread)."""

    def __init__(self, rd: _Reader, out: np.ndarray, level: int, keep_scratch: bool, frames: list[int]) -> None:
        h = rd.h
        self.rd, self.h, self.out, self.level, self.keep = rd, h, out, level, keep_scratch
        self.layout = ct.segment_layout(h)
        self.table = unpack_value_table(h.value_table, h.vmin, h.vmax) if h.value_table else None
        # the importance map of the frames decoded (from the first of them to the last) only
        self.first = min(frames)
        self.cmap = unpack_class_map(h.class_map, class_map_shape(h), self.first, max(frames) - self.first + 1) \
            if h.class_map else None

    def coded_bytes(self, item: tuple[int, int, int]) -> int:
        """The coded size of a tile's planes: near enough to its decode time to order by."""
        _, f, t = item
        first = self.layout.plane(self.h, f, t, 0)
        return sum(n for n, _ in self.h.segments[first:first + self.h.channels * self.layout.per_plane])

    def _tile(self, item: tuple[int, int, int]) -> _Tile:
        k, f, t = item
        h, scale = self.h, 1 << self.level
        y0, y1, x0, x1 = box = h.tile_box(t)
        classes = pixel_classes(self.cmap[f - self.first], h.roi_block, box) if self.cmap is not None else None
        mult = band_multipliers(classes, h.levels, h.class_mult) if classes is not None else None
        return _Tile(k, f, t, box, f"frame {f} tile {t}", classes, mult, y0 // scale, x0 // scale,
                     -(-(y1 - y0) // scale), -(-(x1 - x0) // scale))

    def decode(self, item: tuple[int, int, int]) -> tuple | None:
        """Decode one tile into ``out``; a wholly lost tile is returned as a hole."""
        tile = self._tile(item)
        if self.h.mode == Mode.NEAR_LOSSLESS and self.h.channels == 3:
            return self._colour_predictive(tile)
        return self._planes(tile)

    def _colour_predictive(self, tl: _Tile) -> tuple | None:
        """A near-lossless colour tile into the output: at full resolution its three
        padded planes clipped and interleaved in one compiled pass (clip_tile: RGB
        near-lossless decode 1.05x the numpy clips and strided copies, which a reduced
        tile still takes); near-lossless has no colour transform, no value table."""
        h, (y0, y1, x0, x1) = self.h, tl.box
        got = _decode_colour_predictive(self.rd, self.layout, tl.f, tl.t, y1 - y0, x1 - x0,
                                        h.levels - self.level, h, tl.where)
        if got is None:
            return tl.hole
        planes, tile = got
        if tile is not None:  # (full resolution: the three planes as one planar tile)
            region = self.out[tl.k, tl.ys:tl.ys + tile.shape[0], tl.xs:tl.xs + tile.shape[1]]
            clip_tile(tile, region, h.vmin, h.vmax)  # (the clips and the interleave in one pass)
            return None
        for c in range(3):
            p, planes[c] = planes[c], None
            self.out[tl.k, tl.ys:tl.ys + p.shape[0], tl.xs:tl.xs + p.shape[1], c] = np.clip(p, h.vmin, h.vmax, out=p)
        return None

    def _segments(self, tl: _Tile, c: int) -> list[bytes]:
        """The resolution segments of channel ``c`` that are intact, up to the first lost
        one (reported). Ranks are not values: a rank-coded plane's thumbnail is made from
        its values, so all its resolutions are read (averaging ranks darkens mixed blocks)."""
        h, rd = self.h, self.rd
        read_upto = h.levels if self.table is not None else h.levels - self.level
        first = self.layout.plane(h, tl.f, tl.t, c)
        segs = []
        for r in range(read_upto + 1):
            try:
                segs.append(rd.get(first + r))
            except CorruptStreamError as e:
                rd.lost(tl.where, first + r, e)
                rd.report.concealed.append(f"{tl.where} channel {c}: " + (
                    f"lost, {_FILLED_MEAN}" if r == 0 else f"resolutions from {r} on lost, shown blurred"))
                break
        return segs

    def _planes(self, tl: _Tile) -> tuple | None:
        """A tile plane by plane: a one-channel tile without ROI layer is finished
        straight into the output; a lossy colour plane is rounded straight into its
        channel of the tile (one tile filled plane by plane: no list of planes, no
        stack copy)."""
        h, level = self.h, self.level
        (y0, y1, x0, x1), upto = tl.box, h.levels - level
        tile, segs, whole_tile_lost = None, [], False
        for c in range(h.channels):
            segs = self._segments(tl, c)
            if not segs:
                whole_tile_lost = True
                continue
            direct = None
            if h.channels == 1 and tl.classes is None:
                direct = self.out[tl.k, tl.ys:tl.ys + tl.oh, tl.xs:tl.xs + tl.ow, 0]
            elif h.channels > 1:
                if tile is None:  # planar: a lossy plane is synthesised straight into its
                    # channel, a reversible one copied in by rows, and the colour finish
                    # reads planar rows (its vectorised path): RGB lossless decode (US1) 1.09x
                    tile = new_tile((tl.oh, tl.ow), h, planar=True)
                direct = tile[..., c] if h.mode == Mode.LOSSY else None
            plane = _decode_plane(segs, upto, y1 - y0, x1 - x0, h, tl.mult, c, direct, self.table, level, self.keep)
            if h.channels == 1:
                if direct is not None:
                    _recentre_thumbnail(direct, segs, level, h, self.table)
                    return None
                tile = plane[..., None]
            elif direct is None:
                assert tile is not None  # (made above: a tile of several channels)
                tile[..., c] = plane
            del plane  # before the next plane is decoded
        if whole_tile_lost:
            return tl.hole
        assert tile is not None  # (every channel was decoded)
        self._finish(tl, tile, segs)
        return None

    def _finish(self, tl: _Tile, tile: np.ndarray, segs: list[bytes]) -> None:
        """Colour inverse, value table, clipping and the ROI layer; into the output."""
        h = self.h
        region = self.out[tl.k, tl.ys:tl.ys + tile.shape[0], tl.xs:tl.xs + tile.shape[1]]
        if h.mode == Mode.LOSSY and tl.classes is not None and self.level == 0:
            tile = finish_tile(tile, h)
            _apply_roi_layer(tile, tl.classes >= ROI_CLASS, h, self.rd, self.layout, tl.f, tl.t, tl.where)
            region[...] = tile
        else:  # (straight into the output)
            finish_tile(tile, h, None if h.mode == Mode.LOSSY else self.table, out=region)
        _recentre_thumbnail(region, segs, self.level, h, self.table)


def _decode_colour_predictive(rd: _Reader, layout: ct.Layout, f: int, t: int, th: int, tw: int,
                              upto: int, h: ct.Header, where: str) -> tuple[list, np.ndarray | None] | None:
    """Near-lossless colour tile: the three planes depend on each other (G is the reference).
    The planes (reduced to ``upto``), and at full resolution the same three as one planar
    tile (th, tw, 3) (else None); None if a plane is lost."""
    segs = []
    for c in range(3):
        i = layout.plane(h, f, t, c)
        try:
            seg = rd.get(i)
        except CorruptStreamError as e:
            rd.lost(where, i, e)
            rd.report.concealed.append(f"{where}: colour planes lost, {_FILLED_MEAN}")
            return None
        if plane_coder(seg) != PlaneCoder.PREDICTIVE_COLOUR:
            raise CorruptStreamError(f"{where}: unexpected plane coder in a colour tile", where)
        segs.append(seg[1:])
    recon = np.empty((3, th + 2, tw + 4), np.int32)  # (one buffer: a planar tile)
    planes = predictive.decode_planes(segs, th, tw, h.max_error, h.vmin, h.vmax, ref=1, recon=recon)
    if upto < h.levels:
        return [area_reduce(p, h.levels - upto) for p in planes], None
    # (decode_planes returns each plane as its view of recon: the tile is what it decoded)
    assert all(np.may_share_memory(p, recon[c]) for c, p in enumerate(planes))
    return planes, recon[:, 2:, 2:tw + 2].transpose(1, 2, 0)


def _decode_plane(segs: list, upto: int, th: int, tw: int, h: ct.Header, mult: list | None,
                  channel: int, out: np.ndarray | None = None, table: np.ndarray | None = None,
                  level: int = 0, keep: bool = False) -> np.ndarray:
    """One plane of a tile at 1/2^level resolution, int32; or, with ``out`` (a
    one-channel tile's place in the output), finished (value table, clipping) and
    written there.

    Thumbnails: a wavelet plane gives its 5/3 LL band (its coarse segments only); a
    plane decoded whole (predictive, or coded as ranks of a value table, for which
    ``segs`` holds every resolution) gives the area mean of its values."""
    if h.mode != Mode.LOSSY:  # reversible planes start with the id of their coder
        coder = plane_coder(segs[0])
        if coder is None:
            raise CorruptStreamError("empty plane segment")
        if coder == PlaneCoder.PREDICTIVE:
            return _decode_predictive_plane(segs[0], th, tw, h, out, table, level)
        if coder != PlaneCoder.WAVELET:
            raise CorruptStreamError(f"unknown plane coder {coder}")
        segs = [segs[0][1:]] + segs[1:]
        if out is not None and table is None and _whole_plane_in_c(h, out, segs, upto):
            return _lossless_plane(segs, h, out, keep)
    elif out is not None and mult is None and _whole_plane_in_c(h, out, segs, upto):
        return _lossy_plane(segs, h, channel, out, keep)
    good = len(segs) - 1
    if table is not None and level:
        upto = h.levels  # the whole plane, to average values rather than ranks
    bands = entropy.decode_decomposition(segs, th, tw, h.levels, upto=good,
                                         lossy=h.mode == Mode.LOSSY and bool(h.flags & FLAG_LOSSY_CONTEXTS),
                                         runs=bool(h.flags & FLAG_LOSSY_RUNS))
    shapes = band_shapes(th, tw, h.levels)
    for r in range(good + 1, upto + 1):  # lost finer levels: zero detail (blurred tile)
        bands.append(tuple(np.zeros(s, np.int32) for s in shapes[r]))
    if h.mode == Mode.LOSSY:
        steps = quantize.channel_steps(h.steps, h.channel_mult, channel)
        return reconstruct_lossy_plane(bands, h, steps, mult, upto, consume=True, out=out)
    if table is not None and level:
        x = _thumbnail(dwt53_inverse(bands), level, table)
        if out is not None:
            out[...] = finish_tile(x[..., None], h)[..., 0]
            return out
        return x
    if out is None:
        return dwt53_inverse(bands, upto)
    return dwt53_inverse(bands, upto, out, lambda a: finish_tile(a[..., None], h, table)[..., 0])


def _whole_plane_in_c(h: ct.Header, out: np.ndarray, segs: list, upto: int) -> bool:
    """Whether a wavelet plane (for a lossy one: no importance multipliers; a lossless
    one: no value table) is one call of the compiled plane decoders (codec_core/_native/
    planedecode.c): decoded whole (every segment intact) at full resolution into ``out``, a
    plane whose rows they can write in place; a lossless plane, or a lossy one of format v2
    or later coded with the lossy band coder; at least one level."""
    coder_ok = h.mode == Mode.LOSSLESS or (h.mode == Mode.LOSSY and h.version >= Version.V2
                                           and bool(h.flags & FLAG_LOSSY_CONTEXTS))
    return coder_ok and h.levels > 0 and len(segs) == upto + 1 == h.levels + 1 and rows_in_place(out)


def _plane_status(rc: int) -> None:
    """The compiled plane decoders' damaged-segment codes as the step-by-step path's errors."""
    from . import _kernels as kk

    if rc == kk.PLANE_BAD_LENGTH:
        raise CorruptStreamError("bad length field in a coded segment")
    if rc:
        raise CorruptStreamError("coded segment shorter than its length field")


def _lossy_plane(segs: list, h: ct.Header, channel: int, out: np.ndarray, keep: bool = False) -> np.ndarray:
    """:func:`_decode_plane`'s lossy plane, whole, by the compiled ``decode_lossy_plane``:
    the kernels of entropy.decode_decomposition and pipeline.reconstruct_lossy_plane in
    one call (the same samples; the Python between them was 13-19% of a decode);
    ``keep``: its scratch kept in the block cache (:func:`decode_stream`)."""
    from . import _kernels as kk

    steps = np.asarray(quantize.channel_steps(h.steps, h.channel_mult, channel)[:1 + 3 * h.levels], np.float32)
    lo, hi = lossy_bounds(h, out.dtype)
    _plane_status(kk.decode_lossy_plane(segs, bool(h.flags & FLAG_LOSSY_RUNS), kk.fresh_plane_models(), steps,
                                        float(np.float32(h.recon_offset)), out, float(lo), float(hi), keep))
    return out


def _lossless_plane(segs: list, h: ct.Header, out: np.ndarray, keep: bool = False) -> np.ndarray:
    """:func:`_decode_plane`'s lossless wavelet plane (no value table), whole, by the
    compiled ``decode_lossless_plane``: entropy.decode_decomposition, the 5/3 synthesis
    and finish_tile's clip in one call (the same samples; 10% of a lossless decode was
    the Python between them, and it held the GIL)."""
    from . import _kernels as kk

    _plane_status(kk.decode_lossless_plane(segs, kk.fresh_plane_models()[:4], out, h.vmin, h.vmax, keep))
    return out


def _decode_predictive_plane(seg: bytes, th: int, tw: int, h: ct.Header, out: np.ndarray | None,
                             table: np.ndarray | None, level: int) -> np.ndarray:
    """A plane coded by the predictive coder (i32 lo, i32 hi, one segment), as
    :func:`_decode_plane` returns it; a thumbnail is the area mean of the whole plane."""
    if len(seg) < RANGE_HEAD.size:
        raise CorruptStreamError("predictive plane header cut short")
    _, lo, hi = RANGE_HEAD.unpack_from(seg)
    if lo > hi or hi - lo > 1 << 24:
        raise CorruptStreamError("predictive plane range is invalid")
    data = memoryview(seg)[RANGE_HEAD.size:]  # (the segment's bytes, no copy)
    k = h.max_error if h.mode == Mode.NEAR_LOSSLESS else 0
    if out is not None and not level and out.shape == (th, tw) and h.colour != ColourTransform.RCT:
        # each row finished into out as the decoder leaves it: no int32 plane of the tile
        return predictive.decode_plane_into(data, k, lo, hi, out, table, clip=(h.vmin, h.vmax))
    x = predictive.decode_plane(data, th, tw, k, lo, hi)
    if level:
        x, table = _thumbnail(x, level, table), None
    if out is not None:  # (clipped straight into out: no int32 pass before the cast)
        finish_tile(x[..., None], h, table, out=out[..., None])
        return out
    return x


def _recentre_thumbnail(region: np.ndarray, segs: list, level: int, h: ct.Header,
                        table: np.ndarray | None) -> None:
    """Move a wavelet tile's thumbnail to the centres of the blocks it stands for.

    The LL band's sample i sits on input sample 2^k i, but a reduced image's pixel
    stands for the block 2^k i .. 2^k (i + 1) - 1, centred (2^k - 1) / 2 further on:
    a shift of (2^k - 1) / 2^(k+1) of a thumbnail pixel, made by linear interpolation
    (edge samples repeated at the tile's far edges). Without it a level-3 thumbnail of
    a sharp MR correlates 0.93 with the block means, below plain decimation; with it
    0.99. Planes decoded whole were already reduced to block means."""
    if not level or table is not None or (h.mode != Mode.LOSSY and plane_coder(segs[0]) != PlaneCoder.WAVELET):
        return
    f = ((1 << level) - 1) / (1 << (level + 1))
    y = region.astype(np.float32)  # a thumbnail-sized copy; 16-bit values are exact in float32
    y[:-1] += f * (y[1:] - y[:-1])
    y[:, :-1] += f * (y[:, 1:] - y[:, :-1])
    region[...] = np.rint(y)  # between two stored values: stays within the type and range


def _thumbnail(x: np.ndarray, level: int, table: np.ndarray | None) -> np.ndarray:
    """Area mean of a whole decoded plane, after mapping ranks to values."""
    if table is not None:
        x = lookup_in_place(table, np.clip(x, 0, len(table) - 1, out=x))
    return area_reduce(x, level)


def _apply_roi_layer(tile: np.ndarray, roi: np.ndarray, h: ct.Header, rd: _Reader,
                    layout: ct.Layout, f: int, t: int, where: str) -> None:
    """Hybrid ROI layer: ROI samples decoded predictively over the base layer."""
    for c in range(h.channels):
        i = layout.plane(h, f, t, c) + h.levels + 1
        try:
            tile[..., c] = predictive.decode_plane_masked(
                rd.get(i), roi, np.ascontiguousarray(tile[..., c]), h.roi_max_error, h.vmin, h.vmax)
        except CorruptStreamError as err:
            rd.lost(f"{where} ROI layer", i, err)
            rd.report.concealed.append(f"{where} channel {c}: ROI layer lost, ROI shown lossy")


def _fill_holes(out: np.ndarray, holes: list, h: ct.Header, frames: list, report: DecodeReport) -> None:
    """Conceal wholly lost tiles with the mean of what survived in their frame. If
    nothing did, that mean does not exist: the middle of the header's value range is
    used (a value the image can hold), and the frame's report lines say so."""
    for k in sorted({hole[0] for hole in holes}):
        lost = np.zeros(out.shape[1:3], bool)
        for kk, y, x, hh, ww in holes:
            if kk == k:
                lost[y:y + hh, x:x + ww] = True
        kept = out[k][~lost]
        if kept.size:
            out[k][lost] = np.rint(kept.mean(axis=0))
            continue
        out[k][lost] = (h.vmin + h.vmax) // 2
        tag = f"frame {frames[k]} tile "
        report.concealed = [line.replace(_FILLED_MEAN, _FILLED_MIDDLE) if line.startswith(tag) else line
                            for line in report.concealed]
