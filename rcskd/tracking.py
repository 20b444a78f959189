"""MLflow tracking: the only module that imports mlflow.

Default store: `sqlite:///<repo>/mlflow.db` with artifacts in `<repo>/mlartifacts` (both
git-ignored), so `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows every stage's run.
`MLFLOW_TRACKING_URI` overrides the store, `MLFLOW_EXPERIMENT_NAME` the experiment ("rcskd"),
created as a model-training experiment (not MLflow 3's GenAI view).

One pipeline execution is one parent run, named by the DVC experiment (`dvc exp run`) or, for a
plain `dvc repro`, by the commit and a digest of params.yaml; it holds the whole flattened
params.yaml, the headline metrics (evaluate) and the prepared dataset as an input. Each stage is
a child run named `<stage>`, tagged with the stage, the commit and the pipeline.
Models are logged and registered as MLflow pyfunc models from code (`rcskd/mlflow_pyfunc.py`,
the only other file that imports mlflow: MLflow runs it when a registered model is loaded).

Robustness: a remote server (`http(s)://`) must answer a health probe within
`PROBE_TIMEOUT_S` before a stage does any work (MLflow's own client retries for minutes); the
SQLite store is switched to write-ahead logging and first created under a file lock, so that
experiments run in parallel (`dvc queue start -j 2`) share it; any store failure at the start of
a stage is one TrackingError line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rcskd import __version__
from rcskd.config import flatten
from rcskd.errors import RcskdError, TrackingError

DEFAULT_EXPERIMENT = "rcskd"
# MLflow 3 opens an experiment without this tag in its GenAI view (traces, assistant).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
PIPELINE_TAG = "pipeline"  # the parent's key, on the parent and on every stage run
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag
BATCH = 100  # MLflow's limit of params per log_batch call
PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")
MAX_PARAM_CHARS = 500  # MLflow caps param values; long lists are truncated, not rejected
PROBE_TIMEOUT_S = 10.0
SQLITE_PREFIX = "sqlite:///"
# the start of MLflow's two warnings about inferring a signature (they begin with ANSI colour)
_SIGNATURE_ADVICE = r".*(Add type hints to the `predict` method|An input example was not provided)"


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
                for key, value in EXPERIMENT_KIND.items():  # stores made before the tag
                    if experiment.tags.get(key) != value:
                        mlflow.MlflowClient().set_experiment_tag(
                            experiment.experiment_id, key, value
                        )
                return experiment.experiment_id
            artifacts = (store_root(root) / "mlartifacts").as_uri()
            return mlflow.create_experiment(name, artifact_location=artifacts,
                                            tags=EXPERIMENT_KIND)  # fmt: skip
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


def pipeline_key(pipeline: Mapping[str, Any], commit: str) -> tuple[str, str]:
    """(key, display name) of the pipeline execution a stage belongs to: the DVC experiment's
    name under `dvc exp run`, else the commit and a digest of the whole params.yaml (a plain
    `dvc repro` of other params on the same commit is another execution)."""
    exp = os.environ.get("DVC_EXP_NAME", "")
    if exp:  # with its baseline: a name reused after `dvc exp remove` is another execution
        baseline = os.environ.get("DVC_EXP_BASELINE_REV", "")[:7]
        return (f"{exp}@{baseline}" if baseline else exp), exp
    text = json.dumps(flatten(dict(pipeline)), sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{commit[:7]}-{digest}", f"dvc repro @ {commit[:7]} (params {digest})"


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric leaves of a nested mapping under dotted names."""
    return {
        k.replace("/", "."): float(v)
        for k, v in flatten(dict(metrics)).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def parent_run(mlflow: Any, experiment_id: str, pipeline: Mapping[str, Any], commit: str) -> str:
    """The id of this pipeline execution's parent run, created (with all params) if new.

    Called under the store lock, so stages of parallel experiments never create one twice.
    """
    from mlflow.entities import Param, RunStatus

    key, name = pipeline_key(pipeline, commit)
    client = mlflow.MlflowClient()
    found = client.search_runs([experiment_id], f"tags.{PIPELINE_TAG} = '{key}' and "
                               "tags.kind = 'pipeline'", max_results=1)  # fmt: skip
    if found:
        return found[0].info.run_id
    tags = {PIPELINE_TAG: key, "kind": "pipeline", "git_commit": commit,
            "dvc_exp": os.environ.get("DVC_EXP_NAME", "") or "workspace"}  # fmt: skip
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    flat = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in flatten(dict(pipeline)).items()]
    for i in range(0, len(flat), BATCH):
        client.log_batch(run.info.run_id, params=flat[i : i + BATCH])
    client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run.info.run_id


# `inputs` below is an rcskd.models.InputSpec, not imported: tracking stays below the models
# (every stage imports tracking; most never load a model).
def signature_of(inputs: Any) -> Any:
    """MLflow's signature for a model trained with `inputs` (unnamed tensors: `predict` takes
    the image array itself)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    size = inputs.image_size
    images = TensorSpec(np.dtype(np.uint8), (-1, inputs.channels, size, size))
    probs = TensorSpec(np.dtype(np.float32), (-1, len(inputs.classes)))
    return ModelSignature(Schema([images]), Schema([probs]))


class StageRun:
    """What a stage may log to its MLflow run (and to its pipeline's parent run)."""

    def __init__(self, mlflow: Any, parent_id: str | None = None) -> None:
        self._mlflow = mlflow
        self.parent_id = parent_id

    def log_pipeline_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Log the numeric leaves of `metrics` on the parent run (the headline metrics)."""
        from mlflow.entities import Metric

        numeric = _numeric(metrics)
        if self.parent_id is None or not numeric:
            return
        now = int(1000 * time.time())
        batch = [Metric(k, v, now, 0) for k, v in numeric.items()]
        self._mlflow.MlflowClient().log_batch(self.parent_id, metrics=batch)

    def log_prepared(self, prepared: str | Path, context: str) -> None:
        """The prepared data (its meta.json: source, fingerprint) as an MLflow dataset input of
        this run and of the parent run; `context` is "training" or "evaluation"."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        path = Path(prepared)
        meta = json.loads((path / "meta.json").read_text())
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both local
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(str(path.resolve()))
        dataset = MetaDataset(source,
                              name=f"prepared-{meta.get('source', 'data')}",
                              digest=str(meta["fingerprint"])[:36])  # fmt: skip
        self._mlflow.log_input(dataset, context=context)
        if self.parent_id is None:
            return
        from mlflow.entities import DatasetInput, InputTag

        client = self._mlflow.MlflowClient()
        have = client.get_run(self.parent_id).inputs.dataset_inputs
        if not any(d.dataset.digest == dataset.digest for d in have):
            entry = DatasetInput(dataset._to_mlflow_entity(),
                                 [InputTag("mlflow.data.context", context)])  # fmt: skip
            client.log_inputs(self.parent_id, [entry])

    def log_model(
        self, checkpoint: str | Path, inputs: Any, name: str, registered_name: str
    ) -> str:
        """Log `checkpoint` as model `name` of this run, registered as `registered_name`
        (`rcskd-student`, `rcskd-pruned`); returns the model URI.

        The model is `rcskd/mlflow_pyfunc.py` (models from code: nothing pickled) with the
        checkpoint as its artifact and a signature from its InputSpec: uint8 images
        (-1, C, H, W) in, probabilities (-1, classes) out.
        """
        import torch

        mlflow = self._mlflow
        # MLflow advises type hints or an input example to infer a signature; ours is given
        # explicitly, and an example would copy (patient) images into every logged model. An
        # "ignore" filter cannot drop that advice: log_model pushes its own UserWarning filter in
        # front, so its warnings are collected here and all others passed on.
        with warnings.catch_warnings(record=True) as caught:
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(PYFUNC_CODE),
                artifacts={"checkpoint": str(checkpoint)},
                signature=signature_of(inputs),
                registered_model_name=registered_name,
                # named, not inferred: inference would load the model in a subprocess (slow)
                pip_requirements=[
                    f"rcskd=={__version__}",
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"mlflow=={mlflow.__version__}",
                ],  # fmt: skip
                metadata={"classes": inputs.classes, "source": inputs.source},
            )
        for w in caught:
            if not re.match(_SIGNATURE_ADVICE, str(w.message)):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return info.model_uri

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numeric leaves of a (nested) mapping under dotted names."""
        numeric = _numeric(metrics)
        if numeric:
            self._mlflow.log_metrics(numeric, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tag this run (e.g. the precision `auto` resolved to: a string, not a metric)."""
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

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
    pipeline: Mapping[str, Any] | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for `stage`, tagged (plus `tags`), log its params; yields a `StageRun`.

    With `pipeline` (all of params.yaml as plain data) the run is a child of its pipeline
    execution's parent run (created by the first stage that runs).
    """
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    root = Path(root)
    experiment_id = open_experiment(mlflow, root)
    commit = git_commit(root)
    run_tags = {
        "stage": stage,
        "git_commit": commit,
        "dvc_exp": os.environ.get("DVC_EXP_NAME", "") or "workspace",
        **(tags or {}),
    }
    parent_id = None
    if pipeline is not None:
        with store_lock(tracking_uri(root)):
            parent_id = parent_run(mlflow, experiment_id, pipeline, commit)
        run_tags[PIPELINE_TAG] = pipeline_key(pipeline, commit)[0]
        run_tags[PARENT_TAG] = parent_id
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=run_tags):
        flat = {k: str(v)[:MAX_PARAM_CHARS] for k, v in flatten(dict(params)).items()}
        mlflow.log_params(flat)
        yield StageRun(mlflow, parent_id)
    if parent_id is not None:  # the parent spans its stages: it ends when the last one does
        mlflow.MlflowClient().set_terminated(parent_id, "FINISHED", int(1000 * time.time()))


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
