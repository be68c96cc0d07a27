#!/usr/bin/env python
"""Throughput of ``hlc batch`` with 1 and 2 local worker processes.

    nice python benchmarks/bench_batch.py                  # -> benchmarks/results/batch.md
    python benchmarks/bench_batch.py --copies 2 --runs 1 --out /tmp/batch.md

A source tree is made of copies of real pydicom-data images (CT 512x512 14-bit
signed, MR 484x484, CT 128x128, a 10-frame MR), and the whole ``hlc batch`` command
is timed, worker start-up included, as a user would see it: each run writes into a
fresh destination, runs with 1 and 2 workers alternate, and the median of ``--runs``
is reported. Target (issue 7): 2 workers >= 1.7 x the throughput of 1 worker.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMAGES = ("693_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "CT_small.dcm", "emri_small.dcm")
TARGET = 1.7


def make_tree(root: str, copies: int) -> tuple[int, int]:
    from pydicom.data import get_testdata_file

    n = size = 0
    for name in IMAGES:
        path = get_testdata_file(name)
        for i in range(copies):
            sub = os.path.join(root, f"series{i % 4}")
            os.makedirs(sub, exist_ok=True)
            dst = os.path.join(sub, f"{i:03d}_{name}")
            shutil.copy(path, dst)
            n += 1
            size += os.path.getsize(dst)
    return n, size


_SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(8_000_000):\n    x += i\nprint(time.perf_counter() - t)"


def calibrate() -> float:
    """How much parallelism the machine gives right now: the speed-up of two CPU-bound
    processes over one (2.0 on an idle 2-core machine, ~1.0 when other work holds a core)."""
    def spin(n: int) -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.DEVNULL) for _ in range(n)]
        for p in procs:
            p.wait()
        return time.perf_counter() - t0
    one = statistics.median(spin(1) for _ in range(3))
    two = statistics.median(spin(2) for _ in range(3))
    return 2 * one / two


def run_once(src: str, dst: str, workers: int, extra: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p))
    cmd = [sys.executable, "-m", "codec_core.cli.main", "batch", src, dst, "--workers", str(workers),
           "--no-progress", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"hlc batch failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, default=12, help="copies of each image (default 12)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per worker count (median)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "batch.md"))
    p.add_argument("--options", default="", help="extra hlc batch options, e.g. '--bpp 0.5'")
    args = p.parse_args(argv)
    extra = shlex.split(args.options)

    with tempfile.TemporaryDirectory(prefix="hlc_bench_batch_") as tmp:
        src = os.path.join(tmp, "src")
        files, size = make_tree(src, args.copies)
        load_before = os.getloadavg()
        capacity_before = calibrate()
        run_once(src, os.path.join(tmp, "warm"), 1, extra)   # page cache, first imports
        times: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.runs):
            for w in (1, 2):
                dst = os.path.join(tmp, f"out_{w}_{r}")
                times[w].append(run_once(src, dst, w, extra))
                shutil.rmtree(dst)
                print(f"run {r + 1}: {w} worker(s) {times[w][-1]:.2f} s", flush=True)
        load_after = os.getloadavg()
        capacity_after = calibrate()

    med = {w: statistics.median(t) for w, t in times.items()}
    speedup = med[1] / med[2]
    rel = os.path.relpath(os.path.abspath(__file__), REPO)
    command = f"nice python {rel} " + " ".join(shlex.quote(a) for a in argv)
    rows = []
    for w in (1, 2):
        rows.append(f"| {w} | {files} | {size / 1e6:.1f} | {med[w]:.2f} | "
                    f"{', '.join(f'{t:.2f}' for t in times[w])} | {files / med[w]:.2f} | "
                    f"{size / 1e6 / med[w]:.2f} | {med[1] / med[w]:.2f}x |")
    verdict = "meets" if speedup >= TARGET else "MISSES"
    text = f"""# hlc batch throughput: 1 and 2 worker processes

Command: `{command.strip()}` (from the repository root)

Date: {_dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; Python {platform.python_version()};
{os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}
(the machine is shared: other work running at the same time lowers both figures).

Workload: {files} DICOM files ({size / 1e6:.1f} MB), {args.copies} copies each of
{', '.join(IMAGES)}; `hlc batch SRC DST --workers N --no-progress {' '.join(extra)}`
(default: lossless, DICOM output in the HLC transfer syntax). Wall time of the whole
command, worker start-up included, median of {args.runs} runs after one untimed warm-up run.

| workers | files | MB in | median s | runs (s) | files/s | MB/s | speed-up |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Speed-up with 2 workers: **{speedup:.2f}x** - {verdict} the target of {TARGET}x.

Parallel capacity the machine gave at the time (two CPU-bound pure-Python processes
against one; 2.00 on an idle 2-core machine): {capacity_before:.2f} before, {capacity_after:.2f}
after. Batch scaling relative to that capacity: {speedup / max(min(capacity_before, capacity_after), 1e-9):.2f}
(1.00 = the batch scales as well as the machine allows).
"""
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(text)
    print(text)
    return 0 if speedup >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
