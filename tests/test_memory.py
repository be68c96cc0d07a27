"""Leak test small enough for CI: RSS does not grow over thousands of decode calls.

The long version (10,000 calls, large images, peak memory as multiples of raw size)
is benchmarks/bench_hardening.py.
"""
from __future__ import annotations

import gc

import numpy as np
import psutil
import pydicom
from pydicom.data import get_testdata_file

import codec_core as hlc


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def _streams() -> list[bytes]:
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array
    roi = np.zeros(mr.shape, bool)
    roi[10:40, 10:40] = True
    return [
        hlc.encode(mr, mode="lossless"),
        hlc.encode(mr, mode="near-lossless", max_error=1),
        hlc.encode(mr, mode="lossy", bpp=0.6, roi=roi, roi_max_error=0, ecc="low"),
        hlc.encode(np.arange(300, dtype=np.uint8).reshape(20, 5, 3)),
    ]


def test_rss_stays_within_5_percent_over_3000_decodes():
    streams = _streams()
    bad = bytearray(streams[0])
    bad[len(bad) // 2] ^= 1
    bad = bytes(bad)

    def work(n: int) -> None:
        for i in range(n):
            data = streams[i % len(streams)]
            hlc.decode(data, threads=1 + (i % 5 == 0))
            if i % 7 == 0:
                hlc.info(data)
            if i % 11 == 0:
                hlc.decode(bad, strict=False)
                try:
                    hlc.decode(bad)
                except hlc.HlcError:
                    pass

    work(400)  # warm-up: lazy imports, caches, allocator pools
    before = _rss()
    work(3000)
    after = _rss()
    growth = (after - before) / before
    assert growth <= 0.05, f"RSS grew {100 * growth:.1f} % ({before >> 20} -> {after >> 20} MiB) over 3000 decodes"
