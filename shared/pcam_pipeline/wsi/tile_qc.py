"""Quality control of a slide's tiles: what the model cannot judge is flagged, kept in the CSV, and left out of
lesions and the verdict. Pure.

Each tile is measured once, at conversion, on its 96 x 96 patch at the model's resolution (so one set of
limits serves every scan resolution). The measures are kept; the checks run when the slide is scored, in this
order, and a tile gets the first that fails:

- ``blur``: variance of the Laplacian (Pech-Pacheco et al., ICPR 2000; HistoQC's BlurDetectionModule thresholds
  the Laplacian too). Measured on the real H&E images in tests at 0.972 µm/px: sharp tissue tiles ≥ 348, the
  same tiles blurred with a Gaussian of σ 2 px ≤ 34. The limit sits between them, about 3x from each.
- ``fold``: a fold lays tissue on itself, and by Beer-Lambert its optical density adds: about twice the slide's.
  A tile whose stained optical density is 1.45x the median of the slide's tiles is a fold. Tiles of two layers
  of the real Aperio slide in tests are 1.5-1.8x; one layer's 90th percentile is 1.17x. Relative to the slide,
  because labs stain darker or paler. Bautista & Yagi ("Detection of tissue folds in whole slide images",
  IEEE EMBC 2009) use the same darker-and-more-saturated cue.
- ``pen``: marker ink (blue, green, black), as tissue finding sees it (``tissue.pen_ink``).
- ``bubble``: an air bubble's rim is a line of grey, darker than glass and without stain colour (HistoQC's
  BubbleRegionByRegion looks for the same edges). H&E tissue has none: its dark pixels are purple.
- ``dark``: most of the tile almost black (HistoQC's LightDarkModule, "darktissue" below 0.15 of full scale).
  Focus, folds and ink need light to be judged, so a tile that is mostly dark is only ``dark``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pcam_pipeline.wsi.brightfield import STAINED_OD, optical_density
from pcam_pipeline.wsi.tissue import pen_ink

QC_CLASSES = ("ok", "blur", "fold", "pen", "bubble", "dark")
UNCHECKED = "unchecked"  # a slide converted before tiles were checked
MEASURES = ("laplacian_variance", "stained_od", "pen_fraction", "rim_fraction", "dark_fraction")

MIN_LAPLACIAN_VARIANCE = 100.0  # grey levels²
FOLD_OD_RATIO = 1.45  # of the slide's median tile
MIN_PEN_FRACTION = 0.1
MIN_RIM_FRACTION = 0.015
RIM_GREY = (60, 150)  # a bubble's rim: darker than glass, lighter than black ink
RIM_MAX_SATURATION = 40  # of 255: grey, where stained tissue is coloured
DARK_GREY = 38  # of 255: HistoQC's 0.15
MIN_DARK_FRACTION = 0.5
QC_WARN_FRACTION = 0.05  # of the tissue failing: above it a slide is "warn"; above MaxQcFailFraction, "fail"


def measure_tile(patch: NDArray[Any]) -> NDArray[Any]:
    """The tile's measures, in the order of MEASURES."""
    rgb = patch[..., :3]
    hsv = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("HSV"))
    grey = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).convert("L")).astype(np.float32)
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    od = optical_density(rgb).sum(axis=-1)
    stained = od > STAINED_OD
    rim = (grey >= RIM_GREY[0]) & (grey < RIM_GREY[1]) & (hsv[..., 1] < RIM_MAX_SATURATION)
    return np.array(
        [
            laplacian.var(),
            od[stained].mean() if stained.any() else 0.0,
            pen_ink(rgb).mean(),
            rim.mean(),
            (grey < DARK_GREY).mean(),
        ],
        dtype=np.float32,
    )


def classify_tiles(measures: NDArray[Any]) -> NDArray[Any]:
    """Each tile's QC class index (into QC_CLASSES) from its row of measures: the first check that fails."""
    measures = np.asarray(measures, dtype=np.float64).reshape(-1, len(MEASURES))
    sharpness, density, pen, rim, dark = measures.T
    reference = float(np.median(density[density > 0])) if (density > 0).any() else 0.0
    lit = dark < MIN_DARK_FRACTION
    failing = [
        lit & (sharpness < MIN_LAPLACIAN_VARIANCE),
        lit & (density >= FOLD_OD_RATIO * reference) & (reference > 0),
        lit & (pen >= MIN_PEN_FRACTION),
        rim >= MIN_RIM_FRACTION,
        ~lit,
    ]
    classes = np.zeros(len(measures), dtype=np.int64)
    for index, fails in reversed(list(enumerate(failing, start=1))):  # the first check wins: set it last
        classes[fails] = index
    return classes


def qc_summary(classes: NDArray[Any] | None, max_fail_fraction: float) -> dict[str, Any]:
    """The slide's ``qc`` object: the fraction of its tissue (tiles) failing each check, and its status."""
    if classes is None:
        return {"status": UNCHECKED, "reason": "the slide was converted before tiles were checked: drop it again"}
    count = max(len(classes), 1)
    fractions = {name: round(float((classes == i).sum()) / count, 4) for i, name in enumerate(QC_CLASSES) if i}
    failing = float((classes > 0).sum()) / count
    status = "fail" if failing > max_fail_fraction else "warn" if failing > QC_WARN_FRACTION else "pass"
    return {
        "status": status,
        "failing_fraction": round(failing, 4),
        "fractions": fractions,
        "max_fail_fraction": max_fail_fraction,
        "warn_fraction": QC_WARN_FRACTION,
    }


def qc_in_words(summary: dict[str, Any]) -> str:
    """The failing checks, largest first: "blur 30%, fold 4%"."""
    fractions = sorted(summary.get("fractions", {}).items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {fraction:.0%}" for name, fraction in fractions if fraction) or "none"


def qc_names(classes: NDArray[Any] | None, count: int) -> list[str]:
    """Each tile's QC value as the CSV gives it."""
    if classes is None:
        return [UNCHECKED] * count
    return [QC_CLASSES[int(i)] for i in classes]
