"""Which deployed stack an operator command talks to, and as whom: `--stack`, `--region`, `--profile`, or an
environment of samconfig.toml (`--config-env`), read as the SAM CLI reads it: an environment's
``global.parameters`` then its ``deploy.parameters`` (``stack_name``, ``region``, ``profile``). Flags win over
the file; boto3's own settings (AWS_PROFILE, AWS_DEFAULT_REGION, ~/.aws/config) fill what both leave open."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import ProfileNotFound

DEFAULT_STACK = "pcam-pipeline"  # samconfig.toml's stack_name
DEFAULT_CONFIG_FILE = "samconfig.toml"


class TargetError(ValueError):
    """The command cannot tell which stack, region or profile: a usage error, said in plain words."""


@dataclass(frozen=True)
class Target:
    stack: str
    region: str
    profile: str | None


def _environment(config_file: str, config_env: str) -> dict[str, str]:
    path = Path(config_file)
    if not path.is_file():
        raise TargetError(f"--config-env {config_env}: there is no {config_file} here (or pass --config-file PATH)")
    try:
        document = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{config_file} is not valid TOML: {exc}") from exc
    environments = sorted(name for name, value in document.items() if isinstance(value, dict))
    if config_env not in environments:
        raise TargetError(f"{config_file} has no environment {config_env!r} (it has {', '.join(environments)})")
    sections = document[config_env]
    found: dict[str, str] = {}
    for command in ("global", "deploy"):  # deploy's own values win, as in the SAM CLI
        found.update(sections.get(command, {}).get("parameters", {}))
    return {name: str(found[name]) for name in ("stack_name", "region", "profile") if name in found}


def resolve(
    stack: str | None,
    region: str | None,
    profile: str | None,
    config_env: str | None,
    config_file: str = DEFAULT_CONFIG_FILE,
) -> Target:
    """The stack, region and profile to use; boto3's default session is set to them."""
    from_file = _environment(config_file, config_env) if config_env else {}
    profile = profile or from_file.get("profile")
    try:
        session = boto3.Session(profile_name=profile, region_name=region or from_file.get("region"))
    except ProfileNotFound as exc:
        raise TargetError(f"no AWS profile {profile!r} in your AWS config: {exc}") from exc
    if not session.region_name:
        raise TargetError(
            "no AWS region: pass --region (e.g. --region eu-west-1), set AWS_DEFAULT_REGION, or use "
            "--config-env default to read samconfig.toml's region"
        )
    boto3.setup_default_session(profile_name=profile, region_name=session.region_name)
    return Target(stack or from_file.get("stack_name") or DEFAULT_STACK, session.region_name, profile)
