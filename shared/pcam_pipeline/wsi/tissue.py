"""Where the tissue is on a low-resolution level: Otsu's threshold on saturation, minus pen ink, then a
morphological close and open. Pure."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

MIN_SATURATION = 20  # of 255: below, glass; Otsu never splits glass noise into "tissue"


def otsu_threshold(values: NDArray[Any]) -> int:
    """Otsu's threshold of uint8 values (class one is <= it): the cut that maximises the between-class variance."""
    histogram = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    below = np.cumsum(histogram)
    above = below[-1] - below
    sums = np.cumsum(histogram * np.arange(256))
    valid = (below > 0) & (above > 0)
    if not valid.any():
        return 0
    mean_below = sums / np.where(below > 0, below, 1)
    mean_above = (sums[-1] - sums) / np.where(above > 0, above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return int(np.argmax(np.where(valid, between, -1)))


def pen_ink(rgb: NDArray[Any]) -> NDArray[Any]:
    """Blue, green and black marker ink; H&E (pink, purple, blue-purple with red above green) never is."""
    red, green, blue = (rgb[..., i].astype(np.int16) for i in range(3))
    blue_ink = (blue > red + 40) & (green >= red)
    green_ink = green > red + 20
    black_ink = rgb.max(axis=-1) < 60
    ink: NDArray[Any] = blue_ink | green_ink | black_ink
    return ink


def _filtered(mask: NDArray[Any], *filters: ImageFilter.Filter) -> NDArray[Any]:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    for step in filters:
        image = image.filter(step)
    return np.asarray(image) > 127


def tissue_mask(rgb: NDArray[Any]) -> NDArray[Any]:
    """True where there is tissue: saturated (Otsu), not pen ink, small specks opened and gaps closed."""
    saturation = np.asarray(Image.fromarray(rgb).convert("HSV"))[..., 1]
    tissue = saturation > max(otsu_threshold(saturation), MIN_SATURATION)
    pen = _filtered(pen_ink(rgb), ImageFilter.MaxFilter(5))  # ink edges fade into the glass
    tissue &= ~pen
    tissue = _filtered(tissue, ImageFilter.MaxFilter(5), ImageFilter.MinFilter(5))  # close
    tissue = _filtered(tissue, ImageFilter.MinFilter(3), ImageFilter.MaxFilter(3))  # open
    kept: NDArray[Any] = tissue & ~pen
    return kept
