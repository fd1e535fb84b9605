"""ValidateInput: turn the trigger (an EventBridge S3 "Object Created" event, or a direct
{"s3_path": ...} input) into the pipeline contract. Minimal until radstream.pipeline lands."""

from __future__ import annotations

import posixpath
import re
from typing import Any


def _s3_path(event: dict[str, Any]) -> str:
    if "s3_path" in event:
        return event["s3_path"]
    detail = event.get("detail", {})
    bucket, key = detail.get("bucket", {}).get("name"), detail.get("object", {}).get("key")
    if not bucket or not key:
        raise ValueError("event has neither s3_path nor an S3 Object Created detail")
    return f"s3://{bucket}/{key}"


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    s3_path = _s3_path(event)
    stem = posixpath.splitext(posixpath.basename(s3_path))[0]
    metadata = dict(event.get("metadata") or {})
    study_id = event.get("study_id") or metadata.get("study_id") or re.sub(r"[^A-Za-z0-9._-]", "_", stem)
    return {
        "study_id": study_id,
        "s3_path": s3_path,
        "metadata": metadata,
        "inference_results": None,
        "processing_time_ms": {},
    }
