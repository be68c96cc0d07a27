"""The 9/7 synthesis (and analysis) kernels of codec_core/_native/wavelet97.c: this tree's
against an earlier revision's, interleaved, medians; results in benchmarks/results/lossy_speed.md.

    python benchmarks/bench_synth97.py --base 7625915 [--base-build DIR]

1. Kernels alone: wavelet97.c of --base (from git) and of this tree, each compiled the way
   setup.py builds the extension (-O3 -ffp-contract=off ...) into a scratch shared library
   and called through ctypes, on the same bands: the decoder's path (hlc_synth97_level a
   level at a time, int16 output), the whole-plane kernel (hlc_synth97) and the analysis
   (hlc_fwd97); synthetic bands (a smooth image plus noise, step 6: most coefficients
   non-zero, random signs) and the bands the decoder hands over for real images at 0.25,
   0.5 and 1 bpp. ns per output sample; the outputs are checked equal.
2. With --base-build DIR (a `git archive` of --base with its extension built in place):
   whole decodes in one process, the base build's synth97/synth97_level swapped in for
   alternate runs (all else the same code). ms per decode; outputs checked equal.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib.machinery
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402

import codec_core as hlc  # noqa: E402
from codec_core import _hlc, decoder, quantize, transform  # noqa: E402

NAT = ROOT / "codec_core" / "_native"
FLAGS = ["-O3", "-fwrapv", "-std=c99", "-ffp-contract=off", "-fno-strict-aliasing", "-fPIC", "-shared", f"-I{NAT}"]
IMAGES = ("MR2_UNCR.dcm", "RG3_UNCR.dcm", "RG1_UNCR.dcm", "693_UNCR.dcm", "US1_UNCR.dcm")
P = ctypes.c_void_p


def ptr(a: np.ndarray):
    return a.ctypes.data_as(P)


def _sources(base: str, tmp: str) -> list[str]:
    """wavelet97.c of ``base`` and, from the revision that has it on, isa.c (the vector
    build's choice, kernels.h), with their header, in a directory of their own."""
    d = Path(tmp) / "old"
    d.mkdir(exist_ok=True)
    out = []
    for name in ("wavelet97.c", "isa.c", "kernels.h", "rangecoder.h"):
        try:
            text = subprocess.check_output(["git", "-C", str(ROOT), "show", f"{base}:codec_core/_native/{name}"],
                                           stderr=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            continue  # (isa.c: not in revisions before stop 28)
        (d / name).write_bytes(text)
        if name.endswith(".c"):
            out.append(str(d / name))
    return out


def build(base: str, tmp: str) -> dict:
    libs = {}
    new = [str(NAT / "wavelet97.c"), str(NAT / "isa.c")]
    for name, srcs in (("old", _sources(base, tmp)), ("new", new)):
        so = Path(tmp) / f"w97_{name}.so"
        subprocess.check_call(["gcc", *FLAGS, *srcs, "-o", str(so), "-lm"])
        libs[name] = ctypes.CDLL(str(so))
    return libs


def synth_levels(lib, q: list, steps: np.ndarray, recon: float) -> tuple[float, np.ndarray]:
    """The decoder's path: a level at a time (the old kernel overwrites the bands: q is a copy)."""
    levels = (len(q) - 1) // 3
    ll = q[0]
    work = np.empty(8 * (q[0].shape[1] << levels) + 64, np.float32)
    t0 = time.perf_counter()
    for k in range(levels):
        hl, lh, hh = q[1 + 3 * k:4 + 3 * k]
        h, w = ll.shape[0] + lh.shape[0], ll.shape[1] + hl.shape[1]
        last = k == levels - 1
        out = np.empty((h, w), np.int16 if last else np.float32)
        lib.hlc_synth97_level(ptr(ll), ctypes.c_int(ll.dtype == np.int32), ctypes.c_float(steps[0]), ptr(hl), ptr(lh),
                              ptr(hh), ptr(steps[1 + 3 * k:]), ctypes.c_float(recon), h, w, ptr(out),
                              ctypes.c_size_t(w), ctypes.c_int(1 if last else -1), ctypes.c_double(-32768),
                              ctypes.c_double(32767),
                              ptr(work))
        ll = out
    return time.perf_counter() - t0, ll


def synth_plane(lib, q: list, steps: np.ndarray, recon: float) -> tuple[float, np.ndarray]:
    levels = (len(q) - 1) // 3
    rows = q[0].shape[0] + sum(q[2 + 3 * k].shape[0] for k in range(levels))
    cols = q[0].shape[1] + sum(q[1 + 3 * k].shape[1] for k in range(levels))
    arr = (P * len(q))(*[x.ctypes.data for x in q])
    out = np.empty((rows, cols), np.int16)
    t0 = time.perf_counter()
    lib.hlc_synth97(arr, levels, ptr(steps), ctypes.c_float(recon), rows, cols, ptr(out), 1, ctypes.c_double(-32768),
                    ctypes.c_double(32767))
    return time.perf_counter() - t0, out


def analyse(lib, img: np.ndarray, levels: int) -> tuple[float, np.ndarray]:
    x = img.copy()
    rows, cols = x.shape
    scratch = np.empty(((rows + 1) // 2) * (cols // 2) + cols + 16, np.float32)
    seen = np.empty(rows + 16, np.uint8)
    t0 = time.perf_counter()
    lib.hlc_fwd97(ptr(x), rows, cols, levels, 0, ptr(scratch), ptr(seen))
    return time.perf_counter() - t0, x


def ab(libs: dict, fn, args: tuple, runs: int, fresh: bool) -> tuple[dict, bool]:
    """Medians of old and new, interleaved (the order alternating); outputs equal?"""
    times: dict = {"old": [], "new": []}
    outs = {}
    for r in range(runs):
        for name in ("old", "new") if r % 2 else ("new", "old"):
            a = ([x.copy() for x in args[0]],) + args[1:] if fresh else args
            t, outs[name] = fn(libs[name], *a)
            times[name].append(t)
    same = np.array_equal(outs["old"].view(np.uint8), outs["new"].view(np.uint8))
    return {k: statistics.median(v) for k, v in times.items()}, same


def synthetic(n: int, levels: int) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:n, :n]
    img = (2000 + 800 * np.sin(x / 37.0) * np.cos(y / 23.0) + rng.normal(0, 30, (n, n))).astype(np.int32)
    b = transform.dwt97_forward(img, levels)
    steps = quantize.subband_steps(6.0, levels)
    flat = [b[0]] + [x for lvl in b[1:] for x in lvl]
    return [np.rint(f / s).astype(np.int32) for f, s in zip(flat, steps, strict=True)], np.asarray(steps, np.float32)


def real(name: str, bpp: float) -> tuple[bytes, list]:
    """A stream of the image and the first plane's bands as the decoder hands them over."""
    ds = pydicom.dcmread(get_testdata_file(name))
    data = hlc.encode(ds.pixel_array, mode="lossy", bpp=bpp, bits_stored=int(ds.BitsStored), threads=1,
                      try_near_lossless=False)
    got: list = []
    orig = decoder.reconstruct_lossy_plane

    def spy(qbands, h, steps, mult, upto=None, **kw):
        flat = [np.array(qbands[0], np.int32)] + [np.array(b, np.int32) for lvl in qbands[1:] for b in lvl]
        got.append((flat, np.asarray(steps[:len(flat)], np.float32), float(np.float32(h.recon_offset))))
        return orig(qbands, h, steps, mult, upto, **kw)
    decoder.reconstruct_lossy_plane = spy
    in_c = getattr(decoder, "_whole_plane_in_c", None)  # (the one-call plane decoder: not spied on)
    decoder._whole_plane_in_c = lambda *a: False
    try:
        hlc.decode(data, threads=1)
    finally:
        decoder.reconstruct_lossy_plane = orig
        if in_c is not None:
            decoder._whole_plane_in_c = in_c
    return data, got[0]


def kernels(libs: dict, runs: int) -> None:
    print("| bands | shape | path | old ns/sample | new ns/sample | old/new | same |\n|---|---|---|---|---|---|---|")
    for n in (512, 1024, 2048):
        q, steps = synthetic(n, 5)
        for path, fn in (("level", synth_levels), ("plane", synth_plane)):
            t, same = ab(libs, fn, (q, steps, 0.375), runs, fresh=True)
            print(f"| synthetic, step 6 | {n}^2, 5 levels | {path} | {t['old'] / n / n * 1e9:.2f} | "
                  f"{t['new'] / n / n * 1e9:.2f} | {t['old'] / t['new']:.2f} | {same} |", flush=True)
        img = np.random.default_rng(1).normal(0, 500, (n, n)).astype(np.float32)
        t, same = ab(libs, analyse, (img, 5), runs, fresh=False)
        print(f"| (analysis) | {n}^2, 5 levels | fwd97 | {t['old'] / n / n * 1e9:.2f} | {t['new'] / n / n * 1e9:.2f} | "
              f"{t['old'] / t['new']:.2f} | {same} |", flush=True)
    for name in IMAGES[:2]:
        for bpp in (0.25, 0.5, 1.0):
            _, (q, steps, recon) = real(name, bpp)
            size = synth_plane(libs["new"], q, steps, recon)[1].size
            t, same = ab(libs, synth_levels, (q, steps, recon), runs, fresh=True)
            print(f"| {name} {bpp} bpp, first plane | {size} samples | level | {t['old'] / size * 1e9:.2f} | "
                  f"{t['new'] / size * 1e9:.2f} | {t['old'] / t['new']:.2f} | {same} |", flush=True)


def decodes(base_build: str, runs: int) -> None:
    """Whole decodes, the base build's synthesis kernels swapped in for alternate runs."""
    path = next(Path(base_build, "codec_core").glob("_hlc*.so"))
    loader = importlib.machinery.ExtensionFileLoader("codec_core._hlc", str(path))
    spec = importlib.util.spec_from_file_location("codec_core._hlc", str(path), loader=loader)
    old = importlib.util.module_from_spec(spec)
    loader.exec_module(old)
    sys.modules["codec_core._hlc"] = _hlc  # (loading the base build's module replaced it)
    impl = {"old": (old.synth97, old.synth97_level), "new": (_hlc.synth97, _hlc.synth97_level)}
    print("\n| image | bpp | Msamples | old ms | new ms | old/new | same |\n|---|---|---|---|---|---|---|")
    try:
        for name in IMAGES:
            for bpp in (0.25, 0.5, 1.0):
                data, _ = real(name, bpp)
                times: dict = {"old": [], "new": []}
                outs = {}
                for r in range(runs):
                    for k in ("old", "new") if r % 2 else ("new", "old"):
                        _hlc.synth97, _hlc.synth97_level = impl[k]
                        t0 = time.perf_counter()
                        outs[k] = hlc.decode(data, threads=1)
                        times[k].append(time.perf_counter() - t0)
                o, n = (statistics.median(times[k]) * 1e3 for k in ("old", "new"))
                print(f"| {name} | {bpp} | {outs['new'].size / 1e6:.2f} | {o:.2f} | {n:.2f} | {o / n:.2f} | "
                      f"{np.array_equal(outs['old'], outs['new'])} |", flush=True)
    finally:
        _hlc.synth97, _hlc.synth97_level = impl["new"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="the revision whose wavelet97.c to compare with")
    ap.add_argument("--base-build", help="a built tree of --base: also time whole decodes")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kernels(build(args.base, tmp), args.runs)
    if args.base_build:
        decodes(args.base_build, args.runs)


if __name__ == "__main__":
    main()
