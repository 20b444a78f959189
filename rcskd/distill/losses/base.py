"""What every distillation loss shares: the base class, its settings, tap shapes, adapters.

A loss file declares everything about its method in one place: the loss (registered in
`rcskd.registry.LOSSES` by name), its settings dataclass (`Config`, a `TermConfig` whose
`weight` default is the method's usual weight) and nothing else needs editing to use it:
`params.yaml` `distill.methods` names it as a term, and the objective builds it by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.config import MixConfig, bounds
from rcskd.distill.outputs import Outputs
from rcskd.errors import ConfigError


@dataclass(frozen=True)
class TermConfig:
    """Settings of one loss term in a method: at least its weight in the objective."""

    weight: float = field(default=1.0, metadata=bounds(0.0))


class TapShapes(dict):
    """Per-sample shapes by tap name; an unknown tap is a ConfigError listing the known ones."""

    def __init__(self, role: str, shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__(shapes)
        self.role = role

    def __missing__(self, name: str) -> tuple[int, ...]:
        raise ConfigError(f"the {self.role} has no tap {name!r}; its taps are {', '.join(self)}")


@dataclass(frozen=True)
class Shapes:
    """Per-sample output shapes of every tap (and the logits) of student and teacher."""

    student: dict[str, tuple[int, ...]]
    teacher: dict[str, tuple[int, ...]]
    classes: int


class DistillLoss(nn.Module):
    """A distillation term: `forward(s, t, labels) -> scalar`, unweighted.

    `taps` lists the taps the loss reads; `grad_taps` those whose teacher gradient it needs
    (TKD-CA). Adapters that bridge student and teacher sizes are submodules of the loss: they
    are trained with the student and never exported.
    """

    Config: type[TermConfig] = TermConfig  # the loss's settings in params.yaml
    taps: tuple[str, ...] = ()
    grad_taps: tuple[str, ...] = ()
    target: str = "label"  # whose class the teacher gradient is taken for (TKD-CA)
    mix: MixConfig | None = None  # batch mixing the method needs (function matching)

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> DistillLoss:
        """Build from the method's params section and the models' tap shapes."""
        raise NotImplementedError

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        raise NotImplementedError


def conv_adapter(student_channels: int, teacher_channels: int) -> nn.Module:
    """1x1 conv + BN mapping student channels to the teacher's; identity when they match."""
    if student_channels == teacher_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
        nn.BatchNorm2d(teacher_channels),
    )


def linear_adapter(student_dim: int, teacher_dim: int) -> nn.Module:
    """A linear map between embedding sizes; identity when they match."""
    if student_dim == teacher_dim:
        return nn.Identity()
    return nn.Linear(student_dim, teacher_dim)


def match_spatial(x: Tensor, like: Tensor) -> Tensor:
    """`x` resized (bilinear) to the spatial size of `like` when they differ."""
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def channels(shape: tuple[int, ...]) -> int:
    """Channel count (or vector length) of a per-sample shape."""
    return int(shape[0]) if len(shape) > 1 else int(shape[-1])


def flat_dim(shape: tuple[int, ...]) -> int:
    """Number of values per sample."""
    n = 1
    for d in shape:
        n *= int(d)
    return n
