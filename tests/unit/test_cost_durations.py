"""The cost per image from `radstream bench pipeline`'s measured handler durations."""

from __future__ import annotations

import json

import pytest

from radstream.analytics.cost import bench_durations, cost_per_1000_images, workload_from_durations
from radstream.bench import DURATIONS_FILE
from tests.conftest import REPO

ASL = REPO / "manifests" / "stepfunctions" / "pipeline.asl.json"
DURATIONS = {"ValidateInput": 12.5, "PrepareImage": 80.0, "InvokeInference": 150.0, "StoreResults": 20.0,
             "SendTelemetry": 7.5}
MEASURED_AT = "2025-03-01T12:00:00+00:00"
RECORD = DURATIONS_FILE


def test_workload_from_durations_prices_every_function():
    asl = json.loads(ASL.read_text())
    work = workload_from_durations(DURATIONS, asl, 512, MEASURED_AT)
    assert work.lambda_invocations == 5
    assert work.transitions == 5
    assert work.lambda_ms == DURATIONS
    assert work.lambda_memory_mb == 512

    cost = cost_per_1000_images(work)
    lines = {line["item"]: line for line in cost["lines"]}
    total_ms = sum(DURATIONS.values())  # 270 ms
    assert lines["Lambda duration"]["quantity"] == pytest.approx(1000 * total_ms / 1000 * 512 / 1024)
    assert lines["Lambda duration"]["quantity"] == pytest.approx(135.0)
    assert lines["Lambda requests"]["quantity"] == 5000
    assert lines["Step Functions transitions"]["quantity"] == 5000

    assert len(work.notes) == 1
    assert "bench pipeline" in work.notes[0] and MEASURED_AT in work.notes[0]
    assert work.notes[0] in cost["notes"]


def test_the_durations_are_not_shared_with_the_caller():
    durations = dict(DURATIONS)
    work = workload_from_durations(durations, json.loads(ASL.read_text()), 1024, MEASURED_AT)
    durations["ValidateInput"] = 1e6
    assert work.lambda_ms["ValidateInput"] == 12.5


def test_bench_durations_reads_the_benchmark_record(tmp_path):
    path = tmp_path / RECORD
    path.write_text(json.dumps({"measured_at": MEASURED_AT, "run_id": "LOAD-x",
                                "durations_ms": {"ValidateInput": 12, "PrepareImage": 80.25}}, indent=2) + "\n")
    durations, measured_at = bench_durations(path)
    assert durations == {"ValidateInput": 12.0, "PrepareImage": 80.25}
    assert all(isinstance(v, float) for v in durations.values())
    assert measured_at == MEASURED_AT


def test_bench_durations_without_a_file_is_none(tmp_path):
    assert bench_durations(tmp_path / RECORD) is None


@pytest.mark.parametrize("text", [
    "{not json",
    json.dumps({"measured_at": MEASURED_AT, "run_id": "LOAD-x"}),
    json.dumps([1, 2, 3]),
    json.dumps({"measured_at": MEASURED_AT, "durations_ms": ["ValidateInput"]}),
])
def test_bench_durations_of_an_unusable_record_is_none(tmp_path, text):
    path = tmp_path / RECORD
    path.write_text(text)
    assert bench_durations(path) is None
