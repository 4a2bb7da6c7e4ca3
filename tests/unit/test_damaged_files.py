"""A file whose header is fine but whose data is damaged is found out during conversion: the first shard
to meet the damage quarantines the upload with the patch range, nothing is retried, and nothing announced."""

import io

import h5py
import numpy as np

from pcam_pipeline.core.statuses import FileStatus, OwnerStatus


def damaged_chunk(index: int, count: int = 6) -> bytes:
    """gzip-compressed patches, one per chunk, chunk ``index`` overwritten (the last one stays readable)."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(5)
    with h5py.File(buffer, "w") as handle:
        x = handle.create_dataset("x", data=rng.integers(0, 255, (count, 96, 96, 3), dtype=np.uint8),
                                  chunks=(1, 96, 96, 3), compression="gzip", fletcher32=True)  # fmt: skip
        chunk = x.id.get_chunk_info(index)
    data = bytearray(buffer.getvalue())
    data[chunk.byte_offset + 10 : chunk.byte_offset + 40] = bytes(30)
    return bytes(data)


def test_a_damaged_chunk_quarantines_the_file_with_the_patches_it_spoils(lab):
    dropped = lab.drop("incoming/slides/s9.h5", damaged_chunk(4))
    assert lab.ingestor.ingest(dropped)["status"] == "converting"  # the header and the last patch are fine
    outcomes = lab.convert_all()
    assert [o["status"] for o in outcomes] == ["converted", "converted", "damaged"]
    record = lab.state.file_version(dropped.key, dropped.version)
    assert record.status is FileStatus.QUARANTINED
    assert record.reason.startswith("patches 4 to 5 cannot be read (the file is damaged)")
    slide = lab.state.slide("s9")
    assert slide.status is OwnerStatus.FAILED and "the file is damaged" in slide.failure
    assert lab.publisher.of_type("Slide Ready") == []
    keys = lab.blobs.stored_keys()
    assert "quarantine/incoming/slides/s9.h5" in keys and "quarantine/incoming/slides/s9.h5.error.json" in keys
    assert "incoming/slides/s9.h5" not in keys


def test_the_damage_found_again_by_a_redelivery_changes_nothing(lab):
    from pcam_pipeline.ingestion.shard_planning import ShardTask

    dropped = lab.drop("incoming/slides/s8.h5", damaged_chunk(1, count=3))
    lab.ingestor.ingest(dropped)
    task = ShardTask.from_message(lab.shard_messages()[0])  # patches 0 and 1
    assert lab.converter.convert(task)["status"] == "damaged"
    fixed = lab.drop("incoming/slides/s8.h5", x=np.ones((2, 96, 96, 3), np.uint8))  # the lab drops a good one
    assert lab.converter.convert(task)["status"] == "damaged"  # the old message comes back
    assert lab.blobs.latest_version(dropped.key) == fixed.version_id
    assert len(lab.blobs.versions("quarantine/incoming/slides/s8.h5.error.json")) == 1, "quarantined once"
