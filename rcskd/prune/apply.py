"""Apply per-block pruning ratios with Torch-Pruning: ratios -> a smaller, consistent model."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn

from rcskd.errors import ConfigError
from rcskd.prune.blocks import Block, scope_inputs
from rcskd.prune.surgery import dependency_graph, remove_channels

IMPORTANCE: dict[str, Callable[[], tp.importance.Importance]] = {
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),  # group L2 magnitude
    "taylor": lambda: tp.importance.GroupTaylorImportance(),  # needs .grad from a backward pass
    "bn_scale": lambda: tp.importance.BNScaleImportance(),  # |gamma| of the batch norms
}


def kept_channels(channels: int, ratio: float, round_to: int = 1) -> int:
    """Channels left after pruning `ratio` of `channels`, rounded to a multiple of `round_to`.

    At least `round_to` (and at least 1) channels always remain.
    """
    kept = channels * (1.0 - ratio)
    if round_to > 1:
        kept = round_to * round(kept / round_to)
    return int(min(channels, max(round_to, 1, math.floor(kept + 0.5))))


def channel_scores(
    model: nn.Module, block: Block, args: tuple, importance: str
) -> list[torch.Tensor]:
    """Importance of every internal channel of `block`, one tensor per root (higher = keep)."""
    if importance not in IMPORTANCE:
        raise ConfigError(f"prune.importance {importance!r}; allowed: {', '.join(IMPORTANCE)}")
    graph = dependency_graph(model, block.scope, args)
    scorer = IMPORTANCE[importance]()
    scores = []
    for root in block.roots:
        conv = model.get_submodule(root)
        group = graph.get_pruning_group(
            conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels))
        )
        scores.append(scorer(group).detach().cpu())
    return scores


def prune_blocks(
    model: nn.Module,
    blocks: list[Block],
    ratios: dict[str, float],
    input_shape: tuple[int, ...],
    importance: str = "l2",
    round_to: int = 1,
) -> nn.Module:
    """A pruned copy of `model`: block b loses `ratios[b.name]` of its internal channels.

    The least important channels go (per `importance`); `model` itself is left untouched (its
    `.grad`, needed by Taylor importance, is copied with it).
    """
    unknown = sorted(set(ratios) - {b.name for b in blocks})
    if unknown:
        raise ConfigError(f"pruning ratios name unknown blocks: {unknown[:3]}")
    pruned = copy.deepcopy(model)
    for p_new, p_old in zip(pruned.parameters(), model.parameters(), strict=True):
        if p_old.grad is not None:
            p_new.grad = p_old.grad.clone()
    inputs = scope_inputs(pruned, [b.scope for b in blocks], input_shape)
    for block in blocks:
        ratio = ratios.get(block.name, 0.0)
        keep = kept_channels(block.channels, ratio, round_to)
        if keep == block.channels:
            continue
        scores = channel_scores(pruned, block, inputs[block.scope], importance)
        drop = [torch.argsort(s)[: block.channels - keep].sort().values.tolist() for s in scores]
        remove_channels(pruned, block.scope, inputs[block.scope], block.roots, drop)
    for p in pruned.parameters():
        p.grad = None
    return pruned


def remaining(
    blocks: list[Block], ratios: dict[str, float], total: int, resource: str, round_to: int = 1
) -> int:
    """Parameters (resource="params") or FLOPs ("flops") left after `ratios`, exactly."""
    removed = 0
    for b in blocks:
        cut = b.channels - kept_channels(b.channels, ratios.get(b.name, 0.0), round_to)
        removed += b.removed(cut, resource)
    return total - removed
