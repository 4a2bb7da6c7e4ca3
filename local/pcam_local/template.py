"""template.yaml as the local stack and the static checks read it: CloudFormation's short tags, SAM translated
as CloudFormation does it, the template's Rules (which moto ignores) and its bucket lifecycle rules as S3's API
takes them. Nothing here starts or talks to the emulator."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from pcam_local import REGION


def project_root() -> Path:
    """The checkout holding template.yaml (the package is installed in editable mode from it)."""
    configured = os.environ.get("PCAM_PROJECT_ROOT")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2]
    if not (root / "template.yaml").is_file():
        raise RuntimeError(f"template.yaml not found in {root}; set PCAM_PROJECT_ROOT to the project checkout")
    return root


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short tags (!Ref, !Sub, !GetAtt …)."""


def _short_tag(tag: str):
    full = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {full: value}

    return construct


for _tag in (
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "Join",
    "If",
    "Not",
    "Equals",
    "And",
    "Or",
    "Select",
    "Split",
    "FindInMap",
    "GetAZs",
    "ImportValue",
    "Base64",
    "Cidr",
):
    _CfnLoader.add_constructor(f"!{_tag}", _short_tag(_tag))


def load_template(path: Path) -> dict:
    with open(path) as handle:
        return yaml.load(handle, _CfnLoader)  # noqa: S506 - SafeLoader subclass


class _NoManagedPolicies:
    """The translator looks up managed policy names only when a template uses them by name."""

    def load(self) -> dict:
        return {}


def translate(template: dict, parameters: dict[str, str]) -> dict:
    """SAM to CloudFormation, as `sam deploy` has CloudFormation do it."""
    session = boto3.Session(region_name=REGION)
    translator = Translator(_NoManagedPolicies(), Parser(), boto_session=session)
    return translator.translate(template, parameter_values=dict(parameters))


class RuleFailed(ValueError):
    """A template rule refuses the parameters, as CloudFormation would refuse to create the stack."""


def check_rules(template: dict, parameters: dict[str, str]) -> None:
    """Evaluate the template's Rules (moto ignores them) for the functions this template uses."""
    values = {
        name: parameters.get(name, spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()
    }
    for name, spec in template.get("Parameters", {}).items():
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = [item.strip() for item in str(values[name]).split(",")]

    def value(node):
        if isinstance(node, dict) and "Ref" in node:
            return values[node["Ref"]]
        if isinstance(node, dict):
            (function, arguments), *_ = node.items()
            evaluated = [value(argument) for argument in arguments]
            return {
                "Fn::Contains": lambda: evaluated[1] in evaluated[0],
                "Fn::Equals": lambda: evaluated[0] == evaluated[1],
                "Fn::Not": lambda: not evaluated[0],
                "Fn::And": lambda: all(evaluated),
                "Fn::Or": lambda: any(evaluated),
            }[function]()
        return node

    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not value(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not value(assertion["Assert"]):
                raise RuleFailed(f"template rule {name}: {assertion.get('AssertDescription', 'an assertion failed')}")


def lifecycle_rules(rules: list[dict], parameters: dict[str, str]) -> list[dict]:
    """A template's lifecycle rules (AWS::S3::Bucket Rule) as CloudFormation hands them to S3's API."""

    def number(value) -> int:
        return int(parameters[value["Ref"]] if isinstance(value, dict) else value)

    translated = []
    for rule in rules:
        api_rule = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": number(rule["ExpirationInDays"])}
        if rule.get("ExpiredObjectDeleteMarker"):
            api_rule["Expiration"] = {"ExpiredObjectDeleteMarker": True}
        if "NoncurrentVersionExpiration" in rule:
            days = number(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            api_rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": days}
        if "AbortIncompleteMultipartUpload" in rule:
            days = number(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            api_rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
        translated.append(api_rule)
    return translated
