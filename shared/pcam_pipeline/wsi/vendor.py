"""Slides only OpenSlide 4 reads (NDPI, MIRAX, DICOM, SCN, BIF, Philips TIFF, JPEG 2000 SVS, ...): read once at
ingestion from a local copy and staged as a pyramidal TIFF the pipeline's own reader reads, so conversion shards keep
their ranged GETs of a few tiles.

The staged TIFF holds the pyramid from the level patches are cut from down to the smallest, each level exactly as
OpenSlide renders it (transparent areas over white), in 512-pixel tiles, deflate with the horizontal predictor:
lossless, so the patches are OpenSlide's pixels. Its coordinates keep the original level 0's frame (``base_size``).

OpenSlide is a C library and the file is untrusted: it runs in a child process (``python -m
pcam_pipeline.wsi.vendor``) with limits on CPU time and memory. A file that stalls, exhausts or crashes it is
refused with a reason, instead of timing the function out or killing it on every retry.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.reader import Level
from pcam_pipeline.wsi.structure import SlideLimits
from pcam_pipeline.wsi.tiling import choose_level

STAGED_TILE = 512
REGION_WIDTH = 4096  # a multiple of STAGED_TILE
OPENSLIDE_RECIPE = (
    "a slide OpenSlide 4 opens (its formats: https://openslide.org/formats/), or a pyramidal TIFF: "
    "vips tiffsave slide slide.tif --tile --pyramid --compression jpeg --Q 90"
)


@dataclass(frozen=True)
class StagedSlide:
    """What the child process staged: where, the original level 0's size and µm/px, and what it was."""

    path: str
    base_size: tuple[int, int]
    mpp: float | None  # None: the slide does not say (a sidecar must)
    mpp_source: str
    vendor: str
    levels_staged: int
    first_level: int  # OpenSlide's level the staged pyramid starts at
    staged_bytes: int


def stage_with_openslide(
    slide_path: Path, staged_path: Path, model_mpp: float, mpp: float | None, limits: SlideLimits
) -> StagedSlide:
    """Read ``slide_path`` with OpenSlide in a child process and write the staged TIFF; ``mpp`` (a sidecar's)
    overrides the slide's own. InvalidInput when OpenSlide refuses, fails, or exceeds the limits."""
    request = {"slide": str(slide_path), "staged": str(staged_path), "model_mpp": model_mpp, "mpp": mpp,
               "max_gigapixels": limits.max_gigapixels, "cpu_seconds": limits.openslide_cpu_seconds,
               "memory_bytes": limits.openslide_memory_bytes}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pcam_pipeline.wsi.vendor", json.dumps(request)],
            capture_output=True,
            timeout=limits.openslide_cpu_seconds * 2,  # CPU time is capped in the child; this catches a sleep
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidInput(
            "OpenSlide did not finish reading the slide", f"within {limits.openslide_cpu_seconds * 2} s", "a stall"
        ) from exc
    return _answer(done)


def _answer(done: subprocess.CompletedProcess) -> StagedSlide:
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    answer = json.loads(lines[-1]) if done.returncode in (0, 3) and lines else None
    if answer is None:
        raise InvalidInput(
            "OpenSlide stopped while reading the slide (the file is damaged or made to crash a reader)",
            "a slide OpenSlide reads to the end",
            _how_it_ended(done),
        )
    if "refused" in answer:
        raise InvalidInput(*answer["refused"])
    answer["base_size"] = tuple(answer["base_size"])
    return StagedSlide(**answer)


def _how_it_ended(done: subprocess.CompletedProcess) -> str:
    if done.returncode < 0:
        return f"the reader was stopped by signal {-done.returncode} (CPU or memory limit, or a crash)"
    last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
    return f"exit status {done.returncode}: {last[0][:300]}"


# --------------------------------------------------------------------------------------------- the child process
def _limit_resources(cpu_seconds: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _stage(request: dict) -> dict:
    import openslide  # only the child loads the C library

    try:
        slide = openslide.OpenSlide(request["slide"])
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise InvalidInput("the slide is in a format neither the pipeline nor OpenSlide 4 reads", OPENSLIDE_RECIPE,
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
        levels = [Level(w, h, width / w, STAGED_TILE, STAGED_TILE) for w, h in slide.level_dimensions]
        first = choose_level(levels, mpp, request["model_mpp"])
        _write_staged(slide, range(first, len(levels)), request["staged"], vendor)
    size = Path(request["staged"]).stat().st_size
    return asdict(StagedSlide(request["staged"], (width, height), mpp, mpp_source, vendor, len(levels) - first,
                              first, size))  # fmt: skip


def _resolution(properties, override: float | None) -> tuple[float | None, str]:
    if override is not None:
        return override, "the sidecar"
    try:
        mpp_x, mpp_y = float(properties["openslide.mpp-x"]), float(properties["openslide.mpp-y"])
    except (KeyError, ValueError):
        return None, "OpenSlide finds no µm per pixel in the slide's metadata"
    if not (math.isfinite(mpp_x) and math.isfinite(mpp_y)) or abs(mpp_x - mpp_y) > 0.02 * mpp_x:
        return None, f"OpenSlide reads different µm per pixel across and down ({mpp_x:g}, {mpp_y:g})"
    vendor = properties.get("openslide.vendor", "unknown")
    return mpp_x, f"the slide's metadata (OpenSlide's openslide.mpp-x, vendor {vendor})"


def _write_staged(slide, level_indices: range, staged: str, vendor: str) -> None:
    import tifffile

    with tifffile.TiffWriter(staged, bigtiff=True) as tiff:
        for order, level in enumerate(level_indices):
            width, height = slide.level_dimensions[level]
            tiff.write(
                _tiles(slide, level),
                shape=(height, width, 3),
                dtype=np.uint8,
                tile=(STAGED_TILE, STAGED_TILE),
                photometric="rgb",
                compression="zlib",
                compressionargs={"level": 1},
                predictor=True,
                subfiletype=1 if order else 0,
                description=f"pcam-pipeline staged copy: {vendor} level {level}" if order == 0 else None,
                metadata=None,
            )


def _tiles(slide, level: int):
    """The level's tiles, row by row, cut from regions of one tile row by REGION_WIDTH pixels read from OpenSlide
    (8 MB of RGBA at a time, whatever the slide's width)."""
    width, height = slide.level_dimensions[level]
    downsample = slide.level_downsamples[level]
    for y in range(0, height, STAGED_TILE):
        rows = min(STAGED_TILE, height - y)
        for region_x in range(0, width, REGION_WIDTH):
            size = (min(REGION_WIDTH, width - region_x), rows)
            region = _opaque(slide.read_region((round(region_x * downsample), round(y * downsample)), level, size))
            for x in range(0, size[0], STAGED_TILE):
                tile = np.full((STAGED_TILE, STAGED_TILE, 3), 255, np.uint8)
                part = region[:, x : x + STAGED_TILE]
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile


def _opaque(region) -> np.ndarray:
    """OpenSlide's RGBA over white: areas a scanner did not image are transparent (MIRAX, sparse DICOM)."""
    rgba = np.asarray(region)
    alpha = rgba[..., 3:4].astype(np.uint16)
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    return ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    _limit_resources(request["cpu_seconds"], request["memory_bytes"])
    try:
        answer, status = _stage(request), 0
    except InvalidInput as problem:
        answer, status = {"refused": [problem.problem, problem.expected, problem.found]}, 3
    print(json.dumps(answer))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
