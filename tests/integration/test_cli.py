"""`pcam synth` and `pcam local run` as a lab would use them."""

import json

from pcam_ops.cli import main
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
    (train,) = (out / "manifests/synthetic/train").glob("*.manifest")
    (valid,) = (out / "manifests/synthetic/valid").glob("*.manifest")
    (slide,) = (out / "manifests/slides/slide-001").glob("*.manifest")
    assert train.read_text().count("\n") == 24 and valid.read_text().count("\n") == 12
    assert len(json.loads(slide.read_text())) == 1 + 12
    assert (out / "quarantine/incoming/slides/broken.h5").read_bytes() == b"not really hdf5"
    error = json.loads((out / "quarantine/incoming/slides/broken.h5.error.json").read_text())
    assert error["problem"] == "the file is not an HDF5 file"
    summary = json.loads((out / "summary.json").read_text())
    assert {r["name"] for r in summary["ready"]} == {"synthetic/train", "synthetic/valid", "slide-001"}
    announced = sorted(event["detail-type"] for event in summary["events"])
    newest = ["File Quarantined v2", "Slide Ready v2", "Split Ready v2", "Split Ready v2"]
    assert announced == sorted(newest + [name.removesuffix(" v2") for name in newest]), "each also as version 1"


def test_local_run_exits_zero_when_every_input_is_usable(tmp_path):
    drop, out = tmp_path / "drop", tmp_path / "out"
    args = ["--train", "8", "--valid", "0", "--test", "0", "--slides", "0"]
    main(["synth", str(drop), *args])
    assert main(["local", "run", str(drop), "--out", str(out), "--timeout", "300"]) == 0
    assert list((out / "manifests/synthetic/train").glob("*.manifest"))
    reports = json.loads((out / ".local-stack/iam-report.json").read_text())
    assert {r["role"] for r in reports} >= {"IngestFunctionRole", "ConvertShardFunctionRole"}
    assert all(r["denied"] == [] for r in reports)


def test_local_up_serves_a_stack_a_lab_can_drop_into(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    import boto3
    import numpy as np

    from pcam_local.moto_server import free_port
    from tests.lab import h5_bytes

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "pcam_ops.cli", "local", "up", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: nothing is left behind, whatever happens
    )
    try:
        printed = ""
        deadline = time.monotonic() + 60
        while "s3 cp" not in printed and time.monotonic() < deadline:
            printed += server.stdout.readline()
        assert f"http://127.0.0.1:{port}" in printed
        bucket = re.search(r"s3://(pcam-local-databucket-[a-z0-9]+)/incoming/", printed).group(1)
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        patches = np.random.default_rng(1).integers(0, 255, (6, 96, 96, 3), dtype=np.uint8)
        s3.put_object(Bucket=bucket, Key="incoming/slides/from-the-cli.h5", Body=h5_bytes(x=patches))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if s3.list_objects_v2(Bucket=bucket, Prefix="manifests/slides/from-the-cli").get("KeyCount"):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the dropped slide was not converted")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)


def test_local_run_fails_as_aws_would_for_a_network_that_does_not_exist_at_96_px(tmp_path, capsys):
    """ResNet-20 at 96 px (here through the dataset's own training.json) fails the training job with the
    reason, and `pcam local run` reports it and exits 1, as the first real deployment would have."""
    drop, out = tmp_path / "drop", tmp_path / "out"
    main(["synth", str(drop), "--train", "64", "--valid", "16", "--test", "0", "--slides", "0"])
    (drop / "datasets/synthetic/training.json").write_text(
        json.dumps({"hyperparameters": {"num_layers": 20, "use_pretrained_model": 0}})
    )
    assert main(["local", "run", str(drop), "--out", str(out), "--timeout", "300"]) == 1
    printed = capsys.readouterr().out
    assert "num_layers 20 does not exist for 96x96 images" in " ".join(printed.split())


def test_local_run_with_a_file_that_crashes_the_reader_ends_with_its_report(tmp_path, capsys, monkeypatch):
    """The HDF5 library "crashes" (SIGSEGV) on one slide: its worker dies on every delivery, the runtime
    replaces it, the last delivery quarantines the file, and everything else is converted."""
    from pcam_local.execution_environment import CRASH_READING_VARIABLE

    drop, out = tmp_path / "drop", tmp_path / "out"
    main(["synth", str(drop), "--train", "8", "--valid", "0", "--test", "0", "--slides", "2", "--slide-rows", "2",
          "--slide-cols", "2"])  # fmt: skip
    monkeypatch.setenv(CRASH_READING_VARIABLE, "slide-002")  # the workers inherit it

    code = main(["local", "run", str(drop), "--out", str(out), "--timeout", "300"])

    printed = capsys.readouterr().out
    assert code == 1 and "slide-002" in printed and "the file crashed the reader" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert {r["name"] for r in summary["ready"]} == {"synthetic/train", "slide-001"}
    error = json.loads((out / "quarantine/incoming/slides/slide-002.h5.error.json").read_text())
    # 1 or 2: locally the retry comes within a second, while the dead delivery's idempotency record still
    # says "in progress" (that delivery then ends normally, refused); on AWS it comes after the visibility timeout.
    assert error["found"].endswith("earlier attempt(s) ended without an answer (the process died)")
