"""The evidence rule: a group of positive tiles counts only if the model's own false positives would rarely make
one as large on the same slide. Negative slides stay negative; a real lesion still counts."""

from __future__ import annotations

import numpy as np
import pytest

from pcam_pipeline.scoring.lesion_evidence import (
    FALSE_ALARM_RATE,
    EvidenceRule,
    evidence_rule,
    false_positive_rate,
    largest_false_groups,
)
from pcam_pipeline.scoring.lesions import TileGrid, find_lesions, slide_verdict, verdict_in_words

SIDE = 50  # a slide of 2,500 tiles


def grid(side: int = SIDE) -> TileGrid:
    cells = np.array([(x, y) for y in range(side) for x in range(side)], dtype=float)
    return TileGrid(cells * 96, 96.0, 96.0, 0.972)


def verdict_of(probabilities: np.ndarray, rate: float | None) -> dict:
    tiles = grid()
    rule = evidence_rule(tiles.cells(), rate)
    lesions = find_lesions(tiles, probabilities, 0.5)
    return slide_verdict(
        lesions, positive_tiles=int((probabilities >= 0.5).sum()), tissue_area_mm2=20.0, grid=tiles,
        threshold=0.5, model_name="m", minimum_tiles=rule.minimum_tiles, evidence=rule.to_json(),
    )  # fmt: skip


def scattered_false_positives(rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(SIDE * SIDE) < rate, 0.9, 0.1)


def test_the_false_positive_rate_is_the_cautious_end_of_the_models_measured_specificity():
    assert false_positive_rate({"specificity": 0.95, "specificity_ci95": [0.9, 0.97]}) == pytest.approx(0.1)
    assert false_positive_rate({"auc": 0.9}) is None and false_positive_rate({}) is None


def test_the_largest_false_group_is_none_at_rate_zero_and_everything_at_rate_one():
    cells = grid(10).cells()
    assert largest_false_groups(cells, 0.0, runs=5).tolist() == [0] * 5
    assert largest_false_groups(cells, 1.0, runs=3).tolist() == [100] * 3
    assert largest_false_groups(cells, 0.1, runs=20).tolist() == largest_false_groups(cells, 0.1, runs=20).tolist()


def test_the_rule_grows_with_the_false_positive_rate_and_is_one_without_false_positives():
    cells = grid().cells()
    assert evidence_rule(cells, None) == EvidenceRule(None, 1)
    assert evidence_rule(cells, 0.0).minimum_tiles == 1
    minimums = [evidence_rule(cells, rate).minimum_tiles for rate in (0.0001, 0.01, 0.05, 0.1)]
    assert minimums == sorted(minimums) and minimums[0] <= 2 and 4 <= minimums[2] <= 8, minimums
    assert evidence_rule(grid(10).cells(), 1.0).minimum_tiles == 101


def test_false_positives_alone_reach_the_minimum_on_at_most_the_false_alarm_rate_of_new_slides():
    cells = grid().cells()
    rule = evidence_rule(cells, 0.05)
    fresh = largest_false_groups(cells, 0.05, runs=400, seed=99)  # other slides than the rule was made on
    assert (fresh >= rule.minimum_tiles).mean() <= 2 * FALSE_ALARM_RATE
    assert (fresh >= rule.minimum_tiles - 1).mean() > FALSE_ALARM_RATE, "the smallest such minimum"


def test_a_negative_slide_with_the_models_false_positives_stays_negative():
    calls = [verdict_of(scattered_false_positives(0.05, seed), rate=0.05)["category"] for seed in range(20)]
    assert calls.count("negative") >= 18, calls
    without_rule = [verdict_of(scattered_false_positives(0.05, seed), rate=None)["category"] for seed in range(5)]
    assert "negative" not in without_rule, "without the rule every one would be called positive"


def test_a_real_lesion_among_false_positives_is_still_found_and_measured():
    probabilities = scattered_false_positives(0.05, seed=3)
    cells = np.array([(x, y) for y in range(SIDE) for x in range(SIDE)])
    disc = np.hypot(cells[:, 0] - 25, cells[:, 1] - 25) <= 5.5  # 11 tiles across: about 1 mm
    probabilities[disc] = 0.97
    verdict = verdict_of(probabilities, rate=0.05)
    assert verdict["category"] == "micrometastasis"
    assert verdict["largest_lesion_mm"] == pytest.approx(1.0, abs=0.2)
    assert verdict["lesions"][0]["counted"] and not verdict["lesions"][-1]["counted"]
    assert verdict["evidence"]["groups_below_minimum"] == sum(not lesion["counted"] for lesion in verdict["lesions"])


def test_the_verdict_says_what_was_not_counted_and_why():
    probabilities = np.full(SIDE * SIDE, 0.1)
    probabilities[[0, 700]] = 0.9  # two single tiles, far apart
    verdict = verdict_of(probabilities, rate=0.05)
    assert verdict["category"] == "negative" and verdict["lesion_count"] == 0
    assert verdict_in_words(verdict) == (
        "Negative: 2 small groups of positive tiles, no larger than the model's own false positives make (not counted)."
    )
    evidence = verdict["evidence"]
    assert evidence["false_positive_rate"] == 0.05 and evidence["false_alarm_rate"] == FALSE_ALARM_RATE
    assert evidence["minimum_lesion_tiles"] > 1 and evidence["groups_below_minimum"] == 2
    assert "5.00% of normal tiles" in evidence["note"]
    unmeasured = verdict_of(probabilities, rate=None)
    assert unmeasured["category"] == "itc" and "was not measured" in unmeasured["evidence"]["note"]
