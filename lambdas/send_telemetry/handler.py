"""SendTelemetry: one success event (radstream.pipeline.results.TELEMETRY_COLUMNS) on the Kinesis
stream, partition key = study id. Firehose stores records as they are, so each is one JSON line."""

from __future__ import annotations

from typing import Any

from radstream.pipeline import lambda_support as support
from radstream.pipeline.results import telemetry_event


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    _, input_key = support.input_location(event)
    record = telemetry_event(
        study_id=event["study_id"],
        status="SUCCESS",
        stage_ms=support.timings_of(event),
        input_key=input_key,
        view=(event.get("metadata") or {}).get("view"),
        result=event.get("result"),
    )
    support.send_telemetry(record)
    return {
        "study_id": event["study_id"],
        "status": "SUCCESS",
        "results_s3_path": event.get("results_s3_path"),
        "processing_time_ms": support.timings_of(event),
        "telemetry_event_id": record["event_id"],
    }
