"""The OpenSlide child runs within what the invocation has left and without the function's credentials: a slide
that takes longer than the time left is quarantined with a reason (never killed with the function, retried and
dead-lettered: issue 35, 10; the child's own limit is 1,200 s, Lambda's 900 s), and the child sees no AWS_
variable (issue 33, B.2)."""

from pcam_pipeline.core.deadline import invocation
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS
from pcam_pipeline.wsi.vendor import UPLOAD_MARGIN_SECONDS, child_environment, child_time_limit
from tests.lab import lab  # noqa: F401 (fixture)
from tests.unit.test_newest_upload_wins import aperio_jpeg2000_svs


def in_an_invocation(seconds_left: float, work):
    """Run ``work`` as a Lambda invocation that has ``seconds_left``."""
    with invocation(seconds_left):
        return work()


def test_the_childs_limit_is_what_the_invocation_has_left_less_the_upload_margin():
    assert child_time_limit(DEFAULT_SLIDE_LIMITS) == DEFAULT_SLIDE_LIMITS.openslide_cpu_seconds * 2  # no invocation
    within_lambda = in_an_invocation(900, lambda: child_time_limit(DEFAULT_SLIDE_LIMITS))
    assert 900 - UPLOAD_MARGIN_SECONDS - 1 < within_lambda <= 900 - UPLOAD_MARGIN_SECONDS
    assert in_an_invocation(60, lambda: child_time_limit(DEFAULT_SLIDE_LIMITS)) == 0.1


def test_a_slide_that_outlasts_the_invocation_is_quarantined_with_the_reason(lab):  # noqa: F811
    dropped = lab.drop("incoming/slides/slow.svs", aperio_jpeg2000_svs())
    outcome = in_an_invocation(UPLOAD_MARGIN_SECONDS + 0.01, lambda: lab.ingestor.ingest(dropped))
    assert outcome["status"] == "quarantined"
    assert "did not finish reading the slide in the time it had" in outcome["reason"]
    assert lab.state.file_version(dropped.key, dropped.version).status is FileStatus.QUARANTINED


def test_the_child_gets_no_aws_credentials_and_still_stages(lab, monkeypatch):  # noqa: F811
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
                        "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    assert not [name for name in child_environment() if name.startswith("AWS_")]
    dropped = lab.drop("incoming/slides/s.svs", aperio_jpeg2000_svs())
    assert lab.ingestor.ingest(dropped)["status"] == "converting"
