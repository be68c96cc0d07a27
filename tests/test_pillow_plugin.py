"""Pillow ``.hlc`` plugin, exercised through the installed wheel in fresh processes.

Images are real DICOM pixels from pydicom-data (always by exact file name).
"""
from __future__ import annotations

import pytest

# Snippet run first in every subprocess: a few real images as arrays.
IMAGES = """
import io, threading
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from PIL import Image, ImageFile, UnidentifiedImageError
import codec_core as hlc

def dicom(name):
    return pydicom.dcmread(get_testdata_file(name)).pixel_array

mr = dicom("MR_small.dcm")                     # int16, 64 x 64
ct = dicom("693_UNCR.dcm")                     # int16 (14-bit signed), 512 x 512
stack = dicom("emri_small.dcm")                # uint16, 10 frames of 64 x 64
rgb = dicom("US1_UNCR.dcm")                    # uint8 RGB, 480 x 640
SAMPLES = {
    "L": (ct >> 4).clip(0, 255).astype("uint8"),
    "I;16": stack[0],
    "I": mr,
    "I8": (mr >> 4).astype("int8"),
    "RGB": rgb,
}
"""


@pytest.mark.parametrize("sample, mode", [("L", "L"), ("I;16", "I;16"), ("I", "I"), ("I8", "I"),
                                          ("RGB", "RGB")])
def test_open_and_save_round_trip_losslessly_in_each_mode(wheel_run, sample, mode):
    wheel_run(IMAGES + f"""
a = SAMPLES["{sample}"]
open("x.hlc", "wb").write(hlc.encode(a))
with Image.open("x.hlc") as im:
    assert im.format == "HLC" and im.mode == "{mode}" and im.size == (a.shape[1], a.shape[0])
    assert (np.asarray(im).astype(np.int64) == a).all()
    im.save("y.hlc")
assert hlc.info(open("y.hlc", "rb").read())["dtype"] == str(a.dtype)
assert (hlc.decode(open("y.hlc", "rb").read()) == a).all()
""")


def test_open_reads_only_the_header_and_load_decodes(wheel_run):
    wheel_run(IMAGES + """
open("x.hlc", "wb").write(hlc.encode(SAMPLES["I"]))
calls = []
real_decode = hlc.decode
hlc.decode = lambda *a, **k: calls.append(k) or real_decode(*a, **k)
im = Image.open("x.hlc")
assert (im.size, im.mode, im.n_frames) == ((64, 64), "I", 1) and calls == []
im.load()
assert len(calls) == 1
""")


def test_multi_frame_seek_decodes_each_frame_and_checks_bomb_limit(wheel_run):
    wheel_run(IMAGES + """
open("s.hlc", "wb").write(hlc.encode(stack))
checked = []
real_check = Image._decompression_bomb_check
Image._decompression_bomb_check = lambda size, **k: checked.append(size) or real_check(size, **k)
with Image.open("s.hlc") as im:
    assert im.n_frames == 10 and im.is_animated
    for i in (0, 3, 9):
        im.seek(i)
        assert im.tell() == i and (np.asarray(im) == stack[i]).all()
assert len(checked) >= 3
Image._decompression_bomb_check = real_check
Image.MAX_IMAGE_PIXELS = 64 * 64 // 2 - 1     # frames are over twice the limit
try:
    Image.open("s.hlc")
    raise AssertionError("no DecompressionBombError")
except Image.DecompressionBombError:
    pass
""")


def test_draft_decodes_a_coarse_level_instead_of_the_full_image(wheel_run):
    wheel_run(IMAGES + """
a = SAMPLES["L"]
data = hlc.encode(a)
open("x.hlc", "wb").write(data)
with Image.open("x.hlc") as im:
    mode, box = im.draft(None, (128, 128))
    assert im.size == (128, 128) and box == (0, 0, 128.0, 128.0)
    assert (np.asarray(im) == hlc.decode(data, level=2)).all()
with Image.open("x.hlc") as im:
    im.thumbnail((100, 100))
    assert im.size == (100, 100)
""")


def test_reduce_by_power_of_two_uses_decode_level(wheel_run):
    wheel_run(IMAGES + """
data = hlc.encode(ct)
open("x.hlc", "wb").write(data)
with Image.open("x.hlc") as im:
    small = im.reduce(4)
    assert small.size == (128, 128) and im.size == (512, 512)
    assert (np.asarray(small) == hlc.decode(data, level=2)).all()
    assert im.reduce(3).size == (171, 171)    # other factors: Pillow's own reduce
""")


def test_save_passes_mode_max_error_bpp_and_roi_to_the_codec(wheel_run):
    wheel_run(IMAGES + """
a = ct
Image.fromarray(a).save("nl.hlc", mode="near-lossless", max_error=2)
out = hlc.decode(open("nl.hlc", "rb").read())
assert out.dtype == a.dtype and np.abs(out.astype(int) - a).max() <= 2
mask = np.zeros(a.shape, bool); mask[200:300, 150:350] = True
Image.fromarray(a).save("roi.hlc", mode="lossy", bpp=0.5, roi=mask)
data = open("roi.hlc", "rb").read()
out = hlc.decode(data)
assert (out[mask] == a[mask]).all() and hlc.info(data)["lossy"]
assert 8 * len(data) / a.size <= 0.5 * 1.1
roi_image = Image.fromarray(mask.astype("uint8") * 255)
Image.fromarray(a).save("roi2.hlc", mode="lossy", bpp=0.5, roi=roi_image)
assert (hlc.decode(open("roi2.hlc", "rb").read())[mask] == a[mask]).all()
""")


def test_save_all_writes_a_stack_readable_frame_by_frame(wheel_run):
    wheel_run(IMAGES + """
frames = [Image.fromarray(f) for f in stack[:4]]
frames[0].save("s.hlc", save_all=True, append_images=frames[1:], mode="near-lossless", max_error=1)
data = open("s.hlc", "rb").read()
assert hlc.info(data)["shape"] == (4, 64, 64)
assert np.abs(hlc.decode(data).astype(int) - stack[:4]).max() <= 1
with Image.open("s.hlc") as im:
    assert im.n_frames == 4
""")


def test_registered_extension_and_mime_type(wheel_run):
    wheel_run(IMAGES + """
assert Image.registered_extensions()[".hlc"] == "HLC"
assert Image.MIME["HLC"] == "image/x-hlc"
Image.fromarray(SAMPLES["L"]).save("by_extension.hlc")
assert open("by_extension.hlc", "rb").read(8) == hlc.MAGIC
with Image.open("by_extension.hlc") as im:
    assert im.get_format_mimetype() == "image/x-hlc"
""")


def test_unsupported_mode_on_save_raises_oserror(wheel_run):
    wheel_run(IMAGES + """
try:
    Image.new("P", (8, 8)).save("p.hlc")
    raise AssertionError("saved mode P")
except OSError as e:
    assert "mode P" in str(e)
""")


def test_damaged_header_raises_unidentified_image_error(wheel_run):
    wheel_run(IMAGES + """
for bad in (hlc.MAGIC + b"garbage", hlc.MAGIC):
    try:
        Image.open(io.BytesIO(bad))
        raise AssertionError("opened a damaged header")
    except UnidentifiedImageError:
        pass
""")


def test_one_damaged_header_byte_is_repaired_from_the_copy_at_the_end(wheel_run):
    wheel_run(IMAGES + """
data = bytearray(hlc.encode(mr)); data[12] ^= 0xFF
im = Image.open(io.BytesIO(bytes(data)))
assert np.array_equal(np.asarray(im), mr)
""")


def test_damaged_pixels_raise_oserror_unless_load_truncated_images(wheel_run):
    wheel_run(IMAGES + """
data = bytearray(hlc.encode(ct))
data[len(data) * 3 // 4] ^= 0x5A
data = bytes(data)
try:
    hlc.decode(data)
    raise SystemExit("damage not detected by the core; pick another byte")
except hlc.HlcError:
    pass
im = Image.open(io.BytesIO(data))
try:
    im.load()
    raise AssertionError("loaded damaged pixels")
except OSError as e:
    assert "HLC" in str(e) or "damaged" in str(e)
ImageFile.LOAD_TRUNCATED_IMAGES = True
im = Image.open(io.BytesIO(data))
im.load()
assert im.size == (512, 512)
""")


def test_truncated_file_raises_pillow_errors(wheel_run):
    wheel_run(IMAGES + """
data = hlc.encode(ct)
try:
    Image.open(io.BytesIO(data[: len(data) // 2])).load()
    raise AssertionError("loaded a truncated file")
except (OSError, UnidentifiedImageError):
    pass
""")


def test_truncated_file_loads_with_load_truncated_images(wheel_run):
    wheel_run(IMAGES + """
ImageFile.LOAD_TRUNCATED_IMAGES = True
data = hlc.encode(ct)
im = Image.open(io.BytesIO(data[: len(data) * 3 // 4]))
im.load()
assert im.size == (512, 512)
""")


def test_decoding_from_several_threads_gives_identical_pixels(wheel_run):
    wheel_run(IMAGES + """
open("x.hlc", "wb").write(hlc.encode(ct, mode="near-lossless", max_error=1))
expected = hlc.decode(open("x.hlc", "rb").read())
results, errors = [], []
def work():
    try:
        for _ in range(3):
            with Image.open("x.hlc") as im:
                results.append(np.asarray(im).copy())
    except Exception as e:
        errors.append(e)
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
assert len(results) == 12 and all((r == expected).all() for r in results)
""")
