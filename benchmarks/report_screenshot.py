"""Render a report in headless Chromium, list broken images, save a full-page screenshot.

    python benchmarks/report_screenshot.py [reports/report.html] [reports/bench/report.png]

Needs Debian's chromium (`apt install chromium`) and the `playwright` Python package (driving
that browser; no browser download).
"""

from __future__ import annotations

import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# closed network here: background services would only fail to connect
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def screenshot(page_path: Path, out: Path, width: int = 1300) -> tuple[list[str], tuple[int, int]]:
    """(alt texts of images that failed to load, screenshot size) of the rendered page."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(Path(page_path).resolve().as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate(
            "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    with Image.open(out) as image:
        return broken, image.size


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/report.html")
    dst = Path(sys.argv[2] if len(sys.argv) > 2 else "reports/bench/report.png")
    missing, size = screenshot(src, dst)
    print(f"{dst}: {size[0]}x{size[1]} px; broken images: {missing or 'none'}")
    sys.exit(1 if missing else 0)
