"""dvc.yaml cannot drift from the code: every project module a stage imports is one of its deps.

A stage whose deps miss a module it imports (directly or through other modules) is not
re-run when that module changes, and DVC then serves outputs of the old code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SRC = REPO / "src"


def module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package's __init__.py), or None."""
    base = SRC / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_files(path: Path) -> set[Path]:
    """Project files ``path`` imports anywhere in its body, with their parent packages."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if not name.startswith("springtail"):
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                if (file := module_file(".".join(parts[:i]))) is not None:
                    found.add(file)
    return found


def closure(script: Path) -> set[Path]:
    """Every project file that running ``script`` can import."""
    seen, todo = set(), [script]
    while todo:
        for file in imported_files(todo.pop()) - seen:
            seen.add(file)
            todo.append(file)
    return seen


def stages() -> dict[str, dict]:
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in spec.items()}


def uncovered(stage: dict) -> list[str]:
    """Imported project files of the stage's script that none of its deps covers."""
    script = re.search(r"python (stages/\S+\.py)", stage["cmd"]).group(1)
    deps = [REPO / d for d in stage.get("deps", []) if "$" not in d]
    needed = closure(REPO / script) | {REPO / script}
    return sorted(str(f.relative_to(REPO)) for f in needed
                  if not any(f == d or d in f.parents for d in deps))


@pytest.mark.parametrize("name", sorted(stages()))
def test_deps_cover_every_imported_module(name):
    missing = uncovered(stages()[name])
    assert not missing, f"dvc.yaml stage {name}: imports but does not depend on {missing}"


def test_a_removed_dep_is_caught():
    stage = dict(stages()["crops"])
    stage["deps"] = [d for d in stage["deps"] if d != "src/springtail/common"]
    assert "src/springtail/common/store.py" in uncovered(stage)


def subpackage_imports() -> dict[str, set[str]]:
    """For each subpackage of springtail, the other subpackages its modules import."""
    found: dict[str, set[str]] = {}
    for path in (SRC / "springtail").rglob("*.py"):
        parts = path.relative_to(SRC / "springtail").parts
        if len(parts) < 2:
            continue
        own = parts[0]
        for file in imported_files(path):
            rel = file.relative_to(SRC / "springtail").parts
            if len(rel) > 1 and rel[0] != own:
                found.setdefault(own, set()).add(rel[0])
    return found


def test_subpackages_have_no_import_cycles():
    """common is the base layer; no two subpackages import each other, directly or through others."""
    graph = subpackage_imports()
    assert "common" not in graph, f"common imports {graph.get('common')}"

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cyclic = sorted(pkg for pkg in graph if pkg in reachable(pkg))
    assert not cyclic, f"import cycles through {cyclic}: {graph}"


def test_no_module_import_cycles():
    """Module level too: no project module reaches itself through its imports."""
    modules = [p for p in (SRC / "springtail").rglob("*.py") if p.name != "__init__.py"]
    cyclic = []
    for path in modules:
        seen, todo = set(), [path]
        while todo:
            for file in imported_files(todo.pop()):
                if file.name != "__init__.py" and file not in seen:
                    seen.add(file)
                    todo.append(file)
        if path in seen:
            cyclic.append(str(path.relative_to(SRC)))
    assert not cyclic, f"modules that import themselves through others: {cyclic}"


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "stages").glob("*.py")))
def test_stages_import_the_library_of_their_own_checkout(script, tmp_path):
    """A queued `dvc exp run` copies the repository; its stages must run the copy's library,
    not the one the virtualenv's editable install points to (the original checkout)."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "copy"
    shutil.copytree(REPO / "stages", copy / "stages")
    shutil.copytree(REPO / "src" / "springtail", copy / "src" / "springtail",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "src" / "springtail" / "__init__.py").write_text('raise ImportError("the copy\'s library")\n')
    done = subprocess.run([sys.executable, str(copy / "stages" / script), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "the copy's library" in done.stderr
