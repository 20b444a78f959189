"""Distillation methods as data: `distill.methods` in params.yaml, checked against the registry.

A method is a mapping of loss terms to their settings, e.g. `rc_skd_joint: {tkd_ca: {weight:
3.0}, dkd_sg: {}}`; each term's settings are validated by the dataclass declared beside its loss,
so a typo names the dotted key. Cross-entropy on the labels (`distill.ce_weight`) is always there.
"""

from __future__ import annotations

from dataclasses import dataclass

from rcskd.config import DistillConfig, parse_section
from rcskd.distill.losses import TermConfig
from rcskd.errors import ConfigError
from rcskd.registry import LOSSES


@dataclass(frozen=True)
class Term:
    """One loss term of a method: the registered loss's name and its validated settings."""

    name: str
    config: TermConfig

    @property
    def weight(self) -> float:
        """The term's weight in the objective."""
        return self.config.weight


def method_terms(method: str, cfg: DistillConfig) -> list[Term]:
    """The validated terms of `method` (empty for plain cross-entropy fine-tuning)."""
    if method not in cfg.methods:
        known = ", ".join(cfg.methods) or "(none)"
        raise ConfigError(f"unknown distillation method {method!r}; distill.methods has: {known}")
    terms = []
    for name, settings in cfg.methods[method].items():
        key = f"distill.methods.{method}.{name}"
        if name not in LOSSES:
            raise ConfigError(
                f"{key}: {name!r} is not a registered loss; known: {', '.join(LOSSES.names())}"
            )
        terms.append(Term(name, parse_section(LOSSES.get(name).Config, settings or {}, key)))
    return terms


def check_methods(cfg: DistillConfig) -> None:
    """Validate every method in `distill.methods` (a typo fails before any training)."""
    for method in cfg.methods:
        method_terms(method, cfg)


def method_ce_weight(terms: list[Term], cfg: DistillConfig) -> float:
    """The weight of cross-entropy on the labels in a method: `distill.ce_weight`, unless one
    of its terms sets its own `ce_weight` (function matching trains on the teacher alone)."""
    own = [t.config.ce_weight for t in terms if getattr(t.config, "ce_weight", None) is not None]
    return own[0] if own else cfg.ce_weight
