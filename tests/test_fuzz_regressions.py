"""Fuzz regressions: the crash corpus is replayed on every run, plus a short seeded fuzz run.

tests/corpus/ holds every input that ever crashed a decoder, hung it, made it
over-allocate, or reached decode's last-resort exception wrapper
(fuzz/fuzz_decoders.py writes them). Each file goes through ``info``, ``decode`` at
every level, strict and not, a single frame with two threads, and through the
adapters: only HlcError (or the adapter's documented errors) may come out, fast.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import codec_core as hlc
import fuzzers

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.hlc"))


F = fuzzers.load("fuzz_decoders")

#: (corpus file, adapter) pairs that fail because of a known bug in an adapter (not
#: codec_core); they run as xfail so that the fix shows up as XPASS.
KNOWN_ADAPTER_BUGS: dict = {
    # ("crash-a88621f5cc2ef780.hlc", "pydicom"): fixed in the plugin (1-D stream in a DICOM fragment
    # used to raise IndexError while formatting its error message)
}


@pytest.fixture(scope="module")
def adapters():
    warnings.simplefilter("ignore")
    return F.Adapters()


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_file_gives_image_or_hlc_error_quickly(path):
    failures = F.replay([path])
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
@pytest.mark.parametrize("adapter", ["pillow", "numcodecs", "pydicom"])
def test_corpus_file_through_adapters(path, adapter, adapters):
    assert adapter in adapters.names(), f"the {adapter} adapter did not import"
    if (path.name, adapter) in KNOWN_ADAPTER_BUGS:
        pytest.xfail(KNOWN_ADAPTER_BUGS[path.name, adapter])
    t0 = time.perf_counter()
    adapters.run(adapter, path.read_bytes())   # raises anything undocumented
    assert time.perf_counter() - t0 < 10 * F.TIMEOUT  # a hang guard, generous for a loaded machine


def test_short_seeded_fuzz_run_finds_nothing():
    """~2000 target calls of the structure-aware fuzzer (seeded, reproducible)."""
    old = hlc.MAX_PIXELS
    try:
        stats = F.run(2000, seed=20240611, adapter_rate=0.0, quiet=True, small_seeds=True)
    finally:
        hlc.MAX_PIXELS = old
        F._api.MAX_PIXELS = old
    assert stats.executions >= 2000
    assert not stats.crashes, stats.crashes
    assert stats.hangs == 0 and stats.overalloc == 0
    assert stats.deep > 300   # the mutations do get past the header checks
    assert not stats.internal, f"internal errors behind HlcError: {dict(stats.internal)}"


# ---------------------------------------------------- limits (decompression bombs)

def _bomb(n: int, levels: int, tile: int | None = None, frames: int = 1) -> bytes:
    """A valid header claiming an n x n image whose every segment is (nearly) empty.

    With default 512 x 512 tiles such a stream is as dense as a real blank image
    (~5,000 samples per byte, index included), which the limit rightly accepts; the
    bombs are the ones with big tiles or few segments."""
    from codec_core import container as ct
    tile = tile or n
    h = ct.Header(mode=0, dtype=2, bits_stored=16, axes=0 if frames == 1 else 2, frames=frames, rows=n, cols=n,
                  channels=1, tile_rows=tile, tile_cols=tile, levels=levels, transform=0, colour=0,
                  max_error=0, vmin=0, vmax=65535)
    tiles = (-(-n // tile)) ** 2
    plane = [b"\x00\x00"] + [b"\x00"] * levels   # coder id 0 (wavelet), then empty range-coder data
    return ct.pack(h, plane * (frames * tiles))


@pytest.mark.parametrize("n,levels,tile,frames", [(8192, 5, None, 1), (4096, 0, None, 1), (13000, 2, 4096, 1),
                                                  (2048, 0, None, 40)])
def test_tiny_stream_claiming_a_big_image_is_refused_at_once(n, levels, tile, frames):
    data = _bomb(n, levels, tile, frames)
    t0 = time.perf_counter()
    with pytest.raises(hlc.DecompressionBombError):
        hlc.decode(data)
    assert time.perf_counter() - t0 < 5  # refused from the header (a hang guard, not a speed test)
    assert hlc.info(data)["rows"] == n            # info reads the header, it does not decode


def test_bomb_check_can_be_switched_off_for_trusted_data():
    data = _bomb(2048, 2)
    assert len(data) * hlc.api.MAX_SAMPLES_PER_BYTE < 2048 * 2048
    with pytest.raises(hlc.DecompressionBombError):
        hlc.decode(data)
    assert hlc.decode(data, max_pixels=None).shape == (2048, 2048)


@pytest.mark.parametrize("shape", [(2048, 2048), (20, 512, 512), (700, 900, 3)])
def test_blank_images_are_not_mistaken_for_bombs(shape):
    """The densest real output (constant images) stays well under the per-byte limit."""
    arr = np.zeros(shape, np.uint8)
    data = hlc.encode(arr)
    # v3's compact header made these streams denser: 20 x 512 x 512 is 634 bytes, 1.98x
    # below the limit (v2: 2.6x)
    assert arr.size <= hlc.api.MAX_SAMPLES_PER_BYTE * len(data) / 1.5
    assert np.array_equal(hlc.decode(data), arr)


def test_pixel_limit_is_checked_before_allocation():
    import tracemalloc
    data = hlc.encode(np.zeros((300, 300), np.uint16) + 7)
    tracemalloc.start()
    try:
        with pytest.raises(hlc.DecompressionBombError):
            hlc.decode(data, max_pixels=300 * 300 - 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300 * 300   # far less than one byte per sample: nothing image-sized
