"""Atomic file output: write beside the target, then rename, so no reader sees half a file.

Temporary files and folders are named `.<target name>.<pid>.<random>.tmp`: a run killed before
its rename leaves one behind, and the next write beside the same target removes every such
leftover whose process is gone (a live writer's temp is never touched).
"""

from __future__ import annotations

import csv
import glob
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

from rcskd.errors import DataError, OutputError


def read_json(path: str | Path) -> Any:
    """A JSON file a stage was given; a missing or damaged one is one DataError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: not found; run the stage that writes it first") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable as JSON ({exc})") from None


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and a rename."""
    write_bytes_atomic(path, text.encode())


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove temporaries (and `.old-<pid>` folders) left beside `path` by killed writers."""
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        rest = leftover.name[len(path.name) + 2 :]
        pid_text = rest.split(".", 1)[0].removeprefix("old-")
        is_temp = leftover.name.endswith(".tmp") or rest.startswith("old-")
        if not (is_temp and pid_text.isdigit()) or _process_alive(int(pid_text)):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """An OSError inside the block (read-only folder, disk full) becomes one OutputError."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(
            f"{path}: cannot write it ({reason}); what was there is unchanged"
        ) from None


def check_writable(*paths: str | Path) -> None:
    """Fail early, before any work, when an output's folder cannot be written."""
    for path in paths:
        folder = Path(path).parent
        with writing(path):
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=_temp_prefix(Path(path)), suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
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
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    return tmp


def replace_dir(tmp: Path, target: str | Path) -> None:
    """Move the finished folder `tmp` to `target`, replacing what was there."""
    target = Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if old is not None:  # put the previous output back
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target`, else it goes."""
    tmp = temp_dir_beside(target)
    try:
        yield tmp
        with writing(target):
            replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
