"""Class-per-folder layouts shared by the imagefolder and dicom sources.

Accepted layouts under `root`:
    root/<class>/**/file                      no split of its own: prepare carves train/val/test
    root/<split>/<class>/**/file              splits named Training/Testing, train/val/test, ...
Folder names are canonicalised (lower case, spaces and dashes to underscores) and mapped through
`data.class_aliases`, so `glioma_tumor`, `Glioma Tumor` and `glioma` are one class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rcskd.config import DataConfig
from rcskd.errors import DataError

SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass(frozen=True)
class FolderFile:
    """One file found in a class folder."""

    path: Path
    label: int
    split: str | None


@dataclass(frozen=True)
class FolderLayout:
    """Classes (label order) and files (sorted, so reading is deterministic)."""

    classes: list[str]
    files: list[FolderFile]


def canonical(name: str, aliases: dict[str, str]) -> str:
    """Canonical class name of a folder name."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    table = {k.strip().lower().replace(" ", "_").replace("-", "_"): v for k, v in aliases.items()}
    return table.get(key, key)


def _hidden(relative: Path) -> bool:
    """Dot files and anything in dot folders (e.g. .ipynb_checkpoints copies) are not data."""
    return any(part.startswith(".") for part in relative.parts)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(root: Path, cfg: DataConfig, accept: Callable[[Path], bool]) -> FolderLayout:
    """Find class folders (and split folders) under `root`; keep files for which `accept` is true.

    Raises DataError for a missing root, an empty class folder, a class outside `data.classes`,
    or class sets that differ between splits.
    """
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (data.root must point at the dataset's top folder)")
    top = _subdirs(root)
    split_dirs = {SPLIT_FOLDERS[d.name.lower()]: d for d in top if d.name.lower() in SPLIT_FOLDERS}
    if split_dirs and "train" not in split_dirs:
        raise DataError(f"{root}: split folders {sorted(split_dirs)} found but no training folder")
    groups: dict[str | None, Path] = split_dirs if split_dirs else {None: root}

    per_split: dict[str | None, dict[str, list[Path]]] = {}
    for split, folder in groups.items():
        classes: dict[str, list[Path]] = {}
        for class_dir in _subdirs(folder):
            name = canonical(class_dir.name, cfg.class_aliases)
            if cfg.classes and name not in cfg.classes:
                raise DataError(
                    f"{class_dir}: unknown class {name!r}; data.classes allows {cfg.classes} "
                    "(map the folder name to one of them in data.class_aliases)"
                )
            files = sorted(
                p
                for p in class_dir.rglob("*")
                if p.is_file() and not _hidden(p.relative_to(class_dir)) and accept(p)
            )
            if not files:
                raise DataError(f"{class_dir}: class folder has no usable files")
            classes.setdefault(name, []).extend(files)
        if not classes:
            raise DataError(f"{folder}: no class folders found")
        per_split[split] = classes

    sets = {split: sorted(classes) for split, classes in per_split.items()}
    first_split, first = next(iter(sets.items()))
    for split, names in sets.items():
        if names != first:
            raise DataError(
                f"{root}: class folders differ between splits: {groups[first_split].name} has "
                f"{first}, {groups[split].name} has {names}"
            )
    if cfg.classes:
        missing = [c for c in cfg.classes if c not in first]
        if missing:
            raise DataError(f"{root}: no folder for classes {missing} listed in data.classes")
        order = list(cfg.classes)
    else:
        order = first
    label_of = {name: i for i, name in enumerate(order)}
    files = [
        FolderFile(path, label_of[name], split)
        for split, classes in per_split.items()
        for name in sorted(classes)
        for path in classes[name]
    ]
    return FolderLayout(order, files)
