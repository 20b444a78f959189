"""Benchmark: the deployment chain on Brain-4 (brain4-64), accuracy and CPU latency side by side.

    python benchmarks/deploy_brain4.py [--repeats 30]

Models: the protocol teacher (ResNet-18 width 1.0, the chosen recipe) in eager PyTorch and as
ONNX; the **shipped student**: the ship stage's rule (highest validation accuracy) applied to the
students of `patient_brain4.py` at its smallest budget, seed 0 and the length it found worth its
time, i.e. what `dvc repro` ships with those settings; and a latency-budget student (pruned and
fine-tuned, not distilled: the DDPG search, 60 candidates, max ratio 0.9, a 3-epoch fine-tune,
with `prune.resource: latency` and `--latency-budget` of the teacher's milliseconds, its
per-block table measured here: eager PyTorch, 1 thread, batch 1). Students run as FP32 ONNX and
INT8 ONNX (ONNX Runtime static quantisation, QDQ, per-channel weights, activations calibrated on
256 training images). Accuracy on the 1,311 test images with a paired bootstrap interval against
the eager teacher; latency = median of `--repeats` interleaved runs (every model once per round),
1 and 2 threads, batch 1 and 32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_common import (
    RESULTS,
    WORK,
    brain4_params,
    brain4_teacher,
    load_results,
    paired_interval,
    prepared_brain4,
    provenance,
    save_results,
)
from patient_brain4 import METHODS, final_checkpoint
from patient_brain4 import OUT as PATIENT_OUT
from patient_report import summarise, worth_length

from rcskd.data.dataset import load_splits
from rcskd.export.bundle import inference_metadata
from rcskd.export.onnx import export_onnx, onnx_logits, onnx_session
from rcskd.export.quantize import quantize_int8
from rcskd.io import write_json_atomic
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import load_checkpoint
from rcskd.prune.blocks import find_blocks
from rcskd.prune.latency import measure_latency_table
from rcskd.steps.prune import run_prune
from rcskd.steps.ship import ship_best
from rcskd.train import RunOptions

OUT = RESULTS / "deploy.json"


def latency_student(prepared: Path, folder: Path, budget: float) -> Path:
    """The student pruned to `budget` of the teacher's measured milliseconds (cached)."""
    path = folder / f"latency_b{budget}.pt"
    if path.is_file():
        return path
    teacher = brain4_teacher(0)
    params = brain4_params(0, prune={
        "budget": budget, "resource": "latency", "max_ratio": 0.9, "search": "ddpg",
        "compare_baselines": False, "agent": {"episodes": 60},
        "latency_table": {"batch_size": 1, "threads": 1, "repeats": 20},
        "finetune": {"epochs": 3, "balanced_sampling": True},
    })  # fmt: skip
    ckpt = load_checkpoint(teacher)
    shape = ckpt.require_inputs().shape
    t = params.prune.latency_table
    table = measure_latency_table(ckpt.model, find_blocks(ckpt.model, shape), shape,
                                  t.batch_size, t.threads, t.repeats)  # fmt: skip
    write_json_atomic(folder / "latency_table.json", table)
    result = run_prune(params, prepared, teacher, path, RunOptions(f"{path}.resume"),
                       folder / "latency_table.json")  # fmt: skip
    write_json_atomic(folder / f"latency_b{budget}.json", result.summary)
    return path


def shipped_student(prepared: Path, folder: Path) -> tuple[Path, dict[str, Any]]:
    """The ship stage's choice among the patient benchmark's students (smallest budget, seed 0,
    the length worth its time): the checkpoint and the ship summary plus where it came from."""
    patient = load_results(PATIENT_OUT)
    if not patient.get("runs"):
        raise SystemExit(f"{PATIENT_OUT} has no runs: run benchmarks/patient_brain4.py first")
    summarise(patient)
    worth = worth_length(patient)
    if worth is None:
        raise SystemExit(f"{PATIENT_OUT}: no length that every method has finished yet")
    budget, epochs = worth["budget"], worth["epochs"]
    candidates = folder / "candidates"
    candidates.mkdir(parents=True, exist_ok=True)
    for method in METHODS:  # named by method, as the pipeline's stages name their students
        source = final_checkpoint(method, budget, epochs, 0, "ddpg")
        if not source.is_file():
            raise SystemExit(f"{source} missing: rerun benchmarks/patient_brain4.py")
        (candidates / f"{method}.pt").write_bytes(source.read_bytes())
    paths = [candidates / f"{method}.pt" for method in METHODS]
    result = ship_best(prepared, paths, folder / "shipped.pt")
    return result.checkpoint, {**result.summary, "budget": budget, "epochs": epochs}


def build(prepared: Path, folder: Path, latency_budget: float) -> tuple[dict, dict[str, Any]]:
    """name -> {runner kind, path, checkpoint facts} for every model of the benchmark, and the
    ship summary of the shipped student."""
    splits = load_splits(prepared)
    folder.mkdir(parents=True, exist_ok=True)
    sources = {"teacher": brain4_teacher(0)}
    sources["shipped"], shipped = shipped_student(prepared, folder)
    sources[f"student_latency{latency_budget}"] = latency_student(prepared, folder, latency_budget)
    models: dict[str, dict[str, Any]] = {}
    for name, path in sources.items():  # each exists: its function built or checked it
        ckpt = load_checkpoint(path)
        inputs = ckpt.require_inputs()
        facts = {"params": count_params(ckpt.model), "flops": count_flops(ckpt.model, inputs.shape),
                 "preprocess": inputs.preprocess}  # fmt: skip
        onnx = export_onnx(ckpt.model, folder / f"{name}.onnx",
                           inputs.preprocess(splits["test"].images[:2]), 18,
                           inference_metadata(ckpt))  # fmt: skip
        if name == "teacher":
            models["teacher_fp32_eager"] = {"kind": "eager", "path": path, "model": ckpt.model,
                                            "size_bytes": path.stat().st_size, **facts}  # fmt: skip
            models["teacher_fp32_onnx"] = {"kind": "onnx", "path": onnx,
                                           "size_bytes": onnx.stat().st_size, **facts}  # fmt: skip
            continue
        order = torch.randperm(len(splits["train"].images),
                               generator=torch.Generator().manual_seed(0))  # fmt: skip
        calibration = inputs.preprocess(splits["train"].images[order[:256]])
        int8 = folder / f"{name}.int8.onnx"
        made = quantize_int8(onnx, int8, calibration, "static")
        models[f"{name}_fp32_onnx"] = {"kind": "onnx", "path": onnx,
                                       "size_bytes": onnx.stat().st_size, **facts}  # fmt: skip
        models[f"{name}_int8_onnx"] = {"kind": "onnx", "path": int8, "quantisation": made,
                                       "size_bytes": int8.stat().st_size, **facts}  # fmt: skip
    return models, shipped


def latencies(models: dict[str, dict[str, Any]], shape: tuple[int, ...], repeats: int) -> dict:
    """name -> {"<runtime>-t<threads>-b<batch>": median ms}, all models interleaved per round."""
    out: dict[str, dict[str, float]] = {name: {} for name in models}
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runners = {}
        for name, m in models.items():
            if m["kind"] == "eager":
                model = m["model"].eval()
                runners[name] = ("torch", lambda x, model=model: model(torch.from_numpy(x)))
            else:
                session = onnx_session(m["path"], threads, spin=False)
                runners[name] = ("onnx", lambda x, s=session: s.run(None, {"images": x}))
        for batch in (1, 32):
            x = rng.random((batch, *shape), dtype=np.float32)
            times: dict[str, list[float]] = {name: [] for name in models}
            with torch.no_grad():
                for k in range(3 + repeats):
                    for name, (_, run) in runners.items():
                        start = time.perf_counter()
                        run(x)
                        if k >= 3:
                            times[name].append((time.perf_counter() - start) * 1000)
            for name, (runtime, _) in runners.items():
                out[name][f"{runtime}-t{threads}-b{batch}"] = round(
                    statistics.median(times[name]), 4
                )
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Deployment chain on Brain-4 (brain4-64): accuracy and CPU latency",
        "",
        f"Machine: {results['provenance']['machine']}; onnxruntime and PyTorch, median of "
        f"{results['settings']['repeats']} interleaved runs. Test = 1,311 images; interval: paired "
        "bootstrap of the model minus the eager teacher.",
        "",
        f"Shipped student: `{results['shipped']['shipped']}` at budget "
        f"{results['shipped']['budget']}, {results['shipped']['epochs']} epochs (the ship rule, "
        f"{results['shipped']['rule']}, over {len(results['shipped']['candidates'])} methods of "
        "the patient benchmark). Latency student: pruned and fine-tuned, not distilled.",
        "",
        "| model | test acc | minus teacher (95% CI) | params | size MB | b1 t1 ms | b1 t2 ms "
        "| b32 t1 ms | b32 t2 ms | b1 t1 speedup vs eager / ONNX teacher |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results["models"].items():
        lat = m["latency_ms"]
        runtime = "torch" if name.endswith("eager") else "onnx"
        cells = [lat[f"{runtime}-t{t}-b{b}"] for b in (1, 32) for t in (1, 2)]
        lo, hi = m["minus_teacher_ci95"]
        speed = results["speedup_vs_teacher"][name]
        lines.append(
            f"| {name} | {m['test_acc']:.4f} | {m['minus_teacher']:+.4f} ({lo:+.4f}, {hi:+.4f}) | "
            f"{m['params']:,} | {m['size_bytes'] / 2**20:.2f} | "
            + " | ".join(f"{c:.3f}" for c in cells)
            + f" | {speed['eager-t1-b1']:.2f}x / {speed['onnx-t1-b1']:.2f}x |"
        )
    goal = results["goal"]
    ls = results["latency_student"]
    lines += ["", f"Goal (the shipped INT8 student: >= 4x the eager teacher and >= 2x the ONNX "
              f"teacher at batch 1, accuracy within 1 point): {goal}", "",
              f"Latency student: budget {ls['budget']} of the teacher's {ls['teacher_latency_ms']} "
              f"ms (eager, 1 thread, batch 1, per-block table); predicted share kept "
              f"{ls['achieved_latency_ratio']:.3f}; it keeps {ls['achieved_params_ratio']:.3f} of "
              f"the parameters and {ls['achieved_flops_ratio']:.3f} of the FLOPs.", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--latency-budget",
        type=float,
        default=0.3,
        help="share of the teacher's eager CPU ms the latency student keeps",
    )
    args = parser.parse_args()
    params = brain4_params(0)
    prepared = prepared_brain4(params)
    folder = WORK / "brain4-64-seed0" / "deploy"
    models, shipped = build(prepared, folder, args.latency_budget)
    test = load_splits(prepared)["test"]
    shape = tuple(test.images.shape[1:])
    timed = latencies(models, shape, args.repeats)
    correct = {}
    for name, m in models.items():
        images = m["preprocess"](test.images)
        if m["kind"] == "eager":
            with torch.no_grad():
                logits = torch.cat([m["model"](images[i : i + 128])
                                    for i in range(0, len(images), 128)]).numpy()  # fmt: skip
        else:
            logits = onnx_logits(m["path"], images)
        correct[name] = (logits.argmax(1) == test.labels.numpy()).astype(np.uint8)
    reference = correct["teacher_fp32_eager"]
    results: dict[str, Any] = {"models": {}, "speedup_vs_teacher": {}}
    for name, m in models.items():
        diff, ci = paired_interval(correct[name], reference)
        results["models"][name] = {
            "test_acc": float(correct[name].mean()), "test_acc_ci95": paired_interval(
                correct[name], np.zeros_like(correct[name]))[1],
            "minus_teacher": diff, "minus_teacher_ci95": ci,
            "params": m["params"], "flops": m["flops"], "size_bytes": m["size_bytes"],
            "latency_ms": timed[name], **({"quantisation": m["quantisation"]}
                                          if "quantisation" in m else {}),
        }  # fmt: skip
        mine = timed[name]["torch-t1-b1" if m["kind"] == "eager" else "onnx-t1-b1"]
        results["speedup_vs_teacher"][name] = {
            "eager-t1-b1": timed["teacher_fp32_eager"]["torch-t1-b1"] / mine,
            "onnx-t1-b1": timed["teacher_fp32_onnx"]["onnx-t1-b1"] / mine,
        }
    s = results["speedup_vs_teacher"]["shipped_int8_onnx"]
    m = results["models"]["shipped_int8_onnx"]
    met = s["eager-t1-b1"] >= 4 and s["onnx-t1-b1"] >= 2 and m["minus_teacher"] >= -0.01
    results["goal"] = (
        f"{'met' if met else 'not met'}: {s['eager-t1-b1']:.2f}x eager, {s['onnx-t1-b1']:.2f}x "
        f"ONNX, accuracy {m['minus_teacher']:+.4f} against the teacher"
    )
    search = json.loads((folder / f"latency_b{args.latency_budget}.json").read_text())
    results["latency_student"] = {k: search[k] for k in (
        "budget", "achieved_latency_ratio", "teacher_latency_ms", "achieved_params_ratio",
        "achieved_flops_ratio", "val_acc")}  # fmt: skip
    results["shipped"] = shipped
    teacher = results["models"]["teacher_fp32_eager"]
    results["summary"] = {
        "model": f"`{results['shipped']['shipped']}` student, budget "
                 f"{results['shipped']['budget']}, {m['params'] / 1e6:.2f}M parameters",
        "int8_acc": m["test_acc"], "teacher_acc": teacher["test_acc"],
        "speedup_b1": s["eager-t1-b1"],
    }  # fmt: skip
    results["settings"] = vars(args)
    results["provenance"] = provenance(params, prepared, [0])
    save_results(OUT, results, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
