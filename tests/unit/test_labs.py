"""Labs sharing one deployment: each lab's drops, ids and results live under its own folders, and its IAM
policy (``pcam lab add``) allows those and nothing else, as the offline IAM check evaluates it."""

import pytest

from pcam_local.iam_needs import Need
from pcam_local.iam_policies import allowing_statement
from pcam_pipeline.core import keys
from pcam_pipeline.core.dropped_files import DatasetFile, SlideSidecarFile, WholeSlideFile, classify_incoming_key
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.labs import lab_of, lab_policy

BUCKET = "arn:aws:s3:::data"


def test_a_labs_slides_and_datasets_are_named_in_the_lab_and_its_results_land_in_its_folder():
    slide = classify_incoming_key("incoming/labs/lab-a/slides/s1.svs")
    assert slide == WholeSlideFile(slide_id="labs/lab-a/s1") and lab_of(slide.slide_id) == "lab-a"
    assert classify_incoming_key("incoming/labs/lab-b/slides/s1.svs").slide_id != slide.slide_id
    assert keys.prediction_key(slide.slide_id, "csv") == "predictions/labs/lab-a/s1.csv"
    assert classify_incoming_key("incoming/labs/lab-a/slides/s1.json") == SlideSidecarFile("labs/lab-a/s1")
    assert keys.sidecar_key(slide.slide_id) == "incoming/labs/lab-a/slides/s1.json", "a sidecar stays in its lab"
    dataset = classify_incoming_key("incoming/labs/lab-a/datasets/d/camelyonpatch_level_2_split_train_x.h5")
    assert dataset == DatasetFile("labs/lab-a/d", "train", "x", compressed=False)
    assert lab_of("s1") is None and keys.sidecar_key("s1") == "incoming/slides/s1.json"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("incoming/labs/Lab_A/slides/s1.svs", "the lab's folder name is not a lab name"),
        ("incoming/labs/-a/slides/s1.svs", "the lab's folder name is not a lab name"),
        ("incoming/labs/" + "a" * 33 + "/slides/s1.svs", "the lab's folder name is not a lab name"),
        ("incoming/labs/lab-a/slides/x/s1.svs", "slides sit directly in incoming/slides/"),
        ("incoming/slides/labs.h5", "the name 'labs' is reserved for labs' folders"),
        ("incoming/datasets/labs/d_train_x.h5", "the name 'labs' is reserved for labs' folders"),
    ],
)
def test_keys_outside_a_labs_rules_are_refused_with_a_reason(key, problem):
    with pytest.raises(InvalidInput) as refusal:
        classify_incoming_key(key)
    assert refusal.value.problem.startswith(problem)


def allowed(lab: str, action: str, key: str | None = None, prefix: str | None = None) -> bool:
    statements = lab_policy(BUCKET, lab)["Statement"]
    if prefix is not None:
        return allowing_statement(statements, Need(action, BUCKET, (("s3:prefix", prefix),))) is not None
    return allowing_statement(statements, Need(action, f"{BUCKET}/{key}")) is not None


OWN = ["incoming/labs/{}/slides/s1.svs", "incoming/labs/{}/slides/s1.json", "incoming/labs/{}/datasets/d/training.json"]
RESULTS = ["predictions/labs/{}/s1.csv", "predictions/labs/{}/s1.json", "quarantine/incoming/labs/{}/slides/s1.svs"]


@pytest.mark.parametrize("template", OWN + RESULTS)
@pytest.mark.parametrize("other", ["lab-b", "lab-ab", "lab"])  # names that share lab-a's first letters too
def test_lab_a_is_denied_every_read_and_write_of_lab_bs_keys(template, other):
    key = template.format(other)
    for action in ("s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject"):
        assert not allowed("lab-a", action, key), (action, key)
    assert not allowed("lab-a", "s3:ListBucket", prefix=key.rsplit("/", 1)[0] + "/")


def test_lab_a_drops_under_its_folder_reads_its_results_and_quarantine_and_nothing_of_the_deployments_own():
    for template in OWN:
        assert allowed("lab-a", "s3:PutObject", template.format("lab-a"))
    for template in RESULTS:
        assert allowed("lab-a", "s3:GetObject", template.format("lab-a"))
        assert not allowed("lab-a", "s3:PutObject", template.format("lab-a")), "results are the pipeline's"
    assert allowed("lab-a", "s3:ListBucket", prefix="predictions/labs/lab-a/")
    for key in ("incoming/slides/s1.svs", "predictions/s1.csv", "models/m/model.tar.gz", "images/slides/x/0.jpg"):
        assert not allowed("lab-a", "s3:GetObject", key) and not allowed("lab-a", "s3:PutObject", key)
    assert not allowed("lab-a", "s3:ListBucket", prefix="")
    assert not allowed("lab-a", "s3:ListBucket", prefix="predictions/labs/")
    assert not allowed("lab-a", "s3:DeleteObject", "incoming/labs/lab-a/slides/s1.svs"), "nothing is deleted"


def test_a_lab_name_that_could_reach_another_labs_folder_gets_no_policy():
    with pytest.raises(InvalidInput):
        lab_policy(BUCKET, "lab-a/../lab-b")
    with pytest.raises(InvalidInput):
        lab_policy(BUCKET, "*")
