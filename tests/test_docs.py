"""The documentation cannot drift: generated pages are regenerated and compared, the site builds
with --strict and loads nothing from the network, every command, path and `-S key=value` the
docs name exists and validates, and the commands whose output the docs show print it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rcskd.config import params_from_dict
from rcskd.errors import ConfigError
from tests.repo_copy import REPO

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
PAGES = [p for p in PAGES if not p.name.startswith("_raw")]


def _run(args: list[str], cwd: Path = REPO, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_generated_pages_are_up_to_date():
    """params and command reference, GPU status, results blocks: regenerated, no difference."""
    done = _run([sys.executable, "docs/generate.py", "--check"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_site_builds_strict_and_offline(tmp_path):
    site = tmp_path / "site"
    done = _run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 20
    for page in pages:
        text = page.read_text()
        external = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not external, f"{page.name} loads {external}"
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text


def test_the_readme_is_short_and_links_only_inside_the_repository():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert not target.startswith(("http", "../")), target
        assert (REPO / target.split("#")[0]).exists(), target
    assert "../shared" not in text.replace("../shared/data/brain-tumor-mri", "")


def test_no_page_links_outside_the_repository_workspace():
    for page in PAGES:
        text = page.read_text()
        assert "../shared/DESIGN" not in text and "../shared/BENCHMARK" not in text, page
        for target in re.findall(r"\]\(([^)]+)\)", text):
            if target.startswith(("http", "#")):
                continue
            resolved = (page.parent / target.split("#")[0]).resolve()
            assert resolved.exists(), f"{page.relative_to(REPO)} links {target}"


def _phony() -> set[str]:
    line = next(x for x in (REPO / "Makefile").read_text().splitlines() if x.startswith(".PHONY"))
    return set(line.split()[1:])


def test_every_make_target_named_exists():
    targets = _phony()
    for page in PAGES:
        for name in re.findall(r"`make ([a-z0-9-]+)", page.read_text()):
            assert name in targets, f"{page.relative_to(REPO)}: make {name}"


def test_every_repository_path_named_exists():
    """Backticked paths under the repository's own folders (generated outputs excluded)."""
    roots = ("rcskd/", "stages/", "benchmarks/", "tests/", "docs/", ".dvc/", ".ci/")
    made = (
        "models/",
        "reports/",
        "data/",
        "site/",
        "dvc_plots/",
        "gpu_bundle/",
        "mlflow",
        ".dvc/tmp",
    )  # made by running things
    for page in PAGES:
        for path in re.findall(r"`([\w./-]+)`", page.read_text()):
            if path.startswith(roots) and not path.startswith(made) and "<" not in path:
                assert (REPO / path.rstrip("/")).exists() or "*" in path, (
                    f"{page.relative_to(REPO)} names {path}"
                )


def _set(raw: dict, dotted: str, value: str) -> None:
    import yaml

    *parents, leaf = dotted.lstrip("+").split(".")
    for key in parents:
        raw = raw.setdefault(key, {})
    raw[leaf] = yaml.safe_load(value)


def test_every_override_shown_validates():
    """Every `-S key=value` in the docs is a real key with a valid value (`abc` and the typo
    example are shown to be refused, and are)."""
    import yaml

    refused = {"prune.budget=abc", "+teacher.epoch=3"}
    for page in PAGES:
        for key, value in re.findall(r"-S ([+\w.]+)=([^\s`\\]+)", page.read_text()):
            if key == "key":  # the generic `-S key=value` of the reference's preamble
                continue
            raw = yaml.safe_load((REPO / "params.yaml").read_text())
            _set(raw, key, value.replace("$PWD", "/tmp"))
            if f"{key}={value}" in refused:
                with pytest.raises(ConfigError):
                    params_from_dict(raw)
            else:
                params_from_dict(raw)


def _numbers_close(shown: str, printed: str, tol: float = 0.02) -> bool:
    """Same text with every number within `tol` (probabilities differ in the last digit
    between CPUs)."""
    pattern = r"\d+\.\d+"
    if re.sub(pattern, "#", shown).split() != re.sub(pattern, "#", printed).split():
        return False
    pairs = zip(re.findall(pattern, shown), re.findall(pattern, printed), strict=True)
    return all(abs(float(a) - float(b)) <= tol for a, b in pairs)


def _console(block: str) -> str:
    return block.split("```console\n", 1)[1].split("```", 1)[0]


def test_the_commands_shown_print_what_the_docs_show(quadrant_checkpoint):
    sys.path.insert(0, str(DOCS))
    import generate

    fresh = generate.examples(quadrant_checkpoint[0])
    for path, text in fresh.items():
        shown = path.read_text()
        assert _numbers_close(_console(shown), _console(text)), f"{path.name}:\n{text}"
