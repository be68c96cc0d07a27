"""The hybrid by region layers (codec_core/regions.py, issue 20).

* per-region bounds on random label images, bit depths and e / e_body / E triples
  (property tests): detail within e, body within e_body, background within E;
* a background PSNR target is met (and, on a real image, within regions.PSNR_TOLERANCE);
* the hybrid is never larger than the whole image coded within +-e;
* every new stream variant decodes with onnxruntime and scikit-learn unimportable;
* the options' bad input, the map's row runs, damage.
"""
from __future__ import annotations

import math
import subprocess
import sys
import warnings

import zlib

import numpy as np
import pytest
from blocked_imports import BLOCK_MODELS
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import codec_core as hlc
from codec_core import regions

_FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def dicom(name: str) -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def _err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int64) - b.astype(np.int64))


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray, peak: float) -> float:
    se = float((_err(a, b)[where].astype(np.float64) ** 2).sum())
    return math.inf if se == 0 else 10 * math.log10(peak ** 2 * int(where.sum()) / se)


@st.composite
def labelled_images(draw):
    """An image (2-D, colour or a stack; any dtype and bits stored), a label image
    (0 background, 1 body, 2 detail) of blobs or noise, and e <= e_body <= E."""
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.int8, np.uint16, np.int16])))
    bits = draw(st.integers(1, 8 * dtype.itemsize))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dtype.kind == "i" else (0, (1 << bits) - 1)
    rows, cols = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["2d", "2d", "colour", "frames"]))
    shape = {"2d": (rows, cols), "colour": (rows, cols, 3), "frames": (2, rows, cols)}[kind]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.integers(lo, hi + 1)
    img = np.clip(base + np.cumsum(rng.integers(-40, 41, size=shape), axis=-1), lo, hi).astype(dtype)
    spatial = shape[:-1] if kind == "colour" else shape
    labels = np.zeros(spatial, np.uint8)
    if draw(st.booleans()):  # blobs: a body with detail inside
        labels[..., rows // 4:rows - rows // 4, cols // 5:] = 1
        labels[..., rows // 3:rows // 2 + 1, cols // 3:cols // 2 + 1] = 2
    else:
        labels = rng.integers(0, 3, size=spatial).astype(np.uint8)
    e = draw(st.sampled_from([0, 0, 1, 3]))
    eb = e + draw(st.sampled_from([0, 0, 2]))
    big = draw(st.sampled_from([None, 0, 5, 60]))
    return img, bits, labels, e, eb, (None if big is None else eb + big)


_COLOUR_LABELS = (np.array([[[1, 1, 0]], [[0, 0, 0]]], np.uint8), 1,  # read as a 2 x 1 colour image
                  np.array([[[0, 0, 2]], [[1, 2, 1]]], np.uint8), 1, 1, None)


@settings(max_examples=120, **_FAST)
@given(labelled_images(), st.booleans())
@example(_COLOUR_LABELS, False)
@example(_COLOUR_LABELS, True)
def test_every_region_keeps_its_bound(case, whole_if_smaller):
    img, bits, labels, e, eb, big_e = case
    target = {"background_max_error": big_e} if big_e is not None else {"background_psnr": 35.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = hlc.encode(img, mode="lossy", bits_stored=bits, roi=labels, roi_max_error=e, body_max_error=eb,
                          whole_image_if_smaller=whole_if_smaller, **target)
    out = hlc.decode(data)
    assert out.dtype == img.dtype and out.shape == img.shape
    lab = labels[..., None] if labels.shape != img.shape else labels
    if hlc.info(data)["axes"].endswith("C"):
        # a colour pixel takes the highest class of its samples (a (2, rows, 3) stack
        # with labels per sample is read as colour): each sample keeps its pixel's bound
        lab = np.broadcast_to(lab, img.shape).max(axis=-1, keepdims=True)
    err = _err(out, img)
    for cls, bound in ((2, e), (1, eb), (0, big_e)):
        where = np.broadcast_to(lab == cls, img.shape)
        if bound is not None and where.any():
            assert int(err[where].max()) <= bound, (cls, bound)
    bg = np.broadcast_to(lab == 0, img.shape)
    if big_e is None and bg.any():
        peak = float(max(1, int(img.max()) - int(img.min())))
        assert _psnr(out, img, bg, peak) >= 35.0
    if not whole_if_smaller:
        assert hlc.info(data)["roi"] == bool((labels > 0).any()) or not (labels > 0).any()


@settings(max_examples=60, **_FAST)
@given(labelled_images())
def test_the_hybrid_is_never_larger_than_the_whole_image_within_e(case):
    # (whenever the whole image within +-e meets the background's target: a max error
    # E >= e always does, a PSNR when errors of +-e guarantee it)
    img, bits, labels, e, _, big_e = case
    peak = max(1, int(img.max()) - int(img.min()))
    target = {"background_max_error": big_e} if big_e is not None else \
        {"background_psnr": min(40.0, 20 * math.log10(peak / e)) if e else 40.0}
    if target.get("background_psnr", 1.0) < 1.0:
        target = {"background_max_error": e}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = hlc.encode(img, mode="lossy", bits_stored=bits, roi=labels > 0, roi_max_error=e, **target)
    whole = hlc.encode(img, mode="near-lossless", max_error=e, bits_stored=bits) if e else \
        hlc.encode(img, mode="lossless", bits_stored=bits)
    assert len(data) <= len(whole)


@pytest.mark.parametrize("name", ["693_UNCR.dcm", "MR2_UNCR.dcm"])
def test_the_background_psnr_is_met_within_a_tenth_of_a_db(name):
    img = dicom(name)
    if img.shape[0] > 512:
        img = img[::2, ::2]
    mask = np.zeros(img.shape, bool)
    r, c = img.shape
    mask[r // 4:3 * r // 4, c // 4:3 * c // 4] = True
    data = hlc.encode(img, mode="lossy", roi=mask, roi_max_error=0, background_psnr=40.0,
                      whole_image_if_smaller=False)
    out = hlc.decode(data)
    got = _psnr(out, img, ~mask, float(img.max()) - float(img.min()))
    assert 40.0 <= got <= 40.0 + regions.PSNR_TOLERANCE
    meta = hlc.info(data)
    assert meta["regions"]["background"]["psnr"] == pytest.approx(got, abs=1e-3)
    assert meta["regions"]["detail"]["max_error"] == 0 and meta["target"]["name"] == "background_psnr"


def test_background_max_error_is_met_exactly_and_reported():
    img = dicom("explicit_VR-UN.dcm")
    mask = np.zeros(img.shape, bool)
    mask[100:400, 80:420] = True
    data = hlc.encode(img, mode="lossy", roi=mask, roi_max_error=1, background_max_error=25)
    out = hlc.decode(data)
    assert int(_err(out, img)[mask].max()) <= 1 and int(_err(out, img)[~mask].max()) <= 25
    assert int(_err(out, img)[~mask].max()) == 25  # the bound is used, not wasted
    bg = hlc.info(data)["regions"]["background"]
    assert bg["max_error_bound"] == 25 and bg["max_error"] == 25 and bg["coder"] == "near-lossless"


def test_a_hybrid_without_a_target_keeps_its_background_at_40_db():
    img = dicom("693_UNCR.dcm")
    mask = np.zeros(img.shape, bool)
    mask[128:384, 128:384] = True
    data = hlc.encode(img, mode="lossy", roi=mask)
    meta = hlc.info(data)
    assert meta["target"] == {"name": "background_psnr (default)", "value": regions.DEFAULT_BACKGROUND_PSNR}
    got = _psnr(hlc.decode(data), img, ~mask, float(img.max()) - float(img.min()))
    assert got >= regions.DEFAULT_BACKGROUND_PSNR


def test_an_unreachable_bpp_warns_and_keeps_the_background_above_the_floor():
    img = dicom("693_UNCR.dcm")
    mask = np.zeros(img.shape, bool)
    mask[64:448, 64:448] = True
    with pytest.warns(UserWarning, match="bpp=0.25 is below what the hybrid reaches"):
        data = hlc.encode(img, mode="lossy", roi=mask, bpp=0.25, whole_image_if_smaller=False)
    out = hlc.decode(data)
    assert _psnr(out, img, ~mask, float(img.max()) - float(img.min())) >= regions.BACKGROUND_PSNR_FLOOR
    assert hlc.info(data)["bpp"] > 0.25 and np.array_equal(out[mask], img[mask])


def test_an_unreachable_bpp_warns_when_the_whole_image_is_returned():
    # (the whole image within +-e, lossless here, is smaller than the hybrid: it is
    # returned, and the target is still out of reach: the same warning, at the caller)
    img = dicom("CT_small.dcm")
    with pytest.warns(UserWarning, match="bpp=0.5 is below what the hybrid reaches") as caught:
        data = hlc.encode(img, mode="lossy", bpp=0.5, roi=np.ones(img.shape, bool))
    assert hlc.info(data)["mode"] == "lossless" and np.array_equal(hlc.decode(data), img)
    assert f"{8 * len(data) / img.size:.3f} bpp" in str(caught[0].message)
    assert caught[0].filename == __file__  # (at the caller, not inside codec_core)


def test_a_reachable_bpp_is_met():
    img = dicom("693_UNCR.dcm")
    mask = np.zeros(img.shape, bool)
    mask[200:300, 200:300] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = hlc.encode(img, mode="lossy", roi=mask, bpp=1.0)
    assert hlc.info(data)["bpp"] <= 1.0 and np.array_equal(hlc.decode(data)[mask], img[mask])


def test_a_whole_image_psnr_counts_the_roi_error():
    img = dicom("693_UNCR.dcm")
    mask = np.zeros(img.shape, bool)
    mask[128:384, 128:384] = True
    data = hlc.encode(img, mode="lossy", roi=mask, roi_max_error=2, psnr=45.0, whole_image_if_smaller=False)
    out = hlc.decode(data)
    peak = float(img.max()) - float(img.min())
    assert _psnr(out, img, np.ones(img.shape, bool), peak) >= 45.0
    assert int(_err(out, img)[mask].max()) <= 2


def test_three_levels_from_a_label_image():
    img = dicom("693_UNCR.dcm")
    labels = np.zeros(img.shape, np.uint8)
    labels[64:448, 64:448] = 1
    labels[200:300, 200:300] = 2
    data = hlc.encode(img, mode="lossy", roi=labels, roi_max_error=0, body_max_error=3, background_psnr=38)
    out, err = hlc.decode(data), None
    err = _err(out, img)
    assert err[labels == 2].max() == 0 and err[labels == 1].max() <= 3
    meta = hlc.info(data)["regions"]
    assert meta["detail"]["coder"] == "lossless" and meta["body"]["coder"] == "near-lossless"
    assert meta["detail"]["layer"] != meta["body"]["layer"]
    # equal bounds share one layer
    one = hlc.info(hlc.encode(img, mode="lossy", roi=labels, roi_max_error=1))["regions"]
    assert one["detail"]["layer"] == one["body"]["layer"]


def test_the_outside_of_a_reconstruction_circle_is_flat_and_exact():
    img = dicom("693_UNCR.dcm")  # padded with -2000 outside the circle
    body = img > -500
    data = hlc.encode(img, mode="lossy", roi=body, background_psnr=40, whole_image_if_smaller=False)
    out = hlc.decode(data)
    meta = hlc.info(data)
    assert meta["flat_value"] == -2000
    outside = img == -2000
    assert (out[outside] == -2000).mean() > 0.9
    classes = regions.stream_classes(data)[0]
    assert set(np.unique(classes)) <= {0, 1, 2}  # flat padding is background to its readers


def test_all_roi_and_all_background_masks():
    img = dicom("CT_small.dcm")
    everything = hlc.encode(img, mode="lossy", roi=np.ones(img.shape, bool), whole_image_if_smaller=False)
    assert np.array_equal(hlc.decode(everything), img)
    assert set(hlc.info(everything)["regions"]) == {"detail"}
    nothing = hlc.encode(img, mode="lossy", roi=np.zeros(img.shape, bool), background_psnr=45,
                         whole_image_if_smaller=False)
    meta = hlc.info(nothing)
    assert set(meta["regions"]) == {"background"} and meta["roi_fraction"] == 0.0
    assert meta["regions"]["background"]["psnr"] >= 45


@pytest.mark.parametrize(("options", "match"), [
    (dict(mode="lossy", bpp=1.0, background_psnr=40), "background_psnr"),
    (dict(mode="lossy", psnr=40.0, roi="auto", background_psnr=40), "background_psnr"),
    (dict(mode="lossy", roi="auto", background_psnr=40, background_max_error=5), "one background target"),
    (dict(mode="lossy", roi="auto", roi_max_error=3, background_max_error=2), "background_max_error=2"),
    (dict(mode="lossy", roi="auto", roi_max_error=3, body_max_error=1), "body_max_error=1"),
    (dict(mode="lossy", roi="auto", body_max_error=4, background_max_error=2), "background_max_error=2"),
    (dict(mode="lossy", roi="auto", background_psnr=0.5), "background_psnr=0.5"),
    (dict(mode="lossy", roi="auto", bpp=1.0, psnr=40.0), "not both"),
    (dict(mode="lossless", background_max_error=2), "background_max_error"),
    # (a bound without an ROI was coded without a word, as if not given)
    (dict(mode="lossless", roi_max_error=5), "roi_max_error is for a hybrid"),
    (dict(mode="lossy", bpp=1.0, roi_max_error=3), "roi_max_error is for a hybrid"),
])
def test_bad_region_options_name_the_parameter(options, match):
    img = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match=match):
        hlc.encode(img, **options)


def test_a_label_image_with_unknown_labels_is_refused():
    img = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="roi label image holds the label 3"):
        hlc.encode(img, mode="lossy", roi=np.full((16, 16), 3, np.uint8))
    with pytest.raises(ValueError, match="roi label image holds the label -1"):
        hlc.encode(img, mode="lossy", roi=np.full((16, 16), -1, np.int16))


@settings(max_examples=80, **_FAST)
@given(st.integers(1, 3), st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_the_map_round_trips_as_row_runs(frames, rows, cols, seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(0, regions.MAP_CLASSES, size=(frames, rows, cols)).astype(np.uint8)
    if seed & 1:  # blobs rather than noise
        m = np.repeat(np.repeat(m[:, ::4, ::4], 4, axis=1), 4, axis=2)[:, :rows, :cols]
        m = np.ascontiguousarray(m)
    assert np.array_equal(regions.unpack_map(regions.pack_map(m), m.shape), m)


@pytest.mark.parametrize("seed", range(40))
def test_a_damaged_map_raises_a_stream_error(seed):
    rng = np.random.default_rng(seed)
    m = np.zeros((1, 20, 20), np.uint8)
    m[0, 5:15, 3:17] = 2
    packed = bytearray(regions.pack_map(m))
    packed[rng.integers(0, len(packed))] ^= 1 << int(rng.integers(0, 8))
    try:
        out = regions.unpack_map(bytes(packed), m.shape)
    except hlc.HlcError:
        return
    assert out.shape == m.shape and out.max() < regions.MAP_CLASSES


def _reference_runs(cmap: np.ndarray) -> list[int]:
    """The row-run values of docs/FORMAT.md, written plainly (the compiled packer must agree)."""
    values: list[int] = []
    for frame in cmap:
        prev: tuple[list[int], list[int]] = ([], [])
        for row in frame:
            starts = [j for j in range(len(row)) if j == 0 or row[j] != row[j - 1]]
            labels = [int(row[j]) for j in starts]
            if len(starts) == len(prev[0]) and labels == prev[1]:
                values += [0] + [2 * d if d >= 0 else -2 * d - 1 for d in np.subtract(starts, prev[0]).tolist()]
            else:
                values += [len(starts) + 1] + labels + np.diff(starts + [len(row)]).tolist()
            prev = (starts, labels)
    return values


@settings(max_examples=40, **_FAST)
@given(st.integers(1, 2), st.integers(1, 12), st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_the_compiled_map_packer_writes_the_documented_runs(frames, rows, cols, seed):
    m = np.random.default_rng(seed).integers(0, regions.MAP_CLASSES, size=(frames, rows, cols)).astype(np.uint8)
    m[:, :, : cols // 2] = m[:, :1, : cols // 2]  # repeated rows: the shift form too
    raw = zlib.decompress(regions.pack_map(m))
    assert raw == b"".join(hlc.container.varint(v) for v in _reference_runs(m))


def test_the_map_packer_needs_only_the_runs_room_and_refuses_less():
    """pack_map's buffer is sized by the map's runs (1 + 2 n a row), not the worst case;
    the compiled packer checks the room it is given."""
    from codec_core import _hlc

    m = np.zeros((2, 40, 64), np.uint8)
    m[:, ::2, ::3] = 1  # many runs a row, rows alternating
    m[1, 7:30, 5:60] = 3
    need = regions._runs_bound(m)
    assert need < m.size * 2
    scratch = np.empty(4 * m.shape[2], np.int64)
    count = _hlc.pack_map(m, np.empty(need, np.int64), scratch)
    assert count <= need
    assert len(_reference_runs(m)) == count
    with pytest.raises(ValueError, match="room"):
        _hlc.pack_map(m, np.empty(count - 1, np.int64), scratch)
    worst = (np.indices((1, 5, 9)).sum(axis=0) % 2).astype(np.uint8)  # every row new, every sample a run
    assert _hlc.pack_map(worst, np.empty(regions._runs_bound(worst), np.int64), scratch) == regions._runs_bound(worst)


@pytest.mark.parametrize("seed", range(60))
def test_damage_inside_the_map_runs_raises_a_stream_error(seed):
    """Values changed or cut after zlib (the map's own checks, not zlib's, must catch it;
    a run list cut short once raised numpy's ValueError)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((2, 24, 30), np.uint8)
    m[:, 4:20, 5:25] = 1
    m[1, 10:14, 8:12] = 3
    raw = bytearray(zlib.decompress(regions.pack_map(m)))
    if seed % 2:
        raw = raw[: int(rng.integers(0, len(raw)))]
    else:
        raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
    try:
        out = regions.unpack_map(zlib.compress(bytes(raw)), m.shape)
    except hlc.HlcError:
        return
    assert out.shape == m.shape and out.max() < regions.MAP_CLASSES


@pytest.mark.parametrize("cols", [1, 2, 63, 64, 65, 300, 8191, 8192])
def test_the_worst_maps_fit_the_inflate_bound(cols):
    """A map is inflated to at most _map_bytes_bound bytes: the runs of the worst maps
    (every sample a run, every row new; and every row the shifts of the row above) fit
    it exactly or below, and round-trip (the bound's varint size changes at 64 and 8192
    columns)."""
    every = (np.indices((1, 3, cols)).sum(axis=0) % 2).astype(np.uint8)  # rows alternate: new
    shifted = np.zeros((1, 3, cols), np.uint8)
    shifted[0, 0, ::2] = 1
    shifted[0, 1, 1::2] = 1  # the same number of runs and classes? not always: as it comes
    for m in (every, shifted, (every * 3).astype(np.uint8)):
        packed = regions.pack_map(m)
        assert len(zlib.decompress(packed)) <= regions._map_bytes_bound(m.shape)
        assert np.array_equal(regions.unpack_map(packed, m.shape), m)


@pytest.mark.parametrize("raw, why", [
    (bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]), "too large"),  # 5 bytes: 2^35 - 1 (raised numpy's ValueError)
    (bytes([0x80, 0x80, 0x80, 0x80, 0x00]), "too large"),  # 0, but longer than any value of the map
    (bytes([0x02, 0x80, 0x00, 0x04]), "longer than it needs"),  # a class 0 in two bytes (the bound
    (bytes([0x82, 0x00, 0x00, 0x04]), "longer than it needs"),  # counts the fewest), a head 2 in two
    (bytes([0x02, 0x00, 0x84]), "ends inside a value"),
    (bytes([0x02, 0x00, 0x04, 0x00, 0x85]), "ends inside a value"),  # a complete map, then a cut value
    (bytes([0x02, 0x00]), "cut short"),
])
def test_bad_varints_in_the_map_raise_a_stream_error(raw, why):
    with pytest.raises(hlc.CorruptStreamError, match=why):
        regions.unpack_map(zlib.compress(raw), (1, 1, 4))


def _region_stream_parts() -> tuple:
    """A real region stream's header and segments (a hybrid of 64 x 64 noise)."""
    from codec_core import container as ct

    img = np.random.default_rng(0).integers(0, 4096, (64, 64)).astype(np.uint16)
    mask = np.zeros(img.shape, bool)
    mask[20:40, 20:40] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = hlc.encode(img, mode="lossy", roi=mask)
    h, start = ct.parse_header(data)
    assert h.flags & ct.FLAG_REGIONS
    offs = ct.segment_offsets(h, start)
    return h, [data[offs[i]:offs[i + 1]] for i in range(len(h.segments))]


def _traced_peak(fn) -> tuple[object, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zlib_bomb_in_the_map_is_inflated_only_as_far_as_a_map_can_reach():
    """A map of zeros compresses ~1000:1: a stream of a few kB could make the decoder
    inflate 10 bytes a pixel and read them into int64 arrays several times over (2.4 GB
    for 2048 x 2048 from a 43 kB stream). Now the map is inflated to its size bound and
    its values read from the bytes: the traced peak stays near that bound plus the map."""
    import tracemalloc

    shape = (1, 1024, 1024)
    bomb = zlib.compress(bytes(shape[1] * (2 * shape[2] + 1) * 5 + 16), 9)
    assert len(bomb) < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(hlc.CorruptStreamError, match="invalid runs"):
            regions.unpack_map(bomb, shape)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    bound = regions._map_bytes_bound(shape)
    assert bound < 3.1 * shape[1] * shape[2]
    # the inflated bytes, the map, a megabyte's chunk and its copy (was ~500 MB)
    assert peak < bound + shape[1] * shape[2] + (3 << 20), peak


def test_a_zlib_bomb_in_a_region_stream_stops_decode_with_little_memory():
    """The same bomb in a whole region stream (a hybrid stream's map segment rewritten,
    CRCs valid): decode and info raise CorruptStreamError within a few times the image."""
    import copy

    from codec_core import container as ct

    h, segs = _region_stream_parts()
    n = 1024
    rb = regions.unpack_block(segs[0])
    rb.block = 1
    rb.map_stream = zlib.compress(bytes(n * (2 * n + 1) * 5 + 16), 9)
    segs[0], segs[1] = rb.pack(), hlc.encode(np.zeros((n, n), np.uint16))
    h2 = copy.copy(h)
    h2.rows = h2.cols = h2.tile_rows = h2.tile_cols = n
    bomb = ct.pack(h2, segs)
    assert len(bomb) < 40_000

    def decode() -> None:
        with pytest.raises(hlc.CorruptStreamError, match="importance map"):
            hlc.decode(bomb)

    _, peak = _traced_peak(decode)
    # the map's bound and the map (4.1 MB), the stream and its parse (was ~600 MB)
    assert peak < regions._map_bytes_bound((1, n, n)) + n * n + (6 << 20), peak


def test_a_region_stream_cannot_claim_more_frames_than_its_bytes_hold():
    """A region stream's index has 4 entries whatever its frames: a 3 kB stream claiming
    2^24 frames of 1 x 1 made info() take 4 s and 165 MB (the CLI's info --json 1.6 GB)
    and decode() 670 MB before any check. Its frames are held to its layers' bytes (a
    layer's index has a byte a frame), or with no layer to 344 a byte of its map."""
    import copy
    import time

    from codec_core import container as ct

    h, segs = _region_stream_parts()
    layers = sum(len(s) for s in segs[1:])
    crafted = copy.copy(h)
    crafted.frames, crafted.axes = 1 << 24, ct.AXES.index("ZYX")
    crafted.rows = crafted.cols = crafted.tile_rows = crafted.tile_cols = 1
    bomb = ct.pack(crafted, segs)
    t = time.perf_counter()
    for call in (hlc.info, hlc.decode, lambda s: hlc.decode(s, strict=False)):
        with pytest.raises(hlc.CorruptStreamError, match="frames in a region stream"):
            call(bomb)
    assert time.perf_counter() - t < 2
    crafted.frames = layers  # as many as the layers could hold: the header is accepted
    assert ct.parse_header(ct.pack(crafted, segs))[0].frames == layers
    # no layer (every pixel flat): 344 frames a byte of the region block, and no more
    flat = [segs[0], b"", b"", b""]
    crafted.frames = ct.FRAMES_PER_MAP_BYTE * len(segs[0])
    assert ct.parse_header(ct.pack(crafted, flat))[0].frames == crafted.frames
    crafted.frames += 1
    with pytest.raises(hlc.CorruptStreamError, match="frames in a region stream"):
        ct.parse_header(ct.pack(crafted, flat))


@pytest.mark.parametrize("frames", [1, 3])
def test_region_streams_the_encoder_writes_keep_within_the_frames_bound(frames):
    """Every region stream of a padded CT stack (lossy, hybrid): frames well within
    what the layers' bytes allow."""
    from codec_core import container as ct

    img = np.stack([dicom("CT_small.dcm")] * frames) if frames > 1 else dicom("CT_small.dcm")
    axes = "ZYX" if frames > 1 else "YX"
    mask = np.zeros(img.shape, bool)
    mask[..., 30:90, 30:90] = True
    for kw in ({"bpp": 1.0}, {"roi": mask}):
        data = hlc.encode(img, mode="lossy", axes=axes, whole_image_if_smaller=False, **kw)
        h, _ = ct.parse_header(data)
        assert h.flags & ct.FLAG_REGIONS or "roi" not in kw  # (a hybrid is always one)
        if h.flags & ct.FLAG_REGIONS:
            assert h.frames <= sum(n for n, _ in h.segments[1:])
        assert hlc.decode(data).shape == img.shape


def test_one_frame_of_a_forged_region_stack_reads_only_its_map():
    """A region stream claiming 200 frames of 512 x 512 in ~20 kB (the layer's later
    frames empty segments, the map one run a row): decode(frame=0) is checked for one
    frame's samples, but the map of every frame was built (50 MB here; 4 GB from 28 kB
    for 1000 frames of 1024^2). Now only the frames asked for are kept."""
    from codec_core import container as ct

    frames, n = 200, 512
    layer = hlc.encode(np.full((n, n), 100, np.uint16), threads=1)
    lh, lstart = ct.parse_header(layer)
    offs = ct.segment_offsets(lh, lstart)
    lsegs = [layer[offs[i]:offs[i + 1]] for i in range(len(lh.segments))]
    lh.axes, lh.frames, lh.backup = ct.AXES.index("ZYX"), frames, False
    layer = ct.pack(lh, lsegs + [b""] * (len(lsegs) * (frames - 1)))
    v = ct.varint
    rows = v(2) + v(0) + v(n) + (v(0) + v(0)) * (n - 1)  # one run, then "the same" rows
    rb = regions.RegionBlock(regions.Target.DEFAULT, 40.0, 1, zlib.compress(rows * frames, 9),
                             [regions.Slot((0,), 0, 0)], [(1.0, float("inf"), 0)] * 3, 0)
    h = ct.Header(mode=2, dtype=2, bits_stored=16, axes=ct.AXES.index("ZYX"), frames=frames, rows=n, cols=n,
                  channels=1, tile_rows=n, tile_cols=n, levels=0, transform=0, colour=0, max_error=0, vmin=0,
                  vmax=4095, flags=int(ct.FLAG_REGIONS), steps=[1.0])
    stream = ct.pack(h, [rb.pack(), layer, b"", b""])
    assert len(stream) < 40_000
    got, peak = _traced_peak(lambda: hlc.decode(stream, frame=0))
    assert got.shape == (n, n) and (got == 100).all()
    assert peak < 12 * n * n, peak  # one frame's image, map and layer (the stack's map: 200 n^2)
    got, peak = _traced_peak(lambda: hlc.decode(stream, frame=frames - 1, strict=False)[0])
    assert got.shape == (n, n) and peak < 12 * n * n, peak


def test_one_frame_of_a_forged_roi_stack_reads_only_its_importance_map():
    """The same through a v1/v2 importance map (flag ROI, a byte a pixel here): a lossy
    stream relabelled as 60 frames, the later ones empty segments, the map zlib of
    zeros. decode(frame=0) inflated every frame's map (2 GB and 14 s for 1000 frames of
    1024^2 from 2 MB). Now only frame 0's."""
    import copy

    from codec_core import container as ct

    frames, n = 60, 512
    yy, xx = np.mgrid[:n, :n]
    img = (2000 + 1000 * np.sin(yy / 37.0) * np.cos(xx / 53.0)).astype(np.uint16)
    data = hlc.encode(img, mode="lossy", bpp=0.02, threads=1)
    h, start = ct.parse_header(data)
    offs = ct.segment_offsets(h, start)
    segs = [data[offs[i]:offs[i + 1]] for i in range(len(h.segments))]
    assert h.mode == 2 and not h.flags & ct.FLAG_REGIONS
    forged = copy.copy(h)
    forged.axes, forged.frames = ct.AXES.index("ZYX"), frames
    forged.flags |= ct.FLAG_ROI
    forged.roi_block, forged.class_mult = 1, [1.0, 1.0, 1.0]
    forged.class_map = zlib.compress(bytes(frames * n * n), 9)
    per_plane = h.levels + 1
    planes = len(segs) // per_plane
    new = []
    for f in range(frames):
        for p in range(planes):
            new += (segs[p * per_plane:(p + 1) * per_plane] if f == 0 else [b""] * per_plane) + [b""]
    stream = ct.pack(forged, new)
    got, peak = _traced_peak(lambda: hlc.decode(stream, frame=0, strict=False)[0])
    assert got.shape == (n, n)
    assert peak < 30 * n * n, peak  # one frame: 20 n^2 (every frame's map was 60 n^2 more)


def test_a_region_stream_decodes_within_its_header_range():
    """Every decoded sample lies in the header's vmin..vmax (FORMAT.md §1): a region
    stream whose header says 7..7 over layers of 0..4095 gave the layers' values."""
    import copy

    from codec_core import container as ct

    h, segs = _region_stream_parts()
    forged = copy.copy(h)
    forged.vmin = forged.vmax = 7
    out = hlc.decode(ct.pack(forged, segs))
    assert out.min() == out.max() == 7


def test_a_damaged_layer_is_concealed_when_not_strict():
    img = dicom("CT_small.dcm")
    mask = np.zeros(img.shape, bool)
    mask[30:90, 30:90] = True
    data = bytearray(hlc.encode(img, mode="lossy", roi=mask, whole_image_if_smaller=False))
    h, start = hlc.container.parse_header(bytes(data))
    layer = start + h.segments[0][0] + h.segments[1][0] // 2  # inside the ROI layer
    data[layer] ^= 0xFF
    with pytest.raises(hlc.HlcError):
        hlc.decode(bytes(data))
    out, report = hlc.decode(bytes(data), strict=False)
    assert out.shape == img.shape and not report["exact"]


def test_thumbnails_and_single_frames_of_a_region_stream():
    stack = dicom("emri_small.dcm")[:3]
    mask = np.zeros(stack.shape[1:], bool)
    mask[16:48, 16:48] = True
    data = hlc.encode(stack, mode="lossy", roi=mask, whole_image_if_smaller=False)
    full = hlc.decode(data)
    assert np.array_equal(hlc.decode(data, frame=1), full[1])
    assert hlc.decode(data, level=2).shape == (3, 16, 16)
    assert np.array_equal(full[:, mask], stack[:, mask])


def test_every_region_stream_variant_decodes_without_onnxruntime_and_sklearn(tmp_path):
    ct = dicom("693_UNCR.dcm")
    labels = np.zeros(ct.shape, np.uint8)
    labels[64:448, 64:448] = 1
    labels[200:300, 200:300] = 2
    rgb = np.stack([ct[::4, ::4] // 16 + 2000 + 300 * c for c in range(3)], axis=-1).astype(np.uint16)
    variants = {
        "lossy-background": hlc.encode(ct, mode="lossy", roi=labels > 0, whole_image_if_smaller=False),
        "bounded-background": hlc.encode(ct, mode="lossy", roi=labels > 0, background_max_error=20,
                                         whole_image_if_smaller=False),
        "three-levels": hlc.encode(ct, mode="lossy", roi=labels, body_max_error=2, whole_image_if_smaller=False),
        "auto": hlc.encode(ct, mode="lossy", roi="auto", whole_image_if_smaller=False),
        "colour": hlc.encode(rgb, mode="lossy", roi=labels[::4, ::4] > 0, whole_image_if_smaller=False),
        "ecc": hlc.encode(ct, mode="lossy", roi=labels > 0, ecc="low", whole_image_if_smaller=False),
    }
    for name, data in variants.items():
        (tmp_path / f"{name}.hlc").write_bytes(data)
        np.save(tmp_path / f"{name}.npy", hlc.decode(data))
    script = BLOCK_MODELS + f"""
import numpy as np, codec_core as hlc
for name in {sorted(variants)!r}:
    data = open({str(tmp_path)!r} + '/' + name + '.hlc', 'rb').read()
    assert hlc.info(data)['roi'], name
    assert np.array_equal(hlc.decode(data), np.load({str(tmp_path)!r} + '/' + name + '.npy')), name
assert 'onnxruntime' not in sys.modules and 'sklearn' not in sys.modules
print('ok')
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=str(tmp_path))
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_dicom_lossy_attributes_say_what_each_region_got():
    import pydicom
    from pydicom.data import get_testdata_file

    import hybrid_plugins
    from hybrid_plugins import HLC_TRANSFER_SYNTAX_UID
    from hybrid_plugins.pydicom_plugin import HYBRID_METHOD

    hybrid_plugins.register()
    ds = pydicom.dcmread(get_testdata_file("693_UNCR.dcm"))
    mask = np.zeros((512, 512), bool)
    mask[100:400, 100:400] = True
    ds.compress(HLC_TRANSFER_SYNTAX_UID, mode="lossy", roi=mask, background_psnr=40)
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == HYBRID_METHOD
    text = str(ds.DerivationDescription)
    assert text.startswith("HLC hybrid: detail ") and "lossless exact" in text and "background" in text
    import re

    shown = re.search(r"background [^;]*PSNR ([0-9.]+) dB", text)
    assert shown and 40 - 0.05 <= float(shown.group(1)) <= 40 + regions.PSNR_TOLERANCE + 0.05, text  # (shown to 0.1 dB)


def test_a_dicom_seg_is_an_roi_and_a_mismatched_one_names_roi():
    import pydicom
    from pydicom.data import get_testdata_file

    seg = pydicom.dcmread(get_testdata_file("liver.dcm"))  # 3 frames of 512 x 512
    rng = np.random.default_rng(5)
    stack = (np.cumsum(rng.integers(-3, 4, size=(3, 512, 512)), axis=2) + 2000).astype(np.uint16)
    data = hlc.encode(stack, mode="lossy", roi=seg, background_psnr=35, whole_image_if_smaller=False)
    keep = seg.pixel_array > 0
    assert np.array_equal(hlc.decode(data)[keep], stack[keep])
    with pytest.raises(ValueError, match=r"^roi: DICOM SEG has 3 frames"):
        hlc.encode(stack[:2], mode="lossy", roi=seg)
    with pytest.raises(ValueError, match=r"^roi: DICOM SEG frames are 512x512"):
        hlc.encode(stack[0, :256, :256], mode="lossy", roi=seg)


@pytest.mark.parametrize("shape", [(1, 300, 70, 1), (3, 41, 530, 3), (2, 1, 5, 1)])
def test_banded_error_measures_equal_the_gathered_formulas(shape, monkeypatch):
    """The region encoder's squared error and max error, taken a band of rows at a time
    with the mask in the reduction, equal the sums over the gathered samples."""
    monkeypatch.setattr(regions, "MEASURE_SAMPLES", 997)  # (many bands, ragged last one)
    rng = np.random.default_rng(shape[2])
    pixels = rng.integers(-3000, 3000, shape).astype(np.int16)
    decoded = (pixels + rng.integers(-40, 41, shape)).astype(np.int16)
    enc = regions._Encoder.__new__(regions._Encoder)
    enc.pixels = pixels
    for where in (rng.random(shape[:3]) < 0.3, np.ones(shape[:3], bool), None):
        w = np.ones(shape[:3], bool) if where is None else where
        d = decoded[w].astype(np.int64) - pixels[w]
        assert enc.squared_error(decoded, where) == (float((d * d).sum()), d.size)
        assert enc.max_error(decoded, where) == int(np.abs(d).max())


def test_a_hybrid_of_an_all_flat_image_codes_no_layer_and_decodes_exactly():
    """Every pixel flat (one value, no ROI): the region stream has no layer at all, and
    packing it must not assume a first layer (hypothesis found a 5 x 5 image of ones)."""
    import codec_core as hlc

    arr = np.ones((5, 5), np.uint8)
    data = hlc.encode(arr, mode="lossy", bits_stored=1, roi=np.zeros_like(arr, bool), roi_max_error=0, bpp=0.3)
    np.testing.assert_array_equal(hlc.decode(data), arr)


# ----------------------------------------------------------------- the padding's value

def _opening_reference(mask: np.ndarray, size: int) -> np.ndarray:
    """regions._opening as it was (padded copies and window views)."""
    from numpy.lib.stride_tricks import sliding_window_view

    def along(x: np.ndarray, axis: int, erode: bool) -> np.ndarray:
        pad = [(0, 0), (0, 0)]
        pad[axis] = (size // 2, size // 2)
        window = sliding_window_view(np.pad(x, pad, constant_values=False), size, axis=axis)
        return np.asarray(window.all(axis=-1) if erode else window.any(axis=-1))

    eroded = along(along(mask, 0, True), 1, True)
    return along(along(eroded, 0, False), 1, False)


@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_opening_is_the_window_version_s(size):
    """The opening by shifted slices equals the padded window version on random masks of
    every density, shapes down to 1 x 1 and thinner than the square."""
    rng = np.random.default_rng(11)
    for shape in [(1, 1), (1, 9), (2, 2), (4, 30), (13, 7), (64, 48), (5, 200)]:
        for p in (0.3, 0.8, 0.97, 1.0):
            mask = rng.random(shape) < p
            assert np.array_equal(regions._opening(mask, size), _opening_reference(mask, size)), (shape, p)


def _mark_flat_reference(pixels: np.ndarray, classes: np.ndarray) -> int:
    """regions._mark_flat as it was (np.unique over the gathered background)."""
    bg = classes == regions.Importance.BACKGROUND
    if pixels.shape[-1] != 1 or bg.sum() < regions.FLAT_MIN_SHARE * bg.size:
        return 0
    values, counts = np.unique(pixels[..., 0][bg], return_counts=True)
    v = int(values[np.argmax(counts)])
    solid = np.stack([_opening_reference(bg[f] & (pixels[f, :, :, 0] == v), regions.FLAT_OPENING)
                      for f in range(bg.shape[0])])
    if solid.sum() < regions.FLAT_MIN_SHARE * bg.size:
        return 0
    classes[solid] = regions.FLAT
    return v


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
def test_most_common_is_np_unique_s_answer(dtype):
    """The compiled histogram gives np.unique's most common value (the smallest of
    ties) on random images, masks and value spreads, ties included."""
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    for shape in [(1, 1, 1), (1, 5, 3), (2, 40, 9), (1, 300, 70), (3, 17, 1030), (1, 700, 600)]:
        for spread in (2, 50, int(info.max) - int(info.min)):
            lo = int(rng.integers(int(info.min), int(info.max) - spread + 1))
            x = rng.integers(lo, lo + spread, shape, endpoint=True).astype(dtype)
            where = rng.random(shape) < rng.choice([0.01, 0.5, 1.0])
            where.flat[int(rng.integers(where.size))] = True
            values, counts = np.unique(x[where], return_counts=True)
            assert regions._most_common(x, where) == int(values[np.argmax(counts)])
    x = np.array([[[5, 3, 5, 3, 9]]], dtype)  # a tie: the smaller value
    assert regions._most_common(x, np.ones(x.shape, bool)) == 3


@pytest.mark.parametrize("dtype", ["uint8", "int16"])
def test_mark_flat_marks_as_before(dtype):
    """_mark_flat (histogram) marks the same pixels and returns the same value as the
    np.unique version on padded images with some classes already taken."""
    rng = np.random.default_rng(3)
    for _ in range(6):
        rows, cols = (int(v) for v in rng.integers(20, 90, 2))
        pixels = rng.integers(0, 200, (2, rows, cols, 1)).astype(dtype)
        pixels[:, : rows // 3] = int(rng.integers(0, 200))  # padding
        classes = rng.choice(np.array([regions.Importance.BACKGROUND, regions.Importance.BODY], np.uint8),
                             (2, rows, cols), p=[0.8, 0.2])
        a, b = classes.copy(), classes.copy()
        assert regions._mark_flat(pixels, a) == _mark_flat_reference(pixels, b)
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
def test_constant_fill_as_before(dtype):
    """constant_fill channel by channel (masks of every axis) gives the values of the
    gathered version (the median of the pixels outside ``keep``, per channel)."""
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    for shape in [(1, 1, 1, 1), (2, 9, 7, 1), (1, 40, 33, 3), (3, 16, 16, 1)]:
        for p in (0.0, 0.3, 0.9):
            pixels = rng.integers(int(info.min), int(info.max), shape, endpoint=True).astype(dtype)
            keep = rng.random(shape[:3]) < p
            want = np.array(pixels)
            if not keep.all():
                rest = ~keep
                want[rest] = np.rint(np.median(pixels[rest], axis=0)).astype(pixels.dtype)
            got = regions.constant_fill(pixels, keep)
            assert got.dtype == pixels.dtype and np.array_equal(got, want)


def test_edge_jump_as_before():
    """_edge_jump (ring ORed in place, int32 differences) gives the old value: the
    median of |pixel - value| over the 4-neighbours of the padding outside it."""
    rng = np.random.default_rng(9)
    for dtype in ("uint8", "int16", "uint16"):
        info = np.iinfo(dtype)
        for shape in [(1, 1, 1), (1, 6, 5), (2, 40, 31)]:
            plane = rng.integers(int(info.min), int(info.max), shape, endpoint=True).astype(dtype)
            for p in (0.0, 0.2, 0.7, 1.0):
                pad = rng.random(shape) < p
                value = int(rng.integers(int(info.min), int(info.max), endpoint=True))
                q = np.pad(pad, ((0, 0), (1, 1), (1, 1)))
                ring = (q[:, :-2, 1:-1] | q[:, 2:, 1:-1] | q[:, 1:-1, :-2] | q[:, 1:-1, 2:]) & ~pad
                want = float(np.median(np.abs(plane[ring].astype(np.int64) - value))) if ring.any() else 0.0
                assert regions._edge_jump(plane, pad, value) == want


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "int32"])
@pytest.mark.parametrize("channels", [1, 3])
def test_set_flat_matches_the_numpy_fill(dtype, channels):
    """regions._set_flat (regionmap.c set_flat): FLAT pixels get the value in every
    channel, every other sample stays; whole only if every pixel's class is claimed."""
    rng = np.random.default_rng(channels)
    info = np.iinfo(dtype)
    classes = rng.integers(0, regions.MAP_CLASSES, (2, 37, 53)).astype(np.uint8)
    out = rng.integers(info.min, info.max, (2, 37, 53, channels), endpoint=True).astype(dtype)
    value = int(info.min) + 7
    want = out.copy()
    want[classes == regions.FLAT] = value
    for claimed_classes in ([0, 1, 2, 3], [2, 3], [0, 2, 3], [0, 1, 2], []):
        claimed = np.zeros(256, bool)
        claimed[claimed_classes] = True
        got = out.copy()
        whole = regions._set_flat(got, classes, value, claimed)
        assert np.array_equal(got, want)
        assert whole == bool(claimed[classes].all())
    one = np.full((1, 4, 5), 200, np.uint8)  # a class beyond MAP_CLASSES, unclaimed: not whole
    one[0, 1, 2] = 3
    claimed = np.zeros(256, bool)
    claimed[[3]] = True
    got = np.zeros((1, 4, 5, 1), dtype)
    assert not regions._set_flat(got, one, 1, claimed) and got[0, 1, 2, 0] == 1 and got.sum() == 1
    claimed[200] = True
    assert regions._set_flat(got, one, 1, claimed)


def test_in_classes_is_the_table_lookup():
    """regions.in_classes (comparisons a band of rows at a time) gives table[classes]."""
    rng = np.random.default_rng(5)
    for shape in ((1, 1, 1), (2, 300, 70), (1, 3, 40000), (3, 0, 5)):
        classes = rng.integers(0, regions.MAP_CLASSES, shape).astype(np.uint8)
        for wanted in ((), (0,), (2, regions.FLAT), [1, 0, 1], (0, 1, 2, 3)):
            table = np.zeros(256, bool)
            table[list(wanted)] = True
            got = regions.in_classes(classes, wanted)
            assert got.dtype == bool and np.array_equal(got, table[classes])
