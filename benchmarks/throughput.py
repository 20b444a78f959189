"""Training throughput of the project's step loop against the fastest plain loop this
machine can run, and the LPB-RL search's seconds per candidate.

    python benchmarks/throughput.py --device cpu --image-size 64
    python benchmarks/throughput.py --device cuda --image-size 224      # on a GPU machine

Every loop trains the same model (the protocol teacher: ResNet-18 width 1.0, fresh weights of
the same seed) on the same images (Brain-4's training split at --image-size when the dataset is
there, else random images of that size, as recorded), with the same batch size, optimizer
(AdamW) and the same augmentation (a random horizontal flip: the plain loop does exactly that
and nothing else, so no augmentation cost hides in the ratio). The plain loop runs in four
forms: fp32 or bf16 autocast (fp16 on GPUs without native bf16), each in NCHW and in
channels-last. Project = `rcskd.train.loop.train_one_epoch` with the teacher's TrainConfig at
`--precision` (default auto: what the pipeline resolves to here) and `memory_format: auto`; it
is also timed with the teacher's full default augmentation. Timings are interleaved (one pass of
every loop per round) and the median over --repeats is kept. `ratio_to_fastest` is the
project's rate over the fastest plain form's; `ratio` over the plain loop in the project's own
precision and memory format. Appends a run to reports/bench/throughput.json (a run of the same
device, GPU, size and precision is replaced) and rewrites the Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time
from pathlib import Path

import torch
from bench_common import BRAIN4, RESULTS, brain4_params, load_results, prepared_brain4, save_results
from torch.nn import functional as F

from rcskd.config import AugmentConfig, Params, TrainConfig, params_from_dict
from rcskd.data.dataset import TensorSplit, load_splits
from rcskd.data.transforms import fit_preprocess
from rcskd.models import ModelSpec, build_model
from rcskd.prune.lpb_rl import run_search
from rcskd.tracking import git_commit
from rcskd.train import CrossEntropy, build_optimizer
from rcskd.train.loop import train_one_epoch
from rcskd.train.runtime import make_engine, native_bf16, place_split, prepare_model

FLIP_ONLY = AugmentConfig(0.5, 0, 0, 0, 0, 0, 0, 0)
REPO = Path(__file__).resolve().parents[1]


def training_images(size: int, n: int) -> tuple[TensorSplit, str]:
    """n training images at `size`: Brain-4's when present, else random uint8 images."""
    if BRAIN4.is_dir():
        params = brain4_params(0, prepare={"image_size": size, "channels": 1})
        train = load_splits(prepared_brain4(params))["train"]
        return TensorSplit(train.images[:n], train.labels[:n]), "brain4 train split"
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)
    return TensorSplit(images, torch.randint(0, 4, (n,), generator=g)), "random images"


def reference_epoch(
    model, optimizer, split: TensorSplit, cfg: TrainConfig, pre, device, dtype, channels_last
):
    """The minimal loop: index a batch, flip half of it, normalise, forward, backward, step."""
    model.train()
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(split.labels), generator=g).to(device)
    mean = torch.tensor(pre.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, -1, 1, 1)
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        x = split.images[idx].float().div(255.0)
        flip = torch.rand(len(idx), 1, 1, 1, device=device) < 0.5
        x = (torch.where(flip, x.flip(-1), x) - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x), split.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def timed(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def search_seconds_per_candidate(params: Params, split: TensorSplit, device, candidates: int):
    """Wall time of LPB-RL's random search through the real env / proxy path, per candidate."""
    torch.manual_seed(0)
    teacher = build_model(ModelSpec("resnet18", 4, 1, 1.0)).eval()
    pre = fit_preprocess(split.images)
    shape = tuple(split.images.shape[1:])
    raw = {"prune": {"search": "random", "compare_baselines": False,
                     "agent": {"episodes": candidates}}}  # fmt: skip
    search_params = params_from_dict({**raw, "seed": params.seed})
    splits = {"train": split, "val": split}
    start = time.perf_counter()
    run_search(search_params, teacher, splits, pre, shape, False, device)
    return (time.perf_counter() - start) / candidates


FORMS = ("fp32_nchw", "fp32_cl", "bf16_nchw", "bf16_cl")


def plain_forms(device: torch.device) -> dict[str, tuple[torch.dtype | None, bool]]:
    """The plain loop's four forms: (autocast dtype, channels-last). The low-precision forms
    use fp16 on a GPU without native bf16 (named bf16_* still, for one schema)."""
    low = torch.bfloat16 if device.type == "cpu" or native_bf16(device) else torch.float16
    return {"fp32_nchw": (None, False), "fp32_cl": (None, True),
            "bf16_nchw": (low, False), "bf16_cl": (low, True)}  # fmt: skip


def markdown(runs: list[dict]) -> str:
    head = ("| device | GPU | image | project precision | batch | project img/s | "
            + " | ".join(f"plain {f} img/s" for f in FORMS)
            + " | ratio to fastest | ratio to same form | project, full augmentation img/s "
            "| search s/candidate | threads | data |")  # fmt: skip
    lines = [
        "# Training throughput: the project's step loop against the fastest plain loop",
        "",
        "Same model (ResNet-18 width 1.0), images, batch, optimizer and device; both flip half",
        "of each batch. The plain loop in four forms (fp32/bf16 autocast x NCHW/channels-last);",
        "the project as `precision: auto` and `memory_format: auto` resolve on the machine.",
        "Medians of interleaved timings. `benchmarks/throughput.py`.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in runs:
        plain = r.get("plain_img_s", {})
        cells = " | ".join(f"{plain[f]:.1f}" if f in plain else "-" for f in FORMS)
        fastest = f"{r['ratio_to_fastest']:.3f}" if "ratio_to_fastest" in r else "-"
        lines.append(
            f"| {r['device']} | {r['gpu'] or '-'} | {r['image_size']} | "
            f"{r.get('project_precision', r['precision'])} | {r['batch_size']} | "
            f"{r['project_img_s']:.1f} | {cells} | {fastest} | {r['ratio']:.3f} | "
            f"{r['project_full_augment_img_s']:.1f} | {r['search_s_per_candidate']:.2f} | "
            f"{r['threads']} | {r['data']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="batches per timed pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=5, help="search candidates timed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as is)")
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    row = measure(args)
    results = load_results(args.out)
    key = ("device", "gpu", "image_size", "precision")
    kept = [r for r in results.get("runs", []) if [r[k] for k in key] != [row[k] for k in key]]
    results = {"runs": [*kept, row]}
    save_results(args.out, results, markdown(results["runs"]))
    print(
        f"{args.device} {args.image_size}px {row['project_precision']}: project "
        f"{row['project_img_s']} img/s, plain {row['plain_img_s']}, ratio to fastest "
        f"{row['ratio_to_fastest']}; search {row['search_s_per_candidate']} s/candidate"
    )


def measure(args: argparse.Namespace) -> dict:
    """One run of the benchmark: the row it appends."""
    device = torch.device(args.device)
    base = Params().teacher.train
    cfg = dataclasses.replace(base, batch_size=args.batch_size, precision=args.precision,
                              augment=FLIP_ONLY)  # fmt: skip
    full = dataclasses.replace(cfg, augment=base.augment)
    split, data = training_images(args.image_size, args.steps * args.batch_size)
    pre = fit_preprocess(split.images)
    engine = make_engine(cfg, device)
    resident = place_split(split, device, "always")
    torch.manual_seed(0)
    initial = build_model(ModelSpec("resnet18", 4, 1, 1.0))
    forms = plain_forms(device)
    models = {name: prepare_model(copy.deepcopy(initial), engine) for name in ("p", "f")}
    for name, (_, channels_last) in forms.items():
        model = copy.deepcopy(initial).to(device)
        models[name] = model.to(memory_format=torch.channels_last) if channels_last else model
    optimizers = {name: build_optimizer(m.parameters(), cfg) for name, m in models.items()}

    def project(config: TrainConfig, name: str):
        return lambda: train_one_epoch(
            models[name], CrossEntropy(), optimizers[name], resident, config, pre, 0, 0, device,
            show_progress=False, engine=engine,
        )  # fmt: skip

    def plain(name: str):
        dtype, channels_last = forms[name]
        return lambda: reference_epoch(
            models[name], optimizers[name], resident, cfg, pre, device, dtype, channels_last
        )

    runs = {"project": project(cfg, "p"), "full": project(full, "f")}
    runs.update({name: plain(name) for name in forms})
    for run in runs.values():  # warm-up (allocator, autotuning)
        run()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for key, run in runs.items():
            times[key].append(timed(run, device))
    images = len(split.labels)
    rate = {k: images / statistics.median(v) for k, v in times.items()}
    search = search_seconds_per_candidate(Params(), split, device, args.candidates)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    same = ("bf16" if engine.dtype is not None else "fp32") + (
        "_cl" if engine.channels_last else "_nchw"
    )
    plain_rates = {name: round(rate[name], 2) for name in forms}
    return {
        "device": args.device,
        "gpu": gpu,
        "image_size": args.image_size,
        "precision": args.precision,
        "project_precision": engine.precision,
        "project_channels_last": engine.channels_last,
        "batch_size": args.batch_size,
        "project_img_s": round(rate["project"], 2),
        "plain_img_s": plain_rates,
        "fastest_plain": max(plain_rates, key=plain_rates.get),
        "ratio_to_fastest": round(rate["project"] / max(rate[n] for n in forms), 4),
        "reference_img_s": plain_rates[same],
        "ratio": round(rate["project"] / rate[same], 4),
        "project_full_augment_img_s": round(rate["full"], 2),
        "search_s_per_candidate": round(search, 3),
        "data": data,
        "images_per_pass": images,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "git_commit": git_commit(REPO),
        "date": time.strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    main()
