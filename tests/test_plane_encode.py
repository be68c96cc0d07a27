"""The one-call lossless plane encoder (codec_core/_native/planeencode.c:
``entropy.encode_lossless_plane``) makes the bytes of the step-by-step path it replaces
for planes held whole (the coder choice's blocks, the small planes coded both ways):
``entropy.encode_decomposition(dwt53_forward(plane, levels), levels)``."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from codec_core import _kernels, encoder, entropy
from codec_core.transform import dwt53_forward, forward

IMAGES = ("RG3_UNCR.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm", "JPEG2000_UNC.dcm", "OBXXXX1A.dcm", "US1_UNCR.dcm")


def _step_by_step(plane: np.ndarray, levels: int) -> list[bytes]:
    """The reference: the numpy lifting (transform.split_forward, through forward without
    a size), not the compiled analysis the one-call encoder shares with dwt53_forward."""
    a = np.asarray(plane)
    return entropy.encode_decomposition(forward(lambda sel: a[sel].astype(np.int32), levels, "5/3"), levels)


def _random_plane(rng: np.random.Generator, kind: int) -> np.ndarray:
    h, w = (int(v) for v in rng.integers(1, 80, 2))
    bits = int(rng.integers(1, 25))
    if kind == 0:  # noise of any depth, signed
        x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (h, w))
    elif kind == 1:  # constant: every detail level empty (format v2's empty segments)
        x = np.full((h, w), int(rng.integers(-(1 << bits), 1 << bits)))
    elif kind == 2:  # smooth rows: small details, long runs of zeros
        x = np.cumsum(rng.integers(-2, 3, (h, w)), axis=1)
    else:  # sparse spikes: runs ended by large magnitudes (long raw fields)
        x = (rng.random((h, w)) < 0.05) * rng.integers(0, 1 << bits, (h, w))
    return x.astype(np.int32)


def test_random_planes_code_as_the_step_by_step_path():
    rng = np.random.default_rng(2026)
    for t in range(1200):
        plane = _random_plane(rng, t % 4)
        levels = int(rng.integers(0, 7))
        before = plane.copy()
        assert entropy.encode_lossless_plane(plane, levels) == _step_by_step(plane, levels), (t, plane.shape, levels)
        assert np.array_equal(plane, before)  # read only


@pytest.mark.parametrize("name", IMAGES)
def test_real_planes_code_as_the_step_by_step_path(name):
    a = pydicom.dcmread(get_testdata_file(name)).pixel_array  # exact names: no network
    a = a[..., 0] if a.ndim == 3 and a.shape[-1] == 3 else a
    a = a.reshape(-1, *a.shape[-2:])[0]
    r, c = a.shape
    for box, levels in (((r // 3, 64, c // 3, 64), 3), ((0, 97, 5, 131), 5), ((r // 2, 301, c // 4, 257), 2)):
        plane = np.ascontiguousarray(a[box[0]:box[0] + box[1], box[2]:box[2] + box[3]], dtype=np.int32)
        assert entropy.encode_lossless_plane(plane, levels) == _step_by_step(plane, levels)


def test_other_input_types_are_taken_as_int32():
    x = np.arange(40 * 33, dtype=np.uint16).reshape(40, 33)[:, ::-1]  # strided, unsigned
    assert entropy.encode_lossless_plane(x, 3) == _step_by_step(x.astype(np.int32), 3)


def test_a_coefficient_past_the_limit_raises_the_coders_error():
    i, j = np.indices((8, 8))
    checker = (np.where((i + j) % 2, 1, -1) * (1 << 26)).astype(np.int32)  # HH 2^28: past it on level 1
    spike = np.zeros((8, 8), np.int32)
    spike[3, 4] = entropy.MAX_COEFFICIENT  # the LL band itself with no level
    fresh = _kernels.fresh_plane_models()[:4]
    for x, levels in ((checker, 1), (spike, 0)):
        with pytest.raises(RuntimeError, match="beyond the entropy coder's limit"):
            _step_by_step(x, levels)
        with pytest.raises(RuntimeError, match="beyond the entropy coder's limit"):
            entropy.encode_lossless_plane(x, levels)
        assert _kernels.encode_lossless_plane(x, levels, fresh, entropy.MAX_COEFFICIENT) is None
    # the limit is the caller's: the spike at it is refused, below it coded
    assert _kernels.encode_lossless_plane(spike, 0, fresh, entropy.MAX_COEFFICIENT + 1) is not None
    spike[3, 4] -= 1
    assert _kernels.encode_lossless_plane(spike, 0, fresh, entropy.MAX_COEFFICIENT) == _step_by_step(spike, 0)


def test_bad_arguments_are_refused():
    fresh = _kernels.fresh_plane_models()[:4]
    ok = np.ones((4, 4), np.int32)
    for args in ((ok.astype(np.int64), 1, fresh, 1 << 27),        # not int32
                 (np.ones(4, np.int32), 1, fresh, 1 << 27),        # not 2-D
                 (np.ones((0, 4), np.int32), 1, fresh, 1 << 27),   # empty
                 (ok[:, ::2], 1, fresh, 1 << 27),                  # not contiguous
                 (ok, -1, fresh, 1 << 27), (ok, 31, fresh, 1 << 27),
                 (ok, 1, fresh[:3], 1 << 27),
                 (ok, 1, (fresh[1], fresh[0], fresh[2], fresh[3]), 1 << 27)):
        with pytest.raises(ValueError):
            _kernels.encode_lossless_plane(*args)


def test_small_planes_coded_both_ways_keep_the_smaller():
    """encoder._both_ways (a single plane too small for the coder choice) takes the
    compiled wavelet side: still the smaller of the two codings."""
    rng = np.random.default_rng(7)
    smooth = np.cumsum(np.cumsum(rng.integers(-1, 2, (60, 70)), 0), 1).astype(np.int32)
    noisy = rng.integers(0, 4096, (60, 70)).astype(np.int32)
    for plane in (smooth, noisy):
        segs = encoder._both_ways(plane, 3)
        wav = encoder.wavelet_segments(dwt53_forward(plane, 3), 3)
        pred = encoder._predictive_lossless(plane, 3)
        assert segs == min(wav, pred, key=lambda s: sum(map(len, s)))
