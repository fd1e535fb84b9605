"""Result, failure and telemetry documents, their keys, and the error types Step Functions sees."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone

import pytest

from radstream.pipeline import errors
from radstream.pipeline.errors import ERROR_TYPES, RETRYABLE_ERROR_TYPES, InvalidModelOutput, UnsupportedImage, stage_of
from radstream.pipeline.results import (
    TELEMETRY_COLUMNS,
    failure_copy_key,
    failure_document,
    failure_reason_key,
    input_ref,
    parse_catch,
    result_document,
    result_key,
    same_input,
    telemetry_event,
    telemetry_line,
    tensor_key,
)

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
STAGE_MS = {"validate": 12.5, "prepare": 30.25, "inference": 41.0, "store": 8.0}


def result(**changes):
    args = dict(
        study_id="TEST-001", input_key="incoming/TEST-001.jpg", input_version_id="v1", input_sha256="ab" * 32,
        model_name="radstream_cxr",
        model_version="1", model_trained=False, model_trained_on=None, model_licence="Apache-2.0", model_sha256="cd" * 32,
        probabilities={"Effusion": 0.2, "Atelectasis": 0.7, "Cardiomegaly": 0.2},
        stage_ms=STAGE_MS, view="PA", created_at=AT,
    )
    return result_document(**{**args, **changes})


# --- keys ----------------------------------------------------------------------------------------


REF = input_ref("incoming/TEST-001.jpg", "v1")


def test_keys_follow_the_layout():
    assert result_key("TEST-001", REF) == f"results/TEST-001/{REF}.json"
    assert tensor_key("TEST-001", REF) == f"tensors/TEST-001/{REF}.npy"
    assert failure_reason_key("TEST-001", REF) == f"failed/TEST-001/{REF}/reason.json"
    assert failure_copy_key("TEST-001", REF) == f"failed/TEST-001/{REF}/original"


def test_an_input_ref_hashes_the_key_and_the_version_and_never_holds_their_text():
    key = "incoming/SMITH_JOHN.dcm"
    ref = input_ref(key, "3HL4kqtJlcpXroDTDmJ")
    assert ref == hashlib.sha256(key.encode()).hexdigest()[:16] + "-" + hashlib.sha256(b"3HL4kqtJlcpXroDTDmJ").hexdigest()[:8]
    assert input_ref(key, None) == ref.split("-")[0]
    assert same_input(ref, input_ref(key, "another version")) and not same_input(ref, input_ref("incoming/x.dcm", "v"))


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "..", ".x", "x" * 65, "ТЕСТ"])
@pytest.mark.parametrize("builder", [result_key, tensor_key, failure_reason_key, failure_copy_key])
def test_keys_refuse_unsafe_ids(builder, bad):
    with pytest.raises(ValueError):
        builder(bad, REF)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "0" * 16 + "/x", "ABCDEF0123456789"])
def test_keys_refuse_anything_but_an_input_ref(bad):
    with pytest.raises(ValueError):
        result_key("S-1", bad)


# --- result document -----------------------------------------------------------------------------


def test_result_document():
    doc = result()
    assert doc["findings"] == [
        {"label": "Atelectasis", "probability": 0.7},
        {"label": "Cardiomegaly", "probability": 0.2},  # ties ordered by label
        {"label": "Effusion", "probability": 0.2},
    ]
    assert doc["top_finding"] == {"label": "Atelectasis", "probability": 0.7}
    assert doc["latency_ms"] == {**STAGE_MS, "total": 91.75}
    assert doc["model_trained"] is False and doc["model_version"] == "1" and doc["model_name"] == "radstream_cxr"
    assert doc["study_id"] == "TEST-001" and doc["input_sha256"] == "ab" * 32 and doc["status"] == "SUCCESS"
    assert doc["created_at"] == "2025-01-02T03:04:05Z"
    assert json.loads(json.dumps(doc)) == doc


@pytest.mark.parametrize(("trained", "trained_on"), [(True, "NIH ChestX-ray14"), (False, None)])
def test_the_model_card_reaches_the_result_and_its_telemetry_event(trained, trained_on):
    card = (trained, trained_on, "CC-BY-4.0", "ef" * 32)
    doc = result(model_trained=trained, model_trained_on=trained_on, model_licence="CC-BY-4.0", model_sha256="ef" * 32)
    assert (doc["model_trained"], doc["model_trained_on"], doc["model_licence"], doc["model_sha256"]) == card
    event = telemetry_event(study_id="TEST-001", status="SUCCESS", stage_ms=STAGE_MS, result=doc)
    assert (event["model_trained"], event["model_trained_on"], event["model_licence"], event["model_sha256"]) == card
    _check_types(event)


def test_partial_stage_timings():
    assert result(stage_ms={"prepare": 1.0})["latency_ms"] == {"prepare": 1.0, "total": 1.0}


@pytest.mark.parametrize(
    "probabilities",
    [{}, {"A": math.nan}, {"A": 1.5}, {"A": -0.1}, {"A": True}, {"A": "0.5"}, {"": 0.5}, {"A": math.inf}],
)
def test_bad_model_output_is_an_inference_error(probabilities):
    with pytest.raises(InvalidModelOutput) as caught:
        result(probabilities=probabilities)
    assert caught.value.stage == "inference"


@pytest.mark.parametrize("stage_ms", [{"upload": 1.0}, {"prepare": -1.0}, {"prepare": math.nan}])
def test_bad_timings_are_programming_errors(stage_ms):
    with pytest.raises(ValueError):
        result(stage_ms=stage_ms)


def test_unsafe_study_id_cannot_make_a_result():
    with pytest.raises(ValueError):
        result(study_id="../../x")


# --- failure document and Catch payloads ---------------------------------------------------------


def test_failure_document():
    doc = failure_document(
        study_id="TEST-002", input_key="incoming/TEST-002.jpg", input_version_id=None, stage="prepare",
        error_type="CorruptImage", message="x" * 5000, failed_at=AT,
    )
    assert doc["status"] == "FAILED" and doc["stage"] == "prepare" and doc["error_type"] == "CorruptImage"
    assert len(doc["message"]) == 1000
    ref = input_ref("incoming/TEST-002.jpg", None)
    assert doc["copy_key"] == f"failed/TEST-002/{ref}/original" and doc["failed_at"] == "2025-01-02T03:04:05Z"
    assert doc["input_ref"] == ref and doc["input_key_sha256"] == hashlib.sha256(b"incoming/TEST-002.jpg").hexdigest()


def test_parse_catch_of_a_lambda_error():
    cause = json.dumps({"errorMessage": "the file is empty (0 bytes)", "errorType": "UnsupportedImage", "stackTrace": []})
    assert parse_catch({"Error": "UnsupportedImage", "Cause": cause}) == {
        "stage": "prepare", "error_type": "UnsupportedImage", "message": "the file is empty (0 bytes)",
    }


def test_parse_catch_of_a_states_error():
    parsed = parse_catch({"Error": "States.Timeout", "Cause": "State timed out after 30 s"})
    assert parsed == {"stage": None, "error_type": "States.Timeout", "message": "State timed out after 30 s"}
    assert parse_catch({})["error_type"] == "Unknown"
    assert parse_catch({"Error": "X", "Cause": "{broken json"})["message"] == "{broken json"


# --- telemetry -----------------------------------------------------------------------------------


def test_success_event_has_exactly_the_declared_columns():
    event = telemetry_event(
        study_id="TEST-001", status="SUCCESS", stage_ms=STAGE_MS, input_key="incoming/TEST-001.jpg",
        view="PA", result=result(), event_id="e-1", event_time=AT,
    )
    assert list(event) == [name for name, _ in TELEMETRY_COLUMNS]
    assert event["top_finding"] == "Atelectasis" and event["top_probability"] == 0.7
    assert event["inference_ms"] == 41.0 and event["processing_time_ms"] == 91.75
    assert event["error_type"] is None and event["event_time"] == "2025-01-02T03:04:05Z"
    assert event["input_key_sha256"] == hashlib.sha256(b"incoming/TEST-001.jpg").hexdigest()
    assert "incoming/" not in json.dumps(event) and event["id_collision"] is False
    _check_types(event)


def test_a_collision_in_the_result_is_flagged_in_the_telemetry():
    other = input_ref("incoming/OTHER.jpg", "v9")
    doc = result(colliding_inputs=[other])
    assert (doc["id_collision"], doc["colliding_inputs"]) == (True, [other])
    assert telemetry_event(study_id="TEST-001", status="SUCCESS", stage_ms={}, result=doc)["id_collision"] is True


def test_failure_event_carries_the_error():
    error = UnsupportedImage("the file is empty (0 bytes)").to_dict()
    event = telemetry_event(study_id="TEST-003", status="FAILED", stage_ms={"validate": 3.0}, error=error)
    assert list(event) == [name for name, _ in TELEMETRY_COLUMNS]
    assert (event["error_stage"], event["error_type"]) == ("prepare", "UnsupportedImage")
    assert event["prepare_ms"] is None and event["model_name"] is None and event["model_trained"] is None
    _check_types(event)


def test_telemetry_status_is_checked():
    with pytest.raises(ValueError):
        telemetry_event(study_id="x", status="OK", stage_ms={})


def test_telemetry_line_is_one_json_line():
    line = telemetry_line(telemetry_event(study_id="x", status="SUCCESS", stage_ms={}, event_id="e", event_time=AT))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["event_id"] == "e"


def test_event_ids_are_unique_by_default():
    events = [telemetry_event(study_id="x", status="SUCCESS", stage_ms={}) for _ in range(3)]
    assert len({e["event_id"] for e in events}) == 3


def _check_types(event):
    python_types = {"int": int, "double": (int, float), "string": str, "boolean": bool}
    for name, hive_type in TELEMETRY_COLUMNS:
        assert event[name] is None or isinstance(event[name], python_types[hive_type]), name


# --- error types ---------------------------------------------------------------------------------


def test_error_types_are_stable_class_names():
    assert len(set(ERROR_TYPES)) == len(ERROR_TYPES)
    for name in ERROR_TYPES:
        cls = getattr(errors, name)
        assert cls.__name__ == name and issubclass(cls, errors.PipelineError)
        assert stage_of(name) in errors.STAGES
    assert set(RETRYABLE_ERROR_TYPES) == {"MissingMetadata", "InferenceUnavailable"}
    assert stage_of("States.Timeout") is None


def test_error_carries_stage_reason_and_type():
    error = errors.ImageTooLarge("too big", stage="validate")
    assert error.to_dict() == {"stage": "validate", "error_type": "ImageTooLarge", "message": "too big"}
    assert str(error) == "too big" and isinstance(error, errors.InvalidInput)
    with pytest.raises(ValueError, match="unknown pipeline stage"):
        errors.CorruptImage("x", stage="upload")
