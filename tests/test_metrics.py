"""codec_core.metrics: the definitions of PSNR, SSIM, bpp and CR in docs/METRICS.md."""
from __future__ import annotations

import math
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import skimage.metrics as skm

# (importing codec_core is cheap: metrics needs numpy and the format's names only)
from codec_core import metrics as m


def _noisy(a, amp, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(a.dtype)
    b = a.astype(np.int64) + rng.integers(-amp, amp + 1, a.shape)
    return np.clip(b, info.min, info.max).astype(a.dtype)


def _smooth_image(shape, dtype, lo, hi, seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = np.sin(x / 7.0) * np.cos(y / 11.0) + 0.2 * rng.standard_normal(shape)
    base = (base - base.min()) / (base.max() - base.min())
    return (lo + base * (hi - lo)).round().astype(dtype)


def _sk(a, b, dr, **kw):
    return skm.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=dr, **kw
    )


# ------------------------------------------------------------------------------ PSNR
def test_psnr_known_values():
    a = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    b = a.copy()
    b[0, 0] = 10  # one error of 10 over 4 samples: MSE = 25
    assert m.mse(a, b) == pytest.approx(25.0)
    assert m.max_abs_error(a, b) == 10
    # peak = max - min of the original = 255
    assert m.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25.0))
    assert m.psnr_nominal(a, b, 8) == pytest.approx(10 * math.log10(255**2 / 25.0))


def test_psnr_peak_is_range_of_original_and_nominal_uses_bits_stored():
    a = np.array([[1000, 1100], [1200, 1400]], dtype=np.uint16)
    b = (a.astype(np.int32) + np.array([[2, -2], [2, -2]])).astype(np.uint16)
    assert m.mse(a, b) == pytest.approx(4.0)
    assert m.psnr(a, b) == pytest.approx(10 * math.log10(400.0**2 / 4.0))  # 40 dB
    assert m.psnr(a, b) == pytest.approx(46.0206, abs=1e-4)
    assert m.psnr_nominal(a, b, bits_stored=12) == pytest.approx(10 * math.log10(4095.0**2 / 4.0))
    assert m.psnr_nominal(a, b) == pytest.approx(10 * math.log10(65535.0**2 / 4.0))
    assert m.psnr(a, a) == math.inf


def test_signed_errors_do_not_wrap():
    a = np.array([-32768, 32767, 0], dtype=np.int16)
    b = np.array([32767, -32768, 0], dtype=np.int16)
    assert m.max_abs_error(a, b) == 65535
    assert m.mse(a, b) == pytest.approx(2 * 65535.0**2 / 3)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        m.psnr(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


# ------------------------------------------------------------------------------ SSIM
def test_ssim_identical_is_one():
    a = _smooth_image((40, 50), np.uint16, 100, 3000)
    assert m.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    rgb = np.stack([a, a // 2, a // 3], axis=-1)
    assert m.ssim(rgb, rgb) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "shape,dtype,lo,hi,amp",
    [
        ((64, 64), np.uint8, 0, 255, 20),
        ((97, 131), np.uint16, 0, 4095, 60),
        ((120, 80), np.int16, -2000, 2500, 150),
        ((15, 200), np.uint16, 300, 800, 5),
    ],
)
def test_ssim_matches_skimage(shape, dtype, lo, hi, amp):
    a = _smooth_image(shape, dtype, lo, hi)
    b = _noisy(a, amp)
    dr = float(a.max()) - float(a.min())
    assert m.ssim(a, b) == pytest.approx(_sk(a, b, dr), abs=1e-3)
    # data_range defaults to max - min of the original
    assert m.ssim(a, b) == pytest.approx(m.ssim(a, b, data_range=dr), abs=1e-12)


def test_ssim_colour_averages_channels():
    base = _smooth_image((60, 70), np.uint8, 0, 255)
    a = np.stack([base, 255 - base, base // 2], axis=-1)
    b = _noisy(a, 25)
    dr = float(a.max()) - float(a.min())
    assert m.ssim(a, b) == pytest.approx(_sk(a, b, dr, channel_axis=-1), abs=1e-3)


def test_ssim_multiframe_averages_frames():
    a = np.stack([_smooth_image((48, 48), np.uint16, 0, 1000, seed=s) for s in range(3)])
    b = np.stack([_noisy(a[0], 5), _noisy(a[1], 50), a[2]])
    dr = float(a.max()) - float(a.min())
    want = np.mean([_sk(a[i], b[i], dr) for i in range(3)])
    assert m.ssim(a, b) == pytest.approx(want, abs=1e-3)


def test_ssim_mask_roi_and_background():
    a = _smooth_image((80, 80), np.uint16, 0, 4000)
    b = a.copy()
    mask = np.zeros(a.shape, dtype=bool)
    mask[:, :40] = True
    b[:, 40:] = _noisy(a, 300)[:, 40:]  # damage only the background
    roi = m.ssim(a, b, mask=mask)
    bg = m.ssim(a, b, mask=~mask)
    assert roi > 0.95
    assert bg < roi
    full = m.ssim(a, b)
    assert min(roi, bg) <= full <= max(roi, bg)
    # an all-True mask gives the plain figure
    assert m.ssim(a, b, mask=np.ones(a.shape, bool)) == pytest.approx(full, abs=1e-12)
    assert math.isnan(m.ssim(a, b, mask=np.zeros(a.shape, bool)))


def test_ssim_tiny_images_do_not_crash():
    a = np.array([[5]], dtype=np.uint8)
    assert m.ssim(a, a) == pytest.approx(1.0)
    a = np.arange(7, dtype=np.uint16)
    assert m.ssim(a, a) == pytest.approx(1.0)


# ------------------------------------------------------------------------- size metrics
def test_bpp_and_cr():
    a = np.zeros((100, 200), np.uint16)
    assert m.bpp(1000, a) == pytest.approx(8 * 1000 / 20000)
    assert m.bpp(b"x" * 1000, a.shape) == pytest.approx(0.4)
    assert m.compression_ratio(1000, a) == pytest.approx(40.0)
    rgb = np.zeros((10, 20, 3), np.uint8)  # channels share the pixel count
    assert m.bpp(200, rgb) == pytest.approx(8.0)
    assert m.cr(200, rgb) == pytest.approx(3.0)
    stack = np.zeros((4, 10, 20), np.uint16)  # frames count
    assert m.bpp(800, stack) == pytest.approx(8.0)
    assert m.bpp(800, stack, axes="YXC") == pytest.approx(8 * 800 / 40)
    assert m.cr(800, stack) == pytest.approx(2.0)


def test_compare_keys():
    a = _smooth_image((32, 32), np.uint16, 0, 1000)
    b = _noisy(a, 3)
    mask = np.zeros(a.shape, bool)
    mask[8:20, 8:20] = True
    r = m.compare(a, b, nbytes=512, bits_stored=10, mask=mask)
    for k in ("psnr", "psnr_nominal", "mse", "max_abs_error", "ssim", "ssim_roi",
              "ssim_background", "bpp", "cr", "bytes"):
        assert k in r
    assert r["max_abs_error"] <= 3
    assert r["bpp"] == pytest.approx(4.0)


def test_metrics_module_imports_only_numpy():
    code = (
        "import sys, codec_core.metrics\n"
        "bad = [k for k in ('scipy', 'skimage', 'onnxruntime', 'sklearn', 'codec_core.api') if k in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tempfile.gettempdir())  # (the installed package)
