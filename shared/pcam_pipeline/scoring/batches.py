"""Which queued slides the next scoring job takes (micro-batching). Pure.

Every transform job pays the instance's start-up, so slides that become ready close together share one
job: the batch closes when its oldest slide has waited ``window_seconds``, or as soon as the queued slides
reach ``max_patches`` (which also bounds the gathering of one job's predictions in one invocation) or
``max_slides`` (which bounds the job's record). The same
number is the most patches one slide may have, checked at ingestion before any conversion
(`check_slide_fits_one_job`): a larger slide could never be gathered. A slide whose batch failed is retried
alone, at once.
Slides to be scored with different models never share a job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pcam_pipeline.core.errors import InvalidInput
from pcam_pipeline.core.records import ScoringQueueEntry

# A job's record lists its slides (up to ~1 KB each: ids and prefixes of up to 255-byte names); DynamoDB holds
# an item of at most 400 KB, so a job takes at most this many slides, however few patches each has.
MAX_SLIDES_PER_JOB = 100


@dataclass(frozen=True)
class BatchPolicy:
    window_seconds: float
    max_patches: int
    max_slides: int = MAX_SLIDES_PER_JOB


def next_batch(queued: Sequence[ScoringQueueEntry], policy: BatchPolicy, now: datetime) -> list[ScoringQueueEntry]:
    """The entries of the next job, oldest first; [] while the oldest batch is still filling."""
    if not queued:
        return []
    if queued[0].alone:
        return [queued[0]]
    batch: list[ScoringQueueEntry] = []
    patches = 0
    for entry in queued:
        if entry.alone or entry.model != queued[0].model:
            continue
        if batch and (patches + entry.patch_count > policy.max_patches or len(batch) == policy.max_slides):
            return batch  # full: it goes now, whatever the window
        batch.append(entry)
        patches += entry.patch_count
    waited = (now - datetime.fromisoformat(batch[0].queued_at)).total_seconds()
    full = patches >= policy.max_patches or len(batch) == policy.max_slides
    return batch if full or waited >= policy.window_seconds else []


def check_slide_fits_one_job(patches: int, max_patches: int) -> None:
    """One slide's predictions are gathered by one invocation, as are its CSV, GeoJSON and overlay: a slide
    with more patches than one scoring job takes is refused before any of it is converted."""
    if patches > max_patches:
        raise InvalidInput(
            "the slide has more patches than one scoring job can take",
            f"at most {max_patches:,} patches (tiles with tissue) per slide (the ScoringBatchMaxPatches setting)",
            f"{patches:,}",
        )
