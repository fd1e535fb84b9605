"""Studies going through a deployed pipeline: upload them, find the Step Functions execution each
upload started, read per-state progress from its history, list the outcomes that landed, and delete
what they left behind."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from radstream.aws import error_code
from radstream.aws.s3 import delete_versions, list_objects

_GONE = {"NoSuchBucket", "404", "NotFound", "NoSuchKey"}
RESULTS_PREFIX = "results/"
FAILED_PREFIX = "failed/"
FAILURE_STATE = "StoreFailure"
# The pipeline files each outcome per study id and input ref (radstream.pipeline.results' keys).
_RESULT_KEY = re.compile(r"results/([^/]+)/[^/]+\.json")
_REASON_KEY = re.compile(r"failed/([^/]+)/[^/]+/reason\.json")


def upload(s3: Any, bucket: str, objects: Iterable[tuple[str, bytes, str]]) -> str | None:
    """Put the objects in the order given (a sidecar before its image); the version id of the last."""
    version = None
    for key, body, content_type in objects:
        version = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type).get("VersionId")
    return version


@dataclass(frozen=True)
class Outcome:
    """The newest outcome document of a study: results/<id>/<ref>.json or failed/<id>/<ref>/reason.json."""

    kind: str  # "result" | "failure"
    key: str
    modified: datetime


def outcome_of(key: str) -> tuple[str, str] | None:
    """(kind, study id) of a result or reason.json key; None for anything else (a failure's copy)."""
    match = _RESULT_KEY.fullmatch(key)
    if match:
        return "result", match.group(1)
    match = _REASON_KEY.fullmatch(key)
    return ("failure", match.group(1)) if match else None


def latest_outcomes(items: Iterable[dict[str, Any]]) -> dict[str, Outcome]:
    """study id → its newest outcome, from ListObjectsV2 entries. A study whose failure is newer than
    its result (a later stage failed, or a later upload did) has not succeeded; on a tie the failure
    wins, since a success must be shown to be the last word."""
    latest: dict[str, Outcome] = {}
    for item in items:
        parsed = outcome_of(item["Key"])
        if parsed is None:
            continue
        kind, study_id = parsed
        found = Outcome(kind, item["Key"], item["LastModified"])
        current = latest.get(study_id)
        if current is None or (found.modified, found.kind == "failure") > (current.modified, current.kind == "failure"):
            latest[study_id] = found
    return latest


def landed(s3: Any, results_bucket: str, id_prefixes: Iterable[str]) -> dict[str, Outcome]:
    """study id → newest outcome, for every study whose id starts with one of `id_prefixes` (pass
    "<id>/" to match one id exactly)."""
    prefixes = list(id_prefixes)
    return latest_outcomes(item for top in (RESULTS_PREFIX, FAILED_PREFIX) for prefix in prefixes
                           for item in list_objects(s3, results_bucket, top + prefix))


def delete_prefixes(s3: Any, bucket: str, prefixes: Iterable[str]) -> int:
    """Delete every version and delete marker under each prefix (the buckets are versioned, so a
    plain delete would keep the bytes); quiet when the bucket is gone. Returns how many went."""
    removed = 0
    try:
        for prefix in prefixes:
            removed += delete_versions(s3, bucket, prefix)
    except Exception as exc:
        if error_code(exc) not in _GONE:
            raise
    return removed


class ExecutionFinder:
    """Maps image keys to the execution their upload started. Each execution's input is read once,
    so following many studies costs one listing per call plus one describe per new execution."""

    def __init__(self, sfn: Any, state_machine_arn: str, bucket: str, since: datetime):
        self.sfn, self.state_machine_arn, self.bucket, self.since = sfn, state_machine_arn, bucket, since
        self._key_of: dict[str, str | None] = {}  # execution ARN → image key (None: another bucket)
        self.found: dict[str, str] = {}  # image key → newest execution ARN

    def find(self) -> dict[str, str]:
        listed = []
        for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn):
            listed += [e for e in page["executions"] if e["startDate"] >= self.since]
        for execution in sorted(listed, key=lambda e: e["startDate"]):
            arn = execution["executionArn"]
            if arn not in self._key_of:
                described = self.sfn.describe_execution(executionArn=arn)
                detail = json.loads(described.get("input") or "{}").get("detail") or {}
                same_bucket = (detail.get("bucket") or {}).get("name") == self.bucket
                self._key_of[arn] = (detail.get("object") or {}).get("key") if same_bucket else None
            key = self._key_of[arn]
            if key:
                self.found[key] = arn  # oldest first, so the newest wins
        return self.found


def execution_progress(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """{"status": RUNNING|SUCCEEDED|FAILED|…, "states": {state name: {"status", "ms"}}} from the
    execution's history."""
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events += page["events"]
    return progress_from_history(events)


def progress_from_history(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Per state: running once entered, done with its duration once exited. The state whose Catch
    led to StoreFailure failed, whichever order the service logs its exit and the catch in."""
    status = "RUNNING"
    states: dict[str, dict[str, Any]] = {}
    entered: dict[str, datetime] = {}
    current: str | None = None
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            if name == FAILURE_STATE and current in states:
                states[current]["status"] = "failed"
            entered[name], current = event["timestamp"], name
            states[name] = {"status": "running", "ms": None}
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            started = entered.get(name)
            ms = round((event["timestamp"] - started).total_seconds() * 1000, 1) if started else None
            failed = states.get(name, {}).get("status") == "failed"
            states[name] = {"status": "failed" if failed else "done", "ms": ms}
        elif kind.startswith("Execution") and kind != "ExecutionStarted":
            # ExecutionSucceeded, …Failed, …TimedOut, …Aborted → the API's status names
            status = {"TimedOut": "TIMED_OUT"}.get(kind.removeprefix("Execution"), kind.removeprefix("Execution").upper())
    if status != "RUNNING":
        for state in states.values():
            if state["status"] == "running":
                state["status"] = "failed"
    return {"status": status, "states": states}
