"""Generate the documentation that must not drift: from the code and the result files.

    python docs/generate.py            # rewrite the generated files
    python docs/generate.py --check    # exit 1 (naming the file) if any is out of date

Generated: docs/reference/params.md (every params.yaml key: default, allowed values, help, from
the typed config in rcskd/config.py), docs/reference/cli.md (every command's options, from the
parsers themselves), docs/_gpu_status.md (what has run on a GPU, from
reports/bench/gpu_check.json), and the README's headline block between its markers (from
reports/bench/*.json, stamped with the commit, CPU and date those results record).
`make docs` runs this, then `mkdocs build --strict`; tests/test_docs.py runs `--check`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import io
import json
import sys
import tokenize
import typing
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BENCH = REPO / "reports" / "bench"
START, END = "<!-- headline:start (docs/generate.py) -->", "<!-- headline:end -->"
GPU_START, GPU_END = "<!-- gpu:start (docs/generate.py) -->", "<!-- gpu:end -->"


def with_block(text: str, start: str, end: str, block: str) -> str:
    """`text` with what lies between the markers `start` and `end` replaced by `block`."""
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{block}{end}{after}"


# ---- params reference -------------------------------------------------------------------------
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment in the class source (trailing, or the lines just above)."""
    source = inspect.getsource(cls)
    comments: dict[str, str] = {}
    above: list[str] = []
    line_comment: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            line_comment[tok.start[0]] = tok.string.lstrip("# ").strip()
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(line_comment.get(number, ""))
            continue
        name = stripped.split(":", 1)[0]
        if ":" in stripped and name.isidentifier() and not stripped.startswith(("def ", "class ")):
            text = [*above, line_comment.get(number, "")]
            comments[name] = " ".join(t for t in text if t and "fmt:" not in t)
        above = []
    return comments


def yaml_comments(path: Path) -> dict[str, str]:
    """Dotted key -> the comment params.yaml gives it (its line's, plus comment-only lines
    indented under it that continue it)."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last, above = None, []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            above = []
            continue
        if stripped.startswith("#"):
            if last is not None and indent > last[0]:
                comments[last[1]] = f"{comments.get(last[1], '')} {stripped.lstrip('# ')}".strip()
            else:
                above.append(stripped.lstrip("# "))
            continue
        key = stripped.split(":", 1)[0].strip()
        if ":" not in stripped or not key.replace("_", "").isalnum():
            last = None
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        value = stripped.split(":", 1)[1]
        trailing = value.split("#", 1)[1].strip() if "#" in value else ""
        if trailing or above:
            comments[dotted] = " ".join([*above, trailing]).strip()
        last, above = (indent, dotted), []
    return comments


def _allowed(tp: Any, fld: dataclasses.Field) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(tp))
    lo, hi = fld.metadata.get("min"), fld.metadata.get("max")
    if lo is not None or hi is not None:
        return f"{'' if lo is None else lo} .. {'' if hi is None else hi}"
    if tp is bool:
        return "`true` \\| `false`"
    return getattr(tp, "__name__", str(tp)).replace("|", "\\|")


def params_rows(
    cls: type, prefix: str = "", yaml_help: dict[str, str] | None = None, values: Any = None
) -> list[str]:
    """One table row per key (nested sections recursively). Help: the key's comment in the
    typed config, else its comment in params.yaml (same key in teacher.train for the other
    training sections, which params.yaml leaves uncommented)."""
    yaml_help = yaml_comments(REPO / "params.yaml") if yaml_help is None else yaml_help
    values = cls() if values is None else values  # a section's defaults (factories included)
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    rows = []
    for fld in dataclasses.fields(cls):
        key, tp = f"{prefix}{fld.name}", hints[fld.name]
        if dataclasses.is_dataclass(tp):
            doc = (tp.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
            rows.append(f"| **`{key}`** | | | {doc} |")
            rows += params_rows(tp, key + ".", yaml_help, getattr(values, fld.name))
            continue
        default = getattr(values, fld.name)
        if dataclasses.is_dataclass(default):
            default = "(section)"
        shown = json.dumps(default) if not isinstance(default, str) else f'"{default}"'
        help_text = comments.get(fld.name) or yaml_help.get(key) or _train_help(key, yaml_help)
        help_text = (help_text or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{shown}` | {_allowed(tp, fld)} | {help_text} |")
    return rows


def _train_help(key: str, yaml_help: dict[str, str]) -> str:
    """A training key of prune.finetune / distill.train / teacher.refine: teacher.train's help."""
    for section in ("prune.finetune.", "distill.train.", "teacher.refine."):
        if key.startswith(section):
            return yaml_help.get("teacher.train." + key[len(section) :], "")
    return ""


def params_reference() -> str:
    from rcskd.config import Params

    return "\n".join([
        "# params.yaml reference",
        "",
        "Every key of `params.yaml`, generated from the typed config (`rcskd/config.py`) by",
        "`docs/generate.py`: its default, the values allowed and what it does. `validate`, the",
        "pipeline's first stage, refuses an unknown key or a bad value with one line naming it,",
        "before any other stage runs. Set a key for one experiment with",
        "`dvc exp run -S key=value`. Nested keys of the distillation methods",
        "(`distill.methods.<method>.<loss>.*`) are each loss's own settings:",
        "see [Distillation](../stages/distill.md).",
        "",
        "| key | default | allowed | what it does |",
        "|---|---|---|---|",
        *params_rows(Params),
    ]) + "\n"  # fmt: skip


# ---- CLI reference ----------------------------------------------------------------------------
def _load_script(path: Path) -> Any:
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"doc_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _help(parser: argparse.ArgumentParser, prog: str) -> str:
    parser.prog = prog
    return parser.format_help().replace(REPO.as_posix() + "/", "")


def _stage_parser(script: Path) -> argparse.ArgumentParser:
    """The parser a stage script builds (captured from its main() with --help)."""
    captured: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        captured.append(self)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        _load_script(script).main([])
    except SystemExit:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    return captured[0]


def make_targets() -> list[tuple[str, str]]:
    """(target, the comment above it) of every .PHONY target of the Makefile."""
    text = (REPO / "Makefile").read_text().splitlines()
    phony = next(line for line in text if line.startswith(".PHONY:")).split()[1:]
    out = []
    for number, line in enumerate(text):
        name = line.split(":", 1)[0]
        if name in phony and not line.startswith((".", "\t", "#")) and ":=" not in line:
            comment = []
            for above in reversed(text[:number]):
                if "=" in above.split("#")[0] and not above.startswith("#"):
                    continue  # a variable of the target (COMPARE_COLUMNS, GPU_PYTHON, ...)
                if above.startswith(("\t", " ")):
                    continue  # a continued variable value
                if not above.startswith("#"):
                    break
                comment.insert(0, above.lstrip("# "))
            out.append((name, " ".join(comment)))
    return out


def cli_reference() -> str:
    from rcskd.cli import build_parser

    width = {"COLUMNS": "100"}
    import os

    os.environ.update(width)
    parser = build_parser()
    lines = ["# Command reference", "",
             "Generated from the parsers themselves by `docs/generate.py`.", "",
             "## make targets", "", "| command | what it does |", "|---|---|"]  # fmt: skip
    lines += [f"| `make {name}` | {text} |" for name, text in make_targets()]
    lines += ["", "## rcskd", "", "```text", _help(parser, "rcskd").rstrip(), "```"]
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            lines += ["", f"### rcskd {name}", "", "```text", _help(sub, f"rcskd {name}").rstrip(),
                      "```"]  # fmt: skip
    lines += ["", "## Stage scripts", "",
              "`dvc repro` runs these with every path given (dvc.yaml); run one by hand the same",
              "way."]  # fmt: skip
    for script in sorted((REPO / "stages").glob("*.py")):
        if script.name == "common.py":
            continue
        text = _help(_stage_parser(script), f"python stages/{script.name}")
        lines += ["", f"### stages/{script.name}", "", "```text", text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


# ---- GPU status -------------------------------------------------------------------------------
def gpu_status() -> str:
    """What has and has not run on a GPU, from reports/bench/gpu_check.json."""
    path = BENCH / "gpu_check.json"
    lines = ["| what | on a GPU | when, hardware |", "|---|---|---|"]
    report = json.loads(path.read_text()) if path.is_file() else None
    if report is None or report.get("device") != "cuda":
        cpu = f" (CPU dry run passed {report['date']})" if report and report["passed"] else ""
        lines.append(f"| every stage, precision, DDP, compile | not run yet{cpu} | "
                     "`make gpu-check` on a CUDA machine writes the result |")  # fmt: skip
        return "\n".join(lines) + "\n"
    when = f"{report['date']}, {report['device_name']} x{report['gpus']}, torch {report['torch']}"
    for check in report["checks"]:
        mark = {True: "passed", False: "**failed**", None: "not run"}[check["passed"]]
        why = f" ({check['error']})" if check["passed"] is None else ""
        lines.append(f"| {check['name']} | {mark}{why} | {when} |")
    return "\n".join(lines) + "\n"


# ---- command examples (outputs shown in the docs; tests/test_docs.py runs them again) ---------
def run_command(args: list[str], cwd: Path = REPO) -> tuple[int, str]:
    """Exit code and combined output of a command run with this Python's environment."""
    import subprocess

    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    return done.returncode, (done.stdout + done.stderr).strip()


def info_example() -> str:
    _, out = run_command([sys.executable, "-m", "rcskd.cli", "info"])
    return f"```console\n$ rcskd info\n{out}\n```\n"


def rejected_example(work: Path) -> str:
    """What a mistyped experiment prints: `-S prune.budget=abc` stopped by the validate stage."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prune"]["budget"] = "abc"
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    code, out = run_command([sys.executable, "stages/validate.py", "--params", str(path),
                             "--out", str(work / "params.valid")])  # fmt: skip
    out = out.replace(str(path), "params.yaml")
    return (
        "`dvc exp run -S prune.budget=abc` writes the value into `params.yaml` and runs the\n"
        "`validate` stage first, which prints:\n\n"
        "```console\n$ python stages/validate.py --params params.yaml --out models/params.valid\n"
        f"{out}\n$ echo $?\n{code}\n```\n"
    )


def predict_example(work: Path, model: Path | None = None) -> str:
    """`rcskd predict` with the quadrant test model (trained here unless given) on four
    generated PNGs and a broken file."""
    sys.path.insert(0, str(REPO))
    from tests.fixtures import quadrant_png, train_quadrant_checkpoint

    model = model or train_quadrant_checkpoint(work / "student.pt")
    names = [quadrant_png(work, k, f"scan_{k}.png").name for k in range(4)]
    (work / "broken.png").write_bytes(b"not an image")
    code, out = run_command([sys.executable, "-m", "rcskd.cli", "predict", *names, "broken.png",
                             "--model", str(model)], cwd=work)  # fmt: skip
    out = out.replace(str(work) + "/", "")
    return (
        f"```console\n$ rcskd predict scan_0.png scan_1.png scan_2.png scan_3.png broken.png "
        f"--model student.pt\n{out}\n```\n(exit code {code}: one input was unreadable)\n"
    )


def examples(model: Path | None = None) -> dict[Path, str]:
    """The command examples' outputs (`model`: the quadrant checkpoint, when one is at hand)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "predict").mkdir()
        return {
            REPO / "docs" / "_info_example.md": info_example(),
            REPO / "docs" / "_rejected_example.md": rejected_example(work),
            REPO / "docs" / "_predict_example.md": predict_example(work / "predict", model),
        }


# ---- README headline --------------------------------------------------------------------------
def _load(name: str) -> dict[str, Any] | None:
    path = BENCH / name
    return json.loads(path.read_text()) if path.is_file() else None


def headline(prefix: str = "docs/") -> str:
    """The results block, from the result files (nothing typed by hand)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from headline_text import headline_block

    return headline_block(_load, prefix)


def commands_table() -> str:
    """How long the two commands take in a fresh clone, from reports/bench/commands.json."""
    c = _load("commands.json")
    if c is None:
        return "Not timed yet: `python benchmarks/commands.py` times them in a fresh clone.\n"
    return "\n".join([
        "| step | time | result |", "|---|---|---|",
        f"| install (`pip install -e .[dev]`) | {c['install_s'] / 60:.1f} min | `.venv` |",
        f"| `make test` | {c['test_s'] / 60:.1f} min | {c['tests_passed']} tests passed |",
        f"| `make repro` (install excluded) | {c['repro_s'] / 60:.1f} min | "
        f"{c['stages_run']} stages |",
        "",
        f"Measured by `benchmarks/commands.py` on {c['cpu']} ({c['cpus']} cores), commit "
        f"{c['git_commit'][:7]}, {c['date']}.",
    ]) + "\n"  # fmt: skip


# ---- write / check ----------------------------------------------------------------------------
def generated(with_examples: bool = True) -> dict[Path, str]:
    """Every generated file (README: the whole file with its block replaced). The command
    examples print probabilities that differ in the last digit between CPUs: `--check` leaves
    them out, and tests/test_docs.py compares them with a tolerance instead."""
    readme = with_block((REPO / "README.md").read_text(), START, END, headline())
    readme = with_block(readme, GPU_START, GPU_END, gpu_status())
    return {
        REPO / "docs" / "reference" / "params.md": params_reference(),
        REPO / "docs" / "reference" / "cli.md": cli_reference(),
        REPO / "docs" / "_gpu_status.md": gpu_status(),
        REPO / "docs" / "_results.md": headline(prefix=""),
        REPO / "docs" / "_commands.md": commands_table(),
        **(examples() if with_examples else {}),
        REPO / "README.md": readme,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail on any out-of-date file")
    args = parser.parse_args()
    stale = []
    for path, text in generated(with_examples=not args.check).items():
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(REPO)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print("out of date (run `python docs/generate.py`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
