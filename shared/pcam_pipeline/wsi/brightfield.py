"""Is this a brightfield H&E slide? Checked on the coarse level tissue is found on, before anything is cut. Pure.

The model only knows brightfield H&E. Three kinds of slide are refused, each with a plain reason:

- fluorescence or dark-field: the background is dark, where a brightfield slide's glass is bright;
- immunohistochemistry: brown DAB beside haematoxylin. By Beer-Lambert colour deconvolution (Ruifrok &
  Johnston, Anal Quant Cytol Histol 23:291, 2001), a stain's optical density (OD) per channel is its vector.
  DAB's vector (0.27, 0.57, 0.78) is the only common chromogen's that is largest in blue; haematoxylin's
  (0.65, 0.70, 0.29) and eosin's (0.07, 0.99, 0.11) are smallest in blue. So a stained pixel that absorbs more
  blue than green is DAB. The full three-stain unmixing is not used: eosin leaks into its DAB channel (on the
  real H&E images in tests, 14-82 % of pixels lie nearest the DAB vector), while blue above green is never
  more than 5 % of an H&E slide's stained pixels (red pen ink included);
- unstained or greyscale: there is something darker than glass, but almost none of it has colour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pcam_pipeline.core.errors import InvalidInput

DARK_LUMINANCE = 50  # of 255: a fluorescence slide's background; brightfield glass is above 200
MAX_DARK_FRACTION = 0.5  # of the slide: H&E tissue alone never is this dark (10th percentile ≥ 78 in tests)
STAINED_OD = 0.45  # summed over R, G and B: stained, not glass (Macenko et al. 2009 drop OD below 0.15 a channel)
COLOURED_SATURATION = 25  # of 255 (HSV): below, grey
MIN_STAINED_FRACTION = 0.02  # of the slide: less is "no tissue", said by tissue finding
MAX_DAB_FRACTION = 0.2  # of stained pixels: the IHC image in tests has 89 %, H&E at most 5 %
MIN_COLOURED_FRACTION = 0.1  # of stained pixels: a greyscale slide has none
DAB_MARGIN_OD = 0.02  # blue OD must exceed green OD by this: JPEG noise on grey pixels is not DAB


@dataclass(frozen=True)
class BrightfieldFigures:
    """What the check measured on the slide's coarse level, kept in the tile plan."""

    dark_fraction: float
    stained_fraction: float
    dab_fraction: float  # of stained pixels
    coloured_fraction: float  # of stained pixels

    def to_json(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in asdict(self).items()}


def optical_density(rgb: NDArray[Any]) -> NDArray[Any]:
    """Beer-Lambert optical density per channel, OD = -log10(I / I0) with I0 = 255 (glass); 0 for glass."""
    od: NDArray[Any] = -np.log10((rgb[..., :3].astype(np.float32) + 1) / 256)
    return od


def measure(rgb: NDArray[Any]) -> BrightfieldFigures:
    luminance = rgb[..., :3].mean(axis=-1)
    od = optical_density(rgb).reshape(-1, 3)
    stained = od.sum(axis=1) > STAINED_OD
    saturation = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., :3])).convert("HSV"))[..., 1].ravel()
    count = max(int(stained.sum()), 1)
    dab = od[stained, 2] > od[stained, 1] + DAB_MARGIN_OD
    coloured = saturation[stained] >= COLOURED_SATURATION
    return BrightfieldFigures(
        dark_fraction=float((luminance < DARK_LUMINANCE).mean()),
        stained_fraction=float(stained.mean()),
        dab_fraction=float(dab.sum() / count),
        coloured_fraction=float(coloured.sum() / count),
    )


def check_brightfield_he(rgb: NDArray[Any]) -> BrightfieldFigures:
    """Refuse (InvalidInput) a slide that is not brightfield H&E; else what was measured."""
    figures = measure(rgb)
    if figures.dark_fraction > MAX_DARK_FRACTION:
        raise InvalidInput(
            "the slide is not a brightfield slide: its background is dark, as in fluorescence or dark-field "
            "imaging; the model scores brightfield H&E only",
            f"a brightfield H&E slide: tissue on bright glass (at most {MAX_DARK_FRACTION:.0%} of it darker "
            f"than {DARK_LUMINANCE} of 255)",
            f"{figures.dark_fraction:.0%} of the slide darker than {DARK_LUMINANCE} of 255",
        )
    if figures.stained_fraction < MIN_STAINED_FRACTION:
        return figures  # nothing to judge the stain on: tissue finding says "no tissue"
    if figures.coloured_fraction < MIN_COLOURED_FRACTION:
        raise InvalidInput(
            "the slide is unstained or greyscale; the model scores H&E-stained slides in colour only",
            f"at least {MIN_COLOURED_FRACTION:.0%} of the tissue coloured (HSV saturation ≥ {COLOURED_SATURATION})",
            f"{figures.coloured_fraction:.1%} of the tissue coloured",
        )
    if figures.dab_fraction > MAX_DAB_FRACTION:
        raise InvalidInput(
            "the slide is immunohistochemistry (brown DAB beside haematoxylin), not H&E; the model scores H&E only",
            f"an H&E slide: at most {MAX_DAB_FRACTION:.0%} of its stained tissue absorbing more blue than green "
            "(DAB, by colour deconvolution)",
            f"{figures.dab_fraction:.0%} of the stained tissue is DAB-brown",
        )
    return figures
