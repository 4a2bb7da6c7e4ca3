"""The whole-slide reader against slides written by other people's tools (libvips, tifffile in scanner
layouts), with OpenSlide 4 as the oracle: the same levels, the same µm/px and the same pixels, exactly."""

from __future__ import annotations

import numpy as np
import openslide  # the reference reader (a pinned development dependency, as is pyvips for the writers)
import pytest

from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.tiling import TilingSettings, plan_tiles
from pcam_synth.slide_writers import RECIPES, write_slide

# OpenSlide 4's generic-TIFF reader sees only the main chain: SubIFD pyramids show it level 0 alone, and it
# reads no OME-XML, so it has no µm/px for an OME-TIFF. Those levels are compared with the same pyramid
# written in the main chain, or with what the writer was given.
MAIN_CHAIN_TWIN = {"vips-subifd": "vips-deflate-predictor"}
LOSSLESS = {"vips-deflate-predictor", "vips-lzw", "vips-packbits-240px", "vips-subifd", "vips-bigtiff-none",
            "ome-tiff-nm"}  # fmt: skip


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-writers")
    return {recipe.name: write_slide(recipe, folder) for recipe in RECIPES}


def open_ours(path):
    return WholeSlide(open(path, "rb"), path.stat().st_size)  # noqa: SIM115 - closed with the slide


def openslide_level(path, level: int) -> np.ndarray:
    reference = openslide.OpenSlide(str(path))
    size = reference.level_dimensions[level]
    return np.asarray(reference.read_region((0, 0), level, size).convert("RGB"))


@pytest.mark.parametrize("recipe", [r.name for r in RECIPES])
def test_every_level_is_read_pixel_for_pixel_as_openslide_reads_it(slides, recipe):
    path, truth = slides[recipe]
    reference = openslide.OpenSlide(str(path))
    with open_ours(path) as slide:
        ours = [(level.width, level.height) for level in slide.levels]
        assert ours[: reference.level_count] == list(reference.level_dimensions)
        for level in range(reference.level_count):
            assert np.array_equal(slide.read_level(level), openslide_level(path, level)), f"level {level}"
        if recipe in MAIN_CHAIN_TWIN:
            twin = slides[MAIN_CHAIN_TWIN[recipe]][0]
            assert ours == list(openslide.OpenSlide(str(twin)).level_dimensions)
            for level in range(1, len(ours)):
                assert np.array_equal(slide.read_level(level), openslide_level(twin, level)), f"level {level}"
        assert slide.resolution.mpp == pytest.approx(truth.mpp, rel=1e-6)
        if "openslide.mpp-x" in reference.properties:
            assert slide.resolution.mpp == pytest.approx(float(reference.properties["openslide.mpp-x"]), rel=1e-6)


@pytest.mark.parametrize("recipe", sorted(LOSSLESS))
def test_lossless_slides_hold_exactly_the_picture_their_writer_was_given(slides, recipe):
    from pcam_synth.whole_slides import synth_wsi_picture

    path, truth = slides[recipe]
    picture, _ = synth_wsi_picture(12, 16, seed=0)
    with open_ours(path) as slide:
        assert np.array_equal(slide.read_level(0), picture.repeat(2, axis=0).repeat(2, axis=1))


@pytest.mark.parametrize("recipe", [r.name for r in RECIPES])
def test_tissue_is_found_where_the_writer_put_it_whatever_the_layout(slides, recipe):
    path, truth = slides[recipe]
    with open_ours(path) as slide:
        plan, _ = plan_tiles(slide, slide.resolution.mpp, slide.resolution.source, TilingSettings())
    edge = round(truth.cell_edge)
    corners = np.array(plan.coords)
    assert truth.tissue[corners[:, 1] // edge, corners[:, 0] // edge].all(), "no tile on glass or pen"
    assert plan.tiles_kept >= 0.9 * truth.tissue.sum()
    assert plan.level == (0 if recipe == "aperio-region" else 1), "the level at the model's 0.972 µm/px"
