#!/usr/bin/env python
"""Before/after speed of two HLC revisions on the same images, interleaved, in one run.

    nice -n 10 python benchmarks/bench_ab.py --before c6dced8                  # vs the working tree
    python benchmarks/bench_ab.py --before c6dced8 --rounds 6 --images 693_UNCR.dcm,MR2_UNCR.dcm

The ``--before`` revision's ``codec_core`` and ``setup.py`` are exported with ``git
archive`` into a temporary folder and its kernels compiled there (``setup.py
build_ext --inplace``, the flags of that revision); the "after" side is the installed
package (the working tree for an editable install). Each round runs one fresh process
per side (order alternating between rounds); a process times every image's lossless
and near-lossless (k = 2) encode and decode ``--reps`` times, single-threaded, in
process CPU time, and keeps the minimum. The figure is the minimum over rounds: on a
machine shared with other jobs the minimum is the least disturbed run (an A/A run of
this protocol, one build against a copy of itself, agrees within 1-2%; the medians of
wall times did not, by up to 25%). Stream sizes are printed beside: a change meant to
keep the bytes must show "same".
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_IMAGES = ("693_UNCR.dcm,MR2_UNCR.dcm,MR-SIEMENS-DICOM-WithOverlays.dcm,JPEG2000_UNC.dcm,"
                  "eCT_Supplemental.dcm,OBXXXX1A.dcm")
MODES = (("L", "lossless", {}), ("N2", "near-lossless", {"max_error": 2}))

_CHILD = r"""
import json, os, sys, time
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
import codec_core
from codec_core.cli.corpus import load_corpus
names, reps, modes = sys.argv[1].split(","), int(sys.argv[2]), json.loads(sys.argv[3])
out = {}
for im in load_corpus(names):
    for tag, mode, kw in modes:
        te, td = [], []
        for _ in range(reps):
            t = time.process_time(); s = codec_core.encode(im.array, mode, threads=1, **kw)
            te.append(time.process_time() - t)
            t = time.process_time(); codec_core.decode(s, threads=1); td.append(time.process_time() - t)
        out[f"{im.name}|{tag}"] = [min(te), min(td), len(s), im.array.nbytes]
print(json.dumps(out))
"""


def export(rev: str, dest: str) -> None:
    """``rev``'s package and build script in ``dest``, its kernels compiled in place."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "codec_core", "setup.py", "pyproject.toml",
                              "hybrid_plugins", "README.md"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=dest, check=True,
                   capture_output=True)


def run_side(path: str | None, names: str, reps: int) -> dict:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    else:
        env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", _CHILD, names, str(reps), json.dumps(MODES)], env=env,
                         cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def report(before: list[dict], after: list[dict]) -> list[str]:
    lines = ["| image | mode | encode before / after ms | speed-up | decode before / after ms | speed-up | bytes |",
             "|---|---|---|---|---|---|---|"]
    logs: dict[str, list[float]] = {}
    for key in before[0]:
        b = [min(r[key][i] for r in before) for i in (0, 1)]
        a = [min(r[key][i] for r in after) for i in (0, 1)]
        name, tag = key.split("|")
        same = "same" if before[0][key][2] == after[0][key][2] else f"{before[0][key][2]} -> {after[0][key][2]}"
        lines.append(f"| {name} | {tag} | {1e3 * b[0]:.2f} / {1e3 * a[0]:.2f} | {b[0] / a[0]:.3f}× "
                     f"| {1e3 * b[1]:.2f} / {1e3 * a[1]:.2f} | {b[1] / a[1]:.3f}× | {same} |")
        for i, op in enumerate(("encode", "decode")):
            logs.setdefault(f"{tag} {op}", []).append(math.log(b[i] / a[i]))
    lines.append("")
    lines += [f"- {k}: geometric mean speed-up {math.exp(sum(v) / len(v)):.3f}× over {len(v)} images"
              for k, v in logs.items()]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--images", default=DEFAULT_IMAGES)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export(args.before, tmp)
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for r in range(args.rounds):
            for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
                runs[side].append(run_side(tmp if side == "before" else None, args.images, args.reps))
    print(f"before: {args.before}; after: the installed package; {args.rounds} rounds x {args.reps} reps, "
          "process CPU time, minimum")
    print("\n".join(report(runs["before"], runs["after"])))


if __name__ == "__main__":
    main()
