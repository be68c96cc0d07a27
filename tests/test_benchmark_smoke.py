"""benchmarks/bench_codecs.py still runs end to end and writes its report."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import imagecodecs  # noqa: F401  (declared test dependencies: a missing one must fail, not skip)
import pydicom.data  # noqa: F401

REPO = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_codecs.py"


def test_bench_codecs_quick_writes_report(tmp_path):
    out = tmp_path / "RESULTS.md"
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--images", "emri_small.dcm", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    text = out.read_text(encoding="utf-8")
    for header in (
        "# HLC benchmark results",
        "- Command: `",
        "- Machine: ",
        "## Summary against the targets",
        "| target | HLC | reference (same run) | result |",
        "## Lossless: bits per pixel",
        "| image | shape | dtype / bits | HLC | JPEG 2000 5/3 (OpenJPEG) |",
        "## Near-lossless: HLC max_error=k vs JPEG-LS NEAR=k",
        "## Lossy at 0.25, 0.5 and 1.0 bpp",
        "| rate | codec | mean bpp | mean PSNR dB | mean nominal PSNR dB | mean SSIM |",
        "## Speed (lossless, single thread)",
        "| codec | encode MB/s | decode MB/s |",
        "## Peak memory of HLC",
        "## Other results",
    ):
        assert header in text, f"missing {header!r} in the report"
    assert "emri_small.dcm" in text
    # every reference stream decoded bit-exact
    assert "Exact round trip: all streams bit-exact." in text
    # the reference codecs produced numbers (not errors)
    row = next(line for line in text.splitlines() if line.startswith("| emri_small.dcm | 10×64×64"))
    assert "error" not in row, row


def test_bench_memory_measures_each_job(tmp_path):
    """benchmarks/bench_memory.py runs bench_codecs.py's memory child for each job asked,
    on the image and (--mosaic 2) on its 2 x 2 mosaic (a stack's rows and columns
    repeated, not its frames), and keeps its figures (not a memory test: only that the
    figures are there)."""
    import json

    out = tmp_path / "memory.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_memory.py"), "--images", "emri_small.dcm",
         "--jobs", "lossless encode,lossy decode", "--mosaic", "2", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    got = json.loads(out.read_text())
    assert set(got) == {"emri_small.dcm", "emri_small.dcm 2x2"}
    assert got["emri_small.dcm 2x2"]["raw"] == 4 * got["emri_small.dcm"]["raw"] > 0
    for res in got.values():
        assert set(res) == {"raw", "lossless encode", "lossy decode"}
        for job in ("lossless encode", "lossy decode"):
            r = res[job]
            assert "error" not in r and r["tracemalloc_peak"] > 0, r
            # the data part: the RSS peak less the file pages the operation faulted in
            assert r["file_growth"] >= 0 and r["anon_extra"] == max(0, r["rss_extra"] - r["file_growth"]), r


@pytest.mark.parametrize("dtype, lo, hi", [("int16", -1024, 3071), ("uint16", 0, 4095), ("uint8", 0, 255),
                                           ("int8", -128, 127)])
@pytest.mark.parametrize("bpp", [0.25, 1.0])
def test_memory_warmup_takes_the_padding_path(dtype, lo, hi, bpp, monkeypatch):
    """The memory child's synthetic warm-up image is coded by lossy mode's padding path
    (so its code pages are loaded before a padded image is measured)."""
    import importlib.util

    import numpy as np

    import codec_core
    from codec_core import regions

    spec = importlib.util.spec_from_file_location("bench_codecs_for_test", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # (its dataclasses look their module up)
    spec.loader.exec_module(bench)
    ran = []
    original = regions.encode_padded
    monkeypatch.setattr(regions, "encode_padded", lambda *a, **k: ran.append(original(*a, **k)) or ran[-1])
    image = np.random.default_rng(0).integers(lo, hi, (40, 50), endpoint=True).astype(dtype)
    warm = bench._padded_warmup(image, "YX")
    assert warm.dtype == image.dtype and warm.shape == (bench.WARMUP_SIDE,) * 2
    codec_core.encode(warm, mode="lossy", bpp=bpp)
    assert len(ran) == 1 and ran[0] is not None
    assert bench._padded_warmup(image[None], "ZYX").shape == (1,) + warm.shape
