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
