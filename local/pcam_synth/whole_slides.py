"""Synthetic whole-slide images: pyramidal tiled TIFFs (JPEG, YCbCr 4:2:0, as scanners write them) of tissue
with tumour regions whose truth is known (``SlideTruth``), for demos, tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcam_synth.synth import EDGE, synth_patch

GLASS = np.array([242, 241, 244], np.float32)
BLUE_INK = (35, 70, 185)
TILE = 256


@dataclass(frozen=True)
class SlideTruth:
    """What a synthetic whole-slide image really holds, on its grid of patches at the model's resolution."""

    mpp: float  # level 0
    cell_mpp: float  # the patches' resolution (the model's)
    tissue: np.ndarray  # (rows, cols) bool: a tissue patch
    tumour: np.ndarray  # (rows, cols) bool: a tumour patch (inside tissue)
    pen: tuple[int, int, int, int]  # level-0 box (x0, y0, x1, y1) around the pen stroke
    lesions_mm: tuple[float, ...] = ()  # placed lesions' true diameters (``lesion_cells``), largest first

    @property
    def cell_edge(self) -> float:
        """Level-0 pixels per patch edge."""
        return EDGE * self.cell_mpp / self.mpp

    def area_mm2(self, cells: np.ndarray) -> float:
        return float(cells.sum()) * (EDGE * self.cell_mpp / 1000) ** 2


def jpeg_codec_for_tifffile(quality: int):
    """tifffile encodes JPEG tiles with imagecodecs, which the project does not install: Pillow does it here."""
    import io

    import tifffile
    from PIL import Image

    def encode(data, level=None, outcolorspace="YCBCR", subsampling=(2, 2), **_):
        # outcolorspace RGB: RGB components (Aperio's "JPEG/RGB"); else YCbCr at the TIFF's subsampling.
        if str(outcolorspace).upper() == "RGB":
            options = {"keep_rgb": True, "subsampling": 0}
        else:
            options = {"subsampling": {(1, 1): 0, (2, 1): 1, (2, 2): 2}[tuple(subsampling)]}
        out = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(data).reshape(data.shape[-3:])).save(
            out, format="JPEG", quality=level or quality, **options
        )
        return out.getvalue()

    tifffile.TIFF.COMPRESSORS._codecs[7] = encode


def _slide_cells(rng: np.random.Generator, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """An irregular blob of tissue with an elliptical tumour region inside, leaving glass around it."""
    grid_y, grid_x = np.mgrid[0:rows, 0:cols].astype(np.float32) + 0.5
    cy, cx = rows * 0.5, cols * 0.45
    angle = np.arctan2(grid_y - cy, grid_x - cx)
    wobble = 1 + 0.12 * np.sin(3 * angle + rng.uniform(0, 6.3)) + 0.06 * np.sin(5 * angle + rng.uniform(0, 6.3))
    radius = np.hypot((grid_y - cy) / (rows * 0.36), (grid_x - cx) / (cols * 0.3))
    tissue = radius <= wobble
    ty, tx = cy + rng.uniform(-0.08, 0.08) * rows, cx + rng.uniform(-0.05, 0.05) * cols
    tumour = tissue & (np.hypot((grid_y - ty) / (rows * 0.24), (grid_x - tx) / (cols * 0.17)) <= 1)
    return tissue, tumour


def lesion_cells(
    rows: int, cols: int, lesions_mm: tuple[float, ...], cell_mm: float, offset: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tissue over most of the slide (the right sixth left as glass, for the pen mark) and round lesions of the
    given diameters, the largest in the tissue's middle and the others spread along its diagonals: each on a
    patch's centre, moved by ``offset`` (rows, columns; in patches).

    A patch is tumour (label 1, as PCam labels) when a lesion reaches its centre 32 x 32 region; beside one
    (the lesion reaches the patch but not its centre) it holds tumour cells at its border only. Returns
    tissue, tumour and border (rows, cols) masks."""
    grid_y, grid_x = np.mgrid[0:rows, 0:cols].astype(np.float32) + 0.5
    tissue = np.hypot((grid_y - rows / 2) / (rows * 0.48), (grid_x - cols * 0.41) / (cols * 0.39)) <= 1
    tumour, touched = np.zeros_like(tissue), np.zeros_like(tissue)
    places = [(0.5, 0.41), (0.3, 0.25), (0.7, 0.57), (0.3, 0.57), (0.7, 0.25)]
    for diameter, (fy, fx) in zip(sorted(lesions_mm, reverse=True), places, strict=False):
        radius = diameter / 2 / cell_mm  # in patches
        cy, cx = round(rows * fy) + 0.5 + offset[0], round(cols * fx) + 0.5 + offset[1]  # a patch's centre (+ offset)
        # Distance from the lesion's centre to a patch's centre square (half side 1/6 patch) and to the patch.
        dy, dx = np.abs(grid_y - cy), np.abs(grid_x - cx)
        to_centre = np.hypot(np.maximum(dy - 1 / 6, 0), np.maximum(dx - 1 / 6, 0))
        to_patch = np.hypot(np.maximum(dy - 0.5, 0), np.maximum(dx - 0.5, 0))
        tumour |= tissue & (to_centre <= radius)
        touched |= tissue & (to_patch <= radius)
    return tissue, tumour, touched & ~tumour


def synth_wsi_picture(
    rows: int = 24,
    cols: int = 32,
    mpp: float = 0.486,
    cell_mpp: float = 0.972,
    seed: int = 0,
    lesions_mm: tuple[float, ...] | None = None,
    lesion_offset: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, SlideTruth]:
    """H&E-like tissue on glass, a tumour region and a blue pen stroke, at the patches' resolution ``cell_mpp``
    (level 0 is this picture upsampled ``cell_mpp / mpp`` times, a whole number), with what it really holds.
    ``lesions_mm`` places round lesions of those diameters instead (none: a tumour-free slide)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    if lesions_mm is None:
        tissue, tumour = _slide_cells(rng, rows, cols)
        touched = None
    else:
        tissue, tumour, touched = lesion_cells(rows, cols, lesions_mm, EDGE * cell_mpp / 1000, lesion_offset)
    picture = (GLASS + rng.normal(0, 2, size=(rows * EDGE, cols * EDGE, 3))).clip(0, 255).astype(np.uint8)
    # Tumour cells at a normal patch's border occur only beside the tumour region, as on a real slide.
    beside_tumour = np.zeros_like(tumour)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        beside_tumour |= np.roll(tumour, (dy, dx), axis=(0, 1))
    for row, col in zip(*np.nonzero(tissue), strict=True):
        if touched is not None:
            border: bool | None = bool(touched[row, col])
        else:
            border = None if beside_tumour[row, col] else False
        patch = synth_patch(rng, bool(tumour[row, col]), border)
        picture[row * EDGE : (row + 1) * EDGE, col * EDGE : (col + 1) * EDGE] = patch
    # A pen stroke on the glass beside the tissue, as pathologists circle or mark slides.
    scale = cell_mpp / mpp
    if scale < 1 or scale != int(scale):
        raise ValueError("level 0 must be the patch picture upsampled a whole number of times")
    pen_box = (int(cols * 0.82 * EDGE), int(rows * 0.2 * EDGE), int(cols * 0.95 * EDGE), int(rows * 0.8 * EDGE))
    canvas = Image.fromarray(picture)
    ImageDraw.Draw(canvas).arc(pen_box, 100, 260, fill=BLUE_INK, width=EDGE)  # ~0.1 mm: a fine marker
    box = tuple(round(v * scale) for v in pen_box)
    placed = tuple(sorted(lesions_mm or (), reverse=True))
    truth = SlideTruth(mpp=mpp, cell_mpp=cell_mpp, tissue=tissue, tumour=tumour, pen=box, lesions_mm=placed)
    return np.asarray(canvas), truth


def synth_wsi(
    path: Path,
    rows: int = 24,
    cols: int = 32,
    mpp: float = 0.486,
    cell_mpp: float = 0.972,
    seed: int = 0,
    aperio: bool = False,
    quality: int = 85,
    says_mpp: bool = True,
    lesions_mm: tuple[float, ...] | None = None,
) -> SlideTruth:
    """Write a pyramidal, JPEG-tiled TIFF of `synth_wsi_picture` with tifffile.

    The tissue is a grid of synthetic PCam patches at ``cell_mpp`` (level 1 when ``mpp`` is half of it);
    level 0 is that picture upsampled. µm/px is written as TIFF resolution tags, or as Aperio's description
    (``aperio``, for .svs); ``says_mpp`` False writes resolution tags without a unit, as some exporters do."""
    import tifffile
    from PIL import Image

    picture, truth = synth_wsi_picture(rows, cols, mpp, cell_mpp, seed, lesions_mm)
    scale = round(cell_mpp / mpp)
    jpeg_codec_for_tifffile(quality)
    width, height = round(cols * EDGE * scale), round(rows * EDGE * scale)

    def level0_tiles():
        for y in range(0, height, TILE):
            for x in range(0, width, TILE):
                ys = (np.arange(y, y + TILE) / scale).astype(int).clip(0, picture.shape[0] - 1)
                xs = (np.arange(x, x + TILE) / scale).astype(int).clip(0, picture.shape[1] - 1)
                yield picture[ys][:, xs]

    def resolution(downsample: float) -> dict:
        unit = "CENTIMETER" if says_mpp and not aperio else "NONE"
        return {"resolution": (1e4 / (mpp * downsample),) * 2, "resolutionunit": unit}

    description = (
        f"Aperio Image Library vSynthetic\r\n{width}x{height} [0,0 {width}x{height}] (256x256) JPEG/RGB Q={quality}"
        f"|AppMag = {round(10 * 0.972 / mpp)}|MPP = {mpp}"
        if aperio and says_mpp
        else None
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        options = dict(tile=(TILE, TILE), compression="jpeg", photometric="rgb", metadata=None)
        writer.write(level0_tiles(), shape=(height, width, 3), dtype=np.uint8, description=description,
                     **options, **resolution(1))  # fmt: skip
        # Level 1 is the patch picture itself (when level 0 upsamples it), then halves down to a thumbnail.
        level, downsample = Image.fromarray(picture), scale
        if scale == 1:
            level, downsample = level.reduce(2), 2.0
        while True:
            writer.write(np.asarray(level), subfiletype=1, **options, **resolution(downsample))
            if max(level.size) <= 512:
                break
            level, downsample = level.reduce(2), downsample * 2
    return truth
