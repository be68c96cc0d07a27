"""The declared dependencies are what the shipped code imports, no more and no less.

Every module the wheel installs is parsed (imports inside functions included, as
HLC imports its heavy packages lazily). A third-party package it imports must be a
declared dependency; an optional feature's package may instead sit in the extra
named here. Every declared dependency must be imported somewhere, or be listed
with the reason it is needed without an import.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

#: Imported only by an optional feature, and the extra that installs it.
OPTIONAL = {
    ("codec_core/cli/batch.py", "distributed"): "cluster",     # hlc batch --scheduler
    ("models/training/train.py", "torch"): "train",               # the training recipe
    ("models/training/train.py", "onnx"): "train",
    ("models/training/train.py", "scikit-image"): "train",
    ("models/training/corpus.py", "scikit-image"): "train",
}
#: Needed at run time without an import statement in our code.
NOT_IMPORTED = {
    "scikit-learn": "unpickled from models/roi_svm.pkl by roi='auto'",
    "pydicom-data": "the demo's and bench's images, found by pydicom.data through its entry point",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0])


def _shipped_sources() -> list[Path]:
    """The .py files of every package pyproject.toml installs (source folders)."""
    tool = PYPROJECT["tool"]["setuptools"]
    dirs = tool.get("package-dir", {})
    files = []
    for package in tool["packages"]:
        folder = REPO / dirs.get(package, package.replace(".", "/"))
        files += sorted(folder.glob("*.py"))
    assert files, "no shipped module found: pyproject's package list changed?"
    return files


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _third_party_imports() -> dict[tuple[str, str], str]:
    """{(file relative to the repo, distribution): module} for every third-party import."""
    own = {p.split(".")[0] for p in PYPROJECT["tool"]["setuptools"]["packages"]} | {"models"}
    dists = importlib.metadata.packages_distributions()
    found = {}
    for path in _shipped_sources():
        for module in _top_level_imports(path) - own - set(sys.stdlib_module_names):
            # not installed here (torch of the training extra): the usual name is the module's
            for dist in dists.get(module, [module]):
                found[str(path.relative_to(REPO)), _norm(dist)] = module
    return found


def test_every_third_party_import_is_declared():
    main = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {name: {_requirement_name(r) for r in reqs}
              for name, reqs in PYPROJECT["project"]["optional-dependencies"].items()}
    missing = []
    for (path, dist), module in sorted(_third_party_imports().items()):
        extra = OPTIONAL.get((path, dist))
        declared = dist in extras.get(extra, set()) if extra else dist in main
        if not declared:
            where = f"the {extra!r} extra" if extra else "dependencies"
            missing.append(f"{path} imports {module} ({dist}), not in {where}")
    assert not missing, "undeclared imports:\n" + "\n".join(missing)


def test_every_dependency_is_used():
    imported = {dist for _, dist in _third_party_imports()}
    unused = [r for r in PYPROJECT["project"]["dependencies"]
              if _requirement_name(r) not in imported | set(NOT_IMPORTED)]
    assert not unused, f"declared but never imported by the shipped code: {unused}"


def test_optional_imports_say_which_extra_to_install():
    # an optional feature's package missing must name the extra, not a bare ImportError
    for (path, dist), extra in OPTIONAL.items():
        if extra == "train":
            continue  # the recipe runs from the repository with `pip install .[train]`
        text = (REPO / path).read_text()
        assert f"hlc-codec[{extra}]" in text, f"{path}: the error for a missing {dist} should name " \
                                              f"pip install 'hlc-codec[{extra}]'"


def test_the_installed_wheel_holds_the_kernels_the_licence_and_one_start_up_hook(wheel_run):
    # The C sources are built into codec_core._hlc, not installed beside it; the start-up
    # hook sits at the top of site-packages only; the licence the metadata names ships.
    out = wheel_run("""
import importlib.metadata as md
dist = md.distribution("hlc-codec")
names = sorted(str(f) for f in dist.files)
print("\\n".join(names))
print("REQUIRES-PYTHON", dist.metadata["Requires-Python"])
""").stdout.splitlines()
    files = [n for n in out if not n.startswith("REQUIRES-PYTHON")]
    assert not [n for n in files if "/_native/" in n], files
    assert [n for n in files if n.endswith(".pth")] == ["hlc_autoregister.pth"]
    assert any(n.startswith("codec_core/_hlc.") and n.endswith((".so", ".pyd")) for n in files)
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in files)
    assert "REQUIRES-PYTHON >=3.11" in out


def test_the_declared_python_and_numpy_floors_are_those_of_the_dependencies():
    # zarr 3 needs Python 3.11; numpy before 1.26.1 cannot unpickle the ROI classifier
    # (saved under numpy 2: numpy._core); the README says the same Python.
    project = PYPROJECT["project"]
    assert project["requires-python"] == ">=3.11"
    assert "numpy>=1.26.1" in project["dependencies"]
    assert "Python 3.11+" in (REPO / "README.md").read_text()
