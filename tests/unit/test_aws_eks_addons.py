"""The EKS add-on helpers against moto with the sandbox's add-on API (radstream.sandbox.eks_addons,
installed by conftest): the default version for the cluster's Kubernetes, one create however often
asked, CREATING reported as drift until the sync calls it ACTIVE, a DEGRADED add-on's health issue
named, and a quiet delete of what is gone."""

import boto3
import pytest
from moto import mock_aws

from radstream.aws import eks_addons
from radstream.sandbox.eks_addons import judge, moto_addon

REGION, ACCOUNT, CLUSTER = "us-east-1", "123456789012", "rs-add-cluster"


@pytest.fixture
def eks():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
                   for i, z in enumerate("ab")]
        client = boto3.client("eks", region_name=REGION)
        client.create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/rs-add-eks-cluster-role",
                              resourcesVpcConfig={"subnetIds": subnets})
        yield client


def test_the_default_version_is_the_one_eks_marks_for_the_cluster_s_kubernetes(eks):
    version = eks.describe_cluster(name=CLUSTER)["cluster"]["version"]
    assert eks_addons.default_version(eks, eks_addons.METRICS_SERVER, version).endswith("-eksbuild.1")
    with pytest.raises(Exception, match="no metrics-server add-on for Kubernetes 0.1"):
        eks_addons.default_version(eks, eks_addons.METRICS_SERVER, "0.1")


def test_an_add_on_is_created_once_and_is_drift_until_active(eks):
    version = eks_addons.default_version(eks, eks_addons.METRICS_SERVER, eks.describe_cluster(name=CLUSTER)["cluster"]["version"])
    assert eks_addons.addon_drift(eks, CLUSTER, eks_addons.METRICS_SERVER) == ["missing"]
    for _ in range(2):  # the second create meets ResourceInUseException and is quiet
        eks_addons.create_addon(eks, CLUSTER, eks_addons.METRICS_SERVER, version, {"radstream:deployment": "rs-add"})
    assert eks.list_addons(clusterName=CLUSTER)["addons"] == [eks_addons.METRICS_SERVER]
    assert eks_addons.addon_drift(eks, CLUSTER, eks_addons.METRICS_SERVER) == ["status CREATING"]
    assert not eks_addons.addon_settled(eks, CLUSTER, eks_addons.METRICS_SERVER)
    record = moto_addon(REGION, ACCOUNT, CLUSTER, eks_addons.METRICS_SERVER)
    judge(record, ready=True)
    assert eks_addons.addon_drift(eks, CLUSTER, eks_addons.METRICS_SERVER) == []
    assert eks_addons.addon_settled(eks, CLUSTER, eks_addons.METRICS_SERVER)
    judge(record, ready=False)  # its pods went (no nodes): DEGRADED, with EKS's health issue
    assert eks_addons.addon_drift(eks, CLUSTER, eks_addons.METRICS_SERVER) == [
        "status DEGRADED (InsufficientNumberOfReplicas: The add-on is unhealthy because it doesn't have the desired number of replicas.)"]


def test_an_unknown_add_on_or_version_is_refused_as_eks_does(eks):
    with pytest.raises(eks.exceptions.InvalidParameterException):
        eks.create_addon(clusterName=CLUSTER, addonName="no-such-addon")
    with pytest.raises(eks.exceptions.InvalidParameterException):
        eks.create_addon(clusterName=CLUSTER, addonName=eks_addons.METRICS_SERVER, addonVersion="v0.0.1-eksbuild.9")


def test_delete_is_quiet_once_gone(eks):
    eks_addons.create_addon(eks, CLUSTER, eks_addons.CONTAINER_INSIGHTS, "v2.6.0-eksbuild.1", {})
    assert eks_addons.delete_addon(eks, CLUSTER, eks_addons.CONTAINER_INSIGHTS) is True
    assert eks_addons.describe_addon(eks, CLUSTER, eks_addons.CONTAINER_INSIGHTS) is None
    assert eks_addons.delete_addon(eks, CLUSTER, eks_addons.CONTAINER_INSIGHTS) is False
