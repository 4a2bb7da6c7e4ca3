"""What one deployment lets anyone spend on SageMaker: the instance types each kind of job may use, the most
instances per job, the most epochs per training, and the most training starts per dataset per day. Pure.

Set by the operator (template parameters); a lab's training.json is checked against them at ingestion, and
every request is checked again before it is sent. The template's IAM conditions (``sagemaker:InstanceTypes``,
``sagemaker:MaxRuntimeInSeconds``) hold the same line should a check here ever be wrong. SageMaker has no
condition key for an instance count: that limit is held here and by the account's quotas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcam_pipeline.core.errors import InvalidInput, InvalidJobRequest

DEFAULT_EPOCHS = 15  # training/pcam_training/hyperparameters.json (test_cost_limits checks they agree)


@dataclass(frozen=True)
class CostLimits:
    training_instance_types: tuple[str, ...] = ("ml.p3.2xlarge", "ml.g4dn.xlarge", "ml.g5.xlarge")
    transform_instance_types: tuple[str, ...] = ("ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge")
    processing_instance_types: tuple[str, ...] = ("ml.m5.large", "ml.m5.xlarge")
    max_instance_count: int = 2  # per training or transform job
    max_epochs: int = 100
    max_training_starts_per_day: int = 4  # per dataset, UTC day

    def check_training_settings(self, settings: dict[str, Any]) -> None:
        """A lab's training.json within the operator's limits, or InvalidInput naming the limit."""
        instance_type = settings.get("instance_type")
        if instance_type is not None and instance_type not in self.training_instance_types:
            raise InvalidInput(
                "instance_type is not one this deployment allows for training (AllowedTrainingInstanceTypes)",
                "one of " + ", ".join(self.training_instance_types),
                instance_type,
            )
        count = settings.get("instance_count", 1)
        if count > self.max_instance_count:
            raise InvalidInput(
                "instance_count is more than this deployment allows (MaxInstanceCount)",
                f"at most {self.max_instance_count}",
                str(count),
            )
        epochs = settings.get("hyperparameters", {}).get("epochs", DEFAULT_EPOCHS)
        if not _whole_number_at_most(epochs, self.max_epochs):
            raise InvalidInput(
                "epochs is more than this deployment allows (MaxTrainingEpochs)",
                f"a whole number of at most {self.max_epochs}",
                repr(epochs),
            )

    def check_request(self, operation: str, request: dict[str, Any]) -> None:
        """InvalidJobRequest if a request would use an instance type, count or epochs beyond the limits."""
        problems = []
        allowed = {
            "CreateTrainingJob": self.training_instance_types,
            "CreateHyperParameterTuningJob": self.training_instance_types,
            "CreateTransformJob": self.transform_instance_types,
            "CreateProcessingJob": self.processing_instance_types,
        }[operation]
        for instance_type, count in instances_of(request):
            if instance_type not in allowed:
                problems.append(f"{instance_type} is not among the allowed {', '.join(allowed)}")
            if count > self.max_instance_count and operation != "CreateProcessingJob":
                problems.append(f"{count} instances is more than MaxInstanceCount ({self.max_instance_count})")
        definition = request.get("TrainingJobDefinition", {})
        hyperparameters = request.get("HyperParameters") or definition.get("StaticHyperParameters") or {}
        epochs = hyperparameters.get("epochs", str(DEFAULT_EPOCHS))
        if operation in ("CreateTrainingJob", "CreateHyperParameterTuningJob") and not _whole_number_at_most(
            epochs, self.max_epochs
        ):
            problems.append(f"{epochs} epochs is more than MaxTrainingEpochs ({self.max_epochs})")
        if problems:
            raise InvalidJobRequest(f"{operation} beyond this deployment's cost limits: " + "; ".join(problems))


def instances_of(request: dict[str, Any]) -> list[tuple[str, int]]:
    """(instance type, count) of each resource a SageMaker Create request asks for."""
    resources = [
        request.get("ResourceConfig"),
        request.get("TrainingJobDefinition", {}).get("ResourceConfig"),
        request.get("TransformResources"),
        request.get("ProcessingResources", {}).get("ClusterConfig"),
    ]
    return [(r["InstanceType"], int(r.get("InstanceCount", 1))) for r in resources if r]


def _whole_number_at_most(value: Any, limit: int) -> bool:
    text = str(value).strip()
    return not isinstance(value, bool) and text.isdigit() and len(text) <= 9 and int(text) <= limit
