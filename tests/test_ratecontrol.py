"""One-pass rate control (codec_core.ratecontrol): accuracy on real images, passes, no BLAS."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import codec_core as hlc
from codec_core import encoder, pipeline


def dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(float(int(a.max()) - int(a.min())) ** 2 / mse)


@pytest.fixture
def codings(monkeypatch):
    """Counts of full codings (encode) and error-only passes of the 9/7 layer."""
    n = {"encode": 0, "squared_error": 0}
    for name in n:
        real = getattr(encoder.LossyCoder, name)

        def counted(self, *a, _real=real, _name=name, **k):
            n[_name] += 1
            return _real(self, *a, **k)
        monkeypatch.setattr(encoder.LossyCoder, name, counted)
    return n


# CT (signed), MR (1024^2, 4 tiles), ultrasound colour, radiograph crop, NM-like small MR
IMAGES = {"693_UNCR.dcm": None, "MR2_UNCR.dcm": None, "US1_UNCR.dcm": None,
          "RG3_UNCR.dcm": (slice(400, 1424), slice(400, 1424)), "MR_small.dcm": None}


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("bpp", [0.25, 0.5, 1.0])
def test_size_target_is_met_within_3_percent_in_at_most_three_codings(name, bpp, codings):
    img = dicom(name)
    if IMAGES[name] is not None:
        img = img[IMAGES[name]]
    pixels = img.shape[0] * img.shape[1]
    data = hlc.encode(img, mode="lossy", bpp=bpp, try_near_lossless=False)
    got = 8 * len(data) / pixels
    assert 0.97 * bpp <= got <= bpp, got
    # (3% of a 64 x 64 image at 0.25 bpp is 4 bytes: a window a step can jump over)
    assert codings["encode"] <= (3 if pixels >= 128 * 128 else 6), codings


@pytest.mark.parametrize("name", ["693_UNCR.dcm", "MR2_UNCR.dcm", "US1_UNCR.dcm", "CT_small.dcm"])
@pytest.mark.parametrize("target", [40.0, 45.0, 50.0])
def test_psnr_target_is_met_within_0_3_db_and_coded_once(name, target, codings):
    img = dicom(name)
    data = hlc.encode(img, mode="lossy", psnr=target, try_near_lossless=False)
    assert target <= psnr(img, hlc.decode(data)) <= target + 0.3
    assert codings["encode"] == 1
    if hlc.info(data).get("flat_value") is not None:
        # a CT's padding is kept exact (regions.encode_padded): its 9/7 layer's rate
        # control counts the error of the kept pixels only (the padding's is 0)
        assert name == "693_UNCR.dcm"
    else:
        assert codings["squared_error"] <= 4


def test_error_sums_do_not_go_through_blas(monkeypatch):
    def no_blas(*a, **k):
        raise AssertionError("np.dot in an error sum")
    monkeypatch.setattr(np, "dot", no_blas)
    a = np.arange(300 * 200, dtype=np.int32).reshape(300, 200)
    b = a + (np.arange(a.size).reshape(a.shape) % 3) - 1
    assert pipeline.squared_error(a, b) == float(np.sum((a.astype(np.int64) - b) ** 2))
    hlc.encode(dicom("CT_small.dcm"), mode="lossy", psnr=45)


def _histogram(stats) -> np.ndarray:
    from codec_core import ratecontrol as rc
    h = np.zeros(rc.NX * rc.NM, np.int64)
    cells, n = stats.cells()
    h[cells] = n
    return h


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm"])
def test_compiled_statistics_count_what_the_numpy_passes_count(name):
    """BandStats.add (codec_core/_native/stats97.c: one pass, bins from the float's
    exponent and mantissa) against add_numpy (float32 log2 per coefficient): every
    band of a real image, LL as its MED residual; a coefficient within an ulp of a
    bin edge may land next door, so at most 1 in 10^5 may differ."""
    from codec_core import ratecontrol as rc
    from codec_core.transform import dwt97_forward
    a = dicom(name)
    a = a[..., 0] if a.ndim == 3 else a
    bands = dwt97_forward(a, 3)
    moved = total = 0
    for b, band in enumerate([bands[0]] + [x for lvl in bands[1:] for x in lvl]):
        c, ref = rc.BandStats(1.0, b == 0), rc.BandStats(1.0, b == 0)
        c.add(band)
        c.add(band)  # a second tile: the counts add up
        ref.add_numpy(band)
        ref.add_numpy(band)
        hc, hr = _histogram(c), _histogram(ref)
        assert hc.sum() == hr.sum() == 2 * band.size and c.tiles == ref.tiles == 2
        moved += int(np.abs(hc - hr).sum()) // 2
        total += 2 * band.size
    assert moved <= total // 100_000


def test_compiled_statistics_check_their_buffers():
    from codec_core import _hlc
    from codec_core import ratecontrol as rc
    keys, counts = np.zeros(8, np.int32), np.zeros(8, np.int64)
    ok = np.zeros((4, 4), np.float32)
    assert _hlc.stats97(ok, False, keys, counts, rc.X_BINS, rc.M_BINS, rc.OCTAVES) == 1
    assert keys[0] == 0 and counts[0] == 16  # zeros: bin 0 both ways
    ramp = np.arange(64, dtype=np.float32).reshape(8, 8)
    keys, counts = np.zeros(8, np.int32), np.zeros(8, np.int64)
    n = _hlc.stats97(ramp, False, keys, counts, rc.X_BINS, rc.M_BINS, rc.OCTAVES)
    assert n > 8 and (keys == 0).all() and (counts == 0).all()  # no room: nothing written, the count told
    keys, counts = np.zeros(n, np.int32), np.zeros(n, np.int64)
    assert _hlc.stats97(ramp, False, keys, counts, rc.X_BINS, rc.M_BINS, rc.OCTAVES) == n and counts.sum() == 64
    for args in ((ok.astype(np.float64), False, keys, counts), (ok, False, keys[:-1], counts),
                 (ok, False, keys.astype(np.int64), counts), (ok, False, keys, counts.astype(np.int32)),
                 (np.zeros(4, np.float32), False, keys, counts), (np.zeros((4, 8), np.float32)[:, ::2], False, keys,
                                                                  counts)):
        with pytest.raises(ValueError):
            _hlc.stats97(*args, rc.X_BINS, rc.M_BINS, rc.OCTAVES)
    with pytest.raises(ValueError):
        _hlc.stats97(ok, False, keys, counts, 0, rc.M_BINS, rc.OCTAVES)


def _model_of(name: str, monkeypatch):
    """The rate model an encode of a real image at 0.5 bpp builds."""
    from codec_core import strategy
    got = []
    real = strategy.RateModel.get

    def keep(rates):
        got.append(real(rates))
        return got[-1]
    monkeypatch.setattr(strategy.RateModel, "get", keep)
    hlc.encode(dicom(name), mode="lossy", bpp=0.5, try_near_lossless=False, threads=1)
    return got[-1]


@pytest.mark.parametrize("name", ["CT_small.dcm", "US1_UNCR.dcm", "MR2_UNCR.dcm"])
def test_compiled_model_gives_the_numpy_models_bits(name, monkeypatch):
    """Model.bits (stats97.c hlc_model_bits, every band in one call) against the numpy
    reference band by band (Compact.bits), from fine to coarse steps."""
    model = _model_of(name, monkeypatch)
    for base in (0.3, 1.0, 2.7, 9.0, 40.0, 300.0, 5000.0):
        assert model.bits(base) == pytest.approx(model.bits_numpy(base), rel=1e-9)


def test_compiled_model_checks_its_arrays():
    from codec_core import _hlc
    from codec_core import ratecontrol as rc
    ten = (rc.OCTAVES * rc.X_BINS + 1 + 3 * rc.X_BINS) << 16  # a magnitude of about 10, its neighbours 0
    keys, n = np.array([0, ten], np.int32), np.array([5.0, 2.0], np.float32)
    off, steps, one = np.array([0, 2], np.int64), np.array([1.0]), np.array([1], np.int64)
    args = [keys, n, off, steps, one * 0, one, rc._XC, rc._MC]
    assert _hlc.model_bits(*args, rc.CONTEXTS, 0.35) > 0
    bad = [(0, keys.astype(np.int64)), (1, n.astype(np.float64)), (2, np.array([0, 1], np.int64)),
           (2, np.array([1, 2], np.int64)), (3, np.array([0.0])), (3, np.array([np.inf])), (4, np.zeros(2, np.int64)),
           (0, np.array([0, rc.NX << 16], np.int32)), (0, np.array([0, rc.NM], np.int32)),
           (0, np.array([-1, 0], np.int32))]
    for i, value in bad:
        with pytest.raises(ValueError):
            _hlc.model_bits(*args[:i], value, *args[i + 1:], rc.CONTEXTS, 0.35)
    with pytest.raises(ValueError):
        _hlc.model_bits(*args, 100, 0.35)


# bench_lossy.py's small and mid-size images, dev and held out (CT, MR, US colour, NM)
COUNTED = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "US1_UNCR.dcm", "JPEG2000_UNC.dcm",
           "MR-SIEMENS-DICOM-WithOverlays.dcm")


def test_codings_per_size_encode(codings):
    """Full codings of the 9/7 layer per size-targeted encode on real images at three
    rates: each at most three, half of them at most two, and the file in [-3%, 0] of the
    target. (Measured over bench_lossy's 63 encodes: mean 1.94, median 2, at most 3;
    the model's first guess lands in the window on a quarter of them: its coded /
    modelled ratio varies by image, benchmarks/results/lossy_speed.md, branch rc.)"""
    counts = []
    for name in COUNTED:
        img = dicom(name)
        img = img[img.shape[0] // 2] if img.ndim == 3 and img.shape[-1] != 3 else img
        for bpp in (0.25, 0.5, 1.0):
            codings["encode"] = 0
            data = hlc.encode(img, mode="lossy", bpp=bpp, try_near_lossless=False, threads=1)
            assert 0.97 * bpp <= 8 * len(data) / (img.shape[0] * img.shape[1]) <= bpp
            counts.append(codings["encode"])
    assert max(counts) <= 3, counts
    assert sorted(counts)[len(counts) // 2] <= 2, counts


@pytest.mark.parametrize("name", ["MR2_UNCR.dcm", "US1_UNCR.dcm", "emri_small.dcm"])
def test_the_model_is_built_without_copies_of_its_cells(name, monkeypatch):
    """Model(stats) takes the statistics' cells over band by band: at its tracemalloc
    peak the packed cells (8 bytes a cell) and one band's temporaries, under 2.5x the
    packed size (Compact copies, a concatenation and a division of every cell at once
    were 4.6-5.3x, the 64^2 MR stack's encode peak), and the packed model is the same."""
    import copy
    import tracemalloc

    from codec_core import ratecontrol as rc

    got = []
    real = rc.gather

    def keep(*args, **kw):
        got.append(copy.deepcopy(real(*args, **kw)))
        return copy.deepcopy(got[-1])
    monkeypatch.setattr(rc, "gather", keep)
    hlc.encode(dicom(name), mode="lossy", bpp=0.5, try_near_lossless=False, threads=1)
    stats = got[-1]
    cells = sum(s.cells()[0].size for s in stats.values())
    want = [(s.cells()[0].copy(), s.cells()[1].copy()) for s in stats.values()]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        model = rc.Model(stats, 3, [], 1000)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * 8 * cells, peak / (8 * cells)
    keys, n, offsets = model._packed
    for i, (c, k) in enumerate(want):
        lo, hi = offsets[i], offsets[i + 1]
        assert np.array_equal((keys[lo:hi] >> 16) * rc.NM + (keys[lo:hi] & 0xFFFF), c)
        assert np.array_equal(n[lo:hi], k.astype(np.float32))
        assert all(not s.keys for s in stats.values())  # (taken over: freed)


def test_the_statistics_hold_their_cells_at_8_bytes_each():
    """BandStats.add keeps a tile's cells at their number, counts int32 (8 bytes a
    cell), not views of the kernel's output arrays of every slot asked for (12 bytes a
    slot of ``room``: 0.94x a 512^2 16-bit image over its bands, beside the plane, at
    the statistics pass's peak); the same cells and counts."""
    from codec_core import ratecontrol as rc
    from codec_core.transform import dwt97_forward
    bands = dwt97_forward(dicom("CT_small.dcm"), 3)
    for b, band in enumerate([bands[0]] + [x for lvl in bands[1:] for x in lvl]):
        s = rc.BandStats(1.0, b == 0)
        s.add(band)
        (keys,), (counts,) = s.keys, s.counts
        assert keys.base is None and counts.base is None and counts.dtype == np.int32
        assert keys.nbytes + counts.nbytes == 8 * len(keys) and counts.sum() == band.size
        ref = rc.BandStats(1.0, b == 0)
        ref.add_numpy(band)
        assert len(set(keys.tolist()) ^ set(ref.keys[0].tolist())) <= 2  # (bin edges: as above)


def test_the_rate_model_is_not_alive_while_the_layer_codes(monkeypatch):
    """strategy.RateModel drops the model before each coding (its cells were 0.45x the
    raw image beside the coding's float bands on the padded 512^2 CT): during every
    coding no ratecontrol.Model exists; the encode still meets its size."""
    import gc

    from codec_core import ratecontrol as rc

    alive = []
    real = encoder.LossyCoder.encode

    def counted(self, steps):
        gc.collect()
        alive.append(sum(isinstance(o, rc.Model) for o in gc.get_objects()))
        return real(self, steps)
    monkeypatch.setattr(encoder.LossyCoder, "encode", counted)
    for name, bpp in (("693_UNCR.dcm", 0.5), ("MR_small.dcm", 0.25), ("US1_UNCR.dcm", 0.25)):
        img = dicom(name)
        data = hlc.encode(img, mode="lossy", bpp=bpp)
        assert 0.97 * bpp <= 8 * len(data) / (img.shape[0] * img.shape[1]) <= bpp
    assert alive and set(alive) == {0}, alive


def test_a_model_built_again_gives_the_same_stream(monkeypatch):
    """A step after a later miss builds the dropped model again (the same statistics
    of the same layer): the stream is the one a model kept throughout gives (the small
    NM image at 0.25 bpp asks for it again after its 4th and 5th codings)."""
    from codec_core import strategy

    builds = []
    real_get = strategy.RateModel.get

    def counting(self):
        if self._model is None:
            builds.append(1)
        return real_get(self)
    monkeypatch.setattr(strategy.RateModel, "get", counting)
    cases = [("JPEG2000_UNC.dcm", 0.25), ("MR-SIEMENS-DICOM-WithOverlays.dcm", 0.25)]
    dropped = [hlc.encode(dicom(n), mode="lossy", bpp=b, threads=1) for n, b in cases]
    rebuilt = len(builds)
    monkeypatch.setattr(strategy.RateModel, "drop", lambda self: None)  # (kept throughout)
    builds.clear()
    kept = [hlc.encode(dicom(n), mode="lossy", bpp=b, threads=1) for n, b in cases]
    assert len(builds) < rebuilt  # (one build per rate control when kept; more when dropped)
    assert dropped == kept
