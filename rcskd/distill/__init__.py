"""Distillation: losses (registered by name), methods as data, and the objective the loop runs."""

from rcskd.distill.losses import DistillLoss, Shapes, TermConfig
from rcskd.distill.methods import Term, check_methods, method_terms
from rcskd.distill.objective import DistillObjective, build_objective, probe_shapes
from rcskd.distill.outputs import FeatureTaps, Outputs

__all__ = [
    "DistillLoss",
    "DistillObjective",
    "FeatureTaps",
    "Outputs",
    "Shapes",
    "Term",
    "TermConfig",
    "build_objective",
    "check_methods",
    "method_terms",
    "probe_shapes",
]
