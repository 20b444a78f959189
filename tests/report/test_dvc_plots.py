"""`dvc plots show`: only the declared plots, each with axes, title and template, rendered from
the committed reports into a page that draws with the network off (vendored vega)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.repo_copy import BIN

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def pipeline() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())


def test_every_plot_is_declared_with_title_template_and_axes():
    plots = pipeline()["plots"]
    assert len(plots) == 6
    for entry in plots:
        ((name, spec),) = entry.items()
        assert {"title", "template", "x", "y", "x_label", "y_label"} <= set(spec), name
        for path in spec["y"]:
            assert (REPO / path).is_file(), f"{name}: {path} is not a committed report"


def test_no_stage_declares_plots_so_dvc_adds_no_default_ones():
    for name, stage in pipeline()["stages"].items():
        assert "plots" not in stage.get("do", stage), name


def test_the_distillation_plot_has_every_baseline():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    plots = {next(iter(e)): next(iter(e.values())) for e in pipeline()["plots"]}
    curves = set(plots["Validation accuracy of every distillation"]["y"])
    methods = ["tkd_ca", "dkd_sg", *params["distill"]["baselines"]]
    assert curves == {f"reports/curves/distill_{m}.csv" for m in methods}


def test_the_dvc_plots_folder_is_ignored():
    assert "dvc_plots/" in (REPO / ".gitignore").read_text().split()


@pytest.fixture(scope="module")
def plots_page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots")
    subprocess.run([str(BIN / "dvc"), "plots", "show", "-o", str(out)], cwd=REPO, check=True,
                   capture_output=True)  # fmt: skip
    return out / "index.html"


def test_the_page_loads_no_script_from_the_network(plots_page):
    html = plots_page.read_text()
    assert "vega@5.20.2" in html and "vega-embed@6.18.2" in html  # the vendored libraries
    assert not re.search(r"<script[^>]+src=", html)
    assert "cdn.jsdelivr" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)")
def test_the_page_draws_every_plot_in_chromium_with_the_network_off(plots_page, tmp_path):
    blocked = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path}", *blocked, "--virtual-time-budget=10000", "--dump-dom",
         plots_page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # vega-embed draws each chart as a canvas of class "marks"
    assert result.stdout.count('class="marks"') == 6, result.stderr[-2000:]
