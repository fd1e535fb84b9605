"""The EKS cluster as AWS treats it, against in-process moto made to answer like EKS
(tests/unit/conftest.py): zones EKS refuses, instance types a zone lacks, access entries, FAILED
clusters and Kubernetes versions by support status."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from radstream import config
from radstream.aws.eks import (
    ACCESS_CONFIG,
    ClusterFailed,
    access_entry_drift,
    cluster_subnets,
    default_version,
    describe_cluster,
    ensure_access_entry,
    ensure_cluster,
    support_status,
)
from radstream.context import Context
from radstream.errors import ConfigError, RadstreamError
from radstream.phases.p0_foundation import ClusterStep
from radstream.state import State
from tests.support.aws import record_mutations

ACCOUNT, REGION, DEPLOYMENT = "123456789012", "us-east-1", "rs-eks"
TAGS = {"radstream:deployment": DEPLOYMENT, "radstream:phase": "0"}
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{DEPLOYMENT}-eks-cluster-role"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/platform-admins"


@pytest.fixture
def aws():
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def subnet_in(ec2, zone: str) -> str:
    return next(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["AvailabilityZone"] == zone)


def context(tmp_path: Path, monkeypatch, extra: str = "") -> Context:
    """A Context whose caller is a real (moto) IAM user, as on AWS."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="operator")
    key = iam.create_access_key(UserName="operator")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    (tmp_path / "radstream.yaml").write_text(f"target: aws\ndeployment: {DEPLOYMENT}\nregion: {REGION}\n{extra}")
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    ctx = Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "aws"))
    ctx.said = []
    monkeypatch.setattr(ctx, "log", ctx.said.append)
    monkeypatch.setattr(ctx, "warn", ctx.said.append)
    return ctx


# -- 1. subnets ---------------------------------------------------------------------------------------

def two_zones(ec2) -> dict[str, str]:
    """Default-VPC subnets of two zones EKS and t3.medium can use (subnet -> zone)."""
    return cluster_subnets(ec2, [subnet_in(ec2, "us-east-1a"), subnet_in(ec2, "us-east-1b")], "t3.medium")


def test_zones_are_judged_by_id_not_by_name(aws, monkeypatch):
    from moto.ec2.models import ec2_backends

    # In another account us-east-1a may be the zone EKS refuses.
    zones = {z.name: z for z in ec2_backends[ACCOUNT][REGION].describe_availability_zones()}
    monkeypatch.setattr(zones["us-east-1a"], "zone_id", "use1-az3")
    monkeypatch.setattr(zones["us-east-1e"], "zone_id", "use1-az6")
    ec2 = aws("ec2")
    with pytest.raises(RadstreamError, match=r"us-east-1a \(use1-az3\)"):
        cluster_subnets(ec2, [subnet_in(ec2, "us-east-1a"), subnet_in(ec2, "us-east-1b")], "m5.large")
    assert set(cluster_subnets(ec2, [subnet_in(ec2, "us-east-1b"), subnet_in(ec2, "us-east-1c")], "m5.large").values()) \
        == {"us-east-1b", "us-east-1c"}


def test_configured_subnets_in_a_refused_zone_are_refused_by_name(aws):
    ec2 = aws("ec2")
    with pytest.raises(RadstreamError, match=r"us-east-1e \(use1-az3\)"):
        cluster_subnets(ec2, [subnet_in(ec2, "us-east-1a"), subnet_in(ec2, "us-east-1e")], "t3.medium")


def test_an_instance_type_offered_in_one_zone_is_refused_clearly(aws):
    ec2 = aws("ec2")
    with pytest.raises(RadstreamError, match="hpc7g.4xlarge is not offered in us-east-1a"):
        cluster_subnets(ec2, [subnet_in(ec2, "us-east-1a"), subnet_in(ec2, "us-east-1c")], "hpc7g.4xlarge")


def test_create_retries_in_the_zones_eks_names(aws):
    eks, ec2 = aws("eks"), aws("ec2")
    every_subnet = {s["SubnetId"]: s["AvailabilityZone"] for s in ec2.describe_subnets()["Subnets"]}
    assert ensure_cluster(eks, "c1", role_arn=ROLE, tags=TAGS, subnets=every_subnet, version="1.34") is True
    used = describe_cluster(eks, "c1")["resourcesVpcConfig"]["subnetIds"]
    assert subnet_in(ec2, "us-east-1e") not in used
    assert set(used) == set(every_subnet) - {subnet_in(ec2, "us-east-1e")}


# -- 2. access ----------------------------------------------------------------------------------------

def test_created_clusters_use_access_entries_and_admins_converge(aws):
    eks, ec2 = aws("eks"), aws("ec2")
    ensure_cluster(eks, "c1", role_arn=ROLE, tags=TAGS, subnets=two_zones(ec2), version="1.34")
    assert describe_cluster(eks, "c1")["accessConfig"] == ACCESS_CONFIG
    assert access_entry_drift(eks, "c1", ADMIN, ADMIN_POLICY) == ["missing"]
    assert ensure_access_entry(eks, "c1", ADMIN, ADMIN_POLICY, TAGS) is True
    policies = eks.list_associated_access_policies(clusterName="c1", principalArn=ADMIN)["associatedAccessPolicies"]
    assert [(p["policyArn"], p["accessScope"]["type"]) for p in policies] == [(ADMIN_POLICY, "cluster")]
    seen = record_mutations(eks)
    assert ensure_access_entry(eks, "c1", ADMIN, ADMIN_POLICY, TAGS) is False
    assert seen == []

    other = f"arn:aws:iam::{ACCOUNT}:role/viewers"
    eks.create_access_entry(clusterName="c1", principalArn=other)
    assert access_entry_drift(eks, "c1", other, ADMIN_POLICY) == ["policy"]
    ensure_access_entry(eks, "c1", other, ADMIN_POLICY, TAGS)
    assert access_entry_drift(eks, "c1", other, ADMIN_POLICY) == []


def test_admin_principals_must_be_iam_role_or_user_arns(tmp_path):
    (tmp_path / "radstream.yaml").write_text(
        "cluster:\n  admin_principals: ['arn:aws:sts::123456789012:assumed-role/admins/me']\n")
    with pytest.raises(ConfigError, match="cluster.admin_principals"):
        config.load(tmp_path / "radstream.yaml", environ={})


def test_cluster_step_creates_entries_for_admin_principals(aws, tmp_path, monkeypatch):
    ctx = context(tmp_path, monkeypatch, f"cluster:\n  admin_principals: ['{ADMIN}']\n")
    step = ClusterStep()
    assert ("eks access entry", ADMIN, ["missing"]) in step.drifts(ctx)
    step.apply(ctx)
    assert step.check(ctx)
    entries = aws("eks").list_access_entries(clusterName=f"{DEPLOYMENT}-cluster")["accessEntries"]
    assert ADMIN in entries and f"arn:aws:iam::{ACCOUNT}:user/operator" in entries  # the creator, bootstrapped


@pytest.mark.parametrize(("access", "creator_is_operator", "outcome"), [
    (None, False, "aws-auth"),  # the API's default, CONFIG_MAP: not checkable, said
    ({"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}, False, "refused"),
    ({"authenticationMode": "API_AND_CONFIG_MAP"}, True, "reaches cluster"),
])
def test_adopted_clusters_say_what_access_the_operator_needs(aws, tmp_path, monkeypatch, access, creator_is_operator,
                                                             outcome):
    ec2 = aws("ec2")
    request = {"name": f"{DEPLOYMENT}-cluster", "roleArn": ROLE,
               "resourcesVpcConfig": {"subnetIds": list(two_zones(ec2))}}
    if access:
        request["accessConfig"] = access
    if not creator_is_operator:
        aws("eks").create_cluster(**request)
    ctx = context(tmp_path, monkeypatch, "cluster:\n  mode: adopt\n")
    if creator_is_operator:
        ctx.client("eks").create_cluster(**request)
    step = ClusterStep()
    if outcome == "refused":
        with pytest.raises(RadstreamError, match="user/operator has no access entry"):
            step.check(ctx)
        return
    assert step.check(ctx)
    assert any(outcome in said and "user/operator" in said for said in ctx.said)


# -- 3. FAILED ----------------------------------------------------------------------------------------

ISSUE = {"code": "Ec2SubnetNotFound", "message": "The subnet was deleted", "resourceIds": ["subnet-gone"]}


def test_a_failed_cluster_fails_at_once_and_the_next_apply_replaces_it(aws, tmp_path, monkeypatch):
    from moto.eks.models import EKSBackend, eks_backends

    ctx = context(tmp_path, monkeypatch)
    # Only a timeout would end a wait on FAILED: keep it short so that shows as a failure, not a hang.
    wait = ctx.wait
    monkeypatch.setattr(ctx, "wait", lambda what, done, timeout, interval=2.0: wait(what, done, 1.0, 0.1))
    original = EKSBackend.create_cluster

    def create_failing(self, *args, **kwargs):
        cluster = original(self, *args, **kwargs)
        cluster.status, cluster.health = "FAILED", {"issues": [ISSUE]}
        return cluster

    with monkeypatch.context() as failing:
        failing.setattr(EKSBackend, "create_cluster", create_failing)
        with pytest.raises(ClusterFailed, match="Ec2SubnetNotFound: The subnet was deleted \\(subnet-gone\\)"):
            ClusterStep().apply(ctx)

    step, name = ClusterStep(), f"{DEPLOYMENT}-cluster"
    failed_arn_created = eks_backends[ACCOUNT][REGION].clusters[name].created_at
    assert not step.check(ctx)
    assert [c.detail for c in step.plan(ctx) if c.resource == "eks cluster"][0].startswith("replace: FAILED")
    step.apply(ctx)
    assert describe_cluster(ctx.client("eks"), name)["status"] == "ACTIVE"
    assert eks_backends[ACCOUNT][REGION].clusters[name].created_at != failed_arn_created
    assert step.check(ctx)


# -- 4. versions --------------------------------------------------------------------------------------

def test_version_choice_follows_eks_support_status():
    versions = [
        {"clusterVersion": "1.35", "versionStatus": "STANDARD_SUPPORT", "defaultVersion": False},
        {"clusterVersion": "1.34", "versionStatus": "STANDARD_SUPPORT", "defaultVersion": True},
        {"clusterVersion": "1.33", "status": "extended-support"},  # the deprecated field, as once spelled
    ]
    assert default_version(versions) == "1.34"
    versions[1]["versionStatus"] = "EXTENDED_SUPPORT"  # a default past standard support is not taken
    assert default_version(versions) == "1.35"
    assert support_status(versions, "1.33") == "EXTENDED_SUPPORT"
    assert support_status(versions, "1.19") == "UNSUPPORTED"
    with pytest.raises(RadstreamError, match="standard support"):
        default_version(versions[2:])


def test_without_a_version_the_cluster_gets_the_default_in_standard_support(aws, tmp_path, monkeypatch):
    ctx = context(tmp_path, monkeypatch)
    listed = ctx.client("eks").describe_cluster_versions(defaultOnly=True)["clusterVersions"][0]
    step = ClusterStep()
    step.apply(ctx)
    outputs = step.outputs(ctx)
    assert (outputs["cluster_version"], outputs["cluster_support"]) == (listed["clusterVersion"], "STANDARD_SUPPORT")


def test_a_version_past_standard_support_is_warned_about_and_recorded(aws, tmp_path, monkeypatch):
    versions = aws("eks").describe_cluster_versions(versionStatus="EXTENDED_SUPPORT")["clusterVersions"]
    if not versions:
        pytest.skip("no EKS version is in extended support today")
    version = versions[0]["clusterVersion"]
    ctx = context(tmp_path, monkeypatch, f"cluster:\n  version: '{version}'\n")
    step = ClusterStep()
    assert any(f"{version} (EXTENDED_SUPPORT)" in c.detail for c in step.plan(ctx))
    step.apply(ctx)
    assert any("past standard support" in said for said in ctx.said)
    assert step.outputs(ctx)["cluster_support"] == "EXTENDED_SUPPORT"


def test_a_version_eks_no_longer_offers_stops_before_any_change(aws, tmp_path, monkeypatch):
    ctx = context(tmp_path, monkeypatch, "cluster:\n  version: '1.23'\n")
    with pytest.raises(RadstreamError, match="does not offer Kubernetes 1.23"):
        ClusterStep().plan(ctx)
    assert ctx.counter.total == 0
