"""Phases 0 and 5 through the real CLI against a real sandbox daemon: phase 0 from nothing, a
converged second run with zero mutations, an upload that runs the deployed pipeline, a telemetry
probe that lands in S3 and is queried back, and a destroy that leaves nothing tagged."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env

DEPLOYMENT = "rs-p0sbx"


def radstream(project: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", *args, "--json"], cwd=project, env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout.count("\n") == 1, f"--json must print exactly one line:\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    from radstream.sandbox import daemon

    path = tmp_path_factory.mktemp("p0")
    (path / "radstream.yaml").write_text(f"target: sandbox\ndeployment: {DEPLOYMENT}\n")
    yield path
    daemon.stop(path / ".radstream")


@pytest.fixture(scope="module")
def applied(project: Path) -> dict:
    code, result = radstream(project, "phase", "run", "0", "--yes")
    assert code == 0, result["error"]
    return result


def aws(project: Path, service: str):
    import boto3

    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_phase0_from_nothing_creates_everything_and_records_outputs(project: Path, applied: dict):
    assert applied["ok"] and applied["mutations"] > 0
    assert [s["status"] for s in applied["phases"][0]["steps"]] == ["done"] * len(applied["phases"][0]["steps"])
    code, status = radstream(project, "status")
    assert code == 0
    outputs = status["outputs"]
    assert set(outputs["buckets"]) == {"images", "results", "telemetry", "artifacts"}
    assert outputs["state_machine_arn"].endswith(f":stateMachine:{DEPLOYMENT}-pipeline")


def test_second_run_reports_zero_mutations_and_no_drift(project: Path, applied: dict):
    code, again = radstream(project, "phase", "run", "0", "--yes")
    assert code == 0 and again["mutations"] == 0
    assert {s["status"] for s in again["phases"][0]["steps"]} == {"skipped"}
    code, refreshed = radstream(project, "status", "--refresh")
    assert code == 0 and not [d for d in refreshed["drift"] if d["drift"]]


def test_buckets_are_private_and_tls_only(project: Path, applied: dict):
    s3 = aws(project, "s3")
    for bucket in applied_buckets(project).values():
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert any(st["Effect"] == "Deny" and st["Condition"]["Bool"]["aws:SecureTransport"] == "false"
                   for st in policy["Statement"])


def applied_buckets(project: Path) -> dict:
    return json.loads((project / ".radstream" / "state.json").read_text())["phases"]["0"]["outputs"]["buckets"]


def test_an_upload_starts_the_deployed_pipeline_which_reaches_an_end_state(project: Path, applied: dict):
    from PIL import Image

    s3, sfn = aws(project, "s3"), aws(project, "stepfunctions")
    arn = json.loads((project / ".radstream" / "state.json").read_text())["phases"]["0"]["outputs"]["state_machine_arn"]
    before = len(sfn.list_executions(stateMachineArn=arn)["executions"])
    png = io.BytesIO()
    Image.new("L", (64, 64), 128).save(png, format="PNG")
    images = applied_buckets(project)["images"]
    s3.put_object(Bucket=images, Key="incoming/P0-TEST-1.json",
                  Body=json.dumps({"study_id": "P0-TEST-1", "view": "PA", "timestamp": "2026-11-25T12:00:00Z",
                                   "burned_in_annotation": False}))
    s3.put_object(Bucket=images, Key="incoming/P0-TEST-1.png", Body=png.getvalue())
    deadline = time.monotonic() + 120
    while True:
        executions = sfn.list_executions(stateMachineArn=arn)["executions"]
        if len(executions) > before and all(e["status"] != "RUNNING" for e in executions):
            break
        assert time.monotonic() < deadline, f"no finished execution: {executions}"
        time.sleep(0.5)
    # The sidecar upload must not start a second execution.
    assert len(executions) == before + 1
    history = sfn.get_execution_history(executionArn=executions[0]["executionArn"])["events"]
    assert any(e["type"] == "LambdaFunctionSucceeded" for e in history), "no handler from the uploaded zip ran"


def test_phase5_probe_travels_kinesis_firehose_s3_and_is_queried_back(project: Path, applied: dict):
    code, result = radstream(project, "phase", "run", "telemetry", "--yes")
    assert code == 0, result["error"]
    outputs = json.loads((project / ".radstream" / "state.json").read_text())["phases"]["5"]["outputs"]
    assert outputs["probe_key"].startswith("raw_telemetry/")
    body = aws(project, "s3").get_object(Bucket=applied_buckets(project)["telemetry"], Key=outputs["probe_key"])["Body"]
    events = [json.loads(line) for line in body.read().decode().splitlines()]
    assert outputs["probe_id"] in {e["study_id"] for e in events}
    code, query = radstream(project, "query", "study_events", "--param", f"study_id={outputs['probe_id']}")
    assert code == 0 and query["row_count"] == 1
    code, again = radstream(project, "phase", "run", "5", "--yes")
    assert code == 0 and again["mutations"] == 0


def test_destroy_leaves_nothing_tagged(project: Path, applied: dict):
    code, destroyed = radstream(project, "phase", "destroy", "5", "--yes")  # its alarms, dashboard, budget, topic
    assert code == 0, destroyed["error"]
    code, destroyed = radstream(project, "phase", "destroy", "0", "--yes")
    assert code == 0, destroyed["error"]
    from radstream.aws.inventory import deployment_resources

    assert deployment_resources(lambda service: aws(project, service), DEPLOYMENT) == []
    code, again = radstream(project, "phase", "destroy", "0", "--yes")
    assert code == 0 and again["mutations"] == 0
