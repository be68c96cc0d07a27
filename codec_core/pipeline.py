"""What the encoder and the decoder share: tiling, levels, value tables,
importance maps, step multipliers and the lossy reconstruction.

The image is seen as ``(frames, rows, cols, channels)``. Every
(frame, tile, channel) *plane* is coded independently, so tiles decode in
parallel threads (the compiled kernels release the GIL), damage stays inside one
tile, and a single frame or resolution is read without the rest. Both sides
work one tile at a time, so memory grows with the tile, not the image.

Modes
- lossless: 5/3 integer wavelet of the samples (optionally of their ranks in a
  sparse value table), colour through the reversible colour transform.
- near-lossless (max error k): samples are first quantised with step 2k+1
  around the image minimum, which bounds the error by k, then coded losslessly.
- lossy: 9/7 wavelet, dead-zone quantisation with a base step found by rate
  control. With an importance map, background coefficients get coarser steps
  and a residual layer, quantised with step 2e+1, keeps every ROI sample
  within +-e of the original (e = 0: exact).
"""
from __future__ import annotations

import atexit
import ctypes
import os
import queue
import threading
import zlib
from functools import cache

import numpy as np
from numpy.typing import DTypeLike

from . import container as ct
from . import predictive, quantize
from .errors import CorruptStreamError
from .format import ColourTransform, Importance, Mode, Version
from .transform import band_shapes, dwt97_inverse_rounded, rct_inverse

TILE = 512
MAX_LEVELS = 5
MAX_LOSSY_LEVELS = 3
ROI_USER_BLOCK = 8
# Step multiplier per importance class (background, body, detail) in hybrid mode:
# the ROI (body, detail) is rebuilt by its own predictive layer, so its wavelet
# coefficients only need to be good enough to keep the background around it right.
CLASS_MULT = (1.0, 4.0, 4.0)


def choose_levels(tile_rows: int, tile_cols: int, mode: Mode = Mode.LOSSLESS) -> int:
    """Default wavelet depth. Reversible streams keep 5 levels for thumbnails down
    to 1/32; lossy streams use 3, since their LL band, coded with spatial
    prediction, beats further decomposition (+0.2 dB measured on the corpus)."""
    n = max(tile_rows, tile_cols)
    return max(0, min(MAX_LOSSY_LEVELS if mode == Mode.LOSSY else MAX_LEVELS, n.bit_length() - 4))


def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


#: Working memory of one tile in flight, in bytes per sample (its int32 or float32
#: plane and the bands copied out of it). threads=None gives a small image one
#: thread: another tile in flight would double the working memory (past 4x the
#: raw image) to save a few milliseconds; large images and stacks use every core.
TILE_WORK_BYTES = 8


def auto_threads(h: ct.Header, frames: int) -> int:
    """Threads for ``threads=None``: up to :func:`default_threads`, as many tiles in
    flight as fit in twice the raw size of the ``frames`` frames coded."""
    raw = frames * h.rows * h.cols * h.channels * np.dtype(h.np_dtype).itemsize
    work = TILE_WORK_BYTES * min(h.rows, h.tile_rows) * min(h.cols, h.tile_cols) * h.channels
    return max(1, min(default_threads(), (2 * raw) // max(1, work)))


class _HelperThreads:
    """The process's helper threads: daemon threads that take jobs (callables) from a C
    queue until they take None, each listed before it starts, and joined when the
    interpreter exits (``atexit``: a job in a kernel finishes before the interpreter goes).

    Not a ``ThreadPoolExecutor``: its caller waits inside ``Thread.start`` on a
    Python-level Event, and an interrupt there (a signal is handled between bytecodes)
    left the started thread out of the executor's list, so nothing told it to stop at
    exit and the interpreter hung joining it (1 run in about 30 of
    tests/test_threads.py's interrupt test). Here a thread is listed first; one left
    unstarted by an interrupt is dropped by the next ``grow``, and ``stop`` repeats its
    None until every listed thread has ended."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.stopped = False

    def grow(self, n: int) -> bool:
        """At least ``n`` helpers (kept: the process keeps as many idle helpers as the
        largest ``threads`` asked for, less one); False once the interpreter is exiting."""
        self.threads = [t for t in self.threads if t.is_alive()]
        while not self.stopped and len(self.threads) < n:
            t = threading.Thread(target=self._serve, name=f"hlc-helper_{len(self.threads)}", daemon=True)
            self.threads.append(t)
            try:
                t.start()
            except RuntimeError:  # (the interpreter is exiting: no new threads)
                self.stopped = True
        return not self.stopped

    def _serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()

    def stop(self) -> None:
        self.stopped = True
        for t in self.threads:
            while t.is_alive():
                self.jobs.put(None)
                t.join(0.05)


_helpers_lock = threading.Lock()
_helper_threads = _HelperThreads()


def _forget_helpers() -> None:
    """In a forked child: the parent's helpers have no threads here, and its lock may
    have been held by a thread that does not exist here."""
    global _helpers_lock, _helper_threads
    _helpers_lock, _helper_threads = threading.Lock(), _HelperThreads()


if hasattr(os, "register_at_fork"):  # (POSIX)
    os.register_at_fork(after_in_child=_forget_helpers)
atexit.register(lambda: _helper_threads.stop())  # (the child's own, after a fork)


def _helpers(n: int) -> _HelperThreads | None:
    """The process's helper threads, at least ``n``, made on first use and kept (a new
    pool per call cost 0.6-1.3 ms of a 23 ms two-thread decode of four 512^2 tiles,
    starting and joining its threads); None once the interpreter is exiting."""
    with _helpers_lock:
        return _helper_threads if _helper_threads.grow(n) else None


class _SharedMap:
    """One :func:`map_threads` call: the items, their results, and who holds what.

    Only C primitives on the calling thread's side (a Lock, a SimpleQueue): a signal is
    handled between bytecodes, and one inside a Python-level ``Condition.__enter__``
    (after its acquire) would leave the lock held and the helpers blocked on it. Only
    the helpers' items are counted, for the caller to wait on: signals reach the main
    thread only, so no interrupt falls between a count and its ``try``."""

    def __init__(self, fn, items: list) -> None:
        self.fn, self.items, self.n = fn, items, len(items)
        self.results: list = [None] * self.n
        self.lock = threading.Lock()
        self.finished: queue.SimpleQueue[int] = queue.SimpleQueue()  # (wakes the waiting caller)
        self.next = self.helping = 0
        self.failures: list[tuple[int, BaseException]] = []  # (item, exception); the caller's interrupt: -1

    def take(self) -> int:
        """The next item to work on, or -1: none left, or a failure (under ``lock``)."""
        i = self.next
        if i >= self.n or self.failures:
            return -1
        self.next = i + 1
        return i

    def fail(self, i: int, exc: BaseException) -> None:
        with self.lock:
            self.failures.append((i, exc))

    def helper(self) -> None:
        while True:
            with self.lock:
                i = self.take()
                if i < 0:
                    return
                self.helping += 1
            try:
                self.results[i] = self.fn(self.items[i])
            except BaseException as exc:  # (raised by the caller)
                self.fail(i, exc)
            finally:
                with self.lock:
                    self.helping -= 1
                self.finished.put(i)

    def start_helpers(self, threads: int) -> None:
        pool = _helpers(threads - 1)
        if pool is None:  # (the interpreter is exiting: the caller takes every item)
            return
        for _ in range(min(threads, self.n) - 1):
            pool.jobs.put(self.helper)

    def callers_share(self) -> None:
        while True:
            with self.lock:
                i = self.take()
            if i < 0:
                return
            try:
                self.results[i] = self.fn(self.items[i])
            except Exception as exc:
                self.fail(i, exc)

    def wait_for_helpers(self) -> None:
        try:
            while True:
                with self.lock:
                    if not self.helping:
                        return
                self.finished.get()
        except BaseException as exc:  # (an interrupt while waiting: stop the helpers too)
            self.fail(-1, exc)
            raise


def map_threads(fn, items: list, threads: int) -> list:
    """``[fn(x) for x in items]``, on up to ``threads`` threads (kernels release the GIL):
    the calling thread and ``threads - 1`` helpers take the items in order, one at a
    time, so at most ``threads`` are in flight (each is a tile's working memory).

    A failure stops the taking; once the helpers' items are done, the failure of the
    lowest item is raised (the one a plain loop would raise), an interrupt of the
    calling thread before any (an interrupt while the caller waits comes back at once:
    the items the helpers hold finish on their own). The caller never waits for a
    helper that has not started (a busy pool, a nested call, an exiting interpreter):
    it takes the items itself."""
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    shared = _SharedMap(fn, items)
    try:
        shared.start_helpers(threads)
        shared.callers_share()
    except BaseException as exc:  # (an interrupt: the helpers stop taking items)
        shared.fail(-1, exc)
        raise
    finally:
        shared.wait_for_helpers()
    if shared.failures:
        raise min(shared.failures, key=lambda f: f[0])[1]
    return shared.results


@cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library: nothing to give back this way)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Give the allocator's free memory back to the system before a pass that allocates
    whole planes (the lossy coder's statistics, codings and error trials).

    glibc keeps the memory of freed small and medium blocks (below its 128 kB mmap
    threshold: bands of rows, masks, pyramid levels of the padding fill) resident in
    its heap while any later block sits above it, and the whole planes that follow come
    from fresh mappings, not from those holes: on the padded 512^2 CT 1.3-3.3x the raw
    image was freed but resident when the 9/7 coding pass began, on top of its own
    planes (benchmarks/results/lossy_speed.md, "Stop 26"). ``malloc_trim`` returns the
    free pages (~0.1 ms here); no data moves, nothing else changes."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


# ----------------------------------------------------------------- value table

#: The value-table choice codes at most about this many samples, each way.
TABLE_SAMPLE = 1 << 13


def table_sample(frame: np.ndarray) -> np.ndarray:
    """The samples the value-table choice codes: up to 8 bands of 16 rows spread
    evenly down the frame, each cut to the central ``TABLE_SAMPLE / 128`` columns
    or more (padding sits at the edges; what decides is the body's histogram)."""
    rows, cols = frame.shape
    nb = max(1, min(8, rows // 16))
    width = min(cols, max(64, TABLE_SAMPLE // (16 * nb)))
    x0 = (cols - width) // 2
    starts = [min(rows - 16, (rows * (2 * b + 1)) // (2 * nb) - 8) if rows >= 16 else 0 for b in range(nb)]
    return np.ascontiguousarray(np.concatenate([frame[max(0, y):max(0, y) + 16, x0:x0 + width] for y in starts]),
                                dtype=np.int32)


def choose_value_table(image: np.ndarray, vmin: int, vmax: int) -> tuple[np.ndarray, bytes] | None:
    """Sorted distinct values and their packed form (:func:`pack_value_table`, for the
    header), if coding ranks instead of values is cheaper.

    Coding ranks removes the gaps of a sparse histogram (padding far from the
    anatomy, rescaled data) but can break the smoothness of dense data, so the
    choice is measured: a sample of the middle frame (:func:`table_sample`) is
    coded both ways with the predictive coder (fast, and blind to the seams between
    bands, which only matter to a wavelet).
    """
    span = vmax - vmin + 1
    if span < 64 or image.shape[-1] != 1:
        return None
    from ._kernels import used_values  # (one compiled pass: a numpy scatter was 6% of lossless encode)

    used = used_values(image, vmin, vmax)
    if int(used.sum()) > span * 0.9:
        return None
    table = (np.flatnonzero(used) + vmin).astype(np.int32)
    sample = table_sample(image[image.shape[0] // 2, :, :, 0])
    ranks = (np.cumsum(used, dtype=np.int32) - 1)[sample - vmin]  # (a lookup: searchsorted was 5x slower)
    # the table itself is charged in proportion to the share of the image sampled
    packed = pack_value_table(table)
    table_cost = len(packed) * sample.size / image.size
    with_table = len(predictive.encode_plane(ranks, 0, 0, len(table) - 1)) + table_cost
    without = len(predictive.encode_plane(sample, 0, vmin, vmax))
    return (table, packed) if with_table < without else None


def area_reduce(x: np.ndarray, level: int) -> np.ndarray:
    """1/2^level resolution of a plane of sample values: the rounded mean of each
    2^level x 2^level block (partial blocks at the edges over the samples they have).

    The thumbnail of a plane decoded whole (predictive planes, rank-coded planes): a
    box filter is what image viewers reduce with, and unlike the 5/3 LL it needs no
    rounding per level."""
    s = 1 << level
    starts_y, starts_x = np.arange(0, x.shape[0], s), np.arange(0, x.shape[1], s)
    sums = np.add.reduceat(np.add.reduceat(x.astype(np.int64), starts_y, axis=0), starts_x, axis=1)
    counts = np.outer(np.minimum(s, x.shape[0] - starts_y), np.minimum(s, x.shape[1] - starts_x))
    return np.floor_divide(2 * sums + counts, 2 * counts).astype(np.int32)  # round half up


def lookup_in_place(lut: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x[...] = lut[x]`` a band of rows at a time: the temporary stays small
    (np.take with ``out=x`` would copy the whole array twice)."""
    for r in range(0, x.shape[0], 64):
        x[r:r + 64] = lut[x[r:r + 64]]
    return x


def pack_value_table(table: np.ndarray) -> bytes:
    deltas = np.diff(table.astype(np.int64), prepend=np.int64(table[0]) - 1) - 1
    head = int(table[0]).to_bytes(4, "little", signed=True) + len(table).to_bytes(4, "little")
    return head + deflate(deltas.astype("<u4").tobytes())


def unpack_value_table(seg: bytes, vmin: int, vmax: int) -> np.ndarray:
    if len(seg) < 8:
        raise CorruptStreamError("value table too short", "value table")
    first = int.from_bytes(seg[:4], "little", signed=True)
    n = int.from_bytes(seg[4:8], "little")
    if not 1 <= n <= vmax - vmin + 1:
        raise CorruptStreamError("value table size out of range", "value table")
    d = zlib.decompressobj()
    try:
        raw = d.decompress(seg[8:], 4 * n)
    except zlib.error:
        raise CorruptStreamError("value table damaged (zlib)", "value table") from None
    if len(raw) != 4 * n:
        raise CorruptStreamError("value table damaged", "value table")
    table = first + np.cumsum(np.frombuffer(raw, "<u4").astype(np.int64) + 1) - 1
    if table[0] != first or table[-1] > vmax or first < vmin:
        raise CorruptStreamError("value table out of range", "value table")
    return table.astype(np.int32)


# ------------------------------------------------------------- zlib segments

def deflate(data: bytes) -> bytes:
    """zlib of ``data`` at level 9 with its window and hash table sized to ``data``.

    zlib's defaults hold 256 kB of state however small the input: 9x the raw size of a
    128 x 128 16-bit image, in whose encode it was the largest cost (its value table).
    A window of at least len(data) + 262 bytes (zlib's lookahead) reaches every match
    the default one does, and a pending buffer of more than len(data) symbols ends no
    block early. The smaller hash table puts more candidates on each chain, so where a
    chain reaches level 9's limit another match may be kept: the same deflate data on
    every table and map of the corpus and 3,000 random and structured inputs of 0-70 kB
    (160 of them in tests/test_working_memory.py), a byte more on a crafted input; the
    header's window-size field differs, which every inflater reads."""
    n = len(data)
    c = zlib.compressobj(9, zlib.DEFLATED, min(15, max(9, (n + 262).bit_length())),
                         min(8, max(1, n.bit_length() - 6)))
    return c.compress(data) + c.flush()


#: deflate does not shrink data past 1032:1 (a 258-byte match in as few as 2 bits):
#: zlib data inflates to at most this many times its size (and a little more)
DEFLATE_MAX_RATIO = 1032


def inflate(data: bytes, limit: int, what: str, skip: int = 0) -> np.ndarray:
    """zlib ``data`` inflated to at most ``limit`` bytes after its first ``skip`` bytes
    (read, not kept), and never past what ``data`` can hold (DEFLATE_MAX_RATIO); a
    megabyte at a time into one buffer (inflated whole, the bytes and their copy were
    twice the map). CorruptStreamError naming ``what`` if zlib fails."""
    limit = max(0, min(limit, DEFLATE_MAX_RATIO * len(data) + 1024 - skip))
    d, out, n, tail = zlib.decompressobj(), np.empty(limit, np.uint8), 0, data
    try:
        while skip:
            chunk = d.decompress(tail, min(1 << 20, skip))
            if not chunk:
                return out[:0]
            skip, tail = skip - len(chunk), d.unconsumed_tail
        while n < limit:
            chunk = d.decompress(tail, min(1 << 20, limit - n))
            if not chunk:
                break
            out[n:n + len(chunk)] = np.frombuffer(chunk, np.uint8)
            n, tail = n + len(chunk), d.unconsumed_tail
    except zlib.error:
        raise CorruptStreamError(f"{what} damaged (zlib)", what) from None
    return out[:n]


# ------------------------------------------------------------- importance map (streams before regions)

def unpack_class_map(seg: bytes, shape: tuple, first: int = 0, count: int | None = None) -> np.ndarray:
    """Frames ``first`` .. ``first + count - 1`` (default: all) of an importance map of
    ``shape`` (frames, block rows, block cols; a byte a block): only those are kept (one
    frame asked of a stack claiming thousands inflated them all, 2 GB and 14 s from 2 MB)."""
    frames, rows, cols = shape
    count = frames - first if count is None else count
    size = rows * cols
    raw = inflate(seg, count * size, "importance map", skip=first * size)
    if len(raw) != count * size or int(raw.max(initial=0)) > max(Importance):
        raise CorruptStreamError("importance map damaged", "importance map")
    return raw.reshape(count, rows, cols)


def class_map_shape(h: ct.Header) -> tuple[int, int, int]:
    b = h.roi_block
    return h.frames, -(-h.rows // b), -(-h.cols // b)


def pixel_classes(cmap_frame: np.ndarray, block: int, box: tuple) -> np.ndarray:
    """Class of every pixel of a tile, from the block map of its frame."""
    y0, y1, x0, x1 = box
    ys = np.arange(y0, y1) // block
    xs = np.arange(x0, x1) // block
    return cmap_frame[np.ix_(ys, xs)]


def band_multipliers(classes: np.ndarray, levels: int, mults: list) -> list:
    """Per-band step multiplier arrays for one tile, in flat band order."""
    lut = np.asarray(mults, np.float64)
    rows, cols = classes.shape
    shapes = band_shapes(rows, cols, levels)
    out = []
    flat = [(shapes[0], levels)]
    for r, lvl in enumerate(shapes[1:], start=1):
        flat.extend((s, levels - r + 1) for s in lvl)
    for (h, w), lev in flat:
        ys = np.minimum(np.arange(h) << lev, rows - 1)
        xs = np.minimum(np.arange(w) << lev, cols - 1)
        out.append(lut[classes[np.ix_(ys, xs)]])
    return out


# ------------------------------------------------------------- shared tiles

#: :func:`squared_error` takes bands of rows of about this many samples (float64: 32 kB;
#: 64 rows of a 640-wide colour image were 1.07x its raw size in float64, and 2^14 samples
#: 0.25x a 512^2 16-bit image at the lossy trial's peak; a 512^2 plane's error takes
#: 0.9 ms in bands of 2^12 samples, 0.6 ms in bands of 2^14).
ERROR_BAND_SAMPLES = 1 << 12


def squared_error(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> float:
    """Sum of (a - b)^2 over the first two axes' ``keep`` pixels (all if None),
    in bands of rows: no float copy of the whole image or tile. No BLAS (np.dot):
    OpenBLAS's threads made one lossy encode 3-4.6x slower on a busy machine. The
    samples are integers of at most 16 bits: every square and partial sum is an exact
    float64 integer, so the bands' size does not change the sum."""
    total = 0.0
    band = max(1, ERROR_BAND_SAMPLES // max(1, a[:1].size))
    for y in range(0, a.shape[0], band):
        d = a[y:y + band].astype(np.float64)
        d -= b[y:y + band]
        if keep is not None:
            d = d[keep[y:y + band]]
        np.square(d, out=d)
        total += float(d.sum())
    return total


def planes(h: ct.Header) -> list[tuple[int, int]]:
    """Every (frame, tile) of the stream, in stream order."""
    return [(f, t) for f in range(h.frames) for t in range(h.n_tiles)]


def reconstruct_lossy_plane(qbands: list, h: ct.Header, steps: list, mult: list | None,
                            upto: int | None = None, consume: bool = False,
                            out: np.ndarray | None = None, dtype: DTypeLike | None = None) -> np.ndarray:
    """The decoded 9/7 plane, int32; or written into ``out`` (a one-channel image's
    output, or a channel of a :func:`new_tile`) or into a new array of ``dtype``
    (the image's own type), clipped as :func:`finish_tile` would: no int32 plane.
    ``consume``: free the integer bands on the way."""
    if out is None and dtype is None:
        bounds: tuple = _INT32_SAFE
    else:
        bounds = lossy_bounds(h, out.dtype if out is not None else np.dtype(dtype))
    if h.version >= Version.V2 and mult is None and consume and (h.levels if upto is None else upto) > 0:
        # the compiled kernel a level at a time, from the bands themselves: no plane-sized
        # float buffer, each level's integer bands freed after their level (at most the
        # numpy path's memory, whatever the plane's share of the image)
        return _synth97_levels(qbands, h, steps, upto, out, dtype, bounds)
    if h.version >= Version.V2 and mult is None and _small_share(qbands, h):
        # the compiled kernel: same values, one pass a level; it holds the integer bands,
        # float levels of 5/16 of the plane and the output at once (3.6x a 16-bit plane;
        # it held a whole float plane, 5x, before its one-pass levels), and it serves
        # planes that are at most a quarter of the image; the numpy path frees each band as it
        # goes (3x): a one-tile image stays within 4x its size
        return _synth97(qbands, h, steps, upto, consume, out, dtype, bounds)
    ll_dtype = np.float64 if h.version < Version.V2 else np.float32
    deq = quantize.dequantise(qbands, steps, h.levels, h.recon_offset, mult, upto, consume, ll_dtype)
    return dwt97_inverse_rounded(deq, out=out, bounds=bounds, dtype=dtype or np.int32)


_INT32_SAFE = (-(1 << 30), 1 << 30)  # (transform.dwt97_inverse_rounded's default bounds)


def lossy_bounds(h: ct.Header, dtype: DTypeLike) -> tuple[int, int]:
    """The clip of a decoded lossy plane of ``dtype``: the header's range, or for
    colour-transformed values finish_tile's clip before the inverse RCT."""
    if h.colour == ColourTransform.RCT:
        lim = rct_limit(dtype)
        return -lim, lim
    return h.vmin, h.vmax


def _small_share(qbands: list, h: ct.Header) -> bool:
    """Whether the plane of these bands is at most a quarter of the image's samples."""
    plane = qbands[0].size + sum(b.size for lvl in qbands[1:] for b in lvl)
    return 4 * plane <= h.rows * h.cols * h.frames


def _synth97(qbands: list, h: ct.Header, steps: list, upto: int | None, consume: bool,
             out: np.ndarray | None, dtype: DTypeLike | None, bounds: tuple) -> np.ndarray:
    """:func:`reconstruct_lossy_plane` by the compiled kernel (``_hlc.synth97``):
    dequantisation and the inverse 9/7 of the bands up to ``upto``, rounded and
    clipped into ``out`` (or a new array of ``dtype``, int32 by default)."""
    from ._hlc import synth97

    n = h.levels if upto is None else upto
    flat = [np.ascontiguousarray(qbands[0], np.int32)]
    for lvl in qbands[1:1 + n]:
        flat.extend(np.ascontiguousarray(b, np.int32) for b in lvl)
    if consume:
        qbands.clear()
    rows, cols = _plane_shape(flat, n)
    target = out if out is not None and out.flags.c_contiguous else np.empty((rows, cols), dtype or np.int32)
    synth97(flat, np.asarray(steps[:len(flat)], np.float32), float(np.float32(h.recon_offset)), target,
            float(bounds[0]), float(bounds[1]))
    if out is not None and target is not out:
        out[...] = target
        return out
    return target


def _synth97_levels(qbands: list, h: ct.Header, steps: list, upto: int | None,
                    out: np.ndarray | None, dtype: DTypeLike | None, bounds: tuple) -> np.ndarray:
    """:func:`reconstruct_lossy_plane` by ``_hlc.synth97_level``, consuming ``qbands``:
    each level dequantised and synthesised from its band arrays (read, not written)
    into the next level's float LL, the last one rounded and clipped into ``out`` (or a new
    array of ``dtype``, int32 by default). Same values as the numpy path."""
    from ._hlc import synth97_level

    n = h.levels if upto is None else upto
    ll, details = _writable32(qbands[0]), qbands[1:1 + n]
    qbands.clear()
    fsteps = np.asarray(steps[:1 + 3 * n], np.float32)
    recon = float(np.float32(h.recon_offset))
    for k in range(n):
        hl, lh, hh = (_writable32(b) for b in details[k])
        details[k] = None
        shape = (ll.shape[0] + lh.shape[0], ll.shape[1] + hl.shape[1])
        if k < n - 1:
            nxt = np.empty(shape, np.float32)
        elif out is not None and rows_in_place(out):
            nxt = out  # (a tile of the decoder's output: written in place, no plane and copy)
        else:
            nxt = np.empty(shape, dtype or (out.dtype if out is not None else np.int32))
        synth97_level(ll, hl, lh, hh, float(fsteps[0]), fsteps[1 + 3 * k:4 + 3 * k], recon, nxt,
                      float(bounds[0]), float(bounds[1]))
        del hl, lh, hh
        ll = nxt
    if out is not None and ll is not out:
        out[...] = ll
        return out
    return ll


def rows_in_place(out: np.ndarray) -> bool:
    """Whether ``_hlc.synth97_level`` can write into ``out`` itself: 2-D, samples
    contiguous in a row, rows apart by a whole number of samples, none overlapping (a
    C-contiguous plane, or a grey tile of a larger image)."""
    if out.ndim != 2:
        return False
    (rs, cs), size = out.strides, out.itemsize
    return (out.shape[1] < 2 or cs == size) and (out.shape[0] < 2 or (rs > 0 and rs % size == 0
                                                                         and rs >= out.shape[1] * size))


#: :func:`lossy_plane_rows` rebuilds a plane in strips of this share of its rows (at
#: least STRIP_MIN rows) and adds STRIP_MARGIN rows of each half (even, odd) on either
#: side: the 9/7 synthesis's four lifting steps carry an edge's mirroring two rows
#: into a half (tests/test_lossy_trial.py: the whole plane's values; with one row,
#: other values).
STRIP_SHARE, STRIP_MIN, STRIP_MARGIN = 16, 16, 3


def lossy_plane_rows(qbands: list, h: ct.Header, steps: list, dtype: DTypeLike, bounds: tuple | None = None):
    """:func:`reconstruct_lossy_plane`'s plane (``consume``, no multipliers, format v2
    on, at least one level; clipped to ``bounds``, by default the header's range, of ``dtype``) as
    ``(first row, rows)`` pieces, consuming ``qbands``: the finest level synthesised
    a strip at a time (``STRIP_SHARE``) from copies of its bands' rows (with
    ``STRIP_MARGIN`` rows either side), and the rows of its LL each strip reads
    synthesised the same way from the next coarser level (the levels above whole): so
    neither the plane nor its finest LL (a quarter plane of float32: 0.5x a 16-bit
    image, on top of the quantised bands, at the padded CT's error trial) ever
    exists. The same values as the whole plane (the same operations on the same
    samples)."""
    n = h.levels
    fsteps, recon = np.asarray(steps[:1 + 3 * n], np.float32), float(np.float32(h.recon_offset))
    fine = tuple(_writable32(b) for b in qbands[n])
    ll_rows: _BandRows | _LevelRows
    if n == 1:
        base = _writable32(qbands[0])
        qbands.clear()
        ll_rows = _BandRows(base)
    else:
        mid = tuple(_writable32(b) for b in qbands[n - 1])
        # the levels above the two finest: their LL, float32 (the int32 band itself for two levels)
        base = _synth97_levels(qbands, h, steps, n - 2, None, np.float32, _INT32_SAFE)
        ll_rows = _LevelRows(_BandRows(base), base.shape[0], mid, fsteps[0], fsteps[-6:-3], recon,
                              np.float32, _INT32_SAFE)
    rows_of = _LevelRows(ll_rows, ll_rows.rows, fine, fsteps[0], fsteps[-3:], recon, dtype,
                         (h.vmin, h.vmax) if bounds is None else bounds)
    total = rows_of.rows
    strip = 2 * max(STRIP_MIN // 2, -(-total // (2 * STRIP_SHARE)))  # (even: strips start on an even row)
    for y0 in range(0, total, strip):
        yield y0, rows_of(y0, min(total, y0 + strip))


class _BandRows:
    """Rows ``a .. b`` of a whole band (float32 or int32), as a contiguous copy."""

    def __init__(self, band: np.ndarray) -> None:
        self.band, self.rows = band, band.shape[0]

    def __call__(self, a: int, b: int) -> np.ndarray:
        return np.array(self.band[a:b])


class _LevelRows:
    """Rows ``y0 .. y1`` (``y0`` even) of one 9/7 synthesis level's output, made from the
    rows of its LL that ``ll_rows`` gives (``ns_v`` of them) and copies of its detail
    bands' rows (``details``: HL, LH, HH, int32), ``STRIP_MARGIN`` rows of each half on
    either side: the values of the whole level's rows (tests/test_lossy_trial.py)."""

    def __init__(self, ll_rows, ns_v: int, details: tuple, ll_step, steps, recon: float,
                 dtype: DTypeLike, bounds: tuple) -> None:
        self.ll_rows, self.ns_v, self.details = ll_rows, ns_v, details
        self.ll_step, self.steps, self.recon, self.dtype, self.bounds = float(ll_step), steps, recon, dtype, bounds
        self.rows = ns_v + details[1].shape[0]

    def __call__(self, y0: int, y1: int) -> np.ndarray:
        from ._hlc import synth97_level

        hl, lh, hh = self.details
        i0, end = max(0, y0 // 2 - STRIP_MARGIN), y1 // 2 + STRIP_MARGIN + 1
        s, d = slice(i0, min(self.ns_v, end)), slice(i0, min(lh.shape[0], end))
        first = i0 - i0 % 2  # (the LL's own strip starts on an even row)
        ll = self.ll_rows(first, s.stop)[i0 - first:]
        out = np.empty((s.stop - i0 + d.stop - i0, hl.shape[1] + lh.shape[1]), self.dtype)
        synth97_level(np.ascontiguousarray(ll), np.array(hl[s]), np.array(lh[d]), np.array(hh[d]), self.ll_step,
                      self.steps, self.recon, out, float(self.bounds[0]), float(self.bounds[1]))
        return out[y0 - 2 * i0:y1 - 2 * i0]


def _writable32(band: np.ndarray) -> np.ndarray:
    """``band`` as a writable C-contiguous int32 array (itself if it is one)."""
    if band.dtype == np.int32 and band.flags.c_contiguous and band.flags.writeable:
        return band
    return np.array(band, np.int32, order="C")


def _plane_shape(flat: list, levels: int) -> tuple[int, int]:
    """The shape of the plane whose bands (flat order, ``levels`` detail levels) these are."""
    if levels == 0:
        return flat[0].shape
    hl, lh = flat[-3], flat[-2]          # the finest level's HL and LH
    return hl.shape[0] + lh.shape[0], hl.shape[1] + lh.shape[1]


#: Colour tiles of data up to this many bits are assembled as int16: the RCT of b-bit
#: samples lies within +-2^b, and a clip to +-2^13 keeps the inverse RCT's sums in
#: int16 while leaving room for a lossy layer's ringing (half the memory of int32).
NARROW_COLOUR_BITS = 12


def rct_limit(dtype: DTypeLike) -> int:
    """Clip of colour-transformed values before the inverse RCT (keeps its sums in range)."""
    return (1 << 13) if np.dtype(dtype) == np.int16 else (1 << 20)


def tile_dtype(h: ct.Header) -> type[np.signedinteger]:
    """The type of a reconstructed tile (:func:`new_tile`): int16 for colour of up to
    ``NARROW_COLOUR_BITS`` bits, else int32."""
    return np.int16 if h.channels > 1 and h.bits_stored <= NARROW_COLOUR_BITS else np.int32


def new_tile(shape: tuple[int, int], h: ct.Header, planar: bool = False) -> np.ndarray:
    """Empty (rows, cols, Ch) tile that reconstructed planes are copied into;
    ``planar``: laid out as (Ch, rows, cols) (each channel contiguous: a plane is
    synthesised straight into it), seen as (rows, cols, Ch)."""
    dtype = tile_dtype(h)
    if planar:
        return np.empty((h.channels,) + tuple(shape), dtype).transpose(1, 2, 0)
    return np.empty(tuple(shape) + (h.channels,), dtype)


_NO_TABLE = np.zeros(0, np.int32)


def clip_tile(tile: np.ndarray, out: np.ndarray, vmin: int, vmax: int) -> None:
    """An int16 or int32 tile (r, c, Ch; any strides) clipped to [vmin, vmax] into ``out``
    (as :func:`finish_tile`'s ``out``): its compiled pass without colour transform or
    table (a near-lossless colour tile: three planar rows clipped and interleaved at
    once)."""
    from ._hlc import colour_finish

    colour_finish(tile, out, 0, 0, vmin, vmax, _NO_TABLE)


def finish_tile(tile: np.ndarray, h: ct.Header, table: np.ndarray | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
    """Colour inverse, value-table lookup (ranks to values) and clipping of a
    reconstructed tile (r, c, Ch; int32, or int16 from :func:`new_tile`), in place
    or into ``out`` (r, c, Ch, of any integer type that holds the range; any strides).
    One compiled pass (_native/colour.c: the same values as the numpy steps, with no
    tile-sized temporaries; those were 9-19% of a value-table image's lossless decode)
    for int16 and int32 tiles; the numpy steps remain for tiles of other types and for
    a table with the RCT, which no encoder writes (a crafted stream may)."""
    rct = h.colour == ColourTransform.RCT
    if tile.dtype in (np.int16, np.int32) and not (rct and table is not None):
        from ._hlc import colour_finish

        target = tile if out is None else out
        colour_finish(tile, target, int(rct), rct_limit(tile.dtype), h.vmin, h.vmax,
                      _NO_TABLE if table is None else table)
        return target
    if rct:
        lim = rct_limit(tile.dtype)
        tile = rct_inverse(np.clip(tile, -lim, lim, out=tile))
    if table is not None:
        lookup_in_place(table, np.clip(tile, 0, len(table) - 1, out=tile))
    tile = np.clip(tile, h.vmin, h.vmax, out=tile)
    if out is not None:
        out[...] = tile
        return out
    return tile
