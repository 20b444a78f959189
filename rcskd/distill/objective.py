"""One objective for every distillation method, run by the common training loop.

`DistillObjective` runs the frozen teacher (under no_grad, except for the feature gradient that
TKD-CA needs), the student, and each named loss; it returns the student's logits and the
weighted terms ("ce" and one per loss), which the loop sums and logs. Both models forward in
the engine's autocast dtype; the losses see fp32 copies of their outputs and compute in fp32.
The teacher is held outside the module tree: it is never optimised, never put in train mode and
never written into resume checkpoints.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rcskd.config import DistillConfig, MixConfig
from rcskd.data.mixing import MixedLabels
from rcskd.distill.losses import DistillLoss, Shapes, TapShapes
from rcskd.distill.methods import method_ce_weight, method_terms
from rcskd.distill.outputs import FeatureTaps, Outputs
from rcskd.errors import ConfigError
from rcskd.models.taps import taps as model_taps
from rcskd.registry import LOSSES
from rcskd.train.objective import Objective, label_loss
from rcskd.train.runtime import fp32_region

# fp16 has 5 exponent bits: d(logit)/d(feature) of a deep tap underflows to zero unless scaled
# (the GradScaler only scales the training loss, not this inner gradient)
FP16_GRAD_SCALE = 2.0**10


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
        found[role] = TapShapes(role, {n: tuple(v.shape[1:]) for n, v in hooks.pop().items()})
        hooks.remove()
    return Shapes(found["student"], found["teacher"], int(logits.shape[1]))


class DistillObjective(Objective):
    """Weighted CE on the labels plus the method's weighted terms against a frozen teacher."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        losses: dict[str, DistillLoss],
        weights: dict[str, float],
        label_smoothing: float = 0.0,
        mix: MixConfig | None = None,
    ) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)
        self._mix = mix
        self.weights = dict(weights)  # "ce" and one per loss
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

    @property
    def mix(self) -> MixConfig | None:
        """The batch mixing the method asks for (function matching), else None."""
        return self._mix

    def teacher_outputs(self, inputs: Tensor, labels: Tensor) -> Outputs:
        """Teacher logits and features; with grad taps, d z_target / d feature as well (fp32)."""
        teacher = self.teacher
        teacher.eval()
        if not self.grad_taps:
            with torch.no_grad():
                logits = teacher(inputs)
            return Outputs(logits, self.teacher_taps.pop())
        device = inputs.device.type
        fp16 = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == (
            torch.float16
        )
        outputs = self._teacher_gradients(inputs, labels, FP16_GRAD_SCALE if fp16 else 1.0)
        if fp16 and not all(torch.isfinite(g).all() for g in outputs.feature_grads.values()):
            with fp32_region(inputs.device):  # overflowed even so: this batch in fp32
                outputs = self._teacher_gradients(inputs, labels, 1.0)
        return outputs

    def _teacher_gradients(self, inputs: Tensor, labels: Tensor, scale: float) -> Outputs:
        with torch.enable_grad():
            logits = self.teacher(inputs)
            features = self.teacher_taps.pop()
            target = labels if self.target == "label" else logits.argmax(1)
            chosen = logits.gather(1, target[:, None]).float().sum()
            grads = torch.autograd.grad(chosen * scale, [features[t] for t in self.grad_taps])
        features = {k: v.detach() for k, v in features.items()}
        grads_by_tap = {
            t: g.detach().float() / scale for t, g in zip(self.grad_taps, grads, strict=True)
        }
        return Outputs(logits.detach(), features, grads_by_tap)

    def forward(
        self, model: nn.Module, inputs: Tensor, labels: Tensor, mixed: MixedLabels | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        t = self.teacher_outputs(inputs, labels)
        logits = model(inputs)
        s = Outputs(logits, self.student_taps.pop())
        ce = label_loss(logits, labels, mixed, self.label_smoothing)
        terms = {"ce": self.weights["ce"] * ce}
        with fp32_region(inputs.device):
            s32, t32 = s.float(), t.float()
            for name, loss in self.losses.items():
                terms[name] = self.weights[name] * loss(s32, t32, labels)
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
) -> DistillObjective:
    """The objective of `method` (its terms and weights from `distill.methods`)."""
    terms = method_terms(method, cfg)  # validated before any forward pass
    shapes = probe_shapes(student, teacher, input_shape)
    losses, weights = {}, {"ce": method_ce_weight(terms, cfg)}
    mix = None
    for term in terms:
        losses[term.name] = LOSSES.get(term.name).from_config(term.config, shapes)
        weights[term.name] = term.weight
        mix = mix or losses[term.name].mix
    return DistillObjective(teacher, student, losses, weights, cfg.train.label_smoothing, mix)
