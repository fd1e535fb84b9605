"""Studies that would otherwise end without an outcome, read from the two events that tell of them:
an execution that ended outside every Catch (EventBridge's "Step Functions Execution Status
Change"), and an upload EventBridge could not hand to the pipeline (an SQS record from the rule's
dead-letter queue). Pure: each yields what StoreFailure records, or nothing when a record exists;
`trigger` is the S3 event the study came with, for lambda_support.input_location.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STATUS_CHANGE = "Step Functions Execution Status Change"
# The Fail state after StoreFailure (manifests/stepfunctions/pipeline.asl.json): an execution that
# ends with it has had its reason written by a Catch, which says more than the status can.
RECORDED_ERROR = "PipelineFailed"
EXECUTION_STAGE, DELIVERY_STAGE = "execution", "delivery"


@dataclass(frozen=True)
class LostStudy:
    trigger: Mapping[str, Any]
    stage: str
    error_type: str
    message: str
    execution_arn: str | None = None


def is_status_change(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.states" and event.get("detail-type") == STATUS_CHANGE


def is_sqs_batch(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and bool(records) and all(r.get("eventSource") == "aws:sqs" for r in records)


def from_status_change(event: Mapping[str, Any]) -> LostStudy | None:
    """The study of an execution that ended TIMED_OUT, ABORTED or FAILED; None for one that
    succeeded or whose Catch already stored its reason."""
    detail = event.get("detail") or {}
    status = str(detail.get("status") or "")
    if status not in ("TIMED_OUT", "ABORTED", "FAILED") or detail.get("error") == RECORDED_ERROR:
        return None
    try:
        trigger = json.loads(detail.get("input") or "{}")
    except ValueError:
        trigger = {}
    message = " ".join(str(part) for part in (detail.get("error"), detail.get("cause")) if part) or \
        f"the execution ended {status} before any state recorded why"
    return LostStudy(trigger if isinstance(trigger, Mapping) else {}, EXECUTION_STAGE, status, message,
                     detail.get("executionArn"))


def _attribute(record: Mapping[str, Any], name: str) -> str | None:
    value = (record.get("messageAttributes") or {}).get(name) or {}
    return value.get("stringValue")


def from_dead_letter(record: Mapping[str, Any]) -> LostStudy:
    """An undelivered upload: EventBridge puts the event as the body, why in ERROR_CODE and
    ERROR_MESSAGE. A body that is not a JSON object cannot be attributed: ValueError, and the
    message stays in the queue (14 days) for someone to look at."""
    try:
        trigger = json.loads(record.get("body") or "")
    except ValueError as exc:
        raise ValueError(f"dead-letter message {record.get('messageId')} is not JSON") from exc
    if not isinstance(trigger, Mapping):
        raise ValueError(f"dead-letter message {record.get('messageId')} is not an event")
    code = _attribute(record, "ERROR_CODE") or "UNKNOWN"
    message = _attribute(record, "ERROR_MESSAGE") or "EventBridge could not start the pipeline"
    return LostStudy(trigger, DELIVERY_STAGE, code, f"not delivered to {_attribute(record, 'TARGET_ARN')}: {message}")
