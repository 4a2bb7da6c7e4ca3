"""Slides only OpenSlide 4 reads (NDPI, MIRAX, DICOM, SCN, BIF, Philips TIFF, JPEG 2000 SVS, ...): read once at
ingestion from a local copy and staged as a pyramidal TIFF the pipeline's own reader reads, so conversion shards keep
their ranged GETs of a few tiles.

The staged TIFF holds the pyramid from the level nearest the model's resolution down to the smallest, as OpenSlide
renders it (transparent areas over white; the first level averaged when the scanner's levels are 4x apart, and
decoded only near tissue: `openslide_staging`), in 512-pixel tiles, deflate with the horizontal predictor:
lossless, so the patches are OpenSlide's pixels. Its coordinates keep the original level 0's frame (``base_size``).

OpenSlide is a C library and the file is untrusted: it runs in a child process (``python -m
pcam_pipeline.wsi.openslide_staging``) with limits on CPU time and memory. A file that stalls, exhausts or crashes it is
refused with a reason, instead of timing the function out or killing it on every retry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pcam_pipeline.core.deadline import seconds_left
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.structure import SlideLimits

STAGED_TILE = 512
UPLOAD_MARGIN_SECONDS = 120  # of an invocation, kept for uploading the staged copy and writing the plan
OPENSLIDE_OR_CONVERT = (
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
    tiles_read: int = 0  # of the first staged level, near tissue (the others are white glass, never decoded)
    tiles_total: int = 0
    origin: tuple[int, int] = (0, 0)  # the staged (0, 0) in OpenSlide's level 0: the slide's bounds (openslide_view)


def stage_with_openslide(
    slide_path: Path, staged_path: Path, model_mpp: float, mpp: float | None, limits: SlideLimits
) -> StagedSlide:
    """Read ``slide_path`` with OpenSlide in a child process and write the staged TIFF; ``mpp`` (a sidecar's)
    overrides the slide's own. InvalidInput when OpenSlide refuses, fails, or exceeds the limits."""
    wall_seconds = child_time_limit(limits)
    cpu_seconds = max(1, min(limits.openslide_cpu_seconds, int(wall_seconds)))
    request = {"slide": str(slide_path), "staged": str(staged_path), "model_mpp": model_mpp, "mpp": mpp,
               "max_gigapixels": limits.max_gigapixels, "cpu_seconds": cpu_seconds,
               "max_staging_gigapixels": limits.max_staging_gigapixels,
               "memory_bytes": limits.openslide_memory_bytes}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pcam_pipeline.wsi.openslide_staging", json.dumps(request)],
            capture_output=True,
            timeout=wall_seconds,  # CPU time is capped in the child; this catches a sleep, and Lambda's timeout
            check=False,
            env=child_environment(),
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidInput(
            "OpenSlide did not finish reading the slide in the time it had",
            f"within {wall_seconds:.0f} s (at most {limits.openslide_cpu_seconds * 2} s, and what the function had "
            f"left less {UPLOAD_MARGIN_SECONDS} s to upload the staged copy)",
            "a slide that takes longer to read, or a stall",
        ) from exc
    return _answer(done)


def child_time_limit(limits: SlideLimits) -> float:
    """Seconds the child may run: its own limit, or less when the invocation ends sooner (the function's timeout,
    900 s, is below the child's 1,200): then it is refused with a reason instead of killed with the function."""
    own = limits.openslide_cpu_seconds * 2
    left = seconds_left()
    return own if left is None else max(0.1, min(own, left - UPLOAD_MARGIN_SECONDS))


def child_environment() -> dict[str, str]:
    """What the child needs to run, and no more: the parent's import path (Lambda's PYTHONPATH names only the
    runtime's folder, and the layer's /opt/python reaches sys.path through the runtime's bootstrap: Lambda DG,
    "Packaging your layer content"). Never the function's AWS credentials: the untrusted file's reader needs none."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "_X_AMZN", "_HANDLER"))}
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return {**kept, "PYTHONPATH": os.pathsep.join([*inherited, *filter(None, sys.path)])}


def _answer(done: subprocess.CompletedProcess[bytes]) -> StagedSlide:
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    answer = None
    if done.returncode in (0, 3) and lines:
        try:
            answer = json.loads(lines[-1])  # the child's last line; a library may have printed before it
        except ValueError:
            answer = None
    if not isinstance(answer, dict):
        raise InvalidInput(
            "OpenSlide stopped while reading the slide (the file is damaged or made to crash a reader)",
            "a slide OpenSlide reads to the end",
            _how_it_ended(done),
        )
    if "refused" in answer:
        raise InvalidInput(*answer["refused"])
    answer["base_size"] = tuple(answer["base_size"])
    answer["origin"] = tuple(answer.get("origin", (0, 0)))
    return StagedSlide(**answer)


def _how_it_ended(done: subprocess.CompletedProcess[bytes]) -> str:
    if done.returncode < 0:
        return f"the reader was stopped by signal {-done.returncode} (CPU or memory limit, or a crash)"
    last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
    return f"exit status {done.returncode}: {last[0][:300]}"
