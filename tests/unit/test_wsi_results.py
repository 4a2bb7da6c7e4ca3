"""A whole-slide image's results: tumour areas (the union of tiles), the overlay picture and the QuPath
GeoJSON document."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import shapely
from PIL import Image

from pcam_pipeline.scoring.lesions import TileGrid, find_lesions
from pcam_pipeline.wsi.results import qupath_geojson as geojson_with_lesions
from pcam_pipeline.wsi.results import whole_slide_figures
from tests.picture_text import text_positions
from tests.wsi_files import plan_of


def qupath_geojson(slide_id, plan, probabilities, threshold):
    grid = TileGrid(np.asarray(plan.coords, float), plan.tile_edge, plan.stride, plan.mpp)
    lesions = find_lesions(grid, probabilities, threshold)
    return geojson_with_lesions(slide_id, plan, probabilities, threshold, lesions)


def test_tumour_area_is_the_union_of_tumour_tiles_also_when_they_overlap():
    plan = plan_of([[0, 0], [50, 0], [100, 0], [500, 500]], overlap=0.5)
    figures = whole_slide_figures(plan, np.array([0.9, 0.8, 0.7, 0.1]), threshold=0.5)
    # Three tiles of 100 px stepping by 50 cover 200 x 100 px; at 0.5 µm/px that is 100 x 50 µm.
    assert figures["tumour_area_mm2"] == pytest.approx(200 * 100 * 0.25 / 1e6)
    assert figures["tiles_kept"] == 4 and figures["tiles_dropped"] == 96


def test_geojson_has_a_detection_per_tile_and_a_lesion_per_group_of_touching_tumour_tiles_in_level0_pixels():
    plan = plan_of([[0, 0], [100, 0], [400, 400], [0, 100]])
    probabilities = np.array([0.9, 0.8, 0.2, 0.6])
    document = json.loads(json.dumps(qupath_geojson('node, "7"', plan, probabilities, 0.5)))
    tiles = [f for f in document["features"] if f["properties"]["objectType"] == "detection"]
    regions = [f for f in document["features"] if f["properties"]["objectType"] == "annotation"]
    assert [t["geometry"]["coordinates"][0][0] for t in tiles] == [[0, 0], [100, 0], [400, 400], [0, 100]]
    assert [t["properties"]["classification"]["name"] for t in tiles] == ["Tumor", "Tumor", "Normal", "Tumor"]
    assert tiles[2]["properties"]["measurements"]["tumor_probability"] == pytest.approx(0.2)
    (region,) = regions  # the three touching tumour tiles merge into one L-shaped region
    shape = shapely.geometry.shape(region["geometry"])
    assert shape.is_valid and shape.area == pytest.approx(3 * 100 * 100)
    assert region["properties"]["measurements"]["area_mm2"] == pytest.approx(3 * 100 * 100 * 0.25 / 1e6)


def test_a_tumour_ring_around_a_normal_tile_is_one_lesion_with_a_hole():
    ring = [[x, y] for y in (0, 100, 200) for x in (0, 100, 200)]
    probabilities = np.array([0.9] * 4 + [0.1] + [0.9] * 4)  # the centre tile is normal
    document = qupath_geojson("s", plan_of(ring), probabilities, 0.5)
    (region,) = [f for f in document["features"] if f["properties"]["objectType"] == "annotation"]
    outer, hole = region["geometry"]["coordinates"]
    assert shapely.Polygon(outer).area == 300 * 300 and shapely.Polygon(hole).area == 100 * 100
    assert region["properties"]["measurements"]["area_mm2"] == pytest.approx(8 * 100 * 100 * 0.25 / 1e6)


def test_the_overlay_colours_scored_tiles_over_the_thumbnail_and_leaves_the_rest():
    from pcam_pipeline.scoring.slide_results import colour_of
    from pcam_pipeline.wsi.results import OVERLAY_ALPHA, overlay_png

    thumbnail = Image.new("RGB", (100, 100), (240, 240, 240))
    plan = plan_of([[0, 0], [500, 500]])  # thumbnail pixels 0-9 and 50-59 (10 level-0 px per thumbnail px)
    png = overlay_png(thumbnail, plan, np.array([0.0, 1.0]), "title", 0.5)
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    left, top = 20, 60  # where framed_png puts the map

    def blended(probability: float) -> np.ndarray:
        colour = colour_of(np.array([probability]))[0].astype(int)
        return (colour * OVERLAY_ALPHA + 240 * (255 - OVERLAY_ALPHA)) / 255

    assert np.abs(picture[top + 5, left + 5] - blended(0.0)).max() <= 2
    assert np.abs(picture[top + 55, left + 55] - blended(1.0)).max() <= 2
    assert (picture[top + 30, left + 30] == 240).all() and (picture[top + 60, left + 60] == 240).all()
    assert text_positions(png, "tumour probability")


def test_whole_slide_figures_say_how_the_slide_was_read():
    plan = plan_of([[0, 0]])
    figures = whole_slide_figures(plan, np.array([0.2]), 0.5)
    assert figures == {
        "mpp": 0.5, "mpp_source": "test", "model_mpp": 0.972, "level": 0, "level_mpp": 0.5,
        "tile_edge_level0": 100.0, "tile_overlap": 0.0,
        "min_tissue_fraction": 0.5, "slide_width": 1000,
        "slide_height": 1000, "openslide_origin": [0, 0], "tiles_total": 100, "tiles_kept": 1,
        "tiles_dropped": 99, "tissue_area_mm2": 0.1,
        "tumour_area_mm2": 0.0,
    }  # fmt: skip
    staged = whole_slide_figures(replace(plan, vendor="dicom", first_level=2, level=1), np.array([0.2]), 0.5)
    assert staged["level"] == 3, "the level of the slide as dropped, not of its staged copy"


def test_the_geojson_document_in_full():
    plan = plan_of([[0, 0], [100, 0]], edge=100.123)
    document = qupath_geojson("node 7", plan, np.array([0.25, 0.875]), 0.5)
    tumour, normal = {"name": "Tumor", "color": [200, 0, 0]}, {"name": "Normal", "color": [0, 130, 60]}

    def square(x, y, edge=100.12):
        return [[x, y], [x + edge, y], [x + edge, y + edge], [x, y + edge], [x, y]]

    assert json.loads(json.dumps(document)) == {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(0, 0)]},
             "properties": {"objectType": "detection", "name": "node 7 tile 0", "classification": normal,
                            "measurements": {"tumor_probability": 0.25, "patch_index": 0}}},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(100, 0)]},
             "properties": {"objectType": "detection", "name": "node 7 tile 1", "classification": tumour,
                            "measurements": {"tumor_probability": 0.875, "patch_index": 1}}},
            {"type": "Feature",
             "geometry": {"type": "Polygon", "coordinates": [[[200.12, 0.0], [200.12, 100.12], [100.0, 100.12],
                                                              [100.0, 0.0], [200.12, 0.0]]]},
             "properties": {"objectType": "annotation", "name": "node 7 lesion 1 (itc)", "classification": tumour,
                            "measurements": {"lesion_number": 1, "greatest_dimension_mm": 0.0501,
                                             "area_mm2": 0.002506, "tile_count": 1, "max_probability": 0.875}}},
        ],
    }  # fmt: skip


def test_two_separate_lesions_are_numbered_and_each_keeps_its_area():
    plan = plan_of([[0, 0], [500, 500]])
    document = qupath_geojson("s", plan, np.array([0.8, 0.9]), 0.5)
    regions = [f["properties"] for f in document["features"] if f["properties"]["objectType"] == "annotation"]
    assert [r["name"] for r in regions] == ["s lesion 1 (itc)", "s lesion 2 (itc)"]
    assert [r["measurements"]["max_probability"] for r in regions] == [0.9, 0.8], "equal sizes: the surer first"
    assert [r["measurements"]["area_mm2"] for r in regions] == [0.0025, 0.0025]
    assert whole_slide_figures(plan, np.array([0.9, 0.9]), 0.5)["tumour_area_mm2"] == 0.005


def test_each_tile_is_coloured_exactly_over_its_own_thumbnail_pixels():
    from pcam_pipeline.wsi.results import overlay_png

    plan = plan_of([[100, 200]])  # thumbnail pixels x 10-19, y 20-29
    png = overlay_png(Image.new("RGB", (60, 60), (240, 240, 240)), plan, np.array([1.0]), "t", 0.5)
    coloured = (np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[60:120, 20:80] != 240).any(axis=2)
    rows, columns = np.nonzero(coloured)
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (20, 29, 10, 19)


def test_the_lesion_picture_outlines_each_lesion_where_it_lies_on_a_readable_thumbnail():
    from pcam_pipeline.wsi.results import LESION_OUTLINE, LESION_PICTURE_EDGE, lesion_picture

    plan = plan_of([[100, 100], [200, 100], [800, 800]])  # 10 level-0 px per thumbnail pixel
    grid = TileGrid(np.asarray(plan.coords, float), plan.tile_edge, plan.stride, plan.mpp)
    lesions = find_lesions(grid, np.array([0.9, 0.9, 0.1]), 0.5)
    picture = lesion_picture(Image.new("RGB", (100, 50), "white"), plan, lesions)
    assert picture.size == (LESION_PICTURE_EDGE, LESION_PICTURE_EDGE // 2)
    pixels = np.asarray(picture)
    zoom = LESION_PICTURE_EDGE / 100 / 10  # picture pixels per level-0 pixel
    left, top, right, bottom = (round(v * zoom) for v in (100, 100, 300, 200))
    assert (pixels[(top + bottom) // 2, left - 3] == LESION_OUTLINE).all(), "the box's left side"
    assert (pixels[top - 3, (left + right) // 2] == LESION_OUTLINE).all(), "its top"
    assert (pixels[(top + bottom) // 2, (left + right) // 2] == 255).all(), "inside stays the slide"
    assert (pixels[top - 12 : top - 4, left - 3 : left + 10] < 128).any(), "its number above it"
