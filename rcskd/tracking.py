"""MLflow tracking: the only module that imports mlflow.

Default store: `sqlite:///<repo>/mlflow.db` with artifacts in `<repo>/mlartifacts` (both
git-ignored), so `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows every stage's run.
`MLFLOW_TRACKING_URI` overrides the store, `MLFLOW_EXPERIMENT_NAME` the experiment ("rcskd").
Each stage is one run tagged with the stage, the git commit and the DVC experiment name.
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

DEFAULT_EXPERIMENT = "rcskd"
MAX_PARAM_CHARS = 500  # MLflow caps param values; long lists are truncated, not rejected


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
    mlflow.set_tracking_uri(tracking_uri(root))
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        artifacts = (store_root(root) / "mlartifacts").as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
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
