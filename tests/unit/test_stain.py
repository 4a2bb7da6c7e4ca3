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


def patches_of(rgb: np.ndarray, edge: int = 96) -> list[np.ndarray]:
    rows, columns = rgb.shape[0] // edge, rgb.shape[1] // edge
    return [rgb[r * edge : (r + 1) * edge, c * edge : (c + 1) * edge] for r in range(rows) for c in range(columns)]


def shard_samples_of(name: str, shards: int = 2) -> list[np.ndarray]:
    """What conversion keeps of a real image cut into 96-pixel patches, as ``shards`` shards."""
    samples = [stain.patch_sample(patch) for patch in patches_of(real_image(name))]
    return [stain.shard_sample(list(part)) for part in np.array_split(np.array(samples, dtype=object), shards)]


def test_a_shard_keeps_a_bounded_float16_sample_of_its_patches_stain():
    patch = real_image("torchstain-source.png")[:96, :96]
    assert stain.patch_sample(patch).shape == (stain.SAMPLE_PER_PATCH, 3)
    kept = stain.shard_sample([stain.patch_sample(patch)] * 2000)
    assert kept.dtype == np.float16 and len(kept) <= stain.SHARD_SAMPLE_PIXELS


def test_a_slide_from_another_lab_lies_outside_the_training_stain_and_one_from_the_same_lab_within():
    training = stain.training_reference(shard_samples_of("tiatoolbox-TCGA-HE-7130.png"), "none")
    assert training["range_degrees"] >= stain.TOLERANCE_DEGREES
    same = stain.slide_stain(shard_samples_of("tiatoolbox-TCGA-HE-7130.png", 3), training, "none")
    other = stain.slide_stain(shard_samples_of("torchstain-source.png"), training, "none")
    assert same["estimated"] and same["outside_training_range"] is False and same["mismatch"] is None
    assert other["outside_training_range"] is True and other["distance_degrees"] > training["range_degrees"]


def test_a_slide_converted_otherwise_than_its_models_training_patches_says_so():
    training = stain.training_reference(shard_samples_of("tiatoolbox-kather1.tif"), "macenko")
    found = stain.slide_stain(shard_samples_of("tiatoolbox-kather1.tif"), training, "none")
    assert "StainNormalisation none" in found["mismatch"] and "macenko" in found["mismatch"]
    assert training["stain"] is None  # four patches: too little for an estimate; its normalisation still counts
    unknown = stain.slide_stain([], None, "none")
    assert unknown["estimated"] is False and unknown["reason"] and unknown["distance_degrees"] is None


def test_normalisation_is_one_function_that_leaves_patches_alone_unless_asked():
    patch = real_image("torchstain-source.png")[:96, :96]
    assert stain.as_normalised(patch, "none") is patch
    glass = np.full((96, 96, 3), 245, np.uint8)
    assert stain.as_normalised(glass, "macenko") is glass  # too little stain for an estimate
    normalised = [stain.as_normalised(p, "macenko") for p in patches_of(real_image("torchstain-source.png"))]
    before = estimated(real_image("torchstain-source.png"))
    after = estimated(np.concatenate(normalised, axis=0))
    assert max(stain.angles_degrees(after, stain.REFERENCE)) < max(stain.angles_degrees(before, stain.REFERENCE)) / 2
