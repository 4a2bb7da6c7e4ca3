"""Test slides from real tissue the project did not make (tests/data/realtissue/, each file's licence in the
README there): images resampled to a stated µm/px and written as pyramidal, JPEG-tiled TIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REALTISSUE = Path(__file__).resolve().parents[2] / "tests" / "data" / "realtissue"
# The H&E images, each with the µm/px it is read at: HEnorm's example is a 40x scan; the others are TCGA or
# Kather 100K tiles at 20x (0.5 µm/px, Kather's stated resolution), or stated so for want of one.
HE_IMAGES = {
    "henorm-example1.png": 0.25,
    "histolab-high-nuclei-level0.png": 0.5,
    "histolab-tcga-red-pen.png": 0.5,
    "tiatoolbox-TCGA-HE-7130.png": 0.5,
    "tiatoolbox-target.png": 0.5,
    "torchstain-source.png": 0.5,
    "torchstain-target.png": 0.5,
    "tiatoolbox-kather1.tif": 0.5,
}
IHC_IMAGE = "skimage-ihc.png"
REAL_SVS = "histolab-tcga-cr-7395-jp2k.svs"  # TCGA frozen section; says no µm/px: read at 0.5
REAL_NDPI = "hamamatsu-tritc-fluorescence.ndpi"


def real_image(name: str) -> np.ndarray:
    return np.asarray(Image.open(REALTISSUE / name).convert("RGB"))


def at_mpp(rgb: np.ndarray, mpp: float, target_mpp: float) -> np.ndarray:
    """The picture resampled from ``mpp`` to ``target_mpp`` µm/px (Lanczos)."""
    scale = mpp / target_mpp
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def svs_level0() -> np.ndarray:
    """The real Aperio slide's full-resolution pixels, read with OpenSlide."""
    import openslide

    with openslide.OpenSlide(str(REALTISSUE / REAL_SVS)) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.level_dimensions[0]).convert("RGB"))


def write_pyramid(rgb: np.ndarray, path: Path, mpp: float, quality: int = 90, tile: int = 256) -> Path:
    """A pyramidal TIFF of ``rgb`` at ``mpp`` µm/px (TIFF resolution tags), JPEG tiles, halving to 512 px."""
    import tifffile

    from pcam_synth.whole_slides import jpeg_codec_for_tifffile

    jpeg_codec_for_tifffile(quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    level, downsample = Image.fromarray(rgb), 1
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        while True:
            pixels = np.asarray(level)
            writer.write(
                pixels,
                tile=(tile, tile),
                compression="jpeg",
                photometric="rgb",
                metadata=None,
                subfiletype=1 if downsample > 1 else 0,
                resolution=(1e4 / (mpp * downsample),) * 2,
                resolutionunit="CENTIMETER",
            )
            if max(level.size) <= 512:
                return path
            level, downsample = level.reduce(2), downsample * 2


def mosaic(pictures: list[np.ndarray], columns: int, glass: int = 236) -> np.ndarray:
    """Pictures side by side on glass, ``columns`` to a row, each row as high as its tallest."""
    rows = [pictures[i : i + columns] for i in range(0, len(pictures), columns)]
    width = max(sum(p.shape[1] for p in row) for row in rows)
    height = sum(max(p.shape[0] for p in row) for row in rows)
    canvas = np.full((height, width, 3), glass, np.uint8)
    y = 0
    for row in rows:
        x = 0
        for picture in row:
            canvas[y : y + picture.shape[0], x : x + picture.shape[1]] = picture
            x += picture.shape[1]
        y += max(p.shape[0] for p in row)
    return canvas


def half_blurred_mosaic(mpp: float = 0.486, sigma_model_px: float = 2.0, model_mpp: float = 0.972):
    """Every real H&E image and the real Aperio slide at ``mpp``, side by side, the right
    half of each blurred with a Gaussian of ``sigma_model_px`` pixels at the model's resolution (Pillow's
    GaussianBlur radius is the standard deviation). Returns the picture and where it is blurred."""
    from PIL import ImageFilter

    sources = [at_mpp(real_image(name), image_mpp, mpp) for name, image_mpp in HE_IMAGES.items()]
    sources.append(at_mpp(svs_level0(), 0.5, mpp))
    radius = sigma_model_px * model_mpp / mpp
    pictures, masks = [], []
    for rgb in sources:
        half = rgb.shape[1] // 2
        blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius)))
        pictures.append(np.concatenate([rgb[:, :half], blurred[:, half:]], axis=1))
        mask = np.zeros(rgb.shape, np.uint8)
        mask[:, half:] = 255
        masks.append(mask)
    return mosaic(pictures, 3), mosaic(masks, 3, glass=0)[..., 0] > 0
