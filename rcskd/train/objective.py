"""What the loop minimises: an `Objective` returns the logits and named, weighted loss terms.

The loop sums the terms; distillation objectives (which also run a teacher) plug into the same
loop. An objective is an nn.Module so that what it learns (adapters) is optimised with the
student and saved in resume checkpoints, but never exported.

Objectives run inside the engine's autocast: models forward in bf16/fp16, and every loss is
computed in fp32 (`fp32_region`, see the placement rule in rcskd/train/runtime.py).
`labels` are hard class indices (with batch mixing: each image's dominant class); `mixed`, when
the batch was mixed, holds both labels of every image and their shares, which the label term
trains on.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.config import MixConfig
from rcskd.data.mixing import MixedLabels
from rcskd.train.runtime import fp32_region


def label_loss(
    logits: Tensor, labels: Tensor, mixed: MixedLabels | None, label_smoothing: float = 0.0
) -> Tensor:
    """Cross-entropy in fp32 on hard labels or, for a mixed batch, lam * CE(own label) +
    (1 - lam) * CE(partner's label) (= CE on the mixed soft target: CE is linear in it)."""
    with fp32_region(logits.device):
        x = logits.float()
        if mixed is None:
            return F.cross_entropy(x, labels, label_smoothing=label_smoothing)
        first = F.cross_entropy(x, mixed.first, label_smoothing=label_smoothing)
        second = F.cross_entropy(x, mixed.second, label_smoothing=label_smoothing)
        return mixed.lam * first + (1.0 - mixed.lam) * second


class Objective(nn.Module):
    """Base class: `forward(model, inputs, labels, mixed) -> (logits, {term: scalar})`."""

    def forward(
        self, model: nn.Module, inputs: Tensor, labels: Tensor, mixed: MixedLabels | None = None
    ) -> tuple[Tensor, dict]:
        raise NotImplementedError

    @property
    def mix(self) -> MixConfig | None:
        """Batch mixing this objective asks for (None: the training settings' `mix`)."""
        return None


class CrossEntropy(Objective):
    """Plain supervised training: one term, "ce", with optional label smoothing."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self, model: nn.Module, inputs: Tensor, labels: Tensor, mixed: MixedLabels | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(inputs)
        return logits, {"ce": label_loss(logits, labels, mixed, self.label_smoothing)}
