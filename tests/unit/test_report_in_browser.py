"""The slide report as a person sees it: rendered by headless Chromium, with its verdict and its picture."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pcam_pipeline.core import keys
from pcam_pipeline.scoring.lesions import verdict_in_words
from pcam_pipeline.scoring.slide_answer import ScoredSlide, result_files, with_report
from tests.browser import render
from tests.wsi_files import plan_of

THUMBNAIL_COLOUR = (214, 40, 190)  # a colour nothing else on the page has


def thumbnail() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 300), THUMBNAIL_COLOUR).save(out, format="PNG")
    return out.getvalue()


def test_the_report_renders_its_verdict_and_its_picture_in_chromium(tmp_path):
    cells = [[x * 100, y * 100] for y in range(20) for x in range(20)]
    probabilities = np.array([0.95 if 3 <= x <= 8 and 4 <= y <= 6 else 0.05 for y in range(20) for x in range(20)])
    plan = plan_of(cells)  # 100 px tiles at 0.5 µm/px: 10 level-0 px per thumbnail pixel
    scored = ScoredSlide("labs/lab-a/node 7", probabilities, 0.5, "pcam-m1", plan=plan, thumbnail=thumbnail())
    found = scored.found_lesions()
    summary = {"slide_id": scored.slide_id, "patch_count": 400, "tumour_patch_count": 18, "tissue_area_mm2": 1.0,
               "tiles_kept": 400, "tiles_total": 400, "model_name": "pcam-m1", "model_metrics": {"auc": 0.95},
               "verdict": scored.verdict(found), "input_key": "incoming/x.svs", "input_version": "v1"}  # fmt: skip
    files = with_report(scored, found, result_files(scored, found), summary)
    page = tmp_path / "report.html"
    page.write_bytes(files[keys.prediction_key(scored.slide_id, "html")][0])

    dom, screenshot = render(page)

    assert verdict_in_words(summary["verdict"]) in dom
    assert summary["verdict"]["category"] == "micrometastasis"  # 6 x 3 tiles of 50 µm: 0.27 mm
    shown = (np.abs(screenshot.astype(int) - THUMBNAIL_COLOUR).max(axis=2) <= 3).sum()
    assert shown > 0.8 * 640 * 640, f"the picture is on screen ({shown} of its pixels)"
    ink = (screenshot.max(axis=2) < 80)[:400]
    assert ink.sum() > 500, "the heading and the verdict are drawn as text at the top"
