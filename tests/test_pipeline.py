"""`dvc repro` of the whole pipeline on a temporary copy of the repository, at tiny size.

Marked `slow` (several minutes): `make test` leaves it out, CI runs it (.ci/run). The
default run has the 3-stage smoke pipeline (tests/test_smoke_pipeline.py) instead.
"""

import json

import pytest
import torch
import yaml

from tests.repo_copy import BIN, REPO, make_repo_copy, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """The whole pipeline reproduced once in a copy of the repository."""
    dest, env = make_repo_copy(tmp_path_factory.mktemp("pipeline") / "repo")
    first = run([str(BIN / "dvc"), "repro"], dest, env)
    return dest, env, first


def test_repro_builds_the_prepared_cache(repo_copy):
    dest, _, log = repo_copy
    assert "Running stage 'prepare'" in log
    report = json.loads((dest / "reports" / "prepare.json").read_text())
    assert report["images_read"] == 32 and report["leakage_check"] == "passed"
    counts = report["counts"]
    assert sum(counts[s]["total"] for s in ("train", "val", "test")) == 32
    for split in ("train", "val", "test"):
        blob = torch.load(dest / "data" / "prepared" / f"{split}.pt", weights_only=True)
        assert blob["images"].shape[1:] == (1, 32, 32)
        assert len(blob["labels"]) == counts[split]["total"] > 0
    assert (dest / "data" / "prepared" / "manifest.csv").is_file()
    assert "data/prepared" in (dest / "dvc.lock").read_text()


def test_repro_trains_the_teacher_and_evaluates_it(repo_copy):
    dest, _, log = repo_copy
    assert "Running stage 'teacher'" in log and "Running stage 'evaluate'" in log
    teacher = json.loads((dest / "reports" / "teacher.json").read_text())
    assert teacher["epochs_run"] == 2 and 0 <= teacher["val_acc"] <= 1
    assert not any(k.startswith("test") for k in teacher)  # only evaluate scores the test split
    curve = (dest / "reports" / "teacher_curve.csv").read_text().splitlines()
    assert curve[0].startswith("epoch,train_loss,train_ce,train_acc,lr,val_loss,val_acc")
    assert len(curve) == 3
    metrics = json.loads((dest / "reports" / "metrics.json").read_text())
    m = metrics["teacher"]
    assert m["acc_ci95_low"] <= m["acc"] <= m["acc_ci95_high"]
    assert m["params"] == teacher["params"] and m["flops"] == teacher["flops"] > 0
    assert m["latency_b1_ms"] > 0 and m["latency_b32_ms"] > 0
    assert {"sensitivity_glioma", "specificity_pituitary", "ece", "macro_auc"} <= set(m)
    plots = {p.name for p in (dest / "reports" / "plots").iterdir()}
    for model in ("teacher", "pruned"):
        assert {f"{model}_{kind}.png" for kind in ("confusion", "gradcam", "reliability")} <= plots
    detail = json.loads((dest / "reports" / "evaluation" / "teacher.json").read_text())
    assert sum(map(sum, detail["confusion_matrix"])) == detail["n"]
    assert "models/teacher.pt" in (dest / "dvc.lock").read_text()


def test_repro_prunes_the_teacher_to_the_budget(repo_copy):
    dest, _, log = repo_copy
    assert "Running stage 'prune'" in log
    report = json.loads((dest / "reports" / "prune.json").read_text())
    assert report["budget"] == 0.2 and report["budget_met"]  # the default budget
    assert abs(report["achieved_params_ratio"] - 0.2) <= 0.02
    assert set(report["search_scores"]) == {"ddpg", "cem", "random", "uniform"}
    search = (dest / "reports" / "prune_search.csv").read_text().splitlines()
    assert search[0] == "method,episode,reward,best_so_far" and len(search) == 1 + 3 + 3 + 3 + 1
    ratios = json.loads((dest / "reports" / "ratios.json").read_text())
    assert (
        set(ratios["chosen"])
        == set(ratios["uniform"])
        == {f"layer{i}.{j}" for i in (1, 2, 3, 4) for j in (0, 1)}
    )
    metrics = json.loads((dest / "reports" / "metrics.json").read_text())
    assert metrics["pruned"]["params"] == report["params"]
    assert metrics["pruned"]["params"] < metrics["teacher"]["params"]


DISTILL = yaml.safe_load((REPO / "params.yaml").read_text())["distill"]
BASELINES, METHODS = DISTILL["baselines"], DISTILL["methods"]


def test_repro_distils_every_method_and_compares_them(repo_copy):
    dest, _, log = repo_copy
    for stage in ["tkd_ca", "dkd_sg"] + [f"distill_baseline@{m}" for m in BASELINES]:
        assert f"Running stage '{stage}'" in log
    pruned = json.loads((dest / "reports" / "prune.json").read_text())
    for method in ["tkd_ca", "dkd_sg", *BASELINES]:
        report = json.loads((dest / "reports" / f"distill_{method}.json").read_text())
        assert report["method"] == method and report["epochs_run"] == 1
        assert not any(k.startswith("test") for k in report)
        assert report["params"] == pruned["params"]  # distillation never changes the student
        curve = (dest / "reports" / "curves" / f"distill_{method}.csv").read_text()
        assert "train_ce" in curve.splitlines()[0]
        for term in METHODS[method]:  # each loss term of the method has its column
            assert f"train_{term}" in curve.splitlines()[0]
    tkd = torch.load(dest / "models" / "student_tkd.pt", weights_only=True)
    final = torch.load(dest / "models" / "student.pt", weights_only=True)
    assert not any(k.startswith(("adapter", "losses")) for k in final["state_dict"])
    assert final["provenance"]["initialised_from"] == "models/student_tkd.pt"
    assert final["inputs"] == tkd["inputs"] and final["inputs"]["classes"]
    assert any(not torch.equal(tkd["state_dict"][k], v) for k, v in final["state_dict"].items())
    metrics = json.loads((dest / "reports" / "metrics.json").read_text())
    assert {"teacher", "pruned", "student_tkd", "student", "shipped_int8", *BASELINES} == set(
        metrics
    )
    table = (dest / "reports" / "comparison.md").read_text()
    for label in ("teacher", "TKD-CA", "RC-SKD (TKD-CA -> DKD-SG)", "decoupled_kd", "ce_only",
                  "shipped student INT8 (ONNX Runtime)"):  # fmt: skip
        assert f"| {label}" in table
    rows = json.loads((dest / "reports" / "comparison.json").read_text())["models"]
    assert [r["model"] for r in rows][:2] == ["teacher", "pruned"]
    assert [r["model"] for r in rows][-3:] == ["student_tkd", "student", "shipped_int8"]


def test_repro_exports_the_student_as_fp32_and_int8_onnx_with_a_card(repo_copy):
    dest, _, log = repo_copy
    assert "Running stage 'export'" in log
    export = dest / "models" / "export"
    summary = json.loads((export / "shipped.export.json").read_text())
    q = summary["exports"]["int8"]
    assert q["calibration_split"] == "train" and q["int8_val_acc"] >= 0
    assert (export / "shipped.int8.onnx").stat().st_size < (export / "shipped.onnx").stat().st_size
    assert "## INT8 model" in (export / "shipped.card.md").read_text()
    details = json.loads((dest / "reports" / "evaluation" / "shipped_int8.json").read_text())
    assert details["runtime"] == "onnxruntime"


def test_the_shipped_student_is_the_validation_best_and_everything_names_it(repo_copy):
    """ship picks the student with the best validation accuracy (every candidate scored on
    validation, as the choice rule says); export, the headline, the table, the report and the
    MLflow registry all name that same model."""
    dest, env, log = repo_copy
    assert "Running stage 'ship'" in log
    selection = json.loads((dest / "reports" / "selection.json").read_text())
    candidates = {c["model"]: c for c in selection["candidates"]}
    assert set(candidates) == {"student", "student_tkd", *BASELINES}
    best = max(candidates.values(), key=lambda c: (c["val_acc"], c["val_balanced_acc"],
                                                   -c["val_loss"]))  # fmt: skip
    shipped = selection["shipped"]
    assert candidates[shipped]["val_acc"] == best["val_acc"]
    # the shipped checkpoint is that student's weights
    ship = torch.load(dest / "models" / "shipped.pt", weights_only=True)
    source = dest / "models" / (f"baselines/{shipped}.pt" if shipped in BASELINES
                                else f"{shipped}.pt")  # fmt: skip
    same = torch.load(source, weights_only=True)["state_dict"]
    assert all(torch.equal(v, same[k]) for k, v in ship["state_dict"].items())
    assert ship["provenance"]["shipped_from"] == shipped
    # export, headline, comparison table, report and registry name it
    card = (dest / "models" / "export" / "shipped.card.md").read_text()
    assert f"- Shipped: `{shipped}`" in card
    headline = json.loads((dest / "reports" / "headline.json").read_text())
    comparison = json.loads((dest / "reports" / "comparison.json").read_text())
    assert headline["shipped"] == comparison["shipped"] == shipped
    row = next(r for r in comparison["models"] if r["model"] == shipped)
    assert row["shipped"] and headline["acc"]["shipped"] == round(row["acc"], 4)
    assert sum(r["shipped"] for r in comparison["models"]) == 1
    assert " **(shipped)**" in (dest / "reports" / "comparison.md").read_text()
    page = (dest / "reports" / "report.html").read_text()
    assert 'class="shipped"' in page and selection["verdict"].split(" (")[0] in page
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    (version,) = client.search_model_versions("name = 'rcskd-student'")
    assert client.get_run(version.run_id).data.tags["shipped"] == shipped


def test_repro_writes_a_self_contained_report(repo_copy):
    import re

    dest, _, log = repo_copy
    assert "Running stage 'report'" in log
    page = (dest / "reports" / "report.html").read_text()
    sections = re.findall(r'<section id="([a-z]+)"', page)
    assert sections == [
        "data", "curves", "search", "comparison", "confusion", "calibration", "gradcam", "pareto"
    ]  # fmt: skip
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(images) >= 1 + 12 + 2 + 3 * 4 + 1  # samples, 12 curves, search, per model, pareto
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "RC-SKD (TKD-CA -&gt; DKD-SG)" in page and "no comparison yet" not in page.lower()


def test_second_repro_does_nothing(repo_copy):
    dest, env, _ = repo_copy
    log = run([str(BIN / "dvc"), "repro"], dest, env)
    assert "Running stage" not in log
    assert "didn't change" in log or "up to date" in log


def test_stage_logged_params_and_metrics_to_mlflow(repo_copy):
    dest, env, _ = repo_copy
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("rcskd")
    for stage in ("teacher", "prune", "tkd_ca", "dkd_sg", "distill_baseline.kd", "evaluate"):
        (run_,) = client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")
        assert run_.data.metrics
    (teacher,) = client.search_runs([experiment.experiment_id], "tags.stage = 'teacher'")
    assert teacher.data.params["train.epochs"] == "2"
    history = client.get_metric_history(teacher.info.run_id, "val_acc")
    assert [m.step for m in history] == [1, 2]  # one point per epoch
    assert teacher.data.metrics["summary.val_acc"] >= 0
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'prepare'")
    assert len(runs) == 1
    run_ = runs[0]
    assert run_.data.params["prepare.image_size"] == "32"
    assert run_.data.metrics["counts.test.total"] > 0
    assert len(run_.data.tags["git_commit"]) == 40
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"prepare.json", "manifest.csv", "duplicates.csv"} <= artifacts
    # evaluate names its data, which is how the report picks comparable runs
    (evaluate,) = client.search_runs([experiment.experiment_id], "tags.stage = 'evaluate'")
    meta = json.loads((dest / "data" / "prepared" / "meta.json").read_text())
    assert evaluate.data.tags["data_fingerprint"] == meta["fingerprint"]


def test_one_parent_run_holds_the_pipeline_and_the_student_is_registered(repo_copy):
    """mlflow ui compares executions: one parent per pipeline run with all params, the headline
    metrics and the dataset; each stage a child named after it; models in the registry."""
    dest, env, _ = repo_copy
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("rcskd")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (parent,) = client.search_runs([experiment.experiment_id], "tags.kind = 'pipeline'")
    assert parent.data.params["prune.budget"] == "0.2"
    assert parent.data.params["teacher.train.epochs"] == "2"
    headline = json.loads((dest / "reports" / "headline.json").read_text())
    assert parent.data.metrics["acc.shipped"] == headline["acc"]["shipped"]
    assert parent.data.metrics["budget"] == 0.2
    assert [d.dataset.name for d in parent.inputs.dataset_inputs] == ["prepared-phantom"]
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    names = {r.info.run_name for r in children}
    stages = {"prepare", "teacher", "prune", "tkd_ca", "dkd_sg", "ship", "export", "evaluate"}
    assert stages <= names
    assert {f"distill_baseline.{m}" for m in BASELINES} <= names
    for name in ("rcskd-student", "rcskd-pruned"):
        (version,) = client.search_model_versions(f"name = '{name}'")
        assert version.status == "READY"
    model = client.get_model_version_download_uri("rcskd-student", "1")
    assert model


def test_headline_metrics_are_the_only_dvc_metrics(repo_copy):
    dest, env, _ = repo_copy
    out = run([str(BIN / "dvc"), "metrics", "show", "--json"], dest, env)
    shown = json.loads(out[out.index("{") :])
    files = {f for rev in shown.values() for f in rev.get("data", {})}
    assert files == {"reports/headline.json"}
    headline = json.loads((dest / "reports" / "headline.json").read_text())
    assert headline["budget"] == 0.2 and set(headline["achieved"]) == {"params", "flops"}
    for metric in ("acc", "bal_acc", "macro_f1", "params_M", "MFLOPs", "ms_b1"):
        assert set(headline[metric]) == {"teacher", "pruned", "shipped"}, metric


def compare_columns() -> str:
    """The --keep pattern of `make compare` (the README's command), as the shell receives it."""
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith("COMPARE_COLUMNS :="):
            return line.split(":=", 1)[1].strip().replace("$$", "$")
    raise AssertionError("no COMPARE_COLUMNS in the Makefile")


def test_make_compare_shows_three_experiments_in_200_columns(repo_copy):
    """Last in this module: it queues two budget experiments (run in DVC's temporary copies, so
    the workspace the other tests read stays as it is)."""
    import time

    dest, env, _ = repo_copy
    dvc = str(BIN / "dvc")
    for budget in ("0.3", "0.7"):
        run([dvc, "exp", "run", "--queue", "-S", f"prune.budget={budget}"], dest, env)
    run([dvc, "queue", "start", "-j", "1"], dest, env)
    deadline, status = time.time() + 900, ""
    while time.time() < deadline:
        status = run([dvc, "queue", "status"], dest, env)
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(3)
    assert "Failed" not in status, status
    table = run([dvc, "exp", "show", "--no-pager", "--drop", ".*", "--keep", compare_columns()],
                dest, dict(env, COLUMNS="200"))  # fmt: skip
    lines = [line for line in table.splitlines() if line.strip() and "WARNING" not in line]
    assert max(map(len, lines)) <= 200 and "…" not in table, table
    header = lines[1] if lines[0].strip().startswith("─") else lines[0]
    for column in ("budget", "achieved.params", "acc.teacher", "acc.shipped", "ms_b1.shipped"):
        assert column in header, header
    assert sum("[" in line for line in lines) == 2  # the two experiments, under the baseline
    assert {"0.2", "0.3", "0.7"} <= set(table.split()), table  # the budget column
