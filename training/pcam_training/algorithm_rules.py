"""The built-in Image Classification algorithm's documented rules, as a checker.

SageMaker accepts a CreateTrainingJob whose hyperparameters the algorithm cannot use, then fails the
job with ``ClientError: …``. These rules let the pipeline refuse such a request before it is sent
(``config.training_hyperparameters``) and let the local SageMaker fail a job as SageMaker would.

Sources (see training/README.md):
- "Image Classification Hyperparameters" (docs.aws.amazon.com/sagemaker/latest/dg/IC-Hyperparameter.html) and
  "Tune an Image Classification Model" (IC-tuning.html) in the SageMaker developer guide: names, types,
  ranges, enums, tunable ones. Quoted there: ``eps`` "Range in [0, 1]"; ``image_shape`` "Pretrained models can
  use only a fixed 224 x 224 image size" (default '3,224,224'); ``resize`` "should be larger than both the
  width and height components of image_shape to prevent training failure".
- The network is built as MXNet's reference ResNet symbol (example/image-classification/symbols/
  resnet.py, ``get_symbol``): for images of at most 28 px only 6n+2 depths (20, 32, 44, 56, 110 of the
  documented set) exist; taller images build only 18, 34, 50, 101, 152 or 200 (269 is not documented),
  and any other depth raises "no experiments done on num_layers".
- "Image Classification Algorithm" (image-classification.html), input/output interface: augmented manifests
  need Pipe mode, RecordIO wrapping, content type application/x-recordio (or with "; label-format=multi-hot"
  or "; label-format=class-id") and two AttributeNames, "with image first, followed by label"; RecordIO in
  Pipe mode needs S3DataDistributionType FullyReplicated; incremental training adds a ``model`` channel
  (application/x-sagemaker-model); inference takes image/png, image/jpeg or application/x-image.
- Not documented, and refused as the safe side: a hyperparameter name the page does not list.
- CreateTransformJob API reference: MaxPayloadInMB × MaxConcurrentTransforms must not exceed 100.
"""

from __future__ import annotations

from collections.abc import Callable

SMALL_IMAGE_MAX_EDGE = 28
SMALL_IMAGE_DEPTHS = (20, 32, 44, 56, 110)
LARGE_IMAGE_DEPTHS = (18, 34, 50, 101, 152, 200)
PRETRAINED_EDGE = 224
DEFAULT_IMAGE_SHAPE = "3,224,224"  # the page's default, when a request sets none
RECORDIO_TYPES = {"application/x-recordio", "application/x-recordio; label-format=multi-hot",
                  "application/x-recordio; label-format=class-id"}  # fmt: skip
MODEL_CHANNEL_TYPE = "application/x-sagemaker-model"
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
    return value.isascii() and value.isdigit() and int(value) > 0  # "²".isdigit() is True


def _float_in(low: float, high: float) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            number = float(value)
        except ValueError:
            return False
        return low <= number <= high

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
    "eps": (UNIT, "a number in [0, 1]"),
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
    "top_k": (lambda v: _positive_int(v) and int(v) > 1, "an integer greater than 1"),
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
    if problems:
        return problems
    _, height, width = (int(part) for part in hyperparameters.get("image_shape", DEFAULT_IMAGE_SHAPE).split(","))
    edge = height  # MXNet's resnet.py chooses the layout by the image's height
    pretrained = hyperparameters.get("use_pretrained_model") == "1"
    if pretrained and (height, width) != (PRETRAINED_EDGE, PRETRAINED_EDGE):
        problems.append(f"pretrained weights need {PRETRAINED_EDGE}x{PRETRAINED_EDGE} images, not {height}x{width}")
    if "resize" in hyperparameters and int(hyperparameters["resize"]) <= max(height, width):
        problems.append(f"resize must be larger than image_shape's height and width ({height}x{width})")
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
    """train and validation (and a ``model`` channel for incremental training); augmented manifests in Pipe
    mode, RecordIO-wrapped, fully replicated, with a RecordIO content type and two AttributeNames."""
    problems = []
    names = {channel["ChannelName"] for channel in channels}
    if not {"train", "validation"} <= names <= {"train", "validation", "model"}:
        problems.append(f"channels must be train and validation (and model), got {sorted(names)}")
    for channel in channels:
        source = channel["DataSource"]["S3DataSource"]
        name = channel["ChannelName"]
        if name == "model" and channel.get("ContentType") != MODEL_CHANNEL_TYPE:
            problems.append(f"model: an incremental training's model channel needs content type {MODEL_CHANNEL_TYPE}")
        if source["S3DataType"] != "AugmentedManifestFile":
            continue
        mode = channel.get("InputMode", input_mode)
        if mode != "Pipe" or channel.get("RecordWrapperType") != "RecordIO":
            problems.append(f"{name}: augmented manifests need Pipe mode and RecordIO wrapping")
        if channel.get("ContentType") not in RECORDIO_TYPES:
            problems.append(f"{name}: augmented manifests need content type application/x-recordio")
        if source.get("S3DataDistributionType", "FullyReplicated") != "FullyReplicated":
            problems.append(f"{name}: RecordIO in Pipe mode needs S3DataDistributionType FullyReplicated")
        attributes = source.get("AttributeNames") or []
        if len(attributes) != 2:
            problems.append(f"{name}: AttributeNames must name the image, then the label")
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
