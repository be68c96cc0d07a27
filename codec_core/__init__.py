"""HLC: a hybrid lossy/lossless wavelet codec for medical images.

>>> import codec_core as hlc
>>> data = hlc.encode(image, mode="lossless")      # doctest: +SKIP
>>> hlc.decode(data)                                # doctest: +SKIP

Importing this package is cheap: the compiled kernels (C, built at install) load on
first use, and the ROI models (onnxruntime, scikit-learn) only when ``roi="auto"`` is
asked for.
"""
from __future__ import annotations

from .api import MAX_PIXELS, decode, encode, info
from .container import MAGIC, MODES, VERSION
from .errors import (CorruptStreamError, DecompressionBombError, HlcError, NotHlcError,
                     TruncatedStreamError, UncorrectableError, UnsupportedStreamError)

__version__ = "0.1.0"
__all__ = [
    "encode", "decode", "info", "MAX_PIXELS", "MAGIC", "MODES", "VERSION",
    "HlcError", "NotHlcError", "CorruptStreamError", "TruncatedStreamError",
    "UncorrectableError", "UnsupportedStreamError", "DecompressionBombError",
]
