"""StoreFailure: quarantine a study that could not go through. The reason goes to
failed/<study_id>/<input ref>/reason.json in the results bucket, the original (the version the
execution was about) is copied next to it as `original` (it also stays in the images bucket), and a
FAILED telemetry event is sent. Filing per input ref keeps the failures of two objects claiming one
id apart. A DICOM refused for still carrying identity (or because the identity check could not read
it) is not copied, so the identity spreads no further; nor is a study whose validation ended in an
error the pipeline does not raise itself (a timeout, a crash), since its identity check may never
have finished; nor an object outside incoming/, which is no study.

The state machine's Catch puts the error at $.failure.<state name>, next to that state's input, so
the input is either the trigger event or the contract of the earlier steps. Without a valid study id
(e.g. the sidecar or the content was the problem) one is derived from a hash of the object key,
never from its text.

Two more callers hand it studies no Catch saw (radstream.pipeline.lost_studies): the execution-failed
rule, with the status change of an execution that timed out, was aborted or failed outside every
Catch (stage `execution`), and the dead-letter queue of the image-uploaded rule, with the uploads
EventBridge could not start an execution for (stage `delivery`). Their study's content was never
read, so the id comes from a hash of the key, and no original is copied (no identity check has finished)."""

from __future__ import annotations

import json
from typing import Any

from radstream.pipeline import lambda_support as support
from radstream.pipeline import lost_studies
from radstream.pipeline.errors import IdentifiedDicom, NotUnderIncoming, stage_of
from radstream.pipeline.results import (
    failure_copy_key,
    failure_document,
    failure_reason_key,
    parse_catch,
    telemetry_event,
)
from radstream.pipeline.study_ids import is_valid_study_id, key_study_id

_NOT_COPIED = (IdentifiedDicom.__name__, NotUnderIncoming.__name__)


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if lost_studies.is_status_change(event):
        lost = lost_studies.from_status_change(event)
        return _record_lost(lost) if lost else {"status": "ALREADY_RECORDED"}
    if lost_studies.is_sqs_batch(event):
        # An error leaves the message in the queue to be read again: writing its record twice is harmless.
        return {"records": [_record_lost(lost_studies.from_dead_letter(record)) for record in event["Records"]]}
    state, caught = next(iter((event.get("failure") or {"unknown": {}}).items()))
    error = parse_catch(caught)
    stage = support.STATE_STAGES.get(state) or error["stage"]
    try:
        bucket, key = support.input_location(event)
    except ValueError:
        bucket, key = None, "unknown"
    version = support.input_version(event)
    study_id = event["study_id"] if is_valid_study_id(event.get("study_id")) else key_study_id(key)
    results = support.setting("RESULTS_BUCKET")
    document = failure_document(study_id=study_id, input_key=key, input_version_id=version, stage=stage,
                                error_type=error["error_type"], message=error["message"])
    reason_key = failure_reason_key(study_id, document["input_ref"])
    copy = bucket is not None and _may_copy(stage, error["error_type"])
    document["copied"] = copy and _copy_original(bucket, key, version, results, failure_copy_key(study_id, document["input_ref"]))
    support.put_object(results, reason_key, json.dumps(document, indent=2).encode(), "application/json")
    support.send_telemetry(telemetry_event(
        study_id=study_id, status="FAILED", stage_ms=support.timings_of(event), input_key=key,
        view=(event.get("metadata") or {}).get("view"), error=document,
    ))
    return {"study_id": study_id, "status": "FAILED", "failure_s3_path": f"s3://{results}/{reason_key}",
            "error": {k: v for k, v in document.items() if k != "input_key"}}


def _record_lost(lost: lost_studies.LostStudy) -> dict[str, Any]:
    try:
        _, key = support.input_location(lost.trigger)
    except ValueError:
        key = "unknown"
    study_id = key_study_id(key)
    results = support.setting("RESULTS_BUCKET")
    document = failure_document(study_id=study_id, input_key=key, input_version_id=support.input_version(lost.trigger),
                                stage=lost.stage, error_type=lost.error_type, message=lost.message)
    document["copied"] = False
    if lost.execution_arn:
        document["execution_arn"] = lost.execution_arn
    reason_key = failure_reason_key(study_id, document["input_ref"])
    support.put_object(results, reason_key, json.dumps(document, indent=2).encode(), "application/json")
    support.send_telemetry(telemetry_event(study_id=study_id, status="FAILED", stage_ms={}, input_key=key,
                                           error=document))
    return {"study_id": study_id, "status": "FAILED", "failure_s3_path": f"s3://{results}/{reason_key}",
            "error": {k: v for k, v in document.items() if k != "input_key"}}


def _may_copy(stage: str | None, error_type: str) -> bool:
    if error_type in _NOT_COPIED:
        return False
    return not (stage == "validate" and stage_of(error_type) is None)


def _copy_original(bucket: str, key: str, version: str | None, results: str, copy_key: str) -> bool:
    """Copy the failed object's version next to its reason; False when it is already gone (deleted since)."""
    s3 = support.client("s3")
    source = {"Bucket": bucket, "Key": key, **support.version_argument(version)}
    try:
        s3.copy_object(Bucket=results, Key=copy_key, CopySource=source)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "NoSuchVersion", "404"):
            raise
        return False
    return True
