"""Everything a scored slide's results hold, made in memory before any is written: the CSV, the pictures,
the QuPath GeoJSON, the lesions and verdict, and the one-page report. Pure."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pcam_pipeline.core import keys
from pcam_pipeline.scoring import slide_results
from pcam_pipeline.scoring.lesion_evidence import EvidenceRule, evidence_rule
from pcam_pipeline.scoring.lesions import Lesion, TileGrid, find_lesions, slide_verdict
from pcam_pipeline.scoring.slide_report import slide_report_html
from pcam_pipeline.wsi.results import lesion_picture, overlay_png, qupath_geojson
from pcam_pipeline.wsi.tile_qc import qc_in_words, qc_names, qc_summary
from pcam_pipeline.wsi.tiling import TilePlan


@dataclass(frozen=True)
class ScoredSlide:
    """One slide's scores and where its tiles lie: a whole-slide image's tile plan and thumbnail, or an HDF5
    slide's patch coordinates (pixels at the model's resolution, ``model_mpp``), or neither."""

    slide_id: str
    probabilities: NDArray[Any]  # calibrated
    threshold: float
    model_name: str
    plan: TilePlan | None = None
    thumbnail: bytes | None = None
    coords: NDArray[Any] | None = None
    model_mpp: float = 0.972
    raw_scores: NDArray[Any] | None = None  # the model's own outputs, before calibration
    calibration: str = "none"  # the calibration method that made ``probabilities`` from them
    false_positive_rate: float | None = None  # the model's, per tile, measured on its test split
    qc: NDArray[Any] | None = None  # each tile's QC class (``tile_qc.QC_CLASSES``); None: not checked
    max_qc_fail_fraction: float = 0.25  # MaxQcFailFraction
    stain: dict[str, Any] = field(default_factory=dict)  # the slide's stain against its model's (stain.slide_stain)

    @property
    def judged(self) -> NDArray[Any]:
        """The probabilities lesions and the verdict see: a tile that failed QC is never positive."""
        return self.probabilities if self.qc is None else np.where(self.qc > 0, 0.0, self.probabilities)

    def qc_summary(self) -> dict[str, Any]:
        return qc_summary(self.qc, self.max_qc_fail_fraction)

    @property
    def positions(self) -> NDArray[Any] | None:
        """Each tile's (x, y) as the CSV gives it: level-0 corners for a whole-slide image, else the file's."""
        return np.asarray(self.plan.coords).reshape(-1, 2) if self.plan else self.coords

    @property
    def grid(self) -> TileGrid | None:
        if self.plan:
            corners = np.asarray(self.plan.coords, dtype=np.float64).reshape(-1, 2)
            return TileGrid(corners, self.plan.tile_edge, self.plan.stride, self.plan.mpp)
        if self.coords is not None:
            edge = slide_results.PATCH_EDGE
            return TileGrid(self.coords, edge, edge, self.model_mpp)
        return None

    @cached_property
    def evidence(self) -> EvidenceRule:
        """How large a lesion must be to count on this slide (``lesion_evidence``); every one without tiles."""
        grid = self.grid
        return evidence_rule(grid.cells(), self.false_positive_rate) if grid else EvidenceRule(None, 1)

    def found_lesions(self) -> list[Lesion] | None:
        """The slide's lesions, those that count first, each part largest first: numbered so everywhere."""
        grid = self.grid
        if grid is None:
            return None
        found = find_lesions(grid, self.judged, self.threshold)
        counts = [len(lesion.tiles) >= self.evidence.minimum_tiles for lesion in found]
        return [lesion for lesion, c in zip(found, counts, strict=True) if c] + [
            lesion for lesion, c in zip(found, counts, strict=True) if not c
        ]

    def verdict(self, found: list[Lesion] | None) -> dict[str, Any]:
        qc = self.qc_summary()
        failing = (
            [f"{qc['failing_fraction']:.0%} of the tissue failed quality control (MaxQcFailFraction "
             f"{self.max_qc_fail_fraction:.0%}): {qc_in_words(qc)}"]
            if qc["status"] == "fail" else []
        )  # fmt: skip
        return slide_verdict(
            found,
            positive_tiles=int(slide_results.labels_at(self.judged, self.threshold).sum()),
            tissue_area_mm2=self.plan.tissue_area_mm2 if self.plan else None,
            grid=self.grid,
            threshold=self.threshold,
            model_name=self.model_name,
            minimum_tiles=self.evidence.minimum_tiles,
            evidence=self.evidence.to_json(),
            quality_reasons=failing + ([self.stain["mismatch"]] if self.stain.get("mismatch") else []),
        )


def result_files(scored: ScoredSlide, found: list[Lesion] | None) -> dict[str, tuple[bytes, str]]:
    """Key → (body, content type): the CSV, the heatmap (over the thumbnail for a whole-slide image) and the
    QuPath GeoJSON, as the slide has them. The report is added once the summary is known (``with_report``)."""
    slide_id, probabilities, threshold = scored.slide_id, scored.probabilities, scored.threshold
    qc = qc_names(scored.qc, probabilities.size)
    csv_body = slide_results.prediction_csv(slide_id, probabilities, scored.positions, threshold, scored.raw_scores, qc)
    files = {keys.prediction_key(slide_id, "csv"): (csv_body, "text/csv")}
    png_key = keys.prediction_key(slide_id, "png")
    if scored.plan and scored.thumbnail is not None:
        title = f"{slide_id}  (model {scored.model_name}, {scored.plan.mpp_source})"
        picture = overlay_png(_image(scored.thumbnail), scored.plan, probabilities, title, threshold, qc)
        files[png_key] = (picture, "image/png")
        document = qupath_geojson(slide_id, scored.plan, probabilities, threshold, found or [], scored.evidence, qc)
        files[keys.prediction_key(slide_id, "geojson")] = (json.dumps(document).encode(), "application/geo+json")
    elif scored.coords is not None:
        title = f"{slide_id}  (model {scored.model_name})"
        files[png_key] = (slide_results.heatmap_png(scored.coords, probabilities, title, threshold), "image/png")
    return files


def with_report(
    scored: ScoredSlide,
    found: list[Lesion] | None,
    files: dict[str, tuple[bytes, str]],
    summary: dict[str, Any],
) -> dict[str, tuple[bytes, str]]:
    """``files`` and the slide's one-page HTML report, whose picture is the thumbnail with the lesions outlined
    (the heatmap for an HDF5 slide with coordinates; none without)."""
    picture: bytes | None = None
    if scored.plan and scored.thumbnail is not None:
        out = io.BytesIO()
        counted = [lesion for lesion in found or [] if len(lesion.tiles) >= scored.evidence.minimum_tiles]
        lesion_picture(_image(scored.thumbnail), scored.plan, counted).save(out, format="PNG", optimize=True)
        picture = out.getvalue()
    elif scored.coords is not None:
        picture = files[keys.prediction_key(scored.slide_id, "png")][0]
    page = slide_report_html(summary, picture).encode()
    return {**files, keys.prediction_key(scored.slide_id, "html"): (page, "text/html; charset=utf-8")}


def _image(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))
