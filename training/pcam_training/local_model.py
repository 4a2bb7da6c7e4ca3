"""The local CPU stand-in for SageMaker's image classifier: gradient boosting on image features."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from pcam_training.features import patch_features


@dataclass
class LocalImageClassifier:
    """Fits on (N, 96, 96, 3) uint8 patches and 0/1 labels; predicts [p0, p1] like the built-in model."""

    max_iter: int = 200
    learning_rate: float = 0.1
    early_stopping: bool = True
    seed: int = 0
    model: HistGradientBoostingClassifier | None = field(default=None, repr=False)

    def fit(self, patches: np.ndarray, labels: np.ndarray) -> LocalImageClassifier:
        self.model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            early_stopping=self.early_stopping,
            random_state=self.seed,
        )
        self.model.fit(patch_features(patches), labels)
        return self

    def predict_proba(self, patches: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(patch_features(patches))

    def dumps(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def loads(data: bytes) -> LocalImageClassifier:
        return pickle.loads(data)  # noqa: S301 - our own model artefact, written by our own trainer
