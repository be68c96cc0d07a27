"""The compiled kernels (codec_core/_native, C) against their Python side and their contract."""
from __future__ import annotations

import platform
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from codec_core import _hlc, _kernels, _predictive_kernels


def test_the_c_constants_are_the_python_tables_ones():
    # the model arrays are built in Python and indexed in C: both must mean the same
    assert _hlc.NSYM == _kernels.NSYM and _hlc.DIRECT == _kernels.DIRECT
    assert _hlc.NCTX == _kernels.NCTX and _hlc.NSIGN_CTX == _kernels.NSIGN_CTX
    assert _hlc.INC == _kernels.INC and _hlc.LIMIT == _kernels.LIMIT
    assert _hlc.NACT == _predictive_kernels.NACT
    assert _hlc.LB_NBITS == _kernels.LB_NBITS and _hlc.LB_NREM == _kernels.LB_NREM


def test_bad_arguments_raise_value_error_not_a_crash():
    E = np.zeros((0, 0), np.int32)
    band = np.zeros((4, 4), np.int32)
    freq, tot = _kernels.new_models(4)
    sfreq, stot = _kernels.new_sign_models(4)
    st = _kernels.new_encoder()
    out = np.zeros(64, np.uint8)
    with pytest.raises(ValueError, match="band"):
        _hlc.encode_band(band.astype(np.int64), E, E, E, st, out, out, freq, tot, 0, sfreq, stot)
    with pytest.raises(ValueError, match="contexts"):  # a model group past the arrays
        _hlc.encode_band(band, E, E, E, st, out, out, freq, tot, 4 * _kernels.NCTX, sfreq, stot)
    with pytest.raises(ValueError, match="encoder state"):
        _hlc.encode_band(band, E, E, E, np.zeros(8, np.int64), out, out, freq, tot, 0, sfreq, stot)
    with pytest.raises(ValueError, match="writable"):
        _hlc.encode_band(band, E, E, E, st, np.frombuffer(bytes(64), np.uint8), out, freq, tot, 0, sfreq, stot)
    with pytest.raises(ValueError, match="C-contiguous"):
        _hlc.med_residual(np.zeros((8, 8), np.int32)[:, ::2], np.zeros((8, 4), np.int32))


def test_an_encoder_never_writes_past_its_buffers_and_reports_the_overflow():
    E = np.zeros((0, 0), np.int32)
    band = np.random.default_rng(0).integers(-1000, 1000, (32, 32)).astype(np.int32)
    freq, tot = _kernels.new_models(4)
    sfreq, stot = _kernels.new_sign_models(4)
    st = _kernels.new_encoder()
    memory = np.full(4096, 0xAA, np.uint8)
    out, raw = memory[:80], memory[1000:1040]   # far too small, with guard bytes after each
    _hlc.encode_band(band, E, E, E, st, out, raw, freq, tot, 0, sfreq, stot)
    _hlc.finish_encoder(st, out, raw)
    assert st[_kernels.E_POS] > out.size and st[_kernels.E_RAWPOS] > raw.size  # the caller sees it
    assert (memory[80:1000] == 0xAA).all() and (memory[1040:] == 0xAA).all()


@pytest.mark.parametrize("consume", [False, True])
def test_compiled_97_synthesis_gives_the_numpy_reference_bit_for_bit(consume):
    """_hlc.synth97 (dequantisation + inverse 9/7 + rounding, codec_core/_native/wavelet97.c)
    and, consuming the bands, _hlc.synth97_level (a level at a time in the bands)
    against quantize.dequantise + transform.dwt97_inverse_rounded: odd sizes, one-sample
    axes, partial resolutions, every output type, into a new array or a strided one."""
    from codec_core import container as ct
    from codec_core import pipeline as pl
    from codec_core import quantize, transform
    rng = np.random.default_rng(18)
    for _ in range(150):
        rows, cols, levels = int(rng.integers(1, 80)), int(rng.integers(1, 80)), int(rng.integers(0, 5))
        shapes = transform.band_shapes(rows, cols, levels)
        q = [rng.integers(-900, 900, shapes[0]).astype(np.int32)] + [
            tuple((rng.integers(-40, 41, s) * (rng.random(s) < 0.4)).astype(np.int32) for s in lvl)
            for lvl in shapes[1:]]
        steps = quantize.subband_steps(float(rng.uniform(0.3, 60)), levels)
        h = ct.Header(mode=2, dtype=3, bits_stored=16, axes=0, frames=1, rows=rows, cols=cols, channels=1,
                      tile_rows=rows, tile_cols=cols, levels=levels, transform=1, colour=0, max_error=0,
                      vmin=-3000, vmax=3000, recon_offset=float(np.float32(0.1)))
        upto = int(rng.integers(0, levels + 1))
        dtype = [np.int16, np.int32, np.uint16, np.uint8, np.int8][int(rng.integers(0, 5))]
        if np.dtype(dtype).itemsize == 1 or dtype == np.uint16:
            h.vmin, h.vmax = (0, 200) if dtype != np.int8 else (-100, 100)

        def copy():
            return [q[0].copy()] + [tuple(b.copy() for b in lvl) for lvl in q[1:]]
        deq = quantize.dequantise(copy(), steps, levels, h.recon_offset, None, upto, False, np.float32)
        ref = transform.dwt97_inverse_rounded(deq, bounds=(h.vmin, h.vmax), dtype=dtype)
        got = pl.reconstruct_lossy_plane(copy(), h, steps, None, upto=upto, dtype=dtype, consume=consume)
        assert got.dtype == ref.dtype and np.array_equal(got, ref), (rows, cols, levels, upto, dtype)
        if consume:  # into a channel of a tile (not contiguous)
            tile = np.zeros(ref.shape + (3,), dtype)
            pl.reconstruct_lossy_plane(copy(), h, steps, None, upto=upto, consume=True, out=tile[..., 1])
            assert np.array_equal(tile[..., 1], ref) and not tile[..., 0].any()
            # into a tile of a larger grey image (rows apart, written in place): the rest untouched
            big = np.full((ref.shape[0] + 3, ref.shape[1] + 5), 7, dtype)
            pl.reconstruct_lossy_plane(copy(), h, steps, None, upto=upto, consume=True, out=big[1:-2, 2:-3])
            assert np.array_equal(big[1:-2, 2:-3], ref)
            big[1:-2, 2:-3] = 7
            assert (big == 7).all()


def test_synth97_level_writes_a_tile_in_place_and_refuses_rows_that_overlap():
    """_hlc.synth97_level into a tile of a larger array (rows apart): the same samples as
    into a plane of its own, nothing written outside it; out arrays whose rows overlap or
    whose samples are not contiguous in a row, or that meet a band, are refused."""
    rng = np.random.default_rng(26)
    ll = rng.integers(-500, 500, (9, 12)).astype(np.int32)
    hl, lh, hh = (rng.integers(-9, 10, s).astype(np.int32) for s in ((9, 11), (8, 12), (8, 11)))
    steps = np.asarray([1.5, 2.0, 3.0], np.float32)

    def level(out):
        _hlc.synth97_level(ll, hl, lh, hh, 4.0, steps, 0.25, out, -30000.0, 30000.0)
    ref = np.empty((17, 23), np.int16)
    level(ref)
    big = np.full((20, 30), 123, np.int16)
    level(big[2:19, 4:27])
    assert np.array_equal(big[2:19, 4:27], ref)
    big[2:19, 4:27] = 123
    assert (big == 123).all()
    base = np.zeros(17 * 23, np.int16)
    overlapping = np.lib.stride_tricks.as_strided(base, (17, 23), (2 * 20, 2))
    with pytest.raises(ValueError, match="rows must come in order"):
        level(overlapping)
    with pytest.raises(ValueError, match="contiguous in a row"):
        level(np.zeros((17, 46), np.int16)[:, ::2])
    with pytest.raises(ValueError, match="rows must come in order"):
        level(np.zeros((34, 23), np.int16)[::-2][::-1][::-1])
    shared = np.zeros(64 * 64, np.int32)
    hl2 = shared[:99].reshape(9, 11)
    hl2[:] = hl
    out = shared[40:].view(np.int32)[:17 * 23].reshape(17, 23)
    with pytest.raises(ValueError, match="overlap"):
        _hlc.synth97_level(ll, hl2, lh, hh, 4.0, steps, 0.25, out, -30000.0, 30000.0)


_SMALL = (1, 2, 3, 4, 5, 6, 7, 9, 16, 17, 33)


def _random_97_bands(rng, rows: int, cols: int, levels: int) -> list:
    """Random quantised bands; in one case of three the details' magnitudes reach 2^30
    (int32 values that float32 rounds: the dequantisation's |q| conversion)."""
    from codec_core import transform
    shapes = transform.band_shapes(rows, cols, levels)
    top = 1 << 30 if rng.random() < 1 / 3 else 3001
    return [rng.integers(-40000, 40000, shapes[0]).astype(np.int32)] + [
        tuple((rng.integers(-top, top, s) * (rng.random(s) < 0.6)).astype(np.int32) for s in lvl)
        for lvl in shapes[1:]]


def _check_97_synthesis(rng, q: list, rows: int, cols: int, levels: int, recon: float) -> None:
    """The bands ``q`` of a rows x cols plane synthesised level by level by synth97_level
    (float32 out) give the numpy lifting's floats as bit patterns, and by synth97 (int32
    out) its rounded values."""
    from codec_core import quantize, transform
    steps = np.asarray(quantize.subband_steps(float(rng.uniform(0.2, 40)), levels), np.float32)
    deq = quantize.dequantise([q[0]] + list(q[1:]), list(steps), levels, recon, None, None, False, np.float32)
    ref = transform.dwt97_inverse(deq)
    ll = q[0]
    for k in range(levels):
        hl, lh, hh = q[1 + k]
        nxt = np.empty((ll.shape[0] + lh.shape[0], ll.shape[1] + hl.shape[1]), np.float32)
        _hlc.synth97_level(ll.copy(), hl.copy(), lh.copy(), hh.copy(), float(steps[0]),
                           steps[1 + 3 * k:4 + 3 * k], recon, nxt, 0.0, 0.0)
        ll = nxt
    if levels:
        assert ref.dtype == np.float32 and np.array_equal(ll.view(np.uint32), ref.view(np.uint32)), \
            (rows, cols, levels)
    out = np.empty((rows, cols), np.int32)
    _hlc.synth97([q[0]] + [b for lvl in q[1:] for b in lvl], steps, recon, out, -(1 << 30), 1 << 30)
    want = np.clip(np.rint(np.asarray(ref, np.float64)), -(1 << 30), 1 << 30)
    assert np.array_equal(out, want), (rows, cols, levels)


def test_the_pipelined_97_synthesis_gives_the_reference_floats_bit_for_bit_on_small_and_odd_shapes(vector_isa):
    """wavelet97.c's one-pass level synthesis (the column lifting a row or two behind the
    row synthesis, in a ring of rows) against the numpy lifting, compared as bit patterns
    before any rounding: every small height and width (1 x n, n x 1, 2 x 2, odd ones) and
    every level count down to one-sample bands, through synth97_level with float32 output
    level by level; and the whole-plane kernel, rounded, on the same bands."""
    rng = np.random.default_rng(1897)
    recon = float(np.float32(0.375))
    for rows in _SMALL:
        for cols in _SMALL:
            for levels in range(0, 7):
                _check_97_synthesis(rng, _random_97_bands(rng, rows, cols, levels), rows, cols, levels, recon)


def _zero_rows(rng, bands: list) -> list:
    """``bands`` with whole detail rows made zero: each row of each band with chance
    1/2, and in one level of three every row of LH and HH (the d rows of zeros that the
    synthesis clears without lifting) or of HL."""
    out = [bands[0]]
    for hl, lh, hh in bands[1:]:
        lvl = [b * (rng.random((b.shape[0], 1)) < 0.5) for b in (hl, lh, hh)]
        pick = rng.integers(0, 3)
        for i in ((1, 2), (0,), ())[pick]:
            lvl[i] = np.zeros_like(lvl[i])
        out.append(tuple(np.ascontiguousarray(b, np.int32) for b in lvl))
    return out


def test_the_97_synthesis_of_rows_of_zeros_gives_the_reference_floats_bit_for_bit(vector_isa):
    """wavelet97.c clears a row whose two detail halves are all zero and skips the
    lifting steps that would add c (0 + 0) with c < 0 (-0.0: no change): on bands with
    whole rows of zeros (at the edges, where the steps mirror, too) the floats of every
    level are the numpy reference's bit patterns, and the rounded plane its values."""
    rng = np.random.default_rng(2027)
    recon = float(np.float32(0.375))
    for rows, cols in ((1, 9), (9, 1), (2, 2), (3, 5), (6, 7), (17, 16), (33, 9), (40, 67)):
        for levels in range(1, 5):
            for _ in range(3):
                q = _zero_rows(rng, _random_97_bands(rng, rows, cols, levels))
                _check_97_synthesis(rng, q, rows, cols, levels, recon)


def _widest_isa() -> int:
    """The vector build this processor can run (0 baseline, 1 AVX2), from /proc/cpuinfo
    (x86-64 Linux; the gcc build has both)."""
    try:
        flags = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return 0
    return int("avx2" in flags)


def test_the_97_synthesis_gives_the_same_bits_with_avx2_and_without():
    """Both builds of the synthesis level (wavelet97.c: AVX2 and baseline) on bands of
    every size class the vector loops meet (widths below, at and past 8 and 16 floats,
    odd), each output type and float32: the same bits; the build asked for, or the
    widest the processor has, reported back."""
    from codec_core import quantize
    rng = np.random.default_rng(2518)
    recon = float(np.float32(0.375))
    was = _hlc.vector_isa(-1)
    assert _hlc.vector_isa(0) == 0
    if platform.machine() in ("x86_64", "AMD64") and sys.platform == "linux":
        assert _hlc.vector_isa(1) == _widest_isa()
        assert _hlc.vector_isa(2) == _widest_isa()  # (no wider build)
    try:
        for rows, cols, levels in ((7, 9, 1), (16, 17, 2), (33, 40, 3), (67, 131, 3), (130, 257, 4), (70, 97, 1)):
            q = _random_97_bands(rng, rows, cols, levels)
            steps = np.asarray(quantize.subband_steps(float(rng.uniform(0.2, 40)), levels), np.float32)
            flat = [q[0]] + [b for lvl in q[1:] for b in lvl]
            for dtype, lo, hi in ((np.int32, -(1 << 30), 1 << 30), (np.int16, -32768, 32767),
                                  (np.uint16, 0, 65535), (np.uint8, 0, 255), (np.int8, -128, 127)):
                outs = []
                for isa in (0, 1):
                    _hlc.vector_isa(isa)
                    out = np.empty((rows, cols), dtype)
                    _hlc.synth97(flat, steps, recon, out, lo, hi)
                    ll = q[0]
                    for k in range(levels):
                        hl, lh, hh = q[1 + k]
                        nxt = np.empty((ll.shape[0] + lh.shape[0], ll.shape[1] + hl.shape[1]), np.float32)
                        _hlc.synth97_level(ll, hl, lh, hh, float(steps[0]), steps[1 + 3 * k:4 + 3 * k], recon, nxt,
                                           0.0, 0.0)
                        ll = nxt
                    outs.append((out, ll.view(np.uint32)))
                for other in outs[1:]:
                    assert np.array_equal(outs[0][0], other[0]), (rows, cols, dtype)
                    assert np.array_equal(outs[0][1], other[1]), (rows, cols)
    finally:
        _hlc.vector_isa(int(was))


def test_compiled_97_synthesis_checks_its_buffers():
    from codec_core import _hlc
    ok = [np.zeros((2, 2), np.int32)] + [np.zeros((2, 2), np.int32)] * 3
    steps = np.ones(4, np.float32)
    _hlc.synth97(ok, steps, 0.1, np.zeros((4, 4), np.int32), -10, 10)
    for bands, st, out, lo, hi in (
            (ok[:3], steps, np.zeros((4, 4), np.int32), 0, 1),                 # not 1 + 3L bands
            (ok, steps[:2], np.zeros((4, 4), np.int32), 0, 1),                 # too few steps
            (ok, steps, np.zeros((5, 4), np.int32), 0, 1),                     # shapes do not match
            (ok, steps, np.zeros((4, 4), np.float32), 0, 1),                   # output type
            (ok, steps, np.zeros((4, 4), np.uint8), 0, 300),                   # bounds beyond the type
            (ok, steps.astype(np.float64), np.zeros((4, 4), np.int32), 0, 1),  # steps type
            (ok, steps, np.zeros((4, 8), np.int32)[:, ::2], 0, 1)):            # not contiguous
        with pytest.raises(ValueError):
            _hlc.synth97(bands, st, 0.1, out, lo, hi)


def test_compiled_97_level_synthesis_checks_its_buffers():
    from codec_core import _hlc
    z = lambda *s: np.zeros(s, np.int32)  # noqa: E731
    steps = np.ones(3, np.float32)
    _hlc.synth97_level(z(2, 2), z(2, 1), z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((3, 3), np.int16), -10, 10)
    _hlc.synth97_level(np.zeros((2, 2), np.float32), z(2, 1), z(1, 2), z(1, 1), 1.0, steps, 0.1,
                       np.zeros((3, 3), np.float32), 0, 0)
    shared = z(8)
    for args in ((z(2, 2), z(2, 1), z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((4, 3), np.int16), -10, 10),
                 (z(2, 2), z(2, 2), z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((3, 3), np.int16), -10, 10),
                 (z(2, 2), z(2, 1), z(1, 2), z(1, 1), 1.0, steps[:2], 0.1, np.zeros((3, 3), np.int16), -10, 10),
                 (z(2, 2), z(2, 1), z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((3, 3), np.uint8), -10, 10),
                 (z(2, 2), z(2, 1), z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((3, 3), np.float64), 0, 0),
                 (z(2, 2).astype(np.int64), z(2, 1), z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((3, 3)), 0, 0),
                 (z(2, 2), z(2, 2)[:, :1], z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((3, 3), np.int16), -1, 1),
                 (shared[:4].reshape(2, 2), shared[3:5].reshape(2, 1), z(1, 2), z(1, 1), 1.0, steps, 0.1,
                  np.zeros((3, 3), np.int16), -1, 1)):
        with pytest.raises(ValueError):
            _hlc.synth97_level(*args)
    ro = z(2, 1)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        _hlc.synth97_level(z(2, 2), ro, z(1, 2), z(1, 1), 1.0, steps, 0.1, np.zeros((3, 3), np.int16), -1, 1)

_USED_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", ">i2")


@settings(max_examples=60, deadline=None)
@given(dtype=hst.sampled_from(_USED_DTYPES), shape=hst.tuples(hst.integers(1, 9), hst.integers(1, 9)),
       seed=hst.integers(0, 2**32 - 1), strided=hst.booleans())
def test_used_values_flags_exactly_the_values_present(dtype, shape, seed, strided):
    # the compiled pass (native 8..32-bit, C-contiguous) and the numpy fallback
    # (other types, strided views) both give the set of values numpy finds
    info = np.iinfo(np.dtype(dtype))
    lo, hi = max(info.min, -3000), min(info.max, 3000)
    a = np.random.default_rng(seed).integers(lo, hi + 1, shape).astype(dtype)
    if strided:
        a = a[:, ::2]
    vmin, vmax = int(a.min()), int(a.max())
    want = np.zeros(vmax - vmin + 1, bool)
    want[np.unique(a).astype(np.int64) - vmin] = True
    assert np.array_equal(_kernels.used_values(a, vmin, vmax), want)


@pytest.mark.parametrize("dtype", ["int16", "int64"])
def test_used_values_refuses_samples_outside_the_range(dtype):
    with pytest.raises(ValueError, match="outside"):
        _kernels.used_values(np.array([5, 9], dtype), 5, 8)
    with pytest.raises(ValueError, match="outside"):
        _kernels.used_values(np.array([4, 6], dtype), 5, 8)


def test_new_models_are_fresh_writable_copies_of_one_start():
    # the coders adapt their models in place: a second coder must start afresh
    freq, tot = _kernels.new_models(2)
    sfreq, stot = _kernels.new_sign_models(2)
    want = (freq.copy(), tot.copy(), sfreq.copy(), stot.copy())
    assert freq.flags.writeable and sfreq.flags.writeable
    assert np.array_equal(tot, freq.sum(axis=1)) and np.array_equal(freq[:_kernels.NCTX], freq[_kernels.NCTX:])
    for a in (freq, tot, sfreq, stot):
        a += 7
    again = _kernels.new_models(2) + _kernels.new_sign_models(2)
    assert all(np.array_equal(a, b) for a, b in zip(again, want, strict=True))


@pytest.mark.parametrize("src_dtype", [np.int16, np.int32])
@pytest.mark.parametrize("out_dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32])
@pytest.mark.parametrize("shape", [(21, 34), (3, 301)])
def test_colour_finish_matches_the_numpy_steps(src_dtype, out_dtype, shape, vector_isa):
    """_hlc.colour_finish (pipeline.finish_tile, no value table): clip to +-lim, the
    inverse RCT, clip to [vmin, vmax], cast; planar or interleaved source (planar three
    channels take the chunked path with the RCT and without it: pipeline.clip_tile), a
    strided output, in place; the same values as transform.rct_inverse and numpy's
    clips, with the baseline and the AVX2 build (rows shorter and longer than its chunk
    of 256)."""
    from codec_core._hlc import colour_finish
    from codec_core.transform import rct_inverse

    rng = np.random.default_rng(3)
    info = np.iinfo(out_dtype)
    lim = 1 << 13 if src_dtype == np.int16 else 1 << 20
    vmin, vmax = max(int(info.min), -3000), min(int(info.max), 3000)
    planar = rng.integers(-lim - 500, lim + 500, (3,) + shape).astype(src_dtype)
    rows, cols = shape
    for rct in (1, 0):
        want = np.clip(np.array(planar.transpose(1, 2, 0)), -lim, lim) if rct else planar.transpose(1, 2, 0).copy()
        if rct:
            want = rct_inverse(want.astype(src_dtype))
        want = np.clip(want, vmin, vmax).astype(out_dtype)
        image = np.zeros((2, rows + 9, cols + 6, 3), out_dtype)
        region = image[1, 5:5 + rows, 3:3 + cols]
        colour_finish(planar.transpose(1, 2, 0), region, rct, lim, vmin, vmax, _NO_TABLE)
        assert np.array_equal(region, want) and not image[0].any() and not image[1, :5].any()
        inplace = np.array(planar.transpose(1, 2, 0))
        colour_finish(inplace, inplace, rct, lim, vmin, vmax, _NO_TABLE)
        assert np.array_equal(inplace, want.astype(src_dtype))
    with pytest.raises(ValueError):
        colour_finish(planar.transpose(1, 2, 0)[:, :, :2], np.zeros(shape + (2,), out_dtype), 1, lim, vmin, vmax,
                      _NO_TABLE)


_NO_TABLE = np.zeros(0, np.int32)


@pytest.mark.parametrize("src_dtype", [np.int16, np.int32])
@pytest.mark.parametrize("out_dtype", [np.uint8, np.int16, np.uint16, np.int32])
def test_colour_finish_with_a_value_table_matches_the_numpy_steps(src_dtype, out_dtype, vector_isa):
    """With a value table (a rank-coded plane's tile): each rank clipped to the table,
    looked up, clipped to [vmin, vmax] and cast, as pipeline.finish_tile's numpy steps do
    (ranks outside the table from a damaged stream included); into a strided place of
    an image (contiguous rows, and every other column) and in place. A table with the RCT is refused."""
    from codec_core._hlc import colour_finish
    from codec_core.pipeline import lookup_in_place

    rng = np.random.default_rng(5)
    info = np.iinfo(out_dtype)
    vmin, vmax = max(int(info.min), -300), min(int(info.max), 200)
    table = np.sort(rng.choice(np.arange(vmin - 20, vmax + 20), 57, replace=False)).astype(np.int32)
    ranks = rng.integers(-9, 70, (2, 23, 41, 1)).astype(src_dtype)  # (0..56 valid)
    for tile in ranks:
        want = np.clip(lookup_in_place(table, np.clip(tile.astype(np.int32), 0, len(table) - 1)), vmin, vmax)
        image = np.zeros((29, 47, 1), out_dtype)
        region = image[3:26, 4:45]
        colour_finish(tile, region, 0, 1 << 20, vmin, vmax, table)
        assert np.array_equal(region, want.astype(out_dtype)) and not image[:3].any() and not image[:, :4].any()
        every_other = np.zeros((29, 94, 1), out_dtype)  # (columns not contiguous: the general path)
        colour_finish(tile, every_other[3:26, 4:86:2], 0, 1 << 20, vmin, vmax, table)
        assert np.array_equal(every_other[3:26, 4:86:2], want.astype(out_dtype)) and not every_other[3:26, 5:86:2].any()
        inplace = tile.copy()
        colour_finish(inplace, inplace, 0, 1 << 20, vmin, vmax, table)
        assert np.array_equal(inplace, want.astype(src_dtype))
    with pytest.raises(ValueError, match="table with the RCT"):
        rgb = np.zeros((4, 5, 3), src_dtype)
        colour_finish(rgb, rgb, 1, 1 << 13, 0, 255, table)


def _med_reference(x: np.ndarray, i: int, j: int) -> int:
    """LOCO-I's median edge detector as its definition reads (the branches)."""
    if i == 0:
        return int(x[0, j - 1]) if j else 0
    if j == 0:
        return int(x[i - 1, 0])
    a, b, c = int(x[i, j - 1]), int(x[i - 1, j]), int(x[i - 1, j - 1])
    if c >= max(a, b):
        return min(a, b)
    if c <= min(a, b):
        return max(a, b)
    return a + b - c


@settings(max_examples=150, deadline=None)
@given(hst.integers(0, 7), hst.integers(0, 7), hst.sampled_from([3, 300, 1 << 27, 1 << 31]), hst.integers(0, 2**32 - 1))
def test_the_med_kernels_are_the_median_edge_detector(rows, cols, span, seed):
    # the kernels compute the prediction without branches (a + b - c clamped between
    # min(a, b) and max(a, b)): the same residuals and reconstructions as the
    # definition, the int32 wrap of residuals and the reconstruction's bound included
    x = np.random.default_rng(seed).integers(-span, span, (rows, cols)).astype(np.int32)
    res = np.array([[np.int64(x[i, j]) - _med_reference(x, i, j) for j in range(cols)] for i in range(rows)],
                   dtype=np.int64).reshape(rows, cols)
    assert np.array_equal(_kernels.med_residual(x), res.astype(np.int32))  # (wraps: numpy's cast is modular)
    rec = np.zeros((rows, cols), np.int64)
    for i in range(rows):
        for j in range(cols):
            rec[i, j] = min(max(int(x[i, j]) + _med_reference(rec, i, j), -0x3FFFFFFF), 0x3FFFFFFF)
    assert np.array_equal(_kernels.med_reconstruct(x), rec)
    if span <= 1 << 27:  # the round trip of real bands
        assert np.array_equal(_kernels.med_reconstruct(_kernels.med_residual(x)), x)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32])
def test_to_ranks_matches_the_numpy_lookup(dtype):
    """_hlc.to_ranks (the encoder's values to ranks of a value table): lut[v - first], the
    index clipped to the lut, from a strided view of any sample type it reads; arrays
    that do not match are refused."""
    from codec_core._hlc import to_ranks

    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    lo, hi = max(int(info.min), -1000), min(int(info.max), 1000)
    image = rng.integers(lo, hi + 1, (2, 19, 45, 3)).astype(dtype)
    first = lo + 5
    lut = rng.integers(0, 1 << 20, hi - lo - 9).astype(np.int32)  # (some samples beyond either end)
    plane = image[1, 2:17, 3:40, 2]
    out = np.full(plane.shape, -1, np.int32)
    to_ranks(plane, out, lut, first)
    assert np.array_equal(out, lut[np.clip(plane.astype(np.int64) - first, 0, len(lut) - 1)])
    with pytest.raises(ValueError):
        to_ranks(plane, np.zeros((3, 3), np.int32), lut, first)
    with pytest.raises(ValueError):
        to_ranks(plane.astype(np.float32), out, lut, first)
    with pytest.raises(ValueError):
        to_ranks(plane, out, lut, 1 << 40)  # (|first| up to 2^32)
    if np.dtype(dtype).itemsize > 1:  # an unaligned view: refused (encoder.py makes it native int32 first)
        raw = np.zeros(plane.size * plane.itemsize + 1, np.uint8)
        unaligned = np.frombuffer(raw.data, dtype, plane.size, offset=1).reshape(plane.shape)
        with pytest.raises(ValueError):
            to_ranks(unaligned, out, lut, first)


def test_a_byte_swapped_value_table_image_is_coded_as_a_native_one():
    """The encoder's ranks of a value-table image come from the compiled pass, which reads
    native, aligned samples; byte-swapped or unaligned ones are made native int32 first:
    the same stream either way."""
    import codec_core
    from codec_core import container as ct
    from codec_core.format import FLAG_VALUE_TABLE

    rng = np.random.default_rng(8)
    a = (rng.integers(0, 40, (96, 80)) * 37 - 700).astype(np.int16)  # sparse values: a value table
    stream = codec_core.encode(a, "lossless")
    assert ct.parse_header(stream)[0].flags & FLAG_VALUE_TABLE  # (else this would test nothing)
    unaligned = np.frombuffer(b"\0" + a.tobytes(), np.int16, offset=1).reshape(a.shape)
    assert not unaligned.flags.aligned
    for other in (a.astype(">i2"), unaligned):
        assert codec_core.encode(other, "lossless") == stream
    assert np.array_equal(codec_core.decode(stream), a)
