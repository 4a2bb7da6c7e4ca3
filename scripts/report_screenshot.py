"""The report picture in the docs (docs/images/slide-report.png): a demo slide's report as Chromium draws it.

Run after `make demo`: .venv/bin/python scripts/report_screenshot.py [SLIDE_ID]"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.browser import render  # noqa: E402


def main(slide_id: str = "wsi-001") -> None:
    root = Path(__file__).parents[1]
    _, screenshot = render((root / "pcam-output" / "predictions" / f"{slide_id}.html").resolve(), 1100, 1500)
    picture = Image.fromarray(screenshot[:1350]).quantize(colors=128)
    picture.save(root / "docs" / "images" / "slide-report.png", optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
