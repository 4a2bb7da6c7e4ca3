"""A whole synthetic drop in the incoming/ layout: a dataset's splits, HDF5 slides and whole-slide images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pcam_synth.synth import EDGE, synth_slide, synth_split, write_patch_file
from pcam_synth.whole_slides import synth_wsi

MODEL_MPP = 0.972  # lesion slides are written at the model's µm/px: their tiles are their patches


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
    lesions_mm: tuple[float, ...] = (),
) -> list[Path]:
    """Write a drop folder: datasets/<dataset>/…_{train,valid,test}_{x,y}.h5, slides/<id>.h5, (``whole_slides``)
    slides/wsi-<n>.tif, and for each of ``lesions_mm`` a whole-slide image with one lesion of that diameter
    (slides/lesion-<mm>mm.tif; 0: slides/no-lesion.tif, tumour-free)."""
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
    for diameter in lesions_mm:
        path = out / "slides" / (f"lesion-{diameter:g}mm.tif" if diameter > 0 else "no-lesion.tif")
        rows = max(30, math.ceil(diameter / (EDGE * MODEL_MPP / 1000) / 0.9) + 6)  # the lesion fits in the tissue
        lesions = (diameter,) if diameter > 0 else ()
        synth_wsi(path, rows, round(rows * 1.2), MODEL_MPP, MODEL_MPP, seed + 7, lesions_mm=lesions)
        written.append(path)
    return written
