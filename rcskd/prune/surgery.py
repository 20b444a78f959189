"""Torch-Pruning surgery: remove chosen output channels of convs and everything coupled to them.

Kept apart from `blocks` (which measures costs by removing channels from a copy) and `apply`
(which decides which channels go), so neither imports the other.
"""

from __future__ import annotations

import torch_pruning as tp
from torch import nn

from rcskd.errors import ConfigError


def dependency_graph(model: nn.Module, scope: str, args: tuple) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of the submodule `scope`, traced with `args`."""
    module = model.get_submodule(scope)
    return tp.DependencyGraph().build_dependency(
        module, example_inputs=args, forward_fn=lambda m, a: m(*a), verbose=False
    )


def remove_channels(
    model: nn.Module, scope: str, args: tuple, roots: tuple[str, ...], idxs: list[list[int]]
) -> None:
    """Remove output channels `idxs[i]` of conv `roots[i]` and everything coupled to them."""
    graph = dependency_graph(model, scope, args)
    for root, channels in zip(roots, idxs, strict=True):
        if not channels:
            continue
        conv = model.get_submodule(root)
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(channels))
        if not graph.check_pruning_group(group):
            raise ConfigError(f"{root}: cannot remove {len(channels)} channels consistently")
        group.prune()
