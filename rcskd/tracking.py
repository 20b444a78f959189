"""MLflow tracking: the only module that imports mlflow.

Default store: `sqlite:///<repo>/mlflow.db` with artifacts in `<repo>/mlartifacts` (both
git-ignored), so `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows every stage's run.
`MLFLOW_TRACKING_URI` overrides the store, `MLFLOW_EXPERIMENT_NAME` the experiment ("rcskd").
Each stage is one run tagged with the stage, the git commit and the DVC experiment name.

Robustness: a remote server (`http(s)://`) must answer a health probe within
`PROBE_TIMEOUT_S` before a stage does any work (MLflow's own client retries for minutes); the
SQLite store is switched to write-ahead logging and first created under a file lock, so that
experiments run in parallel (`dvc queue start -j 2`) share it; any store failure at the start of
a stage is one TrackingError line.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rcskd.config import flatten
from rcskd.errors import RcskdError, TrackingError

DEFAULT_EXPERIMENT = "rcskd"
MAX_PARAM_CHARS = 500  # MLflow caps param values; long lists are truncated, not rejected
PROBE_TIMEOUT_S = 10.0
SQLITE_PREFIX = "sqlite:///"


def data_tags(meta: Mapping[str, Any]) -> dict[str, str]:
    """Tags naming the prepared data a run used: written by evaluate, matched by the report."""
    return {"data_fingerprint": str(meta["fingerprint"])}


def store_root(root: Path) -> Path:
    """The repository whose mlflow.db a stage logs to.

    `dvc exp run --queue` runs each experiment in a temporary copy under
    `<repo>/.dvc/tmp/exps/`; its runs belong in the repository's store, not in a copy that DVC
    deletes afterwards (the report's Pareto plot reads them back).
    """
    parts = root.resolve().parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root.resolve()


def tracking_uri(root: Path) -> str:
    """The tracking URI: MLFLOW_TRACKING_URI, else the repo's own sqlite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_root(root) / 'mlflow.db'}"


def check_server(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """A remote tracking server must answer within `timeout` seconds (any HTTP answer counts)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered (with an error status): the server is there
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLFLOW_TRACKING_URI={uri}: the tracking server does not answer ({reason}); start "
            "it, or unset MLFLOW_TRACKING_URI to log to the repository's mlflow.db"
        ) from None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """For a SQLite store: an exclusive lock on `<db>.lock` while held (no-op otherwise)."""
    if not uri.startswith(SQLITE_PREFIX):
        yield
        return
    import fcntl

    db = Path(uri[len(SQLITE_PREFIX) :].split("?", 1)[0])  # sqlite:////abs or sqlite:///rel
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if not db.exists() or db.stat().st_size == 0:
                import sqlite3

                # WAL: readers never block the writer, and writers wait instead of failing
                with sqlite3.connect(db, timeout=60) as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_experiment(mlflow: Any, root: Path) -> str:
    """Point MLflow at the store and return the experiment's id (created if new).

    Runs under the store lock: two processes creating the SQLite schema at once would collide.
    """
    uri = tracking_uri(root)
    check_server(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    mlflow.set_tracking_uri(uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    try:
        with store_lock(uri):
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is not None:
                return experiment.experiment_id
            artifacts = (store_root(root) / "mlartifacts").as_uri()
            return mlflow.create_experiment(name, artifact_location=artifacts)
    except RcskdError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow, SQLAlchemy and HTTP errors alike
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise TrackingError(f"MLflow store {uri}: {first}") from None


def git_commit(root: Path) -> str:
    """HEAD of the repository at `root`, or 'unknown' outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class StageRun:
    """What a stage may log to its MLflow run."""

    def __init__(self, mlflow: Any) -> None:
        self._mlflow = mlflow

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numeric leaves of a (nested) mapping under dotted names."""
        flat = flatten(dict(metrics))
        numeric = {
            k.replace("/", "."): float(v)
            for k, v in flat.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if numeric:
            self._mlflow.log_metrics(numeric, step=step)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copy a file or folder into the run's artifacts."""
        path = Path(path)
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path=folder or path.name)
        else:
            self._mlflow.log_artifact(str(path), artifact_path=folder)


@contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any],
    root: str | Path = ".",
    tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for `stage`, tagged (plus `tags`), log its params; yields a `StageRun`."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    root = Path(root)
    experiment_id = open_experiment(mlflow, root)
    run_tags = {
        "stage": stage,
        "git_commit": git_commit(root),
        "dvc_exp": os.environ.get("DVC_EXP_NAME", ""),
        **(tags or {}),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=run_tags):
        flat = {k: str(v)[:MAX_PARAM_CHARS] for k, v in flatten(dict(params)).items()}
        mlflow.log_params(flat)
        yield StageRun(mlflow)


def past_stage_runs(
    stage: str, root: str | Path = ".", tags: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Finished MLflow runs of `stage` (newest first) whose tags match `tags`: for cross-run plots.

    Read from MLflow rather than `dvc exp show` so that it works inside a running pipeline
    (DVC holds its repository lock then). An unreachable store gives an empty list.
    """
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri(Path(root)))
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    try:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            return []
        runs = mlflow.MlflowClient().search_runs(
            [experiment.experiment_id],
            " and ".join(
                [f"tags.stage = '{stage}'", "attributes.status = 'FINISHED'"]
                + [f"tags.{k} = '{v}'" for k, v in (tags or {}).items()]
            ),
            order_by=["attributes.start_time DESC"],
            max_results=500,
        )
    except Exception:  # a missing or locked store must not break the report
        return []
    return [
        {
            "run_id": r.info.run_id,
            "start_time": r.info.start_time,
            "dvc_exp": r.data.tags.get("dvc_exp", ""),
            "git_commit": r.data.tags.get("git_commit", ""),
            "metrics": dict(r.data.metrics),
        }
        for r in runs
    ]
