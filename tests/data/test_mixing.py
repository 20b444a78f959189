"""Batch mixing (mixup / CutMix) and function matching: seeded plans, exact label shares,
the label term on mixed batches, and the method that asks for it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

from rcskd.config import AugmentConfig, DistillConfig, MixConfig, TrainConfig
from rcskd.data.mixing import BatchMix, apply_mix, cutmix_box, mix_or_pass, plan_mixing
from rcskd.data.transforms import fit_preprocess
from rcskd.distill import build_objective
from rcskd.distill.losses.kd import kd_divergence
from rcskd.models import ModelSpec, build_model
from rcskd.train import CrossEntropy, fit
from rcskd.train.objective import label_loss
from tests.fixtures import quadrant_data

IMAGES = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 2, 3, 0, 1])


def test_a_plan_is_a_function_of_its_seed_alone():
    cfg = MixConfig(mode="both", alpha=1.0, prob=0.5)
    first, again, other = plan_mixing(cfg, 40, 7), plan_mixing(cfg, 40, 7), plan_mixing(cfg, 40, 8)
    assert first == again and first != other
    used = [m for m in first if m is not None]
    assert 5 < len(used) < 35  # about half the batches
    assert {m.mode for m in used} == {"mixup", "cutmix"}
    assert all(0 <= m.lam <= 1 for m in used)
    assert plan_mixing(MixConfig(), 5, 7) == [None] * 5  # off by default
    # batch k's plan does not depend on how many batches follow
    assert plan_mixing(cfg, 10, 7) == first[:10]


def test_mixup_blends_each_image_with_its_mirror_in_the_batch():
    mixed, labels = apply_mix(IMAGES, LABELS, BatchMix("mixup", 0.3))
    torch.testing.assert_close(mixed, 0.3 * IMAGES + 0.7 * IMAGES.flip(0))
    assert torch.equal(labels.first, LABELS) and torch.equal(labels.second, LABELS.flip(0))
    assert labels.lam == 0.3 and torch.equal(labels.dominant, LABELS.flip(0))


def test_cutmix_pastes_a_box_and_weighs_labels_by_the_area_actually_pasted():
    mix = BatchMix("cutmix", 0.75, centre=(0.0, 0.5))  # box clipped at the top edge
    y0, y1, x0, x1 = cutmix_box(0.75, 8, 8, mix.centre)
    assert (y0, y1, x0, x1) == (0, 2, 2, 6)
    mixed, labels = apply_mix(IMAGES, LABELS, mix)
    assert torch.equal(mixed[..., 0:2, 2:6], IMAGES.flip(0)[..., 0:2, 2:6])
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[0:2, 2:6] = False
    assert torch.equal(mixed[..., outside], IMAGES[..., outside])
    assert labels.lam == 1 - 8 / 64
    assert mix_or_pass(IMAGES, LABELS, None) == (IMAGES, None)


def test_the_label_term_of_a_mixed_batch_is_cross_entropy_on_the_soft_target():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    _, mixed = apply_mix(IMAGES, LABELS, BatchMix("mixup", 0.3))
    soft = 0.3 * F.one_hot(LABELS, 4).float() + 0.7 * F.one_hot(LABELS.flip(0), 4).float()
    torch.testing.assert_close(label_loss(logits, LABELS, mixed), F.cross_entropy(logits, soft))
    torch.testing.assert_close(
        label_loss(logits, LABELS, mixed, 0.1), F.cross_entropy(logits, soft, label_smoothing=0.1)
    )


def test_training_with_mixing_is_finite_and_reproducible():
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, warmup_epochs=0.0,
                      augment=AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0), precision="fp32",
                      mix=MixConfig(mode="both"))  # fmt: skip
    train, val = quadrant_data(24, 0, size=16), quadrant_data(8, 1, size=16)

    def run(config: TrainConfig) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build_model(ModelSpec("resnet20", 4, 1, 0.25))
        result = fit(model, CrossEntropy(), train, val, config, fit_preprocess(train.images),
                     show_progress=False)  # fmt: skip
        assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result.history)
        return model.state_dict()

    first, again = run(cfg), run(cfg)
    plain = run(dataclasses.replace(cfg, mix=MixConfig()))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], plain[k]) for k in first)  # mixing changed training


def test_function_matching_is_kl_to_the_teacher_on_mixed_batches_without_labels():
    torch.manual_seed(0)
    teacher = build_model(ModelSpec("resnet18", 4, 1, 0.25))
    student = build_model(ModelSpec("resnet18", 4, 1, 0.125))
    cfg = DistillConfig(methods={"function_matching": {"function_matching": {}}})
    objective = build_objective("function_matching", cfg, teacher, student, (1, 32, 32))
    assert objective.weights == {"ce": 0.0, "function_matching": 1.0}
    assert objective.mix == MixConfig(mode="mixup", alpha=1.0, prob=1.0)
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 3])
    student.eval()
    logits, terms = objective(student, x, y)
    with torch.no_grad():
        expected = kd_divergence(student(x), teacher.eval()(x), 1.0)
    torch.testing.assert_close(terms["function_matching"], expected)
    assert float(terms["ce"].detach()) == 0.0
    # a label term can be asked for, and other mixing
    cfg = DistillConfig(methods={"fm": {"function_matching": {"ce_weight": 0.5, "mix": "cutmix"}}})
    objective = build_objective("fm", cfg, teacher, student, (1, 32, 32))
    assert objective.weights["ce"] == 0.5 and objective.mix.mode == "cutmix"


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_teacher_and_student_see_the_same_mixed_batch(mode, monkeypatch):
    """Consistent teaching: the objective runs both models on the one batch the loop mixed."""
    from rcskd.distill.objective import DistillObjective

    seen = []
    real = DistillObjective.teacher_outputs

    def spy(self, inputs, labels):
        seen.append(inputs)
        return real(self, inputs, labels)

    monkeypatch.setattr(DistillObjective, "teacher_outputs", spy)
    torch.manual_seed(0)
    teacher = build_model(ModelSpec("resnet18", 4, 1, 0.25))
    student = build_model(ModelSpec("resnet18", 4, 1, 0.125))
    calls = []
    student.register_forward_hook(lambda m, i, o: calls.append(i[0]))
    cfg = DistillConfig(methods={"fm": {"function_matching": {"mix": mode}}})
    objective = build_objective("fm", cfg, teacher, student, (1, 32, 32))
    calls.clear()
    train = quadrant_data(8, 0, size=32)
    tc = TrainConfig(epochs=1, batch_size=8, lr=0.0, warmup_epochs=0.0,
                     augment=AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0), precision="fp32")  # fmt: skip
    fit(student, objective, train, train, tc, fit_preprocess(train.images), show_progress=False)
    assert len(seen) == 1 and torch.equal(seen[0], calls[0])
    raw = fit_preprocess(train.images)(train.images)
    unchanged = [any(torch.allclose(img, r) for r in raw) for img in seen[0]]
    assert not all(unchanged)  # the batch both models saw was mixed
