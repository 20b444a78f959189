"""Training throughput of the project's step loop against a minimal reference loop, and the
LPB-RL search's seconds per candidate.

    python benchmarks/throughput.py --device cpu --image-size 64
    python benchmarks/throughput.py --device cuda --image-size 224      # on a GPU machine

Both loops train the same model (the protocol teacher: ResNet-18 width 1.0, fresh weights of the
same seed) on the same images (Brain-4's training split at --image-size when the dataset is
there, else random images of that size, as recorded), with the same batch size, optimizer
(AdamW), device and precision, and the same augmentation (a random horizontal flip: the
reference loop does exactly that and nothing else, so no augmentation cost hides in the
ratio). Project = `rcskd.train.loop.train_one_epoch` with the teacher's TrainConfig (the loop
`fit` runs each epoch); it is also timed with the teacher's full default augmentation. Timings
are interleaved (project, reference, project, ...) and the median over --repeats is kept.
Appends a run to reports/bench/throughput.json (a run of the same device, GPU, size and
precision is replaced) and rewrites the Markdown table.
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
from rcskd.train.runtime import autocast_dtype, make_engine, place_split, prepare_model

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


def reference_epoch(model, optimizer, split: TensorSplit, cfg: TrainConfig, pre, device, dtype):
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
        if device.type == "cuda":
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


def markdown(runs: list[dict]) -> str:
    head = ("| device | GPU | image | precision | batch | project img/s | reference img/s | ratio "
            "| project, full augmentation img/s | search s/candidate | data |")  # fmt: skip
    lines = [
        "# Training throughput: the project's step loop against a minimal loop",
        "",
        "Same model (ResNet-18 width 1.0), images, batch, optimizer, device and precision; both",
        "flip half of each batch. Medians of interleaved timings. `benchmarks/throughput.py`.",
        "",
        head,
        "|" + "---|" * 11,
    ]
    for r in runs:
        lines.append(
            f"| {r['device']} | {r['gpu'] or '-'} | {r['image_size']} | {r['precision']} | "
            f"{r['batch_size']} | {r['project_img_s']:.1f} | {r['reference_img_s']:.1f} | "
            f"{r['ratio']:.3f} | {r['project_full_augment_img_s']:.1f} | "
            f"{r['search_s_per_candidate']:.2f} | {r['data']} |"
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
    args = parser.parse_args()
    device = torch.device(args.device)
    base = Params().teacher.train
    cfg = dataclasses.replace(base, batch_size=args.batch_size, precision=args.precision,
                              augment=FLIP_ONLY)  # fmt: skip
    full = dataclasses.replace(cfg, augment=base.augment)
    split, data = training_images(args.image_size, args.steps * args.batch_size)
    pre = fit_preprocess(split.images)
    engine = make_engine(cfg, device)
    dtype = autocast_dtype(args.precision, device)
    resident = place_split(split, device, "always")
    torch.manual_seed(0)
    initial = build_model(ModelSpec("resnet18", 4, 1, 1.0))
    models = {name: prepare_model(copy.deepcopy(initial), engine) for name in ("p", "f", "r")}
    optimizers = {name: build_optimizer(m.parameters(), cfg) for name, m in models.items()}

    def project(config: TrainConfig, name: str):
        return lambda: train_one_epoch(
            models[name], CrossEntropy(), optimizers[name], resident, config, pre, 0, 0, device,
            show_progress=False, engine=engine,
        )  # fmt: skip

    def reference():
        reference_epoch(models["r"], optimizers["r"], resident, cfg, pre, device, dtype)

    runs = {"project": project(cfg, "p"), "full": project(full, "f"), "reference": reference}
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
    precision = str(dtype).replace("torch.", "") if dtype else "fp32"
    row = {
        "device": args.device,
        "gpu": gpu,
        "image_size": args.image_size,
        "precision": precision,
        "batch_size": args.batch_size,
        "project_img_s": round(rate["project"], 2),
        "reference_img_s": round(rate["reference"], 2),
        "ratio": round(rate["project"] / rate["reference"], 4),
        "project_full_augment_img_s": round(rate["full"], 2),
        "search_s_per_candidate": round(search, 3),
        "data": data,
        "images_per_pass": images,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "git_commit": git_commit(REPO),
        "date": time.strftime("%Y-%m-%d"),
    }
    out = RESULTS / "throughput.json"
    results = load_results(out)
    key = ("device", "gpu", "image_size", "precision")
    kept = [r for r in results.get("runs", []) if [r[k] for k in key] != [row[k] for k in key]]
    results = {"runs": [*kept, row]}
    save_results(out, results, markdown(results["runs"]))
    print(
        f"{args.device} {args.image_size}px {precision}: project {row['project_img_s']} img/s, "
        f"reference {row['reference_img_s']} img/s, ratio {row['ratio']}; "
        f"search {row['search_s_per_candidate']} s/candidate"
    )


if __name__ == "__main__":
    main()
