"""EventBridge's scheduled rules on the local stack: moto stores a rule's ScheduleExpression but never fires it.

Every ``period`` seconds (a compressed minute: the local stack's default is 3 s for ``rate(1 minute)``)
each deployed rule with a schedule sends its targets the event EventBridge sends: detail-type "Scheduled
Event", source "aws.events", the rule's ARN in ``resources``, an empty detail.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import boto3

from pcam_local import REGION
from pcam_local.stack import DeployedStack


def scheduled_event(rule_arn: str, account: str, now: datetime) -> dict:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class ScheduledRules:
    def __init__(
        self,
        stack: DeployedStack,
        endpoint: str,
        period: float = 3.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._now = now  # the local stack's clock (LocalClock)
        session = boto3.Session(region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
        self._events = session.client("events", endpoint_url=endpoint)
        self._sqs = session.client("sqs", endpoint_url=endpoint)
        self._rules = [
            stack.physical_ids[logical_id]
            for logical_id, resource in stack.template.get("Resources", {}).items()
            if resource["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in resource["Properties"]
        ]
        self.period = period
        self.fired = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="scheduled-rules")

    def start(self) -> ScheduledRules:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def fire(self) -> None:
        """Send every scheduled rule's event to its SQS targets once, as EventBridge does on schedule."""
        for name in self._rules:
            rule = self._events.describe_rule(Name=name)
            if rule.get("State") != "ENABLED":
                continue
            event = scheduled_event(rule["Arn"], rule["Arn"].split(":")[4], self._now())
            for target in self._events.list_targets_by_rule(Rule=name)["Targets"]:
                if target["Arn"].startswith("arn:aws:sqs:"):
                    queue_url = self._sqs.get_queue_url(QueueName=target["Arn"].rsplit(":", 1)[-1])["QueueUrl"]
                    self._sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
            self.fired += 1

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.fire()
            except Exception as exc:  # the stack is stopping, or moto hiccuped: the next period tries again
                print(f"scheduled rules: {exc}")
