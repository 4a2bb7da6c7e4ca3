"""A dataset's own training settings: ``incoming/datasets/<dataset>/training.json``. Pure.

Lets a lab (or ``pcam smoke``) train one dataset on another instance type or with other
hyperparameters than the deployment's defaults, e.g. ``{"instance_type": "ml.g4dn.xlarge",
"hyperparameters": {"epochs": 1}}``. Drop it before the dataset's splits: it applies to the training
started after it is recorded. ``"experiment": true`` (as ``pcam smoke`` sets) trains and evaluates as
usual, but its models never become current, so they never score slides. The operator's cost limits
(instance types, count, epochs) are checked at ingestion (``core/cost_limits``); hyperparameters are checked
against the algorithm when training starts (a refusal fails that training job with the reason).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import botocore.session

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.lab_json import parse_lab_json

MAX_BYTES = 64 * 1024
_EXPECTED = '{"instance_type": "ml.g4dn.xlarge", "hyperparameters": {"epochs": 1}}'


@cache
def _training_instance_types() -> tuple[str, ...]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return tuple(model.shape_for("TrainingInstanceType").enum)


def parse_training_settings(body: bytes) -> dict[str, Any]:
    """The settings in a dropped training.json, or InvalidInput saying plainly what is wrong."""
    document = parse_lab_json(body, "training.json", MAX_BYTES, _EXPECTED)
    if not isinstance(document, dict):
        raise InvalidInput("training.json must hold a JSON object", _EXPECTED, type(document).__name__)
    unknown = sorted(set(document) - {"instance_type", "instance_count", "hyperparameters", "experiment"})
    if unknown:
        raise InvalidInput("training.json has settings the pipeline does not know", _EXPECTED, ", ".join(unknown))
    instance_type = document.get("instance_type")
    if instance_type is not None and instance_type not in _training_instance_types():
        raise InvalidInput(
            "instance_type is not a SageMaker training instance type", "e.g. ml.g4dn.xlarge", repr(instance_type)
        )
    count = document.get("instance_count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100):
        raise InvalidInput("instance_count must be a whole number from 1 to 100", "e.g. 1", repr(count))
    if not isinstance(document.get("experiment", False), bool):
        raise InvalidInput("experiment must be true or false", '"experiment": true', repr(document["experiment"]))
    hyperparameters = document.get("hyperparameters", {})
    if not isinstance(hyperparameters, dict) or not all(
        isinstance(v, str | int | float | bool) for v in hyperparameters.values()
    ):
        raise InvalidInput("hyperparameters must be an object of plain values", '{"epochs": 1}', repr(hyperparameters))
    return {key: value for key, value in document.items() if value is not None}
