"""Decompressing a dropped .gz as it is read: in parts, and bad input explained."""

import gzip
import io

import numpy as np
import pytest

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.gzip_stream import GunzipStream


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
