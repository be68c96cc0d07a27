"""codec_core.cli.corpus: every corpus image loads as stored."""
from __future__ import annotations

import numpy as np
import pytest

import pydicom.data  # noqa: F401  (declared dependency: a missing one must fail, not skip)

from codec_core.cli import corpus  # noqa: E402

# name: (shape, dtype, bits_stored, signed, modality, axes)
EXPECTED = {
    "693_UNCR.dcm": ((512, 512), np.int16, 14, True, "CT", "YX"),
    "MR2_UNCR.dcm": ((1024, 1024), np.uint16, 12, False, "MR", "YX"),
    "MR-SIEMENS-DICOM-WithOverlays.dcm": ((484, 484), np.uint16, 12, False, "MR", "YX"),
    "RG1_UNCR.dcm": ((1955, 1841), np.uint16, 15, False, "CR", "YX"),
    "RG3_UNCR.dcm": ((1760, 1760), np.uint16, 10, False, "CR", "YX"),
    "JPEG2000_UNC.dcm": ((1024, 256), np.int16, 16, True, "NM", "YX"),
    "US1_UNCR.dcm": ((480, 640, 3), np.uint8, 8, False, "US", "YXC"),
    "OBXXXX1A.dcm": ((600, 800), np.uint8, 8, False, "US", "YX"),
    "eCT_Supplemental.dcm": ((2, 512, 512), np.uint16, 16, False, "CT", "ZYX"),
    "emri_small.dcm": ((10, 64, 64), np.uint16, 12, False, "MR", "ZYX"),
    "liver.dcm": ((3, 512, 512), np.uint8, 1, False, "SEG", "ZYX"),
    "JPGLosslessP14SV1_1s_1f_8b.dcm": ((768, 1024), np.uint8, 8, False, "US", "YX"),
}


def test_corpus_names_are_the_design_list():
    assert set(corpus.CORPUS) == set(EXPECTED)
    assert len(corpus.CORPUS) == len(set(corpus.CORPUS))
    assert set(corpus.BENCH_CORPUS) <= set(corpus.CORPUS)
    assert "liver.dcm" not in corpus.BENCH_CORPUS
    assert set(corpus.QUICK_CORPUS) <= set(corpus.BENCH_CORPUS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_image(name):
    shape, dtype, bits, signed, modality, axes = EXPECTED[name]
    (im,) = corpus.load_corpus([name])
    a = im.array
    assert im.name == name
    assert a.shape == shape
    assert a.dtype == np.dtype(dtype)
    assert a.dtype.isnative and a.flags.c_contiguous and a.flags.writeable
    assert im.bits_stored == bits
    assert im.signed == signed == (a.dtype.kind == "i")
    assert im.modality == modality
    assert im.axes == axes
    # values fit the declared bits stored
    if signed:
        assert a.min() >= -(2 ** (bits - 1)) and a.max() <= 2 ** (bits - 1) - 1
    else:
        assert a.min() >= 0 and a.max() <= 2**bits - 1
    assert a.max() > a.min()  # not a blank image
    assert im.raw_bytes == a.nbytes
    assert im.pixels * (3 if axes.endswith("C") else 1) == a.size


def test_signed_ct_keeps_negative_values():
    (im,) = corpus.load_corpus(["693_UNCR.dcm"])
    assert im.array.min() < 0


def test_palette_is_index_values():
    (im,) = corpus.load_corpus(["OBXXXX1A.dcm"])
    assert im.photometric == "PALETTE COLOR"
    assert im.array.ndim == 2  # no LUT applied


def test_load_dicom_array_accepts_path_and_dataset():
    import pydicom

    path = corpus.corpus_path("MR2_UNCR.dcm")
    a = corpus.load_dicom_array(path)
    b = corpus.load_dicom_array(pydicom.dcmread(path))
    assert np.array_equal(a, b)


def test_exact_names_only():
    with pytest.raises(ValueError):
        corpus.corpus_path("*.dcm")
    with pytest.raises(FileNotFoundError):
        corpus.corpus_path("no_such_file_hlc.dcm")
