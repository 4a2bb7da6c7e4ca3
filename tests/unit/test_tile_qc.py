"""Quality control of tiles on real tissue (tests/data/realtissue/README.md): a blurred half is flagged `blur`
and the sharp half is not; folds, pen, bubbles and dark tiles are flagged; a failing slide is indeterminate."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pcam_pipeline.wsi.brightfield import STAINED_OD, optical_density
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.tile_qc import QC_CLASSES, classify_tiles, measure_tile, qc_in_words, qc_names, qc_summary
from pcam_pipeline.wsi.tiling import TilingSettings, plan_tiles, read_patch
from pcam_synth.real_tissue import at_mpp, half_blurred_mosaic, real_image, svs_level0, write_pyramid
from tests.wsi_files import DEFAULT_SLIDE_LIMITS

MPP = 0.486  # the test slides' level 0: the model reads them at 2x


@pytest.fixture(scope="module")
def half_blurred(tmp_path_factory):
    """Tiles cut as conversion cuts them from a pyramidal TIFF of the real H&E images, the right half of each
    blurred with σ 2 px at 0.972 µm/px; each tile's QC class and the share of it that is blurred."""
    picture, blurred = half_blurred_mosaic(MPP)
    path = write_pyramid(picture, tmp_path_factory.mktemp("qc") / "half-blurred.tif", MPP)
    with open(path, "rb") as f, WholeSlide(f, path.stat().st_size, DEFAULT_SLIDE_LIMITS) as slide:
        plan, _ = plan_tiles(slide, MPP, "test", TilingSettings())
        measures = np.array([measure_tile(read_patch(slide, plan, x, y)) for x, y in plan.coords])
    edge = round(plan.tile_edge)
    share = np.array([blurred[y : y + edge, x : x + edge].mean() for x, y in plan.coords])
    return classify_tiles(measures), share


def test_at_least_90_percent_of_blurred_tissue_tiles_are_flagged_blur_and_at_most_5_percent_of_sharp_ones(
    half_blurred,
):
    classes, share = half_blurred
    blur = QC_CLASSES.index("blur")
    in_blurred, in_sharp = classes[share == 1], classes[share == 0]
    assert len(in_blurred) >= 150 and len(in_sharp) >= 150, "enough real tissue on each side to measure"
    assert (in_blurred == blur).mean() >= 0.9
    assert (in_sharp == blur).mean() <= 0.05
    assert (in_sharp == 0).mean() >= 0.9, "the sharp half is mostly ok: no other check fires on real H&E"


def _tiles(rgb: np.ndarray) -> list[np.ndarray]:
    return [
        rgb[y : y + 96, x : x + 96] for y in range(0, rgb.shape[0] - 95, 96) for x in range(0, rgb.shape[1] - 95, 96)
    ]


@pytest.fixture(scope="module")
def real_at_model():
    """A 1,000-pixel square of the real Aperio slide's tissue at 0.972 µm/px."""
    return at_mpp(svs_level0()[1500:3500, 1500:3500], 0.5, 0.972)


def _stained(tile: np.ndarray) -> float:
    return float((optical_density(tile).sum(axis=-1) > STAINED_OD).mean())


def test_a_fold_doubles_the_optical_density_and_is_flagged_fold(real_at_model):
    """Beer-Lambert: tissue lying on itself transmits the product of both layers' light."""
    rgb = real_at_model
    under, over = rgb[:192], np.flipud(rgb[192:384])  # the second band of tissue folded back over the first
    folded = np.concatenate([(under.astype(float) * over / 255).astype(np.uint8), rgb[192:]])
    measures = np.array([measure_tile(tile) for tile in _tiles(folded)])
    layers = zip(_tiles(under), _tiles(over), strict=True)
    two_layers = np.array([min(_stained(a), _stained(b)) >= 0.6 for a, b in layers])
    classes = classify_tiles(measures)
    band = classes[: len(two_layers)][two_layers]
    assert len(band) >= 10 and (band == QC_CLASSES.index("fold")).mean() >= 0.8
    assert (classes[len(two_layers) :] == 0).mean() >= 0.95


def test_pen_bubbles_and_dark_tiles_are_flagged_and_the_first_failing_check_wins(real_at_model):
    tile = real_at_model[96:192, 96:192]
    pen = Image.fromarray(tile.copy())
    ImageDraw.Draw(pen).line([(0, 30), (96, 50)], fill=(30, 60, 170), width=14)  # blue marker
    bubble = Image.fromarray(tile.copy())
    ImageDraw.Draw(bubble).ellipse([-20, 10, 70, 100], outline=(120, 120, 120), width=3)  # an air bubble's rim
    dark = (tile * 0.1).astype(np.uint8)
    measures = [measure_tile(t) for t in (tile, np.asarray(pen), np.asarray(bubble), dark)]
    assert qc_names(classify_tiles(np.array(measures)), 4) == ["ok", "pen", "bubble", "dark"]
    blurred_pen = np.asarray(pen.resize((24, 24)).resize((96, 96), Image.Resampling.BILINEAR))
    assert qc_names(classify_tiles(np.array([*measures, measure_tile(blurred_pen)])), 5)[-1] == "blur"


def test_real_he_images_from_other_labs_pass_at_the_model_resolution():
    for name, mpp in (("tiatoolbox-TCGA-HE-7130.png", 0.5), ("histolab-high-nuclei-level0.png", 0.5)):
        classes = classify_tiles(np.array([measure_tile(t) for t in _tiles(at_mpp(real_image(name), mpp, 0.972))]))
        assert (classes == 0).mean() >= 0.9, name


def test_the_slide_summary_gives_each_checks_share_and_a_status_against_max_qc_fail_fraction():
    classes = np.array([0] * 70 + [1] * 20 + [2] * 10)
    summary = qc_summary(classes, 0.25)
    assert summary["status"] == "fail" and summary["failing_fraction"] == 0.3
    assert summary["fractions"] == {"blur": 0.2, "fold": 0.1, "pen": 0.0, "bubble": 0.0, "dark": 0.0}
    assert qc_in_words(summary) == "blur 20%, fold 10%"
    assert qc_summary(classes, 0.5)["status"] == "warn"
    assert qc_summary(np.zeros(100, int), 0.25)["status"] == "pass"
    assert qc_summary(None, 0.25)["status"] == "unchecked" and qc_names(None, 2) == ["unchecked", "unchecked"]
