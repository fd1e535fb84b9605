"""`radstream ab`: the batch variant's Triton configuration, the B / A comparison, a not-applicable
experiment, the exports and the table."""

from __future__ import annotations

import copy
import csv
import json
from types import SimpleNamespace

import pytest

from radstream.bench.ab import FIGURES, batch_config, compare, format_table, run, write_exports
from radstream.errors import RadstreamError

TRITON_CONFIG = {
    "name": "chest_xray",
    "platform": "onnxruntime_onnx",
    "max_batch_size": 8,
    "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100},
    "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [3, 224, 224]}],
}

A_SUMMARY = {"run_id": "LOAD-a", "throughput_per_min": 300, "p50_ms": 200.0, "p95_ms": 0,
             "stages": {"inference": {"p50_ms": 40.0}}, "replicas_max": 1, "failed": 0, "lost": 0}
B_SUMMARY = {"run_id": "LOAD-b", "throughput_per_min": 100, "p50_ms": 300.0, "p95_ms": 10,
             "stages": {"inference": {"p50_ms": 30.0}, "prepare": {"p50_ms": 5.0}}, "replicas_max": 3, "failed": 2,
             "lost": 0}


def test_a_batch_size_of_one_turns_dynamic_batching_off():
    before = copy.deepcopy(TRITON_CONFIG)
    changed = batch_config(TRITON_CONFIG, 1, 0)
    assert changed["max_batch_size"] == 1
    assert "dynamic_batching" not in changed
    assert changed["input"] == TRITON_CONFIG["input"]
    assert TRITON_CONFIG == before  # the input is not modified


def test_a_larger_batch_keeps_the_preferred_sizes_that_fit_and_sets_the_delay():
    before = copy.deepcopy(TRITON_CONFIG)
    changed = batch_config(TRITON_CONFIG, 4, 5000)
    assert changed["max_batch_size"] == 4
    assert changed["dynamic_batching"] == {"preferred_batch_size": [4], "max_queue_delay_microseconds": 5000}
    assert TRITON_CONFIG == before


def test_no_preferred_size_fits_so_the_batch_size_is_preferred():
    config = {**TRITON_CONFIG, "dynamic_batching": {"preferred_batch_size": [8]}}
    changed = batch_config(config, 4, 0)
    assert changed["dynamic_batching"]["preferred_batch_size"] == [4]
    assert changed["dynamic_batching"]["max_queue_delay_microseconds"] == 0
    assert config["dynamic_batching"] == {"preferred_batch_size": [8]}


def test_compare_gives_every_figure_with_its_ratio_b_over_a():
    rows = compare(A_SUMMARY, B_SUMMARY)
    assert [r["figure"] for r in rows] == [name for name, _ in FIGURES]
    by_figure = {r["figure"]: r for r in rows}
    assert by_figure["throughput_per_min"] == {"figure": "throughput_per_min", "a": 300, "b": 100, "ratio": 0.333}
    assert by_figure["p50_ms"]["ratio"] == 1.5
    assert by_figure["inference_p50_ms"] == {"figure": "inference_p50_ms", "a": 40.0, "b": 30.0, "ratio": 0.75}
    assert by_figure["replicas_max"]["ratio"] == 3.0
    assert by_figure["p95_ms"]["ratio"] is None  # A is 0
    assert by_figure["failed"]["ratio"] is None  # A is 0
    assert by_figure["prepare_p50_ms"] == {"figure": "prepare_p50_ms", "a": None, "b": 5.0, "ratio": None}  # A missing


def test_compare_with_b_missing_has_no_ratio():
    rows = {r["figure"]: r for r in compare(A_SUMMARY, {})}
    assert all(r["b"] is None and r["ratio"] is None for r in rows.values())
    assert rows["inference_p50_ms"]["a"] == 40.0


def test_lambda_memory_on_the_sandbox_is_not_applicable_and_runs_nothing():
    ctx = SimpleNamespace(target=SimpleNamespace(lambda_memory_matters=False), config=SimpleNamespace(target="sandbox"))
    called = []
    result = run(ctx, "lambda-memory", {"memory_mb": 2048}, load=lambda c: called.append("load") or {},
                 warm_up=lambda c: called.append("warm_up"))
    assert called == []
    assert result["applicable"] is False
    assert result["experiment"] == "lambda-memory" and result["target"] == "sandbox"
    assert "memory" in result["reason"]
    assert result["variants"] is None and result["figures"] is None


def test_an_unknown_experiment_is_refused():
    ctx = SimpleNamespace(target=SimpleNamespace(lambda_memory_matters=True), config=SimpleNamespace(target="sandbox"))
    with pytest.raises(RadstreamError, match="nope"):
        run(ctx, "nope", {}, load=lambda c: {}, warm_up=lambda c: None)


def test_write_exports_writes_the_result_as_json_and_the_figures_as_csv(tmp_path):
    result = {"experiment": "batch", "summary": "Triton batch size and queue delay", "target": "sandbox",
              "applicable": True, "reason": None,
              "variants": {"A": {"description": "max batch 8", "run_id": "LOAD-a", "schedule": None},
                           "B": {"description": "max batch 1", "run_id": "LOAD-b", "schedule": None}},
              "figures": compare(A_SUMMARY, B_SUMMARY)}
    out = tmp_path / "exports"
    paths = write_exports(out, result)

    assert paths == {"json": str(out / "ab-batch-LOAD-a.json"), "csv": str(out / "ab-batch-LOAD-a.csv")}
    assert json.loads((out / "ab-batch-LOAD-a.json").read_text()) == result
    with (out / "ab-batch-LOAD-a.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["figure", "a", "b", "ratio"]
        rows = list(reader)
    assert [r["figure"] for r in rows] == [name for name, _ in FIGURES]
    by_figure = {r["figure"]: r for r in rows}
    assert by_figure["throughput_per_min"] == {"figure": "throughput_per_min", "a": "300", "b": "100", "ratio": "0.333"}
    assert by_figure["prepare_p50_ms"]["a"] == "" and by_figure["prepare_p50_ms"]["ratio"] == ""


def test_write_exports_of_a_result_not_run_has_no_figures(tmp_path):
    result = {"experiment": "lambda-memory", "target": "sandbox", "applicable": False, "reason": "memory",
              "variants": None, "figures": None}
    paths = write_exports(tmp_path, result)
    assert paths["csv"].endswith("ab-lambda-memory-not-run.csv")
    with open(paths["csv"], newline="") as handle:
        assert list(csv.DictReader(handle)) == []
    assert json.loads(open(paths["json"]).read())["applicable"] is False


def test_format_table_of_a_result_not_run_says_why():
    result = {"experiment": "lambda-memory", "target": "sandbox", "applicable": False,
              "reason": "the sandbox runs every function on this machine's CPU whatever its memory size"}
    table = format_table(result)
    assert "not run" in table
    assert "lambda-memory" in table and "sandbox" in table
    assert "whatever its memory size" in table
