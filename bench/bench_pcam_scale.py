"""The local stack at PCam scale (run by `make bench`; not a test).

Reports, from one run (one local stack):
- the PUT ceiling at its best (``put_ceiling.py``), of the local stack's S3 and of a bare moto server;
- the official-size PCam train split (262,144 patches, 7.25 GB ``camelyonpatch_level_2_split_train_x.h5``
  and its labels, generated block by block) dropped on the local stack: end-to-end patches/s from the
  start of the upload to "Split Ready", and conversion alone from the file being in;
- the whole stack's peak resident memory while it does so: every process of this run (this one, which
  uploads, the local S3, the function workers), summed, sampled every 0.5 s (target: under 3 GB).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np
from put_ceiling import put_ceilings

from pcam_local.local_stack import LocalStack
from pcam_synth.synth import EDGE, synth_split

PCAM_TRAIN = int(os.environ.get("PCAM_SCALE_PATCHES", 262_144))  # smaller for a quick try of the bench
BLOCK = 8192
DATASET = "pcam-scale"
STEM = "camelyonpatch_level_2_split_train"


def write_official_size_split(directory: Path) -> tuple[Path, Path]:
    """PCam's train split at its real size, written a block at a time (this process never holds it)."""
    tile, labels = synth_split(512, np.random.default_rng(1))
    x_path, y_path = directory / f"{STEM}_x.h5", directory / f"{STEM}_y.h5"
    with h5py.File(x_path, "w") as handle:
        x = handle.create_dataset("x", shape=(PCAM_TRAIN, EDGE, EDGE, 3), dtype=np.uint8)
        for start in range(0, PCAM_TRAIN, BLOCK):
            block = min(BLOCK, PCAM_TRAIN - start)
            x[start : start + block] = np.resize(tile, (block, EDGE, EDGE, 3))
    with h5py.File(y_path, "w") as handle:
        handle.create_dataset("y", data=np.resize(labels, PCAM_TRAIN).reshape(-1, 1, 1, 1))
    return x_path, y_path


# ------------------------------------------------------------------ memory of the whole stack
class TreeMemory:
    """Peak of the summed resident memory of this process and all its descendants."""

    def __init__(self, interval: float = 0.5):
        self.peak_bytes = 0
        self.peak_by_process: dict[str, int] = {}
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            sizes = _tree_rss(os.getpid())
            total = sum(sizes.values())
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_by_process = total, sizes


def _tree_rss(root: int) -> dict[str, int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    sizes, pending = {}, [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                name = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()[-60:]
            sizes[f"{pid} {name}"] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        except (OSError, ValueError):
            continue
    return sizes


# ------------------------------------------------------------------ the split end to end
def convert_official_split(stack: LocalStack, x_path: Path, y_path: Path) -> dict:
    started = time.monotonic()
    stack.drop(y_path, f"incoming/datasets/{DATASET}/{y_path.name}")
    stack.drop(x_path, f"incoming/datasets/{DATASET}/{x_path.name}")
    uploaded = time.monotonic()
    deadline = uploaded + 3 * 3600
    while not (ready := _split_ready(stack)):
        assert time.monotonic() < deadline, f"the split was not announced: {stack.records()}"
        time.sleep(2)
    finished = time.monotonic()
    assert int(ready["detail"]["patch_count"]) == PCAM_TRAIN, ready
    assert not any(stack.dead_letters().values()), stack.dead_letters()
    return {
        "patches": PCAM_TRAIN,
        "bytes": x_path.stat().st_size,
        "upload_seconds": uploaded - started,
        "end_to_end_seconds": finished - started,
        "conversion_seconds": finished - uploaded,
        "end_to_end_patches_per_second": PCAM_TRAIN / (finished - started),
        "conversion_patches_per_second": PCAM_TRAIN / (finished - uploaded),
    }


def _split_ready(stack: LocalStack) -> dict | None:
    for event in stack.pipeline_events():
        detail = event["detail"]
        if event["detail-type"] == "Split Ready" and detail.get("dataset") == DATASET:
            return event
    return None


def main() -> int:
    out = Path("bench-output")
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("PCAM_BENCH_TMP")) as tmp:
        print(f"writing a {PCAM_TRAIN:,}-patch train split ...", flush=True)
        x_path, y_path = write_official_size_split(Path(tmp))
        with LocalStack(work_dir=Path(tmp) / "stack") as stack:
            results: dict = {}
            with TreeMemory() as memory:
                results["split"] = convert_official_split(stack, x_path, y_path)
            results["peak_stack_memory_bytes"] = memory.peak_bytes
            results["peak_stack_memory_by_process"] = memory.peak_by_process
            results["put_ceiling"] = put_ceilings(stack)  # after: its objects would count in the peak
    split, ceiling = results["split"], results["put_ceiling"]
    for name in ("stack", "bare_moto"):
        split[f"end_to_end_ratio_to_{name}_put"] = (
            split["end_to_end_patches_per_second"] / ceiling[name]["best_per_second"]
        )
        split[f"conversion_ratio_to_{name}_put"] = (
            split["conversion_patches_per_second"] / ceiling[name]["best_per_second"]
        )
    results["stack_put_ratio_to_bare_moto"] = (
        ceiling["stack"]["best_per_second"] / ceiling["bare_moto"]["best_per_second"]
    )
    print(
        f"PUT ceiling at its best (3 KB objects): stack {ceiling['stack']['best_per_second']:.0f}/s, "
        f"bare moto {ceiling['bare_moto']['best_per_second']:.0f}/s "
        f"(stack = {results['stack_put_ratio_to_bare_moto']:.2f} x bare moto)"
    )
    print(
        f"PCam train split ({PCAM_TRAIN:,} patches, {split['bytes'] / 1e9:.2f} GB): end to end "
        f"{split['end_to_end_seconds'] / 60:.1f} min = {split['end_to_end_patches_per_second']:.0f} patches/s "
        f"({split['end_to_end_ratio_to_stack_put']:.2f} x the stack's PUT ceiling, "
        f"{split['end_to_end_ratio_to_bare_moto_put']:.2f} x bare moto's); upload {split['upload_seconds']:.0f} s, "
        f"conversion {split['conversion_patches_per_second']:.0f} patches/s "
        f"({split['conversion_ratio_to_stack_put']:.2f} x stack, "
        f"{split['conversion_ratio_to_bare_moto_put']:.2f} x bare moto)"
    )
    print(f"whole stack's peak resident memory: {results['peak_stack_memory_bytes'] / 1e9:.2f} GB (target < 3 GB)")
    for process, size in sorted(results["peak_stack_memory_by_process"].items(), key=lambda item: -item[1])[:6]:
        print(f"  {size / 1e6:7.0f} MB  {process}")
    (out / "pcam_scale.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
