import numpy as np
import pytest

from pcam_pipeline.core.errors import SettingsError
from pcam_pipeline.core.settings import ConversionSettings, IngestSettings, ModelSettings
from pcam_synth.synth import synth_slide, synth_split

BASE_ENV = {"DATA_BUCKET": "b", "STATE_TABLE": "t", "EVENT_BUS": "bus"}


def test_synthetic_patches_look_like_he_tissue_with_balanced_labels():
    x, y = synth_split(200, np.random.default_rng(0))
    assert x.shape == (200, 96, 96, 3) and x.dtype == np.uint8
    assert 0.35 < y.mean() < 0.65
    red, green, blue = x.reshape(-1, 3).mean(axis=0)
    assert red > green and blue > green, "pink/purple: haematoxylin and eosin, not green"


def test_the_tumour_signal_sits_in_the_centre_and_is_not_one_colour_per_class():
    x, y = synth_split(300, np.random.default_rng(1))
    centre_darkness = 255 - x[:, 32:64, 32:64].mean(axis=(1, 2, 3))
    whole_colour = x.mean(axis=(1, 2))
    # the centre differs on average between classes ...
    assert centre_darkness[y == 1].mean() > centre_darkness[y == 0].mean()
    # ... but the classes' mean colours overlap: no single colour gives the label away
    tumour, normal = whole_colour[y == 1], whole_colour[y == 0]
    overlap = (tumour[:, 0] < np.percentile(normal[:, 0], 90)).mean()
    assert overlap > 0.3


def test_synthetic_slides_have_coords_on_a_grid_and_a_tumour_region():
    x, coords, truth = synth_slide(4, 5, np.random.default_rng(2))
    assert x.shape[0] == coords.shape[0] == truth.shape[0] == 20
    assert coords[:, 0].max() == 4 * 96 and coords[:, 1].max() == 3 * 96
    assert 0 < truth.sum() < 20


@pytest.mark.parametrize("diameter", [0.1, 1.0, 4.0])
def test_a_lesion_of_a_given_diameter_labels_the_patches_whose_centre_it_reaches(diameter):
    from pcam_synth.whole_slides import lesion_cells

    cell_mm = 96 * 0.972 / 1000
    rows = max(30, int(diameter / cell_mm / 0.9) + 7)
    tissue, tumour, border = lesion_cells(rows, round(rows * 1.2), (diameter,), cell_mm)
    centres = np.argwhere(tumour) * cell_mm
    span = max(cell_mm, *(np.hypot(*(a - b)) for a in centres for b in centres))  # as lesions are measured
    assert abs(span - diameter) <= cell_mm, "the tumour patches' centres span the diameter, within one patch"
    assert tumour.sum() >= 1 and not (tumour & border).any() and not ((tumour | border) & ~tissue).any()
    assert border.sum() > 0 and not tissue[:, -rows // 6 :].any(), "a ring of border patches; glass for the pen"


def test_pcam_synth_writes_lesion_slides_and_refuses_a_negative_diameter(tmp_path, capsys):
    from pcam_ops.cli import main

    assert main(["synth", str(tmp_path), "--train", "0", "--valid", "0", "--test", "0", "--slides", "0",
                 "--lesion-mm", "0", "--lesion-mm", "0.5"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "slides").iterdir()) == ["lesion-0.5mm.tif", "no-lesion.tif"]
    assert main(["synth", str(tmp_path / "x"), "--lesion-mm", "-1"]) == 2
    assert "--lesion-mm takes a diameter in mm" in capsys.readouterr().err


def test_settings_are_parsed_once_and_bad_values_are_named():
    settings = IngestSettings.from_env(
        {
            **BASE_ENV,
            "IDEMPOTENCY_TABLE": "i",
            "CONVERT_QUEUE_URL": "q",
            "PATCHES_PER_SHARD": "4096",
            "JPEG_QUALITY": "85",
        }
    )
    assert settings.patches_per_shard == 4096 and settings.conversion.jpeg_quality == 85
    with pytest.raises(SettingsError, match="JPEG_QUALITY must be between 1 and 100, not 0"):
        ConversionSettings.from_env({**BASE_ENV, "JPEG_QUALITY": "0"})
    with pytest.raises(SettingsError, match="RESIZE_TO must be a whole number"):
        ConversionSettings.from_env({**BASE_ENV, "RESIZE_TO": "big"})
    with pytest.raises(SettingsError, match="DATA_BUCKET is not set"):
        ConversionSettings.from_env({"STATE_TABLE": "t", "EVENT_BUS": "bus"})


MODEL_ENV = {
    "DATA_BUCKET": "b",
    "STATE_TABLE": "t",
    "EVENT_BUS": "bus",
    "ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:alerts",
    "SAGEMAKER_TRAINING_ROLE_ARN": "arn:aws:iam::1:role/sm-training",
    "SAGEMAKER_TRANSFORM_ROLE_ARN": "arn:aws:iam::1:role/sm-transform",
    "SAGEMAKER_EVALUATION_ROLE_ARN": "arn:aws:iam::1:role/sm-evaluation",
    "AWS_REGION": "eu-west-1",
    "TRAINING_INSTANCE_TYPE": "ml.p3.2xlarge",
    "TRANSFORM_INSTANCE_TYPE": "ml.m5.xlarge",
    "EVALUATION_INSTANCE_TYPE": "ml.m5.large",
    "HYPERPARAMETER_OVERRIDES": '{"epochs": 12}',
    "TUNING_MAX_JOBS": "4",
    "MINIMUM_AUC": "0.93",
}


def test_model_settings_come_from_the_template_environment():
    settings = ModelSettings.from_env(MODEL_ENV)
    assert settings.minimum_auc == 0.93 and settings.decision_threshold is None, "each model's own threshold"
    assert (settings.target_sensitivity, settings.minimum_sensitivity) == (0.95, 0.85)
    overridden = ModelSettings.from_env({**MODEL_ENV, "DECISION_THRESHOLD": "0.3", "TARGET_SENSITIVITY": "0.9"})
    assert (overridden.decision_threshold, overridden.target_sensitivity) == (0.3, 0.9)
    assert settings.sagemaker.hyperparameter_overrides == {"epochs": 12}
    assert settings.sagemaker.tuning_max_jobs == 4 and settings.sagemaker.region == "eu-west-1"


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("HYPERPARAMETER_OVERRIDES", "epochs=12", "must be a JSON object"),
        ("HYPERPARAMETER_OVERRIDES", "[1, 2]", "must be a JSON object"),
        ("MINIMUM_AUC", "high", "must be a number"),
        ("MINIMUM_AUC", "1.5", "between 0.0 and 1.0"),
        ("SAGEMAKER_EVALUATION_ROLE_ARN", "", "SAGEMAKER_EVALUATION_ROLE_ARN is not set"),
    ],
)
def test_bad_model_settings_are_refused_plainly(name, value, problem):
    with pytest.raises(SettingsError, match=problem):
        ModelSettings.from_env({**MODEL_ENV, name: value})
