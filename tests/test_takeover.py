"""Lossy mode's takeover (``try_near_lossless``): the exact stream where it fits the
target, judged on a sample first (codec_core/strategy.py: lossless_if_fits)."""
from __future__ import annotations

import numpy as np
import pydicom
import pydicom.data
import pytest

import codec_core as hlc
from codec_core import strategy
from codec_core.format import Mode


def dicom(name: str) -> np.ndarray:
    # Always an exact name: get_testdata_files() without one goes to the network.
    return pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array


def bpp(data: bytes, img: np.ndarray) -> float:
    return 8.0 * len(data) / img.size


@pytest.fixture
def coded(monkeypatch):
    """The modes of every stream the strategy codes for itself (its own calls of
    encode_image: the takeover's candidates, not the API's entry call)."""
    modes: list[Mode] = []
    inner = strategy.encode_image

    def counting(image, opts, *args, **kwargs):
        modes.append(opts.coding_mode)
        return inner(image, opts, *args, **kwargs)

    monkeypatch.setattr(strategy, "encode_image", counting)
    return modes


def test_a_size_the_exact_stream_fits_returns_the_exact_stream():
    # a synthetic 512 x 512 image of 24 values: lossless is 0.31 bpp, smaller than the
    # near-lossless coder at k = 1 (0.35 bpp); at 0.5 bpp the 9/7 gave 50.5 dB
    img = dicom("image_dfl.dcm")
    exact = hlc.encode(img, mode="lossless")
    assert bpp(exact, img) <= 0.5
    for rate in (0.5, 1.0):
        data = hlc.encode(img, mode="lossy", bpp=rate)
        meta = hlc.info(data)
        assert meta["mode"] == "lossless" and not meta["lossy"] and meta["max_error"] == 0
        assert data == exact and np.array_equal(hlc.decode(data), img)
    # below its size the lossy coders answer, within the size asked for
    data = hlc.encode(img, mode="lossy", bpp=0.25)
    assert hlc.info(data)["lossy"] and bpp(data, img) <= 0.25
    # off: the 9/7 itself
    assert hlc.info(hlc.encode(img, mode="lossy", bpp=1.0, try_near_lossless=False))["mode"] == "lossy"


def test_the_exact_stream_keeps_the_requested_tiling_and_ecc():
    img = dicom("image_dfl.dcm")
    data = hlc.encode(img, mode="lossy", bpp=1.0, ecc="low", tile_size=256)
    meta = hlc.info(data)
    assert meta["mode"] == "lossless" and meta["ecc"] == "low" and meta["tile_shape"] == (256, 256)
    assert data == hlc.encode(img, mode="lossless", ecc="low", tile_size=256)
    assert np.array_equal(hlc.decode(data), img)


def test_a_psnr_target_keeps_the_exact_stream_where_it_is_the_smaller_file():
    # a real 8-bit US (lossless 0.96 bpp): at 62 dB the 9/7 is about 1.2 bpp
    img = dicom("JPGLosslessP14SV1_1s_1f_8b.dcm")
    data = hlc.encode(img, mode="lossy", psnr=62)
    lossy = hlc.encode(img, mode="lossy", psnr=62, try_near_lossless=False)
    assert len(data) < len(lossy)
    assert hlc.info(data)["mode"] == "lossless" and np.array_equal(hlc.decode(data), img)


def test_an_image_far_above_the_target_never_pays_a_lossless_encode(coded, monkeypatch):
    # an MR (lossless ~4.4 bpp) and a padded CT (2.6 bpp, the padding path): at 1 bpp
    # and at 40 dB the sample judges the exact stream out, before any is coded; at
    # 0.5 bpp the blocks' entropy alone does, before the predictive coder is asked
    sampled: list = []
    inner = strategy._coded_bytes
    monkeypatch.setattr(strategy, "_coded_bytes", lambda plane: sampled.append(plane.shape) or inner(plane))
    for img in (dicom("MR2_UNCR.dcm")[:512, :512], dicom("693_UNCR.dcm")):
        for target in (dict(bpp=0.5), dict(bpp=1.0), dict(psnr=40.0)):
            data = hlc.encode(img, mode="lossy", **target)
            assert hlc.info(data)["lossy"]
    assert Mode.LOSSLESS not in coded and coded  # (the near-lossless judge did code samples)
    sampled.clear()
    hlc.encode(dicom("MR2_UNCR.dcm")[:512, :512], mode="lossy", bpp=0.5)
    assert not sampled


def test_the_exact_stream_is_coded_once_and_only_where_the_sample_says_it_may_fit(coded):
    img = dicom("image_dfl.dcm")
    hlc.encode(img, mode="lossy", bpp=1.0)
    assert coded == [Mode.LOSSLESS]  # returned at once: no 9/7, no near-lossless trial
    coded.clear()
    hlc.encode(img, mode="lossy", bpp=0.05)  # 6x below its size: judged out
    assert Mode.LOSSLESS not in coded


def test_an_exact_stream_that_does_not_fit_is_dropped_for_a_lossy_one(coded):
    # a LUT test image of few values: its sample promises less than the exact stream
    # needs (0.65 bpp), so at 0.4 bpp the exact stream is coded and does not fit
    img = dicom("mlut_18.dcm")
    data = hlc.encode(img, mode="lossy", bpp=0.4)
    assert coded.count(Mode.LOSSLESS) == 1
    assert hlc.info(data)["lossy"] and bpp(data, img) <= 0.4


def test_a_hybrid_request_is_never_replaced_by_the_plain_exact_stream():
    # (the hybrid has its own whole-image choice, whole_image_if_smaller: off here)
    img = dicom("image_dfl.dcm")
    mask = np.zeros(img.shape, bool)
    mask[200:300, 200:300] = True
    data = hlc.encode(img, mode="lossy", bpp=1.0, roi=mask, whole_image_if_smaller=False)
    meta = hlc.info(data)
    assert meta["roi"] and meta["regions"] is not None and meta["mode"] == "lossy"


def test_lossless_estimates_are_near_the_real_size_on_real_images():
    # the judges' premise: the predictive coder's estimate within 0.7 .. 1.5 x of the
    # real lossless size, the entropy's below 2 x (ENTROPY_MARGIN / JUDGE_MARGIN)
    from codec_core import api
    from codec_core.encoder import Source
    from codec_core.options import EncodeOptions

    for name in ("MR_small.dcm", "CT_small.dcm", "JPEG2000_UNC.dcm", "US1_UNCR.dcm", "693_UNCR.dcm"):
        img = dicom(name)
        opts = EncodeOptions(mode="lossy", bpp=1.0)
        image = api._checked_image(img, opts)
        src = Source(image=image.pixels, header=strategy.new_header(image, opts))
        real = len(hlc.encode(img, mode="lossless"))
        coded = strategy._lossless_estimate(src, strategy.JUDGE_BLOCK, strategy._coded_bytes) / real
        entropy = strategy._lossless_estimate(src, strategy.JUDGE_BLOCK // 2, strategy._entropy_bytes) / real
        assert 0.7 <= coded <= 1.5 and 0.5 <= entropy < strategy.ENTROPY_MARGIN / strategy.JUDGE_MARGIN, \
            (name, coded, entropy)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    peak = float(a.max()) - float(a.min())
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def test_near_exact_rates_keep_the_wider_dead_zone_where_it_does_better():
    # a smooth NM image (1024 x 256, 274 values): at 0.25 and 0.5 bpp every detail step
    # is below one sample unit; the floor quantiser (JPEG 2000's dead zone) gains ~2 dB
    img = dicom("JPEG2000_UNC.dcm")
    for rate in (0.25, 0.5):
        plain = hlc.encode(img, mode="lossy", bpp=rate, try_near_lossless=False)
        data = hlc.encode(img, mode="lossy", bpp=rate)
        assert hlc.info(data)["mode"] == "lossy" and bpp(data, img) <= rate
        assert psnr(img, hlc.decode(data)) > psnr(img, hlc.decode(plain)) + 1.0
    # at a PSNR the smaller file
    plain = hlc.encode(img, mode="lossy", psnr=66, try_near_lossless=False)
    data = hlc.encode(img, mode="lossy", psnr=66)
    assert len(data) < len(plain) and psnr(img, hlc.decode(data)) >= 66


def test_the_wider_dead_zone_is_tried_only_below_one_sample_unit(coded):
    # a real MR at 0.5 bpp: steps of several units, so no second 9/7 is coded
    img = dicom("MR2_UNCR.dcm")[:512, :512]
    hlc.encode(img, mode="lossy", bpp=0.5)
    assert Mode.LOSSY not in coded


def test_the_floor_quantiser_is_the_dead_zone_of_rounding_zero():
    from codec_core import quantize

    rng = np.random.default_rng(1)
    band = (rng.laplace(0, 0.4, (32, 32))).astype(np.float32)
    bands = [np.zeros((32, 32), np.float32), (band, band.copy(), band.copy())]
    q = quantize.quantise(bands, [0.5, 0.5, 0.5, 0.5], 1, rounding=0.0)[1][0]
    assert np.array_equal(np.abs(q), np.floor(np.abs(band) / np.float32(0.5)).astype(np.int32))
    assert np.array_equal(np.sign(q)[q != 0], np.sign(band)[q != 0])
