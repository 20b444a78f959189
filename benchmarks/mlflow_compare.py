"""Open MLflow's run comparison of the two latest pipeline (parent) runs in headless Chromium,
check that it shows their budget, params and accuracy side by side, and save a screenshot.

    python benchmarks/mlflow_compare.py [reports/bench/mlflow_compare.png]

Starts `mlflow ui` on the repository's mlflow.db (a free local port), finds the two newest
parent runs (tag kind=pipeline) of the `rcskd` experiment and loads the page MLflow's Compare
button opens for them. Needs Debian's chromium and the `playwright` package (no download).
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
        ids = ",".join(f'"{r.info.run_id}"' for r in runs)
        url = f'{base}/#/compare-runs?runs=[{ids}]&experiments=["{experiment}"]'
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(url)
            page.wait_for_selector("text=prune.budget", timeout=120_000)
            page.wait_for_timeout(2000)
            text = page.inner_text("body")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=False)
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
