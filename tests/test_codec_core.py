"""codec_core: each mode keeps its promise on real DICOM images and on random arrays."""
from __future__ import annotations

import math

import numpy as np
import pydicom
import pydicom.data
import pytest
from blocked_imports import BLOCK_MODELS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codec_core as hlc


def dicom(name: str) -> np.ndarray:
    # Always an exact name: get_testdata_files() without one goes to the network.
    return pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    peak = float(a.max() - a.min())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


REAL = ["CT_small.dcm", "MR_small.dcm", "693_UNCR.dcm", "JPEG2000_UNC.dcm", "emri_small.dcm"]


@pytest.fixture(scope="module", params=REAL)
def real_image(request) -> np.ndarray:
    return dicom(request.param)


# ------------------------------------------------------------------ lossless

def test_lossless_is_bit_exact_on_real_images(real_image):
    data = hlc.encode(real_image, mode="lossless")
    out = hlc.decode(data)
    assert out.dtype == real_image.dtype and out.shape == real_image.shape
    assert np.array_equal(out, real_image)
    assert len(data) < real_image.nbytes  # real images compress


def test_lossless_colour_image_is_bit_exact():
    rgb = dicom("US1_UNCR.dcm")[100:260, 200:390]
    assert rgb.shape[-1] == 3
    out = hlc.decode(hlc.encode(rgb))
    assert np.array_equal(out, rgb)


def test_lossless_colour_stack_axes_zyxc():
    rgb = dicom("US1_UNCR.dcm")[:40, :50]
    stack = np.stack([rgb, rgb[::-1], rgb[:, ::-1]])
    data = hlc.encode(stack)
    assert hlc.info(data)["axes"] == "ZYXC"
    assert np.array_equal(hlc.decode(data), stack)
    assert np.array_equal(hlc.decode(data, frame=1), stack[1])


def test_multi_tile_image_round_trips_and_reports_tiles():
    img = dicom("MR2_UNCR.dcm")[:700, :600]
    data = hlc.encode(img, tile_size=256)
    assert hlc.info(data)["tiles"] == 3 * 3
    assert np.array_equal(hlc.decode(data), img)


def test_big_endian_and_non_contiguous_inputs_encode_correctly():
    img = dicom("CT_small.dcm")
    be = img.astype(img.dtype.newbyteorder(">"))
    assert np.array_equal(hlc.decode(hlc.encode(be)), img)
    view = img[::2, 1::3]
    assert np.array_equal(hlc.decode(hlc.encode(view)), view)


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "<i2", ">i2"])
@pytest.mark.parametrize("mode, kw", [("lossless", {}), ("near-lossless", {"max_error": 2}),
                                      ("lossy", {"bpp": 1.0}), ("lossy", {"roi": "mask"})])
def test_big_endian_input_codes_as_the_native_array_in_every_mode(dtype, mode, kw):
    """A big-endian array is coded as its values in the machine's order: the same stream
    in every mode (lossy's near-lossless trials and the hybrid's fill read native
    samples; they raised internal errors on '>u2' before)."""
    rng = np.random.default_rng(0)
    native = (rng.integers(0, 4096, (64, 64)) - (2048 if "i" in dtype else 0)).astype(dtype[1:])
    if kw.get("roi") == "mask":
        mask = np.zeros(native.shape, bool)
        mask[20:40, 20:40] = True
        kw = dict(kw, roi=mask)
    arr = native.astype(dtype)
    assert arr.dtype.byteorder in "=<>|" and np.array_equal(arr, native)
    assert hlc.encode(arr, mode, **kw) == hlc.encode(native, mode, **kw)


_DTYPES = [np.uint8, np.int8, np.uint16, np.int16]


@st.composite
def images(draw):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    bits = draw(st.integers(1, 8 * dtype.itemsize))
    if dtype.kind == "i":
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    kind = draw(st.sampled_from(["2d", "colour", "frames", "1d"]))
    rows = draw(st.integers(1, 40))
    cols = draw(st.integers(1, 40))
    shape = {"2d": (rows, cols), "colour": (rows, cols, 3), "frames": (draw(st.integers(2, 3)), rows, cols),
             "1d": (cols,)}[kind]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    style = draw(st.sampled_from(["noise", "smooth", "constant", "extremes"]))
    if style == "noise":
        a = rng.integers(lo, hi + 1, size=shape)
    elif style == "smooth":
        a = np.cumsum(rng.integers(-2, 3, size=shape), axis=-1) + (lo + hi) // 2
    elif style == "constant":
        a = np.full(shape, rng.integers(lo, hi + 1))
    else:
        a = rng.choice([lo, hi], size=shape)
    return np.clip(a, lo, hi).astype(dtype), bits


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images())
def test_property_lossless_bit_exact_any_dtype_bits_shape(case):
    arr, bits = case
    data = hlc.encode(arr, mode="lossless", bits_stored=bits)
    out = hlc.decode(data)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert np.array_equal(out, arr)
    assert hlc.info(data)["bits_stored"] == bits


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images(), st.sampled_from([1, 2, 3, 4, 7, 100]))
def test_property_near_lossless_error_within_k(case, k):
    arr, bits = case
    out = hlc.decode(hlc.encode(arr, mode="near-lossless", max_error=k, bits_stored=bits))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert int(np.abs(out.astype(np.int64) - arr.astype(np.int64)).max()) <= k


# ------------------------------------------------------------- near-lossless

@pytest.mark.parametrize("k", [1, 2, 4])
def test_near_lossless_bound_holds_on_real_image_and_saves_bits(real_image, k):
    data = hlc.encode(real_image, mode="near-lossless", max_error=k)
    out = hlc.decode(data)
    assert int(np.abs(out.astype(np.int64) - real_image).max()) <= k
    assert len(data) < len(hlc.encode(real_image, mode="lossless"))
    assert hlc.info(data)["max_error"] == k


# --------------------------------------------------------------------- lossy

@pytest.mark.parametrize("bpp", [0.25, 0.5, 1.0])
def test_lossy_rate_control_hits_bpp_within_3_percent(bpp):
    img = dicom("MR2_UNCR.dcm")[:512, :512]
    data = hlc.encode(img, mode="lossy", bpp=bpp)
    achieved = 8 * len(data) / img.size
    assert abs(achieved - bpp) <= 0.03 * bpp, achieved


@pytest.mark.parametrize("target", [40.0, 45.0, 50.0])
def test_lossy_psnr_target_is_met(target):
    img = dicom("CT_small.dcm")
    out = hlc.decode(hlc.encode(img, mode="lossy", psnr=target))
    got = psnr(img, out)
    assert target <= got <= target + 1.5, got


def test_lossy_quality_increases_with_rate():
    img = dicom("MR_small.dcm")
    p = [psnr(img, hlc.decode(hlc.encode(img, mode="lossy", bpp=r))) for r in (0.25, 0.5, 1.0, 2.0)]
    assert p == sorted(p)


def test_lossy_signed_image_keeps_dtype_and_range():
    img = dicom("693_UNCR.dcm")
    out = hlc.decode(hlc.encode(img, mode="lossy", bpp=0.5))
    assert out.dtype == np.int16
    assert out.min() >= img.min() and out.max() <= img.max()
    assert psnr(img, out) > 35


def test_lossy_colour_goes_through_the_colour_transform(monkeypatch):
    # grey stored as RGB: after the RCT both chroma planes are zero and nearly free,
    # so the colour file is about the size of the grey one (coded as three separate
    # channels it would be ~3x), at the same quality (9/7 path only)
    grey = dicom("US1_UNCR.dcm")[..., 1]
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    g = hlc.encode(grey, mode="lossy", psnr=38, try_near_lossless=False)
    c = hlc.encode(rgb, mode="lossy", psnr=38, try_near_lossless=False)
    assert len(c) < 1.2 * len(g)
    assert psnr(rgb, hlc.decode(c)) >= 38
    h = hlc.info(c)
    assert h["colour_transform"] and h["version"] >= 2


@pytest.mark.parametrize("target", [dict(bpp=0.5), dict(psnr=50.0)])
def test_lossy_takes_the_near_lossless_coder_where_it_beats_the_wavelet(target):
    # a CT pair with 147 distinct values and 61% zero padding: the predictive coder
    # at max error k beats the 9/7 by several dB at the same size
    img = dicom("eCT_Supplemental.dcm")
    data = hlc.encode(img, mode="lossy", **target)
    wavelet = hlc.encode(img, mode="lossy", try_near_lossless=False, **target)
    meta, out = hlc.info(data), hlc.decode(data)
    assert meta["mode"] == "near-lossless" and meta["lossy"] and hlc.info(wavelet)["mode"] == "lossy"
    assert np.abs(out.astype(np.int32) - img).max() <= meta["max_error"]
    if "bpp" in target:
        assert 8 * len(data) / img.size <= target["bpp"]
        assert psnr(img, out) > psnr(img, hlc.decode(wavelet)) + 3
    else:
        assert psnr(img, out) >= target["psnr"] and len(data) < len(wavelet)


def test_lossy_keeps_the_wavelet_where_it_is_better():
    img = dicom("MR2_UNCR.dcm")[:512, :512]
    for kw in (dict(bpp=0.5), dict(psnr=40.0)):
        assert hlc.info(hlc.encode(img, mode="lossy", **kw))["transform"] == "9/7"


def test_lossy_colour_chroma_steps_follow_the_rct_energy():
    from codec_core import container, quantize
    img = dicom("US1_UNCR.dcm")
    hdr, _ = container.parse_header(hlc.encode(img, mode="lossy", bpp=1.0))
    assert hdr.colour == 1
    assert hdr.channel_mult == pytest.approx([1.0, math.sqrt(48 / 11), math.sqrt(48 / 11)], rel=1e-6)
    assert quantize.channel_steps(hdr.steps, hdr.channel_mult, 2)[0] == pytest.approx(
        hdr.steps[0] * math.sqrt(48 / 11), rel=1e-6)


# ------------------------------------------------------------- hybrid ROI

@pytest.mark.parametrize("e", [0, 1, 3])
def test_roi_samples_within_roi_max_error_for_random_masks(e):
    img = dicom("MR_small.dcm")
    rng = np.random.default_rng(e)
    mask = np.zeros(img.shape, bool)
    for _ in range(4):
        y, x = rng.integers(0, img.shape[0] - 10), rng.integers(0, img.shape[1] - 10)
        mask[y:y + rng.integers(1, 20), x:x + rng.integers(1, 20)] = True
    mask |= rng.random(img.shape) < 0.01
    data = hlc.encode(img, mode="lossy", bpp=0.5, roi=mask, roi_max_error=e)
    out = hlc.decode(data)
    err = np.abs(out.astype(np.int64) - img)
    assert int(err[mask].max()) <= e
    assert int(err.max()) > e  # the background really is lossy
    info = hlc.info(data)
    assert info["roi"] and 0 < info["roi_fraction"] < 1 and info["roi_max_error"] == e


@pytest.mark.parametrize("fill", [True, False])
def test_roi_all_true_and_all_false_masks_work(fill):
    img = dicom("CT_small.dcm")
    mask = np.full(img.shape, fill)
    data = hlc.encode(img, mode="lossy", psnr=40, roi=mask, roi_max_error=0,
                      whole_image_if_smaller=False)  # the hybrid layers themselves
    meta = hlc.info(data)
    assert meta["regions"] is not None  # a region stream either way (the hybrid layers)
    assert meta["roi"] == fill and meta["roi_fraction"] == float(fill)  # an empty ROI keeps none
    out = hlc.decode(data)
    if fill:
        assert np.array_equal(out, img)
    assert psnr(img, out) >= 40


def test_hybrid_keeps_the_whole_image_within_the_error_when_that_is_smaller():
    img = dicom("CT_small.dcm")
    everything = np.ones(img.shape, bool)  # an ROI of the whole image: its layers cost more than lossless
    data = hlc.encode(img, mode="lossy", psnr=40, roi=everything, roi_max_error=0)
    assert hlc.info(data)["mode"] == "lossless" and not hlc.info(data)["roi"]
    assert data == hlc.encode(img, mode="lossless")
    assert np.array_equal(hlc.decode(data), img)
    near = hlc.encode(img, mode="lossy", bpp=4.0, roi=everything, roi_max_error=2)
    assert hlc.info(near)["mode"] == "near-lossless" and hlc.info(near)["max_error"] == 2
    assert np.abs(hlc.decode(near).astype(np.int64) - img).max() <= 2
    # a PSNR target above what errors of +-e guarantee: the whole image is kept only if
    # it measures up (here it does: its errors are mostly below e)
    peak = float(img.max()) - float(img.min())
    strict = 20 * np.log10(peak / 2) + 1
    kept = hlc.encode(img, mode="lossy", psnr=strict, roi=everything, roi_max_error=2)
    assert hlc.info(kept)["roi"] or psnr(img, hlc.decode(kept)) >= strict
    # a small ROI on a real image: the hybrid is the smaller file and is kept
    small = np.zeros(img.shape, bool)
    small[40:80, 40:80] = True
    hybrid = hlc.encode(img, mode="lossy", psnr=40, roi=small, roi_max_error=0)
    assert hlc.info(hybrid)["roi"] and len(hybrid) < len(hlc.encode(img, mode="lossless"))


def test_roi_mask_shape_mismatch_names_both_shapes():
    img = dicom("CT_small.dcm")
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(128, 128\)"):
        hlc.encode(img, mode="lossy", bpp=1, roi=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="boolean"):
        hlc.encode(img, mode="lossy", bpp=1, roi=np.ones(img.shape, np.float32))
    with pytest.raises(ValueError, match="roi label image holds the label 7"):
        hlc.encode(img, mode="lossy", bpp=1, roi=np.full(img.shape, 7, np.uint8))


def test_roi_on_multi_frame_stack_with_2d_mask_broadcasts():
    stack = dicom("emri_small.dcm")[:3]
    mask = np.zeros(stack.shape[1:], bool)
    mask[20:40, 10:30] = True
    out = hlc.decode(hlc.encode(stack, mode="lossy", bpp=0.5, roi=mask, roi_max_error=0))
    assert np.array_equal(out[:, mask], stack[:, mask])


# ------------------------------------------------------- resolution, frames

def _block_means(img: np.ndarray, k: int) -> np.ndarray:
    """The reference thumbnail: the mean of each 2^k x 2^k block (edge blocks padded)."""
    s = 1 << k
    rows, cols = -(-img.shape[0] // s), -(-img.shape[1] // s)
    padded = np.pad(img.astype(float), ((0, rows * s - img.shape[0]), (0, cols * s - img.shape[1])), mode="edge")
    return padded.reshape(rows, s, cols, s).mean(axis=(1, 3))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


# 693: CT with -2000 padding, coded predictively as ranks of a value table; MR2 and
# MR-SIEMENS: wavelet-coded MR (sharp edges); RG3: a computed radiograph.
@pytest.mark.parametrize("name", ["693_UNCR.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
                                  "RG3_UNCR.dcm"])
@pytest.mark.parametrize("mode", ["lossless", "lossy"])
def test_decode_level_is_a_faithful_thumbnail_never_worse_than_decimation(name, mode):
    img = dicom(name)
    data = hlc.encode(img, mode=mode, **({"psnr": 50.0} if mode == "lossy" else {}))
    for k in (1, 2, 3):
        low = hlc.decode(data, level=k)
        ref = _block_means(img, k)
        assert low.shape == ref.shape and low.dtype == img.dtype
        corr, decimated = _corr(low, ref), _corr(img[::1 << k, ::1 << k], ref)
        assert corr >= 0.95 and corr >= decimated, (k, corr, decimated)
        assert img.min() <= low.min() and low.max() <= img.max()


def test_decode_single_frame_of_a_stack():
    stack = dicom("emri_small.dcm")
    data = hlc.encode(stack)
    assert np.array_equal(hlc.decode(data, frame=4), stack[4])
    assert hlc.info(data)["frames"] == stack.shape[0]
    assert len(hlc.info(data)["frame_sizes"]) == stack.shape[0]


def test_info_reports_header_fields_without_decoding():
    img = dicom("CT_small.dcm")
    meta = hlc.info(hlc.encode(img, mode="near-lossless", max_error=2, bits_stored=16))
    assert meta["shape"] == img.shape and meta["dtype"] == "int16"
    assert meta["mode"] == "near-lossless" and meta["max_error"] == 2
    assert meta["bits_stored"] == 16 and meta["version"] == hlc.VERSION
    assert meta["ecc"] is None and meta["roi_fraction"] == 0.0


def test_encoding_is_deterministic_and_thread_count_independent():
    img = dicom("MR2_UNCR.dcm")[:600, :600]
    a = hlc.encode(img, mode="lossy", bpp=0.5, tile_size=256, threads=1)
    b = hlc.encode(img, mode="lossy", bpp=0.5, tile_size=256, threads=2)
    assert a == b
    assert np.array_equal(hlc.decode(a, threads=1), hlc.decode(a, threads=2))


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("arr, match", [
    (np.zeros((4, 4), np.float32), "unsupported dtype float32"),
    (np.zeros((4, 4), bool), "unsupported dtype bool"),
    (np.zeros((4, 4), np.int32), "unsupported dtype int32"),
    (np.zeros((0, 4), np.uint8), "empty"),
    (np.zeros((2, 2, 2, 2, 2), np.uint8), "unsupported shape"),
])
def test_unsupported_arrays_raise_value_error_saying_what_is_allowed(arr, match):
    with pytest.raises(ValueError, match=match):
        hlc.encode(arr)


@pytest.mark.parametrize("kwargs, match", [
    (dict(mode="fast"), "mode"),
    (dict(bits_stored=17), "bits_stored"),
    (dict(bits_stored=4), "do not fit bits_stored=4"),
    (dict(mode="near-lossless"), "max_error"),
    (dict(mode="near-lossless", max_error=-1), "max_error"),
    (dict(mode="lossy"), "exactly one target"),
    (dict(mode="lossy", bpp=0.5, psnr=40), "exactly one target"),
    (dict(mode="lossy", bpp=-1), "bpp"),
    (dict(mode="lossless", bpp=1), "bpp"),
    (dict(mode="lossless", max_error=2), "max_error"),
    (dict(ecc="extreme"), "ecc"),
    (dict(axes="XYZ"), "axes"),
    (dict(mode="lossless", roi="auto"), "roi"),
    (dict(mode="lossy", bpp=1, roi="everything"), "roi"),
    (dict(preprocess="denoise"), "denoise"),
])
def test_bad_parameters_raise_value_error_naming_the_parameter(kwargs, match):
    img = (np.arange(64 * 64) % 200).reshape(64, 64).astype(np.uint8)
    img[0, 0] = 255
    with pytest.raises(ValueError, match=match):
        hlc.encode(img, **kwargs)


def test_decode_bad_level_and_frame_are_value_errors():
    data = hlc.encode(dicom("emri_small.dcm"))
    with pytest.raises(ValueError, match="level"):
        hlc.decode(data, level=20)
    with pytest.raises(ValueError, match="frame"):
        hlc.decode(data, frame=99)


def test_truncated_and_bit_flipped_streams_raise_only_hlc_error_or_decode_exactly():
    img = dicom("CT_small.dcm")
    data = hlc.encode(img)
    rng = np.random.default_rng(1)
    for n in list(range(0, 64)) + list(rng.integers(64, len(data), 40)):
        with pytest.raises(hlc.HlcError):
            hlc.decode(data[:n])
    for pos in rng.integers(0, len(data), 200):
        for bit in (0, 5):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            try:
                out = hlc.decode(bytes(bad))
            except hlc.HlcError:
                continue
            # only damage the codec can undo is allowed through: a header byte
            # (read from its copy at the end) or a byte of that copy
            assert np.array_equal(out, img), f"byte {pos} damaged, wrong image returned"


@pytest.mark.parametrize("kwargs", [dict(mode="lossless"), dict(mode="lossy", bpp=0.25)])
def test_segment_index_is_a_length_varint_and_a_crc_unless_empty(kwargs):
    from codec_core import container
    img = dicom("emri_small.dcm")  # 10 frames of 64 x 64: dozens of tiny segments
    data = hlc.encode(img, **kwargs)
    h, start = container.parse_header(data)
    index = container.varint(len(h.segments)) + b"".join(
        container.varint(n) + (crc.to_bytes(4, "little") if n else b"") for n, crc in h.segments)
    assert h.version == 3 and data[:start - 4].endswith(index)  # the index ends the header body
    assert hlc.decode(data).shape == img.shape


def test_all_zero_detail_levels_are_coded_as_empty_segments():
    from codec_core import container
    img = np.full((3, 64, 64), 300, np.uint16)
    img[1] = 500  # flat frames: nothing but the LL band to code
    data = hlc.encode(img, mode="lossy", bpp=0.5, try_near_lossless=False)  # the 9/7 path itself
    h, _ = container.parse_header(data)
    assert hlc.info(data)["transform"] == "9/7"
    assert sum(1 for n, _ in h.segments if n == 0) == 3 * h.levels
    assert np.array_equal(hlc.decode(data), img)


@pytest.mark.parametrize("mode, mult", [("lossless", [1.0, 2.0, 2.0]), ("lossy", [1.0, 2.0]),
                                        ("lossy", [1.0, float("nan"), 2.0])])
def test_forged_channel_step_multipliers_are_refused(mode, mult):
    from codec_core import container
    img = dicom("US1_UNCR.dcm")[:64, :64]
    data = hlc.encode(img, mode=mode, **({"bpp": 1.0} if mode == "lossy" else {}))
    h, start = container.parse_header(data)
    offsets = container.segment_offsets(h, start)
    segs = [data[offsets[i]:offsets[i + 1]] for i in range(len(h.segments))]
    h.channel_mult = mult
    with pytest.raises(hlc.CorruptStreamError, match="multiplier"):
        hlc.decode(container.pack(h, segs))


def test_not_hlc_bytes_and_text_mode_damage_are_named():
    with pytest.raises(hlc.NotHlcError):
        hlc.decode(b"GIF89a....")
    data = hlc.encode(np.zeros((8, 8), np.uint8))
    mangled = data.replace(b"\r\n", b"\n", 1)
    with pytest.raises(hlc.HlcError, match="signature"):
        hlc.decode(mangled)


def test_decompression_bomb_is_refused_before_allocation():
    data = hlc.encode(np.zeros((64, 64), np.uint8))
    with pytest.raises(hlc.DecompressionBombError):
        hlc.decode(data, max_pixels=1000)
    assert hlc.decode(data, max_pixels=None).shape == (64, 64)


def test_a_damaged_header_is_read_from_its_copy_at_the_end():
    img = dicom("MR_small.dcm")
    data = hlc.encode(img)
    for pos in (0, 3, 8, 9, 12, 20, 40):
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        assert np.array_equal(hlc.decode(bytes(bad)), img)
        out, report = hlc.decode(bytes(bad), strict=False)
        assert np.array_equal(out, img) and report["exact"] and report["repaired"]


def test_one_trailing_pad_byte_is_accepted():
    img = dicom("CT_small.dcm")
    assert np.array_equal(hlc.decode(hlc.encode(img) + b"\x00"), img)


def test_damaged_tile_is_concealed_in_non_strict_mode_and_named_in_strict():
    img = dicom("MR2_UNCR.dcm")[:512, :512]
    data = bytearray(hlc.encode(img, tile_size=256))
    data[len(data) // 2] ^= 0xFF  # lands inside one tile's segment
    with pytest.raises(hlc.CorruptStreamError, match=r"frame 0 tile \d"):
        hlc.decode(bytes(data))
    out, report = hlc.decode(bytes(data), strict=False)
    assert out.shape == img.shape and not report["exact"]
    assert len(report["concealed"]) == 1
    tiles_equal = [np.array_equal(out[y:y + 256, x:x + 256], img[y:y + 256, x:x + 256])
                   for y in (0, 256) for x in (0, 256)]
    assert sum(tiles_equal) == 3  # exactly one tile lost, the rest exact


def test_info_on_a_protected_stream_reads_the_header_without_repairing(monkeypatch):
    from codec_core import ecc
    img = dicom("CT_small.dcm")
    data = hlc.encode(img, ecc="medium")

    def no_repair(*args, **kwargs):
        raise AssertionError("info() must not run the Reed-Solomon decoder on a clean stream")

    monkeypatch.setattr(ecc, "unprotect", no_repair)
    meta = hlc.info(data)
    assert meta["ecc"] == "medium" and 0 < meta["ecc_overhead"] < 0.13
    assert meta["shape"] == img.shape and meta["complete"]


def test_levels_parameter_sets_the_wavelet_depth_and_thumbnail_reach():
    img = dicom("MR2_UNCR.dcm")[:512, :512]
    assert hlc.info(hlc.encode(img))["levels"] == 5
    assert hlc.info(hlc.encode(img, mode="lossy", bpp=0.5))["levels"] == 3
    data = hlc.encode(img, mode="lossy", bpp=0.5, levels=5)
    assert hlc.decode(data, level=5).shape == (16, 16)
    with pytest.raises(ValueError, match="levels"):
        hlc.encode(img, levels=9)


def test_decoding_needs_neither_onnxruntime_nor_scikit_learn(tmp_path):
    import subprocess
    import sys
    img = dicom("CT_small.dcm")
    mask = np.zeros(img.shape, bool)
    mask[20:80, 30:90] = True
    (tmp_path / "hybrid.hlc").write_bytes(hlc.encode(img, mode="lossy", bpp=1.0, roi=mask))
    np.save(tmp_path / "expected.npy", hlc.decode((tmp_path / "hybrid.hlc").read_bytes()))
    script = BLOCK_MODELS + f"""
import numpy as np, codec_core as hlc
out = hlc.decode(open({str(tmp_path / 'hybrid.hlc')!r}, 'rb').read())
assert np.array_equal(out, np.load({str(tmp_path / 'expected.npy')!r}))
assert 'onnxruntime' not in sys.modules and 'sklearn' not in sys.modules
print('ok')
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=str(tmp_path), env={**__import__("os").environ,
                                                 "PYTHONPATH": str(__import__("pathlib").Path(hlc.__file__).parents[1])})
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_a_long_1d_signal_is_not_cut_into_thin_tiles():
    signal = np.zeros(1_000_000, np.uint8)
    data = hlc.encode(signal)
    assert signal.nbytes / len(data) > 500 and np.array_equal(hlc.decode(data), signal)


def test_a_2d_mask_covers_every_colour_sample():
    rgb = dicom("US1_UNCR.dcm")
    mask = np.zeros(rgb.shape[:2], bool)
    mask[100:200, 100:300] = True
    out = hlc.decode(hlc.encode(rgb, mode="lossy", bpp=1.0, roi=mask))
    assert np.array_equal(out[mask], rgb[mask])


@pytest.mark.parametrize("ecc", [None, "low", "high"])
def test_info_says_whether_the_stream_is_whole(ecc):
    data = hlc.encode(dicom("CT_small.dcm"), ecc=ecc)
    meta = hlc.info(data)
    assert meta["complete"] and meta["bytes_needed"] <= len(data)
    for cut in (len(data) // 2, meta["bytes_needed"] - 1):
        short = hlc.info(data[:cut])
        assert not short["complete"] and short["bytes_needed"] == meta["bytes_needed"]
