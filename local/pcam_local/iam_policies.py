"""A role's policies as the deployed template gives them (intrinsic functions resolved against the stack), and
whether a statement allows a need (actions, resources and conditions as IAM evaluates them)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from pcam_local.iam_needs import ACCOUNT, PARTITION, REGION, Need, bus_arn, queue_arn

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
    # AWS managed policy reference, "AWSLambdaDynamoDBExecutionRole" (v1): SAM adds it for a DynamoDB event.
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
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
                "AWS::SQS::Queue": queue_arn(physical),
                "AWS::KMS::Key": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{physical.rsplit('/', 1)[-1]}",
                "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{physical}",
                "AWS::Events::EventBus": bus_arn(physical),
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


def listed(value) -> list:
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
            str(value).lower() in [str(e).lower() for e in listed(expected)]
            if base == "Bool"
            else (value in listed(expected))
        )
    if base in ("StringLike", "ArnLike"):
        return any(_matches(p, value) for p in listed(expected))
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
        if not any(_matches(a, need.action, case_sensitive=False) for a in listed(statement["Action"])):
            continue
        if not any(_matches(r, need.resource) for r in listed(statement["Resource"])):
            continue
        if _condition_holds(statement.get("Condition", {}), context):
            return statement
    return None
