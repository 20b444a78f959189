"""matplotlib figures for the evaluate stage and the report. No I/O: callers save them."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: stages and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def confusion_figure(cm: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """Counts (left) and row-normalised rates (right; rows are true classes)."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    rates = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2))
    for ax, data, fmt, name in ((axes[0], cm, "d", "counts"), (axes[1], rates, ".2f", "rate")):
        ax.imshow(data, cmap="Blues", vmin=0, vmax=data.max() if data.max() > 0 else 1)
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: {name}")
        threshold = data.max() / 2 if data.max() > 0 else 0.5
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                colour = "white" if data[i, j] > threshold else "black"
                ax.text(j, i, format(data[i, j], fmt), ha="center", va="center", color=colour)
    fig.tight_layout()
    return fig


def reliability_figure(
    confidence: np.ndarray, accuracy: np.ndarray, count: np.ndarray, ece: float, title: str
) -> Figure:
    """Accuracy against confidence per bin (bars), the diagonal, and the bin counts."""
    n_bins = len(count)
    centres = (np.arange(n_bins) + 0.5) / n_bins
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(4.8, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = count > 0
    top.bar(centres[filled], accuracy[filled], width=1 / n_bins, edgecolor="k", label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.plot(confidence[filled], accuracy[filled], "o", color="crimson", ms=3, label="bin mean")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"{title}: reliability (ECE {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, count, width=1 / n_bins, color="grey", edgecolor="k")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("images")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    return fig


def gradcam_figure(
    images: np.ndarray, heatmaps: np.ndarray, captions: Sequence[str], title: str
) -> Figure:
    """Each image (grey, H x W in [0, 1]) with its Grad-CAM map (H x W in [0, 1]) overlaid."""
    n = len(images)
    cols = min(n, 8)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, heat, caption in zip(axes.flat, images, heatmaps, captions, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def curves_figure(history: Sequence[dict[str, float]], title: str) -> Figure:
    """Loss (left) and accuracy (right) per epoch, train and validation.

    A distillation run's train loss is its whole objective; its train cross-entropy is drawn too,
    since that, not the objective, compares with the validation (cross-entropy) loss.
    """
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    terms = set(history[0]) - {"train_loss", "train_ce", "train_acc"}
    distilled = "train_ce" in history[0] and any(k.startswith("train_") for k in terms)
    # markers: a one-epoch run is a single point, which a bare line would not show
    train_label = "train objective (CE + distillation)" if distilled else "train"
    left.plot(epochs, [r["train_loss"] for r in history], "o-", ms=3, label=train_label)
    if distilled:
        left.plot(epochs, [r["train_ce"] for r in history], "o--", ms=3, label="train CE")
    left.plot(epochs, [r["val_loss"] for r in history], "o-", ms=3, label="validation CE")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, [r["train_acc"] for r in history], "o-", ms=3, label="train")
    right.plot(epochs, [r["val_acc"] for r in history], "o-", ms=3, label="validation")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def overlay_figure(grey: np.ndarray, cam: np.ndarray, title: str) -> Figure:
    """One image with its Grad-CAM heat map blended on top."""
    fig, ax = plt.subplots(figsize=(3.2, 3.4))
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
    ax.imshow(cam, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def samples_figure(images: np.ndarray, labels: Sequence[int], classes: Sequence[str]) -> Figure:
    """A grid: one row per class of grey images (N x H x W in [0, 1])."""
    per_class = max(1, max((list(labels).count(k) for k in range(len(classes))), default=1))
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(1.5 * per_class, 1.6 * len(classes)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    slots = [0] * len(classes)
    for image, k in zip(images, labels, strict=True):
        ax = axes[k][slots[k]]
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        if slots[k] == 0:
            ax.set_title(classes[k], fontsize=9, loc="left")
        slots[k] += 1
    fig.tight_layout()
    return fig


def search_figure(rows: Sequence[dict[str, float]]) -> Figure:
    """LPB-RL search: proxy reward per candidate and best so far, one line per method."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        episodes = [int(r["episode"]) for r in mine]
        best = [float(r["best_so_far"]) for r in mine]
        (line,) = ax.plot(episodes, best, "-", marker="o" if len(mine) == 1 else None,
                          label=f"{method} best")  # fmt: skip
        ax.plot(episodes, [float(r["reward"]) for r in mine], ".", color=line.get_color(), ms=3)
    ax.set_xlabel("candidate (episode)")
    ax.set_ylabel("proxy reward")
    ax.set_title("LPB-RL search: reward per candidate (dots) and best so far")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ratios_figure(chosen: dict[str, float], uniform: dict[str, float] | None) -> Figure:
    """Pruning ratio per block: the agent's choice next to uniform pruning."""
    names = list(chosen)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(names)), 3.2))
    width = 0.4 if uniform else 0.8
    ax.bar(x - (width / 2 if uniform else 0), [chosen[n] for n in names], width, label="chosen")
    if uniform:
        ax.bar(x + width / 2, [uniform.get(n, 0.0) for n in names], width, label="uniform")
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of channels removed")
    ax.set_title("pruning ratio per block")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


PARETO_AXES = {  # cost key of a point -> (axis label, divisor, title)
    "params": ("parameters (M)", 1e6, "accuracy against size, over runs and experiments"),
    "latency_ms": ("CPU latency at batch 1 (ms)", 1.0, "accuracy against latency (CPU, batch 1)"),
}


def pareto_figure(points: Sequence[dict], cost: str = "params") -> Figure:
    """Accuracy against a cost (`PARETO_AXES`); each point {<cost>, acc, label, group}; the
    front joined. Points without that cost are left out."""
    xlabel, scale, title = PARETO_AXES[cost]
    points = [p for p in points if p.get(cost) is not None]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for group in dict.fromkeys(p["group"] for p in points):
        mine = [p for p in points if p["group"] == group]
        ax.scatter([p[cost] / scale for p in mine], [p["acc"] for p in mine], label=group, s=22)
    front, best = [], -1.0
    for p in sorted(points, key=lambda p: p[cost]):
        if p["acc"] > best:
            front.append(p)
            best = p["acc"]
    ax.step([p[cost] / scale for p in front], [p["acc"] for p in front], "k--", where="post",
            lw=0.8, label="Pareto front")  # fmt: skip
    for p in front:
        ax.annotate(p["label"], (p[cost] / scale, p["acc"]), fontsize=7,
                    xytext=(3, -9), textcoords="offset points")  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
