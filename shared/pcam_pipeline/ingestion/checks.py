"""What ingestion checks of an upload before it converts anything, run on a file at hand (`pcam check`), so a
lab learns before uploading the reason a file would be quarantined for.

The same functions ingestion calls, in the same order: the key's name and place, then by kind the training
settings and the deployment's cost limits, a sidecar, a whole-slide image's structure, resolution and tile plan,
an HDF5 file's header (decompressed first, under the same cap, when it is a .gz). What depends on the
deployment's state is not checked here: a split's other file, a sidecar already in the bucket."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from pcam_pipeline.core import dropped_files
from pcam_pipeline.core.dropped_files import (
    DatasetFile,
    DatasetSettingsFile,
    SlideFile,
    SlideSidecarFile,
    WholeSlideFile,
)
from pcam_pipeline.core.gzip_stream import GunzipStream
from pcam_pipeline.core.ports import ByteFile
from pcam_pipeline.core.settings import IngestSettings
from pcam_pipeline.ingestion.hdf5_input import FileLimits, inspect_patches, open_hdf5, read_labels
from pcam_pipeline.ingestion.training_settings import MAX_BYTES as MAX_SETTINGS_BYTES
from pcam_pipeline.ingestion.training_settings import parse_training_settings
from pcam_pipeline.scoring.batches import check_slide_fits_one_job
from pcam_pipeline.wsi.plans import SIDECAR_MAX_BYTES, local_slide_path, parse_sidecar, plan_dropped_slide
from pcam_pipeline.wsi.staging_jobs import needs_staging_job


def check_upload(key: str, f: ByteFile, size: int, settings: IngestSettings) -> str:
    """What the file would be taken as when dropped at ``key``; InvalidInput with ingestion's reason if refused."""
    kind = dropped_files.classify_incoming_key(key)
    if isinstance(kind, DatasetSettingsFile):
        training = parse_training_settings(f.read(MAX_SETTINGS_BYTES + 1))
        settings.cost_limits.check_training_settings(training)
        return f"training settings of dataset {kind.dataset}: {training}"
    if isinstance(kind, SlideSidecarFile):
        return f"the sidecar of slide {kind.slide_id}: {parse_sidecar(f.read(SIDECAR_MAX_BYTES + 1))} µm/px"
    if isinstance(kind, WholeSlideFile):
        # Read here whatever its size: the deployment stages one above VendorSlideLambdaMaxGB in a job, alike.
        limits = settings.conversion.slide_limits
        here = replace(settings.conversion, slide_limits=replace(limits, lambda_vendor_bytes=limits.max_vendor_bytes))
        with tempfile.TemporaryDirectory(prefix="pcam-check-") as work:
            local = local_slide_path(Path(work), key)
            plan, _, staged = plan_dropped_slide(f, size, kind, None, here, (local, _copier(f)))
        read_by = f", read by OpenSlide ({staged.vendor})" if staged else ""
        if staged and needs_staging_job(size, limits):
            read_by += " in a SageMaker Processing job once dropped (larger than VendorSlideLambdaMaxGB)"
        return (
            f"whole-slide image {kind.slide_id}: {plan.tiles_kept:,} tiles on tissue of {plan.tiles_total:,}, "
            f"at {plan.mpp} µm/px ({plan.mpp_source}){read_by}"
        )
    with _decompressed(f, settings.max_uncompressed_bytes) if kind.compressed else contextlib.nullcontext(f) as hdf5:
        return _check_hdf5(kind, hdf5, settings)


def _check_hdf5(kind: SlideFile | DatasetFile, f: ByteFile, settings: IngestSettings) -> str:
    limits = FileLimits(max_patches=settings.conversion.max_patches_per_file)
    size = f.seek(0, 2)
    with open_hdf5(f, size) as handle:
        if isinstance(kind, SlideFile):
            info = inspect_patches(handle, limits)
            check_slide_fits_one_job(info.count, settings.conversion.max_patches_per_slide)
            return f"slide {kind.slide_id}: {info.count:,} patches{' with coordinates' if info.has_coords else ''}"
        if kind.role == "x":
            return f"images of {kind.dataset}/{kind.split}: {inspect_patches(handle, limits).count:,} patches"
        labels = read_labels(handle, limits)
        return f"labels of {kind.dataset}/{kind.split}: {labels.size:,} ({int(labels.sum()):,} tumour)"


def _copier(f: ByteFile) -> Callable[[Path], None]:
    def copy(path: Path) -> None:
        f.seek(0)
        with open(path, "wb") as local:
            shutil.copyfileobj(f, local, 8 << 20)

    return copy


@contextlib.contextmanager
def _decompressed(f: ByteFile, max_bytes: int) -> Iterator[ByteFile]:
    """The .gz file decompressed into a temporary file, stopping at the cap ingestion stops at."""
    with tempfile.TemporaryFile() as copy:
        shutil.copyfileobj(GunzipStream(f, max_bytes=max_bytes), copy, 8 << 20)
        yield copy
