"""`rcskd` console script for work outside the pipeline.

rcskd info                 registered architectures and data sources
rcskd info MODEL.pt        a checkpoint's architecture, classes, size and training facts
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rcskd import __version__
from rcskd.errors import run_reporting_errors


def _info(args: argparse.Namespace) -> None:
    import rcskd.data.sources  # noqa: F401  (registers the sources)
    from rcskd.registry import MODELS, SOURCES

    if args.checkpoint is None:
        print(f"rcskd {__version__}")
        print(
            "architectures:", ", ".join(MODELS.names()), "(and torchvision.<name> where it imports)"
        )
        print("data sources: ", ", ".join(SOURCES.names()))
        return
    from rcskd.metrics.complexity import count_flops, count_params
    from rcskd.models import load_checkpoint

    model, spec, extra = load_checkpoint(args.checkpoint)
    shape = (spec.in_channels, extra.get("image_size", 64), extra.get("image_size", 64))
    facts = {
        "file": str(args.checkpoint),
        "arch": spec.arch,
        "width": spec.width,
        "in_channels": spec.in_channels,
        "classes": extra.get("classes"),
        "resized_layers": len(spec.layers),
        "params": count_params(model),
        "flops_per_image": count_flops(model, shape),
        "input": list(shape),
        **{k: v for k, v in extra.items() if k not in ("classes", "preprocess")},
    }
    print(json.dumps(facts, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rcskd` command."""
    parser = argparse.ArgumentParser(prog="rcskd", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"rcskd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="what is registered, or what a checkpoint holds")
    info.add_argument("checkpoint", nargs="?", type=Path)
    info.set_defaults(run=_info)
    args = parser.parse_args(argv)
    return run_reporting_errors(f"rcskd {args.command}", lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())
