"""The validate step: every check a stage would make later, made before anything runs."""

from pathlib import Path

import pytest
import yaml

from rcskd.errors import ConfigError
from rcskd.steps.validate import validate_params

REPO = Path(__file__).resolve().parents[2]


def write_params(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_default_params_are_valid():
    params = validate_params(REPO / "params.yaml")
    assert params.teacher.arch == "resnet18"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["teacher"].update(arch="resnet19"),
         "teacher.arch: unknown architecture 'resnet19'; known: densenet121"),
        (lambda r: r["teacher"].update(epoch=3),
         "did you mean 'teacher.train.epochs'?"),
        (lambda r: r["prune"].update(budget="abc"), "prune.budget"),
        (lambda r: r["distill"]["methods"]["tkd_ca"].update(tkd_cb={}),
         "'tkd_cb' is not a registered loss"),
        (lambda r: r["teacher"].update(pretrained="weights/missing.pth"),
         "teacher.pretrained: weights/missing.pth: no such file"),
    ],
    ids=["arch", "unknown-key", "type", "loss-name", "weights-file"],
)  # fmt: skip
def test_a_bad_value_is_one_error_naming_the_file_and_key(tmp_path, edit, message):
    path = write_params(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        validate_params(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
