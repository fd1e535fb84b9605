"""The EKS cluster: adopted when one of that name exists (then never tagged or deleted by us), or
created in the configured subnets / the default VPC's subnets. And its managed nodegroups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radstream.aws import error_code
from radstream.aws.tags import missing
from radstream.errors import RadstreamError
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


# --- nodegroups ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodegroupSpec:
    """What a managed nodegroup should be. Instance type and capacity type cannot change in place."""

    instance_type: str
    capacity_type: str
    min_size: int
    desired_size: int
    max_size: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)  # EKS effects: NO_SCHEDULE, ...
    gpu: bool = False  # picks the AMI with the NVIDIA driver

    @property
    def scaling(self) -> dict[str, int]:
        return {"minSize": self.min_size, "maxSize": self.max_size, "desiredSize": self.desired_size}


def describe_nodegroup(eks: Any, cluster: str, name: str) -> dict[str, Any] | None:
    try:
        return eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def list_nodegroups(eks: Any, cluster: str) -> list[str]:
    """Nodegroup names; none when the cluster does not exist (yet)."""
    if describe_cluster(eks, cluster) is None:
        return []
    names: list[str] = []
    for page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster):
        names.extend(page.get("nodegroups", []))
    return sorted(names)


def _taint_set(taints: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    return {(t["key"], t.get("value", ""), t["effect"]) for t in taints}


def nodegroup_drift(eks: Any, cluster: str, name: str, spec: NodegroupSpec, tags: dict[str, str]) -> list[str]:
    """What differs; "missing" when absent (or being deleted); "replace: ..." for immutable fields."""
    found = describe_nodegroup(eks, cluster, name)
    if found is None or found["status"] == "DELETING":
        return ["missing"]
    drift = []
    if found.get("instanceTypes") != [spec.instance_type]:
        drift.append(f"replace: instance type {found.get('instanceTypes')} -> {spec.instance_type}")
    if found.get("capacityType", "ON_DEMAND") != spec.capacity_type:
        drift.append(f"replace: capacity type {found.get('capacityType')} -> {spec.capacity_type}")
    if found.get("scalingConfig") != spec.scaling:
        drift.append("scaling")
    if (found.get("labels") or {}) != spec.labels:
        drift.append("labels")
    if _taint_set(found.get("taints") or []) != _taint_set(spec.taints):
        drift.append("taints")
    if missing(found.get("tags") or {}, tags):
        drift.append("tags")
    return drift


def ensure_nodegroup(eks: Any, cluster: str, name: str, spec: NodegroupSpec, *, node_role_arn: str,
                     subnet_ids: list[str], tags: dict[str, str]) -> bool:
    """Create the nodegroup or update what can change in place (the caller waits for ACTIVE)."""
    drift = nodegroup_drift(eks, cluster, name, spec, tags)
    if "missing" in drift:
        eks.create_nodegroup(
            clusterName=cluster, nodegroupName=name, nodeRole=node_role_arn, subnets=subnet_ids,
            instanceTypes=[spec.instance_type], capacityType=spec.capacity_type, scalingConfig=spec.scaling,
            labels=spec.labels, taints=spec.taints, tags=tags, amiType="AL2023_x86_64_NVIDIA" if spec.gpu else "AL2023_x86_64_STANDARD",
        )
        return True
    immutable = [d for d in drift if d.startswith("replace:")]
    if immutable:
        raise RadstreamError(
            f"nodegroup {name} cannot be changed in place ({'; '.join(d[9:] for d in immutable)})",
            hint="give nodegroup.name a new value: phase 1 then creates that nodegroup, drains this one and deletes it",
        )
    found = describe_nodegroup(eks, cluster, name)
    update: dict[str, Any] = {}
    if "scaling" in drift:
        update["scalingConfig"] = spec.scaling
    if "labels" in drift:
        current = found.get("labels") or {}
        update["labels"] = {"addOrUpdateLabels": spec.labels,
                            "removeLabels": sorted(set(current) - set(spec.labels))}
    if "taints" in drift:
        wanted = _taint_set(spec.taints)
        update["taints"] = {"addOrUpdateTaints": spec.taints,
                            "removeTaints": [t for t in found.get("taints") or []
                                             if (t["key"], t.get("value", ""), t["effect"]) not in wanted]}
    if update:
        eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name, **update)
    if "tags" in drift:
        eks.tag_resource(resourceArn=found["nodegroupArn"], tags=tags)
    return bool(drift)


def delete_nodegroup(eks: Any, cluster: str, name: str) -> bool:
    """Start deleting the nodegroup; False when it is already gone."""
    found = describe_nodegroup(eks, cluster, name)
    if found is None:
        return False
    if found["status"] != "DELETING":
        try:
            eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
    return True
