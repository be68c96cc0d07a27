"""Build hook: ship ``hlc_autoregister.pth`` at the top level of the wheel.

Everything else about the package is declared in pyproject.toml. The ``.pth`` file
lands in site-packages next to the packages; Python runs its single ``import`` line
at start-up, which installs the lazy Pillow/pydicom registration hook described in
``hybrid_plugins/_startup.py``.
"""
from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "hlc_autoregister.pth"
PTH_SOURCE = os.path.join("hybrid_plugins", PTH_NAME)


class BuildPyWithStartupHook(build_py):
    """build_py that also copies the start-up ``.pth`` file to the wheel's root."""

    def run(self) -> None:
        super().run()
        self.copy_file(PTH_SOURCE, os.path.join(self.build_lib, PTH_NAME), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_NAME)]


setup(cmdclass={"build_py": BuildPyWithStartupHook})
