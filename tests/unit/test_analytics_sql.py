"""The named telemetry queries: each parses, renders for Athena and DuckDB, and gives the right
numbers in DuckDB over NDJSON files shaped exactly like the pipeline's telemetry events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from radstream.analytics.runner import rows_from_pages, run_duckdb
from radstream.analytics.sql import QueryError, named_queries, parse_named_queries, render
from radstream.pipeline.results import TELEMETRY_COLUMNS, telemetry_event, telemetry_line

TABLE = "raw_telemetry"
DAY1 = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)
REQUIRED = {
    "total_events", "average_processing_time", "events_by_stage", "daily_inference_latency", "slowest_studies",
    "errors_over_time", "event_types", "latency_percentiles", "stage_latency_percentiles", "throughput_per_hour",
    "failure_reasons", "success_rate", "events_per_view", "model_versions",
}


def _result(i: int) -> dict:
    # Version 1 is the untrained default, version 2 an imported trained model.
    card = ({"model_trained": False, "model_trained_on": None, "model_licence": "Apache-2.0", "model_sha256": "a1" * 32}
            if i <= 7 else
            {"model_trained": True, "model_trained_on": "NIH ChestX-ray14", "model_licence": "CC-BY-4.0", "model_sha256": "b2" * 32})
    return {"model_name": "radstream_cxr", "model_version": "1" if i <= 7 else "2", **card,
            "top_finding": {"label": "Cardiomegaly" if i % 2 else "No Finding", "probability": 0.5 + i / 100}}


def telemetry_dataset() -> list[dict]:
    """14 events, easy to check by hand.

    Successes i=1..10: validate 5 ms, prepare 10·i, inference 100·i, store 2 → total 7 + 110·i ms;
    i=1..9 every ten minutes from 2025-03-01 10:10 UTC (10:xx holds i=1..5, 11:xx i=6..9), i=10 on
    2025-03-02 09:00; view PA for i<=6 else AP; model version "1" for i<=7 else "2".
    Failures: two InvalidMetadata at validate (10:05, 11:05), one UnsupportedImage at prepare
    (10:15), one TritonUnavailable at inference (11:15)."""
    events = []
    for i in range(1, 11):
        at = DAY1 + timedelta(minutes=10 * i) if i < 10 else datetime(2025, 3, 2, 9, 0, tzinfo=timezone.utc)
        events.append(telemetry_event(
            study_id=f"OK-{i:03d}", status="SUCCESS", input_key=f"incoming/OK-{i:03d}.jpg",
            view="PA" if i <= 6 else "AP", result=_result(i),
            stage_ms={"validate": 5, "prepare": 10 * i, "inference": 100 * i, "store": 2}, event_time=at,
        ))
    failures = [
        ("BAD-1", 5, "validate", "InvalidMetadata", "view is missing", {"validate": 3}),
        ("BAD-2", 65, "validate", "InvalidMetadata", "study_id is empty", {"validate": 4}),
        ("BAD-3", 15, "prepare", "UnsupportedImage", "not an image", {"validate": 5, "prepare": 1}),
        ("BAD-4", 75, "inference", "TritonUnavailable", "connection refused", {"validate": 5, "prepare": 30}),
    ]
    for study, minutes, stage, kind, message, stage_ms in failures:
        events.append(telemetry_event(
            study_id=study, status="FAILED", input_key=f"incoming/{study}.png", stage_ms=stage_ms,
            error={"stage": stage, "error_type": kind, "message": message}, event_time=DAY1 + timedelta(minutes=minutes),
        ))
    return events


def write_ndjson(folder: Path, events: list[dict], per_file: int = 5) -> list[Path]:
    """Events split over several files, as Firehose flushes them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(0, len(events), per_file):
        path = folder / f"part-{n:04d}.json"
        path.write_bytes(b"".join(telemetry_line(e) for e in events[n:n + per_file]))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_ndjson(tmp_path_factory.mktemp("telemetry"), telemetry_dataset())


def run(name: str, files: list[Path], **params: str) -> list[dict]:
    return run_duckdb(render(named_queries()[name].sql, "duckdb", TABLE, params), files, table=TABLE).rows


# -- the query file -------------------------------------------------------------------------------
def test_the_team_queries_are_all_there():
    queries = named_queries()
    assert len(queries) >= 14
    assert REQUIRED <= set(queries)
    assert all(q.description for q in queries.values())


@pytest.mark.parametrize("name", sorted(named_queries()))
@pytest.mark.parametrize("engine", ["athena", "duckdb"])
def test_every_query_renders_for_both_engines(name: str, engine: str):
    query = named_queries()[name]
    params = {p: "OK-001" for p in query.parameters}
    table = "rs_analytics.raw_telemetry" if engine == "athena" else TABLE
    sql = render(query.sql, engine, table, params)
    assert "telemetry " not in sql.replace("raw_telemetry", "")  # the logical table is gone
    assert table in sql
    if engine == "duckdb":
        assert "APPROX_PERCENTILE" not in sql.upper()
        assert "FROM_ISO8601" not in sql.upper()


def test_percentiles_are_exact_in_duckdb_and_approximate_in_athena():
    sql = named_queries()["latency_percentiles"].sql
    assert "QUANTILE_CONT(processing_time_ms, 0.95)" in render(sql, "duckdb", TABLE)
    assert "APPROX_PERCENTILE(processing_time_ms, 0.95)" in render(sql, "athena", "db.t")


def test_parse_reads_names_descriptions_and_parameters():
    text = "-- header\n\n-- name: one\n-- First line.\n-- Second line.\nSELECT 1 AS x;\n\n-- name: two\nSELECT * FROM telemetry WHERE study_id = :sid;\n"
    queries = parse_named_queries(text)
    assert list(queries) == ["one", "two"]
    assert queries["one"].description == "First line. Second line."
    assert queries["one"].sql == "SELECT 1 AS x"
    assert queries["two"].parameters == ["sid"]


def test_a_name_defined_twice_is_refused():
    with pytest.raises(QueryError, match="defined twice"):
        parse_named_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


# -- rendering ------------------------------------------------------------------------------------
def test_a_cte_named_like_the_table_is_left_alone():
    sql = render("WITH telemetry AS (SELECT 1 AS x) SELECT x FROM telemetry", "duckdb", "other")
    assert "other" not in sql


def test_parameters_become_quoted_literals(files):
    hostile = "OK-001' OR '1'='1"
    sql = render(named_queries()["study_events"].sql, "duckdb", TABLE, {"study_id": hostile})
    assert run_duckdb(sql, files, table=TABLE).rows == []
    assert [r["study_id"] for r in run("study_events", files, study_id="OK-003")] == ["OK-003"]


@pytest.mark.parametrize("sql, params, message", [
    ("SELECT * FROM telemetry WHERE study_id = :sid", {}, "needs a value for :sid"),
    ("SELECT 1", {"sid": "x"}, "no parameter"),
    ("DELETE FROM telemetry", {}, "read-only"),
    ("SELECT 1; SELECT 2", {}, "exactly one"),
    ("SELEC oops FROM", {}, "does not parse|read-only"),
])
def test_bad_queries_are_refused_with_a_reason(sql, params, message):
    with pytest.raises(QueryError, match=message):
        render(sql, "duckdb", TABLE, params)


# -- every query runs, and the numbers are right ---------------------------------------------------
@pytest.mark.parametrize("name", sorted(named_queries()))
def test_every_query_runs_in_duckdb(name: str, files):
    params = {p: "OK-001" for p in named_queries()[name].parameters}
    assert run(name, files, **params)


def test_counts(files):
    assert run("total_events", files) == [{"events": 14, "studies": 14}]
    assert run("success_rate", files) == [{"events": 14, "succeeded": 10, "failed": 4, "success_rate_percent": 71.43}]
    assert run("event_types", files) == [
        {"status": "SUCCESS", "events": 10, "percent": 71.43}, {"status": "FAILED", "events": 4, "percent": 28.57},
    ]


def test_end_to_end_percentiles_of_known_values(files):
    # totals are 117, 227, …, 1107: p50 between the 5th and 6th, p95 at rank 8.55 (0-based).
    [row] = run("latency_percentiles", files)
    assert row == {"studies": 10, "p50_ms": pytest.approx(612.0), "p95_ms": pytest.approx(1057.5),
                   "p99_ms": pytest.approx(1097.1)}
    [avg] = run("average_processing_time", files)
    assert avg == {"studies": 10, "avg_ms": 612.0, "min_ms": 117.0, "max_ms": 1107.0}


def test_per_stage_numbers(files):
    stages = {r["stage"]: r for r in run("stage_latency_percentiles", files)}
    assert list(stages) == ["validate", "prepare", "inference", "store"]
    assert stages["inference"]["events"] == 10  # failures before inference carry no inference time
    assert stages["inference"]["p50_ms"] == pytest.approx(550.0)
    assert stages["prepare"]["events"] == 12
    by_stage = {r["stage"]: r for r in run("events_by_stage", files)}
    assert by_stage["validate"] == {"stage": "validate", "timed_events": 14, "avg_ms": pytest.approx(4.786, abs=1e-3),
                                    "failed_events": 2}
    assert by_stage["inference"]["failed_events"] == 1
    assert by_stage["store"] == {"stage": "store", "timed_events": 10, "avg_ms": 2.0, "failed_events": 0}


def test_failure_reasons_are_grouped_by_stage_and_type(files):
    assert run("failure_reasons", files) == [
        {"error_stage": "validate", "error_type": "InvalidMetadata", "failures": 2, "example_message": "study_id is empty"},
        {"error_stage": "inference", "error_type": "TritonUnavailable", "failures": 1, "example_message": "connection refused"},
        {"error_stage": "prepare", "error_type": "UnsupportedImage", "failures": 1, "example_message": "not an image"},
    ]
    recent = run("recent_failures", files)
    assert [r["study_id"] for r in recent] == ["BAD-4", "BAD-2", "BAD-3", "BAD-1"]


def test_time_buckets_are_utc_hours_and_days(files):
    assert run("throughput_per_hour", files) == [
        {"hour": "2025-03-01T10:00:00Z", "events": 7, "succeeded": 5, "failed": 2},
        {"hour": "2025-03-01T11:00:00Z", "events": 6, "succeeded": 4, "failed": 2},
        {"hour": "2025-03-02T09:00:00Z", "events": 1, "succeeded": 1, "failed": 0},
    ]
    assert run("errors_over_time", files) == [
        {"hour": "2025-03-01T10:00:00Z", "failures": 2}, {"hour": "2025-03-01T11:00:00Z", "failures": 2},
    ]
    assert run("daily_inference_latency", files) == [
        {"day": "2025-03-01", "studies": 9, "avg_inference_ms": 500.0},
        {"day": "2025-03-02", "studies": 1, "avg_inference_ms": 1000.0},
    ]
    assert sum(r["events"] for r in run("throughput_per_minute", files)) == 14


def test_studies_views_models_and_findings(files):
    slowest = run("slowest_studies", files)
    assert [r["study_id"] for r in slowest[:2]] == ["OK-010", "OK-009"]
    assert slowest[0]["inference_ms"] == 1000.0
    assert run("events_per_view", files) == [
        {"view": "PA", "events": 6, "succeeded": 6, "avg_ms": 392.0},
        {"view": "AP", "events": 4, "succeeded": 4, "avg_ms": 942.0},
        {"view": "unknown", "events": 4, "succeeded": 0, "avg_ms": 12.0},
    ]
    assert run("model_versions", files) == [
        {"model_name": "radstream_cxr", "model_version": "1", "model_trained": False, "model_trained_on": None,
         "model_licence": "Apache-2.0", "model_sha256": "a1" * 32, "studies": 7,
         "first_seen": "2025-03-01T10:10:00Z", "last_seen": "2025-03-01T11:10:00Z"},
        {"model_name": "radstream_cxr", "model_version": "2", "model_trained": True, "model_trained_on": "NIH ChestX-ray14",
         "model_licence": "CC-BY-4.0", "model_sha256": "b2" * 32, "studies": 3,
         "first_seen": "2025-03-01T11:20:00Z", "last_seen": "2025-03-02T09:00:00Z"},
    ]
    findings = {r["top_finding"]: r["studies"] for r in run("findings_distribution", files)}
    assert findings == {"Cardiomegaly": 5, "No Finding": 5}
    assert len(run("processing_times", files)) == 10


def test_the_table_has_exactly_the_telemetry_columns(files):
    [row] = run("study_events", files, study_id="BAD-3")
    assert list(row) == [name for name, _ in TELEMETRY_COLUMNS]
    assert row["error_type"] == "UnsupportedImage" and row["prepare_ms"] == 1.0 and row["inference_ms"] is None


def test_no_objects_gives_an_empty_table_and_trino_semantics():
    assert run_duckdb(render("SELECT count(*) AS n FROM telemetry", "duckdb", TABLE), [], table=TABLE).rows == [{"n": 0}]
    # Trino's count_if counts 0 over no rows (DuckDB's own would give NULL)
    assert run("success_rate", []) == [{"events": 0, "succeeded": 0, "failed": 0, "success_rate_percent": None}]


def test_malformed_lines_do_not_fail_the_load(tmp_path: Path):
    good = telemetry_line(telemetry_dataset()[0])
    path = tmp_path / "mixed.json"
    path.write_bytes(good + b"\nnot json at all\n" + good)
    sql = render("SELECT count(event_id) AS events FROM telemetry", "duckdb", TABLE)
    assert run_duckdb(sql, [path], table=TABLE).rows == [{"events": 2}]


# -- Athena result pages --------------------------------------------------------------------------
def _page(rows: list[list[str | None]], token: str | None = None) -> dict:
    info = [{"Name": "hour", "Type": "timestamp with time zone"}, {"Name": "events", "Type": "bigint"},
            {"Name": "avg_ms", "Type": "double"}, {"Name": "view", "Type": "varchar"}]
    page = {"ResultSet": {"ResultSetMetadata": {"ColumnInfo": info},
                          "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in r]} for r in rows]}}
    if token:
        page["NextToken"] = token
    return page


def test_athena_pages_become_typed_rows_without_the_header_row():
    pages = [
        _page([["hour", "events", "avg_ms", "view"], ["2025-03-01 10:00:00.000 UTC", "7", "1.5", "PA"]], token="t"),
        _page([["2025-03-01 11:00:00.250 UTC", "6", None, None]]),
    ]
    columns, rows = rows_from_pages(pages)
    assert columns == ["hour", "events", "avg_ms", "view"]
    assert rows == [
        {"hour": "2025-03-01T10:00:00Z", "events": 7, "avg_ms": 1.5, "view": "PA"},
        {"hour": "2025-03-01T11:00:00.250Z", "events": 6, "avg_ms": None, "view": None},
    ]
