"""`radstream status` and `radstream query` as people read them: nested outputs as dotted rows,
floats rounded; the payloads (what --json prints) keep their shape and precision."""

from __future__ import annotations

from pathlib import Path

import pytest

from radstream.render import human_number, output_rows, render_query, render_status
from radstream.status import drifted, status_payload
from tests.unit.test_engine import make_ctx


@pytest.mark.parametrize(("value", "shown"), [
    (1234.56789, "1234.568"), (0.000123456, "0.000123"), (0.5234, "0.523"), (71.43, "71.43"), (2.0, "2"),
    (-3.14159, "-3.142"), (0.0, "0"), (7, 7), ("7.123456", "7.123456"), (None, None),
])
def test_floats_are_rounded_for_people_and_nothing_else_is_touched(value, shown):
    assert human_number(value) == shown


def test_nested_outputs_become_dotted_rows_and_empty_ones_are_left_out():
    outputs = {"endpoint": None, "buckets": {"images": "rs-test-images", "results": "rs-test-results"},
               "event_rules": ["a", "b"], "replicas": 0, "nodes": [{"name": "n1"}], "functions": {}}
    assert output_rows(outputs) == [("buckets.images", "rs-test-images"), ("buckets.results", "rs-test-results"),
                                    ("event_rules", "a, b"), ("replicas", "0"), ("nodes[0].name", "n1")]


def test_status_payload_puts_the_main_outputs_first_and_renders_without_reprs(tmp_path: Path, capsys):
    ctx = make_ctx(tmp_path)
    ctx.state.add_outputs(0, {"glue_database": "rs_test", "buckets": {"images": "rs-test-images"}})
    ctx.state.add_outputs(3, {"endpoint": "http://10.0.0.1:8000"})
    payload = status_payload(ctx)
    assert list(payload["outputs"]) == ["endpoint", "state_machine_arn", "buckets", "glue_database"]
    assert [(p["number"], p["status"]) for p in payload["phases"]][:2] == [(0, "pending"), (1, "pending")]
    assert "drift" not in payload and not drifted(payload)

    render_status(payload)
    shown = capsys.readouterr().out
    assert "buckets.images" in shown and "rs-test-images" in shown and "glue_database" in shown
    assert "{" not in shown and "state_machine_arn" not in shown  # no dict repr; nothing shown for None


def test_query_rows_are_rounded_on_screen_only(capsys):
    result = {"name": "latency", "engine": "duckdb", "row_count": 1, "columns": ["p50_ms", "rate", "n", "stage"],
              "rows": [{"p50_ms": 1234.56789, "rate": 0.000123456, "n": 7, "stage": None}]}
    render_query(result)
    shown = capsys.readouterr().out
    assert "1234.568" in shown and "0.000123" in shown and "1234.56789" not in shown
    assert result["rows"][0]["p50_ms"] == 1234.56789  # what --json prints is left as it was
