"""Distillation losses, registered in `rcskd.registry.LOSSES` by name.

Every module in this package is imported here, so a new loss is one new file: nothing else
lists the losses.
"""

import importlib
import pkgutil

from rcskd.distill.losses.base import DistillLoss, Shapes, TapShapes, TermConfig

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DistillLoss", "Shapes", "TapShapes", "TermConfig"]
