"""The dotted keys of params.yaml, and the key a mistyped one most likely meant.

Used by the config loader's "unknown key" message (`teacher.epoch` -> did you mean
`teacher.train.epochs`?); rcskd/config.py, which declares the sections, passes their root.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing


def key_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of params.yaml's sections (`teacher.train.epochs`, ...)."""
    hints = typing.get_type_hints(cls)
    paths: list[str] = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        paths.append(path)
        if dataclasses.is_dataclass(hints[f.name]):
            paths += key_paths(hints[f.name], path + ".")
    return paths


def did_you_mean(unknown: str, root: type) -> str | None:
    """The known key a mistyped dotted key most likely meant: one in the same section whose
    last part is close (`teacher.epoch` -> `teacher.train.epochs`), else the closest path."""
    paths = [p for p in key_paths(root) if not unknown.startswith(p + ".")]  # not its own sections
    top, leaf = unknown.split(".", 1)[0], unknown.rsplit(".", 1)[-1]
    same_leaf = [
        p for p in paths
        if p.split(".", 1)[0] == top
        and difflib.get_close_matches(leaf, [p.rsplit(".", 1)[-1]], 1, 0.75)
    ]  # fmt: skip
    if same_leaf:
        return max(same_leaf, key=lambda p: difflib.SequenceMatcher(None, unknown, p).ratio())
    leaf_like = [  # elsewhere: the whole path close, and the last part at least similar
        p for p in paths
        if difflib.SequenceMatcher(None, leaf, p.rsplit(".", 1)[-1]).ratio() >= 0.5
    ]  # fmt: skip
    close = difflib.get_close_matches(unknown, leaf_like, 1, 0.75)
    return close[0] if close else None
