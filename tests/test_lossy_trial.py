"""The lossy coder's error trial (encoder.LossyCoder.squared_error): the error of the
image the decoder rebuilds, to the bit, however the plane is rebuilt for it
(pipeline.lossy_plane_rows: the finest level a strip of rows at a time)."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import codec_core as hlc
from codec_core import container as ct
from codec_core import encoder, pipeline, quantize, strategy, transform
from codec_core.api import _checked_array, _checked_image
from codec_core.format import Version
from codec_core.options import EncodeOptions


def dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def _coder(rdo: bool, rounding: float) -> type:
    class Recording(encoder.LossyCoder):
        made: list = []

        def encode(self, steps: list) -> list[bytes]:
            Recording.made.append(self)
            return super().encode(steps)

    Recording.rdo, Recording.rounding = rdo, rounding
    return Recording


# CT (signed, 16-bit), ultrasound colour, MR (8 bits in 16), a radiograph crop
@pytest.mark.parametrize("name", ["693_UNCR.dcm", "US1_UNCR.dcm", "MR_small.dcm", "CT_small.dcm"])
@pytest.mark.parametrize("rdo,rounding", [(False, quantize.DEADZONE_ROUNDING), (True, quantize.DEADZONE_ROUNDING),
                                          (True, 0.0), (False, 0.5)])
def test_the_trial_error_is_the_decoded_streams(name, rdo, rounding):
    img = dicom(name)
    coder = _coder(rdo, rounding)
    for target in ({"bpp": 0.5}, {"psnr": 45.0}):
        opts = EncodeOptions(mode="lossy", try_near_lossless=False, **target)
        stream = strategy.encode_image(_checked_image(_checked_array(img), opts), opts, padding=False, coder=coder)
        steps = ct.parse_header(stream)[0].steps
        decoded = hlc.decode(stream).astype(np.int64)
        want = float(np.sum((decoded - img) ** 2))
        assert want > 0 and coder.made[-1].squared_error(list(steps)) == want, (target, rdo, rounding)


# 693_UNCR (one-tile 16-bit CT): the float32 bands (2x the image) and the forward
# transform's working quarter plane (0.5x), not the decoder's plane and a coarser level
# besides (3.5x before the strips), nor the finest level's LL (a quarter plane of float32
# beside the bands: 3.0x before its rows came by strips). US1_UNCR (8-bit RGB): two
# int16 planes of the tile (1.33x) and the last channel's bands (1.33x), not the whole
# int16 tile (2x) beside a channel's bands (3.54x before the colour strips).
@pytest.mark.parametrize("name,bound", [("693_UNCR.dcm", 2.7), ("US1_UNCR.dcm", 3.0)])
def test_the_trial_holds_no_plane_on_top_of_its_bands(name, bound):
    """tracemalloc peak of one trial, in multiples of the image's size."""
    import tracemalloc

    img = dicom(name)
    coder = _coder(True, quantize.DEADZONE_ROUNDING)
    opts = EncodeOptions(mode="lossy", bpp=0.5, try_near_lossless=False)
    stream = strategy.encode_image(_checked_image(_checked_array(img), opts), opts, padding=False, coder=coder)
    trial, steps = coder.made[-1], list(ct.parse_header(stream)[0].steps)
    trial.squared_error(steps)  # (anything made once)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        trial.squared_error(steps)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < bound * img.nbytes, peak / img.nbytes


@pytest.mark.parametrize("shape,levels", [((64, 64), 2), ((37, 53), 3), ((130, 57), 2), ((31, 20), 1),
                                          ((9, 7), 1), ((2, 9), 1), ((3, 4), 2), ((300, 41), 4)])
@pytest.mark.parametrize("strip_min", [2, 4, 16])
def test_the_plane_by_strips_is_the_whole_plane(shape, levels, strip_min, monkeypatch):
    monkeypatch.setattr(pipeline, "STRIP_MIN", strip_min)
    rng = np.random.default_rng(levels * 1000 + shape[0])
    x = rng.normal(0, 300, shape).astype(np.float32)
    steps = quantize.subband_steps(2.0, levels)

    def bands() -> list:
        return quantize.quantise(transform.forward(lambda sel: x[sel].copy(), levels, "9/7"), steps, levels,
                                 None, consume=True)

    h = _header(shape, levels)
    whole = pipeline.reconstruct_lossy_plane(bands(), h, steps, None, consume=True, dtype=np.int16)
    strips = np.full_like(whole, 9999)
    seen = 0
    for y, rows in pipeline.lossy_plane_rows(bands(), h, steps, np.int16):
        assert y == seen
        strips[y:y + len(rows)] = rows
        seen += len(rows)
    assert seen == shape[0] and np.array_equal(strips, whole)


def _header(shape: tuple[int, int], levels: int):
    class H:  # the fields the reconstruction reads
        pass
    h = H()
    h.rows, h.cols, h.frames, h.levels, h.version = shape[0], shape[1], 1, levels, Version.V2
    h.recon_offset, h.vmin, h.vmax, h.colour = quantize.RECON_OFFSET, -2000, 2000, None
    return h


@pytest.mark.parametrize("shape,dtype", [((37, 53, 3), np.uint8), ((64, 40, 1), np.uint16), ((5, 3, 1), np.int16)])
@pytest.mark.parametrize("band", [1, 7, 100, 1 << 14, 1 << 30])
def test_the_squared_error_is_exact_whatever_its_bands(shape, dtype, band, monkeypatch):
    """pipeline.squared_error in bands of ERROR_BAND_SAMPLES samples (rows of 2^14, not
    64 rows: less float64 at once) is the exact integer sum, with and without a keep
    mask, whatever the band: the trial's error cannot move with it."""
    monkeypatch.setattr(pipeline, "ERROR_BAND_SAMPLES", band)
    rng = np.random.default_rng(band + shape[0])
    info = np.iinfo(dtype)
    a = rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    b = rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    keep = rng.random(shape[:2]) < 0.6
    d = a.astype(np.int64) - b
    assert pipeline.squared_error(a, b) == float(np.sum(d * d))
    assert pipeline.squared_error(a, b, keep) == float(np.sum((d * d)[keep]))


@pytest.mark.parametrize("shape,dtype,bits", [((37, 53, 3), np.uint8, 8), ((64, 41, 3), np.uint16, 12),
                                              ((33, 70, 3), np.uint16, 16), ((45, 38), np.int16, 12),
                                              ((40, 29), np.uint8, 8), ((9, 7, 3), np.uint8, 8)])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_the_trial_by_strips_is_the_decoded_streams_error(shape, dtype, bits, levels):
    """The trial's tile by strips (LossyCoder._tile_rows: a grey plane's rows, or a colour
    tile's first channels whole and its last by strips, finished strip by strip) gives
    the decoded stream's error to the bit: odd sizes, colour (int16 tiles to 12 bits,
    int32 above) and grey, 8 and 16 bits, signed, 1-3 levels."""
    rng = np.random.default_rng(sum(shape) * levels + bits)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if np.dtype(dtype).kind == "i" else (0, 1 << bits)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 1, shape), 0), 1)
    img = np.clip(lo + (smooth - smooth.min()) / max(1e-9, np.ptp(smooth)) * (hi - lo - 1)
                  + rng.normal(0, (hi - lo) / 200, shape), lo, hi - 1).astype(dtype)
    coder = _coder(True, quantize.DEADZONE_ROUNDING)
    opts = EncodeOptions(mode="lossy", bpp=1.0, try_near_lossless=False, levels=levels, bits_stored=bits,
                         **({"axes": "YXC"} if len(shape) == 3 else {}))
    stream = strategy.encode_image(_checked_image(_checked_array(img), opts), opts, padding=False, coder=coder)
    steps = ct.parse_header(stream)[0].steps
    decoded = hlc.decode(stream).astype(np.int64)
    want = float(np.sum((decoded - img) ** 2))
    assert want > 0 and coder.made[-1].squared_error(list(steps)) == want
