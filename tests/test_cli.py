"""The `rcskd` command: info on the registry and on checkpoints, clear errors."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rcskd.cli import main
from rcskd.models import InputSpec, ModelSpec, build_model, save_checkpoint
from tests.import_closure import REPO


def test_info_lists_every_architecture_and_source_in_a_fresh_process():
    # a fresh interpreter: nothing else has imported the zoo or the sources yet
    code = "from rcskd.cli import main; raise SystemExit(main(['info']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import rcskd.data.sources  # noqa: F401  (this process: register the sources to compare)
    from rcskd.registry import MODELS, SOURCES

    listed = out.stdout
    assert MODELS.names() and SOURCES.names()
    assert all(name in listed for name in MODELS.names() + SOURCES.names())
    assert "resnet18" in listed and "densenet121" in listed and "imagefolder" in listed


def test_info_describes_a_checkpoint(tmp_path, capsys):
    spec = ModelSpec("mobilenet_v3_small", 4, 1, 0.25)
    model = build_model(spec)
    inputs = InputSpec(["a", "b", "c", "d"], 32, 1)
    save_checkpoint(tmp_path / "m.pt", model, spec, inputs, {"role": "teacher"})
    assert main(["info", str(tmp_path / "m.pt")]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["arch"] == "mobilenet_v3_small"
    assert facts["inputs"]["classes"] == ["a", "b", "c", "d"]
    assert facts["params"] == sum(p.numel() for p in model.parameters())
    assert facts["inputs"]["image_size"] == 32 and facts["role"] == "teacher"


def test_info_on_a_bad_file_is_one_clear_line(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled.pt")
    assert main(["info", str(tmp_path / "pickled.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rcskd info: error: ") and "pickled.pt: refused" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "name, content, kind",
    [
        ("metrics.json", b'{"student": {"acc": 0.9}}', "JSON"),
        ("student.card.md", b"# Model card: student\n", "text"),
        ("empty.pt", b"", "empty"),
    ],
)
def test_info_and_predict_on_files_that_are_no_checkpoint_say_so(
    tmp_path, capsys, name, content, kind
):
    path = tmp_path / name
    path.write_bytes(content)
    expected = f"{path}: not an rcskd checkpoint (a .pt file written by rcskd; this file is {kind})"
    assert main(["info", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"rcskd info: error: {expected}"
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert main(["predict", str(image), "--model", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_every_option_of_every_command_has_help_text():
    from rcskd.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"info", "export", "predict"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"rcskd {name} {action.dest}: no help text"


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "stages").glob("*.py")
                                          if p.name != "common.py"))  # fmt: skip
def test_every_stage_script_option_has_help_text(script):
    """The parser each stage script builds (captured in-process, as docs/generate.py does for
    the command reference): every option has help text."""
    sys.path.insert(0, str(REPO / "docs"))
    from generate import _stage_parser

    parser = _stage_parser(REPO / "stages" / script)
    options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert options
    for action in options:
        assert action.help, f"{script}: {action.option_strings or action.dest} has no help text"


def test_an_error_inside_a_progress_bar_starts_its_own_line(capsys):
    from tqdm import tqdm

    from rcskd.errors import ConfigError, run_reporting_errors

    bars = []

    def body() -> None:
        bars.append(tqdm(total=5, desc="candidates", file=sys.stderr))  # still referenced
        bars[0].update(1)
        raise ConfigError("budget out of reach")

    assert run_reporting_errors("prune", body) == 2
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "\nprune: error: budget out of reach" in err
