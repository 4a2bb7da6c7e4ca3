"""Where to cut a whole-slide image into patches: resolution, tissue, and the grid of kept tiles. Pure.

A tile is a square of level 0 whose edge covers 96 pixels at the model's resolution (PCam: 96 px at
0.972 µm/px, Camelyon16's 0.243 µm/px level 0 downsampled 4x). Its pixels are read from the pyramid
level nearest at or finer than that resolution and resampled to 96 x 96. Tissue is found on a
low-resolution level (``wsi/tissue.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.brightfield import check_brightfield_he
from pcam_pipeline.wsi.reader import Level, WholeSlide
from pcam_pipeline.wsi.tissue import tissue_mask

PATCH_EDGE = 96
# A slide may be this much coarser than the model (a 10x scan at 1.0 µm/px for a 0.972 model) and still be read.
COARSER_TOLERANCE = 1.10
MASK_PIXELS_PER_TILE_EDGE = 8  # tissue fractions are measured on at least 8 x 8 mask pixels per tile
MAX_MASK_PIXELS = 64_000_000
THUMBNAIL_EDGE = 1600  # longest side of the picture the overlay is drawn on


@dataclass(frozen=True)
class TilingSettings:
    model_mpp: float = 0.972  # ModelMicronsPerPixel
    min_tissue_fraction: float = 0.5  # MinTissueFraction
    overlap: float = 0.0  # TileOverlap: 0.25 steps by three quarters of a tile


@dataclass(frozen=True)
class TilePlan:
    """What ingestion decided for one slide upload; shards read their range of ``coords`` from it."""

    mpp: float
    mpp_source: str
    model_mpp: float
    level: int  # pyramid level the patches are read from
    level_mpp: float
    tile_edge: float  # level-0 pixels
    stride: float
    overlap: float
    min_tissue_fraction: float
    width: int  # level 0
    height: int
    tiles_total: int
    tissue_area_mm2: float
    mask_level: int
    thumbnail_downsample: tuple[float, float]  # level-0 pixels per thumbnail pixel (x, y)
    coords: list[Any] = field(default_factory=list)  # [x, y] of each kept tile's top-left corner, level 0
    # A slide only OpenSlide reads: its vendor, and the slide's level the staged copy starts at (``level`` counts
    # from there).
    vendor: str = ""
    first_level: int = 0
    # Where the plan's (0, 0) lies in OpenSlide's level 0: the slide's bounds (MIRAX, SCN), as QuPath crops it.
    openslide_origin: tuple[int, int] = (0, 0)
    brightfield: dict[str, float] = field(default_factory=dict)  # what the H&E check measured (``brightfield``)

    @property
    def tiles_kept(self) -> int:
        return len(self.coords)

    @property
    def slide_level(self) -> int:
        """The level patches are read from, counted in the slide as dropped."""
        return self.first_level + self.level

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> TilePlan:
        values = {name: body[name] for name in cls.__dataclass_fields__ if name in body}
        values["thumbnail_downsample"] = tuple(values["thumbnail_downsample"])
        values["openslide_origin"] = tuple(values.get("openslide_origin", (0, 0)))
        return cls(**values)


def choose_level(levels: list[Level], mpp: float, model_mpp: float) -> int:
    """The coarsest level whose pixels are at least as fine as the model's (resampled down to it)."""
    if mpp > model_mpp * COARSER_TOLERANCE:
        raise InvalidInput(
            "the slide was scanned at a coarser resolution than the model was trained at",
            f"at most {model_mpp * COARSER_TOLERANCE:.3f} µm per pixel (ModelMicronsPerPixel {model_mpp})",
            f"{mpp:.4g} µm per pixel",
        )
    fine_enough = [i for i, level in enumerate(levels) if mpp * level.downsample <= model_mpp * 1.001]
    return max(fine_enough, default=0)


def choose_mask_read(levels: list[Level], tile_edge: float) -> tuple[int, int]:
    """Where tissue is looked for: the coarsest level with at least 8 mask pixels per tile edge, and the
    factor its pixels are averaged by so that the mask stays within 64 megapixels. A slide without a
    pyramid (an Aperio region export) is read once, tile by tile, at a bounded reduction of level 0."""
    usable = [i for i, level in enumerate(levels) if tile_edge / level.downsample >= MASK_PIXELS_PER_TILE_EDGE]
    index = max(usable, default=0)
    level = levels[index]
    # Averaging costs less than filtering pixels the mask does not need (a single-level slide's level 0): keep
    # 8 mask pixels per tile edge and a thumbnail's detail for the overlay, no more.
    detail = min(
        (tile_edge / level.downsample) // MASK_PIXELS_PER_TILE_EDGE, max(level.width, level.height) // THUMBNAIL_EDGE
    )
    reduction = max(1, int(detail), math.ceil(math.sqrt(level.width * level.height / MAX_MASK_PIXELS)))
    while math.ceil(level.width / reduction) * math.ceil(level.height / reduction) > MAX_MASK_PIXELS:
        reduction += 1  # the square root's rounding
    if reduction > 1 and tile_edge / (level.downsample * reduction) < MASK_PIXELS_PER_TILE_EDGE:
        raise InvalidInput(
            "the slide is too large to find tissue on at its tiles' size",
            f"at most {MAX_MASK_PIXELS // 1_000_000} megapixels with {MASK_PIXELS_PER_TILE_EDGE} per tile edge",
            f"level {index} of {level.width:,} x {level.height:,} for tiles of {tile_edge:.0f} pixels",
        )
    return index, reduction


class LevelledSlide(Protocol):
    """A slide as tiling reads it: its levels, and RGB reads of a level's own pixels (``WholeSlide``, or
    OpenSlide's view of a slide it stages)."""

    levels: list[Level]

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> NDArray[Any]: ...

    def read_level(self, level: int) -> NDArray[Any]: ...


def read_reduced(slide: LevelledSlide, level: int, reduction: int) -> NDArray[Any]:
    """The level's pixels averaged over reduction x reduction blocks, read in bands of rows so that memory
    holds one band and the result, never the whole level."""
    if reduction == 1:
        return slide.read_level(level)
    size = slide.levels[level]
    band = reduction * max(1, size.tile_height // reduction)
    rows = []
    for y in range(0, size.height, band):
        pixels = slide.read_region(level, 0, y, size.width, min(band, size.height - y))
        rows.append(np.asarray(Image.fromarray(pixels).reduce(reduction)))
    return np.concatenate(rows)


def tile_grid(width: int, height: int, edge: float, stride: float) -> NDArray[Any]:
    """Top-left corners (x, y), level 0, row by row, of every whole tile; origin at (0, 0)."""
    columns = int(np.floor((width - edge) / stride)) + 1 if width >= edge else 0
    rows = int(np.floor((height - edge) / stride)) + 1 if height >= edge else 0
    xs = np.round(np.arange(columns) * stride).astype(np.int64)
    ys = np.round(np.arange(rows) * stride).astype(np.int64)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.column_stack([grid_x.ravel(), grid_y.ravel()])


def tissue_fractions(
    mask: NDArray[Any], coords: NDArray[Any], edge: float, downsample: tuple[float, float]
) -> NDArray[Any]:
    """The fraction of each tile's area that the mask calls tissue (summed-area table: one pass)."""
    summed = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    summed[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    dx, dy = downsample
    x0 = np.clip(np.round(coords[:, 0] / dx).astype(int), 0, mask.shape[1])
    y0 = np.clip(np.round(coords[:, 1] / dy).astype(int), 0, mask.shape[0])
    x1 = np.clip(np.round((coords[:, 0] + edge) / dx).astype(int), 0, mask.shape[1])
    y1 = np.clip(np.round((coords[:, 1] + edge) / dy).astype(int), 0, mask.shape[0])
    inside = summed[y1, x1] - summed[y0, x1] - summed[y1, x0] + summed[y0, x0]
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    fractions: NDArray[Any] = inside / area
    return fractions


def thumbnail_of(rgb: NDArray[Any]) -> Image.Image:
    image = Image.fromarray(rgb)
    image.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE), Image.Resampling.LANCZOS)
    return image


def plan_tiles(
    slide: WholeSlide, mpp: float, mpp_source: str, settings: TilingSettings
) -> tuple[TilePlan, Image.Image]:
    """Decide the tiles of a slide from its low-resolution level; returns the plan and the overlay's thumbnail."""
    levels = slide.levels
    level = choose_level(levels, mpp, settings.model_mpp)
    edge = PATCH_EDGE * settings.model_mpp / mpp
    stride = edge * (1 - settings.overlap)
    mask_index, reduction = choose_mask_read(levels, edge)
    low = read_reduced(slide, mask_index, reduction)
    brightfield = check_brightfield_he(low)  # before tissue: a fluorescence slide is "not brightfield"
    mask = tissue_mask(low)
    downsample = (slide.width / low.shape[1], slide.height / low.shape[0])
    coords = tile_grid(slide.width, slide.height, edge, stride)
    fractions = tissue_fractions(mask, coords, edge, downsample)
    kept = coords[fractions >= settings.min_tissue_fraction]
    thumbnail = thumbnail_of(low)
    plan = TilePlan(
        mpp=mpp,
        mpp_source=mpp_source,
        model_mpp=settings.model_mpp,
        level=level,
        level_mpp=mpp * levels[level].downsample,
        tile_edge=edge,
        stride=stride,
        overlap=settings.overlap,
        min_tissue_fraction=settings.min_tissue_fraction,
        width=slide.width,
        height=slide.height,
        tiles_total=len(coords),
        tissue_area_mm2=float(mask.sum() * downsample[0] * downsample[1] * (mpp / 1000) ** 2),
        mask_level=mask_index,
        thumbnail_downsample=(slide.width / thumbnail.width, slide.height / thumbnail.height),
        coords=kept.tolist(),
        brightfield=brightfield.to_json(),
    )
    if not plan.coords:
        raise InvalidInput(
            "no tissue was found on the slide",
            f"tiles with at least {settings.min_tissue_fraction:.0%} tissue (MinTissueFraction)",
            f"{plan.tissue_area_mm2:.2f} mm² of tissue in {len(coords):,} tiles, none enough",
        )
    return plan, thumbnail


def read_patch(slide: WholeSlide, plan: TilePlan, x: int, y: int) -> NDArray[Any]:
    """The 96 x 96 RGB patch of the tile at level-0 (x, y), read at the plan's level and resampled."""
    level = slide.levels[plan.level]
    # Scanners round each level's size down, so its x and y downsamples differ slightly (Aperio).
    dx, dy = level.downsample, slide.height / level.height
    width, height = max(1, round(plan.tile_edge / dx)), max(1, round(plan.tile_edge / dy))
    pixels = slide.read_region(plan.level, round(x / dx), round(y / dy), width, height)
    if width == height == PATCH_EDGE:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((PATCH_EDGE, PATCH_EDGE), Image.Resampling.LANCZOS))
