"""The results of ``hlc bench`` and ``hlc demo``: operating points, and what the report
reads off them (rate-distortion curves, the PSNR at a rate).

Shared by :mod:`codec_core.cli.bench`, which measures the points, and
:mod:`codec_core.cli.report`, which writes the tables and the page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Point", "ImageResult", "rd_curves", "rd_marks", "rd_rates", "rd_caption", "interpolate_psnr"]


@dataclass
class Point:
    """One operating point of one codec on one image."""

    codec: str
    setting: str
    family: str                   # lossless | near-lossless | lossy | hybrid
    nbytes: int | None = None
    bpp: float | None = None
    cr: float | None = None
    psnr: float | None = None
    psnr_nominal: float | None = None
    ssim: float | None = None
    ssim_roi: float | None = None
    ssim_background: float | None = None
    max_abs_error: int | float | None = None
    max_abs_error_roi: int | None = None
    encode_mbps: float | None = None
    decode_mbps: float | None = None
    seconds: float | None = None    # encode + decode wall time
    note: str = ""


@dataclass
class ImageResult:
    name: str
    shape: tuple
    dtype: str
    bits_stored: int
    modality: str
    points: list[Point] = field(default_factory=list)
    panels_png: bytes | None = None
    panels_caption: str = ""
    rd_png: bytes | None = None
    rd_caption: str = ""
    roi_fraction: float | None = None
    roi_error: str = ""           # why the automatic ROI could not be made ("": it was)


def rd_curves(points: list[Point]) -> dict[str, list[tuple[float, float]]]:
    """Lossy and near-lossless curves per codec (finite PSNR only)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        if p.bpp is None or p.psnr is None or not math.isfinite(p.psnr):
            continue
        if p.family == "lossy":
            label = f"{p.codec} lossy"
        elif p.family == "near-lossless":
            label = f"{p.codec} near-lossless"
        else:
            continue
        curves.setdefault(label, []).append((p.bpp, p.psnr))
    return curves


def rd_marks(points: list[Point]) -> dict[str, list[tuple[float, float]]]:
    """The hybrid point(s): a star each (none where the hybrid kept a lossless stream)."""
    return {f"HLC {p.setting}": [(p.bpp, p.psnr)] for p in points
            if p.codec == "HLC" and p.family == "hybrid" and p.bpp is not None and p.psnr is not None
            and math.isfinite(p.psnr)}


def rd_rates(points: list[Point]) -> dict[str, float]:
    """HLC lossless, which has no PSNR to plot: its rate, drawn as a vertical line."""
    rates = [p.bpp for p in points if p.codec == "HLC" and p.family == "lossless" and p.bpp is not None]
    return {"HLC lossless": rates[-1]} if rates else {}


def rd_caption(points: list[Point]) -> str:
    """What the rate-distortion plot shows, including why a promised mark is missing."""
    parts = ["PSNR (peak max - min) against bits per pixel (log scale); HLC in bold lines"]
    hybrid = next((p for p in points if p.codec == "HLC" and p.family == "hybrid"), None)
    if rd_marks(points):
        parts.append("the hybrid (automatic ROI exact, the rest at the PSNR asked) as a star")
    elif hybrid is not None:
        why = hybrid.note or "its stream is lossless (the ROI covered too much to gain), with no finite PSNR"
        parts.append(f"no hybrid star: {why}")
    if rd_rates(points):
        parts.append("HLC lossless as a dashed vertical line")
    return "; ".join(parts) + "."


def interpolate_psnr(points: list[Point], codec: str, bpp: float) -> float | None:
    """PSNR of ``codec``'s lossy curve at ``bpp`` (linear in log bpp; None outside the curve)."""
    pts = sorted((p.bpp, p.psnr) for p in points if p.codec == codec and p.family == "lossy"
                 and p.bpp and p.psnr is not None and math.isfinite(p.psnr))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if x0 <= bpp <= x1 and x1 > x0:
            t = (math.log(bpp) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + t * (y1 - y0)
    for x, y in pts:
        if abs(x - bpp) <= 0.01 * bpp:
            return y
    return None
