"""Region-of-interest masks from DICOM Segmentation objects (``roi=`` a SEG dataset).

The plugins and the command line turn a SEG into the boolean mask the codec takes.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def mask_from_seg(seg_dataset: Any, image_shape: tuple[int, ...]) -> np.ndarray:
    """Boolean ROI mask from a DICOM Segmentation (pydicom Dataset).

    ``image_shape`` is the shape of the image the mask is for: (rows, cols),
    (rows, cols, 3), (frames, rows, cols) or (frames, rows, cols, 3). All segments
    are merged. A SEG with one frame per image frame maps frame to frame; a SEG whose
    frames all belong to a single-frame image is merged into one mask. The result is
    (rows, cols) or (frames, rows, cols). Raises ValueError naming both shapes when
    the sizes or frame counts do not match, or when the dataset is not a SEG.
    """
    if getattr(seg_dataset, "Modality", None) != "SEG" or "PixelData" not in seg_dataset:
        raise ValueError("mask_from_seg needs a DICOM Segmentation dataset (Modality SEG with pixel data)")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) >= 3 and shape[-1] == 3 and len(shape) in (3, 4):
        shape = shape[:-1]
    if len(shape) not in (2, 3):
        raise ValueError(f"image shape {tuple(image_shape)} is not (rows, cols) or (frames, rows, cols)")
    rows, cols = int(seg_dataset.Rows), int(seg_dataset.Columns)
    pixels = np.asarray(seg_dataset.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    seg_frames = pixels.shape[0]
    if (rows, cols) != shape[-2:]:
        raise ValueError(f"DICOM SEG frames are {rows}x{cols} ({seg_frames} frames) but the image "
                         f"shape is {tuple(image_shape)}")
    fractional = getattr(seg_dataset, "SegmentationType", "BINARY") == "FRACTIONAL"
    present = pixels > (0 if not fractional else int(getattr(seg_dataset, "MaximumFractionalValue", 255)) // 2)
    if len(shape) == 2:
        return np.asarray(present.any(axis=0))
    image_frames = shape[0]
    # Map each SEG frame to an image frame through the Referenced Frame Number when
    # present (per-frame functional groups), else by order.
    frame_index = _referenced_frames(seg_dataset, seg_frames)
    if frame_index is None:
        if seg_frames == image_frames:
            return present.copy()
        segments = len(getattr(seg_dataset, "SegmentSequence", [])) or 1
        if seg_frames == image_frames * segments:
            return np.asarray(present.reshape(segments, image_frames, rows, cols).any(axis=0))
        raise ValueError(f"DICOM SEG has {seg_frames} frames of {rows}x{cols} that cannot be matched to "
                         f"the image shape {tuple(image_shape)} ({image_frames} frames)")
    out = np.zeros((image_frames, rows, cols), dtype=bool)
    for seg_i, img_i in enumerate(frame_index):
        if not 0 <= img_i < image_frames:
            raise ValueError(f"DICOM SEG frame {seg_i + 1} refers to image frame {img_i + 1} but the image "
                             f"shape {tuple(image_shape)} has {image_frames} frames")
        out[img_i] |= present[seg_i]
    return out


def _referenced_frames(ds: Any, seg_frames: int) -> list[int] | None:
    """0-based image frame per SEG frame from ReferencedFrameNumber, or None if absent."""
    groups = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if not groups or len(groups) != seg_frames:
        return None
    out = []
    for item in groups:
        try:
            ref = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber
        except (AttributeError, IndexError):
            return None
        if isinstance(ref, (list, tuple)) or hasattr(ref, "__len__") and not isinstance(ref, str):
            ref = ref[0]
        out.append(int(ref) - 1)
    return out
