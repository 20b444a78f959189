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
    import torch

    from rcskd.config import AugmentConfig, TrainConfig
    from rcskd.data.intensity import intensity_profile
    from rcskd.data.transforms import fit_preprocess
    from rcskd.models import InputSpec, ModelSpec, build_model, save_checkpoint
    from rcskd.train import CrossEntropy, fit
    from tests.fixtures import QUADRANT_CLASSES, quadrant_data

    torch.manual_seed(0)
    train, test = quadrant_data(128, 0, size=32), quadrant_data(40, 1, size=32)
    pre = fit_preprocess(train.images)
    spec = ModelSpec("resnet20", 4, 1, 0.25)
    model = build_model(spec)
    cfg = TrainConfig(epochs=6, batch_size=16, lr=0.05, warmup_epochs=0.5,
                      augment=AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0))  # fmt: skip
    fit(model, CrossEntropy(), train, test, cfg, pre, show_progress=False)
    inputs = InputSpec(QUADRANT_CLASSES, 32, 1, crop_border=False, mean=list(pre.mean),
                       std=list(pre.std), dicom_window="fixed", dicom_center=1686.0,
                       dicom_width=3624.0, source="imagefolder",
                       intensity=intensity_profile(train.images))  # fmt: skip
    path = tmp_path_factory.mktemp("quadrant") / "student.pt"
    save_checkpoint(path, model, spec, inputs, {"role": "student"})
    return path, model.eval(), inputs, test


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory):
    """A tiny copy of the repository after `dvc repro prune` (prepare, teacher, prune):
    (folder, environment, the repro's log). Tests must not change its tracked outputs."""
    from tests.repo_copy import BIN, make_repo_copy, run

    dest, env = make_repo_copy(tmp_path_factory.mktemp("smoke") / "repo")
    first = run([str(BIN / "dvc"), "repro", "prune"], dest, env)
    return dest, env, first
