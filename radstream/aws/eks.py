"""The EKS cluster: adopted when one of that name exists (then never tagged or deleted by us), or
created in the configured subnets / the default VPC's subnets."""

from __future__ import annotations

from typing import Any

from radstream.aws import error_code
from radstream.aws.tags import missing
from radstream.names import TAG_DEPLOYMENT


def default_vpc_subnets(ec2: Any) -> list[str]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise LookupError("this region has no default VPC: set cluster.subnet_ids in radstream.yaml")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["Subnets"]
    if len({s["AvailabilityZone"] for s in subnets}) < 2:
        raise LookupError("EKS needs subnets in two availability zones: set cluster.subnet_ids in radstream.yaml")
    return sorted(s["SubnetId"] for s in subnets)


def describe_cluster(eks: Any, name: str) -> dict[str, Any] | None:
    try:
        return eks.describe_cluster(name=name)["cluster"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def is_owned(cluster: dict[str, Any], deployment: str) -> bool:
    """Created by this deployment (as opposed to adopted)."""
    return cluster.get("tags", {}).get(TAG_DEPLOYMENT) == deployment


def cluster_drift(eks: Any, name: str, tags: dict[str, str]) -> list[str]:
    cluster = describe_cluster(eks, name)
    if cluster is None or cluster["status"] == "DELETING":
        return ["missing"]
    if not is_owned(cluster, tags[TAG_DEPLOYMENT]):
        return []  # adopted: someone else's cluster, used as it is
    return ["tags"] if missing(cluster.get("tags", {}), tags) else []


def ensure_cluster(eks: Any, name: str, *, role_arn: str, subnet_ids: list[str], version: str,
                   tags: dict[str, str]) -> bool:
    """Start creating the cluster when missing (the caller waits for ACTIVE)."""
    drift = cluster_drift(eks, name, tags)
    if "missing" in drift:
        eks.create_cluster(
            name=name, version=version, roleArn=role_arn, tags=tags,
            resourcesVpcConfig={"subnetIds": subnet_ids, "endpointPublicAccess": True, "endpointPrivateAccess": True},
        )
    elif "tags" in drift:
        eks.tag_resource(resourceArn=describe_cluster(eks, name)["arn"], tags=tags)
    return bool(drift)


def delete_cluster(eks: Any, name: str, deployment: str) -> bool:
    """Start deleting the cluster if this deployment created it; True when a deletion is under way."""
    cluster = describe_cluster(eks, name)
    if cluster is None or not is_owned(cluster, deployment):
        return False
    if cluster["status"] != "DELETING":
        nodegroups = eks.list_nodegroups(clusterName=name)["nodegroups"]
        if nodegroups:
            raise RuntimeError(
                f"cluster {name} still has nodegroups {nodegroups}: destroy phase 1 first (radstream phase destroy 1)"
            )
        try:
            eks.delete_cluster(name=name)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
    return True
