"""Shared fixtures.

``wheel_python``: the python of a throw-away venv into which the wheel built from this
checkout is installed. Its other packages (numpy, pydicom, zarr...) are those of the
Python running the tests, whether that is a system Python or itself a venv: a ``.pth``
file in the new venv lists the runner's site directories (after the venv's own, so the
wheel's copy of HLC wins). Tests that claim something about the *installed* package run
their code with it, in a fresh process, from a temporary working directory so that the
source tree cannot shadow the installed copy.

``wheel_run``: run a Python snippet with ``wheel_python`` and return the completed
process (stdout/stderr as text); fails the test with both streams on a non-zero exit.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The tests exercise the installed package (pip builds its compiled kernels). ``python -m
# pytest`` from the checkout puts the checkout first on sys.path, where the kernels are
# not built; take it off, so that an import finds the installed copy (an editable install
# finds the checkout through its own finder, kernels built in place).
sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != REPO]
try:
    import codec_core._hlc  # noqa: F401
except ImportError as exc:
    raise pytest.UsageError(f"codec_core is not installed with its compiled kernels ({exc}): run "
                            "python -m pip install '.[test]' first (or pip install -e '.[test]')") from None
# Never copied into the build tree: VCS data, build leftovers, caches.
_BUILD_IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                       ".pytest_cache", ".hypothesis", "*.pyc", ".venv*", "*.so")


def _build_wheel(out_dir: Path, work: Path, python: str = sys.executable) -> Path:
    """``pip wheel --no-deps`` of a copy of the checkout (keeps build/ out of the shared tree),
    built by ``python`` (the wheel holds the compiled kernels of that interpreter)."""
    source = work / "src"
    shutil.copytree(REPO, source, ignore=_BUILD_IGNORE)
    base = [python, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out_dir), str(source)]
    # Offline and fast when setuptools is installed; else let pip fetch the build requirements.
    for cmd in (base[:4] + ["--no-build-isolation"] + base[4:], base):
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode == 0:
            break
    else:
        pytest.fail(f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}")
    (wheel,) = out_dir.glob("hlc_codec-*.whl")
    return wheel


def _runner_site_dirs() -> list[str]:
    """The runner's site directories, in its own order (venv, then any base it shares)."""
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _share_runner_packages(python: Path) -> None:
    """Make the runner's installed packages importable in the venv of `python`.

    Plain path lines, not ``site.addsitedir``: the runner's own ``.pth`` files (an
    editable install of this checkout, its start-up hook) must not run in the venv.
    """
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_hlc_test_runner_packages.pth").write_text("\n".join(_runner_site_dirs()) + "\n")


@pytest.fixture(scope="session")
def wheel_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a venv python with the freshly built hlc-codec wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(work / "dist", work)
    venv = work / "venv"
    # Not --system-site-packages: from a venv runner that would expose the *base*
    # interpreter's packages, not the runner's.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _share_runner_packages(python)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall",
                    "--no-index", str(wheel)], check=True, cwd=work)
    # The venv's copy must win over any (editable) install of the checkout in the system.
    where = subprocess.run([str(python), "-c", "import codec_core, hybrid_plugins;"
                            "print(codec_core.__file__); print(hybrid_plugins.__file__)"],
                           capture_output=True, text=True, check=True, cwd=work).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    return str(python)


@pytest.fixture
def wheel_run(wheel_python: str, tmp_path: Path):
    """Run code with the installed wheel in a fresh process, cwd = a temporary directory."""

    def run(code: str, *, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HLC_NO_AUTOREGISTER")}
        full_env.update(env or {})
        proc = subprocess.run([wheel_python, "-c", textwrap.dedent(code)], cwd=tmp_path, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            pytest.fail(f"subprocess failed ({proc.returncode}):\n--- stdout\n{proc.stdout}\n"
                        f"--- stderr\n{proc.stderr}")
        return proc

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that builds and installs the wheel is slow (``-m "not slow"`` skips them)."""
    for item in items:
        if {"wheel_python", "wheel_run"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=[0, 1], ids=["baseline", "avx2"])
def vector_isa(request):
    """Each vector build of the compiled kernels (codec_core/_native/kernels.h:
    HLC_VECTOR_BUILDS: the baseline SSE2, and AVX2 where the processor has it, else the
    baseline again); the choice restored afterwards."""
    from codec_core import _hlc
    was = _hlc.vector_isa(-1)
    got = _hlc.vector_isa(request.param)
    yield got
    _hlc.vector_isa(int(was))
