"""The whole-slide reader without the stack: levels, regions, µm/px from the file's metadata, tile decoding,
and every refusal of a file's structure in full."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS, SlideLimits
from pcam_pipeline.wsi.tile_decoding import TileFormat, decode_tile
from pcam_synth.whole_slides import synth_wsi
from tests.wsi_files import open_slide, tiny_pyramid


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


def test_a_pyramid_kept_in_subifds_is_read_like_one_in_the_main_chain(tmp_path):
    from pcam_synth.whole_slides import jpeg_codec_for_tifffile

    jpeg_codec_for_tifffile(85)
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


@pytest.mark.parametrize(("byteorder", "bigtiff"), [("<", False), (">", False), ("<", True), (">", True)])
def test_every_tiff_byte_order_and_size_is_read(tmp_path, byteorder, bigtiff):
    with open_slide(tiny_pyramid(tmp_path / "p.tif", byteorder=byteorder, bigtiff=bigtiff)) as slide:
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
    grey = tiny_pyramid(tmp_path / "grey.tif", samples=1)
    assert _refusal(grey) == ("level 0 is not 8-bit RGB", "8-bit RGB pixels, stored together",
                              "1 samples of 8 bits, planar configuration 1")  # fmt: skip
    pyramid = tiny_pyramid(tmp_path / "p.tif")
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
    path = tiny_pyramid(tmp_path / "j2k.tif")
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
    path = tiny_pyramid(tmp_path / "float.tif", compression="zlib", predictor=True)
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


def test_a_tile_over_the_byte_limit_is_refused_when_read(tmp_path):
    path = tiny_pyramid(tmp_path / "p.tif")
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


@pytest.mark.parametrize("predictor", [1, 2])
def test_a_truncated_deflate_tile_is_refused_not_filled_with_zeros(predictor):
    import zlib

    tile = TileFormat(32, 32, compression=8, predictor=predictor)
    pixels = np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    stream = zlib.compress(pixels.tobytes())
    if predictor == 1:
        assert np.array_equal(decode_tile(stream, tile), pixels)
    for cut in (len(stream) // 2, 10):
        with pytest.raises(OSError):  # the reader reports it as "tile N of level M cannot be decoded"
            decode_tile(stream[:cut], tile)
    with pytest.raises(InvalidInput) as refused:
        decode_tile(stream, TileFormat(32, 32, compression=34712))
    assert (refused.value.expected, refused.value.found) == (
        "JPEG, LZW, deflate, PackBits or none",
        "compression 34712",
    )
