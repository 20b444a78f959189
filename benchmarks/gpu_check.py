"""GPU acceptance check: the tiny phantom pipeline's real steps on one device, one command.

    make gpu-check                                   # on a machine with CUDA
    python benchmarks/gpu_check.py --device cpu      # the same checks on the CPU (a dry run)

It runs the pipeline's own step functions (the code the DVC stages call, without DVC and
MLflow): teacher, prune with the DDPG search, TKD-CA, DKD-SG and one baseline (KD) under
`precision` auto, bf16 and fp16 (fp16 is CUDA-only: skipped on the CPU), the TKD-CA stage again
with `train.compile: true`, export with INT8, evaluate on the test split, and `rcskd predict`;
data-parallel training with 2 processes (torchrun) where 2 GPUs are present (2 gloo processes
on the CPU); and the throughput rows of `benchmarks/throughput.py` (224 px on CUDA). It writes
`reports/bench/gpu_check.json` (or `--out`): `{"checks": [{"name", "device", "passed",
"seconds", "error"}, ...]}` with the device name and torch/CUDA versions (`passed` is null for
a check that does not apply, with the reason in `error`), prints a table and exits 1 when a
check failed. The slow test suite runs the CPU dry run, so the script cannot rot.

On a bare GPU machine (torch with CUDA, but not torch-pruning, stable-baselines3, ...):

1. here, where the package index is reachable:
     make gpu-bundle       # gpu_bundle/: the tiny prepared phantom + the wheels the steps need
   (`pip download --no-deps --only-binary=:all: --python-version 3.12 --platform
   manylinux2014_x86_64 -d gpu_bundle/wheels <packages below>`; the phantom is prepared here
   because its generator needs nilearn);
2. there, with gpu_bundle/ beside the checkout (it is git-ignored; carry it):
     python benchmarks/gpu_check.py --bundle gpu_bundle
   which installs from gpu_bundle/wheels only the packages that do not import
   (`pip install --no-deps --no-index`) and uses the prepared data.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# module -> the pinned distribution that provides it (pyproject.toml's pins)
NEEDED = {
    "torch_pruning": "torch-pruning==1.6.1",
    "stable_baselines3": "stable-baselines3==2.9.2",
    "gymnasium": "gymnasium==1.4.0",
    "cloudpickle": "cloudpickle",
    "farama_notifications": "farama-notifications",
    "captum": "captum==0.9.0",
    "torch_geometric": "torch-geometric==2.8.1",
    "onnx": "onnx==1.23.1",
    "onnxscript": "onnxscript==0.7.2",
    "onnx_ir": "onnx-ir",
    "ml_dtypes": "ml-dtypes",
    "onnxruntime": "onnxruntime==1.30.0",
    "scipy": "scipy==1.17.1",
    "yaml": "pyyaml==6.0.4",
    "tqdm": "tqdm==4.70.1",
    "h5py": "h5py==3.16.0",
    "matplotlib": "matplotlib==3.11.2",
}
# the tiny phantom pipeline of the test suite (tests/repo_copy.py), a little larger, one search
GPU_SIZES: dict[str, Any] = {
    "data": {"phantom": {"patients": 24}},
    "prune": {"compare_baselines": False},
    "distill": {
        "methods": {"tkd_ca": {"tkd_ca": {}}, "dkd_sg": {"dkd_sg": {}}, "kd": {"kd": {}}},
    },
}


@dataclasses.dataclass
class Check:
    name: str
    device: str
    passed: bool | None
    seconds: float
    error: str


class Checks:
    """Runs named checks, records each (a failure is recorded, never raised), prints a row."""

    def __init__(self, device: str) -> None:
        self.device, self.rows = device, []

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # a check fails; the others still run
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.add(Check(name, self.device, False, time.perf_counter() - start, detail))
            traceback.print_exc()
            return None
        self.add(Check(name, self.device, True, time.perf_counter() - start, ""))
        return value

    def skip(self, name: str, why: str) -> None:
        self.add(Check(name, self.device, None, 0.0, f"skipped: {why}"))

    def add(self, check: Check) -> None:
        self.rows.append(check)
        mark = {True: "ok", False: "FAILED", None: "skip"}[check.passed]
        print(f"[{mark:>6}] {check.name} ({check.seconds:.1f} s) {check.error}", flush=True)


def install_missing(wheels: Path | None) -> list[str]:
    """Install from `wheels` the distributions whose modules do not import; return them."""
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if not missing:
        return []
    if wheels is None:
        raise SystemExit(
            f"missing modules {missing}: build the bundle where the index is reachable "
            "(make gpu-bundle) and pass --bundle (see this script's docstring)"
        )
    names = [NEEDED[m] for m in missing]
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                    "--find-links", str(wheels), *names], check=True)  # fmt: skip
    importlib.invalidate_caches()
    return names


def tiny_params(device: str, precision: str = "auto", **changes: dict) -> Any:
    """The tiny pipeline's Params on `device` with every training run in `precision`."""
    from rcskd.config import params_from_dict
    from tests.repo_copy import TINY

    raw = json.loads(json.dumps(TINY))
    _merge(raw, GPU_SIZES)
    raw["seed"], raw["device"] = 0, device
    for section in (raw["teacher"]["train"], raw["prune"]["finetune"], raw["distill"]["train"]):
        section["precision"] = precision
    for key, value in changes.items():
        _merge(raw.setdefault(key, {}), value)
    return params_from_dict(raw, source="gpu_check")


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def pipeline(checks: Checks, params: Any, prepared: Path, work: Path, tag: str) -> dict:
    """teacher -> prune (search) -> TKD-CA -> DKD-SG, plus KD: each a check; the checkpoints."""
    from rcskd.steps.distill import run_distill
    from rcskd.steps.prune import run_prune
    from rcskd.steps.teacher import train_teacher
    from rcskd.train import RunOptions

    quiet = RunOptions(show_progress=False)
    work.mkdir(parents=True, exist_ok=True)
    out = {name: work / f"{name}.pt" for name in ("teacher", "pruned", "student_tkd", "student")}
    out["kd"] = work / "kd.pt"
    steps = [
        ("teacher", lambda: train_teacher(params, prepared, out["teacher"], quiet)),
        ("prune", lambda: run_prune(params, prepared, out["teacher"], out["pruned"], quiet)),
        ("tkd_ca", lambda: run_distill(params, "tkd_ca", prepared, out["teacher"], out["pruned"],
                                       out["student_tkd"], quiet)),
        ("dkd_sg", lambda: run_distill(params, "dkd_sg", prepared, out["teacher"],
                                       out["student_tkd"], out["student"], quiet)),
        ("baseline kd", lambda: run_distill(params, "kd", prepared, out["teacher"], out["pruned"],
                                            out["kd"], quiet)),
    ]  # fmt: skip
    for name, step in steps:
        result = checks.run(f"{name} [{tag}]", step)
        if result is None:
            break
        finite = all(
            v == v for row in result.history for k, v in row.items() if k.startswith("train_")
        )
        if not finite:
            checks.add(Check(f"{name} [{tag}] finite", checks.device, False, 0.0, "NaN loss"))
    return out


def export_evaluate_predict(checks: Checks, params: Any, prepared: Path, models: dict) -> None:
    """Ship the validation-best student, export it (FP32 ONNX, TorchScript, INT8), evaluate
    every model, predict a few files."""
    from PIL import Image

    from rcskd.data.dataset import load_splits
    from rcskd.export.bundle import export_bundle
    from rcskd.predict import Predictor, predict_paths
    from rcskd.steps.evaluate import evaluate_models
    from rcskd.steps.ship import ship_best

    folder = models["student"].parent / "export"
    shipped = models["student"].parent / "shipped.pt"
    students = [models[k] for k in ("student", "student_tkd", "kd") if models[k].is_file()]
    checks.run("ship (validation-best student)", lambda: ship_best(prepared, students, shipped))
    checks.run("export + INT8", lambda: export_bundle(
        shipped, folder, prepared, params.export.opset, int8=params.export))  # fmt: skip
    paths = [p for p in models.values() if p.is_file()] + sorted(folder.glob("*.int8.onnx"))
    result = checks.run("evaluate", lambda: evaluate_models(params, prepared, paths, print))
    if result is not None and len(result.reports) != len(paths):
        checks.add(Check("evaluate scores", checks.device, False, 0.0, "a model was not scored"))
    images = load_splits(prepared)["test"].images[:4]
    files = []
    for k, image in enumerate(images):
        path = folder / f"input_{k}.png"
        Image.fromarray(image[0].numpy()).save(path)
        files.append(path)

    def predict() -> None:
        rows = predict_paths(Predictor(shipped), files)
        assert len(rows) == len(files) and all(r.error is None for r in rows), rows

    checks.run("predict", predict)


def data_parallel(checks: Checks, device: str, prepared: Path, work: Path) -> None:
    """2 processes under torchrun: teacher, prune (search on rank 0) and TKD-CA, data-parallel."""
    import torch

    if device == "cuda" and torch.cuda.device_count() < 2:
        checks.skip("DDP 2 processes", f"{torch.cuda.device_count()} GPU(s) here, 2 needed")
        return
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, "--ddp-worker", "--device", device,
               "--prepared", str(prepared), "--work", str(work / "ddp")]  # fmt: skip

    def run() -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"torchrun exit {done.returncode}: {done.stderr[-2000:]}")
        if not (work / "ddp" / "student_tkd.pt").is_file():
            raise RuntimeError("rank 0 wrote no TKD-CA student")

    checks.run("DDP 2 processes (teacher, prune, TKD-CA)", run)


def ddp_worker(args: argparse.Namespace) -> None:
    """One torchrun process of `data_parallel` (joins the group like a stage does)."""
    from rcskd.distributed import close_distributed, init_distributed
    from rcskd.steps.distill import run_distill
    from rcskd.steps.prune import run_prune
    from rcskd.steps.teacher import train_teacher
    from rcskd.train import RunOptions

    params = tiny_params(args.device, distributed={"nproc_per_node": 2})
    init_distributed(args.device)
    try:
        quiet, work = RunOptions(show_progress=False), Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        train_teacher(params, args.prepared, work / "teacher.pt", quiet)
        run_prune(params, args.prepared, work / "teacher.pt", work / "pruned.pt", quiet)
        run_distill(params, "tkd_ca", args.prepared, work / "teacher.pt", work / "pruned.pt",
                    work / "student_tkd.pt", quiet)  # fmt: skip
    finally:
        close_distributed()


def throughput_rows(checks: Checks, device: str, size: int) -> list[dict]:
    """benchmarks/throughput.py's rows (its own measure()) at `size` px, auto and fp32."""
    import throughput

    rows = []
    steps, repeats = (10, 3) if device == "cuda" else (2, 1)
    for precision in ("auto", "fp32"):
        args = argparse.Namespace(
            device=device, image_size=size, precision=precision, batch_size=64, steps=steps,
            repeats=repeats, candidates=2,
        )  # fmt: skip
        row = checks.run(
            f"throughput {size} px [{precision}]", lambda a=args: throughput.measure(a)
        )
        if row is not None:
            rows.append(row)
    return rows


def prepared_data(checks: Checks, given: Path | None, work: Path) -> Path | None:
    """The tiny phantom's prepared cache: given (a bundle), or prepared here (needs nilearn)."""
    if given is not None:
        return given
    from rcskd.steps.prepare import run_prepare

    out = work / "prepared"
    if (out / "meta.json").is_file():
        return out
    params = tiny_params("cpu")
    done = checks.run(
        "prepare (tiny phantom, CPU)", lambda: run_prepare(params, out, show_progress=False)
    )
    return out if done is not None else None


def environment(device: str) -> dict[str, Any]:
    import platform

    import torch
    from bench_common import cpu_name

    from rcskd.tracking import git_commit
    from rcskd.train.runtime import native_bf16

    cuda = device == "cuda"
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if cuda else cpu_name(),
        "gpus": torch.cuda.device_count() if cuda else 0,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "native_bf16": native_bf16(torch.device(device)),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "git_commit": git_commit(REPO),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def table(rows: list[Check]) -> str:
    lines = ["| check | device | result | seconds | error |", "|---|---|---|---|---|"]
    for r in rows:
        mark = {True: "passed", False: "FAILED", None: "skipped"}[r.passed]
        error = r.error.replace("|", "/").replace("\n", " ")[:160]
        lines.append(f"| {r.name} | {r.device} | {mark} | {r.seconds:.1f} | {error} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="default: cuda when present, else cpu (a dry run)")  # fmt: skip
    parser.add_argument("--bundle", type=Path, help="folder with wheels/ and prepared/")
    parser.add_argument("--prepared", type=Path, help="a prepared tiny phantom")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "gpu_check")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench" / "gpu_check.json")
    parser.add_argument("--throughput-size", type=int, help="default 224 on CUDA, 32 on CPU")
    parser.add_argument("--no-compile", action="store_true", help="leave out the compile check")
    parser.add_argument(
        "--prepare-only", type=Path, metavar="DIR", help="prepare the tiny phantom into DIR, stop"
    )
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare_only is not None:
        from rcskd.steps.prepare import run_prepare

        run_prepare(tiny_params("cpu"), args.prepare_only, show_progress=False)
        return 0
    if args.bundle is not None:
        installed = install_missing(args.bundle / "wheels")
        if installed:
            print("installed from the bundle:", ", ".join(installed))
        args.prepared = args.prepared or args.bundle / "prepared"
    else:
        install_missing(None)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.ddp_worker:
        ddp_worker(argparse.Namespace(**{**vars(args), "device": device}))
        return 0
    start = time.perf_counter()
    checks = Checks(device)
    prepared = prepared_data(checks, args.prepared, args.work)
    models: dict = {}
    if prepared is not None:
        for precision in ("auto", "bf16", "fp16"):
            if precision == "fp16" and device != "cuda":
                checks.skip("pipeline [fp16]", "fp16 autocast needs CUDA")
                continue
            params = tiny_params(device, precision)
            out = pipeline(checks, params, prepared, args.work / precision, precision)
            models = models or out
        if args.no_compile:
            checks.skip("tkd_ca [compile]", "--no-compile")
        else:
            params = tiny_params(device, distill={"train": {"compile": True}})
            from rcskd.steps.distill import run_distill
            from rcskd.train import RunOptions

            checks.run("tkd_ca [auto, compile]", lambda: run_distill(
                params, "tkd_ca", prepared, models["teacher"], models["pruned"],
                args.work / "compiled_tkd.pt", RunOptions(show_progress=False)))  # fmt: skip
        export_evaluate_predict(checks, tiny_params(device), prepared, models)
        data_parallel(checks, device, prepared, args.work)
    size = args.throughput_size or (224 if device == "cuda" else 32)
    rows = throughput_rows(checks, device, size)
    report = {
        **environment(device),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "passed": all(c.passed is not False for c in checks.rows),
        "checks": [dataclasses.asdict(c) for c in checks.rows],
        "throughput": rows,
    }
    from rcskd.io import write_json_atomic, write_text_atomic

    write_json_atomic(args.out, report)
    title = f"# GPU acceptance check ({device}: {report['device_name']}, {report['date']})"
    write_text_atomic(args.out.with_suffix(".md"), f"{title}\n\n{table(checks.rows)}")
    print(table(checks.rows))
    print(f"{'all passed' if report['passed'] else 'FAILED'} in {report['wall_seconds']} s; "
          f"{args.out}")  # fmt: skip
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
