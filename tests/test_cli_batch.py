"""``hlc batch`` end to end: bad files, resume after an interruption, signals, --verify,
every example shown to users, dask, write errors."""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import resource
import shlex
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
TESTS = Path(__file__).resolve().parent
# A guard against a batch that never ends after its signal, not a speed figure: on a
# 2-core machine shared with other jobs, ending two spawned workers once took over 60 s.
HANG = 240
UN = "explicit_VR-UN.dcm"   # 512 x 512 CT with air around the body: a real hybrid


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


def test_batch_knows_the_source_under_another_path(tmp_path, archive, monkeypatch):
    """DST that is SRC under another path (a bind mount), or a folder below it: the
    originals were counted as outputs "already done". The folders are compared by
    identity, not only by path: here a bind mount where the test may make one (root in
    CI), and in any case the identity check itself (os.path.samefile saying so)."""
    import shutil

    from codec_core.cli import batch

    other = tmp_path / "mounted"
    other.mkdir()
    if shutil.which("mount") and os.geteuid() == 0 and subprocess.run(
            ["mount", "--bind", str(archive), str(other)], capture_output=True).returncode == 0:
        try:
            for dst in (other, other / "sub"):
                proc = hlc("batch", archive, dst, "--no-progress", cwd=tmp_path)
                assert proc.returncode == 2 and "inside SRC" in proc.stderr, proc.stdout + proc.stderr
        finally:
            subprocess.run(["umount", str(other)], check=True)
    real = os.path.samefile
    monkeypatch.setattr(os.path, "samefile", lambda a, b: (os.path.realpath(a), os.path.realpath(b)) == (
        str(other.resolve()), str(archive.resolve())) or real(a, b))
    assert batch._inside(str(other), str(archive)) and batch._inside(str(other / "a" / "b"), str(archive))
    assert not batch._inside(str(tmp_path / "elsewhere"), str(archive))
    with pytest.raises(batch.UsageError, match="inside SRC"):
        batch.plan(str(archive), str(other / "sub"), "dicom")


def test_batch_reports_a_broken_link_and_passes_over_a_fifo(tmp_path, archive):
    """A symbolic link whose target is gone is listed as skipped, with its reason (it was
    passed over without a word); a FIFO is not a file to read and is left alone (opening
    it would wait for a writer)."""
    (archive / "gone.dcm").symlink_to(tmp_path / "nowhere.dcm")
    os.mkfifo(archive / "pipe.dcm")
    (archive / "broken.dcm").unlink()
    proc = hlc("batch", archive, "out", "--no-progress", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 converted" in proc.stdout and "gone.dcm" in proc.stdout and "a broken symbolic link" in proc.stdout
    assert "pipe.dcm" not in proc.stdout


def _terminal_signals() -> None:
    """In the child before exec: SIGINT, SIGTERM and SIGHUP as a terminal session has
    them. A test runner started in the background (``&`` ignores SIGINT) or under
    ``nohup`` (SIGHUP) would otherwise hand the batch signals it rightly keeps ignoring."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def gated_batch(args: list, cwd: Path, gated: str, **kw) -> subprocess.Popen:
    """``hlc batch ARGS`` whose worker holds the input named ``gated`` (with a partial
    output beside it) for as long as the test runs: it cannot finish before a signal
    (tests/batch_gate.py)."""
    env = hlc_env()
    env["PYTHONPATH"] = str(TESTS)  # batch_gate; the package itself as installed
    env.update(HLC_TEST_GATED=gated, HLC_TEST_GATE=str(cwd / "gate-never-opened"))
    code = "import sys, batch_gate; sys.exit(batch_gate.main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, "batch", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_terminal_signals, **kw)


def wait_for(condition, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.02)


def test_batch_interrupted_then_resumed_finishes_with_whole_files_only(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        shutil.copy(data_file(CT), src / f"ct{i:02d}.dcm")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".ct05.dcm.x1y2z3{TEMP_SUFFIX}"   # left by a run killed earlier
    stale.write_bytes(b"half a file")
    args = [src, out, "--workers", "1", "--bpp", "1", "--roi", "auto", "--to", "hlc", "--no-progress"]
    # ct09 is held until the signal: the batch cannot have finished when it lands
    proc = gated_batch(args, tmp_path, "ct09.dcm", start_new_session=True)
    wait_for(lambda: list(out.glob("*.hlc")), proc)
    os.killpg(proc.pid, signal.SIGINT)                 # Ctrl-C: the whole process group
    stdout, _ = proc.communicate(timeout=HANG)
    assert proc.returncode == 130, stdout
    assert "interrupted" in stdout and "run the same command again" in stdout
    done = sorted(out.glob("*.hlc"))
    assert 1 <= len(done) < 10
    assert not partials(out)
    import codec_core

    for p in done:                                     # whatever exists is complete
        codec_core.decode(p.read_bytes())
    again = hlc("batch", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(done)} already done" in again.stdout
    assert len(list(out.glob("*.hlc"))) == 10 and not partials(out)


def _processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, start time); psutil if installed, else /proc."""
    try:
        import psutil
    except ImportError:
        table = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue                           # ended meanwhile
                if fields[0] != "Z":                   # a zombie has ended
                    table[int(entry.name)] = (int(fields[1]), fields[19])
        return table
    return {p.pid: (p.info["ppid"], str(p.info["create_time"]))
            for p in psutil.process_iter(["ppid", "create_time", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE}


def descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process whose parent chain includes ``pid``."""
    table = _processes()
    found, parents = set(), {pid}
    while True:
        new = {(p, start) for p, (ppid, start) in table.items() if ppid in parents} - found
        if not new:
            return found
        found |= new
        parents = {p for p, _ in new}


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_kill_ends_the_workers_and_writes_the_summary_and_report(tmp_path, sig, status):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(6):
        shutil.copy(data_file(CT), src / f"ct{i}.dcm")
    shutil.copy(data_file(CT), src / "a_held.dcm")     # first in line: a worker holds it
    before = tree_digest(src)
    proc = gated_batch([src, out, "--workers", "2", "--no-progress", "--json", "report.json"], tmp_path,
                       "a_held.dcm")
    wait_for(lambda: list(out.glob("*.dcm")) and partials(out), proc)
    children = descendants(proc.pid)                   # the two workers (and multiprocessing's tracker)
    assert len(children) >= 2, children
    os.kill(proc.pid, sig)                             # the main process only, as `kill PID` does
    stdout, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == status, stdout + stderr
    assert f"interrupted ({sig.name}): run the same command again" in stdout, stdout
    assert re.search(r"^\d+ of 7 files: \d+ converted", stdout, re.M), stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] and report["signal"] == sig.name
    def left() -> set[tuple[int, str]]:
        return children & {(p, start) for p, (_, start) in _processes().items()}

    deadline = time.monotonic() + 10                   # nothing left running (the tracker
    while left() and time.monotonic() < deadline:      # ends when its pipe closes)
        time.sleep(0.05)
    assert not left() and not descendants(proc.pid), left()
    assert not partials(out)                           # the held worker's partial output too
    assert tree_digest(src) == before                  # originals untouched
    done = sorted(out.glob("*.dcm"))
    assert 1 <= len(done) < 7 and not (out / "a_held.dcm").exists()
    for p in done:                                     # whatever exists is complete
        assert np.array_equal(dicom_pixels(p), dicom_pixels(src / p.name)), p.name
    reported = {Path(r["dst"]).name for r in report["results"] if r["status"] == "converted"}
    assert reported <= {p.name for p in done}


def test_a_signal_ignored_when_the_batch_starts_stays_ignored():
    # `nohup hlc batch ...` ignores SIGHUP: a hang-up must not stop that batch
    from codec_core.cli.batch import stop_signals

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, before)


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
    from codec_core.cli.batch import verify_output

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
    assert "differs" in verify_output(str(path), img, {"mode": "lossless"})[0]


def test_verify_output_checks_the_bounds_asked_not_the_coder_kept(tmp_path):
    """The encoder may keep a lossless or near-lossless stream where a lossy or hybrid one
    was asked for: it keeps every promise, so it passes; a stream that breaks one fails."""
    from codec_core.cli.batch import verify_output

    import codec_core

    img = dicom_pixels(data_file(MR))
    path = tmp_path / "mr.hlc"
    hybrid = {"mode": "lossy", "bpp": 0.75, "roi": "auto", "roi_max_error": 0}
    path.write_bytes(codec_core.encode(img, mode="lossless"))
    for options in (hybrid, {"mode": "lossy", "psnr": 40}, {"mode": "near-lossless", "max_error": 2},
                    {"mode": "lossless"}):
        assert verify_output(str(path), img, options)[0] == "", options
    path.write_bytes(codec_core.encode(img, mode="near-lossless", max_error=2))
    assert verify_output(str(path), img, {"mode": "lossy", "bpp": 0.75})[0] == ""
    assert "inside the ROI" in verify_output(str(path), img, hybrid)[0]  # no ROI kept exact
    assert verify_output(str(path), img, dict(hybrid, roi_max_error=2))[0] == ""
    path.write_bytes(codec_core.encode(img, mode="lossy", bpp=0.5))
    assert "exceeds --max-error" in verify_output(str(path), img, {"mode": "near-lossless", "max_error": 1})[0]


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


def test_batch_names_a_service_that_is_not_a_dask_scheduler(tmp_path, archive):
    """Something that answers at the address in another protocol (an HTTP server): the
    handshake read its reply as a dask message and numpy was asked for 3 EiB, which was
    reported as "out of memory". Now: what the address is not, and nothing written."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def answer():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        proc = hlc("batch", archive, "out", "--scheduler", f"tcp://127.0.0.1:{server.getsockname()[1]}",
                   "--no-progress", cwd=tmp_path, timeout=120)
    finally:
        server.close()
    assert proc.returncode == 1
    assert "did not answer as a dask scheduler" in proc.stderr and "out of memory" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.dcm"))
    # an address dask cannot parse is named as such (no service was asked)
    for bad, why in (("foo://127.0.0.1:8786", "unknown address scheme"), ("notaurl:abc", "invalid literal")):
        proc = hlc("batch", archive, "out", "--scheduler", bad, "--no-progress", cwd=tmp_path, timeout=120)
        assert proc.returncode == 1 and "is not a dask scheduler address" in proc.stderr and why in proc.stderr, \
            proc.stderr


# ------------------------------------------------------------------ every example shown to users

def batch_examples() -> list[str]:
    """Every ``hlc batch`` command line of ``hlc batch --help``, ``hlc --help`` and
    README.md, in that order (a new example is tested without a change here)."""
    from codec_core.cli.main import main

    texts = []
    for argv in (["batch", "--help"], ["--help"]):
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):
            main(argv)
        texts.append(shown.getvalue())
    texts.append((TESTS.parent / "README.md").read_text(encoding="utf-8"))
    lines = [m.split("#")[0].strip() for text in texts
             for m in re.findall(r"^\s*(hlc batch .*)$", text, re.M)]
    return list(dict.fromkeys(lines))


EXAMPLES = batch_examples()


def test_the_examples_are_found():
    assert len(EXAMPLES) >= 5, EXAMPLES
    assert "hlc batch in/ out/ --bpp 0.75 --roi auto --verify" in EXAMPLES


@pytest.fixture
def example_archive(archive: Path) -> Path:
    """The archive, with a 512 x 512 CT whose hybrid is not the lossless stream."""
    shutil.copy(data_file(UN), archive / "series" / "abdomen.dcm")
    return archive


EXAMPLE_IMAGES = GOOD + ("series/abdomen.dcm",)


@pytest.fixture(scope="module")
def dask_scheduler():
    import distributed

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONPATH", raising=False)   # the workers import the installed package
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            yield cluster.scheduler_address


def example_args(example: str, src: Path, dst: Path, request) -> list[str]:
    """The example's arguments with its SRC and DST replaced, and its scheduler address
    by a local cluster's."""
    args = shlex.split(example)[2:]
    args[:2] = [str(src), str(dst)]
    if "--scheduler" in args:
        args[args.index("--scheduler") + 1] = request.getfixturevalue("dask_scheduler")
    return args


def listed(stdout: str, title: str) -> list[str]:
    """The files the summary lists under ``title:``."""
    m = re.search(rf"^{title}:\n((?:  .*\n?)*)", stdout, re.M)
    return [line.split(":")[0].strip() for line in m.group(1).splitlines()] if m else []


def check_example_run(proc: subprocess.CompletedProcess, src: Path) -> None:
    """Exit status 1 from the broken input, the only file failed; the text file skipped."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [Path(p).name for p in listed(proc.stdout, "failed")] == ["broken.dcm"], proc.stdout
    assert [Path(p).name for p in listed(proc.stdout, "skipped")] == ["notes.txt"], proc.stdout
    assert "repaired" not in proc.stdout and "Traceback" not in proc.stderr


def check_outputs(args: list[str], src: Path, dst: Path) -> None:
    """Every image has its output, decoding within every bound the example asks."""
    from codec_core.cli.batch import output_name, verify_output
    from codec_core.cli.parser import build_parser, codec_options

    import codec_core

    parsed = build_parser().parse_args(["batch", *args])
    options = codec_options(parsed)
    if parsed.roi:
        options["roi"] = parsed.roi
    bound = {"lossless": 0, "near-lossless": options.get("max_error")}.get(options["mode"])
    for rel in EXAMPLE_IMAGES:
        out = dst / output_name(rel, parsed.to)
        original = dicom_pixels(src / rel)
        back = codec_core.decode(out.read_bytes()) if parsed.to == "hlc" else dicom_pixels(out)
        assert back.shape == original.shape and back.dtype == original.dtype, rel
        if bound is not None:
            assert np.abs(back.astype(int) - original).max() <= bound, rel
        assert verify_output(str(out), original, options)[0] == "", rel


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_batch_example_passes_as_written(tmp_path, example_archive, example, request):
    before = tree_digest(example_archive)
    args = example_args(example, example_archive, tmp_path / "out", request)
    proc = hlc("batch", *args, cwd=tmp_path, timeout=300)
    check_example_run(proc, example_archive)
    assert "6 files: 4 converted" in proc.stdout, proc.stdout
    check_outputs(args, example_archive, tmp_path / "out")
    assert tree_digest(example_archive) == before


def test_the_examples_in_turn_on_one_archive_keep_every_output(tmp_path, example_archive, request):
    """As a user going down the list: each run finds the outputs of the ones before,
    whatever coder made them; none is rejected, converted again or removed."""
    dst = tmp_path / "out"
    seen: set[Path] = set()
    for example in EXAMPLES:
        args = example_args(example, example_archive, dst, request)
        proc = hlc("batch", *args, cwd=tmp_path, timeout=300)
        check_example_run(proc, example_archive)
        outputs = {p for p in dst.rglob("*") if p.is_file()}
        assert seen <= outputs, (example, seen - outputs)
        seen = outputs
        if "--verify" in args:
            assert "4 verified" in proc.stdout or "4 converted" in proc.stdout, proc.stdout
        check_outputs(args, example_archive, dst)
