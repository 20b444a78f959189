"""The training loop: schedule, sampling, augmentation, learning, resume, failures."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from rcskd.config import AugmentConfig, TrainConfig
from rcskd.data.dataset import TensorSplit
from rcskd.data.transforms import Preprocess, augment, fit_preprocess
from rcskd.models import ModelSpec, build_model
from rcskd.train import Batches, CrossEntropy, Objective, TrainingError, fit, lr_factor
from rcskd.train.loop import evaluate
from tests.fixtures import quadrant_data

NO_AUG = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0)


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelSpec("resnet20", num_classes=4, in_channels=1, width=0.25))


def cfg(**kw) -> TrainConfig:
    base = TrainConfig(epochs=3, batch_size=16, lr=0.05, warmup_epochs=0.5, augment=NO_AUG)
    return dataclasses.replace(base, **kw)


def test_lr_schedule_warms_up_then_follows_cosine_or_steps():
    c = TrainConfig(epochs=10, lr=1.0, warmup_epochs=1, schedule="cosine")
    assert lr_factor(c, 0, 100) == pytest.approx(0.1)
    assert lr_factor(c, 50, 100) == pytest.approx(0.55)
    assert lr_factor(c, 100, 100) == pytest.approx(1.0)
    assert lr_factor(c, 550, 100) == pytest.approx(0.5)  # half way through the cosine
    assert lr_factor(c, 1000, 100) == pytest.approx(0.0)
    s = dataclasses.replace(c, schedule="step", step_every=3, step_gamma=0.5)
    assert [lr_factor(s, e * 100, 100) for e in (1, 2, 3, 6, 9)] == [1, 1, 0.5, 0.25, 0.125]


def test_balanced_batches_draw_classes_equally_often():
    labels = torch.tensor([0] * 900 + [1] * 100)
    split = TensorSplit(torch.zeros(1000, 1, 2, 2, dtype=torch.uint8), labels)
    gen = torch.Generator().manual_seed(0)
    drawn = torch.cat([y for _, y, _ in Batches(split, 100, balanced=True, generator=gen)])
    assert len(drawn) == 1000
    assert 0.45 < (drawn == 1).float().mean() < 0.55
    shuffled = torch.cat([y for _, y, _ in Batches(split, 100, shuffle=True, generator=gen)])
    assert sorted(shuffled.tolist()) == labels.tolist()  # a permutation


def test_augment_without_operations_is_identity_and_hflip_mirrors_exactly():
    x = torch.rand(3, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    assert torch.allclose(augment(x, NO_AUG, gen), x)
    flipped = augment(x, dataclasses.replace(NO_AUG, hflip=1.0), gen)
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)


def test_augment_is_reproducible_and_stays_in_range():
    x = torch.rand(4, 1, 16, 16)
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(3))
    b = augment(x, AugmentConfig(), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert a.min() >= 0 and a.max() <= 1


def test_preprocess_standardises_the_training_images():
    images = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
    pre = fit_preprocess(images)
    x = pre(images)
    assert x.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert x.std().item() == pytest.approx(1.0, abs=1e-2)
    assert Preprocess.from_dict(pre.as_dict()) == pre


def test_fit_learns_an_easy_task_and_restores_the_best_epoch():
    train, val = quadrant_data(96, 0), quadrant_data(48, 1)
    pre = fit_preprocess(train.images)
    model = tiny_model()
    before = evaluate(model, val, pre)["acc"]
    result = fit(model, CrossEntropy(), train, val, cfg(epochs=6), pre, show_progress=False)
    after = evaluate(model, val, pre)
    assert before < 0.5 and after["acc"] >= 0.9
    best = max(r["val_balanced_acc"] for r in result.history)
    assert result.history[result.best_epoch - 1]["val_balanced_acc"] == best
    assert after["balanced_acc"] == pytest.approx(best)  # the restored weights are the best's
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5, 6]


def test_resume_after_interruption_gives_the_uninterrupted_result(tmp_path):
    train, val = quadrant_data(64, 0), quadrant_data(32, 1)
    pre = fit_preprocess(train.images)
    c = cfg(epochs=4, augment=AugmentConfig())  # augmentation on: its draws must replay too
    reference = tiny_model()
    ref = fit(reference, CrossEntropy(), train, val, c, pre, seed=5, show_progress=False)

    class Crash(Exception):
        pass

    def crash_after_two(row):
        if row["epoch"] == 2:
            raise Crash

    resume = tmp_path / "resume.pt"
    with pytest.raises(Crash):
        fit(
            tiny_model(),
            CrossEntropy(),
            train,
            val,
            c,
            pre,
            seed=5,
            resume_path=resume,
            fingerprint="run-a",
            show_progress=False,
            on_epoch=crash_after_two,
        )
    assert resume.is_file()  # epoch 1 was saved before the crash in epoch 2's callback
    resumed = tiny_model(seed=99)  # different initial weights: they must be overwritten
    res = fit(
        resumed,
        CrossEntropy(),
        train,
        val,
        c,
        pre,
        seed=5,
        resume_path=resume,
        fingerprint="run-a",
        show_progress=False,
    )
    assert res.resumed_from == 1
    assert not resume.exists()  # removed when finished
    assert [r["val_loss"] for r in res.history] == [r["val_loss"] for r in ref.history]
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_a_resume_file_of_another_run_is_ignored(tmp_path):
    train, val = quadrant_data(32, 0), quadrant_data(16, 1)
    pre = fit_preprocess(train.images)
    resume = tmp_path / "resume.pt"

    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            tiny_model(),
            CrossEntropy(),
            train,
            val,
            cfg(),
            pre,
            resume_path=resume,
            fingerprint="old",
            show_progress=False,
            on_epoch=stop,
        )
    result = fit(
        tiny_model(),
        CrossEntropy(),
        train,
        val,
        cfg(),
        pre,
        resume_path=resume,
        fingerprint="new",
        show_progress=False,
    )
    assert result.resumed_from == 0 and len(result.history) == 3


def test_damaged_resume_file_is_named(tmp_path):
    resume = tmp_path / "resume.pt"
    resume.write_bytes(b"not a checkpoint")
    train = quadrant_data(16, 0)
    with pytest.raises(TrainingError, match=r"resume\.pt: resume file is damaged"):
        fit(
            tiny_model(),
            CrossEntropy(),
            train,
            train,
            cfg(),
            fit_preprocess(train.images),
            resume_path=resume,
            show_progress=False,
        )


class NanAtSecondStep(Objective):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, model, inputs, labels, mixed=None):
        self.calls += 1
        logits = model(inputs)
        ce = nn.functional.cross_entropy(logits, labels)
        return logits, {"ce": ce * (math.nan if self.calls == 2 else 1.0)}


def test_non_finite_loss_stops_with_epoch_and_step():
    train = quadrant_data(64, 0)
    with pytest.raises(TrainingError, match=r"loss is nan at epoch 1, step 2 \(ce=nan\)"):
        fit(
            tiny_model(),
            NanAtSecondStep(),
            train,
            train,
            cfg(),
            fit_preprocess(train.images),
            show_progress=False,
        )


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    train, val = quadrant_data(32, 0), quadrant_data(16, 1)
    c = cfg(epochs=20, lr=0.0, warmup_epochs=0, early_stopping=2)  # lr 0: nothing improves
    result = fit(
        tiny_model(),
        CrossEntropy(),
        train,
        val,
        c,
        fit_preprocess(train.images),
        show_progress=False,
    )
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1
