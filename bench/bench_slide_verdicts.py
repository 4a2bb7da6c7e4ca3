"""Slide verdicts measured on slides, not patches: how often a tumour-free slide is called positive, with and
without the evidence rule, and how far each lesion's measured size is from the truth.

Run by `make bench`. The local model is trained, calibrated and given its operating threshold as the evaluation
job does (pcam_evaluation_job.calibration); slides are synthetic whole slides (pcam_synth: tissue, and lesions
of known diameters), cut into the model's patches on their grid and scored; the verdict code is the pipeline's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pcam_evaluation_job import calibration
from pcam_pipeline.scoring.lesion_evidence import evidence_rule
from pcam_pipeline.scoring.lesions import TileGrid, find_lesions, slide_verdict
from pcam_synth.synth import EDGE, synth_split
from pcam_synth.whole_slides import synth_wsi_picture
from pcam_training.local_model import LocalImageClassifier

MPP = 0.972
NEGATIVE_SLIDES = 20
LESION_SLIDES = ((0.1,), (1.0,), (4.0,))
MEASURED_MM, PLACEMENTS = (0.5, 1.0, 2.0, 4.0), 6


def trained_model():
    """The local model with its calibration map, operating threshold and measured false-positive rate."""
    rng = np.random.default_rng(0)
    (x, y), (xv, yv), (xt, yt) = synth_split(2000, rng), synth_split(500, rng), synth_split(500, rng)
    model = LocalImageClassifier().fit(x, y)
    valid, test = model.predict_proba(xv)[:, 1], model.predict_proba(xt)[:, 1]
    fitted = calibration.fit_calibration(yv, valid)
    threshold = calibration.operating_threshold(yv, calibration.apply_calibration(fitted, valid), 0.95)
    rates = calibration.rates_at(yt, calibration.apply_calibration(fitted, test), threshold)
    return model, fitted, threshold, rates


def verdicts(
    model, fitted, threshold: float, rate: float, lesions_mm: tuple[float, ...], seed: int, offset=(0.0, 0.0)
) -> dict:
    rows, cols = (52, 64) if max(lesions_mm, default=0) > 2 else (30, 36)
    picture, truth = synth_wsi_picture(rows, cols, MPP, MPP, seed=seed, lesions_mm=lesions_mm, lesion_offset=offset)
    cells = np.argwhere(truth.tissue)  # (row, col) of each tissue patch
    patches = np.stack([picture[r * EDGE : (r + 1) * EDGE, c * EDGE : (c + 1) * EDGE] for r, c in cells])
    probabilities = calibration.apply_calibration(fitted, model.predict_proba(patches)[:, 1])
    grid = TileGrid(cells[:, ::-1].astype(float) * EDGE, EDGE, EDGE, MPP)
    found = find_lesions(grid, probabilities, threshold)
    positive = int((probabilities >= threshold).sum())
    called = {}
    for name, used in (("with the rule", rate), ("without", None)):
        rule = evidence_rule(grid.cells(), used)
        verdict = slide_verdict(
            found, positive_tiles=positive, tissue_area_mm2=None, grid=grid, threshold=threshold,
            model_name="local", minimum_tiles=rule.minimum_tiles, evidence=rule.to_json(),
        )  # fmt: skip
        called[name] = {"category": verdict["category"], "largest_mm": verdict["largest_lesion_mm"],
                        "minimum_tiles": rule.minimum_tiles}  # fmt: skip
    largest_group = found[0].greatest_dimension_mm if found else None
    return {"tiles": len(cells), "positive_tiles": positive, "groups": len(found), "largest_group_mm": largest_group,
            "truth_mm": list(lesions_mm), **called}  # fmt: skip


def measurement_errors(model, fitted, threshold: float, rate: float) -> dict[str, list[float]]:
    """Each lesion size at PLACEMENTS random places on the tile grid: the largest group's measure less the
    truth, in tile edges (the measure's resolution)."""
    offsets = np.random.default_rng(200).uniform(-0.5, 0.5, (PLACEMENTS, 2))
    edge_mm = EDGE * MPP / 1000
    errors: dict[str, list[float]] = {}
    for diameter in MEASURED_MM:
        for seed, offset in enumerate(offsets):
            slide = verdicts(model, fitted, threshold, rate, (diameter,), 50 + seed, tuple(offset))
            errors.setdefault(str(diameter), []).append(round((slide["largest_group_mm"] - diameter) / edge_mm, 2))
    return errors


def main() -> int:
    started = time.monotonic()
    model, fitted, threshold, rates = trained_model()
    rate = 1 - rates["specificity_ci95"][0]
    negatives = [verdicts(model, fitted, threshold, rate, (), seed) for seed in range(NEGATIVE_SLIDES)]
    with_lesions = [verdicts(model, fitted, threshold, rate, lesions, 7) for lesions in LESION_SLIDES]
    result = {
        "calibration": fitted["method"],
        "threshold": threshold,
        "test_sensitivity": rates["sensitivity"],
        "test_specificity": rates["specificity"],
        "false_positive_rate_upper": rate,
        "negative_slides": len(negatives),
        "negative_called_positive_with_rule": sum(n["with the rule"]["category"] != "negative" for n in negatives),
        "negative_called_positive_without": sum(n["without"]["category"] != "negative" for n in negatives),
        "negative_positive_tiles_mean": float(np.mean([n["positive_tiles"] / n["tiles"] for n in negatives])),
        "negative_groups_mean": float(np.mean([n["groups"] for n in negatives])),
        "lesion_slides": with_lesions,
        "measurement_error_edges": measurement_errors(model, fitted, threshold, rate),
        "seconds": time.monotonic() - started,
    }
    print(
        f"slide verdicts: {result['negative_called_positive_with_rule']} of {NEGATIVE_SLIDES} tumour-free slides "
        f"called positive with the evidence rule, {result['negative_called_positive_without']} without; "
        + "; ".join(
            f"{s['truth_mm']} mm → {s['with the rule']['category']} {s['with the rule']['largest_mm']}"
            for s in with_lesions
        )  # fmt: skip
    )
    print(
        "lesion measure less the truth, in tile edges, over "
        f"{PLACEMENTS} places on the grid: "
        + "; ".join(f"{d} mm [{min(e):+.2f}, {max(e):+.2f}]" for d, e in result["measurement_error_edges"].items())
    )
    Path("bench-output").mkdir(exist_ok=True)
    Path("bench-output/slide_verdicts.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
