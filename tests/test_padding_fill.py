"""The padding fill's interpolation (regions._double, _halve, _push_pull) in place, a
row at a time in C and without full-size copies gives the plain formulas' values bit for bit."""
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


def push_pull_reference(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The push-pull on whole planes (af514f1's regions._push_pull): the float64 plane."""
    pyramid = [(regions._halve(np.where(known, x, 0.0)), regions._halve(known))]
    while pyramid[-1][0].size > 1:
        v, w = pyramid[-1]
        pyramid.append((regions._halve(v), regions._halve(w)))
    v, w = pyramid[-1]
    est = v / np.maximum(w, 1e-12)
    for v, w in reversed(pyramid[:-1]):
        up = regions._double(est, v.shape)
        est = np.where(w > 0, v / np.maximum(w, 1e-12), up)
    up = regions._double(est, known.shape)
    np.copyto(up, x, where=known)
    return up


def fill_reference(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``x`` with its unknown samples the rounded, clipped whole-plane push-pull."""
    info = np.iinfo(x.dtype)
    return np.where(known, x, np.clip(np.rint(push_pull_reference(x, known)), info.min, info.max)).astype(x.dtype)


def disc_outside(rows: int, cols: int) -> np.ndarray:
    """A CT's padding: outside the reconstruction circle."""
    r, c = np.ogrid[:rows, :cols]
    return (r - rows / 2) ** 2 + (c - cols / 2) ** 2 > (min(rows, cols) / 2.2) ** 2


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 7), (3, 3), (5, 2), (17, 9), (64, 64), (65, 130),
                                   (131, 67), (200, 37)])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.uint16, np.int32])
@pytest.mark.parametrize("strided", [False, True])
def test_compiled_push_pull_equals_the_whole_plane_reference(shape, dtype, strided):
    """The fill computed a row at a time (regionmap.c fill_sums, fill_plane) writes the
    values the whole-plane push-pull gives, bit for bit, on random and CT-like masks of
    every shape parity, into a plane of its own or a channel of a colour image."""
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    info = np.iinfo(dtype)
    x = rng.integers(max(info.min, -30000), min(info.max, 30000), shape, endpoint=True).astype(dtype)
    for known in (rng.random(shape) < 0.3, ~disc_outside(*shape), rng.random(shape) < 0.02):
        if not known.any() or known.all():
            continue
        if strided:  # (channel 1 of a colour image, read and written in place)
            image = np.zeros(shape + (3,), dtype)
            image[..., 1] = x
            regions._push_pull(image[..., 1], known, image[..., 1])
            assert not image[..., 0].any() and not image[..., 2].any()
            out = image[..., 1]
        else:
            out = x.copy()
            regions._push_pull(x, known, out)
        assert np.array_equal(out, fill_reference(x, known))


def test_compiled_push_pull_on_a_padded_ct():
    """A real padded CT (693_UNCR.dcm): the fill of its padding equals the reference's."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("693_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data not installed")
    x = pydicom.dcmread(path).pixel_array
    known = x != x[0, 0]
    out = x.copy()
    regions._push_pull(x, known, out)
    assert np.array_equal(out, fill_reference(x, known))
    assert not np.array_equal(out, x)  # (something was filled)


@pytest.mark.parametrize("seed", range(4))
def test_push_pull_keeps_the_known_samples_and_fills_within_their_range(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2000, 3000, (40, 37)).astype(np.int16)
    known = rng.random(x.shape) < 0.4
    est = x.copy()
    regions._push_pull(x, known, est)
    assert np.array_equal(est[known], x[known])
    assert x[known].min() <= est[~known].min() and est[~known].max() <= x[known].max()
