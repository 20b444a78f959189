"""Script folders put themselves on sys.path and import their siblings by bare name
(`from common import ...`). Python caches a bare name once per process, so two folders with
a module of the same name make whichever is imported second load the first one's file: the
suite then fails or passes depending on test order (it did: benchmarks/common.py shadowed
stages/common.py)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT_FOLDERS = ("stages", "benchmarks")


def _module_names(folder: str) -> set[str]:
    return {p.stem for p in (REPO / folder).glob("*.py")}


def test_no_two_script_folders_share_a_module_name():
    stages, benchmarks = (_module_names(f) for f in SCRIPT_FOLDERS)
    assert stages and benchmarks, "a script folder is empty: the check would pass vacuously"
    assert stages & benchmarks == set()


def test_script_modules_do_not_shadow_the_package_or_the_standard_library():
    taken = set(sys.stdlib_module_names) | {"rcskd", "tests"}
    for folder in SCRIPT_FOLDERS:
        assert _module_names(folder) & taken == set(), folder
