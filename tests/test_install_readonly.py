"""Read-only and multi-user installs: the compiled-kernel cache never stops the codec.

numba's ``cache=True`` raised "cannot cache function ...: no locator available" when
neither the install nor HOME was writable (a container, a service account), and
decode then reported a valid stream as damaged. codec_core/_numba_cache.py decides
the cache location before numba loads the kernels: numba's own choice when it has
one, else a private directory under the temporary directory, else no cache.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import codec_core as hlc
from codec_core import _numba_cache as nc


# ------------------------------------------------------------------ unit tests

def test_private_cache_dir_is_made_for_this_user_only(tmp_path):
    path = nc.private_cache_dir(str(tmp_path))
    assert path == str(tmp_path / f"hlc-numba-cache-{os.getuid()}")
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
    assert nc.private_cache_dir(str(tmp_path)) == path  # an existing safe one is used again


def test_private_cache_dir_refuses_a_symlink(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / f"hlc-numba-cache-{os.getuid()}").symlink_to(target)
    assert nc.private_cache_dir(str(tmp_path)) is None


def test_private_cache_dir_refuses_a_directory_others_can_write(tmp_path):
    d = tmp_path / f"hlc-numba-cache-{os.getuid()}"
    d.mkdir()
    d.chmod(0o777)
    assert nc.private_cache_dir(str(tmp_path)) is None


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to make another user's dir")
def test_private_cache_dir_refuses_another_users_directory(tmp_path):
    d = tmp_path / f"hlc-numba-cache-{os.getuid()}"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    assert nc.private_cache_dir(str(tmp_path)) is None


@pytest.fixture
def numba_config(monkeypatch):
    """numba's cache setting and NUMBA_CACHE_DIR, restored after the test."""
    from numba.core import config
    monkeypatch.setattr(config, "CACHE_DIR", config.CACHE_DIR)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    return config


def test_an_explicit_numba_cache_dir_is_respected(tmp_path, monkeypatch, numba_config):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert nc.choose() is True
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")


def test_nothing_writable_falls_back_to_a_private_temporary_dir(tmp_path, monkeypatch, numba_config):
    monkeypatch.setattr(nc, "_numba_would_cache", lambda: False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert nc.choose() is True
    want = str(tmp_path / f"hlc-numba-cache-{os.getuid()}")
    assert os.environ["NUMBA_CACHE_DIR"] == want  # inherited by worker processes
    assert numba_config.CACHE_DIR == want          # and seen by numba, already imported


def test_no_safe_place_turns_caching_off(tmp_path, monkeypatch, numba_config):
    monkeypatch.setattr(nc, "_numba_would_cache", lambda: False)
    monkeypatch.setattr(nc, "private_cache_dir", lambda base=None: None)
    assert nc.choose() is False
    assert "NUMBA_CACHE_DIR" not in os.environ


def test_a_kernel_compile_failure_is_not_reported_as_a_damaged_stream(monkeypatch):
    from numba.core.errors import TypingError

    from codec_core import entropy
    data = hlc.encode(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="lossy", bpp=2.0)

    class Broken:
        def __getattr__(self, name):
            def fail(*args):
                raise TypingError("simulated compile failure")
            return fail

    monkeypatch.setattr(entropy, "_k", lambda: Broken())
    with pytest.raises(TypingError):
        hlc.decode(data)


# ------------------------------------------------- the unprivileged round trip

ROUND_TRIP = """
import os, sys, multiprocessing, numpy as np, codec_core as hlc
from hlc_cli.batch import compile_kernels_here
assert codec_core_dir in hlc.__file__, hlc.__file__


def child(_):  # a batch worker: started clean, it finds the cache through the environment
    import codec_core as hlc
    x = np.arange(600, dtype=np.uint16).reshape(20, 30)
    assert np.array_equal(hlc.decode(hlc.encode(x)), x)
    return os.environ.get("NUMBA_CACHE_DIR")


if __name__ == "__main__":
    compile_kernels_here()  # as hlc batch does before its workers start
    assert os.environ.get("NUMBA_CACHE_DIR") == cache_dir, os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir is not None:  # (without a cache the worker would only compile again)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.map(child, [0]) == [cache_dir]
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
    assert hlc.info(hlc.encode(img, mode="lossy", bpp=0.5))["lossy"]
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


@pytest.mark.slow
def test_round_trip_as_unprivileged_user_against_a_read_only_install():
    """nobody, HOME not writable, the installed copy not writable: encode and decode work,
    first with the kernels cached in a private temporary directory, then with no safe
    place to cache them at all (compiled in the process, no traceback either way).

    Skipped on a machine that cannot run it (not root, no runuser or no venv for
    /usr/bin/python3), except in CI (CI=true), where it must run."""
    why_not = _runnable()
    if why_not is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the read-only install test cannot run in CI: {why_not}")
        pytest.skip(why_not)
    from conftest import _build_wheel

    import numba

    # not pytest's tmp_path: it sits in a root-only (0700) directory that nobody cannot enter
    base = Path(tempfile.mkdtemp(prefix="hlc-readonly-"))
    try:
        base.chmod(0o755)
        wheel = _build_wheel(base / "dist", base)
        venv = base / "venv"
        # Debian's own python: root's interpreter (pyenv, under /root) is out of nobody's reach
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # only what codec_core needs, at the versions the tests run with
        subprocess.run(pip + [f"numpy=={np.__version__}", f"numba=={numba.__version__}"], check=True)
        subprocess.run(pip + ["--no-deps", "--no-index", str(wheel)], check=True)
        shutil.rmtree(base / "src", ignore_errors=True)
        subprocess.run(["chmod", "-R", "a+rX,go-w", str(base)], check=True)
        site = Path(subprocess.run([str(python), "-c", "import codec_core, os; print(os.path.dirname("
                                    "codec_core.__file__))"], capture_output=True, text=True, check=True,
                                   cwd=base).stdout.strip())
        assert site.is_relative_to(venv), site

        def run_as_nobody(tmpdir: Path, cache_dir: str | None) -> subprocess.CompletedProcess:
            script = tmpdir / "round_trip.py"  # a file: spawned workers re-import their parent's main
            script.write_text(f"codec_core_dir = {str(site)!r}\ncache_dir = {cache_dir!r}\n" + ROUND_TRIP)
            script.chmod(0o644)
            env = ["env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", f"TMPDIR={tmpdir}", "LANG=C.UTF-8"]
            return subprocess.run(["runuser", "-u", "nobody", "--", *env, str(python), str(script)],
                                  capture_output=True, text=True, cwd=base, timeout=900)

        # 1) a writable temporary directory: the kernels are cached there, privately
        tmp1 = base / "tmp1"
        tmp1.mkdir()
        tmp1.chmod(0o1777)
        proc = run_as_nobody(tmp1, str(tmp1 / "hlc-numba-cache-65534"))
        assert proc.returncode == 0 and "round trip ok" in proc.stdout, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        cache = tmp1 / "hlc-numba-cache-65534"
        st = cache.lstat()
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == 65534 and stat.S_IMODE(st.st_mode) == 0o700
        assert any(cache.rglob("*.nbi")), "no kernel was cached in the private directory"
        assert not any(site.rglob("*.nbi")), "numba wrote into the read-only install"

        # 2) the private directory's name taken by another user's directory: no cache at all
        tmp2 = base / "tmp2"
        tmp2.mkdir()
        tmp2.chmod(0o1777)
        (tmp2 / "hlc-numba-cache-65534").mkdir(mode=0o755)  # root's, so not trusted
        proc = run_as_nobody(tmp2, None)
        assert proc.returncode == 0 and "round trip ok" in proc.stdout, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert not any((tmp2 / "hlc-numba-cache-65534").iterdir())
        assert not any(site.rglob("*.nbi"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
