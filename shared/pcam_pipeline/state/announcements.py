"""Announcing once: the claims that let one attempt at a time publish a split's or slide's ready event, or a
quarantine's, and the marks that say it is published (state/leases.py)."""

from __future__ import annotations

from pcam_pipeline.core.statuses import OwnerStatus
from pcam_pipeline.state.access import CURRENT, TableAccess, file_pk
from pcam_pipeline.state.conditions import Equals, Missing, Not
from pcam_pipeline.state.leases import Lease, lapsed, lease_fields
from pcam_pipeline.state.table import now_iso


class AnnouncementRecords(TableAccess):
    # ------------------------------------------------------------------ a split or slide is ready
    def claim_ready(self, owner_pk: str, token: str, claimer: str) -> Lease | None:
        """Let one attempt at a time announce this combination of inputs (``token``); None if another holds it.

        The claim lasts while its invocation can run (state/leases.py): a copy of the same message handled
        meanwhile is refused; a retry after an attempt that died or gave the claim back finishes the
        announcement; once announced, nothing claims it.
        """
        lease = Lease.for_this_invocation()
        unclaimed = Missing("ready_token") | Not(Equals("ready_token", token))
        unfinished = Not(Equals("announced_token", token)) & lapsed("ready")
        fields = {"ready_token": token, "ready_claimer": claimer, **lease.fields("ready")}
        return lease if self._set(owner_pk, CURRENT, fields, unclaimed | unfinished) is not None else None

    def release_ready(self, owner_pk: str, lease: Lease) -> None:
        """An attempt that failed gives its claim back, so its retry need not wait for the claim to lapse."""
        self._set(owner_pk, CURRENT, {}, lease.held("ready"), remove=lease_fields("ready"))

    def mark_ready(self, owner_pk: str, manifest_key: str, lease: Lease) -> bool:
        """Ready, with this manifest, while ``lease`` still holds the claim; False when newer inputs' announcement
        took it over (this one is then out of date, and is not published)."""
        fields = {"manifest_key": manifest_key, "status": OwnerStatus.READY, "ready_at": now_iso()}
        return self._set(owner_pk, CURRENT, fields, lease.held("ready"), remove=("failure",)) is not None

    def mark_announced(self, owner_pk: str, token: str) -> None:
        """The ready event for these inputs is on the bus: a duplicate delivery claims nothing after this."""
        self._set(owner_pk, CURRENT, {"announced_token": token})

    # ------------------------------------------------------------------ a file is quarantined
    def claim_quarantine_announcement(self, key: str, version: str) -> Lease | None:
        """Let one attempt at a time publish the recorded "File Quarantined" (state/leases.py); None if it is
        published, or another attempt is publishing it."""
        lease = Lease.for_this_invocation()
        unpublished = Not(Missing("unannounced_quarantine")) & lapsed("announcing")
        claimed = self._set(file_pk(key), f"v#{version}", lease.fields("announcing"), unpublished)
        return lease if claimed is not None else None

    def release_quarantine_announcement(self, key: str, version: str, lease: Lease) -> None:
        self._set(file_pk(key), f"v#{version}", {}, lease.held("announcing"), remove=lease_fields("announcing"))

    def mark_quarantine_announced(self, key: str, version: str) -> None:
        remove = ("unannounced_quarantine", *lease_fields("announcing"))
        self._set(file_pk(key), f"v#{version}", {}, remove=remove)
