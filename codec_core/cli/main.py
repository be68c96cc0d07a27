"""The ``hlc`` command: convert, inspect, compare, report, and batch-convert archives.

Entry point :func:`main` (console script ``hlc``; also ``python -m codec_core.cli.main``).
The parser is :mod:`codec_core.cli.parser`; the commands are here. This module
imports only the standard library (and the parser) at start-up, so ``hlc --help`` is
fast; numpy, pydicom, matplotlib and dask are imported inside the commands that use
them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .parser import EXIT_INCOMPLETE, PROG, build_parser, codec_options


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _shape_text(arr: Any) -> str:
    return "x".join(str(s) for s in arr.shape) + f" {arr.dtype}"


# ------------------------------------------------------------------ commands

def cmd_encode(args: argparse.Namespace) -> int:
    from . import io

    opts = codec_options(args)
    io.check_not_input(args.output, args.input, args.roi or "")
    if not args.output.lower().endswith((".hlc", ".dcm", ".dicom")):
        raise io.UsageError(f"OUT {args.output} must end in .hlc, or .dcm for DICOM in the HLC transfer syntax")
    if args.bits_stored is not None and not 1 <= args.bits_stored <= 16:
        raise io.UsageError("--bits-stored must be 1..16")
    image = io.read_image(args.input, bits_stored=args.bits_stored)
    if args.roi is not None:
        opts["roi"] = io.read_roi(args.roi, image)
    t0 = time.perf_counter()
    data = io.encode_bytes(image, args.output, opts)
    seconds = time.perf_counter() - t0
    # Read back before the output takes its name: a file that does not decode to the
    # image within the bound asked is never written.
    from .batch import check_written

    io.atomic_write(args.output, data, check_written(image.array, opts, image.axes.endswith("C")), like=args.input)
    if not args.quiet:
        d = file_info(args.output)  # the figures of the HLC data, as 'hlc info' gives them
        what = _written_text(d, opts, args.roi)
        size = _fmt_bytes(d["compressed_size"])
        if d["container"] == "dicom":
            size += f" of pixel data (file {_fmt_bytes(d['file_size'])})"
        print(f"{args.input} -> {args.output}: {_shape_text(image.array)}, {what}; "
              f"{_fmt_bytes(io.image_bytes(image))} -> {size}, {d['bpp']:.3f} bpp, "
              f"CR {d['compression_ratio']:.2f}, {seconds:.2f} s")
    return 0


def _mode_text(mode: str, max_error: Any, roi: str | None, roi_max_error: Any) -> str:
    text = mode + (f" (max error {max_error})" if mode == "near-lossless" else "")
    return text + (f", ROI {roi} within {roi_max_error}" if roi is not None else "")


def _written_text(d: dict[str, Any], opts: dict[str, Any], roi: str | None) -> str:
    """What ``hlc encode`` wrote (``info`` of the output), and what was asked when that
    differs: the hybrid returns the whole image within the ROI's bound when that is
    smaller, lossy mode a near-lossless stream when that does better."""
    asked = _mode_text(opts["mode"], opts.get("max_error"), roi, opts.get("roi_max_error"))
    got = _mode_text(d["mode"], d["max_error"], roi if d["roi"] else None, d.get("roi_max_error"))
    return got if got == asked else f"{got} (asked {asked})"


def cmd_decode(args: argparse.Namespace) -> int:
    from . import io

    io.check_not_input(args.output, args.input)
    if args.display and not args.output.lower().endswith((".png", ".tif", ".tiff")):
        raise io.UsageError(f"--display writes a picture: name the output .png or .tif, not {args.output}")
    kind = io.sniff(args.input)
    t0 = time.perf_counter()
    report = None
    if kind == "hlc":
        import codec_core as hlc

        with open(args.input, "rb") as fh:
            data = fh.read()
        kw = dict(level=args.level, frame=args.frame)
        # (decoded before info(), whose reading of a wrapper past repair is lenient: the
        # parity's verdict, not the damaged header inside it, is the error to show)
        if args.lenient:
            arr, report = hlc.decode(data, strict=False, **kw)
        else:
            arr = hlc.decode(data, **kw)
        meta = hlc.info(data)
        image = io.Image(arr, int(meta["bits_stored"]), "hlc", args.input)
    elif kind == "dicom":
        if args.level or args.lenient:
            raise io.UsageError("--level and --lenient work on .hlc input only; decode the DICOM file "
                                "without them")
        image = io.read_dicom(args.input)
        if args.frame is not None:
            if not image.axes.startswith("Z") or not 0 <= args.frame < image.frames:
                raise io.UsageError(f"--frame {args.frame}: {args.input} has {image.frames} frame(s)")
            image.array = image.array[args.frame]
            if "NumberOfFrames" in image.dataset:
                del image.dataset.NumberOfFrames
    elif kind:
        raise io.UsageError(f"{args.input} is a {kind.upper()} file, not compressed: use "
                            "'hlc encode' to compress it")
    else:
        raise io.CliError(f"{args.input} is neither an .hlc stream nor a DICOM file: give one of those")
    seconds = time.perf_counter() - t0
    if args.display:
        from .display import display_output

        image = display_output(image, args.frame or 0,
                               note=lambda m: print(f"hlc decode: note: {m}", file=sys.stderr))
    data_out = io.decode_bytes(image, args.output)
    io.atomic_write(args.output, data_out, like=args.input)
    if not args.quiet:
        print(f"{args.input} -> {args.output}: {_shape_text(image.array)}, {seconds:.2f} s")
        if report is not None:
            lost = {k: v for k, v in report.items() if v not in (None, [], 0, {}, True)}
            print("damage report: " + (io.json_text(lost) if lost else "no damage found"))
    # (written, but not the image encoded: a script must tell that from a clean decode)
    return EXIT_INCOMPLETE if report is not None and not report.get("exact", True) else 0


def _add_completeness(d: dict[str, Any], infos: list[dict[str, Any]]) -> None:
    """``complete`` and ``bytes_needed`` of a file's HLC streams (one per DICOM frame)."""
    d["bytes_needed"] = sum(i["bytes_needed"] for i in infos)
    d["complete"] = all(i["complete"] for i in infos)


def file_info(path: str) -> dict[str, Any]:
    """``codec_core.info`` of an .hlc file, or of each frame of an HLC DICOM file.

    ``compressed_size``, ``bpp`` and ``compression_ratio`` count the HLC data only (a
    DICOM file's pixel data fragments); ``file_size`` is the whole file's.
    """
    from . import io

    kind = io.sniff(path)
    if kind == "hlc":
        import codec_core as hlc

        with open(path, "rb") as fh:
            data = fh.read()
        d = hlc.info(data)
        d["file"] = path
        d["container"] = "hlc"
        d["file_size"] = len(data)
        _add_completeness(d, [d])
        return d
    if kind == "dicom":
        from pydicom.encaps import generate_frames

        import codec_core as hlc

        ds = io.read_dataset(path)
        ts = getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "")
        if not io.is_hlc_dicom(ds):
            raise io.CliError(f"{path} is DICOM in transfer syntax {ts} ({getattr(ts, 'name', '')}), "
                              "not HLC: compress it with 'hlc encode'")
        if "PixelData" not in ds:  # (pydicom drops an element the file ends in)
            raise io.CliError(f"{path} has no pixel data: the file is cut short or damaged")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        streams = list(generate_frames(ds.PixelData, number_of_frames=frames))
        d = hlc.info(streams[0])
        d["file"] = path
        d["container"] = "dicom"
        d["transfer_syntax"] = str(ts)
        d["sop_class"] = getattr(ds.SOPClassUID, "name", str(ds.get("SOPClassUID", "")))
        d["modality"] = str(ds.get("Modality", ""))
        d["frames"] = frames
        if frames > 1:
            d["axes"] = "Z" + d["axes"]
        d["shape"] = ((frames,) if frames > 1 else ()) + tuple(d["shape"])
        d["frame_sizes"] = [len(s) for s in streams]
        d["compressed_size"] = sum(d["frame_sizes"])
        infos = [hlc.info(s) for s in streams]
        d["bpp"] = 8.0 * d["compressed_size"] / (d["rows"] * d["cols"] * frames)
        raw = frames * d["rows"] * d["cols"] * d["channels"] * (2 if "16" in d["dtype"] else 1)
        d["compression_ratio"] = raw / d["compressed_size"]
        if frames > 1 and d["roi"]:
            d["roi_fraction"] = sum(i["roi_fraction"] for i in infos) / frames
        d["lossy"] = any(i["lossy"] for i in infos)
        d["lossy_image_compression"] = str(ds.get("LossyImageCompression", ""))
        d["file_size"] = os.path.getsize(path)
        _add_completeness(d, infos)
        d.pop("ecc_report", None)
        return d
    raise io.CliError(f"{path} is not an .hlc stream or an HLC DICOM file"
                      + (f" (it is {kind.upper()})" if kind else ""))


def cmd_info(args: argparse.Namespace) -> int:
    d = file_info(args.file)
    status = 0 if d["complete"] else EXIT_INCOMPLETE
    if args.json:
        from .io import json_text

        print(json_text(d, indent=2))
        return status
    order = ["file", "container", "transfer_syntax", "modality", "version", "complete", "shape", "dtype",
             "bits_stored", "axes", "mode", "lossy", "max_error", "roi", "roi_fraction",
             "roi_max_error", "ecc", "ecc_overhead", "preprocess", "transform", "levels",
             "tile_shape", "tiles", "value_range", "compressed_size", "bpp", "compression_ratio",
             "file_size", "frame_sizes"]
    if d["container"] == "hlc":
        order.remove("file_size")  # the stream is the file
    width = max(len(k) for k in order)
    for k in order:
        if k not in d:
            continue
        v = d[k]
        if k == "complete":
            v = "yes" if v else (f"no — the stream is cut short; {d['compressed_size']} of "
                                 f"{d['bytes_needed']} bytes")
        elif k in ("roi_fraction", "ecc_overhead") and isinstance(v, float):
            v = f"{100 * v:.1f} %"
        elif isinstance(v, float):
            v = f"{v:.4g}"
        elif k == "frame_sizes" and len(v) > 12:
            v = f"{v[:12]} ... ({len(v)} frames)"
        print(f"{k.replace('_', ' '):<{width}}  {v}")
    for name, r in (d.get("regions") or {}).items():  # a hybrid by region layers: what each region got
        bound = "its target" if r["max_error_bound"] is None else f"within {r['max_error_bound']}"
        psnr = "inf" if r["psnr"] == float("inf") else f"{r['psnr']:.2f} dB"
        print(f"{'region ' + name:<{width}}  {100 * r['fraction']:.1f} %, {r['coder']} ({bound}), "
              f"{r['layer_bytes']} B, PSNR {psnr}, max error {r['max_error']}")
    if d.get("target"):
        print(f"{'region target':<{width}}  {d['target']['name']} {d['target']['value']:g}")
    return status


def cmd_roi(args: argparse.Namespace) -> int:
    import numpy as np

    from codec_core import roi as roi_mod

    from . import io, render

    io.check_not_input(args.output, args.input)
    if not args.output.lower().endswith(".png"):
        raise io.UsageError(f"-o {args.output}: the overlay is written as PNG; use a .png name")
    image = io.read_image(args.input)
    if not 0 <= args.frame < image.frames:
        raise io.UsageError(f"--frame {args.frame}: {args.input} has {image.frames} frame(s)")
    frame = image.frame(args.frame)
    cmap = np.asarray(roi_mod.auto_importance_map(frame, bits_stored=image.bits_stored))
    from .display import viewer

    view = viewer(frame, image.dataset, bits_stored=image.bits_stored, colour=image.axes.endswith("C"),
                  frame=args.frame)
    for note in view.notes:
        print(f"hlc roi: note: {note}", file=sys.stderr)
    png = render.roi_overlay_png(view(frame), cmap, title=f"{os.path.basename(args.input)}"
                                 + (f" frame {args.frame}" if image.frames > 1 else ""),
                                 caption=f"display: {view.caption}")
    io.atomic_write(args.output, png)
    pixels = render.class_fractions(cmap, frame.shape[:2])
    if args.json:
        print(io.json_text({"output": args.output, "block": int(roi_mod.ROI_BLOCK), "fractions": pixels}))
    else:
        parts = ", ".join(f"{name} {100 * f:.1f} %" for name, f in pixels.items())
        print(f"{args.input} -> {args.output}: {parts} (blocks of {roi_mod.ROI_BLOCK} px)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from codec_core import metrics

    from . import io

    original = io.read_image(args.original)
    decoded = io.read_image(args.decoded)
    a, b = original.array, decoded.array
    if a.shape != b.shape:
        raise io.CliError(f"shapes differ: {args.original} is {a.shape}, {args.decoded} is {b.shape}; "
                          "compare an image with its own decoded version")
    nbytes = None
    if decoded.kind == "hlc":
        nbytes = os.path.getsize(args.decoded)
    elif decoded.kind == "dicom" and io.is_hlc_dicom(decoded.dataset):
        nbytes = sum(file_info(args.decoded)["frame_sizes"])
    mask = None
    if args.roi is not None:
        spec = io.read_roi(args.roi, original)
        from . import render

        mask = render.auto_mask(original) if isinstance(spec, str) else spec
    res = metrics.compare(a, b, nbytes=nbytes, bits_stored=original.bits_stored, mask=mask,
                          axes=original.axes)
    if mask is not None:
        m = np.broadcast_to(mask, a.shape[:-1] if original.axes.endswith("C") else a.shape)
        if original.axes.endswith("C"):
            m = np.repeat(m[..., None], 3, axis=-1)
        diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
        res["max_abs_error_roi"] = int(diff[m].max()) if m.any() else None
        res["max_abs_error_background"] = int(diff[~m].max()) if (~m).any() else None
        res["roi_fraction"] = float(m.mean())
    res["original"] = args.original
    res["decoded"] = args.decoded
    res["bits_stored"] = original.bits_stored
    if args.json:
        print(io.json_text(res))
        return 0
    from .report import metric_rows_markdown

    print(metric_rows_markdown(res))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.run_bench(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from . import bench

    return bench.run_demo(args)


def cmd_batch(args: argparse.Namespace) -> int:
    from . import batch

    return batch.run_batch(args)


COMMANDS = {
    "encode": cmd_encode, "decode": cmd_decode, "info": cmd_info, "roi": cmd_roi,
    "compare": cmd_compare, "bench": cmd_bench, "demo": cmd_demo, "batch": cmd_batch,
}


# ------------------------------------------------------------------ errors

def _one_line(e: BaseException, args: argparse.Namespace | None = None) -> tuple[str, int]:
    """The message and exit status for an exception that reached the top."""
    from .io import CliError

    if isinstance(e, CliError):
        return str(e), e.exit_code
    from codec_core.errors import HlcError

    if isinstance(e, HlcError):
        return f"{e} (the file is damaged or not HLC{_lenient_hint(e, args)})", 1
    if isinstance(e, MemoryError):
        return "out of memory: decode one frame at a time (--frame) or use a machine with more memory", 1
    if isinstance(e, OSError):
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        what = e.strerror or str(e)
        hint = {28: "free some disk space and run again", 13: "check the file permissions",
                27: "the file system refused a file this large"}.get(e.errno or 0, "check the path")
        return f"cannot read or write{where}: {what}; {hint}", 1
    if isinstance(e, ValueError):
        return f"{e}", 2
    return f"unexpected {type(e).__name__}: {e} (run again with --debug for the traceback, and report it)", 1


def _lenient_hint(e: BaseException, args: argparse.Namespace | None) -> str:
    """The pointer to ``hlc decode --lenient`` where it helps: damage it conceals (not a
    header, a signature or another format: those it cannot read either), in an .hlc
    stream (DICOM input takes no --lenient), not already asked for."""
    from codec_core.errors import CorruptStreamError

    from . import io

    path = getattr(args, "input", None) or getattr(args, "file", None)
    if not path or getattr(args, "lenient", False):
        return ""
    if not isinstance(e, CorruptStreamError) or e.where in ("signature", "header", "ecc header"):
        return ""
    try:
        if io.sniff(path) != "hlc":
            return ""
    except io.CliError:
        return ""
    return "; 'hlc decode --lenient' recovers what can be recovered"


def _warnings_as_one_line(name: str) -> Callable[[], None]:
    """Show each warning as ``hlc COMMAND: warning: MESSAGE``, as errors are shown, not
    as Python's file, line number and source line of the library that warned; one that
    differs from an earlier one in its figures only (the same warning for each frame) is
    counted, not shown. Returns what prints the counts, at the end of the command."""
    import warnings

    from .io import warning_shape

    alike: dict[str, list] = {}  # shape -> [first message, times]

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        seen = alike.setdefault(warning_shape(str(message)), [str(message), 0])
        seen[1] += 1
        if seen[1] == 1:
            print(f"{name}: warning: {message}", file=sys.stderr if file is None else file)

    def counts() -> None:
        for first, times in alike.values():
            if times > 1:
                print(f"{name}: warning: {times - 1} more like \"{first}\"", file=sys.stderr)

    warnings.showwarning = show
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hlc`` command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"hlc {version('hlc-codec')}")
        except PackageNotFoundError:
            print("hlc (source tree, not installed)")
        return 0
    if not args.command:
        parser.print_help()
        return 2
    name = f"{PROG} {args.command}"
    counts = (lambda: None) if debug else _warnings_as_one_line(name)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt as e:
        if debug:
            raise
        print(f"{name}: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 for Ctrl-C (SIGINT); hlc batch: 143, 129 too
    except SystemExit:
        raise
    except BrokenPipeError:  # output piped into head & co: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except BaseException as e:  # noqa: BLE001 - every error becomes one line
        if debug:
            raise
        message, status = _one_line(e, args)
        print(f"{name}: error: {message}", file=sys.stderr)
        return status
    finally:
        counts()


if __name__ == "__main__":
    sys.exit(main())
