"""Newest wins, whatever the order in which deliveries finish reading: an older upload of a key never becomes
the split's or slide's current upload, and a sidecar re-cuts the lab's upload, not a staged copy of it.

Each test is a defect the review reproduced (shared/repros: older_wins, vendor_sidecar)."""

import tempfile
from pathlib import Path

import numpy as np
import tifffile

from pcam_pipeline.core.statuses import FileStatus
from pcam_synth.whole_slides import synth_wsi_picture
from tests.lab import lab  # noqa: F401 (fixture)

PATCHES = np.zeros((4, 96, 96, 3), np.uint8)
MORE_PATCHES = np.full((6, 96, 96, 3), 7, np.uint8)


def test_an_older_upload_read_while_a_newer_one_is_planned_never_replaces_it(lab):  # noqa: F811
    older = lab.drop("incoming/slides/s.h5", x=PATCHES)

    def newer_upload_arrives_and_is_planned():
        newer = lab.drop("incoming/slides/s.h5", x=MORE_PATCHES)
        assert lab.ingestor.ingest(newer)["status"] == "converting"

    lab.between_read_and_write("slide", newer_upload_arrives_and_is_planned)
    assert lab.ingestor.ingest(older)["status"] == "superseded"

    slide = lab.state.slide("s")
    assert slide.x_version == lab.blobs.latest_version("incoming/slides/s.h5") and slide.x_count == 6
    assert lab.state.file_version(older.key, older.version).status is FileStatus.SUPERSEDED


def test_older_labels_read_while_newer_ones_are_recorded_never_replace_them(lab):  # noqa: F811
    key = "incoming/datasets/ds/camelyonpatch_level_2_split_train_y.h5"
    older = lab.drop(key, y=np.zeros((4, 1, 1, 1), np.uint8))

    def newer_labels_arrive():
        newer = lab.drop(key, y=np.ones((4, 1, 1, 1), np.uint8))
        assert lab.ingestor.ingest(newer)["status"] == "labels recorded"

    lab.between_read_and_write("split", newer_labels_arrive)
    assert lab.ingestor.ingest(older)["status"] == "superseded"
    assert lab.state.split("ds", "train").y_tumour_count == 4


def aperio_jpeg2000_svs(rows: int = 6, cols: int = 8) -> bytes:
    """An Aperio SVS with JPEG 2000 tiles: the pipeline cannot decode them, so OpenSlide stages a copy."""
    picture, _ = synth_wsi_picture(rows, cols, seed=1)
    path = Path(tempfile.mkdtemp()) / "s.svs"
    tifffile.imwrite(path, picture.repeat(2, 0).repeat(2, 1), tile=(240, 240), compression=33005,
                     photometric="rgb", metadata=None,
                     description="Aperio Image Library v12.0.15\r\n1536x1152 (240x240) J2K|MPP = 0.486")  # fmt: skip
    return path.read_bytes()


def test_a_sidecar_after_a_staged_vendor_slide_cuts_the_labs_upload_again_at_its_resolution(lab):  # noqa: F811
    slide = lab.drop("incoming/slides/s.svs", aperio_jpeg2000_svs())
    assert lab.ingestor.ingest(slide)["mpp"] == 0.486
    recorded = lab.state.slide("s")
    assert recorded.x_source_key.startswith("staging/") and recorded.x_version_id == slide.version_id

    sidecar = lab.drop("incoming/slides/s.json", b'{"mpp": 0.45}')
    outcome = lab.ingestor.ingest(sidecar)

    assert outcome["status"] == "sidecar recorded" and outcome["cut_again"]["mpp"] == 0.45
    assert lab.state.file_version(sidecar.key, sidecar.version).status is FileStatus.SIDECAR_RECORDED
    again = lab.state.slide("s")
    assert again.sidecar_version == sidecar.version and again.x_version_id == slide.version_id
