#!/usr/bin/env python
"""Measure rate control's KAPPA: coded bits / modelled bits of the 9/7 layer at the
model's first step (codec_core/ratecontrol.py KAPPA), per image and rate, and its
median over the dev images and over the held-out ones (benchmarks/bench_lossy.py DEV).

    nice -n 10 python benchmarks/measure_kappa.py [--images A,B,...]

Coded bits: the layer's segments as the first coding of each size-targeted encode
made them, less strategy.SEGMENT_BYTES a segment (what the size rate control counts
beside the model: the header and the segments' flush bytes and lengths). Modelled
bits: ratecontrol.Model.bits at that coding's base step. Each encode is HLC's 9/7
path (``try_near_lossless=False``, one thread) at 0.25, 0.5 and 1.0 bpp of
bench_lossy.py's images, loaded as it loads them. Re-measure after any change to the
lossy coder's bytes (codec_core/_native/lossyband.c, bandcoder.c) or to the model, and
set KAPPA to the dev median.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_lossy import DEV, IMAGES, RATES, load  # noqa: E402

import codec_core as hlc  # noqa: E402
from codec_core import container as ct  # noqa: E402
from codec_core import encoder, strategy  # noqa: E402
from codec_core import ratecontrol as rc  # noqa: E402


def first_ratio(a, bits: int, bpp: float) -> float:
    """Coded / modelled bits at the first coding of one size-targeted encode."""
    seen: dict = {}
    model_of, solve, encode = strategy._model, rc.solve, encoder.LossyCoder.encode

    def keep_model(coder):
        seen["model"] = model_of(coder)
        return seen["model"]

    def keep_step(*args, **kw):
        step = solve(*args, **kw)
        seen.setdefault("step", step)
        return step

    def keep_body(self, steps):
        body = encode(self, steps)
        if "coded" not in seen:
            seen["coded"] = 8 * (sum(map(len, body)) - strategy.SEGMENT_BYTES * ct.segment_layout(self.h).count)
        return body

    strategy._model, rc.solve, encoder.LossyCoder.encode = keep_model, keep_step, keep_body
    try:
        hlc.encode(a, mode="lossy", bpp=bpp, bits_stored=bits, threads=1, try_near_lossless=False)
    finally:
        strategy._model, rc.solve, encoder.LossyCoder.encode = model_of, solve, encode
    return seen["coded"] / seen["model"].bits(seen["step"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", help="comma-separated names (default: bench_lossy.IMAGES)")
    args = ap.parse_args(argv)
    names = args.images.split(",") if args.images else list(IMAGES)
    ratios: dict = {"dev": [], "held out": []}
    for name in names:
        a, bits, _ = load(name)
        row = [first_ratio(a, bits, r) for r in RATES]
        ratios["dev" if name in DEV else "held out"].extend(row)
        print(f"{name:36s} " + " ".join(f"{r} bpp {x:.3f}" for r, x in zip(RATES, row, strict=True)), flush=True)
    for label, xs in ratios.items():
        if xs:
            print(f"{label}: median {statistics.median(xs):.3f}, range {min(xs):.3f}-{max(xs):.3f} ({len(xs)} encodes)")
    print(f"ratecontrol.KAPPA = {rc.KAPPA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
