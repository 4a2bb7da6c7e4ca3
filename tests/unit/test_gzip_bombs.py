"""A .gz that inflates past MaxUncompressedGB is refused as soon as it crosses the cap; nothing is left in
staging. (That S3 aborts the decompressed copy's multipart upload is the adapter's:
test_blob_store_contract.py.)"""

import gzip
import zlib

import numpy as np

from pcam_pipeline.core.statuses import FileStatus
from tests.lab import h5_bytes, make_lab


def bomb(inflated_bytes: int) -> bytes:
    """gzip of zeros, made in pieces: about 1,000 times smaller than what it inflates to."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    piece = bytes(1 << 20)
    return b"".join(packer.compress(piece) for _ in range(inflated_bytes >> 20)) + packer.flush()


def test_a_gzip_bomb_is_refused_at_the_cap_and_leaves_nothing_in_staging():
    lab = make_lab(max_uncompressed_bytes=100 << 20)
    body = bomb(300 << 20)
    assert len(body) < 1 << 20
    dropped = lab.drop("incoming/slides/bomb.h5.gz", body)
    outcome = lab.ingestor.ingest(dropped)
    assert outcome["status"] == "quarantined"
    record = lab.state.file_version(dropped.key, dropped.version)
    assert record.status is FileStatus.QUARANTINED
    assert record.reason.startswith("the .gz file inflates past the limit (a decompression bomb?); expected at "
                                    "most 0.0976562 GB uncompressed (the MaxUncompressedGB setting)")  # fmt: skip
    assert lab.blobs.stored_keys("staging/") == []
    assert lab.blobs.stored_keys("quarantine/") == ["quarantine/incoming/slides/bomb.h5.gz",
                                             "quarantine/incoming/slides/bomb.h5.gz.error.json"]  # fmt: skip
    assert lab.shard_messages() == []


def test_a_gzip_under_the_cap_is_converted():
    lab = make_lab(max_uncompressed_bytes=1 << 20)
    body = gzip.compress(h5_bytes(x=np.ones((4, 96, 96, 3), np.uint8)))  # inflates to about 113 KB
    assert lab.ingestor.ingest(lab.drop("incoming/slides/small.h5.gz", body))["status"] == "converting"
