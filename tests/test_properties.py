"""Property tests: every mode keeps its promise on random arrays.

* lossless: bit-exact, same shape and dtype;
* near-lossless (k): every sample within +-k;
* lossy with an ROI mask (e): every ROI sample within +-e, whatever the background rate;
* encoding is deterministic (same bytes twice, and with 1 or 2 threads).

Arrays: every supported dtype (uint8, int8, uint16, int16), bits stored 1 .. 8 x itemsize,
shapes including 1x1, 1xN, Nx1, 1-D, odd sizes, colour, multi-frame and colour stacks,
and small tiles so that images span several tiles. Example counts keep the file < 60 s.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import codec_core as hlc

_DTYPES = [np.uint8, np.int8, np.uint16, np.int16]
_FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _limits(dtype: np.dtype, bits: int) -> tuple[int, int]:
    if dtype.kind == "i":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


@st.composite
def arrays(draw, max_side: int = 37):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    bits = draw(st.integers(1, 8 * dtype.itemsize))
    lo, hi = _limits(dtype, bits)
    side = st.integers(1, max_side)
    kind = draw(st.sampled_from(["1x1", "1xN", "Nx1", "1d", "2d", "2d", "colour", "frames", "colour-frames"]))
    r, c = draw(side), draw(side)
    shape = {"1x1": (1, 1), "1xN": (1, c), "Nx1": (r, 1), "1d": (c,), "2d": (r, c), "colour": (r, c, 3),
             "frames": (draw(st.integers(2, 3)), r, c), "colour-frames": (2, r, c, 3)}[kind]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    style = draw(st.sampled_from(["noise", "smooth", "constant", "extremes", "sparse"]))
    if style == "noise":
        a = rng.integers(lo, hi + 1, size=shape)
    elif style == "smooth":
        a = np.cumsum(rng.integers(-3, 4, size=shape), axis=-1) + rng.integers(lo, hi + 1)
    elif style == "constant":
        a = np.full(shape, rng.integers(lo, hi + 1))
    elif style == "extremes":
        a = rng.choice([lo, hi], size=shape)
    else:  # few distinct values far apart: exercises the value table
        a = rng.choice(rng.integers(lo, hi + 1, size=4), size=shape)
    tile = draw(st.sampled_from([None, None, 16, 32]))
    return np.clip(a, lo, hi).astype(dtype), bits, tile


def _err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int64) - b.astype(np.int64))


@settings(max_examples=300, **_FAST)
@given(arrays())
def test_lossless_is_bit_exact(case):
    arr, bits, tile = case
    data = hlc.encode(arr, mode="lossless", bits_stored=bits, tile_size=tile)
    out = hlc.decode(data)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert np.array_equal(out, arr)
    meta = hlc.info(data)
    assert meta["bits_stored"] == bits and tuple(meta["shape"]) == arr.shape


@settings(max_examples=200, **_FAST)
@given(arrays(), st.sampled_from([0, 1, 2, 3, 5, 17, 255, 4000]))
def test_near_lossless_error_is_at_most_k(case, k):
    arr, bits, tile = case
    out = hlc.decode(hlc.encode(arr, mode="near-lossless", max_error=k, bits_stored=bits, tile_size=tile))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert int(_err(out, arr).max()) <= k


@st.composite
def roi_cases(draw):
    arr, bits, tile = draw(arrays(max_side=33))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    colour = arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] == 3)  # the encoder's axes guess
    spatial = arr.shape[:-1] if colour else arr.shape
    how = draw(st.sampled_from(["random", "box", "all", "none"]))
    if how == "random":
        mask = rng.random(spatial) < draw(st.sampled_from([0.02, 0.3]))
    elif how == "box":
        mask = np.zeros(spatial, bool)
        sl = tuple(slice(int(rng.integers(0, n)), None) for n in spatial)
        mask[sl] = True
    else:
        mask = np.full(spatial, how == "all")
    if mask.shape != arr.shape:
        mask = mask[..., None]  # (.., rows, cols) mask for a colour image
    e = draw(st.sampled_from([0, 0, 1, 3]))
    target = draw(st.sampled_from([("bpp", 0.3), ("bpp", 1.5), ("psnr", 30.0)]))
    return arr, bits, tile, mask, e, target


@settings(max_examples=150, **_FAST)
@given(roi_cases(), st.booleans())
def test_lossy_roi_samples_are_within_roi_max_error(case, whole_if_smaller):
    # whole_if_smaller=False: the hybrid layers themselves, whatever their size;
    # True: the default, where a smaller whole-image stream within e may be kept
    arr, bits, tile, mask, e, (key, value) = case
    data = hlc.encode(arr, mode="lossy", bits_stored=bits, tile_size=tile, roi=mask, roi_max_error=e,
                      whole_image_if_smaller=whole_if_smaller, **{key: value})
    if not whole_if_smaller:  # a region stream (its ROI, if the mask has one)
        assert hlc.info(data)["regions"] is not None
        assert hlc.info(data)["roi"] == bool(np.any(mask))
    out = hlc.decode(data)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    full = np.broadcast_to(mask, arr.shape)
    if full.any():
        assert int(_err(out, arr)[full].max()) <= e
    lo, hi = _limits(arr.dtype, bits)
    assert out.min() >= min(lo, arr.min()) and out.max() <= max(hi, arr.max())


@settings(max_examples=60, **_FAST)
@given(arrays(max_side=40), st.sampled_from(["lossless", "near-lossless", "lossy", "lossy-roi"]))
def test_encoding_is_deterministic_across_runs_and_thread_counts(case, mode):
    _deterministic(case, mode)


def _deterministic(case, mode):
    arr, bits, tile = case
    kw: dict = {"bits_stored": bits, "tile_size": tile}
    if mode == "near-lossless":
        kw["max_error"] = 2
    elif mode.startswith("lossy"):
        kw["bpp"] = 1.0
        if mode == "lossy-roi":
            kw["roi"] = np.ones(arr.shape, bool)
            kw["roi_max_error"] = 1
            kw["whole_image_if_smaller"] = False  # the hybrid layers themselves
    m = mode.replace("-roi", "")
    a = hlc.encode(arr, mode=m, threads=1, **kw)
    b = hlc.encode(arr, mode=m, threads=2, **kw)
    c = hlc.encode(arr.copy(), mode=m, threads=1, **kw)
    assert a == b == c
    assert np.array_equal(hlc.decode(a, threads=1), hlc.decode(a, threads=2))
