"""Ingestion and conversion, once per port call with that call failing once (tests/fault_harness.py): each path
ends as its run without faults, and as it should (``expect``): each of the review's defects has a path here
whose expectation fails when its fix is reverted. Then an older upload interleaved with a newer one at every
step."""

from __future__ import annotations

import copy
import functools
import gzip
import io
import json
import unicodedata
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import pytest

from pcam_pipeline.aws.observability import metrics
from pcam_pipeline.core.deadline import invocation
from pcam_pipeline.core.statuses import FileStatus
from pcam_pipeline.state.access import awaiting_mpp_pk
from pcam_pipeline.wsi.structure import SlideLimits
from pcam_pipeline.wsi.vendor import UPLOAD_MARGIN_SECONDS
from tests.fake_bucket import InMemoryQueue
from tests.fault_harness import (
    Run,
    check_like_the_run_without_faults,
    convert_all,
    ingest_message,
    outcome_of,
    s3_event,
)
from tests.faults import Faults
from tests.lab import h5_bytes, make_lab
from tests.unit.test_damaged_files import damaged_chunk
from tests.unit.test_newest_upload_wins import aperio_jpeg2000_svs
from tests.unit.test_openslide_resolution import zstd_tiff

PATCHES = np.random.default_rng(3).integers(0, 255, (5, 96, 96, 3), dtype=np.uint8)
LABELS = np.array([0, 1, 0, 1, 1], np.uint8).reshape(5, 1, 1, 1)
TRAIN_X = "incoming/datasets/ds/camelyonpatch_level_2_split_train_x.h5"
TRAIN_Y = "incoming/datasets/ds/camelyonpatch_level_2_split_train_y.h5"
LONG_ID = unicodedata.normalize("NFD", "é" * 120)  # 240 bytes as typed, 360 as stored: a name too long for disk


def zip_with_a_dot_entry() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(".", b"x")
        bundle.writestr("s.mrxs", b"m")
    return buffer.getvalue()


def hdf5_with_many_long_names() -> bytes:
    """No 'x', and 250 datasets of 1,200-character names: the refusal lists them all (shared/repros/big_event)."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for index in range(250):
            handle.create_dataset(f"{index:03d}" + "n" * 1200, data=np.zeros(1, np.uint8))
    return buffer.getvalue()


def seventy_two_dpi_tiff() -> bytes:
    import tempfile
    from pathlib import Path

    return zstd_tiff(Path(tempfile.mkdtemp()) / "s.tif", 72).read_bytes()


def small_svs() -> bytes:
    return aperio_jpeg2000_svs(rows=4, cols=4)  # OpenSlide stages it in 0.4 s (the default slide: 1 s)


Upload = tuple[str, Callable[[], bytes]]


@dataclass(frozen=True)
class Checkpoint:
    fakes: tuple[Any, ...]  # the bucket, queue, table and bus
    calls: int
    uploads: int  # the version ids of the lab's uploads (the pipeline's own writes come after)


@dataclass(frozen=True)
class Drops:
    """``before``: delivered and converted before the faults are armed; ``uploads``: dropped, then delivered as
    their S3 events with the faults armed, then every shard converted. ``expect`` checks the end, faults or none."""

    uploads: tuple[Upload, ...]
    expect: Callable[[Any], None] = lambda lab: None
    before: tuple[Upload, ...] = ()
    seconds_left: float | None = None  # run as a Lambda invocation with this much time left
    ignored: bool = False  # not a lab's file: no call, no record, no event
    checkpoints: dict[Faults, Checkpoint] = field(default_factory=dict, compare=False, hash=False)

    def world(self, faults: Faults, converting: Checkpoint | None = None) -> tuple[Any, Callable[[Run], None]]:
        """The lab and its run; from ``converting`` on (the run without faults, as it was when conversion began):
        only the conversion is run, its calls numbered after the ingestion's."""
        if converting is not None:
            lab = make_lab(faults=faults, fakes=copy.deepcopy(converting.fakes))
            faults.calls = ["(ingestion, as without faults)"] * converting.calls
            return lab, lambda run: convert_all(run, lab)
        lab = make_lab(faults=faults, fakes=self._before_faults().fakes() if self.before else None)
        dropped = [lab.drop(key, body()) for key, body in self.uploads]
        uploads = lab.blobs._written

        def run(run: Run) -> None:
            for upload in dropped:
                ingest_message(run, lab, s3_event(upload.key, upload.version_id, upload.etag))
            if faults.fail_at is None:
                self.checkpoints[faults] = Checkpoint(lab.fakes(), len(faults.calls), uploads)
            convert_all(run, lab)

        return lab, run

    @functools.cache  # noqa: B019 (a few scenarios, kept for the test session: each run starts from a copy)
    def _before_faults(self) -> Any:
        lab = make_lab()
        for key, body in self.before:
            lab.ingestor.ingest(lab.drop(key, body()))
            lab.convert_all()
        return lab


def announced(lab: Any, detail_type: str) -> list[dict[str, Any]]:
    """The distinct events of a type (the harness allows an identical repeat when the write after it failed)."""
    return list({json.dumps(detail, sort_keys=True): detail for detail in lab.publisher.of_type(detail_type)}.values())


def quarantined_once(because: str, where: str = "quarantine/") -> Callable[[Any], None]:
    def expect(lab: Any) -> None:
        (event,) = announced(lab, "File Quarantined")
        assert because in f"{event['problem']}; {event['found']}" and event["quarantine_key"].startswith(where)

    return expect


def slide_ready(lab: Any) -> None:
    assert len(announced(lab, "Slide Ready")) == 1


def waits_for_its_sidecar(lab: Any) -> None:
    assert lab.state.get(awaiting_mpp_pk("s")) is not None
    quarantined_once("placeholder")(lab)


def cut_again_at_the_sidecars_resolution(lab: Any) -> None:
    (sidecar,) = [v for v in lab.blobs.versions("incoming/slides/s.json")]
    assert lab.state.file_version("incoming/slides/s.json", sidecar.version_id).status is FileStatus.SIDECAR_RECORDED
    assert lab.state.slide("s").sidecar_version == sidecar.version_id and not lab.publisher.of_type("File Quarantined")
    assert len(announced(lab, "Slide Ready")) == 2  # the first cut (before the faults), and the re-cut


INGESTION = {
    "an HDF5 slide": Drops((("incoming/slides/s1.h5", lambda: h5_bytes(x=PATCHES)),), slide_ready),
    "a gzipped HDF5 slide": Drops((("incoming/slides/s2.h5.gz", lambda: gzip.compress(h5_bytes(x=PATCHES))),),
                                  slide_ready),
    "a split's images and labels": Drops(((TRAIN_X, lambda: h5_bytes(x=PATCHES)),
                                          (TRAIN_Y, lambda: h5_bytes(y=LABELS)))),
    "a file that is not HDF5": Drops((("incoming/slides/bad.h5", lambda: b"not an hdf5 file"),),
                                     quarantined_once("not an HDF5 file")),
    "a file damaged inside": Drops((("incoming/slides/s9.h5", lambda: damaged_chunk(1, count=3)),),
                                   quarantined_once("cannot be read")),
    "a refusal naming 250 long datasets": Drops((("incoming/slides/many.h5", hdf5_with_many_long_names),),
                                                quarantined_once("more characters not shown")),
    "a lab's file with a key too long to quarantine as is": Drops(
        (("incoming/labs/north/slides/" + "a" * 990 + ".h5", lambda: b"not hdf5"),),
        quarantined_once("too long", "quarantine/incoming/labs/north/long-names/")),
    "a zip with an entry named '.', and a long slide id": Drops(
        ((f"incoming/slides/{LONG_ID}.zip", zip_with_a_dot_entry),), quarantined_once("without a file name")),
    "a 72-dpi TIFF that OpenSlide reads": Drops((("incoming/slides/s.tif", seventy_two_dpi_tiff),),
                                                waits_for_its_sidecar),
    "a slide OpenSlide cannot read in the time the invocation has left": Drops(
        (("incoming/slides/slow.svs", small_svs),), quarantined_once("in the time it had"),
        seconds_left=UPLOAD_MARGIN_SECONDS + 0.01),
    "a sidecar after a slide OpenSlide staged": Drops(
        (("incoming/slides/s.json", lambda: b'{"mpp": 0.45}'),), cut_again_at_the_sidecars_resolution,
        before=(("incoming/slides/s.svs", small_svs),)),
    "a folder marker and .DS_Store": Drops((("incoming/slides/", bytes), ("incoming/slides/.DS_Store", bytes)),
                                           ignored=True),
}  # fmt: skip


def ingestion_run(
    scenario: Drops, faults: Faults, converting: Checkpoint | None = None, duplicate_before: int | None = None
):
    metrics.clear_metrics()  # one invocation's worth: Powertools flushes (and needs a namespace) at 100
    lab, run = scenario.world(faults, converting)
    drops = lab.blobs._written if converting is None else converting.uploads  # the lab's uploads' version ids
    time_left = invocation(scenario.seconds_left) if scenario.seconds_left else nullcontext()
    with faults.armed(), time_left:
        run(Run(lab, faults, duplicate_before=duplicate_before))
    scenario.expect(lab)
    return outcome_of(lab.table, lab.blobs, lab.publisher.published, set(), drops)


@pytest.mark.parametrize("name", INGESTION)
def test_ingestion_and_conversion_end_the_same_whichever_call_fails_once(name):
    scenario = INGESTION[name]
    counting = Faults()
    expected = ingestion_run(scenario, counting)
    assert expected.orphans == [] and expected.unexplained == []
    if scenario.ignored:
        assert counting.calls == [] and not expected.events and expected.state == []
    assert counting.calls or scenario.ignored, "the path made no port call"
    converting = scenario.checkpoints.pop(counting, None)
    for n in range(1, len(counting.calls) + 1):
        faults = Faults(fail_at=n)
        # A fault in the conversion starts from the ingestion as it ended without faults (OpenSlide not run again).
        from_checkpoint = converting if converting and n > converting.calls else None
        check_like_the_run_without_faults(expected, ingestion_run(scenario, faults, from_checkpoint), faults)


def interleaved(first: Callable[[], Any], second: Callable[[], Any], faults: Faults, at: int) -> None:
    """Run ``first``; just before its ``at``-th port call, run ``second`` whole, then let ``first`` go on."""
    pending = [second]

    def before(call: str, real=faults.before) -> None:
        real(call)
        if pending and len(faults.calls) == at:
            faults._armed = False
            pending.pop()()
            faults._armed = True

    faults.before = before  # type: ignore[method-assign]
    with faults.armed():
        first()


def test_an_older_upload_never_wins_whatever_step_the_newer_one_arrives_at():
    counting = Faults()
    lab = make_lab(faults=counting)
    older = lab.drop("incoming/slides/s.h5", h5_bytes(x=PATCHES[:2]))
    with counting.armed():
        lab.ingestor.ingest(older)
    for at in range(1, len(counting.calls) + 1):
        faults = Faults()
        lab = make_lab(faults=faults)
        older = lab.drop("incoming/slides/s.h5", h5_bytes(x=PATCHES[:2]))

        def newer_arrives(lab=lab):
            newer = lab.drop("incoming/slides/s.h5", h5_bytes(x=PATCHES))
            lab.ingestor.ingest(newer)

        interleaved(lambda lab=lab, older=older: lab.ingestor.ingest(older), newer_arrives, faults, at)
        lab.convert_all()
        slide = lab.state.slide("s")
        assert slide.x_version == lab.blobs.latest_version("incoming/slides/s.h5") and slide.x_count == 5, at
        (ready,) = lab.publisher.of_type("Slide Ready")
        assert ready["input_version"] == slide.x_version and ready["patch_count"] == 5, at
        # Refused at planning, or planned before the newer one and then replaced: never converted.
        assert lab.state.file_version(older.key, older.version).status is not FileStatus.CONVERTED, at


# ------------------------------------------------------------------ a slide too large for the function
def staged_by_the_job(lab: Any, prefix: str) -> None:
    """What the staging job does (its own code, not a call of the pipeline's): stage the copy, write the answer."""
    import tempfile
    from pathlib import Path

    from pcam_pipeline.wsi.staging_jobs import WANTED_FILE, StagingWanted
    from pcam_pipeline.wsi.staging_run import stage_in_job

    wanted = StagingWanted.from_json(json.loads(lab.blobs.get_bytes(prefix + WANTED_FILE)))
    with tempfile.TemporaryDirectory() as work:
        slide = Path(work, "input", Path(wanted.source_key).name)
        slide.parent.mkdir(parents=True)
        slide.write_bytes(lab.blobs.get_bytes(wanted.source_key))
        limits = {"cpu_seconds": 60, "memory_bytes": 1 << 30, "max_staging_gigapixels": 4.0}
        stage_in_job(slide.parent, Path(work, "output"), {**wanted.to_json(), **limits})
        for path in Path(work, "output").iterdir():
            lab.blobs.put_bytes(wanted.output_prefix + path.name, path.read_bytes(), "application/octet-stream")


def staging_run(faults: Faults, duplicate_before: int | None = None):
    from pcam_pipeline.wsi.staging_jobs import SLIDE_STAGED, STAGING_WANTED

    metrics.clear_metrics()
    flow_queue = InMemoryQueue()
    lab = make_lab(faults=faults, flow_queue=flow_queue, slide_limits=SlideLimits(lambda_vendor_bytes=0))
    upload = lab.drop("incoming/slides/big.svs", small_svs())
    run = Run(lab, faults, duplicate_before=duplicate_before)
    with faults.armed():
        ingest_message(run, lab, s3_event(upload.key, upload.version_id, upload.etag))
    asked = {
        json.dumps(m["detail"], sort_keys=True) for m in flow_queue.take_all() if m["detail-type"] == STAGING_WANTED
    }
    (prefix,) = {json.loads(detail)["prefix"] for detail in asked}  # asked again on a retry: the same job
    staged_by_the_job(lab, prefix)
    ended = {"prefix": prefix, "job": "pcam-stage-x", "status": "Completed", "reason": ""}
    with faults.armed():
        run.deliver(SLIDE_STAGED, lambda _: lab.ingestor.continue_staged(ended))
        convert_all(run, lab)
    slide_ready(lab)
    return outcome_of(lab.table, lab.blobs, lab.publisher.published, set(), 1)


def test_a_slide_staged_by_a_job_ends_the_same_whichever_ingestion_call_fails_once():
    counting = Faults()
    expected = staging_run(counting)
    assert any("flow queue" in call for call in counting.calls), "the function asked for a job"
    for n in range(1, len(counting.calls) + 1):
        faults = Faults(fail_at=n)
        check_like_the_run_without_faults(expected, staging_run(faults), faults)


# ------------------------------------------------------------------ a message delivered twice at once
@pytest.mark.parametrize("name", INGESTION)
def test_ingestion_and_conversion_end_the_same_when_a_message_is_delivered_again_at_any_step(name):
    """Each message (an S3 event or a shard) handled up to a port call, then a copy of it handled whole on
    another worker, then the first one goes on: every event still once, and the same end as one delivery."""
    scenario = INGESTION[name]
    counting = Faults()
    expected = ingestion_run(scenario, counting)
    scenario.checkpoints.pop(counting, None)
    for n in range(1, len(counting.calls) + 1):
        faults = Faults()
        got = ingestion_run(scenario, faults, duplicate_before=n)
        assert faults.duplicated, f"no message was being handled at call {n}"
        check_like_the_run_without_faults(expected, got, faults, f"with {faults.duplicated}")


def test_a_slide_staged_by_a_job_ends_the_same_when_a_message_is_delivered_again_at_any_step():
    counting = Faults()
    expected = staging_run(counting)
    for n in range(1, len(counting.calls) + 1):
        faults = Faults()
        got = staging_run(faults, n)
        assert faults.duplicated, f"no message was being handled at call {n}"
        check_like_the_run_without_faults(expected, got, faults, f"with {faults.duplicated}")
