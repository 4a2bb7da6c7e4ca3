"""What a lab sees of its items (core/lab_status.py): each state record of a lab's file, slide, split or model
becomes a status object under the lab's results folder; the deployment's own items and other records none."""

from pcam_pipeline.core.lab_status import FILE_STAGES, OWNER_STAGES, index_with, status_entry
from pcam_pipeline.core.statuses import FileStatus, OwnerStatus


def test_a_lab_slide_says_its_stage_what_it_waits_for_and_where_its_results_are():
    slide = {"pk": "slide#labs/lab-a/s1", "slide_id": "labs/lab-a/s1", "x_key": "incoming/labs/lab-a/slides/s1.svs"}
    waiting = status_entry({**slide, "status": "ready", "scoring_status": "waiting for a model"})
    assert waiting.key == "predictions/labs/lab-a/status/slides/s1.json"
    assert (waiting.document["stage"], waiting.document["waiting_for"]) == (
        "waiting for a model",
        "a model good enough to score slides",
    )
    scored = status_entry({"pk": "slide#labs/lab-a/s1", "slide_id": "labs/lab-a/s1", "scoring_status": "scored",
                           "predictions_key": "predictions/labs/lab-a/s1.csv", "verdict": "negative"})  # fmt: skip
    assert scored.document["results"]["html"] == "predictions/labs/lab-a/s1.html"
    assert scored.document["verdict"] == "negative" and scored.document["waiting_for"] is None


def test_a_quarantined_file_points_to_its_reason_and_a_split_and_model_to_their_dataset():
    file = status_entry({"pk": "file#incoming/labs/lab-a/datasets/d/train_x.h5", "sk": "v#1", "version": "1",
                         "status": "quarantined", "reason": "the file is not an HDF5 file",
                         "quarantine_key": "quarantine/incoming/labs/lab-a/datasets/d/train_x.h5"})  # fmt: skip
    assert file.name == "files/datasets/d/train_x.h5"
    assert file.document["quarantine"]["reason_key"].endswith("train_x.h5.error.json")
    split = status_entry({"pk": "split#labs/lab-a/d/train", "dataset": "labs/lab-a/d", "split": "train",
                          "status": "converting"})  # fmt: skip
    assert split.key == "predictions/labs/lab-a/status/datasets/d/train.json"
    model = status_entry({"pk": "models", "sk": "model#m1", "model_name": "m1", "dataset": "labs/lab-a/d",
                          "status": "evaluated", "metrics": {"auc": 0.93, "roc": [1, 2]},
                          "decision": {"promoted": False, "reason": "AUC below PromotionMinimumAuc"}})  # fmt: skip
    assert model.document["evaluation"] == {"auc": 0.93} and model.document["promoted"] is False


def test_the_deployments_own_items_other_records_and_experiments_make_no_status():
    assert status_entry({"pk": "slide#s1", "slide_id": "s1", "status": "ready"}) is None
    assert status_entry({"pk": "file#incoming/slides/s1.h5", "status": "converting"}) is None
    assert status_entry({"pk": "job#pcam-x", "sk": "job"}) is None
    assert status_entry({"pk": "models", "sk": "model#m", "dataset": "labs/a/d", "experiment": True}) is None


def test_the_index_keeps_every_item_sorted_and_replaces_one_in_place():
    first = status_entry({"pk": "slide#labs/a/s2", "slide_id": "labs/a/s2", "status": "converting"})
    second = status_entry({"pk": "slide#labs/a/s1", "slide_id": "labs/a/s1", "status": "converting"})
    index = index_with(index_with(None, first, "t1"), second, "t2")
    assert list(index["items"]) == ["slides/s1", "slides/s2"] and index["updated_at"] == "t2"
    done = status_entry({"pk": "slide#labs/a/s2", "slide_id": "labs/a/s2", "scoring_status": "scored"})
    assert index_with(index, done, "t3")["items"]["slides/s2"]["stage"] == "scored"


def test_every_status_a_file_or_a_split_can_have_is_said_in_the_labs_words():
    assert set(FILE_STAGES) == {str(status) for status in FileStatus}
    assert set(OWNER_STAGES) == {str(status) for status in OwnerStatus}
