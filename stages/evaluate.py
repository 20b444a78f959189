"""DVC stage `evaluate`: every checkpoint given -> metrics, details, plots, comparison table.

    python stages/evaluate.py --params params.yaml --prepared data/prepared \
        --metrics reports/metrics.json --headline reports/headline.json \
        --details reports/evaluation --plots reports/plots \
        --comparison reports/comparison.json --table reports/comparison.md \
        --selection reports/selection.json MODEL.pt|FOLDER ...

A folder stands for the checkpoints (*.pt) and INT8 ONNX exports (*.int8.onnx) in it, in name
order; each model is named by its file stem. Adding a model is a dvc.yaml change, not a code change.
`--selection` is the ship stage's choice: the headline and the table name the shipped student.
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import run_stage, stage_parser

from rcskd.config import as_dict
from rcskd.data.dataset import load_meta
from rcskd.io import atomic_dir, read_json, write_bytes_atomic, write_json_atomic, write_text_atomic
from rcskd.report.comparison import headline_metrics
from rcskd.steps.evaluate import evaluate_models
from rcskd.tracking import data_tags, stage_run


def checkpoint_paths(items: list[Path]) -> list[Path]:
    """Files as given; folders expanded to their checkpoints (*.pt) and INT8 exports
    (*.int8.onnx), sorted: an export folder without INT8 (`export.int8: false`) adds nothing."""
    paths: list[Path] = []
    for item in items:
        found = [*item.glob("*.pt"), *item.glob("*.int8.onnx")] if item.is_dir() else [item]
        paths += sorted(found)
    return paths


def main(argv: list[str] | None = None) -> int:
    paths = (
        "--prepared",
        "--metrics",
        "--headline",
        "--details",
        "--plots",
        "--comparison",
        "--table",
        "--selection",
    )
    parser = stage_parser(__doc__, *paths)
    parser.add_argument("models", nargs="+", type=Path, help="checkpoints or folders of them")
    args = parser.parse_args(argv)

    def body(params) -> None:
        section = {"seed": params.seed, **as_dict(params.evaluate)}
        # Tagged with the data so that the report's Pareto plot compares only runs on the same data.
        tags = data_tags(load_meta(args.prepared))
        with stage_run("evaluate", section, tags=tags, pipeline=as_dict(params)) as tracker:
            tracker.log_prepared(args.prepared, "evaluation")
            log = lambda line: print(line, file=sys.stderr)  # noqa: E731
            selection = read_json(args.selection)
            shipped = selection["shipped"]
            paths = checkpoint_paths(args.models)
            result = evaluate_models(params, args.prepared, paths, log, shipped)
            with atomic_dir(args.details) as details, atomic_dir(args.plots) as plots:
                for name, report in result.reports.items():
                    write_json_atomic(details / f"{name}.json", report)
                for filename, data in result.figures.items():
                    write_bytes_atomic(plots / filename, data)
            write_json_atomic(args.metrics, result.metrics)
            headline = headline_metrics(result.comparison, params.prune.budget, shipped)
            write_json_atomic(args.headline, headline)
            tracker.log_pipeline_metrics(headline)  # the parent run compares experiments
            comparison = {"split": "test", "shipped": shipped, "selection": selection,
                          "models": result.comparison}  # fmt: skip
            write_json_atomic(args.comparison, comparison)
            tracker.set_tags({"shipped": shipped})
            write_text_atomic(args.table, result.table)
            tracker.log_metrics(result.metrics)
            for path in (
                args.metrics,
                args.headline,
                args.details,
                args.plots,
                args.comparison,
                args.table,
            ):
                tracker.log_artifact(path)

    outputs = (args.metrics, args.headline, args.details, args.plots, args.comparison, args.table)
    return run_stage("evaluate", args.params, body, outputs=outputs)


if __name__ == "__main__":
    sys.exit(main())
