"""The one-call plane decoders under AddressSanitizer and UBSan (fuzz/sanitized.py).

An access a few bytes past a buffer gives the right samples in a normal build (the
allocator rounds sizes up), so no sample comparison sees it: the lossy decoder's int16
finest level once wrote its two int32 rows up to 3 bytes past their block for band
widths that are not a multiple of 4, which only the sanitized fuzz campaign caught.
Here the same comparisons as tests/test_plane_decode.py run in a process that loads
the sanitized kernels, where any such access is fatal."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
import sanitized  # noqa: E402

SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{fuzz!r}, {tests!r}]
    import sanitized
    assert sanitized.install(), "the sanitized kernels did not load"
    import numpy as np
    import test_plane_decode as t
    from codec_core import entropy
    rng0 = np.random.default_rng(20261207)
    for it in range({cases}):
        rows, cols = int(rng0.integers(1, 70)), int(rng0.integers(1, 70))
        levels, runs = int(rng0.integers(1, 5)), bool(rng0.integers(0, 2))
        scale = float(rng0.choice([0.3, 2.0, 40.0, 3000.0, 20000.0, 1e6]))
        density = float(rng0.choice([0.01, 0.2, 1.0]))
        rng = np.random.default_rng(int(rng0.integers(0, 2**32)))
        bands = t._bands(rng, rows, cols, levels, scale, density)
        segs = entropy.encode_decomposition(bands, levels, lossy=True, runs=runs)
        steps = (2.0 ** rng.uniform(-3, 6, 1 + 3 * levels)).astype(np.float32)
        lo, hi = t._TYPES[np.int32]
        want = t._by_steps(segs, rows, cols, levels, runs, steps, 0.25, np.zeros((rows, cols), np.int32), lo, hi)
        got = t._in_one_call(segs, runs, steps, 0.25, np.zeros((rows, cols), np.int32), lo, hi)
        assert np.array_equal(got, want), (it, rows, cols, levels, runs, scale, density)
    print("ok", {cases})
""")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> Path:
    """The kernels built with -fsanitize=address,undefined (about 25 s)."""
    return sanitized.build(str(tmp_path_factory.mktemp("sanitized")))


def test_the_lossy_plane_decoder_stays_in_its_buffers(kernels):
    """400 random planes of every width 1-69 (most not a multiple of 4), 1-4 levels,
    both coder variants, coefficients that fit int16 and ones that do not (the finest
    level decoded again into int32): the samples of the step-by-step path, with no
    sanitizer report."""
    script = SCRIPT.format(fuzz=str(ROOT / "fuzz"), tests=str(ROOT / "tests"), cases=400)
    proc = subprocess.run([sys.executable, "-c", script], env=sanitized.environment(kernels), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "ok 400" in proc.stdout, proc.stderr[-3000:]


RING_SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{fuzz!r}, {tests!r}]
    import sanitized
    assert sanitized.install(), "the sanitized kernels did not load"
    import test_predictive as t
    t.test_decoding_into_out_from_a_ring_gives_the_plane_decoders_samples()
    t.test_decoding_into_out_raises_as_the_plane_decoder_on_damaged_segments()
    import test_plane_decode as p
    p.test_one_call_lossless_gives_the_samples_of_the_step_by_step_path()  # (hypothesis: 120 planes)
    import test_plane_encode as e  # the one-call encoder and the packed 5/3 analysis
    e.test_random_planes_code_as_the_step_by_step_path()
    e.test_a_coefficient_past_the_limit_raises_the_coders_error()
    print("ok ring")
""")


def test_the_row_at_a_time_decoders_stay_in_their_buffers(kernels):
    """The decoders that write each finished row into a tile's place: the predictive
    decoder from a ring of three (predictive.decode_plane_into; 300 random planes into
    every output type, damaged segments) and the lossless wavelet plane's last 5/3
    level (transform53.c's hlc_inv53_rows; 120 random planes of 1-70 samples a side); and
    the one-call lossless encoder with the packed 5/3 analysis (planeencode.c; 1,200
    random planes): the samples and bytes of the other paths, with no sanitizer report."""
    script = RING_SCRIPT.format(fuzz=str(ROOT / "fuzz"), tests=str(ROOT / "tests"))
    proc = subprocess.run([sys.executable, "-c", script], env=sanitized.environment(kernels), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "ok ring" in proc.stdout, proc.stderr[-3000:]


MAP_SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{fuzz!r}, {tests!r}]
    import sanitized
    assert sanitized.install(), "the sanitized kernels did not load"
    import zlib
    import test_regions as t
    t.test_the_map_round_trips_as_row_runs()  # (hypothesis: 80 maps)
    for seed in range(40):
        t.test_a_damaged_map_raises_a_stream_error(seed)
    for seed in range(60):
        t.test_damage_inside_the_map_runs_raises_a_stream_error(seed)
    for cols in (1, 63, 64, 300, 8192):
        t.test_the_worst_maps_fit_the_inflate_bound(cols)
    for raw, why in ((bytes([0xFF] * 4 + [0x0F]), "too large"), (bytes([0x02, 0x00, 0x84]), "ends inside"),
                     (bytes([0x02, 0x00]), "cut short")):
        t.test_bad_varints_in_the_map_raise_a_stream_error(raw, why)
    t.test_a_zlib_bomb_in_the_map_is_inflated_only_as_far_as_a_map_can_reach()
    print("ok map")
""")


def test_the_region_map_reader_stays_in_its_bytes(kernels):
    """The region map's runs read straight from the inflated varints (regionmap.c's
    hlc_unpack_map): round trips, damaged maps and varints, the worst maps and a zlib
    bomb, with no sanitizer report."""
    script = MAP_SCRIPT.format(fuzz=str(ROOT / "fuzz"), tests=str(ROOT / "tests"))
    proc = subprocess.run([sys.executable, "-c", script], env=sanitized.environment(kernels), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "ok map" in proc.stdout, proc.stderr[-3000:]
