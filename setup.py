"""Build hooks: the compiled kernels, and ``hlc_autoregister.pth`` at the top of the wheel.

Everything else about the package is declared in pyproject.toml.

* ``codec_core._hlc``: the entropy coders' kernels, in C (codec_core/_native/). They are
  compiled here, once, when the package is built or installed (gcc or clang and the
  Python headers); nothing is compiled or cached at run time. Only the buffer protocol
  is used, so the build needs no numpy.
* The ``.pth`` file lands in site-packages next to the packages; Python runs its single
  ``import`` line at start-up, which installs the lazy Pillow/pydicom registration hook
  described in ``hybrid_plugins/_startup.py``.
"""
from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PTH_NAME = "hlc_autoregister.pth"
PTH_SOURCE = os.path.join("hybrid_plugins", PTH_NAME)
NATIVE = os.path.join("codec_core", "_native")

KERNELS = Extension(
    "codec_core._hlc",
    sources=[os.path.join(NATIVE, name) for name in ("module.c", "bandcoder.c", "predictive.c")],
    depends=[os.path.join(NATIVE, name) for name in ("kernels.h", "rangecoder.h")],
    # -ffp-contract=off: the predictive blend's one float division must round the same
    # way on every machine (no fused multiply-add), so streams are identical everywhere
    extra_compile_args=["-O2", "-std=c99", "-ffp-contract=off", "-fno-strict-aliasing"],
    libraries=["m"],
)


# The lossy decoder's dequantisation and inverse 9/7 (issue 18): float32 operations in the
# numpy reference's order, so -ffp-contract=off above keeps them bit-identical to it.
KERNELS.sources.append(os.path.join(NATIVE, "wavelet97.c"))


class BuildPyWithStartupHook(build_py):
    """build_py that also copies the start-up ``.pth`` file to the wheel's root."""

    def run(self) -> None:
        super().run()
        self.copy_file(PTH_SOURCE, os.path.join(self.build_lib, PTH_NAME), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_NAME)]


setup(cmdclass={"build_py": BuildPyWithStartupHook}, ext_modules=[KERNELS])
