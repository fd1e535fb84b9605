"""The documents the pipeline writes, and where: result JSON, failure reason, telemetry event, keys.

Builders are pure (no clock or randomness unless defaulted), so handlers stay thin and the shapes
are tested once. Keys are built only from validated study ids, so none can leave its prefix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from radstream.pipeline.errors import STAGES, InvalidModelOutput, stage_of
from radstream.pipeline.study_ids import check_study_id, key_sha256

RESULT_SCHEMA_VERSION = 1
TELEMETRY_SCHEMA_VERSION = 1
TIMED_STAGES = tuple(s for s in STAGES if s != "telemetry")  # telemetry cannot time its own send
_MESSAGE_LIMIT = 1000
_NAME_LIMIT = 128

# The telemetry event's columns and Hive types, in order: the Glue table is generated from this.
# Times are ISO-8601 strings (the JSON SerDe cannot read them as TIMESTAMP; use from_iso8601_timestamp).
TELEMETRY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("schema_version", "int"),
    ("event_id", "string"),
    ("event_time", "string"),
    ("study_id", "string"),
    ("status", "string"),
    ("input_key_sha256", "string"),
    ("view", "string"),
    ("model_name", "string"),
    ("model_version", "string"),
    ("model_trained", "boolean"),
    ("model_trained_on", "string"),
    ("model_licence", "string"),
    ("model_sha256", "string"),
    ("top_finding", "string"),
    ("top_probability", "double"),
    *((f"{stage}_ms", "double") for stage in TIMED_STAGES),
    ("processing_time_ms", "double"),
    ("error_stage", "string"),
    ("error_type", "string"),
    ("error_message", "string"),
    ("id_collision", "boolean"),
)


# --- keys ---------------------------------------------------------------------------------------
# Every outcome of a study id is filed under one input reference (`input_ref`), so two objects that
# claim one id (or two versions of one object) keep both their tensors, results and failures; a
# study's outcome is the newest object under results/<id>/ and failed/<id>/.
_REF_KEY_HASH = 16
_REF_VERSION_HASH = 8


def input_ref(input_key: str, version_id: str | None) -> str:
    """<hash of the key>[-<hash of the version>]: which object (and which version of it) an outcome
    is for, without the key's text. Outcomes of one key share the first part (`same_input`)."""
    ref = key_sha256(input_key)[:_REF_KEY_HASH]
    if version_id:
        ref += "-" + hashlib.sha256(version_id.encode()).hexdigest()[:_REF_VERSION_HASH]
    return ref


def same_input(ref: str, other: str) -> bool:
    """Whether two input references name the same object key (perhaps different versions)."""
    return ref[:_REF_KEY_HASH] == other[:_REF_KEY_HASH]


def _checked_ref(ref: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{%d}(-[0-9a-f]{%d})?" % (_REF_KEY_HASH, _REF_VERSION_HASH), ref):
        raise ValueError(f"not an input reference (see input_ref): {ref[:64]!r}")
    return ref


def result_prefix(study_id: str) -> str:
    return f"results/{check_study_id(study_id)}/"


def result_key(study_id: str, ref: str) -> str:
    return f"{result_prefix(study_id)}{_checked_ref(ref)}.json"


def tensor_key(study_id: str, ref: str) -> str:
    return f"tensors/{check_study_id(study_id)}/{_checked_ref(ref)}.npy"


def failure_prefix(study_id: str) -> str:
    return f"failed/{check_study_id(study_id)}/"


def failure_reason_key(study_id: str, ref: str) -> str:
    return f"{failure_prefix(study_id)}{_checked_ref(ref)}/reason.json"


def failure_copy_key(study_id: str, ref: str) -> str:
    """Where the failed original is copied: next to reason.json, under a fixed name, since a file
    name may be built from the patient's name."""
    return f"{failure_prefix(study_id)}{_checked_ref(ref)}/original"


# --- documents ----------------------------------------------------------------------------------


def _now(at: datetime | None) -> str:
    moment = at or datetime.now(timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def _latency(stage_ms: Mapping[str, float]) -> dict[str, float]:
    unknown = set(stage_ms) - set(TIMED_STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; timed stages are {TIMED_STAGES}")
    for stage, ms in stage_ms.items():
        if not (isinstance(ms, (int, float)) and math.isfinite(ms) and ms >= 0):
            raise ValueError(f"latency of stage {stage!r} must be a finite number >= 0 ms")
    return {stage: round(float(stage_ms[stage]), 3) for stage in TIMED_STAGES if stage in stage_ms}


def findings(probabilities: Mapping[str, float]) -> list[dict[str, Any]]:
    """Model output as findings, most probable first (ties by label, so the order is stable)."""
    if not probabilities:
        raise InvalidModelOutput("the model returned no findings")
    checked = []
    for label, p in probabilities.items():
        if not isinstance(label, str) or not label or len(label) > _NAME_LIMIT:
            raise InvalidModelOutput(f"the model returned an invalid label {str(label)[:64]!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
            raise InvalidModelOutput(f"the probability for {label!r} is {p!r}; expected a number in 0..1")
        checked.append({"label": label, "probability": round(float(p), 6)})
    return sorted(checked, key=lambda f: (-f["probability"], f["label"]))


def result_document(
    *,
    study_id: str,
    input_key: str,
    input_version_id: str | None,
    input_sha256: str,
    model_name: str,
    model_version: str,
    model_trained: bool,
    model_trained_on: str | None,
    model_licence: str | None,
    model_sha256: str | None,
    probabilities: Mapping[str, float],
    stage_ms: Mapping[str, float],
    view: str | None = None,
    colliding_inputs: Sequence[str] = (),
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """The results/<study_id>/<input ref>.json document; the model_* keys are the served model's card
    and the sha256 of its model file.
    `colliding_inputs`: the refs of other objects whose outcomes claim the same study id.

    `input_key` stays in the document: it sits in our private results bucket, and an operator needs
    it to find the upload; telemetry, analytics and S3 key names get only its hash."""
    ranked = findings(probabilities)
    latency = _latency(stage_ms)
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "study_id": check_study_id(study_id),
        "status": "SUCCESS",
        "model_name": model_name,
        "model_version": str(model_version),
        "model_trained": bool(model_trained),
        "model_trained_on": model_trained_on,
        "model_licence": model_licence,
        "model_sha256": model_sha256,
        "findings": ranked,
        "top_finding": ranked[0],
        "latency_ms": {**latency, "total": round(sum(latency.values()), 3)},
        "input_key": input_key,
        "input_key_sha256": key_sha256(input_key),
        "input_version_id": input_version_id,
        "input_ref": input_ref(input_key, input_version_id),
        "input_sha256": input_sha256,
        "view": view,
        "id_collision": bool(colliding_inputs),
        "colliding_inputs": sorted(colliding_inputs),
        "created_at": _now(created_at),
    }


def failure_document(
    *,
    study_id: str,
    input_key: str,
    input_version_id: str | None,
    stage: str | None,
    error_type: str,
    message: str,
    failed_at: datetime | None = None,
) -> dict[str, Any]:
    """The failed/<study_id>/<input ref>/reason.json document (`input_key` kept as in results)."""
    ref = input_ref(input_key, input_version_id)
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "study_id": check_study_id(study_id),
        "status": "FAILED",
        "stage": stage,
        "error_type": error_type,
        "message": message[:_MESSAGE_LIMIT],
        "input_key": input_key,
        "input_key_sha256": key_sha256(input_key),
        "input_version_id": input_version_id,
        "input_ref": ref,
        "copy_key": failure_copy_key(study_id, ref),
        "failed_at": _now(failed_at),
    }


def telemetry_event(
    *,
    study_id: str,
    status: str,
    stage_ms: Mapping[str, float],
    input_key: str | None = None,
    view: str | None = None,
    result: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    event_time: datetime | None = None,
) -> dict[str, Any]:
    """One telemetry record with exactly the TELEMETRY_COLUMNS keys. `result` is a result document,
    `error` a failure document (or anything with stage/error_type/message). The input key is
    recorded only as its sha256: telemetry goes to analytics, where file names must not."""
    if status not in ("SUCCESS", "FAILED"):
        raise ValueError(f"status must be SUCCESS or FAILED, not {status!r}")
    latency = _latency(stage_ms)
    result = result or {}
    error = error or {}
    top = result.get("top_finding") or {}
    message = error.get("message")
    return {
        "schema_version": TELEMETRY_SCHEMA_VERSION,
        "event_id": event_id or str(uuid.uuid4()),
        "event_time": _now(event_time),
        "study_id": study_id,
        "status": status,
        "input_key_sha256": key_sha256(input_key) if input_key is not None else None,
        "view": view,
        "model_name": result.get("model_name"),
        "model_version": result.get("model_version"),
        "model_trained": result.get("model_trained"),
        "model_trained_on": result.get("model_trained_on"),
        "model_licence": result.get("model_licence"),
        "model_sha256": result.get("model_sha256"),
        "top_finding": top.get("label"),
        "top_probability": top.get("probability"),
        **{f"{stage}_ms": latency.get(stage) for stage in TIMED_STAGES},
        "processing_time_ms": round(sum(latency.values()), 3),
        "error_stage": error.get("stage"),
        "error_type": error.get("error_type"),
        "error_message": str(message)[:_MESSAGE_LIMIT] if message else None,
        "id_collision": bool(result.get("id_collision")),
    }


def telemetry_line(event: Mapping[str, Any]) -> bytes:
    """The record as Firehose should store it: one compact JSON object per line."""
    return (json.dumps(event, separators=(",", ":"), sort_keys=False) + "\n").encode()


def parse_catch(caught: Mapping[str, Any]) -> dict[str, Any]:
    """A Step Functions Catch payload ({"Error", "Cause"}) to {stage, error_type, message}.

    Lambda failures carry a JSON Cause with errorMessage; States.* errors carry plain text. The stage
    is the error type's usual stage when known, else None for the caller to fill in."""
    error_type = str(caught.get("Error") or "Unknown")
    cause = caught.get("Cause") or ""
    message = str(cause)
    if isinstance(cause, str) and cause.startswith("{"):
        with contextlib.suppress(ValueError, AttributeError):  # not JSON after all: keep the text
            message = str(json.loads(cause).get("errorMessage", cause))
    return {"stage": stage_of(error_type), "error_type": error_type, "message": message[:_MESSAGE_LIMIT]}
