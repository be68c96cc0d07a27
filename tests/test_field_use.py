"""What a field user meets that the other suites did not look at: standard JSON from
every ``--json``, an ``hlc encode`` line that says what was written (not what was asked),
warnings as one line, no network telemetry or cache-directory noise from the libraries
the codec loads (onnxruntime, matplotlib) on an account whose HOME is not writable.

HOME is pointed at a regular file to make it unwritable: even root cannot create a
directory under a file, so the tests mean the same as or not as root.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import CT, data_file, hlc, hlc_env, ok


def _strict_json(text: str) -> object:
    """Parse as a standard JSON reader (JavaScript, jq, Go) does: no NaN or Infinity."""
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_compare_json_is_standard_json_for_an_exact_decode(tmp_path):
    ok(hlc("encode", data_file(CT), tmp_path / "ct.hlc", "-q", cwd=tmp_path))
    out = ok(hlc("compare", data_file(CT), tmp_path / "ct.hlc", "--json", cwd=tmp_path)).stdout
    res = _strict_json(out)
    assert res["psnr"] is None and res["psnr_nominal"] is None  # infinite: an exact decode
    assert res["max_abs_error"] == 0


def test_json_text_writes_non_finite_floats_as_null():
    from codec_core.cli.io import json_text

    value = {"a": float("inf"), "b": [np.float64("-inf"), float("nan"), 1.5], "c": ("x", 2), "d": Path("p")}
    assert _strict_json(json_text(value)) == {"a": None, "b": [None, None, 1.5], "c": ["x", 2], "d": "p"}


def test_batch_json_is_standard_json(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "ct.dcm").write_bytes(Path(data_file(CT)).read_bytes())
    ok(hlc("batch", src, tmp_path / "out", "--workers", "1", "--no-progress", "--json", tmp_path / "r.json",
           cwd=tmp_path))
    _strict_json((tmp_path / "r.json").read_text())


def test_encode_line_says_what_was_written_when_the_whole_image_is_kept(tmp_path):
    # CT_small's automatic map has no background: the hybrid keeps the lossless stream.
    proc = ok(hlc("encode", data_file(CT), tmp_path / "ct.hlc", "--bpp", "0.5", "--roi", "auto",
                  cwd=tmp_path))
    info = json.loads(ok(hlc("info", tmp_path / "ct.hlc", "--json", cwd=tmp_path)).stdout)
    assert info["mode"] == "lossless" and not info["roi"]
    line = proc.stdout.strip().splitlines()[-1]
    assert ", lossless" in line and ", lossy" not in line.split(";")[0].split("(asked")[0], line
    assert "asked lossy" in line, line


def test_encode_line_unchanged_when_the_stream_is_what_was_asked(tmp_path):
    proc = ok(hlc("encode", data_file(CT), tmp_path / "ct.hlc", "--max-error", "2", cwd=tmp_path))
    assert "near-lossless (max error 2);" in proc.stdout and "asked" not in proc.stdout


def test_a_warning_is_one_line_naming_the_command(tmp_path):
    # A mask on half the image kept exact at 0.1 bpp: unreachable, hlc warns.
    from PIL import Image

    import codec_core as hlc_codec  # noqa: F401  (installed, for the source pixels)

    mask = np.zeros((128, 128), np.uint8)
    mask[:, :64] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    proc = ok(hlc("encode", data_file(CT), tmp_path / "ct.hlc", "--bpp", "0.1", "--roi", tmp_path / "mask.png",
                  cwd=tmp_path))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("hlc encode: warning: bpp=0.1 is below"), proc.stderr


# ------------------------------------------- libraries loaded on an unwritable HOME

@pytest.fixture
def no_home(tmp_path) -> dict[str, str]:
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    env = hlc_env()
    for name in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY"):
        env.pop(name, None)
    env["HOME"] = str(home)
    return env


def test_automatic_roi_turns_onnxruntime_telemetry_off_and_is_quiet(tmp_path, no_home):
    code = ("import os, numpy as np, codec_core as hlc\n"
            "a = (np.arange(96 * 96, dtype=np.uint16).reshape(96, 96) * 7) % 4000\n"
            "hlc.encode(a, mode='lossy', bpp=1.0, roi='auto')\n"
            "print(os.environ.get('ORT_DISABLE_TELEMETRY'))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=no_home, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
    assert "telemetry" not in proc.stderr.lower(), proc.stderr


def test_a_user_who_asks_for_onnxruntime_telemetry_keeps_it(tmp_path):
    env = hlc_env()
    env["ORT_DISABLE_TELEMETRY"] = "0"
    code = ("import os\nfrom codec_core.roi.model_files import import_onnxruntime\nimport_onnxruntime()\n"
            "print(os.environ['ORT_DISABLE_TELEMETRY'])\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_hlc_roi_with_an_unwritable_home_prints_no_library_noise_and_leaves_no_directory(tmp_path, no_home):
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run([sys.executable, "-m", "codec_core.cli.main", "roi", data_file(CT), "-o",
                           str(tmp_path / "roi.png")], env={**no_home, "TMPDIR": str(temp)}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    assert (tmp_path / "roi.png").stat().st_size > 0
    assert list(temp.iterdir()) == []  # the private matplotlib directory is gone


# ------------------------------------------------------------- errors name the user's path

def test_an_output_in_a_missing_folder_is_named_not_its_temporary_file(tmp_path):
    target = tmp_path / "no" / "such" / "ct.hlc"
    proc = hlc("encode", data_file(CT), target, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert str(target) in line and "partial" not in line and "does not exist" in line, line


def test_demo_with_an_unknown_image_does_not_say_to_install_what_is_installed(tmp_path):
    proc = hlc("demo", "--image", "nosuch.dcm", cwd=tmp_path)
    assert proc.returncode == 1
    assert "pip install" not in proc.stderr and "nosuch.dcm" in proc.stderr, proc.stderr
    assert "pydicom-data" in proc.stderr  # where a name is looked up


def test_demo_fails_when_hlc_fails_instead_of_calling_it_a_refused_input(tmp_path):
    # The demo is the README's first command: HLC failing in it (here: no models to make
    # the automatic ROI) is a failed demo, not a row saying "refused int16 input".
    env = {**hlc_env(), "HLC_MODEL_DIR": str(tmp_path / "no-models")}
    proc = subprocess.run([sys.executable, "-m", "codec_core.cli.main", "demo", "--image", "CT_small.dcm",
                           "-o", "r.html"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refused int16" not in proc.stdout and "automatic ROI unavailable: ModelIntegrityError" in proc.stdout
    assert "HLC failed on this install" in proc.stderr and "automatic ROI: ModelIntegrityError" in proc.stderr
    assert (tmp_path / "r.html").exists()  # (the report is still written, to look at)


def test_demo_names_an_output_it_cannot_write_before_it_computes(tmp_path):
    proc = hlc("demo", "--image", "CT_small.dcm", "-o", tmp_path / "no" / "such" / "r.html", cwd=tmp_path)
    assert proc.returncode == 1 and "does not exist" in proc.stderr, proc.stderr
    assert "HLC demo on" not in proc.stdout  # (nothing computed first)


def test_the_source_tree_without_its_kernels_says_so(tmp_path):
    # Python started inside a checkout imports it before the installed package; where
    # the kernels were not built in place that was a bare "No module named codec_core._hlc".
    import shutil

    import codec_core
    import hybrid_plugins

    for package in (codec_core, hybrid_plugins):
        source = Path(package.__file__).parent
        shutil.copytree(source, tmp_path / source.name, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    proc = subprocess.run([sys.executable, "-c", "import numpy, codec_core; codec_core.encode(numpy.zeros((8, 8), 'u1'))"],
                          cwd=tmp_path, env=hlc_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: codec_core's compiled kernels") and "source checkout" in last, last


# ------------------------------------------------------ a batch killed with SIGKILL

def test_workers_end_when_the_batch_is_killed_with_sigkill(tmp_path):
    # SIGKILL (the OOM killer, kill -9, a scheduler's hard stop) cannot be caught: the
    # workers must notice that their parent is gone and end, not sleep on forever
    # holding their memory (they did).
    import shutil
    import signal
    import time

    from test_cli_batch import _processes, descendants, gated_batch, tree_digest, wait_for

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(4):
        shutil.copy(data_file(CT), src / f"ct{i}.dcm")
    shutil.copy(data_file(CT), src / "a_held.dcm")
    before = tree_digest(src)
    proc = gated_batch([src, out, "--workers", "2", "--no-progress"], tmp_path, "a_held.dcm")
    wait_for(lambda: list(out.glob("*.dcm")), proc)
    children = descendants(proc.pid)
    assert len(children) >= 2, children
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)  # (not communicate: a worker left running holds the pipes open)

    def left() -> set:
        return children & {(p, start) for p, (_, start) in _processes().items()}

    deadline = time.monotonic() + 20
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    still = left()
    for pid, _ in still:  # (do not leave them to the next test)
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not still, f"workers still running after the batch was killed: {still}"
    assert tree_digest(src) == before
    # the next run removes what the killed workers left and finishes the job
    ok(hlc("batch", src, out, "--workers", "2", "--no-progress", cwd=tmp_path, timeout=300))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())


def test_batch_warnings_name_their_file_in_the_summary_and_report(tmp_path):
    # A mask-free hybrid at a bpp its ROI bound cannot reach: the codec warns. In a
    # worker that warning was Python's two lines (the plugin's file and source line) on
    # stderr, with no word of which input it was about.
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(data_file("explicit_VR-UN.dcm"), src / "ct.dcm")
    proc = ok(hlc("batch", src, tmp_path / "out", "--bpp", "0.3", "--roi", "auto", "--workers", "1",
                  "--no-progress", "--json", tmp_path / "r.json", cwd=tmp_path, timeout=300))
    assert "UserWarning" not in proc.stderr and ".py:" not in proc.stderr, proc.stderr
    assert "warnings:" in proc.stdout and "ct.dcm: bpp=0.3 is below" in proc.stdout, proc.stdout
    (result,) = _strict_json((tmp_path / "r.json").read_text())["results"]
    assert any(w.startswith("bpp=0.3 is below") for w in result["warnings"]), result


# ------------------------------------------------------------------ pydicom plugin

def test_a_ybr_full_422_jpeg_decompressed_without_rgb_conversion_compresses(tmp_path):
    # pydicom's decompress(as_rgb=False) of a YBR_FULL_422 JPEG gives every sample of
    # every pixel (libjpeg upsamples) but leaves the label YBR_FULL_422; the plugin
    # took the label's word and failed ("a third larger than expected").
    import pydicom
    from pydicom.data import get_testdata_file

    import hybrid_plugins
    from hybrid_plugins import HLC_TRANSFER_SYNTAX_UID

    hybrid_plugins.register()
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_dcmtk_+eb+cy+np.dcm"))
    ds.decompress(as_rgb=False)
    want = np.frombuffer(ds.PixelData, np.uint8).reshape(ds.Rows, ds.Columns, 3)
    ds.compress(HLC_TRANSFER_SYNTAX_UID, mode="lossless")
    assert ds.PhotometricInterpretation == "YBR_FULL" and ds.PlanarConfiguration == 1  # (as for a YBR_FULL_422 source)
    ds.save_as(tmp_path / "ybr.dcm")
    np.save(tmp_path / "want.npy", want)
    code = ("import numpy as np, hybrid_plugins; hybrid_plugins.register()\n"
            "from pydicom.pixels import pixel_array\n"
            "print(np.array_equal(pixel_array('ybr.dcm', raw=True), np.load('want.npy')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=hlc_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stdout + proc.stderr


# ------------------------------------------------------- misspelt options are refused

def test_pillow_refuses_an_option_it_does_not_know_instead_of_ignoring_it(tmp_path):
    # save(..., roi_max_eror=2) or quality=90 were ignored with no word: a typo must not pass.
    from PIL import Image

    import hybrid_plugins

    hybrid_plugins.register()
    im = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 1000)
    with pytest.raises(ValueError, match=r"'roi_max_eror' \(did you mean 'roi_max_error'\?\)"):
        im.save(tmp_path / "x.hlc", mode="lossy", psnr=45.0, roi="auto", roi_max_eror=2)
    with pytest.raises(ValueError, match="quality"):
        im.save(tmp_path / "x.hlc", quality=90)
    assert not (tmp_path / "x.hlc").exists() or (tmp_path / "x.hlc").stat().st_size == 0
    im.save(tmp_path / "y.hlc", mode="near-lossless", max_error=4)  # (the right name works)
    frames = [im, im.copy()]
    frames[0].save(tmp_path / "z.hlc", save_all=True, append_images=frames[1:])  # Pillow's own keys


def test_encode_names_a_misspelt_option_and_the_one_meant():
    import codec_core as hlc_codec

    with pytest.raises(TypeError, match=r"encode\(\) got an unknown option 'max_eror' \(did you mean 'max_error'\?\)"):
        hlc_codec.encode(np.zeros((8, 8), np.uint8), mode="near-lossless", max_eror=1)


def test_pydicom_compress_refuses_a_misspelt_option():
    import pydicom
    from pydicom.data import get_testdata_file

    import hybrid_plugins
    from hybrid_plugins import HLC_TRANSFER_SYNTAX_UID

    hybrid_plugins.register()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    with pytest.raises(ValueError, match=r"'max_eror' \(did you mean 'max_error'\?\)"):
        ds.compress(HLC_TRANSFER_SYNTAX_UID, mode="near-lossless", max_error=1, max_eror=2)
    arr = ds.pixel_array
    with pytest.raises(ValueError, match="quality"):
        ds.compress(HLC_TRANSFER_SYNTAX_UID, arr, quality=90)
    # pydicom's own options still pass, with a dataset and with an array
    ds.compress(HLC_TRANSFER_SYNTAX_UID, arr, mode="lossless", encoding_plugin="hlc")
    assert np.array_equal(ds.pixel_array, arr)
