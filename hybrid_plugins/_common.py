"""Helpers shared by the adapters: lazy core import, dtype checks, chunk axes, error text.

Nothing here knows about a particular toolkit, and nothing here is codec logic: the
functions only translate array layouts and messages between the toolkits and
:mod:`codec_core`. The format's facts (signatures, sample types) come from
:mod:`codec_core.format`, which is cheap to import (no numpy, no codec).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codec_core.format import DTYPES as SUPPORTED_DTYPES
from codec_core.format import SIGNATURES as MAGICS

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SUPPORTED_DTYPES", "MAGICS", "core", "check_dtype", "as_frames", "describe_error"]


def core() -> Any:
    """Return :mod:`codec_core`, imported on first use so that toolkit imports stay light."""
    import codec_core

    return codec_core


def check_dtype(dtype: Any) -> None:
    """Raise ValueError unless `dtype` is one HLC stores (native byte order)."""
    import numpy as np

    dt = np.dtype(dtype)
    if dt.name not in SUPPORTED_DTYPES:
        raise ValueError(f"HLC cannot store dtype {dt.name!r}; supported dtypes are "
                         f"{', '.join(SUPPORTED_DTYPES)}")
    if dt.byteorder == ">" or (dt.byteorder == "=" and np.little_endian is False):
        raise ValueError(f"HLC stores little-endian integers; convert {dt.str!r} with "
                         "astype(dtype.newbyteorder('<')) first")


def as_frames(arr: np.ndarray, *, rgb: bool = False) -> tuple[np.ndarray, str]:
    """View an N-D chunk as 2-D, colour, or a stack of frames, with its `axes` string.

    The last two axes (three with `rgb`, the last being the 3 samples) are the image;
    all leading axes are flattened into frames. 0-D and 1-D chunks become one row.
    """
    import numpy as np

    arr = np.ascontiguousarray(arr)
    if rgb:
        if arr.ndim < 3 or arr.shape[-1] != 3:
            raise ValueError(f"rgb=True needs chunks whose last axis has 3 samples, got shape {arr.shape}")
        if arr.ndim == 3:
            return arr, "YXC"
        return arr.reshape((-1, *arr.shape[-3:])), "ZYXC"
    if arr.ndim < 2:
        return arr.reshape(1, -1), "YX"
    if arr.ndim == 2:
        return arr, "YX"
    return arr.reshape((-1, *arr.shape[-2:])), "ZYX"


# What went wrong, and what to do about it, for each stream error class.
_ADVICE = {
    "NotHlcError": "the data does not start with the HLC signature; it is not an HLC stream "
                   "(or was opened in text mode)",
    "TruncatedStreamError": "the stream ends early; re-copy or re-download the file",
    "UncorrectableError": "the damage exceeds what the Reed-Solomon parity can repair; "
                          "re-encode with a higher ecc level for unreliable channels",
    "CorruptStreamError": "a checksum or field does not match; the data were damaged in "
                          "storage or transfer",
    "UnsupportedStreamError": "the stream uses a newer format version; upgrade hlc-codec",
    "DecompressionBombError": "the header claims more pixels than the limit "
                              "(codec_core.MAX_PIXELS); raise it only for trusted files",
}


def describe_error(exc: BaseException) -> str:
    """One line saying what is wrong with a stream and what to do, for any HlcError."""
    advice = ""
    for cls in type(exc).__mro__:
        if cls.__name__ in _ADVICE:
            advice = _ADVICE[cls.__name__]
            break
    where = getattr(exc, "where", None)
    detail = f"{exc}" + (f" (at {where})" if where and str(where) not in str(exc) else "")
    return f"{detail}: {advice}" if advice else detail


def palette_refusal(photometric: Any, mode: Any, what: str, lossless: str) -> str | None:
    """Why a PALETTE COLOR image may be coded losslessly only (``what``: the image, for
    the message; ``lossless``: how the caller's user asks for lossless), or None: its
    pixels are indices into a colour table, so an error of 1 is another colour, not a
    nearby shade (OBXXXX1A at max_error 2: 8.7% of its pixels off by over a tenth of
    full scale). The command line and the pydicom plugin both refuse with this."""
    if mode == "lossless" or photometric != "PALETTE COLOR":
        return None
    return (f"{what} is PALETTE COLOR: its pixels are indices into a colour table, so any error changes "
            f"colours arbitrarily; use {lossless}")
