"""Which lesions a slide's verdict may rest on. Pure.

Every model has false positives: tiles of normal tissue at or above its threshold. On a slide of thousands of
tiles they make small groups of their own, which would read as isolated tumour cells on every negative slide.
So a group counts only if the model's own false positives would rarely make one as large on this slide:

- the false-positive rate is measured on the model's test split: the upper end of the 95 % interval of
  1 − specificity at its operating threshold (``specificity_ci95``), so a small test split errs on caution;
- false positives are scattered at that rate over this slide's own tiles, RUNS times (seeded: the same slide
  always gets the same rule), and their largest group is noted each time;
- the smallest lesion that counts is the smallest tile count that the largest false group reaches in at most
  FALSE_ALARM_RATE of the runs: a negative slide is called positive by chance at most that often.

The runs assume false positives fall independently. Artefacts (folds, pen, blur) cluster them; quality
control must keep such tiles out. A model without a measured specificity gets no rule (every group counts),
and the verdict says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pcam_pipeline.scoring.lesions import connected_groups

FALSE_ALARM_RATE = 0.05
RUNS = 100


@dataclass(frozen=True)
class EvidenceRule:
    false_positive_rate: float | None  # per tile, at the operating threshold; None: not measured
    minimum_tiles: int

    def to_json(self) -> dict[str, Any]:
        rate = self.false_positive_rate
        measured = rate is not None
        return {
            "false_positive_rate": round(rate, 6) if rate is not None else None,
            "minimum_lesion_tiles": self.minimum_tiles,
            "false_alarm_rate": FALSE_ALARM_RATE if measured else None,
            "note": (
                f"a group of fewer than {self.minimum_tiles} tiles is within what the model's false positives "
                f"({rate or 0:.2%} of normal tiles on its test split, at most) make on a slide of "
                f"this size in more than {FALSE_ALARM_RATE:.0%} of slides: it is listed, not counted"
                if measured
                else "the model's false-positive rate was not measured: every group of positive tiles counts"
            ),
        }


def false_positive_rate(model_metrics: dict[str, Any]) -> float | None:
    """The upper end of the 95 % interval of the model's per-tile false-positive rate on its test split."""
    bounds = model_metrics.get("specificity_ci95")
    return 1.0 - float(bounds[0]) if bounds else None


def largest_false_groups(
    cells: Sequence[tuple[int, int]], rate: float, runs: int = RUNS, seed: int = 0
) -> NDArray[np.int64]:
    """The largest group (tiles touching, side or corner) of false positives scattered at ``rate``, per run."""
    rng = np.random.default_rng(seed)
    largest = np.zeros(runs, dtype=np.int64)
    for run in range(runs):
        picked = [cells[i] for i in np.flatnonzero(rng.random(len(cells)) < rate)]
        largest[run] = max((len(group) for group in connected_groups(picked)), default=0)
    return largest


def evidence_rule(cells: Sequence[tuple[int, int]], rate: float | None, runs: int = RUNS) -> EvidenceRule:
    """The smallest lesion (in tiles) that the model's false positives reach on these tiles in at most
    FALSE_ALARM_RATE of runs."""
    if rate is None:
        return EvidenceRule(None, 1)
    largest = largest_false_groups(cells, rate, runs)
    minimum = 1
    while (largest >= minimum).mean() > FALSE_ALARM_RATE:
        minimum += 1
    return EvidenceRule(rate, minimum)
