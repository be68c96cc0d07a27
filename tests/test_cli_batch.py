"""``hlc batch`` end to end: bad files, resume after an interruption, --verify, dask, write errors."""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_cli import CT, EMRI, MR, data_file, dicom_pixels, hlc, hlc_env

TEMP_SUFFIX = ".hlc-partial"


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """SRC tree: three DICOM images (one in a sub-folder), a text file and a truncated DICOM."""
    src = tmp_path / "src"
    (src / "series").mkdir(parents=True)
    shutil.copy(data_file(CT), src / "ct.dcm")
    shutil.copy(data_file(MR), src / "mr.dcm")
    shutil.copy(data_file(EMRI), src / "series" / "emri.dcm")
    (src / "notes.txt").write_text("not DICOM\n")
    (src / "broken.dcm").write_bytes(Path(data_file(MR)).read_bytes()[:700])
    return src


GOOD = ("ct.dcm", "mr.dcm", "series/emri.dcm")


def test_batch_converts_the_tree_reports_bad_files_and_never_touches_originals(tmp_path, archive):
    before = tree_digest(archive)
    proc = hlc("batch", archive, "out", "--workers", "2", "--verify", "--no-progress",
               "--json", "result.json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr      # broken.dcm failed
    out = proc.stdout
    assert "5 files: 3 converted" in out and "1 skipped" in out and "1 failed" in out
    assert "notes.txt: not a DICOM file" in out and "broken.dcm" in out
    assert "ratio" in out and "2 worker" in out
    for rel in GOOD:
        assert np.array_equal(dicom_pixels(tmp_path / "out" / rel), dicom_pixels(archive / rel)), rel
    assert not (tmp_path / "out" / "notes.txt").exists() and not (tmp_path / "out" / "broken.dcm").exists()
    assert tree_digest(archive) == before
    result = json.loads((tmp_path / "result.json").read_text())
    assert {Path(r["src"]).name: r["status"] for r in result["results"]} == {
        "ct.dcm": "converted", "mr.dcm": "converted", "emri.dcm": "converted",
        "notes.txt": "skipped", "broken.dcm": "failed"}
    again = hlc("batch", archive, "out", "--no-progress", cwd=tmp_path)
    assert "3 already done" in again.stdout and again.returncode == 1


def test_batch_refuses_a_destination_inside_the_source(tmp_path, archive):
    proc = hlc("batch", archive, archive / "converted", cwd=tmp_path)
    assert proc.returncode == 2 and "inside SRC" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_batch_interrupted_then_resumed_finishes_with_whole_files_only(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        shutil.copy(data_file(CT), src / f"ct{i:02d}.dcm")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".ct05.dcm.x1y2z3{TEMP_SUFFIX}"   # left by a run killed earlier
    stale.write_bytes(b"half a file")
    args = [sys.executable, "-m", "hlc_cli.main", "batch", str(src), str(out), "--workers", "1",
            "--bpp", "1", "--roi", "auto", "--to", "hlc", "--no-progress"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=hlc_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 90
    while not list(out.glob("*.hlc")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)                 # Ctrl-C: the whole process group
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout
    assert "interrupted" in stdout and "run the same command again" in stdout
    done = sorted(out.glob("*.hlc"))
    assert 1 <= len(done) < 10
    assert not partials(out)
    import codec_core

    for p in done:                                     # whatever exists is complete
        codec_core.decode(p.read_bytes())
    again = hlc(*args[3:], cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(done)} already done" in again.stdout
    assert len(list(out.glob("*.hlc"))) == 10 and not partials(out)


def test_verify_catches_a_corrupted_output_and_converts_it_again(tmp_path, archive):
    (archive / "broken.dcm").unlink()
    ok = hlc("batch", archive, "out", "--to", "hlc", "--no-progress", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    victim = tmp_path / "out" / "ct.hlc"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    plain = hlc("batch", archive, "out", "--to", "hlc", "--no-progress", cwd=tmp_path)
    assert plain.returncode == 0 and "3 already done" in plain.stdout   # without --verify: trusted
    proc = hlc("batch", archive, "out", "--to", "hlc", "--verify", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "1 repaired" in proc.stdout and "2 verified" in proc.stdout
    assert "ct.dcm: existing output failed verification" in proc.stdout
    import codec_core

    assert np.array_equal(codec_core.decode(victim.read_bytes()), dicom_pixels(archive / "ct.dcm"))
    clean = hlc("batch", archive, "out", "--to", "hlc", "--verify", "--no-progress", cwd=tmp_path)
    assert clean.returncode == 0 and "3 verified" in clean.stdout


def test_verify_output_rejects_bad_outputs(tmp_path):
    from hlc_cli.batch import verify_output

    import codec_core

    img = dicom_pixels(data_file(MR))
    path = tmp_path / "mr.hlc"
    stream = codec_core.encode(img, mode="near-lossless", max_error=3)
    path.write_bytes(stream[: len(stream) // 2])
    problem, _ = verify_output(str(path), img, {"mode": "near-lossless", "max_error": 3})
    assert "does not decode" in problem
    path.write_bytes(stream)
    assert verify_output(str(path), img, {"mode": "near-lossless", "max_error": 3})[0] == ""
    assert "exceeds" in verify_output(str(path), img, {"mode": "near-lossless", "max_error": 1})[0]
    assert "mode" in verify_output(str(path), img, {"mode": "lossless"})[0]


def test_batch_write_errors_stop_only_that_file_and_leave_no_partial(tmp_path, archive):
    """A file-size limit: the 6 KB MR output fits, the 20 KB CT output does not."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))

    proc = hlc("batch", archive, "out", "--workers", "1", "--no-progress", cwd=tmp_path, preexec_fn=limit)
    assert proc.returncode == 1
    out = tmp_path / "out"
    assert (out / "mr.dcm").exists() and not (out / "ct.dcm").exists()
    assert "ct.dcm: File too large" in proc.stdout
    assert not partials(out)


def test_batch_on_a_dask_local_cluster(tmp_path, archive, monkeypatch):
    import distributed
    (archive / "broken.dcm").unlink()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        proc = hlc("batch", archive, "out", "--scheduler", cluster.scheduler_address, "--verify",
                   "--no-progress", cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 converted" in proc.stdout and "dask scheduler" in proc.stdout
    for rel in GOOD:
        assert np.array_equal(dicom_pixels(tmp_path / "out" / rel), dicom_pixels(archive / rel)), rel


def test_batch_compiles_the_kernels_before_its_workers_start(tmp_path):
    # Workers compiling at once on a fresh install race on numba's cache files
    # (numba #4807); the parent fills the cache first. Here: into an empty cache dir.
    cache = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    code = "from hlc_cli.batch import compile_kernels_here; compile_kernels_here()"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    index = {p.name.split("-")[0] for p in cache.rglob("*.nbi")}
    for kernel in ("_kernels.encode_band", "_kernels.decode_band", "_predictive_kernels.code_plane"):
        assert kernel in index, sorted(index)
