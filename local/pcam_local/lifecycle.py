"""S3 lifecycle rules applied to the local S3, which stores them but never acts on them.

Each action is taken as S3 takes it (Amazon S3 User Guide, "Expiring objects" and "Lifecycle configuration
elements"): its due time is the object's creation (or, for a noncurrent version, the creation of the version
that replaced it; for an upload, its initiation) plus the rule's days, rounded up to the next midnight UTC.
- Expiration of a current version in a versioned bucket adds a delete marker; the version becomes noncurrent.
- NoncurrentVersionExpiration deletes a noncurrent version for good.
- ExpiredObjectDeleteMarker removes a delete marker no version is left behind.
- AbortIncompleteMultipartUpload aborts an upload and frees its parts.
Where rules overlap, the earliest action wins.

`apply_until` walks the days from the last sweep to ``now`` in order, taking each day's actions with the local
S3's clock set to that day, so a chain (expired on day 21, its version deleted on day 22, its marker removed
on day 23) happens on the days it would on S3.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta


@dataclass(frozen=True)
class LifecycleAction:
    day: datetime  # the midnight UTC the action was due
    rule: str
    action: str  # "expired" (delete marker added), "deleted version", "removed delete marker", "aborted upload"
    key: str
    version_id: str | None = None

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.rule}: {self.action} {self.key}"


def due(start: datetime, days: int) -> datetime:
    """``start`` plus ``days``, rounded up to the next midnight UTC (S3's lifecycle arithmetic)."""
    end = start.astimezone(UTC) + timedelta(days=days)
    return datetime.combine(end.date() + timedelta(days=1), time(0), tzinfo=UTC)


def _prefix(rule: dict) -> str:
    found = rule.get("Filter", {})
    return found.get("Prefix", found.get("And", {}).get("Prefix", rule.get("Prefix", "")))


def _rules(s3, bucket: str) -> list[dict]:
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
            return []
        raise
    return [rule for rule in rules if rule.get("Status") == "Enabled"]


def _versions(s3, bucket: str) -> dict[str, list[dict]]:
    """Every version and delete marker, per key, newest first."""
    by_key: dict[str, list[dict]] = defaultdict(list)
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []):
            by_key[entry["Key"]].append({**entry, "marker": False})
        for entry in page.get("DeleteMarkers", []):
            by_key[entry["Key"]].append({**entry, "marker": True})
    for entries in by_key.values():
        entries.sort(key=lambda entry: entry["LastModified"], reverse=True)
    return by_key


def pending_actions(s3, bucket: str, not_before: datetime | None = None) -> list[LifecycleAction]:
    """What the bucket's rules will do to it as it stands, each with the day it is due, earliest first.

    Nothing is due before ``not_before``, the day already swept: a delete marker whose last version went
    that day is removed that day, not on the day the marker was made."""
    rules = _rules(s3, bucket)
    earliest: dict[tuple[str, str | None, str], LifecycleAction] = {}

    def offer(action: LifecycleAction) -> None:
        if not_before and action.day < not_before:
            action = replace(action, day=not_before)
        slot = (action.key, action.version_id, action.action)
        if slot not in earliest or action.day < earliest[slot].day:
            earliest[slot] = action

    for key, entries in _versions(s3, bucket).items():
        for rule in (rule for rule in rules if key.startswith(_prefix(rule))):
            name = rule.get("ID", "")
            days = rule.get("Expiration", {}).get("Days")
            current = entries[0]
            if days and not current["marker"]:
                offer(LifecycleAction(due(current["LastModified"], days), name, "expired", key))
            noncurrent_days = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
            for newer, older in zip(entries, entries[1:], strict=False) if noncurrent_days else ():
                if not older["marker"]:
                    when = due(newer["LastModified"], noncurrent_days)
                    offer(LifecycleAction(when, name, "deleted version", key, older["VersionId"]))
            if rule.get("Expiration", {}).get("ExpiredObjectDeleteMarker") and current["marker"] and len(entries) == 1:
                when = due(current["LastModified"], 0)
                offer(LifecycleAction(when, name, "removed delete marker", key, current["VersionId"]))
    for rule in rules:
        days = rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
        if days:
            for upload in s3.list_multipart_uploads(Bucket=bucket, Prefix=_prefix(rule)).get("Uploads", []):
                when = due(upload["Initiated"], days)
                offer(LifecycleAction(when, rule.get("ID", ""), "aborted upload", upload["Key"], upload["UploadId"]))
    return sorted(earliest.values(), key=lambda action: (action.day, action.key))


def _take(s3, bucket: str, action: LifecycleAction) -> None:
    if action.action == "expired":
        s3.delete_object(Bucket=bucket, Key=action.key)
    elif action.action == "aborted upload":
        s3.abort_multipart_upload(Bucket=bucket, Key=action.key, UploadId=action.version_id)
    else:
        s3.delete_object(Bucket=bucket, Key=action.key, VersionId=action.version_id)


def apply_until(s3, bucket: str, now: datetime, set_s3_time: Callable[[datetime], None]) -> list[LifecycleAction]:
    """Take every action due by ``now``, day by day; ``set_s3_time`` moves the local S3's clock to a day."""
    taken: list[LifecycleAction] = []
    day = None
    while True:
        due_now = [action for action in pending_actions(s3, bucket, day) if action.day <= now]
        if not due_now:
            return taken
        day = due_now[0].day
        set_s3_time(day)  # a delete marker added on that day is dated that day
        for action in (action for action in due_now if action.day == day):
            if action in taken:
                raise RuntimeError(f"the local S3 did not take a lifecycle action: {action}")
            _take(s3, bucket, action)
            taken.append(action)
