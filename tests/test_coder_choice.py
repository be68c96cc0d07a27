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


# every other real image of pydicom and pydicom-data that takes the sampled choice
# (single planes of more than 2^16 samples, multi-frame images): the early decision
# on two blocks is checked on these too (none of them was used to set CLEAR_LEAD)
MORE_IMAGES = ("RG1_UNCR.dcm", "eCT_Supplemental.dcm", "emri_small.dcm", "gdcm-US-ALOKA-16.dcm",
               "mlut_18.dcm", "vlut_04.dcm", "JPEG-LL.dcm", "examples_palette.dcm", "examples_rgb_color.dcm",
               "examples_ybr_color.dcm", "image_dfl.dcm", "OBXXXX1A_2frame.dcm", "liver.dcm", "examples_overlay.dcm")


class _Chosen(Exception):
    """Stops an encode once the coder choice is made (the rest is not needed)."""


def _choices(monkeypatch: pytest.MonkeyPatch, a: np.ndarray) -> tuple[list, list, int]:
    """The choice as made (the first two blocks may decide), the choice of all four
    blocks, and the predictive sample blocks the first one coded."""
    coded = []
    real_choose, real_plane = encoder.choose_coders, encoder.predictive.encode_plane

    def counting(*args, **kw):
        coded.append(1)
        return real_plane(*args, **kw)

    def both(src):
        with monkeypatch.context() as m:
            m.setattr(encoder.predictive, "encode_plane", counting)
            early = real_choose(src)
        n = len(coded)
        with monkeypatch.context() as m:
            m.setattr(encoder, "CLEAR_LEAD", float("inf"))  # no lead is clear: all four blocks
            full = real_choose(src)
        raise _Chosen(early, full, n // src.header.channels)

    with monkeypatch.context() as m:
        m.setattr(encoder, "choose_coders", both)
        with pytest.raises(_Chosen) as got:
            codec_core.encode(a, "lossless", threads=1)
    return got.value.args


@pytest.mark.parametrize("name", IMAGES + MORE_IMAGES)
def test_two_clear_blocks_decide_as_all_four_do(monkeypatch, name):
    early, full, blocks = _choices(monkeypatch, _image(name))
    assert early == full
    assert blocks in (1, 2, 4)


def test_a_clear_lead_codes_half_the_blocks(monkeypatch):
    early, full, blocks = _choices(monkeypatch, _image("693_UNCR.dcm"))  # predictive by a wide margin
    assert early == full == [PlaneCoder.PREDICTIVE] and blocks == 2
    early, full, blocks = _choices(monkeypatch, _image("MR2_UNCR.dcm"))  # close: all four blocks
    assert early == full == [PlaneCoder.WAVELET] and blocks == 4


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
