"""Reading a slide transform's ``<patch>.out`` outputs back into one array of tumour probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pcam_evaluation_job.evaluate_model import EvaluationInputError, tumour_probability
from pcam_pipeline.aws.blob_store import MissingObject
from pcam_pipeline.core import keys
from pcam_pipeline.core.errors import JobFailed
from pcam_pipeline.core.ports import BlobStore

GATHER_THREADS = 32
GATHER_WINDOW = 4096  # predictions fetched per round: bounds the futures held in memory


def outputs_prefix(blobs: BlobStore, candidates: Sequence[str], first_output: str) -> str:
    """Where a transform wrote this slide's outputs: under the entry's relative path, or flat under the job's
    output prefix (SageMaker's docs do not say which for a ManifestFile input; both are accepted)."""
    for prefix in candidates:
        if blobs.exists(prefix + first_output):
            return prefix
    raise JobFailed(f"the prediction of patch 0 ({candidates[0]}{first_output}) is missing")


def gather_tumour_probabilities(
    blobs: BlobStore, candidates: Sequence[str], image_prefix: str, count: int, threads: int = GATHER_THREADS
) -> NDArray[Any]:
    """Read every patch's ``<patch>.jpg.out``, in parallel, into an array in patch order; ``candidates`` are the
    prefixes the outputs may be under (`outputs_prefix`)."""
    probabilities = np.full(count, np.nan, dtype=np.float64)
    prefix = outputs_prefix(blobs, candidates, keys.patch_file_name(0, image_prefix) + ".out")

    def fetch(index: int) -> None:
        key = f"{prefix}{keys.patch_file_name(index, image_prefix)}.out"
        try:
            body = blobs.get_bytes(key)
        except MissingObject as exc:
            raise JobFailed(f"the prediction of patch {index} ({key}) is missing: {exc}") from exc
        try:
            probabilities[index] = tumour_probability(body, key)
        except EvaluationInputError as exc:
            raise JobFailed(str(exc)) from exc

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, count, GATHER_WINDOW):
            list(pool.map(fetch, range(start, min(start + GATHER_WINDOW, count))))
    missing = np.flatnonzero(np.isnan(probabilities))
    if missing.size:  # a patch no window fetched: never let it reach the CSV as a number
        raise JobFailed(f"no prediction was gathered for {missing.size} patches, the first is {int(missing[0])}")
    return probabilities
