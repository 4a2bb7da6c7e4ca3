from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from pcam_synth.synth import synth_split

pytest_plugins = ["tests.lab"]  # the "lab" fixture: ingestion and conversion on the fakes


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """pytest-randomly shuffles modules and tests; a module marked ``scenario`` keeps its steps in order.

    Registered after pytest-randomly, this wrapper sees the written order before the shuffle."""
    written = {item.nodeid: index for index, item in enumerate(items)}
    result = yield
    positions = defaultdict(list)
    for position, item in enumerate(items):
        if item.get_closest_marker("scenario"):
            positions[item.path].append(position)
    for module_positions in positions.values():
        steps = sorted((items[p] for p in module_positions), key=lambda item: written[item.nodeid])
        for position, step in zip(module_positions, steps, strict=True):
            items[position] = step
    return result


@pytest.fixture(autouse=True)
def no_metrics_left_over():
    """Powertools' Metrics is one object per process that flushes itself at 100 metrics, and a flush outside
    a handler has no namespace and raises: without this, whichever test adds the 100th metric fails."""
    from pcam_pipeline.aws.observability import metrics

    yield
    metrics.clear_metrics()


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


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory):
    """A small synthetic whole-slide image (12 x 16 patches, level 0 at 0.486 µm/px) and what it holds."""
    from pcam_synth.whole_slides import synth_wsi

    path = tmp_path_factory.mktemp("wsi") / "s.tif"
    truth = synth_wsi(path, rows=12, cols=16, seed=11)
    return path, truth
