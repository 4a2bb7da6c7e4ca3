"""The benchmark's large whole-slide image: a BigTIFF pyramid of JPEG tiles, level 0 at 0.243 µm/px (as
Camelyon16), an ellipse of tissue tiles on glass sized to a target number of bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pcam_synth.synth import synth_patch
from pcam_synth.whole_slides import GLASS, jpeg_codec_for_tifffile

LEVEL0_MPP = 0.243
TILE = 256


def _tile_pool(rng: np.random.Generator, count: int) -> list[bytes]:
    """Tissue tiles (synthetic H&E patches upsampled to level 0) encoded once, written many times."""
    from PIL import Image

    pool = []
    for _ in range(count):
        patches = [synth_patch(rng, bool(rng.random() < 0.3)) for _ in range(4)]
        mosaic = np.vstack([np.hstack(patches[:2]), np.hstack(patches[2:])])  # 192 px at 0.972 µm/px
        tile = Image.fromarray(mosaic).resize((TILE, TILE), Image.Resampling.BICUBIC)
        out = io.BytesIO()
        tile.save(out, format="JPEG", quality=90)
        pool.append(out.getvalue())
    return pool


def write_bench_slide(path: Path, target_bytes: float) -> dict:
    """A pyramid whose level 0 is an ellipse of tissue tiles on glass, sized to about ``target_bytes``."""
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(0)
    pool = _tile_pool(rng, 48)
    glass = io.BytesIO()
    Image.fromarray((GLASS + rng.normal(0, 2, (TILE, TILE, 3))).clip(0, 255).astype(np.uint8)).save(
        glass, format="JPEG", quality=90
    )
    tissue_share = np.pi / 4 * 0.8
    mean = np.mean([len(t) for t in pool]) * tissue_share + len(glass.getvalue()) * (1 - tissue_share)
    # Tiles per side of level 0 (the pyramid adds a third), a multiple of 64 so that every level halves exactly.
    side = max(64, round(np.sqrt(target_bytes / 1.33 / mean) / 64) * 64)
    jpeg_codec_for_tifffile(90)

    def tissue_at(fx: float, fy: float) -> bool:
        return ((fx - 0.5) / 0.5) ** 2 + ((fy - 0.5) / 0.4) ** 2 <= 1

    def tiles(count: int):
        for row in range(count):
            for col in range(count):
                inside = tissue_at((col + 0.5) / count, (row + 0.5) / count)
                yield pool[rng.integers(len(pool))] if inside else glass.getvalue()

    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        downsample = 1
        while True:
            count = max(1, side // downsample)
            mpp = LEVEL0_MPP * downsample
            options = {"tile": (TILE, TILE), "compression": "jpeg", "photometric": "rgb", "metadata": None}
            writer.write(tiles(count), shape=(count * TILE, count * TILE, 3), dtype=np.uint8,
                         resolution=(1e4 / mpp, 1e4 / mpp), resolutionunit="CENTIMETER",
                         subfiletype=0 if downsample == 1 else 1, **options)  # fmt: skip
            if count * TILE <= 1024:
                break
            downsample *= 2
    return {"level0_pixels": side * TILE, "file_bytes": path.stat().st_size}
