"""The code's shape (issue 11): no import circle in ``src/`` or ``reproduce/`` -- counting imports
made inside functions, which Python resolves lazily but which still tie two modules together --, no
artifact that imports another artifact, and no library file over 450 lines.

The import graph is read with :mod:`ast` (no module is executed) and checked for cycles with the
standard library's :class:`graphlib.TopologicalSorter`, an implementation independent of the code
under test.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from reproduce.registry import ARTIFACT_MODULES

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGES = {"embedding_norms": SRC / "embedding_norms", "reproduce": ROOT / "reproduce"}


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the two packages."""
    out = {}
    for pkg, folder in PACKAGES.items():
        for f in folder.rglob("*.py"):
            parts = list(f.relative_to(folder.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``name`` imports anywhere in its file (top level or inside a function)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:      # the deepest project module named
                t = t.rpartition(".")[0]
            # importing a.b.c also runs a/__init__ and a/b/__init__: an edge to each package above
            # it, except the packages that hold the importing module (already initialising)
            while t:
                if t != name and not name.startswith(t + "."):
                    found.add(t)
                t = t.rpartition(".")[0]
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules its import statements run (anywhere in the file)."""
    modules = _module_files()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_reader_finds_a_function_level_circle(tmp_path, monkeypatch):
    """The checker itself: two modules that import each other only inside functions form a cycle."""
    pkg = tmp_path / "embedding_norms"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from . import a\n")
    monkeypatch.setitem(PACKAGES, "embedding_norms", pkg)
    monkeypatch.setitem(PACKAGES, "reproduce", tmp_path / "nothing")
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(_graph()).static_order())


def test_the_import_graph_reader_finds_a_circle_through_a_package_init(tmp_path, monkeypatch):
    """config -> data.sources runs data/__init__, which imports data.prepare, which imports config:
    Python fails with "partially initialized module"; the reader must see the circle."""
    pkg = tmp_path / "embedding_norms"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from .prepare import x\n")
    (pkg / "data" / "prepare.py").write_text("from ..config import y\nx = 1\n")
    (pkg / "data" / "sources.py").write_text("z = 1\n")
    (pkg / "config.py").write_text("from .data.sources import z\ny = 2\n")
    monkeypatch.setitem(PACKAGES, "embedding_norms", pkg)
    monkeypatch.setitem(PACKAGES, "reproduce", tmp_path / "nothing")
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(_graph()).static_order())
    # without the package's own import of prepare there is no circle
    (pkg / "data" / "__init__.py").write_text("")
    list(graphlib.TopologicalSorter(_graph()).static_order())


def test_no_import_circle_in_src_or_reproduce():
    graph = _graph()
    assert "embedding_norms.train" in graph and "reproduce.runner" in graph
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import circle: {' -> '.join(e.args[1])}")


def test_no_artifact_imports_another_artifact():
    graph = _graph()
    artifacts = {f"reproduce.{m}" for m in ARTIFACT_MODULES}
    for a in sorted(artifacts):
        assert not graph[a] & artifacts, f"{a} imports {sorted(graph[a] & artifacts)}"


def test_no_library_file_is_over_450_lines():
    long = {str(f.relative_to(ROOT)): n for f in PACKAGES["embedding_norms"].rglob("*.py")
            if (n := len(f.read_text().splitlines())) > 450}
    assert not long, f"library files over 450 lines: {long}"
