#!/usr/bin/env python
"""Predictive near-lossless coder (codec_core.predictive) vs HLC today vs JPEG-LS.

    nice python benchmarks/bench_near_lossless.py            # -> benchmarks/results/near_lossless.md
    python benchmarks/bench_near_lossless.py --images CT_small.dcm --reps 1 --out /tmp/nl.md

For each pydicom test image and k = 0 (lossless), 1, 2, 4 it prints bits per sample
(bytes * 8 / samples) of

* PRED: ``codec_core.predictive.encode_plane(plane, k, min, max)``, one segment per
  plane; RGB: ``encode_planes([R, G, B], k, min, max, ref=1)`` (G coded first, R and B
  as is or as the difference from the reconstructed G); bare segments, no container;
* HLC: ``codec_core.encode(a, "near-lossless", max_error=k)`` (k = 0:
  ``"lossless"``), the whole file, ``threads=1``, of this checkout (which may
  already use PRED) and, as "HLC base", of the codec_core of ``--baseline REV``
  (default: the last revision before the predictive coder was integrated, i.e.
  5/3 wavelet on samples pre-quantised with step 2k+1), extracted with
  ``git archive`` into a temporary directory and imported as ``hlc_base``;
* JPEG-LS: ``imagecodecs.jpegls_encode(plane, level=k)`` (CharLS NEAR = k), per
  plane. CharLS refuses signed arrays: signed images whose samples are all >= 0 are
  passed as uint16 (same values, marked *); images with negative samples are
  reported as refused, with an offset variant (plane - min as uint16, marked
  dagger) given for information only.

Every decoded result is checked against the bound (max |error| <= k, bit-exact at 0).
Speeds: MB/s of raw stored bytes (``a.nbytes``), single thread, process CPU time
(best of ``--reps`` runs), so that other load on the machine distorts them less.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

import codec_core  # noqa: E402
from codec_core.predictive import decode_plane, decode_planes, encode_plane, encode_planes  # noqa: E402

IMAGES = ("693_UNCR.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "RG1_UNCR.dcm",
          "RG3_UNCR.dcm", "JPEG2000_UNC.dcm", "US1_UNCR.dcm", "CT_small.dcm")
KS = (0, 1, 2, 4)


def load(name: str) -> np.ndarray:
    import pydicom
    import pydicom.data

    a = pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array  # exact name: no hang
    if a.ndim == 3 and a.shape[-1] not in (3, 4):
        a = a[0]  # multi-frame: first frame
    return a


def planes(a: np.ndarray) -> list[np.ndarray]:
    return [a[..., c] for c in range(a.shape[-1])] if a.ndim == 3 else [a]


def timed(fn, reps: int):
    best, out = float("inf"), None
    for _ in range(reps):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return out, max(best, 1e-9)


def check(rec: np.ndarray, a: np.ndarray, k: int, what: str) -> None:
    err = int(np.abs(rec.astype(np.int64) - a.astype(np.int64)).max(initial=0))
    if err > k:
        raise AssertionError(f"{what}: max error {err} > {k}")


def run_pred(a, k, reps):
    ps = planes(a)
    if len(ps) == 3:  # RGB: G is the reference plane
        lo, hi = int(a.min()), int(a.max())
        segs, te = timed(lambda: encode_planes(ps, k, lo, hi, ref=1), reps)
        recs, td = timed(lambda: decode_planes(segs, *ps[0].shape, k, lo, hi, ref=1), reps)
        for r, p in zip(recs, ps):
            check(r, p, k, "predictive")
        return sum(len(s) for s in segs), te, td
    lims = [(int(p.min()), int(p.max())) for p in ps]
    segs, te = timed(lambda: [encode_plane(p, k, lo, hi) for p, (lo, hi) in zip(ps, lims)], reps)
    recs, td = timed(lambda: [decode_plane(s, *p.shape, k, lo, hi)
                              for s, p, (lo, hi) in zip(segs, ps, lims)], reps)
    for r, p in zip(recs, ps):
        check(r, p, k, "predictive")
    return sum(len(s) for s in segs), te, td


def load_baseline(rev: str):
    """codec_core as of git revision ``rev``, imported as the package ``hlc_base``."""
    import importlib.util
    import subprocess
    import tarfile
    import tempfile

    tmp = tempfile.mkdtemp(prefix="hlc_base_")
    tar = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", rev, "codec_core"],
                         check=True, capture_output=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(tmp)
    path = os.path.join(tmp, "codec_core")
    spec = importlib.util.spec_from_file_location("hlc_base", os.path.join(path, "__init__.py"),
                                                  submodule_search_locations=[path])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hlc_base"] = mod
    spec.loader.exec_module(mod)
    return mod


def run_hlc(a, k, reps, lib=codec_core):
    if k == 0:
        enc = lambda: lib.encode(a, "lossless", threads=1)  # noqa: E731
    else:
        enc = lambda: lib.encode(a, "near-lossless", max_error=k, threads=1)  # noqa: E731
    data, te = timed(enc, reps)
    rec, td = timed(lambda: lib.decode(data, threads=1), reps)
    check(rec, a, k, "HLC")
    return len(data), te, td


def run_jls(a, k, reps):
    """Returns (bytes, enc s, dec s, mark) or None when CharLS refuses the image."""
    mark = ""
    ps = planes(a)
    if a.dtype.kind == "i":
        if int(a.min()) < 0:
            return None
        mark = "*"
    ps = [p.astype(np.uint16) if p.dtype.kind == "i" else p for p in ps]
    return _jls(ps, k, reps) + (mark,)


def run_jls_offset(a, k, reps):
    ps = [(p.astype(np.int64) - int(p.min())).astype(np.uint16) for p in planes(a)]
    return _jls(ps, k, reps) + ("†",)


def _jls(ps, k, reps):
    from codec_core.cli.references import jpegls_near

    jls = jpegls_near(k)  # (the reference codecs' table; bits stored are not CharLS's to take)
    segs, te = timed(lambda: [jls.encode(p, 0) for p in ps], reps)
    recs, td = timed(lambda: [jls.decode(s) for s in segs], reps)
    for r, p in zip(recs, ps):
        check(r, p, k, "JPEG-LS")
    return sum(len(s) for s in segs), te, td


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", default=",".join(IMAGES))
    ap.add_argument("--reps", type=int, default=3, help="timing runs (best is kept)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "near_lossless.md"))
    ap.add_argument("--baseline", default="1ebc269~1",
                    help="git revision of the HLC to compare with ('' to skip)")
    args = ap.parse_args()
    base = load_baseline(args.baseline) if args.baseline else None

    # compile / warm up outside the timings
    w = np.arange(64, dtype=np.int32).reshape(8, 8)
    decode_plane(encode_plane(w, 1, 0, 63), 8, 8, 1, 0, 63)
    for lib in (codec_core, base) if base else (codec_core,):
        lib.decode(lib.encode(w.astype(np.uint16), "near-lossless", max_error=1))

    rows = []
    speed = []
    sums = {k: {"pred": 0.0, "hlc": 0.0, "base": 0.0, "jls": 0.0, "n": 0} for k in KS}
    for name in args.images.split(","):
        a = load(name)
        mb = a.nbytes / 1e6
        n = a.size
        desc = f"{a.shape} {a.dtype} [{a.min()}, {a.max()}]"
        for k in KS:
            pb, pte, ptd = run_pred(a, k, args.reps)
            hb, hte, htd = run_hlc(a, k, args.reps)
            bb = run_hlc(a, k, 1, base)[0] if base else float("nan")
            jr = run_jls(a, k, args.reps)
            pred, hlc, hbase = pb * 8 / n, hb * 8 / n, bb * 8 / n
            if jr is None:
                ob = run_jls_offset(a, k, 1)[0] * 8 / n
                jtxt, jte, jtd, rel = f"refused († {ob:.3f})", None, None, ""
            else:
                jb, jte, jtd, mark = jr
                jls = jb * 8 / n
                jtxt = f"{jls:.3f}{mark}"
                rel = f"{100 * (pred / jls - 1):+.1f}%"
                s = sums[k]
                s["pred"] += pred
                s["hlc"] += hlc
                s["base"] += hbase
                s["jls"] += jls
                s["n"] += 1
            line = (f"| {name} | {k} | {pred:.3f} | {hlc:.3f} | {hbase:.3f} | {jtxt} | {rel} | "
                    f"{100 * (pred / hbase - 1):+.1f}% |")
            rows.append(line)
            speed.append(f"| {name} | {k} | {mb / pte:.1f} | {mb / ptd:.1f} | {mb / hte:.1f} | "
                         f"{mb / htd:.1f} | " + (f"{mb / jte:.1f} | {mb / jtd:.1f} |" if jte else "– | – |"))
            print(line, speed[-1].split("|", 3)[3], flush=True)
        rows.append(f"| *{desc}* | | | | | | | |")

    head = ["| image | k | PRED bpp | HLC now | HLC base | JPEG-LS | PRED vs JPEG-LS | PRED vs HLC base |",
            "|---|---|---|---|---|---|---|---|"]
    mean = ["| mean, images JPEG-LS accepts | k | PRED | HLC now | HLC base | JPEG-LS | "
            "PRED vs JPEG-LS | PRED vs HLC base |", "|---|---|---|---|---|---|---|---|"]
    for k in KS:
        s = sums[k]
        if s["n"]:
            p, h, b, j = (s[x] / s["n"] for x in ("pred", "hlc", "base", "jls"))
            mean.append(f"| ({s['n']} images) | {k} | {p:.3f} | {h:.3f} | {b:.3f} | {j:.3f} | "
                        f"{100 * (p / j - 1):+.1f}% | {100 * (p / b - 1):+.1f}% |")
    shead = ["| image | k | PRED enc | PRED dec | HLC enc | HLC dec | JPEG-LS enc | JPEG-LS dec |",
             "|---|---|---|---|---|---|---|---|"]
    load_avg = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    md = [
        "# Near-lossless: predictive coder vs HLC (5/3 on pre-quantised samples) vs JPEG-LS",
        "",
        f"Command: `{shlex.join(['python'] + sys.argv)}`  ",
        f"Date: {_dt.datetime.now().isoformat(timespec='seconds')}; {platform.platform()}; "
        f"python {platform.python_version()}; load average at the end {load_avg}",
        "",
        "bpp = coded bytes * 8 / samples (RGB: per sample of each channel). k = 0 is lossless "
        "(HLC column: `mode=\"lossless\"`). PRED = `codec_core.predictive.encode_plane` per plane "
        "(bare segments, sample range = the plane's min..max; RGB: `encode_planes`, G first, R/B "
        "possibly as differences from the reconstructed G); HLC now = whole `codec_core.encode` "
        f"file of this checkout (threads=1); HLC base = the same from codec_core at `{args.baseline}` "
        "(5/3 wavelet on samples pre-quantised with step 2k+1); JPEG-LS = CharLS `level=k` per plane. * = signed image with no negative "
        "samples, given to CharLS as uint16 (same values). † = CharLS refuses signed data; "
        "figure for the image shifted to unsigned, for information only. Every result was decoded "
        "and checked (max |error| <= k). Speeds: PRED and HLC now.",
        "",
        *head, *rows, "", *mean, "",
        "## Speed (MB/s of raw stored bytes, single thread, process CPU time, best of "
        f"{args.reps})", "", *shead, *speed, "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(md))
    print("\n".join(mean))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
