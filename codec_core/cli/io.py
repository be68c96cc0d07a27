"""Reading images and writing results for the ``hlc`` command.

Inputs are recognised by their first bytes, not their names: DICOM (any transfer
syntax pydicom can decode, including HLC's own), ``.hlc`` streams, PNG and TIFF
(8/16-bit) and ``.npy``. Outputs are chosen by extension.

Every file is written through :func:`atomic_write`: the bytes go to a hidden
temporary file in the destination directory, which is flushed, synced and renamed
over the final name. A failed write (full disk, permission, interruption) leaves
no partial output behind.

pydicom, imagecodecs and tifffile are imported only by the functions that need them.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codec_core.format import DTYPES, SIGNATURES, damaged_signature, guess_axes

__all__ = [
    "CliError", "UsageError", "NoImage", "Image", "TEMP_SUFFIX", "json_text", "warning_shape", "sniff",
    "read_image", "read_roi",
    "read_dataset", "check_pixel_source", "read_dicom", "read_back_dicom",
    "atomic_write", "same_file", "check_not_input", "image_bytes", "new_dataset",
    "encode_bytes", "decode_bytes", "is_hlc_dicom",
]

#: Suffix of the hidden temporary files; ``hlc batch`` removes leftovers of killed runs.
TEMP_SUFFIX = ".hlc-partial"

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"


class CliError(Exception):
    """A failure to report as one line (what is wrong, what to do); exit status 1."""

    exit_code = 1


class UsageError(CliError):
    """A bad command line; exit status 2."""

    exit_code = 2


class NoImage(CliError):
    """A DICOM object that holds no image (a structured report, a plan, a DICOMDIR):
    ``hlc batch`` skips it, the commands that were given it refuse it."""


@dataclass
class Image:
    """An image as stored, with what the codec needs to know about it."""

    array: np.ndarray
    bits_stored: int
    kind: str                      # "dicom", "hlc", "png", "tiff" or "npy"
    path: str = ""
    dataset: Any = field(default=None, repr=False)   # pydicom Dataset for DICOM input
    stream: bytes | None = field(default=None, repr=False)  # the HLC bytes for .hlc input
    palette: bool = False          # TIFF input whose samples are indices into a colour map

    @property
    def photometric(self) -> Any:
        """The photometric interpretation, as DICOM names it, where the input says it."""
        if self.dataset is not None:
            return self.dataset.get("PhotometricInterpretation")
        return "PALETTE COLOR" if self.palette else None

    @property
    def axes(self) -> str:
        if self.dataset is not None:
            from .corpus import dicom_axes

            return dicom_axes(self.dataset, self.array)
        return guess_axes(self.array.shape)

    @property
    def frames(self) -> int:
        return int(self.array.shape[0]) if self.axes.startswith("Z") else 1

    def frame(self, index: int = 0) -> np.ndarray:
        """One 2-D (or colour) frame."""
        return self.array[index] if self.axes.startswith("Z") else self.array


# ----------------------------------------------------------------------- reading

def sniff(path: str) -> str:
    """The kind of file at ``path`` from its first bytes: dicom, hlc, png, tiff, npy or ''."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except IsADirectoryError:
        raise CliError(f"{path} is a directory: give a file (for a folder use 'hlc batch')") from None
    except FileNotFoundError:
        raise CliError(f"{path} does not exist: check the path") from None
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from None
    if not head:
        raise CliError(f"{path} is empty (0 bytes)")
    if head[:8] in SIGNATURES or damaged_signature(head):  # (the codec may mend a damaged one)
        return "hlc"
    if head[128:132] == b"DICM":
        return "dicom"
    if head[:8] == _PNG_MAGIC:
        return "png"
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if head[:6] == _NPY_MAGIC:
        return "npy"
    if path.lower().endswith((".dcm", ".dicom")) or _looks_like_raw_dicom(head):
        return "dicom"
    if path.lower().endswith(".hlc"):
        return "hlc"  # (its signature damaged: the codec's error correction and header copy may mend it)
    return ""


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM dataset written without the 128-byte preamble starts with group 0x0008 or 0x0002."""
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00") and head[4:6].isalpha()


def _checked(arr: np.ndarray, path: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.name not in DTYPES:
        raise CliError(f"{path}: pixel type {arr.dtype} is not supported; HLC stores "
                       f"{', '.join(DTYPES)} images (convert the file first)")
    if arr.ndim not in (2, 3, 4) or arr.size == 0 or (arr.ndim == 4 and arr.shape[-1] != 3):
        raise CliError(f"{path}: image shape {arr.shape} is not (rows, cols), (rows, cols, 3), "
                       "(frames, rows, cols) or (frames, rows, cols, 3)")
    return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=False))


def register_pydicom() -> None:
    """Make pydicom read and write the HLC transfer syntax (idempotent)."""
    import hybrid_plugins

    hybrid_plugins.register_pydicom()


def read_dataset(path: str) -> Any:
    """``pydicom.dcmread(path)``; a file that is not DICOM, or does not parse, is a CliError."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    register_pydicom()
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        # A data set written without preamble and meta starts with group 8 (or 2).
        with open(path, "rb") as fh:
            group = fh.read(2)
        if group in (b"\x08\x00", b"\x00\x08", b"\x02\x00", b"\x00\x02"):
            raise CliError(f"{path} is a DICOM data set without File Meta Information (no DICM "
                           "marker): cannot tell its transfer syntax") from None
        raise CliError(f"{path} is not a DICOM file (no DICM marker)") from None
    except Exception as e:
        raise CliError(f"{path} could not be read as DICOM ({type(e).__name__}: {e}); "
                       "the file may be truncated or damaged") from None


def check_pixel_source(ds: Any, path: str) -> None:
    """One-line errors for a dataset whose pixel data cannot be what it claims to be."""
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise CliError(f"{path} holds floating point pixel data: HLC stores integer samples")
        meta = getattr(ds, "file_meta", {})
        sop = ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")  # (a DICOMDIR names it in its meta)
        sop_class = str(getattr(sop, "name", "") or sop or "")
        # (pydicom reads a file cut short up to its cut, or, cut inside a sequence, as no element at all)
        if "Rows" in ds or "Image" in sop_class or not sop_class or not len(ds):
            raise CliError(f"{path} is {sop_class or 'a DICOM file'} without pixel data: the file is cut short "
                           "or damaged")
        what = ", ".join(str(v) for v in (ds.get("Modality"), sop_class) if v)
        raise NoImage(f"{path} is a DICOM object without an image ({what}): nothing to compress")
    tsyntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if not tsyntax:
        raise CliError(f"{path} has no File Meta Information Transfer Syntax UID (0002,0010): "
                       "cannot tell how its pixel data are encoded")
    from pydicom.uid import UID

    if not UID(tsyntax).is_transfer_syntax:
        raise CliError(f"{path} is in transfer syntax {tsyntax}, which pydicom does not know")
    bits = max(int(ds.get("BitsStored", 0) or 0), int(ds.get("BitsAllocated", 0) or 0))
    if bits > 16:
        raise CliError(f"{path} has {bits}-bit samples (Bits Allocated {ds.get('BitsAllocated')}, "
                       f"Bits Stored {ds.get('BitsStored')}): HLC stores 1 to 16 bits per sample")
    if UID(tsyntax).is_compressed:
        return  # the decoder checks each frame against the image attributes
    from pydicom.pixels.utils import get_expected_length

    try:
        expected = get_expected_length(ds, unit="bytes")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise CliError(f"{path}: the image attributes are incomplete or invalid ({e})") from None
    actual = len(ds.PixelData)
    if actual != expected and not (expected % 2 and actual == expected + 1):  # one pad byte
        frames = ds.get("NumberOfFrames", 1)
        how, why = (("more than", "its image attributes may be wrong") if actual > expected
                    else ("fewer than", "the file is truncated or its image attributes are wrong"))
        raise CliError(f"{path}: Pixel Data holds {actual} bytes, {how} the {expected} that {ds.Rows} rows x "
                       f"{ds.Columns} columns x {ds.SamplesPerPixel} samples x {frames} frame(s) at Bits "
                       f"Allocated {ds.BitsAllocated} need: {why}")


def read_dicom(path: str) -> Image:
    """A DICOM file's pixel data as stored (see :func:`codec_core.cli.corpus.load_dicom_array`)."""
    from .corpus import load_dicom_array

    ds = read_dataset(path)
    check_pixel_source(ds, path)
    try:
        arr = load_dicom_array(ds)
    except (ValueError, NotImplementedError, RuntimeError, AttributeError, KeyError) as e:
        hint = ""
        if ds.file_meta.TransferSyntaxUID.is_compressed and not is_hlc_dicom(ds):
            hint = "; for JPEG syntaxes install pylibjpeg with its plugins"
        raise CliError(f"{path}: pixel data could not be decoded ({' '.join(str(e).split())})"
                       f"{hint}") from None
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or arr.dtype.itemsize * 8)
    return Image(_checked(arr, path), bits, "dicom", path, dataset=ds)


def _read_as(ds: Any) -> set[tuple[bool, bool]]:
    """How pydicom found the not yet decoded elements of `ds` encoded: (implicit VR, little endian)."""
    from pydicom.dataelem import RawDataElement

    raw = (ds.get_item(tag) for tag in ds.keys())  # noqa: SIM118 (a Dataset iterates elements, not tags)
    return {(e.is_implicit_VR, e.is_little_endian) for e in raw if isinstance(e, RawDataElement)}


def read_back_dicom(path: str) -> tuple[np.ndarray, list[bytes]]:
    """An HLC DICOM file read as a user's pydicom reads it: its pixels, and its HLC frames.

    A fresh parse of the file, whose data set must be encoded explicit VR little endian
    at every level (pydicom reads any other encoding with a mere warning, nested items
    silently); the pixels are decoded by ``pydicom.pixels.pixel_array(path, raw=True)``,
    which reads the file meta itself (the path that fails on a malformed file).
    """
    from pydicom.encaps import generate_frames
    from pydicom.pixels import pixel_array

    ds = read_dataset(path)
    if not is_hlc_dicom(ds):
        raise CliError(f"the output is in transfer syntax {ds.file_meta.get('TransferSyntaxUID')}, "
                       "not HLC")
    found = _read_as(ds)
    if found == {(False, True)}:  # (then the items: read as implicit VR, the body may not parse)
        for elem in ds.iterall():
            for item in elem.value if elem.VR == "SQ" else ():
                found |= _read_as(item)
    if found != {(False, True)}:
        raise CliError("the output's data set is not encoded explicit VR little endian, as its "
                       "transfer syntax says")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    offsets = None
    if "ExtendedOffsetTable" in ds:
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    streams = list(generate_frames(ds.PixelData, number_of_frames=frames, extended_offsets=offsets))
    return np.asarray(pixel_array(path, raw=True)), streams  # raw: samples as stored


def read_image(path: str, *, bits_stored: int | None = None) -> Image:
    """Read any supported input; ``.hlc`` streams are decoded."""
    kind = sniff(path)
    if kind == "dicom":
        img = read_dicom(path)
    elif kind == "hlc":
        import codec_core as hlc

        with open(path, "rb") as fh:
            data = fh.read()
        meta = hlc.info(data)
        img = Image(_checked(hlc.decode(data), path), int(meta["bits_stored"]), "hlc", path,
                    stream=data)
    elif kind == "png":
        import imagecodecs

        with open(path, "rb") as fh:
            arr = imagecodecs.png_decode(fh.read())
        if arr.ndim == 3 and arr.shape[-1] in (2, 4):
            raise CliError(f"{path} has an alpha channel: save it as grey or RGB without alpha")
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        img = Image(_checked(arr, path), arr.dtype.itemsize * 8, "png", path)
    elif kind == "tiff":
        import tifffile

        with tifffile.TiffFile(path) as tif:
            arr = tif.asarray()
            # (read as its indices; the first page is a TiffPage, whose type the stubs widen)
            palette = getattr(tif.pages[0], "photometric", None) == tifffile.PHOTOMETRIC.PALETTE
        img = Image(_checked(arr, path), arr.dtype.itemsize * 8, "tiff", path, palette=palette)
    elif kind == "npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise CliError(f"{path} is not a plain .npy array ({e})") from None
        if arr.ndim == 3 and arr.shape[-1] in (2, 4) and arr.shape[0] > 4:  # (read as frames of 2 or 4 columns)
            raise CliError(f"{path}: shape {arr.shape} looks like an image with alpha (grey + alpha or RGBA); "
                           "HLC stores grey or RGB: drop the alpha channel first")
        img = Image(_checked(arr, path), np.asarray(arr).dtype.itemsize * 8, "npy", path)
    else:
        raise CliError(f"{path} is not a DICOM, PNG, TIFF, .npy or .hlc file: "
                       "give one of those")
    if bits_stored is not None:
        img.bits_stored = bits_stored
    return img


def read_roi(spec: str, image: Image) -> Any:
    """``--roi`` value: "auto", or a boolean mask from MASK.npy / MASK.png / SEG.dcm."""
    if spec == "auto":
        return "auto"
    kind = sniff(spec)
    if kind == "dicom":
        from codec_core.roi import mask_from_seg

        seg = read_dataset(spec)
        try:
            return np.asarray(mask_from_seg(seg, image.array.shape), dtype=bool)
        except ValueError as e:
            raise CliError(f"--roi {spec}: {e}") from None
    if kind in ("npy", "png", "tiff"):
        mask: Any = read_image(spec).array
        if mask.ndim == 3 and mask.shape[-1] == 3 and not image.axes.endswith("C"):
            mask = mask.any(axis=-1)
        mask = mask != 0
        shape = image.array.shape
        target = shape[:-1] if image.axes.endswith("C") else shape
        try:
            np.broadcast_to(mask, target)
        except ValueError:
            raise CliError(f"--roi {spec}: mask shape {mask.shape} does not fit the image "
                           f"{shape}; make a mask of shape {target[-2:]}") from None
        return mask
    raise CliError(f"--roi {spec}: give 'auto', a mask (.npy or .png, non-zero = keep) "
                   "or a DICOM SEG file")


# ----------------------------------------------------------------------- writing

def same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same file (following links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_not_input(out: str, *inputs: str) -> None:
    for src in inputs:
        if src and same_file(out, src):
            raise UsageError(f"output {out} is the input file: refusing to overwrite an "
                             "original; choose another output name")


def _temporary_beside(path: str) -> tuple[int, str]:
    """A new temporary file in ``path``'s folder (descriptor, name); a folder that cannot
    take it is a CliError named by ``path``, not by the temporary name."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(f"cannot write {path}: it is a folder")
    try:
        return tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as e:
        if not os.path.isdir(directory):
            raise CliError(f"cannot write {path}: the folder {directory} does not exist") from e
        raise CliError(f"cannot write {path} in the folder {directory}: {(e.strerror or str(e)).lower()}") from e


def check_can_write(path: str) -> None:
    """Raise the CliError :func:`atomic_write` would, before work whose result goes to
    ``path`` (the demo computes for seconds before it writes its report)."""
    fd, tmp = _temporary_beside(path)
    os.close(fd)
    os.unlink(tmp)


def atomic_write(path: str, produce: bytes | Callable[[Any], None],
                 check: Callable[[str], None] | None = None, like: str = "") -> int:
    """Write ``produce`` (bytes, or a function writing to a binary file) to ``path`` atomically.

    ``check``, if given, is called with the name of the complete temporary file before
    it is renamed: it reads the file back and raises if it is not right. Returns the
    number of bytes written. On any error (``check``'s included) the temporary file
    is removed and the final name is untouched. ``like``: the original, whose access
    the output takes (:func:`_permissions`).
    """
    fd, tmp = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(produce, (bytes, bytearray, memoryview)):
                fh.write(produce)
            else:
                produce(fh)
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
        if check is not None:
            check(tmp)
        _permissions(tmp, like)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size


def _permissions(path: str, like: str = "") -> None:
    """A new file's permission bits: the umask's, and with ``like`` (its original) no
    wider than the original's and in its group where we may (a patient's file readable by
    its owner only gave an output every user could read; a group's file, one its group
    could not). The owner keeps write access to what it wrote."""
    mode = 0o666 & ~_umask()
    if like:
        st = os.stat(like)
        mode &= st.st_mode | 0o200
        with contextlib.suppress(OSError):  # (not a member of that group: ours stays)
            os.chown(path, -1, st.st_gid)
    os.chmod(path, mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def is_hlc_dicom(ds: Any) -> bool:
    from hybrid_plugins import HLC_UID_STRING

    meta = getattr(ds, "file_meta", None)
    return meta is not None and str(meta.get("TransferSyntaxUID", "")) == HLC_UID_STRING


def new_dataset(image: Image) -> Any:
    """A Secondary Capture dataset around a non-DICOM image (for ``.dcm`` output)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.PatientName = ""
    ds.PatientID = ""
    _set_pixels(ds, image.array, image.axes, image.bits_stored)
    return ds


def _set_pixels(ds: Any, arr: np.ndarray, axes: str, bits_stored: int) -> None:
    """Make ``arr`` the dataset's pixel data, native explicit VR little endian."""
    from pydicom.uid import ExplicitVRLittleEndian

    from hybrid_plugins.pydicom_plugin import as_explicit_little_endian

    colour = axes.endswith("C")
    as_explicit_little_endian(ds)  # (while the transfer syntax still says what the values are)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if kw in ds:
            del ds[kw]
    ds.SamplesPerPixel = 3 if colour else 1
    if "PhotometricInterpretation" not in ds or colour != (ds.SamplesPerPixel == 3) or (
            not colour and ds.PhotometricInterpretation not in ("MONOCHROME1", "MONOCHROME2",
                                                                "PALETTE COLOR")):
        ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour and ds.PhotometricInterpretation in ("YBR_ICT", "YBR_RCT"):
        ds.PhotometricInterpretation = "RGB"  # JPEG 2000 decoders undo the component transform
    elif colour and str(ds.PhotometricInterpretation).startswith("YBR") \
            and ds.PhotometricInterpretation != "YBR_FULL":
        ds.PhotometricInterpretation = "YBR_FULL"  # samples as stored, no subsampling
    ds.Rows, ds.Columns = int(arr.shape[-3 if colour else -2]), int(arr.shape[-2 if colour else -1])
    if axes.startswith("Z"):
        ds.NumberOfFrames = int(arr.shape[0])
    ds.BitsStored = int(bits_stored)
    ds.HighBit = int(bits_stored) - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    if colour:
        # YBR_FULL colour-by-plane: the US image IODs require it (PS3.3 C.8.5.6.1.16),
        # the others allow either.
        ds.PlanarConfiguration = 1 if ds.PhotometricInterpretation == "YBR_FULL" else 0
        if ds.PlanarConfiguration:
            arr = np.moveaxis(arr, -1, -3)
    if ds.get("BitsAllocated") == 1 and bits_stored == 1 and arr.dtype == np.uint8:
        # 1-bit data (a binary SEG, whose IOD requires Bits Allocated 1) stays packed
        from pydicom.pixels import pack_bits

        ds.PixelData = pack_bits(arr)
    else:
        ds.BitsAllocated = arr.dtype.itemsize * 8
        ds.PixelData = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False)).tobytes()
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"


def dicom_bytes(ds: Any, source: str = "") -> bytes:
    """The dataset (read from ``source``) as a DICOM file, in the encoding its Transfer
    Syntax UID says."""
    import pydicom

    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except (ValueError, TypeError, KeyError) as e:
        raise CliError(f"{source or 'the image'}: its attributes cannot be written as DICOM "
                       f"({' '.join(str(e).split())})") from None
    return buf.getvalue()


def encode_bytes(image: Image, out_path: str, options: dict[str, Any]) -> bytes:
    """The bytes of ``out_path``: an HLC stream, or a DICOM file in the HLC transfer syntax."""
    from hybrid_plugins._common import palette_refusal  # (light: no pydicom for other inputs)

    refusal = palette_refusal(image.photometric, options.get("mode", "lossless"), image.path, "--mode lossless")
    if refusal:
        raise CliError(refusal)
    if out_path.lower().endswith((".dcm", ".dicom")):
        from hybrid_plugins import HLC_TRANSFER_SYNTAX_UID

        register_pydicom()
        if image.dataset is not None:
            # The pixels as read (whatever the source's transfer syntax and byte
            # order) become native little endian pixel data, so that compress()
            # encodes the dataset itself, which records a lossy result in it.
            ds = image.dataset
            _set_pixels(ds, image.array, image.axes, image.bits_stored)
        else:
            ds = new_dataset(image)
        # "threads" is forwarded too: the pydicom plugin passes runner options to the codec.
        opts = {k: v for k, v in options.items() if v is not None}
        try:
            # The same image in another transfer syntax keeps its SOP Instance UID (a new
            # one broke every reference to it: reports, presentation states, segmentations);
            # a lossy result gets a new one from the plugin, as PS3.3 C.7.6.1.1.5 asks.
            ds.compress(HLC_TRANSFER_SYNTAX_UID, generate_instance_uid=False, **opts)
        except RuntimeError as e:  # pydicom's wrapping of the plugin's error
            raise CliError(f"{image.path}: HLC could not encode it ({' '.join(str(e).split())})") from None
        return dicom_bytes(ds, image.path)
    import codec_core as hlc

    return hlc.encode(image.array, bits_stored=image.bits_stored, axes=image.axes, **options)


def decode_bytes(image: Image, out_path: str) -> bytes:
    """The bytes of ``out_path`` holding ``image`` uncompressed, chosen by extension."""
    ext = os.path.splitext(out_path)[1].lower()
    arr = image.array
    if ext in (".dcm", ".dicom"):
        if image.dataset is not None:
            import copy

            ds = copy.deepcopy(image.dataset)
        else:
            return dicom_bytes(new_dataset(image))
        _set_pixels(ds, arr, image.axes, image.bits_stored)
        return dicom_bytes(ds, image.path)
    if ext == ".png":
        import imagecodecs

        if image.axes.startswith("Z"):
            raise UsageError(f"{out_path}: PNG holds one frame and this image has "
                             f"{arr.shape[0]}; write .tif, .npy or .dcm (or pass --frame)")
        if arr.dtype.kind == "i":
            raise UsageError(f"{out_path}: PNG cannot hold signed ({arr.dtype}) samples; "
                             "write .tif, .npy or .dcm")
        return bytes(imagecodecs.png_encode(arr))
    if ext in (".tif", ".tiff"):
        import tifffile

        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, photometric="rgb" if image.axes.endswith("C") else "minisblack")
        return buf.getvalue()
    if ext == ".npy":
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()
    raise UsageError(f"{out_path}: unknown output type {ext or '(no extension)'}; "
                     "use .dcm, .png, .tif or .npy")


def image_bytes(image: Image) -> int:
    """Raw stored bytes (itemsize x elements): the CR numerator."""
    return int(image.array.nbytes)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (and float inside lists, tuples, dicts) None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def warning_shape(text: str) -> str:
    """A warning with its figures taken out: the same warning for each frame of a file
    (its bpp, its frame number) is one shape, shown once with a count."""
    return re.sub(r"\d+(\.\d+)?", "#", text)


def json_text(value: Any, **kwargs: Any) -> str:
    """``value`` as standard JSON, what every ``--json`` of ``hlc`` prints or writes.

    An infinite or NaN float (the PSNR of an exact decode) is written ``null``: Python's
    ``Infinity`` and ``NaN`` are not JSON, and JavaScript, Go and jq reject or misread
    them (jq turns ``Infinity`` into 1.8e308). Anything else json cannot write, as text.
    """
    return json.dumps(_finite(value), allow_nan=False, default=str, **kwargs)
