"""The in-memory bucket the ingestion and model-side unit tests run on behaves like the S3 adapter on a
versioned bucket (moto, every request checked as S3 would) for every operation of the BlobStore port: the
same cases run on both."""

import gzip
import zlib
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws

from pcam_pipeline.aws import request_rules
from pcam_pipeline.aws.blob_store import MissingObject, S3BlobStore
from pcam_pipeline.core.errors import InvalidInput, RetryableError
from pcam_pipeline.core.ports import BlobStore
from tests.fake_bucket import InMemoryBlobStore

BUCKET = "data"


@pytest.fixture(params=["s3", "memory"])
def blobs(request, monkeypatch):
    if request.param == "memory":
        yield InMemoryBlobStore(BUCKET)
        return
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        request_rules.install(session)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})  # as deployed
        yield S3BlobStore(BUCKET, s3)


def stored_keys(blobs: BlobStore, prefix: str = "") -> list[str]:
    if isinstance(blobs, InMemoryBlobStore):
        return blobs.stored_keys(prefix)
    listed = blobs._s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_each_upload_of_a_key_is_a_version_and_the_older_ones_stay_readable(blobs):
    first = blobs.put_bytes("incoming/a.h5", b"first", "application/octet-stream")
    second = blobs.put_bytes("incoming/a.h5", b"second upload", "application/octet-stream")
    assert first and second and first != second
    assert blobs.latest_version("incoming/a.h5") == second
    assert blobs.get_bytes("incoming/a.h5") == b"second upload"
    assert blobs.exists("incoming/a.h5") and blobs.exists("incoming/a.h5", first)
    with blobs.open("incoming/a.h5", first) as f:
        assert (f.size, f.read()) == (5, b"first")


def test_a_ranged_read_seeks_anywhere_in_the_object(blobs):
    body = bytes(range(256)) * 64
    version = blobs.put_bytes("incoming/b", body, "application/octet-stream")
    with blobs.open("incoming/b", version) as f:
        f.seek(1000)
        assert f.read(10) == body[1000:1010] and f.tell() == 1010
        f.seek(-6, 2)
        assert f.read() == body[-6:]


def test_what_is_not_there(blobs):
    assert not blobs.exists("nothing") and blobs.latest_version("nothing") is None
    with pytest.raises(MissingObject):
        blobs.get_bytes("nothing")
    with pytest.raises(RetryableError):  # a read of a vanished upload is retried, never called a damaged file
        blobs.open("nothing")


def test_a_move_leaves_the_moved_version_recoverable(blobs):
    version = blobs.put_bytes("incoming/bad.h5", b"not hdf5", "application/octet-stream")
    blobs.move("incoming/bad.h5", version, "quarantine/incoming/bad.h5")
    assert blobs.get_bytes("quarantine/incoming/bad.h5") == b"not hdf5"
    assert not blobs.exists("incoming/bad.h5") and blobs.latest_version("incoming/bad.h5") is None
    assert blobs.exists("incoming/bad.h5", version), "a delete marker, not a deletion"
    assert stored_keys(blobs) == ["quarantine/incoming/bad.h5"]


def test_moving_an_older_upload_never_deletes_the_newer_one(blobs):
    old = blobs.put_bytes("incoming/s.h5", b"old", "application/octet-stream")
    new = blobs.put_bytes("incoming/s.h5", b"new", "application/octet-stream")
    blobs.move("incoming/s.h5", old, "quarantine/incoming/s.h5")
    assert blobs.get_bytes("quarantine/incoming/s.h5") == b"old"
    assert blobs.latest_version("incoming/s.h5") == new and blobs.get_bytes("incoming/s.h5") == b"new"


def test_a_gzip_object_is_staged_decompressed_and_its_version_returned(blobs):
    plain = b"hdf5 bytes" * 10_000
    version = blobs.put_bytes("incoming/a.h5.gz", gzip.compress(plain), "application/gzip")
    staged = blobs.decompress("incoming/a.h5.gz", version, "staging/a.h5", max_bytes=1 << 20)
    assert blobs.get_bytes("staging/a.h5") == plain
    assert staged == blobs.latest_version("staging/a.h5")


def test_a_gzip_bomb_stops_at_the_cap_and_leaves_nothing_staged(blobs):
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = b"".join(packer.compress(bytes(1 << 20)) for _ in range(200)) + packer.flush()  # 200 MB of zeros
    version = blobs.put_bytes("incoming/bomb.h5.gz", bomb, "application/gzip")
    with pytest.raises(InvalidInput, match="inflates past the limit"):
        blobs.decompress("incoming/bomb.h5.gz", version, "staging/bomb.h5", max_bytes=100 << 20)
    assert stored_keys(blobs, "staging/") == []
    if isinstance(blobs, S3BlobStore):  # the multipart upload of the decompressed copy was aborted
        assert not blobs._s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_the_uploader_writes_every_object(blobs):
    with blobs.uploader() as uploader:
        for index in range(50):
            uploader.put(f"images/{index:03d}.jpg", b"jpeg %d" % index, "image/jpeg")
    assert stored_keys(blobs, "images/") == [f"images/{index:03d}.jpg" for index in range(50)]
    assert blobs.get_bytes("images/049.jpg") == b"jpeg 49"


def test_files_and_arrays_round_trip(blobs, tmp_path: Path):
    (tmp_path / "slide.tif").write_bytes(b"II*\x00" + bytes(5000))
    version = blobs.upload("staging/slide.tif", tmp_path / "slide.tif", "image/tiff")
    assert version == blobs.latest_version("staging/slide.tif")
    blobs.download("staging/slide.tif", version, tmp_path / "back.tif")
    assert (tmp_path / "back.tif").read_bytes() == (tmp_path / "slide.tif").read_bytes()
    coords = np.array([[0, 0], [96, 0]], dtype=np.int64)
    blobs.put_array("tiling/s/r/coords.npy", coords)
    assert np.array_equal(blobs.get_array("tiling/s/r/coords.npy"), coords)
    assert blobs.uri("a/b") == f"s3://{BUCKET}/a/b"
