"""Distillation: losses (registered by method name) and the objective the training loop runs."""

from rcskd.distill.losses import DistillLoss, Shapes
from rcskd.distill.outputs import FeatureTaps, Outputs
from rcskd.distill.trainer import (
    BASELINES,
    METHODS,
    DistillObjective,
    build_objective,
    method_terms,
    probe_shapes,
)

__all__ = [
    "BASELINES",
    "METHODS",
    "DistillLoss",
    "DistillObjective",
    "FeatureTaps",
    "Outputs",
    "Shapes",
    "build_objective",
    "method_terms",
    "probe_shapes",
]
