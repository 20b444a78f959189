"""The one error family of rcskd: messages name the file or key at fault and how to fix it."""

from __future__ import annotations

import sys
from collections.abc import Callable


class RcskdError(Exception):
    """Base class for every error rcskd raises on purpose."""


class ConfigError(RcskdError):
    """A params.yaml key or value is unknown, missing or out of range."""


class DataError(RcskdError):
    """An input file or folder cannot be used (unreadable, wrong structure, empty, inconsistent)."""


class OutputError(RcskdError):
    """An output cannot be written (read-only folder, disk full); what was there is unchanged."""


class TrackingError(RcskdError):
    """The MLflow tracking store cannot be reached or used."""


class LeakageError(DataError):
    """The same image or patient would appear in two splits."""


def run_reporting_errors(name: str, body: Callable[[], object]) -> int:
    """Run a command's body; an RcskdError becomes one line `name: error: ...` and exit code 2.

    Stages and the CLI use this so that bad input never ends in a traceback.
    """
    try:
        body()
    except RcskdError as exc:
        _close_progress_bars()
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _close_progress_bars() -> None:
    """End any progress bar the error interrupted, so that the error starts its own line (in
    DVC's logs it was glued to the bar's last refresh)."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.close()
