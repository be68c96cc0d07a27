"""Test helper: ``hlc batch`` that cannot finish before a test's signal.

``python -c "import sys, batch_gate; sys.exit(batch_gate.main(sys.argv[1:]))" batch ...``
(with tests/ on PYTHONPATH) runs ``hlc`` as its console script does, except that the
local pool's workers hold the input named ``$HLC_TEST_GATED`` until the file
``$HLC_TEST_GATE`` exists. The worker that takes it is busy as if encoding, with a
partial output beside the final name, as a worker killed mid-write leaves one. A test
that does not create the gate knows its signal lands while the batch is running.
"""
from __future__ import annotations

import os
import tempfile
import time

from codec_core.cli import batch, main as cli

_convert_one = batch.convert_one  # the real one: workers import this module afresh


def convert_one(src: str, dst: str, *args, **kwargs) -> batch.Result:
    if os.path.basename(src) == os.environ.get("HLC_TEST_GATED"):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        fd, _ = tempfile.mkstemp(prefix=f".{os.path.basename(dst)}.", suffix=batch.TEMP_SUFFIX,
                                 dir=os.path.dirname(dst))
        os.write(fd, b"half a file")
        os.close(fd)
        while not os.path.exists(os.environ["HLC_TEST_GATE"]):
            time.sleep(0.01)
    return _convert_one(src, dst, *args, **kwargs)


def main(argv: list[str]) -> int:
    batch.convert_one = convert_one  # what the pool's workers are sent (by reference)
    return cli.main(argv)
