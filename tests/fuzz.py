"""Fuzzing the ingestion of dropped files: mutated HDF5 files and whole-slide images (pyramidal TIFF, SVS) go
through the ingest and conversion use cases.

Every case must end "converted" (or its labels recorded) or "quarantined with a reason": never an exception
escaping, a crash of the process or a hang. Each case runs in a forked child under a time limit, so a crash
or a hang is seen and reported rather than taking the run down. The S3 bucket, queue and state table are
in-memory fakes (tests/lab.py) set up once; each child works on its own copy.

    python -m tests.fuzz --cases 200 --seed 7 --report fuzz.json      (make fuzz N=2000)
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import os
import random
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

TIME_LIMIT_SECONDS = 30
GOOD_OUTCOMES = {"converted", "labels recorded", "quarantined"}


# ------------------------------------------------------------------ seeds
def _h5(build: Callable[[h5py.File], None]) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def _patches(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 255, (count, 96, 96, 3), dtype=np.uint8)


def _whole_slide(**options) -> bytes:
    import tempfile

    from pcam_synth.whole_slides import synth_wsi

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slide.tif"
        synth_wsi(path, rows=6, cols=8, **options)
        return path.read_bytes()


def seeds(rng: np.random.Generator) -> dict[str, tuple[str, bytes]]:
    """Valid files of each kind the pipeline takes: (role, bytes); role "wsi" is a whole-slide image."""
    x, coords = _patches(rng, 12), np.arange(24).reshape(12, 2) * 96
    return {
        "whole-slide image, TIFF": ("wsi", _whole_slide(seed=int(rng.integers(1000)))),
        "whole-slide image, SVS": ("wsi", _whole_slide(seed=int(rng.integers(1000)), aperio=True, quality=70)),
        "slide, contiguous, coords": ("x", _h5(lambda h: (h.create_dataset("x", data=x),
                                                          h.create_dataset("coords", data=coords)))),
        "slide, chunked gzip": ("x", _h5(lambda h: h.create_dataset("x", data=x, chunks=(2, 96, 96, 3),
                                                                   compression="gzip", shuffle=True))),
        "slide, fletcher32": ("x", _h5(lambda h: h.create_dataset("x", data=x, chunks=(3, 96, 96, 3),
                                                                 fletcher32=True))),
        "labels": ("y", _h5(lambda h: h.create_dataset("y", data=(np.arange(12) % 2).reshape(12, 1, 1, 1)
                                                       .astype(np.uint8)))),
        "labels, chunked": ("y", _h5(lambda h: h.create_dataset("y", data=np.arange(12) % 2, chunks=(4,),
                                                                compression="gzip"))),
    }  # fmt: skip


# --------------------------------------------------------------- mutators
def flip_bits(data: bytes, rng: random.Random) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 64)):
        position = rng.randrange(len(mutated))
        mutated[position] ^= 1 << rng.randrange(8)
    return bytes(mutated)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def mangle_superblock(data: bytes, rng: random.Random) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        mutated[rng.randrange(8, 96)] = rng.randrange(256)
    return bytes(mutated)


SIGNATURES = (b"OHDR", b"OCHK", b"TREE", b"HEAP", b"SNOD", b"BTHD", b"BTIN", b"BTLF", b"FRHP", b"FHDB", b"GCOL")


def mangle_object_headers(data: bytes, rng: random.Random) -> bytes:
    """Overwrite bytes just after the metadata structures' signatures (or in the first 4 KB without any)."""
    mutated = bytearray(data)
    starts = [i for signature in SIGNATURES for i in range(len(data)) if data.startswith(signature, i)]
    for _ in range(rng.randint(1, 6)):
        start = rng.choice(starts) if starts else rng.randrange(96, min(len(data), 4096))
        for offset in range(rng.randint(1, 8)):
            if start + 4 + offset < len(mutated):
                mutated[start + 4 + offset] = rng.randrange(256)
    return bytes(mutated)


DTYPES = [np.uint8, np.int8, np.uint16, np.int64, np.float32, np.bool_, "enum", "compound", "vlen", "string"]


def _dtype(name):
    if name == "enum":
        return h5py.enum_dtype({"a": 0, "b": 1}, basetype="u1")
    if name == "compound":
        return np.dtype([("a", "u1"), ("b", "f4")])
    if name == "vlen":
        return h5py.vlen_dtype(np.uint8)
    if name == "string":
        return h5py.string_dtype()
    return np.dtype(name)


def random_structure(rng: random.Random) -> tuple[str, bytes]:
    """A file of random shapes, data types and storage: the role it is dropped as is random too."""
    role = rng.choice("xy")
    shape = rng.choice(
        [
            (rng.randint(0, 20), 96, 96, 3),
            (rng.randint(1, 20),),
            (rng.randint(1, 9), 96, 96),
            (rng.randint(1, 9), 96, 96, 4),
            (rng.randint(1, 9), 1, 1, 1),
            (rng.randint(1, 9), 2),
            (),
        ]
    )
    dtype = _dtype(rng.choice(DTYPES))
    chunked = rng.random() < 0.5 and len(shape) > 0 and shape[0] > 0

    def build(handle):
        options = {"chunks": (1, *shape[1:]), "compression": rng.choice([None, "gzip", "lzf"])} if chunked else {}
        dataset = handle.create_dataset(role, shape=shape, dtype=dtype, **options)
        if rng.random() < 0.7 and dataset.size and dtype.kind in "biuf":
            dataset[...] = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 2, shape)
        if rng.random() < 0.3:
            handle.create_dataset("coords", data=np.zeros((rng.randint(0, 20), rng.choice([1, 2, 3])), np.int64))

    return role, _h5(build)  # fmt: skip


def mangle_tiff_directories(data: bytes, rng: random.Random) -> bytes:
    """Overwrite bytes of the TIFF's image directories (tag, type, count, value or offset of entries)."""
    import tifffile

    mutated = bytearray(data)
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            directories = [page.offset for page in tiff.pages]
    except Exception:
        directories = [8]
    for _ in range(rng.randint(1, 6)):
        start = rng.choice(directories) + 2 + 20 * rng.randrange(16)  # within one of its first entries
        for offset in range(rng.randint(1, 8)):
            if start + offset < len(mutated):
                mutated[start + offset] = rng.randrange(256)
    return bytes(mutated)


MUTATORS = {
    "tiff directories": mangle_tiff_directories,
    "bit flips": flip_bits,
    "truncated": truncate,
    "superblock": mangle_superblock,
    "object headers": mangle_object_headers,
}


def cases(count: int, seed: int) -> list[tuple[str, str, bytes]]:
    """(description, role, bytes) for ``count`` cases, the same for the same seed."""
    from pcam_synth.hostile_slides import HOSTILE_SLIDES, TILE_MUTATORS
    from tests.hostile_files import HOSTILE, hostile_file

    rng = random.Random(seed)
    valid = seeds(np.random.default_rng(seed))
    made = [(f"hostile: {name}", reader, hostile_file(build)) for name, (build, reader, *_) in HOSTILE.items()]
    made += [(f"hostile: {name}", "wsi", build()) for name, (build, _) in HOSTILE_SLIDES.items()]
    made += [(f"valid: {name}", role, data) for name, (role, data) in valid.items()]
    while len(made) < count:
        choice = rng.random()
        if choice < 0.15:
            role, data = random_structure(rng)
            made.append(("random structure", role, data))
            continue
        name, (role, data) = rng.choice(sorted(valid.items()))
        mutators = {**MUTATORS, **TILE_MUTATORS} if role == "wsi" else MUTATORS
        mutator = rng.choice(sorted(mutators))
        made.append((f"{mutator} of {name}", role, mutators[mutator](data, rng)))
    return made[:count]


# ---------------------------------------------------------------- running
def _outcome_in_child(lab, role: str, data: bytes, index: int) -> dict:
    key = {
        "x": f"incoming/slides/fuzz-{index}.h5",
        "y": f"incoming/datasets/fz{index}/fz{index}_test_y.h5",
        "wsi": f"incoming/slides/fuzz-{index}.tif",
    }[role]
    dropped = lab.drop(key, data)
    result = lab.ingestor.ingest(dropped)
    if result["status"] == "converting":
        damaged = [o for o in lab.convert_all() if o["status"] == "damaged"]
        result = {"status": "quarantined", "reason": damaged[0]["reason"]} if damaged else {"status": "converted"}
    if result["status"] == "quarantined" and not result.get("reason"):
        return {"status": "quarantined without a reason"}
    return {"status": result["status"], "reason": result.get("reason", "")}


def run_case(lab, role: str, data: bytes, index: int) -> dict:
    """Run one case in a forked child; its outcome, or how the child died or hung."""
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, whatever happens
        os.close(read_end)
        faulthandler.disable()  # a crash is reported through the exit status, not a traceback on stderr
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            outcome = _outcome_in_child(lab, role, data, index)
        except BaseException as exc:  # an exception escaping the use case is a finding
            outcome = {"status": "exception", "reason": f"{type(exc).__name__}: {exc}",
                       "where": traceback.format_exc(limit=-3)}  # fmt: skip
        os.write(write_end, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write_end)
    status = None
    while time.monotonic() - started < TIME_LIMIT_SECONDS:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        return {"status": "hang", "seconds": time.monotonic() - started}
    with os.fdopen(read_end, "rb") as answer:
        body = answer.read()
    seconds = time.monotonic() - started
    if os.WIFSIGNALED(status):
        return {"status": "crash", "reason": f"signal {os.WTERMSIG(status)}", "seconds": seconds}
    if not body:
        return {"status": "crash", "reason": f"exit status {os.WEXITSTATUS(status)}", "seconds": seconds}
    return {**json.loads(body), "seconds": seconds}


def fuzz(count: int, seed: int) -> dict:
    from tests.lab import make_lab

    made = cases(count, seed)
    lab = make_lab()
    results = []
    for index, (description, role, data) in enumerate(made):
        outcome = run_case(lab, role, data, index)
        results.append({"case": index, "what": description, "bytes": len(data), **outcome})
    findings = [r for r in results if r["status"] not in GOOD_OUTCOMES]
    slowest = max(results, key=lambda r: r["seconds"])
    return {
        "seed": seed,
        "cases": len(results),
        "outcomes": dict(Counter(r["status"] for r in results)),
        "crash_free_rate": sum(r["status"] not in ("crash", "hang") for r in results) / len(results),
        "slowest": {key: slowest[key] for key in ("case", "what", "seconds", "status")},
        "findings": findings,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report", type=Path, help="also write the summary here as JSON")
    args = parser.parse_args(argv)
    summary = fuzz(args.cases, args.seed)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2))
    print(f"{summary['cases']} cases (seed {summary['seed']}): {summary['outcomes']}")
    print(f"crash-free: {summary['crash_free_rate']:.1%}; slowest: case {summary['slowest']['case']} "
          f"({summary['slowest']['what']}), {summary['slowest']['seconds']:.2f} s")  # fmt: skip
    for finding in summary["findings"]:
        print(f"FINDING case {finding['case']} ({finding['what']}): {finding['status']} {finding.get('reason', '')}")
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
