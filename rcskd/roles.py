"""The models the pipeline produces, declared once: name (checkpoint stem), label, order.

Evaluate, the comparison table, the report and the budget sweep look roles up here; a
distillation baseline is not a role: it is named by its method (`distill.baselines`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    """One model of the pipeline: its checkpoint stem and what tables call it."""

    name: str
    label: str


TEACHER = Role("teacher", "teacher")
PRUNED = Role("pruned", "pruned (LPB-RL + CE fine-tune)")
STUDENT_TKD = Role("student_tkd", "TKD-CA")
STUDENT = Role("student", "RC-SKD (TKD-CA -> DKD-SG)")
STUDENT_INT8 = Role("student_int8", "RC-SKD INT8 (ONNX Runtime)")

# Table order: the reference models first, the baselines between, RC-SKD's own students last.
FIRST = (TEACHER, PRUNED)
LAST = (STUDENT_TKD, STUDENT, STUDENT_INT8)
ROLES = (*FIRST, *LAST)

# RC-SKD's two distillation stages: method (in `distill.methods`) -> the role it produces.
RC_SKD_STAGES = {"tkd_ca": STUDENT_TKD, "dkd_sg": STUDENT}


def label(name: str) -> str:
    """What tables call the model saved as `name` (a baseline keeps its method name)."""
    for role in ROLES:
        if role.name == name:
            return role.label
    return name
