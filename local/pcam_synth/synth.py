"""Synthetic PCam-format data in the drop layout, for demos, tests and benchmarks.

Patches look like H&E-stained lymph node: pink stroma with pale gaps, dense small dark lymphocyte
nuclei, per-patch stain variation. Tumour cells (large, irregular, paler-cored nuclei in clusters)
may appear anywhere; as in PCam, the label is 1 only when tumour cells lie in the centre 32x32
region, so the signal is learnable but not one colour per class.
"""

from __future__ import annotations

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
