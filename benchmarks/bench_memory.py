"""Peak memory of HLC only: bench_codecs.py's memory child (one fresh subprocess per
image and operation, /proc/self/clear_refs, VmHWM - VmRSS, MALLOC_MMAP_THRESHOLD_=131072,
and the tracemalloc peak of a second run), without the codec comparisons around it.

    nice -n 10 python benchmarks/bench_memory.py --images 693_UNCR.dcm,US1_UNCR.dcm \\
        --jobs "lossy encode,lossy decode" --json /work/scratch/NAME/memory.json

Prints one line per image and job (multiples of the raw image size); ``--json`` keeps
the child's figures as bench_codecs.py's JSON does (its "memory" part).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "bench_codecs.py")
#: bench_codecs.py's memory jobs: (mode, operation) and the options each is coded with.
OPTIONS = {"lossless": {}, "lossy": {"bpp": 0.5}}


def measure(npy: str, im, mode: str, op: str) -> dict:
    """bench_codecs.py's memory child for one image (saved at ``npy``) and job."""
    spec = {"npy": npy, "op": op, "mode": mode, "kw": OPTIONS[mode], "bits": im.bits_stored, "axes": im.axes}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    p = subprocess.run([sys.executable, BENCH, "--_memchild", json.dumps(spec)], env=env, capture_output=True,
                       text=True, timeout=1800)
    if p.returncode:
        return {"error": (p.stderr.strip().splitlines() or [f"rc={p.returncode}"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from codec_core.cli.corpus import BENCH_CORPUS, load_corpus

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default=",".join(BENCH_CORPUS), help="comma-separated pydicom-data names")
    ap.add_argument("--jobs", default="lossless encode,lossless decode,lossy encode,lossy decode",
                    help="comma-separated 'mode operation' pairs (modes: lossless, lossy)")
    ap.add_argument("--json", help="write the figures here (image -> job -> the child's figures, and raw)")
    args = ap.parse_args(argv)
    jobs = [tuple(j.split()) for j in args.jobs.split(",") if j.strip()]
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="hlc_mem_") as tmp:
        for im in load_corpus([n.strip() for n in args.images.split(",") if n.strip()]):
            npy = os.path.join(tmp, "img.npy")
            np.save(npy, im.array)
            res: dict = {"raw": im.raw_bytes}
            for mode, op in jobs:
                r = res[f"{mode} {op}"] = measure(npy, im, mode, op)
                figures = r.get("error") or (f"RSS {r['rss_extra'] / im.raw_bytes:5.2f}x  "
                                             f"tracemalloc {r['tracemalloc_peak'] / im.raw_bytes:5.2f}x")
                print(f"{im.name:34s} {mode:8s} {op:6s} {figures}  (raw {im.raw_bytes / 1e6:.2f} MB)", flush=True)
            out[im.name] = res
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
