"""Every registered architecture: builds by name, runs, matches torchvision, has taps."""

import sys
import types

import pytest
import torch
from torch import nn

from rcskd.errors import ConfigError
from rcskd.models import (
    ModelSpec,
    build_model,
    default_feature_tap,
    load_checkpoint,
    save_checkpoint,
    spec_of,
    taps,
)
from rcskd.registry import MODELS

# torchvision's published parameter counts (3 input channels, 1000 classes)
TORCHVISION_PARAMS = {
    "densenet121": 7_978_856,
    "densenet201": 20_013_928,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "shufflenet_v2_x0_5": 1_366_792,
    "shufflenet_v2_x1_0": 2_278_604,
    "shufflenet_v2_x1_5": 3_503_624,
    "shufflenet_v2_x2_0": 7_393_996,
}

# a few parameter names per family exactly as in torchvision's state_dicts
TORCHVISION_KEYS = {
    "densenet121": [
        "features.conv0.weight",
        "features.denseblock1.denselayer1.norm1.running_var",
        "features.denseblock3.denselayer24.conv2.weight",
        "features.transition2.conv.weight",
        "features.norm5.bias",
        "classifier.weight",
    ],
    "mobilenet_v2": [
        "features.0.0.weight",
        "features.1.conv.0.0.weight",
        "features.2.conv.1.1.running_mean",
        "features.17.conv.3.bias",
        "features.18.0.weight",
        "classifier.1.weight",
    ],
    "mobilenet_v3_large": [
        "features.0.0.weight",
        "features.4.block.2.fc1.weight",
        "features.4.block.2.fc2.bias",
        "features.16.0.weight",
        "classifier.0.weight",
        "classifier.3.bias",
    ],
    "shufflenet_v2_x1_0": [
        "conv1.0.weight",
        "stage2.0.branch1.0.weight",
        "stage2.0.branch2.6.running_var",
        "stage4.3.branch2.5.weight",
        "conv5.1.weight",
        "fc.weight",
    ],
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", sorted(TORCHVISION_PARAMS))
def test_parameter_count_matches_torchvision(arch):
    assert n_params(MODELS.build(arch, num_classes=1000, in_channels=3)) == TORCHVISION_PARAMS[arch]


@pytest.mark.parametrize("arch", sorted(TORCHVISION_KEYS))
def test_parameter_names_match_torchvision(arch):
    keys = set(MODELS.build(arch, num_classes=1000, in_channels=3).state_dict())
    assert set(TORCHVISION_KEYS[arch]) <= keys


@pytest.mark.parametrize("arch", MODELS.names())
def test_every_registered_model_builds_runs_and_has_taps(arch):
    torch.manual_seed(0)
    model = MODELS.build(arch, num_classes=3, in_channels=1, width=0.25).eval()
    named = taps(model)
    assert list(named)[-1] == "pool" and list(named)[0] == "stage1"
    seen = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o.shape))
        for k, m in named.items()
    ]
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 32, 32))
    for h in hooks:
        h.remove()
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    spatial = [seen[k][-1] for k in named if k != "pool"]
    assert spatial == sorted(spatial, reverse=True)  # resolution never grows along the taps
    assert seen["pool"][-2:] == (1, 1)
    assert default_feature_tap(model) == [k for k in named if k != "pool"][-1]


@pytest.mark.parametrize("arch", ["densenet121", "mobilenet_v2", "mobilenet_v3_small"])
def test_three_channel_input_and_width_multiplier(arch):
    small = MODELS.build(arch, num_classes=5, in_channels=3, width=0.5)
    full = MODELS.build(arch, num_classes=5, in_channels=3, width=1.0)
    assert n_params(small) < 0.5 * n_params(full)
    assert small.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_depthwise_model_round_trips_after_a_channel_cut(tmp_path):
    base = ModelSpec("mobilenet_v2", num_classes=4, in_channels=1, width=0.5)
    model = build_model(base).eval()
    block = model.features[2].conv  # expand 1x1 -> depthwise 3x3 -> project 1x1
    keep = torch.arange(block[0][0].out_channels // 2)
    expand, dw, project = block[0][0], block[1][0], block[2]
    new_expand = nn.Conv2d(expand.in_channels, len(keep), 1, bias=False)
    new_expand.weight.data = expand.weight.data[keep].clone()
    new_dw = nn.Conv2d(len(keep), len(keep), 3, dw.stride, 1, groups=len(keep), bias=False)
    new_dw.weight.data = dw.weight.data[keep].clone()
    new_project = nn.Conv2d(len(keep), project.out_channels, 1, bias=False)
    new_project.weight.data = project.weight.data[:, keep].clone()
    block[0][0], block[1][0], block[2] = new_expand, new_dw, new_project
    block[0][1], block[1][1] = nn.BatchNorm2d(len(keep)), nn.BatchNorm2d(len(keep))
    model.eval()
    save_checkpoint(tmp_path / "cut.pt", model, base)
    checkpoint = load_checkpoint(tmp_path / "cut.pt")
    loaded, spec = checkpoint.model, checkpoint.spec
    assert spec == spec_of(model, base) and spec.layers["features.2.conv.1.0"] == [24, 24]
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))


def test_torchvision_family_fails_clearly_without_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r"'torchvision\.\*' needs an importable torchvision"):
        MODELS.build("torchvision.resnet18", num_classes=4)


class _TvLikeResNet(nn.Module):
    """What torchvision.models.get_model("resnet18") returns, in the parts that matter here."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        for i in range(1, 5):
            setattr(self, f"layer{i}", nn.Sequential(nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU()))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.avgpool(x).flatten(1))


def test_torchvision_family_adapts_the_stem_and_infers_taps(monkeypatch):
    calls = []

    def get_model(name, weights=None, num_classes=1000):
        calls.append((name, weights, num_classes))
        return _TvLikeResNet(num_classes)

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    model = MODELS.build("torchvision.resnet18", num_classes=4, in_channels=1)
    assert calls == [("resnet18", None, 4)]
    assert model.conv1.in_channels == 1 and model.conv1.out_channels == 8
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 4)
    assert list(taps(model)) == ["stage1", "stage2", "stage3", "stage4", "pool"]
    assert taps(model)["stage2"] is model.layer2


def test_features_layout_taps_the_end_of_each_resolution():
    class FeatureNet(nn.Module):  # VGG / EfficientNet-like: `features` then pooling
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 4, 3, 2, 1),  # 1/2
                nn.Conv2d(4, 4, 3, 2, 1),  # 1/4
                nn.Conv2d(4, 4, 3, 1, 1),  # 1/4  <- stage1 (last at 1/4)
                nn.Conv2d(4, 4, 3, 2, 1),  # 1/8  <- stage2
                nn.Conv2d(4, 4, 3, 2, 1),  # 1/16
                nn.Conv2d(4, 4, 1),  # 1/16 <- stage3 (the last child)
            )
            self.avgpool = nn.AdaptiveAvgPool2d(1)

    net = FeatureNet()
    named = taps(net)
    assert list(named) == ["stage1", "stage2", "stage3", "pool"]
    assert [named[k] for k in ("stage1", "stage2", "stage3")] == [
        net.features[2],
        net.features[3],
        net.features[5],
    ]
    assert named["pool"] is net.avgpool


def test_unrecognised_layout_asks_for_a_taps_method():
    with pytest.raises(ConfigError, match="defines no taps"):
        taps(nn.Sequential(nn.Linear(2, 2)))
