"""Vendor slides too large for the ingest function are staged by a SageMaker Processing job on the local stack
(issue 33, A.1). A stack of its own with ``VendorSlideLambdaMaxGB`` 0: every vendor slide takes the job's path, as
one above 3 GiB does (``tests/unit/test_slide_staging.py`` routes a 20 GiB slide there and sizes its volume). The
local SageMaker runs the job's own entrypoint (``pcam_staging_job/stage_slide.py``) on the code the flow uploaded.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pcam_synth.real_tissue import REAL_NDPI, REALTISSUE
from pcam_synth.slide_writers import OPENSLIDE_RECIPES, write_slide
from pcam_synth.synth import synth_split
from tests.integration.conftest import INTEGRATION, stack_of_its_own

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with stack_of_its_own(tmp_path_factory, "staging", VendorSlideLambdaMaxGB="0") as running:
        yield running


def staging_job(stack, pipeline, key: str) -> dict:
    """The staging job ingestion asked for this upload (its file record names it)."""
    job = stack.state.get(f"job#{pipeline.file_record(key)['staging_job']}")
    assert job["kind"] == "slide staging"
    return job


def test_a_vendor_slide_too_large_for_the_function_is_staged_by_a_job_and_scored(stack, pipeline, tmp_path):
    rng = np.random.default_rng(5)
    for split, count in (("train", 1200), ("valid", 200), ("test", 200)):
        pipeline.drop_split("staging-model", split, *synth_split(count, rng))
    truths = {}
    for recipe in OPENSLIDE_RECIPES:  # an Aperio JPEG 2000 SVS, and a DICOM series zipped (unpacked by the job)
        path, truths[recipe.name] = write_slide(recipe, tmp_path)
        pipeline.drop(f"incoming/slides/{path.name}", path.read_bytes())
    pipeline.settle()
    for name, truth in truths.items():
        job = staging_job(stack, pipeline, f"incoming/slides/{name}{'.zip' if 'dicom' in name else '.svs'}")
        assert job["status"] == "Completed" and job["output_prefix"].startswith(f"staging/slides/{name}/")
        assert stack.list_keys(job["output_prefix"] + "job/staged.tif"), "the job's staged copy"
        assert not [k for k in stack.list_keys(f"staging/slides/{name}/") if k.endswith("/slide.tif")], (
            "the ingest function staged nothing itself"
        )
        assert stack.state.get(f"slide#{name}")["scoring_status"] == "scored", name
        rows = list(csv.DictReader(io.StringIO(stack.read(f"predictions/{name}.csv").decode())))
        edge = round(truth.cell_edge)
        corners = np.array([(int(r["coord_x"]), int(r["coord_y"])) for r in rows])
        cells = (corners[:, 1] // edge, corners[:, 0] // edge)
        assert truth.tissue[cells].all() and len(rows) >= 0.9 * truth.tissue.sum(), name
        probabilities = np.array([float(r["tumor_probability"]) for r in rows])
        assert roc_auc_score(truth.tumour[cells], probabilities) > 0.9, "the job's pixels are the slide's"
        summary = pipeline.json(f"predictions/{name}.json")
        assert (summary["slide_width"], summary["slide_height"]) == (3072, 2304)


@pytest.mark.skipif(not (REALTISSUE / REAL_NDPI).exists(), reason="../shared/realtissue is not beside the repo")
def test_a_real_ndpi_is_staged_by_the_job_and_refused_with_the_reason_when_it_is_not_brightfield(stack, pipeline):
    pipeline.drop("incoming/slides/tritc.ndpi", (REALTISSUE / REAL_NDPI).read_bytes())
    pipeline.settle()
    job = staging_job(stack, pipeline, "incoming/slides/tritc.ndpi")
    assert job["status"] == "Completed", "the job read it; the pipeline then judged it"
    reason = pipeline.json("quarantine/incoming/slides/tritc.ndpi.error.json")
    assert "the slide is not a brightfield slide" in reason["error"]


def test_a_failed_staging_job_quarantines_the_slide_with_its_reason_and_alerts(stack, pipeline, tmp_path, alerts):
    alerts()
    stack.sagemaker.outcome_next["ProcessingJob"] = ("Failed", "AlgorithmError: the instance ran out of disk")
    path, _ = write_slide(OPENSLIDE_RECIPES[0], tmp_path)
    pipeline.drop("incoming/slides/unlucky.svs", path.read_bytes())
    pipeline.settle()
    job = staging_job(stack, pipeline, "incoming/slides/unlucky.svs")
    assert job["status"] == "Failed"
    reason = pipeline.json("quarantine/incoming/slides/unlucky.svs.error.json")
    assert reason["problem"] == "the staging job did not stage the slide"
    assert "ran out of disk" in reason["found"]
    assert any("slide staging job failed" in a["Subject"] for a in alerts())
    assert {queue: letters for queue, letters in stack.dead_letters().items() if letters} == {}
