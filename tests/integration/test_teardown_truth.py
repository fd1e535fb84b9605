"""Teardown through the real CLI on a real sandbox whose tagging API, like AWS's, keeps listing
deleted resources for a while: no phantom leftover after a teardown, a real one reported; a
teardown after a partial `up` (no cluster ever made); and a parked nodegroup not scaled back up
before it is deleted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_env
from tests.integration.sandbox_fixtures import sandbox_project

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-truth"
TAG = {"Key": "radstream:deployment", "Value": DEPLOYMENT}
LAG_S = "600"  # longer than any test here: every deleted resource stays listed throughout


def radstream(project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", *args, "--json"], cwd=project, env=cli_env(),
                          check=False, capture_output=True, text=True, timeout=900)
    assert proc.stdout.count("\n") == 1, f"--json must print exactly one line:\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def aws(project: Path, service: str) -> Any:
    import boto3

    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def tagged_arns(project: Path) -> set[str]:
    pages = aws(project, "resourcegroupstaggingapi").get_paginator("get_resources").paginate(
        TagFilters=[{"Key": TAG["Key"], "Values": [DEPLOYMENT]}])
    return {item["ResourceARN"] for page in pages for item in page["ResourceTagMappingList"]}


def project_with(root: Path, config_yaml: str) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RADSTREAM_SANDBOX_TAGGING_LAG_SECONDS", LAG_S)  # read by the daemon sandbox_project starts
        with sandbox_project(root, config_yaml) as project:
            env.undo()
            yield project


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Phase 0 stops at its last step, the cluster (a Kubernetes version EKS no longer offers, refused
    only when the cluster is about to be made): no cluster ever, the network and the rest made."""
    config = f"target: sandbox\ndeployment: {DEPLOYMENT}\ncluster:\n  version: '1.10'\n"
    yield from project_with(tmp_path_factory.mktemp("partial"), config)


@pytest.fixture(scope="module")
def partial_teardown(partial: Path) -> dict[str, Any]:
    code, run = radstream(partial, "phase", "run", "0", "--yes")
    assert code == 1 and run["phases"][0]["status"] == "failed", run
    assert "Kubernetes 1.10" in json.dumps(run), run  # failed where meant to, at the cluster
    assert aws(partial, "eks").list_clusters()["clusters"] == []
    deployed = tagged_arns(partial)
    code, result = radstream(partial, "teardown", "--yes")
    return {"code": code, "result": result, "deployed": deployed, "after": tagged_arns(partial)}


def test_teardown_after_a_partial_up_succeeds_without_a_cluster(partial_teardown: dict[str, Any]):
    result = partial_teardown["result"]
    assert partial_teardown["code"] == 0, result["error"]
    assert result["ok"] and result["leftovers"] == []
    cluster_phases = [p for p in result["phases"] if p["number"] in (1, 2, 3)]
    assert [(p["number"], p["status"], p["mutations"]) for p in cluster_phases] == [
        (3, "destroyed", 0), (2, "destroyed", 0), (1, "destroyed", 0)]


def test_deleted_resources_still_listed_by_the_tagging_api_are_no_leftovers(partial_teardown: dict[str, Any]):
    # The lag is real: the tagging API still answers what teardown deleted, log groups, Athena and all.
    still_listed = partial_teardown["after"]
    assert still_listed and still_listed <= partial_teardown["deployed"]
    assert {arn.split(":")[2] for arn in still_listed} >= {"logs", "athena", "s3", "lambda"}
    assert partial_teardown["result"]["leftovers"] == []


def test_a_real_leftover_is_reported(partial: Path, partial_teardown: dict[str, Any]):
    logs, ec2 = aws(partial, "logs"), aws(partial, "ec2")
    logs.create_log_group(logGroupName=f"/radstream/{DEPLOYMENT}/forgotten", tags={TAG["Key"]: TAG["Value"]})
    group = ec2.create_security_group(GroupName=f"{DEPLOYMENT}-forgotten", Description="left behind",
                                      TagSpecifications=[{"ResourceType": "security-group", "Tags": [TAG]}])["GroupId"]
    code, result = radstream(partial, "teardown", "--yes")
    assert code == 1 and not result["ok"]
    reported = {(r["service"], r["arn"].rpartition(":")[2].rpartition("/")[2]) for r in result["leftovers"]}
    assert reported == {("logs", "forgotten"), ("ec2", group)}, result["leftovers"]


@pytest.fixture(scope="module")
def parked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from project_with(tmp_path_factory.mktemp("parked"), f"target: sandbox\ndeployment: {DEPLOYMENT}-p\n")


def test_teardown_does_not_scale_a_parked_nodegroup_back_up(parked: Path):
    for phase in ("0", "1", "7"):
        code, run = radstream(parked, "phase", "run", phase, "--yes")
        assert code == 0, run["error"]
    scaling = aws(parked, "eks").describe_nodegroup(clusterName=f"{DEPLOYMENT}-p-cluster",
                                                    nodegroupName="cpu-ng")["nodegroup"]["scalingConfig"]
    assert (scaling["minSize"], scaling["desiredSize"]) == (0, 0)
    code, result = radstream(parked, "teardown", "--yes")
    assert code == 0, result["error"]
    cleanup = next(p for p in result["phases"] if p["number"] == 7)
    assert (cleanup["status"], cleanup["mutations"]) == ("destroyed", 0)  # no UpdateNodegroupConfig
    assert result["leftovers"] == []
