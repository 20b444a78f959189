"""The code a stage script can run: the transitive closure of its imports inside the repository.

Static (AST) analysis, so imports inside functions count too (code a stage may run), and each
imported module brings its packages' `__init__.py`. A package `__init__` that imports every
module of its folder with `pkgutil.iter_modules(__path__)` brings the whole folder.

    python tests/import_closure.py stages/teacher.py   # the files, one a line
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_file(name: str, stage_dir: Path) -> Path | None:
    """The repository file of module `name` (rcskd.* or a sibling of the stage scripts)."""
    parts = name.split(".")
    if parts[0] != "rcskd":
        sibling = stage_dir / f"{name}.py"
        return sibling if len(parts) == 1 and sibling.is_file() else None
    base = REPO.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _imports_whole_package(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Attribute) and node.attr == "iter_modules" for node in ast.walk(tree)
    )


def closure(script: Path) -> set[Path]:
    """Every repository file (relative paths) that `script` imports, directly or not."""
    script = (REPO / script).resolve()
    todo, seen = [script], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        found: set[Path] = set()
        for name in _imported_names(tree):
            parts = name.split(".")
            for k in range(1, len(parts) + 1):  # a module brings its packages' __init__ files
                target = module_file(".".join(parts[:k]), script.parent)
                if target is not None:
                    found.add(target)
        if path.name == "__init__.py" and _imports_whole_package(tree):
            found.update(p for p in path.parent.glob("*.py") if p != path)
        todo.extend(found - seen)
    return {p.relative_to(REPO) for p in seen}


if __name__ == "__main__":
    for item in sorted(closure(Path(sys.argv[1]))):
        print(item)
