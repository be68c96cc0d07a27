"""Lossy mode keeps a CT's flat padding exact and out of the 9/7 (regions.encode_padded)."""
from __future__ import annotations

import numpy as np
import pytest

import codec_core as hlc
from codec_core import metrics


def padded_ct(n: int = 256, pad: int = -2000) -> np.ndarray:
    """A smooth, noisy body inside a field-of-view circle, padding outside."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[:n, :n] - n / 2
    body = 40 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 6, (n, n)) - 1000 * (np.hypot(x, y) > 0.4 * n)
    img = np.rint(body).astype(np.int16)
    img[np.hypot(x, y) > 0.47 * n] = pad
    return img


@pytest.mark.parametrize("bpp", [0.25, 1.0])
def test_padding_is_exact_and_the_size_within_the_window(bpp):
    img = padded_ct()
    data = hlc.encode(img, mode="lossy", bpp=bpp, try_near_lossless=False)
    assert 0.97 * bpp <= 8 * len(data) / img.size <= bpp
    out = hlc.decode(data)
    pad = img == -2000
    assert np.array_equal(out[pad], img[pad])
    assert hlc.info(data)["roi_fraction"] == 0.0 and _padded(data)
    assert hlc.info(data)["regions"]["background"]["coder"] == "lossy"


def test_padding_path_beats_the_plain_9_7_at_equal_size():
    img = padded_ct()
    data = hlc.encode(img, mode="lossy", bpp=0.5, try_near_lossless=False)
    plain = _plain(img, 0.5)
    assert len(plain) <= img.size * 0.5 / 8
    assert metrics.psnr(img, hlc.decode(data)) > metrics.psnr(img, hlc.decode(plain)) + 1.0


def _padded(data: bytes) -> bool:
    """The padding path's stream: a region stream (map and flat value) with no ROI."""
    meta = hlc.info(data)
    return meta.get("flat_value") is not None and not meta["roi"]


def _plain(img: np.ndarray, bpp: float) -> bytes:
    """The 9/7 stream without the padding path (strategy.encode_image(padding=False))."""
    from codec_core import api, strategy
    from codec_core.options import EncodeOptions

    opts = EncodeOptions(mode="lossy", bpp=bpp, try_near_lossless=False)
    return strategy.encode_image(api._checked_image(img, opts), opts, padding=False)


@pytest.mark.parametrize("psnr", [45.0, 55.0])
def test_psnr_target_met_within_0_3_db(psnr):
    img = padded_ct()
    data = hlc.encode(img, mode="lossy", psnr=psnr, try_near_lossless=False)
    assert _padded(data)  # (the padding path, a region stream)
    assert psnr <= metrics.psnr(img, hlc.decode(data)) <= psnr + 0.3


def test_zeroed_air_next_to_its_own_noise_stays_plain():
    """An MR's air set to 0 beside noise of a few units is no field-of-view edge."""
    img = padded_ct(pad=0)
    img = np.abs(img.astype(np.int32) + 1000).astype(np.uint16) // 8
    img[:, :60] = 0
    img[:, 60:64] = 2
    data = hlc.encode(img, mode="lossy", bpp=0.5, try_near_lossless=False)
    assert not _padded(data)


def test_takeover_still_compared():
    """With the near-lossless takeover on, the padded stream is kept only if it does better."""
    img = padded_ct()
    data = hlc.encode(img, mode="lossy", bpp=0.5)
    assert 8 * len(data) / img.size <= 0.5
    ref = hlc.encode(img, mode="lossy", bpp=0.5, try_near_lossless=False)
    assert metrics.psnr(img, hlc.decode(data)) >= metrics.psnr(img, hlc.decode(ref)) - 1e-9


def test_stacks_and_tiled_images_stay_plain():
    """A region stream's layer is one segment: a damaged byte would cost every frame and
    tile, so only a one-plane image takes the padding path."""
    one = padded_ct(128)
    assert _padded(hlc.encode(one, mode="lossy", bpp=0.5, try_near_lossless=False))
    stack = np.stack([one, one])
    assert not _padded(hlc.encode(stack, mode="lossy", bpp=0.5, try_near_lossless=False, axes="ZYX"))
    tiled = hlc.encode(one, mode="lossy", bpp=0.5, try_near_lossless=False, tile_size=64)
    assert not _padded(tiled)
