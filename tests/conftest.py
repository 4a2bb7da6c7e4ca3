from pathlib import Path

import numpy as np
import pytest

from pcam_local.synth import synth_split


@pytest.fixture(scope="session")
def sample_patches() -> tuple[np.ndarray, np.ndarray]:
    """40 synthetic H&E-like patches and their labels (deterministic)."""
    return synth_split(40, np.random.default_rng(7))


@pytest.fixture
def write_h5(tmp_path: Path):
    """Write an HDF5 file with the given datasets; returns its path."""

    def write(name: str = "f.h5", **datasets) -> Path:
        import h5py

        path = tmp_path / name
        with h5py.File(path, "w") as handle:
            for key, value in datasets.items():
                handle.create_dataset(key, data=value)
        return path

    return write
