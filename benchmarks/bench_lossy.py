#!/usr/bin/env python
"""The lossy coder against JPEG 2000 9/7, JPEG XL and AVIF, per image and per modality.

    nice -n 10 python benchmarks/bench_lossy.py                    # -> benchmarks/results/lossy.md (+ .json)
    python benchmarks/bench_lossy.py --hlc-only --json /tmp/before.json   # HLC figures only (e.g. another build)
    nice -n 10 python benchmarks/bench_lossy.py --before /tmp/before.json # with a "before" column

For each image (real DICOM test files of pydicom and pydicom-data, exact names,
compressed ones decompressed; large ones cropped, stacks reduced to their middle
frame; see IMAGES) and each rate of 0.25, 0.5 and 1.0 bpp:

* HLC ``encode(mode="lossy", bpp=r, try_near_lossless=False)``: the 9/7 path itself,
  and HLC with its default (the near-lossless takeover on), saying which coder the
  stream kept;
* JPEG 2000 9/7 (OpenJPEG), JPEG XL (libjxl, default effort) and AVIF (libaom speed
  6, where the image fits its 12 bits: signed images offset by 2^(bits-1), as for
  JPEG XL), each with its quality parameter bisected so that its file is at most
  the same budget (r x pixels / 8 bytes) and as close to it as possible
  (benchmarks/bench_codecs.py's search; AVIF offsets an image by -min where that
  brings it within 12 bits); the reference codecs are those of
  codec_core/cli/references.py;
* PSNR with peak = max - min of the image (and nominal 2^bits - 1), SSIM, max error
  (codec_core.metrics; docs/METRICS.md);
* single-thread encode and decode MB/s (raw stored bytes / median of --runs) of HLC
  (9/7 path) and OpenJPEG 9/7 at its matched setting, interleaved per image.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import codec_core as hlc  # noqa: E402
from codec_core import metrics as M  # noqa: E402
from codec_core.cli import references as refs  # noqa: E402
from codec_core.cli.corpus import corpus_path, load_dicom  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bench_codecs import _search  # noqa: E402  (the rate search of the benchmark of record)

RESULTS = Path(__file__).parent / "results"
RATES = (0.25, 0.5, 1.0)
CROP = 1024

#: name: (modality label, what to take). Palette-colour images (index values) are
#: left out: a lossy index is a wrong colour, not a small error.
IMAGES: dict[str, str] = {
    "693_UNCR.dcm": "CT", "CT_small.dcm": "CT", "eCT_Supplemental.dcm": "CT", "bad_sequence.dcm": "CT",
    "J2K_pixelrep_mismatch.dcm": "CT", "explicit_VR-UN.dcm": "CT",
    "MR2_UNCR.dcm": "MR", "MR-SIEMENS-DICOM-WithOverlays.dcm": "MR", "MR_small.dcm": "MR",
    "emri_small.dcm": "MR", "examples_overlay.dcm": "MR",
    "RG1_UNCR.dcm": "CR", "RG3_UNCR.dcm": "CR",
    "JPEG2000_UNC.dcm": "NM",
    "US1_UNCR.dcm": "US", "JPGLosslessP14SV1_1s_1f_8b.dcm": "US", "color-px.dcm": "US",
    "examples_rgb_color.dcm": "US",
    "mlut_18.dcm": "OT", "vlut_04.dcm": "OT", "image_dfl.dcm": "OT",
}

#: The images the lossy coder's constants were set or checked on: rate control's
#: KAPPA (MR2_UNCR, 693_UNCR, CT_small, US1_UNCR, RG3_UNCR, MR_small; see
#: results/lossy_experiments.md), the padding path's thresholds and RDO's lambda
#: (693_UNCR, J2K_pixelrep_mismatch, bad_sequence, examples_overlay, US1_UNCR, mlut_18,
#: MR-SIEMENS-DICOM-WithOverlays). Every other image is held out.
DEV = ("693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "bad_sequence.dcm", "examples_overlay.dcm", "US1_UNCR.dcm",
       "mlut_18.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "MR2_UNCR.dcm", "CT_small.dcm", "RG3_UNCR.dcm",
       "MR_small.dcm")


def load(name: str):
    im = load_dicom(corpus_path(name), name=name)
    a = im.array
    if im.axes.startswith("Z"):
        a = a[a.shape[0] // 2]
    r, c = a.shape[:2]
    if r > CROP or c > CROP:  # the centre
        y, x = max(0, (r - CROP) // 2), max(0, (c - CROP) // 2)
        a = a[y:y + CROP, x:x + CROP]
    return np.ascontiguousarray(a), im.bits_stored, im.signed


def quality(a: np.ndarray, out: np.ndarray, nbytes: int, bits: int) -> dict:
    px = a.shape[0] * a.shape[1]
    return {"bytes": nbytes, "bpp": 8 * nbytes / px, "psnr": M.psnr(a, out), "psnr_nom": M.psnr_nominal(a, out, bits),
            "ssim": M.ssim(a, out, axes="YXC" if a.ndim == 3 else "YX"), "max_err": int(M.max_abs_error(a, out))}


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_hlc(a, bits, r, runs, speed_only=False) -> dict:
    res = {}
    for key, kw in (("hlc97", {"try_near_lossless": False}), ("hlc", {}))[:1 if speed_only else 2]:
        data = hlc.encode(a, mode="lossy", bpp=r, bits_stored=bits, threads=1, **kw)
        out = hlc.decode(data, threads=1)
        cell = quality(a, out, len(data), bits)
        meta = hlc.info(data)
        cell["coder"] = ("9/7 +pad" if meta["roi"] else "9/7") if meta["mode"] == "lossy" else \
            "lossless" if meta["mode"] == "lossless" else f"near-lossless k={meta['max_error']}"
        if key == "hlc97" and runs:
            cell["enc_s"] = median_time(lambda kw=kw: hlc.encode(a, mode="lossy", bpp=r, bits_stored=bits, threads=1,
                                                                 **kw), runs)
            cell["dec_s"] = median_time(lambda data=data: hlc.decode(data, threads=1), runs)
        res[key] = cell
    return res


def time_interleaved(a, bits, r, cells: dict, runs: int) -> None:
    """enc_s and dec_s of the HLC 9/7 path and of OpenJPEG 9/7 at its matched setting
    (cells["j2k"]["param"]), each run timing the four operations in turn: both codecs
    see the same machine load (medians of ``runs``)."""
    j2k = refs.jpeg2k_97(cells["j2k"]["param"])
    kw = dict(mode="lossy", bpp=r, bits_stored=bits, threads=1, try_near_lossless=False)
    h_stream, j_stream = hlc.encode(a, **kw), j2k.encode(a, bits)
    ops = {("hlc97", "enc_s"): lambda: hlc.encode(a, **kw), ("j2k", "enc_s"): lambda: j2k.encode(a, bits),
           ("hlc97", "dec_s"): lambda: hlc.decode(h_stream, threads=1), ("j2k", "dec_s"): lambda: j2k.decode(j_stream)}
    times: dict = {k: [] for k in ops}
    for _ in range(runs):
        for k, fn in ops.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    for (codec, field), ts in times.items():
        cells[codec][field] = statistics.median(ts)


def run_ref(a, bits, signed, budget, make, lo, hi, increasing, runs=0, off=None) -> dict:
    """A reference codec with its parameter searched to fit ``budget`` bytes; signed
    images offset by ``off`` (default 2^(bits-1)) to unsigned."""
    off = ((1 << (bits - 1)) if signed else 0) if off is None else off
    unsigned = np.uint16 if a.dtype.itemsize == 2 else np.uint8
    # (an unsigned-only codec gets unsigned samples even when no offset is needed)
    src = refs.to_unsigned(a, off, unsigned) if off or (signed and a.dtype.kind == "i") else a
    streams: dict = {}

    def size_of(p):
        streams[p] = make(p).encode(src, bits)
        return len(streams[p])

    try:
        p, n, status, _ = _search(size_of, budget, lo, hi, increasing)
        out = np.asarray(make(p).decode(streams[p]))
        if out.ndim == a.ndim + 1 and out.shape[-1] == 3:  # AVIF at quality 100 (lossless) gives grey as RGB
            out = out[..., 0]
        if off or out.dtype != a.dtype:
            out = refs.from_unsigned(out, off, a.dtype)
        out = out.reshape(a.shape).astype(a.dtype, copy=False)
        cell = quality(a, out, n, bits)
        cell.update(status=status, param=p)  # status "saturated": its best quality is below the budget
        if runs:
            cell["enc_s"] = median_time(lambda: make(p).encode(src, bits), runs)
            cell["dec_s"] = median_time(lambda: make(p).decode(streams[p]), runs)
        return cell
    except Exception as e:  # reported in the table, never silently dropped
        return {"error": refs.short_error(e)}


def run_image(name: str, args) -> dict:
    a, bits, signed = load(name)
    row: dict = {"name": name, "modality": IMAGES[name], "shape": list(a.shape), "bits": bits,
                 "raw_bytes": int(a.nbytes), "rates": {}}
    for r in RATES:
        budget = int(math.floor(r * a.shape[0] * a.shape[1] / 8))
        cells = run_hlc(a, bits, r, 0 if args.speed_only else args.runs, args.speed_only)
        if args.speed_only:  # HLC's 9/7 path and OpenJPEG 9/7 only, timed interleaved
            cells["j2k"] = run_ref(a, bits, False, budget, refs.jpeg2k_97, 1.0, 6.03 * bits + 80.0, True)
            if args.runs and "param" in cells["j2k"]:
                time_interleaved(a, bits, r, cells, args.runs)
        elif not args.hlc_only:
            cells["j2k"] = run_ref(a, bits, False, budget, refs.jpeg2k_97, 1.0, 6.03 * bits + 80.0, True,
                                   args.runs)
            cells["jxl"] = run_ref(a, bits, signed, budget, lambda ld: refs.jpegxl_lossy(math.exp(ld)),
                                   math.log(0.01), math.log(25.0), False)
            # AVIF takes up to 12 bits: images whose range fits are offset by -min where
            # their values do not fit as they are (signed, or above 4095)
            lo_v, top = int(a.min()), int(a.max())
            avif_off = 0 if lo_v >= 0 and refs.avif_bits(top) else -lo_v
            avif_bits = refs.avif_bits(top + avif_off)
            cells["avif"] = (run_ref(a, bits, signed, budget, lambda q, b=avif_bits: refs.avif_lossy(q, b), 0.0, 100.0,
                                     True, off=avif_off) if avif_bits
                             else {"error": f"range {lo_v}..{top}: over 12 bits"})
        row["rates"][str(r)] = cells
        print(name, r, " ".join(f"{k}={c.get('psnr', float('nan')):.2f}" if "psnr" in c else f"{k}=ERR"
                                for k, c in cells.items()), flush=True)
    return row


# ------------------------------------------------------------------ report

def _f(x, nd=2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _psnr(cell: dict | None):
    return None if not cell or "psnr" not in cell else cell["psnr"]


def _ref(cell: dict) -> str:
    """A reference's PSNR, § where its quality parameter ran out below the budget."""
    if "error" in cell:
        return "n/a" if "12 bits" in cell["error"] else "error"
    return _f(_psnr(cell)) + (" §" if cell.get("status") == "saturated" else "")


def _mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else None


def report(rows: list, before: dict, command: str, elapsed: float, before_label: str = "main") -> str:
    L = ["# Lossy: HLC against JPEG 2000 9/7, JPEG XL and AVIF", "",
         f"Command: `{command}`  ",
         f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {elapsed / 60:.0f} min; Python "
         f"{platform.python_version()}, codec_core {hlc.__version__} (format v{hlc.VERSION}), git {_git()}; "
         f"one thread everywhere; machine shared (2 cores).", "",
         "Method: benchmarks/bench_lossy.py's docstring. PSNR in dB, peak = max − min of the image. "
         "`HLC 9/7` = `try_near_lossless=False` (the 9/7 path itself); `HLC` = default (the near-lossless "
         "takeover on; the coder it kept is named: lossless where the exact stream fit the budget). "
         "References: file ≤ the same budget (r × pixels / 8 bytes), "
         "as close as their parameter allows; HLC's own rate control lands in [−3%, 0] of it. "
         f"`before` = the same script run with `--hlc-only` on {before_label}. "
         "`9/7 +pad`: the 9/7 with the image's flat padding kept exact (codec_core/regions.py encode_padded). "
         f"Constants of the lossy coder were set on the dev images ({', '.join(DEV)}); the others are held out. "
         "§: the reference's quality parameter ran out below the budget (its file is smaller). "
         "n/a: AVIF does not take the image's range (over 12 bits).", ""]
    for r in RATES:
        L += _rate_table(rows, str(r), before)
    L += _summary(rows, before)
    L += _speed(rows)
    return "\n".join(L) + "\n"


def _rate_table(rows, r, before) -> list:
    L = [f"## {r} bpp", "",
         "| image | modality | shape | bits | HLC 9/7 bpp | HLC 9/7 | before 9/7 | HLC (coder) | J2K 9/7 | "
         "HLC 9/7 − J2K | JPEG XL | AVIF | SSIM HLC 9/7 / J2K / AVIF | max err HLC 9/7 / J2K |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        c = row["rates"][r]
        b = before.get(row["name"], {}).get("rates", {}).get(r, {}).get("hlc97")
        h, h2, j, x, av = c["hlc97"], c["hlc"], c.get("j2k", {}), c.get("jxl", {}), c.get("avif", {})
        d = None if _psnr(j) is None else h["psnr"] - j["psnr"]
        L.append(f"| {row['name']} | {row['modality']} | {'×'.join(map(str, row['shape']))} | {row['bits']} | "
                 f"{_f(h['bpp'], 3)} | {_f(h['psnr'])} | {_f(_psnr(b))} | {_f(h2['psnr'])} ({h2['coder']}) | "
                 f"{_ref(j)} | {_f(d)} | {_ref(x)} | {_ref(av)} | "
                 f"{_f(h['ssim'], 4)} / {_f(j.get('ssim'), 4)} / {_f(av.get('ssim'), 4)} | "
                 f"{h['max_err']} / {j.get('max_err', '–')} |")
    return L + [""]


def _exact_mean(xs) -> str:
    """The mean of the finite PSNRs, and how many streams were exact (infinite PSNR:
    the takeover's lossless streams), which the mean leaves out."""
    exact = sum(1 for x in xs if x is not None and math.isinf(x))
    return _f(_mean(xs)) + (f" (+{exact} exact)" if exact else "")


def _summary(rows, before) -> list:
    L = ["## Summary", "",
         "Means of PSNR (dB) over the images each codec coded; `(+n exact)`: n more streams were lossless "
         "(infinite PSNR, left out of the mean); Δ = HLC − reference on the images both coded; "
         "wins = images where HLC ≥ the reference. Where AVIF's file is lossless (synthetic OT images at 0.5 "
         "and 1.0 bpp) it is left out of the AVIF mean and Δ (n counts the rest). `≥ 128²`: without the "
         "64 × 64 images, where JPEG 2000's own overhead leaves it almost nothing (its PSNR there is "
         "meaningless, and inflates every mean).", "",
         "| bpp | set | n | HLC 9/7 | before 9/7 | HLC (default) | J2K 9/7 | HLC 9/7 − J2K | wins 9/7 ≥ J2K | "
         "wins HLC ≥ J2K | JPEG XL | AVIF (n) | HLC 9/7 − AVIF |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = [("all", rows), ("≥ 128²", [x for x in rows if min(x["shape"][:2]) >= 128])] + [
        (m, [x for x in rows if x["modality"] == m]) for m in sorted({x["modality"] for x in rows})]
    for r in map(str, RATES):
        for label, sub in groups:
            cs = [x["rates"][r] for x in sub]
            pj = [(c["hlc97"]["psnr"], c["hlc"]["psnr"], _psnr(c.get("j2k"))) for c in cs]
            pj = [p for p in pj if p[2] is not None]
            pa = [(c["hlc97"]["psnr"], _psnr(c.get("avif"))) for c in cs]
            pa = [p for p in pa if p[1] is not None and math.isfinite(p[1])]  # (AVIF lossless: left out)
            bef = [_psnr(before.get(x["name"], {}).get("rates", {}).get(r, {}).get("hlc97")) for x in sub]
            L.append(f"| {r} | {label} | {len(sub)} | {_f(_mean([c['hlc97']['psnr'] for c in cs]))} | "
                     f"{_f(_mean(bef))} | {_exact_mean([c['hlc']['psnr'] for c in cs])} | "
                     f"{_f(_mean([p[2] for p in pj]))} | {_f(_mean([p[0] - p[2] for p in pj]))} | "
                     f"{sum(p[0] >= p[2] for p in pj)}/{len(pj)} | {sum(p[1] >= p[2] for p in pj)}/{len(pj)} | "
                     f"{_f(_mean([_psnr(c.get('jxl')) for c in cs]))} | "
                     f"{_f(_mean([p[1] for p in pa]))} ({len(pa)}) | {_f(_mean([p[0] - p[1] for p in pa]))} |")
    return L + [""]


def _speed(rows) -> list:
    L = ["## Speed (one thread)", "",
         "MB/s of raw stored bytes; median of the runs; HLC = the 9/7 path with its rate control; OpenJPEG at its "
         "matched setting (one encode: its fixed-quality mode, no search).", "",
         "| bpp | image | raw MB | HLC enc | J2K enc | enc ratio | HLC dec | J2K dec | dec ratio |",
         "|---|---|---|---|---|---|---|---|---|"]
    tot: dict = {}
    for r in map(str, RATES):
        for row in rows:
            h, j = row["rates"][r]["hlc97"], row["rates"][r].get("j2k", {})
            if "enc_s" not in h or "enc_s" not in j:
                continue
            mb = row["raw_bytes"] / 1e6
            for k in ("h_enc", "j_enc", "h_dec", "j_dec"):
                tot.setdefault((r, k), 0.0)
            tot[(r, "h_enc")] += h["enc_s"]
            tot[(r, "j_enc")] += j["enc_s"]
            tot[(r, "h_dec")] += h["dec_s"]
            tot[(r, "j_dec")] += j["dec_s"]
            tot[(r, "mb")] = tot.get((r, "mb"), 0.0) + mb
            L.append(f"| {r} | {row['name']} | {mb:.2f} | {mb / h['enc_s']:.1f} | {mb / j['enc_s']:.1f} | "
                     f"{j['enc_s'] / h['enc_s']:.2f} | {mb / h['dec_s']:.1f} | {mb / j['dec_s']:.1f} | "
                     f"{j['dec_s'] / h['dec_s']:.2f} |")
        if (r, "mb") in tot:
            mb = tot[(r, "mb")]
            L.append(f"| {r} | **all (total MB / total time)** | {mb:.2f} | {mb / tot[(r, 'h_enc')]:.1f} | "
                     f"{mb / tot[(r, 'j_enc')]:.1f} | **{tot[(r, 'j_enc')] / tot[(r, 'h_enc')]:.2f}** | "
                     f"{mb / tot[(r, 'h_dec')]:.1f} | {mb / tot[(r, 'j_dec')]:.1f} | "
                     f"**{tot[(r, 'j_dec')] / tot[(r, 'h_dec')]:.2f}** |")
    return L + [""]


def _replace_speed(out: Path, rows: list, command: str, elapsed: float) -> None:
    """The Speed section of ``out`` (the rest of the report left as it is) from a
    --speed-only run, with the command, commit and machine that made it."""
    section = _speed(rows)
    section[1:1] = ["", f"`{command}` (--speed-only, commit {_git()}, {platform.machine()}, "
                        f"{time.strftime('%Y-%m-%d')}, {elapsed / 60:.0f} min)"]
    text = out.read_text() if out.exists() else ""
    head, sep, rest = text.partition("## Speed (one thread)")
    tail = rest[rest.find("\n## "):] if sep and "\n## " in rest else ("\n" if sep else "")
    out.write_text(head + "\n".join(section).rstrip("\n") + "\n" + tail)


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "?"
    except OSError:
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", help="comma-separated names (default: IMAGES)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per codec (0: no timing)")
    ap.add_argument("--hlc-only", action="store_true", help="HLC figures only (no references, no report)")
    ap.add_argument("--json", help="raw figures (default: results/lossy.json, or lossy_speed.json with "
                    "--speed-only, which must not overwrite the quality figures)")
    ap.add_argument("--out", default=str(RESULTS / "lossy.md"))
    ap.add_argument("--before", help="JSON of a --hlc-only run of another build (the before column)")
    ap.add_argument("--before-label", default="main", help="what the before column ran (for the report)")
    ap.add_argument("--speed-only", action="store_true",
                    help="only the HLC 9/7 path and OpenJPEG 9/7, timed: replaces the Speed section of --out")
    args = ap.parse_args(argv)
    args.json = args.json or str(RESULTS / ("lossy_speed.json" if args.speed_only else "lossy.json"))
    names = args.images.split(",") if args.images else list(IMAGES)
    t0 = time.time()
    rows = [run_image(n, args) for n in names]
    Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.hlc_only:
        return 0
    command = "python benchmarks/bench_lossy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.speed_only:
        _replace_speed(Path(args.out), rows, command.strip(), time.time() - t0)
        print("wrote the Speed section of", args.out)
        return 0
    before = {x["name"]: x for x in json.loads(Path(args.before).read_text())} if args.before else {}
    Path(args.out).write_text(report(rows, before, command.strip(), time.time() - t0, args.before_label))
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
