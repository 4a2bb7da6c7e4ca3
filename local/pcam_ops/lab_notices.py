"""`pcam lab add LAB --notify EMAIL`: the lab's own events by email. A rule on the pipeline's bus matches the
newest version of "Slide Scored", "File Quarantined" and "Slide Scoring Failed" whose ``lab`` is this lab, and
publishes them to the lab's SNS topic, which only that rule may publish to; each address is subscribed there
(SNS sends a confirmation first). Other labs' events never match."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import boto3

from pcam_pipeline.aws import events
from pcam_pipeline.core.keys import short_id

NOTICES = (events.SLIDE_SCORED, events.FILE_QUARANTINED, events.SLIDE_SCORING_FAILED)


def notice_pattern(lab: str) -> dict[str, Any]:
    """The events of this lab a person wants mailed: results, quarantines, scoring failures (newest versions)."""
    detail_types = [events.detail_type_of(event, events.SCHEMA_VERSIONS[event]) for event in NOTICES]
    return {"source": [events.SOURCE], "detail-type": detail_types, "detail": {"lab": [lab]}}


def notices_name(stack: str, lab: str) -> str:
    """The lab's rule and topic name: ``<stack>-lab-<lab>-notices``, shortened with a hash where it would pass
    EventBridge's 64 characters for a rule name (a stack name may have 128)."""
    name = f"{stack}-lab-{lab}-notices"
    return name if len(name) <= 64 else f"{stack[:32]}-{short_id(name)}-notices"


class LabNotices:
    def __init__(self, stack: str, bus: str, lab: str):
        self._name, self._bus = notices_name(stack, lab), bus
        self._lab = lab
        self._sns, self._events = boto3.client("sns"), boto3.client("events")

    def subscribe(self, email: str) -> str:
        """The lab's topic and rule (again: unchanged), and ``email`` subscribed; the topic's ARN."""
        topic = self._sns.create_topic(Name=self._name, Tags=[{"Key": "pcam:lab", "Value": self._lab}])["TopicArn"]
        pattern = json.dumps(notice_pattern(self._lab))
        what = f"pcam lab {self._lab}: its results, quarantines and failures"
        rule = self._events.put_rule(Name=self._name, EventBusName=self._bus, EventPattern=pattern, Description=what)
        only_the_rule = {"ArnEquals": {"aws:SourceArn": rule["RuleArn"]}}
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "OnlyTheLabsRule", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish", "Resource": topic, "Condition": only_the_rule}]}  # fmt: skip
        self._sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))
        added = self._events.put_targets(Rule=self._name, EventBusName=self._bus, Targets=[{"Id": "lab", "Arn": topic}])
        if added.get("FailedEntryCount"):  # PutTargets reports a target it could not add, it does not raise
            raise RuntimeError(f"EventBridge did not add the topic to the lab's rule: {added['FailedEntries']}")
        self._sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=email)
        return str(topic)

    def remove(self) -> None:
        """The lab's rule and topic (with its subscriptions), if it had any."""
        with contextlib.suppress(self._events.exceptions.ResourceNotFoundException):
            self._events.remove_targets(Rule=self._name, EventBusName=self._bus, Ids=["lab"])
            self._events.delete_rule(Name=self._name, EventBusName=self._bus)
        for page in self._sns.get_paginator("list_topics").paginate():
            for topic in page["Topics"]:
                if topic["TopicArn"].rsplit(":", 1)[-1] == self._name:
                    self._sns.delete_topic(TopicArn=topic["TopicArn"])
