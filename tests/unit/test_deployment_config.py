"""samconfig.toml's environments only set parameters the template has, with values it accepts."""

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from pcam_local.template import load_template

ROOT = Path(__file__).parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())


def overrides(environment: str) -> dict[str, str]:
    text = SAMCONFIG[environment]["deploy"]["parameters"].get("parameter_overrides", "")
    return dict(item.split("=", 1) for item in shlex.split(text))


def test_default_staging_and_prod_environments_exist_with_their_own_stacks():
    names = {env: SAMCONFIG[env]["global"]["parameters"]["stack_name"] for env in ("default", "staging", "prod")}
    assert len(set(names.values())) == 3


@pytest.mark.parametrize("environment", ["default", "staging", "prod"])
def test_every_override_is_a_template_parameter_with_an_accepted_value(environment):
    parameters = TEMPLATE["Parameters"]
    for name, value in overrides(environment).items():
        assert name in parameters, f"{environment}: {name} is not a template parameter"
        spec = parameters[name]
        if spec["Type"] == "Number":
            number = float(value)
            assert spec.get("MinValue", number) <= number <= spec.get("MaxValue", number), f"{name}={value}"
        if "AllowedValues" in spec:
            assert value in [str(v) for v in spec["AllowedValues"]], f"{name}={value}"
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), f"{name}={value}"
        if name == "HyperparameterOverrides":
            import json

            assert isinstance(json.loads(value), dict)


SETTINGS_OF_FUNCTION = {
    "functions/ingest/": "IngestSettings",
    "functions/convert_shard/": "ConversionSettings",
    "functions/sagemaker_flow/": "ModelSettings",
}


def function_environment(function: dict, use_parameter_defaults: bool) -> dict[str, str]:
    """The function's environment as deployed: parameters at their defaults, other references as placeholders."""
    variables = {**TEMPLATE["Globals"]["Function"]["Environment"]["Variables"], **function["Environment"]["Variables"]}
    environment = {"AWS_REGION": "eu-west-1"}
    for name, value in variables.items():
        parameter = TEMPLATE["Parameters"].get(value.get("Ref")) if isinstance(value, dict) else None
        if parameter is None:
            environment[name] = value if isinstance(value, str) else f"placeholder-{name.lower()}"
        elif use_parameter_defaults or "Default" not in parameter or parameter["Type"] == "String":
            environment[name] = str(parameter.get("Default", ""))
    return environment


@pytest.mark.parametrize("code_uri", sorted(SETTINGS_OF_FUNCTION))
def test_the_template_defaults_are_the_code_defaults(code_uri):
    """Defaults live in the settings classes (SageMaker's in sagemaker_jobs.SageMakerSettings); the template's
    parameters must pass the same values, or a function would behave differently deployed than tested."""
    from pcam_pipeline.core import settings

    (function,) = (
        r["Properties"] for r in TEMPLATE["Resources"].values() if r["Properties"].get("CodeUri") == code_uri
    )
    parse = getattr(settings, SETTINGS_OF_FUNCTION[code_uri]).from_env
    assert parse(function_environment(function, True)) == parse(function_environment(function, False))


def test_every_parameter_is_documented_for_operators():
    documented = (ROOT / "docs" / "operations.md").read_text()
    missing = [name for name in TEMPLATE["Parameters"] if f"| `{name}` |" not in documented]
    assert missing == [], f"add these parameters to the table in docs/operations.md: {missing}"


def test_the_local_transform_quota_defaults_to_the_deployed_cap():
    """`pcam local run/up/demo` rehearse an account whose quota is exactly the default cap."""
    from pcam_local import TRANSFORM_QUOTA

    assert TEMPLATE["Parameters"]["MaxConcurrentTransformJobs"]["Default"] == TRANSFORM_QUOTA


@pytest.mark.parametrize(
    ("parameters", "refused"),
    [
        ({}, None),
        ({"TrainingInstanceType": "ml.g5.xlarge"}, None),
        (
            {"TrainingInstanceType": "ml.p5.48xlarge"},
            "TrainingInstanceType must be one of AllowedTrainingInstanceTypes",
        ),
        (
            {"TransformInstanceType": "ml.c5.2xlarge"},
            "TransformInstanceType must be one of AllowedTransformInstanceTypes",
        ),
        (
            {"TransformInstanceType": "ml.c5.2xlarge", "AllowedTransformInstanceTypes": "ml.m5.xlarge,ml.c5.2xlarge"},
            None,
        ),
        ({"EvaluationInstanceType": "ml.m5.4xlarge"}, "EvaluationInstanceType must be one of"),
    ],
)
def test_a_deployment_whose_instance_types_are_outside_its_own_limits_is_refused_by_the_template_rules(
    parameters, refused
):
    from pcam_local.template import RuleFailed, check_rules

    if refused is None:
        check_rules(TEMPLATE, parameters)
        return
    with pytest.raises(RuleFailed, match=refused):
        check_rules(TEMPLATE, parameters)


@pytest.mark.parametrize("environment", ["default", "staging", "prod"])
def test_every_samconfig_environment_keeps_its_instance_types_within_its_limits(environment):
    from pcam_local.template import check_rules

    check_rules(TEMPLATE, overrides(environment))


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==")
            pins[name.split("[")[0].strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_the_layer_ships_the_aws_sdk_the_tests_ran_all_three_together():
    """A layer that carried botocore alone (pulled in by aws-xray-sdk) would shadow the runtime's botocore
    under the runtime's boto3 and s3transfer: a combination nobody tested."""
    root = Path(__file__).parents[2]
    layer, tested = _pins(root / "shared" / "requirements.txt"), _pins(root / "requirements" / "dev.txt")
    assert {"boto3", "botocore", "s3transfer"} <= layer.keys()
    assert {name: version for name, version in layer.items() if tested.get(name) != version} == {}
