"""Named reads and writes of a slide's scoring: waiting for a model, scoring, scored or failed. Every
transition names the upload it is for, so a late event for an older upload changes nothing."""

from __future__ import annotations

from typing import Any

from pcam_pipeline.core.records import SlideRecord
from pcam_pipeline.core.statuses import ScoringStatus
from pcam_pipeline.state.access import CURRENT, WAITING_SLIDES_PK, TableAccess, slide_pk
from pcam_pipeline.state.conditions import Equals


class SlideScoringRecords(TableAccess):
    def waiting_slides(self) -> list[str]:
        return [item["sk"] for item in self.query(WAITING_SLIDES_PK)]

    def mark_slide_waiting_for_model(self, slide_id: str, run_id: str) -> None:
        self._put_new(WAITING_SLIDES_PK, slide_id, {"slide_id": slide_id, "run_id": run_id})
        self._set(slide_pk(slide_id), CURRENT, {"scoring_status": ScoringStatus.WAITING_FOR_MODEL})

    def scored_slides(self) -> list[SlideRecord]:
        """Every slide whose current upload has a result (a scan: read on a promotion that rescores)."""
        items = (item for item in self.scan_all() if item["pk"].startswith("slide#"))
        return [s for s in map(SlideRecord.from_item, items) if s.scoring_status is ScoringStatus.SCORED]

    def forget_waiting_slide(self, slide_id: str) -> None:
        self._delete(WAITING_SLIDES_PK, slide_id)

    def mark_slide_scoring(self, slide_id: str, run_id: str, job_name: str, model_name: str) -> None:
        """Only from queued: a late repeat never turns a scored or failed slide back to scoring."""
        fields = {"scoring_status": ScoringStatus.SCORING, "scoring_job": job_name, "scoring_model": model_name}
        condition = Equals("x_run", run_id) & Equals("scoring_status", ScoringStatus.QUEUED)
        self._set(slide_pk(slide_id), CURRENT, fields, condition)

    def record_slide_scored(self, slide_id: str, run_id: str, job_name: str, **result: Any) -> None:
        """``result``: scored_at, scored_model, predictions_key, tumour_fraction, verdict."""
        fields = {"scoring_status": ScoringStatus.SCORED, "scored_job": job_name, "scored_run": run_id, **result}
        self._set(slide_pk(slide_id), CURRENT, fields, remove=("scoring_failure",))

    def record_slide_scoring_failed(self, slide_id: str, run_id: str, reason: str) -> None:
        fields = {"scoring_status": ScoringStatus.FAILED, "scoring_failure": reason}
        self._set(slide_pk(slide_id), CURRENT, fields, Equals("x_run", run_id))
