"""Build .dvc/plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed inline.

DVC's default page loads these libraries from a CDN, so `dvc plots show` is a blank page on a
network without internet access (hospital networks often are). This script takes the same
versions DVC's renderer asks for from the npm registry (`npm pack`, run once by a developer;
the result is committed) and writes a template with them inline; `.dvc/config` points
`plots.html_template` at it. Run: `python .dvc/plots/vendor_vega.py`.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / ".dvc" / "plots" / "offline.html"
# The versions dvc-render's vega page loads from the CDN (dvc_render/vega.py).
PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>rcskd: DVC plots</title>
    <!-- {notice}: vendored from the npm registry by .dvc/plots/vendor_vega.py
         (BSD-3-Clause, copyright the University of Washington Interactive Data Lab), so that
         this page renders without network access. -->
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def library(package: str, version: str, workdir: Path) -> str:
    """The minified browser build of `package@version`, from the npm registry."""
    subprocess.run(["npm", "pack", "--silent", f"{package}@{version}"], cwd=workdir,
                   check=True, capture_output=True)  # fmt: skip
    with tarfile.open(workdir / f"{package}-{version}.tgz") as tar:
        member = tar.extractfile(f"package/build/{package}.min.js")
        assert member is not None
        code = member.read().decode()
    # A literal closing tag would end the inline <script> early.
    return code.replace("</script", "<\\/script")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scripts = [
            f"    <script>/* {name}@{version} */\n{library(name, version, Path(tmp))}\n"
            "    </script>"
            for name, version in PACKAGES.items()
        ]
    notice = ", ".join(f"{name} {version}" for name, version in PACKAGES.items())
    # Braces in the libraries must survive dvc-render's str.replace of the placeholders only.
    page = PAGE.format(notice=notice, scripts="\n".join(scripts))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(page)
    print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
