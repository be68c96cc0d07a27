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


@pytest.mark.parametrize("k", (0, 3, 1000, 65535))
def test_extreme_sample_ranges(k):
    """Spans of 2^24 (residuals up to +-2^24: the encoder's quantiser divides by the step
    with a multiply-high, exact for numerators below 2^27) and every k up to the largest."""
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
    # into the caller's padded planes (one buffer, as the decoder's colour tiles): the same
    # planes, each a view of its own plane of the buffer; a buffer of the wrong shape,
    # type or layout is refused
    recon = np.full((4, g.shape[0] + 2, g.shape[1] + 4), -7, np.int32)
    into = decode_planes(segs, *g.shape, k, 0, 255, ref=1, recon=recon)
    for c, (r, want) in enumerate(zip(into, decode_planes(segs, *g.shape, k, 0, 255, ref=1))):
        assert np.array_equal(r, want) and np.shares_memory(r, recon[c])
        assert np.array_equal(recon[c, 2:, 2:g.shape[1] + 2], want)
    aliased = np.lib.stride_tricks.as_strided(recon, strides=(0,) + recon.strides[1:])  # (one plane, four times)
    for wrong in (recon[:, 1:], recon.astype(np.int64), np.asfortranarray(recon), recon[:3], aliased, recon[0]):
        with pytest.raises(ValueError, match="recon"):
            decode_planes(segs, *g.shape, k, 0, 255, ref=1, recon=wrong)


# ------------------------------------------------------- masked (hybrid ROI) coding
from codec_core.predictive import decode_plane_masked, encode_plane_masked  # noqa: E402


def _masks(shape, seed):
    rng = np.random.default_rng(seed)
    r, c = shape
    y, x = np.mgrid[:r, :c]
    blobs = np.zeros(shape, bool)
    for _ in range(4):  # random discs
        cy, cx, rad = rng.integers(0, r), rng.integers(0, c), rng.integers(2, max(3, min(r, c) // 4))
        blobs |= (y - cy) ** 2 + (x - cx) ** 2 <= rad ** 2
    ellipse = ((y - (r - 1) / 2) / (0.36 * r)) ** 2 + ((x - (c - 1) / 2) / (0.36 * c)) ** 2 <= 1
    return {"blobs": blobs, "ellipse": ellipse, "scattered": rng.random(shape) < 0.05,
            "half": rng.random(shape) < 0.5, "all": np.ones(shape, bool), "none": np.zeros(shape, bool)}


def _lossy_base(a, seed):
    # a smooth, biased approximation of the image (stand-in for the 9/7 base layer)
    rng = np.random.default_rng(seed)
    b = a.astype(np.int64)
    b = (b + np.roll(b, 1, 0) + np.roll(b, 1, 1) + np.roll(b, (1, 1), (0, 1))) // 4
    return (b + rng.integers(-6, 7, a.shape) + 3).astype(np.int32)


def _masked_round_trip(a, mask, base, k, vmin, vmax):
    seg = encode_plane_masked(a, mask, base, k, vmin, vmax)
    assert isinstance(seg, bytes)
    rec = decode_plane_masked(seg, mask, base, k, vmin, vmax)
    assert rec.dtype == np.int32 and rec.shape == a.shape
    err = np.abs(rec.astype(np.int64) - a.astype(np.int64))[mask]
    assert int(err.max(initial=0)) <= k
    assert np.array_equal(rec[~mask], np.clip(base, vmin, vmax)[~mask])
    return seg, rec


@pytest.mark.parametrize("name", ["MR_small", "CT_small"])
@pytest.mark.parametrize("k", (0, 1, 3))
def test_masked_max_error_inside_base_outside(name, k):
    a = REAL[name]
    vmin, vmax = int(a.min()), int(a.max())
    base = _lossy_base(a, k)  # may exceed [vmin, vmax]: clipped on both sides
    sizes = {}
    for mname, m in _masks(a.shape, k).items():
        sizes[mname], _ = _masked_round_trip(a, m, base, k, vmin, vmax)
    assert len(sizes["none"]) < 8  # nothing coded
    assert len(sizes["scattered"]) < len(sizes["half"]) < len(sizes["all"])


def test_masked_samples_outside_mask_are_never_read():
    a = REAL["CT_small"].astype(np.int64)
    m = _masks(a.shape, 5)["blobs"]
    base = _lossy_base(a, 5)
    vmin, vmax = int(a[m].min()), int(a[m].max())
    junk = np.where(m, a, np.int64(1) << 40)  # out of range (and of int32) outside the mask
    seg = encode_plane_masked(junk, m, base, 1, vmin, vmax)
    assert seg == encode_plane_masked(np.where(m, a, -7), m, base, 1, vmin, vmax)
    rec = decode_plane_masked(seg, m, base, 1, vmin, vmax)
    assert int(np.abs(rec - a)[m].max()) <= 1


@pytest.mark.parametrize("k", (0, 3))
def test_masked_tiny_shapes_and_extremes(k):
    rng = np.random.default_rng(k + 40)
    for shape in ((1, 1), (1, 37), (41, 1), (2, 2), (3, 50), (0, 4), (4, 0)):
        for lo, hi in ((0, 1), (-32768, 32767)):
            a = rng.integers(lo, hi + 1, size=shape).astype(np.int32)
            base = rng.integers(lo - 5, hi + 6, size=shape).astype(np.int64)
            for m in (rng.random(shape) < 0.5, np.ones(shape, bool), np.zeros(shape, bool)):
                _masked_round_trip(a, m, base, k, lo, hi)
    # flat ROI pixels (runs) between masked-out columns
    a = np.full((9, 40), 100, np.int32)
    m = np.ones(a.shape, bool)
    m[:, 7::9] = False
    m[4] = False
    for v in (100, 3000):  # base equal to the ROI (runs across rows) or far from it
        seg, _ = _masked_round_trip(a, m, np.full(a.shape, v, np.int32), k, 0, 4095)
        assert len(seg) < (20 if v == 100 else 160)


def test_masked_plain_path_unchanged_and_bad_arguments():
    # the plain coder is the kernel with a 0 x 0 mask: streams fixed before the
    # masked variant existed (sha256 prefixes of encode_plane segments)
    import hashlib
    a = REAL["MR_small"]
    for k, digest in ((0, "7fc738b35e813c56"), (3, "92b4394d64bfdd4e")):
        seg = encode_plane(a, k, int(a.min()), int(a.max()))
        assert hashlib.sha256(seg).hexdigest()[:16] == digest
    m = np.ones(a.shape, bool)
    with pytest.raises(ValueError):
        encode_plane_masked(a, m[:, 1:], a, 0, 0, 4095)  # shape
    with pytest.raises(ValueError):
        encode_plane_masked(a, m.astype(np.uint8), a, 0, 0, 4095)  # not boolean
    with pytest.raises(ValueError):
        encode_plane_masked(a, m, a, 0, 0, 10)  # ROI samples outside [vmin, vmax]
    seg = encode_plane_masked(a, m, a, 0, 0, 4095)
    for args in ((m[1:], a[1:], 0, 0, 4095), (m, a.astype(float), 0, 0, 4095), (m, a, -1, 0, 4095)):
        with pytest.raises(CorruptStreamError):
            decode_plane_masked(seg, *args)


def _masked_decode_or_corrupt(seg, m, base, k, vmin, vmax):
    try:
        rec = decode_plane_masked(seg, m, base, k, vmin, vmax)
    except CorruptStreamError:
        return None
    assert rec.shape == m.shape and rec.dtype == np.int32
    assert rec.min(initial=vmin) >= vmin and rec.max(initial=vmax) <= vmax
    assert np.array_equal(rec[~m], np.clip(base, vmin, vmax)[~m])
    return rec


def test_masked_random_and_damaged_segments_raise_only_corrupt_stream_error():
    a = REAL["CT_small"]
    vmin, vmax = -32768, 32767
    rng = np.random.default_rng(9)
    masks = _masks(a.shape, 9)
    base = _lossy_base(a, 9)
    for k in (0, 2):
        m = masks["blobs"]
        seg = encode_plane_masked(a, m, base, k, vmin, vmax)
        for n in sorted(set([0, 1, 2, len(seg) - 1] + list(rng.integers(0, len(seg), 10)))):
            with pytest.raises(CorruptStreamError):
                decode_plane_masked(seg[:n], m, base, k, vmin, vmax)
        with pytest.raises(CorruptStreamError):
            decode_plane_masked(seg + b"\x00", m, base, k, vmin, vmax)
        for _ in range(20):
            b = bytearray(seg)
            for p in rng.integers(0, len(b), 3):
                b[p] ^= int(rng.integers(1, 256))
            _masked_decode_or_corrupt(bytes(b), m, base, k, vmin, vmax)
    for n in (0, 1, 5, 64, 4096):
        for _ in range(6):
            junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            for mname in ("scattered", "half", "all", "none"):
                _masked_decode_or_corrupt(junk, masks[mname], base, 4, 0, 4095)
    with pytest.raises(CorruptStreamError):
        decode_plane_masked(12345, masks["all"], base, 0, 0, 4095)


def _pinned_planes():
    """Crops of real images (CT, NM, MR, US) and planes at the ends of the sample range
    (values near +-2^31, the widest span): the blend's int32 arithmetic must not wrap."""
    out = []
    for name in ("693_UNCR.dcm", "JPEG2000_UNC.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "OBXXXX1A.dcm"):
        a = _dicom(name).astype(np.int64)
        out.append(np.ascontiguousarray(a[a.shape[0] // 3:a.shape[0] // 3 + 96, 40:200]))
    rng = np.random.default_rng(25)
    for lo in (-2**31, 2**31 - 1 - 2**24):
        smooth = np.cumsum(np.cumsum(rng.laplace(0, 3e3, (40, 70)), 0), 1)
        x = np.clip(smooth - smooth.min() + lo, lo, lo + 2**24)
        out.append(np.where(rng.random(x.shape) < 0.1, lo + 2**24 - x + lo, x).astype(np.int64))
    return out


def test_plane_bytes_and_damaged_decodes_are_pinned():
    """The predictive coder's bytes (k = 0, 2) and its output on damaged segments, as
    the coder of eae4ddc made them (a speed-up must keep both)."""
    import hashlib
    h = hashlib.sha256()
    rng = np.random.default_rng(26)
    for a in _pinned_planes():
        lo, hi = int(a.min()), int(a.max())
        for k in (0, 2):
            seg = encode_plane(a, k, lo, hi)
            h.update(seg)
            assert np.abs(decode_plane(seg, *a.shape, k, lo, hi) - a).max() <= k
            bad = bytearray(seg)
            for p in rng.integers(0, len(bad), 2):
                bad[p] ^= int(rng.integers(1, 256))
            try:
                h.update(np.ascontiguousarray(decode_plane(bytes(bad), *a.shape, k, lo, hi)).tobytes())
            except CorruptStreamError:
                h.update(b"error")
    assert h.hexdigest() == "eddaed0c54bc156f393c4108365a7efa5838da7bb9f84519b2d090ab13364ee4"


def test_decoder_reads_only_what_it_wrote(monkeypatch):
    """The decoder's reconstruction array is not zeroed (predictive._new_recon): filled
    with garbage instead, every plane (runs, regular samples, masked, colour, damaged)
    decodes to the same samples, or fails the same way."""
    from codec_core import predictive

    planes = [REAL["CT_small"], REAL["693_crop"], _dicom("OBXXXX1A.dcm")[200:330, 100:420],
              np.zeros((5, 7), np.int32), np.arange(3 * 11, dtype=np.int32).reshape(3, 11) % 4]
    rng = np.random.default_rng(30)
    cases = []
    for a in planes:
        lo, hi = int(a.min()), int(a.max())
        for k in (0, 2):
            seg = encode_plane(a, k, lo, hi)
            damaged = bytearray(seg)
            for p in rng.integers(0, len(seg), 3):
                damaged[p] ^= int(rng.integers(1, 256))
            cases += [(lambda s=seg, a=a, k=k, lo=lo, hi=hi: decode_plane(s, *a.shape, k, lo, hi)),
                      (lambda s=bytes(damaged), a=a, k=k, lo=lo, hi=hi: decode_plane(s, *a.shape, k, lo, hi))]
    a = REAL["CT_small"]
    base = _lossy_base(a, 9)
    for m in _masks(a.shape, 9).values():
        seg = encode_plane_masked(a, m, base, 2, -32768, 32767)
        cases.append(lambda s=seg, m=m: decode_plane_masked(s, m, base, 2, -32768, 32767))
    rgb = [REAL["MR_small"].astype(np.int32) + d for d in (0, 7, -3)]
    segs = encode_planes(rgb, 1, -10, 4000, ref=1)
    cases.append(lambda: np.stack(decode_planes(segs, *rgb[0].shape, 1, -10, 4000, ref=1)))

    def outcome(f):
        try:
            return np.array(f(), copy=True)
        except CorruptStreamError as e:
            return str(e)

    clean = [outcome(f) for f in cases]
    for fill in (0x7F7F7F7F, -2**31, 12345):
        monkeypatch.setattr(predictive, "_new_recon", lambda r, c, v=fill: np.full((r + 2, c + 4), v, np.int32))
        for f, want in zip(cases, clean, strict=True):
            got = outcome(f)
            assert type(got) is type(want)
            assert got == want if isinstance(want, str) else np.array_equal(got, want)
    monkeypatch.setattr(predictive, "_new_recon",
                        lambda r, c: rng.integers(-2**31, 2**31, (r + 2, c + 4), dtype=np.int64).astype(np.int32))
    for f, want in zip(cases, clean, strict=True):
        got = outcome(f)
        assert got == want if isinstance(want, str) else np.array_equal(got, want)



def test_a_segment_is_read_in_place_from_any_byte_buffer():
    """decode_plane reads a read-only segment's bytes where they are (a lossless plane's
    segment is ~0.4x its raw size; a copy of it lived beside the plane) and copies a
    writable or strided one: a read-only memoryview into a larger buffer, a bytearray, a
    writable view and a strided array give the samples bytes give, and a bytearray can
    be resized after its decode failed; an object that is not a buffer is a
    CorruptStreamError."""
    a = REAL["MR_small"]
    vmin, vmax = int(a.min()), int(a.max())
    seg = encode_plane(a, 0, vmin, vmax)
    want = decode_plane(seg, *a.shape, 0, vmin, vmax)
    framed = bytearray(b"\xff" * 7 + seg + b"\xee" * 5)
    strided = np.zeros(2 * len(seg), np.uint8)
    strided[::2] = np.frombuffer(seg, np.uint8)
    for buf in (memoryview(bytes(framed))[7:7 + len(seg)], memoryview(framed)[7:7 + len(seg)], bytearray(seg),
                strided[::2]):
        assert np.array_equal(decode_plane(buf, *a.shape, 0, vmin, vmax), want)
    cut = bytearray(seg[:len(seg) // 2])
    with pytest.raises(CorruptStreamError) as failed:
        decode_plane(cut, *a.shape, 0, vmin, vmax)
    cut.extend(b"\0")  # (read in place, the exception's frames would hold the buffer: BufferError)
    del failed
    with pytest.raises(CorruptStreamError):
        decode_plane(12345, *a.shape, 0, vmin, vmax)


# ------------------------------------------------------- decoding into a ring of rows
_OUT_TYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32)


def _into_by_plane(seg, shape, k, lo, hi, table, vmin, vmax, dtype):
    """The reference: the whole padded plane decoded, then finished (pipeline.finish_tile's
    steps in numpy: ranks to values, clip, cast)."""
    x = decode_plane(seg, *shape, k, lo, hi).astype(np.int64)
    if table is not None:
        x = table[np.clip(x, 0, len(table) - 1)].astype(np.int64)
    return np.clip(x, vmin, vmax).astype(dtype)


def test_decoding_into_out_from_a_ring_gives_the_plane_decoders_samples():
    """decode_plane_into (the decoder's path for a one-channel tile: three int32 rows
    instead of a padded plane) against the whole plane finished afterwards: random
    planes of 1-70 samples a side, lossless and near-lossless, with and without a
    value table, into every output type and into a tile's place in a larger image."""
    from codec_core.predictive import decode_plane_into

    rng = np.random.default_rng(35)
    for it in range(300):
        shape = (int(rng.integers(1, 71)), int(rng.integers(1, 71)))
        dtype = _OUT_TYPES[it % len(_OUT_TYPES)]
        info = np.iinfo(dtype)
        k = int(rng.choice([0, 0, 1, 2, 5]))
        table = None
        if it % 3 == 0:  # ranks of a value table
            table = np.unique(rng.integers(info.min, info.max, int(rng.integers(1, 60)), endpoint=True)).astype(np.int32)
            a = rng.integers(0, len(table), shape)
            lo, hi = 0, len(table) - 1
        else:
            span = int(rng.choice([1, 15, 255, min(int(info.max) - int(info.min), 1 << 24)]))
            base = int(rng.integers(info.min, int(info.max) - span, endpoint=True))
            a = base + np.cumsum(rng.integers(-3, 4, shape), axis=1) % (span + 1)
            lo, hi = int(a.min()), int(a.max())
        seg = encode_plane(a, k, lo, hi)
        vmin, vmax = (int(table.min()), int(table.max())) if table is not None else (lo, hi)
        want = _into_by_plane(seg, shape, k, lo, hi, table, vmin, vmax, dtype)
        image = np.full((shape[0] + 5, shape[1] + 7), 7, dtype)  # the tile's place: strided rows
        got = decode_plane_into(seg, k, lo, hi, image[2:2 + shape[0], 3:3 + shape[1]], table, (vmin, vmax))
        assert got.base is image or got.base is image.base or np.shares_memory(got, image)
        assert np.array_equal(image[2:2 + shape[0], 3:3 + shape[1]], want), (it, shape, dtype, k)
        outside = np.ones(image.shape, bool)
        outside[2:2 + shape[0], 3:3 + shape[1]] = False
        assert (image[outside] == 7).all(), it  # nothing written outside the tile


def test_decoding_into_out_raises_as_the_plane_decoder_on_damaged_segments():
    from codec_core.predictive import decode_plane_into

    a = REAL["CT_small"]
    rng = np.random.default_rng(8)
    for k in (0, 2):
        seg = encode_plane(a, k, -32768, 32767)
        for n in sorted(set([0, 1, 3, len(seg) - 1] + list(rng.integers(0, len(seg), 10)))):
            with pytest.raises(CorruptStreamError):
                decode_plane_into(seg[:n], k, -32768, 32767, np.zeros(a.shape, np.int16), None, (-32768, 32767))
        for _ in range(30):  # flipped bytes: the same samples as the plane decoder, or the same error
            b = bytearray(seg)
            for p in rng.integers(0, len(b), 3):
                b[p] ^= int(rng.integers(1, 256))
            try:
                want = _into_by_plane(bytes(b), a.shape, k, -32768, 32767, None, -32768, 32767, np.int16)
            except CorruptStreamError:
                with pytest.raises(CorruptStreamError):
                    decode_plane_into(bytes(b), k, -32768, 32767, np.zeros(a.shape, np.int16), None, (-32768, 32767))
                continue
            got = decode_plane_into(bytes(b), k, -32768, 32767, np.zeros(a.shape, np.int16), None, (-32768, 32767))
            assert np.array_equal(got, want)


def test_decoding_into_out_refuses_bad_outputs():
    from codec_core.predictive import decode_plane_into

    seg = encode_plane(np.arange(64).reshape(8, 8), 0, 0, 63)
    for out, lo, hi in ((np.zeros((8, 8), np.uint8), 0, 300),      # the type does not hold [lo, hi]
                        (np.zeros((8, 8), np.float32), 0, 63),     # not an integer type
                        (np.zeros((8, 16), np.uint8)[:, ::2], 0, 63),  # samples not contiguous in a row
                        (np.zeros((8, 8), np.uint8)[::-1], 0, 63),     # rows in reverse
                        (np.zeros(64, np.uint8), 0, 63)):          # not 2-D
        with pytest.raises((ValueError, CorruptStreamError)):
            decode_plane_into(seg, 0, 0, 63, out, None, (lo, hi))
    ro = np.zeros((8, 8), np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        decode_plane_into(seg, 0, 0, 63, ro, None, (0, 63))


def test_the_kernels_sink_argument_is_checked():
    """_predictive_kernels.code_plane's sink (rows, table, lo, hi) comes whole or not at all,
    only to a decoder of an unmasked plane into a ring, and never over an input, however
    its rows are strided (bad calls raise; none crashes or writes where it should not)."""
    from codec_core import entropy
    from codec_core import predictive as pr

    pk = pr._pk()
    seg = encode_plane(np.arange(64).reshape(8, 8), 0, 0, 63)
    freq, tot = pk.new_plane_models()

    def call(P, *sink, decoding=True, mask=pr._NO_MASK, base=pr._NO_BASE):
        dec = entropy._Decoder(seg)
        return pk.code_plane(decoding, pr._EMPTY_X, P, 0, 0, 63, pr._DUMMY_STATE.copy(), pr._EMPTY_OUT,
                             pr._EMPTY_OUT, dec.dt, dec.inp, dec.raw, freq.copy(), tot.copy(), pk.RECIP, mask,
                             base, *sink)

    ring, out = np.empty((3, 12), np.int32), np.zeros((8, 8), np.uint8)
    call(ring, (out, pr._NO_TABLE, 0, 63))
    assert np.array_equal(out, np.arange(64).reshape(8, 8))
    for bad in (out, (out,), (out, pr._NO_TABLE), (out, None, 0, 63)):  # not the whole tuple
        with pytest.raises((TypeError, ValueError)):
            call(ring, bad)
    with pytest.raises(ValueError):  # a whole padded plane, not a ring
        call(np.empty((10, 12), np.int32), (out, pr._NO_TABLE, 0, 63))
    with pytest.raises(ValueError):  # with a mask
        call(ring, (out, pr._NO_TABLE, 0, 63), mask=np.ones((8, 8), np.uint8), base=np.zeros((8, 8), np.int32))
    with pytest.raises(ValueError):  # to the encoder
        call(ring, (out, pr._NO_TABLE, 0, 63), decoding=False)
    buf = np.zeros((8, 64), np.int32)  # the ring inside the span of strided rows, beside the samples
    with pytest.raises(ValueError, match="overlap"):
        call(buf[2, 20:56].reshape(3, 12), (buf[:, :8], pr._NO_TABLE, 0, 63))
