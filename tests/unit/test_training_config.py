import re

import pytest

from pcam_pipeline.core.errors import InvalidJobRequest
from pcam_pipeline.models.inference_requests import evaluation_request, model_request, transform_request
from pcam_pipeline.models.sagemaker_jobs import (
    SageMakerSettings,
    TrainingInputs,
    job_name,
    training_job_request,
    tuning_job_request,
    validate,
)
from pcam_training import algorithm_rules, config

SETTINGS = SageMakerSettings(
    role_arn="arn:aws:iam::111122223333:role/pcam-sagemaker", region="eu-west-1", bucket="pcam-data"
)
TRAIN, VALID = "s3://pcam-data/manifests/pcam/train.manifest", "s3://pcam-data/manifests/pcam/valid.manifest"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def test_image_uri_registry_equals_the_sagemaker_sdk_for_every_region():
    from sagemaker.core import image_uris

    sdk_regions = image_uris.config_for_framework("image-classification")["versions"]["1"]["registries"]
    assert set(config._data("image_uris.json")["image-classification"]["accounts"]) == set(sdk_regions)
    for region in sdk_regions:
        assert config.image_uri(region) == image_uris.retrieve("image-classification", region=region, version="1")


def test_evaluation_image_registry_equals_the_sagemaker_sdks_scikit_learn_images():
    from sagemaker.core import image_uris

    sdk = image_uris.config_for_framework("sklearn")["training"]["versions"]["1.2-1"]["registries"]
    assert set(config._data("image_uris.json")["sagemaker-scikit-learn"]["accounts"]) == set(sdk)
    for region in sdk:
        expected = image_uris.retrieve("sklearn", region=region, version="1.2-1", instance_type="ml.m5.large")
        assert config.evaluation_image_uri(region) == expected


def test_staging_image_is_the_sdks_python_312_scikit_learn_image():
    from sagemaker.core import image_uris

    sdk = image_uris.config_for_framework("sklearn")["training"]["versions"]["1.4-2-py312"]["registries"]
    for region in sdk:
        expected = image_uris.retrieve("sklearn", region=region, version="1.4-2-py312", instance_type="ml.m5.xlarge")
        assert config.staging_image_uri(region) == expected


def test_unknown_region_is_refused():
    with pytest.raises(config.TrainingConfigError, match="image is not listed for region 'mars-1'"):
        config.image_uri("mars-1")


def test_hyperparameters_carry_the_real_sample_count_and_image_shape_as_strings():
    hyperparameters = config.training_hyperparameters(262_144, 96, {"epochs": 12, "early_stopping": False})
    assert hyperparameters["num_training_samples"] == "262144"
    assert hyperparameters["image_shape"] == "3,224,224" and hyperparameters["resize"] == "256"
    assert hyperparameters["num_classes"] == "2"
    assert hyperparameters["epochs"] == "12" and hyperparameters["early_stopping"] == "False"
    assert all(isinstance(v, str) for v in hyperparameters.values())


@pytest.mark.parametrize(
    ("overrides", "edge", "problem"),
    [
        ({"num_training_samples": 5}, 96, "derived from the dataset"),
        ({"num_layers": 20, "use_pretrained_model": 0}, 96, "num_layers 20 does not exist for 96x96 images"),
        ({"num_layers": 18, "use_pretrained_model": 0}, 28, "num_layers 18 does not exist for 28x28 images"),
        ({"num_layers": 20}, 96, "num_layers 20 does not exist for 224x224 images with pretrained weights"),
        ({"resize": 200}, 96, r"resize must be larger than image_shape's height and width \(224x224\)"),
        ({"num_layers": 19}, 96, "num_layers must be a documented ResNet depth"),
        ({"optimizer": "adagrad"}, 96, "optimizer must be sgd, adam, rmsprop or nag"),
        ({"learning_rate": 2}, 96, r"learning_rate must be a number in \[0, 1\]"),
        ({"early_stopping": "yes"}, 96, "early_stopping must be True or False"),
        ({"dropout": 0.5}, 96, "'dropout' is not a hyperparameter of the algorithm"),
    ],
)
def test_overrides_the_algorithm_cannot_use_are_refused(overrides, edge, problem):
    with pytest.raises(config.TrainingConfigError, match=problem):
        config.training_hyperparameters(1000, edge, overrides)
    if edge == 96 and "num_training_samples" not in overrides:  # the local SageMaker applies the same rules
        hyperparameters = {**config.training_hyperparameters(1000, 96), **{k: str(v) for k, v in overrides.items()}}
        assert algorithm_rules.hyperparameter_problems(hyperparameters)


def test_the_default_recipe_fine_tunes_pretrained_weights_on_patches_resized_for_them():
    hyperparameters = config.training_hyperparameters(1000, 96)
    assert hyperparameters["use_pretrained_model"] == "1" and hyperparameters["num_layers"] == "18"
    assert (hyperparameters["image_shape"], hyperparameters["resize"]) == ("3,224,224", "256")
    assert (
        hyperparameters["augmentation_type"] == "crop_color_transform" and hyperparameters["early_stopping"] == "True"
    )
    big = config.training_hyperparameters(1000, 300, {"num_layers": 50})
    assert (big["image_shape"], big["resize"]) == ("3,224,224", "301"), "resize stays above the patch and 224"


def test_an_operator_can_still_train_from_scratch_at_the_patches_own_size():
    hyperparameters = config.training_hyperparameters(1000, 96, {"use_pretrained_model": 0})
    assert hyperparameters["image_shape"] == "3,96,96" and "resize" not in hyperparameters


def test_the_rules_accept_what_the_documentation_allows_and_refuse_what_it_forbids():
    base = {"num_classes": "2", "num_training_samples": "10"}
    problems = algorithm_rules.hyperparameter_problems
    assert problems({**base, "eps": "0"}) == [], "eps: Range in [0, 1]"
    assert problems({**base, "epochs": "²"}) == ["epochs must be a positive integer, not '²'"]
    assert problems({**base, "use_pretrained_model": "1", "num_layers": "18"}) == [], "image_shape's default 224"
    wide = {**base, "use_pretrained_model": "1", "num_layers": "18", "image_shape": "3,224,96"}
    assert problems(wide) == ["pretrained weights need 224x224 images, not 224x96"]
    assert problems({**base, "image_shape": "3,96,96", "num_layers": "18", "resize": "96"}) == [
        "resize must be larger than image_shape's height and width (96x96)"
    ]


def manifest_channel(name: str, **changes) -> dict:
    source = {"S3DataType": "AugmentedManifestFile", "S3Uri": "s3://b/m", "AttributeNames": ["source-ref", "class"],
              "S3DataDistributionType": "FullyReplicated"}  # fmt: skip
    channel = {"ChannelName": name, "DataSource": {"S3DataSource": source}, "ContentType": "application/x-recordio",
               "RecordWrapperType": "RecordIO", "InputMode": "Pipe"}  # fmt: skip
    for key, value in changes.items():
        (source if key in source or key == "AttributeNames" else channel)[key] = value
    return channel


def test_the_channel_rules_follow_the_documented_input_interface():
    check = algorithm_rules.channel_problems
    assert check([manifest_channel("train"), manifest_channel("validation")], "Pipe") == []
    model = {"ChannelName": "model", "ContentType": "application/x-sagemaker-model",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/model/"}}}  # fmt: skip
    assert check([manifest_channel("train"), manifest_channel("validation"), model], "Pipe") == []
    assert check([manifest_channel("train"), manifest_channel("validation"), {**model, "ContentType": "x"}], "Pipe")
    multi = manifest_channel("train", ContentType="application/x-recordio; label-format=multi-hot")
    named = manifest_channel("validation", AttributeNames=["image-ref", "labels"])
    assert check([multi, named], "Pipe") == []
    sharded = manifest_channel("train", S3DataDistributionType="ShardedByS3Key")
    assert check([sharded, manifest_channel("validation")], "Pipe") == [
        "train: RecordIO in Pipe mode needs S3DataDistributionType FullyReplicated"
    ]
    one_name = manifest_channel("validation", AttributeNames=["source-ref"])
    assert check([manifest_channel("train"), one_name], "Pipe") == [
        "validation: AttributeNames must name the image, then the label"
    ]
    assert check([manifest_channel("train")], "Pipe") == [
        "channels must be train and validation (and model), got ['train']"
    ]


def test_job_names_are_valid_traceable_and_stable():
    name = job_name("Lab Ålborg / run #2", "train-v1|valid-v1")
    assert NAME_PATTERN.match(name) and len(name) <= 63
    assert name.startswith("pcam-lab-")
    assert name == job_name("Lab Ålborg / run #2", "train-v1|valid-v1")
    assert name != job_name("Lab Ålborg / run #2", "train-v2|valid-v1")
    tuning = job_name("a" * 80, "x", limit=32)
    assert NAME_PATTERN.match(tuning) and len(tuning) <= 32


def test_training_request_uses_pipe_mode_augmented_manifests_in_the_algorithm_order():
    inputs = TrainingInputs("pcam-pcam-0123456789", TRAIN, VALID, 262_144, 96, {"dataset": "pcam"})
    request = training_job_request(SETTINGS, inputs)
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    for channel, uri in ((channels["train"], TRAIN), (channels["validation"], VALID)):
        source = channel["DataSource"]["S3DataSource"]
        assert source["S3DataType"] == "AugmentedManifestFile" and source["S3Uri"] == uri
        assert source["AttributeNames"] == ["source-ref", "class"]
        assert channel["RecordWrapperType"] == "RecordIO"
        assert channel["ContentType"] == "application/x-recordio"
        assert channel["InputMode"] == "Pipe"
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "685385470294.dkr.ecr.eu-west-1.amazonaws.com/image-classification:1",
        "TrainingInputMode": "Pipe",
    }
    assert request["OutputDataConfig"]["S3OutputPath"] == "s3://pcam-data/models/"
    assert request["HyperParameters"]["num_training_samples"] == "262144"


def test_tuning_request_maximises_validation_accuracy_and_keeps_tuned_values_out_of_the_static_ones():
    settings = SageMakerSettings(**{**SETTINGS.__dict__, "tuning_max_jobs": 8})
    request = tuning_job_request(settings, TrainingInputs(job_name("pcam", "x", 32), TRAIN, VALID, 1000, 96))
    job_config = request["HyperParameterTuningJobConfig"]
    assert job_config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:accuracy"}
    # 8 trials, 2 at a time: 4 rounds of at most a training's 4 h each
    assert job_config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 8,
        "MaxParallelTrainingJobs": 2,
        "MaxRuntimeInSeconds": 57_600,
    }
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert "learning_rate" not in static and static["num_training_samples"] == "1000"
    assert len(request["HyperParameterTuningJobName"]) <= 32


def test_a_request_sagemaker_would_reject_is_refused_with_botocores_report():
    request = training_job_request(SETTINGS, TrainingInputs("pcam-x-1", TRAIN, VALID, 10, 96))
    request["ResourceConfig"]["InstanceCount"] = "one"
    del request["RoleArn"]
    with pytest.raises(InvalidJobRequest, match="RoleArn") as caught:
        validate("CreateTrainingJob", request)
    assert "InstanceCount" in str(caught.value)


def test_model_request_serves_the_training_artefacts_with_the_algorithm_image():
    request = model_request(SETTINGS, "pcam-pcam-train-1", "s3://pcam-data/models/j/output/model.tar.gz", {"a": "b"})
    assert request["PrimaryContainer"] == {
        "Image": "685385470294.dkr.ecr.eu-west-1.amazonaws.com/image-classification:1",
        "ModelDataUrl": "s3://pcam-data/models/j/output/model.tar.gz",
    }
    assert request["ExecutionRoleArn"] == SETTINGS.role_arn


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest-file", "s3-prefix"])
def test_transform_request_sends_one_jpeg_per_request(manifest):
    source = "s3://pcam-data/manifests/slides/s1/r.manifest" if manifest else "s3://pcam-data/images/x/"
    request = transform_request(SETTINGS, "pcam-x-test-1", "m", source, "s3://pcam-data/out/", {}, manifest)
    data_input = request["TransformInput"]
    assert data_input["DataSource"]["S3DataSource"] == {
        "S3DataType": "ManifestFile" if manifest else "S3Prefix",
        "S3Uri": source,
    }
    assert (data_input["ContentType"], data_input["SplitType"]) == ("application/x-image", "None")
    assert request["BatchStrategy"] == "SingleRecord"
    assert "MaxConcurrentTransforms" not in request  # the built-in algorithm's execution-parameters decide
    assert request["MaxPayloadInMB"] == 1  # one 96x96 JPEG is a few KB


def test_a_set_max_concurrent_transforms_is_sent_and_bounded_by_the_payload():
    settings = SageMakerSettings(**{**SETTINGS.__dict__, "max_concurrent_transforms": 8, "max_payload_mb": 12})
    request = transform_request(settings, "pcam-x-test-1", "m", "s3://b/p/", "s3://b/o/", {})
    assert (request["MaxConcurrentTransforms"], request["MaxPayloadInMB"]) == (8, 12)


def test_transform_payload_times_concurrency_over_100_mb_is_refused():
    settings = SageMakerSettings(**{**SETTINGS.__dict__, "max_payload_mb": 50, "max_concurrent_transforms": 4})
    with pytest.raises(InvalidJobRequest, match="must not exceed 100"):
        transform_request(settings, "pcam-x-test-1", "m", "s3://b/p/", "s3://b/o/", {})


def test_evaluation_request_runs_the_script_in_the_scikit_learn_container():
    inputs = {"labels": "s3://b/manifests/t.manifest", "predictions": "s3://b/e/m/predictions/"}
    request = evaluation_request(
        SETTINGS, "pcam-x-metrics-1", "s3://b/code/v/evaluate_model.py", inputs, "s3://b/e/m", {}
    )
    spec = request["AppSpecification"]
    assert spec["ImageUri"] == "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert spec["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/evaluate_model.py"]
    local_paths = {i["InputName"]: i["S3Input"]["LocalPath"] for i in request["ProcessingInputs"]}
    assert local_paths == {
        "code": "/opt/ml/processing/input/code",
        "labels": "/opt/ml/processing/input/labels",
        "predictions": "/opt/ml/processing/input/predictions",
    }
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == "s3://b/e/m"


def test_job_names_of_every_kind_stay_within_sagemakers_limits():
    for kind, limit in (("train", 63), ("tune", 32), ("test", 63), ("metrics", 63)):
        name = job_name("a-very-long-dataset-name-" * 4, "inputs", limit, kind=kind)
        assert NAME_PATTERN.match(name) and len(name) <= limit and f"-{kind}-" in name
