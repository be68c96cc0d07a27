"""The lossless wavelet band coder (codec_core/_native/bandcoder.c) codes every
stream of format v1-v3: its bytes, and what it decodes from damaged bytes, are pinned.
A speed-up of the coder must leave both identical (digests made with the coder of
commit eae4ddc)."""
from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from codec_core import entropy
from codec_core.errors import CorruptStreamError
from codec_core.transform import band_shapes, dwt53_forward

# real images coded by the wavelet (CR, MR) and by the predictive coder (CT, NM, US):
# the band coder meets both kinds of statistics in the coder choice's sample blocks
IMAGES = ("RG3_UNCR.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm", "JPEG2000_UNC.dcm", "OBXXXX1A.dcm")


def _crop(name: str) -> np.ndarray:
    a = pydicom.dcmread(get_testdata_file(name)).pixel_array  # exact names: no network
    a = a.reshape(-1, *a.shape[-2:])[0] if a.ndim > 2 else a
    r, c = a.shape
    return np.ascontiguousarray(a[r // 4:r // 4 + 301, c // 4:c // 4 + 257]).astype(np.int32)


def _mixed_bands(seed: int, rows: int = 67, cols: int = 45, levels: int = 3) -> list:
    """A synthetic decomposition: runs of zeros, small and large magnitudes (up to the
    coder's limit: long raw fields), every sign, odd shapes."""
    rng = np.random.default_rng(seed)
    shapes = band_shapes(rows, cols, levels)

    def one(shape, k):
        scale = [0.4, 2.0, 30.0, 5e3, 6e6][(seed + k) % 5]
        x = np.rint(rng.laplace(0, scale, shape)) * (rng.random(shape) < [0.1, 0.5, 0.9][(seed + k) % 3])
        return np.clip(x, -(entropy.MAX_COEFFICIENT // 2 - 1), entropy.MAX_COEFFICIENT // 2 - 1).astype(np.int32)

    return [one(shapes[0], 0)] + [tuple(one(s, k) for k, s in enumerate(shapes[r])) for r in range(1, levels + 1)]


def _decompositions() -> list[tuple[list, int, int, int]]:
    out = []
    for name in IMAGES:
        a = _crop(name)
        out.append((dwt53_forward(a, 4), a.shape[0], a.shape[1], 4))
    for seed in range(8):
        rows, cols = 31 + 17 * seed, 90 - 9 * seed
        out.append((_mixed_bands(seed, rows, cols, 1 + seed % 4), rows, cols, 1 + seed % 4))
    return out


def _flat(bands: list) -> list[np.ndarray]:
    return [np.asarray(bands[0])] + [np.asarray(b) for level in bands[1:] for b in level]


def test_band_coder_bytes_and_round_trips_are_pinned():
    h = hashlib.sha256()
    for bands, rows, cols, levels in _decompositions():
        segs = entropy.encode_decomposition(bands, levels)
        for seg in segs:
            h.update(len(seg).to_bytes(4, "little") + seg)
        back = entropy.decode_decomposition(segs, rows, cols, levels)
        for x, y in zip(_flat(bands), _flat(back), strict=True):
            assert np.array_equal(x, y)
    assert h.hexdigest() == "c8cd5f8b73e5dc97476f5e288de8e0ab28e0f326a6b0e54f83244715f5018c96"


def _damaged(seg: bytes, rng: np.random.Generator) -> list[bytes]:
    flips = bytearray(seg)
    for p in rng.integers(0, len(seg), 3):
        flips[p] ^= int(rng.integers(1, 256))
    return [bytes(flips), seg[:len(seg) * 2 // 3], seg + bytes(rng.integers(0, 256, 9, dtype=np.uint8)),
            bytes(rng.integers(0, 256, len(seg), dtype=np.uint8))]


def test_band_decoder_output_on_damaged_segments_is_pinned():
    """Damaged segments decode (or fail) exactly as before: the decoder's arithmetic on
    bad input (clamped magnitudes, runs clamped to the row, zeros past the end)."""
    rng = np.random.default_rng(16)
    h = hashlib.sha256()
    for bands, rows, cols, levels in _decompositions()[::2]:
        segs = entropy.encode_decomposition(bands, levels)
        for r, seg in enumerate(segs):
            if not seg:
                continue
            for bad in _damaged(seg, rng):
                trial = list(segs)
                trial[r] = bad
                try:
                    back = entropy.decode_decomposition(trial, rows, cols, levels, upto=r)
                except CorruptStreamError:
                    h.update(b"error")
                    continue
                for x in _flat(back):
                    h.update(np.ascontiguousarray(x, dtype=np.int32).tobytes())
    assert h.hexdigest() == "c5304bff473377c71f6571c102ad0fa63a82bf65629f6b91c41df6e6387774a3"


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 3), (5, 130)])
def test_band_coder_round_trips_tiny_and_thin_bands(shape):
    rng = np.random.default_rng(shape[0] * 131 + shape[1])
    a = rng.integers(-300, 300, shape).astype(np.int32) * (rng.random(shape) < 0.5)
    levels = 0 if min(shape) < 2 else 1
    bands = dwt53_forward(a, levels)
    back = entropy.decode_decomposition(entropy.encode_decomposition(bands, levels), *shape, levels)
    for x, y in zip(_flat(bands), _flat(back), strict=True):
        assert np.array_equal(x, y)


def test_decoders_reciprocal_division_is_exact_for_every_total():
    """The band decoder divides the range by a model's total as a multiply by a reciprocal
    (rangecoder.h): exact for every total a model can hold (2 to HLC_LIMIT), both for the
    reciprocal a band starts with and for the one an update makes, at the quotients where
    a too-large reciprocal would first show (n = q * total - 1 and q * total + total - 1,
    the largest remainders, with q up to the largest)."""
    from codec_core import _hlc

    totals = np.arange(2, (1 << 15) + 1, dtype=np.int64)
    n_list, t_list = [], []
    for q_from_top in (0, 1, 2, 17):
        q = (2**32 - 1) // totals - q_from_top
        for n in (q * totals - 1, q * totals, q * totals + totals - 1):
            keep = (n >= 0) & (n <= 2**32 - 1)
            n_list.append(n[keep])
            t_list.append(totals[keep])
    rng = np.random.default_rng(7)
    t_rand = rng.integers(2, (1 << 15) + 1, 200_000)
    n_list += [rng.integers(0, 2**32, 200_000), np.full(totals.size, 2**32 - 1)]
    t_list += [t_rand, totals]
    n, t = np.concatenate(n_list).astype(np.int64), np.concatenate(t_list).astype(np.int64)
    out = np.empty((2, n.size), np.int64)
    _hlc.range_shares(n, t, out)
    assert np.array_equal(out[0], n // t)
    assert np.array_equal(out[1], n // t)
    with pytest.raises(ValueError, match="out of range"):
        _hlc.range_shares(np.array([5], np.int64), np.array([1], np.int64), np.empty((2, 1), np.int64))
