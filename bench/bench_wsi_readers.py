"""Which reader for whole-slide images: tifffile through ranged S3 reads, OpenSlide on a downloaded copy, or the
path slides only OpenSlide reads take (downloaded, staged once by OpenSlide as a tiled TIFF, then read like a TIFF)?

A synthetic pyramidal JPEG-tiled TIFF of PCAM_BENCH_WSI_GB (default 1.5 GB; level 0 at 0.243 µm/px, as
Camelyon16) is put in the local stack's S3. Each reader then does, in a fresh process, what a Lambda does
with a dropped slide: ingestion (open, read the low-resolution level, find tissue, plan the tiles) and one
conversion shard (cut PCAM_BENCH_WSI_TILES kept tiles at 0.972 µm/px; no JPEG encode or upload, which are the
same for all). Measured per step: seconds, bytes read from S3, peak resident memory of the process; and
each reader's unzipped wheel size (the Lambda layer's budget). The staged path is ingestion's for an NDPI, MIRAX
or DICOM slide (wsi.vendor), run here on the TIFF as if OpenSlide alone read it, with the µm/px a sidecar would
give: the download, OpenSlide's child process (CPU seconds, peak memory, tiles decoded of the first staged level),
the staged copy's bytes written to S3, and the shard reading that copy with ranged GETs.

Then the same slide is dropped under incoming/slides/ on the same stack: seconds from the start of the upload
to "Slide Ready" (every tissue tile cut, encoded and written by the conversion shards), tiles per second
against the stack's PUT ceiling measured in the same run, and the whole stack's peak resident memory.
Results: bench-output/wsi_readers.json.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench_pcam_scale import TreeMemory
from bench_slide import LEVEL0_MPP, write_bench_slide
from put_ceiling import put_ceilings

from pcam_local.local_stack import LocalStack

TARGET_GB = float(os.environ.get("PCAM_BENCH_WSI_GB", 1.5))
SHARD_TILES = int(os.environ.get("PCAM_BENCH_WSI_TILES", 4096))

KEY = "bench/wsi/slide.tif"
STAGED_KEY = "bench/wsi/staged.tif"
OUT = Path("bench-output")


def _run_reader(reader: str, endpoint: str, bucket: str, environment: dict, results) -> None:
    os.environ.update(environment)
    import boto3

    from pcam_pipeline.aws import storage
    from pcam_pipeline.wsi.reader import WholeSlide
    from pcam_pipeline.wsi.tiling import TilingSettings, plan_tiles, read_patch

    s3 = boto3.client("s3", endpoint_url=endpoint, config=storage.S3_CONFIG)
    figures: dict = {"reader": reader}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as staging:
        if reader == "openslide":
            import openslide

            from pcam_pipeline.wsi.openslide_staging import OpenSlideView

            local = Path(staging) / "slide.tif"
            s3.download_file(bucket, KEY, str(local))
            figures["staging_seconds"] = time.perf_counter() - started
            figures["bytes_read_from_s3"] = local.stat().st_size
            slide, fileobj = OpenSlideView(openslide.OpenSlide(str(local))), None
        elif reader == "staged":
            fileobj, slide = _staged_copy(s3, bucket, Path(staging), figures)
            figures["staging_seconds"] = time.perf_counter() - started
        else:
            fileobj = storage.S3RangeFile(s3, bucket, KEY)
            slide = WholeSlide(fileobj, fileobj.size)
        plan, _ = plan_tiles(slide, LEVEL0_MPP, "bench", TilingSettings())
        figures["ingest_seconds"] = time.perf_counter() - started
        figures["ingest_bytes"] = figures.get("bytes_read_from_s3", 0) + (fileobj.bytes_fetched if fileobj else 0)
        cut = time.perf_counter()
        tiles = plan.coords[: min(SHARD_TILES, plan.tiles_kept)]
        for x, y in tiles:
            read_patch(slide, plan, x, y)
        figures["shard_seconds"] = time.perf_counter() - cut
        figures["shard_tiles"] = len(tiles)
        figures["tiles_kept"] = plan.tiles_kept
        figures["level"] = plan.level
        if fileobj:
            figures["bytes_read_from_s3"] = figures.get("bytes_read_from_s3", 0) + fileobj.bytes_fetched
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["total_seconds"] = time.perf_counter() - started
    results.put(figures)


def _staged_copy(s3, bucket: str, work: Path, figures: dict):
    """Ingestion's path for a slide only OpenSlide reads: download, stage in OpenSlide's child process, upload
    the staged copy; then the staged copy opened through ranged reads, in the original level 0's frame."""
    from pcam_pipeline.aws import storage
    from pcam_pipeline.wsi.reader import WholeSlide
    from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS
    from pcam_pipeline.wsi.tiling import TilingSettings
    from pcam_pipeline.wsi.vendor import stage_with_openslide

    local = work / "slide.tif"
    s3.download_file(bucket, KEY, str(local))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    staged = stage_with_openslide(local, work / "staged.tif", TilingSettings().model_mpp, LEVEL0_MPP,
                                  DEFAULT_SLIDE_LIMITS)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    s3.upload_file(staged.path, bucket, STAGED_KEY)
    figures.update(bytes_read_from_s3=local.stat().st_size, staged_bytes=staged.staged_bytes,
                   openslide_cpu_seconds=after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
                   openslide_peak_mb=staged.peak_memory_mb, first_level_tiles_read=staged.tiles_read,
                   first_level_tiles=staged.tiles_total)  # fmt: skip
    fileobj = storage.S3RangeFile(s3, bucket, STAGED_KEY)
    return fileobj, WholeSlide(fileobj, fileobj.size, base_size=staged.base_size)


def drop_and_wait_for_slide_ready(stack: LocalStack, path: Path) -> dict:
    started = time.monotonic()
    stack.drop(path, "incoming/slides/bench-wsi.tif")
    uploaded = time.monotonic()
    deadline = uploaded + 3 * 3600
    while not (ready := [e for e in stack.pipeline_events() if e["detail-type"] == "Slide Ready"]):
        assert time.monotonic() < deadline, f"the slide was not announced: {stack.records()}"
        time.sleep(1)
    finished = time.monotonic()
    assert not any(stack.dead_letters().values()), stack.dead_letters()
    tiles = int(ready[0]["detail"]["patch_count"])
    return {
        "tiles": tiles,
        "upload_seconds": uploaded - started,
        "end_to_end_seconds": finished - started,
        "conversion_seconds": finished - uploaded,
        "end_to_end_tiles_per_second": tiles / (finished - started),
        "conversion_tiles_per_second": tiles / (finished - uploaded),
    }


def wheel_mb(*names: str) -> float:
    """Unzipped size of installed distributions (their RECORD), as the layer would hold them."""
    from importlib.metadata import distribution

    total = 0
    for name in names:
        for file in distribution(name).files or []:
            located = file.locate()
            total += located.stat().st_size if located.exists() else 0
    return total / 2**20


def main() -> int:
    OUT.mkdir(exist_ok=True)
    scratch = Path(os.environ.get("PCAM_BENCH_TMP", tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(dir=scratch) as work:
        path = Path(work) / "slide.tif"
        began = time.perf_counter()
        slide = write_bench_slide(path, TARGET_GB * 1e9)
        print(f"synthetic slide: {slide['file_bytes'] / 1e9:.2f} GB, level 0 {slide['level0_pixels']:,} px a side, "
              f"written in {time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
        with LocalStack(work_dir=Path(work) / "stack") as stack:
            stack.s3.upload_file(str(path), stack.bucket, KEY)
            context = multiprocessing.get_context("spawn")
            runs = []
            for reader in ("tifffile", "openslide", "staged"):
                results = context.Queue()
                child = context.Process(
                    target=_run_reader, args=(reader, stack.endpoint, stack.bucket, stack.environment(), results)
                )
                child.start()
                runs.append(results.get(timeout=3600))
                child.join()
                print(json.dumps(runs[-1]), flush=True)
            with TreeMemory() as memory:
                end_to_end = drop_and_wait_for_slide_ready(stack, path)
            end_to_end["peak_stack_memory_bytes"] = memory.peak_bytes
            ceiling = put_ceilings(stack)
            end_to_end["stack_put_ceiling_per_second"] = ceiling["stack"]["best_per_second"]
            end_to_end["ratio_to_stack_put"] = (
                end_to_end["end_to_end_tiles_per_second"] / ceiling["stack"]["best_per_second"]
            )
            print(json.dumps(end_to_end), flush=True)
    tifffile_run, openslide_run, staged_run = runs
    report = {
        "slide": slide,
        "shard_tiles": SHARD_TILES,
        "runs": runs,
        "end_to_end": end_to_end,
        "bundle_mb": {"tifffile": wheel_mb("tifffile"), "openslide": wheel_mb("openslide-bin", "openslide-python")},
        "ratios_tifffile_over_openslide": {
            name: tifffile_run[name] / openslide_run[name]
            for name in ("bytes_read_from_s3", "peak_rss_mb", "ingest_seconds", "shard_seconds", "total_seconds")
        },
        "ratios_staged_over_tifffile": {
            name: staged_run[name] / tifffile_run[name]
            for name in ("bytes_read_from_s3", "peak_rss_mb", "ingest_seconds", "shard_seconds", "total_seconds")
        },
    }
    (OUT / "wsi_readers.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report["ratios_tifffile_over_openslide"], indent=2))
    print(json.dumps(report["ratios_staged_over_tifffile"], indent=2))
    print(json.dumps(report["bundle_mb"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
