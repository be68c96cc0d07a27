"""``hlc bench`` and ``hlc demo``: HLC against the imagecodecs codecs, with pictures.

For each image HLC is run at its operating points (lossless, near-lossless k = 1, 2, 4,
lossy at several bpp and at 45 dB, hybrid with the automatic ROI kept exact and the rest
at 45 dB) and the reference codecs are swept over their quality parameter, so that every
codec gives a rate-distortion curve. Codecs that take unsigned samples only are run on
signed images offset to unsigned, as their users do, and the table says so. The
reference codecs are those of :mod:`codec_core.cli.references`, shared with the
benchmark scripts. Figures follow docs/METRICS.md through :mod:`codec_core.metrics`;
speeds are single-thread MB/s of raw stored bytes.

This is the user-facing comparison that ships with the package. The full, rate-matched
benchmark of record is ``benchmarks/bench_codecs.py`` (source tree only), which
searches each reference codec's parameter to hit HLC's exact sizes.
"""
from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import references as refs
from .io import CliError, Image
from .parser import DEMO_IMAGE
from .results import ImageResult, Point, rd_caption, rd_curves, rd_marks, rd_rates

NEAR_KS = (1, 2, 4)
LOSSY_BPP = (0.25, 0.5, 1.0, 2.0)
#: The hybrid's target for the pixels outside the ROI: a PSNR (whole image, peak max -
#: min), not a bpp, because the exact ROI alone usually costs more than any bpp worth
#: asking, and the rate control would then give the rest nothing (a flat background
#: thousands of values off).
HYBRID_PSNR = 45.0
#: Reference sweeps: JPEG 2000 9/7 PSNR targets (peak max - min; OpenJPEG's own quality
#: parameter uses the nominal peak, so the offset between the two is added) and JPEG XL distance.
J2K_PSNR = (30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0)
JXL_DISTANCES = (8.0, 4.0, 2.0, 1.0, 0.5, 0.25)


# ---------------------------------------------------------------- measuring

def _median_time(fn: Callable[[], Any], runs: int) -> tuple[Any, float]:
    times = []
    out = None
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


class Measure:
    """Fills a :class:`Point` from an encoder/decoder pair on one image."""

    def __init__(self, image: Image, mask: np.ndarray | None) -> None:
        self.image = image
        self.mask = mask
        self.raw = int(image.array.nbytes)

    def __call__(self, point: Point, encode: Callable[[], list[bytes]],
                 decode: Callable[[list[bytes]], np.ndarray], runs: int = 1) -> tuple[Point, np.ndarray | None]:
        from codec_core import metrics

        im = self.image
        try:
            streams, t_enc = _median_time(encode, runs)
            out, t_dec = _median_time(lambda: decode(streams), runs)
        except Exception as e:  # a codec that refuses the input is a result, not a crash
            # The reference codecs that cannot store signed samples say so only vaguely
            # (a point noted "offset to unsigned" was given unsigned samples: not that).
            # HLC's own failures are errors whatever the input.
            refused = im.array.dtype.kind == "i" and not point.note and point.codec != "HLC"
            point.note = f"refused {im.array.dtype} input" if refused else "error: " + refs.short_error(e)
            return point, None
        out = np.asarray(out)
        if out.shape != im.array.shape:
            point.note = f"error: decoded shape {out.shape} != {im.array.shape}"
            return point, None
        out = out.astype(im.array.dtype, copy=False)
        n = sum(len(s) for s in streams)
        point.nbytes = n
        point.bpp = metrics.bpp(n, im.array.shape, im.axes)
        point.cr = metrics.compression_ratio(n, im.array)
        point.max_abs_error = metrics.max_abs_error(im.array, out)
        point.psnr = metrics.psnr(im.array, out)
        point.psnr_nominal = metrics.psnr_nominal(im.array, out, im.bits_stored)
        point.encode_mbps = self.raw / 1e6 / max(t_enc, 1e-9)
        point.decode_mbps = self.raw / 1e6 / max(t_dec, 1e-9)
        point.seconds = t_enc + t_dec
        if point.max_abs_error == 0:
            point.ssim = 1.0
        else:
            point.ssim = metrics.ssim(im.array, out, axes=im.axes)
        if self.mask is not None:
            m = self.mask
            diff = np.abs(im.array.astype(np.int64) - out.astype(np.int64))
            if im.axes.endswith("C"):
                diff = diff.max(axis=-1)
            mm = np.broadcast_to(m, diff.shape)
            point.max_abs_error_roi = int(diff[mm].max()) if mm.any() else None
            if point.max_abs_error == 0:
                point.ssim_roi = point.ssim_background = 1.0
            else:
                point.ssim_roi = metrics.ssim(im.array, out, mask=m, axes=im.axes)
                point.ssim_background = metrics.ssim(im.array, out, mask=~m, axes=im.axes)
        return point, out


def hlc_points(image: Image, measure: Measure, runs: int, quick: bool) -> tuple[list[Point], np.ndarray | None]:
    """HLC at its operating points; returns the points and the hybrid decode."""
    import codec_core as hlc

    a, bits, axes = image.array, image.bits_stored, image.axes
    last: dict = {}

    def enc(**kw):
        def run() -> list:
            last["stream"] = hlc.encode(a, bits_stored=bits, axes=axes, threads=1, **kw)
            return [last["stream"]]
        return run

    def dec(streams):
        return hlc.decode(streams[0], threads=1)

    def kept(p: Point) -> Point:
        """Name the coder of the stream where encode kept another than the one asked for."""
        info = hlc.info(last["stream"]) if "stream" in last else None
        if info is not None and p.family in ("lossy", "hybrid") and not info["roi"] and info["mode"] != "lossy":
            p.setting += f" (kept: {info['mode']}" + (f" k={info['max_error']})" if info["max_error"] else ")")
        return p

    out: list[Point] = []
    p, _ = measure(Point("HLC", "lossless", "lossless"), enc(mode="lossless"), dec, runs)
    out.append(p)
    for k in NEAR_KS:
        p, _ = measure(Point("HLC", f"near-lossless k={k}", "near-lossless"),
                       enc(mode="near-lossless", max_error=k), dec, runs)
        out.append(p)
    for r in (LOSSY_BPP[1:] if quick else LOSSY_BPP):
        p, _ = measure(Point("HLC", f"lossy {r:g} bpp", "lossy"), enc(mode="lossy", bpp=r), dec)
        out.append(kept(p))
    p, _ = measure(Point("HLC", "lossy 45 dB", "lossy"), enc(mode="lossy", psnr=45.0), dec)
    out.append(kept(p))
    p, hybrid = measure(Point("HLC", f"hybrid {HYBRID_PSNR:g} dB, auto ROI exact", "hybrid"),
                        enc(mode="lossy", psnr=HYBRID_PSNR, roi="auto", roi_max_error=0), dec)
    out.append(kept(p))
    return out, hybrid


class _ReferenceRun:
    """The reference codecs on one image, frame by frame; signed images go to the codecs
    that take unsigned samples only offset by -min (as uint16), the offset added back
    after decoding (the codec's file would carry it beside the stream)."""

    def __init__(self, image: Image, measure: Measure, runs: int) -> None:
        a = image.array
        self.image, self.measure, self.runs = image, measure, runs
        self.frames = refs.frames_of(a, image.axes)
        self.low = int(a.min())
        self.offset = a.dtype.kind == "i"
        self.ubits = max(1, (int(a.max()) - self.low).bit_length()) if self.offset else image.bits_stored

    def __call__(self, ref: refs.Reference, setting: str, family: str, timed: bool = False) -> Point:
        shift = self.offset and ref.unsigned_only
        point = Point(ref.name, setting, family, note=f"offset to unsigned ({-self.low:+d})" if shift else "")
        bits = self.ubits if ref.unsigned_only else self.image.bits_stored
        a, axes = self.image.array, self.image.axes

        def enc() -> list[bytes]:
            return [ref.encode(refs.to_unsigned(f, -self.low) if shift else f, bits) for f in self.frames]

        def dec(streams: list[bytes]) -> np.ndarray:
            out = [ref.decode(s) for s in streams]
            return refs.stack_frames([refs.from_unsigned(x, -self.low, a.dtype) for x in out] if shift else out, axes)

        return self.measure(point, enc, dec, self.runs if timed else 1)[0]


def reference_points(image: Image, measure: Measure, runs: int, quick: bool) -> list[Point]:
    """The imagecodecs codecs, frame by frame, each swept over its quality parameter."""
    run = _ReferenceRun(image, measure, runs)
    lossless = refs.lossless_references(jpegxl_effort=None if quick else 7)
    lossless.sort(key=lambda r: r.name == "JPEG XL")  # (JPEG XL last, as it always was here)
    out = [run(ref, "lossless", "lossless", timed=True) for ref in lossless]
    for k in NEAR_KS:
        out.append(run(refs.jpegls_near(k), f"NEAR={k}", "near-lossless", timed=True))
        if out[-1].bpp is None:
            break
    a, bits = image.array, image.bits_stored
    gain = 20 * math.log10((2 ** bits - 1) / max(1, int(a.max()) - int(a.min())))
    for t in (J2K_PSNR[::2] if quick else J2K_PSNR):
        out.append(run(refs.jpeg2k_97(t + gain), f"target {t:g} dB", "lossy"))
        if out[-1].bpp is None:
            break
    for dist in (JXL_DISTANCES[::2] if quick else JXL_DISTANCES):
        out.append(run(refs.jpegxl_lossy(dist), f"distance {dist:g}", "lossy"))
        if out[-1].bpp is None:
            break
    return out


def run_image(image: Image, name: str, *, runs: int, quick: bool, references: bool,
              log: Callable[[str], None]) -> ImageResult:
    """Every point of one image, plus its pictures."""
    from . import render

    im = image
    res = ImageResult(name=name, shape=tuple(im.array.shape), dtype=str(im.array.dtype),
                      bits_stored=im.bits_stored,
                      modality=str(im.dataset.get("Modality", "")) if im.dataset is not None else "")
    t0 = time.perf_counter()
    mask = None
    cmap0 = None
    try:
        from codec_core.roi import auto_importance_map

        cmap0 = np.asarray(auto_importance_map(im.frame(0), bits_stored=im.bits_stored))
        mask = render.auto_mask(im)
        res.roi_fraction = float(np.mean(mask))
    except Exception as e:
        res.roi_error = refs.short_error(e)
        log(f"  automatic ROI unavailable on {name}: {res.roi_error}")
    measure = Measure(im, mask)
    points, hybrid = hlc_points(im, measure, runs, quick)
    res.points += points
    log(f"  HLC done ({time.perf_counter() - t0:.1f} s)")
    if references:
        res.points += reference_points(im, measure, runs, quick)
        log(f"  references done ({time.perf_counter() - t0:.1f} s)")
    shown = hybrid
    caption_point = next((p for p in points if p.family == "hybrid"), None)
    if shown is None:
        caption_point = next((p for p in points if p.setting.startswith("lossy 0.5")), None)
        if caption_point is not None:
            import codec_core as hlc

            shown = hlc.decode(hlc.encode(im.array, mode="lossy", bpp=0.5, bits_stored=im.bits_stored,
                                          axes=im.axes))
    if shown is not None and caption_point is not None:
        from .display import viewer

        frame_sel = (lambda x: x[0]) if im.axes.startswith("Z") else (lambda x: x)
        original = frame_sel(im.array)
        view = viewer(original, im.dataset, bits_stored=im.bits_stored, colour=im.axes.endswith("C"))
        p = caption_point
        res.panels_caption = (f"{name}{', frame 0' if im.axes.startswith('Z') else ''}: HLC {p.setting} - "
                              f"{p.bpp:.3f} bpp, PSNR {p.psnr:.2f} dB, max error {p.max_abs_error}"
                              + (f", ROI max error {p.max_abs_error_roi}" if p.max_abs_error_roi is not None else "")
                              + (". The automatic ROI (body + detail) is outlined in cyan" if cmap0 is not None else "")
                              + f". Display: {view.caption}.")
        res.panels_png = render.panels_png(original, frame_sel(shown), cmap0, view)
    res.rd_png = render.rd_plot_png(rd_curves(res.points), f"{name}: rate-distortion",
                                    points=rd_marks(res.points), rates=rd_rates(res.points))
    res.rd_caption = rd_caption(res.points)
    return res


# ---------------------------------------------------------------- inputs

def _find_dicom(directory: str, limit: int | None) -> list[str]:
    from . import io

    if not os.path.isdir(directory):
        raise CliError(f"{directory} is not a directory: give a folder of DICOM files")
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(root, f)
            try:
                if io.sniff(path) == "dicom":
                    found.append(path)
            except CliError:
                continue
    if not found:
        raise CliError(f"no DICOM files found under {directory}")
    return found[:limit] if limit else found


def _corpus_names(args) -> list[str]:
    from .corpus import BENCH_CORPUS, QUICK_CORPUS

    if getattr(args, "images", None):
        return [n.strip() for n in args.images.split(",") if n.strip()]
    return list(QUICK_CORPUS if args.quick else BENCH_CORPUS)


def load_named(name_or_path: str) -> Image:
    """A DICOM file by path, or a pydicom-data file by its exact name."""
    from . import io
    from .corpus import corpus_path

    path = name_or_path if os.path.exists(name_or_path) else None
    if path is None:
        try:
            path = corpus_path(name_or_path)
        except (FileNotFoundError, ValueError) as e:
            raise CliError(f"{name_or_path}: no such file, and {e}") from None
    return io.read_dicom(path)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _collect(sources: list[str], args, references: bool, quick: bool) -> tuple[list[ImageResult], list[str]]:
    results, skipped = [], []
    for i, src in enumerate(sources, 1):
        name = os.path.basename(src)
        _log(f"[{i}/{len(sources)}] {name}")
        try:
            image = load_named(src)
            if image.dataset is not None and str(image.dataset.get("Modality", "")) == "SEG":
                raise CliError("a segmentation object, not an image")
        except CliError as e:
            skipped.append(f"{name}: {e}")
            _log(f"  skipped: {e}")
            continue
        results.append(run_image(image, name, runs=args.runs, quick=quick, references=references, log=_log))
    return results, skipped


def run_bench(args) -> int:
    from . import report
    from .io import UsageError, atomic_write, check_not_input

    if args.runs < 1:
        raise UsageError("--runs must be at least 1")
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if not args.output.lower().endswith((".html", ".htm")):
        raise UsageError(f"-o {args.output}: the report is HTML; use a .html name")
    sources = _find_dicom(args.directory, args.limit) if args.directory else _corpus_names(args)
    if args.directory:
        check_not_input(args.output, *sources)
    t0 = time.perf_counter()
    results, skipped = _collect(sources, args, not args.no_references, args.quick)
    if not results:
        raise CliError("no image could be benchmarked: " + "; ".join(skipped))
    command = "hlc " + " ".join(sys.argv[1:]) if os.path.basename(sys.argv[0]) in ("hlc", "main.py") \
        else "hlc bench"
    md = report.bench_markdown(results, skipped)
    print(md)
    html = report.bench_html(results, skipped, title="HLC benchmark", command=command,
                             elapsed=time.perf_counter() - t0)
    atomic_write(args.output, html.encode("utf-8"))
    if args.md:
        atomic_write(args.md, md.encode("utf-8"))
    print(f"\nwrote {args.output}" + (f" and {args.md}" if args.md else ""))
    return 0


def _warm_up(array: np.ndarray) -> float:
    """One untimed round trip per mode on a corner of the image, so the table's times
    measure coding, not the first call's loading (numpy, the compiled kernels' module,
    the ROI models)."""
    import codec_core as hlc

    t0 = time.perf_counter()
    tile = np.ascontiguousarray(array[:32, :32] if array.ndim >= 2 else array[:64])
    mask = np.zeros(tile.shape, bool)
    mask[: max(1, tile.shape[0] // 2)] = True
    for kwargs in (dict(mode="lossless"), dict(mode="near-lossless", max_error=1),
                   dict(mode="lossy", bpp=1.0), dict(mode="lossy", bpp=1.0, roi=mask)):
        hlc.decode(hlc.encode(tile, **kwargs))
    return time.perf_counter() - t0


def run_demo(args) -> int:
    from . import report
    from .io import UsageError, atomic_write, check_can_write

    if not args.output.lower().endswith((".html", ".htm")):
        raise UsageError(f"-o {args.output}: the report is HTML; use a .html name")
    check_can_write(args.output)
    name = args.image or DEMO_IMAGE
    t0 = time.perf_counter()
    image = load_named(name)
    label = os.path.basename(name)
    print(f"HLC demo on {label}: {image.dataset.get('Modality', '')} "
          f"{'x'.join(map(str, image.array.shape))} {image.array.dtype}, {image.bits_stored} bits stored "
          f"({image.array.nbytes} raw bytes)\n")
    t_warm = _warm_up(image.array)
    if t_warm > 1.0:
        print(f"(loaded the codec and its models in {t_warm:.1f} s)\n")
    res = run_image(image, label, runs=1, quick=True, references=True, log=lambda m: None)
    print(report.demo_markdown(res))
    html = report.bench_html([res], [], title=f"HLC demo: {label}", command="hlc demo",
                             elapsed=time.perf_counter() - t0)
    atomic_write(args.output, html.encode("utf-8"))
    print(f"\nwrote {os.path.abspath(args.output)} (open it in a browser; it needs no network) "
          f"in {time.perf_counter() - t0:.1f} s")
    # The demo is the first thing a new install runs (README): HLC failing in it is a
    # failed demo, not a row of the table.
    failed = [f"{p.setting}: {p.note}" for p in res.points if p.codec == "HLC" and p.note.startswith("error")]
    if res.roi_error:
        failed.append(f"automatic ROI: {res.roi_error}")
    if failed:
        print("hlc demo: HLC failed on this install:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0
