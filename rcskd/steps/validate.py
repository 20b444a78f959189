"""The pipeline's first step: all of params.yaml checked before any stage deletes an output.

DVC removes a stage's outputs just before it runs it, so a bad value that only the teacher
stage noticed would cost the user `models/teacher.pt` and its reports. The `validate` stage
runs first (every stage is downstream of it) and checks what can be checked without data:
types and ranges, unknown keys (with "did you mean"), registry names (architectures, losses)
and local files named in params. Its output is the same for every valid params.yaml, so a
change that passes never reruns anything on its own account.
"""

from __future__ import annotations

from pathlib import Path

from rcskd.config import Params, load_params
from rcskd.errors import ConfigError
from rcskd.registry import MODELS

# The stamp a valid params.yaml produces: deliberately constant (see the module docstring).
VALID_STAMP = {"params": "valid"}


def validate_params(path: str | Path) -> Params:
    """Load `path` and check every name it refers to; raise ConfigError naming the key."""
    import rcskd.distill  # noqa: F401  (registers the losses)
    import rcskd.models  # noqa: F401  (registers the architectures)
    from rcskd.distill import check_methods

    params = load_params(path)
    arch = params.teacher.arch
    if arch not in MODELS:
        known = ", ".join(MODELS.names())
        raise ConfigError(f"{path}: teacher.arch: unknown architecture {arch!r}; known: {known}"
                          " or torchvision.<name>")  # fmt: skip
    try:
        check_methods(params.distill)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    weights = params.teacher.pretrained
    if weights and not Path(weights).is_file():
        raise ConfigError(f"{path}: teacher.pretrained: {weights}: no such file")
    return params
