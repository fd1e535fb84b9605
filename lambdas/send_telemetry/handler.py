"""SendTelemetry: one newline-terminated JSON event per study on the Kinesis stream (Firehose
concatenates records as they are, so the newline keeps raw_telemetry/ line-delimited)."""

from __future__ import annotations

import json
import os
import time
from typing import Any


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    import boto3

    record = {
        "event_type": "study_processed",
        "study_id": event.get("study_id"),
        "status": "SUCCESS",
        "processing_time_ms": sum((event.get("processing_time_ms") or {}).values()),
        "stage_timings_ms": event.get("processing_time_ms") or {},
        "model_name": os.environ.get("MODEL_NAME"),
        "deployment": os.environ.get("DEPLOYMENT"),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    boto3.client("kinesis").put_record(
        StreamName=os.environ["TELEMETRY_STREAM"], Data=(json.dumps(record) + "\n").encode(),
        PartitionKey=str(event.get("study_id") or "unknown"),
    )
    return dict(event)
