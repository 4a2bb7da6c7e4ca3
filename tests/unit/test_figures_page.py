"""docs/figures.md is written from the benchmarks' JSON: each benchmark's section with its run date and its
headline ratios, the machine, and the benchmarks not run yet named with the script to run."""

import importlib.util
import json
import os
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).parents[2]


def figures_page():
    spec = importlib.util.spec_from_file_location("figures_page", ROOT / "bench" / "figures_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_page_from_one_benchmark_says_when_where_and_what_is_missing(tmp_path):
    result = {"train_patches": 20000, "held_out_patches": 5000, "fit_seconds": 19.42, "held_out_auc": 0.9921,
              "held_out_accuracy": 0.9573, "synth_and_jpeg_seconds": 30.0}  # fmt: skip
    (tmp_path / "local_model.json").write_text(json.dumps(result))
    ran = datetime(2026, 12, 3, 6, 23, tzinfo=UTC).timestamp()
    os.utime(tmp_path / "local_model.json", (ran, ran))
    page = figures_page().page(tmp_path, now=datetime(2026, 12, 4, 1, 2, tzinfo=UTC))
    assert "Page written 2026-12-04 01:02 UTC on " in page and f"{os.cpu_count()} cores" in page
    section = page.split("## The local model\n", 1)[1]
    assert "`bench/bench_local_model.py`, run 2026-12-03 06:23 UTC." in section
    assert "| the local model: fit on 20,000 patches | 19.4 s; held-out AUC **0.992**, accuracy 0.957 on 5,000 " in (
        section
    )
    assert "Not measured yet: `bench/bench_ingest.py` writes" in page.split("## The official PCam files")[0]


def test_every_benchmark_in_make_bench_has_a_section():
    makefile = (ROOT / "Makefile").read_text()
    scripts = {script for _, script, _ in figures_page().BENCHMARKS.values()}
    run = {line.split()[-1] for line in makefile.splitlines() if "bench/bench_" in line and "python" in line}
    assert run == scripts
    assert makefile.index("bench/bench_slide_formats.py") < makefile.index("bench/figures_page.py")
