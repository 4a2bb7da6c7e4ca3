"""The job-kind table (core/job_kinds.py) is the one place a kind meets SageMaker's names: each is held here to
botocore's SageMaker model (the Create… call, the Describe… fields the events carry), to the template's
EventBridge rule, and to the flow, which must have a handler for every kind."""

from pathlib import Path

import botocore.session
import pytest
from cfnlint.decode import cfn_yaml

from pcam_pipeline.core.job_kinds import RESOURCE_BY_EVENT, RESOURCES, JobKind
from tests.fakes import flow_on_fakes

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
TEMPLATE = cfn_yaml.load(str(Path(__file__).parents[2] / "template.yaml"))


@pytest.mark.parametrize("kind", list(JobKind))
def test_every_kind_is_a_sagemaker_job_botocore_knows_with_the_fields_its_events_carry(kind):
    resource = kind.resource
    assert resource.create_operation in SAGEMAKER.operation_names
    described = SAGEMAKER.operation_model(f"Describe{resource.name}").output_shape.members
    assert resource.name_field in described and resource.status_field in described


def test_the_template_routes_exactly_the_events_of_the_kinds_the_pipeline_starts():
    rule = TEMPLATE["Resources"]["SageMakerJobRule"]["Properties"]["EventPattern"]
    assert sorted(rule["detail-type"]) == sorted(RESOURCE_BY_EVENT)
    named = {field for alternative in rule["detail"]["$or"] for field in alternative}
    assert named == {resource.name_field for resource in RESOURCES.values()}


def test_every_kind_has_exactly_one_handler_in_the_flow():
    flow = flow_on_fakes().flow
    handlers = (flow.training, flow.evaluation, flow.slides, flow.staging)
    handled = [kind for handler in handlers for kind in handler.kinds]
    assert sorted(handled) == sorted(JobKind)


def test_a_flow_without_a_handler_for_a_kind_does_not_start(monkeypatch):
    from pcam_pipeline.scoring.slides import SlideScoring

    monkeypatch.setattr(SlideScoring, "kinds", ())
    with pytest.raises(TypeError, match="no handler follows up jobs of kind slide scoring"):
        flow_on_fakes()  # refused when the flow is wired, before any event
