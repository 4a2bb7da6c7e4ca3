"""A year in production on a clock that moves: the bucket's lifecycle rules act as S3's would, day by day.

Day 0 a lab drops compressed labels, a compressed slide with coordinates and a whole-slide image without its
µm/px; day 21 their staged copies expire; day 40 the sidecar arrives; day 45 the images, and with them the
first model, which scores the slides that waited; day 60 a late split's images; day 200 every slide is
rescored; day 400 a sidecar comes for a slide whose quarantined upload is no longer kept. Each works, or is
refused with the reason docs/operations.md ("Retention") gives, and nothing reaches a dead-letter queue.

A stack of its own: which model is current is global to a deployment.
"""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pytest
import time_machine

from pcam_ops.cli import main
from pcam_synth.synth import synth_slide, synth_split
from pcam_synth.whole_slides import synth_wsi
from tests.integration.conftest import INTEGRATION
from tests.lab import h5_bytes

pytestmark = [*INTEGRATION, pytest.mark.scenario]  # steps of one story, in order

SIZES = {"train": 300, "valid": 100, "test": 160}
DATASET = "incoming/datasets/year/camelyonpatch_level_2_split_{split}_{role}.h5{gz}"


@pytest.fixture(scope="module")
def stack(private_stack):
    return private_stack


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(7)
    return {split: synth_split(count, rng) for split, count in SIZES.items()}


@pytest.fixture(scope="module")
def slide():
    patches, coords, _ = synth_slide(4, 5, np.random.default_rng(8))
    return patches, coords


def day(stack) -> int:
    return round(stack.clock.offset.total_seconds() / 86400)


def advance_to(stack, pipeline, target: int) -> list[str]:
    pipeline.settle()
    actions = stack.advance_days(target - day(stack))
    pipeline.settle()
    return [str(action) for action in actions]


def csv_rows(stack, slide_id: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(stack.read(f"predictions/{slide_id}.csv").decode())))


def drop_labels(pipeline, name: str, split: str, y: np.ndarray) -> None:
    key = f"incoming/datasets/{name}/camelyonpatch_level_2_split_{split}_y.h5.gz"
    pipeline.drop(key, gzip.compress(h5_bytes(y=y.reshape(-1, 1, 1, 1))))


def test_day_0_a_lab_drops_labels_a_slide_and_a_whole_slide_image_without_its_resolution(
    stack, pipeline, splits, slide, tmp_path
):
    for split, (_, y) in splits.items():
        drop_labels(pipeline, "year", split, y)
    drop_labels(pipeline, "late", "train", splits["train"][1])
    patches, coords = slide
    pipeline.drop("incoming/slides/waiting.h5.gz", gzip.compress(h5_bytes(x=patches, coords=coords)))
    for name in ("rescued.svs", "forgotten.svs"):
        synth_wsi(tmp_path / name, rows=12, cols=16, seed=4, aperio=True, says_mpp=False)
        pipeline.drop(f"incoming/slides/{name}", (tmp_path / name).read_bytes())
    pipeline.settle()

    assert stack.list_keys("staging/datasets/year/") and stack.list_keys("staging/slides/waiting.h5")
    assert pipeline.owner_record("slide#waiting")["status"] == "ready", "converted; it waits for a first model"
    assert pipeline.file_record("incoming/slides/rescued.svs")["status"] == "quarantined"


def test_day_21_staged_copies_expire_and_nothing_needs_them(stack, pipeline):
    actions = advance_to(stack, pipeline, 30)

    assert not stack.list_keys("staging/"), "the decompressed copies are gone"
    expired = [a for a in actions if "ExpireStagedDecompressedFiles: expired staging/" in a]
    assert len(expired) == 5, "three splits' labels, the late split's labels and the slide"
    assert len({a.split()[0] for a in expired}) == 1, "all on one day, 21 days after the drop"
    assert stack.list_keys("incoming/slides/waiting.h5.gz"), "the labs' drops themselves never expire"


def test_day_40_a_sidecar_takes_the_whole_slide_image_out_of_quarantine(stack, pipeline):
    advance_to(stack, pipeline, 40)
    pipeline.drop("incoming/slides/rescued.json", b'{"mpp": 0.486}')
    pipeline.settle()

    record = pipeline.owner_record("slide#rescued")
    assert record["status"] == "ready" and record["tile_plan_key"], "cut from the quarantined upload's version"


def test_day_45_images_arrive_a_first_model_is_promoted_and_the_waiting_slides_are_scored(
    stack, pipeline, splits, slide
):
    advance_to(stack, pipeline, 45)
    for split, (x, _) in splits.items():
        pipeline.drop(DATASET.format(split=split, role="x", gz=""), h5_bytes(x=x))
    pipeline.settle()

    current = stack.state.get("models", "current")
    assert current and current["dataset"] == "year", "trained on labels dropped 45 days ago"
    manifest = pipeline.lines(
        pipeline.events_for("Split Ready", dataset="year", split="train")[0]["detail"]["manifest_key"]
    )
    assert [int(line["class"]) for line in manifest] == splits["train"][1].tolist()
    rows = csv_rows(stack, "waiting")
    assert [(int(r["coord_x"]), int(r["coord_y"])) for r in rows] == [tuple(c) for c in slide[1].tolist()]
    assert csv_rows(stack, "rescued"), "the rescued whole-slide image is scored too"


def test_day_60_a_late_splits_images_find_labels_dropped_two_months_before(stack, pipeline, splits):
    advance_to(stack, pipeline, 60)
    x, y = splits["train"]
    pipeline.drop("incoming/datasets/late/camelyonpatch_level_2_split_train_x.h5", h5_bytes(x=x))
    pipeline.settle()

    (ready,) = pipeline.events_for("Split Ready", dataset="late", split="train")
    assert [int(line["class"]) for line in pipeline.lines(ready["detail"]["manifest_key"])] == y.tolist()


def test_day_200_every_slide_is_rescored_from_what_ingestion_kept(stack, pipeline, slide, monkeypatch):
    actions = advance_to(stack, pipeline, 200)
    assert any("ExpireRawTransformOutputs: expired scores/" in a for a in actions), "raw outputs went on day 76"
    before = {
        slide_id: pipeline.json(f"predictions/{slide_id}.json")["scored_at"] for slide_id in ("waiting", "rescued")
    }
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)

    with time_machine.travel(stack.clock.now(), tick=True):  # the operator runs it on day 200
        assert main(["rescore", "--all", "--stack", "pcam-local"]) == 0
    pipeline.settle()

    for slide_id, scored_at in before.items():
        assert pipeline.json(f"predictions/{slide_id}.json")["scored_at"] > scored_at
    rows = csv_rows(stack, "waiting")
    assert [(int(r["coord_x"]), int(r["coord_y"])) for r in rows] == [tuple(c) for c in slide[1].tolist()]


def test_day_400_a_sidecar_for_an_upload_no_longer_kept_is_refused_with_the_reason(stack, pipeline):
    actions = advance_to(stack, pipeline, 400)
    assert any("KeepReplacedDrops: deleted version incoming/slides/forgotten.svs" in a for a in actions)

    pipeline.drop("incoming/slides/forgotten.json", b'{"mpp": 0.486}')
    pipeline.settle()

    record = pipeline.file_record("incoming/slides/forgotten.svs")
    assert record["status"] == "quarantined"
    assert "no longer in the bucket's history" in record["reason"] and "KeepReplacedDropsDays" in record["reason"]
    assert stack.list_keys("quarantine/incoming/slides/forgotten.svs"), "the quarantined copy itself is kept"


def test_after_a_year_nothing_is_dead_lettered(stack):
    assert {queue: letters for queue, letters in stack.dead_letters().items() if letters} == {}
