"""Pillow ``.hlc`` plugin.

The tests that take ``wheel_run`` exercise the installed wheel in fresh processes. The
toolkit-convention tests (header-only open, verify, closing the file, draft, truncated
files) run in this process and compare each behaviour with what Pillow's own PNG (or,
for draft, JPEG) plugin does in the same situation. Images are real DICOM pixels from
pydicom-data (always by exact file name).
"""
from __future__ import annotations

import gc
import io
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile, UnidentifiedImageError
from pydicom.data import get_testdata_file

import codec_core as hlc
from codec_core.format import header_end
from codec_core import container
from hybrid_plugins import pillow_plugin

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


def test_an_image_pillow_has_no_mode_for_says_so(wheel_run):
    """A 16-bit RGB HLC file is valid but Pillow has no mode for it: Image.open raises
    UnidentifiedImageError with that reason (it was Pillow's bare "cannot identify image
    file", the plugin's SyntaxError swallowed)."""
    wheel_run(IMAGES + """
rgb16 = np.random.default_rng(0).integers(0, 4096, (16, 16, 3)).astype(np.uint16)
try:
    Image.open(io.BytesIO(hlc.encode(rgb16)))
    raise AssertionError("opened 16-bit RGB")
except UnidentifiedImageError as e:
    assert "Pillow has no mode for 3-channel uint16 images" in str(e) and "codec_core.decode" in str(e), e
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


# ------------------------------------------------ conventions, compared with PNG

def _dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


CT16 = _dicom("693_UNCR.dcm")
CT16 = (CT16.astype(np.int32) - CT16.min()).astype(np.uint16)  # I;16, which PNG stores too
MR = _dicom("MR_small.dcm")                                     # int16, 64 x 64, one tile


pillow_plugin.register()  # as the start-up hook does in a user's process (idempotent)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _segment_end(data: bytes) -> int:
    """Offset just past the last segment (the header copy follows)."""
    backup = int.from_bytes(data[-8:-4], "little")
    return len(data) - 8 - backup


class CountingFile(io.BytesIO):
    """A file that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        out = super().read(size)
        self.bytes_read += len(out)
        return out


def test_open_reads_the_header_block_only_like_png():
    data, png = hlc.encode(CT16), _png(CT16)
    header = header_end(data[:13])
    assert header < len(data) // 20
    for blob, most in ((data, 16 + header), (png, len(png) // 20)):   # 16: Image.open's prefix
        f = CountingFile(blob)
        im = Image.open(f)
        assert im.size == (512, 512) and im.mode == "I;16"
        assert f.bytes_read <= most, (im.format, f.bytes_read)
        assert np.array_equal(np.asarray(im), CT16)


def test_open_with_a_damaged_header_reads_the_copy_at_the_end():
    data = bytearray(hlc.encode(MR))
    data[20] ^= 0xFF
    f = CountingFile(bytes(data))
    im = Image.open(f)
    assert f.bytes_read > len(data) and np.array_equal(np.asarray(im), MR)


@pytest.mark.parametrize("ecc", [None, "medium"])
def test_open_with_a_damaged_signature_leaves_the_repair_to_the_codec(ecc):
    """One damaged byte of the 8-byte signature: the plugin's accept() asked for the exact
    signature, so Pillow could not identify a file the codec reads exactly (from the
    header's copy at the end, or the parity)."""
    data = bytearray(hlc.encode(np.tile(CT16, (2, 2)), ecc=ecc))
    data[1] ^= 0xEE
    with Image.open(io.BytesIO(bytes(data))) as im:
        assert im.format == "HLC" and np.array_equal(np.asarray(im), np.tile(CT16, (2, 2)))
    with pytest.raises(UnidentifiedImageError):  # (another format's signature is not one of ours)
        Image.open(io.BytesIO(b"\x89HLM\r\n\x1a\n" + bytes(data[8:])))


def _damage(data: bytes, at: int) -> bytes:
    bad = bytearray(data)
    bad[at] ^= 0x10
    return bytes(bad)


def test_verify_checks_every_crc_without_decoding_like_png(monkeypatch):
    data, png = hlc.encode(CT16, tile_size=256), _png(CT16)
    idat = png.index(b"IDAT") + 4
    real_decode = hlc.decode
    monkeypatch.setattr(hlc, "decode", lambda *a, **k: pytest.fail("verify() decoded pixels"))
    cases = {  # HLC: a byte in the first segment, the last segment (last tile's finest level)
        "segment 0": (_damage(data, header_end(data[:13]) + 3), _damage(png, idat + 10)),
        "last segment": (_damage(data, _segment_end(data) - 1), _damage(png, idat + 200)),
    }
    for what, (bad_hlc, bad_png) in cases.items():
        errors = []
        for blob in (bad_hlc, bad_png):
            im = Image.open(io.BytesIO(blob))
            with pytest.raises(Exception) as err:
                im.verify()
            errors.append(err.type)
        assert errors == [SyntaxError, SyntaxError], what      # PNG: "broken PNG file (bad ... checksum)"
    for blob in (data, png):                                  # cut short: OSError for both
        im = Image.open(io.BytesIO(blob[: len(blob) * 3 // 4]))
        with pytest.raises(OSError):
            im.verify()
    for blob in (data, png):                                  # intact: passes, and the file is let go
        im = Image.open(io.BytesIO(blob))
        im.verify()
        assert im.fp is None
        with pytest.raises(RuntimeError, match="directly after open"):
            im.verify()
    monkeypatch.setattr(hlc, "decode", real_decode)
    with pytest.raises(hlc.CorruptStreamError):               # the damage verify found is real
        hlc.decode(cases["last segment"][0])


def test_verify_passes_damage_the_stream_repairs_itself():
    # a header byte (read from its copy at the end) and bytes the Reed-Solomon parity
    # corrects: the pixels come out exact, so the file is not broken
    header_hit = _damage(hlc.encode(MR), 20)
    protected = hlc.encode(MR, ecc="medium")
    parity_hit = _damage(protected, len(protected) // 2)
    for blob in (header_hit, parity_hit):
        Image.open(io.BytesIO(blob)).verify()
        assert np.array_equal(hlc.decode(blob), MR)


def _unclosed_warnings(path: str) -> list[str]:
    """ResourceWarnings of opening `path`, loading it and dropping the image."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        im = Image.open(path)
        im.load()
        del im
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_load_closes_a_file_opened_from_a_path_like_png(tmp_path):
    (tmp_path / "x.hlc").write_bytes(hlc.encode(CT16))
    (tmp_path / "x.png").write_bytes(_png(CT16))
    for name in ("x.hlc", "x.png"):
        with Image.open(tmp_path / name) as im:
            fp = im.fp
            im.load()
            assert fp.closed and im.fp is None, name
        assert _unclosed_warnings(str(tmp_path / name)) == [], name


def test_a_stack_keeps_its_file_for_seek_like_an_animated_png(tmp_path):
    stack = _dicom("emri_small.dcm")[:3]
    (tmp_path / "s.hlc").write_bytes(hlc.encode(stack))
    Image.fromarray(stack[0]).save(tmp_path / "s.png", save_all=True,
                                   append_images=[Image.fromarray(f) for f in stack[1:]])
    for name in ("s.hlc", "s.png"):
        im = Image.open(tmp_path / name)
        fp = im.fp
        im.load()
        assert not fp.closed, name            # a later seek() reads from it
        im.seek(2)
        assert np.array_equal(np.asarray(im), stack[2]), name
        im.close()
        assert fp.closed, name


def _jpeg(image: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    return Image.open(io.BytesIO(buf.getvalue()))


def test_draft_honours_mode_l_and_says_which_mode_it_chose_like_jpeg():
    rgb = _dicom("US1_UNCR.dcm")                                 # 640 x 480 colour
    hlc_rgb = Image.open(io.BytesIO(hlc.encode(rgb)))
    jpeg_rgb = _jpeg(Image.fromarray(rgb))
    for im in (jpeg_rgb, hlc_rgb):                               # colour -> L, at 1/4 size
        assert im.draft("L", (160, 120)) == ("L", (0, 0, 160.0, 120.0)), im.format
        assert im.mode == "L" and im.size == (160, 120)
        assert im.draft("L", (80, 60)) is None                   # a second call changes nothing
    expected = Image.fromarray(hlc.decode(hlc.encode(rgb), level=2)).convert("L")
    assert np.array_equal(np.asarray(hlc_rgb), np.asarray(expected))

    grey = np.ascontiguousarray((CT16[:, :500] >> 4).clip(0, 255).astype(np.uint8))
    jpeg_l, hlc_l = _jpeg(Image.fromarray(grey)), Image.open(io.BytesIO(hlc.encode(grey)))
    for im in (jpeg_l, hlc_l):                                   # a mode neither can give: unchanged, and said
        assert im.draft("RGB", None) == ("L", (0, 0, 500, 512)), im.format
        assert im.mode == "L"
        im.load()
        assert im.draft("L", None) is None                       # after load(): no effect

    data = hlc.encode(CT16)                                      # 16-bit -> L: the stored range onto 0..255
    im = Image.open(io.BytesIO(data))
    assert im.draft("L", (128, 128)) == ("L", (0, 0, 128.0, 128.0)) and im.mode == "L"
    lo, hi = hlc.info(data)["value_range"]
    level2 = hlc.decode(data, level=2).astype(np.float64)
    assert np.array_equal(np.asarray(im), np.rint((level2 - lo) * 255 / (hi - lo)).astype(np.uint8))


def test_truncated_one_tile_file_conceals_as_its_report_says(monkeypatch):
    data = hlc.encode(MR)                                        # one tile, all of it in segment 0
    cut = data[: len(data) * 3 // 4]
    png = _png(MR.astype(np.uint16))
    cut_png = png[: len(png) * 3 // 4]
    for blob in (cut, cut_png):                                   # both: OSError on load
        with pytest.raises(OSError):
            Image.open(io.BytesIO(blob)).load()
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    png_pixels = Image.open(io.BytesIO(cut_png))
    png_pixels.load()
    assert np.asarray(png_pixels)[-1].max() == 0                  # PNG leaves what is missing black
    pixels = np.asarray(Image.open(io.BytesIO(cut)))
    same, report = hlc.decode(cut, strict=False)
    assert np.array_equal(pixels, same)
    lo, hi = hlc.info(data)["value_range"]
    assert report["concealed"] == ["frame 0 tile 0 channel 0: lost, filled with the middle of its value "
                                   "range (nothing of its frame is left)"]
    assert (pixels == (lo + hi) // 2).all()                        # was 0, below the stored 127..2145


def test_a_lost_tile_is_filled_with_the_mean_of_its_frame_as_reported():
    data = hlc.encode(CT16, tile_size=256)                        # 4 tiles; lose tile 0 (its LL segment)
    _, start = container.parse_header(data)
    out, report = hlc.decode(_damage(data, start + 5), strict=False)
    assert report["concealed"] == ["frame 0 tile 0 channel 0: lost, filled with the mean of its frame"]
    rest = CT16.copy().astype(np.float64)
    rest[:256, :256] = np.nan
    assert (out[:256, :256] == np.rint(np.nanmean(rest))).all()


def test_save_all_of_mode_i_frames_takes_one_type_for_all(wheel_run):
    # Mode I (int32) frames are stored in the narrowest 16-bit type that holds every
    # frame's values: one frame within int16 and one past it make a uint16 stack.
    wheel_run(IMAGES + """
low = Image.fromarray(np.full((8, 8), 1000, np.int32))
high = Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8) * 700 + 5000)
low.save("i.hlc", save_all=True, append_images=[high])
got = hlc.decode(open("i.hlc", "rb").read())
assert got.dtype == np.uint16 and (got[0] == 1000).all() and (got[1] == np.asarray(high)).all()
try:
    Image.fromarray(np.full((8, 8), -5, np.int32)).save("j.hlc", save_all=True, append_images=[high])
    raise AssertionError("saved values of no one 16-bit type")
except ValueError as e:
    assert "-5..49100" in str(e), e
""")
