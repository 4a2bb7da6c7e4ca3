"""The five ways the first real deployment would have failed (issue 10), each checked as AWS would."""

import re

import pytest

from pcam_local.template import load_template
from pcam_pipeline.aws import request_rules
from pcam_pipeline.aws.alerts import Alerter
from pcam_pipeline.core.job_kinds import JobKind
from pcam_training import config
from tests.fakes import flow_on_fakes
from tests.unit.test_deployment_config import ROOT
from tests.unit.test_sagemaker_flow import job_event, make_world, slide_ready, split_ready, train_and_promote

TEMPLATE = load_template(ROOT / "template.yaml")
AWKWARD_NAMES = [
    "Lab (A), B&C #1 o'Brien",
    "Gewebe Übersicht ümlaut",
    "x" * 200,
    "slide|with|pipes",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_every_sagemaker_request_for_awkward_names_is_one_sagemaker_accepts(name):
    world = make_world()
    for split in ("train", "valid", "test"):
        split_ready(world, split, dataset=name)
    job_event(world, JobKind.TRAINING, "Completed")
    job_event(world, JobKind.TEST_TRANSFORM, "Completed")
    job_event(world, JobKind.VALIDATION_TRANSFORM, "Completed")
    assert world.launcher.refused == []
    assert sorted(kind for kind, _ in world.launcher.started.values()) == [
        JobKind.EVALUATION,
        JobKind.TEST_TRANSFORM,
        JobKind.TRAINING,
        JobKind.VALIDATION_TRANSFORM,
    ]
    assert world.state.get(f"dataset#{name}")["dataset"] == name  # the full name stays in the state table


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_tuning_and_slide_scoring_requests_for_awkward_names_are_accepted(name):
    world = make_world(tuning_max_jobs=2)
    split_ready(world, "train", dataset=name)
    split_ready(world, "valid", dataset=name)
    assert world.launcher.refused == [] and world.launcher.names(JobKind.TUNING)
    scoring = make_world()
    train_and_promote(scoring)
    slide_ready(scoring, slide_id=name)
    assert scoring.launcher.refused == [] and scoring.launcher.names(JobKind.SLIDE_SCORING)


def test_the_strict_checker_refuses_what_sagemaker_refuses():
    tags = [{"Key": "pcam:inputs", "Value": "a|b"}]
    request = {"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::1:role/r", "Tags": tags}
    problems = request_rules.violations("sagemaker", "CreateModel", request)
    assert any("does not match the pattern" in p and "a|b" in p for p in problems)
    too_long = {**request, "ModelName": "m" * 64, "Tags": []}
    assert any("at most 63" in p for p in request_rules.violations("sagemaker", "CreateModel", too_long))


def test_the_default_network_exists_at_96_px():
    """MXNet's reference ResNet symbol, which the algorithm follows: images taller than 28 px build only
    18, 34, 50, 101, 152 or 200 layers; 6n+2 depths exist only for images of 28 px or less."""
    scratch = {"use_pretrained_model": 0}
    assert config.training_hyperparameters(1000, 96)["num_layers"] in {"18", "34", "50", "101", "152", "200"}
    assert config.training_hyperparameters(1000, 96, scratch)["num_layers"] == "18"
    with pytest.raises(config.TrainingConfigError, match="num_layers"):
        config.training_hyperparameters(1000, 96, {**scratch, "num_layers": 20})
    assert config.training_hyperparameters(1000, 28, {**scratch, "num_layers": 20})["num_layers"] == "20"
    with pytest.raises(config.TrainingConfigError, match="num_layers"):
        config.training_hyperparameters(1000, 28, {**scratch, "num_layers": 18})


def resource(name: str) -> dict:
    return TEMPLATE["Resources"][name]


def statements_allowing(key: dict, service: str) -> set[str]:
    actions = set()
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if statement["Effect"] == "Allow" and service in services:
            found = statement["Action"]
            actions.update([found] if isinstance(found, str) else found)
    return actions


def test_every_alarm_can_publish_to_its_topic():
    """CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key; a customer-managed
    key must let cloudwatch.amazonaws.com use it (SNS developer guide, "Data encryption": compatibility
    with event sources from AWS services)."""
    alarms = {n: r for n, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms
    for name, alarm in alarms.items():
        for action in alarm["Properties"]["AlarmActions"]:
            topic = resource(action["Ref"])
            key_id = topic["Properties"].get("KmsMasterKeyId")
            assert isinstance(key_id, dict), f"{name}: the topic must use a customer-managed key, not {key_id}"
            key = resource(next(iter(key_id.values())) if "Ref" in key_id else key_id["Fn::GetAtt"][0])
            allowed = statements_allowing(key, "cloudwatch.amazonaws.com")
            assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= allowed, f"{name}: CloudWatch may not use the key"


def test_the_failed_jobs_alarm_watches_the_service_the_function_reports_as():
    alarm = resource("FailedJobsAlarm")["Properties"]
    (dimension,) = alarm["Dimensions"]
    service = resource("SageMakerFlowFunction")["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    assert (dimension["Name"], dimension["Value"]) == ("service", service)


class RecordingSns:
    def __init__(self):
        self.published = []

    def publish(self, **request):
        assert request_rules.violations("sns", "Publish", request) == []
        self.published.append(request)


@pytest.mark.parametrize("subject", ["training job failed for " + "Übersicht " * 30, "line\nbreak", "é first"])
def test_alert_subjects_are_what_sns_accepts(subject):
    sns = RecordingSns()
    Alerter("arn:aws:sns:us-east-1:123456789012:alerts", sns).alert(subject, "details")
    (published,) = sns.published
    assert published["Subject"].startswith("PCam pipeline: ")
    assert len(published["Subject"]) < 100


def test_a_failed_job_for_an_awkward_name_alerts_with_an_accepted_subject():
    sns = RecordingSns()
    world = flow_on_fakes(alerter=Alerter("arn:aws:sns:us-east-1:123456789012:alerts", sns))
    split_ready(world, "train", dataset=AWKWARD_NAMES[1] * 5)
    split_ready(world, "valid", dataset=AWKWARD_NAMES[1] * 5)
    job_event(world, JobKind.TRAINING, "Failed", FailureReason="ClientError: " + "x" * 300)
    assert len(sns.published) == 1 and "ClientError" in sns.published[0]["Message"]


def test_every_metric_the_code_emits_is_documented_for_operators():
    from tests.observability_contract import metric_names_in_code

    documented = (ROOT / "docs" / "operations.md").read_text()
    names = metric_names_in_code()
    assert len(names) >= 7
    assert [name for name in sorted(names) if f"`{name}`" not in documented] == []


def test_the_alarm_contract_check_catches_a_dimension_no_function_emits():
    from tests.observability_contract import alarm_problems

    emitted = {("PcamPipeline", "SageMakerJobsFailed", frozenset({("service", "model-lifecycle")}))}
    assert alarm_problems(TEMPLATE, emitted)  # what main had: the alarm could never fire
    flow = frozenset({("service", "sagemaker-flow")})
    fixed = {("PcamPipeline", "SageMakerJobsFailed", flow), ("PcamPipeline", "OldestCapacityWaitHours", flow)}
    fixed.add(("PcamPipeline", "QcFailFraction", frozenset({("Lab", "lab-a"), *flow})))
    assert alarm_problems(TEMPLATE, fixed) == []


def test_every_dead_letter_queue_alerts_on_each_new_dead_letter_not_only_the_first():
    """An alarm on "visible > 0" stays in ALARM while a queue holds a dead letter, and says nothing of the next
    one; each queue's alarm watches the rise of the count (DIFF), so it fires again for every new arrival."""
    resources = TEMPLATE["Resources"]
    dead_letter_queues = {
        r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]
    }
    # and the on-failure destinations of stream event sources (batches discarded after their retries)
    dead_letter_queues |= {
        event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] == "AWS::Serverless::Function"
        for event in r["Properties"].get("Events", {}).values()
        if "OnFailure" in event["Properties"].get("DestinationConfig", {})
    }
    assert len(dead_letter_queues) == 4
    watched = {}
    for resource in resources.values():
        metrics = resource["Properties"].get("Metrics", []) if resource["Type"] == "AWS::CloudWatch::Alarm" else []
        stats = {m["Id"]: m["MetricStat"]["Metric"] for m in metrics if "MetricStat" in m}
        for m in metrics:
            # FILL(…, 0): the first dead letter after a quiet spell (SQS sends no metric for a queue idle six hours)
            # must still be a rise from 0, not a first point with nothing before it.
            if m.get("ReturnData") and (rise := re.fullmatch(r"DIFF\(FILL\((\w+), 0\)\)", m.get("Expression", ""))):
                metric = stats[rise.group(1)]
                assert metric["MetricName"] == "ApproximateNumberOfMessagesVisible"
                (dimension,) = metric["Dimensions"]
                watched[dimension["Value"]["Fn::GetAtt"][0]] = resource["Properties"]
    assert set(watched) == dead_letter_queues
    for alarm in watched.values():
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert alarm["TreatMissingData"] == "notBreaching" and alarm["AlarmActions"]


def test_the_dashboard_and_qc_alarm_check_catches_a_dimension_no_function_emits():
    from tests.observability_contract import alarm_problems, dashboard_problems

    flow = frozenset({("service", "sagemaker-flow")})
    by_lab = frozenset({("Lab", "lab-a"), ("service", "sagemaker-flow")})
    emitted = {("PcamPipeline", "SageMakerJobsFailed", flow), ("PcamPipeline", "OldestCapacityWaitHours", flow)}
    assert any("QcFailFraction" in problem for problem in alarm_problems(TEMPLATE, emitted))
    emitted.add(("PcamPipeline", "QcFailFraction", by_lab))
    assert alarm_problems(TEMPLATE, emitted) == []
    without_lab = {("PcamPipeline", "QcFailFraction", flow)}  # emitted without its lab: the query finds nothing
    assert any("QcFailFraction" in problem for problem in dashboard_problems(TEMPLATE, without_lab))


def test_each_scored_slide_tells_cloudwatch_its_labs_drift_figures():
    from pcam_pipeline.scoring.lab_metrics import lab_metric_values

    summary = {"lab": "lab-a", "mean_probability": 0.2, "verdict": {"category": "negative"},
               "qc": {"status": "warn", "failing_fraction": 0.07}, "stain": {"distance_degrees": 3.5}}  # fmt: skip
    assert [(name, unit.name, value, dims) for name, unit, value, dims in lab_metric_values(summary)] == [
        ("MeanTumourProbability", "NoUnit", 0.2, {"Lab": "lab-a"}),
        ("SlidesByVerdict", "Count", 1.0, {"Lab": "lab-a", "Verdict": "negative"}),
        ("QcFailFraction", "NoUnit", 0.07, {"Lab": "lab-a"}),
        ("StainDistanceDegrees", "NoUnit", 3.5, {"Lab": "lab-a"}),
    ]
    own = {
        "lab": None,
        "mean_probability": 0.0,
        "verdict": {"category": "indeterminate"},
        "qc": {"status": "unchecked"},
    }
    assert [dims for *_, dims in lab_metric_values(own)] == [{"Lab": "-"}, {"Lab": "-", "Verdict": "indeterminate"}]
