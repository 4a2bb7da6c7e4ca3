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
    l2_regularization: float = 0.0
    max_leaf_nodes: int = 31
    early_stopping: bool = True
    seed: int = 0
    model: HistGradientBoostingClassifier | None = field(default=None, repr=False)

    @classmethod
    def from_hyperparameters(cls, hyperparameters: dict[str, str]) -> LocalImageClassifier:
        """Let the ResNet's hyperparameters steer the stand-in, so tuning trials differ as real ones do:
        the learning rate scales boosting's, weight decay becomes L2 regularisation, and the mini-batch
        size the tree size. The defaults (0.01, 0.0001, 128) give the stand-in's own defaults."""
        learning_rate = float(hyperparameters.get("learning_rate", 0.01))
        weight_decay = float(hyperparameters.get("weight_decay", 0.0))
        batch = int(float(hyperparameters.get("mini_batch_size", 128)))
        return cls(
            learning_rate=min(0.5, max(0.005, learning_rate * 10)),
            l2_regularization=weight_decay * 1000,
            max_leaf_nodes=min(63, max(7, batch // 4 - 1)),
        )

    def fit(self, patches: np.ndarray, labels: np.ndarray) -> LocalImageClassifier:
        self.model = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            l2_regularization=self.l2_regularization,
            max_leaf_nodes=self.max_leaf_nodes,
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
