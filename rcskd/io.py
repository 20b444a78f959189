"""Atomic file output: write beside the target, then rename, so no reader sees half a file."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and a rename."""
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch_atomic(path: str | Path, payload: Any) -> None:
    """torch.save of plain data (tensors, dicts, lists, numbers, strings), atomically."""
    import torch  # here, so that the rest of this module stays light

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Pretty JSON, atomically."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=False, allow_nan=False)
    write_text_atomic(path, text + "\n")


def write_csv_atomic(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Rows (dicts with the same keys) as CSV with a header, atomically; floats to 6 digits."""
    fields = list(rows[0]) if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()})
    write_text_atomic(path, buffer.getvalue())


def json_safe(data: Any) -> Any:
    """Replace NaN and infinities (not JSON) by None, recursively."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def temp_dir_beside(path: str | Path) -> Path:
    """A fresh temporary folder next to `path` (same file system, so a rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    return tmp


def replace_dir(tmp: Path, target: str | Path) -> None:
    """Move the finished folder `tmp` to `target`, replacing what was there."""
    target = Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target`, else it goes."""
    tmp = temp_dir_beside(target)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, target)


def file_digest(path: str | Path) -> str:
    """Short SHA-256 of a file's bytes (ties a resumed run to the exact input checkpoint)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def run_fingerprint(*parts: Any) -> str:
    """A short hash of the plain data that defines a run (resume files refuse other runs)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
