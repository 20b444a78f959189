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
    """Loss (left) and accuracy (right) per epoch, train and validation."""
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [r["train_loss"] for r in history], label="train")
    left.plot(epochs, [r["val_loss"] for r in history], label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, [r["train_acc"] for r in history], label="train")
    right.plot(epochs, [r["val_acc"] for r in history], label="validation")
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
