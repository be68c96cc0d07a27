"""The importance map a hybrid stream stores, from the ``roi`` given to ``encode``.

``roi="auto"``: the automatic map of every frame (:func:`~codec_core.roi.classify.
auto_importance_map`, ``ROI_BLOCK`` pixels a class). A boolean mask: rasterised to
blocks of ``ROI_USER_BLOCK`` pixels, a block in the ROI (class DETAIL) where any of
its pixels is. Either way the decoder needs only the map, which the stream carries.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..format import Importance, to_fyxc
from ..pipeline import ROI_USER_BLOCK


def importance_map(roi: Any, pixels: np.ndarray, bits_stored: int, axes: str,
                   shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """The class map (frames, block rows, block cols) of ``roi`` and its block size.

    ``pixels`` is the image as coded, (frames, rows, cols, channels); ``axes`` and
    ``shape`` are the layout and shape of the caller's array, which a mask must
    broadcast to (a (rows, cols) mask covers every colour sample)."""
    if isinstance(roi, str):  # "auto" (the options allow no other string)
        return _automatic(pixels, bits_stored)
    return _rasterised(np.asarray(roi), pixels.shape, axes, shape), ROI_USER_BLOCK


def _automatic(pixels: np.ndarray, bits_stored: int) -> tuple[np.ndarray, int]:
    from .classify import ROI_BLOCK, auto_importance_map

    frames, rows, cols, channels = pixels.shape
    maps = []
    for frame in pixels:
        frame = frame[..., 0] if channels == 1 else frame
        maps.append(np.asarray(auto_importance_map(frame, bits_stored=bits_stored), np.uint8))
    block = int(ROI_BLOCK)
    want = (-(-rows // block), -(-cols // block))
    cmap = np.stack(maps)
    if cmap.shape[1:] != want or cmap.max(initial=0) > max(Importance):
        raise RuntimeError(f"automatic ROI returned a map of shape {cmap.shape[1:]}, expected {want}")
    return cmap, block


def _rasterised(mask: np.ndarray, coded: tuple[int, ...], axes: str, shape: tuple[int, ...]) -> np.ndarray:
    frames, rows, cols, _ = coded
    full_shape = shape if len(shape) > 1 else (1,) + tuple(shape)
    if axes.endswith("C") and mask.ndim == len(shape) - 1:
        mask = mask[..., None]  # a (rows, cols) mask covers all colour samples
    try:
        full = np.broadcast_to(mask, full_shape)
    except ValueError:
        raise ValueError(f"roi mask of shape {mask.shape} does not broadcast to the image shape "
                         f"{tuple(shape)}") from None
    m = to_fyxc(full, axes).any(axis=-1)
    b = ROI_USER_BLOCK
    by, bx = -(-rows // b), -(-cols // b)
    padded = np.zeros((frames, by * b, bx * b), bool)
    padded[:, :rows, :cols] = m
    blocks = padded.reshape(frames, by, b, bx, b).any(axis=(2, 4))
    return np.where(blocks, Importance.DETAIL, Importance.BACKGROUND).astype(np.uint8)
