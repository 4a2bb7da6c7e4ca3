"""The local S3 applies lifecycle rules as S3 does, on a clock tests move (Amazon S3 User Guide, "Expiring
objects": an expired current version of a versioned bucket gets a delete marker; days are counted from
creation, or from becoming noncurrent, and rounded up to the next midnight UTC)."""

from datetime import UTC, datetime

import boto3
import pytest

from pcam_local import CREDENTIALS, REGION
from pcam_local.clock import LocalClock
from pcam_local.lifecycle import due
from pcam_local.moto_server import MotoServer
from pcam_local.template import lifecycle_rules, load_template, project_root

from .conftest import INTEGRATION

pytestmark = INTEGRATION

BUCKET = "lifecycle"


@pytest.fixture
def world(tmp_path):
    server = MotoServer(log_path=tmp_path / "moto.log").start()
    credentials = {name.lower(): value for name, value in CREDENTIALS.items()}
    s3 = boto3.client("s3", endpoint_url=server.url, region_name=REGION, **credentials)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield s3, LocalClock(server.url)
    server.stop()


def use_template_rules(s3, **parameters) -> None:
    properties = load_template(project_root() / "template.yaml")["Resources"]["DataBucket"]["Properties"]
    rules = lifecycle_rules(
        properties["LifecycleConfiguration"]["Rules"], {"KeepReplacedDropsDays": "365", **parameters}
    )
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": rules})


def versions(s3, key: str) -> list[str]:
    listed = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    return ["marker" for _ in listed.get("DeleteMarkers", [])] + ["version" for _ in listed.get("Versions", [])]


def test_due_dates_round_up_to_the_next_midnight_utc():
    created = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    assert due(created, 1) == datetime(2026, 1, 3, tzinfo=UTC)  # AWS's own example: 1 Jan 10:30 + 1 day
    assert due(created, 0) == datetime(2026, 1, 2, tzinfo=UTC)


def test_a_staged_copy_expires_after_21_days_and_leaves_nothing_behind_two_days_later(world):
    s3, clock = world
    use_template_rules(s3)
    s3.put_object(Bucket=BUCKET, Key="staging/datasets/d/y.h5", Body=b"labels")

    assert clock.advance(21, s3, [BUCKET]) == [], "due at the midnight after 21 days"
    assert versions(s3, "staging/") == ["version"]
    taken = clock.advance(1, s3, [BUCKET])
    assert [a.action for a in taken] == ["expired"] and versions(s3, "staging/") == ["marker", "version"]
    taken = clock.advance(3, s3, [BUCKET])
    assert [a.action for a in taken] == ["deleted version", "removed delete marker"]
    assert versions(s3, "staging/") == []


def test_a_replaced_drop_stays_in_the_history_for_keep_replaced_drops_days(world):
    s3, clock = world
    use_template_rules(s3, KeepReplacedDropsDays="60")
    first = s3.put_object(Bucket=BUCKET, Key="incoming/slides/a.h5", Body=b"first")["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="incoming/slides/a.h5", Body=b"second")

    clock.advance(59, s3, [BUCKET])
    assert s3.get_object(Bucket=BUCKET, Key="incoming/slides/a.h5", VersionId=first)["Body"].read() == b"first"
    (taken,) = clock.advance(3, s3, [BUCKET])
    assert (taken.rule, taken.action, taken.version_id) == ("KeepReplacedDrops", "deleted version", first)
    assert s3.get_object(Bucket=BUCKET, Key="incoming/slides/a.h5")["Body"].read() == b"second", "current kept"


def test_the_clock_dates_new_objects_and_uploads_and_abandoned_uploads_are_aborted_after_7_days(world):
    s3, clock = world
    use_template_rules(s3)
    clock.advance(100, s3, [BUCKET])
    s3.put_object(Bucket=BUCKET, Key="incoming/slides/b.h5", Body=b"b")
    written = s3.head_object(Bucket=BUCKET, Key="incoming/slides/b.h5")["LastModified"]
    assert abs((written - clock.now()).total_seconds()) < 60, "dated 100 days on"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="incoming/slides/big.svs")["UploadId"]
    (listed,) = s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert abs((listed["Initiated"] - clock.now()).total_seconds()) < 60, "moto says 2010-11-10 for every upload"

    assert clock.advance(6, s3, [BUCKET]) == []
    (taken,) = clock.advance(2, s3, [BUCKET])
    assert (taken.rule, taken.action, taken.version_id) == ("AbortIncompleteUploads", "aborted upload", upload)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
