"""The `rcskd` command: info on the registry and on checkpoints, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rcskd.cli import main
from rcskd.models import InputSpec, ModelSpec, build_model, save_checkpoint


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
