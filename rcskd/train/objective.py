"""What the loop minimises: an `Objective` returns the logits and named, unweighted loss terms.

The loop multiplies each term by its weight and sums; distillation objectives (which also run a
teacher) plug into the same loop. An objective is an nn.Module so that what it learns (adapters)
is optimised with the student and saved in resume checkpoints, but never exported.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class Objective(nn.Module):
    """Base class: `forward(model, inputs, labels) -> (logits, {term: scalar})`."""

    def forward(self, model: nn.Module, inputs: Tensor, labels: Tensor) -> tuple[Tensor, dict]:
        raise NotImplementedError


class CrossEntropy(Objective):
    """Plain supervised training: one term, "ce", with optional label smoothing."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self, model: nn.Module, inputs: Tensor, labels: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits = model(inputs)
        ce = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return logits, {"ce": ce}
