"""What each conversion shard writes beside its JPEGs, read back for the whole upload: the patches' stain
samples (every split and slide) and a slide's tile QC measures. Shards are read in order, so rows follow the
patch indices."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from pcam_pipeline.aws.blob_store import MissingObject
from pcam_pipeline.core import keys
from pcam_pipeline.core.ports import BlobStore
from pcam_pipeline.core.records import PatchOwner, SlideRecord, present
from pcam_pipeline.wsi.tile_qc import MEASURES


def _each_shard(blobs: BlobStore, keys_in_order: list[str]) -> list[NDArray[Any]] | None:
    """None if any shard wrote nothing: the upload was converted by a version that did not write these."""
    try:
        return [blobs.get_array(key) for key in keys_in_order]
    except MissingObject:
        return None


def stain_samples(blobs: BlobStore, owner: PatchOwner) -> list[NDArray[Any]]:
    """Each shard's sample of its patches' stained OD (``wsi/stain.patch_sample``); none for older uploads."""
    prefix = present(owner.image_prefix, "image prefix")
    found = _each_shard(blobs, [keys.stain_sample_key(prefix, shard) for shard in range(owner.shards_total or 0)])
    return found or []


def tile_qc_measures(blobs: BlobStore, slide: SlideRecord) -> NDArray[Any] | None:
    """One row of QC measures (``wsi/tile_qc.MEASURES``) per tile of the slide's current upload."""
    run = present(slide.x_run, f"upload of slide {slide.slide_id}")
    shards = range(slide.shards_total or 0)
    parts = _each_shard(blobs, [keys.tile_qc_key(slide.slide_id, run, shard) for shard in shards])
    if parts is None:
        return None
    return np.concatenate(parts) if parts else np.empty((0, len(MEASURES)))
