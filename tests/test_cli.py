"""The `rcskd` command: info on the registry and on checkpoints, clear errors."""

import json

import torch

from rcskd.cli import main
from rcskd.models import ModelSpec, build_model, save_checkpoint


def test_info_lists_architectures_and_sources(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "densenet121" in out and "shufflenet_v2_x1_0" in out
    assert "imagefolder" in out and "phantom" in out


def test_info_describes_a_checkpoint(tmp_path, capsys):
    spec = ModelSpec("mobilenet_v3_small", 4, 1, 0.25)
    model = build_model(spec)
    extra = {"classes": ["a", "b", "c", "d"], "image_size": 32, "role": "teacher"}
    save_checkpoint(tmp_path / "m.pt", model, spec, extra)
    assert main(["info", str(tmp_path / "m.pt")]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["arch"] == "mobilenet_v3_small" and facts["classes"] == ["a", "b", "c", "d"]
    assert facts["params"] == sum(p.numel() for p in model.parameters())
    assert facts["input"] == [1, 32, 32] and facts["role"] == "teacher"


def test_info_on_a_bad_file_is_one_clear_line(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled.pt")
    assert main(["info", str(tmp_path / "pickled.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rcskd info: error: ") and "pickled.pt: refused" in err
    assert "Traceback" not in err
