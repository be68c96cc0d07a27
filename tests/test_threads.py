"""Thread safety and determinism.

Encoding and decoding from 8 threads at once gives the same bytes and arrays as one
thread; encoding is the same across runs and across ``threads=1/2``; decoding is the
same whatever ``threads`` is. Streams are small enough that the kernels are busy in
several threads at the same time (they release the GIL).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import codec_core as hlc


def _dicom(name: str) -> np.ndarray:
    return pydicom.dcmread(get_testdata_file(name)).pixel_array


def _cases() -> list[tuple[str, np.ndarray, dict]]:
    mr = _dicom("MR_small.dcm")
    ct = _dicom("CT_small.dcm")
    emri = _dicom("emri_small.dcm")[:4]
    us = np.ascontiguousarray(_dicom("US1_UNCR.dcm")[100:196, 200:328])
    roi = np.zeros(ct.shape, bool)
    roi[30:90, 40:100] = True
    return [
        ("ct-lossless", ct, {"mode": "lossless", "tile_size": 32}),
        ("mr-near", mr, {"mode": "near-lossless", "max_error": 2}),
        ("ct-lossy-roi", ct, {"mode": "lossy", "bpp": 0.8, "roi": roi, "roi_max_error": 1, "tile_size": 64}),
        ("emri-lossy", emri, {"mode": "lossy", "psnr": 42.0}),
        ("us-lossless-ecc", us, {"mode": "lossless", "ecc": "medium"}),
    ]


CASES = _cases()


def _run_together(fns: list, n_threads: int = 8) -> list:
    """Start every call at the same moment (barrier), in ``n_threads`` threads."""
    barrier = threading.Barrier(n_threads)

    def call(fn):
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(n_threads) as ex:
        return list(ex.map(call, fns))


@pytest.mark.parametrize("name,arr,kw", CASES, ids=[c[0] for c in CASES])
def test_eight_threads_encode_same_bytes_as_one(name, arr, kw):
    ref = hlc.encode(arr, threads=1, **kw)
    outs = _run_together([lambda t=t: hlc.encode(arr, threads=1 + t % 2, **kw) for t in range(8)])
    assert all(o == ref for o in outs)


@pytest.mark.parametrize("name,arr,kw", CASES, ids=[c[0] for c in CASES])
def test_eight_threads_decode_same_arrays_as_one(name, arr, kw):
    data = hlc.encode(arr, **kw)
    ref = hlc.decode(data, threads=1)
    calls = [lambda t=t: hlc.decode(data, threads=1 + t % 2) for t in range(8)]
    for out in _run_together(calls):
        assert out.dtype == ref.dtype and np.array_equal(out, ref)


def test_mixed_encode_decode_info_and_levels_in_parallel():
    """Different streams, levels, frames and strictness at once: no cross-talk."""
    streams = [(hlc.encode(arr, **kw), arr) for _, arr, kw in CASES]
    jobs, expect = [], []
    for data, arr in streams:
        for level in (0, 1):
            jobs.append(lambda d=data, lv=level: hlc.decode(d, level=lv, threads=2))
            expect.append(hlc.decode(data, level=level, threads=1))
        jobs.append(lambda d=data: hlc.decode(d, strict=False)[0])
        expect.append(hlc.decode(data))
        jobs.append(lambda d=data: hlc.info(d)["shape"])
        expect.append(hlc.info(data)["shape"])
    outs = _run_together(jobs * 2, n_threads=8)
    for got, want in zip(outs, expect * 2):
        if isinstance(want, np.ndarray):
            assert np.array_equal(got, want)
        else:
            assert got == want


def test_damaged_streams_in_parallel_raise_the_same_error_as_in_one_thread():
    data = bytearray(hlc.encode(CASES[0][1], **CASES[0][2]))
    data[len(data) // 2] ^= 0x40
    data = bytes(data)

    def attempt():
        try:
            hlc.decode(data, threads=2)
        except hlc.HlcError as e:
            return type(e).__name__, str(e)
        return None

    ref = attempt()
    assert ref is not None
    assert _run_together([attempt] * 8) == [ref] * 8


@pytest.mark.parametrize("name,arr,kw", CASES, ids=[c[0] for c in CASES])
def test_deterministic_across_runs_and_thread_counts(name, arr, kw):
    a = hlc.encode(arr, threads=1, **kw)
    b = hlc.encode(arr, threads=2, **kw)
    c = hlc.encode(np.array(arr, copy=True), threads=1, **kw)
    assert a == b == c
    d1, d2 = hlc.decode(a, threads=1), hlc.decode(a, threads=2)
    assert np.array_equal(d1, d2)
    if kw["mode"] == "lossless":
        assert np.array_equal(d1, arr)


def test_encoding_matches_a_separate_process():
    """Same bytes in a fresh interpreter (no state carried between runs)."""
    import subprocess
    import sys

    code = ("import sys, hashlib, pydicom;"
            "from pydicom.data import get_testdata_file as g; import codec_core as h;"
            "a = pydicom.dcmread(g('CT_small.dcm')).pixel_array;"
            "print(hashlib.sha256(h.encode(a, mode='lossy', bpp=0.8, threads=2)"
            " + h.encode(a, mode='lossless')).hexdigest())")
    import tempfile  # (cwd outside the checkout: -c puts the cwd first on sys.path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    ct = _dicom("CT_small.dcm")
    import hashlib
    here = hashlib.sha256(hlc.encode(ct, mode="lossy", bpp=0.8, threads=1)
                          + hlc.encode(ct, mode="lossless")).hexdigest()
    assert out.stdout.strip() == here


# ------------------------------------------------------------------ map_threads

def _track(threads: int, n: int, fail_at: int | None = None):
    """map_threads over n slow items; returns (results or exception, peak in flight, started)."""
    import time

    from codec_core.pipeline import map_threads

    lock, state, started = threading.Lock(), {"now": 0, "peak": 0}, []

    def fn(x):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            started.append(x)
        time.sleep(0.002)
        with lock:
            state["now"] -= 1
        if x == fail_at:
            raise ValueError(f"item {x}")
        return x * x

    try:
        out = map_threads(fn, list(range(n)), threads)
    except ValueError as exc:
        out = exc
    return out, state["peak"], started


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [0, 1, 2, 7])
def test_map_threads_gives_the_serial_results_in_order_with_at_most_threads_in_flight(threads, n):
    out, peak, _ = _track(threads, n)
    assert out == [x * x for x in range(n)]
    assert peak <= threads


def test_map_threads_raises_the_first_failure_and_stops_taking_items():
    out, _, started = _track(2, 40, fail_at=3)
    assert isinstance(out, ValueError) and str(out) == "item 3"
    assert len(started) < 40  # the items after the failure (but those in flight) are never started


def test_map_threads_raises_the_lowest_failing_item_as_a_plain_loop_would():
    """Item 4 fails at once, item 3 (taken before it) fails later: item 3's is raised."""
    import time

    from codec_core.pipeline import map_threads

    def fn(x):
        if x == 3:
            time.sleep(0.05)
        if x in (3, 4):
            raise ValueError(f"item {x}")
        return x

    for _ in range(5):
        with pytest.raises(ValueError, match="item 3"):
            map_threads(fn, list(range(8)), 2)


def test_map_threads_comes_back_from_real_interrupts_and_the_interpreter_still_exits(tmp_path):
    """SIGINT at random moments of many small maps (a signal is handled between
    bytecodes): every map comes back within seconds with the interrupt, the helpers
    still work afterwards, and the process exits (the helpers are joined at exit: one
    left blocked would hang it)."""
    script = tmp_path / "interrupts.py"
    script.write_text(
        "import queue, random, signal, threading, time\n"
        "from codec_core.pipeline import map_threads\n"
        "class Stop(BaseException): pass\n"
        "def handler(*_): raise Stop\n"
        "signal.signal(signal.SIGINT, handler)\n"
        "main, rng, stopped = threading.main_thread().ident, random.Random(5), 0\n"
        "delays, sent = queue.SimpleQueue(), []\n"
        "def killer():\n"
        "    while (d := delays.get()) is not None:\n"
        "        time.sleep(d); signal.pthread_kill(main, signal.SIGINT); sent.append(1)\n"
        "threading.Thread(target=killer, daemon=True).start()\n"
        "def fn(x):\n"
        "    for _ in range(20): x += 1\n"
        "    return x\n"
        "for trial in range(100):\n"
        "    t0, before = time.monotonic(), len(sent)\n"
        "    try:\n"
        "        delays.put(rng.uniform(0, 0.03))\n"
        "        map_threads(fn, list(range(20000)), 2)\n"
        "        while len(sent) == before: time.sleep(0.0005)\n"
        "        time.sleep(0.005)\n"
        "    except Stop:\n"
        "        stopped += 1\n"
        "        while len(sent) == before: time.sleep(0.0005)\n"
        "    assert time.monotonic() - t0 < 5, trial\n"
        "delays.put(None)\n"
        "names = map_threads(lambda _: time.sleep(0.01) or threading.current_thread().name, list(range(6)), 2)\n"
        "print(stopped, 'hlc-helper' in ' '.join(names))\n")
    stopped, helpers = _run_script(script, timeout=60).split()
    assert int(stopped) > 20 and helpers == "True"  # (most signals land inside a map)


def test_an_interrupt_while_a_helper_starts_does_not_hang_the_exit(tmp_path):
    """An interrupt inside ``Thread.start`` (its caller waits there for the new thread):
    the thread runs, and must still be told to stop when the interpreter exits (an
    executor's thread left out of its list hung the exit, one run in about 30 of the
    test above)."""
    script = tmp_path / "start.py"
    script.write_text(
        "import threading\n"
        "from codec_core.pipeline import map_threads\n"
        "start = threading.Thread.start\n"
        "def interrupted(self):\n"
        "    start(self)\n"
        "    raise KeyboardInterrupt  # (as if in its wait for the thread)\n"
        "threading.Thread.start = interrupted\n"
        "try:\n"
        "    map_threads(abs, [-1, -2, -3, -4], 2)\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
        "threading.Thread.start = start\n"
        "print(map_threads(abs, [-1, -2, -3, -4], 2) == [1, 2, 3, 4])\n")
    assert _run_script(script, timeout=60).strip() == "True"


def test_map_threads_in_a_child_forked_while_the_helpers_lock_was_held():
    import multiprocessing as mp

    from codec_core import pipeline

    with pipeline._helpers_lock:  # (another thread making the pool at the moment of the fork)
        with mp.get_context("fork").Pool(1) as pool:
            assert pool.apply(_threads_used, ()) and True
            assert "hlc-helper" in " ".join(pool.apply(_threads_used))


def test_map_threads_nested_in_a_busy_pool_does_not_deadlock():
    """A map inside a mapped function: the helpers are all busy with the outer items,
    so the inner callers take their items themselves."""
    from codec_core.pipeline import map_threads

    def outer(x):
        return sum(map_threads(lambda y: x * y, list(range(5)), 2))

    assert map_threads(outer, list(range(6)), 2) == [10 * x for x in range(6)]


def test_map_threads_keeps_its_helpers_between_calls_and_works_after_a_fork():
    import multiprocessing as mp

    from codec_core.pipeline import map_threads

    map_threads(abs, [-1, -2, -3], 2)
    before = threading.active_count()
    for _ in range(20):
        assert map_threads(abs, [-1, -2, -3], 2) == [1, 2, 3]
    assert threading.active_count() == before  # no new thread per call
    assert "hlc-helper" in " ".join(_threads_used())
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:  # the child's copy of the pool has no threads: it makes its own
        assert "hlc-helper" in " ".join(pool.apply(_threads_used))


def _threads_used() -> list[str]:
    """The names of the threads that ran map_threads' items (slow ones: both threads take some)."""
    import time

    from codec_core.pipeline import map_threads

    def fn(_):
        time.sleep(0.01)
        return threading.current_thread().name

    return map_threads(fn, list(range(6)), 2)


def _run_script(script, timeout: float) -> str:
    """Run a Python file in a new interpreter; its standard output (it must exit 0)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_decode_with_threads_works_while_the_interpreter_exits(tmp_path):
    """An atexit handler (or a viewer closing) decodes after concurrent.futures refuses new
    work: the calling thread takes every tile itself."""
    script = tmp_path / "late.py"
    script.write_text(
        "import atexit, numpy as np, codec_core\n"
        "a = (np.arange(1024 * 1024, dtype=np.uint16) % 4000).reshape(1024, 1024)\n"
        "d = codec_core.encode(a, 'lossless', threads=2)\n"
        "atexit.register(lambda: print('same', np.array_equal(codec_core.decode(d, threads=2), a)))\n")
    assert _run_script(script, timeout=120).strip() == "same True"


def test_two_thread_decode_hands_out_the_largest_tiles_first(monkeypatch):
    """Tiles are taken in order of coded size (a large tile taken last would leave one
    thread working alone); one thread keeps the stream's order. Same samples either way."""
    from codec_core import decoder

    rng = np.random.default_rng(3)
    a = np.zeros((128, 128), np.uint16)
    a[64:, :64] = rng.integers(0, 4000, (64, 64))  # tile 2 (of 2 x 2): the noisy one
    a[:64, 64:] = rng.integers(0, 40, (64, 64))    # tile 1: some noise
    data = hlc.encode(a, "lossless", tile_size=64)
    seen = {}
    real = decoder.map_threads

    def spy(fn, items, threads):
        seen[threads] = [t for _, _, t in items]
        return real(fn, items, threads)

    monkeypatch.setattr(decoder, "map_threads", spy)
    assert np.array_equal(hlc.decode(data, threads=2), a) and np.array_equal(hlc.decode(data, threads=1), a)
    assert seen[2][:2] == [2, 1] and sorted(seen[2]) == [0, 1, 2, 3]
    assert seen[1] == [0, 1, 2, 3]
