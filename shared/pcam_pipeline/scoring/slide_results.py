"""What downstream systems get for a scored slide: the prediction CSV, its summary and a heatmap. Pure."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

# tumor_probability is calibrated (the model's calibration map); raw_score is the model's own output; qc is the
# tile's quality check (wsi/tile_qc.py): "ok" or the first check it failed.
CSV_COLUMNS = ("slide_id", "patch_index", "coord_x", "coord_y", "tumor_probability", "label", "raw_score", "qc")
CSV_HEADER = ",".join(CSV_COLUMNS)
# A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV Injection"); one starting
# with the quote is escaped too, so that removing one leading quote always gives back the id.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
PATCH_EDGE = 96
MAX_HEATMAP_CELLS = 1024  # a side: about 2,000 pixels and 3 MB, whatever the slide's positions span
# Viridis-like anchors (dark blue → green → yellow): readable in grey scale and by most colour-blind readers.
_COLOUR_ANCHORS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
    dtype=float,
)


def labels_at(probabilities: NDArray[Any], threshold: float) -> NDArray[Any]:
    return (probabilities >= threshold).astype(np.uint8)


def spreadsheet_text(text: str) -> str:
    """Text a spreadsheet shows as text: a leading quote before a formula start (OWASP, ASVS 1.2.10)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def prediction_csv(
    slide_id: str,
    probabilities: NDArray[Any],
    coords: NDArray[Any] | None,
    threshold: float,
    raw_scores: NDArray[Any] | None = None,
    qc: list[str] | None = None,
) -> bytes:
    """One row per patch in patch order; coords empty when the slide has none; ``raw_scores`` (the model's
    output before calibration) are the probabilities themselves when not given; ``qc`` is "unchecked" then.

    RFC 4180 (the csv module): a slide id with commas, quotes or line breaks is quoted, so every row
    keeps eight fields for any CSV reader. The id is the only text cell; numbers never start with a sign."""
    slide_id = spreadsheet_text(slide_id)
    labels = labels_at(probabilities, threshold)
    raw = (probabilities if raw_scores is None else raw_scores).tolist()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    checks = qc if qc is not None else ["unchecked"] * probabilities.size
    rows = zip(probabilities.tolist(), labels.tolist(), raw, checks, strict=True)
    for index, (probability, label, score, check) in enumerate(rows):
        x, y = ("", "") if coords is None else (int(coords[index, 0]), int(coords[index, 1]))
        writer.writerow((slide_id, index, x, y, f"{probability:.6f}", label, f"{score:.6f}", check))
    return text.getvalue().encode()


def summary_figures(probabilities: NDArray[Any], threshold: float) -> dict[str, Any]:
    tumour = int(labels_at(probabilities, threshold).sum())
    return {
        "patch_count": int(probabilities.size),
        "tumour_patch_count": tumour,
        "tumour_fraction": tumour / probabilities.size if probabilities.size else 0.0,
        "max_probability": float(probabilities.max()) if probabilities.size else 0.0,
        "mean_probability": float(probabilities.mean()) if probabilities.size else 0.0,
        "threshold": threshold,
    }


def colour_of(probabilities: NDArray[Any]) -> NDArray[Any]:
    """RGB (uint8) for each probability in [0, 1], interpolated between the colour anchors."""
    position = np.clip(probabilities, 0, 1) * (len(_COLOUR_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_COLOUR_ANCHORS) - 2)
    fraction = (position - low)[..., None]
    colours: NDArray[Any] = (_COLOUR_ANCHORS[low] * (1 - fraction) + _COLOUR_ANCHORS[low + 1] * fraction).round()
    return colours.astype(np.uint8)


def heatmap_png(coords: NDArray[Any], probabilities: NDArray[Any], title: str, threshold: float) -> bytes:
    """Tumour probability laid out at the patch positions, with a colour bar a pathologist can read.

    At most MAX_HEATMAP_CELLS cells a side, whatever the positions span: patches far apart share a cell,
    which shows the highest probability among them."""
    columns = np.round(coords[:, 0] / PATCH_EDGE).astype(np.int64)
    rows = np.round(coords[:, 1] / PATCH_EDGE).astype(np.int64)
    columns -= columns.min()
    rows -= rows.min()
    step = max(1, -(-(max(int(columns.max()), int(rows.max())) + 1) // MAX_HEATMAP_CELLS))
    columns, rows = columns // step, rows // step
    grid_w, grid_h = int(columns.max()) + 1, int(rows.max()) + 1
    cell = int(max(2, min(24, 720 // max(grid_w, grid_h))))
    highest = np.full((grid_h, grid_w), -1.0)
    np.maximum.at(highest, (rows, columns), probabilities)
    tiles = np.full((grid_h, grid_w, 3), 235, dtype=np.uint8)  # light grey: no patch here (background)
    scored = highest >= 0
    tiles[scored] = colour_of(highest[scored])
    picture = Image.fromarray(tiles).resize((grid_w * cell, grid_h * cell), Image.Resampling.NEAREST)
    return framed_png(picture, probabilities, title, threshold)


def framed_png(picture: Image.Image, probabilities: NDArray[Any], title: str, threshold: float) -> bytes:
    """A map of the slide with a title, the share of patches at or above the threshold, and the colour bar."""
    map_w, map_h = picture.size
    margin, bar_w, top = 20, 24, 60
    width = max(map_w + 3 * margin + bar_w + 60, 420)
    height = max(map_h + top + margin + 40, 260)
    image = Image.new("RGB", (width, height), "white")
    image.paste(picture, (margin, top))
    draw = ImageDraw.Draw(image)
    draw.rectangle([margin - 1, top - 1, margin + map_w, top + map_h], outline="black")
    tumour = int(labels_at(probabilities, threshold).sum())
    draw.text((margin, 12), title, fill="black")
    draw.text(
        (margin, 30),
        f"{probabilities.size} patches, {tumour} at or above {threshold:.2f} ({tumour / probabilities.size:.1%})",
        fill="black",
    )
    bar_x, bar_h = margin * 2 + map_w, max(map_h, 160)
    ramp = colour_of(np.linspace(1, 0, bar_h))[:, None, :].repeat(bar_w, axis=1)
    image.paste(Image.fromarray(ramp), (bar_x, top))
    draw.rectangle([bar_x - 1, top - 1, bar_x + bar_w, top + bar_h], outline="black")
    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + round((1 - value) * (bar_h - 1))
        draw.line([bar_x + bar_w, y, bar_x + bar_w + 4, y], fill="black")
        draw.text((bar_x + bar_w + 7, y - 6), f"{value:.2f}", fill="black")
    threshold_y = top + round((1 - threshold) * (bar_h - 1))
    draw.line([bar_x - 4, threshold_y, bar_x + bar_w, threshold_y], fill=(200, 0, 0), width=2)
    draw.text((bar_x - 2, top + bar_h + 6), "tumour probability", fill="black")
    draw.text((bar_x - 2, top + bar_h + 20), "red line: threshold", fill=(200, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
