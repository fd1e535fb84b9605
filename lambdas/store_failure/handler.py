"""StoreFailure: records why a study failed at failed/<study_id>/reason.json in the results bucket.
The state machine's Catch puts the error at $.failure.<stage>."""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any


def _study_id(event: dict[str, Any]) -> str:
    if event.get("study_id"):
        return str(event["study_id"])
    # No valid id yet: derive one from the object key, sanitised, plus a short hash.
    source = str(event.get("s3_path") or event.get("detail", {}).get("object", {}).get("key") or "unknown")
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", source.rsplit("/", 1)[-1])[:64]
    return f"{stem}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    import boto3

    stage, error = next(iter((event.get("failure") or {"unknown": {}}).items()))
    study_id = _study_id(event)
    reason = {
        "study_id": study_id,
        "stage": stage,
        "error_type": error.get("Error"),
        "message": error.get("Cause"),
        "input": event.get("s3_path"),
    }
    bucket = os.environ["RESULTS_BUCKET"]
    key = f"failed/{study_id}/reason.json"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(reason).encode(),
                                  ContentType="application/json")
    return {**event, "study_id": study_id, "status": "FAILED", "failure_s3_path": f"s3://{bucket}/{key}"}
