"""`pcam synth` and `pcam local run` as a lab would use them."""

import json

from pcam_local.cli import main
from tests.integration.conftest import INTEGRATION

pytestmark = INTEGRATION


def test_local_run_converts_a_drop_folder_and_reports_a_bad_file(tmp_path, capsys):
    drop, out = tmp_path / "drop", tmp_path / "out"
    args = ["--train", "24", "--valid", "12", "--test", "0", "--slides", "1", "--slide-rows", "3", "--slide-cols", "4"]
    assert main(["synth", str(drop), *args]) == 0
    (drop / "slides" / "broken.h5").write_bytes(b"not really hdf5")

    code = main(["local", "run", str(drop), "--out", str(out), "--timeout", "300"])

    printed = capsys.readouterr().out
    assert code == 1, "a quarantined input makes the run fail"
    assert "broken.h5" in printed and "not an HDF5 file" in printed
    assert (out / "manifests/synthetic/train.manifest").read_text().count("\n") == 24
    assert (out / "manifests/synthetic/valid.manifest").read_text().count("\n") == 12
    assert len(json.loads((out / "manifests/slides/slide-001.manifest").read_text())) == 1 + 12
    assert (out / "quarantine/incoming/slides/broken.h5").read_bytes() == b"not really hdf5"
    error = json.loads((out / "quarantine/incoming/slides/broken.h5.error.json").read_text())
    assert error["problem"] == "the file is not an HDF5 file"
    summary = json.loads((out / "summary.json").read_text())
    assert {r["name"] for r in summary["ready"]} == {"synthetic/train", "synthetic/valid", "slide-001"}
    assert len(summary["events"]) == 3


def test_local_run_exits_zero_when_every_input_is_usable(tmp_path):
    drop, out = tmp_path / "drop", tmp_path / "out"
    args = ["--train", "8", "--valid", "0", "--test", "0", "--slides", "0"]
    main(["synth", str(drop), *args])
    assert main(["local", "run", str(drop), "--out", str(out), "--timeout", "300"]) == 0
    assert (out / "manifests/synthetic/train.manifest").exists()
