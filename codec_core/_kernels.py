"""The entropy coder's tables and state, and its compiled kernels (C, ``codec_core._hlc``).

One adaptive multi-symbol range coder (LZMA-style carry propagation, 32-bit range)
codes *tokens*; the low bits of large magnitudes and the signs go to a separate raw
bit stream, which costs nothing to model and is fast to read. Magnitudes are split
into tokens in the style of JPEG XL's hybrid integers: 0..7 are their own token;
larger values code their exponent and the bit below the leading one as the token,
and the remaining bits raw.

The coefficient coder (``encode_band`` / ``decode_band``), the LL band's median
prediction and the predictive plane coder are written in C (codec_core/_native/,
built when the package is installed): no compilation at run time, nothing cached,
the GIL released while they run. The C side keeps the constants below in
``rangecoder.h`` and ``kernels.h``; tests/test_kernels.py checks the two agree.
Kernels never index outside their buffers, whatever the input bytes: the decoder
reads zeros past the end of its input, and the encoder reports an overflow instead
of writing past its output buffer.
"""
from __future__ import annotations

import functools

import numpy as np

from ._hlc import (  # noqa: F401
    PLANE_BAD_LENGTH,
    code_plane,
    decode_band,
    decode_lossless_plane,
    decode_lossy_band,
    decode_lossy_plane,
    encode_band,
    encode_lossless_plane,
    encode_lossy_band,
    finish_encoder,
    parity,
    start_decoder,
)
from ._hlc import med_reconstruct as _med_reconstruct
from ._hlc import med_residual as _med_residual
from ._hlc import used_values as _used_values

# Token alphabet (hybrid integers): 8 direct values + 2 tokens per exponent 3..27.
DIRECT = 8
NSYM = DIRECT + 2 * 25
# Adaptive frequency model: increment per coded symbol and rescale limit.
INC = 32
LIMIT = 1 << 15
# Contexts per model group: activity buckets, plus run-length and run-interrupt.
NCTX_ACT = 36
CTX_RUN = NCTX_ACT
CTX_RUNI = NCTX_ACT + 1
NCTX = NCTX_ACT + 2
# Sign contexts: signs (-, 0, +) of the W and N neighbours.
NSIGN_CTX = 9

# Lossy detail bands (lossyband.c): LB_NBITS binary models (zero / one decisions,
# signs, quiet groups of four, quiet rows and runs) and LB_NREM hybrid-integer models of magnitude - 2.
LB_NBITS = 2 * 3 * 14 * 6 + 3 * 27 + 3 + 3 * 4 + 3 * 2 + 3
LB_NREM = 16
#: A binary model's starting state: probability 1/2 (of 2^16), nothing coded yet.
LB_HALF = 1 << 15

# Encoder state indices (int64 array of 8).
E_LOW, E_RANGE, E_CACHE, E_CSIZE, E_POS, E_ACC, E_NBITS, E_RAWPOS = range(8)
# Decoder state indices (int64 array of 8; the 8th is unused).
D_CODE, D_RANGE, D_POS, D_ACC, D_NBITS, D_RAWPOS, D_OVER = 0, 1, 2, 3, 4, 5, 6


def _prior() -> np.ndarray:
    """Initial counts per context: peaked at the token that the context's activity
    suggests (activity ~ 14x a typical magnitude, bucket ~ 2 log2 of it), so the
    first symbols of a context cost less than under a flat start."""
    tokens = np.arange(NSYM)
    prior = np.empty((NCTX, NSYM), np.int32)
    for c in range(NCTX):
        centre = max(0.0, (c - 4) / 2.0) if c < NCTX_ACT else 0.0
        prior[c] = np.maximum(1, (48 * 0.55 ** np.abs(tokens - centre)).astype(np.int32))
    return prior


_PRIOR = _prior()


@functools.cache
def _fresh_models(groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read-only starting models of ``groups`` groups (values and signs); every coder
    takes copies (building them anew cost 1.5-5% of coding time on the corpus, most
    of it for small segments)."""
    freq = np.tile(_PRIOR, (groups, 1))
    models = (freq, freq.sum(axis=1).astype(np.int32),
              np.ones((groups * NSIGN_CTX, 2), dtype=np.int32), np.full(groups * NSIGN_CTX, 2, dtype=np.int32))
    for a in models:
        a.flags.writeable = False
    return models


def new_models(groups: int) -> tuple[np.ndarray, np.ndarray]:
    freq, tot = _fresh_models(groups)[:2]
    return freq.copy(), tot.copy()


def new_sign_models(groups: int) -> tuple[np.ndarray, np.ndarray]:
    freq, tot = _fresh_models(groups)[2:]
    return freq.copy(), tot.copy()


@functools.cache
def _fresh_lossy_models() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read-only starting models of the lossy band coder: the remainder contexts take
    the activity priors of the band coder's first contexts."""
    freq = _PRIOR[:LB_NREM].copy()
    models = (freq, freq.sum(axis=1).astype(np.int32), np.full(LB_NBITS, LB_HALF, np.int32))
    for a in models:
        a.flags.writeable = False
    return models


@functools.cache
def fresh_plane_models() -> tuple[np.ndarray, ...]:
    """The starting models of a plane's segments, read only, for ``decode_lossy_plane``
    and (the first four) ``decode_lossless_plane``, which copy them for each segment: the
    band coder's of one group (freq, tot, sign freq, sign tot), then the lossy band
    coder's (freq, tot, bits)."""
    return _fresh_models(1) + _fresh_lossy_models()


def new_lossy_models() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh models of the lossy band coder (freq, tot, bits), one set per segment."""
    freq, tot, bits = _fresh_lossy_models()
    return freq.copy(), tot.copy(), bits.copy()


def new_encoder() -> np.ndarray:
    st = np.zeros(8, dtype=np.int64)
    st[E_RANGE] = 0xFFFFFFFF
    st[E_CSIZE] = 1
    return st


def med_residual(x: np.ndarray) -> np.ndarray:
    """LOCO-I median edge detector residual of a 2-D int32 array."""
    out = np.empty(x.shape, np.int32)
    _med_residual(np.ascontiguousarray(x, np.int32), out)
    return out


def med_reconstruct(e: np.ndarray) -> np.ndarray:
    """Inverse of :func:`med_residual` (bounded on damaged residuals)."""
    out = np.empty(e.shape, np.int32)
    _med_reconstruct(np.ascontiguousarray(e, np.int32), out)
    return out


def used_values(image: np.ndarray, vmin: int, vmax: int) -> np.ndarray:
    """Boolean flags of the values in vmin..vmax that occur in ``image`` (one pass,
    no temporary; a C-contiguous integer array of at most 32 bits, else numpy).
    Raises ValueError if a sample lies outside vmin..vmax."""
    used = np.zeros(vmax - vmin + 1, dtype=bool)
    if image.dtype.kind in "iu" and image.dtype.itemsize <= 4 and image.dtype != np.uint32 \
            and image.dtype.isnative and image.flags.c_contiguous:
        inside = _used_values(image, int(vmin), used.view(np.uint8))
    else:
        flat = image.reshape(-1)
        inside = True
        for i in range(0, flat.size, 1 << 16):  # 256 kB chunks: bounded memory
            chunk = flat[i:i + (1 << 16)].astype(np.int64) - vmin
            inside = inside and bool(((chunk >= 0) & (chunk < used.size)).all())
            used[chunk[(chunk >= 0) & (chunk < used.size)]] = True
    if not inside:
        raise ValueError(f"samples outside {vmin}..{vmax}")
    return used
