"""Stain vectors and Macenko normalisation on real H&E from several labs (tests/data/realtissue, licences there)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from local.pcam_synth.real_tissue import real_image
from pcam_pipeline.wsi import stain

# Images from different sources and scanners; red pen and the no-tissue picture tell nothing about stain.
SOURCES = ["henorm-example1.png", "tiatoolbox-TCGA-HE-7130.png", "torchstain-source.png", "tiatoolbox-kather1.tif"]


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004: Gaussian window σ 1.5, K1 0.01, K2 0.03), data range 1."""
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = gaussian_filter(first, 1.5), gaussian_filter(second, 1.5)
    var_x = gaussian_filter(first * first, 1.5) - mu_x**2
    var_y = gaussian_filter(second * second, 1.5) - mu_y**2
    cov = gaussian_filter(first * second, 1.5) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())


def haematoxylin_channel(rgb: np.ndarray, estimate: stain.Stain) -> np.ndarray:
    """The haematoxylin concentration, scaled to [0, 1] by its 99th percentile: the nuclei as the stain shows them."""
    h = np.clip(stain.concentrations(rgb, estimate)[..., 0], 0, None)
    return np.clip(h / np.percentile(h, 99), 0, 1)


def estimated(rgb: np.ndarray) -> stain.Stain:
    found = stain.estimate_stain(stain.stained_od(rgb))
    assert found is not None
    return found


@pytest.mark.parametrize("name", SOURCES)
def test_each_labs_stain_is_estimated_as_haematoxylin_and_eosin(name):
    found = estimated(real_image(name))
    # Haematoxylin absorbs red most of the two (blue-purple nuclei); eosin absorbs green most (pink cytoplasm).
    assert found.haematoxylin[0] > found.eosin[0]
    assert np.argmax(found.eosin) == 1
    assert all(value > 0 for value in found.max_concentrations)


def test_stain_vectors_of_different_sources_are_reported_and_differ():
    angles = {name: stain.angles_degrees(estimated(real_image(name)), stain.REFERENCE) for name in SOURCES}
    assert max(h for h, _ in angles.values()) - min(h for h, _ in angles.values()) > 3
    assert max(h + e for h, e in angles.values()) > 10  # at least one lab is far from the reference


@pytest.mark.parametrize("name", SOURCES)
def test_macenko_brings_every_source_within_five_degrees_of_the_reference_and_keeps_its_nuclei(name):
    rgb = real_image(name)
    source = estimated(rgb)
    normalised = stain.normalise(rgb, source)
    after = estimated(normalised)
    assert max(stain.angles_degrees(after, stain.REFERENCE)) <= 5
    assert ssim(haematoxylin_channel(rgb, source), haematoxylin_channel(normalised, after)) >= 0.9


def test_glass_stays_glass_and_a_blank_picture_has_no_stain():
    rgb = real_image("torchstain-source.png").copy()
    rgb[:20] = 255
    normalised = stain.normalise(rgb, estimated(rgb))
    assert (normalised[:20] >= 254).all()
    assert stain.estimate_stain(stain.stained_od(np.full((64, 64, 3), 240, np.uint8))) is None


def test_a_stain_survives_its_json_form():
    found = estimated(real_image("tiatoolbox-target.png"))
    again = stain.Stain.from_json(found.to_json())
    assert max(stain.angles_degrees(again, found)) < 0.01
