"""The bucket's key layout: the prefixes labs drop under and the pipeline writes under, and every key the
pipeline builds. Labs write only under ``incoming/``; the pipeline writes only under its own prefixes below,
none of which triggers it again. What a dropped key means is `dropped_files`."""

from __future__ import annotations

import hashlib

from pcam_pipeline.core.labs import LABS, lab_of_key

INCOMING = "incoming/"
IMAGES = "images/"
MANIFESTS = "manifests/"
QUARANTINE = "quarantine/"
STAGING = "staging/"
EVALUATIONS = "evaluations/"
MODELS = "models/"
CODE = "code/"
SCORES = "scores/"
PREDICTIONS = "predictions/"
TILING = "tiling/"
SIDECAR_SUFFIX = ".json"  # incoming/slides/<slide_id>.json


def staged_key(key: str) -> str:
    """Where the decompressed copy of a dropped ``.gz`` file is written."""
    return STAGING + key[len(INCOMING) : -len(".gz")]


def _quarantined_name(key: str) -> str:
    """The key itself; for a key too long to take the prefix and suffix (S3 keys end at 1,024 bytes), its hash
    (the error file names the key in full), kept in the lab's folder: a lab reads only its own quarantine."""
    if len((QUARANTINE + key + ".error.json").encode()) <= 1024:
        return key
    lab = lab_of_key(key)
    folder = f"{INCOMING}{LABS}/{lab}/" if lab else ""
    return f"{folder}long-names/{hashlib.sha256(key.encode()).hexdigest()}"


def quarantine_key(key: str) -> str:
    return QUARANTINE + _quarantined_name(key)


def quarantine_error_key(key: str) -> str:
    return QUARANTINE + _quarantined_name(key) + ".error.json"


def dataset_image_prefix(dataset: str, split: str, run_id: str) -> str:
    return f"{IMAGES}datasets/{dataset}/{split}/{run_id}/"


SLIDE_IMAGES = f"{IMAGES}slides/"


def sidecar_key(slide_id: str) -> str:
    """Where a lab drops a slide's sidecar (µm/px): beside the slide, in the lab's folder if it has one."""
    lab, _, name = slide_id.rpartition("/")  # a lab's slide id is labs/<lab>/<name> (core/labs)
    return f"{INCOMING}{lab + '/' if lab else ''}slides/{name}{SIDECAR_SUFFIX}"


def slide_image_prefix(slide_id: str, run_id: str) -> str:
    return f"{SLIDE_IMAGES}{slide_id}/{run_id}/"


def scoring_manifest_key(job_name: str) -> str:
    """The ManifestFile of one scoring job: the patches of every slide it scores."""
    return f"{MANIFESTS}scoring/{job_name}.manifest"


def patch_file_name(index: int, image_prefix: str = "") -> str:
    """A patch's JPEG under its image prefix. A slide's patches carry their upload's run id
    (``images/slides/<slide>/<run>/<run>-<index>.jpg``), so base names are unique within any scoring job:
    for a ManifestFile input SageMaker names each output after the entry, but does not document whether it
    keeps the entry's relative path or only its base name, and slides sharing a job must never share an output."""
    if image_prefix.startswith(SLIDE_IMAGES):
        return f"{image_prefix.rstrip('/').rsplit('/', 1)[-1]}-{index:07d}.jpg"
    return f"{index:07d}.jpg"


def short_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def split_manifest_key(dataset: str, split: str, readiness_token: str) -> str:
    """One manifest per combination of inputs, so a job never sees its manifest change under it."""
    return f"{MANIFESTS}{dataset}/{split}/{short_id(readiness_token)}.manifest"


def slide_manifest_key(slide_id: str, run_id: str) -> str:
    return f"{MANIFESTS}slides/{slide_id}/{run_id}.manifest"


def tiling_key(slide_id: str, run_id: str, name: str) -> str:
    """Where ingestion keeps what scoring needs of a slide's upload: a whole-slide image's tile plan
    (plan.json) and thumbnail (thumbnail.jpg), an HDF5 slide's coordinates (coords.npy)."""
    return f"{TILING}{slide_id}/{run_id}/{name}"


def tile_qc_key(slide_id: str, run_id: str, shard: int) -> str:
    """A conversion shard's measures of its tiles' quality (``wsi/tile_qc.py``), one row per tile."""
    return tiling_key(slide_id, run_id, f"qc/{shard:05d}.npy")


def stain_sample_key(image_prefix: str, shard: int) -> str:
    """A conversion shard's sample of its patches' stained optical density (``wsi/stain.py``), beside nothing
    SageMaker reads: a split's or a slide's, under ``tiling/stain/`` + the image prefix without ``images/``."""
    return f"{TILING}stain/{image_prefix.removeprefix(IMAGES)}{shard:05d}.npy"


def staged_slide_key(slide_id: str, run_id: str) -> str:
    """A slide only OpenSlide reads, staged at ingestion as a pyramidal TIFF that conversion shards read."""
    return f"{STAGING}slides/{slide_id}/{run_id}/slide.tif"


def staging_job_prefix(slide_id: str, run_id: str) -> str:
    """A slide too large for the ingest function, staged by a SageMaker Processing job: ``wanted.json`` (what to
    stage), ``source/`` (the exact upload, copied) and ``job/`` (the job's output: the staged copy and its answer)."""
    return f"{STAGING}slides/{slide_id}/{run_id}/"


def coords_key(slide_id: str, run_id: str) -> str:
    """An HDF5 slide's patch coordinates, copied at ingestion: scoring, weeks later, never reads the drop."""
    return tiling_key(slide_id, run_id, "coords.npy")


def labels_key(dataset: str, split: str, run_id: str) -> str:
    """A split's labels, copied at ingestion: images arriving weeks later never need the labels' drop."""
    return f"{MANIFESTS}{dataset}/{split}/labels-{run_id}.npy"


def prediction_key(slide_id: str, extension: str) -> str:
    return f"{PREDICTIONS}{slide_id}.{extension}"


def evaluation_prefix(model_name: str) -> str:
    return f"{EVALUATIONS}{model_name}/"
