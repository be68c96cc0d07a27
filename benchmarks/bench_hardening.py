#!/usr/bin/env python
"""Hardening figures: thread scaling, leaks and peak memory.

* decode speed-up with 2 threads over 1 on a large image (target ~2x on 2 cores);
* RSS over 10,000 decode calls of a small image (target: growth within 5 %);
* peak extra memory of encode and decode for a 4096 x 4096 uint16 image and a
  200-frame 256 x 256 stack, as multiples of the raw size (target <= 4x).

Peak memory is measured in a fresh process per case: RSS sampled every 2 ms by a
thread, minus the RSS just before the call (input array already allocated, the
compiled kernels already loaded), and tracemalloc's peak (numpy and Python allocations).

    python benchmarks/bench_hardening.py            # writes benchmarks/results/hardening.md
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import psutil  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "hardening.md"


def _dicom(name: str) -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def big_image(n: int = 4096) -> np.ndarray:
    """A real CR image (RG1_UNCR, 1955 x 1841, 15-bit) mirrored out to n x n uint16."""
    a = _dicom("RG1_UNCR.dcm").astype(np.uint16)
    reps = (-(-n // a.shape[0]), -(-n // a.shape[1]))
    tiles = [[a if (i + j) % 2 == 0 else a[::-1, ::-1] for j in range(reps[1])] for i in range(reps[0])]
    return np.ascontiguousarray(np.block(tiles)[:n, :n])


def stack(frames: int = 200, side: int = 256) -> np.ndarray:
    """200 real MR frames: 256 x 256 windows of MR2_UNCR (1024 x 1024, 12-bit), shifted."""
    a = _dicom("MR2_UNCR.dcm").astype(np.uint16)
    rng = np.random.default_rng(0)
    out = np.empty((frames, side, side), np.uint16)
    for f in range(frames):
        y, x = rng.integers(0, a.shape[0] - side), rng.integers(0, a.shape[1] - side)
        out[f] = a[y:y + side, x:x + side]
    return out


# ------------------------------------------------------------------ speed-up

def speedup(runs: int = 5) -> dict:
    import codec_core as hlc
    img = big_image(4096)[:2048, :2048].copy()
    res = {}
    for mode, kw in (("lossless", {}), ("lossy 1 bpp", {"mode": "lossy", "bpp": 1.0})):
        data = hlc.encode(img, **kw)
        hlc.decode(data, threads=2)  # warm-up
        t = {}
        for threads in (1, 2):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                hlc.decode(data, threads=threads)
                times.append(time.perf_counter() - t0)
            t[threads] = statistics.median(times)
        res[mode] = {"t1": t[1], "t2": t[2], "speedup": t[1] / t[2],
                     "mb_s_1": img.nbytes / t[1] / 1e6, "mb_s_2": img.nbytes / t[2] / 1e6}
    res["shape"] = img.shape
    return res


# ---------------------------------------------------------------------- leak

def leak(calls: int = 10_000) -> dict:
    import codec_core as hlc
    mr = _dicom("MR_small.dcm")
    roi = np.zeros(mr.shape, bool)
    roi[10:40, 10:40] = True
    streams = [hlc.encode(mr), hlc.encode(mr, mode="near-lossless", max_error=2),
               hlc.encode(mr, mode="lossy", bpp=0.6, roi=roi, ecc="low")]
    proc = psutil.Process()
    for i in range(500):
        hlc.decode(streams[i % 3], threads=1 + i % 2)
    gc.collect()
    r0 = proc.memory_info().rss
    samples = []
    t0 = time.perf_counter()
    for i in range(calls):
        hlc.decode(streams[i % 3], threads=1 + i % 2)
        if i % 1000 == 999:
            samples.append(proc.memory_info().rss)
    dt = time.perf_counter() - t0
    gc.collect()
    r1 = proc.memory_info().rss
    return {"calls": calls, "rss0_mib": r0 / 2**20, "rss1_mib": r1 / 2**20, "growth_pct": 100 * (r1 - r0) / r0,
            "samples_mib": [round(s / 2**20, 1) for s in samples], "seconds": dt}


# -------------------------------------------------------------------- memory

_CHILD = r"""
import gc, json, sys, threading, time, tracemalloc
import numpy as np, psutil
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import bench_hardening as B
import codec_core as hlc
case, op, mode = sys.argv[2], sys.argv[3], sys.argv[4]
arr = B.big_image(4096) if case == "image" else B.stack(200, 256)
kw = {"lossless": {}, "lossy": {"mode": "lossy", "bpp": 1.0}, "near": {"mode": "near-lossless", "max_error": 2}}[mode]
hlc.decode(hlc.encode(arr[..., :64, :64].copy(), **kw))     # compile kernels first
data = hlc.encode(arr, **kw) if op == "decode" else None
gc.collect()
proc = psutil.Process()
base = proc.memory_info().rss
peak = [base]
stop = False
def sample():
    while not stop:
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.002)
th = threading.Thread(target=sample, daemon=True); th.start()
tracemalloc.start()
t0 = time.perf_counter()
out = hlc.encode(arr, **kw) if op == "encode" else hlc.decode(data)
dt = time.perf_counter() - t0
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
stop = True; th.join()
peak[0] = max(peak[0], proc.memory_info().rss)
print(json.dumps({"raw": arr.nbytes, "rss_extra": peak[0] - base, "traced": traced, "seconds": dt,
                  "size": len(out) if op == "encode" else len(data)}))
"""


def peak_memory(case: str, op: str, mode: str) -> dict:
    p = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), case, op, mode], capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--quick", action="store_true", help="lossless memory cases only")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    sp = speedup()
    lk = leak(args.calls)
    mem = {}
    modes = ["lossless"] if args.quick else ["lossless", "lossy"]
    for case in ("image", "stack"):
        for mode in modes:
            for op in ("encode", "decode"):
                mem[case, mode, op] = peak_memory(case, op, mode)
    load1 = os.getloadavg()
    cmd = "python benchmarks/bench_hardening.py " + " ".join(argv if argv is not None else sys.argv[1:])
    L = ["# Hardening: threads, leaks, peak memory", "",
         f"Command: `{cmd.strip()}`  ",
         f"Machine: {os.cpu_count()} cores, shared; load average {load0[0]:.1f} at start, {load1[0]:.1f} at end "
         "(other sessions were running: timings are lower bounds of what an idle machine gives).", "",
         f"## Decode speed-up, 2 threads vs 1 ({sp['shape'][0]} x {sp['shape'][1]} uint16, RG1_UNCR mirrored; "
         "median of 5)", "",
         "| mode | 1 thread s | 2 threads s | speed-up | MB/s 1 thread | MB/s 2 threads |", "|---|---|---|---|---|---|"]
    for mode in ("lossless", "lossy 1 bpp"):
        r = sp[mode]
        L.append(f"| {mode} | {r['t1']:.3f} | {r['t2']:.3f} | **{r['speedup']:.2f}x** | {r['mb_s_1']:.0f} | "
                 f"{r['mb_s_2']:.0f} |")
    L += ["", "Target ~2x on 2 cores.", "",
          f"## RSS over {lk['calls']:,} decode calls (MR_small: lossless, near-lossless, lossy+ROI+ECC; 1 and 2 "
          "threads)", "",
          f"- RSS after 500 warm-up calls: {lk['rss0_mib']:.1f} MiB; after {lk['calls']:,} more: "
          f"{lk['rss1_mib']:.1f} MiB: **growth {lk['growth_pct']:+.2f} %** (target within 5 %)",
          f"- every 1,000 calls (MiB): {', '.join(map(str, lk['samples_mib']))}",
          f"- {lk['calls'] / lk['seconds']:.0f} decodes/s", "",
          "## Peak extra memory (fresh process per case; x raw = bytes / raw image bytes)", "",
          "| image | mode | op | raw MiB | peak RSS extra | x raw | tracemalloc peak | x raw | seconds |",
          "|---|---|---|---|---|---|---|---|---|"]
    names = {"image": "4096 x 4096 uint16", "stack": "200 x 256 x 256 uint16"}
    for (case, mode, op), r in mem.items():
        if "error" in r:
            L.append(f"| {names[case]} | {mode} | {op} | | error: {r['error']} | | | | |")
            continue
        raw = r["raw"]
        L.append(f"| {names[case]} | {mode} | {op} | {raw / 2**20:.0f} | {r['rss_extra'] / 2**20:.0f} MiB | "
                 f"**{r['rss_extra'] / raw:.2f}** | {r['traced'] / 2**20:.0f} MiB | {r['traced'] / raw:.2f} | "
                 f"{r['seconds']:.2f} |")
    L += ["", "Target <= 4x raw. RSS extra is the high-water mark of the process during the call minus RSS "
          "before it (the input array and, for decode, the stream already allocated), sampled every 2 ms; "
          "the returned array/stream counts in it.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(L))
    print("\n".join(L))
    return 0


if __name__ == "__main__":
    sys.exit(main())
