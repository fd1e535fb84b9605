"""The sandbox's EKS over real HTTP answers as EKS does: the zones it refuses, accessConfig, access
entries (principal ARNs with paths in the URL), and DescribeClusterVersions by today's date."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.integration.sandbox_fixtures import ACCOUNT, client, sandbox  # noqa: F401

ROLE = f"arn:aws:iam::{ACCOUNT}:role/parity-eks"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def subnets_by_zone_id(sandbox) -> dict[str, str]:  # noqa: F811
    ec2 = client(sandbox, "ec2")
    zone_ids = {z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    return {zone_ids[s["AvailabilityZone"]]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}


def test_create_cluster_refuses_a_zone_eks_does_not_support_and_names_those_that_work(sandbox):  # noqa: F811
    eks, subnets = client(sandbox, "eks"), subnets_by_zone_id(sandbox)
    with pytest.raises(eks.exceptions.UnsupportedAvailabilityZoneException) as caught:
        eks.create_cluster(name="parity-zones", roleArn=ROLE,
                           resourcesVpcConfig={"subnetIds": [subnets["use1-az6"], subnets["use1-az3"]]})
    error = caught.value.response
    assert "the targeted availability zone, does not currently have sufficient capacity" in error["Error"]["Message"]
    assert error["clusterName"] == "parity-zones"
    assert "us-east-1e" not in error["validZones"] and "us-east-1a" in error["validZones"]
    assert ", ".join(error["validZones"]) in error["Error"]["Message"]


def test_access_config_and_access_entries_have_eks_shapes(sandbox):  # noqa: F811
    eks, subnets = client(sandbox, "eks"), subnets_by_zone_id(sandbox)
    vpc = {"subnetIds": [subnets["use1-az6"], subnets["use1-az1"]]}
    eks.create_cluster(name="parity-access", roleArn=ROLE, resourcesVpcConfig=vpc,
                       accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})
    cluster = eks.describe_cluster(name="parity-access")["cluster"]
    assert cluster["accessConfig"] == {"authenticationMode": "API_AND_CONFIG_MAP",
                                       "bootstrapClusterCreatorAdminPermissions": True}
    assert cluster["health"] == {"issues": []}
    creator = eks.list_access_entries(clusterName="parity-access")["accessEntries"]
    assert len(creator) == 1  # the creator's entry, as bootstrapClusterCreatorAdminPermissions makes it

    principal = f"arn:aws:iam::{ACCOUNT}:role/team/platform/admins"  # a path: slashes in the URL
    entry = eks.create_access_entry(clusterName="parity-access", principalArn=principal)["accessEntry"]
    assert entry["principalArn"] == principal and entry["type"] == "STANDARD"
    assert entry["accessEntryArn"].startswith(f"arn:aws:eks:us-east-1:{ACCOUNT}:access-entry/parity-access/role/")
    with pytest.raises(eks.exceptions.ResourceInUseException):
        eks.create_access_entry(clusterName="parity-access", principalArn=principal)
    associated = eks.associate_access_policy(clusterName="parity-access", principalArn=principal,
                                             policyArn=ADMIN_POLICY, accessScope={"type": "cluster"})
    assert associated["associatedAccessPolicy"]["policyArn"] == ADMIN_POLICY
    listed = eks.list_associated_access_policies(clusterName="parity-access", principalArn=principal)
    assert [p["accessScope"]["type"] for p in listed["associatedAccessPolicies"]] == ["cluster"]
    assert eks.describe_access_entry(clusterName="parity-access", principalArn=principal)["accessEntry"][
        "principalArn"] == principal
    assert principal in eks.list_access_entries(clusterName="parity-access",
                                                associatedPolicyArn=ADMIN_POLICY)["accessEntries"]
    eks.delete_access_entry(clusterName="parity-access", principalArn=principal)
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        eks.describe_access_entry(clusterName="parity-access", principalArn=principal)

    eks.create_cluster(name="parity-configmap", roleArn=ROLE, resourcesVpcConfig=vpc)
    assert eks.describe_cluster(name="parity-configmap")["cluster"]["accessConfig"]["authenticationMode"] == \
        "CONFIG_MAP"  # the API's default
    with pytest.raises(eks.exceptions.InvalidRequestException, match="authentication mode must be set"):
        eks.create_access_entry(clusterName="parity-configmap", principalArn=principal)


def test_cluster_versions_carry_their_support_status_on_today(sandbox):  # noqa: F811
    eks, today = client(sandbox, "eks"), datetime.now(timezone.utc)
    everything = eks.describe_cluster_versions(includeAll=True)["clusterVersions"]
    for version in everything:
        expected = ("STANDARD_SUPPORT" if today < version["endOfStandardSupportDate"] else
                    "EXTENDED_SUPPORT" if today < version["endOfExtendedSupportDate"] else "UNSUPPORTED")
        assert version["versionStatus"] == expected, version["clusterVersion"]
    offered = eks.describe_cluster_versions()["clusterVersions"]
    assert {v["versionStatus"] for v in offered} <= {"STANDARD_SUPPORT", "EXTENDED_SUPPORT"}
    [default] = eks.describe_cluster_versions(defaultOnly=True)["clusterVersions"]
    assert default["defaultVersion"] and default["versionStatus"] == "STANDARD_SUPPORT"
    eks.create_cluster(name="parity-version", roleArn=ROLE,
                       resourcesVpcConfig={"subnetIds": [subnets_by_zone_id(sandbox)["use1-az6"]]})
    assert eks.describe_cluster(name="parity-version")["cluster"]["version"] == default["clusterVersion"]
