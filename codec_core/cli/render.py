"""Pictures for the ``hlc`` command: ROI overlays, side-by-side panels, rate-distortion plots.

Everything is returned as PNG bytes so that the HTML report can inline it. matplotlib
(Agg backend, no display needed) is imported on first use. Images arrive as display
pictures (uint8 grey or RGB, from :mod:`codec_core.cli.display`) or with the
:class:`~codec_core.cli.display.View` that makes them: nothing here chooses a window.
"""
from __future__ import annotations

import io
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "CLASS_NAMES", "CLASS_COLOURS", "ROI_OUTLINE", "HYBRID_STAR", "class_fractions", "class_mask",
    "auto_mask", "roi_overlay_png", "panels_png", "rd_plot_png",
]

CLASS_NAMES = ("background", "body", "detail")
#: RGBA of each importance class in overlays (background is left clear).
CLASS_COLOURS = ((0.0, 0.0, 0.0, 0.0), (0.15, 0.55, 1.0, 0.30), (1.0, 0.25, 0.1, 0.45))
#: Colours no colour map or class uses, so the outline and the star stand out (and tests find them).
ROI_OUTLINE = "#00e5ff"
HYBRID_STAR = "#ffbf00"


def _writable_matplotlib_dirs() -> None:
    """Give matplotlib a private temporary config and cache directory (removed at exit)
    when its usual ones (under XDG_CONFIG_HOME / XDG_CACHE_HOME or HOME) cannot be made:
    matplotlib would make one too, but print two lines about it on every run of an
    account without a writable HOME. MPLCONFIGDIR, when set, is left to matplotlib."""
    import atexit
    import contextlib
    import os
    import shutil
    import tempfile

    if "MPLCONFIGDIR" in os.environ or "matplotlib" in sys.modules:
        return
    home = os.path.expanduser("~")
    for var, default in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache")):
        path = os.path.join(os.environ.get(var) or os.path.join(home, default), "matplotlib")
        with contextlib.suppress(OSError):
            os.makedirs(path, exist_ok=True)
        if not (os.path.isdir(path) and os.access(path, os.W_OK)):
            break
    else:
        return
    private = tempfile.mkdtemp(prefix="hlc-matplotlib-")
    atexit.register(shutil.rmtree, private, True)
    os.environ["MPLCONFIGDIR"] = private


def _plt():
    _writable_matplotlib_dirs()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def class_mask(cmap: np.ndarray, shape: Sequence[int], block: int | None = None) -> np.ndarray:
    """The per-block class map expanded to a per-pixel map of ``shape`` (rows, cols)."""
    if block is None:
        from codec_core.roi import ROI_BLOCK

        block = int(ROI_BLOCK)
    rows, cols = int(shape[0]), int(shape[1])
    full = np.repeat(np.repeat(np.asarray(cmap), block, axis=0), block, axis=1)
    return full[:rows, :cols]


def class_fractions(cmap: np.ndarray, shape: Sequence[int]) -> dict[str, float]:
    """Fraction of the pixels in each class."""
    px = class_mask(cmap, shape)
    return {name: float(np.mean(px == i)) for i, name in enumerate(CLASS_NAMES)}


def auto_mask(image: Any) -> np.ndarray:
    """Boolean ROI (body + detail) of every frame as the hybrid's ``roi="auto"`` makes
    it (the automatic map per pixel, exterior air carved out: codec_core.roi.mask).

    Shape (rows, cols) for one frame, (frames, rows, cols) for several.
    """
    from codec_core.roi.mask import importance_map

    masks = []
    for f in range(image.frames):
        frame = np.asarray(image.frame(f))
        pixels = frame[None, :, :, None] if frame.ndim == 2 else frame[None]
        cmap, block = importance_map("auto", pixels, image.bits_stored, "YX", frame.shape[:2])
        masks.append(class_mask(cmap[0], frame.shape[:2], block) > 0)
    return masks[0] if image.frames == 1 else np.stack(masks)


def _overlay_rgba(cmap: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    px = class_mask(cmap, shape)
    colours = np.asarray(CLASS_COLOURS)
    return colours[np.clip(px, 0, len(CLASS_COLOURS) - 1)]


def _show(ax, picture: np.ndarray) -> None:
    """A display picture (uint8 grey or RGB) as it is, pixel for pixel."""
    ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _outline(ax, mask: np.ndarray) -> None:
    """The ROI's border (nothing to draw when it covers all or none of the image)."""
    if mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[ROI_OUTLINE], linewidths=1.2)


def _legend(ax, cmap: np.ndarray, shape) -> None:
    from matplotlib.patches import Patch

    fr = class_fractions(cmap, shape)
    handles = [Patch(facecolor=CLASS_COLOURS[i][:3] + (max(CLASS_COLOURS[i][3], 0.6),) if i else "none",
                     edgecolor="black", label=f"{name} ({100 * fr[name]:.0f} %)")
               for i, name in enumerate(CLASS_NAMES)]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8,
              frameon=False)


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def roi_overlay_png(picture: np.ndarray, cmap: np.ndarray, title: str = "", caption: str = "") -> bytes:
    """The display picture with the importance classes drawn over it, and a legend of
    the classes; ``caption`` (how the image is shown, what was wrong) under the title."""
    plt = _plt()
    rows, cols = picture.shape[:2]
    scale = 6.0 / max(rows, cols)
    fig, ax = plt.subplots(figsize=(max(cols * scale, 3.5), rows * scale + 0.8))
    _show(ax, picture)
    ax.imshow(_overlay_rgba(cmap, (rows, cols)), interpolation="nearest")
    ax.set_title("\n".join(t for t in (title, "automatic importance map", _wrap(caption)) if t), fontsize=9)
    _legend(ax, cmap, (rows, cols))
    return _png(fig)


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width))


def panels_png(original: np.ndarray, decoded: np.ndarray, cmap: np.ndarray | None, view) -> bytes:
    """Original | decoded | |difference| | importance map, side by side, for one frame.

    ``view`` (a :class:`~codec_core.cli.display.View` of the original) shows both images
    alike. The ROI (body + detail) is outlined on the decoded image and on the
    difference. The caption belongs to the page, not to the picture.
    """
    plt = _plt()
    n = 4 if cmap is not None else 3
    rows, cols = original.shape[:2]
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2 * rows / max(cols, 1) + 0.9), layout="constrained")
    roi = class_mask(cmap, (rows, cols)) > 0 if cmap is not None else None
    _show(axes[0], view(original))
    axes[0].set_title("original", fontsize=9)
    _show(axes[1], view(decoded))
    axes[1].set_title("decoded" + (", ROI outlined" if roi is not None else ""), fontsize=9)
    diff = np.abs(original.astype(np.float64) - decoded.astype(np.float64))
    if diff.ndim == 3:
        diff = diff.max(axis=-1)
    peak = float(diff.max())
    # A few large errors would make the rest invisible: the colours stop at the
    # 99.5th percentile (at least 1, so an exact image stays black), and say so.
    top = max(float(np.percentile(diff, 99.5)), 1.0)
    im = axes[2].imshow(diff, cmap="magma", vmin=0, vmax=top, interpolation="nearest")
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    axes[2].set_title(f"|original - decoded|, max {peak:.0f}"
                      + (f"\n(colours stop at {top:.0f}: small errors made visible)" if top < peak else ""),
                      fontsize=9)
    bar = fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02, extend="max" if top < peak else "neither")
    bar.set_label("error, in stored values", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if roi is not None and cmap is not None:
        _outline(axes[1], roi)
        _outline(axes[2], roi)
        _show(axes[3], view(original))
        axes[3].imshow(_overlay_rgba(cmap, (rows, cols)), interpolation="nearest")
        axes[3].set_title("importance map", fontsize=9)
        _legend(axes[3], cmap, (rows, cols))
    return _png(fig)


def rd_plot_png(curves: dict[str, list[tuple[float, float]]], title: str,
                ylabel: str = "PSNR (dB, peak max - min)", points: dict[str, list] | None = None,
                rates: dict[str, float] | None = None) -> bytes:
    """Rate-distortion plot: one line per codec (bpp, quality), single points marked as
    stars (the hybrid), and rates without a finite PSNR (lossless) as dashed verticals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, pts in curves.items():
        pts = sorted((x, y) for x, y in pts if y is not None and np.isfinite(y))
        if not pts:
            continue
        style = dict(lw=2.2, marker="o") if label.startswith("HLC") else dict(lw=1.2, marker=".")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **style)
    for label, pts in (points or {}).items():
        pts = [(x, y) for x, y in pts if y is not None and np.isfinite(y)]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker="*", s=260, zorder=5, label=label,
                       color=HYBRID_STAR, edgecolors="black", linewidths=0.6)
    for label, rate in (rates or {}).items():
        ax.axvline(rate, color="0.35", ls="--", lw=1.0, label=f"{label} ({rate:.2f} bpp)")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    # Labels at 1, 2 and 5 of each decade: a plot spanning 0.2..6 bpp has only "1"
    # among the powers of ten.
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bits per pixel (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)
