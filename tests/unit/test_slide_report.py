"""The one-page report: what a pathologist reads, accessible markup, and nothing fetched from anywhere."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np
from PIL import Image

from pcam_pipeline.scoring.lesions import TileGrid, find_lesions, slide_verdict
from pcam_pipeline.scoring.slide_report import DISCLAIMER, slide_report_html


class Page(HTMLParser):
    """The tags and attributes of a page, and its text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


def png(colour=(200, 100, 150)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="PNG")
    return out.getvalue()


def summary_of(probabilities, cells, slide_id="labs/lab-a/node 7", metrics=None, whole_slide=True) -> dict:
    grid = TileGrid(np.asarray(cells, float) * 96, 96.0, 96.0, 0.972)
    lesions = find_lesions(grid, np.asarray(probabilities), 0.5)
    verdict = slide_verdict(
        lesions, positive_tiles=sum(p >= 0.5 for p in probabilities), tissue_area_mm2=3.2 if whole_slide else None,
        grid=grid, threshold=0.5, model_name="pcam-m1",
    )  # fmt: skip
    summary = {
        "slide_id": slide_id, "input_key": "incoming/labs/lab-a/slides/node 7.svs", "input_version": "v-123",
        "dropped_at": "2026-12-01T10:00:00+00:00", "scored_at": "2026-12-01T10:20:00+00:00",
        "patch_count": len(probabilities), "tumour_patch_count": verdict["lesions"] and sum(
            lesion["tile_count"] for lesion in verdict["lesions"]) or 0,
        "model_name": "pcam-m1", "model_metrics": metrics or {}, "verdict": verdict,
    }  # fmt: skip
    if whole_slide:
        summary.update(tissue_area_mm2=3.2, tiles_kept=len(probabilities), tiles_total=400)
    return summary


ROW = [(c, 0) for c in range(12)] + [(30, 30)]


def test_the_page_says_the_verdict_shows_the_picture_and_lists_the_lesions():
    summary = summary_of([0.9] * 12 + [0.7], ROW, metrics={"auc": 0.97, "recall": 0.9})
    page = Page(slide_report_html(summary, png()))
    assert "Micrometastasis: the largest lesion measures 1.03 mm (2 lesions found)." in page.words
    (image,) = page.all("img")
    assert image["src"].startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(image["src"].split(",", 1)[1]))).size == (40, 30)
    assert image["alt"] == "Slide labs/lab-a/node 7 with its 2 lesions outlined and numbered"
    assert "1 micrometastasis 1.03 0.104 12 0.900 576, 48" in page.words
    assert "2 isolated tumour cells 0.09 0.009 1 0.700" in page.words
    assert "tissue area (mm²) 3.20" in page.words and "tiles kept / cut 13 / 400" in page.words
    assert "test AUC 0.970" in page.words
    assert "file incoming/labs/lab-a/slides/node 7.svs version v-123" in page.words
    assert page.words.count(DISCLAIMER) == 2, "at the top and at the end"


def test_the_markup_is_accessible_and_requests_nothing():
    html = slide_report_html(summary_of([0.9, 0.2], [(0, 0), (5, 5)]), png())
    page = Page(html)
    assert page.all("html") == [{"lang": "en"}]
    assert page.all("title") and all(image.get("alt") for image in page.all("img"))
    assert {attrs.get("scope") for attrs in page.all("th")} == {"col", "row"}
    assert page.all("caption"), "each table says what it holds"
    (policy,) = [m["content"] for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert policy.startswith("default-src 'none'")
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            assert not attrs.get(name, "data:").startswith(("http", "//", "/")), (tag, attrs)
    assert "<script" not in html and "<link" not in html


def test_text_from_the_lab_cannot_become_markup():
    summary = summary_of([0.2], [(0, 0)], slide_id='labs/lab-a/<script>alert("x")</script>')
    html = slide_report_html(summary, png())
    assert "<script" not in html and "&lt;script&gt;" in html


def test_a_negative_slide_and_a_model_without_test_figures_say_so():
    page = Page(slide_report_html(summary_of([0.1, 0.2], [(0, 0), (1, 0)]), png()))
    assert "Negative: no tile reached the operating threshold." in page.words
    assert "No lesion was found." in page.words and "no lesion found" in page.all("img")[0]["alt"]
    assert "not measured: the model was not evaluated on a test split" in page.words


def test_test_figures_with_their_intervals_are_shown_when_the_model_has_them():
    metrics = {"auc": 0.9, "sensitivity": 0.95, "sensitivity_ci95": [0.9, 0.98], "specificity": 0.8,
               "specificity_ci95": [0.7, 0.87], "ece": 0.031, "brier": 0.08}  # fmt: skip
    page = Page(slide_report_html(summary_of([0.9], [(0, 0)], metrics=metrics), png()))
    assert "test sensitivity at the threshold 0.950 (95 % CI 0.900–0.980)" in page.words
    assert "test specificity at the threshold 0.800 (95 % CI 0.700–0.870)" in page.words
    assert "test expected calibration error 0.031" in page.words and "test Brier score 0.080" in page.words


def test_a_file_without_positions_has_no_picture_and_says_why():
    summary = summary_of([0.9], [(0, 0)], whole_slide=False)
    summary["verdict"] = slide_verdict(
        None, positive_tiles=1, tissue_area_mm2=None, grid=None, threshold=0.5, model_name="m"
    )
    page = Page(slide_report_html(summary, None))
    assert page.all("img") == [] and "No picture: the file gives no tile positions." in page.words
    assert "Indeterminate: 1 tiles are at or above the threshold" in page.words
    assert "no tile positions: tile counts only, no lesions." in page.words


def test_groups_below_the_evidence_rule_are_summed_up_not_tabled():
    grid = TileGrid(np.asarray([(c, 0) for c in range(12)] + [(30, 30), (40, 40)], float) * 96, 96.0, 96.0, 0.972)
    probabilities = np.array([0.9] * 12 + [0.7, 0.8])
    lesions = find_lesions(grid, probabilities, 0.5)
    evidence = {"note": "a group of fewer than 3 tiles is within what the model's false positives make"}
    verdict = slide_verdict(lesions, positive_tiles=14, tissue_area_mm2=3.2, grid=grid, threshold=0.5,
                            model_name="m", minimum_tiles=3, evidence=evidence)  # fmt: skip
    summary = {**summary_of([0.1], [(0, 0)]), "verdict": verdict}
    page = Page(slide_report_html(summary, png()))
    assert "Micrometastasis: the largest lesion measures 1.03 mm (1 lesion found)." in page.words
    assert "1 micrometastasis 1.03" in page.words and "isolated tumour cells 0.09" not in page.words
    assert "2 smaller groups of positive tiles (at most 1 tiles) are not counted: a group of fewer than 3" in (
        page.words
    )
