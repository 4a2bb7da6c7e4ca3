"""Slides only OpenSlide 4 reads, written by other people's tools (tifffile's Aperio layout with JPEG 2000
tiles, wsidicom's DICOM WSI zipped as a lab drops it): staged once, then read by the pipeline's own reader with
OpenSlide's pixels exactly, in the original slide's level-0 frame. And a child process no file can take down."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import openslide  # the reference reader
import pytest

from pcam_ops.cli import main
from pcam_pipeline.core.dropped_files import classify_incoming_key
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.plans import MissingResolution, plan_dropped_slide
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.structure import SlideLimits
from pcam_pipeline.wsi.vendor import stage_with_openslide
from pcam_synth.real_tissue import REALTISSUE
from pcam_synth.slide_writers import OPENSLIDE_RECIPES, write_slide
from tests.fakes import conversion_settings


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openslide-writers")
    return {recipe.name: write_slide(recipe, folder) for recipe in OPENSLIDE_RECIPES}


def opened_by_openslide(path: Path, tmp_path: Path) -> openslide.OpenSlide:
    """The reference: OpenSlide on the slide, or on the first .dcm of a zipped series."""
    if path.suffix != ".zip":
        return openslide.OpenSlide(str(path))
    zipfile.ZipFile(path).extractall(tmp_path / "reference")
    return openslide.OpenSlide(str(sorted((tmp_path / "reference").rglob("*.dcm"))[0]))


def plan_local(path: Path, tmp_path: Path, settings=None, sidecar=None):
    kind = classify_incoming_key(f"incoming/slides/{path.name}")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)

    def copy(target: Path) -> None:
        target.write_bytes(path.read_bytes())

    with open(path, "rb") as f:
        settings = settings or conversion_settings()
        return plan_dropped_slide(f, path.stat().st_size, kind, sidecar, settings, (work / path.name, copy))


@pytest.mark.parametrize("recipe", [r.name for r in OPENSLIDE_RECIPES])
def test_the_staged_copy_holds_openslides_pixels_wherever_a_patch_is_cut(slides, recipe, tmp_path):
    """The first staged level is OpenSlide's level tile for tile near tissue, white glass elsewhere (never decoded);
    the coarser levels are OpenSlide's whole. Every kept tile's pixels are OpenSlide's."""
    path, truth = slides[recipe]
    plan, _, staged = plan_local(path, tmp_path)
    reference = opened_by_openslide(path, tmp_path)
    assert staged.base_size == reference.dimensions and staged.vendor == reference.properties["openslide.vendor"]
    assert staged.mpp == pytest.approx(float(reference.properties["openslide.mpp-x"]))
    assert staged.mpp == pytest.approx(truth.mpp, rel=1e-6)
    assert 0 < staged.tiles_read <= staged.tiles_total
    with open(staged.path, "rb") as f, WholeSlide(f, staged.staged_bytes, base_size=staged.base_size) as slide:
        assert len(slide.levels) == reference.level_count - staged.first_level
        levels = []
        for index, level in enumerate(slide.levels):
            original = staged.first_level + index
            assert (level.width, level.height) == reference.level_dimensions[original]
            assert level.downsample == pytest.approx(reference.level_downsamples[original])
            expected = reference.read_region((0, 0), original, reference.level_dimensions[original]).convert("RGB")
            levels.append((slide.read_level(index), np.asarray(expected)))
    for ours, theirs in levels[1:]:
        assert np.array_equal(ours, theirs), "coarser levels whole"
    ours, theirs = levels[0]
    for y in range(0, ours.shape[0], 512):
        for x in range(0, ours.shape[1], 512):
            tile, truth_tile = ours[y : y + 512, x : x + 512], theirs[y : y + 512, x : x + 512]
            assert np.array_equal(tile, truth_tile) or (tile == 255).all(), (x, y)
    scale = slide.levels[0].downsample
    for x, y in plan.coords:
        x0, y0, x1, y1 = (round(v / scale) for v in (x, y, x + plan.tile_edge, y + plan.tile_edge))
        assert np.array_equal(ours[y0:y1, x0:x1], theirs[y0:y1, x0:x1]), "a kept tile is OpenSlide's pixels"


def test_glass_far_from_tissue_is_never_decoded_and_every_kept_tile_is_openslides(tmp_path):
    """A DICOM slide whose tissue fills one corner: of its first staged level only the tiles within a tile of
    tissue are read; the rest is white; the plan keeps the same tiles as on OpenSlide's whole level."""
    from pcam_synth.slide_writers import write_dicom_zip
    from pcam_synth.whole_slides import synth_wsi_picture

    picture, _ = synth_wsi_picture(12, 16, seed=3)
    level0 = np.full((4608, 6144, 3), 245, np.uint8)
    level0[:2304, :3072] = picture.repeat(2, 0).repeat(2, 1)  # the tissue in the top-left quarter
    path = tmp_path / "corner.zip"
    write_dicom_zip(path, level0, 0.486)
    plan, _, staged = plan_local(path, tmp_path)
    assert staged.tiles_read <= staged.tiles_total // 2, (staged.tiles_read, staged.tiles_total)
    reference = opened_by_openslide(path, tmp_path)
    theirs = np.asarray(reference.read_region((0, 0), 1, reference.level_dimensions[1]).convert("RGB"))
    with open(staged.path, "rb") as f, WholeSlide(f, staged.staged_bytes, base_size=staged.base_size) as slide:
        ours = slide.read_level(0)
    assert (ours[1536:, 2048:] == 255).all(), "far from tissue: white, not decoded"
    corners = np.array(plan.coords)
    assert corners[:, 0].max() < 3072 and corners[:, 1].max() < 2304, "tiles only on the tissue"
    for x, y in plan.coords:
        x0, y0, x1, y1 = (round(v / 2) for v in (x, y, x + plan.tile_edge, y + plan.tile_edge))
        assert np.array_equal(ours[y0:y1, x0:x1], theirs[y0:y1, x0:x1])


@pytest.mark.parametrize("recipe", [r.name for r in OPENSLIDE_RECIPES])
def test_tissue_is_planned_in_the_original_slides_frame_at_the_models_level(slides, recipe, tmp_path):
    path, truth = slides[recipe]
    plan, thumbnail, staged = plan_local(path, tmp_path)
    assert (plan.width, plan.height) == staged.base_size, "coordinates are level 0 of the slide as dropped"
    assert plan.slide_level == 1 and staged.first_level == 1, "only the levels from the model's 0.972 µm/px down"
    assert plan.vendor == staged.vendor
    edge = round(truth.cell_edge)
    corners = np.array(plan.coords)
    assert truth.tissue[corners[:, 1] // edge, corners[:, 0] // edge].all(), "no tile on glass or pen"
    assert plan.tiles_kept >= 0.9 * truth.tissue.sum()
    assert thumbnail.width > 0


def test_a_scanner_with_4x_levels_is_staged_averaged_to_near_the_models_resolution(tmp_path):
    """Levels at 0.25 and 1.0 µm/px (an Aperio 40x pyramid): 1.0 is coarser than the model's 0.972, so level 0 is
    staged averaged 3 x 3 (0.75 µm/px), not copied whole; its pixels are Pillow's 3 x 3 means of OpenSlide's."""
    import tifffile
    from PIL import Image

    from pcam_synth.whole_slides import synth_wsi_picture

    picture, _ = synth_wsi_picture(6, 8, seed=2)
    level0 = picture.repeat(4, 0).repeat(4, 1)[:1150, :1534]  # edges that 3 does not divide
    path = tmp_path / "forty.svs"
    with tifffile.TiffWriter(path) as writer:
        for index, level in enumerate((level0, level0[::4, ::4])):
            writer.write(level, tile=(240, 240), compression=33005, photometric="rgb", metadata=None,
                         description="Aperio Image Library v12.0.15\r\n1534x1150 (240x240) J2K|MPP = 0.25"
                         if index == 0 else None)  # fmt: skip
    plan, _, staged = plan_local(path, tmp_path)
    reference = openslide.OpenSlide(str(path))
    assert (staged.first_level, staged.reduction, staged.levels_staged) == (0, 3, 2)
    expected = Image.fromarray(np.asarray(reference.read_region((0, 0), 0, reference.dimensions).convert("RGB")))
    with open(staged.path, "rb") as f, WholeSlide(f, staged.staged_bytes, base_size=staged.base_size) as slide:
        assert (slide.levels[0].width, slide.levels[0].height) == (512, 384)
        assert np.array_equal(slide.read_level(0), np.asarray(expected.reduce(3)))
        coarse = reference.read_region((0, 0), 1, reference.level_dimensions[1]).convert("RGB")
        assert np.array_equal(slide.read_level(1), np.asarray(coarse)), "coarser levels are OpenSlide's as they are"
    assert plan.level_mpp == pytest.approx(0.25 * 1534 / 512) and plan.slide_level == 0


def test_a_slide_whose_nearest_level_is_too_large_to_decode_is_refused_before_decoding(slides, tmp_path):
    path, _ = slides["aperio-jpeg2000"]
    settings = conversion_settings()
    small = replace(settings, slide_limits=replace(settings.slide_limits, max_staging_gigapixels=0.001))
    with pytest.raises(InvalidInput, match="no level near the model's resolution small enough") as caught:
        plan_local(path, tmp_path, settings=small)
    assert "vips tiffsave" in caught.value.expected and "1,536 x 1,152 pixels" in caught.value.found


def test_the_staged_copy_is_written_without_imagecodecs_as_in_the_lambda_layer(slides, tmp_path, monkeypatch):
    """The layer has no imagecodecs: tifffile then deflates and predicts with zlib and numpy. The child process is
    run with imagecodecs hidden, and its copy must hold the same pixels."""
    blocker = tmp_path / "blocked"
    (blocker / "imagecodecs").mkdir(parents=True)
    (blocker / "imagecodecs" / "__init__.py").write_text('raise ImportError("not in the Lambda layer")\n')
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    path, _ = slides["aperio-jpeg2000"]
    staged = stage_with_openslide(path, tmp_path / "staged.tif", 0.972, None, SlideLimits())
    reference = openslide.OpenSlide(str(path))
    with open(staged.path, "rb") as f, WholeSlide(f, staged.staged_bytes, base_size=staged.base_size) as slide:
        expected = reference.read_region((0, 0), 1, reference.level_dimensions[1]).convert("RGB")
        assert np.array_equal(slide.read_level(0), np.asarray(expected))


def test_a_jpeg2000_svs_falls_back_from_the_pipelines_reader_to_openslide(slides, tmp_path):
    path, _ = slides["aperio-jpeg2000"]
    kind = classify_incoming_key(f"incoming/slides/{path.name}")
    assert kind.reader == "tiff", "an .svs is tried with the pipeline's own reader first"
    plan, _, staged = plan_local(path, tmp_path)
    assert staged is not None and plan.vendor == "aperio"


def test_a_slide_that_does_not_say_its_resolution_waits_for_its_sidecar(tmp_path):
    import tifffile

    from pcam_synth.whole_slides import synth_wsi_picture

    picture, _ = synth_wsi_picture(6, 8, seed=1)
    path = tmp_path / "no-mpp.svs"
    tifffile.imwrite(path, picture.repeat(2, 0).repeat(2, 1), tile=(240, 240), compression=33005, photometric="rgb",
                     description="Aperio Image Library v12.0.15\r\n1536x1152 (240x240) J2K/KDU Q=70|AppMag = 20",
                     metadata=None)  # fmt: skip
    with pytest.raises(MissingResolution) as caught:
        plan_local(path, tmp_path)
    assert "incoming/slides/no-mpp.json" in caught.value.expected
    assert "OpenSlide finds no µm per pixel" in caught.value.found
    sidecar = {"mpp": 0.486, "key": "incoming/slides/no-mpp.json", "version": "v1"}
    plan, _, staged = plan_local(path, tmp_path, sidecar=sidecar)
    assert plan.mpp == 0.486 and plan.mpp_source.startswith("sidecar ") and staged.mpp == 0.486


def test_pcam_check_reads_a_zipped_dicom_series_as_ingestion_does(slides, capsys):
    path, _ = slides["dicom-wsidicom"]
    assert main(["check", str(path)]) == 0
    said = capsys.readouterr().out
    assert "whole-slide image dicom-wsidicom:" in said and "read by OpenSlide (dicom)" in said


# ------------------------------------------------------------------------------------------- what OpenSlide refuses
def test_a_file_openslide_cannot_open_is_refused_with_both_readers_reasons(tmp_path):
    path = tmp_path / "scan.ndpi"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 64)
    with pytest.raises(InvalidInput, match="neither the pipeline nor OpenSlide 4 reads") as caught:
        plan_local(path, tmp_path)
    assert "openslide.org/formats" in caught.value.expected and caught.value.found == "scan.ndpi"


def test_a_tiff_in_a_compression_neither_reader_decodes_names_both(tmp_path):
    import tifffile

    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros((512, 512, 3), np.uint8), tile=(256, 256), photometric="rgb", compression=8)
    data = bytearray(path.read_bytes())
    # Relabel the tiles' compression as 65000, a code no codec has, in place.
    tag = (
        (259).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little") + (8).to_bytes(2, "little")
    )
    data[data.index(tag) + 8 : data.index(tag) + 10] = (65000).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput) as caught:
        plan_local(path, tmp_path)
    assert caught.value.problem == "level 0 is compressed in a way the pipeline cannot decode"
    assert "OpenSlide 4:" in caught.value.found, "what OpenSlide said too"


def test_a_slide_that_keeps_the_reader_busy_past_its_cpu_time_is_stopped_and_refused(tmp_path):
    """2048 x 2048 pixels of noise in one lossless JPEG 2000 tile take OpenSlide's decoder about 2 s of CPU; with
    a budget of 1 s the child is stopped (SIGXCPU), and the slide refused with how it ended."""
    import tifffile

    noise = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    path = tmp_path / "busy.svs"
    tifffile.imwrite(path, noise, tile=(2048, 2048), compression=33005, photometric="rgb", metadata=None,
                     description="Aperio Image Library v12.0.15\r\n2048x2048 (2048x2048) J2K|MPP = 0.486")  # fmt: skip
    busy = replace(SlideLimits(), openslide_cpu_seconds=1)
    with pytest.raises(InvalidInput, match="OpenSlide stopped while reading the slide") as caught:
        stage_with_openslide(path, tmp_path / "staged.tif", 0.972, None, busy)
    assert "signal" in caught.value.found and "CPU or memory limit" in caught.value.found


def test_a_slide_too_large_to_copy_for_openslide_is_refused_before_it_is_copied(slides, tmp_path):
    path, _ = slides["dicom-wsidicom"]
    settings = conversion_settings()
    small = replace(settings, slide_limits=replace(settings.slide_limits, max_vendor_bytes=1000))
    with pytest.raises(InvalidInput, match="too large to copy for OpenSlide"):
        plan_local(path, tmp_path, settings=small)
    assert not (tmp_path / "work" / path.name).exists()


def test_a_reader_that_ends_without_its_answer_line_is_a_refusal_not_a_crash(tmp_path, monkeypatch):
    """The child's answer is its last stdout line; if a library printed after it (or the child printed nothing
    usable), the slide is refused with how the reader ended, not retried into the dead-letter queue."""
    import subprocess

    from pcam_pipeline.wsi import vendor

    def ended_with_a_library_message(command, **_):
        return subprocess.CompletedProcess(command, 0, b"tile 3 decoded with warnings\n", b"libtiff: odd tag\n")

    monkeypatch.setattr(vendor.subprocess, "run", ended_with_a_library_message)
    with pytest.raises(InvalidInput, match="OpenSlide stopped while reading the slide") as caught:
        stage_with_openslide(tmp_path / "slide.ndpi", tmp_path / "staged.tif", 0.972, None, SlideLimits())
    assert "exit status 0: libtiff: odd tag" in caught.value.found


def test_a_dicom_series_whose_files_have_no_dcm_suffix_is_read_by_their_content(slides, tmp_path):
    """PACS and DICOMweb exports name files by their UIDs: the series is told by "DICM" at byte 128."""
    import zipfile

    path, _ = slides["dicom-wsidicom"]
    renamed = tmp_path / "export.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(renamed, "w") as target:
        for index, member in enumerate(sorted(source.namelist())):
            target.writestr(f"1.2.826.0.1.3680043/{index:04d}", source.read(member))  # no suffix at all
    plan, _, staged = plan_local(renamed, tmp_path)
    assert staged is not None and staged.vendor == "dicom" and plan.tiles_kept > 0


REAL_NDPI = REALTISSUE / "hamamatsu-tritc-fluorescence.ndpi"


def test_a_real_hamamatsu_ndpi_is_staged_with_openslides_pixels_level_for_level(tmp_path):
    """A slide a Hamamatsu scanner wrote (C9600-12; CC BY 4.0, M. Stritt; tests/data/realtissue/README.md): its
    staged copy has OpenSlide's levels from the one nearest the model's resolution down, in the original frame,
    pixel for pixel. (It is a fluorescence slide: ingestion then refuses it as not brightfield, test_brightfield.)"""
    staged = stage_with_openslide(REAL_NDPI, tmp_path / "staged.tif", 0.972, None, SlideLimits())
    reference = openslide.OpenSlide(str(REAL_NDPI))
    assert staged.vendor == "hamamatsu" and staged.base_size == reference.dimensions == (3968, 4864)
    assert staged.mpp == pytest.approx(0.228175, rel=1e-5) and staged.first_level == 2 and staged.reduction == 1
    with open(staged.path, "rb") as f, WholeSlide(f, staged.staged_bytes, base_size=staged.base_size) as slide:
        assert len(slide.levels) == reference.level_count - staged.first_level == 5
        for index, level in enumerate(slide.levels):
            original = staged.first_level + index
            assert (level.width, level.height) == reference.level_dimensions[original]
            theirs = np.asarray(
                reference.read_region((0, 0), original, reference.level_dimensions[original]).convert("RGB")
            )
            ours = slide.read_level(index)
            if index:
                assert np.array_equal(ours, theirs), f"level {original} whole"
                continue
            for y in range(0, ours.shape[0], 512):
                for x in range(0, ours.shape[1], 512):
                    tile = ours[y : y + 512, x : x + 512]
                    assert np.array_equal(tile, theirs[y : y + 512, x : x + 512]) or (tile == 255).all(), (x, y)
