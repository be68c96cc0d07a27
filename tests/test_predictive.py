"""Predictive near-lossless plane coder (codec_core.predictive): error bound, exactness, robustness."""
from __future__ import annotations

import numpy as np
import pydicom
import pydicom.data
import pytest

from codec_core.errors import CorruptStreamError
from codec_core.predictive import decode_plane, decode_planes, encode_plane, encode_planes

KS = (0, 1, 2, 4, 7)


def _dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array


def _real_images():
    signed = _dicom("693_UNCR.dcm")[:192, :256]  # signed CT, cropped for time
    assert signed.dtype.kind == "i" and signed.min() < 0
    return {"MR_small": _dicom("MR_small.dcm"), "CT_small": _dicom("CT_small.dcm"), "693_crop": signed}


REAL = _real_images()


def _round_trip(a: np.ndarray, k: int, vmin: int | None = None, vmax: int | None = None):
    vmin = int(a.min()) if vmin is None else vmin
    vmax = int(a.max()) if vmax is None else vmax
    seg = encode_plane(a, k, vmin, vmax)
    assert isinstance(seg, bytes)
    rec = decode_plane(seg, a.shape[0], a.shape[1], k, vmin, vmax)
    assert rec.dtype == np.int32 and rec.shape == a.shape
    err = np.abs(rec.astype(np.int64) - a.astype(np.int64))
    assert int(err.max(initial=0)) <= k
    if k == 0:
        assert np.array_equal(rec, a)
    assert rec.min(initial=vmin) >= vmin and rec.max(initial=vmax) <= vmax
    return seg, rec


@pytest.mark.parametrize("name", sorted(REAL))
@pytest.mark.parametrize("k", KS)
def test_real_images_max_error(name, k):
    a = REAL[name]
    seg, _ = _round_trip(a, k)
    if k:  # coarser quantisation must not cost more
        assert len(seg) < len(encode_plane(a, 0, int(a.min()), int(a.max())))


@pytest.mark.parametrize("k", KS)
def test_sample_range_wider_than_data(k):
    a = REAL["CT_small"]
    _round_trip(a, k, -32768, 32767)
    _round_trip(a.astype(np.uint16), k, 0, 65535)


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (41, 1), (2, 2), (3, 200), (97, 5), (64, 65)])
@pytest.mark.parametrize("k", KS)
def test_random_and_tiny_shapes(shape, k):
    rng = np.random.default_rng(hash((shape, k)) & 0xFFFF)
    for lo, hi in ((0, 1), (0, 255), (-2048, 2047), (0, 65535), (-32768, 32767)):
        a = rng.integers(lo, hi + 1, size=shape).astype(np.int32)
        _round_trip(a, k, lo, hi)
    # smooth ramps with noise exercise the predictors and run mode
    y, x = np.mgrid[:shape[0], :shape[1]]
    a = (3 * x + 2 * y + rng.integers(-2, 3, size=shape)).astype(np.int32)
    _round_trip(a, k)


@pytest.mark.parametrize("k", KS)
def test_constant_and_extreme_images(k):
    for lo, hi in ((-32768, 32767), (0, 65535)):
        for v in (lo, hi, (lo + hi) // 2):
            a = np.full((33, 47), v, np.int32)
            seg, _ = _round_trip(a, k, lo, hi)
            assert len(seg) < 40  # one run token per row
        # alternating extremes: the largest residuals the range allows
        a = np.where((np.indices((31, 29)).sum(0) % 2) == 0, lo, hi).astype(np.int32)
        _round_trip(a, k, lo, hi)
        a = np.random.default_rng(k).choice([lo, hi, lo + 1, hi - 1], size=(40, 40)).astype(np.int32)
        _round_trip(a, k, lo, hi)


def test_input_dtypes_and_non_contiguous():
    a = REAL["MR_small"]
    for arr in (a.astype(np.uint16), a.astype(">i2"), a.astype(np.int64), np.asfortranarray(a), a[::2, ::3]):
        _round_trip(arr, 2)


def test_empty_planes():
    for shape in ((0, 5), (5, 0), (0, 0)):
        seg = encode_plane(np.zeros(shape, np.int32), 1, 0, 10)
        assert decode_plane(seg, shape[0], shape[1], 1, 0, 10).shape == shape


def test_bad_arguments_raise_value_error():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    with pytest.raises(ValueError):
        encode_plane(a, 0, 0, 5)  # samples outside [vmin, vmax]
    with pytest.raises(ValueError):
        encode_plane(a, -1, 0, 20)
    with pytest.raises(ValueError):
        encode_plane(a.ravel(), 0, 0, 20)


def test_deterministic():
    a = REAL["693_crop"]
    assert encode_plane(a, 2, -2000, 2500) == encode_plane(a.copy(), 2, -2000, 2500)


def _decode_or_corrupt(seg, shape, k, vmin, vmax):
    try:
        rec = decode_plane(seg, shape[0], shape[1], k, vmin, vmax)
    except CorruptStreamError:
        return None
    assert rec.shape == shape and rec.dtype == np.int32
    assert rec.min() >= vmin and rec.max() <= vmax
    return rec


def test_truncated_and_random_segments_raise_only_corrupt_stream_error():
    a = REAL["CT_small"]
    vmin, vmax = -32768, 32767
    rng = np.random.default_rng(7)
    for k in (0, 2):
        seg = encode_plane(a, k, vmin, vmax)
        cuts = sorted(set([0, 1, 2, 3, len(seg) - 1] + list(rng.integers(0, len(seg), 25))))
        for n in cuts:
            with pytest.raises(CorruptStreamError):
                decode_plane(seg[:n], *a.shape, k, vmin, vmax)
        with pytest.raises(CorruptStreamError):
            decode_plane(seg + b"\x00", *a.shape, k, vmin, vmax)
        for _ in range(40):  # flipped bytes: garbage or CorruptStreamError, nothing else
            b = bytearray(seg)
            for p in rng.integers(0, len(b), 3):
                b[p] ^= int(rng.integers(1, 256))
            _decode_or_corrupt(bytes(b), a.shape, k, vmin, vmax)
    for n in (0, 1, 5, 64, 4096):
        for _ in range(10):
            junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            for shape in ((1, 1), (17, 300), (128, 128)):
                _decode_or_corrupt(junk, shape, 4, 0, 4095)
    # a length field that never ends, and one far past the data
    for junk in (b"\xff" * 12, b"\xff\xff\xff\x7f" + b"\x00" * 10):
        with pytest.raises(CorruptStreamError):
            decode_plane(junk, 8, 8, 0, 0, 255)
    with pytest.raises(CorruptStreamError):
        decode_plane(12345, 8, 8, 0, 0, 255)


@pytest.mark.parametrize("k", (0, 3))
def test_extreme_sample_ranges(k):
    rng = np.random.default_rng(11)
    for lo in (-(1 << 31), (1 << 31) - 1 - (1 << 24), -(1 << 23)):
        hi = lo + (1 << 24)
        a = rng.integers(lo, hi + 1, size=(20, 30)).astype(np.int64)
        a[:5] = lo
        a[5:8] = hi
        _round_trip(a, k, lo, hi)


def test_bad_header_parameters_raise_corrupt_stream_error():
    seg = encode_plane(np.zeros((4, 4), np.int32), 0, 0, 1)
    for args in ((4, 4, -1, 0, 1), (4, 4, 0, 5, 1), (4, 4, 0, 0, 1 << 30), (-1, 4, 0, 0, 1)):
        with pytest.raises(CorruptStreamError):
            decode_plane(seg, *args)


@pytest.mark.parametrize("k", KS)
def test_colour_planes_max_error(k):
    rng = np.random.default_rng(k)
    g = REAL["MR_small"].astype(np.int32) >> 4  # 0..134
    planes = [np.clip(g + rng.integers(-3, 4, g.shape), 0, 255), g,
              np.clip(g + 20, 0, 255), rng.integers(0, 256, g.shape)]  # correlated and not
    for ref in (0, 1):
        segs = encode_planes(planes, k, 0, 255, ref=ref)
        recs = decode_planes(segs, *g.shape, k, 0, 255, ref=ref)
        for r, p in zip(recs, planes):
            assert r.dtype == np.int32 and int(np.abs(r - p).max()) <= k
            assert r.min() >= 0 and r.max() <= 255
    assert segs[0][:1] == b"\x01" and segs[3][:1] == b"\x00"  # difference used only where it pays
    bad = list(segs)
    for junk in (b"", b"\x02abc", b"\x01\x00"):
        bad[2] = junk
        with pytest.raises(CorruptStreamError):
            decode_planes(bad, *g.shape, k, 0, 255, ref=1)
