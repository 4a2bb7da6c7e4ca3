"""Each function's settings, parsed and validated once at start from its environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pcam_pipeline.errors import SettingsError


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"the environment variable {name} is not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = str(env.get(name, default)).strip()
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")
    return value


@dataclass(frozen=True)
class ConversionSettings:
    """Settings shared by the functions that read dropped files and write patches."""

    bucket: str
    state_table: str
    event_bus: str
    jpeg_quality: int
    resize_to: int
    max_receive_count: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ConversionSettings:
        return cls(
            bucket=_required(env, "DATA_BUCKET"),
            state_table=_required(env, "STATE_TABLE"),
            event_bus=_required(env, "EVENT_BUS"),
            jpeg_quality=_int(env, "JPEG_QUALITY", 90, 1, 100),
            resize_to=_int(env, "RESIZE_TO", 0, 0, 1024),
            max_receive_count=_int(env, "MAX_RECEIVE_COUNT", 3, 1, 1000),
        )


@dataclass(frozen=True)
class IngestSettings:
    conversion: ConversionSettings
    idempotency_table: str
    convert_queue_url: str
    patches_per_shard: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> IngestSettings:
        return cls(
            conversion=ConversionSettings.from_env(env),
            idempotency_table=_required(env, "IDEMPOTENCY_TABLE"),
            convert_queue_url=_required(env, "CONVERT_QUEUE_URL"),
            patches_per_shard=_int(env, "PATCHES_PER_SHARD", 16384, 1, 10_000_000),
        )
