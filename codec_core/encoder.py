"""Encoding, one tile at a time.

``Source`` gives each tile's samples as int32, from the caller's array without
copying the whole image. ``encode_reversible`` codes lossless and
near-lossless streams; ``LossyCoder`` codes the 9/7 layer (and, in hybrid
mode, the ROI layer: ROI samples coded predictively within ±e, with the decoded
9/7 layer standing in for the pixels outside the ROI) for any base step, which
is what rate control searches over.
Forward transforms are recomputed per rate-control step instead of kept for
every tile: that bounds memory by the tile size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import struct

from . import container as ct
from . import entropy, predictive, quantize
from .pipeline import (band_multipliers, finish_tile, map_threads, pixel_classes, planes,
                       reconstruct_lossy_plane)
from .transform import dwt53_forward, dwt97_forward, rct_forward


@dataclass
class Source:
    """The image to code: a ``(frames, rows, cols, channels)`` view of the input."""
    image: np.ndarray
    header: ct.Header
    table: np.ndarray | None = None     # lossless: code ranks in this value table
    cmap: np.ndarray | None = None      # lossy hybrid: importance class per block
    threads: int = 1

    def samples(self, f: int, t: int) -> np.ndarray:
        y0, y1, x0, x1 = self.header.tile_box(t)
        return self.image[f, y0:y1, x0:x1, :].astype(np.int32)

    def coded_samples(self, f: int, t: int) -> np.ndarray:
        """What the reversible path codes: samples, ranks, or their RCT."""
        x = self.samples(f, t)
        if self.table is not None:
            x = np.searchsorted(self.table, x).astype(np.int32)
        return rct_forward(x) if self.header.colour == 1 else x

    def roi(self, f: int, t: int) -> np.ndarray:
        return pixel_classes(self.cmap[f], self.header.roi_block, self.header.tile_box(t))


CODER_WAVELET, CODER_PREDICTIVE, CODER_PREDICTIVE_COLOUR = 0, 1, 2


def predictive_segments(plane: np.ndarray, k: int, lo: int, hi: int, levels: int) -> list[bytes]:
    """A plane coded by the predictive coder: tag, range, data; finer resolutions empty."""
    head = struct.pack("<Bii", CODER_PREDICTIVE, lo, hi)
    return [head + predictive.encode_plane(plane, k, lo, hi)] + [b""] * levels


def wavelet_segments(plane: np.ndarray, levels: int) -> list[bytes]:
    segs = entropy.encode_decomposition(dwt53_forward(plane, levels), levels)
    segs[0] = bytes([CODER_WAVELET]) + segs[0]
    return segs


SAMPLE_ABOVE = 1 << 16  # planes larger than this choose their coder on a sample


def _smaller_coding(plane: np.ndarray, levels: int) -> list[bytes]:
    """Lossless plane: the 5/3 wavelet or the predictive coder, whichever is smaller.

    Small planes are coded both ways. Large ones are judged on their central
    quarter (half the height and width: a contiguous block, since seams between
    sampled strips would penalise the wavelet) and then coded once.
    """
    lo, hi = int(plane.min()), int(plane.max())
    if plane.size <= SAMPLE_ABOVE:
        wav = wavelet_segments(plane, levels)
        pred = predictive_segments(plane, 0, lo, hi, levels)
        return pred if sum(map(len, pred)) < sum(map(len, wav)) else wav
    r, c = plane.shape
    sample = np.ascontiguousarray(plane[r // 4:r // 4 + (r + 1) // 2, c // 4:c // 4 + (c + 1) // 2])
    lv = min(levels, max(0, max(sample.shape).bit_length() - 4))
    wav_cost = sum(map(len, wavelet_segments(sample, lv)))
    pred_cost = len(predictive.encode_plane(sample, 0, lo, hi))
    if pred_cost < wav_cost:
        return predictive_segments(plane, 0, lo, hi, levels)
    return wavelet_segments(plane, levels)


def encode_reversible(src: Source) -> list[bytes]:
    """Lossless: each plane by the 5/3 wavelet or the predictive coder, whichever
    is smaller. Near-lossless: the predictive coder, residuals quantised in the loop."""
    h = src.header

    def one(ft: tuple[int, int]) -> list[bytes]:
        x = src.coded_samples(*ft)
        segs: list[bytes] = []
        if h.mode == 1 and h.channels == 3:
            # R and B coded against the reconstructed G where that is cheaper
            rgb = predictive.encode_planes([x[..., c] for c in range(3)], h.max_error, h.vmin, h.vmax, ref=1)
            for seg in rgb:
                segs.extend([bytes([CODER_PREDICTIVE_COLOUR]) + seg] + [b""] * h.levels)
            return segs
        for c in range(h.channels):
            plane = x[..., c]
            if h.mode == 1:
                segs.extend(predictive_segments(plane, h.max_error, h.vmin, h.vmax, h.levels))
                continue
            segs.extend(_smaller_coding(plane, h.levels))
        return segs

    return [s for segs in map_threads(one, planes(h), src.threads) for s in segs]


class LossyCoder:
    """The 9/7 layer (plus the hybrid ROI layer) of a source, at any step."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.h = src.header

    def _tile(self, f: int, t: int, steps: list) -> tuple:
        """Quantised bands per channel, step multipliers and ROI pixels of one tile."""
        h = self.h
        x = self.src.samples(f, t)
        if h.colour == 1:
            x = rct_forward(x)
        mult = roi = None
        if self.src.cmap is not None:
            classes = self.src.roi(f, t)
            mult = band_multipliers(classes, h.levels, h.class_mult)
            roi = classes >= 1
        q = [quantize.quantise(dwt97_forward(x[..., c], h.levels), steps, h.levels, mult)
             for c in range(h.channels)]
        return q, mult, roi

    def _base(self, q: list, steps: list, mult) -> np.ndarray:
        """The lossy layer exactly as the decoder rebuilds it: int32 (rows, cols, Ch)."""
        planes_ = [reconstruct_lossy_plane(qc, self.h, steps, mult) for qc in q]
        return finish_tile(np.stack(planes_, -1), self.h)

    def encode(self, steps: list) -> list[bytes]:
        h = self.h
        e = h.roi_max_error

        def one(ft: tuple[int, int]) -> list[bytes]:
            f, t = ft
            q, mult, roi = self._tile(f, t, steps)
            if roi is not None:
                base, x = self._base(q, steps, mult), self.src.samples(f, t)
            segs: list[bytes] = []
            for c in range(h.channels):
                segs.extend(entropy.encode_decomposition(q[c], h.levels))
                if roi is not None:
                    # ROI samples coded predictively from the original, the decoded
                    # base standing in for every pixel outside the ROI
                    segs.append(predictive.encode_plane_masked(x[..., c], roi, base[..., c], e, h.vmin, h.vmax))
            return segs

        return [s for segs in map_threads(one, planes(h), self.src.threads) for s in segs]

    def squared_error(self, steps: list) -> float:
        """Sum of squared errors of the decoded image at these steps (no entropy coding).

        ROI samples count as the mean square of an in-loop quantiser with step
        2e+1, e(e+1)/3 (0 when the ROI is exact)."""
        h = self.h
        e = h.roi_max_error

        def one(ft: tuple[int, int]) -> float:
            f, t = ft
            q, mult, roi = self._tile(f, t, steps)
            d = (self.src.samples(f, t) - self._base(q, steps, mult)).astype(np.float64)
            if roi is None:
                return float(np.dot(d.ravel(), d.ravel()))
            outside = d[~roi]
            return float(np.dot(outside.ravel(), outside.ravel())) + roi.sum() * h.channels * e * (e + 1) / 3

        return sum(map_threads(one, planes(h), self.src.threads))
