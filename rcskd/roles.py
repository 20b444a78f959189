"""The models the pipeline produces, declared once: name (checkpoint stem), label, order.

Evaluate, the comparison table, the report and the budget sweep look roles up here; a
distillation baseline is not a role: it is named by its method (`distill.baselines`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Role:
    """One model of the pipeline: its checkpoint stem and what tables call it."""

    name: str
    label: str


TEACHER = Role("teacher", "teacher")
PRUNED = Role("pruned", "pruned (LPB-RL + CE fine-tune)")
STUDENT_TKD = Role("student_tkd", "TKD-CA")
STUDENT = Role("student", "RC-SKD (TKD-CA -> DKD-SG)")
# the student the pipeline ships: the best of its students on validation (the ship stage), a
# copy of one of them; exported as shipped.onnx / shipped.int8.onnx
SHIPPED = Role("shipped", "shipped student")
SHIPPED_INT8 = Role("shipped_int8", "shipped student INT8 (ONNX Runtime)")

# Table order: the reference models first, the baselines between, RC-SKD's own students last,
# then the deployed INT8 copy of the shipped student.
FIRST = (TEACHER, PRUNED)
LAST = (STUDENT_TKD, STUDENT, SHIPPED_INT8)
ROLES = (*FIRST, *LAST)

# RC-SKD's two distillation stages: method (in `distill.methods`) -> the role it produces.
RC_SKD_STAGES = {"tkd_ca": STUDENT_TKD, "dkd_sg": STUDENT}


def label(name: str) -> str:
    """What tables call the model saved as `name` (a baseline keeps its method name)."""
    for role in ROLES:
        if role.name == name:
            return role.label
    return name


def model_name(path: str | Path) -> str:
    """What a model file is called in reports: `student.pt` -> student, `shipped.int8.onnx` ->
    shipped_int8 (no dots: DVC reads them as nesting)."""
    name = Path(path).name
    for suffix in (".pt", ".onnx"):
        name = name.removesuffix(suffix)
    return name.replace(".", "_")
