"""Markdown tables for the terminal and a self-contained HTML report.

The HTML page has its pictures inline (``data:image/png;base64``) and its style in
the page: it opens from disk with no network, and can be mailed as one file.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html as _html
import math
import platform
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["fmt", "markdown_table", "metric_rows_markdown", "bench_markdown", "demo_markdown",
           "hybrid_summary", "bench_html", "png_data_uri"]

#: What the note "offset to unsigned (N)" of a reference codec's row means.
OFFSET_FOOTNOTE = ("offset to unsigned (N): the codec takes unsigned samples only, so the signed image "
                   "was given to it as uint16 with N = -min added, and N subtracted after decoding.")

DEFINITIONS = (
    "bpp = 8 x compressed bytes / (rows x cols x frames); CR = raw stored bytes / compressed bytes; "
    "PSNR uses peak = max - min of the original; nominal PSNR uses 2^bits_stored - 1, which is "
    "inflated on images that use part of their range, so read it beside the max error; "
    "SSIM: Gaussian window sigma 1.5, data range max - min; ROI = body + detail blocks of the "
    "automatic importance map; speeds are single-thread MB/s of raw stored bytes; " + OFFSET_FOOTNOTE
)


def fmt(x: Any, nd: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isinf(x):
            return "inf"
        if math.isnan(x):
            return "-"
        return f"{x:.{nd}f}"
    return str(x)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def metric_rows_markdown(res: dict[str, Any]) -> str:
    """``hlc compare``: one row per figure."""
    labels = [
        ("bytes", "compressed bytes", 0), ("bpp", "bits per pixel", 3), ("cr", "compression ratio", 2),
        ("psnr", "PSNR (dB, peak max - min)", 2), ("psnr_nominal", "nominal PSNR (dB, peak 2^bits - 1)", 2),
        ("mse", "MSE", 4), ("max_abs_error", "max abs error", 0), ("ssim", "SSIM", 5),
        ("roi_fraction", "ROI fraction", 3), ("ssim_roi", "SSIM in ROI", 5),
        ("ssim_background", "SSIM outside ROI", 5), ("max_abs_error_roi", "max abs error in ROI", 0),
        ("max_abs_error_background", "max abs error outside ROI", 0),
    ]
    rows = [(label, fmt(res[k], nd)) for k, label, nd in labels if k in res]
    title = f"{res.get('decoded', 'decoded')} against {res.get('original', 'original')}"
    return f"{title}\n\n" + markdown_table(("figure", "value"), rows)


_POINT_HEADER = ("codec", "setting", "bpp", "CR", "PSNR dB", "nominal dB", "SSIM", "ROI SSIM",
                 "non-ROI SSIM", "max err", "ROI max err", "enc MB/s", "dec MB/s", "note")


def _point_row(p) -> list[str]:
    return [p.codec, p.setting, fmt(p.bpp, 3), fmt(p.cr, 2), fmt(p.psnr), fmt(p.psnr_nominal),
            fmt(p.ssim, 4), fmt(p.ssim_roi, 4), fmt(p.ssim_background, 4), fmt(p.max_abs_error),
            fmt(p.max_abs_error_roi), fmt(p.encode_mbps, 1), fmt(p.decode_mbps, 1), p.note]


def image_heading(r) -> str:
    shape = "x".join(map(str, r.shape))
    roi = f", automatic ROI {100 * r.roi_fraction:.0f} % of pixels" if r.roi_fraction is not None else ""
    if r.roi_error:
        roi = f", automatic ROI unavailable: {r.roi_error}"
    return f"{r.name}: {r.modality + ' ' if r.modality else ''}{shape} {r.dtype}, {r.bits_stored} bits stored{roi}"


def summary_rows(results) -> tuple[Sequence[str], list[list[str]]]:
    """Mean lossless bpp per codec, and PSNR at 0.5 and 1 bpp (interpolated on each curve)."""
    from .results import interpolate_psnr

    codecs: list[str] = []
    for r in results:
        for p in r.points:
            if p.codec not in codecs:
                codecs.append(p.codec)
    rows = []
    for c in codecs:
        ll = [p.bpp for r in results for p in r.points
              if p.codec == c and p.family == "lossless" and p.bpp is not None and p.bpp]
        refused = sum(1 for r in results for p in r.points
                      if p.codec == c and p.family == "lossless" and p.note.startswith("refused"))
        cells = [c, fmt(sum(ll) / len(ll), 3) if ll else "-",
                 (f"{len(ll)}/{len(results)}" if ll or refused else "-") + (f" ({refused} refused)" if refused else "")]
        for rate in (0.5, 1.0):
            vals = [v for v in (interpolate_psnr(r.points, c, rate) for r in results) if v is not None]
            cells.append(f"{sum(vals) / len(vals):.2f} ({len(vals)})" if vals else "-")
        rows.append(cells)
    header = ("codec", "lossless mean bpp", "images", "PSNR at 0.5 bpp (n)", "PSNR at 1 bpp (n)")
    return header, rows


def bench_markdown(results, skipped: Sequence[str]) -> str:
    parts = ["# HLC benchmark", "", DEFINITIONS, ""]
    header, rows = summary_rows(results)
    parts += ["## Summary", "", markdown_table(header, rows), "",
              "PSNR at a rate is read off each codec's lossy curve (linear in log bpp); "
              "n = images whose curve covers that rate.", ""]
    for r in results:
        parts += [f"## {image_heading(r)}", "", markdown_table(_POINT_HEADER, [_point_row(p) for p in r.points]), ""]
    if skipped:
        parts += ["## Skipped", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(parts)


def demo_markdown(r) -> str:
    """The demo's terminal output: every HLC mode, then the references in brief."""
    head = ("mode", "bytes", "bpp", "CR", "PSNR dB", "nominal dB", "max err", "ROI max err", "SSIM", "time ms")
    rows = []
    for p in r.points:
        if p.codec != "HLC":
            continue
        if p.bpp is None:
            rows.append([p.setting, p.note] + [""] * (len(head) - 2))
            continue
        rows.append([p.setting, p.nbytes, fmt(p.bpp, 3), fmt(p.cr, 2), fmt(p.psnr), fmt(p.psnr_nominal),
                     fmt(p.max_abs_error), fmt(p.max_abs_error_roi), fmt(p.ssim, 4), fmt(1000 * p.seconds, 0)])
    refs = [p for p in r.points if p.codec != "HLC" and p.family in ("lossless", "near-lossless")]
    ref_rows = [[p.codec, p.setting, fmt(p.bpp, 3), fmt(p.max_abs_error), p.note] for p in refs]
    out = [image_heading(r), "", markdown_table(head, rows), ""]
    summary = hybrid_summary(r)
    if summary:
        out += [summary, ""]
    out += ["PSNR: peak = max - min of the image; nominal: peak = 2^bits_stored - 1 (inflated, "
            "read it with the max error). time = encode + decode, one thread.", ""]
    if ref_rows:
        out += ["References on the same image (imagecodecs):", "",
                markdown_table(("codec", "setting", "bpp", "max err", "note"), ref_rows)]
        if any(p.note.startswith("offset") for p in refs):
            out += ["", OFFSET_FOOTNOTE]
    return "\n".join(out)


def hybrid_summary(r) -> str:
    """One sentence on what the hybrid bought: its size against lossless, the ROI kept."""
    hybrid = next((p for p in r.points if p.codec == "HLC" and p.family == "hybrid" and p.bpp), None)
    lossless = next((p for p in r.points if p.codec == "HLC" and p.family == "lossless" and p.bpp), None)
    if hybrid is None or lossless is None or r.roi_fraction is None:
        return ""
    roi = f"the automatic ROI ({100 * r.roi_fraction:.0f} % of the pixels)"
    if "(kept:" in hybrid.setting:
        return (f"Hybrid: {roi} covers so much that coding every pixel within the ROI's bound was smaller, "
                f"so the hybrid is the {hybrid.setting.split('(kept: ', 1)[1].rstrip(')')} stream "
                f"({hybrid.bpp:.3f} bpp).")
    kept = "exact" if hybrid.max_abs_error_roi == 0 else f"within {fmt(hybrid.max_abs_error_roi)}"
    return (f"Hybrid: {hybrid.bpp:.3f} bpp, {hybrid.bpp / lossless.bpp:.2f} x the lossless size "
            f"({lossless.bpp:.3f} bpp), with {roi} {kept} and the rest lossy: PSNR {fmt(hybrid.psnr)} dB "
            f"over the whole image, max error {fmt(hybrid.max_abs_error)}.")


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], hlc_first_col: bool = True) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_html.escape(str(h))}</th>" for h in header) + "</tr></thead><tbody>"]
    for r in rows:
        cls = ' class="hlc"' if hlc_first_col and str(r[0]).startswith("HLC") else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_html.escape(str(c))}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;\
max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:0.85em;margin:0.8em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td:first-child,td:nth-child(2){text-align:left}tr.hlc{background:#eef6ff}
figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}
img{max-width:100%;height:auto}.meta{color:#555;font-size:0.9em}code{background:#f4f4f4;padding:1px 4px}
"""


def bench_html(results, skipped: Sequence[str], *, title: str, command: str, elapsed: float) -> str:
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    try:
        import codec_core

        version = getattr(codec_core, "__version__", "?")
    except Exception:  # pragma: no cover
        version = "?"
    esc = _html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">Made by <code>{esc(command)}</code> on {esc(now)} in {elapsed:.1f} s; '
        f"HLC {esc(str(version))}, Python {esc(platform.python_version())}, {esc(platform.machine())}. "
        "This page is self-contained: pictures are inline and nothing is fetched.</p>",
        f"<p>{esc(DEFINITIONS)}</p>",
    ]
    if len(results) > 1:
        header, rows = summary_rows(results)
        parts += ["<h2>Summary</h2>", _html_table(header, rows),
                  "<p class=\"meta\">PSNR at a rate is read off each codec's lossy curve (linear in log bpp).</p>"]
    for i, r in enumerate(results):
        parts.append(f'<h2 id="image-{i}">{esc(image_heading(r))}</h2>')
        summary = hybrid_summary(r)
        if summary:
            parts.append(f"<p>{esc(summary)}</p>")
        if r.rd_png:
            parts.append(f'<figure><img src="{png_data_uri(r.rd_png)}" alt="rate-distortion plot of {esc(r.name)}">'
                         f"<figcaption>{esc(r.rd_caption)}</figcaption></figure>")
        if r.panels_png:
            parts.append(f'<figure><img src="{png_data_uri(r.panels_png)}" alt="original, decoded, difference '
                         f'and ROI of {esc(r.name)}"><figcaption>{esc(r.panels_caption)}</figcaption></figure>')
        parts.append(_html_table(_POINT_HEADER, [_point_row(p) for p in r.points]))
    if skipped:
        parts += ["<h2>Skipped</h2><ul>"] + [f"<li>{esc(s)}</li>" for s in skipped] + ["</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)
