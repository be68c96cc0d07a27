"""The compiled quantiser (codec_core/_native/rdoquant.c) against the numpy reference
(quantize.quantise(native=False)): identical int32 bands, dead zone and RDO, on real
images' 9/7 bands and on hypothesis-random bands, so streams keep their bytes."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pydicom.data import get_testdata_file

import codec_core as hlc
from codec_core import _hlc, quantize
from codec_core.transform import dwt97_forward

_FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _copy(bands: list) -> list:
    return [bands[0].copy()] + [tuple(b.copy() for b in lvl) for lvl in bands[1:]]


def _same(bands: list, steps: list, levels: int, rdo: bool, consume: bool = False,
          rounding: float = quantize.DEADZONE_ROUNDING) -> None:
    ref = quantize.quantise(_copy(bands), steps, levels, rdo=rdo, native=False, rounding=rounding)
    got = quantize.quantise(_copy(bands), steps, levels, rdo=rdo, consume=consume, rounding=rounding)
    for a, b in zip(quantize._band_list(ref), quantize._band_list(got), strict=True):
        assert a.dtype == b.dtype == np.int32
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "693_UNCR.dcm"])
@pytest.mark.parametrize("base", [0.7, 3.0, 20.0])
def test_real_bands_identical(name, base, vector_isa):
    """(In each vector build of the kernel: conftest.vector_isa.)"""
    a = pydicom.dcmread(get_testdata_file(name)).pixel_array
    a = a[..., 0] if a.ndim == 3 else a
    bands = dwt97_forward(a, 4)
    steps = quantize.subband_steps(base, 4)
    for rdo in (False, True):
        _same(bands, steps, 4, rdo)
        _same(bands, steps, 4, rdo, rounding=0.0)  # (the floor quantiser: strategy.FloorCoder)
    _same(bands, steps, 4, True, consume=True)  # (into the bands' own memory)


@st.composite
def random_bands(draw):
    levels = draw(st.integers(1, 3))
    h, w = (draw(st.integers(1 << levels, 40)) for _ in range(2))
    scale = draw(st.sampled_from([0.3, 2.0, 30.0, 3000.0]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    bands = dwt97_forward((rng.laplace(0, scale, (h, w))).astype(np.float32), levels)
    if draw(st.booleans()):  # exact ties of the rounding, long zero runs
        bands = [np.round(bands[0])] + [tuple(np.round(b * 2) / 2 for b in lvl) for lvl in bands[1:]]
    return bands, levels


@settings(max_examples=200, **_FAST)
@given(random_bands(), st.sampled_from([0.25, 1.0, 1.5, 7.0, 100.0]), st.booleans(),
       st.sampled_from([quantize.DEADZONE_ROUNDING, 0.0]))
def test_random_bands_identical(case, base, rdo, rounding):
    """(In each vector build of the kernel, as conftest.vector_isa chooses them.)"""
    bands, levels = case
    was = _hlc.vector_isa(-1)
    try:
        for isa in (0, 1):
            _hlc.vector_isa(isa)
            _same(bands, quantize.subband_steps(base, levels), levels, rdo, rounding=rounding)
    finally:
        _hlc.vector_isa(was)


@settings(max_examples=100, **_FAST)
@given(arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.floats(-1e4, 1e4, width=32)), st.sampled_from([1.0, 2.5, 9.0]), st.booleans())
def test_arbitrary_values_identical(band, step, rdo):
    """One detail band of any float32 values (ties, zeros, signed zeros)."""
    bands = [np.zeros((1, 1), np.float32), (band, band, band)]
    _same(bands, [1.0, step, step, step], 1, rdo)


def test_streams_keep_their_bytes(monkeypatch):
    a = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array
    kw = dict(mode="lossy", bpp=0.5, threads=1, try_near_lossless=False)
    native = hlc.encode(a, **kw)
    reference = quantize.quantise
    monkeypatch.setattr(quantize, "quantise", lambda *x, **k: reference(*x, **k, native=False))
    assert hlc.encode(a, **kw) == native


def test_level_beyond_the_coder_is_refused():
    band = np.full((4, 4), 1e12, np.float32)
    for rdo in (False, True):
        with pytest.raises(RuntimeError, match="entropy coder's limit"):
            quantize.quantise([np.zeros((1, 1), np.float32), (band.copy(),) * 3], [1.0] * 4, 1, rdo=rdo)


def test_kernel_checks_its_buffers():
    band = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError):
        _hlc.quant_band(band, np.zeros((4, 5), np.int32), 1.0, False, 0.1, None)
    with pytest.raises(ValueError):
        _hlc.quant_band(band.astype(np.float64), np.zeros((4, 4), np.int32), 1.0, False, 0.1, None)
    with pytest.raises(ValueError):
        _hlc.quant_band(band, np.zeros((4, 4), np.int32), 1.0, True, 0.1, np.zeros((35, 2)))
    with pytest.raises(ValueError):
        _hlc.quant_band(band, np.zeros((4, 4), np.int32), 0.0, False, 0.1, None)
    with pytest.raises(ValueError):
        _hlc.rdo_count(band, 1.0, np.zeros((36, 64), np.int32))
    overlapping = np.zeros(40, np.float32)
    with pytest.raises(ValueError):  # out inside the band's memory but shifted
        _hlc.quant_band(overlapping[:32].reshape(4, 8), overlapping[4:36].view(np.int32).reshape(4, 8),
                        1.0, False, 0.1, None)


def _digest_bands() -> list:
    out = []
    for name in ("CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "693_UNCR.dcm"):
        a = pydicom.dcmread(get_testdata_file(name)).pixel_array
        a = a[..., 0] if a.ndim == 3 else a
        out += [np.ascontiguousarray(b, np.float32) for lvl in dwt97_forward(a, 4)[1:] for b in lvl]
    rng = np.random.default_rng(18)
    for scale in (0.3, 2.0, 30.0, 3000.0):
        for shape in ((1, 1), (1, 7), (5, 1), (3, 3), (17, 33), (64, 61)):
            x = rng.laplace(0, scale, shape).astype(np.float32)
            out += [x, (np.round(x * 2) / 2).astype(np.float32)]  # (ties of the rounding)
    return out


def test_levels_pinned():
    """The kernels' levels and RDO histograms, pinned by a digest made with the kernel
    before the branch-free rewrite (eae4ddc's rdoquant.c): real and random bands, steps
    below and above one sample unit, dead zone 0.35 and 0 and RDO. The RDO bits are a
    fixed table here (not numpy's log2, which may round differently elsewhere)."""
    import hashlib

    k, s = np.meshgrid(np.arange(36), np.arange(64), indexing="ij")
    table = 0.5 + ((k * 31 + s * 17) % 29) / 4.0
    h = hashlib.sha256()
    for band in _digest_bands():
        for step in (0.7, 1.0, 3.0, 20.0):
            counts = np.zeros((36, 64), np.int64)
            nsym = _hlc.rdo_count(band, step, counts)
            h.update(counts.tobytes() + bytes([nsym]))
            for bits in (np.ascontiguousarray(table[:, :nsym]), np.ascontiguousarray(table[:, :max(1, nsym - 2)])):
                for rdo, rounding in ((True, 0.35), (False, 0.35), (False, 0.0)):
                    q = np.empty(band.shape, np.int32)
                    top = _hlc.quant_band(band, q, step, rdo, quantize.RDO_LAMBDA, bits, rounding)
                    h.update(q.tobytes() + np.float64(top).tobytes())
    assert h.hexdigest() == "51ab6fc5a8bb0f94bef66a3069f06fa7c4a1ab727db55e057a55fc87793b4bfb"
