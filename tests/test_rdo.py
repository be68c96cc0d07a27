"""RDO quantisation (codec_core.quantize.rdo_levels): a unit check of the decision."""
from __future__ import annotations

import numpy as np
import pytest

from codec_core import entropy, quantize


def laplacian_band(seed: int, shape=(64, 64), scale: float = 1.2) -> np.ndarray:
    """Magnitudes in steps of a detail band: Laplacian, with a busier patch."""
    rng = np.random.default_rng(seed)
    x = np.abs(rng.laplace(0, scale, shape))
    x[16:40, 20:50] *= 4
    return x.astype(np.float32)


def coded_bytes(level: np.ndarray, signs: np.ndarray) -> int:
    """The band coder's size of a one-level decomposition whose detail bands are all
    this band (the LL band empty)."""
    q = np.where(signs, -level, level).astype(np.int32)
    ll = np.zeros_like(q)
    return sum(map(len, entropy.encode_decomposition([ll, (q, q, q)], 1)))


@pytest.mark.parametrize("seed", range(6))
def test_rdo_never_increases_the_coded_size_against_rounding(seed):
    x = laplacian_band(seed)
    signs = np.random.default_rng(100 + seed).random(x.shape) < 0.5
    rounded = np.floor(x + np.float32(0.5))
    rdo = quantize.rdo_levels(x, quantize.RDO_LAMBDA)
    # every level is one of rounded, rounded - 1, 0
    assert np.all((rdo == rounded) | (rdo == rounded - 1) | (rdo == 0))
    assert (rdo != rounded).any()  # (the check below must be able to fail)
    assert coded_bytes(rdo, signs) <= coded_bytes(rounded, signs)


@pytest.mark.parametrize("seed", range(3))
def test_rdo_lowers_distortion_plus_lambda_rate_in_coded_bits(seed):
    """At its lambda, the decision's D + lambda R (R: bits the band coder really
    spends) is below plain rounding's."""
    x = laplacian_band(seed, scale=0.8)
    signs = np.zeros(x.shape, bool)

    def cost(level: np.ndarray) -> float:
        recon = np.where(level > 0, level + quantize.RECON_OFFSET, 0.0)
        d = float(np.sum((x - recon) ** 2))
        return d + quantize.RDO_LAMBDA * 8 * coded_bytes(level, signs) / 3  # (three copies of the band)

    assert cost(quantize.rdo_levels(x, quantize.RDO_LAMBDA)) < cost(np.floor(x + np.float32(0.5)))


def test_zero_lambda_is_nearest_reconstruction():
    """With no rate term, each coefficient takes the level whose reconstruction is nearest."""
    x = laplacian_band(9)
    got = quantize.rdo_levels(x, 0.0)
    r = np.floor(x + np.float32(0.5))
    err = lambda v: np.where(v > 0, x - v - quantize.RECON_OFFSET, x) ** 2  # noqa: E731
    assert np.all(err(got) <= err(r) + 1e-6)
    assert np.all(err(got) <= err(np.maximum(r - 1, 0)) + 1e-6)


def test_quantise_signature_and_fine_steps_unchanged():
    """quantise() keeps its signature (RDO is a keyword, off by default); below a unit
    step it quantises as without RDO, above it differs."""
    rng = np.random.default_rng(3)

    def bands():
        return [rng.normal(0, 50, (32, 32)).astype(np.float32),
                tuple(rng.laplace(0, 2, (32, 32)).astype(np.float32) for _ in range(3))]

    def flat(q):
        return [q[0], *q[1]]

    b = bands()
    fine = flat(quantize.quantise(b, [0.5] * 4, 1, rdo=True))
    for a, c in zip(fine, flat(quantize.quantise(b, [0.5] * 4, 1)), strict=True):
        assert np.array_equal(a, c)
    b = bands()
    got = flat(quantize.quantise(b, [1.5] * 4, 1, None, False, True))
    assert any(not np.array_equal(a, c) for a, c in zip(got, flat(quantize.quantise(b, [1.5] * 4, 1)), strict=True))
