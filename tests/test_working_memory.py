"""The memory-saving paths give exactly what the plain ones give.

Peak memory itself is measured in benchmarks/ (RESULTS.md), never by a test;
these tests pin down that each saving changes no byte and no decoded sample (and,
for zlib's state, the fixed sizes it asks for).
"""
import numpy as np
import pytest

import codec_core as hlc
from codec_core import pipeline as pl
from codec_core import predictive, transform
from codec_core import container as ct


def _real(name: str) -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def test_predictive_ring_encoder_gives_the_same_bytes_as_the_full_plane():
    a = _real("MR-SIEMENS-DICOM-WithOverlays.dcm")[:200, :173].astype(np.int32)
    lo, hi = int(a.min()), int(a.max())
    for k in (0, 2):
        ring = predictive.encode_plane(a, k, lo, hi)
        full, recon = predictive.encode_plane(a, k, lo, hi, return_recon=True)
        assert ring == full
        back = predictive.decode_plane(ring, *a.shape, k, lo, hi)
        assert np.array_equal(back, recon)
        assert np.abs(back - a).max() <= k


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (2, 2), (33, 17)])
def test_predictive_ring_small_shapes(shape):
    a = np.random.default_rng(3).integers(0, 50, shape).astype(np.int32)
    seg, recon = predictive.encode_plane(a, 0, 0, 49, return_recon=True)
    assert predictive.encode_plane(a, 0, 0, 49) == seg
    assert np.array_equal(predictive.decode_plane(seg, *shape, 0, 0, 49), a)


def _in_place_forward(x: np.ndarray, levels: int, step) -> list:
    """The analysis as it was before split_forward: lifting in place on one plane."""
    out = []
    ll = x
    for _ in range(levels):
        lo, hi = step(ll)
        ll_, hl = (a.T for a in step(lo.T))
        lh, hh = (a.T for a in step(hi.T))
        out.append((hl.copy(), lh.copy(), hh.copy()))
        ll = np.ascontiguousarray(ll_)
    return [ll] + out[::-1]


@pytest.mark.parametrize("shape", [(64, 64), (65, 63), (1, 40), (40, 1), (3, 5), (2, 2)])
@pytest.mark.parametrize("wavelet", ["5/3", "9/7"])
def test_split_forward_equals_the_in_place_transform(shape, wavelet):
    img = np.random.default_rng(1).integers(-2000, 4000, shape).astype(np.int16)
    levels = 3
    if wavelet == "5/3":
        new = transform.dwt53_forward(img, levels)
        old = _in_place_forward(img.astype(np.int32), levels, transform._fwd53)
    else:
        new = transform.dwt97_forward(img, levels)
        old = _in_place_forward(img.astype(np.float32), levels, transform._fwd97)
    assert np.array_equal(new[0], old[0])
    for a, b in zip(new[1:], old[1:]):
        for x, y in zip(a, b):
            assert x.shape == y.shape and np.array_equal(x, y)


def test_97_inverse_rounded_into_an_output_matches_the_int32_path():
    img = _real("693_UNCR.dcm")[100:300, 50:281]
    bands = transform.dwt97_forward(img, 3)
    copy = [bands[0].copy()] + [tuple(b.copy() for b in lvl) for lvl in bands[1:]]
    ref = np.clip(transform.dwt97_inverse_rounded(copy), -1000, 1200)
    out = np.empty(img.shape, np.int16)
    got = transform.dwt97_inverse_rounded(bands, out=out, bounds=(-1000, 1200))
    assert got is out
    assert np.array_equal(out, ref)
    ll_only = [transform.dwt97_forward(img, 2)[0]]
    small = np.empty(ll_only[0].shape, np.uint8)
    transform.dwt97_inverse_rounded(ll_only, out=small, bounds=(0, 255))
    assert small.max() <= 255


def test_small_images_get_one_thread_large_ones_every_core(monkeypatch):
    monkeypatch.setattr(pl, "default_threads", lambda: 2)

    def header(rows, cols, ch=1, dtype=2):  # uint16
        return ct.Header(mode=0, dtype=dtype, bits_stored=16, axes=0, frames=1, rows=rows, cols=cols,
                         channels=ch, tile_rows=min(512, rows), tile_cols=min(512, cols), levels=5,
                         transform=0, colour=0, max_error=0, vmin=0, vmax=1)

    assert pl.auto_threads(header(512, 512), 1) == 1      # one tile
    assert pl.auto_threads(header(768, 1024), 1) == 1     # 0.8-1.5 MB: a second tile would double the work memory
    assert pl.auto_threads(header(2048, 2048), 1) == 2
    assert pl.auto_threads(header(512, 512), 40) == 2     # a stack


def test_threads_change_no_byte_and_no_sample():
    a = _real("US1_UNCR.dcm")
    for kw in ({}, {"mode": "lossy", "bpp": 0.5}):
        one = hlc.encode(a, threads=1, **kw)
        assert hlc.encode(a, threads=2, **kw) == one == hlc.encode(a, **kw)
        assert np.array_equal(hlc.decode(one, threads=2), hlc.decode(one, threads=1))


@pytest.mark.parametrize("bits", [8, 12, 13, 16])
def test_colour_tiles_narrow_or_wide_round_trip(bits):
    rng = np.random.default_rng(bits)
    dtype = np.uint8 if bits <= 8 else np.uint16
    a = rng.integers(0, 1 << bits, (70, 90, 3)).astype(dtype)
    a[:, :45] = a[:, :45] // 2 + (1 << (bits - 2))  # some structure next to noise
    d = hlc.encode(a, bits_stored=bits)
    assert np.array_equal(hlc.decode(d), a)
    lossy = hlc.decode(hlc.encode(a, mode="lossy", bpp=2.0, bits_stored=bits))
    assert lossy.dtype == a.dtype and lossy.shape == a.shape
    assert int(lossy.max()) <= int(a.max()) and int(lossy.min()) >= int(a.min())


def test_quantise_in_place_equals_the_copying_quantiser():
    from codec_core import quantize
    img = _real("693_UNCR.dcm")[:300, :257]
    steps = quantize.subband_steps(3.0, 3)
    keep = transform.dwt97_forward(img, 3)
    ref = quantize.quantise(keep, steps, 3)                  # bands kept (a copy is quantised)
    bands = transform.dwt97_forward(img, 3)
    hl = bands[-1][0]
    got = quantize.quantise(bands, steps, 3, consume=True)  # each band overwritten by its integers
    assert bands == []
    assert got[-1][0].base is hl or np.shares_memory(got[-1][0], hl)
    assert np.array_equal(got[0], ref[0])
    for a, b in zip(got[1:], ref[1:]):
        for x, y in zip(a, b):
            assert x.dtype == np.int32 and np.array_equal(x, y)


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "693_UNCR.dcm"])
def test_lossy_psnr_mode_and_hybrid_still_meet_their_bounds(name):
    a = _real(name)
    d = hlc.encode(a, mode="lossy", psnr=45)
    out = hlc.decode(d)
    err = (out.astype(np.float64) - a) ** 2
    peak = float(a.max()) - float(a.min())
    assert 10 * np.log10(peak ** 2 / err.mean()) >= 45 - 0.05
    if a.ndim == 2:
        mask = np.zeros(a.shape, bool)
        mask[100:300, 150:400] = True
        h = hlc.decode(hlc.encode(a, mode="lossy", bpp=0.5, roi=mask, roi_max_error=1))
        assert np.abs(h[mask].astype(np.int64) - a[mask]).max() <= 1


def _deflate_inputs() -> list[bytes]:
    """Random and structured inputs of 0 to 70 kB: bytes of few values, small integers
    as uint32 (a value table's deltas), long runs (a map's varints), noise."""
    rng = np.random.default_rng(16)
    out = []
    for i in range(160):
        n = int(rng.integers(0, 70_000)) if i % 4 == 0 else int(rng.integers(0, 5_000))
        kind = i % 4
        if kind == 0:
            d = rng.integers(0, 4, n).astype(np.uint8).tobytes()
        elif kind == 1:
            d = (rng.geometric(0.3, n // 4 + 1) - 1).astype("<u4").tobytes()[:n]
        elif kind == 2:
            d = np.repeat(rng.integers(0, 255, n // 50 + 1), 50).astype(np.uint8).tobytes()[:n]
        else:
            d = rng.integers(0, 256, n).astype(np.uint8).tobytes()
        out.append(d)
    return out


def test_sized_deflate_gives_zlib_level_9s_data():
    """pipeline.deflate sizes zlib's window and hash table to its input: the deflate
    data (after the 2-byte header) is the defaults' to the byte, and inflates back."""
    import zlib

    from codec_core.pipeline import deflate

    for data in _deflate_inputs():
        got = deflate(data)
        assert zlib.decompress(got) == data
        assert got[2:] == zlib.compress(data, 9)[2:], len(data)


def test_sized_deflate_of_a_small_input_holds_a_fraction_of_zlibs_default_state():
    """A 128 x 128 image's value table (a few kB) deflated with zlib's defaults held
    256 kB of state, 8x the image; sized, 64 kB for 4 kB (zlib allocates through
    Python's raw allocator, which tracemalloc traces; the allocations are fixed by the
    sizes asked, so this is not a timing-like measure)."""
    import tracemalloc
    import zlib

    from codec_core.pipeline import deflate

    data = (np.random.default_rng(0).geometric(0.3, 1000) - 1).astype("<u4").tobytes()

    def peak(f) -> int:
        tracemalloc.start()
        try:
            f(data)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    default, sized = peak(lambda d: zlib.compress(d, 9)), peak(deflate)
    assert default > 200_000, default  # (the premise: zlib's defaults are traced)
    assert sized < 0.4 * default, (sized, default)
