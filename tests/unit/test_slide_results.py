"""The files downstream systems read for a scored slide, and how predictions are gathered."""

import csv
import io
import json
from itertools import islice

import numpy as np
import pytest
from PIL import Image

from pcam_pipeline.core.errors import JobFailed
from pcam_pipeline.scoring.gathering import gather_tumour_probabilities
from pcam_pipeline.scoring.slide_results import CSV_HEADER, colour_of, heatmap_png, prediction_csv, summary_figures
from tests.fakes import InMemoryBlobStore
from tests.picture_text import shows_text, text_positions

PROBABILITIES = np.array([0.1, 0.5, 0.49, 0.97])
COORDS = np.array([[0, 0], [96, 0], [0, 96], [96, 96]])


def test_csv_has_the_contract_header_one_row_per_patch_in_order_and_labels_at_the_threshold():
    raw = np.array([0.3, 0.8, 0.79, 0.999])
    qc = ["ok", "blur", "ok", "fold"]
    rows = list(csv.reader(io.StringIO(prediction_csv("s1", PROBABILITIES, COORDS, 0.5, raw, qc).decode())))
    assert ",".join(rows[0]) == CSV_HEADER
    assert CSV_HEADER == "slide_id,patch_index,coord_x,coord_y,tumor_probability,label,raw_score,qc"
    assert rows[1:] == [
        ["s1", "0", "0", "0", "0.100000", "0", "0.300000", "ok"],
        ["s1", "1", "96", "0", "0.500000", "1", "0.800000", "blur"],
        ["s1", "2", "0", "96", "0.490000", "0", "0.790000", "ok"],
        ["s1", "3", "96", "96", "0.970000", "1", "0.999000", "fold"],
    ]


def test_csv_leaves_coords_empty_when_the_slide_has_none_and_raw_scores_are_the_probabilities_without_a_map():
    rows = prediction_csv("s1", PROBABILITIES[:2], None, 0.5).decode().splitlines()
    assert rows[1:] == ["s1,0,,,0.100000,0,0.100000,unchecked", "s1,1,,,0.500000,1,0.500000,unchecked"]


def test_summary_figures():
    figures = summary_figures(PROBABILITIES, 0.5)
    assert figures["patch_count"] == 4 and figures["tumour_patch_count"] == 2
    assert figures["tumour_fraction"] == 0.5 and figures["max_probability"] == pytest.approx(0.97)
    assert figures["mean_probability"] == pytest.approx(PROBABILITIES.mean())


def test_heatmap_places_each_patch_at_its_position_with_the_colour_of_its_probability():
    picture = np.asarray(Image.open(io.BytesIO(heatmap_png(COORDS, PROBABILITIES, "s1", 0.5))).convert("RGB"))
    cell = 24  # 2x2 grid → the largest cell size
    low = picture[60 + cell // 2, 20 + cell // 2]  # patch 0 at (0, 0): top-left cell
    high = picture[60 + cell + cell // 2, 20 + cell + cell // 2]  # patch 3 at (96, 96)
    assert tuple(low) == tuple(colour_of(np.array([0.1]))[0])
    assert tuple(high) == tuple(colour_of(np.array([0.97]))[0])


def test_the_heatmap_is_not_transposed_on_a_wide_slide():
    """A 3-wide, 1-high row with distinct probabilities: x is a column, y a row, each colour in its place."""
    coords = np.array([[0, 0], [96, 0], [192, 0]])
    probabilities = np.array([0.0, 0.5, 1.0])
    picture = np.asarray(Image.open(io.BytesIO(heatmap_png(coords, probabilities, "wide", 0.5))).convert("RGB"))
    cell = 24
    for column, probability in enumerate(probabilities):
        pixel = picture[60 + cell // 2, 20 + column * cell + cell // 2]
        assert tuple(pixel) == tuple(colour_of(np.array([probability]))[0])
    below = picture[60 + cell + cell // 2, 20 + cell // 2]
    assert tuple(below) != tuple(colour_of(np.array([0.5]))[0])  # nothing drawn below the single row


def test_the_colour_bar_runs_from_1_at_the_top_to_0_at_the_bottom_with_the_threshold_marked_in_red():
    picture = np.asarray(Image.open(io.BytesIO(heatmap_png(COORDS, PROBABILITIES, "s1", 0.25))).convert("RGB"))
    top, margin, bar_w = 60, 20, 24
    bar_x, bar_h = margin * 2 + 2 * 24, 160  # a 2x2 map of 24-pixel cells; the bar is at least 160 high
    middle = bar_x + bar_w // 2
    assert tuple(picture[top, middle]) == tuple(colour_of(np.array([1.0]))[0])
    assert tuple(picture[top + bar_h - 1, middle]) == tuple(colour_of(np.array([0.0]))[0])
    threshold_y = top + round(0.75 * (bar_h - 1))
    assert tuple(picture[threshold_y, middle]) == (200, 0, 0)
    assert tuple(picture[threshold_y - 20, middle]) != (200, 0, 0)
    assert tuple(picture[top + round(0.5 * (bar_h - 1)), bar_x + bar_w + 2]) == (0, 0, 0)  # a tick at 0.50


def test_colour_scale_runs_from_dark_to_bright():
    dark, bright = colour_of(np.array([0.0, 1.0]))
    assert dark.sum() < bright.sum()


def outputs(probabilities, skip=()) -> InMemoryBlobStore:
    """Batch Transform's output files, one per patch (``<image>.out``), with those in ``skip`` missing."""
    blobs = InMemoryBlobStore("bkt")
    for index, p in enumerate(probabilities):
        if index not in skip:
            body = json.dumps({"prediction": [1 - p, p]}).encode()
            blobs.put_bytes(f"scores/s1/job/{index:07d}.jpg.out", body, "application/json")
    return blobs


def test_gathering_reads_every_output_in_patch_order():
    probabilities = np.linspace(0, 1, 50)
    gathered = gather_tumour_probabilities(outputs(probabilities), ["scores/s1/job/"], "", 50, threads=8)
    assert gathered == pytest.approx(probabilities)


def test_a_missing_output_is_named():
    blobs = outputs(np.full(5, 0.5), skip={3})
    with pytest.raises(JobFailed, match=r"prediction of patch 3 \(scores/s1/job/0000003.jpg.out\) is missing"):
        gather_tumour_probabilities(blobs, ["scores/s1/job/"], "", 5)


def test_an_unreadable_output_is_named():
    blobs = outputs(np.full(2, 0.5))
    blobs.put_bytes("scores/s1/job/0000001.jpg.out", b"<html>", "text/html")
    with pytest.raises(JobFailed, match="0000001.jpg.out is not a prediction of two classes"):
        gather_tumour_probabilities(blobs, ["scores/s1/job/"], "", 2)


@pytest.mark.parametrize("slide_id", ["Lab (A), B&C #1 o'Brien", 'say "cheese"', "line\nbreak", "Übersicht 病理"])
def test_slide_ids_with_commas_quotes_and_line_breaks_keep_eight_fields_per_row(slide_id):
    body = prediction_csv(slide_id, np.array([0.25, 0.75]), np.array([[0, 0], [96, 0]]), 0.5)
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == CSV_HEADER.split(",")
    assert rows[1:] == [
        [slide_id, "0", "0", "0", "0.250000", "0", "0.250000", "unchecked"],
        [slide_id, "1", "96", "0", "0.750000", "1", "0.750000", "unchecked"],
    ]


def test_downstream_pandas_reads_awkward_slide_ids_back_unchanged():
    import pandas

    ids = ["Lab (A), B&C #1 o'Brien", 'say "cheese"', "line\nbreak", "Übersicht 病理"]
    for slide_id in ids:
        body = prediction_csv(slide_id, np.array([0.25, 0.75]), None, 0.5)
        frame = pandas.read_csv(io.BytesIO(body), dtype={"slide_id": str}, keep_default_na=False)
        assert list(frame.columns) == CSV_HEADER.split(",")
        assert frame["slide_id"].tolist() == [slide_id, slide_id]
        assert frame["tumor_probability"].tolist() == [0.25, 0.75] and frame["label"].tolist() == [0, 1]


def test_gathering_crosses_windows_in_patch_order():
    from pcam_pipeline.scoring import gathering

    count = gathering.GATHER_WINDOW * 2 + 3
    expected = np.random.default_rng(5).random(count)
    blobs = InMemoryBlobStore()
    for index, p in enumerate(expected):
        blobs.put_json(f"scores/s1/job/{index:07d}.jpg.out", {"prediction": [1 - p, p]})
    gathered = gather_tumour_probabilities(blobs, ["scores/s1/job/"], "", count, threads=8)
    assert gathered == pytest.approx(expected) and not np.isnan(gathered).any()


def test_the_heatmap_says_what_a_pathologist_needs_to_read_it():
    probabilities = np.array([0.9, 0.2, 0.6, 0.1])
    png = heatmap_png(COORDS[:4], probabilities, "slide s1 — model m1", 0.6)
    for text in ("slide s1 — model m1", "4 patches, 2 at or above 0.60 (50.0%)", "tumour probability"):
        assert shows_text(png, text), text
    heights = [top for value in ("1.00", "0.75", "0.50", "0.25", "0.00") for _, top in text_positions(png, value)]
    assert len(heights) == 5 and heights == sorted(heights), "the colour bar reads 1 at the top, 0 at the bottom"
    assert shows_text(png, "red line: threshold", fill=(200, 0, 0))
    assert not shows_text(png, "5 patches")  # the reader does not just find any text


def test_the_colour_scale_passes_through_its_five_anchors_and_interpolates_between_them():
    """viridis at 0, 0.25, 0.5, 0.75 and 1; halfway between two anchors is their rounded mean; out of range clips."""
    anchors = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]]
    assert colour_of(np.array([0.0, 0.25, 0.5, 0.75, 1.0])).tolist() == anchors
    assert colour_of(np.array([0.125, 0.875])).tolist() == [[64, 42, 112], [174, 216, 68]]
    assert colour_of(np.array([-0.5, 1.5])).tolist() == [anchors[0], anchors[-1]]


def test_an_empty_slide_sums_up_to_zeros():
    figures = summary_figures(np.array([]), 0.5)
    assert (figures["tumour_fraction"], figures["max_probability"], figures["mean_probability"]) == (0.0, 0.0, 0.0)
    assert figures["threshold"] == 0.5


def test_a_slide_sixty_patches_wide_keeps_every_patch_in_its_own_column():
    """Positions are level-0 pixels of 96-pixel patches: column k starts at 96 k, far along the slide too."""
    coords = np.array([[96 * column, 0] for column in range(60)])
    probabilities = np.array([column % 2 for column in range(60)], dtype=float)
    picture = np.asarray(Image.open(io.BytesIO(heatmap_png(coords, probabilities, "long", 0.5))).convert("RGB"))
    cell = 720 // 60
    colours = [tuple(picture[60 + cell // 2, 20 + column * cell + cell // 2]) for column in range(60)]
    expected = [tuple(colour) for colour in colour_of(probabilities)]
    assert colours == expected


def picture_of(coords, probabilities, threshold=0.5) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(heatmap_png(coords, probabilities, "s1", threshold))).convert("RGB"))


def test_a_slide_whose_patches_start_far_from_the_origin_is_drawn_from_its_first_patch():
    """Level-0 positions of a region deep in a slide: the map starts at the leftmost, topmost patch."""
    assert np.array_equal(picture_of(COORDS + [9600, 4800], PROBABILITIES), picture_of(COORDS, PROBABILITIES))


def test_the_map_ends_with_its_last_row_and_column_and_the_bar_passes_through_the_middle_colour():
    picture = picture_of(COORDS, PROBABILITIES, threshold=0.9)  # the red threshold line away from the middle
    cell, top, margin = 24, 60, 20
    assert tuple(picture[top + 2 * cell + 3, margin + cell // 2]) == (255, 255, 255)  # below the frame: paper
    assert tuple(picture[top + cell // 2, margin + 2 * cell + 3]) == (255, 255, 255)  # right of the frame
    bar_x, bar_h = margin * 2 + 2 * cell, 160
    halfway = picture[top + round(0.5 * (bar_h - 1)), bar_x + 12].astype(int)
    assert np.abs(halfway - colour_of(np.array([0.5]))[0].astype(int)).max() <= 6


@pytest.mark.parametrize("slide_id", ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\tx", "'=quoted"])
def test_a_slide_id_that_starts_a_formula_is_written_as_text(slide_id):
    body = prediction_csv(slide_id, np.array([0.9]), None, 0.5)
    row = next(islice(csv.reader(io.StringIO(body.decode())), 1, None))
    assert row[0] == "'" + slide_id, "a spreadsheet shows it as text"


def test_the_heatmap_of_patches_a_slide_apart_stays_small_and_shows_each_at_its_highest():
    """Positions up to the ingestion limit (1,000,000 px) span 10,417 cells a side: the grid is capped, and
    patches that share a cell show the highest probability among them."""
    coords = np.array([[0, 0], [96, 0], [999_936, 999_936]])
    png = heatmap_png(coords, np.array([0.1, 0.9, 0.5]), "far", 0.5)
    picture = Image.open(io.BytesIO(png))
    assert max(picture.size) < 2_500
    pixels = np.asarray(picture.convert("RGB"))
    top_left_cell = pixels[60, 20]  # where framed_png puts the map's first cell
    assert (top_left_cell == colour_of(np.array([0.9]))[0]).all(), "the 0.9 patch wins the cell it shares"
