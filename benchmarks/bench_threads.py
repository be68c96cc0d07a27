#!/usr/bin/env python
"""Two threads against one: how much faster HLC decodes (and encodes) large images.

    nice python benchmarks/bench_threads.py                 # -> benchmarks/results/threads.md
    python benchmarks/bench_threads.py --rounds 3 --out /tmp/t.md

HLC codes tiles (512 x 512 by default) and the frames of a stack in parallel; the
compiled kernels release the GIL. Images: the corpus images of at least 1024 x 1024
samples a frame (several tiles each), and a mosaic of them 2048 x 2048, in lossless,
near-lossless (max_error=2) and lossy (0.5 bpp) mode. Each round times threads=1 and
threads=2 back to back (order alternating between rounds), so that load on a shared
machine hits both alike; the figure is the median over rounds. The speed-up is only
meaningful with two otherwise idle cores: the report prints the load average seen.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import codec_core  # noqa: E402
from codec_core.cli.corpus import BENCH_CORPUS, load_corpus  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = (("lossless", "lossless", {}), ("max_error=2", "near-lossless", {"max_error": 2}),
         ("lossy 0.5 bpp", "lossy", {"bpp": 0.5}))


def _large(images: list) -> list[tuple[str, np.ndarray]]:
    """(name, 2-D array) of every single-frame grey image >= 1024^2, plus their mosaic."""
    out = [(im.name, im.array) for im in images
           if im.array.ndim == 2 and im.array.shape[0] * im.array.shape[1] >= 1 << 20]
    same = [a for _, a in out if a.dtype == out[0][1].dtype] if out else []
    if len(same) >= 1:
        tiles = [a[:1024, :1024] for a in same if a.shape[0] >= 1024 and a.shape[1] >= 1024]
        if tiles:
            quad = [tiles[i % len(tiles)] for i in range(4)]
            out.append(("mosaic 2048² of the above", np.block([[quad[0], quad[1]], [quad[2], quad[3]]])))
    return out


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(images: list, rounds: int) -> list[dict]:
    rows = []
    for name, arr in images:
        for label, mode, opts in MODES:
            data = codec_core.encode(arr, mode, threads=1, **opts)
            assert codec_core.encode(arr, mode, threads=2, **opts) == data  # same bytes, any threads
            times: dict[str, list[float]] = {"enc1": [], "enc2": [], "dec1": [], "dec2": []}
            for r in range(rounds):
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for t in order:
                    times[f"enc{t}"].append(_time(lambda t=t: codec_core.encode(arr, mode, threads=t, **opts)))
                    times[f"dec{t}"].append(_time(lambda t=t: codec_core.decode(data, threads=t)))
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append({"image": name, "shape": "×".join(map(str, arr.shape)), "mode": label,
                         "mb": arr.nbytes / 1e6, **med})
            print(f"{name} {label}: decode {med['dec1'] / med['dec2']:.2f}x, "
                  f"encode {med['enc1'] / med['enc2']:.2f}x", flush=True)
    return rows


def report(rows: list[dict], rounds: int, load: tuple, command: str) -> str:
    lines = ["# Two threads against one (HLC)", "",
             f"Made by `{command}` on {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
             f"{platform.machine()}, {os.cpu_count()} cores; {rounds} rounds, medians. "
             f"Load average before / after: {load[0]:.2f} / {load[1]:.2f} "
             "(a speed-up near 2 needs two otherwise idle cores).", "",
             "| image | shape | mode | decode MB/s 1 thread | 2 threads | speed-up | "
             "encode MB/s 1 thread | 2 threads | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['shape']} | {r['mode']} | {r['mb'] / r['dec1']:.1f} | "
                     f"{r['mb'] / r['dec2']:.1f} | {r['dec1'] / r['dec2']:.2f}× | {r['mb'] / r['enc1']:.1f} | "
                     f"{r['mb'] / r['enc2']:.1f} | {r['enc1'] / r['enc2']:.2f}× |")
    for label, _, _ in MODES:
        sub = [r for r in rows if r["mode"] == label]
        if sub:
            d = statistics.median(r["dec1"] / r["dec2"] for r in sub)
            e = statistics.median(r["enc1"] / r["enc2"] for r in sub)
            lines.append(f"\n{label}: median speed-up decode {d:.2f}×, encode {e:.2f}× "
                         f"(range decode {min(r['dec1'] / r['dec2'] for r in sub):.2f}–"
                         f"{max(r['dec1'] / r['dec2'] for r in sub):.2f}×)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=os.path.join(HERE, "results", "threads.md"))
    a = p.parse_args(argv)
    images = _large(load_corpus(BENCH_CORPUS))
    load0 = os.getloadavg()[0]
    rows = measure(images, a.rounds)
    text = report(rows, a.rounds, (load0, os.getloadavg()[0]),
                  "python benchmarks/bench_threads.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
