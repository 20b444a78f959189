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
