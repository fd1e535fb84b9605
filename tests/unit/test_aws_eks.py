import json

import boto3
import pytest
from moto import mock_aws

from radstream.aws.eks import (
    cluster_drift,
    cluster_subnets,
    delete_cluster,
    describe_cluster,
    ensure_cluster,
    is_owned,
)
from radstream.errors import RadstreamError
from tests.support.aws import record_mutations

TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
ROLE = "arn:aws:iam::123456789012:role/t1-eks-cluster-role"


@pytest.fixture
def clients():
    with mock_aws():
        yield boto3.client("eks", region_name="us-east-1"), boto3.client("ec2", region_name="us-east-1")


def default_vpc_subnets(ec2) -> dict[str, str]:
    """Subnets of two zones EKS and t3.medium can use (the cluster's own network in production)."""
    zones = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    return cluster_subnets(ec2, [zones["us-east-1a"], zones["us-east-1b"]], "t3.medium")


def test_subnets_of_one_zone_are_refused(clients):
    _, ec2 = clients
    one = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == "us-east-1a"]
    with pytest.raises(RadstreamError, match="two availability zones.*span 1"):
        cluster_subnets(ec2, one, "t3.medium")


def test_create_no_op_retag_delete(clients):
    eks, ec2 = clients
    args = dict(role_arn=ROLE, subnets=default_vpc_subnets(ec2), version="1.32", tags=TAGS)
    assert cluster_drift(eks, "t1-cluster", TAGS) == ["missing"]
    assert ensure_cluster(eks, "t1-cluster", **args) is True
    cluster = describe_cluster(eks, "t1-cluster")
    assert is_owned(cluster, "t1") and cluster["version"] == "1.32"

    seen = record_mutations(eks)
    assert ensure_cluster(eks, "t1-cluster", **args) is False
    assert seen == []

    eks.untag_resource(resourceArn=cluster["arn"], tagKeys=["radstream:phase"])
    assert cluster_drift(eks, "t1-cluster", TAGS) == ["tags"]
    ensure_cluster(eks, "t1-cluster", **args)
    assert cluster_drift(eks, "t1-cluster", TAGS) == []

    assert delete_cluster(eks, "t1-cluster", "t1") is True
    assert describe_cluster(eks, "t1-cluster") is None
    assert delete_cluster(eks, "t1-cluster", "t1") is False


def test_existing_cluster_is_adopted_never_tagged_or_deleted(clients):
    eks, ec2 = clients
    subnets = default_vpc_subnets(ec2)
    eks.create_cluster(name="team-cluster", roleArn=ROLE, resourcesVpcConfig={"subnetIds": list(subnets)})
    seen = record_mutations(eks)
    assert cluster_drift(eks, "team-cluster", TAGS) == []
    assert ensure_cluster(eks, "team-cluster", role_arn=ROLE, subnets=subnets, version="1.32", tags=TAGS) is False
    assert delete_cluster(eks, "team-cluster", "t1") is False
    assert seen == []
    assert describe_cluster(eks, "team-cluster") is not None


def test_delete_refuses_while_nodegroups_remain(clients):
    eks, ec2 = clients
    subnets = default_vpc_subnets(ec2)
    ensure_cluster(eks, "t1-cluster", role_arn=ROLE, subnets=subnets, version="1.32", tags=TAGS)
    eks.create_nodegroup(clusterName="t1-cluster", nodegroupName="ng", subnets=list(subnets),
                         nodeRole="arn:aws:iam::123456789012:role/t1-eks-nodes-role")
    with pytest.raises(RuntimeError, match="phase destroy 1"):
        delete_cluster(eks, "t1-cluster", "t1")
    assert json.dumps(describe_cluster(eks, "t1-cluster")["tags"]) == json.dumps(TAGS)
