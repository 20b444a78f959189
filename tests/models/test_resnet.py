import pytest
import torch
from torch import nn

from rcskd.models import (
    CheckpointError,
    InputSpec,
    ModelSpec,
    build_model,
    load_checkpoint,
    save_checkpoint,
    spec_of,
    taps,
)
from rcskd.registry import MODELS

# torchvision's published parameter counts (3 input channels, 1000 classes)
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", sorted(TORCHVISION_PARAMS))
def test_imagenet_resnets_match_torchvision(arch):
    model = MODELS.build(arch, num_classes=1000, in_channels=3)
    assert n_params(model) == TORCHVISION_PARAMS[arch]
    keys = set(model.state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "fc.bias",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.num_batches_tracked",
    } <= keys


def test_cifar_resnet20_size():
    # 0.27M parameters for 10 classes (He et al. 2016, Table 6)
    assert n_params(MODELS.build("resnet20", num_classes=10, in_channels=3)) == 272_474


@pytest.mark.parametrize("arch", [a for a in MODELS.names() if a.startswith("resnet")])
def test_every_resnet_builds_and_runs_tiny(arch):
    model = MODELS.build(arch, num_classes=4, in_channels=1, width=0.25).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 32, 32))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_taps_name_stages_and_pool():
    model = MODELS.build("resnet18", num_classes=4, width=0.25).eval()
    named = taps(model)
    assert list(named) == ["stage1", "stage2", "stage3", "stage4", "pool"]
    seen = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o.shape))
        for k, m in named.items()
    ]
    with torch.no_grad():
        model(torch.rand(1, 1, 64, 64))
    for h in hooks:
        h.remove()
    assert seen["stage1"] == (1, 16, 16, 16) and seen["stage4"] == (1, 128, 2, 2)
    assert seen["pool"] == (1, 128, 1, 1)


def shrink_first_block(model):
    """Halve layer1.0's inner channels by hand, as structured pruning would."""
    block = model.layer1[0]
    keep = torch.arange(block.conv1.out_channels // 2)
    conv1 = nn.Conv2d(block.conv1.in_channels, len(keep), 3, 1, 1, bias=False)
    conv1.weight.data = block.conv1.weight.data[keep].clone()
    bn1 = nn.BatchNorm2d(len(keep))
    conv2 = nn.Conv2d(len(keep), block.conv2.out_channels, 3, 1, 1, bias=False)
    conv2.weight.data = block.conv2.weight.data[:, keep].clone()
    block.conv1, block.bn1, block.conv2 = conv1, bn1, conv2
    return model


def test_pruned_model_round_trips_through_spec_and_checkpoint(tmp_path):
    base = ModelSpec("resnet18", num_classes=4, in_channels=1, width=0.25)
    model = shrink_first_block(build_model(base)).eval()
    spec = spec_of(model, base)
    assert spec.layers == {
        "layer1.0.conv1": [16, 8],
        "layer1.0.bn1": [8],
        "layer1.0.conv2": [8, 16],
    }
    inputs = InputSpec(["a", "b", "c", "d"], 32, 1, dicom_window="fixed", dicom_center=50.0)
    save_checkpoint(tmp_path / "m.pt", model, base, inputs, {"epoch": 3})
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    loaded, loaded_spec = checkpoint.model, checkpoint.spec
    assert loaded_spec == spec and checkpoint.provenance == {"epoch": 3}
    assert checkpoint.inputs == inputs and checkpoint.inputs.dicom_center == 50.0
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))
    assert n_params(loaded) < n_params(build_model(base))


def test_pickled_whole_module_is_refused(tmp_path):
    model = MODELS.build("resnet20", num_classes=4, width=0.25)
    torch.save(model, tmp_path / "whole.pt")  # the unsafe way
    with pytest.raises(CheckpointError, match=r"whole\.pt: refused: .*pickled Python objects"):
        load_checkpoint(tmp_path / "whole.pt")


def test_foreign_and_missing_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an rcskd checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_pretrained_rgb_weights_load_into_a_grey_model(tmp_path):
    from rcskd.models import load_pretrained

    rgb = MODELS.build("resnet18", num_classes=1000, in_channels=3, width=0.25)
    torch.save(rgb.state_dict(), tmp_path / "tv.pth")
    grey = MODELS.build("resnet18", num_classes=4, in_channels=1, width=0.25)
    skipped = load_pretrained(grey, tmp_path / "tv.pth")
    assert skipped == ["fc.bias", "fc.weight"]  # 1000 -> 4 classes: head stays initialised
    assert torch.equal(grey.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(grey.layer3[1].conv2.weight, rgb.layer3[1].conv2.weight)
    x = torch.rand(1, 1, 32, 32)
    grey.eval(), rgb.eval()
    with torch.no_grad():  # same features for a grey image replicated to RGB
        assert torch.allclose(grey.features(x), rgb.features(x.repeat(1, 3, 1, 1)), atol=1e-5)


def test_pretrained_for_another_architecture_is_refused(tmp_path):
    from rcskd.models import load_pretrained

    torch.save(MODELS.build("resnet50", num_classes=4).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(CheckpointError, match="weights for another architecture"):
        load_pretrained(MODELS.build("resnet18", num_classes=4), tmp_path / "r50.pth")
