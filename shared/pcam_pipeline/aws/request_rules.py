"""What AWS refuses that boto3 would still send: the strict request checker.

botocore's client-side ``ParamValidator`` checks types, required members and minimum lengths only.
AWS also refuses values longer or larger than the service model's ``max``, strings outside its
``enum`` or not matching its ``pattern`` (matched against the whole value; the models use Java regex
syntax such as ``\\p{L}``, which the ``regex`` package understands), and a few documented limits that
the models do not carry at all:

- EventBridge PutEvents: an entry of at most 256 KB, counted as AWS documents ("Calculating
  Amazon EventBridge PutEvents event entry size"): Time (14 bytes), Source, DetailType, Detail and
  each Resources string, in UTF-8.
- DynamoDB: an item of at most 400 KB, counted as attribute names plus values in UTF-8
  ("Service, account, and table quotas in Amazon DynamoDB").
- S3: an object key of at most 1,024 bytes in UTF-8 ("Naming Amazon S3 objects").
- SageMaker: no VolumeKmsKeyId on an instance type with local storage (ResourceConfig, TransformResources,
  ProcessingClusterConfig: "You can't request a VolumeKmsKeyId when using an instance type with local
  storage"; which types, as the SageMaker Python SDK decides: ``core.instance_types``).
- SNS Publish: a Subject that is ASCII, starts with a letter, number or punctuation mark, has no line
  breaks or control characters and is under 100 characters; a Message of at most 256 KB (the Publish
  API reference).

``violations`` returns what AWS would say is wrong (empty when the request would be accepted).
``install`` makes every client of a boto3 session refuse such a request locally, with the error code
AWS answers, so the local stack fails where AWS would.
"""

from __future__ import annotations

import string
from functools import cache
from typing import Any

import botocore.session
import regex
from botocore.exceptions import ClientError
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from pcam_pipeline.core.instance_types import has_local_storage

EVENT_ENTRY_LIMIT = 256 * 1024
DYNAMODB_ITEM_LIMIT = 400 * 1024
S3_KEY_LIMIT = 1024
SNS_SUBJECT_LIMIT = 100  # characters; the subject must be shorter
SNS_MESSAGE_LIMIT = 256 * 1024
# The code AWS answers with, per service, when it refuses a request as malformed.
ERROR_CODES = {"s3": "InvalidArgument", "sns": "InvalidParameter", "sqs": "InvalidParameterValue"}
_SNS_SUBJECT_START = set(string.ascii_letters + string.digits + string.punctuation)


@cache
def _service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


# Java (UTF-16) spells "any supplementary character" as a surrogate-pair range; Python needs code points.
_SURROGATE_PAIRS = r"\uD800\uDC00-\uDBFF\uDFFF"


@cache
def _pattern(expression: str) -> regex.Pattern[str]:
    return regex.compile(expression.replace(_SURROGATE_PAIRS, r"\U00010000-\U0010FFFF"))


def violations(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """Everything AWS would refuse in this request, in plain words; empty when it would be accepted."""
    shape = _service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    return ([report.generate_report()] if report.has_errors() else []) + beyond_botocore(service, operation, params)


def beyond_botocore(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """What AWS refuses although botocore's own client-side validation lets it through."""
    problems: list[str] = []
    _walk(_service_model(service).operation_model(operation).input_shape, params, operation, problems)
    return problems + _documented_limits(service, operation, params)


def _walk(shape: Shape | None, value: Any, path: str, problems: list[str]) -> None:
    """The model's max, enum and pattern constraints (botocore checks the rest)."""
    if shape is None or value is None:
        return
    meta, kind = shape.metadata, shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _walk(member, value[name], f"{path}.{name}", problems)
    elif kind == "list" and isinstance(value, list | tuple):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} items, at most {meta['max']} allowed")
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{index}]", problems)
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} entries, at most {meta['max']} allowed")
        for key, item in value.items():
            _walk(shape.key, key, f"{path} key {key!r}", problems)
            _walk(shape.value, item, f"{path}[{key!r}]", problems)
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: {len(value)} characters, at most {meta['max']} allowed")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            problems.append(f"{path}: {value!r} does not match the pattern {meta['pattern']}")
    elif (
        kind in ("integer", "long", "float", "double")
        and isinstance(value, int | float)
        and value > meta.get("max", value)
    ):
        problems.append(f"{path}: {value} is above the maximum {meta['max']}")


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def event_entry_size(entry: dict[str, Any]) -> int:
    size = 14 if entry.get("Time") else 0
    size += sum(_utf8(entry.get(field) or "") for field in ("Source", "DetailType", "Detail"))
    return size + sum(_utf8(resource) for resource in entry.get("Resources", []))


def _attribute_value_size(value: Any) -> int:
    """Bytes of one DynamoDB attribute value, typed ({"S": …}) or plain (boto3's resource layer)."""
    if (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS")
    ):
        kind, inner = next(iter(value.items()))
        if kind == "M":
            return 3 + sum(_utf8(k) + _attribute_value_size(v) for k, v in inner.items())
        if kind == "L":
            return 3 + sum(1 + _attribute_value_size(v) for v in inner)
        if kind in ("SS", "NS", "BS"):
            return sum(_attribute_value_size({kind[0]: v}) for v in inner)
        return _attribute_value_size(inner) if kind in ("S", "N", "B") else 1
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, dict):
        return 3 + sum(_utf8(k) + _attribute_value_size(v) for k, v in value.items())
    if isinstance(value, list | set | tuple):
        return 3 + sum(1 + _attribute_value_size(v) for v in value)
    return len(str(value)) // 2 + 1 if value is not None else 1  # numbers: about a byte per two digits


def item_size(item: dict[str, Any]) -> int:
    return sum(_utf8(name) + _attribute_value_size(value) for name, value in item.items())


def _documented_limits(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    problems = []
    if service == "events" and operation == "PutEvents":
        for index, entry in enumerate(params.get("Entries", [])):
            if (size := event_entry_size(entry)) > EVENT_ENTRY_LIMIT:
                problems.append(f"PutEvents.Entries[{index}]: {size} bytes, at most {EVENT_ENTRY_LIMIT} allowed")
    if service == "dynamodb":
        items = [params["Item"]] if "Item" in params else []
        if "ExpressionAttributeValues" in params:  # an update's new values alone must fit
            items.append({**params.get("ExpressionAttributeNames", {}), **params["ExpressionAttributeValues"]})
        for item in items:
            if (size := item_size(item)) > DYNAMODB_ITEM_LIMIT:
                problems.append(f"{operation}: item of {size} bytes, at most {DYNAMODB_ITEM_LIMIT} allowed")
    if service == "s3" and isinstance(params.get("Key"), str) and _utf8(params["Key"]) > S3_KEY_LIMIT:
        problems.append(f"{operation}.Key: {_utf8(params['Key'])} bytes, at most {S3_KEY_LIMIT} allowed")
    if service == "sagemaker":
        problems.extend(_volume_key_problems(operation, params))
    if service == "sns" and operation == "Publish":
        problems.extend(sns_subject_problems(params.get("Subject")))
        if _utf8(params.get("Message", "")) > SNS_MESSAGE_LIMIT:
            problems.append(f"Publish.Message: more than {SNS_MESSAGE_LIMIT} bytes")
    return problems


# Where each SageMaker request names its instances (and may name a key for their volumes).
_INSTANCE_RESOURCES = {
    "CreateTrainingJob": ("ResourceConfig",),
    "CreateHyperParameterTuningJob": ("TrainingJobDefinition", "ResourceConfig"),
    "CreateTransformJob": ("TransformResources",),
    "CreateProcessingJob": ("ProcessingResources", "ClusterConfig"),
}


def _volume_key_problems(operation: str, params: dict[str, Any]) -> list[str]:
    """SageMaker refuses a VolumeKmsKeyId on an instance type with local storage (core.instance_types)."""
    path = _INSTANCE_RESOURCES.get(operation, ())
    resources: Any = params if path else None
    for member in path:
        resources = resources.get(member) if isinstance(resources, dict) else None
    if not isinstance(resources, dict) or not resources.get("VolumeKmsKeyId"):
        return []
    instance_type = str(resources.get("InstanceType", ""))
    if not has_local_storage(instance_type):
        return []
    where = ".".join(path)
    return [f"{operation}.{where}.VolumeKmsKeyId: not allowed with {instance_type}, an instance type with local "
            "storage (SageMaker encrypts it itself)"]  # fmt: skip


def sns_subject_problems(subject: str | None) -> list[str]:
    if subject is None:
        return []
    problems = []
    if len(subject) >= SNS_SUBJECT_LIMIT:
        problems.append(f"Publish.Subject: {len(subject)} characters; it must be under {SNS_SUBJECT_LIMIT}")
    if not subject.isascii() or any(not ch.isprintable() for ch in subject):
        problems.append(f"Publish.Subject: {subject!r} must be printable ASCII without line breaks")
    if subject and subject[0] not in _SNS_SUBJECT_START:
        problems.append(f"Publish.Subject: {subject!r} must start with a letter, number or punctuation mark")
    return problems


class StrictRequests:
    """A botocore hook that refuses, before sending, every request AWS would refuse."""

    def __init__(self) -> None:
        self.refused: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any], model: OperationModel, **_: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        problems = beyond_botocore(service, operation, params)  # botocore then checks the rest itself
        if problems:
            self.refused.append({"service": service, "operation": operation, "problems": problems})
            code = ERROR_CODES.get(service, "ValidationException")
            message = "; ".join(problems)
            raise ClientError({"Error": {"Code": code, "Message": message}}, operation)


def install(session: Any) -> StrictRequests:  # a boto3 Session
    """Refuse what AWS would refuse on every client ``session`` (a boto3 Session) creates from now on.

    The hook runs last, after boto3's own parameter transformations (DynamoDB's typed values and
    condition expressions), so it sees the request as it will be serialised.
    """
    hook = StrictRequests()
    session.events.register_last("before-parameter-build", hook)
    return hook
