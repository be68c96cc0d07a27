"""Every example that ``hlc encode/decode/info/roi/compare --help`` prints, and every
line of README.md's "Command line" block, runs as written, in order, in one folder,
as a user going down the help would (the
``hlc batch`` examples are run by tests/test_cli_batch.py; ``hlc demo`` is the README's
first command in CI; ``hlc bench`` is smoke-tested in tests/test_benchmark_smoke.py).

The folder holds the files the examples name: ct.dcm (pydicom's CT_small, signed
16-bit), mr_series.dcm (emri_small, 10 frames), xray.png with mask.png (a 16-bit crop
of a real radiograph and a rectangle), mask.npy, mr.hlc and damaged.hlc (a cut stream).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import data_file, hlc_env

from codec_core.cli.parser import _HELP, EPILOG

COMMANDS = ("encode", "decode", "info", "roi", "compare")


def examples(command: str) -> list[str]:
    """The example lines of ``hlc COMMAND --help`` (comments removed)."""
    lines = [ln.split("  #")[0].strip() for ln in _HELP[command][1].splitlines()]
    return [ln for ln in lines if ln.startswith("hlc ")]


def exit_status(command: str, line: str) -> int:
    """The exit status an example's comment states ("exit 3"), else 0."""
    full = next(ln for ln in _HELP[command][1].splitlines() if ln.strip().startswith(line))
    found = re.search(r"exit (\d+)", full.partition("  #")[2])
    return int(found.group(1)) if found else 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    import pydicom
    from PIL import Image

    import codec_core

    d = tmp_path_factory.mktemp("examples")
    shutil.copy(data_file("CT_small.dcm"), d / "ct.dcm")
    shutil.copy(data_file("emri_small.dcm"), d / "mr_series.dcm")
    xray = pydicom.dcmread(data_file("RG3_UNCR.dcm")).pixel_array[600:856, 600:856].astype(np.uint16)
    Image.fromarray(xray).save(d / "xray.png")
    mask = np.zeros(xray.shape, np.uint8)
    mask[64:192, 80:200] = 255
    Image.fromarray(mask).save(d / "mask.png")
    np.save(d / "mask.npy", np.pad(np.ones((64, 64), bool), 32))
    mr = pydicom.dcmread(data_file("MR_small.dcm")).pixel_array
    (d / "mr.hlc").write_bytes(codec_core.encode(mr, "lossless"))
    (d / "damaged.hlc").write_bytes(codec_core.encode(mr, "lossless")[:-200])
    return d


@pytest.mark.parametrize("command", COMMANDS)
def test_help_examples_run_as_written(folder, command):
    assert examples(command), command
    for line in examples(command):
        # the installed console script (beside this interpreter, as in an activated
        # venv), through a shell as the user types it (pipes included)
        env = {**hlc_env(), "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == exit_status(command, line), \
            f"{line}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        words = shlex.split(line.split("|")[0])
        output = words[3] if command in ("encode", "decode") else words[words.index("-o") + 1] if "-o" in words \
            else None
        assert output is None or (folder / output).stat().st_size > 0, (line, output)


def test_top_level_help_examples_run_as_written(folder):
    """``hlc --help``'s examples on the same folder (ct.dcm is a signed CT: the decode
    example once wrote PNG, which cannot hold it, and failed as printed), but ``hlc demo``
    (CI runs it) and the batch line (it names an archive the user has)."""
    lines = [ln.split("  #")[0].strip() for ln in EPILOG.splitlines()]
    lines = [ln for ln in lines if ln.startswith("hlc ") and not ln.startswith(("hlc demo", "hlc batch"))]
    assert len(lines) >= 4, lines
    env = {**hlc_env(), "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    for line in lines:
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{line}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def readme_commands() -> list[str]:
    """The lines of README.md's "Command line" block, but ``hlc demo`` (the README's
    first command, run by CI) and ``hlc bench`` (minutes; smoke-tested elsewhere)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = [ln.split("  #")[0].strip() for ln in block.splitlines()]
    return [ln for ln in lines if ln.startswith("hlc ") and not ln.startswith(("hlc demo", "hlc bench"))]


def test_readme_command_line_examples_run_as_written(tmp_path):
    """scan.dcm a signed CT, archive/ two DICOM files: the README's commands in order."""
    shutil.copy(data_file("CT_small.dcm"), tmp_path / "scan.dcm")
    (tmp_path / "archive").mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(data_file(name), tmp_path / "archive" / name)
    env = {**hlc_env(), "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    commands = readme_commands()
    assert len(commands) >= 8, commands
    for line in commands:
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{line}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
