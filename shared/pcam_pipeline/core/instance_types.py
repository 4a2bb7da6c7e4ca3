"""What a SageMaker instance type allows in a request. Pure."""

from __future__ import annotations

# Instance families with local NVMe storage and no EBS volume: SageMaker refuses a VolumeKmsKeyId for them
# (ResourceConfig, TransformResources and ProcessingClusterConfig in the SageMaker API reference: "You can't
# request a VolumeKmsKeyId when using an instance type with local storage"). The rule is the SageMaker Python
# SDK's (sagemaker.utils.volume_size_supported, used by instance_supports_kms; v2.257: a family with a "d" in
# its name, such as c5d, m5d, g4dn, p4d, p4de, and g5, g6, p5 and trn1, whose storage is local too; older
# versions named only g5).
_LOCAL_STORAGE_FAMILIES = ("g5", "g6", "p5", "trn1")


def has_local_storage(instance_type: str) -> bool:
    """True for an instance type (``ml.g4dn.xlarge``) whose storage is local NVMe: its volume is encrypted by
    SageMaker itself, and a VolumeKmsKeyId is refused."""
    family = instance_type.removeprefix("ml.").split(".", 1)[0]
    return "d" in family or family.startswith(_LOCAL_STORAGE_FAMILIES)
