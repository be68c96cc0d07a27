"""The ``hlc`` command line's parser: its commands, their flags and examples, and the
compression options the flags give.

Standard library only (plus :mod:`codec_core.options` and :mod:`codec_core.format`,
which import nothing heavy), so that ``hlc --help`` is fast. The compression flags
come from the options table (codec_core/options.py): a new option the table offers
the command line appears here, with its help, and reaches the codec, with no change
to this module.
"""
from __future__ import annotations

import argparse
from typing import Any

from codec_core.options import CLI, EncodeOptions, OptionError, flag, options_for, render

__all__ = ["PROG", "DEMO_IMAGE", "EXIT_INCOMPLETE", "build_parser", "add_codec_options", "codec_options"]

PROG = "hlc"
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
  hlc decode ct.hlc ct.tif                 # a CT is signed: PNG holds unsigned samples only
  hlc info ct.hlc --json
  hlc batch /archive/in /archive/out --mode near-lossless --max-error 2 --verify
"""


#: Each command's summary (its --help description and its line in ``hlc --help``), and the
#: examples and notes its --help ends with.
_HELP: dict[str, tuple[str, str]] = {
    "encode": (
        "Compress an image to .hlc, or to a DICOM file in the HLC transfer syntax.",
        """\
  hlc encode ct.dcm ct.hlc                                  # lossless
  hlc encode ct.dcm ct.hlc --max-error 2                    # near-lossless
  hlc encode ct.dcm ct.hlc --bpp 0.5 --roi auto             # hybrid: ROI exact
  hlc encode ct.dcm ct_hlc.dcm --psnr 45 --ecc medium       # DICOM output
  hlc encode xray.png xray.hlc --roi mask.png --bpp 1 --roi-max-error 1

IN: DICOM (any transfer syntax pydicom decodes), PNG/TIFF (8/16-bit), .npy.
OUT: .hlc (the pixels only: no patient, study or rescale attributes), or .dcm for
DICOM with all the input's attributes kept (and its SOP Instance UID, unless lossy)."""),
    "decode": (
        "Decompress .hlc or HLC DICOM to DICOM (explicit VR little endian), PNG, TIFF or .npy.",
        """\
  hlc decode ct.hlc ct.dcm
  hlc decode ct_hlc.dcm ct.tif                # 16-bit TIFF (PNG: unsigned data only)
  hlc decode ct_hlc.dcm ct_view.png --display # 8-bit, as a viewer shows it
  hlc decode mr.hlc mr_thumb.tif --level 2    # quarter size, coarse bands only
  hlc decode damaged.hlc best.npy --lenient   # conceal damage, report it (exit 3)"""),
    "info": (
        "Show a compressed file's header: shape, mode, max error, ROI, ECC, frame sizes.",
        f"""\
  hlc info ct.hlc
  hlc info ct_hlc.dcm --json | jq .frame_sizes

bpp and compression ratio count the HLC data only (for DICOM, the pixel data's
fragments; the file size is shown beside). A file shorter than its header says
is shown as 'complete: no'.

exit status: 0 the file is complete; {EXIT_INCOMPLETE} it is cut short (its header is still
shown); 1 it cannot be read."""),
    "roi": (
        "Draw the automatic importance map over an image (shown as a viewer shows it), with the class "
        "legend.",
        """\
  hlc roi ct.dcm -o ct_roi.png
  hlc roi mr_series.dcm -o frame5.png --frame 5"""),
    "compare": (
        "Quality and size of DECODED against ORIGINAL (any supported files).",
        """\
  hlc compare ct.dcm ct.hlc                  # .hlc is decoded; bpp/CR from its size
  hlc compare ct.dcm ct.tif --roi mask.npy
  hlc compare ct.dcm ct.hlc --json"""),
    "bench": (
        "Benchmark HLC against the imagecodecs codecs on a folder of DICOM files.",
        """\
  hlc bench                         # pydicom-data images (several minutes)
  hlc bench --quick                 # three small images
  hlc bench /data/ct -o ct.html --md ct.md

Prints Markdown tables and writes an HTML report (no network needed to view it)
with rate-distortion plots and original / decoded / difference / ROI images."""),
    "demo": (
        f"Compress a real CT image (pydicom-data {DEMO_IMAGE}) in every mode, the hybrid (automatic ROI "
        f"exact, the rest lossy) too, against JPEG 2000, HTJ2K, JPEG-LS, PNG and JPEG XL; write the report.",
        """\
  hlc demo
  hlc demo -o /tmp/demo.html
  hlc demo --image MR_small.dcm"""),
    "batch": (
        "Convert a directory tree of DICOM files, in parallel and resumably.",
        """\
  hlc batch in/ out/                                  # lossless, HLC DICOM files
  hlc batch in/ out/ --bpp 0.75 --roi auto --verify   # hybrid, checked
  hlc batch in/ out/ --to hlc --workers 2
  hlc batch in/ out/ --scheduler tcp://10.0.0.5:8786  # a dask.distributed cluster

Each output is written to a hidden temporary name and renamed when complete,
so a killed run leaves no half-written file; run the same command again to
resume (finished files are skipped). Originals are only read; outputs take
their permissions, and a lossless output keeps the SOP Instance UID. Every name
under IN is in the summary: files that are not DICOM or are empty, DICOM
objects without an image (reports, plans, DICOMDIR), hidden names and links to
folders (not followed) are skipped; folders that cannot be read fail, and so do
inputs whose outputs would share a name (x and x.dcm).

An output is checked for the guarantee asked, not for the coder kept: it must
decode to the original's shape and type, exact for lossless, within K for
--max-error K, the ROI within --roi-max-error. A lossy target (--bpp, --psnr)
is a goal, not a bound: the hybrid may keep the lossless stream when that is
smaller, and any output that decodes within the bounds passes --verify (use
--overwrite to encode again at another target).

Ctrl-C, kill (SIGTERM) and a hang-up (SIGHUP) end the workers, remove their
partial files and print the summary (and write --json).

exit status: 0 every file done; 1 a file failed, or an earlier output failed
--verify and was converted again; 2 bad command line; 128 + the signal's number
when stopped: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP."""),
}


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line that says what to do, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def add_codec_options(p: argparse.ArgumentParser) -> None:
    """The compression flags: every option the options table offers the command line
    (codec_core/options.py), with its help text; their defaults are the table's,
    filled in by :func:`codec_options` (None here, so the mode can be inferred)."""
    g = p.add_argument_group("compression")
    for opt in options_for(CLI):
        g.add_argument(flag(opt.name), dest=opt.name, type=opt.parse, choices=opt.choices, metavar=opt.metavar,
                       help=opt.cli_help or render(opt.help, CLI))


def build_parser() -> argparse.ArgumentParser:
    """The ``hlc`` parser: global flags, then one sub-parser per command."""
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_formatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_encode_command, _decode_command, _info_command, _roi_command, _compare_command,
                _bench_command, _demo_command, _batch_command):
        add(sub)
    return parser


def command(sub: Any, name: str) -> argparse.ArgumentParser:
    """A command's sub-parser, with its summary, its examples and --debug."""
    summary, examples = _HELP[name]
    p = sub.add_parser(name, help=summary, description=summary, formatter_class=_formatter,
                       epilog="examples:\n" + examples)
    _switch(p, "--debug", help="show the traceback of an error")
    return p


def _switch(p: argparse.ArgumentParser, *flags: str, help: str) -> None:
    """An on/off flag."""
    p.add_argument(*flags, action="store_true", help=help)


def _encode_command(sub: Any) -> None:
    p = command(sub, "encode")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    add_codec_options(p)
    p.add_argument("--bits-stored", type=int, metavar="N",
                   help="bits used per sample for non-DICOM input (default: the dtype's)")
    _switch(p, "-q", "--quiet", help="print nothing on success")


def _decode_command(sub: Any) -> None:
    p = command(sub, "decode")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    p.add_argument("--level", type=int, default=0, metavar="K",
                   help=".hlc input: decode at 1/2^K resolution")
    p.add_argument("--frame", type=int, metavar="I", help="decode frame I only (0-based)")
    _switch(p, "--lenient",
            help="conceal damage that cannot be repaired instead of failing, and report it (the "
                 "output is written; exit status 3 when damage was concealed)")
    _switch(p, "--display",
            help="write the 8-bit picture a viewer shows (PNG or TIFF) instead of the stored values: "
                 "the DICOM window or VOI LUT (else a percentile window), MONOCHROME1 inverted, "
                 "palette colour and YBR as RGB")
    _switch(p, "-q", "--quiet", help="print nothing on success")


def _info_command(sub: Any) -> None:
    p = command(sub, "info")
    p.add_argument("file", metavar="FILE")
    _switch(p, "--json", help="print JSON (for scripts)")


def _roi_command(sub: Any) -> None:
    p = command(sub, "roi")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OVERLAY.png")
    p.add_argument("--frame", type=int, default=0, metavar="I", help="frame of a multi-frame image")
    _switch(p, "--json", help="print class fractions as JSON")


def _compare_command(sub: Any) -> None:
    p = command(sub, "compare")
    p.add_argument("original", metavar="ORIGINAL")
    p.add_argument("decoded", metavar="DECODED")
    p.add_argument("--roi", metavar="auto|MASK|SEG.dcm", help="also report ROI / non-ROI figures")
    _switch(p, "--json", help="print JSON")


def _bench_command(sub: Any) -> None:
    p = command(sub, "bench")
    p.add_argument("directory", metavar="DIR", nargs="?",
                   help="folder searched recursively for DICOM files (default: pydicom-data images)")
    p.add_argument("-o", "--output", default="hlc-bench-report.html", metavar="REPORT.html")
    p.add_argument("--md", metavar="FILE.md", help="also write the Markdown to a file")
    _switch(p, "--quick", help="three small pydicom-data images, fewer points")
    p.add_argument("--images", metavar="NAMES", help="comma-separated pydicom-data file names")
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="timing runs per lossless/near-lossless point (median; default 3)")
    _switch(p, "--no-references", help="HLC only (no imagecodecs codecs)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N images from DIR (N >= 1)")


def _demo_command(sub: Any) -> None:
    p = command(sub, "demo")
    p.add_argument("-o", "--output", default="hlc-demo-report.html", metavar="REPORT.html")
    p.add_argument("--image", default=DEMO_IMAGE, metavar="FILE",
                   help=f"a DICOM file or pydicom-data name instead of {DEMO_IMAGE}")


def _batch_command(sub: Any) -> None:
    p = command(sub, "batch")
    p.add_argument("source", metavar="SRC")
    p.add_argument("destination", metavar="DST")
    add_codec_options(p)
    p.add_argument("--to", choices=("dcm", "hlc"), default="dcm",
                   help="dcm: DICOM in the HLC transfer syntax, every attribute kept, the same names (with "
                        ".dcm added to a name without it; default); hlc: .hlc streams, the pixels only (no "
                        "patient, study or rescale attributes)")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: CPU count)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a dask.distributed scheduler (e.g. tcp://host:8786) instead")
    _switch(p, "--verify",
            help="also read back outputs finished by earlier runs and convert again those "
                 "that do not decode within the bounds asked (every new output is always "
                 "read back and compared with its original before it is written)")
    _switch(p, "--overwrite", help="convert again files that already have an output")
    _switch(p, "--no-progress", help="no progress bar")
    p.add_argument("--json", metavar="FILE", help="also write the per-file results as JSON")


# ------------------------------------------------------------------ options

def codec_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``codec_core.encode`` keywords of the compression flags (``roi`` left out: the
    command reads its mask or SEG), checked by :class:`~codec_core.options.EncodeOptions`.

    The mode, when not given, is lossy with --bpp, --psnr or --roi (and the hybrid's
    background targets), near-lossless with --max-error, else lossless. Two rules are
    the command line's own: --max-error is at least 1 (0 is --mode lossless) and
    --roi-max-error is never negative."""
    from .io import UsageError

    given = {opt.name: getattr(args, opt.name) for opt in options_for(CLI) if getattr(args, opt.name) is not None}
    mode = given.pop("mode", None)
    if mode is None:
        lossy = ("bpp", "psnr", "roi", "background_psnr", "background_max_error", "body_max_error")
        mode = "lossy" if any(name in given for name in lossy) else (
            "near-lossless" if "max_error" in given else "lossless")
    if "roi" in given:
        given["roi"] = "auto"  # (a stand-in for the mask or SEG the command reads: the same checks)
    try:
        options = EncodeOptions(mode=mode, **given)
    except OptionError as e:
        raise UsageError(e.render(CLI)) from None
    if options.max_error is not None and options.max_error < 1:
        raise UsageError("--max-error must be at least 1 (use --mode lossless for 0)")
    if options.roi_max_error < 0:
        raise UsageError("--roi-max-error must be 0 or more")
    opts = options.explicit()
    opts.pop("roi", None)
    return opts
