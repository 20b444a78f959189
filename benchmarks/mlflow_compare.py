"""In headless Chromium, do what a user does in `mlflow ui`: open the rcskd experiment's runs,
tick the two newest pipeline (parent) runs, press Compare; check that the page shows their
budget, params and accuracy side by side, and save screenshots of both pages.

    python benchmarks/mlflow_compare.py [reports/bench/mlflow_compare.png]

Starts `mlflow ui` on the repository's mlflow.db (a free local port). MLflow 3.17's UI has a
global GenAI / Model training switch whose default is GenAI whatever the experiment's kind;
`?workflowType=machine_learning` selects Model training, as a click on it would (the UI then
remembers it). Needs Debian's chromium and the `playwright` package (no browser download).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from report_screenshot import CHROMIUM, FLAGS

REPO = Path(__file__).resolve().parents[1]
# what a reader must find on the page: the budget param and the headline accuracy metrics
EXPECTED = ("prune.budget", "acc.student", "acc.pruned", "acc.teacher")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parent_runs(uri: str, n: int = 2) -> tuple[str, list]:
    """(experiment id, the n newest parent runs)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("rcskd")
    runs = client.search_runs([experiment.experiment_id], "tags.kind = 'pipeline'",
                              order_by=["attributes.start_time DESC"], max_results=n)  # fmt: skip
    if len(runs) < n:
        sys.exit(f"need {n} pipeline runs in {uri}; found {len(runs)}")
    return experiment.experiment_id, runs


def main() -> int:
    from playwright.sync_api import sync_playwright

    out = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "reports/bench/mlflow_compare.png")
    uri = f"sqlite:///{REPO / 'mlflow.db'}"
    experiment, runs = parent_runs(uri)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        runs_page = f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(runs_page)
            names = [r.info.run_name for r in runs]
            page.wait_for_selector(f"text={names[0]}", timeout=120_000)
            close = page.get_by_role("button", name="Close")  # the assistant panel, if open
            if close.count():
                close.first.click()
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out.with_name("mlflow_runs.png")))
            for name in names:
                row = page.locator("[role=row]", has_text=name).first
                row.locator("input[type=checkbox]").first.check()
            page.get_by_role("button", name="Compare").click()
            page.wait_for_selector("text=prune.budget", timeout=120_000)
            # the compare page falls back to the GenAI sidebar: ask for Model training again
            page.goto(page.url + "&workflowType=machine_learning")
            page.wait_for_selector("text=prune.budget", timeout=120_000)
            page.set_viewport_size({"width": 1500, "height": 2000})
            page.get_by_text("Show diff only").first.click()  # the params that differ
            page.wait_for_timeout(2000)
            text = page.inner_text("body")
            page.screenshot(path=str(out))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    missing = [e for e in EXPECTED if e not in text]
    names = [r.info.run_name for r in runs]
    print(f"{out}: compare of {names}; missing on the page: {missing or 'nothing'}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
