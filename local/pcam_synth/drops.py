"""A whole synthetic drop in the incoming/ layout: a dataset's splits, HDF5 slides and whole-slide images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pcam_synth.synth import synth_slide, synth_split, write_patch_file
from pcam_synth.whole_slides import synth_wsi


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
