"""The pipeline's floor: the deployed state machine followed in this process, its environment, its event."""

from __future__ import annotations

import json
import os

import pytest

from radstream.bench.direct import (
    ChainError,
    DirectChain,
    load_handler,
    merged_environment,
    process_environment,
    upload_event,
)
from tests.conftest import REPO

ASL = REPO / "manifests" / "stepfunctions" / "pipeline.asl.json"
SUCCESS_PATH = ["ValidateInput", "PrepareImage", "InvokeInference", "StoreResults", "SendTelemetry"]


class CorruptImage(Exception):
    """What a handler raises for an image it cannot read."""


def deployed_asl() -> dict:
    """The real state machine with each ${XArn} placeholder replaced by a function ARN, as deployed."""
    asl = json.loads(ASL.read_text())
    for state in asl["States"].values():
        if state["Type"] == "Task":
            placeholder = state["Resource"]
            assert placeholder.startswith("${") and placeholder.endswith("Arn}"), placeholder
            state["Resource"] = f"arn:aws:lambda:us-east-1:000000000000:function:rs-test-{placeholder[2:-4]}"
    return asl


def recording_handlers(asl: dict, calls: list, raising: dict | None = None) -> dict:
    """A handler per Task Resource that records (state, event) and returns the event with its state added."""
    raising = raising or {}

    def make(state: str):
        def handler(event, context):
            calls.append((state, event))
            if state in raising:
                raise raising[state]
            return {**event, "visited": [*event.get("visited", []), state]}
        return handler

    return {s["Resource"]: make(name) for name, s in asl["States"].items() if s["Type"] == "Task"}


def test_the_success_path_runs_every_task_in_order_on_the_previous_output():
    asl, calls = deployed_asl(), []
    chain = DirectChain(asl, recording_handlers(asl, calls))
    event = upload_event("rs-test-images", "incoming/S1/image.dcm", "v1")

    run = chain.run(event)

    assert [state for state, _ in calls] == SUCCESS_PATH
    assert calls[0][1] == event
    for index, (_, received) in enumerate(calls[1:], start=1):
        assert received == {**event, "visited": SUCCESS_PATH[:index]}
    assert run.outcome == "SUCCEEDED"
    assert list(run.state_ms) == SUCCESS_PATH
    assert all(ms >= 0 for ms in run.state_ms.values())


def test_a_handler_error_goes_to_store_failure_with_the_input_kept_and_ends_failed():
    asl, calls = deployed_asl(), []
    chain = DirectChain(asl, recording_handlers(asl, calls, {"PrepareImage": CorruptImage("pixel data truncated")}))
    event = upload_event("rs-test-images", "incoming/S2/image.dcm", None)

    run = chain.run(event)

    assert [state for state, _ in calls] == ["ValidateInput", "PrepareImage", "StoreFailure"]
    prepare_input, store_failure_input = calls[1][1], calls[2][1]
    failure = store_failure_input.pop("failure")
    assert store_failure_input == prepare_input  # the failed task's input, kept
    assert "failure" not in prepare_input  # the input itself is not changed
    assert set(failure) == {"PrepareImage"}
    assert failure["PrepareImage"]["Error"] == "CorruptImage"
    cause = json.loads(failure["PrepareImage"]["Cause"])
    assert cause["errorMessage"] == "pixel data truncated"
    assert cause["errorType"] == "CorruptImage"
    assert run.outcome == "FAILED"
    assert list(run.state_ms) == ["ValidateInput", "PrepareImage", "StoreFailure"]


def test_a_task_without_a_handler_is_refused():
    asl, calls = deployed_asl(), []
    handlers = recording_handlers(asl, calls)
    missing = asl["States"]["InvokeInference"]["Resource"]
    del handlers[missing]
    with pytest.raises(ChainError, match="InvokeInference"):
        DirectChain(asl, handlers)
    assert calls == []


def test_merged_environment_is_the_union_of_the_functions_environments():
    merged = merged_environment({
        "validate_metadata": {"IMAGES_BUCKET": "rs-images", "LOG_LEVEL": "INFO"},
        "prepare_tensors": {"TENSORS_PREFIX": "tensors/", "LOG_LEVEL": "INFO"},
        "send_telemetry": {},
    })
    assert merged == {"IMAGES_BUCKET": "rs-images", "LOG_LEVEL": "INFO", "TENSORS_PREFIX": "tensors/"}


def test_two_functions_setting_one_variable_differently_cannot_share_a_process():
    with pytest.raises(ChainError) as raised:
        merged_environment({
            "validate_metadata": {"RESULTS_BUCKET": "rs-results"},
            "prepare_tensors": {"LOG_LEVEL": "INFO"},
            "store_results": {"RESULTS_BUCKET": "rs-other"},
        })
    message = str(raised.value)
    assert "validate_metadata" in message and "store_results" in message
    assert "RESULTS_BUCKET" in message
    assert "prepare_tensors" not in message


def test_process_environment_sets_the_variables_and_restores_them(monkeypatch):
    monkeypatch.setenv("RADSTREAM_TEST_EXISTING", "old")
    monkeypatch.delenv("RADSTREAM_TEST_NEW", raising=False)

    with process_environment({"RADSTREAM_TEST_EXISTING": "new", "RADSTREAM_TEST_NEW": "added"}):
        assert os.environ["RADSTREAM_TEST_EXISTING"] == "new"
        assert os.environ["RADSTREAM_TEST_NEW"] == "added"

    assert os.environ["RADSTREAM_TEST_EXISTING"] == "old"
    assert "RADSTREAM_TEST_NEW" not in os.environ


def test_process_environment_restores_after_an_error(monkeypatch):
    monkeypatch.setenv("RADSTREAM_TEST_EXISTING", "old")
    monkeypatch.delenv("RADSTREAM_TEST_NEW", raising=False)

    with pytest.raises(RuntimeError), process_environment({"RADSTREAM_TEST_EXISTING": "new", "RADSTREAM_TEST_NEW": "x"}):
        raise RuntimeError("a handler failed")

    assert os.environ["RADSTREAM_TEST_EXISTING"] == "old"
    assert "RADSTREAM_TEST_NEW" not in os.environ


def test_upload_event_names_the_bucket_the_key_and_the_version():
    event = upload_event("rs-test-images", "incoming/S1/image.dcm", "3HL4kqtJlcpXroDTDmJ")
    assert event["detail"]["bucket"]["name"] == "rs-test-images"
    assert event["detail"]["object"] == {"key": "incoming/S1/image.dcm", "version-id": "3HL4kqtJlcpXroDTDmJ"}


def test_upload_event_without_a_version_id_has_none():
    event = upload_event("rs-test-images", "incoming/S1/image.dcm", None)
    assert event["detail"]["bucket"]["name"] == "rs-test-images"
    assert event["detail"]["object"] == {"key": "incoming/S1/image.dcm"}


def test_load_handler_gives_each_file_a_module_of_its_own(tmp_path):
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "handler.py").write_text(
            f"WHO = {name!r}\n\n\ndef handler(event, context):\n    return {{'who': WHO, 'event': event}}\n")

    alpha = load_handler(tmp_path / "alpha" / "handler.py", "alpha")
    beta = load_handler(tmp_path / "beta" / "handler.py", "beta")

    assert alpha is not beta
    assert alpha({"n": 1}, None) == {"who": "alpha", "event": {"n": 1}}
    assert beta({"n": 2}, None) == {"who": "beta", "event": {"n": 2}}
    assert alpha.__module__ != beta.__module__
