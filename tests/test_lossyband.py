"""The lossy band coder (codec_core/_native/lossyband.c): round trips, its stream flag,
its buffer checks, and damaged streams."""
from __future__ import annotations

import numpy as np
import pydicom
import pydicom.data
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import codec_core as hlc
from codec_core import _hlc, _kernels, entropy
from codec_core import container as ct
from codec_core.errors import HlcError
from codec_core.format import FLAG_LOSSY_CONTEXTS, FLAG_LOSSY_RUNS
from codec_core.transform import band_shapes

_LIMIT = entropy.MAX_COEFFICIENT - 1  # the largest magnitude the coders take


def _bands(rng: np.random.Generator, rows: int, cols: int, levels: int, scale: float, density: float) -> list:
    def one(shape):
        x = np.rint(rng.laplace(0, scale, shape)) * (rng.random(shape) < density)
        return np.clip(x, -_LIMIT, _LIMIT).astype(np.int32)

    shapes = band_shapes(rows, cols, levels)
    return [one(shapes[0])] + [tuple(one(s) for s in shapes[r]) for r in range(1, levels + 1)]


def _dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array


@settings(max_examples=150, deadline=None)
@given(rows=hst.integers(1, 40), cols=hst.integers(1, 40), levels=hst.integers(1, 4),
       scale=hst.sampled_from([0.2, 1.0, 4.0, 300.0, 1e6, 1e9]), density=hst.floats(0.0, 1.0),
       seed=hst.integers(0, 2**32 - 1))
def test_a_decomposition_round_trips_through_the_lossy_band_coder(rows, cols, levels, scale, density, seed):
    """Every band shape (1 x n and n x 1 included: a 1-row image's bands are), from
    empty bands to magnitudes at the coder's limit."""
    bands = _bands(np.random.default_rng(seed), rows, cols, levels, scale, density)
    segs = entropy.encode_decomposition(bands, levels, lossy=True)
    out = entropy.decode_decomposition(segs, rows, cols, levels, lossy=True)
    assert np.array_equal(out[0], bands[0])
    for got, want in zip(out[1:], bands[1:], strict=True):
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w)


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (37, 1), (2, 64), (64, 2)])
def test_one_band_at_the_magnitude_limit_round_trips(shape):
    band = np.full(shape, _LIMIT, np.int32)
    band[..., ::2] = -_LIMIT
    enc = entropy._Encoder(band.size, entropy.raw_bits_for(_LIMIT), worst_case=True, lossy=True)
    enc.lossy_band(band, 2)
    seg = enc.finish()
    dec = entropy._Decoder(seg, lossy=True)
    assert np.array_equal(dec.lossy_band(shape, 2), band)


def test_the_lossy_coder_codes_an_image_s_bands_smaller_than_the_band_coder():
    """Its reason to exist (a unit check; at 0.25-1 bpp the dev images gain 6-11% of
    the stream, benchmarks/results/lossy_experiments.md)."""
    from codec_core.transform import dwt97_forward

    img = _dicom("CT_small.dcm").astype(np.float32)
    for step in (20.0, 60.0):
        bands = [np.rint(b / step).astype(np.int32) if isinstance(b, np.ndarray)
                 else tuple(np.rint(x / step).astype(np.int32) for x in b) for b in dwt97_forward(img, 4)]
        old = entropy.encode_decomposition(bands, 4)
        new = entropy.encode_decomposition(bands, 4, lossy=True)
        assert sum(map(len, new[1:])) < 0.97 * sum(map(len, old[1:]))
        assert new[0] == old[0]  # the LL band is coded as before


def test_lossy_streams_carry_the_flag_and_other_modes_do_not():
    img = _dicom("CT_small.dcm")
    flags = {mode: ct.parse_header(hlc.encode(img, mode=mode, **kw))[0].flags for mode, kw in
             (("lossy", {"bpp": 0.5, "try_near_lossless": False}), ("lossless", {}),
              ("near-lossless", {"max_error": 2}))}
    assert flags["lossy"] & FLAG_LOSSY_CONTEXTS
    assert not flags["lossless"] & FLAG_LOSSY_CONTEXTS and not flags["near-lossless"] & FLAG_LOSSY_CONTEXTS


def test_bad_arguments_raise_value_error_not_a_crash():
    E = np.zeros((0, 0), np.int32)
    band = np.zeros((4, 4), np.int32)
    freq, tot, bits = _kernels.new_lossy_models()
    st = _kernels.new_encoder()
    out = np.zeros(64, np.uint8)
    with pytest.raises(ValueError, match="bits"):
        _hlc.encode_lossy_band(band, E, st, out, out, freq, tot, bits[:-1], 0)
    with pytest.raises(ValueError, match="orient"):
        _hlc.encode_lossy_band(band, E, st, out, out, freq, tot, bits, 3)
    with pytest.raises(ValueError, match="contexts"):
        _hlc.encode_lossy_band(band, E, st, out, out, freq[:-1], tot[:-1], bits, 0)
    with pytest.raises(ValueError, match="band"):
        _hlc.encode_lossy_band(band.astype(np.int64), E, st, out, out, freq, tot, bits, 0)
    with pytest.raises(ValueError, match="encoder state"):
        _hlc.encode_lossy_band(band, E, np.zeros(8, np.int64), out, out, freq, tot, bits, 0)


def test_the_encoder_never_writes_past_its_buffers():
    E = np.zeros((0, 0), np.int32)
    band = np.random.default_rng(0).integers(-1000, 1000, (32, 32)).astype(np.int32)
    freq, tot, bits = _kernels.new_lossy_models()
    st = _kernels.new_encoder()
    memory = np.full(4096, 0xAA, np.uint8)
    out, raw = memory[:80], memory[1000:1040]
    _hlc.encode_lossy_band(band, E, st, out, raw, freq, tot, bits, 1)
    _hlc.finish_encoder(st, out, raw)
    assert st[_kernels.E_POS] > out.size and st[_kernels.E_RAWPOS] > raw.size
    assert (memory[80:1000] == 0xAA).all() and (memory[1040:] == 0xAA).all()


@settings(max_examples=40, deadline=None)
@given(data=hst.binary(min_size=0, max_size=300))
def test_any_bytes_decode_to_bounded_bands(data):
    """A damaged segment decodes in bounded time to bands within the coder's range."""
    dec = entropy._Decoder(bytes([len(data) // 2]) + data, lossy=True)
    for orient, shape in enumerate([(9, 7), (1, 30), (30, 1)]):
        band = dec.lossy_band(shape, orient)
        assert band.shape == shape and int(np.abs(band.astype(np.int64)).max()) <= 0x3FFFFFFF


def test_damaged_lossy_streams_raise_hlc_error_or_decode_in_bounds():
    img = _dicom("CT_small.dcm")
    data = hlc.encode(img, mode="lossy", bpp=1.0, try_near_lossless=False)
    rng = np.random.default_rng(3)
    for _ in range(40):
        bad = bytearray(data)
        for p in rng.integers(0, len(bad), 3):
            bad[p] ^= int(rng.integers(1, 256))
        try:
            out = hlc.decode(bytes(bad))
        except HlcError:
            continue
        assert out.shape == img.shape and out.dtype == img.dtype


def test_the_golden_streams_of_the_lossy_band_coder_use_it_and_older_ones_do_not():
    """lossy_ctx_*: the first variant (flag bit 4); lossy_runs_*: its quiet-run variant
    (bits 4 and 5, stop 26); older lossy streams: neither."""
    from pathlib import Path

    v3 = Path(__file__).parent / "golden" / "v3"
    both = FLAG_LOSSY_CONTEXTS | FLAG_LOSSY_RUNS
    for pattern, count, flags in (("lossy_ctx_*.hlc", 3, FLAG_LOSSY_CONTEXTS), ("lossy_runs_*.hlc", 4, both)):
        paths = sorted(v3.glob(pattern))
        assert len(paths) == count
        for path in paths:
            assert ct.parse_header(path.read_bytes())[0].flags & both == flags
    assert not ct.parse_header((v3 / "lossy_ct_bpp1.hlc").read_bytes())[0].flags & both


@pytest.mark.parametrize("name", ["lossless_ct", "near_lossless_mr_k2", "lossless_nm_tiles"])
def test_lossless_and_near_lossless_streams_are_the_golden_bytes(name):
    """The lossy band coder leaves every other stream as it was, byte for byte."""
    import json
    from pathlib import Path

    v3 = Path(__file__).parent / "golden" / "v3"
    params = json.loads((v3 / "manifest.json").read_text())[name]["params"]
    source = {"lossless_ct": lambda: _dicom("CT_small.dcm"), "near_lossless_mr_k2": lambda: _dicom("MR_small.dcm"),
              "lossless_nm_tiles": lambda: np.ascontiguousarray(_dicom("JPEG2000_UNC.dcm")[300:428, :96])}[name]()
    assert hlc.encode(source, **params) == (v3 / f"{name}.hlc").read_bytes()


def _mixed_bands(seed: int) -> list:
    """A 61 x 83, 3-level decomposition whose bands mix tiny and huge magnitudes (every
    neighbourhood size the contexts bucket, magnitudes past the coder's byte caps)."""
    rng = np.random.default_rng(seed)
    shapes = band_shapes(61, 83, 3)

    def one(shape, k, r):
        scale = [0.3, 3.0, 40.0, 2e3, 3e6][(k + r) % 5]
        x = np.rint(rng.laplace(0, scale, shape)) * (rng.random(shape) < 0.4)
        return np.clip(x, -_LIMIT, _LIMIT).astype(np.int32)

    return [one(shapes[0], 0, 0)] + [tuple(one(s, k, r) for k, s in enumerate(shapes[r])) for r in range(1, 4)]


def test_the_lossy_coder_s_bytes_are_pinned():
    """The stream bytes of FLAG_LOSSY_CONTEXTS are fixed (streams in the field decode):
    the speed-ups of the coder (byte magnitude rows capped at 255, parent sums capped,
    table buckets) must give the bytes of the first coder exactly. Digest made with
    the coder as first released (commit af514f1)."""
    import hashlib

    h = hashlib.sha256()
    for seed in range(6):
        for seg in entropy.encode_decomposition(_mixed_bands(seed), 3, lossy=True):
            h.update(seg)
    assert h.hexdigest() == "d40e166cdaa5f4414d2637b001df4c90ca68ac417a0c8357157524823125315c"


@settings(max_examples=40, deadline=None)
@given(states=hst.lists(hst.integers(-2**31, 2**31 - 1), min_size=1, max_size=8), data=hst.binary(max_size=200))
def test_models_in_any_state_code_within_bounds(states, data):
    """Binary models handed in from outside in any state (probabilities out of range,
    counts past the rate cap, negative words) are clamped before coding: a round trip
    of a band still holds, and decoding with them stays within bounds."""
    band = np.random.default_rng(len(states)).integers(-3, 4, (13, 11)).astype(np.int32)
    freq, tot, bits = _kernels.new_lossy_models()
    bits[:] = np.resize(np.array(states, np.int64).astype(np.int32), bits.size)
    start = bits.copy()
    enc = entropy._Encoder(band.size, 8, worst_case=True, lossy=True)
    enc.models = (freq, tot, bits)
    enc.lossy_band(band, 2)
    seg = enc.finish()
    dec = entropy._Decoder(seg, lossy=True)
    dec.models = (dec.models[0], dec.models[1], start.copy())
    assert (dec.lossy_band(band.shape, 2) == band).all()
    dec = entropy._Decoder(bytes([len(data) // 2]) + data, lossy=True)
    dec.models = (dec.models[0], dec.models[1], start.copy())
    out = dec.lossy_band((9, 30), 0)
    assert int(np.abs(out.astype(np.int64)).max(initial=0)) <= 0x3FFFFFFF
