"""How ``encode`` makes a stream from a checked image: the header, rate control, and
the choice between coders.

:func:`encode_image` is the internal entry point: :mod:`codec_core.api` calls it
once the arguments are checked, and the strategies below call it again for the
other coder they try (never the public ``encode``, which would check everything
anew). It sets up the header (tiling, levels, colour transform), codes the body in
the mode asked, and then, driven by two options:

* ``try_near_lossless`` (lossy without ROI, the *takeover*): first the exact stream
  (lossless mode's), returned when it fits the size asked for, or when it is smaller
  than the lossy stream made for the PSNR asked for: no error is the best answer to
  any target (:func:`lossless_if_fits`; judged on a sample first, so that an image far
  above the target is never coded whole). Else the near-lossless predictive coder at
  the max error k that meets the target, kept when it beats the 9/7 (a smaller
  error at the size asked for, or a smaller file at the PSNR asked for). Images with
  few distinct values or large flat areas (CT with padding, overlays, ultrasound)
  often code far better that way; the stream then says lossless, or near-lossless
  with its max error. At near-exact rates the 9/7 with a wider dead zone is tried
  too (:func:`wide_dead_zone_if_better`).
* ``whole_image_if_smaller`` (hybrid, :mod:`codec_core.regions`, which codes every
  hybrid as region layers): where the ROI covers most of an image, or the
  background is nearly as cheap to keep exact as to code lossy, coding the whole
  image within roi_max_error (lossless for 0) can be the smaller file. It keeps
  every promise of the hybrid (ROI within the error, background within it too), so
  it is kept then; the stream says lossless or near-lossless, and info() reports no
  ROI.

Rate control (:func:`encode_lossy`) searches the 9/7's base step for the size or
PSNR asked for.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import container as ct
from . import pipeline as pl
from . import predictive
from . import ratecontrol as rc
from ._kernels import med_residual
from .decoder import decode_frame
from .encoder import LossyCoder, Source, encode_reversible
from .format import (
    AXES,
    COLOUR_SAMPLES,
    FLAG_DENOISED,
    FLAG_VALUE_TABLE,
    ColourTransform,
    Mode,
    Transform,
)
from .options import PSNR_TOLERANCE, EncodeOptions
from .transform import synthesis_gains_97


@dataclass(frozen=True)
class CheckedImage:
    """An image the API has checked against the options, as the coders take it."""
    pixels: np.ndarray          # (frames, rows, cols, channels) view of the caller's array
    dtype: int                  # the header's dtype code
    bits_stored: int
    axes: str
    vmin: int
    vmax: int
    shape: tuple[int, ...]      # the caller's array's shape (an ROI mask broadcasts to it)


#: The size of the file a lossy layer's body ends up in, from the layer's header and
#: body (rate control aims this at the size asked for).
SizeOf = Callable[[ct.Header, list[bytes]], int]


def packed_size(h: ct.Header, body: list[bytes]) -> int:
    """A lossy stream's own size (:data:`SizeOf` of a plain stream)."""
    return len(ct.pack(h, body))


def encode_image(image: CheckedImage, opts: EncodeOptions, padding: bool = True, rdo: bool = True,
                 size_of: SizeOf = packed_size, coder: Callable[[Source], LossyCoder] | None = None) -> bytes:
    """The plain stream (no ECC wrapper) of ``image`` with ``opts``. Lossy mode may keep
    flat padding exact (``padding``: :func:`regions.encode_padded`; never inside a
    region stream's own layers) and quantises by RDO (``rdo``: :class:`RdoCoder`;
    a hybrid's layers keep the dead-zone quantiser its background search was made for).
    ``size_of``: what a ``bpp`` target counts (the padding path: the region stream
    its layer goes into, so that its rate control lands the whole file); ``coder``:
    the 9/7 layer's coder (default by ``rdo``; the padding path's counts the error of
    the pixels it keeps)."""
    h = new_header(image, opts)
    h.backup = True if opts.ecc is not None else None  # (None: the container's size rule)
    pixels = image.pixels
    if opts.preprocess == "denoise":
        pixels = _denoised(image)
        h.flags |= FLAG_DENOISED
    if opts.roi is not None:  # the hybrid: region layers (codec_core/regions.py)
        from .regions import encode_regions

        return encode_regions(image, opts, pixels, h)
    frames = pixels.shape[0]
    src = Source(image=pixels, header=h, threads=pl.auto_threads(h, frames) if opts.threads is None else opts.threads)
    # the takeover's exact stream, for plain lossy mode only (not a region stream's
    # layers, which come here with padding off): at a size, before any 9/7 is coded
    exact = padding and opts.coding_mode == Mode.LOSSY and opts.try_near_lossless
    if exact and opts.bpp is not None:
        fits = lossless_if_fits(image, opts, src, opts.bpp * h.rows * h.cols * h.frames / 8.0)
        if fits is not None:
            return fits
    padded = None
    if padding and opts.coding_mode == Mode.LOSSY:
        from .regions import encode_padded

        padded = encode_padded(image, opts, pixels, new_header(image, opts))
    if padded is not None:
        # the padding path's stream beat the plain 9/7's in each of the 10 encodes where
        # the comparison came down to those two (6 padded images at 0.25 / 0.5 / 1 bpp
        # and 45 dB; benchmarks/results/lossy_speed.md): the plain 9/7 is no longer
        # coded, the near-lossless coder on the whole image is tried against it
        near = near_lossless_vs_padded(src, padded, opts.bpp, opts.psnr) if opts.try_near_lossless else None
        return _exact_if_smaller(image, opts, src, near or padded[0]) if exact else near or padded[0]
    mode = opts.coding_mode
    if mode == Mode.LOSSLESS:
        chosen = pl.choose_value_table(pixels, image.vmin, image.vmax)
        if chosen is not None:
            src.table, h.value_table = chosen
            h.flags |= FLAG_VALUE_TABLE
        body = encode_reversible(src)
    elif mode == Mode.NEAR_LOSSLESS:
        assert opts.max_error is not None  # (the options require it)
        h.max_error = opts.max_error
        body = encode_reversible(src)
    else:
        body = encode_lossy(src, image, opts, coder or (RdoCoder if rdo else LossyCoder), size_of)
    stream = ct.pack(h, body)
    if mode == Mode.LOSSY and opts.try_near_lossless:
        near = near_lossless_if_better(src, stream, opts.bpp, opts.psnr, RdoCoder if rdo else LossyCoder)
        stream = near or (wide_dead_zone_if_better(image, opts, src, stream) if exact else stream)
    if mode == Mode.LOSSY:
        # the trials' freed heap memory given back before the caller goes on: the padding
        # path decodes this layer next (0.59x raw of 693_UNCR resident but free at its entry)
        pl.release_free_memory()
    return _exact_if_smaller(image, opts, src, stream) if exact else stream


def new_header(image: CheckedImage, opts: EncodeOptions) -> ct.Header:
    """The header before coding: geometry, tiles, levels, colour transform."""
    frames, rows, cols, ch = image.pixels.shape
    mode = opts.coding_mode
    tile = pl.TILE if opts.tile_size is None else opts.tile_size
    th = min(tile, rows)
    # short images get wide tiles of about the same area (a 1 x N signal is not
    # cut into thousands of 1 x 512 tiles); widths stay powers of two
    wide = tile * (1 << max(0, (tile // th).bit_length() - 1))
    tw = min(wide, cols)
    colour = ch == COLOUR_SAMPLES and mode != Mode.NEAR_LOSSLESS
    return ct.Header(mode=mode, dtype=image.dtype, bits_stored=image.bits_stored, axes=AXES.index(image.axes),
                     frames=frames, rows=rows, cols=cols, channels=ch, tile_rows=th, tile_cols=tw,
                     levels=pl.choose_levels(th, tw, mode) if opts.levels is None else opts.levels,
                     transform=Transform.DWT53, colour=ColourTransform.RCT if colour else ColourTransform.NONE,
                     max_error=0, vmin=image.vmin, vmax=image.vmax)


def _denoised(image: CheckedImage) -> np.ndarray:
    from .roi import denoise

    img, ch = image.pixels, image.pixels.shape[-1]
    den = [denoise(frame[..., 0] if ch == 1 else frame, bits_stored=image.bits_stored) for frame in img]
    return np.clip(np.stack(den).reshape(img.shape), image.vmin, image.vmax).astype(img.dtype)


# --------------------------------------------------------------------- rate control

class RdoCoder(LossyCoder):
    """The 9/7 layer quantised by RDO (quantize.rdo_levels)."""

    rdo = True


def encode_lossy(src: Source, image: CheckedImage, opts: EncodeOptions,
                 coder_type: Callable[[Source], LossyCoder] = LossyCoder,
                 size_of: SizeOf = packed_size) -> list[bytes]:
    """The 9/7 layer at the step that meets the target (a hybrid's ROI goes to
    codec_core/regions.py before this); a size target counts ``size_of``."""
    h = src.header
    h.transform = Transform.DWT97
    h.recon_offset = pl.quantize.RECON_OFFSET
    if h.colour == ColourTransform.RCT:
        h.channel_mult = list(pl.quantize.RCT_CHANNEL_MULT)
    coder = coder_type(src)
    span = max(1, h.vmax - h.vmin)
    start = span / 64.0
    # the finest step the search may try: the largest magnitude the 9/7 sees is a
    # sample's, or a colour difference (B - G, R - G) of up to the span
    peak = max(abs(h.vmin), abs(h.vmax), span if h.colour == ColourTransform.RCT else 0)
    floor = pl.quantize.step_floor(h.levels, peak)
    # one pass: statistics, a model, one coding (ratecontrol); the step search if it misses
    rates = RateModel(coder)
    hi = max(2.0 * floor, 1024.0 * max(peak, 1))
    body = (_one_pass_size(coder, rates, opts.bpp, floor, hi, size_of, start) if opts.bpp is not None
            else _one_pass_quality(coder, rates, opts.psnr, floor, hi, start))  # type: ignore[arg-type]
    del rates  # (a model built for a last step is not kept under the step search's codings)
    if body is not None:
        return body
    if opts.bpp is not None:
        return _search_size(coder, opts.bpp, start, floor, size_of)
    assert opts.psnr is not None  # (lossy options have exactly one target)
    return _search_quality(coder, opts.psnr, start, floor)


class RateModel:
    """The rate model (ratecontrol.Model) of ``coder``'s layer, built when asked and
    dropped while the layer is coded: its packed cells (0.45x the raw image on the
    padded 512^2 CT) are then not alive beside the coding's float bands and the
    padding path's filled image, where the lossy encode's memory peaks. A step that
    needs the model after a coding builds it again: the same statistics of the same
    layer give the same model, so the same steps and bytes (on the corpus only after
    the first coding's miss, whose slope is taken before it: 2 of 33 encodes of
    bench_codecs.py's images at 0.25 / 0.5 / 1 bpp asked again)."""

    def __init__(self, coder: LossyCoder) -> None:
        self.coder = coder
        self._model: rc.Model | None = None

    def get(self) -> rc.Model:
        if self._model is None:
            h = self.coder.h
            pl.release_free_memory()  # (the fills and masks before it leave freed heap memory resident)
            stats = rc.gather(self.coder.bands, pl.planes(h), h.levels, h.channels)
            self._model = rc.Model(stats, h.levels, h.channel_mult, h.frames * h.rows * h.cols * h.channels)
            del stats
            pl.release_free_memory()  # (the statistics' per-tile cells, merged and packed: freed)
        return self._model

    def drop(self) -> None:
        """Free the model's cells (before a coding; ``get`` builds it again)."""
        self._model = None


#: Codings the one-pass rate control may make before the step search takes over
#: (the first at the model's step; each further one only after a miss, at a step from
#: the model corrected by the coded sizes, or interpolated between two of them).
ONE_PASS_TRIES = 6
#: Bytes a coded segment costs beyond its symbols (flush bytes, length varint).
SEGMENT_BYTES = 6
#: Size asked for within (1 - SIZE_TOLERANCE) .. 1 of the target (issue 18: +-3%).
SIZE_TOLERANCE = 0.03


def _one_pass_size(coder: LossyCoder, rates: RateModel, bpp: float, floor: float, hi: float,
                   size_of: SizeOf = packed_size, start: float | None = None) -> list[bytes] | None:
    """The body at the step the model gives for ``bpp`` (solved from ``start``), coded
    again only while the file misses the window [1 - SIZE_TOLERANCE, 1] x the target.
    Returns the largest fitting body tried, or None if none fits (then the search decides)."""
    h = coder.h
    target = bpp * h.rows * h.cols * h.frames / 8.0
    aim = (1 - SIZE_TOLERANCE / 2) * target
    count = ct.segment_layout(h).count
    # the header, and per segment the range coder's 5 flush bytes and its length varint
    overhead = size_of(h, [b"x"] * count) - count + SEGMENT_BYTES * count
    tried: list = []              # (step, file size)
    best: tuple = (0, None, 0.0)  # (size, body, step) of the largest file that fits
    model = rates.get()
    step = rc.solve(model.bits, max(8.0, aim - overhead) * 8 / rc.KAPPA, floor, hi, start=start)
    # the model's slope at the first step, which a first miss asks for, taken before
    # the model is dropped for the coding (a later miss builds the model again)
    slopes = {step: model.elasticity(step)}
    del model
    for _ in range(ONE_PASS_TRIES):
        h.steps = pl.quantize.subband_steps(step, h.levels)
        rates.drop()
        body = coder.encode(h.steps)
        n = size_of(h, body)
        tried.append((step, n))
        if best[0] < n <= target:
            best = (n, body, step)
        if (1 - SIZE_TOLERANCE) * target <= n <= target:
            break
        # what the step does not move: the header, and per segment its flush bytes and
        # length (on a 64^2 image at 0.25 bpp half the file)
        overhead = n - sum(max(0, len(seg) - SEGMENT_BYTES) for seg in body)
        # the model's elasticity (d log rate / d log step) from the coded size: the
        # model is right about the slope where it is off in level (the slope of the last
        # two codings did worse: 2.10 codings per encode against 2.07 on held-out images)
        step = _between(tried, aim) or min(hi, max(floor, step * math.exp(
            math.log(max(8.0, aim - overhead) / max(1.0, n - overhead))
            / (slopes[step] if step in slopes else rates.get().elasticity(step)))))
    if best[1] is None:
        return None
    h.steps = pl.quantize.subband_steps(best[2], h.levels)
    return best[1]


def _between(tried: list, aim: float) -> float | None:
    """The step where log size crosses log ``aim`` between the nearest tried steps
    on either side of it (sizes fall as steps grow), or None without a bracket."""
    below = [(s, n) for s, n in tried if n <= aim]
    above = [(s, n) for s, n in tried if n > aim]
    if not below or not above:
        return None
    (s0, n0), (s1, n1) = max(above, key=lambda p: p[0]), min(below, key=lambda p: p[0])
    if n0 == n1 or s0 >= s1:
        return math.sqrt(s0 * s1)
    frac = (math.log(n0) - math.log(aim)) / (math.log(n0) - math.log(n1))
    return math.exp(math.log(s0) + min(0.9, max(0.1, frac)) * (math.log(s1) - math.log(s0)))




def _one_pass_quality(coder: LossyCoder, rates: RateModel, psnr: float, floor: float,
                      hi: float, start: float | None = None) -> list[bytes] | None:
    """The body at the step the error model gives for ``psnr`` (solved from ``start``,
    then from the last step tried), checked on the real reconstruction (no coding) and
    corrected while it misses by more than PSNR_TOLERANCE; coded once. None if the
    tries run out (the search decides)."""
    h = coder.h
    peak2 = float(max(1, h.vmax - h.vmin)) ** 2
    h.psnr_target = float(psnr)
    model = rates.get()
    allowed = peak2 * model.samples / 10 ** ((psnr + PSNR_TOLERANCE / 2) / 10)
    ratio = 1.0
    for _ in range(ONE_PASS_TRIES):
        step = start = rc.solve(model.squared_error, allowed / ratio, floor, hi, increasing=True, start=start)
        steps = pl.quantize.subband_steps(step, h.levels)
        se = coder.squared_error(steps)
        got = 200.0 if se == 0 else 10 * math.log10(peak2 * model.samples / se)
        if psnr <= got <= psnr + PSNR_TOLERANCE or (got >= psnr and step >= hi / 2):
            h.steps = steps
            del model
            rates.drop()  # (not alive beside the coding's bands)
            return coder.encode(steps)
        ratio = max(1e-6, se) / max(1e-6, model.squared_error(step))
    return None


def _search_size(coder: LossyCoder, bpp: float, start: float, floor: float,
                 size_of: SizeOf = packed_size) -> list[bytes]:
    """The body of the finest step whose whole file fits ``bpp`` (the best answer seen,
    whichever step the search ends on): only that one coded body is kept."""
    h = coder.h
    target = bpp * h.rows * h.cols * h.frames / 8.0
    fit: list = [math.inf, None]  # the finest step that fits, and its body

    def size(step: float) -> float:
        h.steps = pl.quantize.subband_steps(step, h.levels)
        body = coder.encode(h.steps)
        n = size_of(h, body)  # the exact final size
        if n <= target and step < fit[0]:
            fit[:] = [step, body]
        return n

    step = pl.quantize.search_step(size, target, start, want_at_most=True, tolerance=0.005,
                                   log_value=True, floor=floor)
    if fit[1] is not None:
        step, body = fit
    else:  # the target is below the smallest possible file: the coarsest step tried
        body = coder.encode(pl.quantize.subband_steps(step, h.levels))
    h.steps = pl.quantize.subband_steps(step, h.levels)
    return body


def _search_quality(coder: LossyCoder, psnr: float, start: float, floor: float) -> list[bytes]:
    """The body of a step whose PSNR (peak max - min) meets ``psnr``."""
    h = coder.h
    peak2 = float(max(1, h.vmax - h.vmin)) ** 2
    n = h.frames * h.rows * h.cols * h.channels
    h.psnr_target = float(psnr)

    def quality(step: float) -> float:
        se = coder.squared_error(pl.quantize.subband_steps(step, h.levels))
        return 200.0 if se == 0 else 10 * math.log10(peak2 * n / se)

    step = pl.quantize.search_step(quality, float(psnr), start, want_at_most=False, tolerance=0.05,
                                   log_value=False, floor=floor)
    h.steps = pl.quantize.subband_steps(step, h.levels)
    return coder.encode(h.steps)


# --------------------------------------------------------------------- coder choice

class FloorCoder(RdoCoder):
    """The 9/7 layer with detail bands finer than a sample unit quantised by floor
    (rounding 0: JPEG 2000's dead zone, twice the step), not the dead zone's 0.35."""

    rounding = 0.0


def wide_dead_zone_if_better(image: CheckedImage, opts: EncodeOptions, src: Source, stream: bytes) -> bytes:
    """Where every detail step of the 9/7 stream ``stream`` is below one sample unit
    (near-exact rates), the 9/7 by :class:`FloorCoder` if it does better (a smaller
    error at the size asked for, a smaller file at the PSNR asked for); else ``stream``.

    There the decoder's rounding to integers takes back every error below half a unit,
    and what sets the PSNR is how far the errors reach beyond it: a wide dead zone
    spends no bits on the many small coefficients of a smooth image and leaves more
    for a finer step (NM at 0.25 bpp, held out: +2 dB), but at finer steps still it
    costs more than it saves (the same image at 1 bpp: -4.7 dB). Both are measured."""
    h = src.header
    finest = max(h.steps[1:], default=math.inf) * max(h.channel_mult or [1.0])
    if finest >= 1.0 or opts.bpp is None and opts.psnr is None:
        return stream
    other = encode_image(image, replace(opts, try_near_lossless=False), padding=False, coder=FloorCoder)
    if opts.psnr is not None:
        return other if len(other) < len(stream) else stream
    return other if _squared_error(other, src) < _squared_error(stream, src) else stream


#: The takeover codes a whole image with another coder only when a sample of it,
#: coded that way, is within this factor of the size that coder must beat
#: (:func:`unlikely`, :func:`lossless_if_fits`).
JUDGE_MARGIN = 1.3
#: Side of the sample blocks the takeover judges an image on.
JUDGE_BLOCK = 64
#: The first, cheaper judge of the exact stream: the order-0 entropy of the MED
#: residuals of blocks half as wide (as :func:`_lossless_estimate` takes them), which
#: came to 0.79 to 1.60 x the real lossless size on the dev images of bench_lossy.py
#: (0.02 x on a LUT image, whose few values the lossless coder's runs code far below
#: it): an image whose entropy is beyond twice JUDGE_MARGIN x the target is judged
#: out by it alone (its exact stream is then over 1.6 x the target).
ENTROPY_MARGIN = 2 * JUDGE_MARGIN


def lossless_if_fits(image: CheckedImage, opts: EncodeOptions, src: Source, limit: float) -> bytes | None:
    """The exact stream (lossless mode's, same tiling and ECC) of a lossy request, if
    it is at most ``limit`` bytes; else None. Coded whole only when the sample blocks
    say it may fit: their order-0 entropy within ENTROPY_MARGIN of ``limit`` (~0.1 ms),
    then the predictive coder's bytes within JUDGE_MARGIN (~1 ms; :func:`_lossless_estimate`).
    Not with ``preprocess`` (the exact stream of a denoised image is no exact image)."""
    if opts.preprocess is not None or _lossless_estimate(src, JUDGE_BLOCK // 2, _entropy_bytes) > \
            ENTROPY_MARGIN * limit or _lossless_estimate(src, JUDGE_BLOCK, _coded_bytes) > JUDGE_MARGIN * limit:
        return None
    stream = encode_image(image, replace(opts, mode="lossless", bpp=None, psnr=None))
    return stream if len(stream) <= limit else None


def _exact_if_smaller(image: CheckedImage, opts: EncodeOptions, src: Source, stream: bytes) -> bytes:
    """A lossy stream made for a PSNR, or the exact stream if that is the smaller file;
    a stream made for a size is already the takeover's answer (the exact stream did
    not fit it)."""
    if opts.psnr is None:
        return stream
    return lossless_if_fits(image, opts, src, len(stream) - 1) or stream


def _starts(length: int, n: int, side: int) -> list[int]:
    """The first rows (or columns) of ``n`` blocks of ``side`` spread evenly over
    ``length``, each centred in its n-th of it, inside it."""
    return [min(max(0, (length * (2 * i + 1)) // (2 * n) - side // 2), length - side) for i in range(n)]


def _lossless_estimate(src: Source, side: int, measure: Callable[[np.ndarray], float]) -> float:
    """The bytes the lossless coder is likely to need for the image, by ``measure``
    (bytes of one plane) of a ``side``-square block at the centre of each quadrant of
    the middle frame (as lossless mode's coder choice samples), per channel as lossless
    mode codes it (colour through the RCT), a block of a sparse histogram as the ranks
    of its own values (as a value table would; its own are fewer), scaled to the
    image. By the predictive coder (:func:`_coded_bytes`) 0.73 to 1.49 x the real size
    on the 21 images of bench_lossy.py, less on synthetic ones (the wavelet or a value
    table of the whole image may do better), and without the header: it errs on the
    side of coding the image whole."""
    h = src.header
    by, bx = min(h.rows, side), min(h.cols, side)
    boxes = {(y, y + by, x, x + bx) for y in _starts(h.rows, 2, by) for x in _starts(h.cols, 2, bx)}
    total = 0.0
    for box in sorted(boxes):
        for c in range(h.channels):
            plane = src.coded_plane(h.frames // 2, box, c)
            lo, hi = int(plane.min()), int(plane.max())
            if h.channels == 1 and hi - lo < 1 << 16:
                used = np.bincount((plane - lo).ravel(), minlength=hi - lo + 1) > 0
                if used.sum() < 0.9 * used.size:
                    plane = (np.cumsum(used, dtype=np.int32) - 1)[plane - lo]
            total += measure(plane)
    return total * h.frames * h.rows * h.cols / (len(boxes) * by * bx)


def _coded_bytes(plane: np.ndarray) -> float:
    """Bytes of a plane by the lossless predictive coder."""
    return len(predictive.encode_plane(plane, 0, int(plane.min()), int(plane.max())))


def _entropy_bytes(plane: np.ndarray) -> float:
    """Bytes of the order-0 entropy of a plane's MED (LOCO-I) residuals."""
    r = med_residual(plane)
    p = np.bincount((r - r.min()).ravel()) / r.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) * r.size / 8.0


def _k_near(mse: float) -> int:
    """The max error whose quantisation error matches ``mse``: errors within +-k,
    spread about evenly, have a mean square near k(k+1)/3."""
    return min(65535, max(1, math.ceil(math.sqrt(3 * mse))))


class _NearLosslessStreams:
    """Near-lossless streams of a lossy source's image, coded once per max error."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.coded: dict[int, bytes] = {}

    def __call__(self, k: int) -> bytes:
        if k not in self.coded:
            pl.release_free_memory()  # (the 9/7 trials before it leave freed heap memory resident)
            h0, src = self.src.header, self.src
            h = ct.Header(mode=Mode.NEAR_LOSSLESS, dtype=h0.dtype, bits_stored=h0.bits_stored, axes=h0.axes,
                          frames=h0.frames, rows=h0.rows, cols=h0.cols, channels=h0.channels,
                          tile_rows=h0.tile_rows, tile_cols=h0.tile_cols,
                          levels=pl.choose_levels(h0.tile_rows, h0.tile_cols), transform=Transform.DWT53,
                          colour=ColourTransform.NONE, max_error=k, vmin=h0.vmin, vmax=h0.vmax,
                          flags=h0.flags & FLAG_DENOISED, backup=h0.backup)
            self.coded[k] = ct.pack(h, encode_reversible(Source(image=src.image, header=h, threads=src.threads)))
        return self.coded[k]


def near_lossless_if_better(src: Source, lossy: bytes, bpp: float | None, psnr: float | None,
                            coder_type: type[LossyCoder] = LossyCoder) -> bytes | None:
    """The near-lossless stream at the max error that meets the target, if it does
    better than the 9/7 stream ``lossy`` (made by a ``coder_type``); else None."""
    stream = _NearLosslessStreams(src)
    if bpp is not None:
        return _near_lossless_at_size(src, stream, bpp, coder_type(src))
    assert psnr is not None
    return _near_lossless_at_quality(src, stream, lossy, psnr)


def near_lossless_vs_padded(src: Source, padded: tuple[bytes, float], bpp: float | None,
                            psnr: float | None) -> bytes | None:
    """The near-lossless stream at the max error that meets the target, if it does
    better than the padding path's (regions.encode_padded: the stream and its squared
    error): at a size, a smaller error; at a PSNR, a smaller file. Else None."""
    stream = _NearLosslessStreams(src)
    if psnr is not None:
        return _near_lossless_at_quality(src, stream, padded[0], psnr)
    assert bpp is not None
    h0 = src.header
    target = bpp * h0.rows * h0.cols * h0.frames / 8.0
    # the k whose error matches the padding path's (as _near_lossless_at_size)
    hi = _k_near(padded[1] / (h0.frames * h0.rows * h0.cols * h0.channels))
    if unlikely(src, hi, bpp):
        return None
    lo = _smallest_fitting_k(stream, hi, target)
    return stream(lo) if lo is not None and _squared_error(stream(lo), src) < padded[1] else None


def _smallest_fitting_k(stream: Callable[[int], bytes], hi: int, target: float) -> int | None:
    """The smallest k in 1 .. hi whose near-lossless file fits ``target`` bytes (sizes
    fall as k grows), None if not even hi's does."""
    if len(stream(hi)) > target:
        return None
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if len(stream(mid)) <= target else (mid + 1, hi)
    return lo


def _near_lossless_at_size(src: Source, stream: Callable[[int], bytes], bpp: float,
                           coder: LossyCoder) -> bytes | None:
    """The smallest k that fits (sizes fall as k grows), if it fits at all, and if its
    error is below the 9/7's."""
    h0 = src.header
    target = bpp * h0.rows * h0.cols * h0.frames / 8.0
    # the 9/7's mean square error is below 0.42 base^2 (a coefficient zeroed by the
    # dead zone errs by at most 0.65 of its step), so no useful k exceeds ~1.13 base:
    # judge that k on a sample before spending a pass on the exact error
    base = h0.steps[0] * math.sqrt(synthesis_gains_97(h0.levels)[0])
    if unlikely(src, _k_near(0.42 * base * base), bpp):
        return None
    # then the k whose error matches the 9/7's, from up to 8 of its tiles
    every = pl.planes(h0)
    items = every[::-(-len(every) // 8)]
    px = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in (h0.tile_box(t) for _, t in items)) * h0.channels
    sample_se = coder.squared_error(h0.steps, items)
    hi = _k_near(sample_se / px)
    lo = None if unlikely(src, hi, bpp) else _smallest_fitting_k(stream, hi, target)
    if lo is None:
        return None
    # the exact error, tile by tile (the sample's where it took every tile: one trial fewer)
    lossy_se = sample_se if len(items) == len(every) else coder.squared_error(h0.steps)
    return stream(lo) if _squared_error(stream(lo), src) < lossy_se else None


def _near_lossless_at_quality(src: Source, stream: Callable[[int], bytes], lossy: bytes,
                              psnr: float) -> bytes | None:
    """The largest k that meets the PSNR (the error grows with k), if its file is the
    smaller: every k with k^2 within the allowed mean square does, and none much
    beyond _k_near is likely to."""
    h0 = src.header
    n = h0.frames * h0.rows * h0.cols * h0.channels
    allowed = float(max(1, h0.vmax - h0.vmin)) ** 2 * n / 10 ** (psnr / 10)
    lo, hi = int(math.isqrt(int(allowed / n))), min(65535, 2 * _k_near(allowed / n))
    lossy_bpp = 8.0 * len(lossy) / (h0.frames * h0.rows * h0.cols)
    if unlikely(src, hi, lossy_bpp) or len(stream(hi)) >= len(lossy):  # it cannot be the smaller file
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _squared_error(stream(mid), src) <= allowed else (lo, mid - 1)
    # lo may be the starting k, never coded if every k tried above it failed (k^2 <= the
    # allowed mean square meets the target by itself): stream() codes it then
    return stream(lo) if lo and len(stream(lo)) < len(lossy) else None


def unlikely(src: Source, k: int, bpp: float) -> bool:
    """Whether the near-lossless coder at max error k is plainly bigger than ``bpp``,
    judged on a 4 x 4 grid of 64 x 64 blocks spread over the middle frame (body and
    background alike) or, in a stack of smaller frames, on four frames spread over it,
    so that an image the 9/7 codes better is not coded whole a second time. A single
    small frame is not judged (coding it whole costs little)."""
    h, b = src.header, JUDGE_BLOCK
    if h.rows >= 8 * b and h.cols >= 8 * b:
        f = h.frames // 2
        ys, xs = _starts(h.rows, 4, b), _starts(h.cols, 4, b)
        sample = np.concatenate([np.concatenate([src.image[f, y:y + b, x:x + b] for x in xs], axis=1)
                                 for y in ys], axis=0)[None]
    elif h.frames >= 8:
        sample = src.image[[(h.frames * (2 * i + 1)) // 8 for i in range(4)]]
    else:
        return False
    axes = "ZYX" if h.channels == 1 else "ZYXC"
    checked = CheckedImage(pixels=sample, dtype=h.dtype, bits_stored=h.bits_stored, axes=axes,
                           vmin=int(sample.min()), vmax=int(sample.max()),
                           shape=sample.shape[:-1] if h.channels == 1 else sample.shape)
    data = encode_image(checked, EncodeOptions(mode="near-lossless", max_error=k, bits_stored=h.bits_stored,
                                               threads=1, axes=axes))
    return 8.0 * len(data) / (sample.shape[0] * sample.shape[1] * sample.shape[2]) > JUDGE_MARGIN * bpp


def _squared_error(stream: bytes, src: Source) -> float:
    """Sum of squared errors of a (near-lossless) stream against the source: decoded
    a frame at a time, compared in bands of rows (no image-sized float array)."""
    return sum(pl.squared_error(decode_frame(stream, f, src.threads), src.image[f])
               for f in range(src.header.frames))
