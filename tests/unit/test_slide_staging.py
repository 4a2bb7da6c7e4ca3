"""Vendor slides too large for the ingest function go to a SageMaker Processing job (issue 33, A.1): which ones, the
job's request as SageMaker's API takes it, and the flow's side (start once, wait for capacity, hand the end back to
ingestion). The whole path runs on the local stack in tests/integration/test_staging_jobs.py."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

from pcam_pipeline.aws import request_rules
from pcam_pipeline.core.dropped_files import DroppedFile, classify_incoming_key
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings
from pcam_pipeline.models.slide_staging import library_zip, staging_request
from pcam_pipeline.wsi.plans import plan_dropped_slide
from pcam_pipeline.wsi.staging_jobs import (
    SLIDE_STAGED,
    STAGING_WANTED,
    WANTED_FILE,
    NeedsStagingJob,
    StagingWanted,
    needs_staging_job,
    staging_volume_gb,
)
from pcam_pipeline.wsi.structure import SlideLimits
from tests.fakes import conversion_settings, flow_on_fakes, model_settings
from tests.unit.test_sagemaker_flow import sagemaker_event

GIB = 2**30
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # ProcessingJobName (botocore's model)
SETTINGS = SageMakerSettings(role_arn="arn:aws:iam::123456789012:role/sm", region="eu-west-1", bucket="data",
                             staging_role_arn="arn:aws:iam::123456789012:role/sm-staging")  # fmt: skip


def wanted(size: int = 20 * GIB, key: str = "incoming/labs/lab-a/slides/node 7.ndpi", mpp=None) -> StagingWanted:
    dropped = DroppedFile("data", key, "v1", "etag", sequencer="0A1")
    return StagingWanted.of(dropped, "labs/lab-a/node 7", size, mpp, 0.972, SlideLimits())


class HugeFile(io.BytesIO):
    """A file that says it is ``size`` bytes: the routing reads the size, never the bytes."""


def test_a_20_gib_scanner_slide_goes_to_a_staging_job_and_one_under_3_gib_stays_in_the_function():
    limits = SlideLimits()
    assert limits.max_vendor_bytes == 20 * GIB and limits.lambda_vendor_bytes == 3 * GIB
    assert needs_staging_job(20 * GIB, limits) and not needs_staging_job(2 * GIB, limits)
    kind = classify_incoming_key("incoming/slides/node-7.ndpi")

    def never_copied(path):
        raise AssertionError("the ingest function never copies a slide a job stages")

    with pytest.raises(NeedsStagingJob) as routed:
        plan_dropped_slide(HugeFile(b"x" * 64), 20 * GIB, kind, None, conversion_settings(), (None, never_copied))
    assert routed.value.size == 20 * GIB
    with pytest.raises(InvalidInput, match="too large to copy for OpenSlide"):
        plan_dropped_slide(HugeFile(b"x" * 64), 21 * GIB, kind, None, conversion_settings(), (None, never_copied))


@pytest.mark.parametrize("size, volume", [(1 * GIB, 30), (20 * GIB, 70), (200 * GIB, 610), (6000 * GIB, 16384)])
def test_the_jobs_volume_holds_the_slide_its_unpacked_copy_and_the_staged_copy(size, volume):
    assert staging_volume_gb(size) == volume


def test_the_staging_request_is_one_sagemakers_api_takes_within_the_cost_limits():
    request = staging_request(SETTINGS, wanted(), "s3://data/code/stage_slide-abc/", "s3://data/")
    assert request_rules.violations("sagemaker", "CreateProcessingJob", request) == []
    assert NAME_PATTERN.match(request["ProcessingJobName"]) and request["ProcessingJobName"].startswith("pcam-stage-")
    cluster = request["ProcessingResources"]["ClusterConfig"]
    assert (cluster["InstanceType"], cluster["VolumeSizeInGB"]) == ("ml.m5.xlarge", 70)
    assert request["NetworkConfig"]["EnableNetworkIsolation"] is True, "an untrusted file, read with no network"
    assert request["AppSpecification"]["ImageUri"].endswith("/sagemaker-scikit-learn:1.4-2-py312-cpu-py3")
    assert all(len(argument) <= 256 for argument in request["AppSpecification"]["ContainerArguments"])
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in request["ProcessingInputs"]}
    assert inputs["slide"] == "s3://data/" + wanted().source_key and inputs["slide"].endswith("/source/slide.ndpi")
    assert request["RoleArn"].endswith("role/sm-staging")
    child_seconds = int(request["Environment"]["PCAM_CHILD_CPU_SECONDS"])
    assert 2 * child_seconds + 900 <= request["StoppingCondition"]["MaxRuntimeInSeconds"], "time left to upload"


def test_under_sse_kms_the_volume_is_encrypted_except_on_instance_types_with_local_storage():
    kms = SageMakerSettings(**{**SETTINGS.__dict__, "data_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/k"})
    request = staging_request(kms, wanted(), "s3://data/code/x/", "s3://data/")
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == kms.data_key_arn
    nvme = SageMakerSettings(**{**kms.__dict__, "staging_instance_type": "ml.r5d.xlarge"})
    limits = nvme.limits.__class__(**{**nvme.limits.__dict__, "processing_instance_types": ("ml.r5d.xlarge",)})
    nvme = SageMakerSettings(**{**nvme.__dict__, "limits": limits})
    request = staging_request(nvme, wanted(), "s3://data/code/x/", "s3://data/")
    assert "VolumeKmsKeyId" not in request["ProcessingResources"]["ClusterConfig"]
    assert request_rules.violations("sagemaker", "CreateProcessingJob", request) == []


def test_an_instance_type_outside_the_cost_limits_is_refused_before_sagemaker_is_asked():
    big = SageMakerSettings(**{**SETTINGS.__dict__, "staging_instance_type": "ml.p5.48xlarge"})
    with pytest.raises(Exception, match="ml.p5.48xlarge"):
        staging_request(big, wanted(), "s3://data/code/x/", "s3://data/")


def test_each_upload_and_resolution_has_its_own_folder_and_job():
    assert wanted().prefix != wanted(mpp=0.25).prefix, "a sidecar's µm/px asks for another job"
    assert wanted().job_name != wanted(mpp=0.25).job_name
    other_upload = StagingWanted.of(DroppedFile("data", wanted().key, "v2", "e2"), "labs/lab-a/node 7",
                                    20 * GIB, None, 0.972, SlideLimits())  # fmt: skip
    assert other_upload.prefix != wanted().prefix
    assert StagingWanted.from_json(json.loads(json.dumps(wanted().to_json()))) == wanted()


def test_the_flow_starts_one_job_waits_for_capacity_and_hands_its_end_back_to_ingestion():
    world = flow_on_fakes()
    asked = wanted()
    world.blobs.put_json(asked.prefix + WANTED_FILE, asked.to_json())
    world.launcher.capacity_refusals = 1
    outcome = world.flow.on_event(STAGING_WANTED, {"prefix": asked.prefix, "slide_id": asked.slide_id}, "id-1")
    assert outcome == {"staging": "waiting for SageMaker capacity", "job": asked.job_name}
    assert not world.launcher.names(JobKind.SLIDE_STAGING)
    world.flow.on_event("Scheduled Event", {}, "tick-1")  # the scheduled tick starts what waited
    assert world.launcher.names(JobKind.SLIDE_STAGING) == [asked.job_name]
    world.flow.on_event(STAGING_WANTED, {"prefix": asked.prefix, "slide_id": asked.slide_id}, "id-2")
    assert len(world.launcher.started) == 1, "asked again: the same job"

    code = world.blobs.stored_keys("code/stage_slide-")
    assert {k.rsplit("/", 1)[-1] for k in code} == {"stage_slide.py", "pcam_pipeline.zip"}, "no wheels here"
    world.flow.on_event(*sagemaker_event(JobKind.SLIDE_STAGING, asked.job_name, "Completed"), "done-1")
    (ended,) = world.ingest_queue.take_all()
    assert ended["detail-type"] == SLIDE_STAGED
    assert ended["detail"] == {"prefix": asked.prefix, "job": asked.job_name, "status": "Completed", "reason": ""}


def test_a_failed_job_is_handed_back_with_its_reason_and_operators_are_alerted():
    world = flow_on_fakes()
    asked = wanted(size=5 * GIB)
    world.blobs.put_json(asked.prefix + WANTED_FILE, asked.to_json())
    world.flow.on_event(STAGING_WANTED, {"prefix": asked.prefix, "slide_id": asked.slide_id}, "id-1")
    failure = {"FailureReason": "ClientError: the volume is full"}
    world.flow.on_event(*sagemaker_event(JobKind.SLIDE_STAGING, asked.job_name, "Failed", **failure), "failed-1")
    (ended,) = world.ingest_queue.take_all()
    assert ended["detail"]["status"] == "Failed" and ended["detail"]["reason"] == "ClientError: the volume is full"
    (alert,) = world.alerter.alerts
    assert "slide staging job failed" in alert[0] and "quarantined with this reason" in alert[1]


def test_the_library_zip_is_the_same_bytes_every_time_and_imports_from_the_zip():
    first = library_zip()
    assert first == library_zip(), "content-addressed: one upload per version of the code"
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert "pcam_pipeline/wsi/openslide_staging.py" in names and "pcam_pipeline/__init__.py" in names
    assert all(name.endswith(".py") for name in names)


def test_a_staging_instance_type_outside_the_limits_quarantines_the_slide_with_the_reason_not_a_dead_letter():
    world = flow_on_fakes(model_settings(staging_instance_type="ml.p5.48xlarge"))
    asked = wanted()
    world.blobs.put_json(asked.prefix + WANTED_FILE, asked.to_json())
    outcome = world.flow.on_event(STAGING_WANTED, {"prefix": asked.prefix, "slide_id": asked.slide_id}, "id-1")
    assert outcome["staging"] == "failed" and "ml.p5.48xlarge" in outcome["reason"]
    (ended,) = world.ingest_queue.take_all()
    assert ended["detail"]["status"] == "Failed" and "the job request is invalid" in ended["detail"]["reason"]
    assert world.alerter.alerts, "operators must fix the setting"
