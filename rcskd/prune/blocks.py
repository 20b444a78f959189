"""The prunable blocks of a zoo model and what pruning each one costs and saves.

A block's *internal* channels are the ones no residual addition or dense concatenation sees:
BasicBlock conv1 outputs, Bottleneck conv1 and conv2 outputs, a dense layer's bottleneck, an
inverted residual's expanded (depthwise) channels, a ShuffleNet unit's branch-2 channels.
Pruning them never touches a shared trunk, so skip connections stay consistent by construction;
Torch-Pruning's dependency graph, built on the block's `scope`, carries every removal to the
coupled layers (batch norms, depthwise convs, squeeze-excitation gates, the next conv's inputs).
This is the reference code's unit (conv1 of each BasicBlock), generalised to every family.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rcskd.errors import ConfigError
from rcskd.metrics.complexity import count_params, forward_flops
from rcskd.models.densenet import DenseLayer
from rcskd.models.mobilenet import InvertedResidualV2, InvertedResidualV3
from rcskd.models.resnet import BasicBlock, Bottleneck
from rcskd.models.shufflenet import ShuffleUnit
from rcskd.prune.surgery import remove_channels

# kept shares of a block's channels at which the latency table is measured
LATENCY_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
KINDS = ("basic", "bottleneck", "dense", "inverted_residual", "shuffle")


@dataclass(frozen=True)
class Block:
    """One prunable unit: where it is, which convs' outputs are pruned, what a channel costs.

    The cost coefficients are measured by removing channels, so the parameters and FLOPs left
    after any set of ratios are known exactly without pruning.
    """

    name: str  # module path, e.g. "layer2.1"
    kind: str  # one of KINDS
    stage: int  # resolution level (1-based), for `granularity: stage` and the agent's state
    scope: str  # module path the dependency graph is built on
    roots: tuple[str, ...]  # convs (paths) whose output channels are pruned
    channels: int  # internal channels per root
    in_channels: int
    out_channels: int
    # Removing k channels from every root removes a*k + b*k^2 parameters (FLOPs): linear for one
    # root, quadratic when two coupled roots shrink together (Bottleneck conv2: m x m weights).
    params_cost: tuple[int, int]
    flops_cost: tuple[int, int]
    # ms of the block alone at kept fractions 0.1, 0.2, ..., 1.0 (rcskd.prune.latency), when
    # `prune.resource: latency`
    latency_ms: tuple[float, ...] = ()

    def removed(self, k: float, resource: str) -> float:
        """Parameters ("params"), FLOPs per image ("flops") or milliseconds ("latency", from
        the measured table) removed with k channels per root."""
        if resource == "latency":
            return self.latency_at(1.0) - self.latency_at(1.0 - k / self.channels)
        a, b = self.params_cost if resource == "params" else self.flops_cost
        return a * k + b * k * k

    def latency_at(self, kept: float) -> float:
        """Milliseconds at a kept fraction (linear between the measured ones)."""
        if not self.latency_ms:
            raise ValueError(f"{self.name}: no latency table attached (prune.resource: latency)")
        return float(np.interp(kept, LATENCY_FRACTIONS, self.latency_ms))


def _describe(name: str, module: nn.Module) -> tuple[str, str, tuple[str, ...]] | None:
    """(kind, scope, roots) of a prunable block, or None."""
    if isinstance(module, BasicBlock):
        return "basic", name, (f"{name}.conv1",)
    if isinstance(module, Bottleneck):
        return "bottleneck", name, (f"{name}.conv1", f"{name}.conv2")
    if isinstance(module, DenseLayer):
        return "dense", name, (f"{name}.conv1",)
    if isinstance(module, InvertedResidualV2) and len(module.conv) == 4:  # has an expansion
        return "inverted_residual", f"{name}.conv", (f"{name}.conv.0.0",)
    if isinstance(module, InvertedResidualV3) and module.block[0][0].groups == 1:
        return "inverted_residual", f"{name}.block", (f"{name}.block.0.0",)
    if isinstance(module, ShuffleUnit):
        return "shuffle", f"{name}.branch2", (f"{name}.branch2.0",)
    return None


def scope_inputs(
    model: nn.Module, scopes: list[str], input_shape: tuple[int, ...]
) -> dict[str, tuple]:
    """The positional inputs each scope module receives in a forward pass of one dummy image."""
    captured: dict[str, tuple] = {}
    hooks = []
    for scope in scopes:

        def grab(module, args, scope=scope):
            captured.setdefault(scope, tuple(_detach(a) for a in args))

        hooks.append(model.get_submodule(scope).register_forward_pre_hook(grab))
    _dummy_forward(model, input_shape, hooks)
    return captured


def _dummy_forward(model: nn.Module, input_shape: tuple[int, ...], hooks: list) -> None:
    """One eval-mode forward pass of a zero image for the hooks to see; then remove them."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)


def _detach(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list | tuple):
        return type(value)(_detach(v) for v in value)
    return value


def find_blocks(model: nn.Module, input_shape: tuple[int, ...]) -> list[Block]:
    """Every prunable block of `model` in forward order, with its exact per-channel costs."""
    found = [(name, d) for name, m in model.named_modules() if (d := _describe(name, m))]
    if not found:
        raise ConfigError(
            f"{type(model).__name__}: no prunable blocks; pruning supports the zoo's ResNet, "
            "DenseNet, MobileNet and ShuffleNet families"
        )
    probe = copy.deepcopy(model).eval()
    # internal channels never change a block's inputs or outputs: one capture serves all blocks
    inputs = scope_inputs(probe, [scope for _, (_, scope, _) in found], input_shape)
    sides = _output_sides(probe, [name for name, _ in found], input_shape)
    levels = sorted(set(sides.values()), reverse=True)
    blocks = []
    for name, (kind, scope, roots) in found:
        module = model.get_submodule(name)
        first = model.get_submodule(roots[0])
        # one, then two channels less in every root of this block, measured on the probe copy
        # (inside the scope, where all the change happens): f(1) = a + b and f(2) = 2a + 4b
        # give the cost's two coefficients
        before = _scope_cost(probe, scope, inputs[scope])
        removed = []
        for _ in range(2 if first.out_channels > 2 else 1):
            remove_channels(probe, scope, inputs[scope], roots, [[0]] * len(roots))
            after = _scope_cost(probe, scope, inputs[scope])
            removed.append((before[0] - after[0], before[1] - after[1]))
        costs = [_coefficients([r[i] for r in removed]) for i in (0, 1)]
        x = inputs[scope][0]
        x = torch.cat(x, 1) if isinstance(x, list | tuple) else x
        blocks.append(
            Block(
                name=name,
                kind=kind,
                stage=levels.index(sides[name]) + 1,
                scope=scope,
                roots=roots,
                channels=first.out_channels,
                in_channels=int(x.shape[1]),
                out_channels=_block_out_channels(module),
                params_cost=costs[0],
                flops_cost=costs[1],
            )
        )
    return blocks


def _scope_cost(model: nn.Module, scope: str, args: tuple) -> tuple[int, int]:
    module = model.get_submodule(scope)
    return count_params(module), forward_flops(module, *args)


def _coefficients(removed: list[int]) -> tuple[int, int]:
    """(a, b) with f(k) = a*k + b*k^2 from f(1) (and f(2) when measured)."""
    if len(removed) == 1:
        return removed[0], 0
    b = (removed[1] - 2 * removed[0]) // 2
    return removed[0] - b, b


def _block_out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def _output_sides(
    model: nn.Module, names: list[str], input_shape: tuple[int, ...]
) -> dict[str, int]:
    """Spatial size of each named module's output for one dummy image."""
    sides: dict[str, int] = {}

    def record(name: str):
        def hook(module, args, out) -> None:  # returning a value would replace the output
            sides.setdefault(name, int(out.shape[-1]))

        return hook

    hooks = [model.get_submodule(n).register_forward_hook(record(n)) for n in names]
    _dummy_forward(model, input_shape, hooks)
    return sides
