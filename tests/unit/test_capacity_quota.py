"""A quota of 0 (new accounts often have one for GPU training instances) is a failure that says which quota to
raise, not a wait that never ends; and any wait longer than CapacityWaitAlarmHours raises an alarm (issue 33,
B.3)."""

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from pcam_pipeline.aws import events
from pcam_pipeline.aws.job_launcher import SageMakerLauncher, zero_quota
from pcam_pipeline.core.errors import CapacityRefused, QuotaIsZero
from pcam_pipeline.core.job_kinds import JobKind
from pcam_pipeline.models.flow import oldest_wait_hours
from tests.unit.test_sagemaker_flow import make_world, split_ready

OLD_WORDING = ("The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, with current "
               "utilization of 0 Instances and a request delta of 1 Instances. Please contact AWS support to "
               "request an increase for this limit.")  # fmt: skip
NEW_WORDING = ("The account-level service limit 'ml.g4dn.xlarge for training job usage' is 0 Instances, with current "
               "utilization of 0 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to "
               "request an increase for this quota.")  # fmt: skip
USED_UP = ("The account-level service limit 'ml.g4dn.xlarge for training job usage' is 2 Instances, with current "
           "utilization of 2 Instances and a request delta of 1 Instances.")  # fmt: skip


def test_the_quota_a_refusal_names_is_read_only_when_it_is_zero():
    assert zero_quota(OLD_WORDING) == "ml.p3.2xlarge for training job usage"
    assert zero_quota(NEW_WORDING) == "ml.g4dn.xlarge for training job usage"
    assert zero_quota(USED_UP) is None and zero_quota("Rate exceeded") is None


class RefusingClient:
    def __init__(self, message: str):
        self.message = message

    def create_training_job(self, **request):
        raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": self.message}}, "CreateTrainingJob")


@pytest.mark.parametrize(("message", "refusal"), [(NEW_WORDING, QuotaIsZero), (USED_UP, CapacityRefused)])
def test_the_launcher_tells_a_zero_quota_from_one_in_use(message, refusal):
    with pytest.raises(CapacityRefused) as raised:
        SageMakerLauncher(RefusingClient(message)).start(JobKind.TRAINING, "pcam-x-train-1", {})
    assert type(raised.value) is refusal


def test_a_training_refused_for_a_zero_quota_fails_at_once_and_says_which_quota_to_raise():
    world = make_world()
    world.launcher.zero_quota = "ml.g4dn.xlarge for training job usage"
    split_ready(world, "train")
    outcome = split_ready(world, "valid")

    assert outcome["status"] == "failed" and "Service Quotas" in outcome["reason"]
    assert world.state.capacity_waits() == []  # no wait that would never end
    (failure,) = world.publisher.of_type(events.MODEL_FAILED)
    assert "'ml.g4dn.xlarge for training job usage' is 0" in failure["reason"]
    ((subject, message),) = world.alerter.alerts
    assert "training job failed" in subject and "Service Quotas" in message
    assert world.launcher.names(JobKind.TRAINING) == []


def test_a_quota_in_use_still_waits_and_the_tick_reports_how_long():
    world = make_world()
    world.launcher.capacity_refusals = 100
    split_ready(world, "train")
    assert split_ready(world, "valid")["status"] == "waiting for SageMaker capacity"
    (wait,) = world.state.capacity_waits()
    now = datetime.fromisoformat(wait["waiting_since"]) + timedelta(hours=30)
    assert oldest_wait_hours([wait], now) == 30.0
    assert oldest_wait_hours([], datetime.now(UTC)) == 0.0


def test_the_alarm_fires_on_the_hours_the_tick_reports_past_the_operators_limit():
    from pcam_local.template import load_template
    from tests.unit.test_deployment_config import ROOT

    template = load_template(ROOT / "template.yaml")
    alarm = template["Resources"]["CapacityWaitAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("PcamPipeline", "OldestCapacityWaitHours")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "sagemaker-flow"}]  # the flow's service name
    assert (
        alarm["Threshold"] == {"Ref": "CapacityWaitAlarmHours"}
        and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    )
    assert template["Parameters"]["CapacityWaitAlarmHours"]["Default"] == 24
