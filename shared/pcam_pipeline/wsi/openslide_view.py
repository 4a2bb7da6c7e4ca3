"""An open OpenSlide slide as tiling's code reads a slide, cropped to the slide's bounds where it has them.

MIRAX, Leica SCN and some others say which rectangle of level 0 was imaged (``openslide.bounds-x``, ``-y``,
``-width``, ``-height``). QuPath shows such a slide cropped to that rectangle, with (0, 0) at its top-left corner
(qupath#1278). The staged copy is cut the same way, so the CSV's and GeoJSON's coordinates are QuPath's; the
summary's ``openslide_origin`` says where (0, 0) lies in OpenSlide's uncropped level 0 (docs/labs.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from pcam_pipeline.wsi.reader import Level
from pcam_pipeline.wsi.vendor import STAGED_TILE

if TYPE_CHECKING:
    from PIL import Image as PILImage


def bounds_of(properties: Mapping[str, str], dimensions: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the imaged rectangle of level 0: the slide's bounds, else all of it. Bounds that
    do not lie inside level 0 are ignored (a damaged property must not crop tissue away)."""
    width, height = dimensions
    try:
        x, y = int(properties["openslide.bounds-x"]), int(properties["openslide.bounds-y"])
        w, h = int(properties["openslide.bounds-width"]), int(properties["openslide.bounds-height"])
    except (KeyError, ValueError):
        return 0, 0, width, height
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
        return 0, 0, width, height
    return x, y, w, h


class OpenSlideView:
    """Its levels (each cropped to the bounds) and RGB region reads in a level's own pixels, from the bounds'
    top-left corner; transparent areas over white."""

    def __init__(self, slide: Any) -> None:  # an open openslide.OpenSlide (untyped)
        self.slide = slide
        self.origin_x, self.origin_y, self.width, self.height = bounds_of(slide.properties, slide.dimensions)
        if (self.width, self.height) == tuple(slide.dimensions):  # no bounds: OpenSlide's own levels
            sizes = list(slide.level_dimensions)
        else:
            sizes = [(math.ceil(self.width / d), math.ceil(self.height / d)) for d in slide.level_downsamples]
        # Level-0 pixels per level pixel, as the staged pyramid's frame counts them.
        self.levels = [Level(w, h, self.width / w, STAGED_TILE, STAGED_TILE) for w, h in sizes]

    @property
    def origin(self) -> tuple[int, int]:
        return self.origin_x, self.origin_y

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> NDArray[Any]:
        downsample = self.slide.level_downsamples[level]
        corner = (self.origin_x + round(x * downsample), self.origin_y + round(y * downsample))
        return _opaque(self.slide.read_region(corner, level, (width, height)))

    def read_level(self, level: int) -> NDArray[Any]:
        return self.read_region(level, 0, 0, self.levels[level].width, self.levels[level].height)


def _opaque(region: PILImage.Image) -> NDArray[Any]:
    """OpenSlide's RGBA over white: areas a scanner did not image are transparent (MIRAX, sparse DICOM)."""
    from PIL import Image

    extrema: Any = region.getextrema()  # one (low, high) per band: R, G, B, A
    if extrema[3][0] == 255:
        return np.asarray(region.convert("RGB"))
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, region).convert("RGB"))
