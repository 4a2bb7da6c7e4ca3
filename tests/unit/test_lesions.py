"""Lesions and the slide's verdict: positive tiles grouped by touch (side or corner), measured within one
tile edge, and staged by the largest lesion (AJCC 8th edition: ITC ≤ 0.2 mm < micrometastasis ≤ 2 mm <
macrometastasis)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pcam_pipeline.scoring.lesion_extent import MIN_OPENED_EXTENT_EDGES, core_of, greatest_distance, opened
from pcam_pipeline.scoring.lesions import (
    MIN_TISSUE_MM2,
    TileGrid,
    category_of,
    connected_groups,
    find_lesions,
    measurement_note,
    slide_verdict,
    verdict_in_words,
)

EDGE, MPP = 96.0, 0.972  # PCam's tile: 96 px at 0.972 µm/px, 93.3 µm
EDGE_MM = EDGE * MPP / 1000


def grid_of(cells, edge=EDGE, stride=EDGE, mpp=MPP) -> TileGrid:
    """Tiles at grid cells (column, row)."""
    return TileGrid(np.asarray(cells, dtype=float) * stride, edge, stride, mpp)


def lesions_of(cells, positive, threshold=0.5, **grid):
    probabilities = np.where(np.isin(np.arange(len(cells)), positive), 0.9, 0.1)
    return find_lesions(grid_of(cells, **grid), probabilities, threshold)


def test_tiles_that_touch_by_a_side_or_a_corner_are_one_group_and_others_are_not():
    cells = [(0, 0), (1, 0), (2, 1), (5, 5), (5, 7), (6, 8)]
    assert connected_groups(cells) == [[0, 1, 2], [3], [4, 5]]
    assert connected_groups([]) == []
    assert connected_groups([(3, 3), (3, 4), (2, 5), (9, 9)]) == [[0, 1, 2], [3]]


@pytest.mark.parametrize("step", [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)])
def test_each_of_the_eight_neighbours_joins_and_two_steps_away_does_not(step):
    dx, dy = step
    assert connected_groups([(5, 5), (5 + dx, 5 + dy)]) == [[0, 1]]
    assert connected_groups([(5, 5), (5 + 2 * dx, 5 + 2 * dy)]) == [[0], [1]]


def test_a_chain_is_one_group_whatever_the_order_of_its_tiles():
    chain = [(4, 0), (0, 0), (2, 0), (1, 0), (3, 0)]
    assert connected_groups(chain) == [[0, 1, 2, 3, 4]]


def test_greatest_distance_is_between_the_farthest_points():
    assert greatest_distance(np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])) == pytest.approx(5.0)
    assert greatest_distance(np.array([[2.0, 2.0]])) == 0.0
    square = np.array([[x, y] for x in range(5) for y in range(5)], float)
    assert greatest_distance(square) == pytest.approx(4 * math.sqrt(2))


def test_a_lesion_of_one_tile_measures_one_tile_edge_at_most():
    (lesion,) = lesions_of([(3, 4), (8, 8)], positive=[0])
    assert lesion.greatest_dimension_mm == pytest.approx(EDGE_MM)
    assert lesion.tiles == (0,) and lesion.category == "itc"
    assert lesion.area_mm2 == pytest.approx(EDGE_MM**2)
    assert lesion.bounding_box == (288, 384, 384, 480)
    assert lesion.centroid == (336, 432)


def test_two_touching_tiles_measure_one_tile_edge_and_a_row_measures_its_centres_span():
    (pair,) = lesions_of([(0, 0), (1, 0)], positive=[0, 1])
    assert pair.greatest_dimension_mm == pytest.approx(EDGE_MM)
    row = [(column, 0) for column in range(11)]
    (lesion,) = lesions_of(row, positive=list(range(11)))
    assert lesion.greatest_dimension_mm == pytest.approx(10 * EDGE_MM)  # 0.933 mm
    assert lesion.category == "micrometastasis" and len(lesion.tiles) == 11
    assert lesion.area_mm2 == pytest.approx(11 * EDGE_MM**2)
    assert lesion.bounding_box == (0, 0, round(11 * EDGE), round(EDGE))


def test_a_diagonal_is_measured_corner_to_corner():
    diagonal = [(i, i) for i in range(4)]
    (lesion,) = lesions_of(diagonal, positive=[0, 1, 2, 3])
    assert lesion.greatest_dimension_mm == pytest.approx(3 * math.sqrt(2) * EDGE_MM)


def test_overlapping_tiles_are_grouped_on_their_grid_and_their_area_is_their_union():
    (lesion,) = lesions_of([(0, 0), (1, 0), (2, 0)], positive=[0, 1, 2], edge=100.0, stride=50.0, mpp=1.0)
    assert lesion.greatest_dimension_mm == pytest.approx(0.1)  # centres 100 px apart = one tile edge
    assert lesion.area_mm2 == pytest.approx(200 * 100 / 1e6)
    assert lesion.bounding_box == (0, 0, 200, 100) and lesion.centroid == (100, 50)


def test_the_threshold_counts_a_tile_exactly_at_it_and_its_probabilities_are_kept():
    grid = grid_of([(0, 0), (1, 0), (5, 5)])
    (lesion,) = find_lesions(grid, np.array([0.5, 0.7, 0.49]), threshold=0.5)
    assert lesion.tiles == (0, 1)
    assert (lesion.mean_probability, lesion.max_probability) == (pytest.approx(0.6), pytest.approx(0.7))
    assert find_lesions(grid, np.array([0.1, 0.2, 0.3]), 0.5) == []


def test_lesions_come_largest_first_then_the_surest_first():
    cells = [(0, 0), (20, 20), (21, 20), (40, 40)]
    grid = grid_of(cells)
    lesions = find_lesions(grid, np.array([0.8, 0.6, 0.6, 0.95]), 0.5)
    assert [lesion.tiles for lesion in lesions] == [(1, 2), (3,), (0,)]


def test_the_categories_follow_the_ajcc_boundaries():
    assert [category_of(mm) for mm in (0.0, 0.2, 0.2001, 2.0, 2.0001, 9.0)] == [
        "itc", "itc", "micrometastasis", "micrometastasis", "macrometastasis", "macrometastasis",
    ]  # fmt: skip


def test_the_lesion_record_rounds_its_measures_for_reading():
    grid = grid_of([(0, 0), (1, 0)], mpp=0.9731)
    (lesion,) = find_lesions(grid, np.array([0.61234567, 0.63456789]), 0.5)
    record = lesion.to_json(1)
    assert record["greatest_dimension_mm"] == 0.093 and record["area_mm2"] == 0.0175
    assert (record["mean_probability"], record["max_probability"]) == (0.623457, 0.634568)


def test_the_lesion_record_has_every_measure_rounded_for_reading():
    (lesion,) = lesions_of([(0, 0), (1, 1)], positive=[0, 1])
    record = lesion.to_json(3)
    assert lesion.to_json(3, counted=False)["counted"] is False
    assert record == {
        "number": 3,
        "counted": True,
        "category": "itc",
        "greatest_dimension_mm": round(math.sqrt(2) * EDGE_MM, 3),
        "area_mm2": round(2 * EDGE_MM**2, 4),
        "tile_count": 2,
        "mean_probability": 0.9,
        "max_probability": 0.9,
        "bounding_box": [0, 0, 192, 192],
        "centroid": [96, 96],
    }


def verdict(lesions, positive_tiles=None, tissue=5.0, grid=True):
    count = sum(len(lesion.tiles) for lesion in lesions or []) if positive_tiles is None else positive_tiles
    return slide_verdict(
        lesions, positive_tiles=count, tissue_area_mm2=tissue, grid=grid_of([]) if grid else None,
        threshold=0.42, model_name="m1",
    )  # fmt: skip


def test_the_verdict_is_the_category_of_the_largest_lesion():
    lesions = lesions_of([(c, 0) for c in range(30)] + [(50, 50)], positive=list(range(31)))
    call = verdict(lesions)
    assert call["category"] == "macrometastasis" and call["lesion_count"] == 2
    assert call["largest_lesion_mm"] == round(29 * EDGE_MM, 3)
    assert [entry["number"] for entry in call["lesions"]] == [1, 2]
    assert [entry["category"] for entry in call["lesions"]] == ["macrometastasis", "itc"]
    assert (call["operating_threshold"], call["model_name"], call["reasons"]) == (0.42, "m1", [])
    assert call["measurement_resolution_mm"] == round(EDGE_MM, 4)


def test_a_slide_without_positive_tiles_is_negative():
    call = verdict([])
    assert (call["category"], call["largest_lesion_mm"], call["lesion_count"], call["lesions"]) == (
        "negative", None, 0, [],
    )  # fmt: skip


def test_a_negative_call_on_too_little_tissue_is_indeterminate_but_a_lesion_still_counts():
    call = verdict([], tissue=MIN_TISSUE_MM2 / 2)
    assert call["category"] == "indeterminate" and "too little tissue" in call["reasons"][0]
    assert "0.25 mm²" in call["reasons"][0]
    assert verdict([], tissue=MIN_TISSUE_MM2)["category"] == "negative"
    assert verdict([], tissue=None)["category"] == "negative"
    lesion = lesions_of([(0, 0)], positive=[0])
    assert verdict(lesion, tissue=MIN_TISSUE_MM2 / 2)["category"] == "itc"


def test_a_file_without_positions_has_no_lesions_and_no_size():
    call = verdict(None, positive_tiles=7, grid=False)
    assert call["category"] == "indeterminate" and call["lesion_count"] is None and call["lesions"] == []
    assert call["reasons"] == [
        "7 tiles are at or above the threshold, but the file gives no tile positions (no 'coords'): "
        "lesions cannot be grouped or measured"
    ]
    assert call["measurement_resolution_mm"] is None
    assert call["measurement_note"] == "no tile positions: tile counts only, no lesions"
    assert verdict(None, positive_tiles=0, grid=False)["category"] == "negative"


def test_the_verdict_in_words():
    assert verdict_in_words(verdict([])) == "Negative: no tile reached the operating threshold."
    one = lesions_of([(0, 0)], positive=[0])
    assert (
        verdict_in_words(verdict(one)) == "Isolated tumour cells: the largest lesion measures 0.09 mm (1 lesion found)."
    )
    row = lesions_of([(c, 0) for c in range(5)] + [(9, 9)], positive=list(range(6)))
    assert verdict_in_words(verdict(row)) == "Micrometastasis: the largest lesion measures 0.37 mm (2 lesions found)."
    big = lesions_of([(c, 0) for c in range(40)], positive=list(range(40)))
    assert verdict_in_words(verdict(big)).startswith("Macrometastasis: the largest lesion measures 3.64 mm")
    assert verdict_in_words(verdict([], tissue=0.1)) == (
        "Indeterminate: too little tissue: 0.10 mm² was scored, at least 0.5 mm² is needed."
    )


def test_the_measurement_note_states_the_tile_edge():
    assert "within about one tile edge (93 µm)" in measurement_note(grid_of([]))
    assert "at most one tile edge" in measurement_note(grid_of([]))


def test_a_spur_hanging_on_by_a_corner_or_a_side_does_not_lengthen_the_measure():
    block = [(x, y) for x in range(5) for y in range(5)]  # 5 x 5 tiles
    spurred = [*block, (5, 5), (6, 6), (5, 2)]  # a diagonal chain off one corner, a bump on one side
    (plain,) = lesions_of(block, positive=list(range(len(block))))
    (with_spurs,) = lesions_of(spurred, positive=list(range(len(spurred))))
    assert with_spurs.greatest_dimension_mm == pytest.approx(plain.greatest_dimension_mm)  # 4 √2 edges
    assert len(with_spurs.tiles) == 28 and with_spurs.area_mm2 == pytest.approx(28 * EDGE_MM**2), "kept, not measured"
    assert core_of(spurred) == list(range(25))
    line = [(x, 0) for x in range(6)]
    assert core_of(line) == list(range(6)), "a line has no core: measured whole"
    assert core_of([(0, 0), (1, 0), (0, 1), (1, 1), (2, 2)]) == [0, 1, 2, 3, 4], "no inside: whole"
    plus = [(1, 0), (0, 1), (1, 1), (2, 1), (1, 2), (3, 3)]  # a cross with a diagonal spur off its arm
    assert core_of(plus) == [0, 1, 2, 3, 4, 5] and core_of(block + [(9, 9)])[-1] == 24
    filled = [(1, 0), (0, 1), (1, 1), (2, 1), (1, 2), (0, 0)]  # a cross with its corner filled: 4 core tiles
    assert core_of(filled) == [0, 1, 2, 5], "a core of exactly four tiles is measured"


def disc_tiles(diameter_mm: float, offset: tuple[float, float], reach: float) -> list[tuple[int, int]]:
    """The tiles a round lesion makes positive: those whose centre lies within the lesion's radius plus
    ``reach`` (in tile edges: 1/6 when the model needs tumour at the tile's centre, as PCam's labels do; 1/2
    when tumour anywhere in the tile will do)."""
    radius = diameter_mm / 2 / EDGE_MM
    span = int(radius) + 3
    cx, cy = offset
    return [
        (x, y)
        for x in range(-span, span + 1)
        for y in range(-span, span + 1)
        if math.hypot(max(abs(x - cx) - reach, 0), max(abs(y - cy) - reach, 0)) <= radius
    ]


@pytest.mark.parametrize("diameter_mm", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("reach", [1 / 6, 1 / 2])
def test_a_lesion_of_1_to_4_mm_measures_within_one_tile_edge_wherever_it_lies_on_the_grid(diameter_mm, reach):
    errors = []
    for offset in np.random.default_rng(1).uniform(-0.5, 0.5, (12, 2)):
        cells = disc_tiles(diameter_mm, tuple(offset), reach)
        (lesion,) = lesions_of(cells, positive=list(range(len(cells))))
        errors.append((lesion.greatest_dimension_mm - diameter_mm) / EDGE_MM)
    assert max(abs(e) for e in errors) < 1, errors


def test_false_positives_beside_a_large_lesion_do_not_lengthen_it():
    cells = disc_tiles(2.0, (0.2, -0.3), 1 / 2)
    (alone,) = lesions_of(cells, positive=list(range(len(cells))))
    far_x = max(x for x, _ in cells)
    beside = [(far_x + 1, 0), (far_x + 2, 1), (far_x + 2, 0), (far_x + 3, 0)]  # a clump hanging on by a side
    with_beside = cells + beside
    (lesion,) = lesions_of(with_beside, positive=list(range(len(with_beside))))
    assert lesion.greatest_dimension_mm == pytest.approx(alone.greatest_dimension_mm)
    assert len(lesion.tiles) == len(cells) + 4, "kept in the lesion, not measured"


def test_an_opening_keeps_what_a_3_by_3_block_covers():
    block = [(x, y) for x in range(4) for y in range(4)]
    bridge = [(4, 1), (5, 1), (6, 1)]  # a bridge one tile wide
    assert opened(block + bridge) == list(range(16))
    assert opened(block + [(4, 4)]) == list(range(16)), "a tile on a corner"
    assert opened([(x, y) for x in range(3) for y in range(3)]) == list(range(9)), "exactly one block"
    band = [(x, y) for x in range(10) for y in range(2)]
    assert opened(band) == [], "two tiles wide: nothing is covered"


def test_only_a_lesion_wide_enough_is_measured_on_its_opening_less_half_a_tile():
    wide = [(x, y) for x in range(MIN_OPENED_EXTENT_EDGES + 1) for y in range(3)]  # centres 8 edges apart
    (lesion,) = lesions_of(wide, positive=list(range(len(wide))))
    across = math.hypot(MIN_OPENED_EXTENT_EDGES, 2)
    assert lesion.greatest_dimension_mm == pytest.approx((across - 0.5) * EDGE_MM)
    narrow = [(x, y) for x in range(MIN_OPENED_EXTENT_EDGES) for y in range(3)]  # 7 edges: measured as it is
    (small,) = lesions_of(narrow, positive=list(range(len(narrow))))
    assert small.greatest_dimension_mm == pytest.approx(math.hypot(MIN_OPENED_EXTENT_EDGES - 1, 2) * EDGE_MM)


def test_a_lesion_and_its_grid_cannot_be_changed_once_measured():
    import dataclasses

    (lesion,) = lesions_of([(0, 0)], positive=[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        lesion.greatest_dimension_mm = 9.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid_of([]).mpp = 1.0  # type: ignore[misc]


def test_groups_below_the_evidence_minimum_are_listed_and_said_but_not_counted():
    lesions = lesions_of([(0, 0), (1, 0), (2, 0), (9, 9), (20, 20)], positive=[0, 1, 2, 3, 4])
    call = slide_verdict(lesions, positive_tiles=5, tissue_area_mm2=5.0, grid=grid_of([]), threshold=0.5,
                         model_name="m", minimum_tiles=3, evidence={"note": "n"})  # fmt: skip
    assert call["category"] == "itc" and call["lesion_count"] == 1  # 3 tiles in a row: 0.19 mm
    assert [entry["counted"] for entry in call["lesions"]] == [True, False, False]
    assert call["evidence"] == {"note": "n", "groups_below_minimum": 2}
    assert call["largest_lesion_mm"] == round(2 * EDGE_MM, 3)
    alone = slide_verdict(lesions[1:2], positive_tiles=1, tissue_area_mm2=5.0, grid=grid_of([]), threshold=0.5,
                          model_name="m", minimum_tiles=3)  # fmt: skip
    assert verdict_in_words(alone) == (
        "Negative: 1 small group of positive tiles, no larger than the model's own false positives make (not counted)."
    )
    indeterminate = slide_verdict(lesions[1:2], positive_tiles=1, tissue_area_mm2=0.1, grid=grid_of([]),
                                  threshold=0.5, model_name="m", minimum_tiles=3)  # fmt: skip
    assert verdict_in_words(indeterminate).startswith("Indeterminate: too little tissue")
    assert verdict_in_words(indeterminate).endswith("is needed.")
