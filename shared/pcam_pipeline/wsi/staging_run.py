"""Inside the slide staging job (SageMaker Processing): stage its one slide with the ingest function's own code
(``wsi.vendor``: OpenSlide in a child process with limits), here where the slide fits. Writes the staged copy and
``staged.json`` (what was staged), or ``refused.json`` (why not, in plain words) to the output folder: a slide
the job cannot read is a reason for the lab, not a failed job."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.archives import unpack_slide_archive
from pcam_pipeline.wsi.staging_jobs import REFUSED_FILE, STAGED_FILE, STAGED_SLIDE
from pcam_pipeline.wsi.structure import SlideLimits
from pcam_pipeline.wsi.vendor import stage_with_openslide


def job_limits(request: dict[str, Any]) -> SlideLimits:
    """The ingest function's limits on the file, and the job's own on OpenSlide's time, memory and pixels."""
    return SlideLimits(
        max_gigapixels=request["max_gigapixels"],
        max_vendor_bytes=request["max_vendor_bytes"],
        max_archive_files=request["max_archive_files"],
        openslide_cpu_seconds=request["cpu_seconds"],
        max_staging_gigapixels=request["max_staging_gigapixels"],
        openslide_memory_bytes=request["memory_bytes"],
    )


def stage_in_job(slide_dir: Path, output_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Stage the one file under ``slide_dir``; the answer written. A .zip is unpacked inside the output folder (the
    volume sized for it: only the declared paths are documented to be on it) and removed before the job ends, so
    SageMaker's upload never sees it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    work_dir = output_dir / ".unpacked"
    try:
        files = sorted(p for p in slide_dir.rglob("*") if p.is_file())
        if len(files) != 1:
            raise InvalidInput("the staging job was not given one slide", "one file", f"{len(files)} files")
        path, limits = files[0], job_limits(request)
        if path.suffix.lower() == ".zip":
            work_dir.mkdir(parents=True, exist_ok=True)
            path = unpack_slide_archive(path, work_dir, limits)
        staged = stage_with_openslide(path, output_dir / STAGED_SLIDE, request["model_mpp"], request["mpp"], limits)
        answer, name = {**asdict(staged), "path": STAGED_SLIDE if staged.path else ""}, STAGED_FILE
    except InvalidInput as problem:
        (output_dir / STAGED_SLIDE).unlink(missing_ok=True)
        answer, name = {"refused": [problem.problem, problem.expected, problem.found]}, REFUSED_FILE
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    (output_dir / name).write_text(json.dumps(answer))
    return answer
