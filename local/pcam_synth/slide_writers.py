"""Whole-slide test images written by other people's writers, not ours: libvips (pyvips), tifffile in the
layouts scanners and converters use, and wsidicom (DICOM WSI, through wsidicomizer). Tests and the bench hold
the pipeline's reader to OpenSlide on them.

Each writer takes the same synthetic picture (`whole_slides.synth_wsi_picture`), so every slide holds the same
tissue, tumour and pen stroke, whatever its layout, compression and predictor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pcam_synth.whole_slides import SlideTruth, jpeg_codec_for_tifffile, synth_wsi_picture


@dataclass(frozen=True)
class SlideRecipe:
    """One way a lab's slide is written: the writer, its options, and the file name it gets."""

    name: str
    writer: str  # "libvips", "tifffile" or "wsidicom"
    suffix: str = ".tif"
    options: dict = field(default_factory=dict)


# What labs' tools write (libvips is the converter docs/labs.md recommends; Aperio and OME are scanner and
# microscopy layouts). Each is read pixel for pixel as OpenSlide reads it (tests/unit/test_real_writers.py).
RECIPES = [
    SlideRecipe("vips-deflate-predictor", "libvips", options={"compression": "deflate"}),  # vips' default predictor
    SlideRecipe("vips-lzw", "libvips", options={"compression": "lzw"}),
    SlideRecipe("vips-jpeg", "libvips", options={"compression": "jpeg", "Q": 90}),
    SlideRecipe(
        "vips-packbits-240px", "libvips", options={"compression": "packbits", "tile_width": 240, "tile_height": 240}
    ),  # fmt: skip
    SlideRecipe("vips-subifd", "libvips", options={"compression": "deflate", "subifd": True}),
    SlideRecipe("vips-bigtiff-none", "libvips", options={"compression": "none", "bigtiff": True}),
    SlideRecipe("aperio-svs", "tifffile", ".svs", {"layout": "aperio"}),
    SlideRecipe("aperio-region", "tifffile", ".svs", {"layout": "aperio", "single_level": True}),
    SlideRecipe("ycbcr-jpeg", "tifffile", options={"layout": "ycbcr"}),
    SlideRecipe("ome-tiff-nm", "tifffile", ".ome.tif", {"layout": "ome"}),
]
# Slides only OpenSlide reads: the pipeline stages them once at ingestion (wsi.vendor). JPEG 2000 tiles in the
# Aperio layout (compression 33005, RGB; imagecodecs' OpenJPEG encodes them) and a DICOM WSI series, zipped as
# a lab drops it (docs/labs.md, "Multi-file slides").
OPENSLIDE_RECIPES = [
    SlideRecipe("aperio-jpeg2000", "tifffile", ".svs", {"layout": "aperio", "compression": 33005}),
    SlideRecipe("dicom-wsidicom", "wsidicom", ".zip"),
]


def write_slide(
    recipe: SlideRecipe, folder: Path, rows: int = 12, cols: int = 16, seed: int = 0
) -> tuple[Path, SlideTruth]:
    """The synthetic slide written by ``recipe`` at 0.486 µm/px (the model's 0.972 is level 1 of a pyramid)."""
    picture, truth = synth_wsi_picture(rows, cols, seed=seed)
    scale = round(truth.cell_mpp / truth.mpp)
    level0 = picture.repeat(scale, axis=0).repeat(scale, axis=1)
    path = folder / f"{recipe.name}{recipe.suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    writers = {"libvips": _write_with_libvips, "tifffile": _write_with_tifffile, "wsidicom": write_dicom_zip}
    writers[recipe.writer](path, level0, truth.mpp, **recipe.options)
    return path, truth


def _write_with_libvips(path: Path, level0: np.ndarray, mpp: float, **options) -> None:
    """`vips tiffsave in out.tif --tile --pyramid` with the given options; resolution in pixels per mm."""
    import pyvips

    image = pyvips.Image.new_from_array(level0, interpretation="srgb")
    pixels_per_mm = 1000 / mpp
    image.tiffsave(str(path), tile=True, pyramid=True, xres=pixels_per_mm, yres=pixels_per_mm, resunit="cm",
                   **options)  # fmt: skip


def _levels(level0: np.ndarray, smallest: int = 256) -> list[np.ndarray]:
    from PIL import Image

    levels, image = [level0], Image.fromarray(level0)
    while max(image.size) > 2 * smallest:
        image = image.reduce(2)
        levels.append(np.asarray(image))
    return levels


def write_dicom_zip(path: Path, level0: np.ndarray, mpp: float) -> None:
    """A DICOM WSI series written by wsidicom (wsidicomizer's conversion of a libvips JPEG pyramid, its 256-px
    JPEG tiles copied, not re-encoded), zipped in a folder named after the slide, as a lab uploads a series."""
    import tempfile
    import zipfile

    from wsidicomizer import WsiDicomizer

    with tempfile.TemporaryDirectory() as work:
        source, series = Path(work) / "source.tif", Path(work) / "series"
        _write_with_libvips(source, level0, mpp, compression="jpeg", Q=90, tile_width=256, tile_height=256)
        series.mkdir()
        WsiDicomizer.convert(source, series, tile_size=256, include_label=False, include_overview=False,
                             include_thumbnail=False, workers=1)  # fmt: skip
        with zipfile.ZipFile(path, "w") as bundle:
            for part in sorted(series.glob("*.dcm")):
                bundle.write(part, f"{path.stem}/{part.name}")


def _write_with_tifffile(
    path: Path, level0: np.ndarray, mpp: float, layout: str, single_level: bool = False, compression: int = 7
) -> None:
    """Scanner and microscopy layouts written by tifffile (JPEG tiles encoded by Pillow):

    - ``aperio``: Aperio's page order: level 0 in 240-px JPEG tiles (RGB components, as Aperio writes them;
      ``compression=33005``: JPEG 2000 RGB, as Aperio's J2K slides)
      with the ``Aperio ...|MPP =`` description, a stripped thumbnail, the smaller levels, then stripped
      label and macro pictures; ``single_level`` is a region export (level 0, thumbnail, label, macro),
      like OpenSlide's CMU-1-Small-Region.svs;
    - ``ycbcr``: JPEG tiles stored as YCbCr with 4:2:0 subsampling, resolution in centimetres;
    - ``ome``: OME-TIFF with the pyramid in level 0's SubIFDs and PhysicalSizeX in nanometres, deflate tiles
      with the horizontal predictor.
    """
    import tifffile
    from PIL import Image

    jpeg_codec_for_tifffile(90)
    levels = _levels(level0)[:1] if single_level else _levels(level0)
    height, width = level0.shape[:2]
    with tifffile.TiffWriter(path, bigtiff=layout == "ome", ome=layout == "ome") as writer:
        if layout == "aperio":
            jpeg = dict(compression="jpeg", photometric="rgb", compressionargs={"outcolorspace": "RGB"}, metadata=None)
            tiles = jpeg if compression == 7 else dict(compression=compression, photometric="rgb", metadata=None)
            codec = "JPEG/RGB Q=90" if compression == 7 else "J2K/KDU Q=70"
            description = (f"Aperio Image Library v12.0.15\r\n{width}x{height} [0,0 {width}x{height}] (240x240) "
                           f"{codec}|AppMag = 20|MPP = {mpp}|Filename = {path.stem}")  # fmt: skip
            writer.write(levels[0], tile=(240, 240), description=description, **tiles)
            thumbnail = Image.fromarray(level0)
            thumbnail.thumbnail((768, 768))
            writer.write(np.asarray(thumbnail), description=f"Aperio Image Library v12.0.15\r\n{width}x{height} -> "
                         f"{thumbnail.width}x{thumbnail.height} - |MPP = {mpp}", **jpeg)  # fmt: skip
            for level in levels[1:]:
                writer.write(level, tile=(240, 240), description="Aperio Image Library v12.0.15\r\n", **tiles)
            label = np.full((300, 300, 3), 250, np.uint8)
            writer.write(label, subfiletype=1, description="Aperio Image Library v12.0.15\r\nlabel 300x300",
                         photometric="rgb", metadata=None)  # fmt: skip
            macro = np.asarray(Image.fromarray(level0).resize((600, 200)))
            writer.write(macro, subfiletype=9, description="Aperio Image Library v12.0.15\r\nmacro 600x200", **jpeg)
        elif layout == "ycbcr":
            resolution = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
            for index, level in enumerate(levels):
                writer.write(level, tile=(256, 256), compression="jpeg", photometric="ycbcr", subsampling=(2, 2),
                             subfiletype=1 if index else 0, metadata=None, **resolution)  # fmt: skip
        elif layout == "ome":
            metadata = {"PhysicalSizeX": mpp * 1000, "PhysicalSizeXUnit": "nm",
                        "PhysicalSizeY": mpp * 1000, "PhysicalSizeYUnit": "nm"}  # fmt: skip
            options = dict(tile=(256, 256), compression="zlib", predictor=True, photometric="rgb")
            writer.write(levels[0], subifds=len(levels) - 1, metadata=metadata, **options)
            for level in levels[1:]:
                writer.write(level, subfiletype=1, metadata=None, **options)
        else:
            raise ValueError(f"unknown layout {layout!r}")
