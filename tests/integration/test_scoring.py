"""Scoring slides through the local stack: predictions/<slide_id>.csv|json|png and the Slide Scored event.

A stack of its own: the first test needs a deployment where no model is current yet.
"""

import csv
import io

import numpy as np
import pytest
from PIL import Image

from pcam_synth.synth import synth_slide, synth_split
from tests.event_contracts import contract_violations
from tests.integration.conftest import INTEGRATION
from tests.lab import h5_bytes

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order

HEADER = ["slide_id", "patch_index", "coord_x", "coord_y", "tumor_probability", "label", "raw_score", "qc"]


@pytest.fixture(scope="module")
def stack(private_stack):
    return private_stack


def drop_slide(pipeline, slide_id, rows=4, cols=5, seed=0, with_coords=True):
    patches, coords, labels = synth_slide(rows, cols, np.random.default_rng(seed))
    body = h5_bytes(x=patches, coords=coords) if with_coords else h5_bytes(x=patches)
    pipeline.drop(f"incoming/slides/{slide_id}.h5", body)
    pipeline.settle()
    drop_slide.truth[slide_id] = labels  # what the synthetic slide really holds, patch by patch
    return patches, coords


drop_slide.truth = {}


def drop_dataset(pipeline):
    rng = np.random.default_rng(21)
    for split, count in (("train", 300), ("valid", 100), ("test", 160)):
        pipeline.drop_split("scorer", split, *synth_split(count, rng))
    pipeline.settle()


def read_csv(stack, slide_id) -> list[dict]:
    rows = list(csv.reader(io.StringIO(stack.read(f"predictions/{slide_id}.csv").decode())))
    assert rows[0] == HEADER, "the CSV header is a contract"
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def slide_record(stack, slide_id):
    return stack.state.get(f"slide#{slide_id}")


def scoring_jobs(stack, slide_id):
    return [r for r in stack.records() if r["pk"].startswith("job#") and r.get("slide_id") == slide_id]


def test_a_slide_before_any_model_waits_and_is_scored_once_a_model_is_promoted(stack, pipeline):
    patches, coords = drop_slide(pipeline, "early", seed=1)
    assert slide_record(stack, "early")["scoring_status"] == "waiting for a model"
    assert not stack.list_keys("predictions/")

    drop_dataset(pipeline)
    current = stack.state.get("models", "current")
    assert current is not None, "the dataset's model is promoted"
    assert slide_record(stack, "early")["scoring_status"] == "scored"

    rows = read_csv(stack, "early")
    assert [int(r["patch_index"]) for r in rows] == list(range(len(patches))), "one row per patch, in order"
    assert [(int(r["coord_x"]), int(r["coord_y"])) for r in rows] == [tuple(c) for c in coords.tolist()]
    summary = pipeline.json("predictions/early.json")
    model = stack.state.get("models", f"model#{current['model_name']}")
    assert summary["threshold"] == pytest.approx(float(model["operating_threshold"])), "the model's own threshold"
    assert summary["calibration"] == model["calibration"]["method"] != "none"
    for row in rows:
        probability = float(row["tumor_probability"])
        assert 0 <= probability <= 1 and int(row["label"]) == int(probability >= summary["threshold"])
    # Against the truth: each row's prediction is for its own patch (a shift by one would fall towards 0.5).
    from sklearn.metrics import roc_auc_score

    truth = drop_slide.truth["early"]
    predicted = [float(r["tumor_probability"]) for r in rows]
    assert 0 < truth.sum() < len(truth)
    assert roc_auc_score(truth, predicted) > 0.8
    assert roc_auc_score(truth[1:], predicted[:-1]) < roc_auc_score(truth, predicted)

    assert summary["patch_count"] == len(patches) and summary["model_name"] == current["model_name"]
    assert summary["tumour_patch_count"] == sum(int(r["label"]) for r in rows)
    assert summary["input_key"] == "incoming/slides/early.h5" and summary["input_version"]
    assert summary["model_metrics"]["auc"] > 0.9 and summary["model_metrics"]["sensitivity_ci95"]
    assert Image.open(io.BytesIO(stack.read("predictions/early.png"))).format == "PNG"

    (event,) = pipeline.events_for("Slide Scored", slide_id="early")
    assert event["source"] == "pcam.pipeline"
    assert event["detail"]["csv_uri"] == f"s3://{stack.bucket}/predictions/early.csv"
    assert event["detail"]["tumour_fraction"] == summary["tumour_fraction"]
    assert "verdict" not in event["detail"], "version 1 stays as it was"
    (newest,) = pipeline.events_for("Slide Scored v2", slide_id="early")
    assert newest["detail"]["verdict"] == summary["verdict"] and newest["detail"]["schema_version"] == 2
    assert contract_violations("Slide Scored v2", newest["detail"]) == []

    # The coords are pixels at the model's resolution: positive patches that touch are one lesion.
    verdict = summary["verdict"]
    assert sum(lesion["tile_count"] for lesion in verdict["lesions"]) == summary["tumour_patch_count"]
    counted = [lesion for lesion in verdict["lesions"] if lesion["counted"]]
    assert verdict["category"] == (counted[0]["category"] if counted else "negative")
    minimum = verdict["evidence"]["minimum_lesion_tiles"]
    assert all(lesion["counted"] == (lesion["tile_count"] >= minimum) for lesion in verdict["lesions"])
    assert verdict["measurement_resolution_mm"] == pytest.approx(0.0933, abs=1e-4)


def test_the_slide_report_renders_in_a_browser_with_its_verdict_and_picture(stack, pipeline, tmp_path):
    from pcam_pipeline.scoring.lesions import verdict_in_words
    from tests.browser import render

    summary = pipeline.json("predictions/early.json")
    assert summary["report_uri"] == f"s3://{stack.bucket}/predictions/early.html"
    page = tmp_path / "early.html"
    page.write_bytes(stack.read("predictions/early.html"))
    dom, screenshot = render(page)
    assert verdict_in_words(summary["verdict"]) in dom
    heatmap = np.asarray(Image.open(io.BytesIO(stack.read("predictions/early.png"))).convert("RGB"))
    frame = heatmap[:20].reshape(-1, 3)  # the heatmap's white frame: look for its coloured cells instead
    colours = {tuple(c) for c in heatmap.reshape(-1, 3)[::97]} - {tuple(c) for c in frame}
    on_screen = {tuple(c) for c in screenshot.reshape(-1, 3)}
    assert len(colours & on_screen) >= 0.5 * len(colours), "the heatmap is drawn on the page"


def test_a_slide_after_the_model_is_scored_and_without_coords_gets_empty_coords_and_no_heatmap(stack, pipeline):
    patches, _ = drop_slide(pipeline, "plain", rows=3, cols=3, seed=2, with_coords=False)
    rows = read_csv(stack, "plain")
    assert len(rows) == len(patches)
    assert all(r["coord_x"] == "" and r["coord_y"] == "" for r in rows)
    assert pipeline.json("predictions/plain.json")["heatmap_uri"] is None
    assert not stack.list_keys("predictions/plain.png")


def test_a_slide_id_that_is_a_formula_is_text_in_the_csv_and_unchanged_everywhere_else(stack, pipeline):
    slide_id = '=HYPERLINK("evil.example";"open")'
    drop_slide(pipeline, slide_id, rows=2, cols=2, seed=7)
    rows = list(csv.reader(io.StringIO(stack.read(f"predictions/{slide_id}.csv").decode())))
    assert not [cell for row in rows for cell in row if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert {row[0] for row in rows[1:]} == {"'" + slide_id}, "a spreadsheet shows the id as text"
    assert pipeline.json(f"predictions/{slide_id}.json")["slide_id"] == slide_id
    assert pipeline.events_for("Slide Scored", slide_id=slide_id), "the event carries the id unchanged"


def test_two_labs_dropping_the_same_slide_name_get_separate_results_that_say_whose_they_are(stack, pipeline):
    truths = {}
    for lab, seed in (("lab-a", 11), ("lab-b", 12)):
        patches, coords, labels = synth_slide(2, 3, np.random.default_rng(seed))
        pipeline.drop(f"incoming/labs/{lab}/slides/shared.h5", h5_bytes(x=patches, coords=coords))
        truths[lab] = len(patches)
    pipeline.drop("incoming/labs/lab-a/slides/other.h5", h5_bytes(x=synth_slide(1, 1, np.random.default_rng(1))[0]))
    pipeline.settle()
    for lab, count in truths.items():
        summary = pipeline.json(f"predictions/labs/{lab}/shared.json")
        assert (summary["slide_id"], summary["lab"]) == (f"labs/{lab}/shared", lab)
        assert summary["input_key"] == f"incoming/labs/{lab}/slides/shared.h5" and summary["patch_count"] == count
        assert len(read_csv(stack, f"labs/{lab}/shared")) == count
        (event,) = pipeline.events_for("Slide Scored", slide_id=f"labs/{lab}/shared")
        assert event["detail"]["lab"] == lab
        csv_key = f"predictions/labs/{lab}/shared.csv"
        version = stack.s3.head_object(Bucket=stack.bucket, Key=csv_key)["VersionId"]
        assert event["detail"]["file_versions"][csv_key] == version, "the event names the version it announces"
    assert not stack.list_keys("predictions/shared."), "neither lab's slide lands in the deployment's own folder"
    assert pipeline.json("predictions/plain.json")["lab"] is None


def test_a_lab_follows_its_files_with_its_own_credentials_only_and_sees_no_other_labs(stack, pipeline, monkeypatch):
    """`pcam status --lab` reads the lab's status objects; every call it makes is allowed by the lab's own policy
    (the offline IAM check), and the same policy is denied lab B's status objects."""
    import json

    import boto3

    from pcam_local.iam_calls import CallRecorder, recorded_calls
    from pcam_local.iam_needs import Need, needs_of
    from pcam_local.iam_policies import allowing_statement
    from pcam_ops.lab_view import lab_status
    from pcam_pipeline.core.labs import lab_policy

    pipeline.drop("incoming/labs/lab-a/slides/broken.h5", b"not an HDF5 file")
    pipeline.settle()
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    session = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    calls = stack.work_dir / "lab-a-calls"
    session.events.register_last("before-parameter-build", CallRecorder("lab-a", calls / "calls.jsonl"))

    seen = lab_status(stack.bucket, "lab-a")
    shared, broken = seen["items"]["slides/shared"], seen["items"]["files/slides/broken.h5"]
    assert shared["stage"] == "scored" and shared["waiting_for"] is None and shared["verdict"]
    assert shared["results"]["csv"] == "predictions/labs/lab-a/shared.csv"
    assert broken["stage"] == "quarantined" and "not an HDF5 file" in broken["reason"]
    assert json.loads(stack.read(broken["quarantine"]["reason_key"]))["problem"] == "the file is not an HDF5 file"
    assert seen["items"]["files/slides/shared.h5"]["stage"] == "converted"
    assert not any("lab-b" in json.dumps(item) for item in seen["items"].values()), "nothing of lab B"

    bucket_arn = f"arn:aws:s3:::{stack.bucket}"
    statements = lab_policy(bucket_arn, "lab-a")["Statement"]
    needs = [need for call in recorded_calls(calls) for need in needs_of(call, {})]
    assert needs and all(allowing_statement(statements, need) for need in needs), "the lab's policy is enough"
    other = Need("s3:GetObject", f"{bucket_arn}/predictions/labs/lab-b/status/index.json")
    assert stack.read("predictions/labs/lab-b/status/index.json") and allowing_statement(statements, other) is None


def test_a_lab_asks_for_its_own_events_by_email_and_gets_no_other_labs(stack, pipeline, monkeypatch, capsys):
    """`pcam lab add --notify`: a rule that matches lab A's results, quarantines and failures only, publishing to a
    topic only that rule may publish to. A queue subscribed beside the lab's address sees what is mailed."""
    import json

    import boto3

    from pcam_ops.cli import main

    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert main(["lab", "add", "lab-a", "--notify", "pathology@lab-a.example", "--stack", "pcam-local"]) == 0
    assert "must confirm the subscription" in capsys.readouterr().out
    bus = stack.deployed.outputs["PipelineBusName"]
    eventbridge, sns = boto3.client("events"), boto3.client("sns")
    (topic,) = [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith("lab-lab-a-notices")]
    (subscription,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "pathology@lab-a.example")
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"].endswith("lab-lab-a-notices")

    # What the lab is mailed, seen by a queue subscribed beside the address: the pipeline's own events, sent again.
    sqs = stack.sqs
    url = sqs.create_queue(QueueName="lab-a-notices-seen")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    sent = [
        *pipeline.events_for("Slide Scored v2", slide_id="labs/lab-a/shared"),
        *pipeline.events_for("Slide Scored v2", slide_id="labs/lab-b/shared"),
        *pipeline.events_for("File Quarantined v2", key="incoming/labs/lab-a/slides/broken.h5"),
        *pipeline.events_for("Slide Ready v2", slide_id="labs/lab-a/shared"),
        *pipeline.events_for("Slide Scored", slide_id="labs/lab-a/shared"),
    ]
    entries = [{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"]),
                "EventBusName": bus} for e in sent]  # fmt: skip
    eventbridge.put_events(Entries=entries)
    seen = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted((e["detail-type"], e["detail"].get("slide_id") or e["detail"]["key"]) for e in seen) == [
        ("File Quarantined v2", "incoming/labs/lab-a/slides/broken.h5"),
        ("Slide Scored v2", "labs/lab-a/shared"),
    ], "lab A's results and quarantines, newest version only: not lab B's, not steps"
    assert main(["lab", "remove", "lab-a", "--stack", "pcam-local"]) == 0
    assert not [t for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith("lab-lab-a-notices")]


def test_a_slide_dropped_again_is_scored_again_and_the_new_result_replaces_the_old(stack, pipeline):
    drop_slide(pipeline, "again", rows=3, cols=4, seed=3)
    first = pipeline.json("predictions/again.json")
    drop_slide(pipeline, "again", rows=5, cols=4, seed=4)
    second = pipeline.json("predictions/again.json")
    assert (first["patch_count"], second["patch_count"]) == (12, 20)
    assert second["input_version"] != first["input_version"]
    assert len(read_csv(stack, "again")) == 20
    assert len(pipeline.events_for("Slide Scored", slide_id="again")) == 2
    # Integrators order the two uploads by S3's sequencer (padded to one length), as integrators.md says.
    scored = [e["detail"] for e in pipeline.events_for("Slide Scored v2", slide_id="again")]
    ready = [e["detail"] for e in pipeline.events_for("Slide Ready v2", slide_id="again")]
    width = max(len(d["input_sequencer"]) for d in scored)
    newest = max(scored, key=lambda d: d["input_sequencer"].zfill(width))
    assert (
        newest["input_version"]
        == second["input_version"]
        == max(ready, key=lambda d: d["input_sequencer"].zfill(width))["input_version"]
    )
    assert second["input_sequencer"] == newest["input_sequencer"], "the summary carries it too"


def test_duplicate_slide_ready_events_start_no_second_transform(stack, pipeline):
    drop_slide(pipeline, "dupe", rows=2, cols=3, seed=5)
    (ready,) = pipeline.events_for("Slide Ready", slide_id="dupe")
    pipeline.publish_again(ready)
    pipeline.settle()
    assert len(scoring_jobs(stack, "dupe")) == 1
    assert len(pipeline.events_for("Slide Scored", slide_id="dupe")) == 1


def test_a_failed_transform_marks_the_slide_failed_alerts_and_writes_no_csv(stack, pipeline, alerts):
    alerts()
    stack.sagemaker.outcome_next["TransformJob"] = ("Failed", "ClientError: unable to decode an image")
    drop_slide(pipeline, "unlucky", rows=2, cols=2, seed=6)
    record = slide_record(stack, "unlucky")
    assert record["scoring_status"] == "failed" and "unable to decode" in record["scoring_failure"]
    assert not stack.list_keys("predictions/unlucky")
    assert any("slide unlucky" in a["Message"] and "unable to decode" in a["Message"] for a in alerts())
    (failed,) = pipeline.events_for("Slide Scoring Failed", slide_id="unlucky")
    assert "unable to decode" in failed["detail"]["reason"], "an integrator waiting for the CSV hears why none comes"
    assert contract_violations("Slide Scoring Failed", failed["detail"]) == [], "as its schema file says"


def test_a_missing_prediction_output_fails_the_slide_without_a_partial_csv(stack, pipeline, alerts):
    alerts()
    stack.sagemaker.lose_outputs_next = 1
    drop_slide(pipeline, "lossy", rows=2, cols=3, seed=7)
    record = slide_record(stack, "lossy")
    assert record["scoring_status"] == "failed" and "prediction of patch 5" in record["scoring_failure"]
    assert not stack.list_keys("predictions/lossy")
    assert not pipeline.events_for("Slide Scored", slide_id="lossy")
    assert any("slide lossy" in a["Message"] for a in alerts())


def test_every_event_the_stack_published_matches_its_documented_schema(stack):
    from tests.event_contracts import contract_violations

    published = stack.pipeline_events()
    kinds = {event["detail-type"] for event in published}
    assert {"Split Ready", "Slide Ready", "Model Evaluated", "Model Promoted", "Slide Scored"} <= kinds
    for event in published:
        assert event["source"] == "pcam.pipeline"
        assert contract_violations(event["detail-type"], event["detail"]) == []


def test_every_alarm_and_dashboard_widget_on_the_pipelines_metrics_watches_what_the_functions_emitted(stack, pipeline):
    """Failed transforms above made the SageMaker flow emit SageMakerJobsFailed, and scored slides their lab's
    drift metrics (embedded metric format); here a file is quarantined and a slide waits for capacity once. The
    alarms and the dashboard query exactly the names and dimensions the functions emit."""
    from pcam_local.template import load_template
    from tests.observability_contract import ROOT, alarm_problems, dashboard_problems, emitted_metrics

    pipeline.drop("incoming/slides/not-hdf5.h5", b"not an HDF5 file")
    stack.sagemaker.refuse_next = {"TransformJob": 1}
    drop_slide(pipeline, "waits-for-capacity")
    pipeline.settle()
    assert stack.state.get("slide#waits-for-capacity")["scoring_status"] == "scored"
    emitted = emitted_metrics(stack.work_dir / "logs")
    assert any(metric == "SageMakerJobsFailed" for _, metric, _ in emitted)
    assert any(metric == "QcFailFraction" and ("Lab", "-") in dims for _, metric, dims in emitted)
    template = load_template(ROOT / "template.yaml")
    assert alarm_problems(template, emitted) == []
    assert dashboard_problems(template, emitted) == []
