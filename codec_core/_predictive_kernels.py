"""Predictive (DPCM) coder for lossless and near-lossless planes: its tables (the
compiled kernel ``code_plane`` is C, codec_core/_native/predictive.c).

One 2-D int32 plane is coded in raster order with the residual quantised in the
loop (step ``2k + 1``; ``k = 0`` is lossless), as in JPEG-LS / CALIC near-lossless:
every prediction and every context is computed from *reconstructed* samples, so
the decoder follows the encoder exactly and every sample ends within ``±k``.

Prediction
    A blend of six simple predictors (N, W, W+N-NW, W+NE-N, (N+NE)/2 and the
    LOCO-I median edge detector), each weighted by the inverse square of its
    absolute error summed over the causal neighbours W, N, NW, NE (the
    "blend" / JPEG XL weighted-predictor idea). The blend is corrected by the
    running mean of its error in a bias context (activity bucket x 4-bit
    texture pattern of N, W, NW, NE against the blend), as in CALIC.
    Everything is integer arithmetic (fixed point, a reciprocal table), so the
    decoder reproduces the encoder bit for bit on any machine.

Coding
    The quantised residual is zig-zag folded and coded as a hybrid-integer token
    with the adaptive range coder of :mod:`codec_core._kernels` in one of
    ``NACT`` contexts: the quantised log (half-octave steps) of a local activity,
    2 * (2|qW| + 2|qN| + |qNW| + |qNE| + |qWW|) + 2 * (|NE-N| + |N-NW| + |NW-W| +
    |W-WW| + |N-NN|) / (2k + 1), where q are the quantised residuals of the
    neighbours (so the contexts mean the same at every k).

Run mode
    Where the local gradients |NE-N|, |N-NW|, |NW-W| are all within ``k`` the
    coder codes the length of the run of samples equal to W within ``±k``
    (reconstructed as W), with a token of its own for "the run reaches the end
    of the row"; the sample that interrupts a run is coded against W or N as in
    JPEG-LS (two contexts). Run lengths use four contexts chosen by the length
    of the previous run.

Masked coding (hybrid ROI)
    With a non-empty ``mask`` (uint8, the plane's shape) only the samples where
    it is set are coded; every other sample is reconstructed as
    ``clip(base, vmin, vmax)`` (``base`` int32, known to both sides) and is an
    ordinary neighbour for later predictions. A skipped sample gets, as its
    |quantised residual| and as every predictor's error, the mean
    ``|rec - base|`` of the samples coded so far (updated once per row, in step
    units), so coded samples next to the base region see its uncertainty; it
    does not update the bias correction. The blend gains three base-guided
    predictors (the base B, B + (W - B_W), B + ((W - B_W) + (N - B_N)) / 2).
    Runs end where the mask ends ("reaches the end" means the end of the masked
    stretch of the row). A 0 x 0 mask means "code everything": the plain path,
    byte-identical to the coder without masks.

Safety: the decoder reads zeros past the end of its input (the primitives), all
decoded magnitudes are clamped before use, run lengths are clamped to the row
and every reconstruction is clipped to ``[vmin, vmax]``, so any byte string
decodes in bounded time without out-of-range indexing.
"""
from __future__ import annotations

import numpy as np

from ._hlc import code_plane  # noqa: F401  (the kernel; its constants below must match predictive.c)
from ._kernels import NCTX, new_models

# Context layout over two model groups (2 * NCTX contexts of the shared coder).
NACT = 32                 # activity contexts of regular mode: 0 .. NACT-1
CTX_RUN = NCTX            # 4 run-length contexts
NRUN = 4
CTX_RI = NCTX + NRUN      # 2 run-interruption contexts
GROUPS = 2


def new_plane_models():
    return new_models(GROUPS)


def _make_recip():
    # weight of a predictor whose (scaled) local error sum is s: 2^26 / (1 + s/4)^2.
    # With |samples| < 2^31 and a span <= 2^24 each predictor is below 2^33.1 in
    # fixed point, so the weighted sum of at most 9 stays below 2^62.2.
    s = np.arange(1024, dtype=np.float64)
    return np.maximum((float(1 << 26) / (1.0 + s / 4.0) ** 2).astype(np.int64), 1)


RECIP = _make_recip()
