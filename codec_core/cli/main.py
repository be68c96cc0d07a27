"""The ``hlc`` command: convert, inspect, compare, report, and batch-convert archives.

Entry point :func:`main` (console script ``hlc``; also ``python -m codec_core.cli.main``).
This module imports only the standard library at start-up, so ``hlc --help`` is
fast; numpy, pydicom, matplotlib and dask are imported inside the commands that use
them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

PROG = "hlc"
MODES = ("lossless", "near-lossless", "lossy")
ECC_LEVELS = ("low", "medium", "high")
#: ``hlc demo``'s image: an abdominal CT slice from pydicom-data (512 x 512 int16, JPEG 2000
#: lossless, which Pillow decodes; held out from the ROI models' training) with air and the
#: table around the body, so that the hybrid has background to compress: the automatic ROI
#: is 59 % of the pixels and the hybrid 0.67x the lossless size. (On CT_small.dcm, the
#: earlier default, the ROI is the whole image and the hybrid is the lossless stream.)
DEMO_IMAGE = "explicit_VR-UN.dcm"

#: ``hlc info``'s exit status for a stream shorter than its header says.
EXIT_INCOMPLETE = 3

DESCRIPTION = """\
HLC: hybrid lossy/lossless compression for medical images.

commands:
  demo      compress a real CT image in every mode, the hybrid too; print figures, write a report
  encode    compress a DICOM, PNG, TIFF or .npy image to .hlc or to an HLC DICOM file
  decode    decompress .hlc or HLC DICOM to DICOM, PNG, TIFF or .npy
  info      show a compressed file's header: mode, max error, ROI, ECC, frame sizes
  roi       draw the automatic importance map over an image
  compare   quality and size of a decoded image against its original
  bench     HLC against JPEG 2000 / HTJ2K / JPEG-LS / JPEG XL / PNG, with an HTML report
  batch     convert a directory tree of DICOM files, in parallel, resumably

Run 'hlc COMMAND --help' for the options and examples of each command.
Add --debug to any command to see the full traceback of an error.
"""

EPILOG = """\
examples:
  hlc demo
  hlc encode ct.dcm ct.hlc
  hlc encode ct.dcm ct_hlc.dcm --mode lossy --bpp 0.5 --roi auto
  hlc decode ct.hlc ct.png
  hlc info ct.hlc --json
  hlc batch /archive/in /archive/out --mode near-lossless --max-error 2 --verify
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line that says what to do, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _add_codec_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("compression")
    g.add_argument("--mode", choices=MODES,
                   help="lossless (bit-exact), near-lossless (|error| <= --max-error) or lossy "
                        "(--bpp or --psnr target). Default: lossy if --bpp/--psnr is given, "
                        "near-lossless if --max-error is, else lossless")
    g.add_argument("--max-error", type=int, metavar="K", help="near-lossless bound on every sample")
    g.add_argument("--bpp", type=float, metavar="R", help="lossy: target bits per pixel (whole image)")
    g.add_argument("--psnr", type=float, metavar="DB", help="lossy: target PSNR in dB (peak max-min)")
    g.add_argument("--roi", metavar="auto|MASK|SEG.dcm",
                   help="hybrid (lossy only): keep a region within --roi-max-error; 'auto' finds "
                        "it (CNN + SVM), MASK is .npy/.png (non-zero = keep), SEG.dcm a DICOM SEG")
    g.add_argument("--roi-max-error", type=int, default=0, metavar="K",
                   help="largest error allowed inside the ROI (default 0: exact)")
    g.add_argument("--ecc", choices=ECC_LEVELS, help="add Reed-Solomon parity against transmission errors")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, summary: str, examples: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary, description=summary, formatter_class=_formatter,
                           epilog="examples:\n" + examples)
        p.add_argument("--debug", action="store_true", help="show the traceback of an error")
        return p

    p = command("encode", "Compress an image to .hlc, or to a DICOM file in the HLC transfer syntax.",
                "  hlc encode ct.dcm ct.hlc                                  # lossless\n"
                "  hlc encode ct.dcm ct.hlc --max-error 2                    # near-lossless\n"
                "  hlc encode ct.dcm ct.hlc --bpp 0.5 --roi auto             # hybrid: ROI exact\n"
                "  hlc encode ct.dcm ct_hlc.dcm --psnr 45 --ecc medium       # DICOM output\n"
                "  hlc encode xray.png xray.hlc --roi mask.png --bpp 1 --roi-max-error 1\n"
                "\nIN: DICOM (any transfer syntax pydicom decodes), PNG/TIFF (8/16-bit), .npy.\n"
                "OUT: .hlc, or .dcm for DICOM with all the input's attributes kept.")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    _add_codec_options(p)
    p.add_argument("--bits-stored", type=int, metavar="N",
                   help="bits used per sample for non-DICOM input (default: the dtype's)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")

    p = command("decode", "Decompress .hlc or HLC DICOM to DICOM (explicit VR little endian), PNG, TIFF or .npy.",
                "  hlc decode ct.hlc ct.dcm\n"
                "  hlc decode ct_hlc.dcm ct.png                # 16-bit PNG when the data needs it\n"
                "  hlc decode ct_hlc.dcm ct_view.png --display # 8-bit, as a viewer shows it\n"
                "  hlc decode mr.hlc mr_thumb.tif --level 2    # quarter size, coarse bands only\n"
                "  hlc decode damaged.hlc best.npy --lenient   # conceal damage, report it")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--level", type=int, default=0, metavar="K",
                   help=".hlc input: decode at 1/2^K resolution")
    p.add_argument("--frame", type=int, metavar="I", help="decode frame I only (0-based)")
    p.add_argument("--lenient", action="store_true",
                   help="conceal damage that cannot be repaired instead of failing, and report it")
    p.add_argument("--display", action="store_true",
                   help="write the 8-bit picture a viewer shows (PNG or TIFF) instead of the stored values: "
                        "the DICOM window or VOI LUT (else a percentile window), MONOCHROME1 inverted, "
                        "palette colour and YBR as RGB")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")

    p = command("info", "Show a compressed file's header: shape, mode, max error, ROI, ECC, frame sizes.",
                "  hlc info ct.hlc\n  hlc info ct_hlc.dcm --json | jq .frame_sizes\n"
                "\nbpp and compression ratio count the HLC data only (for DICOM, the pixel data's\n"
                "fragments; the file size is shown beside). A file shorter than its header says\n"
                "is shown as 'complete: no'.\n"
                f"\nexit status: 0 the file is complete; {EXIT_INCOMPLETE} it is cut short (its header is still\n"
                "shown); 1 it cannot be read.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    p = command("roi", "Draw the automatic importance map over an image (shown as a viewer shows it), "
                       "with the class legend.",
                "  hlc roi ct.dcm -o ct_roi.png\n  hlc roi mr_series.dcm -o frame5.png --frame 5")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OVERLAY.png")
    p.add_argument("--frame", type=int, default=0, metavar="I", help="frame of a multi-frame image")
    p.add_argument("--json", action="store_true", help="print class fractions as JSON")

    p = command("compare", "Quality and size of DECODED against ORIGINAL (any supported files).",
                "  hlc compare ct.dcm ct.hlc                  # .hlc is decoded; bpp/CR from its size\n"
                "  hlc compare ct.dcm ct_decoded.png --roi mask.npy\n"
                "  hlc compare ct.dcm ct.hlc --json")
    p.add_argument("original", metavar="ORIGINAL")
    p.add_argument("decoded", metavar="DECODED")
    p.add_argument("--roi", metavar="auto|MASK|SEG.dcm", help="also report ROI / non-ROI figures")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = command("bench", "Benchmark HLC against the imagecodecs codecs on a folder of DICOM files.",
                "  hlc bench                         # pydicom-data images (several minutes)\n"
                "  hlc bench --quick                 # three small images\n"
                "  hlc bench /data/ct -o ct.html --md ct.md\n"
                "\nPrints Markdown tables and writes an HTML report (no network needed to view it)\n"
                "with rate-distortion plots and original / decoded / difference / ROI images.")
    p.add_argument("directory", metavar="DIR", nargs="?",
                   help="folder searched recursively for DICOM files (default: pydicom-data images)")
    p.add_argument("-o", "--output", default="hlc-bench-report.html", metavar="REPORT.html")
    p.add_argument("--md", metavar="FILE.md", help="also write the Markdown to a file")
    p.add_argument("--quick", action="store_true", help="three small pydicom-data images, fewer points")
    p.add_argument("--images", metavar="NAMES", help="comma-separated pydicom-data file names")
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="timing runs per lossless/near-lossless point (median; default 3)")
    p.add_argument("--no-references", action="store_true", help="HLC only (no imagecodecs codecs)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N images from DIR")

    p = command("demo", f"Compress a real CT image (pydicom-data {DEMO_IMAGE}) in every mode, the hybrid "
                "(automatic ROI exact, the rest lossy) too, against JPEG 2000, JPEG-LS, PNG and JPEG XL; "
                "write the report.",
                "  hlc demo\n  hlc demo -o /tmp/demo.html\n  hlc demo --image MR_small.dcm")
    p.add_argument("-o", "--output", default="hlc-demo-report.html", metavar="REPORT.html")
    p.add_argument("--image", default=DEMO_IMAGE, metavar="FILE",
                   help=f"a DICOM file or pydicom-data name instead of {DEMO_IMAGE}")

    p = command("batch", "Convert a directory tree of DICOM files, in parallel and resumably.",
                "  hlc batch in/ out/                                  # lossless, HLC DICOM files\n"
                "  hlc batch in/ out/ --bpp 0.75 --roi auto --verify   # hybrid, checked\n"
                "  hlc batch in/ out/ --to hlc --workers 2\n"
                "  hlc batch in/ out/ --scheduler tcp://10.0.0.5:8786  # a dask.distributed cluster\n"
                "\nEach output is written to a hidden temporary name and renamed when complete,\n"
                "so a killed run leaves no half-written file; run the same command again to\n"
                "resume (finished files are skipped). Originals are only read. Files that are\n"
                "not DICOM are reported and skipped.\n"
                "\nAn output is checked for the guarantee asked, not for the coder kept: it must\n"
                "decode to the original's shape and type, exact for lossless, within K for\n"
                "--max-error K, the ROI within --roi-max-error. A lossy target (--bpp, --psnr)\n"
                "is a goal, not a bound: the hybrid may keep the lossless stream when that is\n"
                "smaller, and any output that decodes within the bounds passes --verify (use\n"
                "--overwrite to encode again at another target).\n"
                "\nCtrl-C, kill (SIGTERM) and a hang-up (SIGHUP) end the workers, remove their\n"
                "partial files and print the summary (and write --json).\n"
                "\nexit status: 0 every file done; 1 a file failed, or an earlier output failed\n"
                "--verify and was converted again; 2 bad command line; 128 + the signal's number\n"
                "when stopped: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP.")
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DST")
    _add_codec_options(p)
    p.add_argument("--to", choices=("dcm", "hlc"), default="dcm",
                   help="dcm: DICOM in the HLC transfer syntax, same names (default); hlc: .hlc streams")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPU count)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a dask.distributed scheduler (e.g. tcp://host:8786) instead")
    p.add_argument("--verify", action="store_true",
                   help="also read back outputs finished by earlier runs and convert again those "
                        "that do not decode within the bounds asked (every new output is always "
                        "read back and compared with its original before it is written)")
    p.add_argument("--overwrite", action="store_true", help="convert again files that already have an output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", metavar="FILE", help="also write the per-file results as JSON")
    return parser


# ------------------------------------------------------------------ options

def codec_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``codec_core.encode`` keywords of the compression options (roi left as given)."""
    from .io import UsageError

    mode = args.mode
    if mode is None:
        mode = "lossy" if (args.bpp is not None or args.psnr is not None) else (
            "near-lossless" if args.max_error is not None else "lossless")
    if mode == "near-lossless" and args.max_error is None:
        raise UsageError("--mode near-lossless needs --max-error K (for example --max-error 2)")
    if mode != "near-lossless" and args.max_error is not None:
        raise UsageError(f"--max-error is for --mode near-lossless, not {mode}")
    if mode == "lossy" and (args.bpp is None) == (args.psnr is None):
        raise UsageError("--mode lossy needs exactly one target: --bpp R or --psnr DB")
    if mode != "lossy" and (args.bpp is not None or args.psnr is not None):
        raise UsageError(f"--bpp and --psnr are targets for --mode lossy, not {mode}")
    if args.roi is not None and mode != "lossy":
        raise UsageError(f"--roi needs a lossy target (--bpp or --psnr); {mode} already bounds every sample")
    if args.max_error is not None and args.max_error < 1:
        raise UsageError("--max-error must be at least 1 (use --mode lossless for 0)")
    if args.roi_max_error < 0:
        raise UsageError("--roi-max-error must be 0 or more")
    opts: dict[str, Any] = {"mode": mode}
    for key in ("max_error", "bpp", "psnr", "ecc"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    if args.roi is not None:
        opts["roi_max_error"] = args.roi_max_error
    return opts


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

    io.atomic_write(args.output, data, check_written(image.array, opts, image.axes.endswith("C")))
    if not args.quiet:
        what = opts["mode"] + (f" (max error {opts['max_error']})" if "max_error" in opts else "")
        if "roi" in opts:
            what += f", ROI {args.roi} within {opts['roi_max_error']}"
        d = file_info(args.output)  # the figures of the HLC data, as 'hlc info' gives them
        size = _fmt_bytes(d["compressed_size"])
        if d["container"] == "dicom":
            size += f" of pixel data (file {_fmt_bytes(d['file_size'])})"
        print(f"{args.input} -> {args.output}: {_shape_text(image.array)}, {what}; "
              f"{_fmt_bytes(io.image_bytes(image))} -> {size}, {d['bpp']:.3f} bpp, "
              f"CR {d['compression_ratio']:.2f}, {seconds:.2f} s")
    return 0


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
        meta = hlc.info(data)
        kw = dict(level=args.level, frame=args.frame)
        if args.lenient:
            arr, report = hlc.decode(data, strict=False, **kw)
        else:
            arr = hlc.decode(data, **kw)
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
    io.atomic_write(args.output, data_out)
    if not args.quiet:
        print(f"{args.input} -> {args.output}: {_shape_text(image.array)}, {seconds:.2f} s")
        if report is not None:
            lost = {k: v for k, v in report.items() if v not in (None, [], 0, {}, True)}
            print("damage report: " + (json.dumps(lost, default=str) if lost else "no damage found"))
    return 0


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
        print(json.dumps(d, indent=2, default=str))
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
        print(json.dumps({"output": args.output, "block": int(roi_mod.ROI_BLOCK), "fractions": pixels}))
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
        print(json.dumps(res, default=str))
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

def _one_line(e: BaseException) -> tuple[str, int]:
    """The message and exit status for an exception that reached the top."""
    from .io import CliError

    if isinstance(e, CliError):
        return str(e), e.exit_code
    try:
        from codec_core import HlcError
    except Exception:  # pragma: no cover - codec_core broken
        HlcError = ()  # type: ignore[assignment]
    if HlcError and isinstance(e, HlcError):
        return (f"{e} (the file is damaged or not HLC; 'hlc decode --lenient' recovers what "
                "can be recovered)"), 1
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
        message, status = _one_line(e)
        print(f"{name}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
