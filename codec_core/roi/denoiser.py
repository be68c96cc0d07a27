"""The bundled CNN denoiser (``denoiser.onnx``): ``encode(..., preprocess="denoise")``.

A lossy step before coding; the stream records it (``info()["preprocess"]``).
onnxruntime is imported only when the denoiser first runs.
"""
from __future__ import annotations

import numpy as np

from .features import as_luma
from .model_files import DENOISER_FILE, cached, onnx_session


def denoise(image: np.ndarray, *, bits_stored: int | None = None) -> np.ndarray:
    """Run the bundled CNN denoiser; return an array of the same shape and dtype.

    The result stays within the input's value range (and within ``bits_stored``).
    Colour images are denoised channel by channel. This is a lossy step: the codec
    records it in the stream.
    """
    arr = np.asarray(image)
    as_luma(arr, bits_stored)  # validation only
    if arr.ndim == 1:
        return denoise(arr[np.newaxis, :], bits_stored=bits_stored)[0]
    if arr.ndim == 3:
        return np.stack([denoise(arr[..., c], bits_stored=bits_stored) for c in range(3)], axis=-1)
    if arr.size == 0 or arr.min() == arr.max():
        return arr.copy()
    session = cached(DENOISER_FILE, onnx_session)
    x = arr.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    pad_r, pad_c = max(0, 8 - x.shape[0]), max(0, 8 - x.shape[1])
    xin = np.pad((x - lo) / span, ((0, pad_r), (0, pad_c)), mode="reflect" if min(x.shape) > 1 else "edge")
    (y,) = session.run(None, {session.get_inputs()[0].name: xin[np.newaxis, np.newaxis]})
    y = y[0, 0, : x.shape[0], : x.shape[1]] * span + lo
    return np.clip(np.rint(y), lo, hi).astype(arr.dtype)
