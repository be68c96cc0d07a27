#!/usr/bin/env python
"""Lossy encode speed of two HLC revisions and of OpenJPEG 9/7, interleaved, in one run.

    nice -n 10 python benchmarks/bench_lossy_ab.py --before af514f1           # vs the working tree
    python benchmarks/bench_lossy_ab.py --before af514f1 --runs 5 --images MR2_UNCR.dcm,CT_small.dcm

For each of bench_lossy.py's images (loaded as it loads them) and rates, the
``--before`` revision (exported and built as benchmarks/bench_ab.py does) and the
installed package (the working tree for an editable install) each encode with
``mode="lossy", bpp=r, try_near_lossless=False, threads=1`` in a worker process of
their own, and OpenJPEG 9/7 at its matched setting (bench_lossy.py's search: its file
at most the same budget) in this one; each run times the three in turn, so all see
the same machine load. Medians of ``--runs``; encode ratios against OpenJPEG per
image and as sums of time per rate (bench_lossy.py's Speed section's figure).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from bench_ab import export  # noqa: E402
from bench_lossy import IMAGES, RATES, load, run_ref  # noqa: E402

from codec_core.cli import references as refs  # noqa: E402

_WORKER = r"""
import os, sys, time
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
sys.path.insert(0, sys.argv[1])
import codec_core as hlc
from bench_lossy import load
images = {}
for line in sys.stdin:
    name, r = line.split()
    if name not in images:
        images[name] = load(name)
    a, bits, _ = images[name]
    t0 = time.perf_counter()
    data = hlc.encode(a, mode="lossy", bpp=float(r), bits_stored=bits, threads=1, try_near_lossless=False)
    print(time.perf_counter() - t0, len(data), flush=True)
"""


class Worker:
    """One revision's encoder in a process of its own (``path``: its codec_core's
    folder first on the path; None: the installed package)."""

    def __init__(self, path: str | None) -> None:
        env = dict(os.environ)
        if path:
            env["PYTHONPATH"] = path
        else:
            env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(HERE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir())

    def encode(self, name: str, r: float) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{name} {r}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline().split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision to compare against")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", help="comma-separated names (default: bench_lossy.IMAGES)")
    args = ap.parse_args()
    names = args.images.split(",") if args.images else list(IMAGES)
    with tempfile.TemporaryDirectory() as tmp:
        export(args.before, tmp)
        before, after = Worker(tmp), Worker(None)
        sums: dict = {}
        print("| bpp | image | before × OpenJPEG | after × OpenJPEG | after / before speed |\n|---|---|---|---|---|")
        for name in names:
            a, bits, _ = load(name)
            for r in RATES:
                budget = int(math.floor(r * a.shape[0] * a.shape[1] / 8))
                j2k = refs.jpeg2k_97(run_ref(a, bits, False, budget, refs.jpeg2k_97, 1.0, 6.03 * bits + 80.0,
                                             True)["param"])
                before.encode(name, r), after.encode(name, r)  # (warm: images loaded, modules imported)
                times: dict = {"b": [], "a": [], "j": []}
                for _ in range(args.runs):
                    times["b"].append(before.encode(name, r))
                    times["a"].append(after.encode(name, r))
                    t0 = time.perf_counter()
                    j2k.encode(a, bits)
                    times["j"].append(time.perf_counter() - t0)
                b, af, j = (statistics.median(times[k]) for k in "baj")
                for k, v in (("b", b), ("a", af), ("j", j)):
                    sums[(r, k)] = sums.get((r, k), 0.0) + v
                print(f"| {r} | {name} | {j / b:.2f} | {j / af:.2f} | {b / af:.2f} |", flush=True)
        for r in RATES:
            b, af, j = (sums[(r, k)] for k in "baj")
            print(f"| {r} | **all (sums of time)** | **{j / b:.2f}** | **{j / af:.2f}** | {b / af:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
