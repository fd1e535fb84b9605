"""EventBridge in the sandbox: what moto leaves out.

1. Delivery to Step Functions (and Lambda) targets. moto matches rules for both PutEvents and S3's
   EventBridge notifications and then calls `Rule.send_to_targets`, which raises for Step
   Functions targets. `install()` wraps it: targets moto cannot deliver to are handled here, the
   others are passed on to moto unchanged. The input a target receives follows EventBridge:
   `Input` verbatim, `InputPath` as a JSONPath into the event, `InputTransformer` rendered,
   otherwise the whole event.
   A delivery that fails is handled as EventBridge does: errors it does not retry (the target or
   the permission is missing) at once, the others after the target's RetryPolicy, the event then
   goes to the target's DeadLetterConfig queue with RULE_ARN, TARGET_ARN, ERROR_CODE and
   ERROR_MESSAGE attributes, or is dropped when the target has none.
2. "Step Functions Execution Status Change" events (source aws.states), which moto never emits,
   for executions that end (SUCCEEDED, FAILED, TIMED_OUT, ABORTED), so rules that record failed
   executions work. moto's interpreter does end an execution at the state machine's TimeoutSeconds
   (TIMED_OUT), so timeouts are emitted too."""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.events.utils import EventMessageType

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def normalise_event(original: Mapping[str, Any]) -> dict[str, Any]:
    """The event as a target sees it: ISO time, no moto-internal fields."""
    event = {k: v for k, v in original.items() if k != "ingestion-time"}
    if isinstance(event.get("time"), (int, float)):
        event["time"] = datetime.fromtimestamp(event["time"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def json_path(event: Any, path: str) -> Any:
    from jsonpath_ng.ext import parse

    matches = parse(path).find(event)
    return matches[0].value if matches else None


def render_template(template: str, values: dict[str, Any]) -> str:
    """Fill `<name>` placeholders: inside a JSON string the value is inserted as text, elsewhere as
    JSON (so objects stay objects). Unknown placeholders are left as they are, like EventBridge."""
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        char = template[i]
        if char == '"' and (i == 0 or template[i - 1] != "\\"):
            in_string = not in_string
        match = _PLACEHOLDER.match(template, i) if char == "<" else None
        if match and match.group(1) in values:
            value = values[match.group(1)]
            if in_string:
                text = value if isinstance(value, str) else json.dumps(value)
                out.append(json.dumps(text)[1:-1])
            else:
                out.append(json.dumps(value))
            i = match.end()
            continue
        out.append(char)
        i += 1
    return "".join(out)


def target_input(target: dict[str, Any], event: dict[str, Any], rule_name: str, rule_arn: str) -> str:
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        return json.dumps(json_path(event, target["InputPath"]))
    transformer = target.get("InputTransformer")
    if transformer:
        values = {name: json_path(event, path) for name, path in transformer.get("InputPathsMap", {}).items()}
        values.update({
            "aws.events.event": event,
            "aws.events.event.json": event,
            "aws.events.rule-name": rule_name,
            "aws.events.rule-arn": rule_arn,
        })
        return render_template(transformer["InputTemplate"], values)
    return json.dumps(event)


def _service_of(arn: str) -> str:
    return arn.split(":")[2]


def _start_execution(arn: str, payload: str) -> None:
    from moto.stepfunctions.responses import get_backend

    _, _, _, region, account, *_ = arn.split(":")
    execution = get_backend(account, region).start_execution(arn, name=str(uuid.uuid4()), execution_input=payload)
    log.info("event started %s", execution.execution_arn)


def _invoke_function(arn: str, payload: str) -> None:
    from moto.awslambda.models import get_backend

    _, _, _, region, account, *_ = arn.split(":")
    function = get_backend(account, region).get_function(arn)
    # EventBridge invokes asynchronously: the put that raised the event must not wait for it.
    threading.Thread(
        target=function.invoke, args=(payload, {"x-amz-invocation-type": "Event"}, {}), daemon=True
    ).start()


_DELIVERIES = {"states": _start_execution, "lambda": _invoke_function}

# The target's answer -> EventBridge's ERROR_CODE; anything else is INTERNAL_ERROR (retried).
_ERROR_CODES = {
    "StateMachineDoesNotExist": "NO_RESOURCE", "ResourceNotFoundException": "NO_RESOURCE",
    "AccessDeniedException": "NO_PERMISSIONS", "AccessDenied": "NO_PERMISSIONS",
    "InvalidExecutionInput": "INVALID_PARAMETER", "InvalidArn": "INVALID_PARAMETER",
    "ExecutionLimitExceeded": "THROTTLING", "ThrottlingException": "THROTTLING",
    "TooManyRequestsException": "THROTTLING",
}
# EventBridge sends these to the dead-letter queue without retrying: retrying cannot fix them.
NOT_RETRIED = {"NO_RESOURCE", "NO_PERMISSIONS", "INVALID_PARAMETER"}
# EventBridge's defaults for a target without a RetryPolicy.
DEFAULT_RETRY_POLICY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
# EventBridge backs off exponentially over minutes; the sandbox keeps the shape on a shorter scale.
_FIRST_RETRY_S, _LONGEST_RETRY_S = 0.1, 5.0


def error_code(exc: BaseException) -> str:
    kind = getattr(exc, "error_type", None) or type(exc).__name__
    return _ERROR_CODES.get(str(kind), "INTERNAL_ERROR")


def dead_letter_attributes(rule_arn: str, target_arn: str, code: str, message: str) -> dict[str, dict[str, str]]:
    """The message attributes EventBridge gives an event it puts in a dead-letter queue."""
    values = {"RULE_ARN": rule_arn, "TARGET_ARN": target_arn, "ERROR_CODE": code, "ERROR_MESSAGE": message[:256]}
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


def _send_to_dead_letter_queue(target: dict[str, Any], event: dict[str, Any], rule_arn: str, failure: Exception) -> None:
    queue_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not queue_arn:
        log.warning("rule %s dropped an event for %s: %s", rule_arn, target["Arn"], failure)
        return
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, queue = queue_arn.split(":", 5)
    attributes = dead_letter_attributes(rule_arn, target["Arn"], error_code(failure), str(failure))
    try:
        sqs_backends[account][region].send_message(queue, json.dumps(event), message_attributes=attributes)
    except Exception:
        log.exception("rule %s could not send an undelivered event to %s", rule_arn, queue_arn)


def _retry_then_dead_letter(target: dict[str, Any], event: dict[str, Any], rule_arn: str, payload: str,
                            failure: Exception) -> None:
    policy = {**DEFAULT_RETRY_POLICY, **(target.get("RetryPolicy") or {})}
    deadline = time.monotonic() + policy["MaximumEventAgeInSeconds"]
    deliver = _DELIVERIES[_service_of(target["Arn"])]
    for attempt in range(policy["MaximumRetryAttempts"]):
        delay = min(_FIRST_RETRY_S * 2 ** attempt, _LONGEST_RETRY_S)
        if time.monotonic() + delay > deadline:
            break
        time.sleep(delay)
        try:
            deliver(target["Arn"], payload)
            return
        except Exception as exc:
            failure = exc
            if error_code(exc) in NOT_RETRIED:
                break
    _send_to_dead_letter_queue(target, event, rule_arn, failure)


def deliver(target: dict[str, Any], event: dict[str, Any], rule_name: str, rule_arn: str) -> None:
    """The first attempt now (an execution a put starts is there when the put returns); retries and
    the dead-letter queue in the background, as the put that raised the event must not wait."""
    payload = ""
    try:
        payload = target_input(target, event, rule_name, rule_arn)
        _DELIVERIES[_service_of(target["Arn"])](target["Arn"], payload)
        return
    except Exception as exc:
        failure = exc
    log.warning("rule %s could not deliver to %s: %s", rule_name, target["Arn"], failure)
    if error_code(failure) in NOT_RETRIED or not payload:
        work = threading.Thread(target=_send_to_dead_letter_queue, args=(target, event, rule_arn, failure), daemon=True)
    else:
        work = threading.Thread(target=_retry_then_dead_letter, args=(target, event, rule_arn, payload, failure),
                                daemon=True)
    work.start()


def _epoch_ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment else None


def status_change_event(execution: Any) -> dict[str, Any]:
    """The PutEvents entry AWS emits when an execution ends."""
    def as_text(value: Any) -> str | None:
        return value if value is None or isinstance(value, str) else json.dumps(value)

    detail = {
        "executionArn": execution.exec_arn,
        "stateMachineArn": execution.state_machine_arn,
        "name": execution.name,
        "status": execution.status,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": _epoch_ms(execution.stop_date),
        "input": as_text(execution.input_data),
        "output": as_text(execution.output),
        "error": execution.error,
        "cause": execution.cause,
    }
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Detail": json.dumps(detail),
        "Resources": [execution.exec_arn],
    }


def _emit_status_changes() -> None:
    from moto.events.models import events_backends
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    moto_terminated = BaseExecutionWorkerCommunication.terminated
    if getattr(moto_terminated, "radstream_patched", False):
        return

    def terminated(self: Any) -> None:
        moto_terminated(self)
        execution = self.execution
        try:
            events_backends[execution.account_id][execution.region_name].put_events([status_change_event(execution)])
        except Exception:
            log.exception("could not emit the status change of %s", execution.exec_arn)

    terminated.radstream_patched = True  # type: ignore[attr-defined]
    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]  # the patch is the point


def install() -> None:
    _deliver_to_all_targets()
    _emit_status_changes()


def _deliver_to_all_targets() -> None:
    from moto.events.models import Rule

    moto_send = Rule.send_to_targets
    if getattr(moto_send, "radstream_patched", False):
        return

    def send_to_targets(self: Any, original_event: EventMessageType, transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in self.targets if _service_of(t["Arn"]) in _DELIVERIES]
        theirs = [t for t in self.targets if t not in ours]
        if theirs:
            rest = copy.copy(self)
            rest.targets = theirs
            moto_send(rest, original_event, transform_input)
        event = normalise_event(original_event)
        for target in ours:
            deliver(target, event, self.name, self.arn)

    send_to_targets.radstream_patched = True  # type: ignore[attr-defined]
    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]  # the patch is the point
