"""The transforms and the quantiser on their own: the in-place and memory-saving
paths must give exactly what the plain definitions give."""
from __future__ import annotations

import numpy as np
import pytest

from codec_core import quantize
from codec_core.transform import (dwt53_forward, dwt53_inverse, dwt97_forward, dwt97_forward_numpy, dwt97_inverse,
                                  dwt97_inverse_rounded, forward, rct_forward, rct_inverse, split_forward)

SHAPES = [(1, 1), (1, 17), (16, 1), (3, 5), (37, 91), (64, 64), (129, 70)]


def _copy(bands: list) -> list:
    return [bands[0].copy()] + [tuple(b.copy() for b in lvl) for lvl in bands[1:]]


@pytest.mark.parametrize("shape", SHAPES)
def test_53_round_trip_is_exact_and_leaves_the_input_alone(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-40000, 40000, shape).astype(np.int32)
    keep = x.copy()
    levels = max(0, min(4, max(shape).bit_length() - 2))
    bands = dwt53_forward(x, levels)
    assert np.array_equal(x, keep)  # the input is not worked on
    assert np.array_equal(dwt53_inverse(bands), keep)
    # the lossless coder's way: even and odd rows given up to split_forward
    if levels:
        halves = [keep[0::2].copy(), keep[1::2].copy()]
        again = split_forward(halves, levels, "5/3")
        assert halves == []  # consumed
        flat = lambda b: [b[0]] + [t for lvl in b[1:] for t in lvl]  # noqa: E731
        assert all(np.array_equal(p, q) for p, q in zip(flat(again), flat(dwt53_forward(keep, levels))))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("upto", [None, 0, 1])
def test_97_rounded_inverse_equals_rounding_the_float_inverse(shape, upto):
    rng = np.random.default_rng(7 + sum(shape))
    x = rng.integers(0, 4096, shape)
    levels = max(0, min(3, max(shape).bit_length() - 2))
    bands = dwt97_forward(x, levels)
    bands[0] = bands[0].astype(np.float64)  # as the decoder dequantises LL
    want = np.rint(dwt97_inverse(_copy(bands), upto))
    got = dwt97_inverse_rounded(_copy(bands), upto)
    assert got.dtype == np.int32
    assert np.array_equal(got, want)


def test_rct_round_trip_from_stored_samples():
    rng = np.random.default_rng(3)
    for dtype, hi in ((np.uint8, 255), (np.uint16, 65535), (np.int16, 32767)):
        lo = -32768 if dtype == np.int16 else 0
        rgb = rng.integers(lo, hi, (9, 11, 3)).astype(dtype)
        assert np.array_equal(rct_inverse(rct_forward(rgb)), rgb.astype(np.int32))


def test_isolated_small_coefficients_are_thresholded_and_others_kept():
    step = 10.0
    c = np.zeros((7, 7), np.float32)
    c[1, 1] = 7.0    # isolated, 0.70 step: quantised to 1, then zeroed
    c[5, 5] = 9.0    # isolated, 0.90 step: above the threshold, kept
    c[3, 2] = 7.0    # 0.70 step but next to another nonzero: kept
    c[3, 3] = -20.0
    bands = [np.zeros((1, 1), np.float32), (c, np.zeros_like(c), np.zeros_like(c))]
    steps = [step] * 4
    q = quantize.quantise(bands, steps, 1)[1][0]
    assert q[1, 1] == 0 and q[5, 5] == 1 and q[3, 2] == 1 and q[3, 3] == -2
    # below one sample unit the decoder's rounding rules: nothing is thresholded
    small = quantize.quantise([bands[0], (c / 20, np.zeros_like(c), np.zeros_like(c))], [0.5] * 4, 1)[1][0]
    assert small[1, 1] == 1


# PyWavelets as the reference: its 'bior4.4' and 'bior2.2' are the CDF 9/7 and LeGall
# 5/3 filter banks; mode 'reflect' is the whole-sample symmetric extension JPEG 2000
# (and HLC) use, so the borders must agree too. pywt pads its output by the filter
# half-length (2 for 9/7, 1 for 5/3) and normalises each 1-D pass by sqrt(2) where
# HLC's lowpass has unit gain: LL is 2x ours, the detail bands -1, -1 and 2x (9/7)
# or 1/2x (5/3) in HLC's order (LH, HL, HH).
@pytest.mark.parametrize("shape", [(64, 64), (37, 91), (5, 3), (2, 9)])
def test_97_analysis_equals_pywavelets_bior44(shape):
    import pywt
    x = np.random.default_rng(sum(shape)).normal(size=shape) * 1000
    ll, (lh, hl, hh) = dwt97_forward(x, 1)
    ca, (ch, cv, cd) = pywt.dwt2(x, "bior4.4", mode="reflect")
    for ours, ref, scale in ((ll, ca, 2), (lh, cv, -2), (hl, ch, -2), (hh, cd, 2)):
        ref = ref[2:2 + ours.shape[0], 2:2 + ours.shape[1]]
        assert ref.shape == ours.shape
        np.testing.assert_allclose(scale * ours, ref, rtol=1e-5, atol=1e-3)  # float32 lifting


@pytest.mark.parametrize("shape", [(64, 64), (37, 91), (5, 3), (2, 9)])
def test_reversible_53_is_the_linear_53_of_pywavelets_up_to_its_rounding(shape):
    import pywt
    x = np.rint(np.random.default_rng(sum(shape)).normal(size=shape) * 1000).astype(np.int32)
    ll, (lh, hl, hh) = dwt53_forward(x, 1)
    ca, (ch, cv, cd) = pywt.dwt2(x.astype(float), "bior2.2", mode="reflect")
    # floor() in each lifting step errs by < 1 sample unit; LL carries two passes' worth
    for ours, ref, scale, tol in ((ll, ca, 2, 4.0), (lh, cv, -1, 1.5), (hl, ch, -1, 1.5), (hh, cd, 0.5, 0.5 + 1e-9)):
        ref = ref[1:1 + ours.shape[0], 1:1 + ours.shape[1]]
        assert ref.shape == ours.shape
        assert np.abs(scale * ours - ref).max() <= tol


# ------------------------------------------------ the compiled 5/3 against numpy's

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from codec_core import transform  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(rows=st.integers(1, 70), cols=st.integers(1, 70), levels=st.integers(1, 5),
       bits=st.sampled_from([1, 8, 12, 16, 24, 31]), seed=st.integers(0, 2**31), upto=st.integers(0, 5))
def test_compiled_53_equals_the_numpy_lifting_bit_for_bit(rows, cols, levels, bits, seed, upto):
    """Any shape, depth up to int32's (where numpy's sums wrap, as a damaged stream's
    coefficients can make them), any number of levels decoded."""
    x = np.random.default_rng(seed).integers(-(1 << (bits - 1)), 1 << (bits - 1), (rows, cols)).astype(np.int32)
    ref = split_forward([x[0::2].copy(), x[1::2].copy()], levels, "5/3")
    got = dwt53_forward(x, levels)
    flat = lambda b: [b[0]] + [t for lvl in b[1:] for t in lvl]  # noqa: E731
    assert all(np.array_equal(p, q) for p, q in zip(flat(ref), flat(got), strict=True))
    upto = min(upto, levels)
    want = transform._inverse(_copy(ref), transform._inv53, upto)
    assert np.array_equal(dwt53_inverse(_copy(ref), upto), want)
    if bits < 31:  # (no wrap-around) the synthesis undoes the analysis
        assert np.array_equal(dwt53_inverse(got), x)


def test_large_planes_take_the_numpy_lifting_with_the_same_result(monkeypatch):
    x = np.random.default_rng(5).integers(0, 4096, (67, 45)).astype(np.int32)
    compiled = dwt53_forward(x, 3)
    monkeypatch.setattr(transform, "C53_MAX", 16)  # as if the plane were larger than the limit
    flat = lambda b: [b[0]] + [t for lvl in b[1:] for t in lvl]  # noqa: E731
    assert all(np.array_equal(p, q) for p, q in zip(flat(dwt53_forward(x, 3)), flat(compiled), strict=True))
    assert np.array_equal(dwt53_inverse(_copy(compiled)), x)


def _flat(bands: list) -> list:
    return [bands[0]] + [b for lvl in bands[1:] for b in lvl]


@pytest.mark.parametrize("shape", SHAPES + [(2, 2), (1, 2), (2, 1), (513, 260), (260, 513)])
@pytest.mark.parametrize("levels", [0, 1, 3, 5])
def test_compiled_97_analysis_gives_the_numpy_lifting_bit_for_bit(shape, levels, vector_isa):
    """_hlc.fwd97 (codec_core/_native/wavelet97.c), through dwt97_forward, against the
    numpy lifting: the same float32 operations in the same order, so the same bands
    to the bit, of the same shapes, on odd sizes and axes of one sample too; in each
    vector build of the kernel (conftest.vector_isa)."""
    x = np.random.default_rng(3 + sum(shape)).integers(-5000, 5000, shape).astype(np.int16)
    keep = x.copy()
    got, want = _flat(dwt97_forward(x, levels)), _flat(dwt97_forward_numpy(x, levels))
    assert np.array_equal(x, keep)
    assert [b.shape for b in got] == [b.shape for b in want]
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.float32 and g.flags.c_contiguous
        assert np.array_equal(g.view(np.int32), w.view(np.int32))  # to the bit (NaN-free: -0.0 too)


def test_compiled_97_analysis_inverts_and_the_bands_tile_the_plane():
    """The bands are views of the one buffer the kernel worked in, back to back, and
    the numpy synthesis takes them back to the plane."""
    x = np.random.default_rng(5).normal(size=(77, 130)).astype(np.float32) * 100
    plane = x.copy()
    bands = forward(lambda sel: plane[sel], 3, "9/7")
    assert all(b.base is not None and np.shares_memory(b, plane) for b in _flat(bands))
    assert sum(b.size for b in _flat(bands)) == x.size
    np.testing.assert_allclose(dwt97_inverse(_copy(bands)), x, atol=2e-3)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (37, 91), (129, 70)])
def test_compiled_97_analysis_of_an_int32_plane_makes_it_float_in_place(shape):
    """An int32 plane (the lossy coder's colour channels) is made float32 in its own
    bytes by the kernel: the same bands as from its float32 copy, no second plane."""
    x = np.random.default_rng(sum(shape)).integers(-(1 << 20), 1 << 20, shape).astype(np.int32)
    want = _flat(forward(lambda sel: x[sel].astype(np.float32), 3, "9/7"))
    plane = x.copy()
    got = _flat(forward(lambda sel: plane, 3, "9/7"))
    assert all(g.dtype == np.float32 and (g.size == 0 or np.shares_memory(g, plane)) for g in got)
    assert all(np.array_equal(g.view(np.int32), w.view(np.int32)) for g, w in zip(got, want, strict=True))


def test_compiled_97_analysis_checks_its_buffer():
    from codec_core import _hlc
    for bad, levels in ((np.zeros((4, 4), np.float64), 1), (np.zeros((4, 4), np.int64), 1),
                        (np.zeros(16, np.float32), 1), (np.zeros((4, 8), np.float32)[:, ::2], 1),
                        (np.zeros((0, 4), np.float32), 1), (np.zeros((4, 4), np.float32), -1),
                        (np.zeros((4, 4), np.float32), 99)):
        with pytest.raises(ValueError):
            _hlc.fwd97(bad, levels)
    ro = np.zeros((4, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        _hlc.fwd97(ro, 1)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 70), cols=st.integers(1, 70), levels=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_compiled_97_analysis_property_any_size(rows, cols, levels, seed):
    x = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32) * 300
    got, want = _flat(dwt97_forward(x, levels)), _flat(dwt97_forward_numpy(x, levels))
    assert all(np.array_equal(g.view(np.int32), w.view(np.int32)) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("shape", [(512, 512), (301, 700)])
def test_compiled_97_analysis_works_in_a_sixteenth_of_the_plane(shape):
    """_hlc.fwd97's working memory (traced: it comes from the Python allocator): the band
    packing moves an eighth of a half of the rows at a time (0.0625 of the plane and a
    row), not every row's detail half at once (a quarter of the plane before: 0.5x a
    16-bit image beside the plane, at each of the lossy encoder's passes)."""
    import tracemalloc

    from codec_core import _hlc

    x = np.random.default_rng(7).normal(size=shape).astype(np.float32)
    tracemalloc.start()
    try:
        _hlc.fwd97(x, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= x.nbytes / 16 + 8 * shape[1] + 4 * shape[0] + 256, peak / x.nbytes
