"""Benchmark: CPU latency of teacher and student, PyTorch eager and onnxruntime.

    python benchmarks/latency.py [--teacher T.pt] [--student S.pt] [--repeats 30]

Batch 1 and 32, 1 and 2 threads, medians of `--repeats` runs, all in one process and
interleaved per setting (teacher then student), so that the student/teacher ratios are fair
on a shared machine. The student's speedup is set against its FLOPs ratio. Defaults: the
brain4-64 ResNet-18 teacher and its LPB-RL student at budget 0.5 (64 x 64 grey input).
Writes reports/bench/latency.json (+ .md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from bench_common import RESULTS, WORK, save_results

from rcskd.export.onnx import export_onnx, onnx_session, run_onnx
from rcskd.metrics.complexity import count_flops, count_params, time_call
from rcskd.models import load_checkpoint
from rcskd.tracking import git_commit

BATCHES, THREADS = (1, 32), (1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    base = WORK / "brain4-64-seed0"
    parser.add_argument("--teacher", default=str(base / "teacher_resnet18_seed0.pt"))
    parser.add_argument("--student", default=str(base / "pruned_ddpg_b0.5_seed0.pt"))
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    models, sessions, facts = {}, {}, {}
    tmp = Path(tempfile.mkdtemp())
    for role in ("teacher", "student"):
        checkpoint = load_checkpoint(getattr(args, role))
        model, spec = checkpoint.model, checkpoint.spec
        shape = checkpoint.require_inputs().shape
        models[role] = model
        export_onnx(model, tmp / f"{role}.onnx", torch.rand(2, *shape))
        facts[role] = {
            "file": getattr(args, role),
            "arch": spec.arch,
            "params": count_params(model),
            "flops": count_flops(model, shape),
        }
    rows = []
    previous = torch.get_num_threads()
    for threads in THREADS:
        torch.set_num_threads(threads)
        for role in models:
            sessions[role] = onnx_session(tmp / f"{role}.onnx", threads)
        for batch in BATCHES:
            x = torch.rand(batch, *shape)
            for role, model in models.items():  # interleaved: teacher, student per setting
                with torch.no_grad():
                    eager = time_call(lambda m=model, x=x: m(x), args.repeats)
                ort = time_call(lambda s=sessions[role], x=x: run_onnx(s, x), args.repeats)
                for runtime, t in (("eager", eager), ("onnxruntime", ort)):
                    timing = {k: round(v, 3) for k, v in t.items()}
                    rows.append({"model": role, "runtime": runtime, "threads": threads,
                                 "batch": batch, **timing})  # fmt: skip
                print(rows[-2], rows[-1], sep="\n")
    torch.set_num_threads(previous)

    def median(role, runtime, threads, batch):
        return next(r["median_ms"] for r in rows if (r["model"], r["runtime"], r["threads"],
                    r["batch"]) == (role, runtime, threads, batch))  # fmt: skip

    speedups = [
        {"runtime": rt, "threads": th, "batch": b,
         "teacher_ms": median("teacher", rt, th, b), "student_ms": median("student", rt, th, b),
         "speedup": median("teacher", rt, th, b) / median("student", rt, th, b)}
        for rt in ("eager", "onnxruntime") for th in THREADS for b in BATCHES
    ]  # fmt: skip
    flops_ratio = facts["student"]["flops"] / facts["teacher"]["flops"]
    results = {"git_commit": git_commit(Path(__file__).resolve().parents[1]),
               "torch": torch.__version__, "repeats": args.repeats, "models": facts,
               "flops_ratio": flops_ratio, "ideal_speedup": 1 / flops_ratio,
               "rows": rows, "speedups": speedups}  # fmt: skip
    save_results(RESULTS / "latency.json", results, markdown(results))


def markdown(results: dict) -> str:
    t, s = results["models"]["teacher"], results["models"]["student"]
    lines = [
        "# CPU latency: teacher vs LPB-RL student (brain4-64, 1 x 64 x 64 input)",
        "",
        f"Teacher {t['arch']} {t['params'] / 1e6:.2f} M params, {t['flops'] / 1e6:.0f} M FLOPs; "
        f"student {s['params'] / 1e6:.2f} M params, {s['flops'] / 1e6:.0f} M FLOPs "
        f"(FLOPs ratio {results['flops_ratio']:.3f}, i.e. at most "
        f"{results['ideal_speedup']:.2f}x faster if time followed FLOPs). Median of "
        f"{results['repeats']} runs, one process, teacher and student interleaved; 2 shared "
        "CPU cores, so absolute times are context only.",
        "",
        "| runtime | threads | batch | teacher ms | student ms | speedup |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["speedups"]:
        lines.append(f"| {r['runtime']} | {r['threads']} | {r['batch']} | {r['teacher_ms']:.2f} | "
                     f"{r['student_ms']:.2f} | {r['speedup']:.2f}x |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
