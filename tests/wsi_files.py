"""Whole-slide files and plans for the unit tests of pcam_pipeline.wsi: a tiny uncompressed pyramid written by
tifffile, a slide opened from a path, a tile plan of given corners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS
from pcam_pipeline.wsi.tiling import TilePlan


def open_slide(path, limits=DEFAULT_SLIDE_LIMITS):
    handle = open(path, "rb")  # noqa: SIM115 - closed with the slide
    return WholeSlide(handle, path.stat().st_size, limits)


def plan_of(coords, edge=100.0, overlap=0.0) -> TilePlan:
    return TilePlan(mpp=0.5, mpp_source="test", model_mpp=0.972, level=0, level_mpp=0.5, tile_edge=edge,
                    stride=edge * (1 - overlap), overlap=overlap, min_tissue_fraction=0.5, width=1000, height=1000,
                    tiles_total=100, tissue_area_mm2=0.1, mask_level=0, thumbnail_downsample=(10.0, 10.0),
                    coords=coords)  # fmt: skip


def tiny_pyramid(path, *, sizes=(128, 64, 32), tile=32, byteorder="<", bigtiff=False, samples=3, **options) -> Path:
    """A small uncompressed pyramid written by tifffile, for the reader's refusals."""
    shape = (lambda edge: (edge, edge, samples)) if samples > 1 else (lambda edge: (edge, edge))
    with tifffile.TiffWriter(path, byteorder=byteorder, bigtiff=bigtiff) as writer:
        for edge in sizes:
            writer.write(np.full(shape(edge), 90, np.uint8), tile=(tile, tile), metadata=None, **options)
    return path
