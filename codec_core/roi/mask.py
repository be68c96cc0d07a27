"""The importance map a hybrid stream stores, from the ``roi`` given to ``encode``.

``roi="auto"``: the automatic map of every frame (:func:`~codec_core.roi.classify.
auto_importance_map`, ``ROI_BLOCK`` pixels a class). A boolean mask (class DETAIL
where set) or a label image (the classes): rasterised to blocks (the region-layer
hybrid keeps single pixels), a block taking the highest class of its pixels. Either
way the decoder needs only the map, which the stream carries.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..format import Importance, to_fyxc
from ..pipeline import ROI_USER_BLOCK


def importance_map(roi: Any, pixels: np.ndarray, bits_stored: int, axes: str,
                   shape: tuple[int, ...], block: int = ROI_USER_BLOCK) -> tuple[np.ndarray, int]:
    """The class map (frames, block rows, block cols) of ``roi`` and its block size.

    ``pixels`` is the image as coded, (frames, rows, cols, channels); ``axes`` and
    ``shape`` are the layout and shape of the caller's array, which a mask must
    broadcast to (a (rows, cols) mask covers every colour sample). A boolean mask
    is class DETAIL where set; a label image holds the classes themselves (0
    background, 1 body, 2 detail). A block takes the highest class of its pixels
    (``block`` pixels a side for masks and labels; the automatic map has its own),
    and a colour pixel the highest class of its samples."""
    if isinstance(roi, str):  # "auto" (the options allow no other string)
        return _automatic(pixels, bits_stored)
    if getattr(roi, "Modality", None) == "SEG":  # every segment of a DICOM SEG is detail
        from .seg import mask_from_seg

        try:
            roi = mask_from_seg(roi, shape)
        except ValueError as e:
            raise ValueError(f"roi: {e}") from None
    return _rasterised(_as_labels(np.asarray(roi)), pixels.shape, axes, shape, block), block


def _as_labels(roi: np.ndarray) -> np.ndarray:
    """Importance classes of a boolean mask or a label image (ValueError naming ``roi``
    for a label that is not a class)."""
    if roi.dtype == np.bool_:
        return np.where(roi, np.uint8(Importance.DETAIL), np.uint8(Importance.BACKGROUND))
    lo, hi = (int(roi.min()), int(roi.max())) if roi.size else (0, 0)
    if lo < 0 or hi > max(Importance):
        bad = lo if lo < 0 else hi
        raise ValueError(f"roi label image holds the label {bad}: allowed 0 (background), 1 (body), 2 (detail)")
    return roi.astype(np.uint8)


def _automatic(pixels: np.ndarray, bits_stored: int) -> tuple[np.ndarray, int]:
    """The classifier's map of every frame, per pixel, its exterior air carved out
    (:func:`~codec_core.roi.exterior.carve_exterior`)."""
    from ..pipeline import pixel_classes
    from .classify import ROI_BLOCK, auto_importance_map
    from .exterior import carve_exterior

    frames, rows, cols, channels = pixels.shape
    block = int(ROI_BLOCK)
    want = (-(-rows // block), -(-cols // block))
    maps = []
    for frame in pixels:
        frame = frame[..., 0] if channels == 1 else frame
        cmap = np.asarray(auto_importance_map(frame, bits_stored=bits_stored), np.uint8)
        if cmap.shape != want or cmap.max(initial=0) > max(Importance):
            raise RuntimeError(f"automatic ROI returned a map of shape {cmap.shape}, expected {want}")
        maps.append(carve_exterior(pixel_classes(cmap, block, (0, rows, 0, cols)), frame))
    return np.stack(maps), 1


def _rasterised(mask: np.ndarray, coded: tuple[int, ...], axes: str, shape: tuple[int, ...],
                block: int) -> np.ndarray:
    frames, rows, cols, _ = coded
    full_shape = shape if len(shape) > 1 else (1,) + tuple(shape)
    if axes.endswith("C") and mask.ndim == len(shape) - 1:
        mask = mask[..., None]  # a (rows, cols) mask covers all colour samples
    try:
        full = np.broadcast_to(mask, full_shape)
    except ValueError:
        raise ValueError(f"roi mask of shape {mask.shape} does not broadcast to the image shape "
                         f"{tuple(shape)}") from None
    m = to_fyxc(full, axes).max(axis=-1)
    b = block
    if b == 1:
        return np.ascontiguousarray(m, np.uint8)
    by, bx = -(-rows // b), -(-cols // b)
    padded = np.zeros((frames, by * b, bx * b), np.uint8)
    padded[:, :rows, :cols] = m
    return padded.reshape(frames, by, b, bx, b).max(axis=(2, 4))
