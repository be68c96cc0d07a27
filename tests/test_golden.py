"""Golden streams of every format version decode to the same arrays, forever."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import codec_core as hlc

GOLDEN = Path(__file__).parent / "golden"
CASES = [(v.name, name) for v in sorted(GOLDEN.glob("v*")) if v.is_dir()
         for name in json.loads((v / "manifest.json").read_text())]


def test_there_are_golden_streams_for_the_current_version():
    assert (GOLDEN / f"v{hlc.VERSION}" / "manifest.json").exists()


@pytest.mark.parametrize("version, name", CASES)
def test_golden_stream_decodes_to_the_recorded_array(version, name):
    entry = json.loads((GOLDEN / version / "manifest.json").read_text())[name]
    data = (GOLDEN / version / f"{name}.hlc").read_bytes()
    out = hlc.decode(data)
    assert list(out.shape) == entry["shape"] and str(out.dtype) == entry["dtype"]
    assert hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest() == entry["sha256"]
    if entry["params"]["mode"] == "lossless":
        assert entry["sha256"] == entry["source_sha256"]  # lossless golden = the source image
    assert hlc.info(data)["version"] == int(version[1:])
