"""Nodes and what they need: the sandbox's judgement of a node role's ECR pull rights on AWS's
add-on registry (real AWS managed policy documents, moto's policy evaluation), the EKS sync's plan
for a nodegroup whose nodes never join or that is replaced under its name, and the nodegroup's
disk size and health issues as phase 1 reads them (moto in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from radstream.aws.eks import NodegroupSpec as EksSpec
from radstream.aws.eks import ensure_nodegroup, health_issues, nodegroup_drift
from radstream.aws.iam import render_document
from radstream.sandbox.cluster import NodegroupSpec, nodegroup_spec, sync_plan
from radstream.sandbox.node_join import addon_repository_arn, missing_pull_rights

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
TAGS = {"radstream:deployment": "t1", "radstream:phase": "1"}


def managed(name: str) -> dict:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)[name]["Document"]


def node_inline_policy() -> dict:
    variables = {"Partition": "aws", "Region": REGION, "Account": "123456789012", "EcrRepository": "t1-triton"}
    return render_document(REPO / "manifests" / "iam" / "eks-nodes.json", variables)


def test_worker_and_cni_policies_with_our_inline_policy_cannot_pull_the_addon_images():
    documents = [managed("AmazonEKSWorkerNodePolicy"), managed("AmazonEKS_CNI_Policy"), node_inline_policy()]
    repository = addon_repository_arn(REGION)
    assert repository == "arn:aws:ecr:us-east-1:602401143452:repository/amazon-k8s-cni"
    # The inline policy scopes the pull to our own repository; the token is allowed on "*".
    assert missing_pull_rights(documents, REGION) == [f"ecr:BatchGetImage on {repository}",
                                                      f"ecr:GetDownloadUrlForLayer on {repository}"]


@pytest.mark.parametrize("policy", ["AmazonEC2ContainerRegistryPullOnly", "AmazonEC2ContainerRegistryReadOnly"])
def test_an_aws_ecr_read_policy_lets_the_nodes_pull(policy: str):
    assert missing_pull_rights([managed("AmazonEKSWorkerNodePolicy"), managed(policy)], REGION) == []


def test_an_explicit_deny_on_aws_registries_wins():
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "ecr:*",
                                                    "Resource": "arn:aws:ecr:*:602401143452:repository/*"}]}
    missing = missing_pull_rights([managed("AmazonEC2ContainerRegistryPullOnly"), deny], REGION)
    assert [m.split(" on ")[0] for m in missing] == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


def test_nodes_that_never_join_are_mirrored_while_eks_waits_and_after_it_gave_up():
    described = {"status": "CREATING", "instanceTypes": ["t3.medium"], "scalingConfig": {"desiredSize": 2},
                 "nodegroupArn": "arn:aws:eks:us-east-1:123456789012:nodegroup/c/n/1"}
    assert nodegroup_spec(described) is None  # joining nodes appear once moto says ACTIVE
    creating = nodegroup_spec(described, joins=False)
    assert creating is not None and creating.size == 2 and not creating.joins
    assert nodegroup_spec({**described, "status": "CREATE_FAILED"}, joins=False) == creating
    assert nodegroup_spec({**described, "status": "DELETING"}, joins=False) is None


def test_a_nodegroup_replaced_under_its_name_gets_new_nodes():
    failed = NodegroupSpec("t3.medium", 1, joins=False, arn="arn:1")
    again = NodegroupSpec("t3.medium", 1, arn="arn:2")
    assert sync_plan({"cpu-ng": failed}, {"cpu-ng": again}) == [("remove", "cpu-ng", None), ("add", "cpu-ng", again)]
    assert sync_plan({"cpu-ng": again}, {"cpu-ng": again}) == []


def test_health_issues_name_code_message_and_instances():
    nodegroup = {"health": {"issues": [{"code": "NodeCreationFailure", "resourceIds": ["i-1", "i-2"],
                                        "message": "Instances failed to join the kubernetes cluster"}]}}
    assert health_issues(nodegroup) == \
        "NodeCreationFailure: Instances failed to join the kubernetes cluster (i-1, i-2)"
    assert health_issues({"health": {"issues": []}}) == "EKS reports no health issue"


def test_disk_size_is_set_at_creation_and_a_change_is_a_replacement():
    with mock_aws():
        eks = boto3.client("eks", region_name=REGION)
        eks.create_cluster(name="c", roleArn="arn:aws:iam::123456789012:role/eks",
                           resourcesVpcConfig={"subnetIds": ["subnet-1"]})
        spec = EksSpec("t3.medium", "ON_DEMAND", 1, 1, 2, disk_gib=100)
        ensure_nodegroup(eks, "c", "cpu-ng", spec, node_role_arn="arn:aws:iam::123456789012:role/nodes",
                         subnet_ids=["subnet-1"], tags=TAGS)
        assert eks.describe_nodegroup(clusterName="c", nodegroupName="cpu-ng")["nodegroup"]["diskSize"] == 100
        assert nodegroup_drift(eks, "c", "cpu-ng", spec, TAGS) == []
        assert nodegroup_drift(eks, "c", "cpu-ng", EksSpec("t3.medium", "ON_DEMAND", 1, 1, 2), TAGS) == \
            ["replace: disk size 100 GiB -> 20 GiB"]
