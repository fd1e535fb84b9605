"""StoreResults: results/<study_id>.json in the results bucket (model, version, its card: whether
it is trained, on what, its licence; findings sorted by probability, the top one, per-stage latency, the input's sha256)."""

from __future__ import annotations

import json
from typing import Any

from radstream.pipeline import lambda_support as support
from radstream.pipeline.results import result_document, result_key


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    timings = support.timings_of(event)
    with support.stage_timer(timings, "store"):
        _, input_key = support.input_location(event)
        inference = event["inference_results"]
        document = result_document(
            study_id=event["study_id"],
            input_key=input_key,
            input_sha256=event["input_sha256"],
            model_name=inference["model_name"],
            model_version=inference["model_version"],
            model_trained=inference["model_trained"],
            model_trained_on=inference["model_trained_on"],
            model_licence=inference["model_licence"],
            probabilities=inference["probabilities"],
            stage_ms=timings,  # the stages before this one; its own time is in the telemetry
            view=(event.get("metadata") or {}).get("view"),
        )
        bucket, key = support.setting("RESULTS_BUCKET"), result_key(event["study_id"])
        support.put_object(bucket, key, json.dumps(document, indent=2).encode(), "application/json")
    summary = {k: document[k] for k in ("model_name", "model_version", "model_trained", "model_trained_on",
                                        "model_licence", "top_finding")}
    return {**event, "result": summary, "results_s3_path": f"s3://{bucket}/{key}", "processing_time_ms": timings}
