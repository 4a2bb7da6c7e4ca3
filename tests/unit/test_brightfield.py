"""Only brightfield H&E is scored: fluorescence, immunohistochemistry and unstained or greyscale slides are refused
with a plain reason, on real tissue from public sources (tests/data/realtissue/README.md), and `pcam check`
says the same as ingestion."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from pcam_ops.cli import main
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.brightfield import check_brightfield_he
from pcam_synth.real_tissue import HE_IMAGES, IHC_IMAGE, REAL_NDPI, REALTISSUE, real_image, svs_level0, write_pyramid
from pcam_synth.whole_slides import synth_wsi_picture

NOT_BRIGHTFIELD = "the slide is not a brightfield slide: its background is dark"
IHC = "the slide is immunohistochemistry (brown DAB beside haematoxylin), not H&E"
GREYSCALE = "the slide is unstained or greyscale"


@pytest.mark.parametrize("name", sorted(HE_IMAGES))
def test_real_he_from_every_source_is_taken(name):
    figures = check_brightfield_he(real_image(name))
    assert figures.dab_fraction <= 0.06 and figures.coloured_fraction > 0.99


def test_a_real_aperio_frozen_section_and_our_synthetic_tissue_are_taken():
    slide = np.asarray(Image.fromarray(svs_level0()).reduce(8))
    assert check_brightfield_he(slide).stained_fraction > 0.3
    picture, _ = synth_wsi_picture(12, 16, 0.972, 0.972, 0, None)
    check_brightfield_he(picture)


def test_immunohistochemistry_is_refused_as_not_he():
    with pytest.raises(InvalidInput) as refused:
        check_brightfield_he(real_image(IHC_IMAGE))
    assert refused.value.problem.startswith(IHC)
    assert refused.value.found.endswith("of the stained tissue is DAB-brown") and "89%" in refused.value.found


@pytest.mark.parametrize("name", ["tiatoolbox-target.png", "torchstain-target.png", "henorm-example1.png"])
def test_a_greyscale_scan_of_real_he_is_refused_as_unstained_or_greyscale(name):
    grey = np.asarray(Image.fromarray(real_image(name)).convert("L").convert("RGB"))
    with pytest.raises(InvalidInput) as refused:
        check_brightfield_he(grey)
    assert refused.value.problem.startswith(GREYSCALE) and refused.value.found == "0.0% of the tissue coloured"


def test_bare_glass_is_left_to_tissue_finding_to_call_empty():
    glass = np.full((256, 256, 3), 236, np.uint8)
    assert check_brightfield_he(glass).stained_fraction == 0


def _check(tmp_path, path, capsys, *options: str) -> str:
    assert main(["check", *options, str(path)]) == 1
    return capsys.readouterr().out


def test_pcam_check_refuses_the_real_hamamatsu_fluorescence_slide_as_not_brightfield(tmp_path, capsys):
    slide = shutil.copy(REALTISSUE / REAL_NDPI, tmp_path / "tritc.ndpi")
    said = _check(tmp_path, slide, capsys)
    assert said.startswith(f"would be quarantined: {slide} as incoming/slides/tritc.ndpi: {NOT_BRIGHTFIELD}")
    assert "found 100% of the slide darker than 50 of 255" in said


def test_pcam_check_refuses_a_slide_built_from_the_real_ihc_image_as_not_he(tmp_path, capsys):
    slide = write_pyramid(np.tile(real_image(IHC_IMAGE), (2, 2, 1)), tmp_path / "ihc.tif", mpp=0.5)
    said = _check(tmp_path, slide, capsys)
    assert f"incoming/slides/ihc.tif: {IHC}" in said
