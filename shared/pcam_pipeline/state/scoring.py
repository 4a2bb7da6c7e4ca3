"""Named reads and writes of the scoring queue: ready slides waiting for a transform job, and the transform
slots that cap how many of the pipeline's slide-scoring jobs run at once (``MaxConcurrentTransformJobs``).

A slot is one record holding the name of the job in it; taking and freeing it are single conditional
writes, so concurrent dispatchers never put more jobs in than there are slots, and repeating either is
harmless.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pcam_pipeline.core.records import ScoringQueueEntry, present
from pcam_pipeline.core.statuses import OwnerStatus, ScoringStatus
from pcam_pipeline.state.access import CURRENT, SCORING_QUEUE_PK, TRANSFORM_SLOTS_PK, TableAccess, slide_pk
from pcam_pipeline.state.conditions import Before, Equals, Missing, Not
from pcam_pipeline.state.leases import Lease, lapsed, lease_fields
from pcam_pipeline.state.table import now_iso


def _slot_sk(index: int) -> str:
    return f"slot#{index:03d}"


class ScoringQueueRecords(TableAccess):
    # ------------------------------------------------------------------ queue
    def queue_slide(self, slide_id: str, run_id: str, patch_count: int) -> bool:
        """Queue the slide's upload for scoring, once per upload; False if it was queued before.

        The slide's record is the claim (``queued_run``); the entry follows, and a retry after a crash in
        between puts it then. Entries are keyed by slide and upload: removing one never touches a newer one."""
        queued_at = now_iso()
        fields = {"scoring_status": ScoringStatus.QUEUED, "queued_run": run_id, "queued_at": queued_at}
        claim = Equals("x_run", run_id) & Not(Equals("queued_run", run_id))
        claimed = self._set(slide_pk(slide_id), CURRENT, fields, claim, return_new=True)
        if claimed is None:
            slide = self.get(slide_pk(slide_id)) or {}
            if slide.get("queued_run") != run_id or slide.get("scoring_status") != ScoringStatus.QUEUED:
                return False
            queued_at = slide.get("queued_at", queued_at)
        entry = ScoringQueueEntry(slide_id=slide_id, run_id=run_id, patch_count=patch_count, queued_at=queued_at)
        self._put_new(SCORING_QUEUE_PK, entry.sk, entry.to_item())
        return claimed is not None

    def queued_slides(self) -> list[ScoringQueueEntry]:
        """Oldest first."""
        entries = [ScoringQueueEntry.from_item(item) for item in self.query(SCORING_QUEUE_PK)]
        return sorted(entries, key=lambda entry: (entry.queued_at, entry.sk))

    def assign_queued_slide(self, entry: ScoringQueueEntry, job_name: str) -> None:
        """The entry goes into ``job_name``, about to start; written before the start, so that a dispatch that
        fails after it moves the entry to that job instead of putting the slide in a second one."""
        self._set(SCORING_QUEUE_PK, entry.sk, {"job": job_name}, Not(Missing("slide_id")))

    def unqueue_slide(self, entry: ScoringQueueEntry) -> None:
        self._delete(SCORING_QUEUE_PK, entry.sk)

    def queue_rescore(self, slide_id: str, request: str, model: str = "") -> bool:
        """Queue the slide's current upload to be scored again (with ``model``, or the model current when its
        job starts), once per request (the slide's record remembers the last one); its results stay as they
        are until the new ones replace them."""
        slide = self.slide(slide_id)
        if slide is None or slide.status is not OwnerStatus.READY:
            return False
        claim = Equals("x_run", slide.x_run) & Not(Equals("rescore_request", request))
        if self._set(slide_pk(slide_id), CURRENT, {"rescore_request": request}, claim) is None:
            return False  # this request was queued before (a repeated promotion event, say)
        run, count = present(slide.x_run, f"upload of {slide_id}"), present(slide.x_count, f"count of {slide_id}")
        entry = ScoringQueueEntry(slide_id, run, count, now_iso(), request=request, model=model)
        return self._put_new(SCORING_QUEUE_PK, entry.sk, entry.to_item())

    def requeue_slide_alone(self, member: ScoringQueueEntry) -> bool:
        """A batch job failed: queue the slide's upload again, to be scored alone, unless it has results."""
        fields = {"queued_at": now_iso()}
        unscored = Equals("x_run", member.run_id) & Not(Equals("results_for", member.results_for))
        if not member.request:  # a first scoring shows as queued; a rescored slide keeps its results
            fields["scoring_status"] = ScoringStatus.QUEUED
        if self._set(slide_pk(member.slide_id), CURRENT, fields, unscored) is None:
            return False
        entry = replace(member, alone=True, queued_at=fields["queued_at"])
        self._put_new(SCORING_QUEUE_PK, entry.sk, entry.to_item())
        return True

    def claim_slide_results(self, member: ScoringQueueEntry, job_name: str) -> Lease | None:
        """Let one job write the results of a slide's upload (per request), one attempt at a time: the same job
        may claim again once the attempt that held it ended or gave it back (a retry; state/leases.py), not a
        copy of its event handled meanwhile. A second job that scored the same upload writes nothing."""
        lease = Lease.for_this_invocation()
        retry = Equals("results_job", job_name) & Not(Equals("scored_job", job_name)) & lapsed("results")
        mine = Not(Equals("results_for", member.results_for)) | retry
        claim = {"results_for": member.results_for, "results_job": job_name, **lease.fields("results")}
        claimed = self._set(slide_pk(member.slide_id), CURRENT, claim, Equals("x_run", member.run_id) & mine)
        return lease if claimed is not None else None

    def release_slide_results(self, slide_id: str, lease: Lease, written: bool) -> None:
        """The attempt ends: once the results are ``written`` its job keeps the claim (another job of the same
        upload writes nothing); after a failure the claim is given back whole (a retry, or another job, may)."""
        claim = () if written else ("results_for", "results_job")
        self._set(slide_pk(slide_id), CURRENT, {}, lease.held("results"), remove=(*claim, *lease_fields("results")))

    # ------------------------------------------------------------------ dispatcher lease
    def take_dispatch_lease(self, holder: str, seconds: float) -> bool:
        """One dispatcher at a time forms batches; a lease left by a crashed one expires."""
        now = datetime.now(UTC)
        until = (now + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
        free = Missing("holder") | Before("until", now.isoformat(timespec="milliseconds"))
        return self._set(TRANSFORM_SLOTS_PK, "dispatcher", {"holder": holder, "until": until}, free) is not None

    def release_dispatch_lease(self, holder: str) -> None:
        self._set(TRANSFORM_SLOTS_PK, "dispatcher", {}, Equals("holder", holder), remove=("holder", "until"))

    # ------------------------------------------------------------------ slots
    def transform_slots(self) -> dict[int, dict[str, Any]]:
        """Slot index → its record (``job``, ``taken_at`` while taken)."""
        return {int(item["sk"].removeprefix("slot#")): item for item in self.query(TRANSFORM_SLOTS_PK, "slot#")}

    def take_transform_slot(self, job_name: str, slots: int) -> bool:
        """Put the job in a free slot among the first ``slots``; True if it holds one (now or already)."""
        held = self.transform_slots()
        if any(item.get("job") == job_name for item in held.values()):
            return True
        for index in range(slots):
            if held.get(index, {}).get("job"):
                continue
            taken = {"job": job_name, "taken_at": now_iso()}
            if self._set(TRANSFORM_SLOTS_PK, _slot_sk(index), taken, Missing("job")) is not None:
                return True
        return False

    def free_transform_slot(self, job_name: str) -> None:
        """Free the slot the job holds, if any; a repeat frees nothing else."""
        for index, item in self.transform_slots().items():
            if item.get("job") == job_name:
                self._set(TRANSFORM_SLOTS_PK, _slot_sk(index), {}, Equals("job", job_name), remove=("job", "taken_at"))
