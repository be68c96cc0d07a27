"""What the classifier sees: one frame reduced to cell statistics, and the CNN's features.

The image is reduced to one channel (colour: the mean of the channels), padded by
edge replication to a multiple of ``CLASS_BLOCK`` and summarised per ``CELL`` ×
``CELL`` cell by the mean and the standard deviation, normalised by the image itself
(:func:`cell_features`), so that bit depth, sign and window do not matter. The CNN
(``roi_features.onnx``) turns these channels into a feature vector per block.
Training (``models/training/train.py``) computes its inputs with these same
functions, so that both see the same input.
"""
from __future__ import annotations

import numpy as np

from ..format import DTYPES, value_limits
from .model_files import FEATURES_FILE, cached, onnx_session

#: Side of the cell the CNN sees as one input pixel (CLASS_BLOCK / CELL cells per block).
CELL: int = 4
#: Block the classifier labels (CNN features + SVM): 16 × 16 pixels.
CLASS_BLOCK: int = 16
#: Channels of the CNN input computed by :func:`cell_features`.
FEATURE_CHANNELS: int = 3


def as_luma(image: np.ndarray, bits_stored: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate ``image``; return a 2-D float32 luma image and a colour spread (or None)."""
    arr = np.asarray(image)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.name not in DTYPES:
        raise ValueError(f"image dtype {arr.dtype} is not supported; use uint8, int8, uint16 or int16")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    colour = arr.ndim == 3 and arr.shape[-1] == 3
    if not (arr.ndim == 2 or colour):
        raise ValueError(f"image of shape {arr.shape} is not supported: pass one frame as "
                         "(rows, cols) or (rows, cols, 3)")
    if bits_stored is not None:
        _check_bits(arr, bits_stored)
    if colour:
        chans = arr.astype(np.float32)
        luma = chans.mean(axis=-1)
        spread = chans.max(axis=-1) - chans.min(axis=-1)
        return luma, spread
    return arr.astype(np.float32), None


def _check_bits(arr: np.ndarray, bits_stored: int) -> None:
    bits = int(bits_stored)
    limit = arr.dtype.itemsize * 8
    if not 1 <= bits <= limit:
        raise ValueError(f"bits_stored={bits_stored} is outside 1..{limit} for dtype {arr.dtype}")
    if arr.size:
        lo, hi = value_limits(bits, arr.dtype.kind == "i")
        if int(arr.min()) < lo or int(arr.max()) > hi:
            raise ValueError(f"image values lie outside the {bits} bits stored "
                             f"({lo}..{hi}) of dtype {arr.dtype}")


def pad_to_blocks(x: np.ndarray, block: int = CLASS_BLOCK) -> np.ndarray:
    """``x`` padded by edge replication to a multiple of ``block`` in both axes."""
    rows, cols = x.shape
    pr, pc = (-rows) % block, (-cols) % block
    if pr or pc:
        x = np.pad(x, ((0, pr), (0, pc)), mode="edge")
    return x


def cell_features(luma: np.ndarray) -> np.ndarray:
    """CNN input (1, FEATURE_CHANNELS, rows/CELL, cols/CELL) from a 2-D float image.

    Channel 0: cell mean, robustly normalised to the image's 1st–99th percentile.
    Channel 1: log of the cell standard deviation relative to the same range.
    Channel 2: log of the cell standard deviation relative to the image's own noise
    floor (10th percentile of the cell standard deviations): air is at the floor
    whatever the modality, bit depth or window; tissue texture lies above it.
    """
    return features_from_stats(*cell_stats(luma))


def cell_stats(luma: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Mean and standard deviation per CELL × CELL cell (image padded to CLASS_BLOCK),
    and the robust level range (1st percentile, 99th − 1st) of the cell means."""
    x = pad_to_blocks(np.asarray(luma, dtype=np.float32))
    rows, cols = x.shape
    cells = x.reshape(rows // CELL, CELL, cols // CELL, CELL)
    mean = cells.mean(axis=(1, 3), dtype=np.float32)
    var = (cells * cells).mean(axis=(1, 3), dtype=np.float32) - mean * mean
    std = np.sqrt(np.maximum(var, 0.0))
    flat = mean.ravel()
    if flat.size > 65536:  # percentiles of a regular subsample: same result, far cheaper
        flat = flat[:: flat.size // 65536]
    lo, hi = np.percentile(flat, [1.0, 99.0])
    span = float(hi - lo)
    if not np.isfinite(span) or span <= 0:
        span = float(flat.max() - flat.min()) or 1.0
    return mean, std, float(lo), span


def features_from_stats(mean: np.ndarray, std: np.ndarray, lo: float, span: float) -> np.ndarray:
    """:func:`cell_features` from the statistics :func:`cell_stats` returns."""
    norm_mean = np.clip((mean - lo) / span, -1.0, 2.0)
    norm_std = np.log10(std / span + 1e-3) / 3.0 + 1.0   # 0 for flat, 1 at std == span
    sflat = std.ravel()
    if sflat.size > 65536:
        sflat = sflat[:: sflat.size // 65536]
    eps = 1e-3 * span
    floor = float(np.percentile(sflat, 10.0)) + eps
    rel_std = np.clip(np.log10((std + eps) / floor) / 2.0, -1.0, 2.0)
    out = np.stack([norm_mean, norm_std, rel_std])[np.newaxis].astype(np.float32)
    return out


def block_features(luma: np.ndarray) -> np.ndarray:
    """CNN features per block of a 2-D float image: (blocks_r * blocks_c, n_features)."""
    return run_cnn(cell_features(luma))


def run_cnn(cells: np.ndarray) -> np.ndarray:
    """The CNN's features per block, (blocks, n_features), from :func:`cell_features`."""
    session = cached(FEATURES_FILE, onnx_session)
    (feats,) = session.run(None, {session.get_inputs()[0].name: cells})
    return feats[0].reshape(feats.shape[1], -1).T


def block_level(cells: np.ndarray) -> np.ndarray:
    """Mean normalised level per block (channel 0 of cell_features averaged per block)."""
    m = cells[0, 0]
    k = CLASS_BLOCK // CELL
    return m.reshape(m.shape[0] // k, k, m.shape[1] // k, k).mean(axis=(1, 3))
