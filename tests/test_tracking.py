import warnings

from mlflow.tracking import MlflowClient

from rcskd.tracking import past_stage_runs, stage_run, tracking_uri


def test_stage_run_logs_params_metrics_and_artifacts(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-exp")
    artifact = tmp_path / "report.json"
    artifact.write_text("{}")
    with stage_run("teacher", {"lr": 0.1, "sched": {"kind": "cosine"}}, root=tmp_path) as run:
        run.log_metrics({"val": {"acc": 0.75}, "name": "not a number", "flag": True})
        run.log_artifact(artifact)
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("rcskd").experiment_id])
    assert found.data.params == {"lr": "0.1", "sched.kind": "cosine"}
    assert found.data.metrics == {"val.acc": 0.75}
    assert found.data.tags["stage"] == "teacher" and found.data.tags["dvc_exp"] == "lucky-exp"
    assert [a.path for a in client.list_artifacts(found.info.run_id)] == ["report.json"]


def test_default_store_is_inside_the_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_queued_experiment_logs_to_the_repository_store(tmp_path, monkeypatch):
    # `dvc exp run --queue` works in <repo>/.dvc/tmp/exps/<tmp>/: its runs must outlive that copy.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12"
    assert tracking_uri(copy) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_past_runs_are_filtered_by_tags(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store.db'}")
    for fingerprint, acc in (("phantom", 0.9), ("brain4", 0.8), ("brain4", 0.7)):
        with stage_run("evaluate", {}, root=tmp_path, tags={"data_fingerprint": fingerprint}) as r:
            r.log_metrics({"student": {"acc": acc}})
    with stage_run("teacher", {}, root=tmp_path, tags={"data_fingerprint": "brain4"}):
        pass
    runs = past_stage_runs("evaluate", tmp_path, tags={"data_fingerprint": "brain4"})
    assert sorted(r["metrics"]["student.acc"] for r in runs) == [0.7, 0.8]
    assert len(past_stage_runs("evaluate", tmp_path)) == 3


def test_processes_creating_and_writing_one_new_sqlite_store_at_once_all_succeed(tmp_path):
    """Four processes start their runs on a store that does not exist yet (the schema is
    created once, under the lock) and log metrics at the same time: every run is there."""
    import os
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    code = (
        "import sys\n"
        "from rcskd.tracking import stage_run\n"
        "with stage_run('teacher', {'k': sys.argv[1]}, root=sys.argv[2]) as run:\n"
        "    for step in range(20):\n"
        "        run.log_metrics({'acc': step / 20}, step=step)\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(tmp_path)], env=env,
                              stderr=subprocess.PIPE, text=True) for k in range(4)]  # fmt: skip
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("rcskd").experiment_id])
    assert sorted(r.data.params["k"] for r in runs) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" and r.data.metrics["acc"] == 0.95 for r in runs)


def test_an_unusable_store_is_one_tracking_error(tmp_path, monkeypatch):
    import pytest

    from rcskd.errors import TrackingError

    (tmp_path / "not-a-db.db").write_text("this is not sqlite")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'not-a-db.db'}")
    with pytest.raises(TrackingError, match=r"MLflow store sqlite:///.*not-a-db\.db: "):
        with stage_run("teacher", {}, root=tmp_path):
            pass


def test_stages_of_one_pipeline_are_children_of_one_parent_run(tmp_path, monkeypatch):
    """Two stages of one execution share a parent holding all params, the headline metrics
    and the prepared dataset (once); the experiment opens in MLflow's model-training view."""
    import json

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "meta.json").write_text(json.dumps({"source": "phantom", "fingerprint": "f00d"}))
    pipeline = {"seed": 0, "prune": {"budget": 0.5}, "teacher": {"arch": "resnet18"}}
    with stage_run("teacher", {"arch": "resnet18"}, root=tmp_path, pipeline=pipeline) as run:
        run.log_prepared(prepared, "training")
    with stage_run("evaluate", {}, root=tmp_path, pipeline=pipeline) as run:
        run.log_prepared(prepared, "evaluation")
        run.log_pipeline_metrics({"acc": {"student": 0.91}, "budget": 0.5})
    with stage_run("teacher", {}, root=tmp_path, pipeline={**pipeline, "seed": 1}):
        pass  # other params: another execution, another parent
    client = MlflowClient()
    experiment = client.get_experiment_by_name("rcskd")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "pipeline"]
    assert len(parents) == 2
    (parent,) = [p for p in parents if p.data.params["seed"] == "0"]
    assert parent.data.params == {"seed": "0", "prune.budget": "0.5", "teacher.arch": "resnet18"}
    assert parent.data.metrics == {"acc.student": 0.91, "budget": 0.5}
    assert parent.info.run_name.startswith("dvc repro @ ")
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["prepared-phantom"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["evaluate", "teacher"]
    assert {r.data.tags["dvc_exp"] for r in children} == {"workspace"}
    assert all(r.inputs.dataset_inputs for r in children)


def test_a_dvc_experiment_is_one_parent_named_after_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("DVC_EXP_NAME", "budget-03")
    for stage in ("prune", "evaluate"):
        with stage_run(stage, {}, root=tmp_path, pipeline={"prune": {"budget": 0.3}}):
            pass
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("rcskd").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "pipeline"]
    assert parent.info.run_name == "budget-03" and parent.data.tags["dvc_exp"] == "budget-03"
    assert sum(r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in runs) == 2


def test_a_checkpoint_is_registered_with_its_signature_and_loads_without_pickle(
    quadrant_checkpoint, tmp_path, monkeypatch
):
    import mlflow
    import numpy as np
    import torch

    path, model, inputs, test = quadrant_checkpoint
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store.db'}")
    with stage_run("export", {}, root=tmp_path, pipeline={"seed": 0}) as run:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            uri = run.log_model(path, inputs, "student", "rcskd-student")
    # the signature is explicit: MLflow's advice to infer one is not shown to the user
    advice = [str(w.message) for w in caught if "signature" in str(w.message)]
    assert advice == [], advice
    client = MlflowClient()
    (version,) = client.search_model_versions("name = 'rcskd-student'")
    assert int(version.version) == 1
    loaded = mlflow.pyfunc.load_model("models:/rcskd-student/1")
    spec = loaded.metadata.get_input_schema().inputs[0]
    assert spec.shape == (-1, 1, 32, 32) and spec.type == np.dtype(np.uint8)
    images = test.images[:5].numpy()
    probs = loaded.predict(images)
    with torch.no_grad():
        expected = model(inputs.preprocess(test.images[:5])).softmax(1).numpy()
    assert probs.shape == (5, 4) and np.allclose(probs, expected, atol=1e-5)
    assert uri.startswith("models:/")


def test_a_store_made_before_the_kind_tag_gets_it(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.create_experiment("rcskd")  # as an older rcskd made it: no kind
    with stage_run("prepare", {}, root=tmp_path):
        pass
    tags = MlflowClient().get_experiment_by_name("rcskd").tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_reused_experiment_name_on_another_baseline_is_another_parent(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("DVC_EXP_NAME", "budget-03")
    for baseline in ("a" * 40, "b" * 40):
        monkeypatch.setenv("DVC_EXP_BASELINE_REV", baseline)
        with stage_run("prune", {}, root=tmp_path, pipeline={"seed": 0}):
            pass
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("rcskd").experiment_id],
                              "tags.kind = 'pipeline'")  # fmt: skip
    assert sorted(r.data.tags["pipeline"] for r in runs) == [
        "budget-03@aaaaaaa",
        "budget-03@bbbbbbb",
    ]
    assert {r.info.run_name for r in runs} == {"budget-03"}
    assert all(r.info.end_time > r.info.start_time for r in runs)  # spans its stage runs
