"""Each function's settings, parsed and validated once at start from its environment."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pcam_pipeline.core.cost_limits import CostLimits
from pcam_pipeline.core.env_values import decimal, integer, required
from pcam_pipeline.core.errors import SettingsError
from pcam_pipeline.wsi.stain import NORMALISATIONS
from pcam_pipeline.wsi.structure import SlideLimits
from pcam_pipeline.wsi.tiling import TilingSettings

if TYPE_CHECKING:  # the conversion functions carry no training configuration layer
    from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings


@dataclass(frozen=True)
class ConversionSettings:
    """Settings shared by the functions that read dropped files and write patches."""

    bucket: str
    state_table: str
    event_bus: str
    jpeg_quality: int
    resize_to: int
    max_receive_count: int
    max_patches_per_file: int = 2_000_000  # MaxPatchesPerFile: larger declared files are refused unread
    max_patches_per_slide: int = 100_000  # ScoringBatchMaxPatches: one scoring job gathers one slide at most
    tiling: TilingSettings = TilingSettings()  # whole-slide images: resolution, tissue, overlap
    slide_limits: SlideLimits = SlideLimits()
    publish_v1_events: bool = True  # PublishVersion1Events: each event also as its version 1
    stain_normalisation: str = "none"  # StainNormalisation: how patches are converted, training and scoring alike

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ConversionSettings:
        return cls(
            tiling=TilingSettings(
                model_mpp=decimal(env, "MODEL_MICRONS_PER_PIXEL", 0.972, 0.05, 20),
                min_tissue_fraction=decimal(env, "MIN_TISSUE_FRACTION", 0.5, 0.01, 1),
                overlap=decimal(env, "TILE_OVERLAP", 0.0, 0, 0.75),
            ),
            slide_limits=SlideLimits(
                max_gigapixels=decimal(env, "MAX_SLIDE_GIGAPIXELS", 25, 0.001, 1000),
                max_vendor_bytes=int(decimal(env, "MAX_VENDOR_SLIDE_GB", 20, 0.01, 100) * 2**30),
                lambda_vendor_bytes=int(decimal(env, "VENDOR_SLIDE_LAMBDA_MAX_GB", 3, 0, 4) * 2**30),
            ),
            bucket=required(env, "DATA_BUCKET"),
            state_table=required(env, "STATE_TABLE"),
            event_bus=required(env, "EVENT_BUS"),
            jpeg_quality=integer(env, "JPEG_QUALITY", 90, 1, 100),
            resize_to=integer(env, "RESIZE_TO", 0, 0, 1024),
            max_receive_count=integer(env, "MAX_RECEIVE_COUNT", 5, 1, 1000),
            max_patches_per_file=integer(env, "MAX_PATCHES_PER_FILE", 2_000_000, 1, 100_000_000),
            max_patches_per_slide=integer(env, "SCORING_BATCH_MAX_PATCHES", 100_000, 1, 1_000_000),
            publish_v1_events=_flag(env, "PUBLISH_V1_EVENTS", True),
            stain_normalisation=_choice(env, "STAIN_NORMALISATION", NORMALISATIONS),
        )


def _instance_types(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    types = tuple(t.strip() for t in env.get(name, ",".join(default)).split(",") if t.strip())
    if not types:
        raise SettingsError(f"{name} must list at least one instance type, e.g. {','.join(default)}")
    return types


def cost_limits(env: Mapping[str, str] = os.environ) -> CostLimits:
    """The operator's limits on SageMaker spending (the template's Allowed*InstanceTypes and Max* parameters)."""
    default = CostLimits()
    return CostLimits(
        training_instance_types=_instance_types(
            env, "ALLOWED_TRAINING_INSTANCE_TYPES", default.training_instance_types
        ),
        transform_instance_types=_instance_types(
            env, "ALLOWED_TRANSFORM_INSTANCE_TYPES", default.transform_instance_types
        ),
        processing_instance_types=_instance_types(
            env, "ALLOWED_PROCESSING_INSTANCE_TYPES", default.processing_instance_types
        ),
        max_instance_count=integer(env, "MAX_INSTANCE_COUNT", default.max_instance_count, 1, 100),
        max_epochs=integer(env, "MAX_TRAINING_EPOCHS", default.max_epochs, 1, 100_000),
        max_training_starts_per_day=integer(
            env, "MAX_TRAINING_STARTS_PER_DAY", default.max_training_starts_per_day, 1, 1000
        ),
    )


@dataclass(frozen=True)
class IngestSettings:
    conversion: ConversionSettings
    idempotency_table: str
    convert_queue_url: str
    patches_per_shard: int
    max_uncompressed_bytes: int = 16 << 30  # MaxUncompressedGB: a .gz inflating past it is refused
    cost_limits: CostLimits = CostLimits()  # what a lab's training.json may ask for
    flow_queue_url: str = ""  # where a slide too large for this function is handed to a staging job

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> IngestSettings:
        return cls(
            conversion=ConversionSettings.from_env(env),
            idempotency_table=required(env, "IDEMPOTENCY_TABLE"),
            convert_queue_url=required(env, "CONVERT_QUEUE_URL"),
            patches_per_shard=integer(env, "PATCHES_PER_SHARD", 16384, 1, 10_000_000),
            max_uncompressed_bytes=int(decimal(env, "MAX_UNCOMPRESSED_GB", 16, 0.01, 5000) * (1 << 30)),
            cost_limits=cost_limits(env),
            flow_queue_url=env.get("FLOW_QUEUE_URL", "").strip(),
        )


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "true", "false"):
        return default if raw == "" else raw == "true"
    raise SettingsError(f"{name} must be true or false, not {env[name]!r}")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``; the first when unset."""
    raw = env.get(name, "").strip() or allowed[0]
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name, "").strip() or "{}"
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f'{name} must be a JSON object such as {{"epochs": 20}}, not {raw!r}') from exc
    if not isinstance(value, dict):
        raise SettingsError(f'{name} must be a JSON object such as {{"epochs": 20}}, not {raw!r}')
    return value


@dataclass(frozen=True)
class ModelSettings:
    """Settings of the functions that train, evaluate and promote models."""

    bucket: str
    state_table: str
    event_bus: str
    alert_topic_arn: str
    minimum_auc: float
    decision_threshold: float | None  # an operator's override of each model's operating threshold
    sagemaker: SageMakerSettings
    target_sensitivity: float = 0.95  # TargetSensitivity: chooses each model's threshold on its validation split
    minimum_sensitivity: float = 0.85  # PromotionMinimumSensitivity: of the test sensitivity's lower 95 % bound
    model_mpp: float = 0.972  # µm/px of the patches the model reads: an HDF5 slide's coordinates are in these pixels
    max_transform_jobs: int = 2  # slide-scoring transform jobs running at once (MaxConcurrentTransformJobs)
    scoring_batch_window_seconds: int = 60  # slides ready within this share a job (ScoringBatchWindowSeconds)
    scoring_batch_max_patches: int = 100_000  # …up to this many patches (ScoringBatchMaxPatches)
    rescore_on_promotion: bool = False  # a promoted model rescores every scored slide (RescoreOnPromotion)
    publish_v1_events: bool = True  # PublishVersion1Events: each event also as its version 1
    max_qc_fail_fraction: float = 0.25  # MaxQcFailFraction: more of a slide's tissue failing QC: indeterminate
    ingest_queue_url: str = ""  # where a slide staging job's outcome goes back to ingestion

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ModelSettings:
        from pcam_pipeline.models.sagemaker_jobs import SageMakerSettings

        base = SageMakerSettings(role_arn="", region="", bucket="")  # the defaults live there
        bucket = required(env, "DATA_BUCKET")
        return cls(
            bucket=bucket,
            state_table=required(env, "STATE_TABLE"),
            event_bus=required(env, "EVENT_BUS"),
            alert_topic_arn=required(env, "ALERT_TOPIC_ARN"),
            minimum_auc=decimal(env, "MINIMUM_AUC", 0.90, 0.0, 1.0),
            decision_threshold=(
                decimal(env, "DECISION_THRESHOLD", 0.5, 0.0, 1.0) if env.get("DECISION_THRESHOLD", "").strip() else None
            ),
            target_sensitivity=decimal(env, "TARGET_SENSITIVITY", cls.target_sensitivity, 0.5, 1.0),
            minimum_sensitivity=decimal(env, "MINIMUM_SENSITIVITY", cls.minimum_sensitivity, 0.0, 1.0),
            model_mpp=decimal(env, "MODEL_MICRONS_PER_PIXEL", cls.model_mpp, 0.05, 20),
            sagemaker=SageMakerSettings(
                role_arn=required(env, "SAGEMAKER_TRAINING_ROLE_ARN"),
                model_role_arn=required(env, "SAGEMAKER_TRANSFORM_ROLE_ARN"),
                evaluation_role_arn=required(env, "SAGEMAKER_EVALUATION_ROLE_ARN"),
                data_key_arn=env.get("DATA_KEY_ARN", "").strip(),
                region=env.get("AWS_REGION") or required(env, "AWS_DEFAULT_REGION"),
                bucket=bucket,
                instance_type=required(env, "TRAINING_INSTANCE_TYPE"),
                instance_count=integer(env, "TRAINING_INSTANCE_COUNT", base.instance_count, 1, 100),
                volume_size_gb=integer(env, "TRAINING_VOLUME_GB", base.volume_size_gb, 1, 16384),
                max_runtime_seconds=integer(
                    env, "TRAINING_MAX_RUNTIME_SECONDS", base.max_runtime_seconds, 60, 28 * 24 * 3600
                ),
                hyperparameter_overrides=_json_object(env, "HYPERPARAMETER_OVERRIDES"),
                tuning_max_jobs=integer(env, "TUNING_MAX_JOBS", base.tuning_max_jobs, 0, 500),
                tuning_parallel_jobs=integer(env, "TUNING_PARALLEL_JOBS", base.tuning_parallel_jobs, 1, 100),
                transform_instance_type=required(env, "TRANSFORM_INSTANCE_TYPE"),
                transform_instance_count=integer(
                    env, "TRANSFORM_INSTANCE_COUNT", base.transform_instance_count, 1, 100
                ),
                max_concurrent_transforms=integer(
                    env, "MAX_CONCURRENT_TRANSFORMS", base.max_concurrent_transforms, 0, 100
                ),
                max_payload_mb=integer(env, "MAX_PAYLOAD_MB", base.max_payload_mb, 1, 100),
                evaluation_instance_type=required(env, "EVALUATION_INSTANCE_TYPE"),
                staging_role_arn=env.get("SAGEMAKER_STAGING_ROLE_ARN", "").strip(),
                staging_instance_type=env.get("STAGING_INSTANCE_TYPE", "").strip() or base.staging_instance_type,
                staging_max_runtime_seconds=integer(
                    env, "STAGING_MAX_RUNTIME_SECONDS", base.staging_max_runtime_seconds, 3600, 5 * 24 * 3600
                ),
                limits=cost_limits(env),
            ),
            max_transform_jobs=integer(env, "MAX_CONCURRENT_TRANSFORM_JOBS", cls.max_transform_jobs, 1, 100),
            scoring_batch_window_seconds=integer(
                env, "SCORING_BATCH_WINDOW_SECONDS", cls.scoring_batch_window_seconds, 0, 3600
            ),
            scoring_batch_max_patches=integer(
                env, "SCORING_BATCH_MAX_PATCHES", cls.scoring_batch_max_patches, 1, 1_000_000
            ),
            rescore_on_promotion=_flag(env, "RESCORE_ON_PROMOTION", cls.rescore_on_promotion),
            publish_v1_events=_flag(env, "PUBLISH_V1_EVENTS", cls.publish_v1_events),
            max_qc_fail_fraction=decimal(env, "MAX_QC_FAIL_FRACTION", cls.max_qc_fail_fraction, 0.0, 1.0),
            ingest_queue_url=env.get("INGEST_QUEUE_URL", "").strip(),
        )


def idempotency_table(env: Mapping[str, str] = os.environ) -> str:
    return required(env, "IDEMPOTENCY_TABLE")
