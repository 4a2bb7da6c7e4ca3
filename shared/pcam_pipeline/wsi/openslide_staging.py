"""The child process that reads a slide with OpenSlide 4 and writes its staged copy (``wsi.vendor`` runs it with
limits on CPU time and memory, and reads its answer: the last line it prints, as JSON).

The staged copy starts at the level nearest the model's resolution (averaged when the scanner's levels are 4x
apart), and holds every coarser level as OpenSlide renders it. Of its first level, only the tiles within one tile
of tissue are read: tissue is found as the plan will find it (tiling's mask, on the same coarse level), and the
rest is written as white glass without being decoded.
"""

from __future__ import annotations

import json
import math
import resource
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.openslide_view import OpenSlideView
from pcam_pipeline.wsi.resolution import PLAUSIBLE_MPP
from pcam_pipeline.wsi.tiling import PATCH_EDGE, choose_level, choose_mask_read, read_reduced
from pcam_pipeline.wsi.tissue import tissue_mask
from pcam_pipeline.wsi.vendor import OPENSLIDE_OR_CONVERT, STAGED_TILE, StagedSlide

if TYPE_CHECKING:
    pass

REGION_WIDTH = 4096  # staged pixels of a coarser level read at once: a multiple of STAGED_TILE


def _limit_resources(cpu_seconds: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _stage(request: dict[str, Any]) -> dict[str, Any]:
    import openslide  # only the child loads the C library

    try:
        slide = openslide.OpenSlide(request["slide"])
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise InvalidInput("the slide is in a format neither the pipeline nor OpenSlide 4 reads", OPENSLIDE_OR_CONVERT,
                           Path(request["slide"]).name) from exc  # fmt: skip
    except openslide.OpenSlideError as exc:
        raise InvalidInput("OpenSlide cannot read the slide (damaged?)", "a readable slide", str(exc)[:300]) from exc
    with slide:
        width, height = slide.dimensions
        if width * height > request["max_gigapixels"] * 1e9:
            raise InvalidInput(
                "the slide is too large for the configured limits",
                f"at most {request['max_gigapixels']:g} gigapixels at level 0 (the MaxSlideGigapixels setting)",
                f"{width:,} x {height:,} pixels",
            )
        mpp, mpp_source = _resolution(slide.properties, request["mpp"])
        vendor = slide.properties.get("openslide.vendor", "unknown")
        if mpp is None:  # nothing staged: the slide waits in quarantine for its sidecar
            return asdict(StagedSlide("", (width, height), None, mpp_source, vendor, 0, 0, 0))
        view = OpenSlideView(slide)
        first, reduction = _staged_start(view, mpp, request)
        finest = view.levels[first].downsample * reduction * 1.001
        plan = [(first, reduction)] + [(i, 1) for i, level in enumerate(view.levels) if level.downsample > finest]
        reaches = TissueReach(view, mpp, request["model_mpp"])
        _write_staged(view, plan, request["staged"], vendor, reaches)
    size = Path(request["staged"]).stat().st_size
    staged = StagedSlide(request["staged"], (view.width, view.height), mpp, mpp_source, vendor, len(plan), first,
                         size, reduction=reduction, tiles_read=reaches.near, tiles_total=reaches.asked,
                         origin=view.origin)  # fmt: skip
    return asdict(staged)


class TissueReach:
    """Whether a level-0 rectangle comes within one tile of tissue, as the plan will find tissue (tiling's mask
    on the same coarse level): the first staged level is decoded only there. Counts what it was asked."""

    def __init__(self, view: OpenSlideView, mpp: float, model_mpp: float):
        self._edge = PATCH_EDGE * model_mpp / mpp
        index, reduction = choose_mask_read(view.levels, self._edge)
        self._mask = tissue_mask(read_reduced(view, index, reduction))
        self._dx, self._dy = view.width / self._mask.shape[1], view.height / self._mask.shape[0]
        self.asked = self.near = 0

    def __call__(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        edge, dx, dy = self._edge, self._dx, self._dy
        rows = slice(max(0, math.floor((y0 - edge) / dy)), math.ceil((y1 + edge) / dy))
        columns = slice(max(0, math.floor((x0 - edge) / dx)), math.ceil((x1 + edge) / dx))
        near = bool(self._mask[rows, columns].any())
        self.asked, self.near = self.asked + 1, self.near + near
        return near


def _staged_start(view: OpenSlideView, mpp: float, request: dict[str, Any]) -> tuple[int, int]:
    """The level the staged copy starts at, and the whole factor its pixels are averaged by: as coarse as the
    model's resolution allows. A scanner with 4x levels (Aperio's 0.25, 1.0 µm/px) has no level near the model's
    0.972: level 0 averaged 3 x 3 (0.75 µm/px) is staged, not level 0 itself (9 x the pixels to write).
    Refused before anything is decoded when OpenSlide would decode more than ``max_staging_gigapixels``."""
    choose_level(view.levels, mpp, request["model_mpp"])  # refuses a slide coarser than the model
    whole = max(1, int(request["model_mpp"] * 1.001 / mpp))  # the coarsest whole downsample fine enough
    first = max(i for i, level in enumerate(view.levels) if level.downsample <= whole * 1.001)
    reduction = max(1, int(whole / view.levels[first].downsample + 1e-6))
    level_width, level_height = view.levels[first].width, view.levels[first].height
    if level_width * level_height > request["max_staging_gigapixels"] * 1e9:
        raise InvalidInput(
            "the slide has no level near the model's resolution small enough to read within one ingestion",
            f"at most {request['max_staging_gigapixels']:g} gigapixels decoded (level {first} is the nearest at or "
            "finer than the model's); convert it to a pyramidal TIFF with 2x levels: vips tiffsave slide slide.tif "
            "--tile --pyramid --compression jpeg --Q 90",
            f"{level_width:,} x {level_height:,} pixels",
        )
    return first, reduction


def _resolution(properties: Mapping[str, str], override: float | None) -> tuple[float | None, str]:
    if override is not None:
        return override, "the sidecar"
    try:
        mpp_x, mpp_y = float(properties["openslide.mpp-x"]), float(properties["openslide.mpp-y"])
    except (KeyError, ValueError):
        return None, "OpenSlide finds no µm per pixel in the slide's metadata"
    if not (math.isfinite(mpp_x) and math.isfinite(mpp_y)) or abs(mpp_x - mpp_y) > 0.02 * mpp_x:
        return None, f"OpenSlide reads different µm per pixel across and down ({mpp_x:g}, {mpp_y:g})"
    low, high = PLAUSIBLE_MPP  # as for slides the pipeline reads itself: a placeholder waits for a sidecar
    if not low <= mpp_x <= high:
        return None, f"OpenSlide reads {mpp_x:.4g} µm per pixel in the slide's metadata, a placeholder, not a scan"
    vendor = properties.get("openslide.vendor", "unknown")
    return mpp_x, f"the slide's metadata (OpenSlide's openslide.mpp-x, vendor {vendor})"


def _write_staged(
    view: OpenSlideView, plan: list[tuple[int, int]], staged: str, vendor: str, reaches: TissueReach
) -> None:
    """``plan``: (OpenSlide level, reduction) of each staged level, finest first; the first is read only where
    ``reaches`` (near tissue), the coarser ones whole (the plan finds tissue on them)."""
    import tifffile

    with tifffile.TiffWriter(staged, bigtiff=True) as tiff:
        for order, (level, reduction) in enumerate(plan):
            source = view.levels[level]
            width, height = math.ceil(source.width / reduction), math.ceil(source.height / reduction)
            tiles = _tiles_near_tissue(view, level, reduction, reaches) if order == 0 else _tiles(view, level)
            tiff.write(
                tiles,
                shape=(height, width, 3),
                dtype=np.uint8,
                tile=(STAGED_TILE, STAGED_TILE),
                photometric="rgb",
                compression="zlib",
                compressionargs={"level": 1},
                predictor=True,
                subfiletype=1 if order else 0,
                description=f"pcam-pipeline staged copy: {vendor} level {level} / {reduction}" if order == 0 else None,
                metadata=None,
            )


def _tiles(view: OpenSlideView, level: int) -> Iterator[NDArray[Any]]:
    """A level's tiles, row by row, cut from regions of one tile row by REGION_WIDTH pixels (8 MB of RGBA)."""
    size = view.levels[level]
    for y in range(0, size.height, STAGED_TILE):
        rows = min(STAGED_TILE, size.height - y)
        for region_x in range(0, size.width, REGION_WIDTH):
            region = view.read_region(level, region_x, y, min(REGION_WIDTH, size.width - region_x), rows)
            for x in range(0, region.shape[1], STAGED_TILE):
                yield _padded(region[:, x : x + STAGED_TILE])


def _tiles_near_tissue(view: OpenSlideView, level: int, reduction: int, reaches: TissueReach) -> Iterator[NDArray[Any]]:
    """The first staged level's tiles, row by row: each read (``reduction`` x that many level pixels, averaged by
    Pillow's reduce over blocks aligned to the level's origin) only if it comes near tissue; else white."""
    from PIL import Image

    size, span = view.levels[level], STAGED_TILE * reduction  # level pixels under one staged tile
    to_level0 = size.downsample
    glass = np.full((STAGED_TILE, STAGED_TILE, 3), 255, np.uint8)
    for y in range(0, size.height, span):
        for x in range(0, size.width, span):
            width, height = min(span, size.width - x), min(span, size.height - y)
            if not reaches(x * to_level0, y * to_level0, (x + width) * to_level0, (y + height) * to_level0):
                yield glass
                continue
            pixels = view.read_region(level, x, y, width, height)
            if reduction > 1:
                pixels = np.asarray(Image.fromarray(pixels).reduce(reduction))
            yield _padded(pixels)


def _padded(part: NDArray[Any]) -> NDArray[Any]:
    if part.shape[:2] == (STAGED_TILE, STAGED_TILE):
        return part
    tile = np.full((STAGED_TILE, STAGED_TILE, 3), 255, np.uint8)
    tile[: part.shape[0], : part.shape[1]] = part
    return tile


def _peak_memory_mb() -> float:
    """This process's peak resident memory since its exec (getrusage's counts the forked parent's too)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    _limit_resources(request["cpu_seconds"], request["memory_bytes"])
    try:
        answer, status = _stage(request), 0
        answer["peak_memory_mb"] = _peak_memory_mb()
    except InvalidInput as problem:
        answer, status = {"refused": [problem.problem, problem.expected, problem.found]}, 3
    print(json.dumps(answer))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
