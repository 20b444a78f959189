"""Time the README's two commands as a new user meets them: in a fresh clone of this commit.

    python benchmarks/commands.py [--keep DIR]

Clones the repository's HEAD into a temporary folder (or DIR, kept), then times `make install`,
`make test` (counting the tests that passed) and `make repro` (the install excluded: it is
already done) one after the other, and writes reports/bench/commands.json with the machine's CPU,
core count, the commit and the date. Run it on an otherwise idle machine: the numbers are what
docs/generate.py puts in the README. Nothing here reads Brain-4, so its tests skip in the clone
only when the dataset is not beside it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench_common import REPO, RESULTS, cpu_name, save_results

from rcskd.tracking import git_commit


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return seconds, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="clone into this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rcskd-fresh-"))
    clone = work / "rcskd"
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env_note = "MLFLOW_TRACKING_URI" in os.environ
    install_s, _ = timed(["make", "install"], clone)
    test_s, log = timed(["make", "test"], clone)
    passed = re.search(r"(\d+) passed", log)
    repro_s, log = timed(["make", "repro"], clone)
    stages = len(re.findall(r"Running stage '", log))
    result = {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "git_commit": git_commit(REPO),
        "date": time.strftime("%Y-%m-%d"),
        "install_s": round(install_s, 1),
        "test_s": round(test_s, 1),
        "tests_passed": int(passed.group(1)) if passed else None,
        "repro_s": round(repro_s, 1),
        "stages_run": stages,
        "mlflow_uri_from_env": env_note,
    }
    save_results(RESULTS / "commands.json", result)
    print(result)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
