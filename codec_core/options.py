"""Encode options: one table of names, types, defaults and help texts, and one frozen
:class:`EncodeOptions` that checks them, once.

Why a table of keyword options. The toolkits HLC plugs into pass encoder options as
keywords documented in a table, not as a fixed signature per codec: pydicom's
``Dataset.compress(uid, **kwargs)`` hands them to the encoder through its runner,
Pillow's ``Image.save(fp, **params)`` through ``im.encoderinfo``; numcodecs codecs
keep their configuration as public attributes (``get_config``), and zarr's own
numcodecs wrappers keep it as a configuration dict. So HLC's options are the fields
of :class:`EncodeOptions`, each with its metadata (type, help text, the front ends
that offer it), and every front end reads the table instead of re-typing the
options: ``codec_core.encode(arr, mode, **options)``, the ``hlc`` command's flags,
the numcodecs and zarr codecs' configuration, Pillow's save parameters and the
pydicom plugin's runner options.

Adding an option means: a field here (with its check in :func:`_check`, if it needs
one) and its use in the codec. The front ends that list it in ``frontends`` offer
it with no change of their own.

Messages name options as the caller wrote them: :class:`OptionError` renders
``bpp=...`` for the API and ``--bpp R`` for the command line from one template.

This module is cheap to import (the standard library and :mod:`codec_core.format`
only), so that ``hlc --help`` builds its flags from it without loading numpy.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .format import AXES, ECC_LEVELS, MAX_BITS, MODES, Mode

#: A ``psnr`` target (lossy mode's, a hybrid background's) is met within +0 .. +PSNR_TOLERANCE dB.
PSNR_TOLERANCE = 0.3

__all__ = ["EncodeOptions", "Option", "OptionError", "OPTIONS", "CLI", "CHUNKS", "PILLOW", "PYDICOM",
           "options_for", "unknown_options", "flag", "describe"]

#: Front ends that offer an option (``Option.frontends``).
CLI = "cli"            # hlc encode and hlc batch: --name-with-dashes
CHUNKS = "chunks"      # the numcodecs codec's configuration (and the zarr codec's, which wraps it)
PILLOW = "pillow"      # Image.save(..., name=value)
PYDICOM = "pydicom"    # Dataset.compress(uid, name=value): the encode runner's options
EVERY = frozenset({CLI, CHUNKS, PILLOW, PYDICOM})


@dataclass(frozen=True)
class Option:
    """One row of the table: an :class:`EncodeOptions` field and how front ends offer it."""

    name: str
    default: Any
    parse: Callable[[str], Any]      # from a command-line string
    help: str                        # may name options as {other_name} (rendered per front end)
    frontends: frozenset[str]
    choices: tuple[str, ...] | None = None
    metavar: str | None = None       # the command line's placeholder for the value
    cli_help: str | None = None      # where the command line's form of the value differs


def _option(default: Any, help: str, *, parse: Callable[[str], Any] = str,
            frontends: frozenset[str] = frozenset(), choices: tuple[str, ...] | None = None,
            metavar: str | None = None, cli_help: str | None = None) -> Any:
    """A field of :class:`EncodeOptions` carrying its row of the table."""
    row = dict(parse=parse, help=help, frontends=frontends, choices=choices, metavar=metavar, cli_help=cli_help)
    return field(default=default, metadata={"option": row})


@dataclass(frozen=True)
class EncodeOptions:
    """Every option of :func:`codec_core.encode`, checked when made (:class:`OptionError`,
    a ValueError, names the option). Checks that need the image (the dtype's bits, the
    shape against ``axes``, the mask against the image) are the API's.

    ``roi`` takes no part in comparisons and hashing (it may be an array)."""

    mode: str = _option(
        "lossless", "lossless (bit-exact), near-lossless (every sample within {max_error}) or lossy "
        "(a {bpp} or {psnr} target, peak = max - min; where the exact stream meets the target in "
        "fewer bytes, or the near-lossless coder does better, the stream is that, and says so in info())",
        choices=MODES, frontends=EVERY,
        cli_help="lossless (bit-exact), near-lossless (|error| <= --max-error) or lossy (--bpp or --psnr "
                 "target; with --roi, the hybrid). Default: lossy if --bpp/--psnr/--roi is given, near-lossless if "
                 "--max-error is, else lossless")
    max_error: int | None = _option(
        None, "near-lossless bound on every sample as stored (YCbCr data stays YCbCr: its RGB may differ more)",
        parse=int, metavar="K", frontends=EVERY)
    bpp: float | None = _option(
        None, "lossy: target bits per pixel (whole image)", parse=float, metavar="R", frontends=EVERY)
    psnr: float | None = _option(
        None, "lossy: target PSNR in dB (peak max-min)", parse=float, metavar="DB", frontends=EVERY)
    bits_stored: int | None = _option(
        None, "bits used per sample (default: the dtype's)", parse=int, metavar="N",
        frontends=frozenset({CHUNKS, PILLOW}))
    roi: Any = field(default=None, compare=False, metadata={"option": dict(
        parse=str, frontends=EVERY, choices=None, metavar="auto|MASK|SEG.dcm",
        help="hybrid (lossy only): keep a region within {roi_max_error}: 'auto' (found by the bundled "
             "CNN + SVM models), a boolean mask, a label image (0 background, 1 body, 2 detail) or a DICOM SEG "
             "dataset (every segment detail); the "
             "background gets its own target ({background_psnr}, default 40 dB, or {background_max_error}); "
             "where coding the whole image within {roi_max_error} is smaller, the stream is that "
             "(lossless or near-lossless, no ROI in info())",
        cli_help="hybrid (lossy only): keep a region within --roi-max-error; 'auto' finds it (CNN + SVM), "
                 "MASK is .npy/.png (non-zero = keep), SEG.dcm a DICOM SEG")})
    roi_max_error: int = _option(
        0, "largest error allowed inside the ROI (default 0: exact)", parse=int, metavar="K", frontends=EVERY)
    body_max_error: int | None = _option(
        None, "hybrid: largest error allowed in the body (the ROI's importance class BODY, from roi='auto' "
        "or a label image) when it may be larger than in the detail (default: {roi_max_error})",
        parse=int, metavar="K", frontends=EVERY)
    background_psnr: float | None = _option(
        None, "hybrid: the background's own target, the PSNR in dB of the background samples alone "
        "(peak = max - min of the image); default 40 dB when a hybrid has no target", parse=float,
        metavar="DB", frontends=EVERY)
    background_max_error: int | None = _option(
        None, "hybrid: every background sample within this error (at least {roi_max_error}); the "
        "background's target instead of {background_psnr}", parse=int, metavar="E", frontends=EVERY)
    ecc: str | None = _option(
        None, "add Reed-Solomon parity against transmission errors", choices=tuple(ECC_LEVELS), frontends=EVERY)
    preprocess: str | None = _option(
        None, "'denoise': the bundled CNN denoiser first (a lossy step, recorded in the stream)",
        choices=("denoise",), frontends=frozenset({PILLOW, PYDICOM}))
    axes: str | None = _option(
        None, "the array's layout, one of " + ", ".join(AXES) + " (default: guessed from the shape)")
    tile_size: int | None = _option(
        None, "a power of two, default 512: larger tiles code a little better at low rates, smaller "
        "ones need less memory", parse=int)
    levels: int | None = _option(
        None, "wavelet depth: default 5 for lossless and near-lossless, so decode(level=k) reaches 1/32; "
        "3 for lossy, which codes better", parse=int, frontends=frozenset({PYDICOM}))
    threads: int | None = _option(
        None, "tiles coded in parallel (default: up to two, one for small images, whose working memory "
        "a second tile would double); the bytes are the same for any number", parse=int,
        frontends=frozenset({PYDICOM}))
    try_near_lossless: bool = _option(
        True, "lossy without ROI: return the exact (lossless) stream where it fits the target (at a "
        "{psnr}: where it is the smaller file), else also try the near-lossless coder (and at near-exact rates "
        "the 9/7 with a wider dead zone), and keep its stream where it does better (off only to pin the 9/7 "
        "coder, as tests and benchmarks do)", parse=bool)
    whole_image_if_smaller: bool = _option(
        True, "hybrid: keep the whole image coded within {roi_max_error} where that is the smaller file "
        "(off only to pin the hybrid layers, as tests and benchmarks do)", parse=bool)

    def __post_init__(self) -> None:
        _check(self)

    @property
    def coding_mode(self) -> Mode:
        """``mode`` as the header's code."""
        return Mode.of(self.mode)

    def explicit(self) -> dict[str, Any]:
        """The keywords that give these options: ``mode``, every option not at its default,
        and ``roi_max_error`` with an ROI."""
        out = {}
        for opt in OPTIONS:
            value = getattr(self, opt.name)
            at_default = value is opt.default or isinstance(value, (str, int, float)) and value == opt.default
            if opt.name == "mode" or not at_default or opt.name == "roi_max_error" and self.roi is not None:
                out[opt.name] = value
        return out


#: The table: one row per field of :class:`EncodeOptions`, in order.
OPTIONS: tuple[Option, ...] = tuple(Option(f.name, f.default, **f.metadata["option"]) for f in fields(EncodeOptions))
_BY_NAME = {opt.name: opt for opt in OPTIONS}


def options_for(frontend: str) -> tuple[Option, ...]:
    """The options a front end offers, in table order."""
    return tuple(opt for opt in OPTIONS if frontend in opt.frontends)


def unknown_options(where: str, given: Iterable[str], known: Iterable[str]) -> str | None:
    """None when every name ``given`` is ``known``; else the message to raise: each
    unknown name with the known one it is closest to (a misspelt option must not be
    ignored: ``max_eror=4`` would give another image than the one asked for)."""
    import difflib

    known = list(known)
    unknown = [name for name in given if name not in known]
    if not unknown:
        return None
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{where} got an unknown option {', '.join(parts)}" if len(parts) == 1 else
            f"{where} got unknown options {', '.join(parts)}") + f"; it takes {', '.join(known)}"


def flag(name: str) -> str:
    """The command line's flag of an option: ``--roi-max-error``."""
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------- messages

_REF = re.compile(r"\{(\w+)(=([^}]*))?\}")


def render(template: str, style: str = "api", values: dict[str, Any] | None = None) -> str:
    """A message or help text naming options as a front end's user writes them.

    ``{name}`` is the option; ``{name=}`` the option given some value; ``{name=text}``
    the option given ``text``; ``{name=!}`` the option with its value in ``values``.
    The API style writes ``bpp``, ``bpp=...``, ``mode='lossy'``; the command line's
    ``--bpp``, ``--bpp R``, ``--mode lossy``."""
    def reference(m: re.Match[str]) -> str:
        name, has_value, text = m.group(1), m.group(2), m.group(3)
        if style == CLI:
            if not has_value:
                return flag(name)
            shown = values[name] if text == "!" and values else text or _BY_NAME[name].metavar or "..."
            return f"{flag(name)} {shown}"
        if not has_value:
            return name
        if text == "!" and values:
            return f"{name}={values[name]!r}"
        return f"{name}={text!r}" if text else f"{name}=..."

    return _REF.sub(reference, template)


class OptionError(ValueError):
    """A bad option (or combination); ``str()`` names options as the API spells them,
    :meth:`render` as another front end does (``render("cli")``)."""

    def __init__(self, template: str, values: dict[str, Any]) -> None:
        super().__init__(render(template, "api", values))
        self.template, self.values = template, values

    def render(self, style: str) -> str:
        return render(self.template, style, self.values)


def describe(style: str = "api") -> str:
    """The table as text, one option a paragraph (for docstrings and help)."""
    return "\n".join(f"``{opt.name}`` (default {opt.default!r}): {render(opt.help, style)}." for opt in OPTIONS)


# ----------------------------------------------------------------- checks

def _fail(template: str, o: EncodeOptions) -> None:
    raise OptionError(template, {f.name: getattr(o, f.name) for f in fields(o)})


def _integer(o: EncodeOptions, name: str, lo: int, hi: int) -> None:
    """``name`` holds an integer (numpy's too) within lo..hi; stored as an int."""
    value = getattr(o, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OptionError(f"{{{name}}} must be an integer from {lo} to {hi}, got {value!r}", {})
    if not lo <= int(value) <= hi:
        raise OptionError(f"{{{name}=!}} is out of range: allowed {lo}..{hi}", {name: int(value)})
    object.__setattr__(o, name, int(value))


def _check(o: EncodeOptions) -> None:
    """Every check that needs no image, in the order the API has always made them."""
    _check_mode(o)
    _check_extras(o)
    _check_sizes(o)
    _check_roi(o)
    if o.axes is not None and o.axes not in AXES:
        raise OptionError(f"{{axes=!}} is not one of {sorted(AXES)}", {"axes": o.axes})
    if o.bits_stored is not None:
        _integer(o, "bits_stored", 1, MAX_BITS)
    for name in ("try_near_lossless", "whole_image_if_smaller"):
        if not isinstance(getattr(o, name), bool):
            raise OptionError(f"{{{name}}} must be True or False, got {getattr(o, name)!r}", {})


def _check_mode(o: EncodeOptions) -> None:
    """The mode, and the targets and bound that go with it."""
    if o.mode not in MODES:
        raise OptionError(f"{{mode=!}} is not one of {MODES}", {"mode": o.mode})
    mode = o.coding_mode
    if mode != Mode.NEAR_LOSSLESS and o.max_error not in (None, 0):
        _fail("{max_error} is for {mode=near-lossless}, not {mode=!}", o)
    if mode != Mode.LOSSY and (o.bpp is not None or o.psnr is not None):
        _fail("{bpp} and {psnr} are targets for {mode=lossy}, not {mode=!}", o)
    if mode == Mode.LOSSY:
        if o.roi is None and (o.bpp is None) == (o.psnr is None):
            _fail("{mode=lossy} needs exactly one target: {bpp=} or {psnr=}", o)
        if o.bpp is not None and o.psnr is not None:
            _fail("{mode=lossy} takes one target: {bpp=} or {psnr=}, not both", o)
        if o.bpp is not None and not (isinstance(o.bpp, (int, float)) and 0 < o.bpp <= 64 and math.isfinite(o.bpp)):
            _fail("{bpp=!} is out of range: allowed 0 < bpp <= 64", o)
        if o.psnr is not None and not (isinstance(o.psnr, (int, float)) and 1 <= o.psnr <= 200):
            _fail("{psnr=!} is out of range: allowed 1..200 dB", o)
    if o.roi is not None and mode != Mode.LOSSY:
        _fail("{roi} is used with {mode=lossy} ({mode=!} already bounds every sample)", o)


def _check_extras(o: EncodeOptions) -> None:
    """ECC level and preprocessing."""
    if o.ecc is not None and o.ecc not in ECC_LEVELS:
        _fail(f"{{ecc=!}} is not one of {sorted(ECC_LEVELS)} or None", o)
    if o.preprocess not in (None, "denoise"):
        _fail("{preprocess=!}: allowed None or 'denoise'", o)
    if o.preprocess == "denoise" and o.coding_mode == Mode.LOSSLESS:
        _fail("{preprocess=denoise} changes pixels, so it is not allowed with {mode=lossless}", o)


def _check_sizes(o: EncodeOptions) -> None:
    """Tile size, threads, levels, and the near-lossless bound."""
    if o.tile_size is not None:
        _integer(o, "tile_size", 16, 1 << 16)
        if o.tile_size & (o.tile_size - 1):
            _fail("{tile_size=!} must be a power of two", o)
    if o.threads is not None:
        _integer(o, "threads", 1, 256)
    if o.levels is not None:
        _integer(o, "levels", 0, 8)
    if o.coding_mode == Mode.NEAR_LOSSLESS:
        if o.max_error is None:
            _fail("{mode=near-lossless} needs {max_error=} (k >= 1)", o)
        _integer(o, "max_error", 0, 65535)


def _check_roi(o: EncodeOptions) -> None:
    """An ROI is "auto", a boolean mask or a label image (checked against the image when
    it is coded), and its bounds integers; without an ROI the bounds are not used."""
    if o.roi is None:
        for name in ("background_psnr", "background_max_error", "body_max_error"):
            if getattr(o, name) is not None:
                _fail(f"{{{name}}} is for a hybrid: it needs {{roi=}} (and {{mode=lossy}})", o)
        if o.roi_max_error not in (None, 0):  # (it was coded without a word as if not given)
            _fail("{roi_max_error} is for a hybrid: it needs {roi=} (and {mode=lossy})", o)
        return
    _integer(o, "roi_max_error", 0, 65535)
    _check_region_targets(o)
    if isinstance(o.roi, str):
        if o.roi != "auto":
            _fail("{roi=!}: allowed None, 'auto', a boolean mask, a label image or a DICOM SEG dataset", o)
        return
    if getattr(o.roi, "Modality", None) == "SEG":  # a DICOM SEG dataset (checked against the image when coded)
        return
    import numpy as np  # (only for a mask: importing this module stays cheap)

    dtype = np.asarray(o.roi).dtype
    if dtype != np.bool_ and dtype.kind not in "ui":
        raise OptionError(f"roi must be a boolean mask or an integer label image, got dtype {dtype}", {})


def _check_region_targets(o: EncodeOptions) -> None:
    """The body's bound and the background's target: at most one target in all
    (bpp, psnr, background_psnr, background_max_error), bounds that grow outwards."""
    if o.body_max_error is not None:
        _integer(o, "body_max_error", 0, 65535)
        if o.body_max_error < o.roi_max_error:
            _fail("{body_max_error=!} is below {roi_max_error=!}: the body may not be kept closer than the detail", o)
    if o.background_psnr is not None and o.background_max_error is not None:
        _fail("give one background target: {background_psnr=} or {background_max_error=}, not both", o)
    for name in ("background_psnr", "background_max_error"):
        if getattr(o, name) is not None and (o.bpp is not None or o.psnr is not None):
            _fail(f"{{{name}}} is the background's target; {{bpp}} and {{psnr}} target the whole image: "
                  "give one of them", o)
    if o.background_psnr is not None and not (
            isinstance(o.background_psnr, (int, float)) and not isinstance(o.background_psnr, bool)
            and 1 <= o.background_psnr <= 200):
        _fail("{background_psnr=!} is out of range: allowed 1..200 dB", o)
    if o.background_max_error is not None:
        _integer(o, "background_max_error", 0, 65535)
        inner = o.roi_max_error if o.body_max_error is None else o.body_max_error
        if o.background_max_error < inner:
            _fail("{background_max_error=!} is below the ROI's bound ({roi_max_error=!}"
                  + (", {body_max_error=!}" if o.body_max_error is not None else "") + ")", o)
