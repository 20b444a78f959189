"""Adaptive BatchNorm recalibration and the proxy score."""

import pytest
import torch

from rcskd.data.transforms import fit_preprocess
from rcskd.models import ModelSpec, build_model
from rcskd.prune.proxy import proxy_score, proxy_subsets, recalibrate_batchnorm
from tests.fixtures import quadrant_data


def test_proxy_subsets_are_disjoint_and_sized():
    train = quadrant_data(100, 0)
    calib, held = proxy_subsets(train, 30, 50, seed=0)
    assert calib.shape[0] == 30 and len(held.labels) == 50
    calib_rows = {tuple(x.flatten().tolist()) for x in calib}
    assert not calib_rows & {tuple(x.flatten().tolist()) for x in held.images}
    again, _ = proxy_subsets(train, 30, 50, seed=0)
    assert torch.equal(again, calib)  # deterministic given the seed
    val = quadrant_data(20, 5)
    _, held_val = proxy_subsets(train, 30, 50, seed=0, val=val)
    assert torch.equal(held_val.images, val.images) and torch.equal(held_val.labels, val.labels)


def test_recalibration_sets_running_stats_to_the_calibration_average():
    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet20", 4, 1, 0.25)).eval()
    images = quadrant_data(40, 0).images
    pre = fit_preprocess(images)
    model.bn1.running_mean.fill_(123.0)  # stale statistics
    recalibrate_batchnorm(model, images, pre, batch_size=16)
    with torch.no_grad():
        feats = model.conv1(pre(images))  # what bn1 sees
    # the cumulative average over batches of 16, 16, 8 equals the batch-size-weighted means
    means = [feats[i : i + 16].mean(dim=(0, 2, 3)) for i in (0, 16, 32)]
    expected = (means[0] + means[1] + means[2]) / 3  # momentum=None: plain mean of batch means
    assert torch.allclose(model.bn1.running_mean, expected, atol=1e-5)
    assert model.bn1.momentum == 0.1 and not model.training  # restored


def test_proxy_score_is_accuracy_and_loss_on_the_held_out_images():
    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet20", 4, 1, 0.25))
    train = quadrant_data(64, 0)
    pre = fit_preprocess(train.images)
    calib, held = proxy_subsets(train, 16, 32, seed=1)
    score = proxy_score(model, calib, held, pre)
    with torch.no_grad():
        logits = model.eval()(pre(held.images))
    assert score["acc"] == pytest.approx(float((logits.argmax(1) == held.labels).float().mean()))
    assert score["loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, held.labels)), rel=1e-5
    )
