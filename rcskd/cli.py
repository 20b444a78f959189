"""`rcskd` console script for work outside the pipeline.

rcskd info                 registered architectures and data sources
rcskd info MODEL.pt        a checkpoint's architecture, classes, size and training facts
rcskd export MODEL.pt      ONNX + TorchScript (both checked against PyTorch) + model card
rcskd predict PATH...      class and probabilities of images, folders or DICOM files
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
    import rcskd.models  # noqa: F401  (registers the architectures)
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

    checkpoint = load_checkpoint(args.checkpoint)
    spec, inputs = checkpoint.spec, checkpoint.inputs
    shape = inputs.shape if inputs else (spec.in_channels, 64, 64)
    facts = {
        "file": str(args.checkpoint),
        "arch": spec.arch,
        "width": spec.width,
        "in_channels": spec.in_channels,
        "resized_layers": len(spec.layers),
        "params": count_params(checkpoint.model),
        "flops_per_image": count_flops(checkpoint.model, shape),
        "inputs": inputs.as_dict() if inputs else None,
        **checkpoint.provenance,
    }
    print(json.dumps(facts, indent=2))


def _export(args: argparse.Namespace) -> None:
    from rcskd.config import ExportConfig
    from rcskd.export.bundle import export_bundle

    evaluation = args.evaluation or Path("reports/evaluation") / f"{args.checkpoint.stem}.json"
    int8 = (
        ExportConfig(max_int8_drop=args.max_int8_drop, int8_mode=args.int8_mode)
        if args.int8
        else None
    )
    summary = export_bundle(
        args.checkpoint, args.out, args.prepared, args.opset, args.samples, args.tol, evaluation,
        int8,
    )  # fmt: skip
    for kind, info in summary["exports"].items():
        if kind == "int8":
            print(f"int8: {Path(args.out) / info['file']} (validation accuracy "
                  f"{info['int8_val_acc']:.4f}, FP32 {info['fp32_val_acc']:.4f})")  # fmt: skip
            continue
        print(f"{kind}: {Path(args.out) / info['file']} (max |diff| {info['max_abs_diff']:.2e})")
    print(f"model card: {Path(args.out) / (args.checkpoint.stem + '.card.md')}")


def _predict(args: argparse.Namespace) -> int:
    from rcskd.predict import Predictor, format_table, predict_paths

    predictor = Predictor(args.model)
    # the model's own warning first, before any result can be read without it
    for warning in predictor.warnings:
        print(f"rcskd predict: warning: {args.model}: {warning}", file=sys.stderr, flush=True)
    results = predict_paths(predictor, args.paths, args.gradcam)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(format_table(results, predictor.classes, predictor.warnings))
    for r in results:
        for warning in r.warnings:
            if warning not in predictor.warnings:
                print(f"rcskd predict: warning: {r.origin}: {warning}", file=sys.stderr)
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"rcskd predict: error: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The `rcskd` command line: every option has help text."""
    parser = argparse.ArgumentParser(prog="rcskd", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"rcskd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="what is registered, or what a checkpoint holds")
    info.add_argument("checkpoint", nargs="?", type=Path,
                      help="a .pt checkpoint to describe (omit: list the registry)")  # fmt: skip
    info.set_defaults(run=_info)
    export = sub.add_parser("export", help="ONNX + TorchScript + model card, checked")
    export.add_argument("checkpoint", type=Path, help="the .pt checkpoint to export")
    export.add_argument(
        "--out",
        type=Path,
        default=Path("models/export"),
        help="folder for the exported files (default models/export)",
    )
    export.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    export.add_argument(
        "--prepared",
        type=Path,
        default=Path("data/prepared"),
        help="prepared data whose test images check the export",
    )
    export.add_argument("--samples", type=int, default=32, help="test images for the check")
    export.add_argument("--tol", type=float, default=1e-4, help="max allowed |logit difference|")
    export.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        help="evaluate-stage report for the card (default reports/evaluation/NAME.json)",
    )
    export.add_argument(
        "--int8",
        action="store_true",
        help="also write NAME.int8.onnx (ONNX Runtime post-training quantisation, calibrated "
        "on training images, checked on the validation split)",
    )
    export.add_argument(
        "--max-int8-drop",
        type=float,
        default=0.01,
        help="fail when INT8 validation accuracy is this much below FP32's (default 0.01)",
    )
    export.add_argument(
        "--int8-mode",
        choices=["static", "dynamic"],
        default="static",
        help="static: calibrated activations (default); dynamic: weights only",
    )
    export.set_defaults(run=_export)
    predict = sub.add_parser("predict", help="classify images, folders or DICOM files")
    predict.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="image files (PNG, JPEG, ...), DICOM files or folders of them",
    )
    predict.add_argument(
        "--model",
        type=Path,
        default=Path("models/shipped.pt"),
        help=".pt checkpoint or exported .onnx (default: the student the pipeline shipped)",
    )
    predict.add_argument("--json", action="store_true", help="JSON instead of a table")
    predict.add_argument(
        "--gradcam",
        type=Path,
        default=None,
        help="folder for Grad-CAM overlay PNGs (.pt models only)",
    )
    predict.set_defaults(run=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rcskd` command."""
    args = build_parser().parse_args(argv)
    status: list[int] = []
    code = run_reporting_errors(f"rcskd {args.command}", lambda: status.append(args.run(args) or 0))
    return code or (status[0] if status else 0)


if __name__ == "__main__":
    sys.exit(main())
