"""HLC: a hybrid lossy/lossless wavelet codec for medical images.

>>> import codec_core as hlc
>>> data = hlc.encode(image, mode="lossless")      # doctest: +SKIP
>>> hlc.decode(data)                                # doctest: +SKIP

Importing this package is cheap: it loads the format's names and the errors only.
``encode``, ``decode``, ``info`` (and numpy with them) load on first use, through
the module ``__getattr__`` below, as do the compiled kernels (C, built at install)
and, only when ``roi="auto"`` is asked for, the ROI models (onnxruntime,
scikit-learn). So the Pillow and pydicom hooks, the numcodecs codec and ``hlc
--help`` can import :mod:`codec_core.format` and :mod:`codec_core.options` without
paying for the codec.
"""
from __future__ import annotations

from typing import Any

from .errors import (
    CorruptStreamError,
    DecompressionBombError,
    HlcError,
    NotHlcError,
    TruncatedStreamError,
    UncorrectableError,
    UnsupportedStreamError,
)
from .format import MAGIC, MODES, VERSION

__version__ = "0.1.0"
__all__ = [
    "encode", "decode", "info", "encode_with", "release_memory", "EncodeOptions", "MAX_PIXELS", "MAGIC", "MODES",
    "VERSION",
    "HlcError", "NotHlcError", "CorruptStreamError", "TruncatedStreamError",
    "UncorrectableError", "UnsupportedStreamError", "DecompressionBombError",
]

#: Names loaded on first use, and the module that has them.
_LAZY = {"encode": "api", "decode": "api", "info": "api", "encode_with": "api", "release_memory": "api",
         "MAX_PIXELS": "api", "EncodeOptions": "options"}
#: Submodules, also loaded when first named as attributes (``codec_core.api.MAX_PIXELS``).
_SUBMODULES = frozenset({"api", "cli", "container", "decoder", "ecc", "encoder", "entropy", "format", "metrics",
                         "options", "pipeline", "predictive", "quantize", "roi", "strategy", "transform"})


def __getattr__(name: str) -> Any:
    """``encode``, ``decode``, ``info``, ``encode_with``, ``release_memory``, ``MAX_PIXELS``,
    ``EncodeOptions`` and the submodules, imported when first used."""
    from importlib import import_module

    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    if name != "MAX_PIXELS":  # (the limit is read from codec_core.api, where decode reads it)
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
