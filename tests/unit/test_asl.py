"""The pipeline's state machine (manifests/stepfunctions/pipeline.asl.json): it parses with the ASL
grammar moto's interpreter uses, its graph is sound (the checks statelint makes), transient errors
are retried with backoff, and every task's failure ends in StoreFailure and then a Fail state."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from radstream.aws.stepfunctions import FUNCTION_PLACEHOLDERS, render_definition
from radstream.config import PipelineSettings
from radstream.pipeline.errors import ERROR_TYPES, RETRYABLE_ERROR_TYPES
from radstream.pipeline.lambda_support import STATE_STAGES

TEMPLATE = Path(__file__).resolve().parents[2] / "manifests" / "stepfunctions" / "pipeline.asl.json"
LAMBDA_TRANSIENT = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.SdkClientException"}
MAIN_PATH = ["ValidateInput", "PrepareImage", "InvokeInference", "StoreResults", "SendTelemetry"]


def function_arn(fn: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:rs-{fn.replace('_', '-')}"


@pytest.fixture(scope="module")
def asl() -> dict:
    return render_definition(TEMPLATE, {fn: function_arn(fn) for fn in FUNCTION_PLACEHOLDERS.values()})


def graph_problems(asl: dict) -> list[str]:
    """What statelint reports about a state graph: dangling transitions, unreachable states, states
    that neither continue nor end, malformed catchers. Empty when sound."""
    states, problems = asl["States"], []
    if asl.get("StartAt") not in states:
        problems.append(f"StartAt {asl.get('StartAt')!r} is not a state")
    edges: dict[str, list[str]] = {}
    for name, state in states.items():
        kind = state.get("Type")
        targets = [state["Next"]] if "Next" in state else []
        targets += [catcher.get("Next") for catcher in state.get("Catch", [])]
        if kind == "Choice":
            targets += [choice.get("Next") for choice in state.get("Choices", [])]
            targets += [state["Default"]] if "Default" in state else []
        edges[name] = targets
        for target in targets:
            if target not in states:
                problems.append(f"{name} goes to {target!r}, which is not a state")
        if kind in ("Fail", "Succeed"):
            if "Next" in state or "End" in state:
                problems.append(f"{name} is terminal ({kind}) and must have neither Next nor End")
        elif kind != "Choice" and ("Next" in state) == bool(state.get("End")):
            problems.append(f"{name} must have exactly one of Next and End: true")
        for retrier_or_catcher in state.get("Retry", []) + state.get("Catch", []):
            names = retrier_or_catcher.get("ErrorEquals") or []
            if not names:
                problems.append(f"{name} has a Retry/Catch without ErrorEquals")
            if "States.ALL" in names and (len(names) > 1):
                problems.append(f"{name}: States.ALL must appear alone")
        for field in ("Retry", "Catch"):
            entries = state.get(field, [])
            if any("States.ALL" in e.get("ErrorEquals", []) for e in entries[:-1]):
                problems.append(f"{name}: a {field} on States.ALL must be the last one")
    seen, todo = set(), [asl.get("StartAt")]
    while todo:
        current = todo.pop()
        if current in seen or current not in states:
            continue
        seen.add(current)
        todo += edges[current]
    problems += [f"{name} is unreachable from StartAt" for name in states if name not in seen]
    return problems


def test_the_definition_parses_with_the_asl_grammar(asl):
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    AmazonStateLanguageParser.parse(json.dumps(asl))
    broken = copy.deepcopy(asl)
    broken["States"]["PrepareImage"]["Retry"][0]["BackoffRate"] = "fast"
    with pytest.raises(Exception, match="BackoffRate|expecting"):
        AmazonStateLanguageParser.parse(json.dumps(broken))


def test_the_graph_is_sound(asl):
    assert graph_problems(asl) == []
    assert asl["StartAt"] == "ValidateInput"
    assert [asl["States"][s].get("Next") for s in MAIN_PATH[:-1]] == MAIN_PATH[1:]
    assert asl["States"]["SendTelemetry"]["End"] is True
    terminal = {name for name, s in asl["States"].items() if s.get("End") or s["Type"] in ("Fail", "Succeed")}
    assert terminal == {"SendTelemetry", "PipelineFailed"}


@pytest.mark.parametrize("break_it, problem", [
    (lambda a: a["States"]["PrepareImage"].update(Next="Nowhere"), "not a state"),
    (lambda a: a["States"].update(Orphan={"Type": "Succeed"}), "unreachable"),
    (lambda a: a["States"]["StoreResults"].pop("Next"), "exactly one of Next"),
    (lambda a: a["States"]["PipelineFailed"].update(Next="StoreFailure"), "terminal"),
    (lambda a: a["States"]["PrepareImage"]["Catch"].insert(0, {"ErrorEquals": ["States.ALL"], "Next": "StoreFailure"}),
     "must be the last"),
])
def test_the_graph_checks_find_what_they_look_for(asl, break_it, problem):
    broken = copy.deepcopy(asl)
    break_it(broken)
    assert any(problem in p for p in graph_problems(broken))


def test_every_placeholder_is_a_function_and_every_function_runs(asl):
    resources = [s["Resource"] for s in asl["States"].values() if s["Type"] == "Task"]
    assert sorted(resources) == sorted(function_arn(fn) for fn in FUNCTION_PLACEHOLDERS.values())
    assert "${" not in json.dumps(asl)


def test_every_task_has_a_timeout_and_retries_transient_lambda_errors_with_backoff(asl):
    for name, state in asl["States"].items():
        if state["Type"] != "Task":
            continue
        assert 0 < state["TimeoutSeconds"] <= 120, name
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert LAMBDA_TRANSIENT <= retried, name
        for retrier in state["Retry"]:
            assert retrier["MaxAttempts"] >= 2 and retrier["BackoffRate"] > 1 and retrier["IntervalSeconds"] >= 1, name
        assert "States.ALL" not in retried and "States.Timeout" not in retried, f"{name} must not retry everything"


def _retrier(state: dict, error: str) -> dict:
    [retrier] = [r for r in state["Retry"] if error in r["ErrorEquals"]]
    return retrier


def _total_wait(retrier: dict) -> float:
    """The longest a retrier waits in all (before jitter), each wait capped by MaxDelaySeconds."""
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(cap, retrier["IntervalSeconds"] * retrier["BackoffRate"] ** i) for i in range(retrier["MaxAttempts"]))


def test_a_throttled_invoke_rides_out_a_burst_instead_of_quarantining_the_study(asl):
    """Lambda answers a synchronous invoke over the concurrency quota (10 on a new account) with 429;
    a burst of uploads must wait for capacity, spread out by jitter so the retries do not collide."""
    for name, state in asl["States"].items():
        if state["Type"] != "Task":
            continue
        retrier = _retrier(state, "Lambda.TooManyRequestsException")
        assert retrier["JitterStrategy"] == "FULL", name
        assert retrier["MaxDelaySeconds"] <= 30, name  # capacity freed is used soon
        assert _total_wait(retrier) >= 240, name  # jittered, about half of it on average
        assert _total_wait(retrier) < asl["TimeoutSeconds"] / 2, name  # the execution's own timeout stays far


def test_a_missing_sidecar_is_waited_for_about_sidecar_wait_seconds(asl):
    retrier = _retrier(asl["States"]["ValidateInput"], "MissingMetadata")
    default_wait = PipelineSettings().sidecar_wait_seconds
    assert 0.5 * default_wait <= _total_wait(retrier) <= 1.5 * default_wait


def test_an_unavailable_inference_server_is_retried_but_not_wired_is_not(asl):
    state = asl["States"]["InvokeInference"]
    assert _total_wait(_retrier(state, "InferenceUnavailable")) >= 5
    assert not any("InferenceNotWired" in r["ErrorEquals"] for r in state["Retry"])


def test_only_retryable_pipeline_errors_are_retried(asl):
    """Error names are an interface with radstream.pipeline.errors: a typo would never match."""
    custom = {e for s in asl["States"].values() for r in s.get("Retry", []) for e in r["ErrorEquals"]
              if not e.startswith(("Lambda.", "States."))}
    assert custom <= set(ERROR_TYPES)
    assert custom == set(RETRYABLE_ERROR_TYPES)


def test_every_task_failure_keeps_its_input_and_ends_in_store_failure_then_fail(asl):
    states = asl["States"]
    for name in MAIN_PATH:
        [catcher] = states[name]["Catch"]
        assert catcher["ErrorEquals"] == ["States.ALL"] and catcher["Next"] == "StoreFailure"
        # A ResultPath below the root adds the error to the input instead of replacing it.
        assert catcher["ResultPath"] == f"$.failure.{name}"
        assert name in STATE_STAGES  # StoreFailure turns the state name into the stage
    store_failure = states["StoreFailure"]
    assert store_failure["Next"] == "PipelineFailed"
    assert [c["Next"] for c in store_failure["Catch"]] == ["PipelineFailed"]
    assert states["PipelineFailed"]["Type"] == "Fail"
