"""The pipeline's own CloudWatch metrics, as CloudWatch's embedded metric format (EMF): one JSON
line per study in the telemetry Lambda's log, which CloudWatch Logs turns into metrics. No
PutMetricData call per study (each is billed), and nothing but the deployment, the outcome and the
model in the dimensions: no study id, key or finding ever reaches a metric or the log line. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

NAMESPACE = "RadStream"
DIMENSION = "Deployment"
# A 0/1 per study: its Average over a period is the failure rate, with no metric math.
FAILED = "StudyFailed"
STUDIES = "Studies"
END_TO_END = "EndToEndLatency"
MODEL_DIMENSION, REASON_DIMENSION = "ModelName", "ErrorType"


def stage_metric(stage: str) -> str:
    """validate -> ValidateLatency"""
    return "".join(part.capitalize() for part in stage.split("_")) + "Latency"


def embedded_metrics(telemetry: Mapping[str, Any], deployment: str, timestamp_ms: int) -> dict[str, Any]:
    """The EMF document for one telemetry record (radstream.pipeline.results.telemetry_event)."""
    from radstream.pipeline.results import TIMED_STAGES

    values: dict[str, float] = {STUDIES: 1, FAILED: 0 if telemetry["status"] == "SUCCESS" else 1}
    if telemetry.get("processing_time_ms") is not None:
        values[END_TO_END] = float(telemetry["processing_time_ms"])
    for stage in TIMED_STAGES:
        ms = telemetry.get(f"{stage}_ms")
        if ms is not None:
            values[stage_metric(stage)] = float(ms)
    units = {name: "Count" if name in (STUDIES, FAILED) else "Milliseconds" for name in values}

    def directive(dimensions: list[str], names: list[str]) -> dict[str, Any]:
        return {"Namespace": NAMESPACE, "Dimensions": [dimensions],
                "Metrics": [{"Name": name, "Unit": units[name]} for name in names if name in units]}

    # Per model: outcome and latency; per failure reason: the failures. Both are small closed sets
    # (the served model, the pipeline's error types), so each adds a few metrics, not one per study.
    directives = [directive([DIMENSION], list(units))]
    if telemetry.get("model_name"):
        directives.append(directive([DIMENSION, MODEL_DIMENSION], [FAILED, END_TO_END]))
    if values[FAILED] and telemetry.get("error_type"):
        directives.append(directive([DIMENSION, REASON_DIMENSION], [FAILED]))
    return {
        "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": directives},
        DIMENSION: deployment,
        # Properties: searchable in Logs Insights, never dimensions (each dimension value is a metric).
        "Outcome": telemetry["status"],
        REASON_DIMENSION: telemetry.get("error_type"),
        MODEL_DIMENSION: telemetry.get("model_name"),
        "ModelVersion": telemetry.get("model_version"),
        **values,
    }


def embedded_metrics_line(telemetry: Mapping[str, Any], deployment: str, timestamp_ms: int) -> str:
    return json.dumps(embedded_metrics(telemetry, deployment, timestamp_ms), separators=(",", ":"))
