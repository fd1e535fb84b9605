"""The query runner against moto over real HTTP: DuckDB over NDJSON objects under raw_telemetry/
(cached by ETag), and the Athena path (moto answers with queued rows: we check what was submitted,
where, and that the pages come back as typed rows). Also the report, cost and query commands."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from radstream.analytics.runner import TELEMETRY_PREFIX, run_query
from radstream.analytics.sql import named_queries, render
from radstream.pipeline.results import telemetry_line
from tests.integration.sandbox_fixtures import loopback_moto
from tests.support.aws import beyond_the_operator_policy
from tests.unit.test_analytics_sql import telemetry_dataset


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with loopback_moto() as endpoint:
        yield endpoint


def make_context(project: Path, endpoint: str, target: str = "sandbox", deployment: str = "rs-analytics") -> Any:
    from radstream import config as config_mod
    from radstream.context import Context
    from radstream.state import State

    path = project / f"{target}.yaml"
    path.write_text(f"target: {target}\ndeployment: {deployment}\naws:\n  endpoint_url: {endpoint}\n")
    loaded = config_mod.load(path, environ={})
    return Context(loaded, State.load(loaded.state_dir, loaded.settings.deployment, target))


def count_calls(client: Any, operation: str) -> list[int]:
    calls = [0]
    client.meta.events.register(f"before-call.*.{operation}", lambda **_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.fixture(scope="module")
def sandbox_ctx(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A sandbox-target context whose telemetry bucket holds the unit tests' 14 events in four
    Firehose-style objects (one of them gzipped) plus a stray zero-byte object."""
    ctx = make_context(tmp_path_factory.mktemp("project"), moto_endpoint)
    s3, bucket = ctx.client("s3"), ctx.names.bucket("telemetry")
    s3.create_bucket(Bucket=bucket)
    events = telemetry_dataset()
    for n, start in enumerate(range(0, len(events), 4)):
        body = b"".join(telemetry_line(e) for e in events[start:start + 4])
        key = f"{TELEMETRY_PREFIX}2025/03/01/1{n}/rs-analytics-telemetry-firehose-1-2025-03-01-1{n}-00-00-{n}"
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if n == 1 else body)
    s3.put_object(Bucket=bucket, Key=f"{TELEMETRY_PREFIX}2025/03/01/empty", Body=b"")
    s3.put_object(Bucket=bucket, Key="athena-results/not-telemetry.csv", Body=b"a,b\n1,2\n")
    return ctx


# -- DuckDB over the bucket -----------------------------------------------------------------------
def test_named_queries_run_over_the_bucket(sandbox_ctx):
    result = run_query(sandbox_ctx, name="total_events")
    assert result.engine == "duckdb" and result.details["objects"] == 4
    assert result.rows == [{"events": 14, "studies": 14}]
    reasons = run_query(sandbox_ctx, name="failure_reasons").rows
    assert [(r["error_type"], r["failures"]) for r in reasons] == [
        ("InvalidMetadata", 2), ("TritonUnavailable", 1), ("UnsupportedImage", 1)]
    [p] = run_query(sandbox_ctx, name="latency_percentiles").rows
    assert p["p50_ms"] == pytest.approx(612.0)
    assert run_query(sandbox_ctx, sql="SELECT study_id FROM telemetry WHERE study_id = :s", params={"s": "OK-002"}).rows == [
        {"study_id": "OK-002"}]


def test_objects_are_downloaded_once_per_etag(sandbox_ctx):
    s3, bucket = sandbox_ctx.client("s3"), sandbox_ctx.names.bucket("telemetry")
    gets = count_calls(s3, "GetObject")
    run_query(sandbox_ctx, name="total_events")  # every object is cached by now
    assert gets[0] == 0
    key = f"{TELEMETRY_PREFIX}2025/03/02/09/late-object"
    s3.put_object(Bucket=bucket, Key=key, Body=telemetry_line(telemetry_dataset()[0] | {"event_id": "late", "study_id": "LATE-1"}))
    assert run_query(sandbox_ctx, name="total_events").rows == [{"events": 15, "studies": 15}]
    assert gets[0] == 1  # only the new object
    s3.delete_object(Bucket=bucket, Key=key)
    assert run_query(sandbox_ctx, name="total_events").rows == [{"events": 14, "studies": 14}]
    assert gets[0] == 1
    cached = list((sandbox_ctx.cache_dir / "telemetry" / bucket).iterdir())
    assert len(cached) == 4 and sum(p.name.endswith(".json.gz") for p in cached) == 1


def test_an_empty_bucket_answers_with_zero(moto_endpoint, tmp_path):
    ctx = make_context(tmp_path, moto_endpoint, deployment="rs-empty")
    ctx.client("s3").create_bucket(Bucket=ctx.names.bucket("telemetry"))
    assert run_query(ctx, name="success_rate").rows == [
        {"events": 0, "succeeded": 0, "failed": 0, "success_rate_percent": None}]


def test_a_missing_bucket_says_what_to_do(moto_endpoint, tmp_path):
    from radstream.errors import RadstreamError

    with pytest.raises(RadstreamError, match="does not exist") as caught:
        run_query(make_context(tmp_path, moto_endpoint, deployment="rs-nothing"), name="total_events")
    assert "radstream up" in str(caught.value)


# -- Athena ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aws_ctx(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An aws-target context (credentials from the environment, as on a real account) on moto."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        ctx = make_context(tmp_path_factory.mktemp("aws"), moto_endpoint, target="aws")
        ctx.client("athena").create_work_group(
            Name=ctx.names.athena_workgroup,
            Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{ctx.names.bucket('telemetry')}/athena-results/"}},
        )
        yield ctx


def queue_athena_result(endpoint: str, rows: list[list[str | None]], columns: list[tuple[str, str]]) -> None:
    result = {"rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
              "column_info": [{"Name": n, "Type": t, "Label": n} for n, t in columns]}
    response = requests.post(f"{endpoint}/moto-api/static/athena/query-results",
                             json={"region": "us-east-1", "results": [result]}, timeout=10)
    response.raise_for_status()


def test_athena_gets_the_transpiled_query_in_the_deployment_workgroup(aws_ctx, moto_endpoint):
    columns = [("studies", "bigint"), ("p50_ms", "double"), ("p95_ms", "double"), ("p99_ms", "double")]
    queue_athena_result(moto_endpoint, [[c for c, _ in columns], ["10", "612.0", "1057.5", None]], columns)
    result = run_query(aws_ctx, name="latency_percentiles")
    assert result.engine == "athena"
    assert result.rows == [{"studies": 10, "p50_ms": 612.0, "p95_ms": 1057.5, "p99_ms": None}]

    athena, names = aws_ctx.client("athena"), aws_ctx.names
    with beyond_the_operator_policy():
        ids = athena.list_query_executions(WorkGroup=names.athena_workgroup)["QueryExecutionIds"]
    assert result.details["query_execution_id"] in ids
    execution = athena.get_query_execution(QueryExecutionId=result.details["query_execution_id"])["QueryExecution"]
    expected = render(named_queries()["latency_percentiles"].sql, "athena", f"{names.glue_database}.{names.glue_table}")
    assert execution["Query"] == expected
    assert "APPROX_PERCENTILE" in execution["Query"] and f"{names.glue_database}.raw_telemetry" in execution["Query"]
    assert execution["WorkGroup"] == names.athena_workgroup
    assert execution["QueryExecutionContext"]["Database"] == names.glue_database


def test_athena_results_are_read_through_the_paginator(aws_ctx, moto_endpoint):
    pages = count_calls(aws_ctx.client("athena"), "GetQueryResults")
    queue_athena_result(moto_endpoint, [["hour", "events"], ["2025-03-01 10:00:00.000 UTC", "7"]],
                        [("hour", "timestamp with time zone"), ("events", "bigint")])
    result = run_query(aws_ctx, sql="SELECT date_trunc('hour', from_iso8601_timestamp(event_time)) AS hour, count(*) AS events "
                                    "FROM telemetry GROUP BY 1")
    assert result.rows == [{"hour": "2025-03-01T10:00:00Z", "events": 7}]
    assert pages[0] == 1


def test_duckdb_can_be_chosen_on_aws(aws_ctx, sandbox_ctx):
    """Same moto account and deployment id: the aws context reads the sandbox context's bucket."""
    result = run_query(aws_ctx, name="total_events", engine="duckdb")
    assert result.engine == "duckdb" and result.rows == [{"events": 14, "studies": 14}]


# -- report, cost and the commands ----------------------------------------------------------------
def test_report_from_a_live_sandbox_context(sandbox_ctx, tmp_path):
    from radstream.analytics import report

    data = report.gather(sandbox_ctx)
    assert "Latency" not in data["errors"] and "Cost" not in data["errors"]
    written = report.write(data, tmp_path)
    names = {Path(p).name for p in written["images"]}
    assert {"latency_histogram.png", "stage_latency.png", "throughput.png"} <= names
    assert "InvalidMetadata" in Path(written["html"]).read_text()


def test_cost_uses_the_measured_stage_times(sandbox_ctx):
    from radstream.analytics.cost import deployment_cost

    summary = deployment_cost(sandbox_ctx)
    per = summary["per_1000_images"]
    assert per is not None and per["per_1000_images"] > 0
    duration = next(li for li in per["lines"] if li["item"] == "Lambda duration")
    # mean stage times of the dataset: validate 67/14, prepare 582/12, inference 550, store 2 (ms) at 1 GB
    assert duration["quantity"] == pytest.approx((67 / 14 + 581 / 12 + 550 + 2), rel=1e-3)
    assert summary["idle"]["per_hour"] == 0  # no phase has run in this project


def test_the_commands_print_one_json_object(sandbox_ctx, moto_endpoint, tmp_path):
    from typer.testing import CliRunner

    from radstream.cli import app

    config = sandbox_ctx.loaded.path
    runner = CliRunner()

    listed = runner.invoke(app, ["query", "--list", "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)["queries"]) >= 14
    ran = runner.invoke(app, ["query", "success_rate", "--json", "--config", str(config)])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["rows"] == [{"events": 14, "succeeded": 10, "failed": 4, "success_rate_percent": 71.43}]
    unknown = runner.invoke(app, ["query", "no_such_query", "--json", "--config", str(config)])
    assert unknown.exit_code == 2 and "no query named" in json.loads(unknown.stdout)["error"]
    made = runner.invoke(app, ["report", "--out", str(tmp_path / "r"), "--json", "--config", str(config)])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "r" / "report.html").exists()
    priced = runner.invoke(app, ["cost", "--json", "--config", str(config)])
    assert priced.exit_code == 0 and json.loads(priced.stdout)["per_1000_images"]["per_1000_images"] > 0
