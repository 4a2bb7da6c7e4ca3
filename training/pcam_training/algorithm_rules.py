"""The built-in Image Classification algorithm's documented rules, as a checker.

SageMaker accepts a CreateTrainingJob whose hyperparameters the algorithm cannot use, then fails the
job with ``ClientError: …``. These rules let the pipeline refuse such a request before it is sent
(``config.training_hyperparameters``) and let the local SageMaker fail a job as SageMaker would.

Sources (see training/README.md):
- "Image Classification Hyperparameters" (IC-Hyperparameter) and "Tune an Image Classification
  Model" (IC-tuning) in the SageMaker developer guide: names, types, ranges, enums, tunable ones.
- The network is built as MXNet's reference ResNet symbol (example/image-classification/symbols/
  resnet.py, ``get_symbol``): for images of at most 28 px only 6n+2 depths (20, 32, 44, 56, 110 of the
  documented set) exist; taller images build only 18, 34, 50, 101, 152 or 200 (269 is not documented),
  and any other depth raises "no experiments done on num_layers".
- "Image Classification Algorithm", input/output interface: augmented manifests need Pipe mode,
  RecordIO wrapping, content type application/x-recordio and AttributeNames [source-ref, class];
  inference takes image/png, image/jpeg or application/x-image.
- CreateTransformJob API reference: MaxPayloadInMB × MaxConcurrentTransforms must not exceed 100.
"""

from __future__ import annotations

from collections.abc import Callable

SMALL_IMAGE_MAX_EDGE = 28
SMALL_IMAGE_DEPTHS = (20, 32, 44, 56, 110)
LARGE_IMAGE_DEPTHS = (18, 34, 50, 101, 152, 200)
PRETRAINED_EDGE = 224
TUNABLE = {
    "beta_1",
    "beta_2",
    "eps",
    "gamma",
    "learning_rate",
    "mini_batch_size",
    "momentum",
    "optimizer",
    "weight_decay",
}
INFERENCE_CONTENT_TYPES = {"image/png", "image/jpeg", "application/x-image"}
TRANSFORM_PAYLOAD_LIMIT_MB = 100


def _positive_int(value: str) -> bool:
    return value.isdigit() and int(value) > 0


def _float_in(low: float, high: float, low_open: bool = False) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            number = float(value)
        except ValueError:
            return False
        return (low < number if low_open else low <= number) and number <= high

    return check


def _one_of(*allowed: str) -> Callable[[str], bool]:
    return lambda value: value in allowed


def _image_shape(value: str) -> bool:
    parts = value.split(",")
    return len(parts) == 3 and all(_positive_int(part.strip()) for part in parts)


def _epoch_list(value: str) -> bool:
    return all(_positive_int(part.strip()) for part in value.split(","))


UNIT = _float_in(0.0, 1.0)
HYPERPARAMETERS: dict[str, tuple[Callable[[str], bool], str]] = {
    "num_classes": (_positive_int, "a positive integer"),
    "num_training_samples": (_positive_int, "a positive integer"),
    "augmentation_type": (
        _one_of("crop", "crop_color", "crop_color_transform"),
        "crop, crop_color or crop_color_transform",
    ),
    "beta_1": (UNIT, "a number in [0, 1]"),
    "beta_2": (UNIT, "a number in [0, 1]"),
    "checkpoint_frequency": (_positive_int, "a positive integer"),
    "early_stopping": (_one_of("True", "False"), "True or False"),
    "early_stopping_min_epochs": (_positive_int, "a positive integer"),
    "early_stopping_patience": (_positive_int, "a positive integer"),
    "early_stopping_tolerance": (UNIT, "a number in [0, 1]"),
    "epochs": (_positive_int, "a positive integer"),
    "eps": (_float_in(0.0, 1.0, low_open=True), "a number in (0, 1]"),
    "gamma": (UNIT, "a number in [0, 1]"),
    "image_shape": (_image_shape, "num_channels,height,width"),
    "kv_store": (_one_of("dist_sync", "dist_async"), "dist_sync or dist_async"),
    "learning_rate": (UNIT, "a number in [0, 1]"),
    "lr_scheduler_factor": (UNIT, "a number in [0, 1]"),
    "lr_scheduler_step": (_epoch_list, "epochs separated by commas, e.g. 10,20"),
    "mini_batch_size": (_positive_int, "a positive integer"),
    "momentum": (UNIT, "a number in [0, 1]"),
    "multi_label": (_one_of("0", "1"), "0 or 1"),
    "num_layers": (_one_of(*map(str, LARGE_IMAGE_DEPTHS + SMALL_IMAGE_DEPTHS)), "a documented ResNet depth"),
    "optimizer": (_one_of("sgd", "adam", "rmsprop", "nag"), "sgd, adam, rmsprop or nag"),
    "precision_dtype": (_one_of("float32", "float16"), "float32 or float16"),
    "resize": (_positive_int, "a positive integer"),
    "top_k": (lambda v: v.isdigit() and int(v) > 1, "an integer greater than 1"),
    "use_pretrained_model": (_one_of("0", "1"), "0 or 1"),
    "use_weighted_loss": (_one_of("0", "1"), "0 or 1"),
    "weight_decay": (UNIT, "a number in [0, 1]"),
}
REQUIRED = ("num_classes", "num_training_samples")


def depths_for(image_edge: int, pretrained: bool = False) -> tuple[int, ...]:
    return LARGE_IMAGE_DEPTHS if pretrained or image_edge > SMALL_IMAGE_MAX_EDGE else SMALL_IMAGE_DEPTHS


def hyperparameter_problems(hyperparameters: dict[str, str]) -> list[str]:
    """What the algorithm refuses in a training job's HyperParameters."""
    problems = [f"{name} is required" for name in REQUIRED if name not in hyperparameters]
    for name, value in hyperparameters.items():
        if name not in HYPERPARAMETERS:
            problems.append(f"{name!r} is not a hyperparameter of the algorithm")
            continue
        valid, expected = HYPERPARAMETERS[name]
        if not valid(str(value)):
            problems.append(f"{name} must be {expected}, not {value!r}")
    if problems or "image_shape" not in hyperparameters:
        return problems
    edge = int(hyperparameters["image_shape"].split(",")[1])
    pretrained = hyperparameters.get("use_pretrained_model") == "1"
    if pretrained and edge != PRETRAINED_EDGE:
        problems.append(f"pretrained weights need {PRETRAINED_EDGE}x{PRETRAINED_EDGE} images, not {edge}x{edge}")
    layers = int(hyperparameters.get("num_layers", "152"))  # the algorithm's default depth
    if layers not in depths_for(edge, pretrained):
        problems.append(
            f"num_layers {layers} does not exist for {edge}x{edge} images"
            f"{' with pretrained weights' if pretrained else ''}: use one of {depths_for(edge, pretrained)}"
        )
    epochs = int(hyperparameters.get("epochs", "30"))
    if "checkpoint_frequency" in hyperparameters and int(hyperparameters["checkpoint_frequency"]) > epochs:
        problems.append("checkpoint_frequency must not exceed epochs")
    return problems


def channel_problems(channels: list[dict], input_mode: str) -> list[str]:
    """Augmented manifests: Pipe mode, RecordIO, application/x-recordio, AttributeNames [source-ref, class]."""
    problems = []
    names = sorted(channel["ChannelName"] for channel in channels)
    if names != ["train", "validation"]:
        problems.append(f"channels must be train and validation, got {names}")
    for channel in channels:
        source = channel["DataSource"]["S3DataSource"]
        if source["S3DataType"] != "AugmentedManifestFile":
            continue
        mode = channel.get("InputMode", input_mode)
        if mode != "Pipe" or channel.get("RecordWrapperType") != "RecordIO":
            problems.append(f"{channel['ChannelName']}: augmented manifests need Pipe mode and RecordIO wrapping")
        if channel.get("ContentType") != "application/x-recordio":
            problems.append(f"{channel['ChannelName']}: augmented manifests need content type application/x-recordio")
        if source.get("AttributeNames") != ["source-ref", "class"]:
            problems.append(f"{channel['ChannelName']}: AttributeNames must be [source-ref, class]")
    return problems


def training_request_problems(request: dict) -> list[str]:
    mode = request["AlgorithmSpecification"]["TrainingInputMode"]
    return hyperparameter_problems(request.get("HyperParameters", {})) + channel_problems(
        request["InputDataConfig"], mode
    )


def tuning_request_problems(request: dict) -> list[str]:
    config = request["HyperParameterTuningJobConfig"]
    ranges = [r for kind in config.get("ParameterRanges", {}).values() for r in kind]
    tuned = {r["Name"] for r in ranges}
    problems = [f"{name} cannot be tuned (tunable: {sorted(TUNABLE)})" for name in sorted(tuned - TUNABLE)]
    for spec in ranges:
        valid, expected = HYPERPARAMETERS.get(spec["Name"], (lambda _: True, ""))
        for bound in [spec.get("MinValue"), spec.get("MaxValue"), *spec.get("Values", [])]:
            if bound is not None and not valid(str(bound)):
                problems.append(f"the range of {spec['Name']} reaches {bound!r}; it must be {expected}")
    definition = request["TrainingJobDefinition"]
    # Every trial is the static hyperparameters plus one value from each range (bounds checked above).
    first_trial = {r["Name"]: str(r.get("MinValue", (r.get("Values") or [""])[0])) for r in ranges}
    problems += hyperparameter_problems({**definition.get("StaticHyperParameters", {}), **first_trial})
    mode = definition["AlgorithmSpecification"]["TrainingInputMode"]
    return problems + channel_problems(definition["InputDataConfig"], mode)


def transform_request_problems(request: dict) -> list[str]:
    problems = []
    content_type = request["TransformInput"].get("ContentType")
    if content_type not in INFERENCE_CONTENT_TYPES:
        problems.append(f"the algorithm takes {sorted(INFERENCE_CONTENT_TYPES)} for inference, not {content_type!r}")
    if request["TransformInput"].get("SplitType", "None") != "None":
        problems.append("images cannot be split: SplitType must be None")
    # Only a MaxConcurrentTransforms the request sets counts (unset or 0: SageMaker picks a value that fits).
    payload, concurrency = request.get("MaxPayloadInMB", 6), request.get("MaxConcurrentTransforms", 0)
    if payload * concurrency > TRANSFORM_PAYLOAD_LIMIT_MB:
        problems.append(
            f"MaxPayloadInMB ({payload}) x MaxConcurrentTransforms ({concurrency}) exceeds {TRANSFORM_PAYLOAD_LIMIT_MB}"
        )
    return problems
