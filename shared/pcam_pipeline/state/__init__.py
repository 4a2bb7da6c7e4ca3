"""The state table, the data-access layer: typed records out, named writes in (see ``access`` for the keys).

Nothing outside this package writes to the table. Each use case sees only its part of ``StateStore``: the
Protocols of ``views`` (the model side) and ``ingestion_views`` (ingestion and conversion).
"""

from pcam_pipeline.state.access import (
    CURRENT,
    MODELS_PK,
    WAITING_SLIDES_PK,
    dataset_pk,
    file_pk,
    job_pk,
    model_sk,
    slide_id_of,
    slide_pk,
    split_pk,
)
from pcam_pipeline.state.announcements import AnnouncementRecords
from pcam_pipeline.state.ingestion import IngestionRecords
from pcam_pipeline.state.jobs import JobRecords
from pcam_pipeline.state.model_side import ModelSideRecords
from pcam_pipeline.state.scoring import ScoringQueueRecords
from pcam_pipeline.state.slide_scoring import SlideScoringRecords
from pcam_pipeline.state.table import now_iso

__all__ = [
    "CURRENT",
    "MODELS_PK",
    "WAITING_SLIDES_PK",
    "StateStore",
    "dataset_pk",
    "file_pk",
    "job_pk",
    "model_sk",
    "now_iso",
    "slide_id_of",
    "slide_pk",
    "split_pk",
]


class StateStore(
    AnnouncementRecords, IngestionRecords, JobRecords, ModelSideRecords, ScoringQueueRecords, SlideScoringRecords
):
    """Every record of one deployment's state table."""
