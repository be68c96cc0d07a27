"""Encode and decode pipelines: planes -> tiles -> wavelet -> segments, and back.

The image arrives as int32 ``(frames, rows, cols, channels)``. Every
(frame, tile, channel) *plane* is coded independently, so tiles decode in
parallel threads (the numba kernels release the GIL), damage stays inside one
tile, and a single frame or resolution is read without the rest.

Modes
- lossless: 5/3 integer wavelet of the samples (optionally of their ranks in a
  sparse value table), colour through the reversible colour transform.
- near-lossless (max error k): samples are first quantised with step 2k+1
  around the image minimum, which bounds the error by k, then coded losslessly.
- lossy: 9/7 wavelet, dead-zone quantisation with a base step found by rate
  control. With an importance map, background coefficients get coarser steps
  and a residual layer, quantised with step 2e+1, keeps every ROI sample
  within +-e of the original (e = 0: exact).
"""
from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import container as ct
from . import entropy, quantize
from .errors import CorruptStreamError
from .transform import (band_shapes, dwt53_forward, dwt53_inverse, dwt97_forward,
                        dwt97_inverse, rct_forward, rct_inverse)

TILE = 512
MAX_LEVELS = 5
ROI_USER_BLOCK = 8
# Step multiplier per importance class (background, body, detail) in hybrid mode.
CLASS_MULT = (2.0, 1.0, 1.0)


def choose_levels(tile_rows: int, tile_cols: int) -> int:
    n = max(tile_rows, tile_cols)
    return max(0, min(MAX_LEVELS, n.bit_length() - 4))


def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _map(fn, items: list, threads: int) -> list:
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(fn, items))


# ----------------------------------------------------------------- value table

def choose_value_table(img: np.ndarray, vmin: int, vmax: int, levels: int) -> np.ndarray | None:
    """Sorted distinct values, if coding ranks instead of values is cheaper.

    Coding ranks removes the gaps of a sparse histogram (padding far from the
    anatomy, rescaled data) but can break the smoothness of dense data, so the
    choice is measured on the middle frame, coded both ways: whole if it is at
    most 512x512, else full-resolution strips (every 4th band of 32 rows).
    """
    span = vmax - vmin + 1
    if span < 64 or img.shape[-1] != 1:
        return None
    used = np.zeros(span, dtype=bool)
    used[(img.reshape(-1) - vmin)] = True
    n = int(used.sum())
    if n > span * 0.9:
        return None
    table = (np.flatnonzero(used) + vmin).astype(np.int32)
    frame = img[img.shape[0] // 2, :, :, 0]
    rows = np.arange(frame.shape[0])
    sample = np.ascontiguousarray(frame if frame.size <= 1 << 18 else frame[(rows // 32) % 4 == 0])
    lv = min(levels, max(0, max(sample.shape).bit_length() - 4))

    def cost(x: np.ndarray) -> int:
        return sum(map(len, entropy.encode_decomposition(dwt53_forward(x, lv), lv)))

    # the table itself is charged in proportion to the share of the image sampled
    table_cost = len(pack_value_table(table)) * sample.size / img.size
    ranks = np.searchsorted(table, sample).astype(np.int32)
    return table if cost(ranks) + table_cost < cost(sample) else None


def pack_value_table(table: np.ndarray) -> bytes:
    deltas = np.diff(table.astype(np.int64), prepend=np.int64(table[0]) - 1) - 1
    head = int(table[0]).to_bytes(4, "little", signed=True) + len(table).to_bytes(4, "little")
    return head + zlib.compress(deltas.astype("<u4").tobytes(), 9)


def unpack_value_table(seg: bytes, vmin: int, vmax: int) -> np.ndarray:
    if len(seg) < 8:
        raise CorruptStreamError("value table too short", "value table")
    first = int.from_bytes(seg[:4], "little", signed=True)
    n = int.from_bytes(seg[4:8], "little")
    if not 1 <= n <= vmax - vmin + 1:
        raise CorruptStreamError("value table size out of range", "value table")
    d = zlib.decompressobj()
    raw = d.decompress(seg[8:], 4 * n)
    if len(raw) != 4 * n:
        raise CorruptStreamError("value table damaged", "value table")
    table = first + np.cumsum(np.frombuffer(raw, "<u4").astype(np.int64) + 1) - 1
    if table[0] != first or table[-1] > vmax or first < vmin:
        raise CorruptStreamError("value table out of range", "value table")
    return table.astype(np.int32)


# ------------------------------------------------------------- importance map

def pack_class_map(cmap: np.ndarray) -> bytes:
    return zlib.compress(np.ascontiguousarray(cmap, np.uint8).tobytes(), 9)


def unpack_class_map(seg: bytes, shape: tuple) -> np.ndarray:
    n = int(np.prod(shape))
    d = zlib.decompressobj()
    raw = d.decompress(seg, n)
    if len(raw) != n or max(raw, default=0) > 2:
        raise CorruptStreamError("importance map damaged", "importance map")
    return np.frombuffer(raw, np.uint8).reshape(shape)


def class_map_shape(h: ct.Header) -> tuple[int, int, int]:
    b = h.roi_block
    return h.frames, -(-h.rows // b), -(-h.cols // b)


def pixel_classes(cmap_frame: np.ndarray, block: int, box: tuple) -> np.ndarray:
    """Class of every pixel of a tile, from the block map of its frame."""
    y0, y1, x0, x1 = box
    ys = np.arange(y0, y1) // block
    xs = np.arange(x0, x1) // block
    return cmap_frame[np.ix_(ys, xs)]


def band_multipliers(classes: np.ndarray, levels: int, mults: list) -> list:
    """Per-band step multiplier arrays for one tile, in flat band order."""
    lut = np.asarray(mults, np.float64)
    rows, cols = classes.shape
    shapes = band_shapes(rows, cols, levels)
    out = []
    flat = [(shapes[0], levels)]
    for r, lvl in enumerate(shapes[1:], start=1):
        flat.extend((s, levels - r + 1) for s in lvl)
    for (h, w), lev in flat:
        ys = np.minimum(np.arange(h) << lev, rows - 1)
        xs = np.minimum(np.arange(w) << lev, cols - 1)
        out.append(lut[classes[np.ix_(ys, xs)]])
    return out


# ------------------------------------------------------------------ planes

@dataclass
class EncodeJob:
    """All that encode needs to know, beyond the image itself."""
    header: ct.Header
    img: np.ndarray                     # int32 (F, R, C, Ch), after value table / pre-quantisation
    original: np.ndarray                # int32 (F, R, C, Ch), the samples as given
    cmap: np.ndarray | None = None      # uint8 (F, by, bx) importance classes
    threads: int = 1
    segments: list = field(default_factory=list)


def _planes(h: ct.Header) -> list[tuple[int, int]]:
    return [(f, t) for f in range(h.frames) for t in range(h.n_tiles)]


def _tile_samples(img: np.ndarray, h: ct.Header, f: int, t: int, colour: bool) -> np.ndarray:
    y0, y1, x0, x1 = h.tile_box(t)
    tile = img[f, y0:y1, x0:x1, :]
    return rct_forward(tile) if colour else tile


def encode_reversible(job: EncodeJob) -> list[bytes]:
    """Lossless and near-lossless: 5/3 of each plane, coded."""
    h = job.header

    def one(ft):
        f, t = ft
        tile = _tile_samples(job.img, h, f, t, h.colour == 1)
        segs = []
        for c in range(h.channels):
            segs.extend(entropy.encode_decomposition(dwt53_forward(tile[..., c], h.levels), h.levels))
        return segs

    return [s for segs in _map(one, _planes(h), job.threads) for s in segs]


class LossyState:
    """Forward 9/7 bands of every plane, kept across rate-control iterations."""

    def __init__(self, job: EncodeJob) -> None:
        h = job.header
        self.job = job
        self.bands = {}
        self.mults = {}
        self.roi_pixels = {}
        for f, t in _planes(h):
            tile = _tile_samples(job.img, h, f, t, h.colour == 1)
            for c in range(h.channels):
                b = dwt97_forward(tile[..., c], h.levels)
                self.bands[f, t, c] = [b[0].astype(np.float32)] + [tuple(x.astype(np.float32) for x in lv) for lv in b[1:]]
            if job.cmap is not None:
                classes = pixel_classes(job.cmap[f], h.roi_block, h.tile_box(t))
                self.mults[f, t] = band_multipliers(classes, h.levels, h.class_mult)
                self.roi_pixels[f, t] = classes >= 1

    def quantised(self, steps: list) -> dict:
        h = self.job.header

        def one(key):
            return key, quantize.quantise(self.bands[key], steps, h.levels, self.mults.get(key[:2]))

        return dict(_map(one, list(self.bands), self.job.threads))

    def reconstruct(self, q: dict, steps: list) -> dict:
        """Base layer as the decoder will see it: int32 (rows, cols, Ch) per (f, t)."""
        h = self.job.header

        def one(ft):
            f, t = ft
            planes = [reconstruct_lossy_plane(q[f, t, c], h, steps, self.mults.get((f, t)))
                      for c in range(h.channels)]
            return ft, finish_tile(np.stack(planes, -1), h)

        return dict(_map(one, _planes(h), self.job.threads))

    def residuals(self, base: dict) -> dict:
        """ROI residual layer: quantised with step 2e+1, zero outside the ROI."""
        h = self.job.header
        e = h.roi_max_error
        out = {}
        for (f, t), b in base.items():
            y0, y1, x0, x1 = h.tile_box(t)
            r = self.job.original[f, y0:y1, x0:x1, :] - b
            q = np.sign(r) * ((np.abs(r) + e) // (2 * e + 1))
            q[~self.roi_pixels[f, t]] = 0
            out[f, t] = q.astype(np.int32)
        return out

    def encode(self, steps: list) -> tuple[list[bytes], dict]:
        h = self.job.header
        q = self.quantised(steps)
        res = self.residuals(self.reconstruct(q, steps)) if h.flags & ct.FLAG_ROI else None

        def one(ft):
            f, t = ft
            segs = []
            for c in range(h.channels):
                segs.extend(entropy.encode_decomposition(q[f, t, c], h.levels))
                if res is not None:
                    segs.append(entropy.encode_masked_plane(res[f, t][..., c], self.roi_pixels[f, t]))
            return segs

        return [s for segs in _map(one, _planes(h), self.job.threads) for s in segs], q


def reconstruct_lossy_plane(qbands: list, h: ct.Header, steps: list, mult: list | None,
                            upto: int | None = None) -> np.ndarray:
    deq = quantize.dequantise(qbands, steps, h.levels, h.recon_offset, mult, upto)
    return np.rint(dwt97_inverse(deq)).astype(np.int64)


def finish_tile(tile: np.ndarray, h: ct.Header) -> np.ndarray:
    """Colour inverse and clipping of a reconstructed tile (int, (r, c, Ch))."""
    if h.colour == 1:
        tile = rct_inverse(np.clip(tile, -(1 << 20), 1 << 20))
    return np.clip(tile, h.vmin, h.vmax).astype(np.int32)


# ------------------------------------------------------------------ decoding

@dataclass
class DecodeReport:
    """What ``decode(strict=False)`` had to repair or could not recover."""
    exact: bool = True
    damaged_segments: list = field(default_factory=list)
    concealed: list = field(default_factory=list)
    ecc: object = None

    def as_dict(self) -> dict:
        d = {"exact": self.exact, "damaged_segments": list(self.damaged_segments),
             "concealed": list(self.concealed)}
        if self.ecc is not None:
            d["ecc"] = self.ecc if isinstance(self.ecc, dict) else vars(self.ecc)
        return d


def decode_stream(data: bytes, h: ct.Header, start: int, *, level: int, frames: list[int],
                  strict: bool, threads: int, report: DecodeReport) -> np.ndarray:
    layout = ct.segment_layout(h)
    offsets = ct.segment_offsets(h, start)
    scale = 1 << level
    rows, cols = -(-h.rows // scale), -(-h.cols // scale)
    out = np.empty((len(frames), rows, cols, h.channels), dtype=np.int32)

    def seg(i: int) -> bytes:
        return ct.read_segment(data, h, offsets, i)

    def lost(what: str, i: int | None = None) -> None:
        if strict:
            raise CorruptStreamError(f"{what} is damaged (CRC mismatch)", what)
        report.exact = False
        if i is not None:
            report.damaged_segments.append(i)

    table = None
    if layout.value_table is not None:
        try:
            table = unpack_value_table(seg(layout.value_table), h.vmin, h.vmax)
        except CorruptStreamError:
            lost("value table", layout.value_table)
    cmap = None
    if layout.roi_map is not None:
        try:
            cmap = unpack_class_map(seg(layout.roi_map), class_map_shape(h))
        except CorruptStreamError:
            lost("importance map", layout.roi_map)
            if h.mode == 2:  # step multipliers unknown: the lossy layer cannot be decoded
                raise CorruptStreamError("importance map is damaged", "importance map") from None

    def one(item):
        k, f = item[0], item[1]
        t = item[2]
        y0, y1, x0, x1 = h.tile_box(t)
        th, tw = y1 - y0, x1 - x0
        where = f"frame {f} tile {t}"
        planes = []
        classes = pixel_classes(cmap[f], h.roi_block, (y0, y1, x0, x1)) if cmap is not None else None
        mult = band_multipliers(classes, h.levels, h.class_mult) if classes is not None and h.mode == 2 else None
        for c in range(h.channels):
            first = layout.plane(h, f, t, c)
            upto = h.levels - level
            try:
                segs = [seg(first + r) for r in range(upto + 1)]
                good = upto
            except CorruptStreamError as e:
                bad = int(e.where.split()[-1]) - first if e.where and e.where.startswith("segment") else 0
                lost(where, first + bad)
                good = bad - 1
                segs = [seg(first + r) for r in range(good + 1)] if good >= 0 else []
                report.concealed.append(f"{where} channel {c}: " + (
                    "whole tile lost, filled with the frame mean" if good < 0
                    else f"resolutions above {good} lost, shown blurred"))
            planes.append(_decode_plane(segs, good, upto, th, tw, h, mult))
        tile = np.stack(planes, -1)
        hole = (tile == np.iinfo(np.int32).min).any(axis=-1) if not report.exact else None
        if h.mode == 2:
            tile = finish_tile(tile, h)
            if classes is not None and level == 0 and h.flags & ct.FLAG_ROI:
                tile = _apply_residual(tile, classes >= 1, h, seg, layout, f, t, lost, where)
        else:
            tile = _finish_reversible(tile, h, table)
        if hole is not None and hole.any():
            tile[hole] = np.iinfo(np.int32).min
        out[k, y0 // scale:y0 // scale + tile.shape[0], x0 // scale:x0 // scale + tile.shape[1]] = tile
        return None

    items = [(k, f, t) for k, f in enumerate(frames) for t in range(h.n_tiles)]
    _map(one, items, threads)
    if not report.exact and report.concealed:
        _fill_lost_tiles(out, report)
    return out


def _decode_plane(segs: list, good: int, upto: int, th: int, tw: int, h: ct.Header,
                  mult: list | None) -> np.ndarray:
    scale = 1 << (h.levels - upto)
    if good < 0:
        return np.full((-(-th // scale), -(-tw // scale)), np.iinfo(np.int32).min, np.int64)
    bands = entropy.decode_decomposition(segs, th, tw, h.levels, upto=good)
    shapes = band_shapes(th, tw, h.levels)
    for r in range(good + 1, upto + 1):  # lost finer levels: zero detail (blurred tile)
        bands.append(tuple(np.zeros(s, np.int32) for s in shapes[r]))
    if h.mode == 2:
        return reconstruct_lossy_plane(bands, h, h.steps, mult, upto)
    return dwt53_inverse(bands, upto).astype(np.int64)


def _finish_reversible(tile: np.ndarray, h: ct.Header, table: np.ndarray | None) -> np.ndarray:
    if h.colour == 1:
        tile = rct_inverse(np.clip(tile, -(1 << 20), 1 << 20))
    if h.mode == 1:
        k = h.max_error
        tile = tile.astype(np.int64) * (2 * k + 1) + h.vmin
    elif table is not None:
        tile = table[np.clip(tile, 0, len(table) - 1)]
    return np.clip(tile, h.vmin, h.vmax).astype(np.int32)


def _apply_residual(tile, roi, h, seg, layout, f, t, lost, where):
    e = h.roi_max_error
    for c in range(h.channels):
        i = layout.plane(h, f, t, c) + h.levels + 1
        try:
            r = entropy.decode_masked_plane(seg(i), roi)
        except CorruptStreamError:
            lost(f"{where} ROI residual", i)
            continue
        tile[..., c] = np.clip(tile[..., c].astype(np.int64) + r.astype(np.int64) * (2 * e + 1),
                               h.vmin, h.vmax)
    return tile


def _fill_lost_tiles(out: np.ndarray, report: DecodeReport) -> None:
    """Conceal wholly lost tiles with the mean of what survived in their frame."""
    hole = np.iinfo(np.int32).min
    for k in range(out.shape[0]):
        frame = out[k]
        missing = frame == hole
        if missing.any():
            ok = frame[~missing]
            frame[missing] = int(ok.mean()) if ok.size else 0
