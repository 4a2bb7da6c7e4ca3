"""Per slide format and writer: seconds and bytes read for ingestion plus one conversion shard, and the CPU
seconds each hostile slide costs before it is refused.

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
import tempfile
import time
from pathlib import Path

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.wsi.reader import WholeSlide
from pcam_pipeline.wsi.tiling import TilingSettings, plan_tiles, read_patch
from pcam_synth.hostile_slides import HOSTILE_SLIDES
from pcam_synth.slide_writers import RECIPES, write_slide

ROWS = int(os.environ.get("PCAM_BENCH_FORMAT_CELLS", 48))
SHARD_TILES = int(os.environ.get("PCAM_BENCH_FORMAT_TILES", 1024))
BLOCK = 1 << 20  # storage.S3RangeFile's default block_size
OUT = Path("bench-output")


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


def measure(path: Path) -> dict:
    handle = CountingFile(path)
    started, cpu = time.perf_counter(), time.process_time()
    with WholeSlide(handle, handle.size) as slide:
        plan, _ = plan_tiles(slide, slide.resolution.mpp, slide.resolution.source, TilingSettings())
        ingestion = {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                     "bytes_read": handle.bytes_read}  # fmt: skip
    shard_handle = CountingFile(path)
    started = time.perf_counter()
    tiles = plan.coords[:SHARD_TILES]
    with WholeSlide(shard_handle, shard_handle.size) as slide:
        for x, y in tiles:
            read_patch(slide, plan, x, y)
    shard = {"seconds": time.perf_counter() - started, "bytes_read": shard_handle.bytes_read, "tiles": len(tiles)}
    return {"file_bytes": path.stat().st_size, "level_read": plan.level,
            "tiles_kept": plan.tiles_kept, "ingestion": ingestion, "shard": shard}  # fmt: skip


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
    print("Hostile slides at ingestion (budget 5 s of CPU each):")
    for name, figures in results["hostile"].items():
        print(f"  {name:24} {figures['file_bytes'] / 1e6:6.2f} MB  {figures['cpu_seconds']:6.3f} s CPU  -> "
              f"{figures['outcome']}")  # fmt: skip


if __name__ == "__main__":
    main()
