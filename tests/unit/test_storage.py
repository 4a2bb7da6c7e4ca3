import gzip
import io

import boto3
import h5py
import numpy as np
import pytest
from moto import mock_aws

from pcam_pipeline.aws.storage import ConcurrentUploader, S3RangeFile, decompress_to
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.gzip_stream import GunzipStream


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bkt")
        yield client


def test_hdf5_slices_read_through_ranged_gets_match_the_file(s3, write_h5, sample_patches):
    x, _ = sample_patches
    s3.put_object(Bucket="bkt", Key="f.h5", Body=write_h5(x=x).read_bytes())
    with S3RangeFile(s3, "bkt", "f.h5", block_size=64 * 1024) as remote, h5py.File(remote, "r") as handle:
        assert np.array_equal(handle["x"][10:30], x[10:30])
        fetched = remote.bytes_fetched
    assert fetched < remote.size, "only the header and the slice are fetched, not the whole file"


def test_block_cache_stays_bounded(s3):
    s3.put_object(Bucket="bkt", Key="big", Body=bytes(range(256)) * 4096)
    remote = S3RangeFile(s3, "bkt", "big", block_size=1024, max_blocks=4)
    for offset in range(0, remote.size, 1000):
        remote.seek(offset)
        assert remote.read(10) == (bytes(range(256)) * 4096)[offset : offset + 10]
    assert len(remote._blocks) <= 4


def test_gzip_stream_decompresses_in_parts():
    payload = np.random.default_rng(0).integers(0, 255, 300_000, dtype=np.uint8).tobytes()
    stream = GunzipStream(io.BytesIO(gzip.compress(payload)), chunk_size=4096)
    assert io.BufferedReader(stream).read() == payload


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"", "empty"), (gzip.compress(b"x" * 10_000, mtime=0)[:-20], "truncated"), (b"plain text", "not a valid .gz")],
    ids=["empty", "truncated", "not-gzip"],
)
def test_bad_gzip_input_is_explained(body, problem):
    with pytest.raises(InvalidInput, match=problem):
        io.BufferedReader(GunzipStream(io.BytesIO(body))).read()


def test_decompress_to_stages_the_plain_file(s3):
    s3.put_object(Bucket="bkt", Key="incoming/a.h5.gz", Body=gzip.compress(b"hdf5 bytes" * 1000))
    decompress_to(s3, "bkt", "incoming/a.h5.gz", None, "staging/a.h5")
    assert s3.get_object(Bucket="bkt", Key="staging/a.h5")["Body"].read() == b"hdf5 bytes" * 1000


def test_uploader_writes_every_object(s3):
    with ConcurrentUploader(s3, "bkt", concurrency=4) as uploader:
        for index in range(50):
            uploader.put(f"p/{index}.jpg", b"x%d" % index, "image/jpeg")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bkt", Prefix="p/")["Contents"]}
    assert len(keys) == 50
