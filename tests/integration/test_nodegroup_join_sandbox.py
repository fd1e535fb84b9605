"""Phase 1 against a node role that cannot pull AWS's add-on images, through a real sandbox daemon.

On AWS such nodes never turn Ready and the managed nodegroup ends CREATE_FAILED with the health issue
NodeCreationFailure; the sandbox behaves the same. Phase 1 must fail at once with what EKS reports
(not wait out its 30 minute timeout), and once the role is fixed the next run replaces the failed
nodegroup (delete, then create) and its new nodes turn Ready."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.kube.apply import kube_api, list_objects
from radstream.kube.manifests import NODEGROUP_LABEL
from radstream.phases.p1_nodegroup import NodegroupPhase
from radstream.state import State
from tests.integration.sandbox_fixtures import sandbox_project

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-join"
CLUSTER = f"{DEPLOYMENT}-cluster"
MANAGED = "arn:aws:iam::aws:policy/"
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def make_ctx(project: Path) -> Context:
    loaded = config.load(project / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "sandbox"))


def ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with sandbox_project(tmp_path_factory.mktemp("node-join"),
                         f"target: sandbox\ndeployment: {DEPLOYMENT}\n") as root:
        ctx = make_ctx(root)
        iam, role = ctx.client("iam"), ctx.names.role("eks-nodes")
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
        # What the node role had before: no ECR read on AWS's registries.
        for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy"):
            iam.attach_role_policy(RoleName=role, PolicyArn=MANAGED + policy)
        ctx.client("eks").create_cluster(name=CLUSTER, roleArn="arn:aws:iam::123456789012:role/eks",
                                         resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]})
        yield root


def test_nodes_that_cannot_pull_the_addon_images_fail_phase1_at_once_and_a_rerun_replaces_them(project: Path):
    ctx = make_ctx(project)
    failed = Engine(ctx, [NodegroupPhase()]).run([1])
    phase = failed.phases[0]
    print(f"\nphase 1 failed after {phase.seconds:.1f}s: {phase.error}")
    assert phase.status == "failed"
    assert "nodegroup cpu-ng is CREATE_FAILED: NodeCreationFailure: Instances failed to join the kubernetes cluster (i-" \
        in phase.error
    eks = ctx.client("eks")
    first = eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng")["nodegroup"]
    assert first["status"] == "CREATE_FAILED"
    nodes = list_objects(kube_api(ctx), "Node", labels={NODEGROUP_LABEL: "cpu-ng"})
    assert nodes and not any(ready(n) for n in nodes)
    assert "cni plugin not initialized" in nodes[0]["status"]["conditions"][0]["message"]
    instances = {n["spec"]["providerID"].rpartition("/")[2] for n in nodes}
    assert set(first["health"]["issues"][0]["resourceIds"]) == instances

    plan = Engine(make_ctx(project), [NodegroupPhase()]).plan([1]).phases[0]
    assert [(c["action"], c["name"]) for c in plan.changes] == [
        ("replace", "cpu-ng"), ("create", "metrics-server"), ("create", "amazon-cloudwatch-observability")]
    assert "CREATE_FAILED, NodeCreationFailure" in plan.changes[0]["detail"]

    ctx.client("iam").attach_role_policy(RoleName=ctx.names.role("eks-nodes"),
                                         PolicyArn=MANAGED + "AmazonEC2ContainerRegistryPullOnly")
    ctx = make_ctx(project)
    again = Engine(ctx, [NodegroupPhase()]).run([1])
    assert again.ok, again.error
    second = eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng")["nodegroup"]
    assert second["status"] == "ACTIVE" and second["nodegroupArn"] != first["nodegroupArn"]
    nodes = list_objects(kube_api(ctx), "Node", labels={NODEGROUP_LABEL: "cpu-ng"})
    assert len(nodes) == 1 and ready(nodes[0])
    assert nodes[0]["spec"]["providerID"].rpartition("/")[2] not in instances
