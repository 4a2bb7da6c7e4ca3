"""Whole-slide images without the stack: reading pyramids, resolution, tissue, tiling, sidecars, GeoJSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import shapely
import tifffile
from PIL import Image

from pcam_local.synth import synth_wsi
from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.ingestion import parse_sidecar
from pcam_pipeline.wsi.reader import Level, WholeSlide
from pcam_pipeline.wsi.results import qupath_geojson, whole_slide_figures
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS, SlideLimits
from pcam_pipeline.wsi.tile_decoding import TileFormat, decode_tile
from pcam_pipeline.wsi.tiling import (
    TilePlan,
    TilingSettings,
    choose_level,
    otsu_threshold,
    pen_ink,
    plan_tiles,
    read_patch,
    tile_grid,
    tissue_fractions,
)
from tests.picture_text import text_positions


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wsi") / "s.tif"
    truth = synth_wsi(path, rows=12, cols=16, seed=11)
    return path, truth


def open_slide(path, limits=DEFAULT_SLIDE_LIMITS):
    handle = open(path, "rb")  # noqa: SIM115 - closed with the slide
    return WholeSlide(handle, path.stat().st_size, limits)


def test_a_pyramid_is_read_with_its_levels_and_resolution(slide_file):
    path, truth = slide_file
    with open_slide(path) as slide:
        assert [level.downsample for level in slide.levels] == [1, 2, 4, 8]
        assert slide.resolution.mpp == pytest.approx(0.486) and slide.resolution.source == "TIFF resolution tags"
        level1 = slide.read_level(1)
        # Level 1 is the synthetic picture itself: a region read across tile borders matches a whole-level read.
        assert np.array_equal(slide.read_region(1, 200, 180, 300, 150), level1[180:330, 200:500])
        outside = slide.read_region(1, -10, -10, 20, 20)
        assert (outside[:10] == 255).all(), "outside the image is white"


def test_the_aperio_description_gives_the_resolution(tmp_path):
    synth_wsi(tmp_path / "a.svs", rows=6, cols=8, seed=1, mpp=0.243, aperio=True)
    with open_slide(tmp_path / "a.svs") as slide:
        assert slide.resolution.mpp == pytest.approx(0.243)
        assert slide.resolution.source == "Aperio description (MPP)"


def test_a_slide_without_a_resolution_unit_says_so(tmp_path):
    synth_wsi(tmp_path / "n.tif", rows=6, cols=8, seed=1, says_mpp=False)
    with open_slide(tmp_path / "n.tif") as slide:
        assert slide.resolution.mpp is None and "no resolution tags with a unit" in slide.resolution.source


def test_tiles_are_on_tissue_at_the_models_resolution_and_never_on_the_pen(slide_file):
    path, truth = slide_file
    with open_slide(path) as slide:
        plan, thumbnail = plan_tiles(slide, 0.486, "test", TilingSettings())
        edge = round(truth.cell_edge)
        corners = np.array(plan.coords)
        assert plan.level == 1 and plan.tile_edge == pytest.approx(edge)
        assert truth.tissue[corners[:, 1] // edge, corners[:, 0] // edge].all()
        assert plan.tiles_kept >= 0.9 * truth.tissue.sum()
        assert plan.tissue_area_mm2 == pytest.approx(truth.area_mm2(truth.tissue), rel=0.1)
        x, y = plan.coords[0]
        patch = read_patch(slide, plan, x, y)
        assert patch.shape == (96, 96, 3)
        assert np.array_equal(patch, slide.read_region(1, x // 2, y // 2, 96, 96)), "read at level 1, not resampled"
        assert thumbnail.size == (slide.levels[-1].width, slide.levels[-1].height)


def test_overlap_steps_tiles_by_a_fraction_of_a_tile(slide_file):
    path, _ = slide_file
    with open_slide(path) as slide:
        plain, _ = plan_tiles(slide, 0.486, "test", TilingSettings())
        half, _ = plan_tiles(slide, 0.486, "test", TilingSettings(overlap=0.5))
    assert half.stride == pytest.approx(96) and half.tiles_kept > 3 * plain.tiles_kept


def test_the_level_read_is_the_coarsest_at_least_as_fine_as_the_model():
    levels = [Level(4000, 4000, d, 256, 256) for d in (1, 4, 16)]
    assert choose_level(levels, 0.243, 0.972) == 1  # Camelyon16: level 0 downsampled 4x is exactly 10x
    assert choose_level(levels, 0.25, 0.972) == 0  # 4x would be 1.0 µm/px, coarser: read level 0, resample
    assert choose_level(levels, 1.0, 0.972) == 0  # 3 % coarser than the model: tolerated
    with pytest.raises(InvalidInput, match="coarser resolution than the model"):
        choose_level(levels, 2.0, 0.972)


def test_otsu_splits_two_populations_and_pen_ink_is_not_stain():
    values = np.concatenate([np.full(500, 10), np.full(500, 200)]).astype(np.uint8)
    assert 10 <= otsu_threshold(values) < 200
    colours = np.array([[[35, 70, 185], [40, 150, 80], [20, 20, 20], [70, 40, 125], [236, 170, 205], [125, 70, 150]]])
    assert pen_ink(colours.astype(np.uint8)).tolist() == [[True, True, True, False, False, False]]


def test_tile_grid_and_tissue_fractions():
    grid = tile_grid(1000, 500, 200, 200)
    assert grid.tolist()[:3] == [[0, 0], [200, 0], [400, 0]] and len(grid) == 5 * 2
    mask = np.zeros((50, 100), bool)
    mask[:, :30] = True  # the left 300 level-0 pixels at downsample 10
    fractions = tissue_fractions(mask, grid, 200, (10, 10))
    assert fractions[:3].tolist() == [1.0, 0.5, 0.0]


def test_a_slide_over_the_limit_is_refused_before_its_pixels_are_read(slide_file):
    path, _ = slide_file
    with pytest.raises(InvalidInput, match="too large for the configured limits") as refused:
        open_slide(path, SlideLimits(max_gigapixels=0.001))
    assert "MaxSlideGigapixels" in refused.value.expected


@pytest.mark.parametrize(
    ("write", "problem"),
    [
        (lambda p: tifffile.imwrite(p, np.zeros((300, 300, 3), np.uint8)), "the slide is not tiled"),
        (lambda p: tifffile.imwrite(p, np.zeros((512, 512), np.uint8), tile=(256, 256)), "not 8-bit RGB"),
        (lambda p: tifffile.imwrite(p, np.zeros((512, 512, 3), np.uint16), tile=(256, 256)), "not 8-bit RGB"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100), "the file is not a TIFF"),
        (lambda p: p.write_bytes(b"II*"), "too short to be a TIFF"),
    ],
)
def test_unusable_tiffs_are_explained(tmp_path, write, problem):
    path = tmp_path / "bad.tif"
    write(path)
    with pytest.raises(InvalidInput, match=problem):
        open_slide(path)


def test_a_tile_that_decodes_to_another_size_or_inflates_too_far_is_refused():
    picture = io.BytesIO()
    Image.new("RGB", (64, 64)).save(picture, format="JPEG")
    with pytest.raises(InvalidInput, match="a JPEG tile has the wrong size"):
        decode_tile(picture.getvalue(), TileFormat(256, 256, compression=7))
    import zlib

    bomb = zlib.compress(b"\0" * (50 << 20))  # 50 MB of zeros in ~50 KB: only one tile's pixels are inflated
    assert decode_tile(bomb, TileFormat(256, 256, compression=8)).shape == (256, 256, 3)
    with pytest.raises(InvalidInput, match="fewer pixels than declared"):
        decode_tile(b"\0" * 100, TileFormat(256, 256))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "the sidecar is not JSON"),
        (b"[0.25]", "does not give the slide's"),
        (b'{"MPP": 0.25}', "does not give the slide's"),
        (b'{"mpp": true}', "mpp is not a number"),
        (b'{"mpp": "0.25"}', "mpp is not a number"),
        (b'{"mpp": 0}', "not plausible"),
        (b'{"mpp": NaN}', "not plausible"),
        (b'{"mpp": 0.25, "objective": 40}', "fields the pipeline does not know"),
        (b'{"mpp": 0.25, "x": "' + b"a" * 5000 + b'"}', "too large"),
    ],
)
def test_a_sidecar_with_nonsense_is_refused_with_the_reason(body, problem):
    with pytest.raises(InvalidInput, match=problem):
        parse_sidecar(body)
    assert parse_sidecar(b'{"mpp": 0.2527}') == pytest.approx(0.2527)


def _plan(coords, edge=100.0, overlap=0.0) -> TilePlan:
    return TilePlan(mpp=0.5, mpp_source="test", model_mpp=0.972, level=0, level_mpp=0.5, tile_edge=edge,
                    stride=edge * (1 - overlap), overlap=overlap, min_tissue_fraction=0.5, width=1000, height=1000,
                    tiles_total=100, tissue_area_mm2=0.1, mask_level=0, thumbnail_downsample=(10.0, 10.0),
                    coords=coords)  # fmt: skip


def test_tumour_area_is_the_union_of_tumour_tiles_also_when_they_overlap():
    plan = _plan([[0, 0], [50, 0], [100, 0], [500, 500]], overlap=0.5)
    figures = whole_slide_figures(plan, np.array([0.9, 0.8, 0.7, 0.1]), threshold=0.5)
    # Three tiles of 100 px stepping by 50 cover 200 x 100 px; at 0.5 µm/px that is 100 x 50 µm.
    assert figures["tumour_area_mm2"] == pytest.approx(200 * 100 * 0.25 / 1e6)
    assert figures["tiles_kept"] == 4 and figures["tiles_dropped"] == 96


def test_geojson_has_a_detection_per_tile_and_merged_tumour_regions_in_level0_pixels():
    plan = _plan([[0, 0], [100, 0], [400, 400], [0, 100]])
    probabilities = np.array([0.9, 0.8, 0.2, 0.6])
    document = json.loads(json.dumps(qupath_geojson('node, "7"', plan, probabilities, 0.5)))
    tiles = [f for f in document["features"] if f["properties"]["objectType"] == "detection"]
    regions = [f for f in document["features"] if f["properties"]["objectType"] == "annotation"]
    assert [t["geometry"]["coordinates"][0][0] for t in tiles] == [[0, 0], [100, 0], [400, 400], [0, 100]]
    assert [t["properties"]["classification"]["name"] for t in tiles] == ["Tumor", "Tumor", "Normal", "Tumor"]
    assert tiles[2]["properties"]["measurements"]["tumor_probability"] == pytest.approx(0.2)
    (region,) = regions  # the three touching tumour tiles merge into one L-shaped region
    shape = shapely.geometry.shape(region["geometry"])
    assert shape.is_valid and shape.area == pytest.approx(3 * 100 * 100)
    assert region["properties"]["measurements"]["area_mm2"] == pytest.approx(3 * 100 * 100 * 0.25 / 1e6)


def test_a_pyramid_kept_in_subifds_is_read_like_one_in_the_main_chain(tmp_path):
    from pcam_local.synth import _jpeg_codec_for_tifffile

    _jpeg_codec_for_tifffile(85)
    picture = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    with tifffile.TiffWriter(tmp_path / "ome.tif") as writer:  # as OME-TIFF writers and vips --subifd do
        options = {"tile": (256, 256), "compression": "jpeg", "photometric": "rgb"}
        writer.write(picture, subifds=2, resolution=(1e4 / 0.25,) * 2, resolutionunit="CENTIMETER", **options)
        writer.write(picture[::2, ::2], subfiletype=1, **options)
        writer.write(picture[::4, ::4], subfiletype=1, **options)
    with open_slide(tmp_path / "ome.tif") as slide:
        assert [level.downsample for level in slide.levels] == [1, 2, 4]
        assert slide.resolution.mpp == pytest.approx(0.25)
        assert slide.read_level(2).shape == (256, 256, 3)


@pytest.mark.parametrize(
    ("pixels", "mpp"),
    [
        ('<Pixels ID="Pixels:0" PhysicalSizeX="0.2527" PhysicalSizeXUnit="µm" SizeX="9">', 0.2527),
        ('<Pixels PhysicalSizeX="252.7" PhysicalSizeXUnit="nm">', 0.2527),
        ('<Pixels PhysicalSizeX="0.5">', 0.5),
        ('<Pixels PhysicalSizeX="0.5" PhysicalSizeXUnit="in">', None),
    ],
)
def test_ome_xml_gives_the_resolution_in_its_unit(pixels, mpp):
    from types import SimpleNamespace

    from pcam_pipeline.wsi.resolution import resolution_from_metadata

    description = f'<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image>{pixels}'
    found = resolution_from_metadata(SimpleNamespace(description=description, tags={}))  # OME writes UTF-8 (µm)
    assert found.mpp == (pytest.approx(mpp) if mpp else None)


def test_a_tile_plan_survives_its_json_round_trip():
    plan = _plan([[0, 0], [100, 0]], edge=373.3, overlap=0.25)
    assert TilePlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_a_slide_too_coarse_for_the_model_is_refused_in_plain_words():
    levels = [Level(4000, 4000, 1, 256, 256)]
    assert choose_level(levels, 0.972 * 1.1, 0.972) == 0, "10 % coarser is still read"
    with pytest.raises(InvalidInput) as refused:
        choose_level(levels, 2.0, 0.972)
    assert refused.value.problem == "the slide was scanned at a coarser resolution than the model was trained at"
    assert refused.value.expected == "at most 1.069 µm per pixel (ModelMicronsPerPixel 0.972)"
    assert refused.value.found == "2 µm per pixel"


def test_tissue_is_found_on_the_coarsest_level_with_eight_mask_pixels_per_tile_edge():
    from pcam_pipeline.wsi.tiling import choose_mask_read

    levels = [Level(32768 // d, 32768 // d, d, 256, 256) for d in (1, 2, 4, 8, 16, 32, 64)]
    assert choose_mask_read(levels, 192) == (4, 1)  # 192 / 16 = 12 mask pixels; 192 / 32 = 6 too few
    assert choose_mask_read(levels, 256) == (5, 1)  # exactly 8 is enough
    small = [Level(4096 // d, 4096 // d, d, 256, 256) for d in (1, 2, 4)]
    assert choose_mask_read(small, 4) == (0, 1)  # tiles smaller than any level allows: level 0
    assert choose_mask_read([Level(8000, 8000, 1, 256, 256)], 4) == (0, 1)  # 64 megapixels: the most read whole
    with pytest.raises(InvalidInput) as refused:
        choose_mask_read([Level(8000, 8001, 1, 256, 256)], 4)  # averaging 2 x 2 leaves 2 pixels per tile edge
    assert refused.value.problem == "the slide is too large to find tissue on at its tiles' size"
    assert refused.value.expected == "at most 64 megapixels with 8 per tile edge"
    assert refused.value.found == "level 0 of 8,000 x 8,001 for tiles of 4 pixels"


def _otsu_by_brute_force(values: np.ndarray) -> int:
    best, best_t = -1.0, 0
    for t in range(256):
        low, high = values[values <= t].astype(float), values[values > t].astype(float)
        if low.size and high.size:
            between = low.size * high.size * (low.mean() - high.mean()) ** 2
            if between > best + 1e-6:
                best, best_t = between, t
    return best_t


@pytest.mark.parametrize("seed", range(6))
def test_otsu_matches_the_textbook_definition(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(rng.uniform(5, 80), 8, 700), rng.normal(rng.uniform(120, 250), 15, 300)])
    values = np.append(values.clip(0, 255).astype(np.uint8), [0, 255])
    assert otsu_threshold(values) == _otsu_by_brute_force(values)
    assert otsu_threshold(np.full(10, 7, np.uint8)) == 0, "one value: nothing to split"


def test_the_overlay_thumbnail_is_at_most_1600_pixels_a_side():
    from pcam_pipeline.wsi.tiling import thumbnail_of

    assert thumbnail_of(np.zeros((1000, 4000, 3), np.uint8)).size == (1600, 400)
    assert thumbnail_of(np.zeros((100, 200, 3), np.uint8)).size == (200, 100), "never enlarged"


def test_faint_glass_is_not_tissue_however_otsu_splits_it():
    rng = np.random.default_rng(0)
    glass = np.full((64, 64, 3), 240, np.int16) + rng.integers(-3, 4, (64, 64, 3))
    glass[:, 32:, 0] -= 12  # two shades of glass, both nearly grey (saturation < 20/255)
    from pcam_pipeline.wsi.tiling import tissue_mask

    assert not tissue_mask(glass.clip(0, 255).astype(np.uint8)).any()


def test_a_tumour_ring_around_a_normal_tile_is_one_region_with_a_hole():
    ring = [[x, y] for y in (0, 100, 200) for x in (0, 100, 200)]
    probabilities = np.array([0.9] * 4 + [0.1] + [0.9] * 4)  # the centre tile is normal
    document = qupath_geojson("s", _plan(ring), probabilities, 0.5)
    (region,) = [f for f in document["features"] if f["properties"]["objectType"] == "annotation"]
    outer, hole = region["geometry"]["coordinates"]
    assert shapely.Polygon(outer).area == 300 * 300 and shapely.Polygon(hole).area == 100 * 100
    assert region["properties"]["measurements"]["area_mm2"] == pytest.approx(8 * 100 * 100 * 0.25 / 1e6)


def test_the_overlay_colours_scored_tiles_over_the_thumbnail_and_leaves_the_rest():
    from pcam_pipeline.scoring.slide_results import colour_of
    from pcam_pipeline.wsi.results import OVERLAY_ALPHA, overlay_png

    thumbnail = Image.new("RGB", (100, 100), (240, 240, 240))
    plan = _plan([[0, 0], [500, 500]])  # thumbnail pixels 0-9 and 50-59 (10 level-0 px per thumbnail px)
    png = overlay_png(thumbnail, plan, np.array([0.0, 1.0]), "title", 0.5)
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    left, top = 20, 60  # where framed_png puts the map

    def blended(probability: float) -> np.ndarray:
        colour = colour_of(np.array([probability]))[0].astype(int)
        return (colour * OVERLAY_ALPHA + 240 * (255 - OVERLAY_ALPHA)) / 255

    assert np.abs(picture[top + 5, left + 5] - blended(0.0)).max() <= 2
    assert np.abs(picture[top + 55, left + 55] - blended(1.0)).max() <= 2
    assert (picture[top + 30, left + 30] == 240).all() and (picture[top + 60, left + 60] == 240).all()
    assert text_positions(png, "tumour probability")


def test_whole_slide_figures_say_how_the_slide_was_read():
    plan = _plan([[0, 0]])
    figures = whole_slide_figures(plan, np.array([0.2]), 0.5)
    assert figures == {
        "mpp": 0.5, "mpp_source": "test", "model_mpp": 0.972, "level": 0, "level_mpp": 0.5,
        "tile_edge_level0": 100.0, "tile_overlap": 0.0, "min_tissue_fraction": 0.5, "slide_width": 1000,
        "slide_height": 1000, "tiles_total": 100, "tiles_kept": 1, "tiles_dropped": 99, "tissue_area_mm2": 0.1,
        "tumour_area_mm2": 0.0,
    }  # fmt: skip


def _rgb_encoded_jpeg_without_markers(colour: tuple[int, int, int]) -> bytes:
    """A JPEG whose samples are RGB but which names its components 1, 2, 3 and has no JFIF or Adobe marker,
    as Aperio writes them: a decoder left to guess reads it as YCbCr."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, format="JPEG", quality=95, keep_rgb=True)
    data = bytearray(out.getvalue())
    adobe = data.find(b"\xff\xee")
    del data[adobe : adobe + 2 + int.from_bytes(data[adobe + 2 : adobe + 4], "big")]
    frame, scan = data.find(b"\xff\xc0"), data.find(b"\xff\xda")
    for component in range(3):
        data[frame + 10 + 3 * component] = component + 1
        data[scan + 5 + 2 * component] = component + 1
    return bytes(data)


def test_rgb_jpeg_tiles_of_an_rgb_image_keep_their_colours():
    stream = _rgb_encoded_jpeg_without_markers((200, 50, 120))
    as_rgb = decode_tile(stream, TileFormat(64, 64, compression=7, photometric=2))
    assert np.abs(as_rgb[10, 10].astype(int) - [200, 50, 120]).max() <= 3
    as_ycbcr = decode_tile(stream, TileFormat(64, 64, compression=7, photometric=6))  # the TIFF says YCbCr: converted
    assert np.abs(as_ycbcr[10, 10].astype(int) - [200, 50, 120]).max() > 30


@pytest.mark.parametrize("aperio", [False, True], ids=["generic TIFF", "Aperio SVS"])
def test_the_reader_agrees_with_openslide_on_levels_resolution_and_pixels(tmp_path, aperio):
    openslide = pytest.importorskip("openslide")  # the reference reader (a development dependency)
    path = tmp_path / ("s.svs" if aperio else "s.tif")
    synth_wsi(path, rows=6, cols=8, seed=3, aperio=aperio)
    reference = openslide.OpenSlide(str(path))
    assert reference.properties["openslide.vendor"] == ("aperio" if aperio else "generic-tiff")
    with open_slide(path) as slide:
        assert [(level.width, level.height) for level in slide.levels] == list(reference.level_dimensions)
        assert slide.resolution.mpp == pytest.approx(float(reference.properties["openslide.mpp-x"]))
        for level, (x, y) in ((0, (700, 500)), (1, (300, 200))):
            ours = slide.read_region(level, x, y, 300, 200).astype(int)
            downsample = reference.level_downsamples[level]
            theirs = reference.read_region((round(x * downsample), round(y * downsample)), level, (300, 200))
            assert np.abs(ours - np.asarray(theirs.convert("RGB")).astype(int)).max() <= 2


def test_the_grid_holds_whole_tiles_only():
    assert tile_grid(200, 200, 200, 200).tolist() == [[0, 0]], "a slide exactly one tile wide"
    assert tile_grid(199, 400, 200, 200).size == 0 and tile_grid(400, 199, 200, 200).size == 0
    assert tile_grid(450, 200, 200, 100).tolist() == [[0, 0], [100, 0], [200, 0]], "overlap: a step of half a tile"


def test_pen_ink_thresholds():
    colours = np.array([[[100, 100, 141], [100, 100, 140], [100, 121, 90], [100, 120, 90], [59, 59, 59], [60, 10, 10]]])
    # blue 41 above red (green = red) is ink, 40 is not; green 21 above red is ink, 20 is not; all < 60 is black
    assert pen_ink(colours.astype(np.uint8)).tolist() == [[True, False, True, False, True, False]]


def test_the_geojson_document_in_full():
    plan = _plan([[0, 0], [100, 0]], edge=100.123)
    document = qupath_geojson("node 7", plan, np.array([0.25, 0.875]), 0.5)
    tumour, normal = {"name": "Tumor", "color": [200, 0, 0]}, {"name": "Normal", "color": [0, 130, 60]}

    def square(x, y, edge=100.12):
        return [[x, y], [x + edge, y], [x + edge, y + edge], [x, y + edge], [x, y]]

    assert json.loads(json.dumps(document)) == {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(0, 0)]},
             "properties": {"objectType": "detection", "name": "node 7 tile 0", "classification": normal,
                            "measurements": {"tumor_probability": 0.25, "patch_index": 0}}},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square(100, 0)]},
             "properties": {"objectType": "detection", "name": "node 7 tile 1", "classification": tumour,
                            "measurements": {"tumor_probability": 0.875, "patch_index": 1}}},
            {"type": "Feature",
             "geometry": {"type": "Polygon", "coordinates": [[[200.12, 0.0], [200.12, 100.12], [100.0, 100.12],
                                                              [100.0, 0.0], [200.12, 0.0]]]},
             "properties": {"objectType": "annotation", "name": "node 7 tumour region 1", "classification": tumour,
                            "measurements": {"area_mm2": 0.002506}}},
        ],
    }  # fmt: skip


def test_two_separate_tumour_regions_are_numbered_and_each_keeps_its_area():
    plan = _plan([[0, 0], [500, 500]])
    document = qupath_geojson("s", plan, np.array([0.9, 0.9]), 0.5)
    regions = [f["properties"] for f in document["features"] if f["properties"]["objectType"] == "annotation"]
    assert [r["name"] for r in regions] == ["s tumour region 1", "s tumour region 2"]
    assert [r["measurements"]["area_mm2"] for r in regions] == [0.0025, 0.0025]
    assert whole_slide_figures(plan, np.array([0.9, 0.9]), 0.5)["tumour_area_mm2"] == 0.005


def test_each_tile_is_coloured_exactly_over_its_own_thumbnail_pixels():
    from pcam_pipeline.wsi.results import overlay_png

    plan = _plan([[100, 200]])  # thumbnail pixels x 10-19, y 20-29
    png = overlay_png(Image.new("RGB", (60, 60), (240, 240, 240)), plan, np.array([1.0]), "t", 0.5)
    coloured = (np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[60:120, 20:80] != 240).any(axis=2)
    rows, columns = np.nonzero(coloured)
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (20, 29, 10, 19)


def _pyramid(path, *, sizes=(128, 64, 32), tile=32, byteorder="<", bigtiff=False, samples=3, **options) -> Path:
    """A small uncompressed pyramid written by tifffile, for the reader's refusals."""
    shape = (lambda edge: (edge, edge, samples)) if samples > 1 else (lambda edge: (edge, edge))
    with tifffile.TiffWriter(path, byteorder=byteorder, bigtiff=bigtiff) as writer:
        for edge in sizes:
            writer.write(np.full(shape(edge), 90, np.uint8), tile=(tile, tile), metadata=None, **options)
    return path


@pytest.mark.parametrize(("byteorder", "bigtiff"), [("<", False), (">", False), ("<", True), (">", True)])
def test_every_tiff_byte_order_and_size_is_read(tmp_path, byteorder, bigtiff):
    with open_slide(_pyramid(tmp_path / "p.tif", byteorder=byteorder, bigtiff=bigtiff)) as slide:
        assert [level.width for level in slide.levels] == [128, 64, 32]
        assert (slide.read_region(2, 0, 0, 32, 32) == 90).all()


def _refusal(path, limits=DEFAULT_SLIDE_LIMITS) -> tuple[str, str, str]:
    with pytest.raises(InvalidInput) as refused:
        open_slide(path, limits)
    return refused.value.problem, refused.value.expected, refused.value.found


def test_each_refusal_of_the_reader_in_full(tmp_path):
    (tmp_path / "short.tif").write_bytes(b"II*")
    assert _refusal(tmp_path / "short.tif") == ("the file is too short to be a TIFF", "a pyramidal TIFF, SVS or TIF",
                                                "3 bytes")  # fmt: skip
    (tmp_path / "png.tif").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert _refusal(tmp_path / "png.tif") == (
        "the file is not a TIFF (nor an SVS, which is a TIFF)",
        "a TIFF signature",
        repr(b"\x89PNG"),
    )
    tifffile.imwrite(tmp_path / "strips.tif", np.zeros((64, 64, 3), np.uint8))
    assert _refusal(tmp_path / "strips.tif") == (
        "the slide is not tiled",
        "a tiled TIFF (scanners' SVS and pyramidal TIFF are)",
        "level 0 in strips",
    )
    grey = _pyramid(tmp_path / "grey.tif", samples=1)
    assert _refusal(grey) == ("level 0 is not 8-bit RGB", "8-bit RGB pixels, stored together",
                              "1 samples of 8 bits, planar configuration 1")  # fmt: skip
    pyramid = _pyramid(tmp_path / "p.tif")
    assert _refusal(pyramid, SlideLimits(max_pages=2)) == ("the file holds too many images", "at most 2", "more")
    assert _refusal(pyramid, SlideLimits(max_tile_edge=16)) == (
        "level 0 has tiles of an unusable size",
        "tiles of at most 16 pixels a side",
        "32 x 32",
    )
    assert _refusal(pyramid, SlideLimits(max_gigapixels=128 * 127 / 1e9)) == (
        "the slide is too large for the configured limits",
        "at most 1.6256e-05 gigapixels at level 0 (the MaxSlideGigapixels setting)",
        "128 x 128 pixels",
    )
    for limits in (
        SlideLimits(max_pages=3),
        SlideLimits(max_tile_edge=32),
        SlideLimits(max_gigapixels=128 * 128 / 1e9),
    ):
        open_slide(pyramid, limits).close()  # exactly at each limit: read


def test_a_compression_the_reader_cannot_decode_is_named_with_a_recipe(tmp_path):
    path = _pyramid(tmp_path / "j2k.tif")
    with tifffile.TiffFile(path) as tiff:
        offset = tiff.pages[0].tags["Compression"].valueoffset
    data = bytearray(path.read_bytes())
    data[offset : offset + 2] = (33005).to_bytes(2, "little")  # claim Aperio's JPEG 2000
    path.write_bytes(bytes(data))
    assert _refusal(path) == (
        "level 0 is compressed in a way the pipeline cannot decode",
        "JPEG, LZW, deflate, PackBits or none (convert first: vips tiffsave slide.svs slide.tif --tile --pyramid "
        "--compression jpeg --Q 90)",
        "compression 33005 (APERIO_JP2000_RGB)",
    )


def test_a_predictor_the_reader_cannot_undo_is_refused(tmp_path):
    path = _pyramid(tmp_path / "float.tif", compression="zlib", predictor=True)
    with tifffile.TiffFile(path) as tiff:
        offset = tiff.pages[0].tags["Predictor"].valueoffset
    data = bytearray(path.read_bytes())
    data[offset : offset + 2] = (3).to_bytes(2, "little")  # floating-point prediction on 8-bit samples
    path.write_bytes(bytes(data))
    assert _refusal(path) == (
        "level 0 uses a predictor the pipeline cannot undo",
        "no predictor, or the horizontal one (2) with LZW or deflate",
        "predictor 3 with compression 8",
    )


def test_a_single_level_slide_is_read_and_its_tissue_found_on_a_bounded_reduction(tmp_path):
    from pcam_pipeline.wsi.tiling import choose_mask_read, read_reduced

    path = _pyramid(tmp_path / "region.tif", sizes=(128,))
    with open_slide(path) as slide:
        assert [(level.width, level.height) for level in slide.levels] == [(128, 128)]
        reduced = read_reduced(slide, 0, 3)  # bands of 30 rows (the tile is 32): 43 x 43, ceil(128 / 3)
        assert reduced.shape == (43, 43, 3) and (reduced == 90).all()
    assert choose_mask_read([Level(8000, 8000, 1, 256, 256)], 8) == (0, 1), "64 megapixels, 8 per tile: as it is"
    assert choose_mask_read([Level(8000, 8001, 1, 256, 256)], 16) == (0, 2), "one more row: averaged 2 x 2"
    assert choose_mask_read([Level(8000, 8000, 1, 256, 256)], 64) == (0, 5), "no finer than the 1,600-px thumbnail"
    assert choose_mask_read([Level(80_000, 80_000, 1, 256, 256)], 384) == (0, 48), "8 mask pixels per tile edge"


def test_a_tile_over_the_byte_limit_is_refused_when_read(tmp_path):
    path = _pyramid(tmp_path / "p.tif")
    with open_slide(path, SlideLimits(max_tile_bytes=32 * 32 * 3 - 1)) as slide, pytest.raises(InvalidInput) as refused:
        slide.read_region(0, 0, 0, 8, 8)
    assert (refused.value.problem, refused.value.expected, refused.value.found) == (
        "tile 0 of level 0 is too large",
        "at most 0 MiB",
        "3,072 bytes",
    )
    with open_slide(path, SlideLimits(max_tile_bytes=32 * 32 * 3)) as slide:
        assert (slide.read_region(0, 0, 0, 8, 8) == 90).all()


APERIO = "Aperio Image Library v1\r\n|AppMag = 20|MPP = "
UNUSABLE = "the {} says {} {!r}, not a usable value"


@pytest.mark.parametrize(
    ("description", "tags", "found"),
    [
        (APERIO + "0.4990", {}, (0.499, "Aperio description (MPP)")),
        (APERIO + "1e", {}, (None, UNUSABLE.format("Aperio description", "MPP =", "1e"))),
        (APERIO + "0.01", {}, (None, UNUSABLE.format("Aperio description", "MPP =", "0.01"))),
        ("", {"XResolution": (25_400, 1), "ResolutionUnit": 2}, (1.0, "TIFF resolution tags")),
        ("", {"XResolution": (20_000, 1), "ResolutionUnit": 3}, (0.5, "TIFF resolution tags")),
        ("", {"XResolution": (72, 1)}, (None, "the TIFF resolution tags say 352.8 µm per pixel, a placeholder, "
                                              "not a scan")),
        ("", {"XResolution": (1, 1), "ResolutionUnit": 1}, (None, "the file has no resolution tags with a unit")),
        ("", {"XResolution": (0, 1), "ResolutionUnit": 3}, (None, "the file's XResolution tag is not a number")),
        ('<OME><Pixels PhysicalSizeX="0.01">', {}, (None, UNUSABLE.format("OME-XML", "PhysicalSizeX", "0.01"))),
        ('<OME><Pixels PhysicalSizeX="0.25" PhysicalSizeXUnit="mm">', {},
         (None, UNUSABLE.format("OME-XML", "PhysicalSizeX", "0.25"))),
    ],
)  # fmt: skip
def test_resolution_metadata_and_why_there_is_none(description, tags, found):
    from types import SimpleNamespace

    from pcam_pipeline.wsi.resolution import resolution_from_metadata

    page = SimpleNamespace(description=description, tags={k: SimpleNamespace(value=v) for k, v in tags.items()})
    resolution = resolution_from_metadata(page)
    assert (resolution.mpp if resolution.mpp is None else round(resolution.mpp, 6), resolution.source) == found


def test_the_plausible_resolution_range_is_inclusive():
    from pcam_pipeline.wsi.resolution import check_mpp

    assert check_mpp(0.05, "x") == 0.05 and check_mpp(20.0, "x") == 20.0
    with pytest.raises(InvalidInput) as refused:
        check_mpp(20.5, "the sidecar")
    assert (refused.value.problem, refused.value.expected, refused.value.found) == (
        "the µm per pixel in the sidecar is not plausible",
        "a number from 0.05 to 20.0",
        "20.5",
    )
