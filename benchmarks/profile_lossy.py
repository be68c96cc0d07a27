#!/usr/bin/env python
"""Where lossy coding spends its time: cProfile of HLC's 9/7 path (one thread, no
near-lossless takeover) over real images at 0.25, 0.5 and 1.0 bpp, each stage's
cumulative share (stages nest: the statistics pass includes its transform).

    nice -n 10 python benchmarks/profile_lossy.py enc [IMAGES]
    nice -n 10 python benchmarks/profile_lossy.py dec [IMAGES]

IMAGES: comma-separated exact pydicom/pydicom-data names (default below), loaded as
benchmarks/bench_lossy.py loads them. Figures under cProfile on a shared machine:
compare shares, and totals only between runs made one after the other.
"""
from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_lossy import load  # noqa: E402

import codec_core as hlc  # noqa: E402

DEFAULT = ("693_UNCR.dcm,MR2_UNCR.dcm,US1_UNCR.dcm,RG3_UNCR.dcm,CT_small.dcm,MR_small.dcm,OBXXXX1A.dcm,"
           "JPGLosslessP14SV1_1s_1f_8b.dcm")
#: stage: (file suffix or "", function name); the first match per stage is reported
STAGES = {
    "statistics pass (transform + histograms)": ("ratecontrol.py", "gather"),
    "rate model (solve)": ("ratecontrol.py", "solve"),
    "codings (LossyCoder.encode)": ("encoder.py", "encode"),
    "forward 9/7 (all)": ("transform.py", "forward"),
    "quantise": ("quantize.py", "quantise"),
    "  of which compiled detail bands (rdoquant.c)": ("quantize.py", "_native_detail"),
    "padding path (regions.encode_padded)": ("regions.py", "encode_padded"),
    "  padding fill (smooth_fill)": ("regions.py", "smooth_fill"),
    "  region stream packing (_pack)": ("regions.py", "_pack"),
    "entropy coding": ("entropy.py", "encode_decomposition"),
    "entropy decoding": ("entropy.py", "decode_decomposition"),
    "reconstruction (dequantise + inverse 9/7)": ("pipeline.py", "reconstruct_lossy_plane"),
}


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "enc"
    names = (argv[1] if len(argv) > 1 else DEFAULT).split(",")
    prof, total = cProfile.Profile(), 0.0
    for name in names:
        a, bits, _ = load(name)
        for r in (0.25, 0.5, 1.0):
            kw = dict(mode="lossy", bpp=r, bits_stored=bits, threads=1, try_near_lossless=False)
            data = hlc.encode(a, **kw)
            t0 = time.perf_counter()
            prof.enable()
            hlc.encode(a, **kw) if what == "enc" else hlc.decode(data, threads=1)
            prof.disable()
            total += time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    print(f"{what}: {total:.3f} s over {len(names)} images x 3 rates (under cProfile)")
    for stage, (suffix, fn) in STAGES.items():
        cum = max((v[3] for (f, _, n), v in stats.items() if n == fn and f.endswith(suffix)), default=None)
        if cum is not None and cum > 0:
            print(f"  {stage:45s} {cum:7.3f} s {100 * cum / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
