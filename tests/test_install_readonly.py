"""Read-only and multi-user installs: nothing is compiled or cached at run time.

The kernels are C, compiled when the package is installed (setup.py), so an install
that its user cannot write to (a container, a service account without a writable
HOME, a fresh dask worker) runs the codec at once: no compile pause, no cache, no
"cannot cache function" failure reported as a damaged stream (all seen with the
numba kernels this replaced).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import codec_core as hlc


def test_a_broken_kernel_import_is_not_reported_as_a_damaged_stream(monkeypatch):
    import builtins

    data = hlc.encode(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="lossy", bpp=2.0)
    real_import = builtins.__import__

    def no_kernels(name, *args, **kwargs):
        if name.endswith("_hlc") or (args and args[2] and "_kernels" in args[2]):
            raise ImportError("simulated: the compiled kernels are missing")
        return real_import(name, *args, **kwargs)

    import sys
    for mod in ("codec_core._kernels", "codec_core._predictive_kernels", "codec_core._hlc"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setattr(builtins, "__import__", no_kernels)
    with pytest.raises(ImportError, match="simulated"):
        hlc.decode(data)


# ------------------------------------------------- the unprivileged round trip

ROUND_TRIP = """
import multiprocessing, time, numpy as np, codec_core as hlc
assert codec_core_dir in hlc.__file__, hlc.__file__


def child(_):  # a fresh worker process (hlc batch, a dask worker): ready at once
    import codec_core as hlc
    x = np.arange(600, dtype=np.uint16).reshape(20, 30)
    return bool(np.array_equal(hlc.decode(hlc.encode(x)), x))


if __name__ == "__main__":
    rng = np.random.default_rng(1)
    img = (rng.normal(2000, 300, (48, 40)).clip(0, 4095)).astype(np.uint16)
    img[10:20, 5:30] += 800
    out = hlc.decode(hlc.encode(img))
    assert out.dtype == img.dtype and np.array_equal(out, img), "lossless not exact"
    out = hlc.decode(hlc.encode(img, mode="near-lossless", max_error=2))
    assert np.abs(out.astype(int) - img).max() <= 2, "near-lossless beyond its max error"
    mask = np.zeros(img.shape, bool)
    mask[8:24, 8:24] = True
    data = hlc.encode(img, mode="lossy", bpp=1.0, roi=mask)
    out = hlc.decode(data)
    assert out.shape == img.shape and np.array_equal(out[mask], img[mask]), "hybrid ROI not exact"
    assert hlc.info(hlc.encode(img, mode="lossy", bpp=0.5, ecc="low"))["lossy"]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.map(child, [0]) == [True]
    print("round trip ok")
"""


def _runnable() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root, to run the codec as the unprivileged user nobody"
    if not shutil.which("runuser"):
        return "runuser not found"
    try:
        import pwd
        pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        return "no user nobody"
    if not os.path.exists("/usr/bin/python3"):
        return "no /usr/bin/python3"
    probe = subprocess.run(["/usr/bin/python3", "-c", "import venv, ensurepip"], capture_output=True)
    if probe.returncode != 0:
        return "/usr/bin/python3 has no venv/ensurepip (Debian: apt-get install python3-venv)"
    return None


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


@pytest.mark.slow
def test_round_trip_as_unprivileged_user_against_a_read_only_install():
    """nobody, HOME not writable, the installed copy not writable: encode and decode
    work, in the process and in a freshly spawned worker, and nothing is written into
    the install. Skipped on a machine that cannot run it (not root, no runuser or no
    venv for /usr/bin/python3), except in CI (CI set), where it must run."""
    why_not = _runnable()
    if why_not is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the read-only install test cannot run in CI: {why_not}")
        pytest.skip(why_not)
    from conftest import _build_wheel

    # not pytest's tmp_path: it sits in a root-only (0700) directory that nobody cannot enter
    base = Path(tempfile.mkdtemp(prefix="hlc-readonly-"))
    try:
        base.chmod(0o755)
        venv = base / "venv"
        # Debian's own python: root's interpreter (pyenv, under /root) is out of nobody's reach;
        # the wheel is built by that python, as pip would on that machine
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(pip + [f"numpy=={np.__version__}", "setuptools>=77", "wheel"], check=True)
        wheel = _build_wheel(base / "dist", base, python=str(python))
        subprocess.run(pip + ["--no-deps", "--no-index", str(wheel)], check=True)
        shutil.rmtree(base / "src", ignore_errors=True)
        subprocess.run(["chmod", "-R", "a+rX,go-w", str(base)], check=True)
        site = Path(subprocess.run([str(python), "-c", "import codec_core, os; print(os.path.dirname("
                                    "codec_core.__file__))"], capture_output=True, text=True, check=True,
                                   cwd=base).stdout.strip())
        assert site.is_relative_to(venv), site
        before = _snapshot(venv)
        tmpdir = base / "tmp"
        tmpdir.mkdir()
        tmpdir.chmod(0o1777)
        script = tmpdir / "round_trip.py"  # a file: spawned workers re-import their parent's main
        script.write_text(f"codec_core_dir = {str(site)!r}\n" + ROUND_TRIP)
        script.chmod(0o644)
        env = ["env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", f"TMPDIR={tmpdir}", "LANG=C.UTF-8"]
        proc = subprocess.run(["runuser", "-u", "nobody", "--", *env, str(python), str(script)],
                              capture_output=True, text=True, cwd=base, timeout=600)
        assert proc.returncode == 0 and "round trip ok" in proc.stdout, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert _snapshot(venv) == before, "something was written into the read-only install"
        assert sorted(p.name for p in tmpdir.iterdir()) == ["round_trip.py"], "a cache was written"
    finally:
        shutil.rmtree(base, ignore_errors=True)
