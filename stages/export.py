"""DVC stage `export`: the shipped student -> FP32 ONNX + TorchScript (checked against PyTorch),
INT8 ONNX (calibrated on training images, checked on validation: the stage fails past
`export.max_int8_drop`), and the model card; evaluate then scores the INT8 model like any other."""

from __future__ import annotations

import sys

from common import run_stage, stage_parser

from rcskd.config import as_dict
from rcskd.export.bundle import export_bundle
from rcskd.models import load_checkpoint
from rcskd.roles import SHIPPED
from rcskd.tracking import stage_run


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__, "--prepared", "--model", "--out").parse_args(argv)

    def body(params) -> None:
        cfg = params.export
        section = {"seed": params.seed, **as_dict(cfg)}
        with stage_run("export", section, pipeline=as_dict(params)) as tracker:
            summary = export_bundle(args.model, args.out, args.prepared, cfg.opset,
                                    int8=cfg if cfg.int8 else None)  # fmt: skip
            int8 = summary["exports"].get("int8")
            if int8:
                tracker.log_metrics({k: int8[k] for k in ("fp32_val_acc", "int8_val_acc", "drop")})
            tracker.log_artifact(args.out)
            student = load_checkpoint(args.model)
            # the registered rcskd-student is the shipped model; its method is a tag
            tracker.set_tags({"shipped": student.provenance.get("shipped_from", "")})
            tracker.log_model(args.model, student.require_inputs(), SHIPPED.name, "rcskd-student")

    return run_stage("export", args.params, body, outputs=(args.out,))


if __name__ == "__main__":
    sys.exit(main())
