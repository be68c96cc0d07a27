"""Pixel-level tightening of the automatic map: the air outside the patient.

The classifier's map (:func:`~codec_core.roi.classify.auto_importance_map`) is safe
by construction (where unsure, body), so it keeps, as BODY, the air inside a CT
reconstruction circle, beside the patient and under the table, wherever a cell
mixes air with anything else. :func:`carve_exterior` takes that air back, pixel by
pixel, with one rule that needs no model:

1. the level and noise of the air are measured on the map's own BACKGROUND pixels
   (median and MAD, the image's most common background value — scanner padding —
   left out), so nothing is assumed about the modality;
2. a pixel is *air-like* when it sits within ``AIR_SIGMAS`` robust standard
   deviations of that level, or is the padding value; isolated air-like pixels are
   dropped (an opening), so noise inside tissue never qualifies;
3. ROI pixels that are air-like **and connected to the map's background** through
   air-like pixels become BACKGROUND (DETAIL too: the edge of a reconstruction
   circle is "detail" to the classifier); air enclosed by tissue (lungs, bowel gas,
   sinuses) does not touch it and stays BODY;
4. a margin of ``MARGIN`` pixels around what is left of the ROI stays BODY (the
   partial-volume rim of the skin).

It runs only on single-channel frames with at least ``MIN_BACKGROUND`` of their
pixels in the background (else there is no air to measure), whose values span more
than a byte, and whose padding, if any, sits at an end of the value range (scanner
padding does: CT -2000 or -1024, MR and CR 0; a most common background value inside
the range means the background is not air — palette indices, ultrasound). Measured
in benchmarks/results/roi.md; its constants were chosen on the training images of
models/training/corpus.py, not the held-out ones.
"""
from __future__ import annotations

import numpy as np

from ..format import Importance

#: Air-like: within this many robust standard deviations of the air's level.
AIR_SIGMAS = 4.0
#: Air-like also within this share of the image's 1st-99th percentile range of the air's
#: level (the air inside a CT's field of view is noisier than in the map's corners).
RANGE_SHARE = 0.02
#: Pixels kept as BODY around the ROI left after carving.
MARGIN = 4
#: The share of a frame the map must call background before its air is measured.
MIN_BACKGROUND = 0.02
#: Padding: the background's most common value, when it holds this share of it.
PADDING_SHARE = 0.05
#: Frames whose values span no more than this are left alone (8-bit data: ultrasound,
#: secondary captures, whose dark anatomy sits at the level of their background).
BYTE_RANGE = 255


def _air_level(values: np.ndarray) -> tuple[float, float, int | None]:
    """Median, robust sigma and the padding value (or None) of background samples."""
    uniq, counts = np.unique(values, return_counts=True)
    top = int(np.argmax(counts))
    padding = int(uniq[top]) if counts[top] >= PADDING_SHARE * values.size else None
    rest = values[values != padding] if padding is not None else values
    if rest.size < 16:
        rest = values
    med = float(np.median(rest))
    sigma = 1.4826 * float(np.median(np.abs(rest - med)))
    return med, max(sigma, 0.5), padding


def _square(mask: np.ndarray, size: int, filter1d) -> np.ndarray:
    """Erosion (minimum_filter1d) or dilation (maximum_filter1d) of a boolean mask by a
    square, as two 1-D passes on bytes: ~10 x faster than scipy's binary morphology
    with a square structure (which the 100 ms budget of a 512 x 512 map needs)."""
    x = filter1d(mask.view(np.uint8), size, axis=0)
    return filter1d(x, size, axis=1).view(bool)


def _near(frame: np.ndarray, value: float, within: float) -> np.ndarray:
    """``|frame - value| <= within`` (float64, exact for the integer samples), in bands of
    rows: a float64 copy of a 16-bit frame was 4x its size, the hybrid encode's peak."""
    out = np.empty(frame.shape, bool)
    for y in range(0, frame.shape[0], 64):
        d = frame[y:y + 64].astype(np.float64)
        d -= value
        np.less_equal(np.abs(d, out=d), within, out=out[y:y + 64])
    return out


def carve_exterior(classes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """``classes`` (rows, cols; the map per pixel) with the exterior air of ``frame``
    (rows, cols, single channel) made BACKGROUND. Returns a new array."""
    from scipy import ndimage

    out = np.array(classes, np.uint8)
    background = out == Importance.BACKGROUND
    if frame.ndim != 2 or background.mean() < MIN_BACKGROUND or background.all():
        return out
    if int(frame.max()) - int(frame.min()) <= BYTE_RANGE:
        return out
    med, sigma, padding = _air_level(frame[background])
    if padding is not None and padding not in (int(frame.min()), int(frame.max())):
        return out
    lo, hi = np.percentile(frame, [1, 99])
    air = _near(frame, med, max(AIR_SIGMAS * sigma, RANGE_SHARE * float(hi - lo)))
    if padding is not None:
        air |= frame == padding
    air = _square(_square(air, 3, ndimage.minimum_filter1d), 3, ndimage.maximum_filter1d)  # opening
    labels, count = ndimage.label(air | background)
    touching = np.zeros(count + 1, bool)
    touching[np.unique(labels[background])] = True
    touching[0] = False
    exterior = touching[labels] & air
    carved = exterior & (out != Importance.BACKGROUND)
    if not carved.any():
        return out
    out[carved] = Importance.BACKGROUND
    roi = out != Importance.BACKGROUND
    rim = _square(roi, 2 * MARGIN + 1, ndimage.maximum_filter1d) & ~roi & carved
    out[rim] = Importance.BODY
    return out
