"""Every SageMaker job the pipeline starts runs locked down: no network in its container, encrypted traffic
between instances, the bucket's own key on volumes and outputs under SSE-KMS, and a role of its own kind."""

import pytest

from pcam_pipeline.aws import request_rules
from pcam_pipeline.core.cost_limits import CostLimits
from pcam_pipeline.core.instance_types import has_local_storage
from pcam_pipeline.models import inference_requests, sagemaker_jobs
from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings, TrainingInputs

ROLES = {
    "role_arn": "arn:aws:iam::123456789012:role/training",
    "model_role_arn": "arn:aws:iam::123456789012:role/transform",
    "evaluation_role_arn": "arn:aws:iam::123456789012:role/evaluation",
}
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
INPUTS = TrainingInputs("pcam-x-train-1", "s3://data/manifests/t", "s3://data/manifests/v", 10, 96)


def settings(**fields) -> SageMakerSettings:
    return SageMakerSettings(region="us-east-1", bucket="data", **ROLES, **fields)


def requests(**fields) -> dict:
    chosen = settings(**fields)
    return {
        "training": sagemaker_jobs.training_job_request(chosen, INPUTS),
        "tuning": sagemaker_jobs.tuning_job_request(settings(tuning_max_jobs=2, **fields), INPUTS),
        "model": inference_requests.model_request(chosen, "pcam-m", "s3://data/models/m/model.tar.gz", {}),
        "transform": inference_requests.transform_request(
            chosen, "pcam-t", "pcam-m", "s3://data/i/", "s3://data/o/", {}
        ),
        "evaluation": inference_requests.evaluation_request(
            chosen, "pcam-e", "s3://data/code/e.py", {"labels": "s3://data/manifests/x"}, "s3://data/evaluations/m", {}
        ),
    }


def test_no_job_container_has_a_network():
    built = requests()
    assert built["training"]["EnableNetworkIsolation"] is True
    assert built["tuning"]["TrainingJobDefinition"]["EnableNetworkIsolation"] is True
    assert built["model"]["EnableNetworkIsolation"] is True  # its transform jobs inherit it
    assert built["evaluation"]["NetworkConfig"]["EnableNetworkIsolation"] is True


def test_instances_of_one_training_encrypt_what_they_exchange():
    assert requests()["training"]["EnableInterContainerTrafficEncryption"] is False  # one instance: no peers
    assert requests(instance_count=2)["training"]["EnableInterContainerTrafficEncryption"] is True


def test_under_sse_kms_volumes_and_outputs_use_the_buckets_key_and_otherwise_name_no_key():
    built = requests(data_key_arn=KEY, instance_type="ml.p3.2xlarge")  # an instance type with an EBS volume
    assert built["training"]["ResourceConfig"]["VolumeKmsKeyId"] == KEY
    assert built["training"]["OutputDataConfig"]["KmsKeyId"] == KEY
    assert built["tuning"]["TrainingJobDefinition"]["OutputDataConfig"]["KmsKeyId"] == KEY
    assert built["transform"]["TransformResources"]["VolumeKmsKeyId"] == KEY
    assert built["transform"]["TransformOutput"]["KmsKeyId"] == KEY
    assert built["evaluation"]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY
    assert built["evaluation"]["ProcessingOutputConfig"]["KmsKeyId"] == KEY
    assert "KmsKeyId" not in str(requests())


def test_each_kind_of_job_runs_as_its_own_role():
    built = requests()
    assert built["training"]["RoleArn"] == ROLES["role_arn"]
    assert built["tuning"]["TrainingJobDefinition"]["RoleArn"] == ROLES["role_arn"]
    assert built["model"]["ExecutionRoleArn"] == ROLES["model_role_arn"]
    assert built["evaluation"]["RoleArn"] == ROLES["evaluation_role_arn"]


# Each accepted by SageMaker for every job kind (the service model's enums) and with local NVMe storage.
LOCAL_STORAGE = ["ml.g4dn.xlarge", "ml.g5.2xlarge", "ml.g6.xlarge"]


@pytest.mark.parametrize("instance_type", LOCAL_STORAGE)
def test_on_instances_with_local_storage_no_volume_key_is_asked_for_and_sagemaker_would_refuse_one(instance_type):
    types = {"instance_type": instance_type, "transform_instance_type": instance_type,
             "evaluation_instance_type": instance_type}  # fmt: skip
    anything = CostLimits((instance_type,), (instance_type,), (instance_type,), max_instance_count=2)
    built = requests(data_key_arn=KEY, limits=anything, **types)
    assert "VolumeKmsKeyId" not in str(built)  # SageMaker encrypts the local NVMe volume itself
    assert built["training"]["OutputDataConfig"]["KmsKeyId"] == KEY  # the outputs still use the bucket's key
    for operation, request, where in [
        ("CreateTrainingJob", built["training"], ["ResourceConfig"]),
        ("CreateHyperParameterTuningJob", built["tuning"], ["TrainingJobDefinition", "ResourceConfig"]),
        ("CreateTransformJob", built["transform"], ["TransformResources"]),
        ("CreateProcessingJob", built["evaluation"], ["ProcessingResources", "ClusterConfig"]),
    ]:
        resources = request
        for member in where:
            resources = resources[member]
        resources["VolumeKmsKeyId"] = KEY  # what the pipeline sent before: the request rules refuse it
        (problem,) = request_rules.violations("sagemaker", operation, request)
        assert "VolumeKmsKeyId: not allowed with " + instance_type in problem


def test_the_local_storage_rule_is_the_sagemaker_sdks():
    assert all(has_local_storage(t) for t in ["ml.m5d.large", "ml.r5d.xlarge", "ml.c5d.xlarge", "ml.p3dn.24xlarge",
                                              "ml.g6e.xlarge", "ml.trn1.2xlarge", "ml.p4de.24xlarge"])  # fmt: skip
    assert not any(has_local_storage(t) for t in ["ml.p3.2xlarge", "ml.m5.xlarge", "ml.c5.2xlarge", "ml.p2.xlarge",
                                                  "ml.c5n.xlarge", "ml.m6i.large", "ml.t3.medium"])  # fmt: skip


def test_a_p4d_training_omits_the_volume_key_too():
    limits = CostLimits(training_instance_types=("ml.p4d.24xlarge",))
    built = requests(data_key_arn=KEY, instance_type="ml.p4d.24xlarge", limits=limits)
    assert "VolumeKmsKeyId" not in str(built["training"]) and "VolumeKmsKeyId" not in str(built["tuning"])
