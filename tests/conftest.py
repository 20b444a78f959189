import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """Every test logs to its own throwaway MLflow store, never the repo's."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture(scope="session")
def quadrant_checkpoint(tmp_path_factory):
    """A tiny ResNet trained on the quadrant task and saved as a pipeline checkpoint (with its
    input spec), shared by the evaluate, export, predict and CLI tests.

    Returns (path, model in eval mode, input spec, test split).
    """
    from rcskd.models import load_checkpoint
    from tests.fixtures import quadrant_data, train_quadrant_checkpoint

    path = train_quadrant_checkpoint(tmp_path_factory.mktemp("quadrant") / "student.pt")
    checkpoint = load_checkpoint(path)
    model, inputs, test = checkpoint.model, checkpoint.require_inputs(), quadrant_data(40, 1, 32)
    return path, model.eval(), inputs, test


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory):
    """A tiny copy of the repository after `dvc repro prune` (prepare, teacher, prune):
    (folder, environment, the repro's log). Tests must not change its tracked outputs."""
    from tests.repo_copy import BIN, make_repo_copy, run

    dest, env = make_repo_copy(tmp_path_factory.mktemp("smoke") / "repo")
    first = run([str(BIN / "dvc"), "repro", "prune"], dest, env)
    return dest, env, first
