"""One limit for how many patches a slide may have: ScoringBatchMaxPatches, the most one scoring job takes
and gathers within one invocation. A larger slide, HDF5 or whole-slide image, is refused at ingestion with the
reason, before any of it is converted; a slide exactly at the limit is converted."""

import numpy as np
import pytest

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.scoring.batches import check_slide_fits_one_job
from pcam_synth.whole_slides import synth_wsi
from tests.lab import make_lab


def test_the_limit_is_inclusive_and_the_refusal_names_the_setting():
    check_slide_fits_one_job(100_000, 100_000)
    with pytest.raises(InvalidInput) as refused:
        check_slide_fits_one_job(100_001, 100_000)
    assert (refused.value.problem, refused.value.expected, refused.value.found) == (
        "the slide has more patches than one scoring job can take",
        "at most 100,000 patches (tiles with tissue) per slide (the ScoringBatchMaxPatches setting)",
        "100,001",
    )


@pytest.mark.parametrize(("limit", "status"), [(5, "converting"), (4, "quarantined")])
def test_an_hdf5_slide_over_the_limit_is_quarantined_before_conversion(limit, status):
    lab = make_lab(max_patches_per_slide=limit)
    dropped = lab.drop("incoming/slides/s5.h5", x=np.ones((5, 96, 96, 3), np.uint8))
    outcome = lab.ingestor.ingest(dropped)
    assert outcome["status"] == status
    if status == "quarantined":
        assert outcome["reason"].startswith("the slide has more patches than one scoring job can take")
        assert lab.shard_messages() == [], "nothing converted"


def test_a_whole_slide_image_with_more_tissue_tiles_than_the_limit_is_quarantined(tmp_path):
    synth_wsi(tmp_path / "w.tif", rows=6, cols=8, seed=1)
    lab = make_lab(max_patches_per_slide=3)
    outcome = lab.ingestor.ingest(lab.drop("incoming/slides/w.tif", (tmp_path / "w.tif").read_bytes()))
    assert outcome["status"] == "quarantined"
    assert outcome["reason"].startswith("the slide has more patches than one scoring job can take")
    assert lab.shard_messages() == []
