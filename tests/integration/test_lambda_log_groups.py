"""The functions' log groups through the real CLI and the AWS CLI against a real sandbox daemon.

`up` creates /aws/lambda/<function> for the six functions before the functions, tagged with the
deployment and kept `pipeline.log_retention_days`; a study's invocations log there (START … REPORT).
A group Lambda created itself (a function invoked while its group was missing: untagged, never
expiring) is drift that `status --refresh` reports and `up` repairs. `teardown` deletes the groups and
the crawler's stream in the account's shared /aws-glue/crawlers group, never that group."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, cli_env
from tests.integration.sandbox_fixtures import wait_for
from tests.unit.pipeline_fixtures import CR_FILES, sample_path

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-logs"
RETENTION_DAYS = 7
FUNCTIONS = ("validate-metadata", "prepare-tensors", "invoke-inference", "store-results", "send-telemetry",
             "store-failure")
GROUPS = sorted(f"/aws/lambda/{DEPLOYMENT}-{fn}" for fn in FUNCTIONS)
REPAIRED = f"/aws/lambda/{DEPLOYMENT}-validate-metadata"
CRAWLERS = "/aws-glue/crawlers"
OUR_CRAWLER = f"{DEPLOYMENT}-telemetry-crawler"


def radstream(project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", *args, "--json"], cwd=project, env=cli_env(),
                          check=False, capture_output=True, text=True, timeout=900)
    assert proc.stdout.count("\n") == 1, f"--json must print exactly one line:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(proc.stdout)


def aws_cli_path() -> str:
    # `./dev test` puts .venv/tools on PATH; a plain pytest run may not have it.
    found = shutil.which("aws") or shutil.which("aws", path=str(REPO / ".venv" / "tools"))
    if found is None:
        pytest.skip("the AWS CLI is not installed: `./dev test` installs it in .venv-awscli")
    return found


def aws(project: Path, *args: str) -> dict[str, Any]:
    """One AWS CLI call against the project's sandbox, with the sandbox's static keys only."""
    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    proc = subprocess.run([aws_cli_path(), *args, "--endpoint-url", endpoint, "--region", "us-east-1",
                           "--output", "json"], env=env, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "{}")


def lambda_groups(project: Path) -> dict[str, dict[str, Any]]:
    found = aws(project, "logs", "describe-log-groups", "--log-group-name-prefix", f"/aws/lambda/{DEPLOYMENT}-")
    return {g["logGroupName"]: g for g in found["logGroups"]}


def tags_of(project: Path, group: dict[str, Any]) -> dict[str, str]:
    return aws(project, "logs", "list-tags-for-resource", "--resource-arn", group["arn"].removesuffix(":*"))["tags"]


def messages(project: Path, group: str) -> list[str]:
    return [e["message"] for e in aws(project, "logs", "filter-log-events", "--log-group-name", group)["events"]]


def upload_study(project: Path, tmp: Path, name: str) -> str:
    """One de-identified DICOM through `radstream ingest`; returns its study id once its result is in."""
    import boto3

    source = tmp / name
    shutil.copy(sample_path(CR_FILES[0]), source)
    code, report = radstream(project, "ingest", str(source))
    assert code == 0 and report["counts"]["uploaded"] == 1, report
    study_id = report["studies"][0]["study_id"]
    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"{DEPLOYMENT}-results-123456789012"
    wait_for(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=f"results/{study_id}.json").get("KeyCount"),
             timeout=180, what=f"the result of study {study_id}")
    return study_id


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from radstream.sandbox import daemon

    aws_cli_path()
    path = tmp_path_factory.mktemp("log-groups")
    (path / "radstream.yaml").write_text(
        f"target: sandbox\ndeployment: {DEPLOYMENT}\npipeline:\n  log_retention_days: {RETENTION_DAYS}\n")
    try:
        yield path
    finally:
        daemon.stop(path / ".radstream")


@pytest.fixture(scope="module")
def deployed(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    code, result = radstream(project, "up", "--yes")
    assert code == 0, result["error"]
    after_up = {name: (group, tags_of(project, group)) for name, group in lambda_groups(project).items()}
    # As on an account where a function ran before its group existed: Lambda makes the group itself.
    aws(project, "logs", "delete-log-group", "--log-group-name", REPAIRED)
    study = upload_study(project, tmp_path_factory.mktemp("study"), "CR-LOGS")
    made = lambda_groups(project)[REPAIRED]
    return {"after_up": after_up, "study": study, "lambda_made": made, "lambda_made_tags": tags_of(project, made)}


@pytest.fixture(scope="module")
def repaired(project: Path, deployed: dict[str, Any]) -> dict[str, Any]:
    refresh_code, status = radstream(project, "status", "--refresh")
    code, result = radstream(project, "up", "--yes")
    assert code == 0, result["error"]
    return {"refresh_code": refresh_code, "drift": [d for d in status["drift"] if d["drift"]],
            "up": result, "groups": lambda_groups(project)}


@pytest.fixture(scope="module")
def torn_down(project: Path, repaired: dict[str, Any]) -> dict[str, Any]:
    # What Glue writes when crawlers run: one stream per crawler in one shared group.
    aws(project, "logs", "create-log-group", "--log-group-name", CRAWLERS)
    for crawler in (OUR_CRAWLER, "someone-elses-crawler"):
        aws(project, "logs", "create-log-stream", "--log-group-name", CRAWLERS, "--log-stream-name", crawler)
    code, result = radstream(project, "teardown", "--yes")
    streams = aws(project, "logs", "describe-log-streams", "--log-group-name", CRAWLERS)["logStreams"]
    return {"code": code, "result": result, "groups": lambda_groups(project),
            "crawler_streams": [s["logStreamName"] for s in streams]}


def test_up_creates_the_six_groups_tagged_and_with_the_configured_retention(deployed: dict[str, Any]):
    groups = deployed["after_up"]
    assert sorted(groups) == GROUPS
    for group, tags in groups.values():
        assert group["retentionInDays"] == RETENTION_DAYS
        assert tags == {"radstream:deployment": DEPLOYMENT, "radstream:phase": "0"}


def test_a_study_logs_every_invocation_in_its_functions_group(project: Path, deployed: dict[str, Any]):
    for fn in ("validate-metadata", "prepare-tensors", "invoke-inference", "store-results"):
        lines = messages(project, f"/aws/lambda/{DEPLOYMENT}-{fn}")
        starts = {line.split()[2] for line in lines if line.startswith("START RequestId: ")}
        reports = {line.split()[2] for line in lines if line.startswith("REPORT RequestId: ")}
        assert starts and starts == reports, (fn, lines)
        assert {line.split()[2] for line in lines if line.startswith("END RequestId: ")} == starts


def test_a_group_lambda_made_itself_is_drift_that_up_repairs(project: Path, deployed: dict[str, Any],
                                                               repaired: dict[str, Any]):
    assert "retentionInDays" not in deployed["lambda_made"] and deployed["lambda_made_tags"] == {}  # as Lambda's
    assert repaired["refresh_code"] == 1
    assert {(d["phase"], d["step"]) for d in repaired["drift"]} == {(0, "lambda-log-groups")}
    assert repaired["up"]["mutations"] > 0
    group = repaired["groups"][REPAIRED]
    assert group["retentionInDays"] == RETENTION_DAYS
    assert tags_of(project, group) == {"radstream:deployment": DEPLOYMENT, "radstream:phase": "0"}
    # Repaired in place: the study's logs are still there.
    assert any(line.startswith("REPORT RequestId: ") for line in messages(project, REPAIRED))


def test_teardown_deletes_the_groups_and_only_our_crawler_stream(torn_down: dict[str, Any]):
    assert torn_down["code"] == 0, torn_down["result"]["error"]
    assert torn_down["groups"] == {}
    assert torn_down["crawler_streams"] == ["someone-elses-crawler"]
