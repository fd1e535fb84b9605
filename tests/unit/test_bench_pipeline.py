"""`radstream bench pipeline`'s arithmetic: where an execution's time goes, the hop table, the durations
it records for `radstream cost`, and its table."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from radstream.bench.pipeline import _common_prefix, _function_durations, execution_hops, format_table, hop_table
from tests.conftest import REPO

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def event(kind: str, ms: float, state: str | None = None) -> dict:
    one = {"timestamp": at(ms), "type": kind}
    if state is not None:
        one["stateEnteredEventDetails"] = {"name": state}
    return one


def task(state: str, entered: float, scheduled: float, done: float, exited: float, kind: str = "LambdaFunctionSucceeded"):
    return [event("TaskStateEntered", entered, state), event("LambdaFunctionScheduled", scheduled),
            event("LambdaFunctionStarted", scheduled), event(kind, done), event("TaskStateExited", exited)]


# Every moment is a multiple of 1/8 s after a whole second, so the differences are exact in floating point.
def test_execution_hops_of_a_two_state_execution():
    history = [
        event("ExecutionStarted", 250),
        *task("ValidateInput", entered=375, scheduled=500, done=750, exited=875),
        *task("PrepareImage", entered=1125, scheduled=1250, done=1750, exited=1875),
        event("ExecutionSucceeded", 2000),
    ]
    hops = execution_hops(history, submitted_at=T0.timestamp())
    assert set(hops) == {"upload to execution", "ValidateInput", "PrepareImage", "state transitions"}
    assert hops["upload to execution"] == pytest.approx(250.0)
    assert hops["ValidateInput"] == pytest.approx(250.0)
    assert hops["PrepareImage"] == pytest.approx(500.0)
    # ExecutionStarted -> first entry (125) + ValidateInput's exit -> PrepareImage's entry (250)
    assert hops["state transitions"] == pytest.approx(375.0)


def test_a_failed_lambda_call_counts_for_its_state_like_a_success():
    history = [
        event("ExecutionStarted", 125),
        *task("ValidateInput", entered=125, scheduled=250, done=625, exited=750, kind="LambdaFunctionFailed"),
        event("ExecutionFailed", 875),
    ]
    hops = execution_hops(history, submitted_at=T0.timestamp())
    assert hops["ValidateInput"] == pytest.approx(375.0)
    assert hops["upload to execution"] == pytest.approx(125.0)
    assert hops["state transitions"] == pytest.approx(0.0)


def test_a_retried_lambda_call_adds_both_attempts_to_its_state():
    history = [
        event("ExecutionStarted", 0),
        event("TaskStateEntered", 125, "InvokeInference"),
        event("LambdaFunctionScheduled", 250), event("LambdaFunctionFailed", 500),
        event("LambdaFunctionScheduled", 2500), event("LambdaFunctionSucceeded", 3000),
        event("TaskStateExited", 3125),
    ]
    hops = execution_hops(history, submitted_at=T0.timestamp())
    assert hops["InvokeInference"] == pytest.approx(250.0 + 500.0)
    assert hops["state transitions"] == pytest.approx(125.0)


def test_hop_table_sets_the_sandbox_beside_the_floor():
    sandbox = [
        {"upload to execution": 100.0, "ValidateInput": 50.0, "PrepareImage": 90.0, "state transitions": 30.0},
        {"upload to execution": 300.0, "ValidateInput": 70.0, "PrepareImage": 110.0, "state transitions": 50.0},
    ]
    direct_state_ms = [{"ValidateInput": 10.0, "PrepareImage": 40.0}, {"ValidateInput": 20.0, "PrepareImage": 44.0},
                       {"ValidateInput": 60.0}]
    rows = hop_table(sandbox, direct_state_ms, direct_upload_ms=[5.0, 15.0])

    assert [r["hop"] for r in rows] == ["upload to execution", "ValidateInput", "PrepareImage", "state transitions"]
    by_hop = {r["hop"]: r for r in rows}
    assert by_hop["upload to execution"] == {"hop": "upload to execution", "sandbox_ms": 200.0, "direct_ms": 10.0,
                                             "overhead_ms": 190.0}
    assert by_hop["ValidateInput"] == {"hop": "ValidateInput", "sandbox_ms": 60.0, "direct_ms": 20.0, "overhead_ms": 40.0}
    assert by_hop["PrepareImage"] == {"hop": "PrepareImage", "sandbox_ms": 100.0, "direct_ms": 42.0, "overhead_ms": 58.0}
    assert by_hop["state transitions"] == {"hop": "state transitions", "sandbox_ms": 40.0, "direct_ms": 0.0,
                                           "overhead_ms": 40.0}


def test_hop_table_without_a_floor_time_has_no_overhead():
    rows = hop_table([{"StoreResults": 12.0}], [{"ValidateInput": 3.0}], [])
    assert rows == [{"hop": "StoreResults", "sandbox_ms": 12.0, "direct_ms": None, "overhead_ms": None}]


def test_function_durations_are_the_mean_of_each_task_state():
    asl = json.loads((REPO / "manifests" / "stepfunctions" / "pipeline.asl.json").read_text())
    chain = SimpleNamespace(definition=asl)
    state_ms = [
        {"ValidateInput": 10.0, "PrepareImage": 1.0, "PipelineFailed": 999.0},
        {"ValidateInput": 20.0, "PrepareImage": 2.0},
        {"PrepareImage": 4.0, "StoreFailure": 6.0},
    ]
    assert _function_durations(chain, state_ms) == {"ValidateInput": 15.0, "PrepareImage": 2.33, "StoreFailure": 6.0}


def test_common_prefix_of_study_ids():
    assert _common_prefix(["LOAD-x-00001", "LOAD-x-00002", "LOAD-x-00010"]) == "LOAD-x-000"
    assert _common_prefix(["LOAD-x-00001"]) == "LOAD-x-00001"
    assert _common_prefix(["LOAD-aD-1", "LOAD-aS-1"]) == "LOAD-a"


def test_format_table_shows_the_latencies_hops_bursts_and_ratios():
    result = {
        "studies": 20, "concurrency": 4,
        "per_study": {"direct": {"p50_ms": 400.0, "p95_ms": 450.0}, "sandbox": {"p50_ms": 700.0, "p95_ms": 900.0}},
        "per_study_ratio": 1.75,
        "hops": [{"hop": "upload to execution", "sandbox_ms": 120.0, "direct_ms": 30.0, "overhead_ms": 90.0},
                 {"hop": "StoreResults", "sandbox_ms": 12.5, "direct_ms": None, "overhead_ms": None}],
        "bursts": [{"size": 50, "direct_per_s": 10.0, "sandbox_per_s": 6.2, "ratio": 0.62},
                   {"size": 62, "direct_per_s": 10.0, "sandbox_per_s": 5.5, "ratio": 0.55}],
        "burst_throughput_ratio": 0.55,
    }
    table = format_table(result)
    assert "20 studies one at a time" in table
    assert "p50 400.0 ms" in table and "p95 900.0 ms" in table
    assert "per-study ratio (sandbox/direct p50): 1.75" in table
    upload_row = next(line for line in table.splitlines() if "upload to execution" in line)
    assert upload_row.split()[-3:] == ["120.0", "30.0", "90.0"]
    store_row = next(line for line in table.splitlines() if "StoreResults" in line)
    assert store_row.split()[-3:] == ["12.5", "-", "-"]
    assert "burst of 50: direct 10.0/s, sandbox 6.2/s, ratio 0.62" in table
    assert "burst of 62: direct 10.0/s, sandbox 5.5/s, ratio 0.55" in table
    assert "burst throughput ratio (sandbox/direct, lowest): 0.55" in table
    assert "floor on 4 threads" in table
