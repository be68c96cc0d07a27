"""The one-call plane decoders (codec_core/_native/planedecode.c: ``_hlc.decode_lossy_plane``,
``_hlc.decode_lossless_plane``): the same samples as the decoder's step-by-step path
(entropy.decode_decomposition, then pipeline.reconstruct_lossy_plane or
transform.dwt53_inverse and the clip) on random decompositions and on real images, the
same errors for damaged segments, and their argument checks."""
from __future__ import annotations

import numpy as np
import pydicom
import pydicom.data
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import codec_core as hlc
from codec_core import _hlc, _kernels, decoder, entropy, pipeline
from codec_core import container as ct
from codec_core.errors import CorruptStreamError
from codec_core.transform import band_shapes, dwt53_inverse

_LIMIT = entropy.MAX_COEFFICIENT - 1
_TYPES = {np.uint8: (0, 255), np.int8: (-128, 127), np.uint16: (0, 65535), np.int16: (-32768, 32767),
          np.int32: (-(1 << 30), 1 << 30)}


def _bands(rng: np.random.Generator, rows: int, cols: int, levels: int, scale: float, density: float) -> list:
    def one(shape):
        x = np.rint(rng.laplace(0, scale, shape)) * (rng.random(shape) < density)
        x[rng.random(shape[0]) < 0.3] = 0  # whole zero rows (the quiet-run variant's row decision)
        return np.clip(x, -_LIMIT, _LIMIT).astype(np.int32)

    shapes = band_shapes(rows, cols, levels)
    return [one(shapes[0])] + [tuple(one(s) for s in shapes[r]) for r in range(1, levels + 1)]


def _by_steps(segs, rows, cols, levels, runs, steps, recon, out, lo, hi):
    """The decoder's step-by-step path: decode_decomposition, then one synthesis level at a time."""
    bands = entropy.decode_decomposition(segs, rows, cols, levels, lossy=True, runs=runs)
    ll = bands[0]
    for k in range(levels):
        hl, lh, hh = bands[k + 1]
        nxt = out if k == levels - 1 else np.empty((ll.shape[0] + lh.shape[0], ll.shape[1] + hl.shape[1]),
                                                   np.float32)
        _hlc.synth97_level(ll, hl, lh, hh, float(steps[0]), steps[1 + 3 * k:4 + 3 * k], recon, nxt, lo, hi)
        ll = nxt
    return out


def _in_one_call(segs, runs, steps, recon, out, lo, hi):
    rc = _kernels.decode_lossy_plane(segs, runs, _kernels.fresh_plane_models(), steps, recon, out, lo, hi)
    assert rc == 0
    return out


@settings(max_examples=120, deadline=None)
@given(rows=hst.integers(1, 70), cols=hst.integers(1, 70), levels=hst.integers(1, 4), runs=hst.booleans(),
       scale=hst.sampled_from([0.3, 2.0, 40.0, 1e6]), density=hst.sampled_from([0.0, 0.01, 0.2, 1.0]),
       dtype=hst.sampled_from(list(_TYPES)), strided=hst.booleans(), seed=hst.integers(0, 2**32 - 1))
def test_one_call_gives_the_samples_of_the_step_by_step_path(rows, cols, levels, runs, scale, density, dtype,
                                                            strided, seed):
    """Every band shape (1 x n, n x 1, empty detail bands), both coder variants, every
    output type, and a plane that is a tile of a wider image (rows apart)."""
    rng = np.random.default_rng(seed)
    segs = entropy.encode_decomposition(_bands(rng, rows, cols, levels, scale, density), levels, lossy=True,
                                        runs=runs)
    steps = (2.0 ** rng.uniform(-3, 6, 1 + 3 * levels)).astype(np.float32)
    recon = float(np.float32(rng.uniform(0, 0.5)))
    lo, hi = _TYPES[dtype]

    def target():
        if strided:
            return np.full((rows, cols + 5), 7, dtype)[:, 2:2 + cols]
        return np.full((rows, cols), 7, dtype)

    want = _by_steps(segs, rows, cols, levels, runs, steps, recon, target(), lo, hi)
    got = _in_one_call(segs, runs, steps, recon, target(), lo, hi)
    assert np.array_equal(got, want)


def _int_bands(rng: np.random.Generator, rows: int, cols: int, levels: int, scale: float, density: float) -> list:
    """A 5/3 decomposition's integer bands: an LL band of any values, sparse details."""
    shapes = band_shapes(rows, cols, levels)
    ll = rng.integers(-(1 << 15), 1 << 15, shapes[0]).astype(np.int32)
    return [ll] + [tuple(np.clip(np.rint(rng.laplace(0, scale, s)) * (rng.random(s) < density), -_LIMIT, _LIMIT)
                         .astype(np.int32) for s in shapes[r]) for r in range(1, levels + 1)]


@settings(max_examples=120, deadline=None)
@given(rows=hst.integers(1, 70), cols=hst.integers(1, 70), levels=hst.integers(1, 4),
       scale=hst.sampled_from([0.3, 2.0, 40.0, 1e5]), density=hst.sampled_from([0.0, 0.05, 0.5, 1.0]),
       dtype=hst.sampled_from(list(_TYPES)), strided=hst.booleans(), seed=hst.integers(0, 2**32 - 1))
def test_one_call_lossless_gives_the_samples_of_the_step_by_step_path(rows, cols, levels, scale, density, dtype,
                                                                     strided, seed):
    """The band coder's three contexts (parent, HL beside LH, both beside HH), empty
    levels, every band shape and output type, a plane that is a tile of a wider image."""
    rng = np.random.default_rng(seed)
    segs = entropy.encode_decomposition(_int_bands(rng, rows, cols, levels, scale, density), levels)
    lo, hi = _TYPES[dtype]
    lo, hi = max(lo, -(1 << 20)), min(hi, 1 << 20)

    def target():
        if strided:
            return np.full((rows, cols + 5), 7, dtype)[:, 2:2 + cols]
        return np.full((rows, cols), 7, dtype)

    want = target()
    x = dwt53_inverse(entropy.decode_decomposition(segs, rows, cols, levels))
    want[...] = np.clip(x, lo, hi)
    got = target()
    assert _kernels.decode_lossless_plane(segs, _kernels.fresh_plane_models()[:4], got, lo, hi) == 0
    assert np.array_equal(got, want)
    if strided:  # (the last level goes to out a row at a time: nothing beside the tile is written)
        assert (got.base[:, :2] == 7).all() and (got.base[:, 2 + cols:] == 7).all()


def _dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(pydicom.data.get_testdata_file(name)).pixel_array


def _step_by_step(monkeypatch, stream: bytes) -> np.ndarray:
    with monkeypatch.context() as m:
        m.setattr(decoder, "_whole_plane_in_c", lambda *a: False)
        return hlc.decode(stream, threads=1)


@pytest.mark.parametrize("name, kw", [
    ("CT_small.dcm", {"bpp": 0.25}),                      # signed 16-bit
    ("MR_small.dcm", {"bpp": 1.0}),                       # 64 x 64
    ("US1_UNCR.dcm", {"bpp": 0.5}),                       # RGB: colour transform, planes into a tile
    ("OBXXXX1A.dcm", {"bpp": 0.5}),                       # 8-bit
    ("693_UNCR.dcm", {"bpp": 0.25}),                      # padding: a region stream with a lossy layer
    ("MR_small.dcm", {"bpp": 2.0, "tile_size": 16}),      # tiles (of odd sizes at the edges: cropped below)
    ("CT_small.dcm", {"psnr": 45.0, "levels": 1}),        # one level
])
def test_real_images_decode_to_the_same_samples_either_way(monkeypatch, name, kw):
    a = _dicom(name)
    if "tile_size" in kw:
        a = a[:61, :45]
    stream = hlc.encode(a, mode="lossy", try_near_lossless=False, **kw)
    got = hlc.decode(stream, threads=1)
    assert np.array_equal(got, _step_by_step(monkeypatch, stream))
    assert got.shape == a.shape and got.dtype == a.dtype


@pytest.mark.parametrize("name, kw", [
    ("examples_overlay.dcm", {}),                         # wavelet planes (the others: predictive ones
    ("examples_overlay.dcm", {"levels": 1}),              # or a mix, which must still decode)
    ("examples_overlay.dcm", {"tile_size": 128}),         # tiles (of odd sizes at the edges: cropped below)
    ("CT_small.dcm", {}),                                 # signed 16-bit
    ("OBXXXX1A.dcm", {}),                                 # 8-bit
    ("US1_UNCR.dcm", {}),                                 # RGB: planes into a colour tile (step by step)
])
def test_lossless_images_decode_exactly_either_way(monkeypatch, name, kw):
    a = _dicom(name)
    if "tile_size" in kw:
        a = a[:291, :459]
    stream = hlc.encode(a, mode="lossless", **kw)
    got = hlc.decode(stream, threads=1)
    assert np.array_equal(got, a) and got.dtype == a.dtype
    assert np.array_equal(got, _step_by_step(monkeypatch, stream))


def test_the_decoder_takes_the_one_call_path_for_a_plain_lossy_plane(monkeypatch):
    """(Otherwise the comparisons above would compare the step-by-step path with itself.)"""
    calls = []
    real = _kernels.decode_lossy_plane
    monkeypatch.setattr(_kernels, "decode_lossy_plane", lambda *a: calls.append(1) or real(*a))
    hlc.decode(hlc.encode(_dicom("CT_small.dcm"), mode="lossy", bpp=0.5, try_near_lossless=False))
    assert calls == [1]


def test_the_decoder_takes_the_one_call_path_for_a_lossless_wavelet_plane(monkeypatch):
    from codec_core.format import PlaneCoder, plane_coder
    calls = []
    real = _kernels.decode_lossless_plane
    monkeypatch.setattr(_kernels, "decode_lossless_plane", lambda *a: calls.append(1) or real(*a))
    stream = hlc.encode(_dicom("examples_overlay.dcm"), mode="lossless")
    assert plane_coder(_plane_segments(stream)[1][0]) == PlaneCoder.WAVELET
    hlc.decode(stream)
    assert calls == [1]


def _plane_segments(stream: bytes) -> tuple[ct.Header, list]:
    h, start = ct.parse_header(stream)
    offsets = ct.segment_offsets(h, start)
    return h, [ct.read_segment(stream, h, offsets, i) for i in range(h.levels + 1)]


_BAD_LENGTH, _SHORT = "bad length field in a coded segment", "coded segment shorter than its length field"


@pytest.mark.parametrize("which, damage, message", [
    (0, lambda s: b"", _BAD_LENGTH),                # the LL segment without a length field (a detail
                                                    # level's empty segment is a level of zeros)
    (0, lambda s: b"\x80\x80", _BAD_LENGTH),        # cut inside it
    (2, lambda s: b"\x80\x80", _BAD_LENGTH),
    (0, lambda s: b"\xff" * 6, _BAD_LENGTH),         # longer than 5 bytes
    (2, lambda s: b"\xff" * 6, _BAD_LENGTH),
    (0, lambda s: b"\x7f" + s[1:20], _SHORT),
    (2, lambda s: b"\x7f" + s[1:20], _SHORT),
])
def test_a_damaged_segment_gives_the_step_by_step_paths_error(which, damage, message):
    """(CRCs catch damage in a stream: these reach the kernel with a matching CRC.)"""
    stream = hlc.encode(_dicom("CT_small.dcm"), mode="lossy", bpp=1.0, try_near_lossless=False)
    h, segs = _plane_segments(stream)
    segs[which] = damage(segs[which])
    out = np.zeros((h.rows, h.cols), h.np_dtype)
    with pytest.raises(CorruptStreamError, match=message):
        decoder._lossy_plane(list(segs), h, 0, out)
    with pytest.raises(CorruptStreamError, match=message):
        entropy.decode_decomposition(segs, h.rows, h.cols, h.levels, lossy=True, runs=True)
    # the lossless plane decoder reads its segments' lengths the same way
    with pytest.raises(CorruptStreamError, match=message):
        decoder._lossless_plane(list(segs), h, out)


def test_any_bytes_in_the_segments_decode_without_harm():
    """Random and truncated segments: a status or samples, never a crash (the fuzzer
    runs the same on whole streams)."""
    rng = np.random.default_rng(5)
    stream = hlc.encode(_dicom("CT_small.dcm"), mode="lossy", bpp=1.0, try_near_lossless=False)
    h, segs = _plane_segments(stream)
    steps = np.asarray(h.steps, np.float32)
    for _ in range(200):
        bad = [bytes(rng.integers(0, 256, int(rng.integers(0, 3 * len(s) + 8)), dtype=np.uint8)) if rng.random() < 0.5
               else s[:int(rng.integers(0, len(s) + 1))] for s in segs]
        out = np.zeros((h.rows, h.cols), h.np_dtype)
        rc = _kernels.decode_lossy_plane(bad, True, _kernels.fresh_plane_models(), steps, 0.0, out,
                                         float(h.vmin), float(h.vmax))
        assert rc in (0, _hlc.PLANE_BAD_LENGTH, _hlc.PLANE_SHORT)
        if rc == 0:  # (a damaged length is found before anything is written)
            assert h.vmin <= int(out.min()) and int(out.max()) <= h.vmax


def test_its_arguments_are_checked():
    segs = [b"\x00", b""]
    models = _kernels.fresh_plane_models()
    steps = np.ones(4, np.float32)

    def call(*, s=segs, m=models, st=steps, out=None, lo=0.0, hi=255.0):
        return _kernels.decode_lossy_plane(s, True, m, st, 0.0, np.zeros((4, 4), np.uint8) if out is None else out,
                                           lo, hi)

    assert call() == 0
    with pytest.raises(ValueError, match="segments"):
        call(s=[b"\x00"])
    with pytest.raises(ValueError, match="7 model arrays"):
        call(m=models[:6])
    with pytest.raises(ValueError, match="wrong size"):
        call(m=(models[4],) + models[1:])
    with pytest.raises(ValueError, match="1 \\+ 3 L steps"):
        call(st=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="type holds"):
        call(hi=256.0)
    with pytest.raises(ValueError, match="integer array"):
        call(out=np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="contiguous in a row"):
        call(out=np.zeros((4, 8), np.uint8)[:, ::2])
    with pytest.raises(ValueError, match="empty"):
        call(out=np.zeros((0, 4), np.uint8))
    assert _kernels.decode_lossless_plane(segs, models[:4], np.zeros((4, 4), np.uint8), 0, 255) == 0
    with pytest.raises(ValueError, match="4 model arrays"):
        _kernels.decode_lossless_plane(segs, models, np.zeros((4, 4), np.uint8), 0, 255)
    with pytest.raises(ValueError, match="type holds"):
        _kernels.decode_lossless_plane(segs, models[:4], np.zeros((4, 4), np.uint8), -1, 255)


def test_bounds_are_one_rule_for_both_paths():
    """pipeline.lossy_bounds: the header's range, or the RCT clip for colour."""
    grey = ct.parse_header(hlc.encode(_dicom("CT_small.dcm"), mode="lossy", bpp=1.0))[0]
    colour = ct.parse_header(hlc.encode(_dicom("US1_UNCR.dcm")[:64, :64], mode="lossy", bpp=1.0,
                                        try_near_lossless=False))[0]
    assert pipeline.lossy_bounds(grey, np.int16) == (grey.vmin, grey.vmax)
    lim = pipeline.rct_limit(np.int16)
    assert pipeline.lossy_bounds(colour, np.int16) == (-lim, lim)


# ------------------------------------------------------------------ block cache

def test_decoded_images_never_share_memory_and_the_cache_stays_bounded():
    """Outputs come from the decoder's block cache (planedecode.c): two live images never
    share memory, an image stays itself while another of its size is decoded, a freed
    image's memory is reused, and the cache never holds more than its limit."""
    a = _dicom("CT_small.dcm")
    stream = hlc.encode(a, mode="lossless")
    x, y = hlc.decode(stream), hlc.decode(stream)
    assert not np.shares_memory(x, y) and x.flags.writeable
    x[...] = 0
    assert np.array_equal(y, a) and np.array_equal(hlc.decode(stream), a)
    del x
    z = hlc.decode(stream)
    assert np.array_equal(z, a)
    rng = np.random.default_rng(1)
    for _ in range(40):  # many sizes, lossy and lossless: the cache's limit holds
        r, c = (int(v) for v in rng.integers(16, 700, 2))
        img = rng.integers(0, 4096, (r, c)).astype(np.uint16)
        kw = {"mode": "lossless"} if rng.random() < 0.5 else {"mode": "lossy", "bpp": 1.0}
        hlc.decode(hlc.encode(img, **kw))
        held, limit = _hlc.cached_bytes()
        assert 0 <= held <= limit


def test_the_cache_is_shared_by_threads_without_mixing_their_images():
    """Tiles of a large image decoded on two threads, and whole images decoded in
    threads at once: every result exact (blocks handed to one decode only)."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 1 << 12, (300 + 17 * k, 260 + 5 * k)).astype(np.uint16) for k in range(6)]
    streams = [hlc.encode(im, mode="lossless", tile_size=128) for im in imgs]
    with ThreadPoolExecutor(4) as ex:
        for _ in range(3):
            outs = list(ex.map(lambda s: hlc.decode(s, threads=2), streams))
            assert all(np.array_equal(o, im) for o, im in zip(outs, imgs, strict=True))


def test_the_cache_memory_is_seen_by_tracemalloc():
    """Blocks come from the Python raw allocator: tracemalloc (the fuzzer's over-allocation
    check) sees a decode's output and scratch as it saw numpy's arrays. decode() keeps
    the scratch of a plain stream's last plane in the cache; the encoder's trial decodes
    (decoder.decode_frame) keep none; release_cache frees what the cache keeps."""
    import tracemalloc
    a = np.random.default_rng(3).integers(0, 4096, (480, 512)).astype(np.uint16)  # (one tile)
    stream = hlc.encode(a, mode="lossy", bpp=1.0, try_near_lossless=False)
    _hlc.release_cache()
    assert _hlc.cached_bytes()[0] == 0
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = hlc.decode(stream)
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = _hlc.cached_bytes()[0]
    assert kept >= 2 * out.size  # (the last level's int32 bands at least)
    assert now - before >= out.nbytes + kept  # the output's block and the kept scratch
    assert peak - before >= out.nbytes + 2 * out.size  # (the int32 bands: 2 bytes a sample more)
    del out  # its block goes back to the cache
    assert _hlc.cached_bytes()[0] >= kept + a.nbytes
    _hlc.release_cache()
    frame = decoder.decode_frame(stream, 0, 1)  # the encoder's trial decode: its scratch not kept
    assert _hlc.cached_bytes()[0] == 0
    del frame  # (its output's block kept once the array is gone)
    assert _hlc.cached_bytes()[0] >= a.nbytes
    _hlc.release_cache()
    assert _hlc.cached_bytes()[0] == 0
    assert ct.parse_header(stream)[0].levels > 0


def test_a_block_of_a_size_the_cache_lacks_empties_it():
    """A large request the cache cannot serve frees what it keeps (other sizes: kept,
    they would add to this decode's peak): after a two-tile image, only the last (edge)
    tile's scratch is kept, not the first tile's."""
    a = np.random.default_rng(4).integers(0, 4096, (640, 512)).astype(np.uint16)  # tiles 512 and 128 rows
    stream = hlc.encode(a, mode="lossy", bpp=1.0, try_near_lossless=False)
    _hlc.release_cache()
    out = hlc.decode(stream)
    assert 0 < _hlc.cached_bytes()[0] < 2 * 512 * 512 * 3 // 4 * 4 // 2  # (under the first tile's finest bands)
    assert np.array_equal(out, hlc.decode(stream))
    _hlc.release_cache()


def test_release_memory_empties_the_cache():
    """codec_core.release_memory(): the public way to give the kept memory back."""
    a = _dicom("CT_small.dcm")
    out = hlc.decode(hlc.encode(a, mode="lossless"))
    del out
    assert _hlc.cached_bytes()[0] > 0
    hlc.release_memory()
    assert _hlc.cached_bytes()[0] == 0
    assert "release_memory" in hlc.__all__


@pytest.mark.parametrize("where", ["none", "first", "last"])
@pytest.mark.parametrize("runs", [False, True])
def test_the_finest_level_is_int16_when_it_fits_and_int32_when_not(where, runs):
    """The one-call lossy decoder stores the finest level's bands as int16 when every
    coefficient fits (the int16 extremes included) and decodes the level again into
    int32 when one does not (first in HL's first row, or last in HH's last row): the
    samples of the step-by-step path (int32 throughout) either way."""
    rng = np.random.default_rng(11)
    rows, cols, levels = 37, 52, 3
    bands = _bands(rng, rows, cols, levels, 40.0, 0.3)
    hl, lh, hh = bands[levels]
    hl[0, 0], lh[-1, 0], hh[0, -1] = 32767, -32768, -32767
    if where == "first":
        hl[0, 1] = 32768
    elif where == "last":
        hh[-1, -1] = -32769
    segs = entropy.encode_decomposition(bands, levels, lossy=True, runs=runs)
    steps = np.full(1 + 3 * levels, 0.5, np.float32)
    lo, hi = _TYPES[np.int32]
    want = _by_steps(segs, rows, cols, levels, runs, steps, 0.25, np.zeros((rows, cols), np.int32), lo, hi)
    got = _in_one_call(segs, runs, steps, 0.25, np.zeros((rows, cols), np.int32), lo, hi)
    assert np.array_equal(got, want)


def test_the_finest_level_takes_two_bytes_a_coefficient():
    """The one-call lossy decode of a 512^2 16-bit plane: its traced peak beyond the
    output is under 4.2 bytes a sample (the finest level's bands as int16, 1.5; the
    coarser levels' int32 bands, 1; the finest level's float LL, 1: 3.6 measured; with
    the finest level as int32 it was 5.1)."""
    import tracemalloc
    a = np.random.default_rng(12).integers(0, 4096, (512, 512)).astype(np.uint16)
    stream = hlc.encode(a, mode="lossy", bpp=2.0, try_near_lossless=False)
    _hlc.release_cache()
    out = np.empty_like(a)
    h, segs = _plane_segments(stream)
    steps = np.asarray(h.steps[:1 + 3 * h.levels], np.float32)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _in_one_call(segs, True, steps, float(np.float32(h.recon_offset)), out, 0, 4095)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    want = _by_steps(segs, 512, 512, h.levels, True, steps, float(np.float32(h.recon_offset)), np.empty_like(a),
                     0, 4095)
    assert np.array_equal(out, want)
    assert peak < 4.2 * a.size, peak / a.size
