"""Peak memory of HLC only: bench_codecs.py's memory child (one fresh subprocess per
image and operation, warmed up on a crop and on a small synthetic padded image,
/proc/self/clear_refs, VmHWM - VmRSS, MALLOC_MMAP_THRESHOLD_=131072, the file pages
the operation faulted in, and the tracemalloc peak of a second run), without the codec
comparisons around it.

    nice -n 10 python benchmarks/bench_memory.py --images 693_UNCR.dcm,US1_UNCR.dcm \\
        --jobs "lossy encode,lossy decode,hybrid encode" --bpp 0.25,0.5,1 \\
        --json /tmp/NAME/memory.json

Prints one line per image and job (multiples of the raw image size): peak extra RSS,
the anonymous (data) part of it (RSS less the file pages first touched by the
operation), those file pages, and tracemalloc. ``--json`` keeps the child's figures as
bench_codecs.py's JSON does (its "memory" part). Modes: lossless, lossy (at each
``--bpp``), hybrid (lossy with roi="auto", default background target).

``--mosaic K`` measures each image also as a K x K mosaic of itself (``np.tile``: the
same content at K^2 times the size, several tiles of the codec's 512^2): the fixed
costs of a coding, which dominate an image of one tile, against the costs that grow
with the image.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "bench_codecs.py")
#: The memory jobs' modes: the codec mode and the options each is coded with
#: (lossy: and a ``bpp``).
OPTIONS = {"lossless": ("lossless", {}), "lossy": ("lossy", {}), "hybrid": ("lossy", {"roi": "auto"})}


def measure(npy: str, im, mode: str, op: str, bpp: float = 0.5) -> dict:
    """bench_codecs.py's memory child for one image (saved at ``npy``) and job."""
    codec_mode, kw = OPTIONS[mode]
    kw = dict(kw, bpp=bpp) if mode == "lossy" else kw
    spec = {"npy": npy, "op": op, "mode": codec_mode, "kw": kw, "bits": im.bits_stored, "axes": im.axes}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    p = subprocess.run([sys.executable, BENCH, "--_memchild", json.dumps(spec)], env=env, capture_output=True,
                       text=True, timeout=1800)
    if p.returncode:
        return {"error": (p.stderr.strip().splitlines() or [f"rc={p.returncode}"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _sizes(im, k: int) -> list:
    """(name, image) of ``im`` and, for k > 1, of its k x k mosaic (frames and samples
    as they are: the rows and columns repeated)."""
    if k <= 1:
        return [(im.name, im)]
    rows_axis = im.axes.index("Y")
    reps = [1] * im.array.ndim
    reps[rows_axis] = reps[rows_axis + 1] = k
    big = np.tile(im.array, reps)
    return [(im.name, im), (f"{im.name} {k}x{k}", replace(im, array=big))]


def main(argv: list[str] | None = None) -> int:
    from codec_core.cli.corpus import BENCH_CORPUS, load_corpus

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default=",".join(BENCH_CORPUS), help="comma-separated pydicom-data names")
    ap.add_argument("--jobs", default="lossless encode,lossless decode,lossy encode,lossy decode",
                    help="comma-separated 'mode operation' pairs (modes: lossless, lossy, hybrid)")
    ap.add_argument("--bpp", default="0.5", help="comma-separated rates of the lossy jobs")
    ap.add_argument("--json", help="write the figures here (image -> job -> the child's figures, and raw)")
    ap.add_argument("--mosaic", type=int, default=1,
                    help="also measure each image as a K x K mosaic of itself (named 'NAME KxK')")
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.bpp.split(",") if r.strip()]
    jobs = []
    for j in args.jobs.split(","):
        if j.strip():
            mode, op = j.split()
            jobs += [(mode, op, r) for r in rates] if mode == "lossy" else [(mode, op, 0.0)]
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="hlc_mem_") as tmp:
        for im in load_corpus([n.strip() for n in args.images.split(",") if n.strip()]):
            for name, image in _sizes(im, args.mosaic):
                npy = os.path.join(tmp, "img.npy")
                np.save(npy, image.array)
                res: dict = {"raw": image.raw_bytes}
                for mode, op, bpp in jobs:
                    key = f"{mode}@{bpp:g} {op}" if mode == "lossy" and len(rates) > 1 else f"{mode} {op}"
                    r = res[key] = measure(npy, image, mode, op, bpp)
                    x = {k: v / image.raw_bytes for k, v in r.items() if isinstance(v, (int, float))}
                    figures = r.get("error") or (
                        f"RSS {x['rss_extra']:5.2f}x  anon {x['anon_extra']:5.2f}x  "
                        f"file {x['file_growth']:5.2f}x  tracemalloc {x['tracemalloc_peak']:5.2f}x")
                    print(f"{name:34s} {key:18s} {figures}  (raw {image.raw_bytes / 1e6:.2f} MB)", flush=True)
                out[name] = res
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
