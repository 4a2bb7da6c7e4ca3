"""A seeded fuzz run of the ingestion (tests/fuzz.py): mutated and hostile HDF5 files and whole-slide images
end converted or quarantined with a reason, never with an exception, a crash or a hang. `make fuzz N=…` runs
more."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import fuzz

ROOT = Path(__file__).parents[2]


def test_two_hundred_mutated_files_end_converted_or_quarantined_with_a_reason(tmp_path):
    report = tmp_path / "fuzz.json"
    finished = subprocess.run(  # a fresh process: each case is forked from it
        [sys.executable, "-m", "tests.fuzz", "--cases", "200", "--seed", "7", "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    summary = json.loads(report.read_text())
    assert summary["findings"] == [], finished.stdout
    assert finished.returncode == 0
    assert summary["crash_free_rate"] == 1.0
    # The run cannot pass by doing nothing: good files convert, broken ones are refused, every mutator ran.
    assert summary["outcomes"]["converted"] >= 5 and summary["outcomes"]["quarantined"] >= 100
    whats = {what for what, _, _ in fuzz.cases(200, 7)}
    from pcam_synth.hostile_slides import TILE_MUTATORS

    for mutator in [*fuzz.MUTATORS, *TILE_MUTATORS, "random structure", "hostile"]:
        assert any(what.startswith(mutator) for what in whats), mutator
    assert sum("whole-slide image" in what for what in whats) >= 4, "TIFF and SVS slides are mutated too"


def test_the_harness_reports_a_crash_a_hang_and_an_escaping_exception(monkeypatch):
    def crash(*_):
        os.kill(os.getpid(), signal.SIGSEGV)

    def hang(*_):
        time.sleep(60)

    def escape(*_):
        raise KeyError("'x'")

    monkeypatch.setattr(fuzz, "TIME_LIMIT_SECONDS", 2)
    outcomes = {}
    for name, behaviour in {"crash": crash, "hang": hang, "exception": escape}.items():
        monkeypatch.setattr(fuzz, "_outcome_in_child", behaviour)
        outcomes[name] = fuzz.run_case(None, "x", b"", 0)
    assert (outcomes["crash"]["status"], outcomes["crash"]["reason"]) == ("crash", "signal 11")
    assert outcomes["hang"]["status"] == "hang" and outcomes["hang"]["seconds"] >= 2
    assert (outcomes["exception"]["status"], outcomes["exception"]["reason"]) == ("exception", "KeyError: \"'x'\"")
