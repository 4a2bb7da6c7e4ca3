"""A slide OpenSlide reads gets the same µm/px plausibility check as one the pipeline reads itself: a placeholder
(72 dpi) or an impossible value waits in quarantine for a sidecar, never refused for good or used
(shared/repros/mpp_gap.py)."""

import pytest
import tifffile

from pcam_pipeline.core.dropped_files import classify_incoming_key
from pcam_pipeline.wsi.plans import MissingResolution, plan_dropped_slide
from pcam_synth.whole_slides import synth_wsi_picture
from tests.fakes import conversion_settings


def zstd_tiff(path, dots_per_inch: float):
    """A pyramidal TIFF the pipeline cannot decode (zstd tiles), so OpenSlide reads it."""
    picture, _ = synth_wsi_picture(6, 8, seed=1)
    level0 = picture.repeat(2, 0).repeat(2, 1)
    with tifffile.TiffWriter(path) as writer:
        writer.write(level0, tile=(256, 256), compression="zstd", photometric="rgb",
                     resolution=(dots_per_inch, dots_per_inch), resolutionunit="INCH", metadata=None)  # fmt: skip
        writer.write(level0[::4, ::4], tile=(256, 256), compression="zstd", photometric="rgb", subfiletype=1,
                     metadata=None)  # fmt: skip
    return path


def plan(tmp_path, slide, sidecar=None):
    work = tmp_path / "work"
    work.mkdir()
    kind, copy = classify_incoming_key("incoming/slides/s.tif"), lambda to: to.write_bytes(slide.read_bytes())
    with open(slide, "rb") as f:
        return plan_dropped_slide(f, slide.stat().st_size, kind, sidecar, conversion_settings(), (work / "s.tif", copy))


@pytest.mark.parametrize(("dots_per_inch", "said"), [(72, "352.8 µm"), (2_540_000, "0.01 µm")])
def test_an_implausible_resolution_read_by_openslide_waits_for_a_sidecar(tmp_path, dots_per_inch, said):
    with pytest.raises(MissingResolution) as waiting:
        plan(tmp_path, zstd_tiff(tmp_path / "s.tif", dots_per_inch))
    assert said in waiting.value.found and "placeholder" in waiting.value.found
    assert "incoming/slides/s.json" in waiting.value.expected  # the sidecar to drop


def test_a_sidecar_resolves_it(tmp_path):
    sidecar = {"mpp": 0.5, "key": "incoming/slides/s.json", "version": "v1"}
    tile_plan, _, staged = plan(tmp_path, zstd_tiff(tmp_path / "s.tif", 72), sidecar)
    assert staged is not None and tile_plan.mpp == 0.5
