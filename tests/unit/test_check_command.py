"""`pcam check` gives a lab, before uploading, the reason ingestion would quarantine a file for: the same
problem, expectation and finding for every hostile HDF5 file and slide the ingestion tests refuse."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from pcam_ops.cli import main
from pcam_pipeline.core.errors import InvalidInput
from pcam_synth.hostile_slides import HOSTILE_SLIDES
from pcam_synth.whole_slides import synth_wsi
from tests.hostile_files import HOSTILE, hostile_file
from tests.lab import h5_bytes


def refusal(tmp_path, name: str, body: bytes, *options: str, capsys) -> str:
    (tmp_path / name).write_bytes(body)
    assert main(["check", *options, str(tmp_path / name)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"would be quarantined: {tmp_path / name} as incoming/")
    return out


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_each_hostile_hdf5_file_gets_the_reason_ingestion_gives(case, tmp_path, capsys):
    build, reader, problem, expected, found = HOSTILE[case]
    name = "hostile.h5" if reader == "x" else "camelyonpatch_level_2_split_train_y.h5"
    options = () if reader == "x" else ("--dataset", "ds")
    said = refusal(tmp_path, name, hostile_file(build), *options, capsys=capsys)
    assert InvalidInput(problem, expected, found).describe() in said  # as tests/integration/test_bad_input pins


@pytest.mark.parametrize("name", sorted(HOSTILE_SLIDES))
def test_each_hostile_slide_gets_the_reason_ingestion_gives(name, tmp_path, capsys):
    build, problem = HOSTILE_SLIDES[name]
    assert problem in refusal(tmp_path, "hostile.tif", build(), capsys=capsys)


def test_a_lab_learns_what_each_good_file_will_be_taken_as(tmp_path, capsys):
    patches = np.ones((3, 96, 96, 3), np.uint8)
    (tmp_path / "s1.h5.gz").write_bytes(gzip.compress(h5_bytes(x=patches, coords=np.zeros((3, 2), int))))
    synth_wsi(tmp_path / "s2.svs", rows=12, cols=16, aperio=True)
    (tmp_path / "s2.json").write_text('{"mpp": 0.25}')

    assert main(["check", "--lab", "lab-a", *(str(tmp_path / n) for n in ("s1.h5.gz", "s2.svs", "s2.json"))]) == 0
    out = capsys.readouterr().out
    assert "as incoming/labs/lab-a/slides/s1.h5.gz: slide labs/lab-a/s1: 3 patches with coordinates" in out
    assert "slide labs/lab-a/s2: " in out and "tiles on tissue" in out and "µm/px (Aperio" in out
    assert "the sidecar of slide labs/lab-a/s2: 0.25 µm/px" in out


def test_the_reasons_a_lab_meets_most(tmp_path, capsys):
    synth_wsi(tmp_path / "no-mpp.svs", rows=12, cols=16, aperio=True, says_mpp=False)
    said = refusal(tmp_path, "no-mpp.svs", (tmp_path / "no-mpp.svs").read_bytes(), capsys=capsys)
    assert "the slide does not say its resolution (µm per pixel)" in said and "incoming/slides/no-mpp.json" in said
    truncated = gzip.compress(h5_bytes(x=np.ones((3, 96, 96, 3), np.uint8)))[:-40]
    assert "the .gz file is truncated" in refusal(tmp_path, "t.h5.gz", truncated, capsys=capsys)
    greedy = b'{"instance_type": "ml.p5.48xlarge"}'
    said = refusal(tmp_path, "training.json", greedy, "--dataset", "pcam", capsys=capsys)
    assert "instance_type is not one this deployment allows for training" in said
    assert "the file name does not say which split" in refusal(tmp_path, "x.h5", b"", "--dataset", "d", capsys=capsys)
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in refusal(tmp_path, "a\u202eb.h5", b"", capsys=capsys)


def test_a_missing_file_is_said_plainly(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nowhere.h5")]) == 1
    assert "nowhere.h5: no such file" in capsys.readouterr().err
