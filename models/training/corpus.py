"""Training corpus and classical, modality-aware labels for the ROI models.

Development-time only (used by ``models/training/train.py`` and ``benchmarks/bench_roi.py``);
the codec never imports this module. Images come from pydicom's test data by exact
file name (``get_testdata_file(NAME)``; listing the whole data set would hit the
network). Images are grouped by source so that copies and crops of one acquisition
never end up on both sides of the train / held-out split.

Pixel labels (0 background, 1 body, 2 detail) come from rules that use the DICOM
metadata the learned model never sees:
- CT with a rescale: body = HU > -500, largest components, holes filled; bone
  (HU > 300) is detail.
- Other modalities: body = smoothed image above a noise-floor threshold between the
  dark mode and Otsu's threshold (MR, NM, US, OT); radiographs also drop the flat,
  bright (in display polarity) collimator shadow touching the border.
- Detail everywhere: gradient magnitude well above the noise, and small bright
  components outside the body (burned-in text, markers, scale bars).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

BACKGROUND, BODY, DETAIL = 0, 1, 2


@dataclass(frozen=True)
class Source:
    name: str                   # exact pydicom test-data file name
    group: str                  # acquisition: copies / crops share a group
    split: str                  # "train" or "heldout"
    frames: tuple[int, ...] = (0,)
    all_body: bool = False      # hand-checked: a crop inside the patient, no background


# Real (non-synthetic) images, one entry per distinct acquisition or crop.
SOURCES: tuple[Source, ...] = (
    # CT
    Source("693_UNCR.dcm", "ct-head-693", "train"),
    Source("bad_sequence.dcm", "ct-neck", "train"),
    Source("explicit_VR-UN.dcm", "ct-abdomen", "heldout"),
    Source("J2K_pixelrep_mismatch.dcm", "ct-head-2", "train"),
    # CT_small is a crop inside the chest: its dark corners are lung, not air.
    Source("CT_small.dcm", "ct-small", "heldout", all_body=True),
    Source("eCT_Supplemental.dcm", "ct-enhanced", "train", (0, 1)),
    # MR
    Source("MR2_UNCR.dcm", "mr-shoulder", "train"),
    Source("MR-SIEMENS-DICOM-WithOverlays.dcm", "mr-abdomen", "heldout"),
    Source("examples_overlay.dcm", "mr-abdomen", "heldout"),
    Source("MR_small.dcm", "mr-small", "train", all_body=True),
    Source("emri_small.dcm", "mr-emri", "heldout", (0, 5, 9), all_body=True),
    # CR
    Source("RG1_UNCR.dcm", "cr-chest", "heldout", all_body=True),
    Source("RG3_UNCR.dcm", "cr-extremity", "train"),
    # NM
    Source("JPEG2000_UNC.dcm", "nm-wholebody-1", "train"),
    Source("JPEG-LL.dcm", "nm-wholebody-2", "train"),
    Source("JPGExtended.dcm", "nm-wholebody-3", "heldout"),
    # US
    Source("US1_UNCR.dcm", "us-lymph", "train"),
    Source("examples_rgb_color.dcm", "us-lymph", "train"),
    Source("OBXXXX1A.dcm", "us-ob", "heldout"),
    Source("examples_palette.dcm", "us-ob", "heldout"),
    Source("JPGLosslessP14SV1_1s_1f_8b.dcm", "us-echo-1", "train"),
    Source("gdcm-US-ALOKA-16.dcm", "us-aloka", "heldout"),
    Source("color-pl.dcm", "us-doppler", "train"),
    # Not used: color3d_jpeg_baseline / examples_ybr_color (lossy echo cine, mostly
    # black frames whose sector the rules cannot delineate), mlut_18 / vlut_04 /
    # image_dfl (synthetic test patterns), rtdose (a dose grid, not an image).
)


@dataclass
class Sample:
    source: Source
    frame: int
    image: np.ndarray          # as stored (integer; colour kept as (rows, cols, 3))
    labels: np.ndarray         # uint8 pixel labels (rows, cols)
    modality: str


def load_image(source: Source, frame: int) -> tuple[np.ndarray, object]:
    import pydicom
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file(source.name))
        arr = ds.pixel_array
    nframes = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if nframes > 1:
        arr = arr[frame]
    if ds.PhotometricInterpretation.startswith("YBR"):
        from pydicom.pixels import convert_color_space

        arr = convert_color_space(arr, ds.PhotometricInterpretation, "RGB")
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr, ds


def display_luma(image: np.ndarray, ds: object) -> np.ndarray:
    """Float luma in display polarity (air dark)."""
    x = image.astype(np.float64)
    if x.ndim == 3:
        x = x.mean(axis=-1)
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        x = x.max() - x
    return x


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values))


def _keep_large(mask: np.ndarray, min_fraction: float, keep_largest: bool = True) -> np.ndarray:
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = sizes >= max(min_fraction * mask.size, 1)
    if keep_largest and not keep.any():
        keep[1 + int(np.argmax(sizes))] = True
    return keep[lab]


def _noise_sigma(x: np.ndarray) -> float:
    """Robust noise standard deviation from the finest-scale pixel differences."""
    d = (x[1:, 1:] - x[:-1, 1:] - x[1:, :-1] + x[:-1, :-1]) / 2.0
    return float(1.4826 * np.median(np.abs(d - np.median(d)))) + 1e-9


def classical_labels(image: np.ndarray, ds: object, all_body: bool = False) -> np.ndarray:
    """Pixel labels from modality-aware rules (see the module docstring)."""
    from scipy import ndimage

    modality = str(getattr(ds, "Modality", "OT"))
    x = display_luma(image, ds)
    rows, cols = x.shape
    sigma = max(1.0, min(rows, cols) / 256.0)
    xs = ndimage.gaussian_filter(x, sigma)
    lo, hi = np.percentile(xs, [0.5, 99.5])
    span = max(hi - lo, 1e-9)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = getattr(ds, "RescaleIntercept", None)
    bone = np.zeros_like(x, dtype=bool)
    ui_bright = np.zeros_like(x, dtype=bool)
    if modality == "CT" and intercept is not None:
        hu = xs * slope + float(intercept)
        raw = ndimage.median_filter(hu, 3)
        body = raw > -500
        bone = raw > 300
    else:
        flat = xs[:: max(1, rows // 256), :: max(1, cols // 256)].ravel()
        t_otsu = _otsu(flat)
        dark = np.percentile(flat, 2)
        frac = {"MR": 0.30, "NM": 0.25}.get(modality, 0.25)
        if modality in ("CR", "DX", "RG"):
            # Radiographs: background is direct exposure or collimator shadow: flat
            # (no anatomy texture), at either end of the range, touching the border.
            xr = ndimage.gaussian_filter(x, 2.0)
            local_sd = np.sqrt(np.maximum(ndimage.uniform_filter(xr * xr, 31) - ndimage.uniform_filter(xr, 31) ** 2, 0))
            extreme = (xr < lo + 0.2 * span) | (xr > lo + 0.8 * span)
            flat = (local_sd < 0.02 * span) & extreme
            flat = ndimage.binary_opening(flat, iterations=3)
            lab, _ = ndimage.label(flat)
            edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
            body = ~np.isin(lab, edge[edge > 0])
        elif modality == "US":
            # Ultrasound: the sector is speckle; outside is near-black (JPEG ringing aside).
            # Thin bright graphics (text, calipers) are opened away first so that they
            # never join the sector; flat regions touching the border (UI bars, header
            # panels) are graphics, not anatomy: speckle is never flat.
            us = ndimage.gaussian_filter(ndimage.grey_opening(x, size=(5, 5)), 3.0)
            body = us > dark + 0.06 * (hi - dark)
            mu = ndimage.uniform_filter(x, 7)
            sd = np.sqrt(np.maximum(ndimage.uniform_filter(x * x, 7) - mu * mu, 0))
            flat = ndimage.binary_opening(sd <= max(1.0, 0.01 * span), iterations=2)
            lab, _ = ndimage.label(flat)
            edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
            ui = _keep_large(np.isin(lab, edge[edge > 0]), 0.002, keep_largest=False)
            holes = ndimage.binary_fill_holes(ui) & ~ui   # text inside a bar; not a sector
            ui_bright = ui & body      # bars and panels above the display floor
            body &= ~(ui | (holes & ~_keep_large(holes, 0.005, keep_largest=False)))
        else:
            t = dark + frac * (t_otsu - dark) + 3 * _noise_sigma(x)
            if modality == "MR":
                # Noise floor: robust statistics of the dark (air) cluster of the smoothed
                # image. Dark muscle sits well above it but can fall below the Otsu rule.
                air = xs[xs <= dark + 0.1 * (t_otsu - dark)]
                if air.size > 0.05 * xs.size:
                    med = float(np.median(air))
                    mad = 1.4826 * float(np.median(np.abs(air - med)))
                    t = min(t, max(med + 6.0 * mad, float(np.percentile(air, 99)) + 2.0 * mad))
            body = xs > t
    body_main = _keep_large(body, 0.01)
    if modality == "US":
        # A scan sector or rectangle is convex: dark chambers and cysts inside it are anatomy.
        from skimage.morphology import convex_hull_image

        lab, n = ndimage.label(body_main)
        for k in range(1, n + 1):
            part = lab == k
            hull = convex_hull_image(part)
            # Only a sector-like part: a hull much larger than the part means the
            # part joins a header bar or graphics, and the hull would swallow air.
            # A hull that stays clear of UI bars is a sector whose dark (anechoic) parts
            # sit at the display floor: they are anatomy too.
            if hull.sum() <= 1.5 * part.sum() or (hull & ui_bright).sum() <= 0.05 * hull.sum():
                body_main |= hull
    body_main = ndimage.binary_closing(body_main, iterations=3, border_value=0) | body_main
    body_main = ndimage.binary_fill_holes(body_main)
    body_main = ndimage.binary_dilation(body_main, iterations=2)
    # Detail: strong structure relative to noise and to the body's contrast range.
    xn = (x - lo) / span
    g = ndimage.gaussian_gradient_magnitude(xn, 1.0)
    noise = _noise_sigma(xn)
    detail = (g > max(0.08, 6.0 * noise)) & ndimage.binary_dilation(body_main, iterations=2)
    detail |= bone & body_main
    # Small bright things outside the body: burned-in text, markers, scale bars.
    outside = ~body_main
    marks = np.zeros_like(outside)
    if outside.any():
        # Local contrast, not brightness: text on a light UI bar is darker than the bar.
        marks = outside & (np.abs(xn - ndimage.median_filter(xn, 9)) > 0.15)
        marks = marks & ~_keep_large(marks, 0.01, keep_largest=False) if marks.any() else marks
        marks = ndimage.binary_dilation(marks, iterations=1)
    if all_body:
        body_main = np.ones_like(body_main)
    labels = np.zeros(x.shape, dtype=np.uint8)
    labels[body_main] = BODY
    labels[detail | marks] = DETAIL
    return labels


def block_labels(pixel_labels: np.ndarray, block: int, detail_fraction: float = 0.10) -> np.ndarray:
    """Block labels: DETAIL if ≥ detail_fraction of the block is detail, else BODY if any
    pixel is body or detail (a mixed block is never background), else BACKGROUND."""
    rows, cols = pixel_labels.shape
    pr, pc = (-rows) % block, (-cols) % block
    lab = np.pad(pixel_labels, ((0, pr), (0, pc)), mode="edge")
    b = lab.reshape(lab.shape[0] // block, block, lab.shape[1] // block, block)
    det = (b == DETAIL).mean(axis=(1, 3))
    anyfg = (b != BACKGROUND).any(axis=(1, 3))
    out = np.where(det >= detail_fraction, DETAIL, np.where(anyfg, BODY, BACKGROUND))
    return out.astype(np.uint8)


def load_corpus(split: str | None = None) -> list[Sample]:
    out = []
    for src in SOURCES:
        if split is not None and src.split != split:
            continue
        for f in src.frames:
            img, ds = load_image(src, f)
            out.append(Sample(src, f, img, classical_labels(img, ds, src.all_body), str(getattr(ds, "Modality", "OT"))))
    return out
