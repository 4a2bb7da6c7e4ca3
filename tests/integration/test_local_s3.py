"""The local S3 completes multipart uploads as S3 does, on disk: same bytes, ETag and checksum, S3's refusals,
one notification per upload, and memory that does not grow with the object (issue 14: the 7.25 GB split)."""

import base64
import binascii
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from moto.s3.utils import compute_checksum

from pcam_local import CREDENTIALS, REGION
from pcam_local.moto_server import MotoServer

from .conftest import INTEGRATION

pytestmark = INTEGRATION

MB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = MotoServer(log_path=tmp_path_factory.mktemp("local-s3") / "moto.log").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def s3(server):
    client = boto3.client("s3", endpoint_url=server.url, region_name=REGION, **_credentials())
    client.create_bucket(Bucket="drop")
    return client


def _credentials() -> dict:
    return {name.lower(): value for name, value in CREDENTIALS.items()}


def _upload_parts(s3, key: str, parts: list[bytes], etags: list[str] | None = None, **create) -> dict:
    upload = s3.create_multipart_upload(Bucket="drop", Key=key, **create)["UploadId"]
    sent = []
    for number, body in enumerate(parts, start=1):
        extra = {"ChecksumAlgorithm": create["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in create else {}
        answer = s3.upload_part(Bucket="drop", Key=key, UploadId=upload, PartNumber=number, Body=body, **extra)
        checksums = {name: value for name, value in answer.items() if name.startswith("Checksum")}
        sent.append({"PartNumber": number, "ETag": answer["ETag"], **checksums})
    for part, etag in zip(sent, etags or [], strict=False):
        part["ETag"] = etag
    return s3.complete_multipart_upload(Bucket="drop", Key=key, UploadId=upload, MultipartUpload={"Parts": sent})


def _three_parts() -> list[bytes]:
    return [os.urandom(5 * MB), os.urandom(5 * MB), os.urandom(MB // 3)]


def test_a_completed_upload_reads_back_whole_and_in_ranges_with_s3s_etag(s3):
    parts = _three_parts()
    whole = b"".join(parts)

    done = _upload_parts(s3, "incoming/slides/whole.h5", parts)

    md5s = b"".join(hashlib.md5(part).digest() for part in parts)  # noqa: S324 - S3's multipart ETag
    assert done["ETag"].strip('"') == f"{hashlib.md5(md5s).hexdigest()}-3"  # noqa: S324
    head = s3.head_object(Bucket="drop", Key="incoming/slides/whole.h5")
    assert head["ContentLength"] == len(whole) and head["ETag"] == done["ETag"]
    assert s3.get_object(Bucket="drop", Key="incoming/slides/whole.h5")["Body"].read() == whole
    ranged = s3.get_object(Bucket="drop", Key="incoming/slides/whole.h5", Range=f"bytes={5 * MB - 10}-{5 * MB + 9}")
    assert ranged["Body"].read() == whole[5 * MB - 10 : 5 * MB + 10]


@pytest.mark.parametrize(
    ("create", "expected"),
    [
        (
            {"ChecksumAlgorithm": "CRC32", "ChecksumType": "FULL_OBJECT"},
            lambda parts: base64.b64encode(binascii.crc32(b"".join(parts)).to_bytes(4, "big")).decode(),
        ),
        (
            {"ChecksumAlgorithm": "SHA256"},
            lambda parts: compute_checksum(b"".join(hashlib.sha256(p).digest() for p in parts), "SHA256").decode(),
        ),
    ],
    ids=["crc32-full-object", "sha256-composite"],
)
def test_the_object_checksum_is_the_one_moto_computes_in_memory(s3, create, expected):
    parts = _three_parts()

    _upload_parts(s3, "checksummed.bin", parts, **create)

    head = s3.head_object(Bucket="drop", Key="checksummed.bin", ChecksumMode="ENABLED")
    assert head[f"Checksum{create['ChecksumAlgorithm']}"] == expected(parts)


def test_s3s_refusals_stay(s3):
    with pytest.raises(ClientError, match="EntityTooSmall"):
        _upload_parts(s3, "small-first-part.bin", [os.urandom(MB), os.urandom(MB)])
    with pytest.raises(ClientError, match="InvalidPart"):
        _upload_parts(s3, "wrong-etag.bin", _three_parts(), etags=['"0123456789abcdef0123456789abcdef"'])
    with pytest.raises(ClientError, match="Not Found"):
        s3.head_object(Bucket="drop", Key="wrong-etag.bin")


def test_each_write_sends_the_one_event_s3_sends(server, s3):
    sqs = boto3.client("sqs", endpoint_url=server.url, region_name=REGION, **_credentials())
    url = sqs.create_queue(QueueName="drops")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="notified")
    events = ["s3:ObjectCreated:*", "s3:ObjectTagging:*"]
    s3.put_bucket_notification_configuration(
        Bucket="notified", NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": events}]}
    )

    s3.put_object(Bucket="notified", Key="incoming/slides/small.h5", Body=b"small")
    s3.upload_fileobj(
        _Chunks(11 * MB), "notified", "incoming/slides/big.h5", Config=TransferConfig(multipart_chunksize=5 * MB)
    )
    s3.put_object_tagging(
        Bucket="notified", Key="incoming/slides/small.h5", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )

    received = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        for message in messages:
            records = json.loads(message["Body"]).get("Records", [])
            received += [(record["eventName"], unquote(record["s3"]["object"]["key"])) for record in records]
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(received) == [
        ("ObjectCreated:CompleteMultipartUpload", "incoming/slides/big.h5"),
        ("ObjectCreated:Put", "incoming/slides/small.h5"),
        ("ObjectTagging:Put", "incoming/slides/small.h5"),
    ]


def test_the_servers_memory_does_not_grow_with_the_object(server, s3):
    size = 512 * MB
    config = TransferConfig(multipart_chunksize=8 * MB, max_concurrency=2)
    s3.upload_fileobj(_Chunks(64 * MB), "drop", "warm-up.bin", Config=config)  # the allocator's working set
    before = _peak_rss(server.pid)

    s3.upload_fileobj(_Chunks(size), "drop", "big.bin", Config=config)

    assert s3.head_object(Bucket="drop", Key="big.bin")["ContentLength"] == size
    grown = _peak_rss(server.pid) - before
    assert grown < size / 2, f"the local S3 grew by {grown / MB:.0f} MB receiving a {size / MB:.0f} MB object"
    tail = s3.get_object(Bucket="drop", Key="big.bin", Range=f"bytes={size - 16}-{size - 1}")["Body"].read()
    assert tail == bytes(position % 256 for position in range(size - 16, size))


class _Chunks:
    """A readable of ``size`` bytes, byte i = i % 256, made on the fly (no big buffer in the test process)."""

    def __init__(self, size: int):
        self._left, self._size = size, size

    def read(self, amount: int = -1) -> bytes:
        amount = self._left if amount is None or amount < 0 else min(amount, self._left)
        start = self._size - self._left
        self._left -= amount
        block = bytes(range(256))
        offset = start % 256
        return (block[offset:] + block * (amount // 256 + 2))[:amount]


def _peak_rss(pid: int) -> int:
    return _status_bytes(pid, "VmHWM")


def test_small_objects_kept_on_disk_read_back_in_every_version(s3):
    s3.create_bucket(Bucket="versions")
    s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="versions", Key="patch.jpg", Body=b"first body")["VersionId"]
    second = s3.put_object(Bucket="versions", Key="patch.jpg", Body=b"the second, longer body")["VersionId"]
    s3.put_object(Bucket="drop", Key="empty.txt", Body=b"")
    s3.put_object(Bucket="drop", Key="replaced.txt", Body=b"old")
    s3.put_object(Bucket="drop", Key="replaced.txt", Body=b"new!")

    def read(bucket: str, key: str, **extra) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()

    assert read("versions", "patch.jpg", VersionId=first) == b"first body"
    assert read("versions", "patch.jpg", VersionId=second) == b"the second, longer body"
    assert read("versions", "patch.jpg", Range="bytes=4-9") == b"second"
    assert read("drop", "empty.txt") == b""
    assert read("drop", "replaced.txt") == b"new!"
    assert s3.head_object(Bucket="drop", Key="replaced.txt")["ETag"].strip('"') == hashlib.md5(b"new!").hexdigest()  # noqa: S324


def test_many_small_objects_cost_the_server_little_memory(tmp_path):
    """On a fresh server: memory another test freed would hide the growth."""
    server = MotoServer(log_path=tmp_path / "moto.log").start()
    try:
        s3 = boto3.client("s3", endpoint_url=server.url, region_name=REGION, **_credentials())
        s3.create_bucket(Bucket="drop")
        _small_objects_cost_little_memory(server, s3)
    finally:
        server.stop()


def _small_objects_cost_little_memory(server, s3):
    body = os.urandom(3000)  # a converted patch's size
    count = 4000

    def put(index: int) -> None:
        s3.put_object(Bucket="drop", Key=f"images/patches/{index:07d}.jpg", Body=body)

    put(-1)
    before = _rss(server.pid)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))

    per_object = (_rss(server.pid) - before) / count
    assert per_object < 5500, f"{per_object:.0f} bytes resident per 3,000-byte object (moto alone: ~7,600)"
    assert s3.get_object(Bucket="drop", Key=f"images/patches/{count - 1:07d}.jpg")["Body"].read() == body


def _rss(pid: int) -> int:
    return _status_bytes(pid, "VmRSS")


def _status_bytes(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024
