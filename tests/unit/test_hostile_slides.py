"""Slides built to stall the reader end at ingestion's reads, refused with a reason: a description that a lazy
pattern would search quadratically, JPEG tiles repeating their scans, tile entries sharing bytes, tiles far
larger than their pixels. (CPU seconds per case: bench/bench_hostile_slides.py.)"""

from __future__ import annotations

import io

import pytest

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.tile_decoding import MAX_JPEG_SCANS, TileFormat, decode_tile
from pcam_pipeline.wsi.tiling import TilingSettings, plan_tiles
from pcam_synth.hostile_slides import HOSTILE_SLIDES, progressive_tile, repeat_scans


def ingest(data: bytes):
    """What ingestion does with a slide before any conversion: open it, find tissue, plan its tiles."""
    with WholeSlide(io.BytesIO(data), len(data)) as slide:
        return plan_tiles(slide, slide.resolution.mpp, slide.resolution.source, TilingSettings())


@pytest.mark.parametrize("name", sorted(HOSTILE_SLIDES))
def test_each_hostile_slide_is_refused_at_ingestion_with_its_reason(name):
    build, problem = HOSTILE_SLIDES[name]
    with pytest.raises(InvalidInput) as refused:
        ingest(build())
    assert problem in refused.value.problem


def test_an_ome_description_that_never_closes_its_pixels_tag_is_read_in_one_pass():
    data = HOSTILE_SLIDES["OME description"][0]()
    with WholeSlide(io.BytesIO(data), len(data)) as slide:
        assert slide.resolution.source == "TIFF resolution tags", "no PhysicalSizeX in it: the tags decide"


def test_jpeg_scans_are_counted_before_decoding_and_capped():
    tile = TileFormat(256, 256, compression=7)
    progressive = progressive_tile()
    assert progressive.count(b"\xff\xda") == 10, "libjpeg's progressive script"
    assert decode_tile(progressive, tile).shape == (256, 256, 3)
    at_cap = repeat_scans(progressive, MAX_JPEG_SCANS - 9)  # 9 scans before the last, then the last repeated
    assert at_cap.count(b"\xff\xda") == MAX_JPEG_SCANS
    decode_tile(at_cap, tile)
    with pytest.raises(InvalidInput) as refused:
        decode_tile(repeat_scans(progressive, MAX_JPEG_SCANS - 8), tile)
    assert (refused.value.expected, refused.value.found) == (f"at most {MAX_JPEG_SCANS} scans", "33 scans")


def test_a_tile_may_hold_four_times_its_pixels_and_no_more():
    tile = TileFormat(16, 16)
    assert tile.max_stored_bytes == 4 * 16 * 16 * 3 + 65_536
    assert decode_tile(b"\x50" * tile.max_stored_bytes, tile).shape == (16, 16, 3)
    with pytest.raises(InvalidInput) as refused:
        decode_tile(b"\x50" * (tile.max_stored_bytes + 1), tile)
    assert refused.value.expected == "at most 68,608 bytes for 16 x 16 pixels"
