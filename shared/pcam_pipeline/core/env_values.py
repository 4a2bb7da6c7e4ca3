"""One value of a function's environment, parsed and checked: a plain-words SettingsError otherwise."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pcam_pipeline.core.errors import SettingsError


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"the environment variable {name} is not set")
    return value


def _number[N: (int, float)](
    env: Mapping[str, str], name: str, default: N, low: N, high: N, parse: Callable[[str], N]
) -> N:
    raw = str(env.get(name, default)).strip()
    try:
        value = parse(raw)
    except ValueError as exc:
        kind = "a whole number" if parse is int else "a number"
        raise SettingsError(f"{name} must be {kind}, not {raw!r}") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


def integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int)


def decimal(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float)
