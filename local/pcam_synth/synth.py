"""Synthetic PCam-format data in the drop layout, for demos, tests and benchmarks.

Patches look like H&E-stained lymph node: pink stroma with pale gaps, dense small dark lymphocyte
nuclei, per-patch stain variation. Tumour cells (large, irregular, paler-cored nuclei in clusters)
may appear anywhere; as in PCam, the label is 1 only when tumour cells lie in the centre 32x32
region, so the signal is learnable but not one colour per class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

EDGE = 96
CENTRE = slice(32, 64)
_YY, _XX = np.mgrid[0:EDGE, 0:EDGE].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] on the patch grid (bilinear upsampling of a coarse grid)."""
    coarse = rng.random((cells + 1, cells + 1), dtype=np.float32)
    position = np.linspace(0, cells, EDGE, dtype=np.float32)
    low = np.floor(position).astype(int).clip(0, cells - 1)
    frac = position - low
    rows = coarse[low] * (1 - frac)[:, None] + coarse[low + 1] * frac[:, None]
    return rows[:, low] * (1 - frac)[None, :] + rows[:, low + 1] * frac[None, :]


def _stamp_nuclei(
    image: np.ndarray,
    rng: np.random.Generator,
    centres: np.ndarray,
    radius: tuple[float, float],
    colour: np.ndarray,
    irregular: float,
    pale_core: float,
) -> None:
    for cy, cx in centres:
        ry, rx = rng.uniform(*radius, size=2)
        angle = rng.uniform(0, np.pi)
        half = int(max(ry, rx) * (1 + irregular)) + 2
        y0, y1 = max(0, int(cy) - half), min(EDGE, int(cy) + half + 1)
        x0, x1 = max(0, int(cx) - half), min(EDGE, int(cx) + half + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy, dx = _YY[y0:y1, x0:x1] - cy, _XX[y0:y1, x0:x1] - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        theta = np.arctan2(v, u)
        wobble = 1 + irregular * np.sin(3 * theta + rng.uniform(0, 6.3)) * rng.uniform(0.3, 1)
        r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2) / wobble
        alpha = np.clip(1.5 - r * 1.5, 0, 1)[..., None] * 0.9
        shade = colour * rng.uniform(0.85, 1.15)
        core = (1 - pale_core * np.clip(1 - r, 0, 1))[..., None]
        nucleus = shade[None, None, :] + (255 - shade[None, None, :]) * (1 - core) * 0.6
        patch = image[y0:y1, x0:x1]
        patch[:] = patch * (1 - alpha) + nucleus * alpha


def synth_patch(rng: np.random.Generator, tumour_in_centre: bool, border_tumour: bool | None = None) -> np.ndarray:
    """One 96x96 RGB patch; tumour cells in the centre region iff ``tumour_in_centre``. ``border_tumour``: tumour
    cells at the border only (label still 0); None draws it as in PCam (40 %)."""
    stain = rng.normal(0, 15, size=3).astype(np.float32)
    stroma = np.array([236, 170, 205], np.float32) + stain
    texture = _smooth_noise(rng, int(rng.integers(4, 9)))
    gaps = _smooth_noise(rng, 3) > rng.uniform(0.72, 0.95)
    image = stroma[None, None, :] * (0.88 + 0.2 * texture[..., None])
    image[gaps] = image[gaps] * 0.3 + np.array([245, 235, 242], np.float32) * 0.7
    lymphocyte = np.array([70, 40, 125], np.float32) + stain * 0.5
    density = rng.uniform(0.3, 1.0)
    lymphocytes = rng.uniform(0, EDGE, size=(int(rng.poisson(70 * density)), 2))
    _stamp_nuclei(image, rng, lymphocytes, (1.6, 2.8), lymphocyte, 0.05, 0.0)
    tumour_colour = np.array([125, 70, 150], np.float32) + stain * 0.5
    if rng.random() < 0.35:  # histiocytes: large pale benign nuclei anywhere, a confounder
        histiocytes = rng.uniform(8, 88, size=(int(rng.integers(1, 4)), 2))
        _stamp_nuclei(image, rng, histiocytes, (3.0, 5.5), tumour_colour + 25, 0.1, 0.6)
    if tumour_in_centre:
        cluster = rng.uniform(38, 58, size=2) + rng.normal(0, 8, size=(int(rng.integers(1, 7)), 2))
        _stamp_nuclei(image, rng, cluster.clip(32, 64), (3.0, 6.5), tumour_colour, 0.25, 0.45)
    if rng.random() < 0.4 if border_tumour is None else border_tumour:  # still label 0, as in PCam
        n = int(rng.integers(2, 6))
        band = rng.choice([rng.uniform(2, 18), rng.uniform(78, 94)])
        border = np.column_stack([band + rng.normal(0, 3, n), rng.uniform(0, EDGE, n)])
        _stamp_nuclei(image, rng, border, (3.5, 7.0), tumour_colour, 0.25, 0.5)
    image += rng.normal(0, 4, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def synth_split(count: int, rng: np.random.Generator, tumour_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    labels = (rng.random(count) < tumour_fraction).astype(np.uint8)
    patches = np.empty((count, EDGE, EDGE, 3), np.uint8)
    for index, label in enumerate(labels):
        patches[index] = synth_patch(rng, bool(label))
    return patches, labels


def synth_slide(rows: int, cols: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grid of patches with an elliptical tumour region; returns patches, (x, y) coords, truth."""
    cy, cx = rng.uniform(0.3, 0.7) * rows, rng.uniform(0.3, 0.7) * cols
    ry, rx = rng.uniform(0.15, 0.3) * rows + 1, rng.uniform(0.15, 0.3) * cols + 1
    grid_y, grid_x = np.mgrid[0:rows, 0:cols]
    inside = (((grid_y - cy) / ry) ** 2 + ((grid_x - cx) / rx) ** 2) <= 1
    truth = inside.reshape(-1).astype(np.uint8)
    coords = np.column_stack([grid_x.reshape(-1) * EDGE, grid_y.reshape(-1) * EDGE]).astype(np.int64)
    patches = np.empty((rows * cols, EDGE, EDGE, 3), np.uint8)
    for index, label in enumerate(truth):
        patches[index] = synth_patch(rng, bool(label))
    return patches, coords, truth


def write_patch_file(
    path: Path, x: np.ndarray, y: np.ndarray | None = None, coords: np.ndarray | None = None, chunked: bool = False
) -> None:
    """Write PCam's layout: x (N,96,96,3) uint8, y (N,1,1,1) uint8, optional coords (N,2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        if x is not None:
            handle.create_dataset(
                "x",
                data=x,
                chunks=(min(len(x), 32), EDGE, EDGE, 3) if chunked else None,
                compression="gzip" if chunked else None,
            )
        if y is not None:
            handle.create_dataset("y", data=y.reshape(-1, 1, 1, 1))
        if coords is not None:
            handle.create_dataset("coords", data=coords)


def synth_drop(
    out: Path,
    dataset: str = "synthetic",
    train: int = 2000,
    valid: int = 500,
    test: int = 500,
    slides: int = 2,
    slide_grid: tuple[int, int] = (12, 16),
    seed: int = 0,
    whole_slides: int = 0,
) -> list[Path]:
    """Write a drop folder: datasets/<dataset>/…_{train,valid,test}_{x,y}.h5, slides/<id>.h5 and (``whole_slides``)
    slides/wsi-<n>.tif."""
    rng = np.random.default_rng(seed)
    written = []
    for split, count in (("train", train), ("valid", valid), ("test", test)):
        if count <= 0:
            continue
        x, y = synth_split(count, rng)
        stem = out / "datasets" / dataset / f"camelyonpatch_level_2_split_{split}"
        write_patch_file(stem.with_name(f"{stem.name}_x.h5"), x)
        write_patch_file(stem.with_name(f"{stem.name}_y.h5"), None, y)
        written += [stem.with_name(f"{stem.name}_x.h5"), stem.with_name(f"{stem.name}_y.h5")]
    for number in range(slides):
        x, coords, _ = synth_slide(*slide_grid, rng)
        path = out / "slides" / f"slide-{number + 1:03d}.h5"
        write_patch_file(path, x, coords=coords)
        written.append(path)
    for number in range(whole_slides):
        path = out / "slides" / f"wsi-{number + 1:03d}.tif"
        synth_wsi(path, seed=seed + number)
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------- whole slides
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

    @property
    def cell_edge(self) -> float:
        """Level-0 pixels per patch edge."""
        return EDGE * self.cell_mpp / self.mpp

    def area_mm2(self, cells: np.ndarray) -> float:
        return float(cells.sum()) * (EDGE * self.cell_mpp / 1000) ** 2


def _jpeg_codec_for_tifffile(quality: int):
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


def synth_wsi_picture(
    rows: int = 24, cols: int = 32, mpp: float = 0.486, cell_mpp: float = 0.972, seed: int = 0
) -> tuple[np.ndarray, SlideTruth]:
    """H&E-like tissue on glass, a tumour region and a blue pen stroke, at the patches' resolution ``cell_mpp``
    (level 0 is this picture upsampled ``cell_mpp / mpp`` times, a whole number), with what it really holds."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    tissue, tumour = _slide_cells(rng, rows, cols)
    picture = (GLASS + rng.normal(0, 2, size=(rows * EDGE, cols * EDGE, 3))).clip(0, 255).astype(np.uint8)
    # Tumour cells at a normal patch's border occur only beside the tumour region, as on a real slide.
    beside_tumour = np.zeros_like(tumour)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        beside_tumour |= np.roll(tumour, (dy, dx), axis=(0, 1))
    for row, col in zip(*np.nonzero(tissue), strict=True):
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
    return np.asarray(canvas), SlideTruth(mpp=mpp, cell_mpp=cell_mpp, tissue=tissue, tumour=tumour, pen=box)


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
) -> SlideTruth:
    """Write a pyramidal, JPEG-tiled TIFF of `synth_wsi_picture` with tifffile.

    The tissue is a grid of synthetic PCam patches at ``cell_mpp`` (level 1 when ``mpp`` is half of it);
    level 0 is that picture upsampled. µm/px is written as TIFF resolution tags, or as Aperio's description
    (``aperio``, for .svs); ``says_mpp`` False writes resolution tags without a unit, as some exporters do."""
    import tifffile
    from PIL import Image

    picture, truth = synth_wsi_picture(rows, cols, mpp, cell_mpp, seed)
    scale = round(cell_mpp / mpp)
    _jpeg_codec_for_tifffile(quality)
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
