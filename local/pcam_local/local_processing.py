"""A Processing job run locally: its inputs downloaded, the container's entrypoint run with this Python (the
local venv has what the scikit-learn image has), with no network when the request asks for isolation, and its
outputs uploaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pcam_local.job_failures import ProcessingFailed
from pcam_local.local_trainer import split_s3_uri
from pcam_local.sagemaker_job import Job
from pcam_pipeline.models.inference_requests import PROCESSING_ROOT

PROCESSING_ENTRY_PYTHON = {"python3", "python"}


def run_processing(job: Job, work_dir: Path) -> None:
    request = job.request
    root = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=work_dir))

    def local(path: str) -> str:
        return str(root) + path[len(PROCESSING_ROOT) :] if path.startswith(PROCESSING_ROOT) else path

    try:
        for item in request.get("ProcessingInputs", []):
            _download(job.s3, item["S3Input"]["S3Uri"], Path(local(item["S3Input"]["LocalPath"])))
        outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for item in outputs:
            Path(local(item["S3Output"]["LocalPath"])).mkdir(parents=True, exist_ok=True)
        spec = request["AppSpecification"]
        command = [local(part) for part in [*spec.get("ContainerEntrypoint", []), *spec.get("ContainerArguments", [])]]
        if command and command[0] in PROCESSING_ENTRY_PYTHON:
            command[0] = sys.executable
        timeout = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        if request.get("NetworkConfig", {}).get("EnableNetworkIsolation"):
            command = without_network(command)
        environment = {**os.environ, **request.get("Environment", {})}  # the container's, as SageMaker sets it
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env=environment
        )
        if completed.returncode != 0:
            last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise ProcessingFailed(f"AlgorithmError: {last}, exit code: {completed.returncode}")
        for item in outputs:
            _upload(job.s3, Path(local(item["S3Output"]["LocalPath"])), item["S3Output"]["S3Uri"])
        job.outputs = {"ExitMessage": completed.stdout.strip()[-1024:]}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _download(s3, uri: str, target: Path) -> None:
    bucket, prefix = split_s3_uri(uri)
    base = prefix[: prefix.rfind("/") + 1]
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    if not keys:
        raise ProcessingFailed(f"ClientError: no objects found under {uri}")

    def fetch(key: str) -> None:
        path = target / key[len(base) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(fetch, keys))


def _upload(s3, directory: Path, uri: str) -> None:
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(directory).as_posix(), Body=path.read_bytes())


# Run a Python entrypoint with every socket refused, as SageMaker runs a container in network isolation
# (NetworkConfig.EnableNetworkIsolation: "no inbound or outbound network calls").
_NO_NETWORK = """
import os, runpy, socket, sys
def refused(*args, **kwargs):
    raise OSError("network isolation: this job's container has no network")
socket.socket.connect = socket.socket.connect_ex = refused
socket.create_connection = socket.getaddrinfo = refused
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # as `python3 script.py` has it: modules beside it
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def without_network(command: list[str]) -> list[str]:
    """``[python, script, *args]`` run with no network; any other command cannot be isolated here."""
    if len(command) < 2 or command[0] != sys.executable:
        raise ProcessingFailed("ClientError: the local SageMaker isolates only Python entrypoints from the network")
    return [sys.executable, "-c", _NO_NETWORK, *command[1:]]
