"""What a viewer shows: stored pixel values (and the DICOM dataset) -> an 8-bit picture.

The one display path of the ``hlc`` command: ``hlc roi`` overlays, the report's
original / decoded panels and ``hlc decode --display`` all go through :func:`viewer`.
For grey images it follows the DICOM pipeline (PS3.4 N.2.1):

1. Modality LUT: a Modality LUT Sequence (pydicom's ``apply_modality_lut``), else
   Rescale Slope / Intercept;
2. VOI LUT: a VOI LUT Sequence (read by pydicom's ``apply_voi``), else the first
   Window Center / Width pair through the VOI LUT Function (PS3.3 C.11.2.1.2:
   LINEAR, LINEAR_EXACT, SIGMOID), else a robust window: the 0.5 and 99.5
   percentiles of the image;
3. MONOCHROME1 inverted: its lowest value is white.

PALETTE COLOR goes through its colour LUT (pydicom's ``apply_color_lut``), YBR_FULL
is converted to RGB (``convert_color_space``), RGB is scaled to 8 bits. Without a
dataset (an .hlc stream, PNG, TIFF, .npy) grey images get the robust window.

Enhanced multi-frame files keep the window and rescale per frame in functional
groups; they are read from there for the frame shown.

A file whose display attributes are missing or nonsense (a window width <= 0 or
not a number, a palette without its table, an image of one value) still renders,
with the fallback named in :attr:`View.notes`; nothing here raises on bad
attributes.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["View", "viewer", "display_output", "ROBUST_PERCENTILES"]

#: The robust window: these percentiles of the image's (modality) values.
ROBUST_PERCENTILES = (0.5, 99.5)

# Enhanced multi-frame objects (PS3.3 C.7.6.16) keep these in functional groups.
_FRAME_GROUP = {
    "RescaleSlope": "PixelValueTransformationSequence",
    "RescaleIntercept": "PixelValueTransformationSequence",
    "WindowCenter": "FrameVOILUTSequence",
    "WindowWidth": "FrameVOILUTSequence",
    "VOILUTFunction": "FrameVOILUTSequence",
}


@dataclass
class View:
    """Stored values -> 8-bit display values, fixed once from a reference image.

    Built from the original, it shows decoded copies with the same window, so
    that panels side by side are comparable.
    """

    describe: str                                     # how values are shown, for captions
    unit: Callable[[np.ndarray], np.ndarray] = field(repr=False)  # stored values -> 0..1 (grey or RGB)
    notes: list[str] = field(default_factory=list)    # what was wrong and what was done instead

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """uint8: (rows, cols) grey, or (..., 3) RGB for colour and palette images."""
        y = np.nan_to_num(np.asarray(self.unit(np.asarray(pixels)), dtype=np.float64), nan=0.5)
        return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)

    @property
    def caption(self) -> str:
        return "; ".join([self.describe, *self.notes])


def viewer(reference: np.ndarray, dataset: Any = None, *, bits_stored: int | None = None,
           colour: bool | None = None, frame: int = 0) -> View:
    """The display of images like ``reference`` (stored values of one or more frames).

    ``dataset``: the pydicom Dataset the pixels come from, or None. ``colour``:
    whether the last axis holds 3 samples (default: from SamplesPerPixel, else a
    trailing axis of 3). ``frame``: which frame's functional groups apply.
    """
    reference = np.asarray(reference)
    notes: list[str] = []
    ds = dataset
    photometric = str(_value(ds, "PhotometricInterpretation", frame, notes) or "").strip().upper()
    if colour is None:
        if ds is not None and "SamplesPerPixel" in ds:
            colour = _number(ds, "SamplesPerPixel", frame, notes) == 3
        else:
            colour = reference.ndim == 3 and reference.shape[-1] == 3
    if colour:
        return _colour_view(reference, ds, photometric, bits_stored, notes)
    if photometric == "PALETTE COLOR":
        view = _palette_view(ds, notes)
        if view is not None:
            return view
    elif ds is not None and photometric not in ("MONOCHROME1", "MONOCHROME2"):
        notes.append(f"Photometric Interpretation {photometric or '(missing)'} on one sample: "
                     "shown as MONOCHROME2")
    return _grey_view(reference, ds, photometric, frame, notes)


# ------------------------------------------------------------------ reading attributes

def _holder(ds: Any, keyword: str, frame: int) -> Any:
    """The dataset holding ``keyword`` for ``frame``: per-frame group, shared group, then
    the top level; None when absent."""
    if ds is None:
        return None
    group = _FRAME_GROUP.get(keyword)
    if group is not None:
        for seq, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
            try:
                items = ds.get(seq)
                inner = items[index].get(group) if items is not None and len(items) > index else None
                if inner and keyword in inner[0]:
                    return inner[0]
            except Exception:  # a damaged sequence is as good as none
                continue
    return ds if keyword in ds else None


def _value(ds: Any, keyword: str, frame: int, notes: list[str]) -> Any:
    """The (first) value of an attribute; None when absent, empty or unreadable (noted)."""
    holder = _holder(ds, keyword, frame)
    if holder is None:
        return None
    try:
        value = holder[keyword].value  # pydicom converts the raw bytes here, and may fail
    except Exception:
        raw = holder.get_item(keyword).value
        text = raw.decode("latin-1", "replace").strip(" \0") if isinstance(raw, bytes) else raw
        notes.append(f"{keyword} {text!r} is unreadable")
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):  # multi-valued: the first
        value = value[0] if len(value) else None
    return None if value is None or value == "" else value


def _number(ds: Any, keyword: str, frame: int, notes: list[str]) -> float | None:
    """A finite number, or None (absent, or not a finite number: noted)."""
    value = _value(ds, keyword, frame, notes)
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        notes.append(f"{keyword} {value!r} is not a number")
        return None
    if not math.isfinite(x):
        notes.append(f"{keyword} {value!r} is not a finite number")
        return None
    return x


# ------------------------------------------------------------------ grey

def _grey_view(reference: np.ndarray, ds: Any, photometric: str, frame: int, notes: list[str]) -> View:
    modality, parts = _modality(ds, frame, notes)
    values = modality(reference)
    voi, how = _voi(values, ds, frame, notes)
    parts.append(how)
    invert = photometric == "MONOCHROME1"
    if invert:
        parts.append("MONOCHROME1 inverted (low values white)")

    def unit(p: np.ndarray) -> np.ndarray:
        y = voi(modality(p))
        return 1.0 - y if invert else y

    return View(", ".join(parts), unit, notes)


def _modality(ds: Any, frame: int, notes: list[str]) -> tuple[Callable, list[str]]:
    """Stored -> modality values, and words for the caption (none when the identity)."""
    if ds is not None and "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        try:
            apply_modality_lut(np.zeros(1, np.int32), ds)  # a damaged table fails here, not later
            return (lambda p: np.asarray(apply_modality_lut(p, ds), dtype=np.float64)), ["Modality LUT"]
        except Exception as e:
            notes.append(f"the Modality LUT is unusable ({type(e).__name__}): stored values shown")
    slope = _number(ds, "RescaleSlope", frame, notes)
    intercept = _number(ds, "RescaleIntercept", frame, notes)
    if slope == 0:
        notes.append("Rescale Slope 0 would make every pixel one value: ignored")
        slope = None
    if slope is None and intercept is None:
        return (lambda p: np.asarray(p, dtype=np.float64)), []
    s, b = (1.0 if slope is None else slope), (0.0 if intercept is None else intercept)
    words = [] if (s, b) == (1.0, 0.0) else [f"rescale slope {s:g}, intercept {b:g}"]
    return (lambda p: np.asarray(p, dtype=np.float64) * s + b), words


def _voi(values: np.ndarray, ds: Any, frame: int, notes: list[str]) -> tuple[Callable, str]:
    """Modality values -> 0..1: the file's VOI LUT, else its window, else a robust window."""
    if ds is not None and ds.get("VOILUTSequence"):
        lut = _voi_lut(ds, notes)
        if lut is not None:
            return lut
    window = _window(ds, frame, notes)
    if window is not None:
        return window
    return _robust_window(values, notes)


def _voi_lut(ds: Any, notes: list[str]) -> tuple[Callable, str] | None:
    from pydicom.pixels import apply_voi

    try:
        item = ds.VOILUTSequence[0]
        entries, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
        # pydicom reads the table (US or OW, either byte order); we index it ourselves.
        table = np.asarray(apply_voi(np.arange(first, first + entries, dtype=np.int64), ds), dtype=np.float64)
    except Exception as e:
        notes.append(f"the VOI LUT Sequence is unusable ({type(e).__name__}: {e})")
        return None
    # Scaled by the table's own range, not the bits its descriptor declares: tables
    # that declare 16 bits and hold 12 would otherwise show nearly black.
    lo, hi = float(table.min()), float(table.max())
    if hi <= lo:
        notes.append("the VOI LUT maps every value to one output")
        return None
    unit = (table - lo) / (hi - lo)

    def apply(v: np.ndarray) -> np.ndarray:
        index = np.clip(np.rint(v) - first, 0, entries - 1).astype(np.intp)
        return unit[index]

    return apply, "VOI LUT from the file"


def _window(ds: Any, frame: int, notes: list[str]) -> tuple[Callable, str] | None:
    """The first Window Center / Width pair (PS3.3 C.11.2.1.2), or None (absent or unusable)."""
    if _holder(ds, "WindowCenter", frame) is None and _holder(ds, "WindowWidth", frame) is None:
        return None
    problems: list[str] = []
    c = _number(ds, "WindowCenter", frame, problems)
    w = _number(ds, "WindowWidth", frame, problems)
    function = str(_value(ds, "VOILUTFunction", frame, problems) or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        problems.append(f"VOILUTFunction {function!r} is unknown (LINEAR used)")
        function = "LINEAR"
    if c is None and not any(p.startswith("WindowCenter") for p in problems):
        problems.append("WindowCenter is missing")
    if w is None and not any(p.startswith("WindowWidth") for p in problems):
        problems.append("WindowWidth is missing")
    if w is not None and (w < 1 if function == "LINEAR" else w <= 0):
        problems.append(f"WindowWidth {w:g} is out of range ({'>= 1' if function == 'LINEAR' else '> 0'} "
                        f"for {function})")
        w = None
    if c is None or w is None:
        notes.append("the file's window is unusable (" + "; ".join(problems) + "): robust window used")
        return None
    notes.extend(problems)  # an unknown function with a good window: shown, and said
    if function == "LINEAR":
        # (x - (c - 0.5)) / (w - 1) + 0.5, clipped; w = 1 is a threshold at c - 0.5
        def apply(v: np.ndarray) -> np.ndarray:
            if w == 1:
                return (v > c - 0.5).astype(np.float64)
            return (v - (c - 0.5)) / (w - 1) + 0.5
    elif function == "LINEAR_EXACT":
        def apply(v: np.ndarray) -> np.ndarray:
            return (v - c) / w + 0.5
    else:
        def apply(v: np.ndarray) -> np.ndarray:
            return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (v - c) / w, -700, 700)))
    more = _count(ds, "WindowWidth", frame)
    how = f"window C {c:g} / W {w:g} from the file" + (f" (first of {more})" if more > 1 else "")
    if function != "LINEAR":
        how += f", {function}"
    return (lambda v: np.clip(apply(np.asarray(v, dtype=np.float64)), 0.0, 1.0)), how


def _count(ds: Any, keyword: str, frame: int) -> int:
    """How many values a (readable) multi-valued attribute has."""
    try:
        value = _holder(ds, keyword, frame)[keyword].value
        return 1 if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") else len(value)
    except Exception:
        return 1


def _robust_window(values: np.ndarray, notes: list[str]) -> tuple[Callable, str]:
    """The 0.5-99.5 percentile window; min..max where those meet; mid-grey for one value."""
    lo, hi = (float(x) for x in np.percentile(values, ROBUST_PERCENTILES))
    how = f"robust window {lo:g}..{hi:g} ({ROBUST_PERCENTILES[0]:g}-{ROBUST_PERCENTILES[1]:g} percentiles)"
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
        how = f"window min..max {lo:g}..{hi:g}"
    if hi <= lo:
        notes.append(f"the image has one value ({lo:g}): shown mid-grey")
        return (lambda v: np.full(np.shape(v), 0.5)), "one value"
    return (lambda v: np.clip((np.asarray(v, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)), how


# ------------------------------------------------------------------ colour

def _lut_dataset(ds: Any) -> Any:
    """``ds`` as pydicom's palette functions can read it: they take a segmented palette's
    byte order from the transfer syntax and know none for a private one, HLC's (a 16-bit
    segmented palette then raised "Unable to determine the endianness"). An HLC DICOM
    file is explicit VR little endian: a copy that says so (its file meta copied whole:
    the caller's dataset is left as it is)."""
    import copy

    from hybrid_plugins import HLC_UID_STRING

    meta = getattr(ds, "file_meta", None)
    if meta is None or str(meta.get("TransferSyntaxUID", "")) != HLC_UID_STRING:
        return ds
    from pydicom.uid import ExplicitVRLittleEndian

    view = copy.copy(ds)
    view.file_meta = copy.deepcopy(meta)  # (a shallow copy of it shares its elements)
    view.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return view


def _palette_view(ds: Any, notes: list[str]) -> View | None:
    """Indices through the palette (None, noted, when the file has no usable palette)."""
    from pydicom.pixels import apply_color_lut

    ds = _lut_dataset(ds)
    try:
        desc = ds.RedPaletteColorLookupTableDescriptor
        entries, first = int(desc[0]) or 65536, int(desc[1])
        table = np.asarray(apply_color_lut(np.arange(first, first + entries), ds))
    except Exception as e:
        notes.append(f"PALETTE COLOR without a usable colour table ({type(e).__name__}: {e}): "
                     "index values shown as grey")
        return None
    # 16-bit entries span 0..65535; some files put 8-bit values in 16-bit entries.
    top = 255.0 if table.dtype == np.uint8 or int(table.max()) <= 255 else 65535.0

    def unit(p: np.ndarray) -> np.ndarray:
        return np.asarray(apply_color_lut(p, ds), dtype=np.float64) / top

    return View("palette colour through the file's LUT", unit, notes)


def _colour_view(reference: np.ndarray, ds: Any, photometric: str, bits_stored: int | None,
                 notes: list[str]) -> View:
    bits = bits_stored
    if bits is None and ds is not None:
        bits = int(_number(ds, "BitsStored", 0, notes) or 0) or None
    if bits is None:
        bits = 8 * reference.dtype.itemsize
    top = float(2 ** bits - 1)
    convert: Callable[[np.ndarray], np.ndarray] = lambda p: p  # noqa: E731
    describe = "RGB" + (f", {bits} bits scaled to 8" if bits != 8 else "")
    if photometric.startswith("YBR_FULL"):
        if reference.dtype == np.uint8:
            from pydicom.pixels import convert_color_space

            def convert(p: np.ndarray) -> np.ndarray:
                return convert_color_space(np.asarray(p, dtype=np.uint8), "YBR_FULL", "RGB")
            describe = "YBR_FULL converted to RGB"
        else:
            notes.append(f"{photometric} with {reference.dtype} samples cannot be converted: shown as stored")
    elif ds is not None and photometric not in ("RGB", "YBR_ICT", "YBR_RCT"):
        notes.append(f"Photometric Interpretation {photometric or '(missing)'} on three samples: shown as RGB")
    return View(describe, lambda p: np.asarray(convert(p), dtype=np.float64) / top, notes)


# ------------------------------------------------------------------ hlc decode --display

def display_output(image: Any, frame: int = 0, note: Callable[[str], None] = print) -> Any:
    """An :class:`codec_core.cli.io.Image` replaced by its display picture (uint8), to write as PNG
    or TIFF. Every frame is shown through one view (the file's window, or one robust
    window of all frames, so frames stay comparable); ``frame`` picks the functional
    groups of enhanced files. Each note is passed to ``note``."""
    from .io import Image

    view = viewer(image.array, image.dataset, bits_stored=image.bits_stored,
                  colour=image.axes.endswith("C"), frame=frame)
    for message in view.notes:
        note(message)
    return Image(view(image.array), 8, image.kind, image.path)
