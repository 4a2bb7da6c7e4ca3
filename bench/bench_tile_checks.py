"""What quality control and stain normalisation cost per patch, as a ratio of conversion: a slide's shard
converted on the in-memory bucket (HDF5 read, QC, stain sample, JPEG encode; S3's PUT is left out, so the ratio
is the cautious one), and of the JPEG encode alone. Real H&E from eight images (tests/data/realtissue), cut into
96 x 96 patches at the model's 0.972 µm/px.

Run by `make bench`; writes bench-output/tile_checks.json.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pcam_pipeline.ingestion.patches import encode_jpeg
from pcam_pipeline.wsi import stain
from pcam_pipeline.wsi.tile_qc import measure_tile
from pcam_synth.real_tissue import HE_IMAGES, at_mpp, real_image

MODEL_MPP = 0.972
PATCHES = 2_000
ROUNDS = 3  # interleaved; the best of each, so that a noisy neighbour does not decide a ratio
PCAM_SHARD = 16_384  # PatchesPerShard's default


def real_patches() -> list[np.ndarray]:
    patches = []
    for name, mpp in HE_IMAGES.items():
        rgb = at_mpp(real_image(name), mpp, MODEL_MPP)
        for row in range(0, rgb.shape[0] - 95, 96):
            patches += [rgb[row : row + 96, col : col + 96] for col in range(0, rgb.shape[1] - 95, 96)]
    return [patches[i % len(patches)] for i in range(PATCHES)]


def seconds_per_patch(step: Callable[[np.ndarray], Any], patches: list[np.ndarray]) -> float:
    started = time.process_time()
    for patch in patches:
        step(patch)
    return (time.process_time() - started) / len(patches)


def conversion_seconds_per_patch(patches: list[np.ndarray], normalisation: str) -> float:
    """A slide's conversion on the fakes (tests/lab.py): every shard, as the conversion function runs it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests package
    from tests.lab import make_lab

    lab = make_lab(patches_per_shard=len(patches), stain_normalisation=normalisation)
    lab.ingestor.ingest(lab.drop("incoming/slides/bench.h5", x=np.stack(patches)))
    started = time.process_time()
    lab.convert_all()
    return (time.process_time() - started) / len(patches)


def main() -> int:
    patches = real_patches()
    steps: dict[str, Callable[[np.ndarray], Any]] = {
        "jpeg_encode": lambda patch: encode_jpeg(patch, 90),
        "tile_qc": measure_tile,
        "stain_sample": stain.patch_sample,
        "macenko_normalisation": lambda patch: stain.as_normalised(patch, "macenko"),
    }
    best = {name: float("inf") for name in [*steps, "conversion", "conversion_with_macenko"]}
    for _ in range(ROUNDS):
        for name, step in steps.items():
            best[name] = min(best[name], seconds_per_patch(step, patches))
        best["conversion"] = min(best["conversion"], conversion_seconds_per_patch(patches, "none"))
        with_macenko = conversion_seconds_per_patch(patches, "macenko")
        best["conversion_with_macenko"] = min(best["conversion_with_macenko"], with_macenko)
    jpeg, conversion = best["jpeg_encode"], best["conversion"]
    added_by_default = best["tile_qc"] + best["stain_sample"]
    result = {
        "patches": PATCHES,
        "distinct_patches": len({id(p) for p in patches}),
        "ms_per_patch": {name: 1000 * value for name, value in best.items()},
        "ratio_to_jpeg": {name: value / jpeg for name, value in best.items()},
        "ratio_to_conversion": {name: value / conversion for name, value in best.items()},
        "pcam_shard_seconds_added": {
            "qc_and_stain_sample": PCAM_SHARD * added_by_default,
            "macenko_normalisation": PCAM_SHARD * best["macenko_normalisation"],
        },
    }
    for name, value in best.items():
        print(f"{name}: {1000 * value:.3f} ms CPU per patch = {value / conversion:.2f} x conversion, "
              f"{value / jpeg:.2f} x the JPEG encode")  # fmt: skip
    print(f"a 16,384-patch shard: +{PCAM_SHARD * added_by_default:.0f} s CPU for QC and stain sampling, "
          f"+{PCAM_SHARD * best['macenko_normalisation']:.0f} s with macenko normalisation")  # fmt: skip
    Path("bench-output").mkdir(exist_ok=True)
    Path("bench-output/tile_checks.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
