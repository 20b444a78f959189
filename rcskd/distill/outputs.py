"""What distillation losses see of a model's forward pass, and the hooks that collect it.

`FeatureTaps` registers one forward hook per named tap when it is created (not once per step,
which is how the reference code leaked hooks) and keeps the latest outputs. For the teacher,
taps named in `grad_taps` are turned into tensors that require grad, so that TKD-CA can take
d(target logit)/d(feature) with `torch.autograd.grad` while the teacher's parameters stay frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from rcskd.errors import ConfigError
from rcskd.models.taps import taps as model_taps


@dataclass
class Outputs:
    """One model's forward pass: logits, named tap features and (teacher) feature gradients."""

    logits: Tensor
    features: dict[str, Tensor] = field(default_factory=dict)
    feature_grads: dict[str, Tensor] = field(default_factory=dict)

    def float(self) -> Outputs:
        """The same outputs in fp32 (what every loss computes in, whatever the autocast)."""
        return Outputs(
            self.logits.float(),
            {k: v.float() for k, v in self.features.items()},
            {k: v.float() for k, v in self.feature_grads.items()},
        )

    def feature(self, name: str) -> Tensor:
        """The feature at tap `name`, flattened to (N, D) when it is a pooled vector."""
        value = self.features[name]
        return value.flatten(1) if name == "pool" else value


class FeatureTaps:
    """Forward hooks on `model`'s named taps; `features` holds the last forward's outputs."""

    def __init__(self, model: nn.Module, names: list[str], grad_taps: tuple[str, ...] = ()):
        available = model_taps(model)
        unknown = [n for n in list(names) + list(grad_taps) if n not in available]
        if unknown:
            raise ConfigError(
                f"{type(model).__name__} has no tap {unknown[0]!r}; its taps are "
                f"{', '.join(available)}"
            )
        self.features: dict[str, Tensor] = {}
        self._grad_taps = set(grad_taps)
        self._handles = [
            available[name].register_forward_hook(self._hook(name))
            for name in dict.fromkeys(list(names) + list(grad_taps))
        ]

    def _hook(self, name: str):
        def store(_module: nn.Module, _inputs: tuple, output: Tensor) -> Tensor | None:
            if name in self._grad_taps and not output.requires_grad:
                # A leaf that requires grad: the rest of the forward builds a graph from here
                # (and later grad taps stay inside it), while parameters get no gradient.
                output = output.detach().requires_grad_(True)
                self.features[name] = output
                return output
            self.features[name] = output
            return None

        return store

    def pop(self) -> dict[str, Tensor]:
        """The collected features, cleared for the next forward."""
        features, self.features = self.features, {}
        return features

    def remove(self) -> None:
        """Remove the hooks (the objective does this when training ends)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
