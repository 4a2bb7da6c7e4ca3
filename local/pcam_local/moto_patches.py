"""Every change the local stack makes to moto's own code, in one list, for the one moto version they were
written for (the pin in requirements/dev.txt). Another version is refused at the server's start: each patch
must be checked against it first. ``tests/emulator/test_moto_upstream_contract.py`` holds each assumption about
upstream moto to what that version does, so a moto that changed one fails there, not in a scenario.

The patches, and why:
- ``gc_threshold``: Python 3.13 collects reference cycles less often; moto's response objects keep each
  request's body in cycles, so a large multipart upload's parts piled up (+300 MB for 512 MB).
- ``scheduled_rules_match_no_events``: moto matches a rule without an EventPattern to every event.
- ``s3_sequencers_increase``: moto gives every S3 event the same ``sequencer``; S3's grows with each PUT and
  DELETE of a key, and integrators order uploads by it.
- ``archives_and_replays_as_eventbridge_keeps_them``: moto's CloudFormation Archive takes no pattern object,
  and its replays ignore the time window and FilterArns.
- ``models_are_not_tracked``: moto keeps every model object ever made for its reset API.
- ``rules_publish_to_sns_topics``: moto's EventBridge refuses a rule's SNS target (the whole PutEvents fails);
  EventBridge publishes the event to the topic (a lab's notices, ``pcam lab add --notify``).
- ``table_streams_are_read_by_the_local_runtime``: moto runs a stream's Lambda mappings itself, in Docker, on
  every write, and then forgets the records; the local runtime polls the stream as Lambda does.
- ``s3_writes.install``: multipart uploads completed on disk; one event per write, as S3 sends.
- ``s3_bodies.install``: small object bodies kept on disk, not in memory.
- ``s3_clock.install``: S3's times follow a clock tests can move (lifecycle rules).
The ranged GET, GetAccountSettings and the serialised control plane are WSGI routes in front of moto
(``moto_launcher``), not changes to its code.
"""

from __future__ import annotations

import copy
import gc
import json
import time
import uuid
from importlib.metadata import version

from pcam_local import s3_bodies, s3_clock, s3_writes

MOTO_VERSION = "5.2.5"


class UnexpectedMoto(RuntimeError):
    pass


def check_moto_version(installed: str | None = None) -> None:
    installed = installed or version("moto")
    if installed != MOTO_VERSION:
        raise UnexpectedMoto(
            f"the local stack patches moto's internals as moto {MOTO_VERSION} has them, and moto {installed} is "
            "installed: check each patch in pcam_local/moto_patches.py against it (and run "
            "tests/emulator/test_moto_upstream_contract.py) before changing the pin in requirements/dev.txt"
        )


def gc_threshold() -> None:
    """Collect the youngest generation every 700 allocations, as Python 3.12 did (3.13: 2,000)."""
    gc.set_threshold(700, 10, 10)


def scheduled_rules_match_no_events() -> None:
    """An EventBridge rule with a ScheduleExpression and no EventPattern fires on its schedule only; moto's
    empty pattern matches every event on the bus, which would copy every S3 and SageMaker event to the
    scheduled rule's targets (the local stack fires schedules itself: ``schedules.py``)."""
    from moto.events.models import Rule

    send_to_targets = Rule.send_to_targets

    def send_unless_scheduled(self, original_event, transform_input=True):
        if self.scheduled_expression and not self.event_pattern.dump():
            return None
        return send_to_targets(self, original_event, transform_input)

    Rule.send_to_targets = send_unless_scheduled


MOTO_S3_SEQUENCER = "617f08299329d189"  # the constant moto writes into every S3 event


def s3_sequencers_increase() -> None:
    """Each S3 event gets a sequencer greater than the last one's (hex, of the clock in ns), as S3's grows per
    key. moto hands one event to every rule of the bus in turn: the first rule gives it its sequencer."""
    from moto.events.models import Rule

    send_to_targets, last = Rule.send_to_targets, [0]

    def send_with_sequencer(self, event, transform_input=True):
        found = event.get("detail", {}).get("object", {}) if event.get("source") == "aws.s3" else {}
        if found.get("sequencer") == MOTO_S3_SEQUENCER:
            last[0] = max(last[0] + 1, time.time_ns())
            found["sequencer"] = f"{last[0]:X}"
        return send_to_targets(self, event, transform_input)

    Rule.send_to_targets = send_with_sequencer


def archives_and_replays_as_eventbridge_keeps_them() -> None:
    """moto's CloudFormation hands an Archive's EventPattern object to code that expects JSON text (the stack
    fails), and its replays send every archived event to every rule of the bus, whatever the replay's time
    window and FilterArns (EventBridge's StartReplay sends only events of the window, only to those rules)."""
    from datetime import datetime

    from moto.core.utils import unix_time
    from moto.events.models import Archive, Replay, ReplayState, events_backends

    from_template = Archive.create_from_cloudformation_json.__func__

    def create_with_pattern_text(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        if isinstance(properties.get("EventPattern"), dict):
            properties["EventPattern"] = json.dumps(properties["EventPattern"])
        return from_template(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    Archive.create_from_cloudformation_json = classmethod(create_with_pattern_text)

    def replay_events(self, archive) -> None:
        bus = events_backends[self.account_id][self.region].describe_event_bus(self.destination["Arn"].split("/")[-1])
        wanted = set(self.destination.get("FilterArns") or [])
        start, end = float(self.event_start_time), float(self.event_end_time)
        for event in archive.events:
            sent = event["time"]  # moto keeps an epoch number, EventBridge sends ISO 8601
            sent_at = float(sent) if not isinstance(sent, str) else datetime.fromisoformat(sent).timestamp()
            if not start <= sent_at <= end:
                continue
            for rule in bus.rules.values():
                if not wanted or rule.arn in wanted:
                    rule.send_to_targets(dict(event, **{"id": str(uuid.uuid4()), "replay-name": self.name}), False)
        self.state = ReplayState.COMPLETED
        self.end_time = unix_time()

    Replay.replay_events = replay_events


def models_are_not_tracked() -> None:
    """moto appends every model object it ever creates (each S3 object and its ACL, each SQS message, each
    DynamoDB item) to a class-wide list, for its reset API, so nothing is ever freed: hundreds of bytes per
    object even after it is deleted or replaced. The local stack never resets its server."""
    from moto.core.common_models import BaseModel

    BaseModel.__new__ = staticmethod(lambda cls, *args, **kwargs: object.__new__(cls))


def rules_publish_to_sns_topics() -> None:
    """A rule's SNS targets get the event as the message, as EventBridge sends it; the other targets as moto does."""
    from moto.events.models import Rule
    from moto.sns.models import sns_backends

    send_to_targets = Rule.send_to_targets

    def send_with_topics(self, original_event, transform_input=True):
        topics = [t for t in self.targets if t["Arn"].split(":")[2] == "sns"]
        if topics and self.event_pattern.matches_event(original_event):
            for target in topics:
                account, region = target["Arn"].split(":")[4], target["Arn"].split(":")[3]
                sns_backends[account][region].publish(json.dumps(original_event, default=str), arn=target["Arn"])
        rest = copy.copy(self)  # not the rule itself: another request may be reading its targets
        rest.targets = [t for t in self.targets if t not in topics]
        return send_to_targets(rest, original_event, transform_input)

    Rule.send_to_targets = send_with_topics


def table_streams_are_read_by_the_local_runtime() -> None:
    """A table write adds its stream record and nothing else; the records stay for GetRecords."""
    from moto.dynamodb.models.table import StreamRecord, StreamShard

    def add(self, old, new) -> None:
        event_name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        view = self.table.stream_specification["StreamViewType"]
        self.items.append(
            StreamRecord(self.table, view, event_name, old, new, len(self.items) + self.starting_sequence_number)
        )

    StreamShard.add = add


def install_all() -> None:
    check_moto_version()
    gc_threshold()
    scheduled_rules_match_no_events()
    s3_sequencers_increase()
    rules_publish_to_sns_topics()
    archives_and_replays_as_eventbridge_keeps_them()
    models_are_not_tracked()
    table_streams_are_read_by_the_local_runtime()
    s3_writes.install()
    s3_bodies.install()
    s3_clock.install()
