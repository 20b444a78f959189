"""dvc.yaml tells the truth: each stage's deps are exactly the files it reads and the code it
imports, every path it reads or writes is on its command line, and editing a file reruns only
the stages that run it (checked with `dvc status` on a copy of the repository, no pipeline run)."""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.import_closure import REPO, closure
from tests.repo_copy import BIN, make_repo_copy

CODE_ROOTS = ("rcskd/", "stages/")
# Deps that only order stages (never read): `validate` runs before everything else.
ORDERING_DEPS = {"models/params.valid"}


def stages(repo: Path = REPO) -> dict[str, dict]:
    """dvc.yaml's stages with `foreach` expanded over params.yaml's list."""
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    out = {}
    for name, stage in pipeline["stages"].items():
        if "foreach" not in stage:
            out[name] = stage
            continue
        key = stage["foreach"].strip("${}")
        items = params
        for part in key.split("."):
            items = items[part]
        for item in items:
            text = yaml.safe_dump(stage["do"]).replace("${item}", item)
            out[f"{name}@{item}"] = yaml.safe_load(text)
    return out


def _paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def code_deps(stage: dict) -> set[str]:
    return {d for d in _paths(stage["deps"]) if d.startswith(CODE_ROOTS)}


def script_of(stage: dict) -> Path:
    words = shlex.split(stage["cmd"])
    return Path(next(w for w in words if w.startswith("stages/")))


def covered(path: Path, declared: set[str]) -> bool:
    return any(path == Path(d) or path.is_relative_to(d) for d in declared)


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_are_exactly_the_import_closure(name):
    stage = stages()[name]
    needed = closure(script_of(stage))
    declared = code_deps(stage)
    missing = sorted(str(p) for p in needed if not covered(p, declared))
    assert not missing, f"{name}: imports undeclared {missing}"
    for dep in declared:
        path = REPO / dep
        files = {p.relative_to(REPO) for p in path.rglob("*.py")} if path.is_dir() else {Path(dep)}
        extra = sorted(str(f) for f in files - needed)
        assert not extra, f"{name}: declares {dep}, but never imports {extra}"


@pytest.mark.parametrize("name", sorted(stages()))
def test_the_command_names_every_path_the_stage_reads_or_writes(name):
    stage = stages()[name]
    words = shlex.split(stage["cmd"].replace("${data.root}", "DATA_ROOT"))
    on_command_line = {w for w in words if "/" in w or w.endswith(".yaml") or w == "DATA_ROOT"}
    data = {d for d in _paths(stage["deps"]) if not d.startswith(CODE_ROOTS)} - ORDERING_DEPS
    data = {"DATA_ROOT" if d == "${data.root}" else d for d in data}
    outs = set()
    for kind in ("outs", "metrics", "plots"):
        outs |= set(_paths(stage.get(kind)))
    assert data <= on_command_line, f"{name}: deps not passed: {data - on_command_line}"
    assert outs <= on_command_line, f"{name}: outs not passed: {outs - on_command_line}"
    script = str(script_of(stage))
    # nothing on the command line is read or written without being declared
    undeclared = on_command_line - data - outs - {script, "params.yaml"}
    undeclared = {w for w in undeclared if not w.startswith("models/.resume/")}
    assert not undeclared, f"{name}: undeclared paths on the command line: {undeclared}"


def test_stage_scripts_have_no_path_defaults():
    defaults = []
    for script in sorted((REPO / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                kwargs = {k.arg: k.value for k in node.keywords}
                default = kwargs.get("default")
                if isinstance(default, ast.Constant) and isinstance(default.value, str):
                    defaults.append(f"{script.name}: {default.value!r}")
    assert defaults == []


def test_distill_step_loads_no_pruning_or_rl_library():
    code = "import sys, rcskd.steps.distill; print(sorted(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    for heavy in ("stable_baselines3", "gymnasium", "torch_pruning"):
        assert f"'{heavy}'" not in loaded


def _module_graph() -> dict[str, set[str]]:
    """rcskd module -> the rcskd modules it names in imports (module level or not)."""
    files = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (REPO / "rcskd").rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom) and node.module in files:
                subs = {f"{node.module}.{a.name}" for a in node.names} & files.keys()
                edges |= subs or {node.module}
                if len(subs) < len(node.names):
                    edges.add(node.module)
        graph[module] = edges - {module}
    return graph


def test_steps_never_import_each_other():
    graph = _module_graph()
    steps = {m for m in graph if m.startswith("rcskd.steps.")}
    for step in steps:
        assert not graph[step] & steps, f"{step} imports {graph[step] & steps}"


def test_no_import_cycle_in_rcskd():
    graph = _module_graph()
    assert len(graph) > 50 and graph["rcskd.steps.prune"]  # the graph was really built
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.fixture(scope="module")
def repo_for_status(tmp_path_factory):
    """A copy of the repository with the committed dvc.lock (no outputs)."""
    return make_repo_copy(tmp_path_factory.mktemp("status") / "repo", tiny=False)


def stages_touched_by(repo: Path, env: dict, relative: str) -> set[str]:
    """The stages `dvc status` says depend on `relative` after an edit to it."""
    path = repo / relative
    original = path.read_text()
    path.write_text(original + "\n# edited\n")
    try:
        result = subprocess.run(
            [str(BIN / "dvc"), "status", "--json"], cwd=repo, env=env, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
    finally:
        path.write_text(original)
    status = json.loads(result.stdout or "{}")
    touched = set()
    for stage, entries in status.items():
        for entry in entries:
            changed = entry.get("changed deps", {}) if isinstance(entry, dict) else {}
            if any(Path(relative).is_relative_to(dep) for dep in changed):  # file or its folder
                touched.add(stage)
    return touched


def test_editing_the_report_page_reruns_only_the_report(repo_for_status):
    assert stages_touched_by(*repo_for_status, "rcskd/report/html.py") == {"report"}


def test_editing_a_distillation_loss_reruns_no_stage_above_distillation(repo_for_status):
    touched = stages_touched_by(*repo_for_status, "rcskd/distill/losses/kd.py")
    distillation = {name for name in stages() if name in ("tkd_ca", "dkd_sg")}
    distillation |= {name for name in stages() if name.startswith("distill_baseline@")}
    # `validate` checks loss names, so it reruns too (seconds; its output stays the same)
    assert touched == distillation | {"validate"}


def test_editing_calibration_metrics_retrains_nothing(repo_for_status):
    assert stages_touched_by(*repo_for_status, "rcskd/metrics/clinical.py") == {"evaluate"}
