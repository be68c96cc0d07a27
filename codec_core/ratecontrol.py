"""One-pass rate control of the 9/7 layer: statistics, a rate and error model, the step.

Rate control used to search the base step by coding the whole image at each step
tried (4-7 passes of transform, quantisation and coding: 68-91% of lossy encode
time). Here the image is transformed once to gather statistics, the base step is
chosen from a model of the coder's rate (or of the decoder's error) at every step,
and the image is coded once; another pass only corrects a miss beyond the tolerance
(3% of the size asked for; +0 to +0.3 dB of the PSNR asked for).

Statistics, per (channel, subband): a 2-D histogram of each coefficient's magnitude
x (8 bins an octave) against its causal neighbourhood's magnitude
m = (3|W| + 3|N| + |NW| + |NE|) / 8 (4 bins an octave). The LL band, which the coder
codes as its median-edge-detector residual, contributes that residual instead. At a
step s the model quantises the bins as the quantiser does (dead zone for details,
rounding for LL), takes the band coder's tokens (values 0-7, then an exponent and
one bit, with raw low bits) in contexts of m / s (half-octave classes, the coder's
own activity classes are of the same kind), and charges the conditional entropy
of the tokens, the raw bits and a sign bit per nonzero value. The coder's adaptive
context models do a little better than that (and the header costs a little): the
ratio of coded to modelled bits, :data:`KAPPA`, sets the first guess; a miss is
corrected from the coded size and the model's slope there.
The squared error of a step is modelled from the magnitude histogram alone (each
band's error weighted by its synthesis energy gain) plus 1/12 per sample (the
decoder rounds to integers); the PSNR target is checked on the real reconstruction
before coding.

The histograms cost one transform per tile (compiled) and one compiled pass over
the coefficients (codec_core/_native/stats97.c; the numpy passes are kept as
BandStats.add_numpy, its reference); the model evaluates a step from per-bin tables
(tokens by magnitude bin, contexts by neighbourhood bin), every band in one compiled
call (stats97.c hlc_model_bits; Compact.bits is its numpy reference), and the step
solve brackets the target outward from a start step. The bands are not kept (keeping
them would cost 4 bytes a sample, over the 4x raw memory budget for 8-bit images), so
coding transforms again.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from . import quantize
from .transform import synthesis_gains_97

X_BINS = 8                  # magnitude bins per octave
M_BINS = 4                  # neighbourhood bins per octave
OCTAVES = 24                # +-24 octaves around 1
NX = 2 * OCTAVES * X_BINS + 2   # bin 0: exact zeros
NM = 2 * OCTAVES * M_BINS + 2
_EMPTY_CELLS = np.zeros(0, np.int32)
_EMPTY_COUNTS = np.zeros(0, np.float32)
#: Coded bits / modelled bits of the 9/7 layer at the model's first step (the model
#: charging the adaptive models' learning, the caller the header and SEGMENT_BYTES a
#: segment): the median over the dev images of benchmarks/bench_lossy.py at 0.25, 0.5
#: and 1 bpp, measured by ``python benchmarks/measure_kappa.py`` (lossy detail-band
#: coder lossyband.c: 0.938 dev, 0.928 held out; per encode 0.71-1.23, which is why
#: the first coding lands in the [-3%, 0] window only about one time in four; its
#: quiet-run variant, stop 26: 0.937 dev, 0.924 held out, per encode 0.71-1.24). Only
#: the first guess depends on it: later codings correct the model by the sizes coded.
#: Re-measure it with that command whenever the coder's bytes or the model change.
KAPPA = 0.94
#: Half-octave activity classes of m / s.
CONTEXTS = 14


def _bin(a: np.ndarray, per_octave: int, n: int) -> np.ndarray:
    """Log-spaced bin of each magnitude (0 for zeros), clipped to 1 .. n - 1, int32."""
    out = np.zeros(a.shape, np.int32)
    nz = a > 0
    v = np.log2(a[nz], dtype=np.float32)
    v *= per_octave
    np.floor(v, out=v)
    v += OCTAVES * per_octave + 1
    out[nz] = np.clip(v, 1, n - 1)
    return out


def _neighbourhood(mag: np.ndarray, above: np.ndarray) -> np.ndarray:
    """(3|W| + 3|N| + |NW| + |NE|) / 8 of rows of magnitudes ``mag`` whose row above
    is ``above`` (zeros above the band; 0 outside it)."""
    p = np.pad(np.concatenate([above[None], mag]), ((0, 0), (1, 1)))
    m = 3 * (p[1:, :-2] + p[:-1, 1:-1])
    m += p[:-1, :-2]
    m += p[:-1, 2:]
    m *= np.float32(1 / 8)
    return m


#: Rows of a band binned at a time: the temporaries stay a few hundred kB whatever the
#: tile (the statistics must not cost more memory than coding: issue 18, <= 4x raw).
STATS_ROWS = 32


def _med_residual(ll: np.ndarray) -> np.ndarray:
    """The float LL band minus its median-edge-detector prediction (as the coder's)."""
    p = np.pad(ll, ((1, 0), (1, 0)))
    w, n, nw = p[1:, :-1], p[:-1, 1:], p[:-1, :-1]
    lo, hi = np.minimum(w, n), np.maximum(w, n)
    pred = np.where(nw >= hi, lo, np.where(nw <= lo, hi, w + n - nw))
    return ll - pred


@dataclass
class BandStats:
    """Histograms of one (channel, subband) over every tile, as the keys of their
    nonzero cells (magnitude bin x NM + neighbourhood bin) and their counts."""
    gain: float                     # synthesis energy gain of the band
    is_ll: bool
    keys: list = field(default_factory=list)
    counts: list = field(default_factory=list)
    tiles: int = 0

    def add(self, band: np.ndarray) -> None:
        """Count one tile's band, in the compiled kernel (codec_core/_native/stats97.c:
        one pass; its cells in a hash table of a few times their number, or for a band
        of at least NX x NM coefficients in a dense int32 table of every pair of bins,
        no larger than the band: 300 kB was over the memory budget of small images)."""
        from ._hlc import stats97

        self.tiles += 1
        band = np.ascontiguousarray(band, np.float32)
        room = min(band.size, 4096)  # (the kernel says how many cells there are if more)
        while True:
            keys, counts = np.empty(room, np.int32), np.empty(room, np.int64)
            n = stats97(band, self.is_ll, keys, counts, X_BINS, M_BINS, OCTAVES)
            if n <= room:
                break
            room = n
        # the cells at their size, counts int32 (those of one tile's band fit: the kernel's
        # own are 32-bit): 8 bytes a cell held until the model packs them, not the 12 of
        # every slot of ``room`` (0.94x raw of a 512^2 16-bit image over its ten bands,
        # beside the plane: the statistics pass's peak; 0.5x now)
        self.keys.append(keys[:n].copy())
        self.counts.append(counts[:n].astype(np.int32))
        del keys, counts
        if len(self.keys) > 1:  # one list entry per band, whatever the number of tiles
            cells, count = self.cells()
            self.keys, self.counts = [cells], [count]

    def add_numpy(self, band: np.ndarray) -> None:
        """:meth:`add` by numpy array passes (the compiled kernel's reference)."""
        self.tiles += 1
        src = _med_residual(band) if self.is_ll else band
        above = np.zeros(band.shape[1], np.float32)
        for r in range(0, band.shape[0], STATS_ROWS):
            mag = np.abs(src[r:r + STATS_ROWS]).astype(np.float32)
            key = _bin(mag, X_BINS, NX) * NM
            key += _bin(_neighbourhood(mag, above), M_BINS, NM)
            cells, n = np.unique(key, return_counts=True)
            self.keys.append(cells)
            self.counts.append(n)
            above = mag[-1]
        cells, n = self.cells()  # one list entry per band, whatever the number of tiles
        self.keys, self.counts = [cells], [n]

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Every nonzero cell's key and count, summed over the tiles."""
        if not self.keys:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if len(self.keys) == 1:  # (one tile's cells: each key once already, as the kernel gives them)
            return self.keys[0], self.counts[0]
        cells, inverse = np.unique(np.concatenate(self.keys), return_inverse=True)
        return cells, np.bincount(inverse.ravel(), weights=np.concatenate(self.counts)).astype(np.int64)


def _centres(n: int, per_octave: int) -> np.ndarray:
    c = 2.0 ** ((np.arange(n) - OCTAVES * per_octave - 1 + 0.5) / per_octave)
    c[0] = 0.0
    return c


_XC = _centres(NX, X_BINS)
_MC = _centres(NM, M_BINS)


def _tokens(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The coder's token of each magnitude and the raw bits it sends."""
    e = np.floor(np.log2(np.maximum(q, 1))).astype(np.int64)
    second = (q >> np.maximum(e - 1, 0)) & 1
    big = q >= 8
    tok = np.where(big, 8 + 2 * (e - 3) + second, q)
    return tok, np.where(big, e - 1, 0)


def _contexts(step: float) -> np.ndarray:
    """The activity class of each neighbourhood bin at ``step``: half-octave classes of
    m / s, 1 .. CONTEXTS - 1 (0 for m = 0)."""
    ctx = np.zeros(NM, np.int64)
    m = _MC[1:]
    ctx[1:] = np.clip(np.floor(2 * np.log2(m / step)).astype(np.int64) + 8, 1, CONTEXTS - 1)
    return ctx


@dataclass
class Compact:
    """The nonzero cells of a band's joint histogram: 8 bytes a cell (their key and
    count; there are at most as many cells as coefficients, and far fewer in all but
    the smallest images), so the model held while coding stays small."""
    cells: np.ndarray               # int32 keys: magnitude bin x NM + neighbourhood bin
    n: np.ndarray                   # float32 counts
    gain: float
    is_ll: bool
    xmarg: np.ndarray               # counts by magnitude bin
    tiles: int                      # (frame, tile) planes the counts came from

    @classmethod
    def without_cells(cls, s: BandStats, cells: np.ndarray, n: np.ndarray) -> Compact:
        """The band's model of its cells (``s.cells()``) but for the cells themselves,
        which :class:`Model` packs with every band's."""
        return cls(_EMPTY_CELLS, _EMPTY_COUNTS, s.gain, s.is_ll,
                   np.bincount(cells // NM, weights=n, minlength=NX).astype(np.float64), max(1, s.tiles))

    @property
    def x(self) -> np.ndarray:
        return _XC[self.cells // NM]

    @property
    def m(self) -> np.ndarray:
        return _MC[self.cells % NM]

    def quantised(self, x: np.ndarray, step: float) -> np.ndarray:
        rounding = 0.5 if self.is_ll else quantize.DEADZONE_ROUNDING
        return np.floor(x / step + rounding).astype(np.int64)

    def bits(self, step: float) -> float:
        """Modelled bits of the band at ``step``."""
        if not self.n.size:
            return 0.0
        # tokens by magnitude bin and contexts by neighbourhood bin (a few hundred
        # values each), looked up per cell: no logarithm per cell (the same values)
        q_x = self.quantised(_XC, step)
        tok_x, raw_x = _tokens(q_x)
        xb, mb = np.divmod(self.cells, NM)
        tok = tok_x[xb]
        ntok = int(tok.max()) + 1
        table = np.bincount(_contexts(step)[mb] * ntok + tok, weights=self.n,
                            minlength=CONTEXTS * ntok).reshape(CONTEXTS, ntok)
        rows = np.repeat(table.sum(axis=1), ntok).reshape(CONTEXTS, ntok)
        used = table > 0
        t = table[used]
        h = -float((t * np.log2(t / rows[used])).sum())  # (no np.dot: no BLAS threads in rate control)
        # the adaptive models learn each context's distribution afresh in every tile:
        # (K - 1)/2 log2 N bits for K symbols seen N times (the universal-coding cost)
        per_tile = np.maximum(table.sum(axis=1) / self.tiles, 2.0)
        k = used.sum(axis=1)
        learn = self.tiles * float((np.maximum(k - 1, 0) / 2 * np.log2(per_tile)).sum())
        return h + learn + float((self.n.astype(np.float64) * (raw_x + (q_x > 0))[xb]).sum())

    def squared_error(self, step: float) -> float:
        """Modelled squared error the band adds to the image at ``step``."""
        if self.is_ll:
            return self.gain * float(self.xmarg.sum()) * step * step / 12.0
        q = self.quantised(_XC, step)
        rec = np.where(q > 0, (q + quantize.RECON_OFFSET) * step, 0.0)
        return self.gain * float(np.sum(self.xmarg * (_XC - rec) ** 2))


class Model:
    """Rate and error of the 9/7 layer at any base step, from :class:`BandStats`."""

    def __init__(self, stats: dict, levels: int, channel_mult: list, samples: int) -> None:
        """The model of ``stats`` ({(channel, band): BandStats}), whose cells it takes
        over: each band's are freed once packed."""
        self.levels = levels
        self.channel_mult = channel_mult
        self.samples = samples
        self._bits: dict = {}
        # every band's cells in one set of arrays (8 bytes a cell), filled band by band
        # as each BandStats gives its cells up: the compiled model (stats97.c
        # hlc_model_bits) evaluates all bands at a step in one call. The bands' own
        # Compact keep no cells (bits_numpy takes them from here): the model held
        # through the codings is the packed cells once, and its building never holds
        # more than them and the statistics not yet packed (a copy of each, a division
        # and a concatenation were 4x the cells on the 64^2 MR stack: its peak)
        # (BandStats.add keeps one entry of cells per band, its tiles merged)
        offsets = np.cumsum([0] + [st.keys[0].size if st.keys else 0 for st in stats.values()]).astype(np.int64)
        keys, counts = np.empty(int(offsets[-1]), np.int32), np.empty(int(offsets[-1]), np.float32)
        self.bands = {}
        for i, (key, st) in enumerate(stats.items()):
            cells, n = st.cells()
            st.keys, st.counts = [], []
            lo, hi = offsets[i], offsets[i + 1]
            np.floor_divide(cells, NM, out=keys[lo:hi], casting="unsafe")  # (the kernel's keys: no
            keys[lo:hi] <<= 16                                              # division per cell per evaluation)
            keys[lo:hi] |= (cells % NM).astype(np.int32)
            counts[lo:hi] = n
            self.bands[key] = Compact.without_cells(st, cells, n)
            del cells, n
        self._packed = (keys, counts, offsets)
        self._ll = np.array([b.is_ll for b in self.bands.values()], np.int64)
        self._tiles = np.array([b.tiles for b in self.bands.values()], np.int64)

    def _steps(self, base: float) -> dict:
        steps = quantize.subband_steps(base, self.levels)
        return {(c, b): quantize.channel_steps(steps, self.channel_mult, c)[b] for c, b in self.bands}

    def bits(self, base: float) -> float:
        """Modelled bits of the layer at ``base`` (every band's :meth:`Compact.bits`,
        in the compiled kernel: one call)."""
        from ._hlc import model_bits

        key = round(math.log2(base) * 1024)  # (steps are stored to 1/1024 of an octave or so)
        if key not in self._bits:
            steps = self._steps(base)
            keys, n, offsets = self._packed
            self._bits[key] = model_bits(keys, n, offsets, np.array([steps[k] for k in self.bands], np.float64),
                                         self._ll, self._tiles, _XC, _MC, CONTEXTS, quantize.DEADZONE_ROUNDING)
        return self._bits[key]

    def bits_numpy(self, base: float) -> float:
        """:meth:`bits` by numpy, band by band (the compiled model's reference), from
        the packed cells."""
        steps = self._steps(base)
        keys, n, offsets = self._packed
        cells = (keys >> 16) * NM + (keys & 0xFFFF)
        total = 0.0
        for i, (k, band) in enumerate(self.bands.items()):
            lo, hi = offsets[i], offsets[i + 1]
            total += replace(band, cells=cells[lo:hi], n=n[lo:hi].astype(np.float32)).bits(steps[k])
        return total

    def elasticity(self, base: float, span: float = 1.25) -> float:
        """d log bits / d log step about ``base`` (negative; -1 where the model is flat)."""
        lo, hi = self.bits(base / span), self.bits(base * span)
        if not (lo > 0 and hi > 0 and hi < lo):
            return -1.0
        return max(-4.0, min(-0.2, (math.log(hi) - math.log(lo)) / (2 * math.log(span))))

    def squared_error(self, base: float) -> float:
        steps = self._steps(base)
        return sum(band.squared_error(steps[key]) for key, band in self.bands.items()) + self.samples / 12.0


def gather(bands_of, items: list, levels: int, channels: int) -> dict:
    """Statistics of every (channel, band) over ``items``: ``bands_of(item, c)`` gives
    the float decomposition of channel c of one (frame, tile)."""
    gains = synthesis_gains_97(levels)
    flat_gains = [gains[0]] + [g for g3 in gains[1:] for g in g3]
    stats: dict = {}
    for item in items:
        for c in range(channels):
            bands = bands_of(item, c)
            flat = [bands[0]] + [b for lvl in bands[1:] for b in lvl]
            for b, band in enumerate(flat):
                if (c, b) not in stats:
                    stats[(c, b)] = BandStats(gain=flat_gains[b], is_ll=b == 0)
                stats[(c, b)].add(band)
            del bands, flat, band  # (the bands are views of one plane: the last one would keep it)
    return stats


def solve(f, target: float, lo: float, hi: float, increasing: bool = False, start: float | None = None) -> float:
    """The base step in [lo, hi] where ``f`` (decreasing in the step unless
    ``increasing``) meets ``target``: regula falsi (Illinois) on log f against log
    step, where the model is smooth, bracketed so it never does worse than bisection.
    From ``start`` the bracket is found outward (secant jumps of 2x to 64x in step),
    not from [lo, hi], whose coarse end codes nothing (log f = -inf: bisection until
    finite): 8.1 model evaluations per size encode against 11.0 over bench_lossy.py's
    63 (the elasticities of missed codings included). Stops within 0.5% of the target
    value or a bracket of 0.5% in step (the model's bins are 1/8 octave: it moves in
    steps of ~1% there, and is flat between; its first guess is ~5% off the coded size
    anyway)."""
    sign = 1.0 if increasing else -1.0

    def h(u: float) -> float:  # > 0: the step u is too large
        v = f(math.exp(u))
        return sign * (math.log(v) - math.log(target)) if v > 0 else -sign * math.inf

    if start is None:
        a, b = math.log(lo), math.log(hi)
        ha, hb = h(a), h(b)
    else:
        a, ha, b, hb = _bracket(h, math.log(min(hi, max(lo, start))), math.log(lo), math.log(hi))
    if ha >= 0:
        return math.exp(a)
    if hb <= 0:
        return math.exp(b)
    return _illinois(h, a, ha, b, hb)


def _bracket(h, u: float, ulo: float, uhi: float) -> tuple[float, float, float, float]:
    """(a, h(a), b, h(b)), a < b, with h changing sign between them (or an end of
    [ulo, uhi] reached on the side h asks for), stepping out from u."""
    hu, jump = h(u), math.log(4.0)
    while hu != 0:
        down = hu > 0  # the step is too large
        v = max(ulo, u - jump) if down else min(uhi, u + jump)
        hv = h(v)
        if (hv > 0) != down or hv == 0 or v in (ulo, uhi):
            return (v, hv, u, hu) if down else (u, hu, v, hv)
        # the secant's distance to the root, 1.5 x (it tends to fall short), 2x .. 64x in step
        est = abs((v - u) * hv / (hu - hv)) if math.isfinite(hu) and math.isfinite(hv) and hu != hv else 2 * jump
        u, hu, jump = v, hv, min(math.log(64.0), max(math.log(2.0), 1.5 * est))
    return u, hu, u, hu


def _illinois(h, a: float, ha: float, b: float, hb: float) -> float:
    """The root of h in [a, b] (ha < 0 < hb) by regula falsi, Illinois variant."""
    side = 0
    for _ in range(40):
        if b - a < 5e-3:
            break
        m = 0.5 * (a + b)
        if math.isfinite(ha) and math.isfinite(hb):  # the secant, kept off the ends
            m = min(b - 0.01 * (b - a), max(a + 0.01 * (b - a), b - hb * (b - a) / (hb - ha)))
        hm = h(m)
        if abs(hm) < 5e-3:  # (the model moves in steps of ~1% where the bins cross)
            return math.exp(m)
        if hm > 0:
            b, hb = m, hm
            ha, side = (ha / 2 if side == 1 else ha), 1   # Illinois: halve the stale end
        else:
            a, ha = m, hm
            hb, side = (hb / 2 if side == -1 else hb), -1
    return math.exp(0.5 * (a + b))
