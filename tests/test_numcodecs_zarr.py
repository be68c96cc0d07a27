"""numcodecs codec and zarr formats 2 and 3.

The tests that take ``wheel_run`` run through the installed wheel in fresh processes.
The toolkit-convention tests (numcodecs' own test helpers, the chunk envelope, the
PSNR of zarr edge chunks) run in this process on real images from pydicom-data.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numcodecs
import numcodecs.tests.common as nc  # numcodecs' shipped test helpers
import numpy as np
import pydicom
import pytest
import zarr
from pydicom.data import get_testdata_file

import codec_core as hlc
from hybrid_plugins.numcodecs_codec import ENVELOPE_MAGIC, HybridCodec
from hybrid_plugins.zarr_codec import HlcCodec

PRELUDE = """
import threading
import numpy as np, numcodecs, zarr
import pydicom
from pydicom.data import get_testdata_file

def dicom(name):
    return pydicom.dcmread(get_testdata_file(name)).pixel_array

stack = dicom("emri_small.dcm")          # uint16, (10, 64, 64)
ct = dicom("693_UNCR.dcm")               # int16, (512, 512)
rgb = dicom("US1_UNCR.dcm")              # uint8, (480, 640, 3)
"""


def test_config_round_trips_through_get_config_and_from_config(wheel_run):
    wheel_run(PRELUDE + """
from hybrid_plugins.numcodecs_codec import HybridCodec
codec = HybridCodec(mode="lossy", psnr=45.0, roi="auto", roi_max_error=1, ecc="low")
config = codec.get_config()
assert config == {"id": "hlc", "mode": "lossy", "max_error": None, "bpp": None, "psnr": 45.0,
                  "bits_stored": None, "roi": "auto", "roi_max_error": 1, "body_max_error": None,
                  "background_psnr": None, "background_max_error": None, "ecc": "low", "rgb": False}
again = numcodecs.get_codec(dict(config))
assert again.get_config() == config and type(again) is HybridCodec
assert repr(again) == repr(codec)
""")


def test_codec_round_trips_each_dtype_losslessly(wheel_run):
    wheel_run(PRELUDE + """
codec = numcodecs.get_codec({"id": "hlc"})
for a in (stack, ct, (ct >> 6).astype("int8"), (ct >> 4).clip(0, 255).astype("uint8")):
    out = codec.decode(codec.encode(a))
    assert out.dtype == a.dtype and (out.reshape(a.shape) == a).all(), a.dtype
    buf = np.empty_like(a)
    codec.decode(codec.encode(a), out=buf)
    assert (buf == a).all()
""")


def test_zarr_v2_compressor_round_trips_2d_3d_nd_and_edge_chunks(wheel_run):
    wheel_run(PRELUDE + """
from hybrid_plugins.numcodecs_codec import HybridCodec
four_d = stack.reshape(2, 5, 64, 64)
for a, chunks in ((ct, (200, 300)), (stack, (3, 40, 40)), (four_d, (1, 2, 48, 64))):
    z = zarr.create_array("v2_%d.zarr" % a.ndim, shape=a.shape, chunks=chunks, dtype=a.dtype,
                          compressors=HybridCodec(), zarr_format=2)
    z[:] = a
    assert (z[:] == a).all(), a.shape
    assert (zarr.open_array("v2_%d.zarr" % a.ndim, mode="r")[:] == a).all()
""")


def test_zarr_v2_near_lossless_keeps_the_error_bound(wheel_run):
    wheel_run(PRELUDE + """
from hybrid_plugins.numcodecs_codec import HybridCodec
z = zarr.create_array("nl.zarr", shape=ct.shape, chunks=(256, 256), dtype=ct.dtype,
                      compressors=HybridCodec(mode="near-lossless", max_error=3), zarr_format=2)
z[:] = ct
assert np.abs(z[:].astype(int) - ct).max() <= 3
""")


def test_zarr_v3_serializer_round_trips_and_reopens_in_a_fresh_process(wheel_run):
    wheel_run(PRELUDE + """
from hybrid_plugins.zarr_codec import HlcCodec
z = zarr.create_array("v3.zarr", shape=stack.shape, chunks=(4, 48, 48), dtype=stack.dtype,
                      serializer=HlcCodec(), compressors=None)
z[:] = stack
assert (z[:] == stack).all()
c = zarr.create_array("rgb.zarr", shape=rgb.shape, chunks=(256, 256, 3), dtype=rgb.dtype,
                      serializer=HlcCodec(rgb=True), compressors=None)
c[:] = rgb
assert (c[:] == rgb).all()
""")
    wheel_run(PRELUDE + """
import sys
z = zarr.open_array("v3.zarr", mode="r")
assert (z[:] == stack).all() and z.metadata.codecs[0].to_dict()["name"] == "hlc"
assert (zarr.open_array("rgb.zarr", mode="r")[:] == rgb).all()
assert "hybrid_plugins.pillow_plugin" not in sys.modules
""", env={"HLC_NO_AUTOREGISTER": "1"})


def test_unsupported_dtypes_raise_value_error_at_creation_or_first_write(wheel_run):
    wheel_run(PRELUDE + """
from hybrid_plugins.numcodecs_codec import HybridCodec
from hybrid_plugins.zarr_codec import HlcCodec
for dtype in ("float32", "uint32", "int64", ">u2"):
    try:
        zarr.create_array(zarr.storage.MemoryStore(), shape=(8, 8), dtype=dtype, serializer=HlcCodec(),
                          compressors=None)
        raise AssertionError("v3 accepted " + dtype)
    except ValueError as e:
        assert "HLC" in str(e)
    z = zarr.create_array(zarr.storage.MemoryStore(), shape=(8, 8), dtype=dtype, compressors=HybridCodec(),
                          zarr_format=2)
    try:
        z[:] = 1
        raise AssertionError("v2 wrote " + dtype)
    except ValueError as e:
        assert "HLC" in str(e)
""")


def test_codec_decodes_from_several_threads(wheel_run):
    wheel_run(PRELUDE + """
codec = numcodecs.get_codec({"id": "hlc", "mode": "near-lossless", "max_error": 2})
data = [codec.encode(f) for f in stack]
expected = [codec.decode(d) for d in data]
errors = []
def work(k):
    try:
        for i in range(k, len(data), 4):
            assert (codec.decode(data[i]) == expected[i]).all()
    except Exception as e:
        errors.append(e)
threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
""")


def test_dask_to_zarr_and_from_zarr_round_trip_on_a_local_cluster(wheel_run):
    wheel_run(PRELUDE + """
import dask.array as da
from distributed import Client, LocalCluster
from hybrid_plugins.numcodecs_codec import HybridCodec
from hybrid_plugins.zarr_codec import HlcCodec
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
            Client(cluster):
        x = da.from_array(stack, chunks=(2, 64, 64))
        z2 = zarr.create_array("d2.zarr", shape=stack.shape, chunks=(2, 64, 64), dtype=stack.dtype,
                               compressors=HybridCodec(), zarr_format=2)
        x.to_zarr(z2)
        z3 = zarr.create_array("d3.zarr", shape=stack.shape, chunks=(2, 64, 64), dtype=stack.dtype,
                               serializer=HlcCodec(), compressors=None)
        x.to_zarr(z3)
        for path in ("d2.zarr", "d3.zarr"):
            back = da.from_zarr(path).compute()
            assert (back == stack).all(), path
""", timeout=300)


# ------------------------------------------------------ conventions, in this process

def _dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


MR = _dicom("MR_small.dcm")                  # int16, 64 x 64
STACK = _dicom("emri_small.dcm")             # uint16, 10 x 64 x 64
CT_U8 = (_dicom("693_UNCR.dcm")[200:300, 150:250] >> 4).clip(0, 255).astype("uint8")

# dtypes HLC stores, 1-D to 4-D, as numcodecs' own test modules mix them
C_ARRAYS = {
    "int16 2-D": MR,
    "uint16 3-D": STACK[:4],
    "uint16 4-D": STACK[:4].reshape(2, 2, 64, 64),
    "int8 2-D": (MR >> 4).astype("int8"),
    "uint8 2-D": CT_U8,
    "uint16 1-D": np.arange(1000, dtype="uint16"),
    "int8 1-D": (np.arange(1000) % 256 - 128).astype("int8"),
}
F_ARRAYS = {
    "int16 2-D order F": np.asfortranarray(MR[:, :50]),
    "uint16 3-D order F": np.asfortranarray(STACK[:3, :, :40]),
}
EMPTY_ARRAYS = {
    "uint16 (0,)": np.zeros(0, "uint16"),
    "int8 (0, 64)": np.zeros((0, 64), "int8"),
    "int16 (3, 0, 5)": np.zeros((3, 0, 5), "int16"),
}


@pytest.mark.parametrize("name", [*C_ARRAYS, *EMPTY_ARRAYS])
def test_numcodecs_check_encode_decode_lossless(name):
    # bytes, bytearray, array.array and ndarray in; bytes, bytearray, array.array and
    # ndarray out, into ndarray and bytearray out=: exact, as the helper demands.
    # Fortran-ordered arrays are not here: the helper compares a decoded array that
    # keeps its shape by reshaping it in Fortran order, which only fits a codec that
    # returns flat bytes; ZFPY, numcodecs' other shape-keeping codec, is not run
    # through it either (it refuses Fortran order). They pass check_encode_decode_array.
    nc.check_encode_decode({**C_ARRAYS, **EMPTY_ARRAYS}[name], HybridCodec())


@pytest.mark.parametrize("name", [*C_ARRAYS, *F_ARRAYS, *EMPTY_ARRAYS])
def test_numcodecs_check_encode_decode_array_lossless(name):
    nc.check_encode_decode_array({**C_ARRAYS, **F_ARRAYS, **EMPTY_ARRAYS}[name], HybridCodec())


CONFIGS = [{}, {"mode": "near-lossless", "max_error": 2},
           {"mode": "lossy", "psnr": 45.0, "roi": "auto", "roi_max_error": 1, "ecc": "low"},
           {"mode": "lossy", "bpp": 0.5, "bits_stored": 12, "rgb": True}]


@pytest.mark.parametrize("config", CONFIGS, ids=["lossless", "near-lossless", "lossy psnr", "lossy bpp rgb"])
def test_numcodecs_check_config(config):
    nc.check_config(HybridCodec(**config))


def test_numcodecs_check_repr(monkeypatch):
    # the helper evaluates the statement among numcodecs' own names; a third-party codec
    # is added to them
    monkeypatch.setattr(nc, "HybridCodec", HybridCodec, raising=False)
    nc.check_repr("HybridCodec(background_max_error=None, background_psnr=None, bits_stored=None, "
                  "body_max_error=None, bpp=None, ecc=None, max_error=None, mode='lossless', "
                  "psnr=None, rgb=False, roi=None, roi_max_error=0)")
    nc.check_repr("HybridCodec(background_max_error=None, background_psnr=None, bits_stored=12, "
                  "body_max_error=None, bpp=None, ecc='low', max_error=2, mode='near-lossless', "
                  "psnr=None, rgb=False, roi=None, roi_max_error=0)")
    nc.check_repr("HybridCodec(background_max_error=None, background_psnr=38.0, bits_stored=None, "
                  "body_max_error=None, bpp=None, ecc=None, max_error=None, mode='lossy', "
                  "psnr=None, rgb=False, roi='auto', roi_max_error=0)")


def test_numcodecs_check_err_encode_object_buffer():
    nc.check_err_encode_object_buffer(HybridCodec())


def test_numcodecs_object_out_raises_type_error_before_decoding():
    # check_err_decode_object_buffer's own body encodes np.arange(10), an int64 array HLC
    # does not store (ValueError, as numcodecs' codecs answer a dtype they do not take);
    # its check, with a dtype HLC stores:
    codec = HybridCodec()
    with pytest.raises(ValueError, match="int64"):
        nc.check_err_decode_object_buffer(codec)
    enc = codec.encode(np.arange(10, dtype="uint16"))
    with pytest.raises(TypeError):
        codec.decode(enc, out=np.empty(10, dtype=object))
    with pytest.raises(TypeError):  # out= is checked first, as Zlib does: no decoding
        codec.decode(b"not a stream", out=np.empty(10, dtype=object))
    # and what Zlib, a numcodecs codec, does in the same two cases
    with pytest.raises(TypeError):
        numcodecs.Zlib().decode(numcodecs.Zlib().encode(np.arange(10)), out=np.empty(10, dtype=object))
    with pytest.raises(TypeError):
        numcodecs.Zlib().encode(np.array(["foo", "bar"], dtype=object))


def test_numcodecs_non_contiguous_memory_raises_value_error_like_zlib():
    view = STACK[0, :, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        numcodecs.Zlib().encode(view)
    with pytest.raises(ValueError, match="contiguous"):
        HybridCodec().encode(view)


# Not applicable: check_max_buffer_size (HLC has no max_buffer_size; its limit is the
# pixel count of a decoded stream, codec_core.MAX_PIXELS).
FIXTURE = Path(__file__).parent / "numcodecs_fixture"
FIXTURE_CODECS = [HybridCodec(), HybridCodec(mode="near-lossless", max_error=1)]


def test_numcodecs_check_backwards_compatibility(tmp_path, monkeypatch):
    """Streams and configurations written by an earlier version still decode.

    tests/numcodecs_fixture holds what numcodecs' helper wrote on its first run (it
    writes what is missing, then compares): arrays in each dtype, order and shape,
    an empty one (the envelope), and their streams from a lossless and a near-lossless
    codec (compared within max_error=1: precision 0 is |error| < 1.5). Lossy codecs are
    not here: the helper can only compare sample by sample. To add an array, run the
    helper once with the fixture folder as working directory and commit what it wrote.
    """
    stored = sorted(p.relative_to(FIXTURE) for p in FIXTURE.rglob("*") if p.is_file())
    arrays = sorted((FIXTURE / "fixture" / "hlc").glob("array.*.npy"))
    assert len(arrays) == 6 and len(stored) == len(arrays) * (1 + len(FIXTURE_CODECS)) + len(FIXTURE_CODECS)
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    nc.check_backwards_compatibility(HybridCodec.codec_id, [np.load(p) for p in arrays], FIXTURE_CODECS,
                                     precision=[None, 0])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == stored  # nothing rewritten


# ------------------------------------------------------------- the chunk envelope

def test_empty_array_is_a_small_envelope_never_an_empty_stream():
    codec = HybridCodec()
    enc = codec.encode(np.zeros((0, 64), "uint16"))
    assert enc.startswith(ENVELOPE_MAGIC) and len(enc) < 40
    out = codec.decode(enc)
    assert out.shape == (0, 64) and out.dtype == np.uint16
    with pytest.raises(hlc.NotHlcError):  # an empty buffer is damage, not an empty array
        codec.decode(b"")
    with pytest.raises(hlc.TruncatedStreamError):
        codec.decode(enc[:-1])
    for i in range(8, len(enc)):  # every byte after the signature is under the CRC
        bad = bytearray(enc)
        bad[i] ^= 0x04
        with pytest.raises(hlc.CorruptStreamError):
            codec.decode(bytes(bad))


def test_lossy_chunk_with_constant_margin_codes_the_box_and_restores_the_margin():
    chunk = np.zeros((100, 100), "uint16")      # as zarr pads an edge chunk: fill value 0
    chunk[:70, :45] = STACK[0, :64, :45].repeat(2, axis=0)[:70]
    codec = HybridCodec(mode="lossy", psnr=45)
    enc = codec.encode(chunk)
    assert enc.startswith(ENVELOPE_MAGIC)
    out = codec.decode(enc)
    assert out.shape == chunk.shape and (out[70:] == 0).all() and (out[:, 45:] == 0).all()
    box = chunk[:70, :45].astype(float)
    mse = ((out[:70, :45] - box) ** 2).mean()
    assert 10 * math.log10((box.max() - box.min()) ** 2 / mse) >= 45 - 0.3
    # lossless and near-lossless chunks stay plain HLC streams, readable by any HLC reader
    assert HybridCodec().encode(chunk).startswith(hlc.MAGIC)
    assert HybridCodec(mode="near-lossless", max_error=1).encode(chunk).startswith(hlc.MAGIC)


def test_zarr_v2_fortran_order_round_trips():
    # zarr reshapes the decoded chunk, flattened in memory order, in Fortran order
    # (this came back scrambled when HLC coded the chunk in C order)
    z = zarr.create_array(zarr.storage.MemoryStore(), shape=MR.shape, chunks=(40, 24), dtype=MR.dtype,
                          compressors=HybridCodec(), zarr_format=2, order="F")
    z[:] = MR
    assert (z[:] == MR).all()


# ------------------------------------------------------------ zarr edge chunks

def _psnr(ref: np.ndarray, out: np.ndarray) -> float:
    """PSNR as the codec's target means it: peak = max - min of the reference."""
    ref = ref.astype(float)
    mse = ((out.astype(float) - ref) ** 2).mean()
    return 200.0 if mse == 0 else 10 * math.log10((ref.max() - ref.min()) ** 2 / mse)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_zarr_lossy_edge_chunks_meet_the_psnr_target_on_their_real_samples(zarr_format):
    # a 512 x 512 piece of a real MR in 384 x 384 chunks: one whole chunk, three
    # edge chunks that zarr pads with zeros to 384 x 384 (before: 40.3, 40.3, 35.6 dB)
    image = _dicom("MR2_UNCR.dcm")[256:768, 256:768]
    codec = {"serializer": HlcCodec(mode="lossy", psnr=45), "compressors": None} if zarr_format == 3 else \
        {"compressors": HybridCodec(mode="lossy", psnr=45), "zarr_format": 2}
    z = zarr.create_array(zarr.storage.MemoryStore(), shape=image.shape, chunks=(384, 384), dtype=image.dtype,
                          **codec)
    z[:] = image
    out = z[:]
    for y in (0, 384):
        for x in (0, 384):
            part = (slice(y, y + 384), slice(x, x + 384))
            assert _psnr(image[part], out[part]) >= 45 - 0.3, (y, x)


def test_lossy_psnr_chunk_of_mostly_background_encodes():
    # an interior 200 x 200 chunk of MR2 (background noise, 0..214) raised KeyError in the
    # near-lossless alternative of the lossy coder (codec_core.strategy.near_lossless_if_better)
    chunk = np.ascontiguousarray(_dicom("MR2_UNCR.dcm")[600:800, 600:800])
    codec = HybridCodec(mode="lossy", psnr=45)
    assert _psnr(chunk, codec.decode(codec.encode(chunk))) >= 45
