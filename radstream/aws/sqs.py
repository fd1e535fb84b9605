"""The SQS queue that catches what EventBridge could not deliver, and the event source mapping that
hands its messages to a Lambda. The queue is encrypted with SQS's own keys (SSE-SQS: no KMS key to
manage or pay for), keeps a message 14 days (the most SQS allows) and admits only EventBridge, for
one rule. An idle standard queue bills nothing: SQS charges per request."""

from __future__ import annotations

import json
from typing import Any

from radstream.aws import error_code, make_arn
from radstream.aws.tags import missing

RETENTION_SECONDS = 14 * 24 * 3600
# The queue's visibility timeout must be at least the consuming function's timeout, or a message is
# handed out again while the first invocation still runs (Lambda refuses the mapping otherwise).
VISIBILITY_TIMEOUT_SECONDS = 6 * 60
# One message per invocation: a message that cannot be recorded is retried alone, never holding
# back the others of its batch (undelivered uploads are rare; throughput does not matter here).
BATCH_SIZE = 1
_ABSENT = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "sqs", region, account_id, name)


def dead_letter_policy(queue: str, rule_arn: str, partition: str = "aws") -> dict[str, Any]:
    """The queue policy: EventBridge may send to it on behalf of that one rule, nobody else anything."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EventBridgeDeadLetters",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    }


def queue_attributes(policy: dict[str, Any]) -> dict[str, str]:
    """The attributes RadStream sets (SQS takes and returns every attribute as text)."""
    return {
        "SqsManagedSseEnabled": "true",
        "MessageRetentionPeriod": str(RETENTION_SECONDS),
        "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS),
        "Policy": json.dumps(policy),
    }


def _url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except Exception as exc:
        if error_code(exc) in _ABSENT:
            return None
        raise


def queue_drift(sqs: Any, name: str, attributes: dict[str, str], tags: dict[str, str]) -> list[str]:
    url = _url(sqs, name)
    if url is None:
        return ["missing"]
    current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    drift = []
    for key, wanted in attributes.items():
        found = current.get(key)
        same = json.loads(found) == json.loads(wanted) if key == "Policy" and found else found == wanted
        if not same:
            drift.append(key)
    if missing(sqs.list_queue_tags(QueueUrl=url).get("Tags", {}), tags):
        drift.append("tags")
    return drift


def ensure_queue(sqs: Any, name: str, attributes: dict[str, str], tags: dict[str, str]) -> bool:
    drift = queue_drift(sqs, name, attributes, tags)
    if "missing" in drift:
        sqs.create_queue(QueueName=name, Attributes=attributes, tags=tags)
        return True
    url = _url(sqs, name)
    changed = {key: attributes[key] for key in drift if key in attributes}
    if changed:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)
    if "tags" in drift:
        sqs.tag_queue(QueueUrl=url, Tags=tags)
    return bool(drift)


def delete_queue(sqs: Any, name: str) -> None:
    url = _url(sqs, name)
    if url is not None:
        try:
            sqs.delete_queue(QueueUrl=url)
        except Exception as exc:
            if error_code(exc) not in _ABSENT:
                raise


# -- the queue's consumer ---------------------------------------------------------------------------
def _mappings(lam: Any, source_arn: str, function: str) -> list[dict[str, Any]]:
    pages = lam.get_paginator("list_event_source_mappings").paginate(EventSourceArn=source_arn, FunctionName=function)
    return [m for page in pages for m in page["EventSourceMappings"]]


def mapping_drift(lam: Any, source_arn: str, function: str) -> list[str]:
    """A mapping from the queue to the function that is on and reads BATCH_SIZE messages at a time."""
    found = _mappings(lam, source_arn, function)
    if not found:
        return ["missing"]
    if any(m.get("State") in ("Disabled", "Disabling") for m in found):
        return ["disabled"]
    return [] if all(m.get("BatchSize") == BATCH_SIZE for m in found) else ["batch size"]


def ensure_mapping(lam: Any, source_arn: str, function: str) -> bool:
    drift = mapping_drift(lam, source_arn, function)
    if "missing" in drift:
        lam.create_event_source_mapping(EventSourceArn=source_arn, FunctionName=function, BatchSize=BATCH_SIZE,
                                        Enabled=True)
    elif drift:
        for mapping in _mappings(lam, source_arn, function):
            lam.update_event_source_mapping(UUID=mapping["UUID"], BatchSize=BATCH_SIZE, Enabled=True)
    return bool(drift)


def delete_mapping(lam: Any, source_arn: str, function: str) -> None:
    """Every mapping from the queue to the function; quiet when there is none (or no function)."""
    try:
        found = _mappings(lam, source_arn, function)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return
        raise
    for mapping in found:
        try:
            lam.delete_event_source_mapping(UUID=mapping["UUID"])
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
