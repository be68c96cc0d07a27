#!/usr/bin/env python
"""Single-thread speed of HLC against the codecs users would pick instead, in one run.

    nice python benchmarks/bench_speed.py                  # -> benchmarks/results/speed.md
    python benchmarks/bench_speed.py --rounds 3 --images 693_UNCR.dcm,RG3_UNCR.dcm --out /tmp/s.md

What it measures (MB/s of raw stored bytes, one thread everywhere):

* lossless: HLC against JPEG 2000 5/3 (OpenJPEG), HTJ2K (OpenJPH), JPEG-LS (CharLS)
  and JPEG XL lossless at effort 1, 3 and 7;
* near-lossless k = 2: HLC ``max_error=2`` against JPEG-LS NEAR=2 (CharLS);
* first use: a new process that imports codec_core and decodes (then, in another new
  process, encodes) its first image; the kernels are compiled at install, so there is
  no cache to empty (HLC keeps none);
* a per-stage profile of HLC (cProfile, grouped by the stage each function serves).

Timing protocol: every round times every codec on every image once (encode, then
decode of that stream), codecs interleaved so that load on the shared machine hits
them alike; the figure is the median over rounds. Each stream is checked (lossless:
bit-exact; near-lossless: max error <= k) once. Multi-frame images are coded frame by
frame by the references, HLC codes the array; codecs that take unsigned samples only
get signed images offset to unsigned beforehand (outside the timing).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import datetime as _dt  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import codec_core  # noqa: E402
from codec_core.cli import references as refs  # noqa: E402
from codec_core.cli.corpus import BENCH_CORPUS, load_corpus  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NEAR_K = 2


@dataclass
class Codec:
    """One codec at one setting: encode(image) -> stream, decode(stream) -> image."""

    key: str
    label: str
    kind: str                                   # "lossless" or "near"
    encode: Callable[[Any], Any]
    decode: Callable[[Any], np.ndarray]
    enc: list[float] = field(default_factory=list)
    dec: list[float] = field(default_factory=list)
    error: str = ""


def _hlc(kind: str) -> tuple[Callable, Callable]:
    opts: dict[str, Any] = {"threads": 1}
    mode = "lossless" if kind == "lossless" else "near-lossless"
    if kind == "near":
        opts["max_error"] = NEAR_K

    def enc(im: Any) -> bytes:
        return codec_core.encode(im.array, mode, axes=im.axes, **opts)

    def dec(data: bytes) -> np.ndarray:
        return codec_core.decode(data, threads=1)

    return enc, dec


def _reference(ref: refs.Reference, kind: str) -> tuple[Callable, Callable]:
    def enc(im: Any) -> list[bytes]:
        return [ref.encode(f, im.bits_stored) for f in im.frames_for(ref)]

    def dec(streams: list[bytes]) -> np.ndarray:
        return np.stack([ref.decode(s) for s in streams])

    return enc, dec


def codecs() -> list[Codec]:
    out = [Codec("hlc", "HLC lossless", "lossless", *_hlc("lossless"))]
    by_key = {r.key: r for r in refs.lossless_references(jpegxl_effort=None)}
    for key in ("j2k53", "htj2k", "jls"):
        if key in by_key:
            out.append(Codec(key, by_key[key].label, "lossless", *_reference(by_key[key], "lossless")))
    for effort in (1, 3, 7):
        jxl = [r for r in refs.lossless_references(jpegxl_effort=effort, htj2k=False) if r.name == "JPEG XL"][0]
        out.append(Codec(f"jxl{effort}", jxl.label, "lossless", *_reference(jxl, "lossless")))
    out.append(Codec("hlc_near", f"HLC max_error={NEAR_K}", "near", *_hlc("near")))
    out.append(Codec("jls_near", f"JPEG-LS NEAR={NEAR_K} (CharLS)", "near",
                     *_reference(refs.jpegls_near(NEAR_K), "near")))
    return out


class Image:
    """A corpus image with the frames each reference codes, prepared outside timing."""

    def __init__(self, im: Any) -> None:
        self.name, self.array, self.axes = im.name, im.array, im.axes
        self.bits_stored, self.modality, self.raw_bytes = im.bits_stored, im.modality, im.raw_bytes
        self.offset = 1 << (im.bits_stored - 1) if im.signed else 0
        self._frames = refs.frames_of(im.array, im.axes)
        self._unsigned = [refs.to_unsigned(f, self.offset, np.uint16 if im.bits_stored > 8 else np.uint8)
                          for f in self._frames] if im.signed else self._frames

    def frames_for(self, ref: refs.Reference) -> list[np.ndarray]:
        return self._unsigned if ref.unsigned_only else self._frames

    def check(self, codec: Codec, decoded: np.ndarray) -> None:
        """Lossless: bit-exact; near-lossless: within k (of the offset samples if offset)."""
        want = np.asarray(self.array if codec.key.startswith("hlc") else
                          np.stack(self._unsigned if codec.key.startswith(("jls", "jxl")) else self._frames))
        got = np.asarray(decoded).reshape(want.shape)
        err = int(np.max(np.abs(got.astype(np.int64) - want.astype(np.int64)))) if want.size else 0
        limit = NEAR_K if codec.kind == "near" else 0
        if err > limit:
            raise AssertionError(f"{codec.label} on {self.name}: max error {err} > {limit}")


def run_rounds(images: list[Image], cs: list[Codec], rounds: int) -> dict:
    """Times per (image, codec): encode and decode lists over the rounds, interleaved."""
    times: dict = {(im.name, c.key): ([], [], None) for im in images for c in cs}
    for r in range(rounds):
        for im in images:
            for c in cs:
                enc_t, dec_t, err = times[(im.name, c.key)]
                if err:
                    continue
                try:
                    t0 = time.perf_counter()
                    data = c.encode(im)
                    t1 = time.perf_counter()
                    out = c.decode(data)
                    t2 = time.perf_counter()
                    if r == 0:
                        im.check(c, out)
                except Exception as e:  # a reference refusing an image is a result
                    times[(im.name, c.key)] = (enc_t, dec_t, refs.short_error(e))
                    continue
                enc_t.append(t1 - t0)
                dec_t.append(t2 - t1)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return times


# ---------------------------------------------------------------- first use

_FIRST = """
import time, sys
t0 = time.perf_counter()
import numpy as np
import codec_core
t1 = time.perf_counter()
data = open(sys.argv[1], 'rb').read()
arr = np.load(sys.argv[2])
t2 = time.perf_counter()
if sys.argv[3] == 'decode':
    out = codec_core.decode(data, threads=1)
else:
    out = codec_core.encode(arr, 'lossless', threads=1)
t3 = time.perf_counter()
print(f'{t1 - t0:.4f} {t3 - t2:.4f}')
"""


def first_use(image: Image, tmp: str) -> dict[str, tuple[float, float]]:
    """Import and first decode / first encode, each in a new process (seconds)."""
    arr_path, hlc_path = os.path.join(tmp, "first.npy"), os.path.join(tmp, "first.hlc")
    np.save(arr_path, image.array)
    with open(hlc_path, "wb") as f:
        f.write(codec_core.encode(image.array, "lossless"))
    out = {}
    for what in ("decode", "encode"):
        res = subprocess.run([sys.executable, "-c", _FIRST, hlc_path, arr_path, what], capture_output=True,
                             text=True, check=True, cwd=tmp)
        imp, first = map(float, res.stdout.split())
        out[what] = (imp, first)
    return out


# ---------------------------------------------------------------- profile

STAGES = (  # (stage, the module file and functions that enter it)
    ("choose the coder (sample blocks coded both ways)", "encoder.py", ("choose_coders", "_both_ways")),
    ("choose the value table", "pipeline.py", ("choose_value_table",)),
    ("band coder (C, with its Python driver)", "entropy.py", ("encode_decomposition", "decode_decomposition")),
    ("predictive coder (C, with its Python driver)", "predictive.py",
     ("encode_plane", "decode_plane", "encode_planes", "decode_planes")),
    ("5/3 transform (C kernel, numpy band copies)", "transform.py", ("forward", "dwt53_forward", "dwt53_inverse")),
)


def profile_stages(image: Image, kind: str) -> dict[str, dict[str, float]]:
    """Seconds per stage of one HLC encode and decode under cProfile: the cumulative
    time of each stage's entry functions (calls from inside the same stage counted
    once). Stages nest: the coder choice codes sample blocks with both coders, so
    that time is also in the two coder rows."""
    enc, dec = _hlc(kind)
    data = enc(image)
    out = {}
    for what, fn in (("encode", lambda: enc(image)), ("decode", lambda: dec(data))):
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(fn)
        total = time.perf_counter() - t0
        stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        shares: dict[str, float] = {}
        for stage, module, names in STAGES:
            def inside(file: str, name: str, module: str = module, names: tuple = names) -> bool:
                return file.endswith(module) and name in names
            shares[stage] = sum(ct for (file, _l, name), (_cc, _nc, _tt, ct, callers) in stats.items()
                                if inside(file, name) and not any(inside(cf, cn) for (cf, _l2, cn) in callers))
        shares["total (s, under cProfile)"] = total
        out[what] = shares
    return out


# ---------------------------------------------------------------- report

def mbs(raw: int, ts: list[float]) -> float | None:
    return raw / 1e6 / statistics.median(ts) if ts else None


def _f(x: float | None, nd: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def report(images: list[Image], cs: list[Codec], times: dict, firsts: dict, profiles: dict,
           args: argparse.Namespace) -> str:
    lines = ["# Speed: HLC against OpenJPEG, OpenJPH, CharLS and libjxl (single thread)", "",
             f"Made by `{' '.join(['python', 'benchmarks/bench_speed.py'] + [shlex.quote(a) for a in sys.argv[1:]])}`"
             f" on {_dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, load average before / after {args.load[0]:.2f} / {args.load[1]:.2f}; "
             f"{args.rounds} rounds, interleaved, medians. "
             "MB/s of raw stored bytes; ratios are HLC / other (above 1: HLC faster).", ""]
    for kind, base, title in (("lossless", "hlc", "Lossless"), ("near", "hlc_near", f"Near-lossless k={NEAR_K}")):
        group = [c for c in cs if c.kind == kind]
        others = [c for c in group if c.key != base]
        lines += [f"## {title}: encode / decode MB/s per image", "",
                  "| image | modality | " + " | ".join(c.label for c in group) + " |",
                  "|---|---|" + "---|" * len(group)]
        ratio: dict = {(c.key, w): [] for c in others for w in (0, 1)}
        for im in images:
            cells = []
            base_t = times[(im.name, base)]
            for c in group:
                enc_t, dec_t, err = times[(im.name, c.key)]
                if err:
                    cells.append(f"failed: {err}")
                    continue
                cells.append(f"{_f(mbs(im.raw_bytes, enc_t))} / {_f(mbs(im.raw_bytes, dec_t))}")
                if c.key != base and not base_t[2]:
                    ratio[(c.key, 0)].append(statistics.median(enc_t) / statistics.median(base_t[0]))
                    ratio[(c.key, 1)].append(statistics.median(dec_t) / statistics.median(base_t[1]))
            lines.append(f"| {im.name} | {im.modality} | " + " | ".join(cells) + " |")
        lines += ["", f"## {title}: HLC speed / other speed per image (encode / decode)", "",
                  "| image | " + " | ".join(c.label for c in others) + " |", "|---|" + "---|" * len(others)]
        for i, im in enumerate(images):
            row = []
            for c in others:
                e, d = ratio[(c.key, 0)], ratio[(c.key, 1)]
                row.append(f"{e[i]:.2f}× / {d[i]:.2f}×" if i < len(e) else "n/a")
            lines.append(f"| {im.name} | " + " | ".join(row) + " |")
        summary = []
        for c in others:
            e, d = ratio[(c.key, 0)], ratio[(c.key, 1)]
            if e:
                gm = (lambda v: float(np.exp(np.mean(np.log(v)))))
                summary.append(f"| {c.label} | {gm(e):.2f}× ({min(e):.2f}–{max(e):.2f}) | "
                               f"{gm(d):.2f}× ({min(d):.2f}–{max(d):.2f}) | {len(e)} |")
        lines += ["", f"**{title}, geometric mean of the per-image ratios (range)**", "",
                  "| HLC against | encode | decode | images |", "|---|---|---|---|", *summary, ""]
    lines += ["## First use", "",
              "A new process imports codec_core and decodes its first image, another encodes its first "
              f"(`{firsts['image']}`, lossless, one thread). The C kernels are compiled by `pip install`, "
              "so there is no kernel cache (empty or not) to wait for.", "",
              "| | import codec_core (s) | first call (s) |", "|---|---|---|"]
    for what in ("decode", "encode"):
        imp, first = firsts[what]
        lines.append(f"| first {what} | {imp:.3f} | {first:.3f} |")
    lines += ["", "## Where HLC's time goes (cProfile, share of the call)", ""]
    for (name, kind), prof in profiles.items():
        stages = [s for s, _m, _n in STAGES]
        lines += [f"**{name}, {'lossless' if kind == 'lossless' else f'max_error={NEAR_K}'}**", "",
                  "| stage | encode | decode |", "|---|---|---|"]
        for s in stages:
            e, d = prof["encode"][s], prof["decode"][s]
            te, td = prof["encode"]["total (s, under cProfile)"], prof["decode"]["total (s, under cProfile)"]
            lines.append(f"| {s} | {100 * e / te:.0f}% | {100 * d / td:.0f}% |")
        te, td = prof["encode"]["total (s, under cProfile)"], prof["decode"]["total (s, under cProfile)"]
        lines += [f"| total (s, under cProfile) | {te:.3f} | {td:.3f} |", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", default=",".join(BENCH_CORPUS))
    ap.add_argument("--profile", default="693_UNCR.dcm,RG1_UNCR.dcm,JPEG2000_UNC.dcm")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "speed.md"))
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]  # (other jobs' load: reported beside the figures)
    images = [Image(im) for im in load_corpus(args.images.split(","))]
    cs = codecs()
    times = run_rounds(images, cs, args.rounds)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        first_image = next(im for im in images if im.name == "693_UNCR.dcm") if any(
            im.name == "693_UNCR.dcm" for im in images) else images[0]
        firsts: dict[str, Any] = {"image": first_image.name, **first_use(first_image, tmp)}
    profiles = {}
    for name in [n for n in args.profile.split(",") if n]:
        im = next((i for i in images if i.name == name), None)
        if im is not None:
            for kind in ("lossless", "near"):
                profiles[(name, kind)] = profile_stages(im, kind)
    args.load = (load_before, os.getloadavg()[0])
    text = report(images, cs, times, firsts, profiles, args)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
