"""The local stand-in for SageMaker's image classifier: fit time on 20,000 patches and held-out AUC.

Run by `make bench`; patches go through the pipeline's JPEG conversion first, as the trainer sees them.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from pcam_pipeline.ingestion.patches import encode_jpeg
from pcam_synth.synth import synth_split
from pcam_training.local_model import LocalImageClassifier

TRAIN, HELD_OUT = 20_000, 5_000


def main() -> int:
    started = time.monotonic()
    x, y = synth_split(TRAIN + HELD_OUT, np.random.default_rng(2026))
    x = np.stack([np.asarray(Image.open(io.BytesIO(encode_jpeg(p, 90)))) for p in x])
    prepared = time.monotonic() - started
    started = time.monotonic()
    model = LocalImageClassifier().fit(x[:TRAIN], y[:TRAIN])
    fit_seconds = time.monotonic() - started
    probabilities = model.predict_proba(x[TRAIN:])[:, 1]
    result = {
        "train_patches": TRAIN,
        "held_out_patches": HELD_OUT,
        "fit_seconds": fit_seconds,
        "held_out_auc": float(roc_auc_score(y[TRAIN:], probabilities)),
        "held_out_accuracy": float(((probabilities >= 0.5) == y[TRAIN:]).mean()),
        "synth_and_jpeg_seconds": prepared,
    }
    print(
        f"local model: fit on {TRAIN:,} patches in {fit_seconds:.1f} s (target < 60 s); held-out AUC "
        f"{result['held_out_auc']:.4f} (target >= 0.95), accuracy {result['held_out_accuracy']:.4f}"
    )
    Path("bench-output").mkdir(exist_ok=True)
    Path("bench-output/local_model.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
