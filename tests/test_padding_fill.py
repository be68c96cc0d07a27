"""The padding fill's interpolation (regions._double, _halve, _push_pull) in place and
without full-size copies gives the plain formulas' values bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from codec_core import regions


def double_reference(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Each sample repeated, then (before + 2 x + after) / 4 each way (edges repeated)."""
    y = np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)
    for axis in (0, 1):
        lo = np.concatenate([np.take(y, [0], axis), np.take(y, range(y.shape[axis] - 1), axis)], axis)
        hi = np.concatenate([np.take(y, range(1, y.shape[axis]), axis), np.take(y, [-1], axis)], axis)
        y = (lo + 2 * y + hi) / 4
    return y[:shape[0], :shape[1]]


def halve_reference(x: np.ndarray) -> np.ndarray:
    r, c = x.shape
    p = np.zeros((r + (r & 1), c + (c & 1)))
    p[:r, :c] = x
    return p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (4, 6), (7, 9), (32, 17)])
def test_double_and_halve_match_the_plain_formulas(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(0, 1000, shape) * rng.random(shape)  # (values whose sums round)
    out = (2 * shape[0] - (shape[0] > 1), 2 * shape[1])
    assert np.array_equal(regions._double(x, out), double_reference(x, out))
    assert np.array_equal(regions._halve(x), halve_reference(x))
    assert np.array_equal(regions._halve(x > 0), halve_reference(x > 0))


@pytest.mark.parametrize("seed", range(4))
def test_push_pull_keeps_the_known_samples_and_fills_within_their_range(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2000, 3000, (40, 37)).astype(np.int16)
    known = rng.random(x.shape) < 0.4
    est = regions._push_pull(x, known)
    assert est.dtype == np.float64
    assert np.array_equal(est[known], x[known].astype(np.float64))
    assert x[known].min() <= est[~known].min() and est[~known].max() <= x[known].max()
