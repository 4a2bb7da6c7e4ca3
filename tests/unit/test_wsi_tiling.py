"""Where a whole-slide image is cut: the level read, the tissue mask (Otsu, pen ink, morphology), the grid of
whole tiles, tissue fractions, single-level slides."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.reader import Level
from pcam_pipeline.wsi.tiling import (
    TilePlan,
    TilingSettings,
    choose_level,
    plan_tiles,
    read_patch,
    tile_grid,
    tissue_fractions,
)
from pcam_pipeline.wsi.tissue import otsu_threshold, pen_ink
from tests.wsi_files import open_slide, plan_of, tiny_pyramid


def test_tiles_are_on_tissue_at_the_models_resolution_and_never_on_the_pen(slide_file):
    path, truth = slide_file
    with open_slide(path) as slide:
        plan, thumbnail = plan_tiles(slide, 0.486, "test", TilingSettings())
        edge = round(truth.cell_edge)
        corners = np.array(plan.coords)
        assert plan.level == 1 and plan.tile_edge == pytest.approx(edge)
        assert truth.tissue[corners[:, 1] // edge, corners[:, 0] // edge].all()
        assert plan.tiles_kept >= 0.9 * truth.tissue.sum()
        assert plan.tissue_area_mm2 == pytest.approx(truth.area_mm2(truth.tissue), rel=0.1)
        x, y = plan.coords[0]
        patch = read_patch(slide, plan, x, y)
        assert patch.shape == (96, 96, 3)
        assert np.array_equal(patch, slide.read_region(1, x // 2, y // 2, 96, 96)), "read at level 1, not resampled"
        assert thumbnail.size == (slide.levels[-1].width, slide.levels[-1].height)


def test_overlap_steps_tiles_by_a_fraction_of_a_tile(slide_file):
    path, _ = slide_file
    with open_slide(path) as slide:
        plain, _ = plan_tiles(slide, 0.486, "test", TilingSettings())
        half, _ = plan_tiles(slide, 0.486, "test", TilingSettings(overlap=0.5))
    assert half.stride == pytest.approx(96) and half.tiles_kept > 3 * plain.tiles_kept


def test_the_level_read_is_the_coarsest_at_least_as_fine_as_the_model():
    levels = [Level(4000, 4000, d, 256, 256) for d in (1, 4, 16)]
    assert choose_level(levels, 0.243, 0.972) == 1  # Camelyon16: level 0 downsampled 4x is exactly 10x
    assert choose_level(levels, 0.25, 0.972) == 0  # 4x would be 1.0 µm/px, coarser: read level 0, resample
    assert choose_level(levels, 1.0, 0.972) == 0  # 3 % coarser than the model: tolerated
    with pytest.raises(InvalidInput, match="coarser resolution than the model"):
        choose_level(levels, 2.0, 0.972)


def test_otsu_splits_two_populations_and_pen_ink_is_not_stain():
    values = np.concatenate([np.full(500, 10), np.full(500, 200)]).astype(np.uint8)
    assert 10 <= otsu_threshold(values) < 200
    colours = np.array([[[35, 70, 185], [40, 150, 80], [20, 20, 20], [70, 40, 125], [236, 170, 205], [125, 70, 150]]])
    assert pen_ink(colours.astype(np.uint8)).tolist() == [[True, True, True, False, False, False]]


def test_tile_grid_and_tissue_fractions():
    grid = tile_grid(1000, 500, 200, 200)
    assert grid.tolist()[:3] == [[0, 0], [200, 0], [400, 0]] and len(grid) == 5 * 2
    mask = np.zeros((50, 100), bool)
    mask[:, :30] = True  # the left 300 level-0 pixels at downsample 10
    fractions = tissue_fractions(mask, grid, 200, (10, 10))
    assert fractions[:3].tolist() == [1.0, 0.5, 0.0]


def test_a_tile_plan_survives_its_json_round_trip():
    plan = plan_of([[0, 0], [100, 0]], edge=373.3, overlap=0.25)
    assert TilePlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_a_slide_too_coarse_for_the_model_is_refused_in_plain_words():
    levels = [Level(4000, 4000, 1, 256, 256)]
    assert choose_level(levels, 0.972 * 1.1, 0.972) == 0, "10 % coarser is still read"
    with pytest.raises(InvalidInput) as refused:
        choose_level(levels, 2.0, 0.972)
    assert refused.value.problem == "the slide was scanned at a coarser resolution than the model was trained at"
    assert refused.value.expected == "at most 1.069 µm per pixel (ModelMicronsPerPixel 0.972)"
    assert refused.value.found == "2 µm per pixel"


def test_tissue_is_found_on_the_coarsest_level_with_eight_mask_pixels_per_tile_edge():
    from pcam_pipeline.wsi.tiling import choose_mask_read

    levels = [Level(32768 // d, 32768 // d, d, 256, 256) for d in (1, 2, 4, 8, 16, 32, 64)]
    assert choose_mask_read(levels, 192) == (4, 1)  # 192 / 16 = 12 mask pixels; 192 / 32 = 6 too few
    assert choose_mask_read(levels, 256) == (5, 1)  # exactly 8 is enough
    small = [Level(4096 // d, 4096 // d, d, 256, 256) for d in (1, 2, 4)]
    assert choose_mask_read(small, 4) == (0, 1)  # tiles smaller than any level allows: level 0
    assert choose_mask_read([Level(8000, 8000, 1, 256, 256)], 4) == (0, 1)  # 64 megapixels: the most read whole
    with pytest.raises(InvalidInput) as refused:
        choose_mask_read([Level(8000, 8001, 1, 256, 256)], 4)  # averaging 2 x 2 leaves 2 pixels per tile edge
    assert refused.value.problem == "the slide is too large to find tissue on at its tiles' size"
    assert refused.value.expected == "at most 64 megapixels with 8 per tile edge"
    assert refused.value.found == "level 0 of 8,000 x 8,001 for tiles of 4 pixels"


def _otsu_by_brute_force(values: np.ndarray) -> int:
    best, best_t = -1.0, 0
    for t in range(256):
        low, high = values[values <= t].astype(float), values[values > t].astype(float)
        if low.size and high.size:
            between = low.size * high.size * (low.mean() - high.mean()) ** 2
            if between > best + 1e-6:
                best, best_t = between, t
    return best_t


@pytest.mark.parametrize("seed", range(6))
def test_otsu_matches_the_textbook_definition(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(rng.uniform(5, 80), 8, 700), rng.normal(rng.uniform(120, 250), 15, 300)])
    values = np.append(values.clip(0, 255).astype(np.uint8), [0, 255])
    assert otsu_threshold(values) == _otsu_by_brute_force(values)
    assert otsu_threshold(np.full(10, 7, np.uint8)) == 0, "one value: nothing to split"


def test_the_overlay_thumbnail_is_at_most_1600_pixels_a_side():
    from pcam_pipeline.wsi.tiling import thumbnail_of

    assert thumbnail_of(np.zeros((1000, 4000, 3), np.uint8)).size == (1600, 400)
    assert thumbnail_of(np.zeros((100, 200, 3), np.uint8)).size == (200, 100), "never enlarged"


def test_faint_glass_is_not_tissue_however_otsu_splits_it():
    rng = np.random.default_rng(0)
    glass = np.full((64, 64, 3), 240, np.int16) + rng.integers(-3, 4, (64, 64, 3))
    glass[:, 32:, 0] -= 12  # two shades of glass, both nearly grey (saturation < 20/255)
    from pcam_pipeline.wsi.tissue import tissue_mask

    assert not tissue_mask(glass.clip(0, 255).astype(np.uint8)).any()


def test_the_grid_holds_whole_tiles_only():
    assert tile_grid(200, 200, 200, 200).tolist() == [[0, 0]], "a slide exactly one tile wide"
    assert tile_grid(199, 400, 200, 200).size == 0 and tile_grid(400, 199, 200, 200).size == 0
    assert tile_grid(450, 200, 200, 100).tolist() == [[0, 0], [100, 0], [200, 0]], "overlap: a step of half a tile"


def test_pen_ink_thresholds():
    colours = np.array([[[100, 100, 141], [100, 100, 140], [100, 121, 90], [100, 120, 90], [59, 59, 59], [60, 10, 10]]])
    # blue 41 above red (green = red) is ink, 40 is not; green 21 above red is ink, 20 is not; all < 60 is black
    assert pen_ink(colours.astype(np.uint8)).tolist() == [[True, False, True, False, True, False]]


def test_a_single_level_slide_is_read_and_its_tissue_found_on_a_bounded_reduction(tmp_path):
    from pcam_pipeline.wsi.tiling import choose_mask_read, read_reduced

    path = tiny_pyramid(tmp_path / "region.tif", sizes=(128,))
    with open_slide(path) as slide:
        assert [(level.width, level.height) for level in slide.levels] == [(128, 128)]
        reduced = read_reduced(slide, 0, 3)  # bands of 30 rows (the tile is 32): 43 x 43, ceil(128 / 3)
        assert reduced.shape == (43, 43, 3) and (reduced == 90).all()
    assert choose_mask_read([Level(8000, 8000, 1, 256, 256)], 8) == (0, 1), "64 megapixels, 8 per tile: as it is"
    assert choose_mask_read([Level(8000, 8001, 1, 256, 256)], 16) == (0, 2), "one more row: averaged 2 x 2"
    assert choose_mask_read([Level(8000, 8000, 1, 256, 256)], 64) == (0, 5), "no finer than the 1,600-px thumbnail"
    assert choose_mask_read([Level(80_000, 80_000, 1, 256, 256)], 384) == (0, 48), "8 mask pixels per tile edge"
