"""Every ```python block in README.md runs, in order, in one namespace."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    first = re.search(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    commands = [c for c in first if c.strip() and not c.lstrip().startswith("#")]
    assert len(commands) == 2
    assert "hlc demo" in commands[0] and '".[test]"' in commands[1] and "pytest" in commands[1]
    # CI runs exactly these: it reads them from README.md's first code block
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in ci and "python3 -m venv" in ci


def test_readme_python_snippets_run(wheel_run):
    # as a reader runs them: the installed package, a fresh process, one namespace
    blocks = python_blocks()
    assert blocks, "README has no python examples"
    script = "\n".join(f"exec(compile({block!r}, 'README.md block {i}', 'exec'), ns)"
                       for i, block in enumerate(blocks))
    wheel_run("ns = {}\n" + script, timeout=600)
