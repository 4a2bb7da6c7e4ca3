import io

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from pcam_pipeline.ingestion.patches import encode_jpeg
from pcam_synth.synth import synth_split
from pcam_training.features import patch_features
from pcam_training.local_model import LocalImageClassifier


def _as_trainer_sees_them(patches: np.ndarray) -> np.ndarray:
    """Patches after the pipeline's JPEG conversion, as the trainer reads them."""
    return np.stack([np.asarray(Image.open(io.BytesIO(encode_jpeg(p, 90)))) for p in patches])


def test_features_are_finite_and_one_row_per_patch(sample_patches):
    features = patch_features(sample_patches[0])
    assert features.shape[0] == 40 and np.isfinite(features).all()


def test_local_model_separates_held_out_synthetic_tumour_patches():
    x, y = synth_split(3000, np.random.default_rng(21))
    x = _as_trainer_sees_them(x)
    model = LocalImageClassifier().fit(x[:2200], y[:2200])
    probabilities = model.predict_proba(x[2200:])
    assert probabilities.shape == (800, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert roc_auc_score(y[2200:], probabilities[:, 1]) >= 0.95


def test_a_saved_model_predicts_the_same_after_loading(sample_patches):
    x, y = sample_patches
    model = LocalImageClassifier(max_iter=20).fit(x, y)
    restored = LocalImageClassifier.loads(model.dumps())
    assert np.array_equal(restored.predict_proba(x), model.predict_proba(x))
