"""The one-page report of a scored slide (``predictions/<slide>.html``). Pure.

Self-contained: the picture is inline (a data: URI) and the page's Content-Security-Policy forbids any other
request, so it opens the same from S3, an e-mail or a disk without a network.
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from pcam_pipeline.scoring.lesions import verdict_in_words
from pcam_pipeline.wsi.tile_qc import qc_in_words

DISCLAIMER = "For research use; not a diagnosis."
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #111; line-height: 1.4 }
.verdict { font-size: 1.4rem; font-weight: bold; padding: .6rem 1rem; border-left: .4rem solid #333;
           background: #f3f3f3 }
table { border-collapse: collapse; margin: .5rem 0 } th, td { border: 1px solid #999; padding: .25rem .6rem }
th { background: #eee; text-align: left } td.n { text-align: right } img { max-width: 100%; height: auto }
.disclaimer { font-weight: bold; color: #8a0000 }
"""
_CATEGORY_WORDS = {
    "itc": "isolated tumour cells",
    "micrometastasis": "micrometastasis",
    "macrometastasis": "macrometastasis",
}


def _rows(cells: list[list[str]]) -> str:
    return "".join("<tr>" + "".join(cells_html) + "</tr>" for cells_html in cells)


def _lesion_table(verdict: dict[str, Any]) -> str:
    if verdict["lesion_count"] is None:
        return f"<p>{escape(verdict['measurement_note'])}.</p>"
    counted = [lesion for lesion in verdict["lesions"] if lesion["counted"]]
    below = len(verdict["lesions"]) - len(counted)
    evidence = verdict["evidence"].get("note")
    smaller = (
        f"<p>{below} smaller group{'s' if below != 1 else ''} of positive tiles (at most "
        f"{max(lesion['tile_count'] for lesion in verdict['lesions'] if not lesion['counted'])} tiles) "
        f"{'are' if below != 1 else 'is'} not counted: {escape(evidence or '')}. They are in the summary and the "
        "GeoJSON.</p>"
        if below
        else ""
    )
    if not counted:
        return "<p>No lesion was found.</p>" + smaller
    head = ["#", "category", "greatest dimension (mm)", "area (mm²)", "tiles", "max probability", "centre x, y (px)"]
    rows = [
        [
            f'<th scope="row">{lesion["number"]}</th>',
            f"<td>{escape(_CATEGORY_WORDS[lesion['category']])}</td>",
            f'<td class="n">{lesion["greatest_dimension_mm"]:.2f}</td>',
            f'<td class="n">{lesion["area_mm2"]:.3f}</td>',
            f'<td class="n">{lesion["tile_count"]}</td>',
            f'<td class="n">{lesion["max_probability"]:.3f}</td>',
            f'<td class="n">{lesion["centroid"][0]}, {lesion["centroid"][1]}</td>',
        ]
        for lesion in counted
    ]
    header = "".join(f'<th scope="col">{escape(name)}</th>' for name in head)
    note = escape(verdict["measurement_note"])
    return (
        f"<table><caption>Lesions, largest first ({note})</caption><thead><tr>{header}</tr></thead>"
        f"<tbody>{_rows(rows)}</tbody></table>" + smaller
    )


def _figure(summary: dict[str, Any], picture_png: bytes | None) -> str:
    if picture_png is None:
        return "<p>No picture: the file gives no tile positions.</p>"
    count = summary["verdict"]["lesion_count"] or 0
    alt = f"Slide {summary['slide_id']}" + (
        f" with its {count} lesion{'s' if count != 1 else ''} outlined and numbered" if count else ", no lesion found"
    )
    source = "data:image/png;base64," + base64.b64encode(picture_png).decode()
    return f'<figure><img src="{source}" alt="{escape(alt)}"><figcaption>{escape(alt)}.</figcaption></figure>'


def _model(summary: dict[str, Any]) -> str:
    metrics = summary.get("model_metrics") or {}
    verdict = summary["verdict"]
    facts = [
        ["model", escape(str(summary.get("model_name")))],
        ["operating threshold", f"{verdict['operating_threshold']:.3f}"],
    ]
    if metrics.get("auc") is not None:
        facts.append(["test AUC", f"{metrics['auc']:.3f}"])
    for name in ("sensitivity", "specificity"):
        if metrics.get(name) is not None:
            low, high = metrics.get(f"{name}_ci95", [None, None])
            interval = f" (95 % CI {low:.3f}–{high:.3f})" if low is not None else ""
            facts.append([f"test {name} at the threshold", f"{metrics[name]:.3f}{interval}"])
    for name, words in (("ece", "expected calibration error"), ("brier", "Brier score")):
        if metrics.get(name) is not None:
            facts.append([f"test {words}", f"{metrics[name]:.3f}"])
    if len(facts) == 2:
        facts.append(["test figures", "not measured: the model was not evaluated on a test split"])
    return _facts_table("The model", facts)


def stain_in_words(stain: dict[str, Any]) -> str:
    """The slide's stain against the model's training stain, in a sentence."""
    if stain.get("mismatch"):
        return str(stain["mismatch"])
    if not stain.get("estimated"):
        return f"not estimated: {stain.get('reason', 'unknown')}"
    if stain.get("distance_degrees") is None:
        return "estimated; the model recorded no training stain to compare it with"
    where = "outside" if stain["outside_training_range"] else "within"
    return (f"{stain['distance_degrees']:.1f}° from the model's training stain, {where} the "
            f"{stain['training_range_degrees']:.1f}° its training data spans")  # fmt: skip


def _facts_table(caption: str, facts: list[list[str]]) -> str:
    rows = [[f'<th scope="row">{escape(name)}</th>', f"<td>{value}</td>"] for name, value in facts]
    return f"<table><caption>{escape(caption)}</caption><tbody>{_rows(rows)}</tbody></table>"


def slide_report_html(summary: dict[str, Any], picture_png: bytes | None) -> str:
    """The page: the verdict in words, the picture with the lesions, the lesion table, the tissue scored, the
    model's known error rates, where the slide came from, and that it is not a diagnosis."""
    verdict = summary["verdict"]
    slide = escape(summary["slide_id"])
    tissue = [["tiles scored", str(summary["patch_count"])]]
    if summary.get("tissue_area_mm2") is not None:
        tissue.insert(0, ["tissue area (mm²)", f"{summary['tissue_area_mm2']:.2f}"])
        tissue.append(["tiles kept / cut", f"{summary['tiles_kept']} / {summary['tiles_total']}"])
    tissue.append(["tiles at or above the threshold", str(summary["tumour_patch_count"])])
    qc = summary.get("qc") or {}
    if qc.get("status") in ("pass", "warn", "fail"):
        failing = f"{qc['failing_fraction']:.1%} of tiles ({qc_in_words(qc)}); not judged"
        tissue.append(["quality control", f"{escape(qc['status'])}: {escape(failing)}"])
    if stain := summary.get("stain"):
        tissue.append(["stain", escape(stain_in_words(stain))])
    source = [
        ["file", escape(str(summary.get("input_key")))],
        ["version", escape(str(summary.get("input_version")))],
        ["dropped", escape(str(summary.get("dropped_at")))],
        ["scored", escape(str(summary.get("scored_at")))],
    ]
    policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Slide report: {slide}</title><style>{_STYLE}</style></head><body>"
        f'<header><h1>Slide report: {slide}</h1><p class="disclaimer">{DISCLAIMER}</p></header><main>'
        f'<h2>Verdict</h2><p class="verdict" id="verdict">{escape(verdict_in_words(verdict))}</p>'
        f"<h2>Slide and lesions</h2>{_figure(summary, picture_png)}{_lesion_table(verdict)}"
        f"<h2>Tissue</h2>{_facts_table('Tissue scored', tissue)}"
        f"<h2>Model</h2>{_model(summary)}"
        f"<h2>Source</h2>{_facts_table('Where the slide came from', source)}"
        f'</main><footer><p class="disclaimer">{DISCLAIMER}</p></footer></body></html>\n'
    )
