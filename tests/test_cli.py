"""The ``hlc`` command end to end, through subprocesses (``python -m codec_core.cli.main``).

Images are small pydicom-data files (CT_small 128x128 int16, MR_small 64x64 int16,
emri_small 10x64x64 uint16), looked up by exact name.
"""
from __future__ import annotations

import base64
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("encode", "decode", "info", "roi", "compare", "bench", "demo", "batch")


def hlc_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the installed package, as a user runs it
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def hlc(*args, cwd: Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    """Run ``hlc ARGS`` in a fresh interpreter and return the finished process."""
    return subprocess.run([sys.executable, "-m", "codec_core.cli.main", *map(str, args)], cwd=cwd,
                          env=hlc_env(), capture_output=True, text=True, timeout=timeout, **kw)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


def data_file(name: str) -> str:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    assert path is not None, name
    return str(path)


def dicom_pixels(path) -> np.ndarray:
    import hybrid_plugins

    from codec_core.cli.corpus import load_dicom_array

    hybrid_plugins.register_pydicom()
    return load_dicom_array(str(path))


CT = "CT_small.dcm"
MR = "MR_small.dcm"
EMRI = "emri_small.dcm"


# ------------------------------------------------------------------ help

def test_help_lists_every_command_without_importing_heavy_libraries(tmp_path):
    proc = ok(hlc("--help", cwd=tmp_path))
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", proc.stdout, re.M), name
    # (the command line is codec_core.cli: the package itself is imported, and is cheap;
    # the codec proper, codec_core.api, is not)
    code = ("import sys, codec_core.cli.main as m; m.build_parser(); "
            "print([x for x in ('numpy', 'matplotlib', 'dask', 'distributed', 'pydicom', 'codec_core.api') "
            "if x in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], env=hlc_env(), capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, capsys):
    from codec_core.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"hlc {command}" in out


# ------------------------------------------------------------------ encode / decode / info

def test_lossless_hlc_round_trip_to_every_output_format(tmp_path):
    src = data_file(CT)
    original = dicom_pixels(src)
    out = ok(hlc("encode", src, "ct.hlc", cwd=tmp_path)).stdout
    assert "lossless" in out and "bpp" in out and "CR" in out
    for name in ("back.dcm", "back.tif", "back.npy"):
        ok(hlc("decode", "ct.hlc", name, cwd=tmp_path))
    import tifffile

    assert np.array_equal(np.load(tmp_path / "back.npy"), original)
    assert np.array_equal(tifffile.imread(tmp_path / "back.tif"), original)
    import pydicom

    ds = pydicom.dcmread(tmp_path / "back.dcm")
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(ds.pixel_array, original)
    meta = json.loads(ok(hlc("info", "ct.hlc", "--json", cwd=tmp_path)).stdout)
    assert meta["mode"] == "lossless" and meta["max_error"] == 0 and meta["shape"] == [128, 128]


def test_encode_to_dicom_keeps_attributes_and_bounds_the_error(tmp_path):
    import pydicom

    import hybrid_plugins

    src = data_file(CT)
    ok(hlc("encode", src, "ct_hlc.dcm", "--max-error", "2", cwd=tmp_path))
    ds = pydicom.dcmread(tmp_path / "ct_hlc.dcm")
    before = pydicom.dcmread(src)
    assert ds.file_meta.TransferSyntaxUID == hybrid_plugins.HLC_TRANSFER_SYNTAX_UID
    assert ds.PatientName == before.PatientName and ds.StudyInstanceUID == before.StudyInstanceUID
    err = np.abs(dicom_pixels(tmp_path / "ct_hlc.dcm").astype(int) - dicom_pixels(src)).max()
    assert err <= 2
    meta = json.loads(ok(hlc("info", "ct_hlc.dcm", "--json", cwd=tmp_path)).stdout)
    assert meta["container"] == "dicom" and meta["mode"] == "near-lossless" and meta["max_error"] == 2
    text = ok(hlc("info", "ct_hlc.dcm", cwd=tmp_path)).stdout
    assert "near-lossless" in text and "frame sizes" in text


def test_encode_to_dicom_reports_bpp_and_cr_of_the_pixel_data_with_the_file_size(tmp_path):
    # the attributes around the pixel data are not compressed data
    out = ok(hlc("encode", data_file(CT), "ct_hlc.dcm", "--bpp", "1", cwd=tmp_path)).stdout
    meta = json.loads(ok(hlc("info", "ct_hlc.dcm", "--json", cwd=tmp_path)).stdout)
    pixel_data, size = sum(meta["frame_sizes"]), (tmp_path / "ct_hlc.dcm").stat().st_size
    assert meta["compressed_size"] == pixel_data and meta["file_size"] == size > pixel_data + 1000
    m = re.search(r"-> ([\d.]+) KB of pixel data \(file ([\d.]+) KB\), ([\d.]+) bpp, CR ([\d.]+)", out)
    assert m, out
    assert float(m[1]) == pytest.approx(pixel_data / 1000, abs=0.05)
    assert float(m[2]) == pytest.approx(size / 1000, abs=0.05)
    assert float(m[3]) == pytest.approx(8 * pixel_data / (128 * 128), abs=5e-4) == pytest.approx(meta["bpp"])
    assert float(m[4]) == pytest.approx(2 * 128 * 128 / pixel_data, abs=5e-3)


@pytest.mark.parametrize("ecc", [None, "medium"])
def test_info_shows_a_stream_cut_short_and_exits_3(tmp_path, ecc):
    ok(hlc("encode", data_file(CT), "ct.hlc", *(["--ecc", ecc] if ecc else []), cwd=tmp_path))
    whole = (tmp_path / "ct.hlc").read_bytes()
    assert re.search(r"^complete +yes$", ok(hlc("info", "ct.hlc", cwd=tmp_path)).stdout, re.M)
    needed = json.loads(ok(hlc("info", "ct.hlc", "--json", cwd=tmp_path)).stdout)["bytes_needed"]
    assert needed == len(whole) if ecc else len(whole) // 2 < needed <= len(whole)
    half = len(whole) // 2
    (tmp_path / "cut.hlc").write_bytes(whole[:half])
    text = hlc("info", "cut.hlc", cwd=tmp_path)
    assert text.returncode == 3, text.stdout + text.stderr
    assert re.search(rf"^complete +no — the stream is cut short; {half} of {needed} bytes$", text.stdout, re.M)
    js = hlc("info", "cut.hlc", "--json", cwd=tmp_path)
    assert js.returncode == 3
    meta = json.loads(js.stdout)
    assert meta["complete"] is False and meta["compressed_size"] == half and meta["bytes_needed"] == needed
    assert "3 it is cut short" in ok(hlc("info", "--help", cwd=tmp_path)).stdout


def test_info_on_a_dicom_file_cut_in_its_pixel_data_says_so(tmp_path):
    ok(hlc("encode", data_file(CT), "ct_hlc.dcm", cwd=tmp_path))
    whole = (tmp_path / "ct_hlc.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[: len(whole) * 4 // 5])
    proc = hlc("info", "cut.dcm", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "cut.dcm has no pixel data: the file is cut short" in proc.stderr.strip().splitlines()[-1]


def test_png_tiff_and_npy_inputs_round_trip_bit_exact(tmp_path):
    import imagecodecs
    import tifffile

    rng = np.random.default_rng(7)
    img = (rng.integers(0, 4096, (48, 80)) // 8 * 8).astype(np.uint16)
    (tmp_path / "in.png").write_bytes(bytes(imagecodecs.png_encode(img)))
    tifffile.imwrite(tmp_path / "in.tif", img)
    np.save(tmp_path / "in.npy", img)
    for name in ("in.png", "in.tif", "in.npy"):
        ok(hlc("encode", name, name + ".hlc", "--bits-stored", "12", cwd=tmp_path))
        ok(hlc("decode", name + ".hlc", name + ".out.png", cwd=tmp_path))
        back = imagecodecs.png_decode((tmp_path / (name + ".out.png")).read_bytes())
        assert back.dtype == np.uint16 and np.array_equal(back, img), name


def test_multiframe_info_frame_sizes_ecc_and_single_frame_decode(tmp_path):
    import imagecodecs

    src = data_file(EMRI)
    ok(hlc("encode", src, "em.hlc", "--ecc", "medium", cwd=tmp_path))
    meta = json.loads(ok(hlc("info", "em.hlc", "--json", cwd=tmp_path)).stdout)
    assert meta["ecc"] == "medium" and meta["ecc_overhead"] > 0
    assert len(meta["frame_sizes"]) == 10 and meta["frames"] == 10
    ok(hlc("decode", "em.hlc", "f3.png", "--frame", "3", cwd=tmp_path))
    frame = imagecodecs.png_decode((tmp_path / "f3.png").read_bytes())
    assert np.array_equal(frame, dicom_pixels(src)[3])


def test_hybrid_with_png_mask_keeps_the_roi_exact(tmp_path):
    import imagecodecs

    src = data_file(CT)
    original = dicom_pixels(src)
    mask = np.zeros(original.shape, np.uint8)
    mask[30:90, 40:100] = 255
    (tmp_path / "mask.png").write_bytes(bytes(imagecodecs.png_encode(mask)))
    ok(hlc("encode", src, "h.hlc", "--bpp", "0.5", "--roi", "mask.png", cwd=tmp_path))
    ok(hlc("decode", "h.hlc", "h.npy", cwd=tmp_path))
    back = np.load(tmp_path / "h.npy")
    assert np.array_equal(back[mask > 0], original[mask > 0])
    res = json.loads(ok(hlc("compare", src, "h.hlc", "--roi", "mask.png", "--json", cwd=tmp_path)).stdout)
    assert res["max_abs_error_roi"] == 0 and res["roi_fraction"] == pytest.approx(mask.astype(bool).mean())
    meta = json.loads(ok(hlc("info", "h.hlc", "--json", cwd=tmp_path)).stdout)
    assert meta["roi"] and 0 < meta["roi_fraction"] < 1


def test_compare_reports_both_psnr_peaks_max_error_and_rate(tmp_path):
    src = data_file(CT)
    ok(hlc("encode", src, "l.hlc", "--psnr", "45", cwd=tmp_path))
    res = json.loads(ok(hlc("compare", src, "l.hlc", "--json", cwd=tmp_path)).stdout)
    assert 44 <= res["psnr"] < res["psnr_nominal"]
    assert res["max_abs_error"] > 0 and 0 < res["ssim"] < 1
    assert res["bytes"] == (tmp_path / "l.hlc").stat().st_size and res["bpp"] > 0 and res["cr"] > 1
    text = ok(hlc("compare", src, "l.hlc", cwd=tmp_path)).stdout
    assert "nominal PSNR" in text and "max abs error" in text


def test_roi_command_writes_overlay_png(tmp_path):
    from PIL import Image

    out = json.loads(ok(hlc("roi", data_file(CT), "-o", "overlay.png", "--json", cwd=tmp_path)).stdout)
    assert sum(out["fractions"].values()) == pytest.approx(1.0)
    assert set(out["fractions"]) == {"background", "body", "detail"}
    with Image.open(tmp_path / "overlay.png") as im:
        assert im.format == "PNG" and min(im.size) > 100


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("args, status, words", [
    (["encode", "missing.dcm", "x.hlc"], 1, "does not exist"),
    (["encode", "{CT}", "x.hlc", "--mode", "lossy"], 2, "--bpp"),
    (["encode", "{CT}", "x.hlc", "--mode", "lossless", "--roi", "auto"], 2, "lossy"),
    (["encode", "{CT}", "x.txt"], 2, ".hlc"),
    (["encode", "{CT}", "x.hlc", "--bogus"], 2, "unrecognized"),
    (["encode", "notes.txt", "x.hlc"], 1, "not a DICOM, PNG, TIFF"),
    (["decode", "notes.txt", "x.png"], 1, "neither"),
    (["decode", "bad.hlc", "x.npy"], 1, "damaged"),
    (["info", "{CT}"], 1, "not HLC"),
    (["encode", "copy.dcm", "copy.dcm"], 2, "refusing to overwrite"),
    (["encode", "{OBXXXX1A.dcm}", "x.hlc", "--bpp", "1"], 1, "PALETTE COLOR"),
])
def test_errors_are_one_line_with_exit_status(tmp_path, args, status, words):
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "bad.hlc").write_bytes(b"\x89HLC\r\n\x1a\n" + bytes(range(256)) * 4)
    shutil.copy(data_file(CT), tmp_path / "copy.dcm")
    args = [data_file(a[1:-1]) if a.startswith("{") and a != "{CT}" else a.replace("{CT}", data_file(CT))
            for a in args]
    proc = hlc(*args, cwd=tmp_path)
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert words in lines[0]
    assert not (tmp_path / "x.hlc").exists()


def test_debug_flag_shows_the_traceback(tmp_path):
    proc = hlc("encode", "missing.dcm", "x.hlc", "--debug", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_write_error_leaves_no_partial_output(tmp_path):
    """A file-size limit makes the write fail half way, as a full disk would."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    proc = hlc("encode", data_file(EMRI), "big.hlc", cwd=tmp_path, preexec_fn=limit)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "too large" in proc.stderr.lower()
    assert sorted(os.listdir(tmp_path)) == []


# ------------------------------------------------------------------ reports

def _report_images(html: str) -> list[bytes]:
    """Every picture the page shows; fails if any is not an inline PNG."""
    from PIL import Image

    srcs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", html)
    pngs = []
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(BytesIO(data)) as im:
            im.verify()
            assert im.format == "PNG"
        pngs.append(data)
    assert re.findall(r"<img\b", html) and len(srcs) == len(re.findall(r"<img\b", html))
    # Opens with no network: nothing is fetched from anywhere.
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "<script" not in html
    assert "<link" not in html and "@import" not in html
    return pngs


def test_bench_on_a_folder_writes_markdown_and_self_contained_html(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(data_file(MR), data / "mr.dcm")
    (data / "readme.txt").write_text("not DICOM")
    proc = ok(hlc("bench", data, "--quick", "--runs", "1", "-o", "r.html", "--md", "r.md", cwd=tmp_path,
                  timeout=180))
    assert "| HLC" in proc.stdout and "JPEG 2000" in proc.stdout and "nominal" in proc.stdout
    assert (tmp_path / "r.md").read_text().startswith("# HLC benchmark")
    html = (tmp_path / "r.html").read_text()
    pngs = _report_images(html)
    assert len(pngs) == 2  # the rate-distortion plot and original/decoded/difference/ROI
    assert "rate-distortion plot of mr.dcm" in html and "original, decoded, difference and ROI" in html


def _rows(markdown: str, first: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell starts with ``first``."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|") and line.strip("| ").startswith(first)]


def _pixels_near(png: bytes, colour: str, tolerance: int = 30) -> int:
    """How many pixels of a PNG are within ``tolerance`` of ``colour`` (#rrggbb) in every channel."""
    from PIL import Image

    with Image.open(BytesIO(png)) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=int)
    target = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target) <= tolerance).all(axis=-1).sum())


def test_demo_prints_every_mode_and_shows_the_hybrid(tmp_path):
    # (how long it takes is measured by benchmarks, not asserted here)
    from codec_core.cli.render import HYBRID_STAR, ROI_OUTLINE

    proc = ok(hlc("demo", "-o", "demo.html", cwd=tmp_path, timeout=600))
    out = proc.stdout
    for word in ("lossless", "near-lossless", "lossy", "hybrid", "bpp", "CR", "PSNR", "nominal",
                 "max err", "time"):
        assert word in out, word
    # the hybrid is a hybrid (not the lossless stream kept), plainly smaller, its ROI exact
    (lossless,) = _rows(out, "lossless")
    (hybrid,) = _rows(out, "hybrid")
    assert "kept" not in hybrid[0]
    assert float(hybrid[2]) < 0.8 * float(lossless[2]), (hybrid, lossless)
    assert hybrid[7] == "0" and int(hybrid[6]) > 0  # ROI max err 0, errors outside it
    # every reference ran: signed samples offset to unsigned where a codec needs it, and said
    assert "refused" not in out and "error:" not in out
    for codec in ("JPEG-LS", "PNG"):
        (row,) = _rows(out, codec + " ")[:1]
        assert float(row[2]) > 0 and row[4].startswith("offset to unsigned"), row
    html = (tmp_path / "demo.html").read_text()
    rd, panels = _report_images(html)
    assert _pixels_near(rd, HYBRID_STAR) > 30  # the star
    assert _pixels_near(panels, ROI_OUTLINE) > 200  # the ROI outline
    assert "offset to unsigned" in html and "refused" not in html
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", html)
    assert len(captions) == 2 and "as a star" in captions[0] and "outlined" in captions[1]
    assert all(html.count(c) == 1 for c in captions)  # each caption once (not also a title in the picture)


def test_installed_console_script_runs(wheel_python, tmp_path):
    # the `hlc` script pip put beside the wheel's python, as a user's PATH would find it
    script = Path(wheel_python).with_name("hlc")
    proc = subprocess.run([str(script), "info", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and "examples:" in proc.stdout


def test_a_palette_tiff_is_coded_losslessly_or_refused(tmp_path):
    """A palette TIFF is read as its colour indices: near-lossless or lossy coding would
    change its colours arbitrarily, as for a DICOM PALETTE COLOR image (it was coded
    within the error asked, without a word)."""
    import tifffile

    idx = (np.arange(64 * 64).reshape(64, 64) // 17 % 256).astype(np.uint8)
    cmap = np.random.default_rng(0).integers(0, 65535, (3, 256)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "pal.tif", idx, photometric="palette", colormap=cmap)
    for args in (["--mode", "near-lossless", "--max-error", "2"], ["--mode", "lossy", "--bpp", "1"]):
        proc = hlc("encode", "pal.tif", "o.hlc", *args, cwd=tmp_path)
        assert proc.returncode == 1 and "PALETTE COLOR" in proc.stderr and "--mode lossless" in proc.stderr, \
            proc.stderr
        assert not (tmp_path / "o.hlc").exists()
    ok(hlc("encode", "pal.tif", "o.hlc", cwd=tmp_path))
    import codec_core

    assert np.array_equal(codec_core.decode((tmp_path / "o.hlc").read_bytes()), idx)
