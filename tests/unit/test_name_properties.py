"""Property-based: any Unicode dataset or slide name gives job names, tag values and S3 keys AWS accepts,
and prediction CSVs that read back unchanged. The full name is never lost: only derived ids are cleaned."""

import csv
import io
import unicodedata

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pcam_pipeline.aws import request_rules
from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import DatasetFile, SlideFile, classify_incoming_key
from pcam_pipeline.models.sagemaker_jobs import TUNING_JOB_NAME_LIMIT, job_name, tag_value
from pcam_pipeline.scoring.slide_results import prediction_csv

# A folder or file name as a lab might type it: any visible letters, marks, symbols or spaces; no "/" (that is
# a folder boundary), nothing a person cannot see (tests/unit/test_keys.py: those are refused).
_INVISIBLE_NAMES = ("FILLER", "VARIATION SELECTOR", "GRAPHEME JOINER", "KHMER VOWEL INHERENT")
VISIBLE = st.characters(
    blacklist_categories=("Cc", "Cs", "Cf", "Co", "Cn", "Zl", "Zp"), blacklist_characters="/"
).filter(lambda character: not any(part in unicodedata.name(character, "") for part in _INVISIBLE_NAMES))
NAMES = st.text(alphabet=VISIBLE, min_size=1, max_size=200).filter(
    lambda name: name.strip() and unicodedata.normalize("NFC", name) not in (".", "..")
)
EXAMPLES = settings(max_examples=200, deadline=None)


def accepted(service: str, operation: str, params: dict) -> bool:
    return request_rules.beyond_botocore(service, operation, params) == []


@EXAMPLES
@given(NAMES, st.text(max_size=40))
def test_job_names_and_tag_values_are_ones_sagemaker_accepts(name, identity):
    for kind, limit, operation, field in (
        ("train", 63, "DescribeTrainingJob", "TrainingJobName"),
        ("tune", TUNING_JOB_NAME_LIMIT, "DescribeHyperParameterTuningJob", "HyperParameterTuningJobName"),
        ("score", 63, "DescribeTransformJob", "TransformJobName"),
    ):
        generated = job_name(name, identity, limit, kind=kind)
        assert accepted("sagemaker", operation, {field: generated})
        assert generated == job_name(name, identity, limit, kind=kind)  # the same inputs, the same job
    tags = [{"Key": "pcam:dataset", "Value": tag_value(name)}]
    assert accepted(
        "sagemaker", "AddTags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m", "Tags": tags}
    )


@EXAMPLES
@given(NAMES)
def test_every_key_the_pipeline_writes_for_a_name_is_one_s3_accepts(name):
    written = [
        keys.dataset_image_prefix(name, "train", "run") + keys.patch_file_name(262_143),
        keys.slide_image_prefix(name, "run") + keys.patch_file_name(262_143),
        keys.split_manifest_key(name, "train", "token"),
        keys.slide_manifest_key(name, "run"),
        keys.prediction_key(name, "json"),
        keys.quarantine_key(f"incoming/datasets/{name}/x_train_x.h5"),
    ]
    for key in written:
        assert accepted("s3", "PutObject", {"Bucket": "data", "Key": key}), key


@EXAMPLES
@given(NAMES)
def test_a_dropped_slide_or_dataset_file_keeps_its_full_name_in_nfc(name):
    nfc = unicodedata.normalize("NFC", name)
    assert classify_incoming_key(f"incoming/slides/{name}.h5") == SlideFile(slide_id=nfc, compressed=False)
    if nfc == "slides":
        return  # a reserved dataset name, refused with that reason (tests/unit/test_keys.py)
    found = classify_incoming_key(f"incoming/datasets/{name}/camelyonpatch_level_2_split_valid_y.h5.gz")
    assert found == DatasetFile(dataset=nfc, split="valid", role="y", compressed=True)


@EXAMPLES
@given(NAMES)
def test_prediction_csvs_read_back_unchanged_and_no_cell_starts_a_formula(name):
    body = prediction_csv(name, np.array([0.125, 0.875]), np.array([[0, 96], [96, 0]]), 0.5)
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert all(len(row) == 8 for row in rows)
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    # integrators.md: a slide_id cell starting with a quote had one quote added
    assert [row[0].removeprefix("'") if row[0].startswith("'") else row[0] for row in rows[1:]] == [name, name]
