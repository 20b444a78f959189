"""Pruning primitives: block discovery, exact costs, consistent structural removal, importance."""

import pytest
import torch
from torch import nn

from rcskd.errors import ConfigError
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from rcskd.prune.apply import kept_channels, prune_blocks, remaining
from rcskd.prune.blocks import find_blocks

SHAPE = (1, 32, 32)
# one architecture per block kind, plus the families' variants that differ structurally
FAMILIES = {
    "resnet18": {"basic"},
    "resnet50": {"bottleneck"},
    "resnet20": {"basic"},
    "densenet121": {"dense"},
    "mobilenet_v2": {"inverted_residual"},
    "mobilenet_v3_small": {"inverted_residual"},
    "shufflenet_v2_x1_0": {"shuffle"},
}


def tiny(arch, width=0.25):
    torch.manual_seed(0)
    spec = ModelSpec(arch, num_classes=3, in_channels=1, width=width)
    return build_model(spec).eval(), spec


def test_kept_channels_rounds_and_never_empties_a_layer():
    assert kept_channels(64, 0.5) == 32
    assert kept_channels(10, 0.25) == 8  # 7.5 rounds half up
    assert kept_channels(64, 0.3, round_to=8) == 48  # 44.8 -> nearest multiple of 8
    assert kept_channels(6, 0.99) == 1 and kept_channels(64, 0.99, round_to=8) == 8
    assert kept_channels(12, 0.0, round_to=8) == 12  # unpruned layers stay as they are


@pytest.mark.parametrize("arch", sorted(FAMILIES))
@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_every_family_prunes_consistently_with_exact_costs(arch, ratio, tmp_path):
    model, spec = tiny(arch, width=0.5 if arch == "shufflenet_v2_x1_0" else 0.25)
    blocks = find_blocks(model, SHAPE)
    assert {b.kind for b in blocks} == FAMILIES[arch]
    assert [b.stage for b in blocks] == sorted(b.stage for b in blocks)  # forward order
    ratios = {b.name: ratio for b in blocks}
    pruned = prune_blocks(model, blocks, ratios, SHAPE)
    params, flops = count_params(model), count_flops(model, SHAPE)
    # the cost model predicts the pruned model's size exactly
    assert count_params(pruned) == remaining(blocks, ratios, params, "params") < params
    assert count_flops(pruned, SHAPE) == remaining(blocks, ratios, flops, "flops") < flops
    for b in blocks:
        for root in b.roots:
            assert pruned.get_submodule(root).out_channels == kept_channels(b.channels, ratio)
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        out = pruned.eval()(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    assert count_params(model) == params  # the original is untouched
    save_checkpoint(tmp_path / "p.pt", pruned, spec)  # rebuilds from the spec, weights_only
    loaded = load_checkpoint(tmp_path / "p.pt").model
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), out)


def test_l2_importance_keeps_the_largest_channels():
    model, _ = tiny("resnet20", width=0.5)  # layer1.0.conv1 has 8 output channels
    conv = model.layer1[0].conv1
    with torch.no_grad():
        conv.weight.copy_(torch.ones_like(conv.weight))
        for c, scale in enumerate([5.0, 0.1, 4.0, 0.2, 3.0, 0.3, 2.0, 0.4]):
            conv.weight[c] *= scale
        model.layer1[0].bn1.weight.fill_(1.0)
        model.layer1[0].conv2.weight.fill_(1.0)
    blocks = find_blocks(model, SHAPE)
    pruned = prune_blocks(model, blocks, {"layer1.0": 0.5}, SHAPE, importance="l2")
    kept = pruned.layer1[0].conv1.weight[:, 0, 0, 0].tolist()
    assert kept == pytest.approx([5.0, 4.0, 3.0, 2.0])  # the four largest, in original order


def test_taylor_and_bn_scale_importance_prune_too():
    model, _ = tiny("resnet20")
    blocks = find_blocks(model, SHAPE)
    with torch.no_grad():
        model.layer2[0].bn1.weight.copy_(torch.linspace(-1, 1, 8))  # |gamma| smallest at centre
    pruned = prune_blocks(model, blocks, {"layer2.0": 0.5}, SHAPE, importance="bn_scale")
    assert pruned.layer2[0].bn1.weight.abs().min() > 0.4
    model.train()
    nn.functional.cross_entropy(model(torch.rand(4, *SHAPE)), torch.tensor([0, 1, 2, 0])).backward()
    pruned = prune_blocks(model.eval(), blocks, {"layer2.0": 0.5}, SHAPE, importance="taylor")
    assert pruned.layer2[0].conv1.out_channels == 4


def test_taylor_and_l2_keep_different_channels_when_magnitude_and_effect_disagree():
    """Channel 0 of layer2.0 gets the largest weights but no effect on the loss (its BN scale
    and shift are 0): L2 keeps it, Taylor (|weight x gradient|) drops it."""
    model, _ = tiny("resnet20")
    blocks = find_blocks(model, SHAPE)
    block = model.layer2[0]
    with torch.no_grad():
        block.conv1.weight[0].fill_(5.0)
        block.bn1.weight[0] = 0.0
        block.bn1.bias[0] = 0.0
    model.train()
    images = torch.rand(8, *SHAPE, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    nn.functional.cross_entropy(model(images), labels).backward()
    model.eval()

    def keeps_the_big_channel(importance: str) -> bool:
        pruned = prune_blocks(model, blocks, {"layer2.0": 0.5}, SHAPE, importance=importance)
        return bool((pruned.layer2[0].conv1.weight == 5.0).flatten(1).all(1).any())

    assert keeps_the_big_channel("l2")
    assert not keeps_the_big_channel("taylor")


def test_unknown_block_and_importance_are_named():
    model, _ = tiny("resnet20")
    blocks = find_blocks(model, SHAPE)
    with pytest.raises(ConfigError, match="unknown blocks: \\['layer9.0'\\]"):
        prune_blocks(model, blocks, {"layer9.0": 0.5}, SHAPE)
    with pytest.raises(ConfigError, match="prune.importance 'fisher'"):
        prune_blocks(model, blocks, {"layer1.0": 0.5}, SHAPE, importance="fisher")


def test_model_without_blocks_is_refused():
    with pytest.raises(ConfigError, match="no prunable blocks"):
        find_blocks(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), SHAPE)
