"""A slide id within the limits (255 bytes, any Unicode form) is read whatever its length on disk: the local
copy OpenSlide reads is named ``slide`` plus the extension, never after the key (shared/repros: issue 35, 8)."""

import unicodedata
from pathlib import Path

import pytest

from pcam_pipeline.core.names import MAX_NAME_BYTES
from pcam_pipeline.wsi.plans import local_slide_path
from tests.lab import lab  # noqa: F401 (fixture)
from tests.unit.test_newest_upload_wins import aperio_jpeg2000_svs


def test_the_local_copy_keeps_only_the_extension():
    assert local_slide_path(Path("/tmp/w"), "incoming/slides/" + "a" * 300 + ".NDPI") == Path("/tmp/w/slide.ndpi")


@pytest.mark.parametrize(
    "slide_id",
    ["s" * MAX_NAME_BYTES, unicodedata.normalize("NFD", "é" * 120)],
    ids=["255-byte id", "decomposed unicode"],
)
def test_a_slide_only_openslide_reads_with_a_long_id_is_staged_and_cut(lab, slide_id):  # noqa: F811
    dropped = lab.drop(f"incoming/slides/{slide_id}.svs", aperio_jpeg2000_svs())
    assert lab.ingestor.ingest(dropped)["status"] == "converting"
