"""Training configuration: hyperparameters, tuning ranges and the algorithm's image, kept as data here.

Pure (it needs only botocore's partition data), so the Lambda layer, the tests and the local
SageMaker stand-in all read the same values.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from pcam_training import algorithm_rules

ALGORITHM = "image-classification"
EVALUATION_REPOSITORY = "sagemaker-scikit-learn"
TUNING_OBJECTIVE = {"Type": "Maximize", "MetricName": "validation:accuracy"}


class TrainingConfigError(ValueError):
    """A hyperparameter override or region the algorithm cannot use."""


@cache
def _data(name: str) -> dict[str, Any]:
    document = json.loads(resources.files("pcam_training").joinpath(name).read_text())
    return {key: value for key, value in document.items() if not key.startswith("_")}


def default_hyperparameters() -> dict[str, Any]:
    return dict(_data("hyperparameters.json"))


def _as_sagemaker_string(value: Any) -> str:
    return str(value)  # booleans as True/False, as the algorithm's documentation spells them


PRETRAINED_RESIZE = 256  # the patch's shorter side before a 224 crop: "resize should be larger than image_shape"


def training_hyperparameters(
    num_training_samples: int, image_edge: int, overrides: dict[str, Any] | None = None
) -> dict[str, str]:
    """The HyperParameters map of a training job: defaults, then overrides, then the dataset's facts.

    With pretrained weights (the default) the image shape is the only one they take, 224 x 224, and the
    patches are resized to PRETRAINED_RESIZE first (unless ``resize`` is overridden); from scratch
    (``use_pretrained_model`` 0) the network reads the patches at their own size."""
    if num_training_samples <= 0:
        raise TrainingConfigError("num_training_samples must be the real, positive count of training patches")
    merged = {**default_hyperparameters(), **(overrides or {})}
    for fixed in ("num_training_samples", "image_shape"):
        if fixed in (overrides or {}):
            raise TrainingConfigError(f"{fixed} is derived from the dataset and cannot be overridden")
    if str(merged.get("use_pretrained_model", 0)) == "1":
        edge = algorithm_rules.PRETRAINED_EDGE
        merged.setdefault("resize", max(PRETRAINED_RESIZE, image_edge + 1))
    else:
        edge = image_edge
    merged.update(num_training_samples=num_training_samples, image_shape=f"3,{edge},{edge}")
    hyperparameters = {key: _as_sagemaker_string(value) for key, value in merged.items()}
    problems = algorithm_rules.hyperparameter_problems(hyperparameters)
    if problems:
        raise TrainingConfigError("; ".join(problems))
    return hyperparameters


def tuning_ranges() -> dict[str, list]:
    return dict(_data("tuning.json"))


def _image_uri(repository: str, region: str, tag: str = "tag") -> str:
    registry = _data("image_uris.json")[repository]
    if region not in registry["accounts"]:
        raise TrainingConfigError(f"the {repository} image is not listed for region {region!r}")
    return f"{registry['accounts'][region]}.dkr.ecr.{region}.{_dns_suffix(region)}/{repository}:{registry[tag]}"


def image_uri(region: str) -> str:
    """ECR image of the built-in image classification algorithm in ``region`` (training and transform)."""
    return _image_uri(ALGORITHM, region)


def evaluation_image_uri(region: str) -> str:
    """ECR image of SageMaker's scikit-learn container, which runs the test-set evaluation script."""
    return _image_uri(EVALUATION_REPOSITORY, region)


def staging_image_uri(region: str) -> str:
    """ECR image of SageMaker's scikit-learn container built on Python 3.12 (Ubuntu 24.04), which runs the slide
    staging job with the wheels staged for it (pcam_staging_job)."""
    return _image_uri(EVALUATION_REPOSITORY, region, "staging_tag")


@cache
def _dns_suffix(region: str) -> str:
    """amazonaws.com, amazonaws.com.cn, c2s.ic.gov …: the DNS suffix of the region's partition (botocore's data)."""
    import botocore.loaders

    for partition in botocore.loaders.create_loader().load_data("endpoints")["partitions"]:
        if region in partition["regions"] or re.match(partition["regionRegex"], region):
            return partition["dnsSuffix"]
    return "amazonaws.com"
