"""The compiled kernels (codec_core/_native, C) against their Python side and their contract."""
from __future__ import annotations

import numpy as np
import pytest

from codec_core import _hlc, _kernels, _predictive_kernels


def test_the_c_constants_are_the_python_tables_ones():
    # the model arrays are built in Python and indexed in C: both must mean the same
    assert _hlc.NSYM == _kernels.NSYM and _hlc.DIRECT == _kernels.DIRECT
    assert _hlc.NCTX == _kernels.NCTX and _hlc.NSIGN_CTX == _kernels.NSIGN_CTX
    assert _hlc.INC == _kernels.INC and _hlc.LIMIT == _kernels.LIMIT
    assert _hlc.NACT == _predictive_kernels.NACT


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
