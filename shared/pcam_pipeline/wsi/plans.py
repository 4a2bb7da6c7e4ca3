"""A whole-slide image's tile plan from the slide at hand: its µm/px (the slide's own, or its sidecar's), its tissue
and its tiles. Pure apart from the local files a vendor slide is staged in; ingestion and `pcam check` both call it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import WholeSlideFile
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.lab_json import parse_lab_json
from pcam_pipeline.core.ports import ByteFile
from pcam_pipeline.core.settings import ConversionSettings
from pcam_pipeline.scoring.batches import check_slide_fits_one_job
from pcam_pipeline.wsi.archives import check_free_space, unpack_slide_archive
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.resolution import check_mpp
from pcam_pipeline.wsi.staging_jobs import NeedsStagingJob, needs_staging_job
from pcam_pipeline.wsi.structure import NeedsOpenSlide
from pcam_pipeline.wsi.tiling import TilePlan, plan_tiles
from pcam_pipeline.wsi.vendor import StagedSlide, stage_with_openslide

SIDECAR_MAX_BYTES = 4096
SIDECAR_EXAMPLE = '{"mpp": 0.25}'


class MissingResolution(InvalidInput):
    """The slide does not say its µm/px and no sidecar does: it waits in quarantine for its sidecar."""


def sidecar_source(key: str, version: str) -> str:
    return f"sidecar {key} (version {version})"


def parse_sidecar(body: bytes) -> float:
    """The µm per level-0 pixel a sidecar gives; anything else in it is refused, not ignored."""
    document = parse_lab_json(body, "the sidecar", SIDECAR_MAX_BYTES, SIDECAR_EXAMPLE)
    if not isinstance(document, dict) or "mpp" not in document:
        raise InvalidInput(
            "the sidecar does not give the slide's µm per pixel",
            f"a JSON object such as {SIDECAR_EXAMPLE}",
            repr(document)[:200],
        )
    unknown = sorted(set(document) - {"mpp"})
    if unknown:
        found = ", ".join(unknown)[:200]
        raise InvalidInput("the sidecar holds fields the pipeline does not know", 'only "mpp"', found)
    mpp = document["mpp"]
    if isinstance(mpp, bool) or not isinstance(mpp, int | float):
        raise InvalidInput("the sidecar's mpp is not a number", f"a number such as {SIDECAR_EXAMPLE}", repr(mpp)[:200])
    return check_mpp(float(mpp), "the sidecar")


def missing_resolution(slide_id: str, why: str) -> MissingResolution:
    sidecar = keys.sidecar_key(slide_id)
    return MissingResolution(
        "the slide does not say its resolution (µm per pixel)",
        f'a sidecar {sidecar} containing {{"mpp": <µm per pixel of level 0>}}, for example {SIDECAR_EXAMPLE} for '
        "a 40x scan: drop it and this upload of the slide is read again (no need to drop the slide again)",
        why,
    )


def plan_whole_slide(
    f: ByteFile,
    size: int,
    slide_id: str,
    sidecar: dict[str, Any] | None,
    settings: ConversionSettings,
    staged: StagedSlide | None = None,
) -> tuple[TilePlan, Image.Image]:
    """Read a slide's structure and tissue and plan its tiles at the sidecar's µm/px, else its own; the plan
    and the thumbnail. Refuses (InvalidInput) what ingestion refuses: an unreadable slide, no resolution, too
    many tiles for one scoring job. ``staged``: ``f`` is a vendor slide's staged copy (its frame and µm/px)."""
    base_size = staged.base_size if staged else None
    with WholeSlide(f, size, settings.slide_limits, base_size) as slide:
        own = (staged.mpp, staged.mpp_source) if staged else (slide.resolution.mpp, slide.resolution.source)
        if sidecar:
            mpp, source = sidecar["mpp"], sidecar_source(sidecar["key"], sidecar["version"])
        elif own[0] is not None:
            mpp, source = own
        else:
            raise missing_resolution(slide_id, own[1])
        plan, thumbnail = plan_tiles(slide, mpp, source, settings.tiling)
    if staged:
        plan = replace(plan, vendor=staged.vendor, first_level=staged.first_level, openslide_origin=staged.origin)
    check_slide_fits_one_job(plan.tiles_kept, settings.max_patches_per_slide)
    return plan, thumbnail


def plan_vendor_slide(
    path: Path,
    workdir: Path,
    slide_id: str,
    sidecar: dict[str, Any] | None,
    settings: ConversionSettings,
    archive: bool,
) -> tuple[TilePlan, Image.Image, StagedSlide]:
    """Plan a slide only OpenSlide reads: unpack it (a .zip), stage it in ``workdir`` and plan on the staged copy."""
    limits = settings.slide_limits
    if archive:
        path = unpack_slide_archive(path, Path(tempfile.mkdtemp(dir=workdir)), limits)
    mpp = sidecar["mpp"] if sidecar else None
    staged = stage_with_openslide(path, workdir / "staged.tif", settings.tiling.model_mpp, mpp, limits)
    if staged.mpp is None:
        raise missing_resolution(slide_id, staged.mpp_source)
    with open(staged.path, "rb") as f:
        plan, thumbnail = plan_whole_slide(f, staged.staged_bytes, slide_id, sidecar, settings, staged)
    return plan, thumbnail, staged


def local_slide_path(work: Path, key: str) -> Path:
    """Where a slide is copied for OpenSlide: ``slide`` and the key's extension (OpenSlide tells some formats by
    it). Never the key's own name: one near S3's 1,024-byte key limit, or in decomposed Unicode, is longer than
    the 255 bytes a file name may have, and would fail only after the whole download."""
    return work / f"slide{PurePosixPath(key).suffix.lower()}"


def plan_dropped_slide(
    f: ByteFile,
    size: int,
    kind: WholeSlideFile,
    sidecar: dict[str, Any] | None,
    settings: ConversionSettings,
    local_copy: tuple[Path, Callable[[Path], None]],
) -> tuple[TilePlan, Image.Image, StagedSlide | None]:
    """Plan a dropped slide with the pipeline's own reader, or, when that defers (a vendor format or layout, a
    compression it does not decode), with OpenSlide on a local copy: ``local_copy`` is the file to copy the slide
    to, in an empty work folder and named as dropped (OpenSlide tells NDPI, CZI and Sakura by their extension),
    and how to copy it there. The staged copy, if one was made, is the third value."""
    try:
        if kind.reader != "tiff":
            raise NeedsOpenSlide(f"{kind.reader} slide")
        return (*plan_whole_slide(f, size, kind.slide_id, sidecar, settings), None)
    except NeedsOpenSlide as why:
        limits = settings.slide_limits
        if size > limits.max_vendor_bytes:
            limit = f"at most {limits.max_vendor_bytes / 2**30:g} GiB"
            problem = "the slide is too large to copy for OpenSlide (MaxVendorSlideGB)"
            raise InvalidInput(problem, limit, f"{size:,} bytes") from why
        if needs_staging_job(size, limits):
            raise NeedsStagingJob(size) from why
        local, copy = local_copy
        check_free_space(local.parent, size, "the slide's copy")
        copy(local)
        try:
            return plan_vendor_slide(local, local.parent, kind.slide_id, sidecar, settings, kind.reader == "archive")
        except MissingResolution:
            raise
        except InvalidInput as refused:
            if kind.reader != "tiff":
                raise
            # The pipeline's reason first (it names what the file holds), then OpenSlide's.
            raise InvalidInput(
                why.problem, why.expected, f"{why.found}; OpenSlide 4: {refused.describe()}"
            ) from refused
