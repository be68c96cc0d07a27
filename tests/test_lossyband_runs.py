"""The lossy band coder's quiet-run variant (codec_core/_native/lossyband.c, stream flag
LOSSY_RUNS): round trips of every band shape, its pinned bytes, its stream flags, the
same decoded image as the first variant, and damaged input."""
from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pydicom.data
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import codec_core as hlc
from codec_core import _kernels, encoder, entropy
from codec_core import container as ct
from codec_core.format import FLAG_LOSSY_CONTEXTS, FLAG_LOSSY_RUNS
from codec_core.transform import band_shapes

_LIMIT = entropy.MAX_COEFFICIENT - 1


def _dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array


def _sparse_bands(rng: np.random.Generator, rows: int, cols: int, levels: int, scale: float, density: float,
                  zero_rows: float) -> list:
    """Bands with whole zero rows and sparse nonzeros: every path of the variant (zero
    rows, quiet runs all zero or not, runs beside parents, groups, the last columns)."""
    def one(shape):
        x = np.rint(rng.laplace(0, scale, shape)) * (rng.random(shape) < density)
        x[rng.random(shape[0]) < zero_rows] = 0
        return np.clip(x, -_LIMIT, _LIMIT).astype(np.int32)

    shapes = band_shapes(rows, cols, levels)
    return [one(shapes[0])] + [tuple(one(s) for s in shapes[r]) for r in range(1, levels + 1)]


def _round_trip(bands: list, rows: int, cols: int, levels: int) -> None:
    segs = entropy.encode_decomposition(bands, levels, lossy=True, runs=True)
    out = entropy.decode_decomposition(segs, rows, cols, levels, lossy=True, runs=True)
    for got, want in zip(out[1:], bands[1:], strict=True):
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w)


@settings(max_examples=150, deadline=None)
@given(rows=hst.integers(1, 90), cols=hst.integers(1, 90), levels=hst.integers(1, 3),
       scale=hst.sampled_from([0.3, 1.0, 4.0, 300.0, 1e9]), density=hst.sampled_from([0.0, 0.002, 0.02, 0.2, 1.0]),
       zero_rows=hst.floats(0.0, 1.0), seed=hst.integers(0, 2**32 - 1))
def test_a_decomposition_round_trips_through_the_quiet_run_variant(rows, cols, levels, scale, density, zero_rows,
                                                                   seed):
    """Every band shape (1 x n, n x 1, widths below, at and past 16 and 32)."""
    _round_trip(_sparse_bands(np.random.default_rng(seed), rows, cols, levels, scale, density, zero_rows),
                rows, cols, levels)


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (37, 1), (2, 64), (64, 2), (3, 16), (5, 33)])
def test_one_band_at_the_magnitude_limit_round_trips(shape):
    band = np.full(shape, _LIMIT, np.int32)
    band[..., ::2] = -_LIMIT
    band[::2] = 0  # zero rows between full ones
    enc = entropy._Encoder(band.size, entropy.raw_bits_for(_LIMIT), worst_case=True, lossy=True)
    enc.lossy_band(band, 2, runs=True)
    dec = entropy._Decoder(enc.finish(), lossy=True)
    assert np.array_equal(dec.lossy_band(shape, 2, runs=True), band)


def test_quiet_areas_cost_fewer_bytes_than_in_the_first_variant():
    """A band of zeros but for a few values beside zero parents: the zero rows and runs
    take one decision each instead of one per group of four, so fewer bytes too."""
    parent = np.zeros((32, 128), np.int32)
    band = np.zeros((64, 256), np.int32)
    band[10, 100], band[40, 7], parent[3, 3] = 2, -1, 5
    ll = np.zeros((32, 128), np.int32)
    size = {runs: len(entropy.encode_decomposition([ll, (parent,) * 3, (band,) * 3], 2, lossy=True, runs=runs)[2])
            for runs in (False, True)}
    assert size[True] < size[False]


def _mixed_bands(seed: int) -> list:
    rng = np.random.default_rng(seed)
    return _sparse_bands(rng, 97, 131, 3, [0.5, 3.0, 2e3][seed % 3], [0.01, 0.1, 0.5][seed % 3], 0.3)


def test_the_quiet_run_variant_s_bytes_are_pinned():
    """The stream bytes of FLAG_LOSSY_RUNS are fixed (streams in the field decode): any
    later speed-up of the coder must give these bytes exactly. Digest made with the
    variant as first released (stop 26, branch run)."""
    h = hashlib.sha256()
    for seed in range(6):
        for seg in entropy.encode_decomposition(_mixed_bands(seed), 3, lossy=True, runs=True):
            h.update(seg)
    assert h.hexdigest() == "56fcdd3ccc562c23fe237b6ec14bd8683473909f91bcebc6fc2bd73c91e343f4"


@settings(max_examples=40, deadline=None)
@given(data=hst.binary(min_size=0, max_size=300))
def test_any_bytes_decode_to_bounded_bands(data):
    dec = entropy._Decoder(bytes([len(data) // 2]) + data, lossy=True)
    parent = np.zeros((0, 0), np.int32)
    for orient, shape in enumerate([(9, 40), (1, 30), (30, 1)]):
        band = dec.lossy_band(shape, orient, parent, runs=True)
        assert band.shape == shape and int(np.abs(band.astype(np.int64)).max()) <= 0x3FFFFFFF
        parent = band


def test_models_in_any_state_code_within_bounds():
    """The variant's own models (after the first variant's) are clamped like the others."""
    band = np.zeros((20, 48), np.int32)
    band[5, 20], band[12] = 3, 1
    freq, tot, bits = _kernels.new_lossy_models()
    bits[:] = np.random.default_rng(1).integers(-2**31, 2**31 - 1, bits.size, dtype=np.int64).astype(np.int32)
    start = bits.copy()
    enc = entropy._Encoder(band.size, 8, worst_case=True, lossy=True)
    enc.models = (freq, tot, bits)
    enc.lossy_band(band, 1, runs=True)
    dec = entropy._Decoder(enc.finish(), lossy=True)
    dec.models = (dec.models[0], dec.models[1], start)
    assert (dec.lossy_band(band.shape, 1, runs=True) == band).all()


def _first_variant(monkeypatch) -> None:
    """Make the encoder write the first variant (flag bit 4 only), as before stop 26."""
    code = entropy.encode_decomposition
    monkeypatch.setattr(encoder, "FLAG_LOSSY_RUNS", 0)
    monkeypatch.setattr(entropy, "encode_decomposition", lambda *a, **k: code(*a, **{**k, "runs": False}))


def _images() -> dict:
    ct_ = _dicom("CT_small.dcm")
    rgb = np.ascontiguousarray(_dicom("US1_UNCR.dcm")[200:300, 300:421])
    return {
        "int16": ct_, "uint16_odd": _dicom("emri_small.dcm")[1, :61, :47].astype(np.uint16),
        "uint8_rgb": rgb, "uint8": rgb[..., 1].copy(), "int8": (ct_[:77, :93] // 16).clip(-128, 127).astype(np.int8),
        "one_row": ct_[60:61].copy(), "one_column": ct_[:, 60:61].copy(), "two_rows": ct_[:2, :100].copy(),
        "tiles": ct_.astype(np.uint16),
    }


@pytest.mark.parametrize("name", list(_images()))
def test_streams_of_both_variants_decode_to_the_same_image(name, monkeypatch):
    """At a PSNR target (steps chosen by the error, not the size) both variants code the
    same quantised bands: the new streams (flag bits 4 and 5) decode to the image the
    first variant's streams (bit 4 only) decode to, on every sample type, colour, odd
    sizes, one-row and one-column images and tiles."""
    img = _images()[name]
    kw = dict(mode="lossy", psnr=42.0, try_near_lossless=False, tile_size=64 if name == "tiles" else None)
    new = hlc.encode(img, **kw)
    with monkeypatch.context() as m:
        _first_variant(m)
        old = hlc.encode(img, **kw)
    flags_new, flags_old = ct.parse_header(new)[0].flags, ct.parse_header(old)[0].flags
    assert flags_new & FLAG_LOSSY_CONTEXTS and flags_new & FLAG_LOSSY_RUNS
    assert flags_old & FLAG_LOSSY_CONTEXTS and not flags_old & FLAG_LOSSY_RUNS
    a, b = hlc.decode(new), hlc.decode(old)
    assert a.dtype == img.dtype and a.shape == img.shape
    assert np.array_equal(a, b)


def test_reversible_streams_do_not_set_the_run_flag():
    img = _dicom("CT_small.dcm")
    for kw in (dict(mode="lossless"), dict(mode="near-lossless", max_error=2)):
        assert not ct.parse_header(hlc.encode(img, **kw))[0].flags & FLAG_LOSSY_RUNS

