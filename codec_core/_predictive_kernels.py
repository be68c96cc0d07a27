"""Compiled predictive (DPCM) coder for lossless and near-lossless planes (numba).

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

from ._numba_cache import CACHE  # before numba: where (and whether) kernels are cached
from numba import njit  # noqa: E402

from ._kernels import NCTX, _bitlen, _bucket, _d_uint, _e_uint, new_models

# Context layout over two model groups (2 * NCTX contexts of the shared coder).
NACT = 32                 # activity contexts of regular mode: 0 .. NACT-1
CTX_RUN = NCTX            # 4 run-length contexts
NRUN = 4
CTX_RI = NCTX + NRUN      # 2 run-interruption contexts
GROUPS = 2
# Bias correction: NACT activity buckets x 16 texture patterns.
NBIAS = NACT * 16
BIAS_RESET = 64
# Predictors in the blend.
NPRED = 6
NPRED_M = 9               # masked coding adds three base-guided predictors
FRAC = 2                  # fixed-point fraction bits of predictions
_MAXU = 1 << 30           # clamp for decoded folded residuals
_MAXPE = 1 << 28           # clamp of stored predictor errors (int32)
_MAXC = 1 << 20           # clamp of the bias correction (fixed point)


def new_plane_models():
    return new_models(GROUPS)


def _make_recip():
    # weight of a predictor whose (scaled) local error sum is s: 2^26 / (1 + s/4)^2.
    # With |samples| < 2^31 and a span <= 2^24 each predictor is below 2^33.1 in
    # fixed point, so the weighted sum of at most 9 stays below 2^62.2.
    s = np.arange(1024, dtype=np.float64)
    return np.maximum((float(1 << 26) / (1.0 + s / 4.0) ** 2).astype(np.int64), 1)


RECIP = _make_recip()


@njit(inline="always")
def _code(dec, E, D, out, rawout, inp, rawin, freq, tot, ctx, u):
    """Encode ``u`` (encoder) or decode a value (decoder); returns (E, D, value)."""
    if dec:
        D, v = _d_uint(D, inp, rawin, freq, tot, ctx)
        return E, D, (v if v < _MAXU else np.int64(_MAXU))
    E = _e_uint(E, out, rawout, freq, tot, ctx, u)
    return E, D, u


@njit(inline="always")
def _udiv(n, step, minv):
    # n // step for n >= 0: multiply by a 2^40-scaled reciprocal, then fix up
    if n >= (1 << 22):
        return n // step
    q = (n * minv) >> 40
    if q * step > n:
        q -= 1
    elif (q + 1) * step <= n:
        q += 1
    return q


@njit(inline="always")
def _quant(e, k, step, minv):
    """Residual quantiser with step 2k+1: |e - q * step| <= k."""
    if k == 0:
        return e
    if e >= 0:
        return _udiv(e + k, step, minv)
    return -_udiv(k - e, step, minv)


@njit(inline="always")
def _zz(q):
    return 2 * q if q >= 0 else -2 * q - 1


@njit(inline="always")
def _unzz(u):
    return (u >> 1) if (u & 1) == 0 else -((u + 1) >> 1)


@njit(nogil=True, cache=CACHE)
def code_plane(dec, x, P, k, vmin, vmax, st, out, rawout, dt, inp, rawin, freq, tot, recip,
               mask, base):
    """Encode ``x`` (dec=False) or decode (dec=True) into ``P``.

    ``P`` is the padded reconstruction, int32 (H + 2, W + 4); sample (i, j) lives
    at P[i + 2, j + 2]. An encoder may pass a 3-row P instead: the kernel then
    keeps only the rows it reads (i, i - 1, i - 2) in it, as a ring.
    ``x`` (int32 H x W) is read only when encoding, and only
    where coded. ``mask`` (uint8) / ``base`` (int32): H x W for masked coding,
    both 0 x 0 for plain coding.
    """
    H = x.shape[0] if not dec else P.shape[0] - 2
    W = P.shape[1] - 4
    # encoding with a 3-row P: a ring of rows (the reconstruction is not kept)
    ring = P.shape[0] < H + 2
    k = np.int64(k)
    vmin = np.int64(vmin)
    vmax = np.int64(vmax)
    step = 2 * k + 1
    # per-predictor absolute errors (fixed point) and |quantised residual|, two rows
    PE = np.zeros((2, W + 4, NPRED_M), dtype=np.int32)
    ssp = np.zeros(NPRED_M, dtype=np.int64)
    R = np.zeros((2, W + 4), dtype=np.int64)
    bsum = np.zeros(NBIAS, dtype=np.int64)
    bcnt = np.zeros(NBIAS, dtype=np.int64)
    bcorr = np.zeros(NBIAS, dtype=np.int64)
    inv_step = (np.int64(65536) + step - 1) // step
    minv = ((np.int64(1) << 40) + step - 1) // step
    preds = np.zeros(NPRED_M, dtype=np.int64)
    mid = (vmin + vmax) >> 1
    E = (st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7])
    D = (dt[0], dt[1], dt[2], dt[3], dt[4], dt[5], dt[6])
    last_run = np.int64(0)
    masked = mask.shape[0] > 0
    npred = NPRED_M if masked else NPRED
    nxt = np.empty(W + 1, dtype=np.int64)  # masked: first skipped column >= j (or W)
    nxt[W] = W
    esum = np.int64(0)   # running sum / count of |rec - base| over coded samples
    ecnt = np.int64(0)
    skip_r = np.int64(0)
    skip_pe = np.int64(0)
    one = np.int64(1) << FRAC
    half = one >> 1
    for i in range(H):
        pi = i + 2
        r0, r1, r2 = (pi % 3, (pi - 1) % 3, (pi - 2) % 3) if ring else (pi, pi - 1, pi - 2)
        cur = i & 1
        prv = cur ^ 1
        if i == 0:
            P[r1, 1] = mid
            P[r0, 1] = mid
            P[r0, 0] = mid
        else:
            P[r0, 1] = P[r1, 2]
            P[r0, 0] = P[r1, 2]
            P[r1, W + 2] = P[r1, W + 1]
            P[r1, W + 3] = P[r1, W + 1]
        R[cur, 1] = R[prv, 2]
        if masked:
            for c in range(W - 1, -1, -1):
                nxt[c] = nxt[c + 1] if mask[i, c] else c
            # a skipped sample's state: the mean |rec - base| of the coded samples
            # so far as its |residual| (context) and as every predictor's error
            skip_r = (esum // ecnt) // step if ecnt > 0 else 0
            skip_pe = min((skip_r * step) << FRAC, _MAXPE)
        for p in range(npred):
            PE[cur, 1, p] = PE[prv, 2, p]
        j = 0
        while j < W:
            pj = j + 2
            if i == 0:
                w0 = P[r0, pj - 1]
                for c in range(pj - 1, pj + 2):
                    P[r2, c] = w0
                    P[r1, c] = w0
            if masked and not mask[i, j]:
                # not coded: reconstructed as the base, an ordinary neighbour
                rec = min(max(np.int64(base[i, j]), vmin), vmax)
                P[r0, pj] = rec
                R[cur, pj] = skip_r
                for p in range(npred):
                    PE[cur, pj, p] = skip_pe
                j += 1
                continue
            send = nxt[j] if masked else W
            Wv = np.int64(P[r0, pj - 1])
            Nv = np.int64(P[r1, pj])
            NWv = np.int64(P[r1, pj - 1])
            NEv = np.int64(P[r1, pj + 1])
            d1 = NEv - Nv
            d2 = Nv - NWv
            d3 = NWv - Wv
            if abs(d1) <= k and abs(d2) <= k and abs(d3) <= k:
                # ---------------------------------------------------- run mode
                rv = Wv
                if dec:
                    E, D, t = _code(dec, E, D, out, rawout, inp, rawin, freq, tot, CTX_RUN + last_run, 0)
                    r = send - j if t == 0 else t - 1
                    if r > send - j:
                        r = send - j
                else:
                    r = 0
                    while j + r < send and abs(np.int64(x[i, j + r]) - rv) <= k:
                        r += 1
                    E, D, _ = _code(dec, E, D, out, rawout, inp, rawin, freq, tot, CTX_RUN + last_run,
                          0 if j + r == send else r + 1)
                for c in range(pj, pj + r):
                    P[r0, c] = rv
                    R[cur, c] = 0
                    for p in range(npred):
                        PE[cur, c, p] = 0
                if i == 0 and r > 0:
                    for c in range(pj, pj + r + 1):
                        P[r2, c] = rv
                        P[r1, c] = rv
                last_run = 0 if r < 2 else (1 if r < 8 else (2 if r < 64 else 3))
                j += r
                if j >= send:
                    continue
                # run interruption sample at column j
                pj = j + 2
                Nv = np.int64(P[r1, pj])
                ritype = 1 if abs(rv - Nv) <= k else 0
                pred = rv if ritype else Nv
                flip = (ritype == 0) and (rv > Nv)
                if dec:
                    E, D, u = _code(dec, E, D, out, rawout, inp, rawin, freq, tot, CTX_RI + ritype, 0)
                    q = _unzz(u + ritype)
                    if flip:
                        q = -q
                else:
                    q = _quant(np.int64(x[i, j]) - pred, k, step, minv)
                    qc = -q if flip else q
                    E, D, _ = _code(dec, E, D, out, rawout, inp, rawin, freq, tot, CTX_RI + ritype, _zz(qc) - ritype)
                rec = pred + q * step
                if rec < vmin:
                    rec = vmin
                elif rec > vmax:
                    rec = vmax
                P[r0, pj] = rec
                if masked:
                    esum += abs(rec - min(max(np.int64(base[i, j]), vmin), vmax))
                    ecnt += 1
                aq = abs(q)
                R[cur, pj] = aq
                for p in range(npred):
                    PE[cur, pj, p] = min(abs(rec - pred) << FRAC, _MAXPE)
                j += 1
                continue
            # -------------------------------------------------------- regular mode
            WWv = np.int64(P[r0, pj - 2])
            NNv = np.int64(P[r2, pj])
            # predictors (fixed point)
            preds[0] = Nv << FRAC
            preds[1] = Wv << FRAC
            preds[2] = (Wv + Nv - NWv) << FRAC
            preds[3] = (Wv + NEv - Nv) << FRAC
            preds[4] = (Nv + NEv) << (FRAC - 1)
            mx = max(Wv, Nv)
            mn = min(Wv, Nv)
            if NWv >= mx:
                med = mn
            elif NWv <= mn:
                med = mx
            else:
                med = Wv + Nv - NWv
            preds[5] = med << FRAC
            if masked:
                # base-guided predictors: the base, and the base plus the
                # neighbours' deviation from their base (W; mean of W and N)
                bcur = min(max(np.int64(base[i, j]), vmin), vmax)
                rw = Wv - min(max(np.int64(base[i, j - 1]), vmin), vmax) if j > 0 else 0
                rn = Nv - min(max(np.int64(base[i - 1, j]), vmin), vmax) if i > 0 else 0
                preds[6] = bcur << FRAC
                preds[7] = (bcur + rw) << FRAC
                preds[8] = ((2 * bcur + rw + rn) << FRAC) >> 1
            # blend weights from the predictors' errors at W, N, NW, NE
            smin = np.int64(1) << 62
            for p in range(npred):
                sp = (np.int64(PE[cur, pj - 1, p]) + PE[prv, pj, p]
                      + PE[prv, pj - 1, p] + PE[prv, pj + 1, p])
                ssp[p] = sp
                smin = min(smin, sp)
            sh = _bitlen(smin >> 8)
            ssum = np.int64(0)
            wsum = np.int64(0)
            for p in range(npred):
                wt = recip[min(ssp[p] >> sh, 1023)]
                wsum += wt
                ssum += wt * preds[p]
            # IEEE division: exactly rounded, hence identical in encoder and decoder
            blend = np.int64(np.floor(np.float64(ssum) / np.float64(wsum) + 0.5))
            # activity context (units of the quantisation step)
            g = abs(d1) + abs(d2) + abs(d3) + abs(Wv - WWv) + abs(Nv - NNv)
            a = (2 * (R[cur, pj - 1] + R[prv, pj]) + R[prv, pj - 1] + R[prv, pj + 1]
                 + R[cur, pj - 2]) * 2 + ((2 * g * inv_step) >> 16)
            ctx = _bucket(a, NACT)
            # bias correction
            tex = ((Nv << FRAC) > blend) + 2 * ((Wv << FRAC) > blend) \
                + 4 * ((NWv << FRAC) > blend) + 8 * ((NEv << FRAC) > blend)
            bc = ctx * 16 + tex
            pf = blend + bcorr[bc]
            pred = (pf + half) >> FRAC
            if pred < vmin:
                pred = vmin
            elif pred > vmax:
                pred = vmax
            if dec:
                E, D, u = _code(dec, E, D, out, rawout, inp, rawin, freq, tot, ctx, 0)
                q = _unzz(u)
            else:
                q = _quant(np.int64(x[i, j]) - pred, k, step, minv)
                E, D, _ = _code(dec, E, D, out, rawout, inp, rawin, freq, tot, ctx, _zz(q))
            rec = pred + q * step
            if rec < vmin:
                rec = vmin
            elif rec > vmax:
                rec = vmax
            if masked:
                esum += abs(rec - min(max(np.int64(base[i, j]), vmin), vmax))
                ecnt += 1
            P[r0, pj] = rec
            R[cur, pj] = abs(q)
            rf = rec << FRAC
            for p in range(npred):
                PE[cur, pj, p] = min(abs(rf - preds[p]), _MAXPE)
            # JPEG-LS style division-free bias update: bsum kept in (-cnt, 0]
            cnt = bcnt[bc]
            b = bsum[bc] + (rf - pf)
            if cnt == BIAS_RESET:
                b = b >> 1
                cnt >>= 1
            cnt += 1
            if b <= -cnt:
                b += cnt
                if bcorr[bc] > -_MAXC:
                    bcorr[bc] -= 1
                if b <= -cnt:
                    b = -cnt + 1
            elif b > 0:
                b -= cnt
                if bcorr[bc] < _MAXC:
                    bcorr[bc] += 1
                if b > 0:
                    b = 0
            bsum[bc] = b
            bcnt[bc] = cnt
            j += 1
    for c in range(8):
        st[c] = E[c]
    for c in range(7):
        dt[c] = D[c]
