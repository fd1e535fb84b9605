"""StoreResults: results/<study_id>/<input ref>.json in the results bucket (model, version, its card:
whether it is trained, on what, its licence; its model file's sha256; findings sorted by probability,
the top one, per-stage latency, the input's sha256, key hash and version).

Outcomes are filed per input, so two different objects claiming one study id both keep theirs. Such
a collision is reported: written first, then the study's outcomes listed, so of two racing writers
at least the later one sees the other; the result then says `id_collision` with the other inputs'
refs, and so does its telemetry. Other versions of the same object are re-uploads, not collisions."""

from __future__ import annotations

import json
from typing import Any

from radstream.pipeline import lambda_support as support
from radstream.pipeline.results import failure_prefix, result_document, result_key, result_prefix, same_input


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    timings = support.timings_of(event)
    with support.stage_timer(timings, "store"):
        _, input_key = support.input_location(event)
        study_id, ref = event["study_id"], event["input_ref"]
        inference = event["inference_results"]

        def document(colliding: list[str]) -> dict[str, Any]:
            return result_document(
                study_id=study_id,
                input_key=input_key,
                input_version_id=support.input_version(event),
                input_sha256=event["input_sha256"],
                model_name=inference["model_name"],
                model_version=inference["model_version"],
                model_trained=inference["model_trained"],
                model_trained_on=inference["model_trained_on"],
                model_licence=inference["model_licence"],
                model_sha256=inference.get("model_sha256"),  # absent from executions invoked before it was recorded
                probabilities=inference["probabilities"],
                stage_ms=timings,  # the stages before this one; its own time is in the telemetry
                view=(event.get("metadata") or {}).get("view"),
                colliding_inputs=colliding,
            )

        bucket, key = support.setting("RESULTS_BUCKET"), result_key(study_id, ref)
        stored = document([])
        support.put_object(bucket, key, json.dumps(stored, indent=2).encode(), "application/json")
        colliding = [other for other in _input_refs(bucket, study_id) if not same_input(other, ref)]
        if colliding:
            stored = document(colliding)
            support.put_object(bucket, key, json.dumps(stored, indent=2).encode(), "application/json")
    summary = {k: stored[k] for k in ("model_name", "model_version", "model_trained", "model_trained_on",
                                      "model_licence", "model_sha256", "top_finding", "id_collision", "colliding_inputs")}
    return {**event, "result": summary, "results_s3_path": f"s3://{bucket}/{key}", "processing_time_ms": timings}


def _input_refs(bucket: str, study_id: str) -> set[str]:
    """The input refs of every result and failure filed under the study id."""
    refs = set()
    paginator = support.client("s3").get_paginator("list_objects_v2")
    for prefix in (result_prefix(study_id), failure_prefix(study_id)):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                rest = item["Key"][len(prefix):]
                refs.add(rest.split("/", 1)[0].removesuffix(".json"))
    return refs
