"""The compiled kernels built with AddressSanitizer and UndefinedBehaviorSanitizer, for fuzzing.

A fuzz campaign must see an out-of-bounds access or an overflow in the C kernels the
moment it happens, not as a wrong pixel later (or never). ``build()`` compiles
codec_core/_native/ with ``-fsanitize=address,undefined`` (every report fatal) into a
directory of its own; ``environment()`` gives the environment a process needs to use
it (libasan preloaded, since the Python interpreter itself is not instrumented); and
``install()``, called by a fuzzing process before it imports codec_core, loads that
build as ``codec_core._hlc`` when the environment names one.

    python fuzz/sanitized.py             # build, print the directory

The normal install is never touched.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "codec_core" / "_native"
ENV = "HLC_SANITIZED_KERNELS"   # path of the sanitized extension module
# HLC_NO_BLOCK_CACHE: the decoder's block cache off (planedecode.c), so that every block
# is allocated at its exact size and freed when done: a reused block may be up to a
# quarter larger than asked, room where an overrun would go unseen
FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-std=c99", "-ffp-contract=off", "-fno-strict-aliasing",
         "-DHLC_NO_BLOCK_CACHE"]


def build(out_dir: str | None = None) -> Path:
    """Compile the sanitized kernels; returns the module's path."""
    out = Path(out_dir or tempfile.mkdtemp(prefix="hlc-sanitized-"))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"_hlc{sysconfig.get_config_var('EXT_SUFFIX')}"
    sources = sorted(str(p) for p in NATIVE.glob("*.c"))
    cmd = [os.environ.get("CC", "gcc"), *FLAGS, "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
           f"-I{NATIVE}", *sources, "-o", str(target), "-lm"]
    subprocess.run(cmd, check=True)
    return target


def environment(module: Path, base: dict | None = None) -> dict:
    """Environment for a process that loads the sanitized module (see :func:`install`)."""
    cc = os.environ.get("CC", "gcc")
    libasan = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=True).stdout.strip()
    env = dict(os.environ if base is None else base)
    env[ENV] = str(module)
    env["LD_PRELOAD"] = libasan
    # Python's own allocations are not leaks worth a report; any real report is fatal
    env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


def install() -> bool:
    """Load the module named by HLC_SANITIZED_KERNELS as codec_core._hlc (before codec_core's
    kernels are imported). Returns whether a sanitized build is in use."""
    path = os.environ.get(ENV)
    if not path:
        return False
    spec = importlib.util.spec_from_file_location("codec_core._hlc", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["codec_core._hlc"] = module
    return True


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else None).parent)
