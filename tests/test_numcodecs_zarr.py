"""numcodecs codec and zarr formats 2 and 3, through the installed wheel in fresh processes."""
from __future__ import annotations

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
                  "bits_stored": None, "roi": "auto", "roi_max_error": 1, "ecc": "low", "rgb": False}
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
