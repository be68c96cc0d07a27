#!/usr/bin/env python
"""Compare HLC (codec_core) with the reference codecs in imagecodecs, in one run.

    nice python benchmarks/bench_codecs.py                # full run -> benchmarks/RESULTS.md
    python benchmarks/bench_codecs.py --quick --out /tmp/r.md
    python benchmarks/bench_codecs.py --images MR2_UNCR.dcm,693_UNCR.dcm

Sections (definitions in docs/METRICS.md, computed with codec_core.metrics; the
reference codecs are those of codec_core/cli/references.py, which ``hlc bench`` uses too):

* lossless bpp: HLC vs JPEG 2000 5/3 (OpenJPEG), HTJ2K (OpenJPH), JPEG-LS (CharLS),
  JPEG XL lossless effort 9, PNG; every reference stream is decoded and checked
  bit-exact.  Multi-frame images are coded frame by frame by the references (bytes
  summed); HLC codes the whole array.
* near-lossless k = 1, 2, 4: HLC ``max_error=k`` vs JPEG-LS NEAR = k.
* lossy at 0.25 / 0.5 / 1.0 bpp: HLC ``bpp=r`` vs JPEG 2000 9/7 and JPEG XL, whose
  quality parameter is searched so that the file is <= the target size and as close
  to it as possible.
* speed: single thread, MB/s of raw stored bytes, median of >= 3 runs, all codecs in
  this run; HLC decode on 2 threads in a subprocess.
* memory: peak extra resident memory of HLC encode/decode, three fresh subprocesses per
  measurement, the median and the largest (see the Memory section of the report).

Codecs that refuse signed input are reported as refused; for those images an
offset variant (input shifted by +2^(bits_stored-1) to unsigned, shifted back after
decoding) is also run and marked with a dagger, never silently mixed in.
"""
from __future__ import annotations

import os

# Single-thread figures: fix the thread pools before numpy and codec_core load.
_CHILD = os.environ.get("HLC_BENCH_CHILD_THREADS")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _CHILD or "1"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import glob  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from codec_core import metrics as M  # noqa: E402
from codec_core.cli import references as refs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

NEAR_KS = (1, 2, 4)
LOSSY_RATES = (0.25, 0.5, 1.0)
DAGGER = "†"
OVER = "‡"
SAT = "§"


# ============================================================================ helpers
def _fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{x:.{nd}f}"


def _mean(xs) -> float | None:
    """Mean of the finite values (an exact decode's infinite PSNR is left out)."""
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _short(e: BaseException) -> str:
    return refs.short_error(e, 90)


def _timed(fn: Callable[[], Any], runs: int) -> tuple[Any, list[float]]:
    """Run ``fn`` ``runs`` times; for very fast calls each run loops so it lasts
    >= ~20 ms, and the per-call time of each run is recorded."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    inner = 1 if first >= 0.02 else min(50, max(2, int(0.02 / max(first, 1e-6))))
    times = [first] if inner == 1 else []
    while len(times) < max(1, runs):
        t0 = time.perf_counter()
        for _ in range(inner):
            out = fn()
        times.append((time.perf_counter() - t0) / inner)
    return out, times


_frames, _stack = refs.frames_of, refs.stack_frames


def _offset(im) -> int:
    return 1 << (im.bits_stored - 1)


def _to_unsigned(a: np.ndarray, off: int) -> np.ndarray:
    return refs.to_unsigned(a, off, np.uint16 if a.dtype.itemsize == 2 else np.uint8)


_from_unsigned = refs.from_unsigned


# ======================================================================= references
@dataclass
class Ref:
    key: str
    label: str
    encode: Callable[[np.ndarray, Any], bytes]  # (frame, image) -> bytes
    decode: Callable[[bytes], np.ndarray]


def _refs_lossless() -> list[Ref]:
    """The lossless rows of codec_core/cli/references.py (JPEG XL at effort 9)."""
    return [Ref(r.key, r.label, lambda f, im, r=r: r.encode(f, im.bits_stored), r.decode)
            for r in refs.lossless_references(jpegxl_effort=9)]


def _encode_frames(ref_encode, frames, im) -> list[bytes]:
    return [bytes(ref_encode(f, im)) for f in frames]


def _decode_frames(ref_decode, streams) -> list[np.ndarray]:
    return [np.asarray(ref_decode(s)) for s in streams]


# ============================================================================== HLC
class HLC:
    """codec_core behind a small adapter (availability, keyword discovery)."""

    def __init__(self) -> None:
        self.ok = False
        self.reason = ""
        self.version = "n/a"
        self.mod = None
        self.thread_kw: str | None = None
        try:
            import codec_core  # type: ignore

            self.mod = codec_core
            self.version = str(getattr(codec_core, "__version__", "unknown"))
            a = (np.arange(32 * 40).reshape(32, 40) % 1000).astype(np.uint16)
            d = codec_core.encode(a, mode="lossless", bits_stored=10)
            if not np.array_equal(codec_core.decode(d), a):
                raise RuntimeError("lossless round trip of a 32x40 test array failed")
            self.ok = True
            for kw in ("threads", "numthreads", "num_threads", "workers"):
                try:
                    if kw in inspect.signature(codec_core.decode).parameters:
                        self.thread_kw = kw
                        break
                except (TypeError, ValueError):
                    pass
        except Exception as e:  # pragma: no cover - depends on the codec's state
            self.reason = _short(e)

    def encode(self, a, im, **kw) -> bytes:
        return bytes(self.mod.encode(a, bits_stored=im.bits_stored, **kw))

    def decode(self, data: bytes, threads: int | None = None):
        if threads is not None and self.thread_kw:
            return self.mod.decode(data, **{self.thread_kw: threads})
        return self.mod.decode(data)


# ====================================================================== rate search
def _search(size_of: Callable[[float], int], target: int, lo: float, hi: float,
            increasing: bool, max_iter: int = 18, tol: float = 0.005):
    """Find p in [lo, hi] whose size is <= target and as close to it as possible.

    ``size_of(p)`` grows with p if ``increasing`` (else shrinks).  Bisection with
    the secant step in log(size) (Illinois-style safeguards).  Returns
    (best_p, best_size, status, evaluations); status is "ok", "over" (even the
    lowest setting exceeds the target) or "saturated" (the highest setting is still
    below the target: the codec's maximum quality).
    """
    if not increasing:  # search over -p, where the size grows
        p, s, st, n = _search(lambda q: size_of(-q), target, -hi, -lo, True, max_iter, tol)
        return -p, s, st, n
    cache: dict[float, int] = {}

    def f(p):
        if p not in cache:
            cache[p] = size_of(p)
        return cache[p]

    def g(p):  # <= 0 when feasible (size <= target), grows with p
        return math.log(max(f(p), 1)) - math.log(target)

    a, b = lo, hi
    ga, gb = g(a), g(b)
    if ga > 0:  # even the smallest setting is too big
        return a, f(a), "over", len(cache)
    if gb <= 0:  # the largest setting fits
        return b, f(b), "saturated" if f(b) < (1 - tol) * target else "ok", len(cache)
    side = 0
    for _ in range(max_iter):
        # Illinois regula falsi; g(a) <= 0 < g(b) always holds
        p = (a * gb - b * ga) / (gb - ga)
        if not (a < p < b):
            p = 0.5 * (a + b)
        gp = g(p)
        if gp <= 0:
            a, ga = p, gp
            if f(p) >= (1 - tol) * target:
                break
            if side == -1:
                gb *= 0.5
            side = -1
        else:
            b, gb = p, gp
            if side == 1:
                ga *= 0.5
            side = 1
        if b - a < 1e-4:
            break
    feas = [(s, p) for p, s in cache.items() if s <= target]
    s, p = max(feas)
    return p, s, "ok", len(cache)


# ========================================================================== records
@dataclass
class Cell:
    bpp: float | None = None
    nbytes: int | None = None
    note: str = ""  # "refused: ...", "error: ..."
    offset: bool = False  # offset variant for signed input
    exact: bool | None = None
    enc: list[float] = field(default_factory=list)
    dec: list[float] = field(default_factory=list)
    max_err: Any = None
    psnr: float | None = None
    psnr_nom: float | None = None
    ssim: float | None = None
    status: str = "ok"  # rate search: "ok", "over" (‡) or "saturated" (§)
    param: Any = None

    def text(self, nd=3) -> str:
        if self.bpp is None:
            return self.note or "n/a"
        s = _fmt(self.bpp, nd)
        if self.offset:
            s = f"{s}{DAGGER}"
        if self.status == "over":
            s = f"{s}{OVER}"
        elif self.status == "saturated":
            s = f"{s}{SAT}"
        return s


# =========================================================================== runner
class Bench:
    def __init__(self, args, images) -> None:
        self.args = args
        self.images = images
        self.runs = args.runs
        import imagecodecs as ic

        self.ic = ic
        self.hlc = HLC()
        self.lossless: dict[str, dict[str, Cell]] = {}
        self.near: dict[int, dict[str, dict[str, Cell]]] = {k: {} for k in NEAR_KS}
        self.lossy: dict[float, dict[str, dict[str, Cell]]] = {r: {} for r in LOSSY_RATES}
        self.hlc_dec2: dict[str, list[float]] = {}
        self.hlc_dec2_note = ""
        self.memory: dict[str, dict[str, Any]] = {}
        self.memory_method = ""
        self.problems: list[str] = []
        self.refusals: set[tuple[str, str]] = set()
        self.log_t0 = time.time()

    def log(self, *msg) -> None:
        print(f"[{time.time() - self.log_t0:7.1f}s]", *msg, flush=True)

    # ---------------------------------------------------------------- lossless
    def run_lossless(self) -> None:
        lossless = _refs_lossless()
        self.lossless_refs = lossless
        for im in self.images:
            row: dict[str, Cell] = {}
            a = im.array
            # HLC
            if self.hlc.ok:
                row["hlc"] = self._hlc_lossless(im)
            else:
                row["hlc"] = Cell(note="n/a")
            for ref in lossless:
                row[ref.key] = self._ref_lossless(ref, im)
            self.lossless[im.name] = row
            self.log(
                "lossless", im.name,
                " ".join(f"{k}={c.text()}" for k, c in row.items()),
            )
            del a

    def _hlc_lossless(self, im) -> Cell:
        a = im.array
        c = Cell()
        try:
            crop = a[..., :16, :16, :] if im.axes.endswith("C") else a[..., :16, :16]
            self.hlc.decode(self.hlc.encode(np.ascontiguousarray(crop), im, mode="lossless"))
            # threads=1: codec_core otherwise codes tiles on both cores by default
            data, c.enc = _timed(lambda: self.hlc.encode(a, im, mode="lossless", threads=1), self.runs)
            out, c.dec = _timed(lambda: self.hlc.decode(data, threads=1), self.runs)
            c.nbytes = len(data)
            c.bpp = M.bpp(c.nbytes, a.shape, im.axes)
            out = np.asarray(out)
            c.exact = out.shape == a.shape and out.dtype == a.dtype and np.array_equal(out, a)
            if not c.exact:
                self.problems.append(f"HLC lossless is NOT bit-exact on {im.name}")
            im._hlc_lossless_stream = data  # for the 2-thread decode and memory runs
        except Exception as e:
            c = Cell(note=f"error: {_short(e)}")
            self.problems.append(f"HLC lossless failed on {im.name}: {_short(e)}")
            traceback.print_exc()
        return c

    def _ref_lossless(self, ref: Ref, im) -> Cell:
        frames = _frames(im.array, im.axes)
        off = 0
        c = Cell()
        try:  # warm-up on a crop; also finds out whether signed input is accepted
            ref.decode(ref.encode(np.ascontiguousarray(frames[0][:16, :16]), im))
        except Exception as e:
            if not im.signed:
                return Cell(note=f"error: {_short(e)}")
            c.note = "refused"
            self.refusals.add((ref.label, _short(e)))
            off = _offset(im)
            frames = [_to_unsigned(f, off) for f in frames]
        im_u = _Unsigned(im) if off else im
        try:
            streams, c.enc = _timed(lambda: _encode_frames(ref.encode, frames, im_u), self.runs)
            outs, c.dec = _timed(lambda: _decode_frames(ref.decode, streams), self.runs)
        except Exception as e:
            return Cell(note=(c.note + "; " if c.note else "") + f"error: {_short(e)}")
        c.nbytes = sum(len(s) for s in streams)
        c.bpp = M.bpp(c.nbytes, im.array.shape, im.axes)
        c.offset = bool(off)
        c.exact = all(o.shape == f.shape and o.dtype == f.dtype and np.array_equal(o, f)
                      for o, f in zip(outs, frames))
        if not c.exact:
            self.problems.append(f"{ref.label} round trip is NOT bit-exact on {im.name}")
        return c

    # ------------------------------------------------------------ HLC cells
    def _hlc_cell(self, what: str, im, measure: Callable[[Cell], None]) -> Cell:
        """HLC's cell of a table: ``measure`` fills it; an error becomes its note and a problem."""
        if not self.hlc.ok:
            return Cell(note="n/a")
        c = Cell()
        try:
            measure(c)
        except Exception as e:
            c = Cell(note=f"error: {_short(e)}")
            self.problems.append(f"HLC {what} failed on {im.name}: {_short(e)}")
        return c

    def _hlc_near(self, c: Cell, im, k: int) -> None:
        a = im.array
        t0 = time.perf_counter()
        data = self.hlc.encode(a, im, mode="near-lossless", max_error=k)
        c.enc = [time.perf_counter() - t0]
        out = np.asarray(self.hlc.decode(data))
        c.nbytes = len(data)
        c.bpp = M.bpp(c.nbytes, a.shape, im.axes)
        c.max_err = M.max_abs_error(a, out)
        if c.max_err > k:
            self.problems.append(f"HLC near-lossless k={k} has max error {c.max_err} on {im.name}")

    def _hlc_lossy(self, c: Cell, im, r: float) -> None:
        a = im.array
        t0 = time.perf_counter()
        data = self.hlc.encode(a, im, mode="lossy", bpp=r, threads=1)
        c.enc = [time.perf_counter() - t0]
        t0 = time.perf_counter()
        out = np.asarray(self.hlc.decode(data, threads=1))
        c.dec = [time.perf_counter() - t0]
        if out.shape != a.shape or out.dtype != a.dtype:
            raise RuntimeError(f"decoded {out.shape} {out.dtype}, expected {a.shape} {a.dtype}")
        self._quality(c, im, out, len(data))
        meta = self.hlc.mod.info(data)  # which of its two coders the encoder kept
        c.param = "9/7" if meta["mode"] == "lossy" else f"predictive, max error {meta['max_error']}"

    # ------------------------------------------------------------ near-lossless
    def run_near(self) -> None:
        for im in self.images:
            a = im.array
            for k in NEAR_KS:
                row: dict[str, Cell] = {}
                row["hlc"] = self._hlc_cell(f"near-lossless k={k}", im, lambda c, k=k: self._hlc_near(c, im, k))
                # JPEG-LS NEAR=k
                near = refs.jpegls_near(k)
                frames = _frames(a, im.axes)
                c = Cell()
                off = 0
                if im.signed:
                    try:
                        near.encode(np.ascontiguousarray(frames[0][:16, :16]), im.bits_stored)
                    except Exception as e:
                        c.note = "refused"
                        self.refusals.add((f"JPEG-LS NEAR={k}", _short(e)))
                        off = _offset(im)
                try:
                    src = [_to_unsigned(f, off) for f in frames] if off else frames
                    streams = [near.encode(f, im.bits_stored) for f in src]
                    outs = [near.decode(s) for s in streams]
                    if off:
                        outs = [_from_unsigned(o, off, a.dtype) for o in outs]
                    c.nbytes = sum(map(len, streams))
                    c.bpp = M.bpp(c.nbytes, a.shape, im.axes)
                    c.max_err = M.max_abs_error(a, _stack(outs, im.axes))
                    c.offset = bool(off)
                except Exception as e:
                    c = Cell(note=f"error: {_short(e)}")
                row["jls"] = c
                self.near[k][im.name] = row
            self.log("near-lossless", im.name, " ".join(
                f"k={k}:" + ",".join(f"{n}={c.text()}/e{_fmt(c.max_err)}" for n, c in self.near[k][im.name].items())
                for k in NEAR_KS))

    # -------------------------------------------------------------------- lossy
    def _quality(self, c: Cell, im, out: np.ndarray, nbytes: int) -> Cell:
        a = im.array
        c.nbytes = nbytes
        c.bpp = M.bpp(nbytes, a.shape, im.axes)
        c.max_err = M.max_abs_error(a, out)
        c.psnr = M.psnr(a, out)
        c.psnr_nom = M.psnr_nominal(a, out, im.bits_stored)
        c.ssim = M.ssim(a, out, axes=im.axes)
        return c

    def run_lossy(self) -> None:
        for im in self.images:
            a = im.array
            frames = _frames(a, im.axes)
            for r in LOSSY_RATES:
                target = int(math.floor(r * im.pixels / 8))
                row: dict[str, Cell] = {}
                row["hlc"] = self._hlc_cell(f"lossy {r} bpp", im, lambda c, r=r: self._hlc_lossy(c, im, r))

                # JPEG 2000 9/7: level = quality (PSNR dB, OpenJPEG fixed-quality mode)
                def j2k_enc(q, src=frames):
                    return [refs.jpeg2k_97(q).encode(f, im.bits_stored) for f in src]
                row["j2k97"] = self._lossy_ref(
                    im, frames, target, j2k_enc,
                    refs.jpeg2k_97(0).decode,
                    lo=1.0, hi=6.03 * im.bits_stored + 80.0, increasing=True,
                    label="JPEG 2000 9/7")

                # JPEG XL: distance (smaller = better), searched in log(distance)
                def jxl_enc(ld, src=frames, bits=im.bits_stored):
                    return [refs.jpegxl_lossy(float(math.exp(ld))).encode(f, bits) for f in src]
                row["jxl"] = self._lossy_ref(
                    im, frames, target, jxl_enc,
                    refs.jpegxl_lossy(1.0).decode,
                    lo=math.log(0.01), hi=math.log(25.0), increasing=False,
                    label="JPEG XL lossy")
                self.lossy[r][im.name] = row
                self.log("lossy", r, im.name, " ".join(
                    f"{n}={c.text()}/{_fmt(c.psnr, 2)}dB" for n, c in row.items()))

    def _lossy_ref(self, im, frames, target, enc, dec, lo, hi, increasing, label) -> Cell:
        c = Cell()
        off = 0
        src = frames
        if im.signed:
            try:
                enc(lo, [np.ascontiguousarray(frames[0][:16, :16])])
            except Exception as e:
                c.note = "refused"
                self.refusals.add((label, _short(e)))
                off = _offset(im)
                src = [_to_unsigned(f, off) for f in frames]
        try:
            sizes: dict[float, list[bytes]] = {}

            def size_of(p):
                s = enc(p, src)
                sizes[p] = s
                return sum(map(len, s))

            p, n, status, evals = _search(size_of, target, lo, hi, increasing)
            streams = sizes[p]
            outs = [dec(s) for s in streams]
            if off:
                outs = [_from_unsigned(o, off, im.array.dtype) for o in outs]
            out = _stack(outs, im.axes)
            if out.shape != im.array.shape:
                raise RuntimeError(f"decoded shape {out.shape} != {im.array.shape}")
            out = out.astype(im.array.dtype, copy=False)
            self._quality(c, im, out, n)
            c.status = status
            c.param = round(float(math.exp(p) if not increasing else p), 4)
            c.offset = bool(off)
        except Exception as e:
            c = Cell(note=(c.note + "; " if c.note else "") + f"error: {_short(e)}")
            traceback.print_exc()
        return c

    # --------------------------------------------------------- HLC 2-thread decode
    def run_hlc_two_threads(self, tmp: str) -> None:
        if not self.hlc.ok:
            return
        files = {}
        for im in self.images:
            data = getattr(im, "_hlc_lossless_stream", None)
            if data is not None:
                path = os.path.join(tmp, f"{len(files)}.hlc")
                with open(path, "wb") as fh:
                    fh.write(data)
                files[im.name] = path
        if not files:
            return
        env = dict(os.environ, HLC_BENCH_CHILD_THREADS="2")
        cmd = [sys.executable, os.path.abspath(__file__), "--_speedchild",
               json.dumps({"files": files, "runs": self.runs, "threads": 2})]
        try:
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
            if p.returncode != 0:
                raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"rc={p.returncode}")
            res = json.loads(p.stdout.strip().splitlines()[-1])
            self.hlc_dec2 = res["times"]
            self.hlc_dec2_note = res.get("note", "")
        except Exception as e:
            self.hlc_dec2_note = f"failed: {_short(e)}"

    # -------------------------------------------------------------------- memory
    def run_memory(self, tmp: str) -> None:
        if not self.hlc.ok:
            return
        jobs = [("encode", "lossless", {}), ("decode", "lossless", {})]
        if not self.args.quick:
            jobs += [("encode", "lossy", {"bpp": 0.5}), ("decode", "lossy", {"bpp": 0.5})]
        for im in self.images:
            npy = os.path.join(tmp, "img.npy")
            np.save(npy, im.array)
            res: dict[str, Any] = {"raw": im.raw_bytes}
            for op, mode, kw in jobs:
                spec = {"npy": npy, "op": op, "mode": mode, "kw": kw, "bits": im.bits_stored,
                        "axes": im.axes}
                env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
                try:
                    runs = []
                    for _ in range(MEMORY_RUNS):
                        p = subprocess.run(
                            [sys.executable, os.path.abspath(__file__), "--_memchild", json.dumps(spec)],
                            env=env, capture_output=True, text=True, timeout=1800)
                        if p.returncode != 0:
                            raise RuntimeError(p.stderr.strip().splitlines()[-1] if p.stderr.strip()
                                               else f"rc={p.returncode}")
                        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
                    runs.sort(key=lambda r: r["anon_extra"])
                    r = dict(runs[len(runs) // 2], anon_max=runs[-1]["anon_extra"], runs=len(runs))
                    self.memory_method = r["method"]
                    res[f"{mode} {op}"] = r
                except Exception as e:
                    res[f"{mode} {op}"] = {"error": _short(e)}
            self.memory[im.name] = res
            self.log("memory", im.name, {k: (round(v["rss_extra"] / im.raw_bytes, 2) if isinstance(v, dict) and "rss_extra" in v else v)
                                          for k, v in res.items() if k != "raw"})


class _Unsigned:
    """Image stand-in for the offset variant (same bits stored, unsigned)."""

    def __init__(self, im) -> None:
        self.name = im.name
        self.bits_stored = im.bits_stored
        self.signed = False
        self.axes = im.axes


# ====================================================================== subprocesses
def _status_kb() -> dict[str, int]:
    """VmRSS, VmHWM and the resident set's parts (RssAnon: data; RssFile: pages of
    mapped files, i.e. code; RssShmem), kB; 0 for a field the kernel does not give."""
    out = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in out:
                out[k] = int(v.split()[0])
    return out


#: Side of the synthetic padded image of the memory child's second warm-up: 512, as the
#: takeover judges only frames of 8 x 64 rows and columns or more on a sample
#: (strategy.unlikely); a 96 x 96 warm-up left 0.8x raw of code pages to 693_UNCR's encode.
WARMUP_SIDE = 512
#: Fresh processes per memory measurement: the table gives the run of median anon and the
#: largest. One run of the same bytes moves by up to +-0.7x raw on images under 1 MB (freed
#: heap memory left resident under a live block depends on the heap's layout: US1_UNCR's
#: lossy decode gave 3.17x or 3.98x with only the loaded file's path changed).
MEMORY_RUNS = 3


def _trim_heap() -> None:
    """Give the allocator's free memory back to the system (glibc malloc_trim), so the
    measured operation cannot reuse pages the warm-ups left resident unseen; HLC's
    decoder block cache (codec_core/_native/planedecode.c) is emptied first for the
    same reason: its kept blocks would make the measured decode look smaller."""
    import contextlib
    import ctypes

    with contextlib.suppress(ImportError, AttributeError):
        from codec_core import _hlc  # type: ignore

        _hlc.release_cache()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _padded_warmup(a: np.ndarray, axes: str) -> np.ndarray:
    """A small synthetic image like ``a`` (dtype, axes, channels; one frame) with flat
    padding around a disk of smooth values and noise over ``a``'s range: coding it runs
    lossy mode's padding path (codec_core/regions.py), so the code pages that path
    maps are loaded before the measured operation, and hardly any data is left."""
    n = WARMUP_SIDE
    lo, hi = int(a.min()), int(a.max())
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n
    body = lo + (hi - lo) * (0.25 + 0.5 * (0.5 + 0.5 * np.sin(7 * x + 3 * y)))
    body += np.random.default_rng(0).normal(0.0, max(1.0, 0.02 * (hi - lo)), (n, n))
    plane = np.where((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.35 ** 2, np.clip(np.rint(body), lo, hi), lo)
    out = plane.astype(a.dtype)
    if axes.endswith("C"):
        out = np.repeat(out[:, :, None], a.shape[-1], axis=2)
    return out[None] if axes.startswith("Z") else out


def _mem_child(spec: dict) -> None:
    """Measure one HLC operation in a fresh process; print one JSON line."""
    import gc
    import resource
    import tracemalloc

    import codec_core  # type: ignore

    a = np.load(spec["npy"])
    kw = dict(spec["kw"])
    bits = spec["bits"]

    def enc(x):
        return codec_core.encode(x, mode=spec["mode"], bits_stored=bits, **kw)

    # warm-up on a small crop and on a small synthetic padded image (_padded_warmup):
    # lazy imports and the code pages of the paths the image may take are not counted
    crop = a[..., :24, :24, :] if spec["axes"].endswith("C") else a[..., :24, :24]
    codec_core.decode(enc(np.ascontiguousarray(crop)))
    codec_core.decode(enc(_padded_warmup(a, spec["axes"])))
    data = enc(a) if spec["op"] == "decode" else None
    if data is not None:
        data = bytes(data)
    gc.collect()
    _trim_heap()

    def op():
        return codec_core.decode(data) if spec["op"] == "decode" else enc(a)

    # 1) resident set: reset the high-water mark (Linux clear_refs "5"), run, read it back
    method = "rss"
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        method = "rss-nores"
    before = _status_kb()
    base = before["VmRSS"]
    out = op()
    after = _status_kb()
    peak_hwm = after["VmHWM"]
    peak_ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # file (code) pages first touched by the operation: mapped pages stay resident, so the
    # anonymous (data) peak is at least the RSS peak less them, at most the RSS peak
    file_growth = max(0, (after["RssFile"] + after["RssShmem"]) - (before["RssFile"] + before["RssShmem"]))
    del out
    gc.collect()
    # 2) tracemalloc: Python/numpy allocations only (not the C kernels' native buffers)
    tracemalloc.start()
    out = op()
    _, tpeak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    print(json.dumps({
        "method": method,
        "rss_extra": max(0, peak_hwm - base) * 1024,
        "rss_extra_ru": max(0, peak_ru - base) * 1024,
        "file_growth": file_growth * 1024,
        "anon_extra": max(0, peak_hwm - base - file_growth) * 1024,
        "tracemalloc_peak": int(tpeak),
    }))


def _speed_child(spec: dict) -> None:
    import codec_core  # type: ignore

    threads = spec["threads"]
    kw = {}
    note = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    for name in ("threads", "numthreads", "num_threads", "workers"):
        try:
            if name in inspect.signature(codec_core.decode).parameters:
                kw = {name: threads}
                note += f", decode({name}={threads})"
                break
        except (TypeError, ValueError):
            pass
    times = {}
    for name, path in spec["files"].items():
        with open(path, "rb") as fh:
            data = fh.read()
        codec_core.decode(data, **kw)  # warm-up (JIT, thread pool start)
        _, t = _timed(lambda: codec_core.decode(data, **kw), spec["runs"])
        times[name] = t
    print(json.dumps({"times": times, "note": note}))


# ============================================================================ report
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "codec_core"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "no commit") + (" + uncommitted codec_core changes" if dirty else "")
    except Exception:
        return "unknown"


def _mbps(raw: int, times: list[float]) -> float | None:
    return raw / 1e6 / statistics.median(times) if times else None


def _agg_mbps(images, get_times) -> float | None:
    tot_raw, tot_t = 0, 0.0
    for im in images:
        t = get_times(im)
        if not t:
            return None
        tot_raw += im.raw_bytes
        tot_t += statistics.median(t)
    return tot_raw / 1e6 / tot_t if tot_t > 0 else None


def _pass(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


def write_report(b: Bench, path: str, command: str, elapsed: float) -> str:
    import imagecodecs as ic

    images = b.images
    names = [im.name for im in images]
    L = b.lossless
    lossless_refs = b.lossless_refs
    signed_names = {im.name for im in images if im.signed}
    unsigned = [n for n in names if n not in signed_names]
    vers = ic.version(dict)
    lines: list[str] = []
    w = lines.append

    w("# HLC benchmark results")
    w("")
    w("Generated by `benchmarks/bench_codecs.py`; rerun it whenever the codec changes. "
      "Do not edit by hand.")
    w("")
    w(f"- Command: `{command}`")
    w(f"- Date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; run time {elapsed / 60:.1f} min")
    try:
        aff = len(os.sched_getaffinity(0))
    except AttributeError:
        aff = os.cpu_count()
    w(f"- Machine: {_cpu_model()}, {os.cpu_count()} cores ({aff} usable), "
      f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
      f"machine shared with other jobs, so speeds are indicative")
    w(f"- Versions: numpy {np.__version__}, imagecodecs {ic.__version__} "
      f"(OpenJPEG {vers.get('openjpeg', '?')}, OpenJPH {vers.get('openjph', '?')}, "
      f"CharLS {vers.get('charls', '?')}, libjxl {vers.get('libjxl', '?')}, "
      f"libpng {vers.get('libpng', '?')}), codec_core {b.hlc.version} (git {_git_rev()})")
    w(f"- Images ({len(images)}): " + ", ".join(f"`{n}`" for n in names))
    w(f"- Timing runs per measurement: {b.runs} (median)")
    if not b.hlc.ok:
        w(f"- **HLC not measured**: codec_core not usable ({b.hlc.reason})")
    w("")
    w(f"{DAGGER} offset variant: the codec refuses signed input, so the image was shifted by "
      f"+2^(bits_stored-1) to unsigned and shifted back after decoding (not native signed support). "
      f"{OVER} the reference could not get down to the target size (its smallest file is shown). "
      f"{SAT} the reference's maximum quality setting gives a file smaller than the target (that file is shown).")
    w("")

    # -------------------------------------------------------------- summary
    hl = [L[n]["hlc"].bpp for n in names]
    have_hlc = b.hlc.ok and all(x is not None for x in hl)

    def mean_of(key, subset=names):
        vals = [L[n][key].bpp for n in subset if key in L[n]]
        return _mean(vals) if vals and all(v is not None for v in vals) else None

    m_hlc, m_j2k, m_jls, m_jxl = mean_of("hlc"), mean_of("j2k53"), mean_of("jls"), mean_of("jxl9")
    mu_hlc, mu_jls = mean_of("hlc", unsigned), mean_of("jls", unsigned)

    w("## Summary against the targets (issue 3)")
    w("")
    w("| target | HLC | reference (same run) | result |")
    w("|---|---|---|---|")
    if m_j2k is not None:
        w(f"| lossless mean bpp ≤ 0.95 × JPEG 2000 5/3 | {_fmt(m_hlc)} | 0.95 × {_fmt(m_j2k)} = {_fmt(0.95 * m_j2k)} "
          f"| {_pass(None if m_hlc is None else m_hlc <= 0.95 * m_j2k)} |")
    if m_jls is not None:
        w(f"| lossless mean bpp ≤ JPEG-LS (all images, {DAGGER} for signed) | {_fmt(m_hlc)} | {_fmt(m_jls)} | "
          f"{_pass(None if m_hlc is None else m_hlc <= m_jls)} |")
    if mu_jls is not None:
        w(f"| lossless mean bpp ≤ JPEG-LS (the {len(unsigned)} unsigned images only) | {_fmt(mu_hlc)} | {_fmt(mu_jls)} | "
          f"{_pass(None if mu_hlc is None else mu_hlc <= mu_jls)} |")
    if m_jxl is not None:
        w(f"| (aim) lossless mean bpp ≤ JPEG XL e9 ({DAGGER} for signed) | {_fmt(m_hlc)} | {_fmt(m_jxl)} | "
          f"{_pass(None if m_hlc is None else m_hlc <= m_jxl)} |")
    for k in NEAR_KS:
        rows = b.near[k]
        h = [rows[n]["hlc"] for n in names]
        j = [rows[n]["jls"] for n in names]
        mh = _mean([c.bpp for c in h]) if all(c.bpp is not None for c in h) else None
        mj = _mean([c.bpp for c in j]) if all(c.bpp is not None for c in j) else None
        eh = max((c.max_err for c in h if c.max_err is not None), default=None)
        ej = max((c.max_err for c in j if c.max_err is not None), default=None)
        wins = sum(1 for a_, b_ in zip(h, j) if a_.bpp is not None and b_.bpp is not None and a_.bpp < b_.bpp)
        ok = None if mh is None or mj is None else (mh < mj and eh is not None and eh <= k)
        w(f"| near-lossless k={k}: mean bpp < JPEG-LS NEAR={k}, max error ≤ {k} | {_fmt(mh)} (max err {_fmt(eh)}) | "
          f"{_fmt(mj)} (max err {_fmt(ej)}) | {_pass(ok)}; smaller on {wins}/{len(names)} images |")
    for r in LOSSY_RATES:
        rows = b.lossy[r]

        def finite(n, key):
            p = rows[n][key].psnr
            return p is not None and math.isfinite(p)

        def mp(key, attr="psnr", ref=None):
            # a mean over the images both codecs coded lossy: an exact (infinite-PSNR)
            # stream is left out of both sides, and counted beside the mean
            on = [n for n in names if ref is None or (finite(n, "hlc") and finite(n, ref))]
            vals = [getattr(rows[n][key], attr) for n in on]
            return _mean(vals) if vals and all(v is not None for v in vals) else None
        ph, pj, px = mp("hlc", ref="j2k97"), mp("j2k97", ref="j2k97"), mp("jxl", ref="jxl")
        phx = mp("hlc", ref="jxl")
        bh, bj, bx = mp("hlc", "bpp"), mp("j2k97", "bpp"), mp("jxl", "bpp")
        exact = sum(1 for n in names if rows[n]["hlc"].psnr is not None and math.isinf(rows[n]["hlc"].psnr))
        ex = f" (+{exact} exact)" if exact else ""
        over = sum(1 for n in names if rows[n]["hlc"].bpp is not None and rows[n]["hlc"].bpp > 1.03 * r)
        def flags(key):
            o = sum(1 for n in names if rows[n][key].status == "over")
            sa = sum(1 for n in names if rows[n][key].status == "saturated")
            return "".join([f", {OVER} on {o}" if o else "", f", {SAT} on {sa}" if sa else ""])
        inf_j, inf_x = flags("j2k97"), flags("jxl")
        note = f"; HLC > {r}×1.03 bpp on {over} image(s)" if over else ""
        ok = None if ph is None or pj is None else ph >= pj + 0.5
        w(f"| lossy {r} bpp: mean PSNR ≥ JPEG 2000 9/7 + 0.5 dB | {_fmt(ph, 2)} dB{ex} (mean {_fmt(bh)} bpp) | "
          f"{_fmt(pj, 2)} + 0.5 = {_fmt(None if pj is None else pj + 0.5, 2)} dB (mean {_fmt(bj)} bpp"
          f"{inf_j}) | {_pass(ok)}{note} |")
        w(f"| (aim) lossy {r} bpp: mean PSNR ≥ JPEG XL | {_fmt(phx, 2)} dB{ex} | {_fmt(px, 2)} dB (mean {_fmt(bx)} bpp"
          f"{inf_x}) | "
          f"{_pass(None if phx is None or px is None else phx >= px)} |")
    enc_h = _agg_mbps(images, lambda im: L[im.name]["hlc"].enc)
    dec_h = _agg_mbps(images, lambda im: L[im.name]["hlc"].dec)
    enc_j = _agg_mbps(images, lambda im: L[im.name]["j2k53"].enc)
    dec_j = _agg_mbps(images, lambda im: L[im.name]["j2k53"].dec)
    w(f"| lossless encode MB/s ≥ OpenJPEG 5/3 (aim 2×), 1 thread | {_fmt(enc_h, 1)} | {_fmt(enc_j, 1)} | "
      f"{_pass(None if enc_h is None or enc_j is None else enc_h >= enc_j)}"
      f"{'' if enc_h is None or enc_j is None else f' ({enc_h / enc_j:.2f}×)'} |")
    w(f"| lossless decode MB/s ≥ OpenJPEG 5/3 (aim 2×), 1 thread | {_fmt(dec_h, 1)} | {_fmt(dec_j, 1)} | "
      f"{_pass(None if dec_h is None or dec_j is None else dec_h >= dec_j)}"
      f"{'' if dec_h is None or dec_j is None else f' ({dec_h / dec_j:.2f}×)'} |")
    if b.hlc_dec2:
        d2 = _agg_mbps([im for im in images if im.name in b.hlc_dec2], lambda im: b.hlc_dec2[im.name])
        w(f"| lossless decode MB/s, 2 threads | {_fmt(d2, 1)} | — | {b.hlc_dec2_note} |")
    if b.memory:
        worst, top = {}, {}
        for n, res in b.memory.items():
            for key, v in res.items():
                if isinstance(v, dict) and "rss_extra" in v:
                    # the data: the RSS peak less the code pages the operation faulted in
                    worst[key] = max(worst.get(key, 0.0), v.get("anon_extra", v["rss_extra"]) / res["raw"])
                    top[key] = max(top.get(key, 0.0), v.get("anon_max", v.get("anon_extra", 0)) / res["raw"])
        for key, v in worst.items():
            w(f"| peak extra memory (anon, median of {MEMORY_RUNS} runs) ≤ 4× raw: {key} (worst image; its "
              f"largest single run {top[key]:.2f}×) | {v:.2f}× | 4× | {_pass(v <= 4.0)} |")
    w("")
    if b.problems:
        w("**Problems found in this run:**")
        w("")
        for p in b.problems:
            w(f"- {p}")
        w("")

    # -------------------------------------------------------------- lossless table
    w("## Lossless: bits per pixel")
    w("")
    w("bpp = 8 × bytes / (rows × cols × frames). References code multi-frame images frame by frame "
      "(bytes summed); HLC codes the whole array. Every stream was decoded and compared bit-exact "
      "(see *exact* below).")
    w("")
    cols = [("hlc", "HLC")] + [(r.key, r.label) for r in lossless_refs]
    w("| image | shape | dtype / bits | " + " | ".join(lbl for _, lbl in cols) + " |")
    w("|---|---|---|" + "---|" * len(cols))
    for im in images:
        row = L[im.name]
        w(f"| {im.name} | {'×'.join(map(str, im.array.shape))} | {im.array.dtype} / {im.bits_stored} | "
          + " | ".join(row[k].text() for k, _ in cols) + " |")
    w(f"| **mean, all {len(names)} images** | | | " + " | ".join(f"**{_fmt(mean_of(k))}**" for k, _ in cols) + " |")
    if signed_names:
        w(f"| **mean, {len(unsigned)} unsigned images** | | | "
          + " | ".join(f"**{_fmt(mean_of(k, unsigned))}**" for k, _ in cols) + " |")
    exact_bad = [f"{lbl} on {n}" for n in names for k, lbl in cols
                 if L[n][k].exact is False]
    w("")
    w("Exact round trip: " + ("all streams bit-exact." if not exact_bad else "**NOT exact: " + ", ".join(exact_bad) + "**"))
    refused = sorted({lbl for n in names for k, lbl in cols if L[n][k].offset})
    if refused:
        w(f"Refused signed input ({', '.join(sorted(signed_names))}): {', '.join(refused)} — "
          f"values marked {DAGGER} are the offset variant.")
    w("")

    # -------------------------------------------------------------- near-lossless
    w("## Near-lossless: HLC max_error=k vs JPEG-LS NEAR=k")
    w("")
    w("| image | " + " | ".join(f"HLC k={k} bpp (max err) | JPEG-LS k={k} bpp (max err)" for k in NEAR_KS) + " |")
    w("|---|" + "---|---|" * len(NEAR_KS))
    for n in names:
        cells = []
        for k in NEAR_KS:
            for key in ("hlc", "jls"):
                c = b.near[k][n][key]
                cells.append(c.text() if c.bpp is None else f"{c.text()} ({_fmt(c.max_err)})")
        w(f"| {n} | " + " | ".join(cells) + " |")
    cells = []
    for k in NEAR_KS:
        for key in ("hlc", "jls"):
            vals = [b.near[k][n][key].bpp for n in names]
            cells.append(f"**{_fmt(_mean(vals)) if all(v is not None for v in vals) else 'n/a'}**")
    w("| **mean** | " + " | ".join(cells) + " |")
    w("")

    # -------------------------------------------------------------- lossy
    w("## Lossy at 0.25, 0.5 and 1.0 bpp")
    w("")
    w("HLC: `encode(mode='lossy', bpp=r)` (its own rate control; the parameter column says which coder the "
      "encoder kept: the 9/7, or the near-lossless predictive coder at the max error that fits, when that "
      "gives the higher PSNR). JPEG 2000 9/7: OpenJPEG irreversible, "
      "`level` = fixed-quality PSNR parameter searched so the file is ≤ the target and as close as possible; "
      "JPEG XL: libjxl VarDCT default effort, `distance` searched the same way (`bitspersample` = bits stored). "
      "PSNR uses peak = max − min of the original; nominal PSNR uses 2^bits_stored − 1 (inflated on images that "
      "use part of their range; read it with the max error). SSIM: Gaussian σ = 1.5, data range max − min.")
    w("")
    lossy_cols = [("hlc", "HLC"), ("j2k97", "JPEG 2000 9/7"), ("jxl", "JPEG XL")]
    exact = [f"{lbl} {r} bpp {n}" for r in LOSSY_RATES for n in names for key, lbl in lossy_cols
             if b.lossy[r][n][key].psnr is not None and math.isinf(b.lossy[r][n][key].psnr)]
    if exact:
        w("Exact (infinite-PSNR) results are left out of the PSNR means, on both sides of each comparison "
          "(the targets above compare means over the images both codecs coded lossy): " + ", ".join(exact) + ".")
        w("")
    w("| rate | codec | mean bpp | mean PSNR dB | mean nominal PSNR dB | mean SSIM | mean max err | median CR |")
    w("|---|---|---|---|---|---|---|---|")
    for r in LOSSY_RATES:
        for key, lbl in lossy_cols:
            cs = [b.lossy[r][n][key] for n in names]
            full = all(c.bpp is not None for c in cs)
            crs = [im.raw_bytes / c.nbytes for im, c in zip(images, cs) if c.nbytes]
            w(f"| {r} | {lbl} | " + " | ".join(
                _fmt(_mean([getattr(c, a) for c in cs]) if full else None, nd)
                for a, nd in (("bpp", 3), ("psnr", 2), ("psnr_nom", 2), ("ssim", 4), ("max_err", 1)))
              + f" | {_fmt(float(np.median(crs)) if full and crs else None, 1)} |")
    w("")
    for r in LOSSY_RATES:
        w(f"### {r} bpp, per image")
        w("")
        w("| image | codec | bpp | PSNR dB | nominal PSNR dB | SSIM | max err | parameter |")
        w("|---|---|---|---|---|---|---|---|")
        for n in names:
            for key, lbl in lossy_cols:
                c = b.lossy[r][n][key]
                if c.bpp is None:
                    w(f"| {n} | {lbl} | {c.note or 'n/a'} | | | | | |")
                    continue
                par = ("" if c.param is None else c.param if key == "hlc"
                       else f"level={c.param}" if key == "j2k97" else f"distance={c.param}")
                w(f"| {n} | {lbl} | {c.text()} | {_fmt(c.psnr, 2)} | {_fmt(c.psnr_nom, 2)} | {_fmt(c.ssim, 4)} | "
                  f"{_fmt(c.max_err)} | {par} |")
        w("")

    # -------------------------------------------------------------- speed
    w("## Speed (lossless, single thread)")
    w("")
    w(f"MB/s of raw stored bytes (itemsize × elements, 10^6 bytes) / median time of {b.runs} run(s); "
      "`numthreads=1` passed where the codec takes it (OpenJPEG, libjxl; OpenJPH, CharLS and zlib are "
      "single-threaded); HLC with encode(threads=1) and decode(threads=1) "
      "(before 2026-11-29 this table timed HLC with its default of two threads on multi-tile images)"
      ". Corpus figure = total raw bytes / sum of per-image median times. Multi-frame references: "
      "all frames per run.")
    w("")
    w("| codec | encode MB/s | decode MB/s |")
    w("|---|---|---|")
    for k, lbl in cols:
        e = _agg_mbps(images, lambda im: L[im.name][k].enc)
        d = _agg_mbps(images, lambda im: L[im.name][k].dec)
        w(f"| {lbl} | {_fmt(e, 1)} | {_fmt(d, 1)} |")
    if b.hlc_dec2:
        d2 = _agg_mbps([im for im in images if im.name in b.hlc_dec2], lambda im: b.hlc_dec2[im.name])
        w(f"| HLC decode, 2 threads ({b.hlc_dec2_note}) | | {_fmt(d2, 1)} |")
    elif b.hlc_dec2_note:
        w(f"| HLC decode, 2 threads | | {b.hlc_dec2_note} |")
    if b.hlc.ok:
        for r in LOSSY_RATES:
            e = _agg_mbps(images, lambda im: b.lossy[r][im.name]["hlc"].enc)
            d = _agg_mbps(images, lambda im: b.lossy[r][im.name]["hlc"].dec)
            w(f"| HLC lossy {r} bpp (1 run, incl. rate control) | {_fmt(e, 1)} | {_fmt(d, 1)} |")
    w("")
    w("Per image, encode / decode MB/s:")
    w("")
    w("| image | raw MB | " + " | ".join(lbl for _, lbl in cols) + " |")
    w("|---|---|" + "---|" * len(cols))
    for im in images:
        cells = []
        for k, _ in cols:
            c = L[im.name][k]
            e, d = _mbps(im.raw_bytes, c.enc), _mbps(im.raw_bytes, c.dec)
            cells.append("n/a" if e is None else f"{_fmt(e, 1)} / {_fmt(d, 1)}" + (DAGGER if c.offset else ""))
        w(f"| {im.name} | {im.raw_bytes / 1e6:.2f} | " + " | ".join(cells) + " |")
    w("")

    # -------------------------------------------------------------- memory
    w("## Peak memory of HLC")
    w("")
    if not b.memory:
        w("Not measured" + ("" if b.hlc.ok else " (codec_core not usable)") + ".")
    else:
        w(f"{MEMORY_RUNS} fresh subprocesses per measurement; the table gives the run of median anon "
          "(defined below) and, after it, the largest anon of the runs: one run of the same bytes moves by "
          "up to ±0.7× raw on images under 1 MB, as freed heap memory left resident under a live block "
          "depends on the heap's layout. In each, the image (or the stream) is loaded, and a small crop "
          f"and a {WARMUP_SIDE}² synthetic image with flat padding (same dtype; it takes lossy mode's "
          "padding path) are encoded and decoded first, so lazy imports and the code pages of the "
          "paths the image takes are loaded before the measurement; then the allocator's free memory "
          "is given back (`malloc_trim`: the operation cannot reuse pages the warm-ups left resident "
          "unseen), the kernel's resident-set high-water mark is reset (`/proc/self/clear_refs` = 5) "
          "and the operation runs. "
          "**Peak extra = VmHWM after − VmRSS before**, i.e. everything the operation touches: numpy "
          "and the C kernels' buffers, including the output (the decoded image itself counts 1× for decode). "
          "**anon** = that peak less the file-backed pages (code) the operation faulted in itself "
          "(RssFile + RssShmem after − before; mapped pages stay resident, so this is a lower bound "
          "of the data peak, and equal to it when no file page was added). "
          "glibc `MALLOC_MMAP_THRESHOLD_=131072` so large buffers are mapped and unmapped on demand. "
          "The tracemalloc column is the traced peak of a second run in the same process: Python, numpy and "
          "the C decoders' blocks (from the Python raw allocator); a few small native buffers of the kernels "
          "are not traced, nor is memory freed but resident. Shown as multiples of the raw image size."
          + ("" if b.memory_method == "rss" else " (clear_refs unavailable: peak since process start)"))
        w("")
        keys = []
        for res in b.memory.values():
            for k in res:
                if k != "raw" and k not in keys:
                    keys.append(k)
        w("| image | raw MB | " + " | ".join(f"{k}: RSS × raw (anon, largest anon; tracemalloc)" for k in keys)
          + " |")
        w("|---|---|" + "---|" * len(keys))
        for n, res in b.memory.items():
            cells = []
            for k in keys:
                v = res.get(k)
                if not isinstance(v, dict):
                    cells.append("n/a")
                elif "error" in v:
                    cells.append(f"error: {v['error']}")
                else:
                    anon = f"{v['anon_extra'] / res['raw']:.2f}, {v.get('anon_max', v['anon_extra']) / res['raw']:.2f}; " \
                        if "anon_extra" in v else ""
                    cells.append(f"{v['rss_extra'] / res['raw']:.2f} ({anon}{v['tracemalloc_peak'] / res['raw']:.2f})")
            w(f"| {n} | {res['raw'] / 1e6:.2f} | " + " | ".join(cells) + " |")
    w("")

    # -------------------------------------------------------------- notes
    w("## Reference codec settings and caveats")
    w("")
    w("- JPEG 2000 5/3: `jpeg2k_encode(frame, level=0, reversible=True, bitspersample=bits_stored, numthreads=1)` "
      "(bitspersample sets the J2K precision like DICOM's BitsStored; it changes lossless sizes by < 0.1 %). "
      "9/7: `reversible=False`, `level` = OpenJPEG fixed-quality PSNR (dB of the nominal peak), searched.")
    w("- HTJ2K: `htj2k_encode(frame, reversible=True)` (OpenJPH has no thread option).")
    w("- JPEG-LS: `jpegls_encode(frame)` / `jpegls_encode(frame, level=k)` for NEAR=k; "
      "colour is coded as CharLS's default interleaved RGB without colour transform.")
    w("- JPEG XL: lossless `jpegxl_encode(frame, lossless=True, effort=9, bitspersample=bits_stored, numthreads=1)`; "
      "lossy `distance=d` with default effort 7. Without `bitspersample` libjxl treats 12-bit data as dark 16-bit "
      "images and loses ~10 dB at equal size.")
    w("- PNG: `png_encode(frame, level=9)`.")
    if b.refusals:
        w(f"- Signed input ({', '.join(sorted(signed_names))}) refused by: " + "; ".join(
            f"{lbl} (`{msg}`)" for lbl, msg in sorted(b.refusals)) + ". JPEG 2000 and HTJ2K take int16 natively.")
    else:
        w("- No codec refused any input in this run.")
    if b.problems:
        w("- Problems: see the list under the summary.")
    w("")

    # -------------------------------------------------------------- other results
    w("## Other results")
    w("")
    res_dir = os.path.join(HERE, "results")
    others = sorted(glob.glob(os.path.join(res_dir, "*.md")))
    if others:
        out_dir = os.path.dirname(os.path.abspath(path))
        for f in others:
            title = os.path.basename(f)
            try:
                with open(f, encoding="utf-8") as fh:
                    for line in fh:
                        if line.startswith("#"):
                            title = line.lstrip("#").strip()
                            break
            except OSError:
                pass
            w(f"- [{title}]({os.path.relpath(f, out_dir).replace(os.sep, '/')})")
    else:
        w("No files in benchmarks/results/ yet (ECC, ROI and plug-in benchmarks write there).")
    w("")
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return text


# ============================================================================== main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_memchild":
        _mem_child(json.loads(argv[1]))
        return 0
    if argv and argv[0] == "--_speedchild":
        _speed_child(json.loads(argv[1]))
        return 0

    from codec_core.cli.corpus import BENCH_CORPUS, CORPUS, QUICK_CORPUS, load_corpus

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="3 small images, 1 timing run, lossless memory only (for development)")
    p.add_argument("--images", help="comma-separated pydicom-data names (default: the corpus; "
                   f"choices: {', '.join(CORPUS)})")
    p.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"), help="Markdown report path")
    p.add_argument("--runs", type=int, default=None, help="timing runs (default 3, --quick 1)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--json", help="also write raw figures as JSON here")
    args = p.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.images:
        names = [n.strip() for n in args.images.split(",") if n.strip()]
    else:
        names = list(QUICK_CORPUS if args.quick else BENCH_CORPUS)

    t0 = time.time()
    images = load_corpus(names)
    b = Bench(args, images)
    b.log(f"{len(images)} images, HLC {'available' if b.hlc.ok else 'NOT available: ' + b.hlc.reason}")
    b.run_lossless()
    b.run_near()
    b.run_lossy()
    with tempfile.TemporaryDirectory(prefix="hlc_bench_") as tmp:
        b.run_hlc_two_threads(tmp)
        if not args.no_memory:
            b.run_memory(tmp)

    try:
        nice = os.nice(0)
    except OSError:
        nice = 0
    rel = os.path.relpath(os.path.abspath(__file__), os.getcwd())
    if rel.startswith(".."):
        rel = os.path.abspath(__file__)
    command = ("" if nice <= 0 else f"nice -n {nice} ") + "python " + " ".join(
        shlex.quote(x) for x in [rel] + argv)
    if os.path.abspath(os.getcwd()) != REPO:
        command = f"cd {shlex.quote(os.getcwd())} && {command}"
    write_report(b, args.out, command, time.time() - t0)
    if args.json:
        raw = {
            "lossless": {n: {k: vars(c) for k, c in row.items()} for n, row in b.lossless.items()},
            "near": {str(k): {n: {c: vars(v) for c, v in row.items()} for n, row in rows.items()}
                     for k, rows in b.near.items()},
            "lossy": {str(r): {n: {c: vars(v) for c, v in row.items()} for n, row in rows.items()}
                      for r, rows in b.lossy.items()},
            "memory": b.memory, "hlc_decode_2_threads": b.hlc_dec2,
        }
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1, default=str)
    b.log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
