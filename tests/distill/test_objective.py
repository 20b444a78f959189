"""The distillation objective: teacher gradients, what gets trained, hooks, size mismatches."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from rcskd.config import DistillConfig
from rcskd.distill import build_objective, method_terms
from rcskd.errors import ConfigError
from rcskd.models import ModelSpec, build_model
from rcskd.registry import LOSSES

# Every registered loss as a one-term method at its declared defaults, plus plain CE.
ALL = DistillConfig(methods={"ce_only": {}, **{name: {name: {}} for name in LOSSES.names()}})
METHODS = list(ALL.methods)


def with_method(method: str, **terms) -> DistillConfig:
    """A config whose `method` has the given terms (term -> settings)."""
    return DistillConfig(methods={method: terms})


class LinearHeadNet(nn.Module):
    """conv -> ReLU (tap "stage4") -> mean pool -> linear: dz_y/dF[c] = W[y, c] / (H W)."""

    def __init__(self, channels: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def taps(self):
        return OrderedDict(stage4=self.act, pool=self.pool)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def tiny(width):
    torch.manual_seed(0)
    return build_model(ModelSpec("resnet18", 4, 1, width))


X = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(1))
Y = torch.tensor([0, 1, 2, 3, 0, 1])


@pytest.mark.parametrize("target", ["label", "teacher_argmax"])
def test_teacher_feature_gradient_is_d_target_logit_d_feature(target):
    torch.manual_seed(0)
    teacher, student = LinearHeadNet(), LinearHeadNet()
    cfg = with_method("tkd_ca", tkd_ca={"target": target, "taps": {"stage4": 1.0}})
    objective = build_objective("tkd_ca", cfg, teacher, student, (1, 16, 16))
    t = objective.teacher_outputs(X, Y)
    chosen = Y if target == "label" else teacher(X).argmax(1)
    expected = teacher.fc.weight[chosen][:, :, None, None].expand(-1, -1, 16, 16) / 256
    torch.testing.assert_close(t.feature_grads["stage4"], expected.detach())
    assert not t.logits.requires_grad and not t.features["stage4"].requires_grad


@pytest.mark.parametrize("method", METHODS)
def test_teacher_gets_no_gradient_and_keeps_its_statistics(method):
    teacher, student = tiny(0.25), tiny(0.125)
    teacher.train()  # the objective must put it in eval mode anyway
    objective = build_objective(method, ALL, teacher, student, (1, 16, 16))
    objective.train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    logits, terms = objective(student, X, Y)
    sum(terms.values()).backward()
    assert set(terms) == {"ce", *(t.name for t in method_terms(method, ALL))}
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher.training
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # BN running stats untouched
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    # the teacher is not part of what the optimiser or resume files see
    assert not any(k.startswith("_teacher") for k in objective.state_dict())
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not teacher_ids & {id(p) for p in objective.parameters()}
    objective.close()


def test_adapters_bridge_pruned_channels_and_get_gradients():
    teacher, student = tiny(0.25), tiny(0.125)  # 64 vs 32 channels at stage3 (the default tap)
    objective = build_objective("tkd_ca", ALL, teacher, student, (1, 16, 16))
    adapter = objective.losses["tkd_ca"].adapters["stage3"]
    assert isinstance(adapter[0], nn.Conv2d)
    assert (adapter[0].in_channels, adapter[0].out_channels) == (32, 64)
    _, terms = objective(student, X, Y)
    terms["tkd_ca"].backward()
    assert adapter[0].weight.grad is not None and adapter[0].weight.grad.abs().sum() > 0
    objective.close()


def test_equal_channels_need_no_adapter():
    objective = build_objective("tkd_ca", ALL, tiny(0.25), tiny(0.25), (1, 16, 16))
    assert isinstance(objective.losses["tkd_ca"].adapters["stage3"], nn.Identity)
    objective.close()


def test_spatial_sizes_are_matched_by_interpolation():
    from rcskd.distill import Outputs
    from rcskd.distill.losses.tkd_ca import TKDCALoss

    loss = TKDCALoss({"stage4": 1.0}, {"stage4": 2}, {"stage4": 3})  # 2 -> 3 channels
    f_s = torch.rand(4, 2, 8, 8, requires_grad=True)
    f_t, grad = torch.rand(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
    s = Outputs(torch.zeros(4, 4), {"stage4": f_s})
    t = Outputs(torch.zeros(4, 4), {"stage4": f_t}, {"stage4": grad})
    value = loss(s, t, Y[:4])
    value.backward()
    assert torch.isfinite(value) and 0 <= value.item() <= 2
    assert f_s.grad.shape == f_s.shape and f_s.grad.abs().sum() > 0
    assert loss.adapters["stage4"][0].weight.grad.abs().sum() > 0


def test_hooks_are_registered_once_not_per_step():
    teacher, student = tiny(0.25), tiny(0.125)

    def count(model):
        return sum(len(m._forward_hooks) for m in model.modules())

    objective = build_objective("tkd_ca", ALL, teacher, student, (1, 16, 16))
    after_build = count(teacher), count(student)
    assert after_build[0] >= 1 and after_build[1] >= 1
    optimizer = torch.optim.SGD(list(student.parameters()) + list(objective.parameters()), 0.01)
    for _ in range(4):
        _, terms = objective(student, X, Y)
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    assert (count(teacher), count(student)) == after_build
    objective.close()
    assert count(teacher) == count(student) == 0


def test_unknown_method_term_setting_and_tap_are_named():
    with pytest.raises(ConfigError, match="unknown distillation method 'kdd'"):
        method_terms("kdd", ALL)
    with pytest.raises(ConfigError, match="'kdd' is not a registered loss"):
        method_terms("m", with_method("m", kdd={}))
    with pytest.raises(ConfigError, match=r"unknown key 'distill\.methods\.m\.kd\.temprature'"):
        method_terms("m", with_method("m", kd={"temprature": 2.0}))
    cfg = with_method("tkd_ca", tkd_ca={"taps": {"stage9": 1.0}})
    with pytest.raises(ConfigError, match="no tap 'stage9'; its taps are stage1, stage2"):
        build_objective("tkd_ca", cfg, tiny(0.25), tiny(0.125), (1, 16, 16))


def test_the_objective_weights_each_term_and_the_loop_only_sums():
    teacher, student = tiny(0.25), tiny(0.125)
    plain = build_objective(
        "m", with_method("m", kd={"weight": 1.0}), teacher, student, (1, 16, 16)
    )
    heavy = build_objective(
        "m", with_method("m", kd={"weight": 2.5}), teacher, student, (1, 16, 16)
    )
    _, a = plain(student, X, Y)
    _, b = heavy(student, X, Y)
    assert b["kd"].item() == pytest.approx(2.5 * a["kd"].item(), rel=1e-6)
    assert b["ce"].item() == pytest.approx(a["ce"].item(), rel=1e-6)
    plain.close()
    heavy.close()


def test_a_joint_method_trains_both_rc_skd_terms_with_their_weights():
    cfg = with_method("joint", tkd_ca={"weight": 3.0}, dkd_sg={}, kd={"weight": 0.5})
    objective = build_objective("joint", cfg, tiny(0.25), tiny(0.125), (1, 16, 16))
    assert objective.weights == {"ce": 1.0, "tkd_ca": 3.0, "dkd_sg": 5.0, "kd": 0.5}
    objective.close()
