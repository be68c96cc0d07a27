"""Encoding, one tile at a time.

``Source`` gives each tile's samples as int32, from the caller's array without
copying the whole image. ``encode_reversible`` codes lossless and
near-lossless streams; ``LossyCoder`` codes the 9/7 layer for any base step,
which is what rate control searches over. (The hybrid's region layers are
codec_core/regions.py; the decoder still reads the older ROI layer of v1/v2
streams, which no encoder writes now.)
Forward transforms are recomputed per rate-control step instead of kept for
every tile: that bounds memory by the tile size.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np

from . import container as ct
from . import entropy, predictive, quantize
from .format import FLAG_LOSSY_CONTEXTS, FLAG_LOSSY_RUNS, RANGE_HEAD, ColourTransform, Mode, PlaneCoder, Version
from .pipeline import (
    finish_tile,
    lossy_plane_rows,
    map_threads,
    new_tile,
    planes,
    rct_limit,
    reconstruct_lossy_plane,
    release_free_memory,
    squared_error,
    tile_dtype,
)
from .transform import forward, rct_channel

#: Sample types the compiled values-to-ranks pass reads (native byte order, aligned).
_RANKED_TYPES = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32))


@dataclass
class Source:
    """The image to code: a ``(frames, rows, cols, channels)`` view of the input."""
    image: np.ndarray
    header: ct.Header
    table: np.ndarray | None = None     # lossless: code ranks in this value table
    threads: int = 1

    def stored(self, f: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """A view of the stored samples of frame ``f`` inside ``box`` (y0, y1, x0, x1)."""
        y0, y1, x0, x1 = box
        return self.image[f, y0:y1, x0:x1, :]

    def coded_plane(self, f: int, box: tuple[int, int, int, int], c: int,
                    rows: slice = slice(None)) -> np.ndarray:
        """Channel ``c`` of what the reversible path codes (samples, ranks, or their
        RCT), as a new int32 plane: one plane at a time is all a tile needs.
        ``rows`` selects rows of the box (the wavelet takes even and odd apart)."""
        if self.header.colour == ColourTransform.RCT:  # (no value table with colour) RCT from the stored samples
            return rct_channel(self.stored(f, box)[rows], c)
        stored = self.stored(f, box)[rows, :, c]
        if self.table is None:
            return stored.astype(np.int32)
        from ._hlc import to_ranks  # (one compiled pass: _native/colour.c)

        if stored.dtype not in _RANKED_TYPES or not stored.flags.aligned:
            stored = stored.astype(np.int32)  # (a byte-swapped type or an unaligned array: native first)
        x = np.empty(stored.shape, np.int32)
        to_ranks(stored, x, self._ranks, int(self.table[0]))
        return x

    @cached_property
    def _ranks(self) -> np.ndarray:
        """Value -> rank lookup of ``table``: many times faster than a binary search."""
        table = self.table
        assert table is not None  # (asked for only with a value table)
        lut = np.zeros(int(table[-1]) - int(table[0]) + 1, np.int32)
        lut[table - table[0]] = np.arange(len(table), dtype=np.int32)
        return lut


def predictive_segments(plane: np.ndarray, k: int, lo: int, hi: int, levels: int) -> list[bytes]:
    """A plane coded by the predictive coder: tag, range, data; finer resolutions empty."""
    head = RANGE_HEAD.pack(PlaneCoder.PREDICTIVE, lo, hi)
    return [head + predictive.encode_plane(plane, k, lo, hi)] + [b""] * levels


def wavelet_segments(bands: list, levels: int) -> list[bytes]:
    """A plane's 5/3 decomposition coded: tag, then one segment per resolution."""
    return _tagged(entropy.encode_decomposition(bands, levels))


def _whole_wavelet(plane: np.ndarray, levels: int) -> list[bytes]:
    """:func:`wavelet_segments` of a plane held whole, in one compiled call."""
    return _tagged(entropy.encode_lossless_plane(plane, levels))


def _tagged(segs: list[bytes]) -> list[bytes]:
    segs[0] = PlaneCoder.WAVELET.tag + segs[0]
    return segs


SAMPLE_ABOVE = 1 << 16  # larger planes take the coder chosen for the whole image


def _predictive_lossless(plane: np.ndarray, levels: int) -> list[bytes]:
    return predictive_segments(plane, 0, int(plane.min()), int(plane.max()), levels)


def _both_ways(plane: np.ndarray, levels: int) -> list[bytes]:
    """A small plane coded by the 5/3 wavelet and by the predictive coder: the smaller."""
    wav = _whole_wavelet(plane, levels)
    pred = _predictive_lossless(plane, levels)
    return pred if sum(map(len, pred)) < sum(map(len, wav)) else wav


#: The coder choice codes a sample block of this side at each quadrant centre.
CHOICE_BLOCK = 64
#: Predictive is kept only when its sample cost is below this fraction of the
#: wavelet's: small blocks favour the predictive coder, which learns faster. Fitted
#: on one half of the real images of pydicom and pydicom-data (alternate files),
#: checked on the other: there the choice costs 0.02-0.4% over the better coder.
PREDICTIVE_MARGIN = 0.975
#: The choice stops after the first two blocks (a diagonal pair) when every
#: channel's cost ratio there is more than this fraction away from the margin: a
#: lead the other two blocks would have to reverse. Not fitted: on the 22 real
#: images of pydicom and pydicom-data that take the choice (tests/test_coder_choice.py
#: checks them) it decides as the four blocks do, on half the samples for 7 of them.
CLEAR_LEAD = 0.1


def _choice_blocks(h: ct.Header) -> tuple[int, int, list[tuple[int, int]]]:
    """The sample blocks' side (rows, cols) and corners: the centres of the
    quadrants, the diagonal pair first (top left, bottom right); a frame of one
    block side or less has fewer distinct blocks."""
    sr, sc = min(h.rows, CHOICE_BLOCK), min(h.cols, CHOICE_BLOCK)
    quads = ((1, 1), (3, 3), (1, 3), (3, 1))
    corners = [(min(max(0, (h.rows * qy) // 4 - sr // 2), h.rows - sr),
                min(max(0, (h.cols * qx) // 4 - sc // 2), h.cols - sc)) for qy, qx in quads]
    return sr, sc, list(dict.fromkeys(corners))


def _choice(pred: np.ndarray, wav: np.ndarray, samples: int, lead: float) -> list[PlaneCoder] | None:
    """Each channel's coder from the sample costs of ``samples`` samples a channel,
    or None if a channel's ratio is within ``lead`` of the margin (or it cannot judge).
    A channel whose blocks are (nearly) constant, as the chroma of a grey ultrasound,
    cannot judge (headers decide): it takes the choice of all channels."""
    judged = wav * 8 >= 0.1 * samples
    if lead > 0 and not judged.all():
        return None
    pred, wav = np.where(judged, pred, pred.sum()), np.where(judged, wav, wav.sum())
    ratio = pred / np.maximum(wav, 1) / PREDICTIVE_MARGIN
    if lead > 0 and (np.abs(ratio - 1) <= lead).any():
        return None
    return [PlaneCoder.PREDICTIVE if p < PREDICTIVE_MARGIN * w else PlaneCoder.WAVELET
            for p, w in zip(pred, wav, strict=True)]


def choose_coders(src: Source) -> list[PlaneCoder]:
    """Lossless: the coder of each channel's large planes, judged on samples.

    One choice per image rather than per tile: on the corpus a per-tile choice
    never beat the better of the two coders used for every tile, and judging
    every tile cost half as much again as coding it. Four blocks of
    ``CHOICE_BLOCK``² samples, one at the centre of each quadrant of the middle
    frame (a single central block misjudged a radiograph), are coded both ways
    with the real coders: 6% of a 512² image, where statistics-only estimates
    (histograms of residuals and wavelet magnitudes) misjudged run-heavy images by
    up to a third. The first two blocks decide alone where their lead is clear
    (``CLEAR_LEAD``). tests/test_coder_choice.py holds it to the exhaustive choice.
    """
    h = src.header
    sr, sc, corners = _choice_blocks(h)
    lv = min(h.levels, max(0, max(sr, sc).bit_length() - 4))
    wav, pred = np.zeros(h.channels), np.zeros(h.channels)
    for b, (y0, x0) in enumerate(corners):
        for c in range(h.channels):
            sample = src.coded_plane(h.frames // 2, (y0, y0 + sr, x0, x0 + sc), c)
            wav[c] += sum(map(len, _whole_wavelet(sample, lv)))
            pred[c] += len(predictive.encode_plane(sample, 0, int(sample.min()), int(sample.max())))
        if b == 1 and len(corners) == 4:
            early = _choice(pred, wav, 2 * sr * sc, CLEAR_LEAD)
            if early is not None:
                return early
    chosen = _choice(pred, wav, len(corners) * sr * sc, 0.0)
    assert chosen is not None  # (no lead asked: always a choice)
    return chosen


def _uses_choice(h: ct.Header, samples: int) -> bool:
    """Lossless planes of more than ``SAMPLE_ABOVE`` samples, and every plane of a
    multi-frame image, take the coder chosen for the image (:func:`choose_coders`):
    coding each small frame both ways cost twice its coding. A single small plane
    is coded both ways and the smaller kept."""
    return h.mode == Mode.LOSSLESS and (samples > SAMPLE_ABOVE or h.frames > 1)


def encode_reversible(src: Source) -> list[bytes]:
    """Lossless: each plane by the 5/3 wavelet or the predictive coder, as
    :func:`_uses_choice` says. Near-lossless: the predictive coder, residuals
    quantised in the loop."""
    h = src.header
    largest = min(h.rows, h.tile_rows) * min(h.cols, h.tile_cols)
    coders = choose_coders(src) if _uses_choice(h, largest) else []

    def code_tile(ft: tuple[int, int]) -> list[bytes]:
        if h.mode == Mode.NEAR_LOSSLESS and h.channels == 3:
            return _colour_tile_segments(src, ft[0], h.tile_box(ft[1]))
        return [s for c in range(h.channels) for s in _plane_segments(src, ft[0], h.tile_box(ft[1]), c, coders)]

    return [s for segs in map_threads(code_tile, planes(h), src.threads) for s in segs]


def _colour_tile_segments(src: Source, f: int, box: tuple[int, int, int, int]) -> list[bytes]:
    """Near-lossless colour: R and B coded against the reconstructed G where that is
    cheaper (views of the stored samples: each becomes int32 only while it is coded)."""
    h = src.header
    rgb = predictive.encode_planes([src.stored(f, box)[..., c] for c in range(3)],
                                   h.max_error, h.vmin, h.vmax, ref=1)
    segs: list[bytes] = []
    for seg in rgb:
        segs.extend([PlaneCoder.PREDICTIVE_COLOUR.tag + seg] + [b""] * h.levels)
    return segs


def _plane_segments(src: Source, f: int, box: tuple[int, int, int, int], c: int,
                    coders: list[PlaneCoder]) -> list[bytes]:
    """The segments of one reversible plane, by the coder its size and mode ask for."""
    h = src.header
    samples = (box[1] - box[0]) * (box[3] - box[2])
    chosen = _uses_choice(h, samples)
    if chosen and coders[c] == PlaneCoder.WAVELET:
        # its rows made from the stored samples as the transform asks: the
        # whole plane never exists
        rows = partial(src.coded_plane, f, box, c)
        return wavelet_segments(forward(rows, h.levels, "5/3", samples), h.levels)
    plane = src.coded_plane(f, box, c)
    if h.mode == Mode.NEAR_LOSSLESS:
        return predictive_segments(plane, h.max_error, h.vmin, h.vmax, h.levels)
    if chosen:
        return _predictive_lossless(plane, h.levels)
    return _both_ways(plane, h.levels)


class LossyCoder:
    """The 9/7 layer of a source, at any step."""

    #: Levels by RDO quantisation (quantize.rdo_levels) rather than the dead zone's.
    rdo = False
    #: The dead zone's rounding offset (quantize.quantise), where it quantises.
    rounding = quantize.DEADZONE_ROUNDING
    #: The pixels of a one-frame image whose error squared_error counts, (rows, cols)
    #: bool (None: every pixel).
    keep: np.ndarray | None = None

    def __init__(self, src: Source) -> None:
        self.src = src
        self.h = src.header

    def bands(self, ft: tuple[int, int], c: int) -> list:
        """The float 9/7 bands of channel ``c`` of one (frame, tile): one copy of the
        channel (float32, or the RCT's int32 made float32 in place), which the compiled
        9/7 transforms in place and whose memory the bands then are."""
        h = self.h
        x = self.src.stored(ft[0], h.tile_box(ft[1]))

        def rows(sel: slice) -> np.ndarray:
            part = x[sel]
            if h.colour == ColourTransform.RCT:  # int32, made float32 in place by the compiled 9/7
                return rct_channel(part, c)
            return part[..., c].astype(np.float32)

        return forward(rows, h.levels, "9/7")

    def _quantised(self, f: int, t: int, c: int, steps: list) -> list:
        """Quantised 9/7 bands of channel ``c`` of one tile."""
        return quantize.quantise(self.bands((f, t), c), quantize.channel_steps(steps, self.h.channel_mult, c),
                                 self.h.levels, None, consume=True, rdo=self.rdo,
                                 rounding=self.rounding)

    def _decoded_steps(self, steps: list, c: int) -> list:
        """Channel ``c``'s steps as the decoder takes them: by the channel multipliers as
        the header stores them (float32; the quantiser's float64 ones can round a step
        apart, and the error would then not be the decoded image's)."""
        return quantize.channel_steps(steps, [float(np.float32(m)) for m in self.h.channel_mult], c)

    def _base(self, q, steps: list, like: np.ndarray) -> np.ndarray:
        """The lossy layer exactly as the decoder rebuilds it: (rows, cols, Ch), each
        plane from ``q`` (an iterator making each channel's quantised bands when
        asked, freed on the way) rounded straight into its channel. ``like``: the
        stored samples of the tile (one channel comes back in their type, as the
        decoder gives it)."""
        h = self.h
        if h.channels == 1:
            return reconstruct_lossy_plane(next(iter(q)), h, self._decoded_steps(steps, 0),
                                           None, consume=True, dtype=like.dtype)[..., None]
        tile = new_tile(like.shape[:2], h)
        for c, qc in enumerate(q):  # (dequantise empties qc itself)
            reconstruct_lossy_plane(qc, h, self._decoded_steps(steps, c), None, consume=True, out=tile[..., c])
            del qc
        return finish_tile(tile, h)

    def encode(self, steps: list) -> list[bytes]:
        """Every segment of the 9/7 layer at these steps, in stream order; the detail
        bands by the lossy band coder's quiet-run variant, which the header's flags say."""
        self.h.flags |= FLAG_LOSSY_CONTEXTS | FLAG_LOSSY_RUNS
        release_free_memory()  # (before the planes: freed heap memory is not counted twice)
        return [s for segs in map_threads(partial(self._tile_segments, steps), planes(self.h), self.src.threads)
                for s in segs]

    def _tile_segments(self, steps: list, ft: tuple[int, int]) -> list[bytes]:
        h = self.h
        f, t = ft
        segs: list[bytes] = []
        for c in range(h.channels):  # channel by channel: one channel's bands alive at a time
            segs.extend(entropy.encode_decomposition(self._quantised(f, t, c, steps), h.levels, lossy=True,
                                                        runs=True))
        return segs

    def squared_error(self, steps: list, items: list | None = None) -> float:
        """Sum of squared errors of the decoded image at these steps (no entropy coding),
        over every (frame, tile) or only over ``items``."""
        release_free_memory()
        return sum(map_threads(partial(self._tile_squared_error, steps),
                               planes(self.h) if items is None else items, self.src.threads))

    def _tile_squared_error(self, steps: list, ft: tuple[int, int]) -> float:
        h = self.h
        f, t = ft
        box = h.tile_box(t)
        x = self.src.stored(f, box)
        keep = None if self.keep is None else self.keep[box[0]:box[1], box[2]:box[3]]
        if h.levels and h.version >= Version.V2:
            # the decoder's tile a strip of rows at a time: the quantised bands (in the
            # float bands' own memory) and a strip, not a whole plane or tile on top
            return sum(squared_error(r, x[y:y + len(r)], None if keep is None else keep[y:y + len(r)])
                       for y, r in self._tile_rows(f, t, steps, x))
        qs = (self._quantised(f, t, c, steps) for c in range(h.channels))  # one at a time
        return squared_error(self._base(qs, steps, x), x, keep)

    def _tile_rows(self, f: int, t: int, steps: list, x: np.ndarray):
        """The decoded tile (of stored samples ``x``) as ``(first row, rows)`` pieces
        (:func:`pipeline.lossy_plane_rows`; format v2 on, at least one level). Colour:
        the first channels rebuilt whole (the tile's type: int16 for 8-bit RGB), the last
        by strips, each strip's three channels finished (inverse RCT, clip) together:
        two planes of the tile and one channel's bands at the peak, not the whole tile
        beside them (US1_UNCR's trial: 3.54x raw before)."""
        h = self.h
        last = h.channels - 1
        if not last:
            for y, r in lossy_plane_rows(self._quantised(f, t, 0, steps), h, self._decoded_steps(steps, 0), x.dtype):
                yield y, r[..., None]
            return
        dtype = tile_dtype(h)
        lim = rct_limit(dtype) if h.colour == ColourTransform.RCT else None
        first: np.ndarray = np.empty((last,) + x.shape[:2], dtype)
        for c in range(last):
            reconstruct_lossy_plane(self._quantised(f, t, c, steps), h, self._decoded_steps(steps, c), None,
                                    consume=True, out=first[c])
        rows = lossy_plane_rows(self._quantised(f, t, last, steps), h, self._decoded_steps(steps, last), dtype,
                                None if lim is None else (-lim, lim))
        for y, r in rows:
            strip = np.empty(r.shape + (h.channels,), dtype)
            strip[..., :last] = first[:, y:y + len(r)].transpose(1, 2, 0)
            strip[..., last] = r
            del r
            yield y, finish_tile(strip, h)
