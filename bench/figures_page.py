"""docs/figures.md from the benchmarks' results (bench-output/*.json): one page of measured figures, with the date
each benchmark ran and the machine it ran on. `make bench` runs it last; other pages link to it instead of
restating numbers.

    python bench/figures_page.py [--results bench-output] [--page docs/figures.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

type Rows = list[tuple[str, str]]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "")
    memory_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    return (f"{os.cpu_count()} cores ({cpu or platform.processor() or 'unknown CPU'}), "
            f"{memory_kb / (1 << 20):.0f} GB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")  # fmt: skip


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


# ---------------------------------------------------------------- each benchmark's headline figures
def ingest(r: dict) -> Rows:
    rows = []
    for count in ("8192", "65536"):
        f = r[count]
        rows.append((f"{int(count):,}-patch HDF5 slide, drop to \"Slide Ready\"",
                     f"{f['patches_per_second']:.0f} patches/s ({f['seconds']:.1f} s) = "
                     f"**{f['ratio_to_stack_put']:.2f} ×** the stack's PUT ceiling, "
                     f"{f['ratio_to_bare_moto_put']:.2f} × bare moto's"))  # fmt: skip
        rows.append((f"— its conversion shards ({f['shards']} of {r['patches_per_shard']:,})",
                     f"{f['shard_seconds_mean']:.1f} s wall, {f['shard_cpu_seconds_mean']:.1f} s CPU each; peak "
                     f"worker memory {f['peak_worker_mb']:.0f} MB"))  # fmt: skip
    lam = r["pcam_train_on_lambda"]
    rows.append(("peak worker memory, 64k file / 8k file (target ≤ 1.2)", f"**{r['memory_ratio_64k_to_8k']:.2f} ×**"))
    rows.append((f"PCam train split on Lambda: {lam['shards']} shards of {lam['patches_per_shard']:,}",
                 f"{lam['shard_cpu_seconds']:.0f} s CPU per shard; {lam['shard_seconds_at_local_put_ceiling']:.0f} s "
                 f"at this machine's local PUT ceiling, against the {lam['lambda_timeout']} s limit"))  # fmt: skip
    return rows + _put_ceiling(r["put_ceiling"])


def _put_ceiling(c: dict) -> Rows:
    return [("PUT ceiling at its best (3 KB objects, 1–2 processes × 8–32 threads)",
             f"stack {c['stack']['best_per_second']:.0f}/s, bare moto {c['bare_moto']['best_per_second']:.0f}/s "
             f"({c['stack']['best_per_second'] / c['bare_moto']['best_per_second']:.2f} ×)")]  # fmt: skip


def pcam_scale(r: dict) -> Rows:
    s = r["split"]
    return [
        (f"official-size train split ({s['patches']:,} patches, {s['bytes'] / 1e9:.2f} GB), upload start to "
         "\"Split Ready\"",
         f"{s['end_to_end_seconds'] / 60:.1f} min = {s['end_to_end_patches_per_second']:.0f} patches/s = "
         f"**{s['end_to_end_ratio_to_stack_put']:.2f} ×** the stack's PUT ceiling "
         f"({s['end_to_end_ratio_to_bare_moto_put']:.2f} × bare moto's); upload {s['upload_seconds']:.0f} s"),
        ("— conversion alone", f"{s['conversion_patches_per_second']:.0f} patches/s = "
                              f"{s['conversion_ratio_to_stack_put']:.2f} × the stack's PUT ceiling"),
        ("peak resident memory of the whole stack, every process summed (target < 3 GB)",
         f"**{r['peak_stack_memory_bytes'] / 1e9:.2f} GB**"),
        *_put_ceiling(r["put_ceiling"]),
    ]  # fmt: skip


def scoring(r: dict) -> Rows:
    return [
        (f"gathering a slide's predictions: {r['outputs']:,} `.out` objects, {r['threads']} threads",
         f"{r['gather_per_s']:.0f}/s = **{r['gather_to_raw_get']:.2f} ×** the raw GET rate "
         f"({r['raw_get_per_s_before']:.0f}/s before, {r['raw_get_per_s_after']:.0f}/s after)"),
        ("`pcam demo` end to end (synthesis, ingestion, training, evaluation, promotion, scoring)",
         f"{r['demo_seconds']:.0f} s = **{r['demo_to_target']:.2f} ×** the 5-minute target"),
    ]  # fmt: skip


def scoring_queue(r: dict) -> Rows:
    aws = r["modelled_aws"]
    return [
        (f"{r['slides']} slides of {r['patches_per_slide']} patches dropped at once, transform quota "
         f"{r['transform_job_quota']}",
         f"{r['scored']}/{r['slides']} scored, {r['slide_scored_events']} \"Slide Scored\", by "
         f"{r['transform_jobs']} transform jobs ({min(r['slides_per_job'])}–{max(r['slides_per_job'])} slides "
         f"each), {r['quota_refusals']} quota refusals waited out, {r['dead_letters']} dead letters, "
         f"{r['alerts']} alerts, {r['wall_seconds']:.0f} s"),
        (f"modelled on AWS ({aws['instance']} ${aws['usd_per_hour']}/h, {aws['startup_minutes']:.0f} min start-up)",
         f"the queue's jobs **{aws['cost_ratio']:.2f} ×** one job per slide "
         f"({aws['scoring_queue']['instance_minutes']} vs {aws['one_job_per_slide']['instance_minutes']} "
         "instance-minutes)"),
    ]  # fmt: skip


def wsi_readers(r: dict) -> Rows:
    versus_openslide, staged = r["ratios_tifffile_over_openslide"], r["ratios_staged_over_tifffile"]
    end = r["end_to_end"]
    return [
        (f"{r['slide']['file_bytes'] / 1e9:.2f} GB slide, ingestion + one {r['shard_tiles']:,}-tile shard: "
         "tifffile on ranged GETs / OpenSlide on a downloaded copy",
         f"bytes read from S3 **{versus_openslide['bytes_read_from_s3']:.3f} ×**, ingestion seconds "
         f"{versus_openslide['ingest_seconds']:.2f} ×, shard seconds {versus_openslide['shard_seconds']:.2f} ×, "
         f"peak memory {versus_openslide['peak_rss_mb']:.2f} ×"),
        ("staged by OpenSlide at ingestion / read in place",
         f"total seconds {staged['total_seconds']:.2f} ×, ingestion {staged['ingest_seconds']:.1f} ×"),
        (f"the slide dropped on the stack: {end['tiles']:,} tiles to \"Slide Ready\"",
         f"{end['end_to_end_seconds']:.0f} s = {end['end_to_end_tiles_per_second']:.0f} tiles/s = "
         f"**{end['ratio_to_stack_put']:.2f} ×** the stack's PUT ceiling; whole stack at most "
         f"{end['peak_stack_memory_bytes'] / 1e9:.2f} GB resident"),
        ("unzipped wheels in the layer", ", ".join(f"{name} {mb:.0f} MB" for name, mb in r["bundle_mb"].items())),
    ]  # fmt: skip


def slide_formats(r: dict) -> Rows:
    base = r["formats"]["vips-jpeg"]
    base_seconds = base["ingestion"]["seconds"] + base["shard"]["seconds"]
    rows = []
    for name, f in r["formats"].items():
        seconds = f["ingestion"]["seconds"] + f["shard"]["seconds"]
        staged = f["ingestion"].get("staging")
        how = (f"staged by OpenSlide ({staged['seconds']:.1f} s, {staged['bytes_written'] / 1e6:.0f} MB copy)"
               if staged else "read in place")  # fmt: skip
        rows.append((f"{name} ({f['writer']}, {f['file_bytes'] / 1e6:.0f} MB)",
                     f"ingestion + {f['shard']['tiles']:,}-tile shard {seconds:.2f} s = "
                     f"**{seconds / base_seconds:.2f} ×** libvips JPEG; {how}"))  # fmt: skip
    for name, f in r["hostile"].items():
        rows.append((f"hostile: {name} ({f['file_bytes'] / 1e6:.2f} MB)",
                     f"{f['cpu_seconds']:.3f} s CPU at ingestion (budget 5 s) → {f['outcome']}"))  # fmt: skip
    return rows


def local_model(r: dict) -> Rows:
    return [(f"the local model: fit on {r['train_patches']:,} patches",
             f"{r['fit_seconds']:.1f} s; held-out AUC **{r['held_out_auc']:.3f}**, accuracy "
             f"{r['held_out_accuracy']:.3f} on {r['held_out_patches']:,} patches")]  # fmt: skip


def slide_verdicts(r: dict) -> Rows:
    rows = [
        ("the model, as the evaluation makes it",
         f"{r['calibration']} calibration, threshold {r['threshold']:.3f} for 95 % validation sensitivity; test "
         f"sensitivity {r['test_sensitivity']:.3f}, specificity {r['test_specificity']:.3f} (false positives at most "
         f"{r['false_positive_rate_upper']:.1%} of normal tiles)"),
        (f"{r['negative_slides']} tumour-free slides called positive",
         f"**{r['negative_called_positive_with_rule']}** with the evidence rule, "
         f"{r['negative_called_positive_without']} without it ({r['negative_positive_tiles_mean']:.1%} of their tiles "
         f"positive, {r['negative_groups_mean']:.0f} groups a slide)"),
    ]  # fmt: skip
    for slide in r["lesion_slides"]:
        called = slide["with the rule"]
        largest = "none" if called["largest_mm"] is None else f"{called['largest_mm']} mm"
        rows.append((f"one lesion of {slide['truth_mm'][0]} mm ({slide['tiles']:,} tiles)",
                     f"{called['category']}, largest counted lesion {largest} (lesions count from "
                     f"{called['minimum_tiles']} tiles; the largest group of all measures "
                     f"{slide['largest_group_mm']:.3f} mm)"))  # fmt: skip
    for diameter, errors in r.get("measurement_error_edges", {}).items():
        rows.append((f"a {diameter} mm lesion's measure less the truth, {len(errors)} places on the tile grid",
                     f"{min(errors):+.2f} to {max(errors):+.2f} tile edges"))  # fmt: skip
    return rows


def tile_checks(r: dict) -> Rows:
    ms, to_jpeg, to_conversion = r["ms_per_patch"], r["ratio_to_jpeg"], r["ratio_to_conversion"]
    rows = [(f"a slide's conversion per patch ({r['patches']:,} real H&E patches, in-memory bucket: no S3 PUT)",
             f"{ms['conversion']:.3f} ms CPU, of which the JPEG encode {ms['jpeg_encode']:.3f} ms")]  # fmt: skip
    for name, words in (("tile_qc", "tile QC measures"), ("stain_sample", "stain sample"),
                        ("macenko_normalisation", "Macenko normalisation")):  # fmt: skip
        rows.append((words, f"{ms[name]:.3f} ms CPU a patch = **{to_conversion[name]:.2f} ×** conversion, "
                            f"{to_jpeg[name]:.1f} × the JPEG encode"))  # fmt: skip
    added = r["pcam_shard_seconds_added"]
    rows.append(("conversion with `StainNormalisation` macenko / without",
                 f"**{to_conversion['conversion_with_macenko']:.2f} ×**"))  # fmt: skip
    rows.append(("a 16,384-patch shard (PatchesPerShard's default)",
                 f"+{added['qc_and_stain_sample']:.0f} s CPU for QC and stain sampling, "
                 f"+{added['macenko_normalisation']:.0f} s more with macenko, against the 900 s limit"))  # fmt: skip
    return rows


BENCHMARKS: dict[str, tuple[str, str, Callable[[dict], Rows]]] = {
    "ingest": ("Ingestion", "bench/bench_ingest.py", ingest),
    "pcam_scale": ("The official PCam files", "bench/bench_pcam_scale.py", pcam_scale),
    "scoring": ("Scoring and the whole product", "bench/bench_scoring.py", scoring),
    "scoring_queue": ("Scoring at lab scale", "bench/bench_scoring_queue.py", scoring_queue),
    "wsi_readers": ("Whole-slide readers", "bench/bench_wsi_readers.py", wsi_readers),
    "slide_formats": ("Slide formats and hostile slides", "bench/bench_slide_formats.py", slide_formats),
    "local_model": ("The local model", "bench/bench_local_model.py", local_model),
    "slide_verdicts": ("Slide verdicts", "bench/bench_slide_verdicts.py", slide_verdicts),
    "tile_checks": ("Quality control and stain normalisation", "bench/bench_tile_checks.py", tile_checks),
}


def page(results: Path, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    parts = [
        "# Figures\n\n",
        "Generated by `make bench` (bench/figures_page.py) from `bench-output/*.json`: do not edit by hand. Every "
        "figure is measured on the local stack; ratios compare two things measured in the same run, so they hold "
        "across machines better than the absolute figures do.\n\n",
        f"Page written {now:%Y-%m-%d %H:%M} UTC on {machine()}; each section says when its benchmark ran.\n",
    ]
    for name, (title, script, rows_of) in BENCHMARKS.items():
        path = results / f"{name}.json"
        parts.append(f"\n## {title}\n")
        if not path.is_file():
            parts.append(f"\nNot measured yet: `{script}` writes `{path}`.\n")
            continue
        ran = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        parts.append(f"\n`{script}`, run {ran:%Y-%m-%d %H:%M} UTC.\n\n| measure | figure |\n|---|---|\n")
        parts += [f"| {measure} | {figure} |\n" for measure, figure in rows_of(json.loads(path.read_text()))]
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("bench-output"))
    parser.add_argument("--page", type=Path, default=Path("docs/figures.md"))
    args = parser.parse_args(argv)
    args.page.write_text(page(args.results))
    print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
