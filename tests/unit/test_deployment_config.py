"""samconfig.toml's environments only set parameters the template has, with values it accepts."""

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from pcam_local.stack import load_template

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
