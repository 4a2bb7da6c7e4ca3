"""Per slide format and writer: seconds and bytes read for ingestion plus one conversion shard, and the CPU
seconds each hostile slide costs before it is refused.

Slides only OpenSlide reads (OPENSLIDE_RECIPES: Aperio JPEG 2000, a zipped DICOM series) are measured as ingestion
handles them: the whole file copied (its bytes are all read), unpacked if zipped, staged by OpenSlide in its child
process (CPU and peak memory of that process), the plan made on the staged copy, and the staged copy's bytes
written; the shard then reads the staged copy with ranged reads. Lambda cost per slide: ingestion's seconds at
the ingest function's 1,769 MB and 10 GB of ephemeral storage (x86, us-east-1 prices).

Each recipe of pcam_synth.slide_writers (libvips with deflate + predictor, LZW, JPEG, PackBits, SubIFDs,
BigTIFF; tifffile's Aperio layout with and without a pyramid, YCbCr JPEG, OME-TIFF in nm) writes the same
synthetic slide (PCAM_BENCH_FORMAT_CELLS rows x 1.33 that many columns of 96-px patches at 0.972 µm/px, level
0 at 0.486 µm/px). Then, in this process, what the Lambdas do with it: ingestion (open, read the mask level,
find tissue, plan the tiles) and one shard (cut its first PCAM_BENCH_FORMAT_TILES kept tiles at the model's
resolution, no JPEG encode or upload). Bytes read are what the reader asked of the file object, in the
ranged S3 reads' 1 MB blocks (storage.S3RangeFile's block size). The hostile slides (pcam_synth/hostile_slides.py)
go through the same ingestion: CPU seconds until the refusal, against the issue's 5 s budget.
Results: bench-output/slide_formats.json.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.archives import unpack_slide_archive
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.structure import DEFAULT_SLIDE_LIMITS
from pcam_pipeline.wsi.tiling import TilingSettings, plan_tiles, read_patch
from pcam_pipeline.wsi.vendor import stage_with_openslide
from pcam_synth.hostile_slides import HOSTILE_SLIDES
from pcam_synth.slide_writers import OPENSLIDE_RECIPES, RECIPES, write_slide

ROWS = int(os.environ.get("PCAM_BENCH_FORMAT_CELLS", 48))
SHARD_TILES = int(os.environ.get("PCAM_BENCH_FORMAT_TILES", 1024))
BLOCK = 1 << 20  # storage.S3RangeFile's default block_size
OUT = Path("bench-output")
# Lambda, x86, us-east-1 (aws.amazon.com/lambda/pricing): duration per GB-second, and ephemeral storage above
# the free 512 MB per GB-second.
LAMBDA_GB_SECOND = 0.0000166667
EPHEMERAL_GB_SECOND = 0.0000000309
INGEST_MEMORY_GB, INGEST_EPHEMERAL_GB = 1769 / 1024, (10240 - 512) / 1024


class CountingFile:
    """A file read in aligned blocks, as the ranged S3 reads are, counting the blocks' bytes."""

    def __init__(self, path: Path):
        self._file, self.size, self.bytes_read, self._blocks = open(path, "rb"), path.stat().st_size, 0, set()  # noqa: SIM115
        self._position = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        self._position = {0: offset, 1: self._position + offset, 2: self.size + offset}[whence]
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, count: int = -1) -> bytes:
        end = self.size if count < 0 else min(self.size, self._position + count)
        for block in range(self._position // BLOCK, (max(end, 1) - 1) // BLOCK + 1):
            if block not in self._blocks:
                self._blocks.add(block)
                self.bytes_read += min(BLOCK, self.size - block * BLOCK)
        self._file.seek(self._position)
        data = self._file.read(end - self._position)
        self._position = end
        return data

    def close(self) -> None:
        self._file.close()


def measure(path: Path, mpp: float | None = None, source: str = "", base_size=None) -> dict:
    """Ingestion (plan) and one shard on a pyramidal TIFF: the dropped slide, or a vendor slide's staged copy."""
    handle = CountingFile(path)
    started, cpu = time.perf_counter(), time.process_time()
    with WholeSlide(handle, handle.size, base_size=base_size) as slide:
        mpp, source = (mpp, source) if mpp else (slide.resolution.mpp, slide.resolution.source)
        plan, _ = plan_tiles(slide, mpp, source, TilingSettings())
        ingestion = {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                     "bytes_read": handle.bytes_read}  # fmt: skip
    shard_handle = CountingFile(path)
    started = time.perf_counter()
    tiles = plan.coords[:SHARD_TILES]
    with WholeSlide(shard_handle, shard_handle.size, base_size=base_size) as slide:
        for x, y in tiles:
            read_patch(slide, plan, x, y)
    shard = {"seconds": time.perf_counter() - started, "bytes_read": shard_handle.bytes_read, "tiles": len(tiles)}
    return {"file_bytes": path.stat().st_size, "level_read": plan.level,
            "tiles_kept": plan.tiles_kept, "ingestion": ingestion, "shard": shard}  # fmt: skip


def measure_staged(path: Path, work: Path) -> dict:
    """A slide only OpenSlide reads, as ingestion handles it: copy, unpack, stage, plan on the staged copy."""
    started, cpu = time.perf_counter(), time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the staging child's CPU is counted there
    local = work / path.name
    shutil.copyfile(path, local)  # the download: every byte of the upload
    opened = unpack_slide_archive(local, work / "unpacked", DEFAULT_SLIDE_LIMITS) if path.suffix == ".zip" else local
    staged = stage_with_openslide(opened, work / "staged.tif", TilingSettings().model_mpp, None, DEFAULT_SLIDE_LIMITS)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    staging = {"seconds": time.perf_counter() - started,
               "cpu_seconds": time.process_time() - cpu + (after.ru_utime + after.ru_stime)
               - (children.ru_utime + children.ru_stime),
               "reader_peak_mb": staged.peak_memory_mb, "bytes_written": staged.staged_bytes}  # fmt: skip
    figures = measure(Path(staged.path), staged.mpp, staged.mpp_source, staged.base_size)
    ingestion = figures["ingestion"]
    ingestion["staging"] = staging
    ingestion["seconds"] += staging["seconds"]
    ingestion["cpu_seconds"] += staging["cpu_seconds"]
    ingestion["bytes_read"] += path.stat().st_size
    ingestion["lambda_usd"] = ingestion["seconds"] * (
        INGEST_MEMORY_GB * LAMBDA_GB_SECOND + INGEST_EPHEMERAL_GB * EPHEMERAL_GB_SECOND
    )
    return {**figures, "file_bytes": path.stat().st_size, "vendor": staged.vendor,
            "level_read": staged.first_level + figures["level_read"]}  # fmt: skip


def hostile(build) -> dict:
    data = build()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.tif"
        path.write_bytes(data)
        cpu = time.process_time()
        try:
            measure(path)
            outcome = "read (a finding)"
        except InvalidInput as refused:
            outcome = refused.problem
        return {"file_bytes": len(data), "cpu_seconds": time.process_time() - cpu, "outcome": outcome}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    results: dict = {"rows": ROWS, "cols": round(ROWS * 4 / 3), "shard_tiles": SHARD_TILES, "formats": {}}
    with tempfile.TemporaryDirectory() as folder:
        for recipe in RECIPES:
            path, _ = write_slide(recipe, Path(folder), rows=ROWS, cols=round(ROWS * 4 / 3))
            results["formats"][recipe.name] = {"writer": recipe.writer, **measure(path)}
            path.unlink()
        for recipe in OPENSLIDE_RECIPES:
            path, _ = write_slide(recipe, Path(folder), rows=ROWS, cols=round(ROWS * 4 / 3))
            with tempfile.TemporaryDirectory() as work:
                results["formats"][recipe.name] = {"writer": recipe.writer, **measure_staged(path, Path(work))}
            path.unlink()
    results["hostile"] = {name: hostile(build) for name, (build, _) in HOSTILE_SLIDES.items()}
    (OUT / "slide_formats.json").write_text(json.dumps(results, indent=2))
    base = results["formats"]["vips-jpeg"]
    print(f"Slide formats: {ROWS} x {results['cols']} patches at 0.972 µm/px (level 0 at 0.486), shard of "
          f"{SHARD_TILES} tiles; ratios against libvips JPEG in the same run")  # fmt: skip
    print(f"{'recipe':24} {'file MB':>8} {'ingest s':>9} {'ingest MB':>10} {'shard s':>8} {'shard MB':>9} {'x s':>6}")
    for name, figures in results["formats"].items():
        ingest, shard = figures["ingestion"], figures["shard"]
        seconds = ingest["seconds"] + shard["seconds"]
        ratio = seconds / (base["ingestion"]["seconds"] + base["shard"]["seconds"])
        print(f"{name:24} {figures['file_bytes'] / 1e6:8.1f} {ingest['seconds']:9.2f} "
              f"{ingest['bytes_read'] / 1e6:10.1f} {shard['seconds']:8.2f} {shard['bytes_read'] / 1e6:9.1f} "
              f"{ratio:6.2f}")  # fmt: skip
    print("Staged by OpenSlide at ingestion (included above): the child process, the copy written, Lambda cost")
    for name, figures in results["formats"].items():
        if "staging" in figures["ingestion"]:
            staging = figures["ingestion"]["staging"]
            print(f"  {name:22} {staging['seconds']:6.2f} s, {staging['cpu_seconds']:6.2f} s CPU, peak "
                  f"{staging['reader_peak_mb']:5.0f} MB, staged {staging['bytes_written'] / 1e6:6.1f} MB, "
                  f"ingestion ${figures['ingestion']['lambda_usd']:.5f}")  # fmt: skip
    print("Hostile slides at ingestion (budget 5 s of CPU each):")
    for name, figures in results["hostile"].items():
        print(f"  {name:24} {figures['file_bytes'] / 1e6:6.2f} MB  {figures['cpu_seconds']:6.3f} s CPU  -> "
              f"{figures['outcome']}")  # fmt: skip


if __name__ == "__main__":
    main()
