"""Image-quality and size metrics, exactly as defined in docs/METRICS.md.

* ``bpp`` = 8 x compressed bytes / (rows x cols x frames), all channels together.
* ``compression_ratio`` (CR) = raw stored bytes (itemsize x elements) / compressed bytes.
* ``psnr`` = 10 log10(peak^2 / MSE) with peak = max - min of the *original* image;
  ``psnr_nominal`` uses peak = 2**bits_stored - 1 (inflated on images that use only
  part of their bit range: always report max abs error beside it).
* ``ssim``: Gaussian window sigma = 1.5 (truncated at 3.5 sigma: 11 taps),
  K1 = 0.01, K2 = 0.03, data_range = max - min of the original, population
  (not sample) covariance.  This is the Wang et al. SSIM as computed by
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=...)``: borders are handled by
  half-sample symmetric reflection and the mean is taken over the interior
  (5 pixels cropped from each side), as skimage does.  With ``mask`` the mean is
  taken over the mask pixels instead (ROI / non-ROI SSIM), restricted to the
  interior when that leaves any pixels.  Colour images are averaged over channels,
  multi-frame images over frames.

Axes follow the codec contract (:func:`codec_core.format.guess_axes`): 2-D is (rows,
cols); 3-D with a last axis of 3 is colour (rows, cols, 3); other 3-D is (frames,
rows, cols); 4-D is (frames, rows, cols, 3); ``axes="YX" | "YXC" | "ZYX" | "ZYXC"``
overrides the guess. 1-D arrays are treated as one row.

Only numpy is used (no scipy), and nothing heavy happens at import time.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .format import AXES, guess_axes

__all__ = [
    "mse",
    "max_abs_error",
    "psnr",
    "psnr_nominal",
    "ssim",
    "ssim_map",
    "bpp",
    "compression_ratio",
    "cr",
    "image_geometry",
    "compare",
]

_SIGMA = 1.5
_TRUNCATE = 3.5
_K1 = 0.01
_K2 = 0.03


# --------------------------------------------------------------------------- shapes
def image_geometry(shape_or_array: Any, axes: str | None = None) -> tuple[int, int, int, int]:
    """Return (frames, rows, cols, channels) for an array or a shape."""
    shape = tuple(int(s) for s in getattr(shape_or_array, "shape", shape_or_array))
    if axes is None:
        axes = guess_axes(shape)
    axes = axes.upper()
    if axes not in AXES or len(axes) != len(shape):
        raise ValueError(
            f"axes must be one of 'YX', 'YXC', 'ZYX', 'ZYXC' matching the array's "
            f"{len(shape)} dimensions, got {axes!r} for shape {shape}"
        )
    dims = dict(zip(axes, shape, strict=True))
    return dims.get("Z", 1), dims.get("Y", 1), dims.get("X", 1), dims.get("C", 1)


def _as_fyxc(a: np.ndarray, axes: str | None) -> np.ndarray:
    f, r, c, ch = image_geometry(a.shape, axes)
    return a.reshape(f, r, c, ch)


def _check_pair(original: Any, decoded: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(original)
    b = np.asarray(decoded)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: original {a.shape}, decoded {b.shape}")
    if a.size == 0:
        raise ValueError("empty arrays have no quality metrics")
    return a, b


def _range(a: np.ndarray) -> float:
    """max - min of the original (1 for a constant image, so the metrics stay finite)."""
    span = float(a.max()) - float(a.min())
    return span if span > 0 else 1.0


# ---------------------------------------------------------------------- error metrics
def mse(original: Any, decoded: Any) -> float:
    """Mean squared error over all samples (all channels and frames)."""
    a, b = _check_pair(original, decoded)
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def max_abs_error(original: Any, decoded: Any) -> int | float:
    """Largest absolute sample difference (an int for integer images)."""
    a, b = _check_pair(original, decoded)
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        return int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64))))
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def psnr(original: Any, decoded: Any, peak: float | None = None) -> float:
    """PSNR in dB with peak = max - min of the original (the primary figure).

    Returns ``inf`` when the images are identical.
    """
    a, b = _check_pair(original, decoded)
    if peak is None:
        peak = _range(a)
    m = mse(a, b)
    if m == 0.0:
        return math.inf
    return 10.0 * math.log10(float(peak) ** 2 / m)


def psnr_nominal(original: Any, decoded: Any, bits_stored: int | None = None) -> float:
    """PSNR in dB with the nominal peak 2**bits_stored - 1 (default: the dtype's bits).

    Inflated on images that use only part of their range; never quote it alone.
    """
    a = np.asarray(original)
    if bits_stored is None:
        bits_stored = a.dtype.itemsize * 8
    if not 1 <= int(bits_stored) <= 32:
        raise ValueError(f"bits_stored must be 1..32, got {bits_stored}")
    return psnr(a, decoded, peak=float(2 ** int(bits_stored) - 1))


# ------------------------------------------------------------------------------- SSIM
def _gauss_kernel(sigma: float = _SIGMA, truncate: float = _TRUNCATE) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _filter_axis(x: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    """Correlate ``x`` with ``w`` along ``axis``; half-sample symmetric borders."""
    r = (len(w) - 1) // 2
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = np.pad(x, pad, mode="symmetric")
    out = np.zeros_like(x)
    sl = [slice(None)] * x.ndim
    for k, wk in enumerate(w):
        sl[axis] = slice(k, k + n)
        out += wk * xp[tuple(sl)]
    return out


def _gfilter(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _filter_axis(_filter_axis(x, w, 0), w, 1)


def _ssim_map_2d(x: np.ndarray, y: np.ndarray, data_range: float, w: np.ndarray) -> np.ndarray:
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    ux = _gfilter(x, w)
    uy = _gfilter(y, w)
    vx = _gfilter(x * x, w) - ux * ux
    vy = _gfilter(y * y, w) - uy * uy
    vxy = _gfilter(x * y, w) - ux * uy
    num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def ssim_map(
    original: Any,
    decoded: Any,
    data_range: float | None = None,
    axes: str | None = None,
    sigma: float = _SIGMA,
) -> np.ndarray:
    """Per-pixel SSIM, shape (frames, rows, cols), already averaged over channels."""
    a, b = _check_pair(original, decoded)
    if data_range is None:
        data_range = _range(a)
    fa = _as_fyxc(a, axes)
    fb = _as_fyxc(b, axes)
    w = _gauss_kernel(sigma)
    nf, nr, nc, nch = fa.shape
    out = np.zeros((nf, nr, nc), dtype=np.float64)
    for f in range(nf):
        for ch in range(nch):
            x = fa[f, :, :, ch].astype(np.float64)
            y = fb[f, :, :, ch].astype(np.float64)
            out[f] += _ssim_map_2d(x, y, float(data_range), w)
    if nch > 1:
        out /= nch
    return out


def ssim(
    original: Any,
    decoded: Any,
    data_range: float | None = None,
    mask: Any = None,
    axes: str | None = None,
    sigma: float = _SIGMA,
) -> float:
    """Mean SSIM (Gaussian window sigma 1.5, data_range = max - min of the original).

    ``mask`` (boolean, broadcastable to (rows, cols), (frames, rows, cols) or the
    image's own shape) restricts the mean to the masked pixels; pass ``~mask`` for
    the non-ROI figure.  Returns ``nan`` if the mask selects nothing.
    """
    a, _ = _check_pair(original, decoded)
    smap = ssim_map(original, decoded, data_range=data_range, axes=axes, sigma=sigma)
    nf, nr, nc = smap.shape
    pad = (len(_gauss_kernel(sigma)) - 1) // 2
    interior = np.zeros((nr, nc), dtype=bool)
    if nr > 2 * pad and nc > 2 * pad:
        interior[pad : nr - pad, pad : nc - pad] = True
    else:
        interior[:] = True

    if mask is None:
        return float(np.mean([smap[f][interior].mean() for f in range(nf)]))

    m: Any = np.asarray(mask, dtype=bool)
    _, _, _, nch = image_geometry(a.shape, axes)
    if nch > 1 and m.ndim == a.ndim and m.shape[-1] in (1, nch):
        m = m.any(axis=-1)  # a per-sample colour mask selects the pixel
    try:
        m = np.broadcast_to(m, (nf, nr, nc))
    except ValueError:
        raise ValueError(
            f"mask of shape {np.shape(mask)} does not fit image of shape {a.shape}"
        ) from None
    vals = []
    for f in range(nf):
        sel = m[f] & interior
        if not sel.any():
            sel = m[f]
        if sel.any():
            vals.append(float(smap[f][sel].mean()))
    return float(np.mean(vals)) if vals else math.nan


# ----------------------------------------------------------------------- size metrics
def bpp(nbytes: int | bytes, shape_or_array: Any, axes: str | None = None) -> float:
    """Bits per pixel: 8 x bytes / (rows x cols x frames), all channels together."""
    n = len(nbytes) if isinstance(nbytes, (bytes, bytearray, memoryview)) else int(nbytes)
    f, r, c, _ = image_geometry(shape_or_array, axes)
    pixels = f * r * c
    if pixels == 0:
        raise ValueError("bpp of an empty image is undefined")
    return 8.0 * n / pixels


def compression_ratio(nbytes: int | bytes, array_or_nbytes: Any) -> float:
    """CR = raw stored bytes (itemsize x elements) / compressed bytes.

    ``array_or_nbytes`` is the original array (its ``nbytes`` is used) or the raw
    byte count.
    """
    n = len(nbytes) if isinstance(nbytes, (bytes, bytearray, memoryview)) else int(nbytes)
    raw = int(getattr(array_or_nbytes, "nbytes", array_or_nbytes))
    if n <= 0:
        raise ValueError("compressed size must be positive")
    return raw / n


cr = compression_ratio


def compare(
    original: Any,
    decoded: Any,
    nbytes: int | bytes | None = None,
    bits_stored: int | None = None,
    mask: Any = None,
    axes: str | None = None,
    with_ssim: bool = True,
) -> dict[str, Any]:
    """All the figures of docs/METRICS.md for one decoded image, in one dict.

    Keys: ``psnr`` (peak max - min), ``psnr_nominal`` (peak 2**bits_stored - 1),
    ``mse``, ``max_abs_error``, ``ssim`` and, with a mask, ``ssim_roi`` and
    ``ssim_background``; with ``nbytes`` also ``bpp``, ``cr`` and ``bytes``.
    """
    a, b = _check_pair(original, decoded)
    out: dict[str, Any] = {
        "mse": mse(a, b),
        "max_abs_error": max_abs_error(a, b),
        "psnr": psnr(a, b),
        "psnr_nominal": psnr_nominal(a, b, bits_stored),
    }
    if with_ssim:
        out["ssim"] = ssim(a, b, axes=axes)
        if mask is not None:
            m = np.asarray(mask, dtype=bool)
            out["ssim_roi"] = ssim(a, b, mask=m, axes=axes)
            out["ssim_background"] = ssim(a, b, mask=~m, axes=axes)
    if nbytes is not None:
        n = len(nbytes) if isinstance(nbytes, (bytes, bytearray, memoryview)) else int(nbytes)
        out["bytes"] = n
        out["bpp"] = bpp(n, a.shape, axes)
        out["cr"] = compression_ratio(n, a)
    return out
