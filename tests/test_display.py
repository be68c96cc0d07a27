"""The display path (codec_core.cli.display): what `hlc roi`, the report and `hlc decode --display` show.

Checked against the standard's own rules and pydicom's functions, on pydicom-data files
looked up by exact name: RG3_UNCR (CR, MONOCHROME1), MR-SIEMENS-DICOM-WithOverlays (two
window pairs), vlut_04 (VOI LUT Sequence), OBXXXX1A (PALETTE COLOR), SC_ybr_full_uncompressed
(YBR_FULL), eCT_Supplemental (enhanced CT: window per frame), CT_small (bad windows made here).
"""
from __future__ import annotations

import copy
from io import BytesIO

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from codec_core.cli.corpus import load_dicom_array
from codec_core.cli.display import viewer

from test_cli import data_file, hlc, ok


def dataset(name: str):
    return pydicom.dcmread(data_file(name))


def picture_area(png: bytes) -> np.ndarray:
    """The picture inside the axes' frame of a figure PNG, as grey 0..255.

    The axes (framed by its spines) is the tallest band of rows that are not all white
    (the title above and the legend below are separate bands); its columns run from
    the first to the last column that is not white."""
    from PIL import Image

    with Image.open(BytesIO(png)) as im:
        grey = np.asarray(im.convert("L"), dtype=np.float64)
    inked = (grey < 250).any(axis=1)
    runs, start = [], None
    for i, v in enumerate(np.append(inked, False)):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((i - start, start, i))
            start = None
    _, top, bottom = max(runs)
    band = grey[top:bottom]
    cols = np.flatnonzero((band < 250).any(axis=0))
    return band[2:-2, cols[0] + 2:cols[-1] - 1]  # inside the spines


def sample(area: np.ndarray, shape: tuple[int, int], where: np.ndarray) -> np.ndarray:
    """The area's values at the image pixels ``where`` (boolean, ``shape``), scaled onto it."""
    r, c = np.nonzero(where)
    rr = ((r + 0.5) * area.shape[0] / shape[0]).astype(int)
    cc = ((c + 0.5) * area.shape[1] / shape[1]).astype(int)
    return area[np.clip(rr, 0, area.shape[0] - 1), np.clip(cc, 0, area.shape[1] - 1)]


# ------------------------------------------------------------------ MONOCHROME1

def test_monochrome1_polarity_in_an_roi_overlay_bone_stays_bright(tmp_path):
    """RG3_UNCR is a computed radiograph stored MONOCHROME1: its low values are where
    little radiation arrived (bone, under the shutter) and must be shown white. In
    the exposed field, the lowest quarter of the values (the tibia and fibula) must be
    much brighter in `hlc roi`'s overlay than the highest quarter (direct exposure)."""
    ds = dataset("RG3_UNCR.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = load_dicom_array(ds)
    proc = ok(hlc("roi", data_file("RG3_UNCR.dcm"), "-o", "overlay.png", cwd=tmp_path))
    assert "note" not in proc.stderr  # a well-formed file: nothing to warn about
    area = picture_area((tmp_path / "overlay.png").read_bytes())
    assert abs(area.shape[0] / area.shape[1] - raw.shape[0] / raw.shape[1]) < 0.03  # found the picture
    exposed = raw > 0
    q25, q75 = np.percentile(raw[exposed], [25, 75])
    bone = sample(area, raw.shape, exposed & (raw < q25)).mean()
    direct = sample(area, raw.shape, raw > q75).mean()
    assert bone > direct + 80, (bone, direct)
    # and the same from the display path itself, without the overlay's tints
    shown = viewer(raw, ds)(raw)
    assert shown[exposed & (raw < q25)].mean() > 150 > 40 > shown[raw > q75].mean()
    assert "MONOCHROME1 inverted" in viewer(raw, ds).caption


def test_monochrome1_is_the_inverse_of_the_same_image_stored_monochrome2():
    ds = dataset("RG3_UNCR.dcm")
    raw = load_dicom_array(ds)[::8, ::8]
    flipped = copy.deepcopy(ds)
    top = 2 ** int(ds.BitsStored) - 1
    flipped.PhotometricInterpretation = "MONOCHROME2"
    flipped.WindowCenter = top + 1 - float(ds.WindowCenter)  # the linear window mirrored
    shown = viewer(raw, ds)(raw).astype(int)
    mirrored = viewer(top - raw, flipped)(top - raw).astype(int)
    assert np.abs(shown - mirrored).max() <= 1


# ------------------------------------------------------------------ VOI

def test_the_first_window_pair_follows_the_standard_linear_function():
    """MR-SIEMENS carries two window pairs; the first is used, as pydicom's apply_windowing
    computes it (its output spans 0..2^BitsStored - 1 on this unsigned image)."""
    from pydicom.pixels import apply_windowing

    ds = dataset("MR-SIEMENS-DICOM-WithOverlays.dcm")
    raw = load_dicom_array(ds)
    view = viewer(raw, ds)
    expected = np.rint(apply_windowing(raw.astype(np.float64), ds, index=0) / (2 ** ds.BitsStored - 1) * 255)
    assert np.abs(view(raw).astype(int) - expected).max() <= 1
    assert "window C 450 / W 790 from the file (first of 2)" in view.caption and not view.notes


def test_window_end_points_of_ps33_c11212():
    ds = pydicom.Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = 100, 51
    x = np.array([74, 75, 99, 100, 124, 125], np.int16)  # edges at c - 0.5 -/+ (w - 1) / 2
    y = viewer(x, ds)(x)
    assert y[0] == 0 and 0 < y[1] < y[2] < 128 <= y[3] < y[4] < 255 and y[5] == 255
    ds.VOILUTFunction = "LINEAR_EXACT"
    assert viewer(x, ds)(np.array([75, 100, 125]))[1] == 128  # (x - c) / w + 0.5


def test_rescale_then_window_on_an_enhanced_ct_frame():
    """eCT_Supplemental keeps rescale and window in its functional groups."""
    ds = dataset("eCT_Supplemental.dcm")
    frame = load_dicom_array(ds)[0]
    view = viewer(frame, ds, frame=0)
    assert "rescale slope 1, intercept -1024" in view.caption and "window C 49 / W 102" in view.caption
    hu = frame.astype(float) - 1024
    shown = view(frame)
    assert shown[hu <= 49 - 51].max() == 0 and shown[hu >= 49 + 51].min() == 255


def test_voi_lut_sequence_is_used():
    from pydicom.pixels import apply_voi_lut

    ds = dataset("vlut_04.dcm")
    raw = load_dicom_array(ds)
    view = viewer(raw, ds)
    lut = apply_voi_lut(raw, ds).astype(float)
    expected = np.rint((lut - lut.min()) / (lut.max() - lut.min()) * 255)
    assert view.caption == "VOI LUT from the file"
    assert np.abs(view(raw).astype(int) - expected).max() <= 1


def test_no_window_in_the_file_gives_the_robust_window():
    ds = dataset("CT_small.dcm")
    raw = load_dicom_array(ds)
    assert "WindowWidth" not in ds
    view = viewer(raw, ds)
    assert "robust window" in view.caption and not view.notes
    shown = view(raw)
    assert (shown == 0).mean() <= 0.01 and (shown == 255).mean() <= 0.01


# ------------------------------------------------------------------ colour

def test_palette_colour_goes_through_its_lut():
    ds = dataset("OBXXXX1A.dcm")
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    index = load_dicom_array(ds)
    shown = viewer(index, ds)(index)
    assert shown.shape == index.shape + (3,) and shown.dtype == np.uint8
    first = int(ds.RedPaletteColorLookupTableDescriptor[1])
    for channel, colour in enumerate(("Red", "Green", "Blue")):
        table = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, "<u2").astype(float)
        expected = np.rint(table[index.astype(int) - first] / 65535 * 255)
        assert np.abs(shown[..., channel] - expected).max() <= 1, colour


def test_ybr_full_is_converted_to_rgb():
    ds = dataset("SC_ybr_full_uncompressed.dcm")
    stored = load_dicom_array(ds)  # YBR as stored
    shown = viewer(stored, ds)(stored)
    assert np.abs(shown.astype(int) - ds.pixel_array.astype(int)).max() <= 1  # pydicom converts by default


# ------------------------------------------------------------------ bad input

def _with_raw(ds, keyword: str, text: bytes):
    """``ds`` with an attribute holding bytes pydicom cannot parse (as a damaged file would)."""
    tag = Tag(keyword)
    ds[tag] = RawDataElement(tag, "DS", len(text), text, 0, False, True)
    return ds


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom on "NaN", as a reader would
@pytest.mark.parametrize("centre, width, words", [
    ("40", "0", "WindowWidth 0 is out of range"),
    ("40", "-5", "WindowWidth -5 is out of range"),
    ("40", "NaN", "WindowWidth 'NaN' is not a finite number"),
    ("40", b"abc ", "WindowWidth 'abc' is not a number"),
    (None, "400", "WindowCenter is missing"),
])
def test_a_nonsense_window_renders_with_a_note(centre, width, words):
    ds = dataset("CT_small.dcm")
    raw = load_dicom_array(ds)
    if centre is not None:
        ds.WindowCenter = centre
    if isinstance(width, bytes):
        _with_raw(ds, "WindowWidth", width)
    else:
        ds.WindowWidth = width
    view = viewer(raw, ds)
    shown = view(raw)
    assert shown.shape == raw.shape and shown.std() > 20  # a picture, not a flat field
    assert any(words in n for n in view.notes), view.notes
    assert "robust window" in view.caption


def test_a_palette_without_its_lut_data_renders_grey_with_a_note():
    ds = dataset("OBXXXX1A.dcm")
    index = load_dicom_array(ds)
    for colour in ("Red", "Green", "Blue"):
        del ds[f"{colour}PaletteColorLookupTableData"]
    view = viewer(index, ds)
    shown = view(index)
    assert shown.shape == index.shape and shown.dtype == np.uint8
    assert any("PALETTE COLOR without a usable colour table" in n for n in view.notes)


def test_an_image_of_one_value_renders_mid_grey_with_a_note():
    flat = np.full((32, 40), 1234, np.uint16)
    view = viewer(flat)
    assert np.all(view(flat) == 128)
    assert view.notes == ["the image has one value (1234): shown mid-grey"]


def _write(ds, path) -> str:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path.write_bytes(buf.getvalue())
    return str(path)


def test_the_commands_render_bad_files_with_a_note_and_no_traceback(tmp_path):
    bad_window = _with_raw(dataset("CT_small.dcm"), "WindowWidth", b"abc ")
    bad_window.WindowCenter = "40"
    _write(bad_window, tmp_path / "window.dcm")
    palette = dataset("OBXXXX1A.dcm")
    for colour in ("Red", "Green", "Blue"):
        del palette[f"{colour}PaletteColorLookupTableData"]
    _write(palette, tmp_path / "palette.dcm")
    np.save(tmp_path / "flat.npy", np.full((48, 48), 7, np.uint16))
    ok(hlc("encode", "flat.npy", "flat.hlc", cwd=tmp_path))
    for src, words in (("window.dcm", "WindowWidth 'abc'"),
                       ("palette.dcm", "without a usable colour table"), ("flat.hlc", "one value")):
        for args in (("decode", src, src + ".png", "--display"), ("roi", src, "-o", src + ".roi.png")):
            proc = ok(hlc(*args, cwd=tmp_path))
            assert words in proc.stderr and "note" in proc.stderr and "Traceback" not in proc.stderr, args
            assert (tmp_path / args[-1 if args[0] == "roi" else 2]).stat().st_size > 0


# ------------------------------------------------------------------ hlc decode --display

def test_decode_display_writes_what_a_viewer_shows_and_raw_stays_raw(tmp_path):
    import imagecodecs

    src = data_file("MR-SIEMENS-DICOM-WithOverlays.dcm")
    ds = pydicom.dcmread(src)
    raw = load_dicom_array(ds)
    ok(hlc("encode", src, "mr_hlc.dcm", cwd=tmp_path))
    ok(hlc("encode", src, "mr.hlc", cwd=tmp_path))
    ok(hlc("decode", "mr_hlc.dcm", "view.png", "--display", cwd=tmp_path))
    ok(hlc("decode", "mr_hlc.dcm", "raw.png", cwd=tmp_path))
    ok(hlc("decode", "mr.hlc", "bare.tif", "--display", cwd=tmp_path))
    shown = imagecodecs.png_decode((tmp_path / "view.png").read_bytes())
    assert shown.dtype == np.uint8 and np.array_equal(shown, viewer(raw, ds)(raw))  # the file's window
    assert np.array_equal(imagecodecs.png_decode((tmp_path / "raw.png").read_bytes()), raw)
    import tifffile

    assert np.array_equal(tifffile.imread(tmp_path / "bare.tif"), viewer(raw)(raw))  # no dataset: robust
    proc = hlc("decode", "mr.hlc", "view.dcm", "--display", cwd=tmp_path)
    assert proc.returncode == 2 and "--display writes a picture" in proc.stderr


def test_a_segmented_16_bit_palette_shows_in_colour_from_hlc_dicom(tmp_path):
    """gdcm-US-ALOKA-16: a 16-bit segmented palette. pydicom takes its byte order from the
    transfer syntax and knows none for HLC's (private): stored as HLC DICOM it was shown
    as grey indices with a note. The decoded view is the source's, in colour."""
    import imagecodecs

    src = data_file("gdcm-US-ALOKA-16.dcm")
    ok(hlc("encode", src, "us_hlc.dcm", cwd=tmp_path))
    ok(hlc("decode", "us_hlc.dcm", "view.png", "--display", cwd=tmp_path))
    ok(hlc("decode", src, "source.png", "--display", cwd=tmp_path))
    shown = imagecodecs.png_decode((tmp_path / "view.png").read_bytes())
    assert shown.ndim == 3 and shown.shape[-1] == 3
    assert np.array_equal(shown, imagecodecs.png_decode((tmp_path / "source.png").read_bytes()))
    import hybrid_plugins

    hybrid_plugins.register()  # (an editable install has no start-up hook)
    ds = pydicom.dcmread(tmp_path / "us_hlc.dcm")
    index = load_dicom_array(ds)
    uid = ds.file_meta.TransferSyntaxUID
    view = viewer(index, ds)
    assert not any("without a usable colour table" in n for n in view.notes), view.notes
    # the caller's dataset is left as it was (its file meta once took the view's syntax)
    assert ds.file_meta.TransferSyntaxUID == uid == hybrid_plugins.HLC_UID_STRING
