"""The lossless coder choice (codec_core.encoder.choose_coders) judges four small
sample blocks; these tests hold it to the exhaustive choice (each image coded whole
by both coders) on real images, and check that a first use needs no cache."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import codec_core
from codec_core import encoder
from codec_core.format import PlaneCoder

# real images of several modalities, large enough for the sampled choice (> 256²)
IMAGES = ("693_UNCR.dcm", "MR2_UNCR.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "RG3_UNCR.dcm",
          "JPEG2000_UNC.dcm", "US1_UNCR.dcm", "OBXXXX1A.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm")


def _image(name: str) -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file(name)).pixel_array  # exact names: no network


def _size_with(monkeypatch: pytest.MonkeyPatch, a: np.ndarray, coder: PlaneCoder | None) -> int:
    with monkeypatch.context() as m:
        if coder is not None:
            m.setattr(encoder, "choose_coders", lambda src: [coder] * src.header.channels)
        data = codec_core.encode(a, "lossless", threads=1)
    assert np.array_equal(codec_core.decode(data), a)
    return len(data)


def test_sampled_choice_is_within_one_percent_of_the_exhaustive_choice(monkeypatch):
    chosen, best = 0, 0
    for name in IMAGES:
        a = _image(name)
        sizes = {c: _size_with(monkeypatch, a, c) for c in (PlaneCoder.WAVELET, PlaneCoder.PREDICTIVE)}
        size = _size_with(monkeypatch, a, None)
        assert size <= 1.05 * min(sizes.values()), (name, size, sizes)
        chosen, best = chosen + size, best + min(sizes.values())
    assert chosen <= 1.01 * best, (chosen, best)


def test_first_use_needs_no_cache_and_writes_none(tmp_path):
    """A new process with an empty HOME and cache directory encodes and decodes
    correctly (the kernels were compiled at install) and leaves both empty."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    cache.mkdir()
    code = ("import numpy as np, codec_core; a = (np.arange(300 * 310) % 4093).astype(np.uint16).reshape(300, 310); "
            "d = codec_core.encode(a, 'lossless'); assert np.array_equal(codec_core.decode(d), a); "
            "n = codec_core.encode(a, 'near-lossless', max_error=2); "
            "assert np.abs(codec_core.decode(n).astype(int) - a).max() <= 2; print('ok')")
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(cache), "NUMBA_CACHE_DIR": str(cache)}
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    assert list(home.iterdir()) == [] and list(cache.iterdir()) == []
