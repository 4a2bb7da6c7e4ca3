"""A lab on the fakes: the in-memory versioned bucket (as deployed), the conversion queue, the in-memory state
table, and the ingestion and conversion use cases wired to them. No emulator: the bucket fake is held to S3 by
``tests/adapters/test_blob_store_contract.py``; the whole flow on moto is the integration suite's."""

from __future__ import annotations

import copy
import io
from typing import Any

import h5py
import pytest

from pcam_pipeline.core.dropped_files import DroppedFile
from pcam_pipeline.core.settings import ConversionSettings, IngestSettings
from pcam_pipeline.ingestion.conversion import ShardConverter
from pcam_pipeline.ingestion.ingestor import Ingestor
from pcam_pipeline.ingestion.shard_planning import ShardTask
from pcam_pipeline.state import StateStore
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS, SlideLimits
from tests.fake_bucket import InMemoryBlobStore, InMemoryQueue
from tests.fakes import InMemoryTable, RecordingPublisher
from tests.faults import Faults

BUCKET = "data"


def h5_bytes(**datasets: Any) -> bytes:
    """An HDF5 file with these datasets (``x=`` patches, ``y=`` labels, ``coords=`` …), as a lab would drop it."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for name, value in datasets.items():
            handle.create_dataset(name, data=value)
    return buffer.getvalue()


@pytest.fixture
def lab() -> Lab:
    return make_lab()


def make_lab(
    patches_per_shard: int = 2,
    max_uncompressed_bytes: int = 16 << 30,
    max_patches_per_slide: int = 100_000,
    faults: Faults | None = None,
    fakes: tuple[InMemoryBlobStore, InMemoryQueue, InMemoryTable, RecordingPublisher] | None = None,
    stain_normalisation: str = "none",
    flow_queue: InMemoryQueue | None = None,
    slide_limits: SlideLimits = DEFAULT_SLIDE_LIMITS,
) -> Lab:
    """``faults``: every port call of the use cases goes through it (tests/faults.py); ``fakes``: the bucket, queue,
    table and bus to start from (a copy of another lab's, say)."""
    settings = IngestSettings(
        conversion=ConversionSettings(
            BUCKET,
            "state",
            "bus",
            jpeg_quality=90,
            resize_to=0,
            max_receive_count=3,
            max_patches_per_slide=max_patches_per_slide,
            stain_normalisation=stain_normalisation,
            slide_limits=slide_limits,
        ),
        idempotency_table="idempotency",
        convert_queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/convert",
        patches_per_shard=patches_per_shard,
        max_uncompressed_bytes=max_uncompressed_bytes,
    )
    blobs, queue, table, publisher = fakes or (InMemoryBlobStore(BUCKET), InMemoryQueue(), InMemoryTable(),
                                                RecordingPublisher())  # fmt: skip
    faults = faults or Faults()
    state = StateStore(table=faults.wrap(table, "table"))
    ports = faults.wrap(blobs, "bucket"), faults.wrap(queue, "queue"), faults.wrap(publisher, "bus")
    # Typed arguments: mypy checks each fake against the port the use cases take.
    flow = faults.wrap(flow_queue, "flow queue") if flow_queue is not None else None
    ingestor = Ingestor(settings, ports[0], state, ports[2], ports[1], flow)
    converter = ShardConverter(settings.conversion, ports[0], state, ports[2])
    return Lab(blobs, queue, state, ingestor, converter, publisher, table)


class Lab:
    def __init__(self, blobs, queue, state, ingestor, converter, publisher, table=None):
        self.blobs, self.queue, self.state, self.ingestor = blobs, queue, state, ingestor
        self.converter, self.publisher, self.table = converter, publisher, table

    def drop(self, key: str, body: bytes | None = None, **datasets) -> DroppedFile:
        """A lab's upload, as its S3 event names it (key, version id, ETag)."""
        version = self.blobs.put_bytes(key, body if body is not None else h5_bytes(**datasets), "")
        return DroppedFile(BUCKET, key, version, self.blobs.versions(key)[-1].etag)

    def fakes(self) -> tuple:
        """A copy of this lab's bucket, queue, table and bus, to start another lab from (``make_lab(fakes=…)``)."""
        return copy.deepcopy((self.blobs, self.queue, self.table, self.publisher))

    def shard_messages(self) -> list[dict]:
        return self.queue.take_all()

    def convert_all(self) -> list[dict]:
        """Run every planned shard, as the conversion function would."""
        return [self.converter.convert(ShardTask.from_message(body)) for body in self.shard_messages()]

    def between_read_and_write(self, reader: str, other_delivery) -> None:
        """The next ``reader`` call (``split`` or ``slide``) returns its read after ``other_delivery`` ran."""
        real, pending = getattr(self.state, reader), [other_delivery]

        def read_then_let_the_other_run(*args):
            record = real(*args)
            if pending:
                pending.pop()()
            return record

        setattr(self.state, reader, read_then_let_the_other_run)
