"""The S3 adapter's ranged reader: HDF5 read through ranged GETs, with a bounded block cache (moto in-process).
The rest of the adapter is held to the in-memory bucket by test_blob_store_contract.py."""

import boto3
import h5py
import numpy as np
import pytest
from moto import mock_aws

from pcam_pipeline.aws.storage import S3RangeFile


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
