"""Benchmark of the automatic importance map and of hybrid (ROI) coding.

    python benchmarks/bench_roi.py            # writes benchmarks/results/roi.md

1. Held-out accuracy: pixel-level confusion of ``auto_importance_map`` against the
   classical labels of models/training/corpus.py on the images held out from training.
2. Speed: auto map on 512 × 512 and 2048 × 2048, single thread, median of 5 runs
   (after one warm-up call that loads the models); import time of codec_core.
3. Hybrid coding by region layers, per image and modality, for the reference anatomy
   mask and roi="auto", at e in {0, 1, 2, 4} with the background at its own 40 dB: size
   against lossless, whole-image coding within +-e and the free-background limit; ROI
   PSNR, ROI max error, background PSNR and SSIM in each region, against JPEG 2000 9/7
   at the same size.
4. The seed paper's operating point: whole-image PSNR 40 dB, the ROI exact or within +-2.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# The training recipe (models/training: its corpus and evaluation) is not installed:
# it is imported from the checkout, behind the installed packages.
sys.path.append(str(REPO))

from codec_core import roi  # noqa: E402
from codec_core.cli import references as refs  # noqa: E402
from models.training import corpus  # noqa: E402
from models.training.train import evaluate  # noqa: E402

# Measure the models of this source tree, not those of an installed codec_core.models
# (roi.model_dir() prefers the installed package); HLC_MODEL_DIR still overrides.
if not os.environ.get("HLC_MODEL_DIR"):
    roi.set_model_dir(REPO / "models")

HYBRID_IMAGES = ("693_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "MR2_UNCR.dcm", "RG3_UNCR.dcm",
                 "explicit_VR-UN.dcm", "JPEG2000_UNC.dcm")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def accuracy_section() -> list[str]:
    held = corpus.load_corpus("heldout")
    res = evaluate(held)
    o = res["overall"]
    lines = ["## Held-out accuracy (pixel level, images never seen in training)", "",
             f"- Body kept (body or detail pixels labelled BODY/DETAIL): **{_pct(o['body_kept'])}** (target ≥ 99.5%)",
             f"- Background recall: **{_pct(o['background_recall'])}** (aim ≥ 90%; blocks straddling the body "
             "edge are always BODY, which caps it below 100%)", "",
             "| class | precision | recall |", "|---|---|---|"]
    for name in ("background", "body", "detail"):
        lines.append(f"| {name} | {_pct(o[name + '_precision'])} | {_pct(o[name + '_recall'])} |")
    lines += ["", "Confusion (rows: label, columns: prediction; pixels):", "", "| | bg | body | detail |",
              "|---|---|---|---|"]
    for name, row in zip(("bg", "body", "detail"), res["confusion_true_by_pred"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "| image | modality | body kept | background recall |", "|---|---|---|---|"]
    for r in res["images"]:
        lines.append(f"| {r['image']} [{r['frame']}] | {r['modality']} | {_pct(r['body_kept'])} | "
                     f"{_pct(r['background_recall'])} |")
    by_mod: dict[str, list] = {}
    for r in res["images"]:
        by_mod.setdefault(r["modality"], []).append(r)
    return lines + [""]


def _median_time(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed_section() -> list[str]:
    ct = corpus.load_image(corpus.Source("693_UNCR.dcm", "", ""), 0)[0]
    rg = corpus.load_image(corpus.Source("RG1_UNCR.dcm", "", ""), 0)[0]
    big = np.pad(rg, ((0, 2048 - rg.shape[0]), (0, 2048 - rg.shape[1])), mode="reflect")
    t_load = time.perf_counter()
    roi.auto_importance_map(ct)
    t_load = time.perf_counter() - t_load
    t512 = _median_time(lambda: roi.auto_importance_map(ct))
    t2048 = _median_time(lambda: roi.auto_importance_map(big))
    t_den = _median_time(lambda: roi.denoise(ct), 3)
    from codec_core.roi.mask import importance_map  # the hybrid's map: classifier + exterior air carved

    def hybrid_map(x: np.ndarray) -> None:
        importance_map("auto", x[None, :, :, None], 16, "YX", x.shape)

    h512, h2048 = _median_time(lambda: hybrid_map(ct)), _median_time(lambda: hybrid_map(big))
    code = ("import time; t=time.perf_counter(); import codec_core; d=time.perf_counter()-t; import sys;"
            "print(d, 'onnxruntime' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True).stdout.split()
    return ["## Speed (single thread, median of 5)", "",
            "| what | time | target |", "|---|---|---|",
            f"| auto map 512 × 512 (693_UNCR) | {1000 * t512:.1f} ms | ≤ 100 ms |",
            f"| auto map 2048 × 2048 (RG1 padded) | {1000 * t2048:.0f} ms | ≤ 1000 ms |",
            f"| the hybrid's map 512 × 512 (classifier + exterior air carved, per pixel) | {1000 * h512:.1f} ms "
            "| ≤ 100 ms |",
            f"| the hybrid's map 2048 × 2048 | {1000 * h2048:.0f} ms | ≤ 1000 ms |",
            f"| first call (hash check + model load + map) | {1000 * t_load:.0f} ms | – |",
            f"| denoise 512 × 512 | {1000 * t_den:.0f} ms | – |",
            f"| import codec_core | {1000 * float(out[0]):.0f} ms (onnxruntime loaded: {out[1]}, "
            f"sklearn loaded: {out[2]}) | < 300 ms, neither loaded |", ""]


#: The background's own PSNR in the hybrid runs (issue 20: background PSNR 40 dB).
BACKGROUND_PSNR = 40.0
#: Error bounds of the ROI measured (issue 20).
BOUNDS = (0, 1, 2, 4)
#: Real CT, MR and CR images with >= 25% background by their reference anatomy mask
#: (models/training/corpus.py's labels; CT_small, MR_small, emri_small and RG1 are hand-checked
#: "all body" there and left out), one per acquisition: (name, frame).
IMAGES = (("693_UNCR.dcm", 0), ("J2K_pixelrep_mismatch.dcm", 0), ("explicit_VR-UN.dcm", 0),
          ("eCT_Supplemental.dcm", 0), ("MR-SIEMENS-DICOM-WithOverlays.dcm", 0), ("examples_overlay.dcm", 0),
          ("MR2_UNCR.dcm", 0), ("RG3_UNCR.dcm", 0))


def _roi_pixels(cmap: np.ndarray, shape: tuple) -> np.ndarray:
    """The pixels an automatic map keeps (BODY or DETAIL), as the codec reads the map."""
    from codec_core.pipeline import pixel_classes

    return pixel_classes(cmap, roi.ROI_BLOCK, (0, shape[0], 0, shape[1])) != roi.BACKGROUND


def _bounded(img: np.ndarray, e: int) -> bytes:
    import codec_core as hlc

    return hlc.encode(img, mode="lossless") if e == 0 else hlc.encode(img, mode="near-lossless", max_error=e)


def _region_psnr(a: np.ndarray, b: np.ndarray, m: np.ndarray, peak: float) -> float:
    if not m.any():
        return float("nan")
    err = (a.astype(np.float64) - b.astype(np.float64))[m]
    mse = float(np.mean(err ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def _region_max(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64))[m].max()) if m.any() else 0


def _j2k_at_size(img: np.ndarray, size: int) -> np.ndarray | None:
    """JPEG 2000 9/7 decoded, at the largest quality whose stream is not larger than
    ``size`` (imagecodecs' ``level`` is a PSNR target: higher = larger)."""
    try:
        lo, hi = 1.0, 160.0
        for _ in range(16):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if len(refs.jpeg2k_97(mid).encode(img, None)) > size else (mid, hi)
        j2k = refs.jpeg2k_97(lo)
        return j2k.decode(j2k.encode(img, None))
    except Exception as exc:  # noqa: BLE001 (reported, not hidden)
        print(f"J2K failed: {exc}")
        return None


def _load(name: str, frame: int) -> tuple[np.ndarray, np.ndarray, str, str]:
    img, ds = corpus.load_image(corpus.Source(name, "", ""), frame)
    reference = corpus.classical_labels(img, ds) != corpus.BACKGROUND
    split = next((s.split for s in corpus.SOURCES if s.name == name), "–")
    return img, reference, str(getattr(ds, "Modality", "?")), split


def measure_image(name: str, frame: int) -> list[dict]:
    """Every (map, e) point of one image: sizes against lossless, whole-image +-e and
    the free-background limit, and the quality of each region, with J2K at equal size."""
    import warnings

    import codec_core as hlc
    from codec_core import metrics
    from codec_core.regions import constant_fill, stream_classes

    img, reference, modality, split = _load(name, frame)
    peak = float(img.max()) - float(img.min())
    lossless = len(hlc.encode(img, mode="lossless"))
    rows = []
    for e in BOUNDS:
        whole = len(_bounded(img, e))
        limit = len(_bounded(constant_fill(img[None, :, :, None], reference[None])[0, :, :, 0], e))
        for label, given in (("reference", reference), ("auto", "auto")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                data = hlc.encode(img, mode="lossy", roi=given, roi_max_error=e, background_psnr=BACKGROUND_PSNR)
                seconds = time.perf_counter() - t
            out = hlc.decode(data)
            meta = hlc.info(data)
            # the ROI the encoder used: the stream's map (everything for a whole-image stream)
            used = stream_classes(data)[0] > 0 if meta["roi"] else np.ones(img.shape, bool)
            j2k = _j2k_at_size(img, len(data))
            r = dict(image=name, modality=modality, split=split, map=label, e=e, lossless=lossless, whole=whole,
                     limit=limit, size=len(data), kept="hybrid" if meta["roi"] else meta["mode"],
                     roi_pct=100 * used.mean(), ref_pct=100 * reference.mean(), seconds=seconds,
                     cr=img.nbytes / len(data),
                     roi_psnr=_region_psnr(img, out, reference, peak), roi_max=_region_max(img, out, reference),
                     used_max=_region_max(img, out, used), bg_psnr=_region_psnr(img, out, ~reference, peak),
                     own_bg_psnr=_region_psnr(img, out, ~used, peak),
                     roi_ssim=metrics.ssim(img, out, mask=reference), bg_ssim=metrics.ssim(img, out, mask=~reference))
            if j2k is not None:
                r.update(j2k_roi_psnr=_region_psnr(img, j2k, reference, peak),
                         j2k_roi_max=_region_max(img, j2k, reference),
                         j2k_bg_psnr=_region_psnr(img, j2k, ~reference, peak),
                         j2k_roi_ssim=metrics.ssim(img, j2k, mask=reference),
                         j2k_bg_ssim=metrics.ssim(img, j2k, mask=~reference))
            rows.append(r)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    return rows


def _f(v: float, digits: int = 2) -> str:
    return "∞" if v == float("inf") else "–" if v != v else f"{v:.{digits}f}"


def hybrid_tables(results: list[dict]) -> list[str]:
    lines = ["## Hybrid by region layers: sizes (background PSNR 40 dB, its own samples)", "",
             "`encode(img, mode=\"lossy\", roi=MAP, roi_max_error=e, background_psnr=40)` as a user calls it "
             "(the whole image within ±e is returned where that is the smaller file: column *kept*). "
             "*limit* is the free-background limit: the image with its background (by the reference mask) set to "
             "one value (the median of the background), coded by HLC within ±e; *whole* the image coded by HLC "
             "within ±e (lossless for 0). PSNR peak = max − min of the image. *ROI* in the quality columns is the "
             "reference anatomy for both maps (what must be kept); *max err (own ROI)* is over the ROI the encoder "
             "used (its bound is e).", ""]
    for e in BOUNDS:
        lines += [f"### e = {e}", "",
                  "| image | modality | split | map | ROI % | kept | size / lossless | size / whole ±e | "
                  "size / limit | CR | time (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in results if r["e"] == e):
            lines.append(f"| {r['image']} | {r['modality']} | {r['split']} | {r['map']} | {r['roi_pct']:.1f} | "
                         f"{r['kept']} | {r['size'] / r['lossless']:.3f} | {r['size'] / r['whole']:.3f} | "
                         f"{r['size'] / r['limit']:.3f} | {r['cr']:.1f} | {r['seconds']:.1f} |")
        for m in ("reference", "auto"):
            sel = [r for r in results if r["e"] == e and r["map"] == m]
            if sel:
                lines.append(f"| **mean** | | | {m} | | | {np.mean([r['size'] / r['lossless'] for r in sel]):.3f} | "
                             f"{np.mean([r['size'] / r['whole'] for r in sel]):.3f} | "
                             f"{np.mean([r['size'] / r['limit'] for r in sel]):.3f} | | |")
        lines.append("")
    return lines


def quality_tables(results: list[dict]) -> list[str]:
    lines = ["## Hybrid by region layers: quality per region, against JPEG 2000 9/7 at the same size", "",
             "J2K: OpenJPEG 9/7 (imagecodecs) at the largest quality whose stream is not larger than HLC's.", ""]
    for e in BOUNDS:
        lines += [f"### e = {e}", "",
                  "| image | map | ROI PSNR | ROI max err | max err (own ROI) | bg PSNR | ROI SSIM | bg SSIM | "
                  "J2K ROI PSNR | J2K ROI max err | J2K bg PSNR | J2K ROI SSIM | J2K bg SSIM |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in results if r["e"] == e):
            lines.append(f"| {r['image']} | {r['map']} | {_f(r['roi_psnr'])} | {r['roi_max']} | {r['used_max']} | "
                         f"{_f(r['bg_psnr'])} | {r['roi_ssim']:.4f} | {r['bg_ssim']:.4f} | "
                         f"{_f(r.get('j2k_roi_psnr', float('nan')))} | {r.get('j2k_roi_max', '–')} | "
                         f"{_f(r.get('j2k_bg_psnr', float('nan')))} | {r.get('j2k_roi_ssim', float('nan')):.4f} | "
                         f"{r.get('j2k_bg_ssim', float('nan')):.4f} |")
        lines.append("")
    return lines


def summary(results: list[dict]) -> list[str]:
    lines = ["## Summary against the issue's targets", "",
             "| e | map | mean size / limit | max size / limit | mean size / whole ±e | max size / whole ±e | "
             "median size / lossless | kept whole | ROI bound kept |", "|---|---|---|---|---|---|---|---|---|"]
    for e in BOUNDS:
        for m in ("reference", "auto"):
            sel = [r for r in results if r["e"] == e and r["map"] == m]
            if not sel:
                continue
            lim = [r["size"] / r["limit"] for r in sel]
            who = [r["size"] / r["whole"] for r in sel]
            lines.append(f"| {e} | {m} | {np.mean(lim):.3f} | {np.max(lim):.3f} | {np.mean(who):.3f} | "
                         f"{np.max(who):.3f} | {np.median([r['size'] / r['lossless'] for r in sel]):.3f} | "
                         f"{sum(r['kept'] != 'hybrid' for r in sel)} of {len(sel)} | "
                         f"{all(r['used_max'] <= e for r in sel)} |")
    ratio = [a["size"] / b["size"] for a in results for b in results
             if a["e"] == b["e"] == 0 and a["image"] == b["image"] and a["map"] == "auto" and b["map"] == "reference"]
    if ratio:
        lines += ["", f"Auto map against the reference mask at e = 0: mean size ratio **{np.mean(ratio):.3f}** "
                  f"(per image: {', '.join(f'{x:.2f}' for x in ratio)}; target ≤ 1.10)."]
    return lines + [""]


def losses(results: list[dict]) -> list[str]:
    """Where HLC loses, listed from the results (nothing hand-picked)."""
    lines = ["## Where HLC loses", ""]
    j2k = [r for r in results if r["e"] > 0 and r.get("j2k_roi_psnr", 0) > r["roi_psnr"]]
    lines.append(f"- **ROI PSNR against JPEG 2000 at the same size**: J2K's ROI PSNR is higher in {len(j2k)} of "
                 f"{sum(r['e'] > 0 for r in results)} cases with e > 0 ("
                 + ", ".join(f"{r['image']} {r['map']} e={r['e']}: {r['j2k_roi_psnr']:.1f} vs {r['roi_psnr']:.1f}"
                             for r in j2k[:12]) + (" …" if len(j2k) > 12 else "") +
                 "): at ±e the ROI's error is spread evenly up to e, while J2K spends the same bytes on a lower "
                 "mean error with a larger maximum (J2K's ROI max error: "
                 f"{min((r['j2k_roi_max'] for r in j2k), default=0)}–{max((r['j2k_roi_max'] for r in j2k), default=0)}"
                 ", always above e). HLC's ROI max error is e in every case.")
    whole = [r for r in results if r["kept"] != "hybrid"]
    lines.append(f"- **No hybrid gain** in {len(whole)} of {len(results)} cases (the whole image within ±e was the "
                 "smaller file and was returned): " + ", ".join(sorted({f"{r['image']} ({r['map']})" for r in whole}))
                 + ". eCT_Supplemental's background is all flat padding, which whole-image coding already codes "
                 "for nothing; with the auto map at larger e the ROI layer costs as much as the whole image.")
    over = [r for r in results if r["kept"] == "hybrid" and r["own_bg_psnr"] == r["own_bg_psnr"]
            and r["own_bg_psnr"] > BACKGROUND_PSNR + 0.1]
    lines.append(f"- **Background above its target** (more than +0.1 dB, bytes spent for nothing) in {len(over)} of "
                 f"{sum(r['kept'] == 'hybrid' for r in results)} hybrid streams: "
                 + ", ".join(sorted({f"{r['image']} ({r['map']}, {r['own_bg_psnr']:.2f} dB)" for r in over}))
                 + ". Backgrounds of a few hundred bytes: the 9/7's smallest steps move the PSNR by 1–4 dB, or "
                 "its smallest stream is already above the target (a nearly flat background).")
    miss = [r for r in results if r["map"] == "auto" and r["roi_max"] > r["e"]]
    lines.append(f"- **The automatic map**: {len(miss)} of {sum(r['map'] == 'auto' for r in results)} auto streams "
                 "have reference-anatomy pixels outside their ROI with an error above e (" +
                 ", ".join(sorted({f"{r['image']} {r['roi_max']}" for r in miss})) + "); on 693_UNCR and "
                 "J2K_pixelrep_mismatch these are padding and air at the image's top edge that the reference "
                 "labels fill as a hole (models/MODEL_CARD.md); the bound is kept on every pixel of the ROI the "
                 "encoder used (column *max err (own ROI)*).")
    ratio = {a["image"]: a["size"] / b["size"] for a in results for b in results
             if a["e"] == b["e"] == 0 and a["image"] == b["image"] and a["map"] == "auto" and b["map"] == "reference"}
    lines.append("- **Auto map against the reference mask** above 1.10 at e = 0: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in ratio.items() if v > 1.10)
                 + ". What is left is not air: a CT's table and headrest (bright structure the classifier keeps), "
                 "the collimator shadow of a radiograph (flat and bright; RG3_UNCR) and MR background ghosting "
                 "above the noise level (MR2_UNCR).")
    return lines + [""]


MAP_PLAN = """## The map: what was done, and the measured plan for the rest

Done (no retraining: `codec_core/roi/exterior.py`, chosen on training images only): the
hybrid's map is the classifier's map per pixel with the exterior air carved out (air-like
pixels connected to the map's own background). Held-out CT/MR/CR: body kept 100% on every
image (before and after); background recall explicit_VR-UN 69.5% -> 78.3%, MR-SIEMENS 83.5%
-> 91.1%. Hybrid size with the auto map against the reference mask at e = 0, before and
after the carving (same code otherwise): 693_UNCR 1.68 -> 1.41, explicit_VR-UN 1.34 -> 1.27
(mean over the 8 images 1.20, target 1.10).

Left, in order of measured size:
1. Radiograph collimator shadow (RG3_UNCR 1.46): a second flat level touching the border;
   carve every flat border-touching mode of the background, not only the air (the labels'
   own rule), guarded by the same connectivity.
2. CT table and headrest (693_UNCR 1.41, explicit_VR-UN 1.27): structure below -500 HU
   is background in the labels; without the rescale the codec sees no HU. Feed the
   rescale (pydicom plugin, CLI) to the map, or learn "thin bright component separated from
   the largest body component by air" (risky for arms beside the body: needs the held-out
   per-image check).
3. MR ghosting (MR2_UNCR 1.27): the air's noise measured in the corners underestimates
   the air beside the body; a spatially varying noise estimate (per 64-pixel cell of the
   map's background) instead of one per frame.
4. Retraining with more CT/MR/CR with air (the seeded recipe) was not done this session:
   the features did not change, so the model files, SHA256SUMS and heldout_metrics.json
   are unchanged.

"""


def paper_section(names: tuple) -> list[str]:
    """The seed paper's operating point: whole-image PSNR 40 dB (38-42), the ROI exact
    or within +-2: the compression ratio HLC reaches, and the ROI's SSIM."""
    import warnings

    import codec_core as hlc
    from codec_core import metrics

    lines = ["## The seed paper's operating point (whole-image PSNR 40 dB)", "",
             "`encode(img, mode=\"lossy\", psnr=40, roi=MAP, roi_max_error=e)`: the whole image's PSNR is the "
             "target (the background gets what the ROI's error leaves, never below 30 dB). The paper reports "
             "CR 15–20 at 38–42 dB with ROI SSIM 0.968.", "",
             "| image | modality | map | e | CR | whole PSNR | ROI SSIM |", "|---|---|---|---|---|---|---|"]
    crs: dict = {}
    for name, frame in names:
        img, reference, modality, _ = _load(name, frame)
        peak = float(img.max()) - float(img.min())
        for label, given in (("reference", reference), ("auto", "auto")):
            for e in (0, 2):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data = hlc.encode(img, mode="lossy", psnr=40.0, roi=given, roi_max_error=e)
                out = hlc.decode(data)
                cr = img.nbytes / len(data)
                crs.setdefault((label, e), []).append(cr)
                lines.append(f"| {name} | {modality} | {label} | {e} | {cr:.1f} | "
                             f"{_f(_region_psnr(img, out, np.ones(img.shape, bool), peak))} | "
                             f"{metrics.ssim(img, out, mask=reference):.4f} |")
    lines += ["", "| map | e | median CR | range |", "|---|---|---|---|"]
    for (label, e), v in crs.items():
        lines.append(f"| {label} | {e} | {np.median(v):.1f} | {min(v):.1f}–{max(v):.1f} |")
    return lines + [""]


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", help="comma-separated names (default: the benchmark's set)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "roi.md"))
    p.add_argument("--from-json", help="reuse the hybrid measurements saved by an earlier run (roi.json); "
                                       "the rest is measured again")
    args = p.parse_args()
    names = IMAGES if not args.images else tuple((n, 0) for n in args.images.split(","))
    lines = ["# ROI benchmark", "", "Generated by `nice -n 10 python benchmarks/bench_roi.py` (one thread); models: "
             f"{', '.join(f'{k} {v[:12]}' for k, v in roi.verify_models().items())}.", ""]
    if args.from_json:
        lines += [f"The hybrid measurements (sizes and quality per image) are those saved by the full run in "
                  f"`{Path(args.from_json).name}`, reported again with `--from-json`; the other sections were "
                  "measured in this run.", ""]
    lines += accuracy_section()
    lines += speed_section()
    saved = Path(args.out).with_suffix(".json")
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    else:
        results = [r for name, frame in names for r in measure_image(name, frame)]
        saved.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    lines += summary(results)
    lines += losses(results)
    lines.append(MAP_PLAN)
    lines += hybrid_tables(results)
    lines += quality_tables(results)
    lines += paper_section(names)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
