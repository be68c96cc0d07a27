"""Stand-in for the compiled kernels, imported only where they were not built.

``codec_core._hlc`` is a C extension (codec_core/_native/, compiled by ``pip install``).
Python loads an extension module before a source file of the same name, so where the
extension exists this file is never read. Where it does not, this is what Python found:
most often the source checkout, on ``sys.path`` ahead of the installed package because
Python was started inside it. Without this file that gave a bare
``ModuleNotFoundError: No module named 'codec_core._hlc'``.
"""
from __future__ import annotations

import os
from typing import Any

raise ImportError(
    f"codec_core's compiled kernels (codec_core._hlc) are not built in {os.path.dirname(os.path.abspath(__file__))}. "
    "If that is the source checkout, Python is importing it instead of the installed package: run from another "
    "folder, or build the kernels in place (pip install -e ., or python setup.py build_ext --inplace).",
    name=__name__)


def __getattr__(name: str) -> Any:  # (for type checkers: the extension's names, untyped)
    raise AttributeError(name)
