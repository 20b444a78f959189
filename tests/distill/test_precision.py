"""Distillation under autocast: every loss computes in fp32, TKD-CA's teacher gradient survives
fp16, and every method is finite (and trains its adapters) on a batch of one sample."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rcskd.distill import build_objective
from rcskd.distill.losses import DistillLoss
from rcskd.distill.losses.kd import kd_divergence
from rcskd.distill.objective import FP16_GRAD_SCALE, DistillObjective
from tests.distill.test_objective import ALL, METHODS, LinearHeadNet, tiny, with_method

X = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 3, 0, 1])


class DtypeProbe(DistillLoss):
    """Records what a loss sees: dtypes of its inputs and whether autocast is on."""

    taps = ("stage4",)

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, object] = {}

    def forward(self, s, t, labels):
        self.seen = {
            "student": s.logits.dtype,
            "teacher": t.logits.dtype,
            "feature": t.features["stage4"].dtype,
            "autocast": torch.is_autocast_enabled("cpu"),
        }
        return kd_divergence(s.logits, t.logits, 4.0)


def test_losses_see_fp32_outputs_with_autocast_off_inside_bf16_autocast():
    torch.manual_seed(0)
    teacher, student = LinearHeadNet(), LinearHeadNet()
    probe = DtypeProbe()
    objective = DistillObjective(teacher, student, {"probe": probe}, {"ce": 1.0, "probe": 1.0})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, terms = objective(student, X, Y)
    assert logits.dtype == torch.bfloat16  # the models ran in bf16 ...
    assert probe.seen == {  # ... the loss computed in fp32
        "student": torch.float32,
        "teacher": torch.float32,
        "feature": torch.float32,
        "autocast": False,
    }
    assert all(v.dtype == torch.float32 for v in terms.values())
    # the KD term is exactly the fp32 formula on the bf16 models' outputs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s_logits, t_logits = student(X), teacher(X)
    expected = kd_divergence(s_logits.float(), t_logits.float(), 4.0)
    torch.testing.assert_close(terms["probe"], expected, rtol=1e-6, atol=1e-6)


def _tiny_gradient_teacher() -> tuple[nn.Module, nn.Module]:
    """A teacher whose d(logit)/d(feature) is ~1e-9: zero in unscaled fp16."""
    torch.manual_seed(0)
    teacher, student = LinearHeadNet(channels=3), LinearHeadNet(channels=3)
    with torch.no_grad():
        teacher.fc.weight.mul_(1e-5)
    return teacher, student


def test_tkd_ca_teacher_gradient_is_scaled_under_fp16_and_matches_fp32():
    teacher, student = _tiny_gradient_teacher()
    cfg = with_method("tkd_ca", tkd_ca={"taps": {"stage4": 1.0}})
    objective = build_objective("tkd_ca", cfg, teacher, student, (1, 16, 16))
    exact = objective.teacher_outputs(X, Y).feature_grads["stage4"]
    assert exact.abs().max() < 1e-6  # below fp16's smallest normal (6e-5)
    with torch.autocast("cpu", dtype=torch.float16):
        half = objective.teacher_outputs(X, Y).feature_grads["stage4"]
        unscaled = objective._teacher_gradients(X, Y, 1.0).feature_grads["stage4"]
    assert half.dtype == torch.float32
    # unscaled, fp16 loses most of it; scaled by FP16_GRAD_SCALE it matches fp32
    assert (unscaled == 0).float().mean() > 0.5
    assert FP16_GRAD_SCALE > 1 and (half != 0).all()
    torch.testing.assert_close(half, exact, rtol=2e-2, atol=1e-12)


# every registered loss at its defaults, and DKD-SG on embeddings (whose linear adapter a
# one-sample batch used to skip: DDP's gradient reduction then failed)
CASES = [(m, ALL) for m in METHODS] + [
    ("dkd_sg", with_method("dkd_sg", dkd_sg={"node": "embedding"}))
]


@pytest.mark.parametrize(("method", "cfg"), CASES, ids=[*METHODS, "dkd_sg_embedding"])
def test_every_method_is_finite_on_a_batch_of_one_and_trains_its_adapters(method, cfg):
    teacher, student = tiny(0.25), tiny(0.125)
    # 64 px (the protocol's size): every tap keeps more than one value per channel, which
    # BatchNorm (student and adapters, in training mode) needs on a single sample
    objective = build_objective(method, cfg, teacher, student, (1, 64, 64))
    objective.train()
    student.train()
    one = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    logits, terms = objective(student, one, Y[:1])
    loss = sum(terms.values())
    assert torch.isfinite(loss), {k: float(v) for k, v in terms.items()}
    loss.backward()
    for name, param in objective.named_parameters():
        assert param.grad is not None, f"{method}: {name} got no gradient (DDP would fail)"
        assert torch.isfinite(param.grad).all(), name
