"""Whole-slide images through the local stack: a lab drops a scanner's pyramidal TIFF (or SVS) and gets tumour
maps on tissue only, at the model's resolution, in level-0 coordinates, with a QuPath GeoJSON and an overlay.

A stack of its own: the model is trained here on a small synthetic dataset.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import shapely
from PIL import Image
from sklearn.metrics import roc_auc_score

from pcam_synth.real_tissue import IHC_IMAGE, REAL_NDPI, REALTISSUE, half_blurred_mosaic, real_image, write_pyramid
from pcam_synth.synth import synth_split
from pcam_synth.whole_slides import synth_wsi
from tests.event_contracts import contract_violations
from tests.integration.conftest import INTEGRATION
from tests.picture_text import text_positions

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order

HEADER = ["slide_id", "patch_index", "coord_x", "coord_y", "tumor_probability", "label", "raw_score", "qc"]


def assert_quality_control_keeps_blurred_tissue_out_of_the_verdict(stack, pipeline, blurred) -> None:
    """Real H&E from several labs, the right half of each image blurred (σ 2 px at 0.972 µm/px): its tiles are
    flagged `blur` in the CSV and the GeoJSON, and with half the tissue failing the slide is indeterminate."""
    rows = read_csv(stack, "real-half-blurred")
    corners = [(int(r["coord_x"]), int(r["coord_y"])) for r in rows]
    share = np.array([blurred[y : y + 192, x : x + 192].mean() for x, y in corners])  # 192: a tile at 0.486 µm/px
    checks = np.array([r["qc"] for r in rows])
    assert (checks[share == 1] == "blur").mean() >= 0.9 and (checks[share == 0] == "blur").mean() <= 0.05
    summary = pipeline.json("predictions/real-half-blurred.json")
    assert summary["qc"]["status"] == "fail" and summary["qc"]["fractions"]["blur"] > 0.25
    verdict = summary["verdict"]
    assert verdict["category"] == "indeterminate"
    assert any("failed quality control (MaxQcFailFraction 25%): blur" in reason for reason in verdict["reasons"])
    # Real H&E from other labs against a model trained on synthetic patches: its stain is flagged, and said.
    stain = summary["stain"]
    assert stain["estimated"] and stain["normalisation"] == stain["model_normalisation"] == "none"
    assert stain["outside_training_range"] and stain["distance_degrees"] > stain["training_range_degrees"] >= 5
    assert (
        "from the model&#x27;s training stain, outside the" in stack.read("predictions/real-half-blurred.html").decode()
    )
    geojson = json.loads(stack.read("predictions/real-half-blurred.geojson"))
    assert_qupath_geojson(geojson, rows, summary["slide_width"], summary["slide_height"])
    lesions = [
        shapely.geometry.shape(f["geometry"])
        for f in geojson["features"]
        if f["properties"]["objectType"] == "annotation"
    ]
    failing = [shapely.Point(int(r["coord_x"]) + 96, int(r["coord_y"]) + 96) for r in rows if r["qc"] != "ok"]
    assert not any(lesion.contains(centre) for lesion in lesions for centre in failing), "failing tiles are not judged"


@pytest.fixture(scope="module")
def stack(private_stack):
    return private_stack


def drop_wsi(pipeline, tmp_path, name: str, **options):
    path = tmp_path / name
    truth = synth_wsi(path, **options)
    pipeline.drop(f"incoming/slides/{name}", path.read_bytes())
    return truth


def read_csv(stack, slide_id) -> list[dict]:
    rows = list(csv.reader(io.StringIO(stack.read(f"predictions/{slide_id}.csv").decode())))
    assert rows[0] == HEADER, "the CSV header is the same contract as for HDF5 slides"
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def quarantine_reason(pipeline, key):
    return pipeline.json(f"quarantine/{key}.error.json")


def assert_qupath_geojson(document: dict, rows: list[dict], width: int, height: int) -> None:
    """RFC 7946 shape and QuPath's conventions: level-0 pixels, objectType, classification, measurements."""
    assert document["type"] == "FeatureCollection"
    tiles = [f for f in document["features"] if f["properties"]["objectType"] == "detection"]
    regions = [f for f in document["features"] if f["properties"]["objectType"] == "annotation"]
    assert len(tiles) == len(rows) and len(tiles) + len(regions) == len(document["features"])
    for feature in document["features"]:
        geometry = feature["geometry"]
        assert feature["type"] == "Feature" and geometry["type"] in ("Polygon", "MultiPolygon")
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        for ring in (ring for polygon in polygons for ring in polygon):
            assert len(ring) >= 4 and ring[0] == ring[-1], "linear rings are closed"
        geometry = shapely.geometry.shape(feature["geometry"])
        assert geometry.is_valid and geometry.area > 0
        x0, y0, x1, y1 = geometry.bounds
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, "inside the slide, in level-0 pixels"
        classification = feature["properties"]["classification"]
        assert len(classification["color"]) == 3
    for tile, row in zip(tiles, rows, strict=True):
        x0, y0, _, _ = shapely.geometry.shape(tile["geometry"]).bounds
        assert (x0, y0) == (int(row["coord_x"]), int(row["coord_y"]))
        assert tile["properties"]["measurements"]["tumor_probability"] == pytest.approx(
            float(row["tumor_probability"]), abs=1e-6
        )
        judged = "Tumor" if row["label"] == "1" else "Normal"
        assert tile["properties"]["classification"]["name"] == (judged if row["qc"] == "ok" else f"QC: {row['qc']}")
    assert all(r["properties"]["classification"]["name"] == "Tumor" for r in regions)


def test_a_whole_slide_image_is_scored_on_tissue_at_the_models_resolution(stack, pipeline, tmp_path):
    truth = drop_wsi(pipeline, tmp_path, "node-7.tif", seed=3)
    rng = np.random.default_rng(21)
    for split, count in (("train", 1200), ("valid", 200), ("test", 200)):
        pipeline.drop_split("wsi-model", split, *synth_split(count, rng))
    pipeline.settle()
    assert stack.state.get("slide#node-7")["scoring_status"] == "scored"

    rows = read_csv(stack, "node-7")
    edge = round(truth.cell_edge)  # 192 level-0 pixels: 96 at the model's 0.972 µm/px on a 0.486 µm/px scan
    corners = np.array([(int(r["coord_x"]), int(r["coord_y"])) for r in rows])
    assert (corners % edge == 0).all(), "tiles on the level-0 grid from (0, 0), 96 model pixels a side"
    cells = (corners[:, 1] // edge, corners[:, 0] // edge)
    assert truth.tissue[cells].all(), "no tile on glass or on the pen stroke"
    assert len(rows) >= 0.95 * truth.tissue.sum(), "nearly every tissue tile is scored"
    pen_x0, pen_y0, pen_x1, pen_y1 = truth.pen
    on_pen = (corners[:, 0] + edge > pen_x0) & (corners[:, 0] < pen_x1) & (corners[:, 1] + edge > pen_y0)
    assert not (on_pen & (corners[:, 1] < pen_y1)).any()
    assert all(r["qc"] == "ok" for r in rows), "sharp, single-layer tissue without ink passes quality control"

    probabilities = np.array([float(r["tumor_probability"]) for r in rows])
    tumour = truth.tumour[cells]
    assert 0 < tumour.sum() < len(tumour)
    assert roc_auc_score(tumour, probabilities) > 0.9, "the tumour region stands out from normal tissue"

    summary = pipeline.json("predictions/node-7.json")
    assert summary["mpp"] == pytest.approx(0.486) and summary["mpp_source"] == "TIFF resolution tags"
    assert summary["level"] == 1 and summary["level_mpp"] == pytest.approx(0.972)
    assert summary["tiles_kept"] == len(rows) == summary["patch_count"]
    assert summary["tiles_kept"] + summary["tiles_dropped"] == summary["tiles_total"] == truth.tissue.size
    assert summary["tissue_area_mm2"] == pytest.approx(truth.area_mm2(truth.tissue), rel=0.1)
    assert summary["tumour_area_mm2"] == pytest.approx(truth.area_mm2(truth.tumour), rel=0.1)
    assert summary["qc"]["status"] == "pass" and summary["qc"]["failing_fraction"] == 0
    assert summary["stain"]["estimated"] and summary["stain"]["training_range_degrees"] >= 5

    geojson = json.loads(stack.read("predictions/node-7.geojson"))
    assert_qupath_geojson(geojson, rows, summary["slide_width"], summary["slide_height"])
    regions = [f for f in geojson["features"] if f["properties"]["objectType"] == "annotation"]
    merged = sum(f["properties"]["measurements"]["area_mm2"] for f in regions)
    assert merged == pytest.approx(summary["tumour_area_mm2"], rel=1e-3)

    overlay = stack.read("predictions/node-7.png")
    picture = np.asarray(Image.open(io.BytesIO(overlay)).convert("RGB")).astype(int)
    assert picture.shape[1] > 384 + 24, "the slide's thumbnail (384 px wide) with a colour bar beside it"
    assert text_positions(overlay, "tumour probability"), "the colour bar says what it shows"
    scale = 6144 / 384  # level-0 pixels per thumbnail pixel (the synthetic slide's smallest level)
    glass = picture[60 + int(truth.pen[1] / scale) - 20, 20 + 10]
    assert (glass > 230).all(), "glass stays as it is: no colour where nothing was scored"
    x, y = corners[np.argmax(probabilities)] + edge // 2
    assert not (picture[60 + int(y / scale), 20 + int(x / scale)] > 230).all(), "scored tiles are coloured"

    (event,) = pipeline.events_for("Slide Scored", slide_id="node-7")
    assert event["detail"]["geojson_uri"] == f"s3://{stack.bucket}/predictions/node-7.geojson"
    assert contract_violations("Slide Scored", event["detail"]) == [], "the documented contract (integrators.md)"
    (newest,) = pipeline.events_for("Slide Scored v2", slide_id="node-7")
    assert contract_violations("Slide Scored v2", newest["detail"]) == []

    # The largest lesion is the tumour region. Tiles beside it hold tumour cells at their border (label 0, as in
    # PCam), and the model may flag them: the measure may grow by up to a tile edge on each side.
    verdict = summary["verdict"]
    numbered = [f["properties"]["measurements"]["lesion_number"] for f in regions]
    assert numbered == list(range(1, len(verdict["lesions"]) + 1))
    largest = verdict["lesions"][0]
    rows_cols = np.argwhere(truth.tumour) * truth.cell_edge
    true_extent = max(np.hypot(*(a - b)) for a in rows_cols for b in rows_cols) * truth.mpp / 1000
    tile_mm = verdict["measurement_resolution_mm"]
    assert true_extent - tile_mm <= largest["greatest_dimension_mm"] <= true_extent + 2 * tile_mm
    assert verdict["category"] == largest["category"] == "micrometastasis"


def test_slides_with_lesions_of_known_size_get_the_verdict_their_largest_lesion_calls_for(stack, pipeline, tmp_path):
    """Tumour-free, 0.1 mm, 1 mm and 4 mm lesions, scored by the pipeline with the model trained above."""
    slides = {"node-neg": (), "node-itc": (0.1,), "node-micro": (1.0,), "node-macro": (4.0,)}
    truths = {}
    for name, lesions in slides.items():
        rows, cols = (52, 64) if lesions == (4.0,) else (30, 36)
        options = {"rows": rows, "cols": cols, "mpp": 0.972, "cell_mpp": 0.972, "seed": 7, "lesions_mm": lesions}
        truths[name] = drop_wsi(pipeline, tmp_path, f"{name}.tif", **options)
    half_blurred, blurred = half_blurred_mosaic(0.486)  # real H&E, scored in the same job
    real = write_pyramid(half_blurred, tmp_path / "real-half-blurred.tif", 0.486)
    pipeline.drop("incoming/slides/real-half-blurred.tif", real.read_bytes())
    pipeline.settle()
    assert_quality_control_keeps_blurred_tissue_out_of_the_verdict(stack, pipeline, blurred)
    verdicts = {name: pipeline.json(f"predictions/{name}.json")["verdict"] for name in slides}
    edge = verdicts["node-neg"]["measurement_resolution_mm"]
    evidence = verdicts["node-neg"]["evidence"]
    assert evidence["false_positive_rate"] > 0 and evidence["minimum_lesion_tiles"] > 1, "the model's own rate"

    assert verdicts["node-neg"]["category"] == "negative", "its false positives stay below the evidence rule"
    assert verdicts["node-micro"]["category"] == "micrometastasis"
    assert verdicts["node-macro"]["category"] == "macrometastasis"
    for name in ("node-micro", "node-macro"):
        (truth,) = truths[name].lesions_mm
        assert abs(verdicts[name]["largest_lesion_mm"] - truth) < edge, (name, verdicts[name]["lesions"][0])
    # A 0.1 mm deposit flags a tile or a few (or none: the model misses 5 % and more of tumour tiles), no more
    # than this model's false positives group on a slide of this size: whatever is found there is listed, not
    # counted, and the slide is called negative (docs/figures.md, "Slide verdicts").
    itc = verdicts["node-itc"]
    centre = np.array([15.5, 15.5]) * 96  # where lesion_cells puts the largest lesion on a 30 x 36 slide
    near = [lesion for lesion in itc["lesions"] if np.hypot(*(np.array(lesion["centroid"]) - centre)) < 150]
    assert all(not lesion["counted"] and lesion["greatest_dimension_mm"] <= 0.2 + edge for lesion in near)
    assert itc["category"] == "negative"

    page = tmp_path / "node-macro.html"
    page.write_bytes(stack.read("predictions/node-macro.html"))
    from tests.browser import render

    dom, _ = render(page)
    assert "Macrometastasis: the largest lesion measures" in dom


def test_slides_from_other_writers_are_scored_from_the_same_pixels(stack, pipeline, tmp_path):
    """libvips (deflate with its predictor, LZW, JPEG, PackBits, SubIFDs, BigTIFF), tifffile (Aperio with and
    without a pyramid, YCbCr JPEG, OME-TIFF in nm, Aperio JPEG 2000) and wsidicom (a DICOM series, zipped): the
    tumour stands out on every one. Wrong pixels would find no tissue or score noise."""
    from pcam_synth.slide_writers import OPENSLIDE_RECIPES, RECIPES, write_slide

    truths = {}
    for recipe in RECIPES + OPENSLIDE_RECIPES:
        path, truths[recipe.name] = write_slide(recipe, tmp_path)
        pipeline.drop(f"incoming/slides/{path.name}", path.read_bytes())
    pipeline.settle()
    for name, truth in truths.items():
        assert stack.state.get(f"slide#{name}")["scoring_status"] == "scored", name
        rows = read_csv(stack, name)
        edge = round(truth.cell_edge)
        corners = np.array([(int(r["coord_x"]), int(r["coord_y"])) for r in rows])
        cells = (corners[:, 1] // edge, corners[:, 0] // edge)
        assert truth.tissue[cells].all() and len(rows) >= 0.9 * truth.tissue.sum(), name
        probabilities = np.array([float(r["tumor_probability"]) for r in rows])
        assert roc_auc_score(truth.tumour[cells], probabilities) > 0.9, name
        summary = pipeline.json(f"predictions/{name}.json")
        assert summary["mpp"] == pytest.approx(0.486, rel=1e-6) and summary["level"] == (0 if "region" in name else 1)
    for recipe in OPENSLIDE_RECIPES:  # read once by OpenSlide, then by shards from the staged copy
        summary = pipeline.json(f"predictions/{recipe.name}.json")
        assert "OpenSlide's openslide.mpp-x" in summary["mpp_source"], recipe.name
        assert stack.list_keys(f"staging/slides/{recipe.name}/"), "the staged copy the shards read"
        assert (summary["slide_width"], summary["slide_height"]) == (3072, 2304), "the dropped slide's level 0"


def test_an_svs_without_resolution_waits_in_quarantine_until_its_sidecar_arrives(stack, pipeline, tmp_path):
    drop_wsi(pipeline, tmp_path, "no-mpp.svs", seed=4, rows=12, cols=16, aperio=True, says_mpp=False)
    pipeline.settle()
    reason = quarantine_reason(pipeline, "incoming/slides/no-mpp.svs")
    assert reason["problem"] == "the slide does not say its resolution (µm per pixel)"
    assert "incoming/slides/no-mpp.json" in reason["expected"], "it names exactly the sidecar to drop"
    assert not stack.list_keys("predictions/no-mpp")

    pipeline.drop("incoming/slides/no-mpp.json", b'{"mpp": 0.486}')
    pipeline.settle()
    summary = pipeline.json("predictions/no-mpp.json")
    assert summary["mpp"] == pytest.approx(0.486) and summary["mpp_source"].startswith("sidecar incoming/slides/")
    assert summary["level"] == 1


def test_a_sidecar_dropped_first_overrides_the_slides_own_resolution(stack, pipeline, tmp_path):
    pipeline.drop("incoming/slides/rescanned.json", b'{"mpp": 0.243}')
    pipeline.settle()
    drop_wsi(pipeline, tmp_path, "rescanned.svs", seed=5, rows=12, cols=16, aperio=True)  # says 0.486
    pipeline.settle()
    summary = pipeline.json("predictions/rescanned.json")
    # At 0.243 µm/px a tile is 384 level-0 pixels, read from the 4x-downsampled level.
    assert summary["mpp"] == pytest.approx(0.243) and summary["level"] == 2
    assert summary["tile_edge_level0"] == pytest.approx(384)
    assert {int(r["coord_x"]) % 384 for r in read_csv(stack, "rescanned")} == {0}


def test_a_sidecar_after_a_scored_slide_cuts_and_scores_it_again_once(stack, pipeline, tmp_path):
    scored = pipeline.json("predictions/rescanned.json")
    pipeline.drop("incoming/slides/rescanned.json", b'{"mpp": 0.486}')  # the lab corrects its sidecar
    pipeline.settle()
    again = pipeline.json("predictions/rescanned.json")
    assert again["mpp"] == pytest.approx(0.486) and again["level"] == 1 and again["tiles_kept"] > scored["tiles_kept"]
    sidecar = pipeline.file_record("incoming/slides/rescanned.json")
    pipeline.deliver_object_created("incoming/slides/rescanned.json", sidecar["version"])  # the event again
    pipeline.settle()
    assert len(pipeline.events_for("Slide Scored", slide_id="rescanned")) == 2, "cut again once, not per delivery"


def test_unusable_whole_slide_images_and_sidecars_are_quarantined_with_plain_reasons(stack, pipeline, tmp_path):
    import tifffile

    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, np.full((512, 512), 200, np.uint8), tile=(256, 256))
    whole = tmp_path / "whole.tif"
    synth_wsi(whole, rows=6, cols=8, seed=6)
    cut_short = whole.read_bytes()[: whole.stat().st_size * 2 // 3]
    drops = {
        "incoming/slides/grey.tif": (grey.read_bytes(), "level 0 is not 8-bit RGB"),
        "incoming/slides/words.tiff": (b"II*\x00" + b"not really a tiff" * 10, "the TIFF holds no image"),
        "incoming/slides/cut.tif": (cut_short, "run past the end of the file (truncated?"),
        "incoming/slides/notes.svs": (b"Aperio? no: notes", "the file is not a TIFF"),
        "incoming/slides/scan.ndpi": (b"anything", "a format neither the pipeline nor OpenSlide 4 reads"),
        "incoming/slides/scan.mrxs": (b"[GENERAL]", "a MRXS slide is several files"),
        "incoming/slides/escape.zip": (_zip({"../up.dcm": b"x"}), "the .zip holds a file named outside its own"),
        "incoming/slides/fast.json": (b'{"mpp": "fast"}', "the sidecar's mpp is not a number"),
        "incoming/slides/huge.json": (b'{"mpp": 250}', "the µm per pixel in the sidecar is not plausible"),
        "incoming/slides/extra.json": (b'{"mpp": 0.25, "stain": "HE"}', "the sidecar holds fields"),
        "incoming/slides/empty-glass.tif": (_glass_only(tmp_path), "no tissue was found on the slide"),
        "incoming/slides/tritc.ndpi": ((REALTISSUE / REAL_NDPI).read_bytes(), "the slide is not a brightfield slide"),
        "incoming/slides/ihc.tif": (_real_ihc(tmp_path), "the slide is immunohistochemistry"),
    }
    for key, (body, _) in drops.items():
        pipeline.drop(key, body)
    pipeline.settle()
    for key, (_, problem) in drops.items():
        reason = quarantine_reason(pipeline, key)
        assert problem in reason["problem"], (key, reason)
        assert reason["expected"], "a lab is told what was expected"
        assert pipeline.file_record(key)["status"] == "quarantined"


def _zip(files: dict) -> bytes:
    import zipfile

    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return body.getvalue()


def _real_ihc(tmp_path) -> bytes:
    """The real IHC image (scikit-image's; tests/data/realtissue/README.md) as a slide at 0.5 µm/px."""
    return write_pyramid(np.tile(real_image(IHC_IMAGE), (2, 2, 1)), tmp_path / "ihc.tif", 0.5).read_bytes()


def _glass_only(tmp_path) -> bytes:
    """A pyramidal slide of bare glass (with its pen stroke): nothing to score."""
    import tifffile

    from pcam_synth.whole_slides import GLASS, jpeg_codec_for_tifffile

    jpeg_codec_for_tifffile(85)
    path = tmp_path / "empty-glass.tif"
    rng = np.random.default_rng(7)
    with tifffile.TiffWriter(path) as writer:
        for edge in (2048, 1024, 512, 256):
            pixels = (GLASS + rng.normal(0, 2, size=(edge, edge, 3))).clip(0, 255).astype(np.uint8)
            writer.write(pixels, tile=(256, 256), compression="jpeg", photometric="rgb",
                         resolution=(1e4 / 0.25 * edge / 2048,) * 2, resolutionunit="CENTIMETER")  # fmt: skip
    return path.read_bytes()
