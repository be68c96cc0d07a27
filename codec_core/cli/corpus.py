"""The development/benchmark corpus: pydicom-data test images, loaded as stored.

Used by the tests, the benchmarks and the ``hlc`` command.  Images are fetched with
``pydicom.data.get_testdata_file(NAME)`` using exact names only (calling
``get_testdata_files()`` without a name tries the network and can hang).

``load_dicom_array`` returns the pixel data *as stored*:

* signed data stays signed (int8/int16), ``bits_stored`` is BitsStored;
* PALETTE COLOR images are returned as their index values (no LUT applied);
* no YBR -> RGB conversion, no modality/VOI LUT, no rescale;
* RGB is (rows, cols, 3), multi-frame is (frames, rows, cols[, 3]).

pydicom (and, for compressed transfer syntaxes, pylibjpeg) are imported lazily.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CORPUS",
    "BENCH_CORPUS",
    "QUICK_CORPUS",
    "CorpusImage",
    "corpus_path",
    "load_dicom_array",
    "load_dicom",
    "load_corpus",
]

#: The development and test corpus: pydicom-data files, by exact name.
CORPUS: tuple[str, ...] = (
    "693_UNCR.dcm",                      # CT 512x512, 14-bit signed
    "MR2_UNCR.dcm",                      # MR 1024x1024, 12-bit
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # MR 484x484, 12-bit
    "RG1_UNCR.dcm",                      # CR 1955x1841, 15-bit
    "RG3_UNCR.dcm",                      # CR 1760x1760, 10-bit
    "JPEG2000_UNC.dcm",                  # NM 1024x256, 16-bit signed
    "US1_UNCR.dcm",                      # US RGB 480x640
    "OBXXXX1A.dcm",                      # US palette colour 600x800 (index values)
    "eCT_Supplemental.dcm",              # CT, 2 frames 512x512
    "emri_small.dcm",                    # MR 64x64, 10 frames
    "liver.dcm",                         # DICOM SEG (1-bit, 3 frames)
    "JPGLosslessP14SV1_1s_1f_8b.dcm",    # US 768x1024 8-bit, JPEG lossless (pylibjpeg)
)

#: The images the codec benchmark runs on: every corpus image except the
#: segmentation object (liver.dcm is a 1-bit mask used for ROI tests, not an image).
BENCH_CORPUS: tuple[str, ...] = tuple(n for n in CORPUS if n != "liver.dcm")

#: Three small images for quick runs (smoke tests, ``--quick``).
QUICK_CORPUS: tuple[str, ...] = ("emri_small.dcm", "693_UNCR.dcm", "US1_UNCR.dcm")


@dataclass
class CorpusImage:
    """One loaded corpus image."""

    name: str
    array: np.ndarray = field(repr=False)
    bits_stored: int
    modality: str
    signed: bool
    photometric: str = ""
    axes: str = ""

    @property
    def frames(self) -> int:
        return int(self.array.shape[0]) if self.axes.startswith("Z") else 1

    @property
    def rows(self) -> int:
        return int(self.array.shape[1 if self.axes.startswith("Z") else 0])

    @property
    def cols(self) -> int:
        return int(self.array.shape[2 if self.axes.startswith("Z") else 1])

    @property
    def pixels(self) -> int:
        """rows x cols x frames (the bpp denominator; channels not counted)."""
        return self.rows * self.cols * self.frames

    @property
    def raw_bytes(self) -> int:
        """Raw stored bytes: itemsize x elements (the CR numerator)."""
        return int(self.array.nbytes)


def corpus_path(name: str) -> str:
    """Path of a pydicom-data test file, looked up by its exact name."""
    if not name or any(c in name for c in "*?[]"):
        raise ValueError(f"corpus name must be an exact file name, got {name!r}")
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        import importlib.util

        hint = "" if importlib.util.find_spec("data_store") else "; 'pip install pydicom-data' adds its files"
        raise FileNotFoundError(f"{name!r} is not a test file name of pydicom or pydicom-data{hint}")
    return os.fspath(path)


def _read(path_or_dataset: Any):
    import pydicom

    if isinstance(path_or_dataset, pydicom.Dataset):
        return path_or_dataset
    return pydicom.dcmread(path_or_dataset)


def dicom_axes(ds: Any, arr: np.ndarray) -> str:
    """The layout of a DICOM data set's pixel array: colour by Samples per Pixel,
    frames by Number of Frames (a one-frame multi-frame object keeps its Z axis)."""
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    multi = "NumberOfFrames" in ds and frames > 1
    if samples > 1:
        return "ZYXC" if arr.ndim == 4 or multi else "YXC"
    return "ZYX" if arr.ndim == 3 or multi else "YX"


def load_dicom(path_or_dataset: Any, name: str | None = None) -> CorpusImage:
    """Load a DICOM file (path, file object or Dataset) as a :class:`CorpusImage`."""
    ds = _read(path_or_dataset)
    arr = load_dicom_array(ds)
    if name is None:
        fn = getattr(ds, "filename", None)
        name = os.path.basename(fn) if isinstance(fn, (str, os.PathLike)) else "<dataset>"
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or arr.dtype.itemsize * 8)
    return CorpusImage(
        name=str(name),
        array=arr,
        bits_stored=bits,
        modality=str(ds.get("Modality", "") or ""),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        photometric=str(ds.get("PhotometricInterpretation", "") or ""),
        axes=dicom_axes(ds, arr),
    )


def load_dicom_array(path_or_dataset: Any) -> np.ndarray:
    """Pixel data of a DICOM file or Dataset, as stored.

    Signed stays signed, palette colour stays index values, colour is
    (rows, cols, 3), multi-frame is (frames, rows, cols[, 3]).  The result is a
    native-endian, C-contiguous, writeable array of uint8/int8/uint16/int16.
    """
    from pydicom.pixels import pixel_array

    ds = _read(path_or_dataset)
    # raw=True: no YBR->RGB conversion; LUTs and rescale are never applied here.
    arr = pixel_array(ds, raw=True)
    arr = np.asarray(arr)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    alloc = int(ds.get("BitsAllocated", arr.dtype.itemsize * 8) or 8)
    if arr.dtype.kind not in "iu" or arr.dtype.itemsize > 2 or alloc > 16:
        raise ValueError(
            f"unsupported pixel data: dtype {arr.dtype}, BitsAllocated {alloc} "
            "(HLC takes 1..16 bits stored in uint8/int8/uint16/int16)"
        )
    want = np.dtype(f"{'i' if signed else 'u'}{1 if alloc <= 8 else 2}")
    if arr.dtype.itemsize > want.itemsize:
        want = np.dtype(f"{want.kind}{arr.dtype.itemsize}")
    arr = np.ascontiguousarray(arr, dtype=want)
    if not arr.flags.writeable or not arr.flags.owndata:
        arr = arr.copy()
    return arr


def load_corpus(names: Iterable[str] | None = None) -> list[CorpusImage]:
    """Load corpus images (default: every name in :data:`CORPUS`), in order."""
    out = []
    for name in (CORPUS if names is None else tuple(names)):
        out.append(load_dicom(corpus_path(name), name=name))
    return out
