"""The slide staging job as SageMaker runs it: its entrypoint on Python 3.12 (the scikit-learn 1.4-2-py312 image's),
with nothing but the code the flow uploads (the library zip) and the wheels `sam build` staged (make template builds
them before the tests), installed with `pip --no-index`, in an environment without AWS credentials or network
settings. Its staged copy holds the same pixels as the ingest function's own staging of the same slide."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pcam_local.template import project_root
from pcam_pipeline.models.slide_staging import STAGING_SCRIPT, WHEELS_FOLDER, library_zip
from pcam_pipeline.wsi.staging_run import job_limits
from pcam_pipeline.wsi.vendor import stage_with_openslide
from pcam_synth.slide_writers import OPENSLIDE_RECIPES, write_slide
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION
WHEELS = project_root() / ".aws-sam" / "build" / "StagingJobWheelsLayer" / "python" / WHEELS_FOLDER
PYTHON_312 = shutil.which("python3.12") and sorted(
    glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))
)
REQUEST = {"model_mpp": 0.972, "mpp": None, "max_gigapixels": 25, "max_vendor_bytes": 20 << 30,
           "max_archive_files": 10_000}  # fmt: skip
JOB_LIMITS = {"PCAM_CHILD_CPU_SECONDS": "300", "PCAM_CHILD_MEMORY_BYTES": str(4 << 30),
              "PCAM_MAX_STAGING_GIGAPIXELS": "64"}  # fmt: skip


@pytest.mark.skipif(not WHEELS.is_dir(), reason="no staged wheels: run `make template` (sam build) first")
@pytest.mark.skipif(not PYTHON_312, reason="no Python 3.12 on this machine (pyenv)")
@pytest.mark.parametrize("recipe", OPENSLIDE_RECIPES, ids=lambda r: r.name)
def test_the_job_stages_a_slide_on_python_312_from_its_wheels_alone(tmp_path, recipe):
    slide, _ = write_slide(recipe, tmp_path)
    base = tmp_path / "processing"
    for folder in ("code", "slide", "request"):
        (base / "input" / folder).mkdir(parents=True)
    shutil.copy(slide, base / "input" / "slide" / f"slide{slide.suffix}")
    shutil.copy(project_root() / "shared" / "pcam_staging_job" / STAGING_SCRIPT, base / "input" / "code")
    (base / "input" / "code" / "pcam_pipeline.zip").write_bytes(library_zip())
    shutil.copytree(WHEELS, base / "input" / "code" / "wheels")
    (base / "input" / "request" / "wanted.json").write_text(json.dumps(REQUEST))

    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **JOB_LIMITS}  # no AWS_*, no proxy, no PYTHONPATH
    command = [PYTHON_312[-1], str(base / "input" / "code" / STAGING_SCRIPT), "--base-dir", str(base),
               "--request-file", str(base / "input" / "request" / "wanted.json")]  # fmt: skip
    done = subprocess.run(command, env=clean, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads((base / "output" / "staged.json").read_text())
    assert answer["vendor"] in ("aperio", "dicom") and answer["path"] == "staged.tif"

    # The ingest function's own staging (Python 3.13, its layer's libraries), for the same slide.
    limits = job_limits({**REQUEST, "cpu_seconds": 300, "memory_bytes": 4 << 30, "max_staging_gigapixels": 64})
    source = slide
    if slide.suffix == ".zip":
        from pcam_pipeline.wsi.archives import unpack_slide_archive

        source = unpack_slide_archive(shutil.copy(slide, tmp_path / "again.zip"), tmp_path / "unpacked", limits)
    here = stage_with_openslide(Path(source), tmp_path / "here.tif", 0.972, None, limits)
    with tifffile.TiffFile(base / "output" / "staged.tif") as job, tifffile.TiffFile(here.path) as function:
        assert len(job.pages) == len(function.pages) == answer["levels_staged"]
        for job_page, function_page in zip(job.pages, function.pages, strict=True):
            assert np.array_equal(job_page.asarray(), function_page.asarray()), "tile for tile, the same pixels"
