"""RadStream touches nothing that is not its own, through the real CLI against a real sandbox.

Someone else made the EKS cluster beforehand (plain boto3, no radstream tags) with a nodegroup
"theirs" of two nodes and a Deployment of their own pinned to them. `cluster.mode: create` with
that cluster's name is refused before any change (exit 2); adopted, `up` leaves "theirs" as it
was (scaling, ACTIVE, schedulable nodes, the same pods, never evicted), and so do `phase destroy 1`
and `teardown`, whose leftovers do not list it. A nodegroup of someone else's named like the
target is refused by `phase run 1` and survives `phase destroy 1`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radstream import config
from radstream.context import Context
from radstream.state import State
from tests.conftest import CliResult, cli_env
from tests.integration.sandbox_fixtures import ACCOUNT, REGION, sandbox_project, wait_for

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-foreign"
CLUSTER = f"{DEPLOYMENT}-cluster"
THEIRS = "theirs"
NAMESPACE = "platform"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
SCALING = {"minSize": 1, "maxSize": 3, "desiredSize": 2}
THEIR_TAGS = {"team": "platform"}
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform-nodes"


def aws(project: Path, service: str) -> Any:
    """Someone else's plain boto3 client (not the operator's Context)."""
    import boto3

    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def kube(project: Path) -> Any:
    """A kubernetes ApiClient authenticated the EKS way against the sandbox's API emulator."""
    from radstream.kube.apply import kube_api

    loaded = config.load(project / "radstream.yaml", environ={})
    return kube_api(Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "sandbox")))


def cli(project: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", *args, "--json"], cwd=project, env=cli_env(env),
                          capture_output=True, text=True, timeout=900)
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    assert result.stdout.count("\n") == 1, f"--json must print exactly one line:\n{result.stdout}\n{result.stderr}"
    return result


def nodegroup(project: Path, name: str = THEIRS) -> dict[str, Any] | None:
    eks = aws(project, "eks")
    try:
        return eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"]
    except eks.exceptions.ResourceNotFoundException:
        return None


def their_nodes(project: Path) -> list[Any]:
    from kubernetes import client as k8s

    return k8s.CoreV1Api(kube(project)).list_node(label_selector=f"{NODEGROUP_LABEL}={THEIRS}").items


def their_pods(project: Path) -> dict[str, tuple[str, int]]:
    """Pod UID -> (node, restarts) of their Deployment's running pods."""
    from kubernetes import client as k8s

    pods = k8s.CoreV1Api(kube(project)).list_namespaced_pod(NAMESPACE, label_selector="app=their-app").items
    return {p.metadata.uid: (p.spec.node_name, sum(c.restart_count for c in p.status.container_statuses or []))
            for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None}


def untouched(project: Path, pods: dict[str, tuple[str, int]]) -> None:
    found = nodegroup(project)
    assert found is not None and found["status"] == "ACTIVE"
    assert found["scalingConfig"] == SCALING and found["tags"] == THEIR_TAGS
    nodes = their_nodes(project)
    assert len(nodes) == SCALING["desiredSize"]
    assert not any(n.spec.unschedulable for n in nodes)  # never cordoned
    assert their_pods(project) == pods  # the same pods on the same nodes, none restarted or evicted


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    config_yaml = (f"target: sandbox\ndeployment: {DEPLOYMENT}\ncluster:\n  mode: adopt\n"
                   "nodegroup:\n  drain_timeout_seconds: 60\ntriton:\n  rollout_timeout_seconds: 120\n")
    with sandbox_project(tmp_path_factory.mktemp("foreign"), config_yaml) as root:
        yield root


@pytest.fixture(scope="module")
def foreign(project: Path) -> dict[str, tuple[str, int]]:
    """Their cluster, nodegroup and Deployment; returns their running pods."""
    from kubernetes import client as k8s

    # Theirs, in the default VPC, in two zones EKS and t3.medium take.
    default = aws(project, "ec2").describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    by_zone = {s["AvailabilityZone"]: s["SubnetId"] for s in default}
    subnets = [by_zone["us-east-1a"], by_zone["us-east-1b"]]
    eks = aws(project, "eks")
    eks.create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/platform-eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName=THEIRS, nodeRole=NODE_ROLE,
                         subnets=subnets, instanceTypes=["t3.medium"], scalingConfig=SCALING, tags=THEIR_TAGS)
    wait_for(lambda: len(their_nodes(project)) == SCALING["desiredSize"], timeout=60, what="their nodes")
    api = kube(project)
    k8s.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    labels = {"app": "their-app"}
    k8s.AppsV1Api(api).create_namespaced_deployment(NAMESPACE, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "their-app"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"nodeSelector": {NODEGROUP_LABEL: THEIRS},
                     "containers": [{"name": "app", "image": "registry.example/their-app:1"}]}}}})
    pods = wait_for(lambda: (found := their_pods(project)) and len(found) == 2 and found, timeout=60,
                    what="their pods running")
    assert {node for node, _ in pods.values()} <= {n.metadata.name for n in their_nodes(project)}
    return pods


@pytest.fixture(scope="module")
def refused_create(project: Path, foreign: dict[str, tuple[str, int]]) -> dict[str, CliResult]:
    create = {"RADSTREAM_CLUSTER__MODE": "create"}
    return {"plan": cli(project, "plan", env=create), "up": cli(project, "up", "--yes", env=create)}


@pytest.fixture(scope="module")
def adopted(project: Path, foreign: dict[str, tuple[str, int]], refused_create: dict[str, CliResult]
            ) -> dict[str, CliResult]:
    plan = cli(project, "plan", "1")
    up = cli(project, "up", "--yes")
    assert up.code == 0, up.json["error"]
    return {"plan": plan, "up": up}


@pytest.fixture(scope="module")
def destroyed_1(project: Path, adopted: dict[str, CliResult]) -> CliResult:
    result = cli(project, "phase", "destroy", "1", "--yes")
    assert result.code == 0, result.json["error"]
    return result


@pytest.fixture(scope="module")
def torn_down(project: Path, destroyed_1: CliResult) -> CliResult:
    return cli(project, "teardown", "--yes")


def test_create_mode_refuses_a_same_named_cluster_that_is_not_ours_before_any_change(
        project: Path, refused_create: dict[str, CliResult], foreign: dict[str, tuple[str, int]]):
    for command, result in refused_create.items():
        assert result.code == 2, (command, result.stdout)
        error = result.json["error"]
        assert result.json["ok"] is False and CLUSTER in error, error
        assert "cluster.mode: adopt" in error and "cluster.name" in error, error
    # Nothing was created: no bucket, role or stream of the deployment, no nodegroup, no phase run.
    assert not [b for b in aws(project, "s3").list_buckets()["Buckets"] if b["Name"].startswith(DEPLOYMENT)]
    assert not [r for r in aws(project, "iam").list_roles()["Roles"] if r["RoleName"].startswith(DEPLOYMENT)]
    assert aws(project, "kinesis").list_streams()["StreamNames"] == []
    assert aws(project, "eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == [THEIRS]
    state = project / ".radstream" / "state.json"
    assert not state.exists() or not json.loads(state.read_text()).get("phases")
    untouched(project, foreign)


def test_plan_keeps_their_nodegroup_and_says_how_to_replace_it(adopted: dict[str, CliResult]):
    changes = adopted["plan"].json["phases"][0]["changes"]
    keep = [c for c in changes if c["name"] == THEIRS]
    assert [c["action"] for c in keep] == ["keep"]
    assert "not this deployment's" in keep[0]["detail"] and "nodegroup.replace" in keep[0]["detail"]
    assert not any(c["action"] in ("delete", "replace") for c in changes)


def test_up_in_an_adopted_cluster_leaves_their_nodegroup_nodes_and_pods_alone(
        project: Path, adopted: dict[str, CliResult], foreign: dict[str, tuple[str, int]]):
    phase1 = next(p for p in adopted["up"].json["phases"] if p["number"] == 1)
    assert phase1["status"] == "done" and not phase1["outputs"].get("replaced_nodegroups")
    assert aws(project, "eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == ["cpu-ng", THEIRS]
    untouched(project, foreign)


def test_phase_destroy_1_deletes_only_our_nodegroup(project: Path, destroyed_1: CliResult,
                                                    foreign: dict[str, tuple[str, int]]):
    wait_for(lambda: nodegroup(project, "cpu-ng") is None, timeout=60, what="cpu-ng deleted")
    untouched(project, foreign)


def test_teardown_keeps_their_cluster_and_nodegroup_and_lists_no_leftovers(
        project: Path, torn_down: CliResult, foreign: dict[str, tuple[str, int]]):
    assert torn_down.code == 0, torn_down.json["error"]
    assert torn_down.json["ok"] and torn_down.json["leftovers"] == []
    assert aws(project, "eks").describe_cluster(name=CLUSTER)["cluster"]["status"] == "ACTIVE"
    untouched(project, foreign)


def test_their_nodegroup_named_like_ours_is_refused_and_never_deleted(project: Path, torn_down: CliResult):
    eks = aws(project, "eks")
    subnets = eks.describe_cluster(name=CLUSTER)["cluster"]["resourcesVpcConfig"]["subnetIds"]
    arn = eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng", nodeRole=NODE_ROLE,
                               subnets=subnets, instanceTypes=["t3.medium"], diskSize=100, scalingConfig=SCALING,
                               tags=THEIR_TAGS)["nodegroup"]["nodegroupArn"]  # like ours bar scaling and tags
    run = cli(project, "phase", "run", "1", "--yes")
    assert run.code == 2, run.stdout
    assert "nodegroup cpu-ng" in run.json["error"] and "nodegroup.name" in run.json["error"]
    destroy = cli(project, "phase", "destroy", "1", "--yes")
    assert destroy.code == 0, destroy.json["error"]
    found = nodegroup(project, "cpu-ng")
    assert found is not None and found["status"] == "ACTIVE" and found["nodegroupArn"] == arn
    assert found["scalingConfig"] == SCALING and found["tags"] == THEIR_TAGS
