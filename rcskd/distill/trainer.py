"""One objective for every distillation method, run by the common training loop.

`DistillObjective` runs the frozen teacher (under no_grad, except for the feature gradient that
TKD-CA needs), the student, and each named loss; it returns the student's logits and the
unweighted terms ("ce" and one per loss), which the loop weights, sums and logs.
The teacher is held outside the module tree: it is never optimised, never put in train mode and
never written into resume checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.config import DistillConfig
from rcskd.distill.losses import DistillLoss, Shapes
from rcskd.distill.outputs import FeatureTaps, Outputs
from rcskd.errors import ConfigError
from rcskd.models.taps import taps as model_taps
from rcskd.registry import LOSSES
from rcskd.train.objective import Objective

BASELINES = ("ce_only", "kd", "fitnet", "at", "sp", "rkd", "dist", "decoupled_kd")
METHODS = (*BASELINES, "tkd_ca", "dkd_sg")


@torch.no_grad()
def probe_shapes(student: nn.Module, teacher: nn.Module, input_shape: tuple[int, ...]) -> Shapes:
    """Per-sample shapes of every tap and the logits, from one dummy forward of each model."""
    found = {}
    for role, model in (("student", student), ("teacher", teacher)):
        hooks = FeatureTaps(model, list(model_taps(model)))
        was_training = model.training
        model.eval()
        logits = model(torch.zeros(2, *input_shape))
        model.train(was_training)
        found[role] = {name: tuple(v.shape[1:]) for name, v in hooks.pop().items()}
        hooks.remove()
    return Shapes(found["student"], found["teacher"], int(logits.shape[1]))


def method_terms(method: str, cfg: DistillConfig) -> dict[str, tuple[Any, float]]:
    """The loss terms of a method: name -> (its params section, its weight)."""
    if method not in METHODS:
        raise ConfigError(f"unknown distillation method {method!r}; known: {', '.join(METHODS)}")
    if method == "ce_only":
        return {}
    if method == "tkd_ca":
        terms = {"tkd_ca": (cfg.tkd, cfg.tkd.beta)}
        if cfg.tkd.alpha > 0:
            terms["kd"] = (cfg.tkd, cfg.tkd.alpha)  # KD at the TKD temperature
        return terms
    if method == "dkd_sg":
        terms = {"dkd_sg": (cfg.dkd, cfg.dkd.gamma)}
        if cfg.dkd.with_tkd:
            terms.update(method_terms("tkd_ca", cfg))
        return terms
    section = getattr(cfg, method)
    return {method: (section, section.weight)}


class DistillObjective(Objective):
    """CE on the labels plus the method's distillation terms against a frozen teacher."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        losses: dict[str, DistillLoss],
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self.label_smoothing = label_smoothing
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        self._teacher = [teacher]  # a list: not a submodule (see the module docstring)
        needed = sorted({tap for loss in losses.values() for tap in loss.taps})
        grad_taps = tuple(sorted({tap for loss in losses.values() for tap in loss.grad_taps}))
        targets = {loss.target for loss in losses.values() if loss.grad_taps}
        if len(targets) > 1:
            raise ConfigError(f"losses disagree on the gradient target: {sorted(targets)}")
        self.target = targets.pop() if targets else "label"
        self.grad_taps = grad_taps
        self.teacher_taps = FeatureTaps(teacher, needed, grad_taps)
        self.student_taps = FeatureTaps(student, needed)

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher (eval mode, no trainable parameters)."""
        return self._teacher[0]

    def _apply(self, fn, recurse=True):  # keep the teacher on the student's device
        self._teacher[0]._apply(fn)
        return super()._apply(fn, recurse)

    def teacher_outputs(self, inputs: Tensor, labels: Tensor) -> Outputs:
        """Teacher logits and features; with grad taps, d z_target / d feature as well."""
        teacher = self.teacher
        teacher.eval()
        if not self.grad_taps:
            with torch.no_grad():
                logits = teacher(inputs)
            return Outputs(logits, self.teacher_taps.pop())
        with torch.enable_grad():
            logits = teacher(inputs)
            features = self.teacher_taps.pop()
            target = labels if self.target == "label" else logits.argmax(1)
            chosen = logits.gather(1, target[:, None]).sum()
            grads = torch.autograd.grad(chosen, [features[t] for t in self.grad_taps])
        features = {k: v.detach() for k, v in features.items()}
        grads_by_tap = {t: g.detach() for t, g in zip(self.grad_taps, grads, strict=True)}
        return Outputs(logits.detach(), features, grads_by_tap)

    def forward(
        self, model: nn.Module, inputs: Tensor, labels: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        t = self.teacher_outputs(inputs, labels)
        logits = model(inputs)
        s = Outputs(logits, self.student_taps.pop())
        terms = {"ce": F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)}
        for name, loss in self.losses.items():
            terms[name] = loss(s, t, labels)
        return logits, terms

    def close(self) -> None:
        """Remove the hooks from both models."""
        self.teacher_taps.remove()
        self.student_taps.remove()


def build_objective(
    method: str,
    cfg: DistillConfig,
    teacher: nn.Module,
    student: nn.Module,
    input_shape: tuple[int, ...],
) -> tuple[DistillObjective, dict[str, float]]:
    """The method's objective and the loop's term weights (ce included)."""
    shapes = probe_shapes(student, teacher, input_shape)
    losses, weights = {}, {"ce": cfg.ce_weight}
    for name, (section, weight) in method_terms(method, cfg).items():
        losses[name] = LOSSES.get(name).from_config(section, shapes)
        weights[name] = weight
    return DistillObjective(teacher, student, losses, cfg.train.label_smoothing), weights
