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
    return cluster_subnets(ec2, [], "t3.medium")


def test_default_vpc_subnets_span_two_zones(clients):
    _, ec2 = clients
    subnets = list(default_vpc_subnets(ec2))
    zones = {s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"]}
    assert len(zones) >= 2


def test_no_default_vpc_asks_for_subnets(clients):
    _, ec2 = clients
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]:
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        for igw in ec2.describe_internet_gateways(
                Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])["InternetGateways"]:
            ec2.detach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc["VpcId"])
        ec2.delete_vpc(VpcId=vpc["VpcId"])
    with pytest.raises(RadstreamError, match="subnet_ids"):
        default_vpc_subnets(ec2)


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
