"""What every stage script shares: required path arguments, params, errors, MLflow, writing.

A stage script parses the paths DVC passes (every one required: dvc.yaml names each path a
stage reads or writes), loads params.yaml, calls one `rcskd.steps` function and writes its
result. Errors become one line and exit code 2 (`run_reporting_errors`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rcskd.config import Params, as_dict, load_params
from rcskd.distributed import (
    check_process_count,
    close_distributed,
    dist_context,
    init_distributed,
    launched_by_torchrun,
    resolve_device,
)
from rcskd.errors import run_reporting_errors
from rcskd.io import check_writable, write_csv_atomic, write_json_atomic
from rcskd.tracking import StageRun, stage_run

PATH_HELP = "a path this stage reads or writes (dvc.yaml names it)"
ENGINE_TAGS = ("device", "precision", "channels_last", "world_size", "threads")


def stage_parser(description: str | None, *paths: str) -> argparse.ArgumentParser:
    """A parser with `--params` and each of `paths` (e.g. "--out") as a required path."""
    parser = argparse.ArgumentParser(description=(description or "").split("\n")[0])
    parser.add_argument("--params", type=Path, required=True, help="params.yaml")
    for name in paths:
        parser.add_argument(name, type=Path, required=True, help=PATH_HELP)
    return parser


def run_stage(
    name: str,
    params_path: Path,
    body: Callable[[Params], Any],
    distributed: bool = False,
    outputs: Sequence[Path] = (),
) -> int:
    """Load params and run `body(params)`; an RcskdError is one line and exit code 2.

    Every path in `outputs` must be writable before any work starts (a read-only folder is
    one line, and the previous outputs stay as they were).

    A `distributed` (training) stage with `distributed.nproc_per_node` > 1 relaunches itself
    through PyTorch's elastic launcher, so `dvc repro` still calls `python stages/<stage>.py`;
    started by torchrun (by that relaunch or by a user, on one machine or several), it joins
    the process group: nccl on CUDA, gloo on CPU.
    """
    relaunch: list[int] = []

    def run() -> None:
        params = load_params(params_path)
        check_writable(*outputs)
        nproc = params.distributed.nproc_per_node
        if distributed and nproc > 1 and not launched_by_torchrun():
            check_process_count(nproc, resolve_device(params.device))
            relaunch.append(_torchrun(nproc))
            return
        if distributed:
            init_distributed(resolve_device(params.device))
        try:
            body(params)
        finally:
            close_distributed()

    code = run_reporting_errors(name, run)
    return relaunch[0] if relaunch else code


def _torchrun(nproc: int) -> int:
    """Run this script again under torch.distributed.run with `nproc` processes."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", sys.argv[0], *sys.argv[1:]]  # fmt: skip
    return subprocess.run(command, check=False).returncode


class _NoRun:
    """What processes other than rank 0 log to: nothing (one MLflow run per stage)."""

    def log_pipeline_metrics(self, metrics: Mapping[str, Any]) -> None:
        pass

    def log_prepared(self, prepared: str | Path, context: str) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass


@contextmanager
def tracked(
    stage: str,
    section: Mapping[str, Any],
    params: Params,
    prepared: Path | None = None,
    context: str = "training",
    **kw: Any,
) -> Iterator[Any]:
    """The stage's MLflow run on rank 0 (a child of the pipeline's parent run, with the
    prepared data as its dataset input); a run that logs nothing on the other processes."""
    if dist_context().is_main:
        with stage_run(stage, section, pipeline=as_dict(params), **kw) as tracker:
            if prepared is not None:
                tracker.log_prepared(prepared, context)
            yield tracker
    else:
        yield _NoRun()


def is_main() -> bool:
    """Only rank 0 writes a stage's outputs."""
    return dist_context().is_main


def log_epochs(tracker: StageRun) -> Callable[[dict[str, float]], None]:
    """An `on_epoch` callback logging each epoch's row to MLflow at step = epoch."""
    return lambda row: tracker.log_metrics(row, step=int(row["epoch"]))


def write_training(
    result: Any, report: Path, curve: Path, tracker: StageRun, *artifacts: Path
) -> None:
    """Write a TrainResult's summary (JSON) and curve (CSV); log both and the artifacts (rank 0
    alone writes)."""
    if not is_main():
        return
    write_csv_atomic(curve, result.history)
    write_json_atomic(report, result.summary)
    tracker.log_metrics({"summary": {k: v for k, v in result.summary.items() if k != "spec"}})
    # how the run trained, as `auto` resolved on this machine (strings: tags, not metrics)
    tracker.set_tags({k: result.summary[k] for k in ENGINE_TAGS if k in result.summary})
    for path in (report, curve, result.checkpoint, *artifacts):
        tracker.log_artifact(path)
