"""What a scored whole-slide image adds to the usual results: areas, the overlay picture, QuPath GeoJSON. Pure.

GeoJSON follows QuPath's conventions (qupath-docs, "Exporting annotations"): coordinates in full-resolution
(level-0) pixels with the origin at the top-left corner; each feature's ``properties`` carry ``objectType``
("detection" for a tile, "annotation" for a lesion), ``classification`` ({"name", "color"})
and ``measurements`` (a name → number map, as QuPath 0.4 and later write it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from shapely.geometry.base import BaseGeometry

from pcam_pipeline.scoring.lesion_evidence import EvidenceRule
from pcam_pipeline.scoring.lesions import Lesion
from pcam_pipeline.scoring.slide_results import colour_of, framed_png, labels_at
from pcam_pipeline.wsi.tiling import TilePlan

TUMOUR = {"name": "Tumor", "color": [200, 0, 0]}
NORMAL = {"name": "Normal", "color": [0, 130, 60]}
LESION_OUTLINE = (0, 0, 0)  # black: visible on the pink tissue and the white glass
LESION_PICTURE_EDGE = 640
OVERLAY_ALPHA = 110  # of 255: the tissue stays visible under the colours
QC_FAILED = (128, 128, 128)  # grey, crossed: a tile that failed quality control is not judged


def qc_class(check: str) -> dict[str, Any]:
    """QuPath's class of a tile that failed a check: "QC: blur" and so on, grey."""
    return {"name": f"QC: {check}", "color": list(QC_FAILED)}


def tile_boxes(plan: TilePlan) -> NDArray[Any]:
    """(N, 4) level-0 boxes (x0, y0, x1, y1) of the kept tiles."""
    corners = np.asarray(plan.coords, dtype=np.float64).reshape(-1, 2)
    return np.column_stack([corners, corners + plan.tile_edge])


def tumour_regions(plan: TilePlan, probabilities: NDArray[Any], threshold: float) -> BaseGeometry:
    """The union of the tumour tiles: touching and overlapping tiles merge into one region."""
    boxes = tile_boxes(plan)[labels_at(probabilities, threshold).astype(bool)]
    return shapely.union_all(shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]))


def area_mm2(geometry: BaseGeometry, plan: TilePlan) -> float:
    return float(geometry.area) * (plan.mpp / 1000) ** 2


def whole_slide_figures(plan: TilePlan, probabilities: NDArray[Any], threshold: float) -> dict[str, Any]:
    """The summary's whole-slide fields: how the slide was read and what of it is tissue and tumour."""
    return {
        "mpp": plan.mpp,
        "mpp_source": plan.mpp_source,
        "model_mpp": plan.model_mpp,
        "level": plan.slide_level,  # of the slide as dropped, also when read from a staged copy
        "level_mpp": plan.level_mpp,
        "tile_edge_level0": plan.tile_edge,
        "tile_overlap": plan.overlap,
        "min_tissue_fraction": plan.min_tissue_fraction,
        "slide_width": plan.width,
        "slide_height": plan.height,
        "openslide_origin": list(plan.openslide_origin),
        "tiles_total": plan.tiles_total,
        "tiles_kept": plan.tiles_kept,
        "tiles_dropped": plan.tiles_total - plan.tiles_kept,
        "tissue_area_mm2": round(plan.tissue_area_mm2, 4),
        "tumour_area_mm2": round(area_mm2(tumour_regions(plan, probabilities, threshold), plan), 4),
    }


def _ring(coordinates: Any) -> list[Any]:
    return [[round(x, 2), round(y, 2)] for x, y in coordinates]


def _polygons(geometry: BaseGeometry) -> list[list[Any]]:
    """GeoJSON Polygon coordinates (outer ring, then holes) of each part of a (Multi)Polygon."""
    parts = getattr(geometry, "geoms", [geometry])
    return [
        [_ring(part.exterior.coords), *(_ring(hole.coords) for hole in part.interiors)]
        for part in parts
        if not part.is_empty
    ]


def qupath_geojson(
    slide_id: str,
    plan: TilePlan,
    probabilities: NDArray[Any],
    threshold: float,
    lesions: list[Lesion],
    evidence: EvidenceRule | None = None,
    qc: list[str] | None = None,
) -> dict[str, Any]:
    """A FeatureCollection QuPath imports: one detection per tile (classed "QC: <check>" if it failed quality
    control), then one annotation per lesion (numbered as in the summary, largest first; a group below the
    evidence rule is named "not counted")."""
    minimum = evidence.minimum_tiles if evidence else 1
    labels = labels_at(probabilities, threshold)
    boxes = tile_boxes(plan)
    checks = qc or ["ok"] * len(boxes)
    features = []
    for index, ((x0, y0, x1, y1), probability, label, check) in enumerate(
        zip(boxes.tolist(), probabilities.tolist(), labels.tolist(), checks, strict=True)
    ):
        judged = check in ("ok", "unchecked")
        ring = _ring([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "objectType": "detection",
                "name": f"{slide_id} tile {index}",
                "classification": (TUMOUR if label else NORMAL) if judged else qc_class(check),
                "measurements": {"tumor_probability": round(probability, 6), "patch_index": index},
            },
        })  # fmt: skip
    for number, lesion in enumerate(lesions, start=1):
        lesion_boxes = boxes[list(lesion.tiles)]
        region = shapely.union_all(
            shapely.box(lesion_boxes[:, 0], lesion_boxes[:, 1], lesion_boxes[:, 2], lesion_boxes[:, 3])
        )
        polygons = _polygons(region)
        geometry = (
            {"type": "Polygon", "coordinates": polygons[0]}
            if len(polygons) == 1
            else {"type": "MultiPolygon", "coordinates": polygons}
        )
        features.append({
            "type": "Feature",
            "geometry": geometry,
            "properties": {
                "objectType": "annotation",
                "name": f"{slide_id} lesion {number} ({lesion.category})"
                + ("" if len(lesion.tiles) >= minimum else ", not counted"),
                "classification": TUMOUR,
                "measurements": {
                    "lesion_number": number,
                    "greatest_dimension_mm": round(lesion.greatest_dimension_mm, 4),
                    "area_mm2": round(lesion.area_mm2, 6),
                    "tile_count": len(lesion.tiles),
                    "max_probability": round(lesion.max_probability, 6),
                },
            },
        })  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


def lesion_picture(thumbnail: Image.Image, plan: TilePlan, lesions: list[Lesion]) -> Image.Image:
    """The slide's thumbnail, at least LESION_PICTURE_EDGE pixels wide or high so that numbers can be read,
    with each lesion's box outlined and numbered as in the summary."""
    zoom = max(1.0, LESION_PICTURE_EDGE / max(thumbnail.size))
    size = (round(thumbnail.width * zoom), round(thumbnail.height * zoom))
    picture = thumbnail.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=16)
    scale_x, scale_y = (downsample / zoom for downsample in plan.thumbnail_downsample)
    for number, lesion in enumerate(lesions, start=1):
        x0, y0, x1, y1 = lesion.bounding_box
        box = [x0 / scale_x - 3, y0 / scale_y - 3, x1 / scale_x + 3, y1 / scale_y + 3]
        draw.rectangle(box, outline=LESION_OUTLINE, width=2)
        draw.text((box[0], max(0, box[1] - 19)), str(number), fill=LESION_OUTLINE, font=font)
    return picture


def overlay_png(
    thumbnail: Image.Image,
    plan: TilePlan,
    probabilities: NDArray[Any],
    title: str,
    threshold: float,
    qc: list[str] | None = None,
) -> bytes:
    """The tumour probability of each kept tile laid over the slide's thumbnail, with the colour bar; a tile
    that failed quality control is grey and crossed."""
    picture = thumbnail.convert("RGBA")
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    scale_x, scale_y = plan.thumbnail_downsample
    checks = qc or ["ok"] * len(probabilities)
    tiles = zip(tile_boxes(plan).tolist(), colour_of(probabilities).tolist(), checks, strict=True)
    for (x0, y0, x1, y1), colour, check in tiles:
        box = [x0 / scale_x, y0 / scale_y, max(x0 / scale_x, x1 / scale_x - 1), max(y0 / scale_y, y1 / scale_y - 1)]
        failed = check not in ("ok", "unchecked")
        draw.rectangle(box, fill=(*(QC_FAILED if failed else colour), OVERLAY_ALPHA))
        if failed:
            draw.line(box, fill=(*QC_FAILED, 255))
            draw.line([box[0], box[3], box[2], box[1]], fill=(*QC_FAILED, 255))
    merged = Image.alpha_composite(picture, layer).convert("RGB")
    return framed_png(merged, probabilities, title, threshold)
