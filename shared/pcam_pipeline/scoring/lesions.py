"""Lesions and the slide's verdict: positive tiles grouped, measured and staged as lymph-node reports stage
metastases. Pure.

A lesion is a group of positive tiles that touch, side or corner, on the tile grid. Its greatest dimension is
the greatest distance between the centres of its tiles, and at least one tile edge: a lesion of one tile is
reported as at most one tile edge, and any lesion's measure is within about one tile edge of the truth (the
tile edge is the measure's resolution). The category follows the AJCC 8th edition's pN rules for the largest
deposit: isolated tumour cells up to 0.2 mm, micrometastasis above 0.2 mm up to 2 mm, macrometastasis above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from pcam_pipeline.scoring.lesion_extent import extent_px

ITC_MAX_MM = 0.2
MICROMETASTASIS_MAX_MM = 2.0
# Below this much tissue a negative call would rest on too little of the node to mean anything.
MIN_TISSUE_MM2 = 0.5
_NEIGHBOURS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


@dataclass(frozen=True)
class TileGrid:
    """Where each scored tile lies: its top-left corner in level-0 pixels, the tiles' edge and the grid's
    step (both level-0 pixels), and the level-0 pixel size."""

    corners: NDArray[Any]  # (N, 2) x, y
    edge: float
    stride: float
    mpp: float

    @property
    def edge_mm(self) -> float:
        return self.edge * self.mpp / 1000

    def cells(self, tiles: Any = slice(None)) -> list[tuple[int, int]]:
        """The grid cells (column, row) of ``tiles`` (all by default)."""
        return [(round(x / self.stride), round(y / self.stride)) for x, y in self.corners[tiles].astype(float).tolist()]


@dataclass(frozen=True)
class Lesion:
    tiles: tuple[int, ...]  # patch indices, ascending
    greatest_dimension_mm: float
    area_mm2: float
    mean_probability: float
    max_probability: float
    bounding_box: tuple[int, int, int, int]  # level-0 x0, y0, x1, y1
    centroid: tuple[int, int]  # level-0 x, y

    @property
    def category(self) -> str:
        return category_of(self.greatest_dimension_mm)

    def to_json(self, number: int, counted: bool = True) -> dict[str, Any]:
        return {
            "number": number,
            "counted": counted,  # large enough not to be the model's own false positives (lesion_evidence)
            "category": self.category,
            "greatest_dimension_mm": round(self.greatest_dimension_mm, 3),
            "area_mm2": round(self.area_mm2, 4),
            "tile_count": len(self.tiles),
            "mean_probability": round(self.mean_probability, 6),
            "max_probability": round(self.max_probability, 6),
            "bounding_box": list(self.bounding_box),
            "centroid": list(self.centroid),
        }


def category_of(greatest_dimension_mm: float) -> str:
    if greatest_dimension_mm <= ITC_MAX_MM:
        return "itc"
    if greatest_dimension_mm <= MICROMETASTASIS_MAX_MM:
        return "micrometastasis"
    return "macrometastasis"


def connected_groups(cells: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Indices into ``cells`` grouped by 8-connectivity (cells that share a side or a corner)."""
    where = {cell: index for index, cell in enumerate(cells)}
    seen: set[int] = set()
    groups = []
    for start in range(len(cells)):
        if start in seen:
            continue
        seen.add(start)
        group, frontier = [], [start]
        while frontier:
            index = frontier.pop()
            group.append(index)
            x, y = cells[index]
            for dx, dy in _NEIGHBOURS:
                neighbour = where.get((x + dx, y + dy))
                if neighbour is not None and neighbour not in seen:
                    seen.add(neighbour)
                    frontier.append(neighbour)
        groups.append(sorted(group))
    return groups


def measure(grid: TileGrid, tiles: list[int], probabilities: NDArray[Any]) -> Lesion:
    corners = grid.corners[tiles].astype(np.float64)
    boxes = shapely.box(corners[:, 0], corners[:, 1], corners[:, 0] + grid.edge, corners[:, 1] + grid.edge)
    region = shapely.union_all(boxes)
    x0, y0, x1, y1 = region.bounds
    scores = probabilities[tiles]
    return Lesion(
        tiles=tuple(tiles),
        greatest_dimension_mm=extent_px(grid.cells(tiles), corners + grid.edge / 2, grid.edge) * grid.mpp / 1000,
        area_mm2=float(region.area) * (grid.mpp / 1000) ** 2,
        mean_probability=float(scores.mean()),
        max_probability=float(scores.max()),
        bounding_box=(round(x0), round(y0), round(x1), round(y1)),
        centroid=(round(region.centroid.x), round(region.centroid.y)),
    )


def find_lesions(grid: TileGrid, probabilities: NDArray[Any], threshold: float) -> list[Lesion]:
    """The lesions of the tiles at or above ``threshold``, largest first (ties: the larger area, then the most
    probable first)."""
    positive = np.flatnonzero(probabilities >= threshold)
    groups = connected_groups(grid.cells(positive))
    lesions = [measure(grid, positive[group].tolist(), probabilities) for group in groups]
    return sorted(
        lesions,
        key=lambda lesion: (-lesion.greatest_dimension_mm, -lesion.area_mm2, -lesion.max_probability, lesion.tiles),
    )


def slide_verdict(
    lesions: list[Lesion] | None,
    *,
    positive_tiles: int,
    tissue_area_mm2: float | None,
    grid: TileGrid | None,
    threshold: float,
    model_name: str,
    minimum_tiles: int = 1,
    evidence: dict[str, Any] | None = None,
    quality_reasons: list[str] | None = None,
) -> dict[str, Any]:
    """The slide-level call: the category of the largest lesion of at least ``minimum_tiles`` tiles (the
    evidence rule, ``lesion_evidence``), or why none can be given. A negative call needs enough tissue; a
    lesion found on a small fragment still counts. Smaller groups are listed, not counted.

    ``lesions`` is None when the slide has no tile positions (an HDF5 file without ``coords``): positive tiles
    then cannot be grouped or measured, and only a slide without any is called negative."""
    counted = [lesion for lesion in lesions or [] if len(lesion.tiles) >= minimum_tiles]
    reasons = list(quality_reasons or [])  # too much of the slide failed quality control
    if not counted and tissue_area_mm2 is not None and tissue_area_mm2 < MIN_TISSUE_MM2:
        reasons.append(
            f"too little tissue: {tissue_area_mm2:.2f} mm² was scored, at least {MIN_TISSUE_MM2} mm² is needed"
        )
    if lesions is None and positive_tiles:
        reasons.append(
            f"{positive_tiles} tiles are at or above the threshold, but the file gives no tile positions "
            "(no 'coords'): lesions cannot be grouped or measured"
        )
    largest = counted[0] if counted else None
    category = "indeterminate" if reasons else (largest.category if largest else "negative")
    listed = [lesion.to_json(n, len(lesion.tiles) >= minimum_tiles) for n, lesion in enumerate(lesions or [], 1)]
    return {
        "category": category,
        "largest_lesion_mm": round(largest.greatest_dimension_mm, 3) if largest else None,
        "lesion_count": len(counted) if lesions is not None else None,
        "lesions": listed,
        "evidence": {**(evidence or {}), "groups_below_minimum": len(lesions or []) - len(counted)},
        "measurement_resolution_mm": round(grid.edge_mm, 4) if grid else None,
        "measurement_note": measurement_note(grid),
        "operating_threshold": threshold,
        "model_name": model_name,
        "reasons": reasons,
    }


def verdict_in_words(verdict: dict[str, Any]) -> str:
    """One sentence a pathologist reads first."""
    category, largest = verdict["category"], verdict["largest_lesion_mm"]
    count, below = verdict["lesion_count"], verdict["evidence"]["groups_below_minimum"]
    if category == "indeterminate":
        return "Indeterminate: " + "; ".join(verdict["reasons"]) + "."
    if category == "negative" and below:
        smaller = f"{below} small group{'s' if below != 1 else ''} of positive tiles"
        return f"Negative: {smaller}, no larger than the model's own false positives make (not counted)."
    if category == "negative":
        return "Negative: no tile reached the operating threshold."
    name = {"itc": "Isolated tumour cells", "micrometastasis": "Micrometastasis", "macrometastasis": "Macrometastasis"}
    lesions = f"{count} lesion{'s' if count != 1 else ''} found"
    return f"{name[category]}: the largest lesion measures {largest:.2f} mm ({lesions})."


def measurement_note(grid: TileGrid | None) -> str:
    if grid is None:
        return "no tile positions: tile counts only, no lesions"
    return (
        f"lesions are measured on the tile grid, between tile centres: sizes are within about one tile edge "
        f"({grid.edge_mm * 1000:.0f} µm) "
        "of the truth, and a lesion of one tile is at most one tile edge"
    )
