"""The SageMaker flow's side of slide staging jobs (``wsi.staging_jobs``): start one when ingestion asks (within
the operator's cost limits, waiting for capacity as every job does), follow it, and tell ingestion how it ended.

The engine is SageMaker Processing: the pipeline's other jobs already run there, so its job records, capacity
waits, cost limits (instance types, in requests and IAM), alarms and roles apply unchanged; it needs no VPC
(AWS Batch or ECS on Fargate do); each job's storage is sized from its slide (ClusterConfig.VolumeSizeInGB, up
to 16 TB); and the job runs with no network (EnableNetworkIsolation), as reading an untrusted file should.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import CapacityRefused, InvalidJobRequest, QuotaIsZero
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.core.model_records import JobRecord
from pcam_pipeline.core.ports import BlobStore, EventPublisher, MessageQueue
from pcam_pipeline.models.inference_requests import PROCESSING_ROOT, processing_input
from pcam_pipeline.models.job_tracker import JobKindBase, JobTracker, failed
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings, tag_list, validate
from pcam_pipeline.state.views import EvaluationState
from pcam_pipeline.wsi.staging_jobs import WANTED_FILE, StagingWanted, slide_staged_message

STAGING_SCRIPT = "stage_slide.py"
WHEELS_FOLDER = "pcam_staging_wheels"  # where the StagingJobWheelsLayer puts them (/opt/python/…)
UPLOAD_MARGIN_SECONDS = 900  # of the job's runtime, kept for SageMaker's upload of the staged copy
CHILD_MEMORY_BYTES = 4 << 30  # OpenSlide's child process, on an instance of 16 GB (ml.m5.xlarge)
JOB_STAGING_GIGAPIXELS = 64.0  # pixels OpenSlide may decode for one slide here (the function: 4)


def staging_request(
    settings: SageMakerSettings, wanted: StagingWanted, code_uri: str, bucket_uri: str
) -> dict[str, Any]:
    """The CreateProcessingJob request that stages ``wanted``: its code, the upload's copy and what to stage in;
    the staged copy out (``bucket_uri``: ``s3://<bucket>/``)."""
    runtime = settings.staging_max_runtime_seconds
    request = {
        "ProcessingJobName": wanted.job_name,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": settings.staging_instance_type,
                "VolumeSizeInGB": wanted.volume_gb,
                **settings.volume_key(settings.staging_instance_type),
            }
        },
        "NetworkConfig": {"EnableNetworkIsolation": True},  # an untrusted file, read with no network
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
        "AppSpecification": {
            "ImageUri": _staging_image_uri(settings.region),
            "ContainerEntrypoint": ["python3", f"{PROCESSING_ROOT}/input/code/{STAGING_SCRIPT}"],
            "ContainerArguments": [
                "--base-dir",
                PROCESSING_ROOT,
                "--request-file",
                f"{PROCESSING_ROOT}/input/request/{WANTED_FILE}",
            ],  # fmt: skip
        },
        "ProcessingInputs": [
            processing_input("code", code_uri),
            processing_input("request", bucket_uri + wanted.prefix + WANTED_FILE),
            processing_input("slide", bucket_uri + wanted.source_key),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "staged",
                    "S3Output": {
                        "S3Uri": bucket_uri + wanted.output_prefix,
                        "LocalPath": f"{PROCESSING_ROOT}/output",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
            **settings.output_key,
        },  # fmt: skip
        "Environment": {
            "PCAM_CHILD_CPU_SECONDS": str(max(60, (runtime - UPLOAD_MARGIN_SECONDS) // 2)),
            "PCAM_CHILD_MEMORY_BYTES": str(CHILD_MEMORY_BYTES),
            "PCAM_MAX_STAGING_GIGAPIXELS": str(JOB_STAGING_GIGAPIXELS),
        },  # fmt: skip
        "RoleArn": settings.staging_role_arn or settings.role_arn,
        "Tags": tag_list({"pcam:slide": wanted.slide_id, "pcam:kind": str(JobKind.SLIDE_STAGING)}),
    }
    validate("CreateProcessingJob", request, settings.limits)
    return request


def _staging_image_uri(region: str) -> str:
    from pcam_training import config  # the flow function's training configuration layer

    return config.staging_image_uri(region)


class SlideStagingJobs(JobKindBase):
    kinds: tuple[JobKind, ...] = (JobKind.SLIDE_STAGING,)
    failure_consequence = (
        "The slide is quarantined with this reason (and a File Quarantined event); its lab may drop it again."
    )

    def __init__(self, settings: SageMakerSettings, state: EvaluationState, blobs: BlobStore, jobs: JobTracker,
                 ingest_queue: MessageQueue | None, publisher: EventPublisher):  # fmt: skip
        super().__init__(publisher)
        self._settings, self._state, self._blobs, self._jobs, self._ingest = settings, state, blobs, jobs, ingest_queue

    def start(self, prefix: str) -> dict[str, Any]:
        """Start the job ingestion asked for under ``prefix`` (again: nothing new); it may wait for capacity."""
        wanted = StagingWanted.from_json(json.loads(self._blobs.get_bytes(prefix + WANTED_FILE)))
        job = JobRecord(name=wanted.job_name, kind=JobKind.SLIDE_STAGING, slide_id=wanted.slide_id,
                        run_id=wanted.dropped.run_id, output_prefix=prefix)  # fmt: skip
        self._jobs.record(job)
        try:
            request = staging_request(self._settings, wanted, staging_code_uri(self._blobs), self._blobs.uri(""))
            self._jobs.start_once(job, request)
        except (InvalidJobRequest, QuotaIsZero) as exc:  # no retry or wait helps: the slide is quarantined, and said
            reason = exc.how_to_raise() if isinstance(exc, QuotaIsZero) else f"the job request is invalid: {exc}"
            self._jobs.fail(failed(job), self, reason)
            return {"staging": "failed", "job": job.name, "reason": reason}
        except CapacityRefused:  # a wait, not a failure: the scheduled tick starts it again
            self._state.wait_for_capacity(job.name, str(job.kind), prefix=prefix)
            return {"staging": "waiting for SageMaker capacity", "job": job.name}
        return {"staging": "started", "job": job.name, "volume_gb": wanted.volume_gb}

    def on_completed(self, job: JobRecord, detail: dict[str, Any], delivery: str) -> dict[str, Any]:
        self._tell_ingestion(job, "Completed")
        return {"staging": "handed back to ingestion"}

    def on_failed(self, job: JobRecord, reason: str) -> None:
        """Ingestion quarantines the slide with the reason; operators are alerted (a job failing is not routine)."""
        self._tell_ingestion(job, str(job.status), reason)

    def _tell_ingestion(self, job: JobRecord, status: str, reason: str = "") -> None:
        if self._ingest is None:
            raise RuntimeError("the flow has no ingest queue (INGEST_QUEUE_URL) to hand the staged slide back")
        prefix = job.output_prefix or ""
        self._ingest.send([slide_staged_message(prefix, job.name, status, reason)])


def staging_code_uri(blobs: BlobStore) -> str:
    """Upload the job's code once per version of it (a content-addressed folder): the entrypoint, the domain library
    as a zip of its Python files, and the wheels staged with the layer (none on the local stack); its URI."""
    script = resources.files("pcam_staging_job").joinpath(STAGING_SCRIPT).read_bytes()
    library = library_zip()
    wheels = staged_wheels()
    identity = script + library + "".join(f"{p.name}:{p.stat().st_size}" for p in wheels).encode()
    folder = f"{keys.CODE}stage_slide-{hashlib.sha256(identity).hexdigest()[:12]}/"
    if not blobs.exists(folder + STAGING_SCRIPT):  # the script last: present, it says the folder is complete
        blobs.put_bytes(folder + "pcam_pipeline.zip", library, "application/zip")
        for wheel in wheels:
            blobs.put_bytes(f"{folder}wheels/{wheel.name}", wheel.read_bytes(), "application/zip")
        blobs.put_bytes(folder + STAGING_SCRIPT, script, "text/x-python")
    return blobs.uri(folder)


@cache  # the layer's files do not change within a process: zip them once
def library_zip() -> bytes:
    """``pcam_pipeline``'s Python files, zipped the same way every time (sorted, one date): zipimport reads it."""
    import pcam_pipeline

    root = Path(pcam_pipeline.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(root.rglob("*.py")):
            name = f"pcam_pipeline/{path.relative_to(root).as_posix()}"
            bundle.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), path.read_bytes())
    return buffer.getvalue()


def staged_wheels() -> list[Path]:
    for entry in sys.path:
        folder = Path(entry or ".") / WHEELS_FOLDER
        if folder.is_dir():
            return sorted(folder.glob("*.whl"))
    return []
