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
import os
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
    peak_memory_mb: float = 0.0  # the child process's peak resident memory
    reduction: int = 1  # the first level's pixels averaged over reduction x reduction blocks


def stage_with_openslide(
    slide_path: Path, staged_path: Path, model_mpp: float, mpp: float | None, limits: SlideLimits
) -> StagedSlide:
    """Read ``slide_path`` with OpenSlide in a child process and write the staged TIFF; ``mpp`` (a sidecar's)
    overrides the slide's own. InvalidInput when OpenSlide refuses, fails, or exceeds the limits."""
    request = {"slide": str(slide_path), "staged": str(staged_path), "model_mpp": model_mpp, "mpp": mpp,
               "max_gigapixels": limits.max_gigapixels, "cpu_seconds": limits.openslide_cpu_seconds,
               "max_staging_gigapixels": limits.max_staging_gigapixels,
               "memory_bytes": limits.openslide_memory_bytes}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pcam_pipeline.wsi.vendor", json.dumps(request)],
            capture_output=True,
            timeout=limits.openslide_cpu_seconds * 2,  # CPU time is capped in the child; this catches a sleep
            check=False,
            env=_child_environment(),
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidInput(
            "OpenSlide did not finish reading the slide", f"within {limits.openslide_cpu_seconds * 2} s", "a stall"
        ) from exc
    return _answer(done)


def _child_environment() -> dict[str, str]:
    """The parent's import path for the child: Lambda's PYTHONPATH names only the runtime's folder, and the layer's
    /opt/python reaches sys.path through the runtime's bootstrap (Lambda DG, "Packaging your layer content")."""
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*inherited, *filter(None, sys.path)])}


def _answer(done: subprocess.CompletedProcess) -> StagedSlide:
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    answer = json.loads(lines[-1]) if done.returncode in (0, 3) and lines else None  # the child's last line
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
        first, reduction = _staged_start(slide, mpp, request)
        plan = [(first, reduction)] + [(i, 1) for i, ds in enumerate(slide.level_downsamples)
                                       if ds > slide.level_downsamples[first] * reduction * 1.001]  # fmt: skip
        _write_staged(slide, plan, request["staged"], vendor)
    size = Path(request["staged"]).stat().st_size
    return asdict(StagedSlide(request["staged"], (width, height), mpp, mpp_source, vendor, len(plan), first,
                              size, reduction=reduction))  # fmt: skip


def _staged_start(slide, mpp: float, request: dict) -> tuple[int, int]:
    """The level the staged copy starts at, and the whole factor its pixels are averaged by: as coarse as the
    model's resolution allows. A scanner with 4x levels (Aperio's 0.25, 1.0 µm/px) has no level near the model's
    0.972: level 0 averaged 3 x 3 (0.75 µm/px) is staged, not level 0 itself (9 x the pixels to write).
    Refused before anything is decoded when OpenSlide would decode more than ``max_staging_gigapixels``."""
    width, height = slide.dimensions
    levels = [Level(w, h, width / w, STAGED_TILE, STAGED_TILE) for w, h in slide.level_dimensions]
    choose_level(levels, mpp, request["model_mpp"])  # refuses a slide coarser than the model
    whole = max(1, int(request["model_mpp"] * 1.001 / mpp))  # the coarsest whole downsample fine enough
    first = max(i for i, ds in enumerate(slide.level_downsamples) if ds <= whole * 1.001)
    reduction = max(1, int(whole / slide.level_downsamples[first] + 1e-6))
    level_width, level_height = slide.level_dimensions[first]
    if level_width * level_height > request["max_staging_gigapixels"] * 1e9:
        raise InvalidInput(
            "the slide has no level near the model's resolution small enough to read within one ingestion",
            f"at most {request['max_staging_gigapixels']:g} gigapixels decoded (level {first} is the nearest at or "
            "finer than the model's); convert it to a pyramidal TIFF with 2x levels: vips tiffsave slide slide.tif "
            "--tile --pyramid --compression jpeg --Q 90",
            f"{level_width:,} x {level_height:,} pixels",
        )
    return first, reduction


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


def _write_staged(slide, plan: list[tuple[int, int]], staged: str, vendor: str) -> None:
    """``plan``: (OpenSlide level, reduction) of each staged level, finest first."""
    import tifffile

    with tifffile.TiffWriter(staged, bigtiff=True) as tiff:
        for order, (level, reduction) in enumerate(plan):
            width, height = (math.ceil(size / reduction) for size in slide.level_dimensions[level])
            tiff.write(
                _tiles(slide, level, reduction),
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


def _tiles(slide, level: int, reduction: int):
    """The staged level's tiles, row by row, cut from regions of one tile row by REGION_WIDTH staged pixels read
    from OpenSlide (8 MB of RGBA at a time without reduction, whatever the slide's width) and averaged over
    reduction x reduction blocks aligned to the level's origin (Pillow's reduce; edge blocks average the
    pixels they have)."""
    from PIL import Image

    level_width, level_height = slide.level_dimensions[level]
    downsample = slide.level_downsamples[level]
    step_x, step_y = REGION_WIDTH * reduction, STAGED_TILE * reduction
    for y in range(0, level_height, step_y):
        rows = min(step_y, level_height - y)
        for region_x in range(0, level_width, step_x):
            size = (min(step_x, level_width - region_x), rows)
            region = _opaque(slide.read_region((round(region_x * downsample), round(y * downsample)), level, size))
            if reduction > 1:
                region = np.asarray(Image.fromarray(region).reduce(reduction))
            for x in range(0, region.shape[1], STAGED_TILE):
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
