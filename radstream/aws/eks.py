"""The EKS cluster: adopted when one of that name exists (then never tagged or deleted by us), or
created in the deployment's private subnets (or those network.subnet_ids names), refused when EKS
or the node instance type cannot use one of their zones, at a version EKS supports, with access entries for its admins; replaced when it FAILED.
And its managed nodegroups."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from radstream.aws import error_code, unless_absent
from radstream.aws.tags import missing
from radstream.errors import ConfigError, RadstreamError
from radstream.names import TAG_DEPLOYMENT


def _create(create: Any, **request: Any) -> Any:
    # The cluster and node roles are created moments before, in phase 0: EKS refuses them until IAM catches up.
    from radstream.aws.propagation import retry_while_role_propagates

    return retry_while_role_propagates(lambda: create(**request))


# Zone IDs where EKS places no control plane: CreateCluster fails with
# UnsupportedAvailabilityZoneException. IDs, not names: which name is which ID differs per account.
UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3", "usw1-az2", "cac1-az3"})
# Access entries next to aws-auth, and the creator (this operator) keeps cluster-admin.
ACCESS_CONFIG = {"authenticationMode": "API_AND_CONFIG_MAP", "bootstrapClusterCreatorAdminPermissions": True}
STANDARD_SUPPORT = "STANDARD_SUPPORT"


class ClusterFailed(RadstreamError):
    """EKS put the cluster in FAILED, a state it never leaves: waiting cannot help."""


class ForeignNodegroup(ConfigError):
    """The configured nodegroup name is taken by a nodegroup this deployment did not create."""


def _zones_offering(ec2: Any, instance_type: str, zones: list[str]) -> set[str]:
    offered: set[str] = set()
    for page in ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}, {"Name": "location", "Values": zones}]):
        offered.update(o["Location"] for o in page["InstanceTypeOfferings"])
    return offered


def unusable_zones(ec2: Any, zones: list[str], instance_type: str) -> dict[str, str]:
    """Zone name -> why neither EKS nor a node of `instance_type` can be placed there."""
    zone_ids = {z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    offered = _zones_offering(ec2, instance_type, zones)
    unusable = {}
    for zone in zones:
        if zone_ids.get(zone) in UNSUPPORTED_ZONE_IDS:
            unusable[zone] = f"EKS does not support {zone} ({zone_ids[zone]})"
        elif zone not in offered:
            unusable[zone] = f"{instance_type} is not offered in {zone}"
    return unusable


def cluster_subnets(ec2: Any, subnet_ids: list[str], instance_type: str) -> dict[str, str]:
    """Subnet ID -> zone name for a new cluster and its nodes, refused when EKS or the node
    instance type cannot use one of their zones, or they span fewer than two."""
    subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    zones = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
    unusable = unusable_zones(ec2, sorted(set(zones.values())), instance_type)
    if unusable:
        raise RadstreamError("network.subnet_ids cannot be used: " + "; ".join(unusable.values()),
                             hint="choose subnets in other zones, or another nodegroup.instance_type")
    if len(set(zones.values())) < 2:
        raise RadstreamError(f"EKS needs subnets in two availability zones, and these span {len(set(zones.values()))}",
                             hint="name subnets of two zones or more in network.subnet_ids")
    return dict(sorted(zones.items()))


def describe_cluster(eks: Any, name: str) -> dict[str, Any] | None:
    found = unless_absent(eks.describe_cluster, "ResourceNotFoundException", name=name)
    return None if found is None else found["cluster"]


def existing_cluster(eks: Any, name: str) -> dict[str, Any]:
    """The described cluster, which the caller has seen exist: one deleted meanwhile is an error."""
    cluster = describe_cluster(eks, name)
    if cluster is None:
        raise RadstreamError(f"EKS cluster {name} was deleted while RadStream was working on it",
                             hint="run the same command again: phase 0 creates it")
    return cluster


def cluster_api(eks: Any, name: str) -> tuple[str, str, bytes]:
    """The cluster's ARN, its API endpoint and the CA certificate (PEM) it is served with."""
    import base64

    cluster = describe_cluster(eks, name)
    if cluster is None or not cluster.get("endpoint"):
        raise RadstreamError(f"the EKS cluster {name} does not exist (yet)", hint="create it with `radstream up`")
    return cluster["arn"], cluster["endpoint"], base64.b64decode(cluster["certificateAuthority"]["data"])


def cluster_running(eks: Any, name: str) -> bool:
    """False when the cluster is gone or being deleted: nothing in it can (or need) be destroyed."""
    cluster = describe_cluster(eks, name)
    return cluster is not None and cluster["status"] != "DELETING"


def is_owned(resource: dict[str, Any], deployment: str) -> bool:
    """A described cluster or nodegroup created by this deployment (as opposed to someone else's)."""
    return (resource.get("tags") or {}).get(TAG_DEPLOYMENT) == deployment


def endpoint_access(public_access_cidrs: list[str]) -> dict[str, Any]:
    """The API endpoint: private inside the VPC (nodes and Lambdas never leave it), public only to
    the operator's addresses."""
    return {"endpointPrivateAccess": True, "endpointPublicAccess": True, "publicAccessCidrs": sorted(public_access_cidrs)}


def _access_drift(cluster: dict[str, Any], access: dict[str, Any]) -> list[str]:
    config = cluster.get("resourcesVpcConfig") or {}
    # EKS's default for publicAccessCidrs is everywhere.
    current = {key: sorted(config.get(key) or ["0.0.0.0/0"]) if key == "publicAccessCidrs" else config.get(key)
               for key in access}
    return [] if current == access else ["endpoint access"]


def cluster_drift(eks: Any, name: str, tags: dict[str, str], access: dict[str, Any] | None = None) -> list[str]:
    """"missing" when absent (or being deleted); "replace: ..." for an owned cluster in FAILED;
    "endpoint access" when an owned cluster's endpoint differs from `access` (endpoint_access)."""
    cluster = describe_cluster(eks, name)
    if cluster is None or cluster["status"] == "DELETING":
        return ["missing"]
    if not is_owned(cluster, tags[TAG_DEPLOYMENT]):
        return []  # adopted: someone else's cluster, used as it is
    if cluster["status"] == "FAILED":
        return [f"replace: FAILED ({health_issues(cluster)})"]
    drift = ["tags"] if missing(cluster.get("tags", {}), tags) else []
    return drift + (_access_drift(cluster, access) if access else [])


def _create_cluster(eks: Any, request: dict[str, Any], subnets: dict[str, str], access: dict[str, Any]) -> None:
    def create(subnet_ids: list[str]) -> None:
        _create(eks.create_cluster, **request, resourcesVpcConfig={"subnetIds": subnet_ids, **access})

    try:
        create(sorted(subnets))
    except Exception as exc:
        if error_code(exc) != "UnsupportedAvailabilityZoneException":
            raise
        # The zones that work for this account, also named at the end of the message.
        response = getattr(exc, "response", {})  # a ClientError's, as error_code found
        valid = set(response.get("validZones") or re.findall(r"[a-z]{2}(?:-gov)?-[a-z]+-\d[a-z]",
                                                             str(exc).rpartition("choose from")[2]))
        kept = sorted(subnet for subnet, zone in subnets.items() if zone in valid)
        if len({subnets[s] for s in kept}) < 2:
            raise RadstreamError(f"EKS refused the zones of cluster {request['name']}: {exc}",
                                 hint=f"set network.subnet_ids to subnets in two of {sorted(valid)}") from exc
        create(kept)


def ensure_cluster(eks: Any, name: str, *, role_arn: str, tags: dict[str, str],
                   subnets: dict[str, str] | None = None, version: str | None = None,
                   access: dict[str, Any] | None = None) -> bool:
    """Start creating the cluster when missing, in `subnets` (subnet ID -> zone name, from
    cluster_subnets) at `version` with `access` (endpoint_access; the caller waits for ACTIVE);
    retag it when its tags drifted, and update its endpoint access when that did (EKS allows it in
    place; the cluster is UPDATING for a few minutes)."""
    access = access or endpoint_access(["0.0.0.0/0"])
    drift = cluster_drift(eks, name, tags, access)
    if "missing" in drift:
        if not subnets or not version:
            raise ValueError("creating a cluster needs its subnets and version")
        _create_cluster(eks, {"name": name, "version": version, "roleArn": role_arn, "tags": tags,
                              "accessConfig": ACCESS_CONFIG}, subnets, access)
        return True
    if "tags" in drift:
        eks.tag_resource(resourceArn=existing_cluster(eks, name)["arn"], tags=tags)
    if "endpoint access" in drift:
        eks.update_cluster_config(name=name, resourcesVpcConfig=access)
    return bool(drift)


def cluster_active(eks: Any, name: str, deployment: str) -> bool:
    """For waiting: True once ACTIVE; raises ClusterFailed at once when EKS says FAILED."""
    cluster = describe_cluster(eks, name)
    if cluster is not None and cluster["status"] == "FAILED":
        raise ClusterFailed(f"EKS cluster {name} FAILED: {health_issues(cluster)}",
                            hint="run `radstream up` again: it deletes and recreates the cluster" if is_owned(
                                cluster, deployment) else "it is not this deployment's: repair or replace it yourself")
    return cluster is not None and cluster["status"] == "ACTIVE"


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
        unless_absent(eks.delete_cluster, "ResourceNotFoundException", name=name)
    return True


# --- Kubernetes versions ---------------------------------------------------------------------------

def cluster_versions(eks: Any) -> list[dict[str, Any]]:
    """Every version EKS knows, including those past extended support (DescribeClusterVersions)."""
    versions: list[dict[str, Any]] = []
    for page in eks.get_paginator("describe_cluster_versions").paginate(includeAll=True):
        versions.extend(page["clusterVersions"])
    return versions


def _support(info: dict[str, Any]) -> str:
    # versionStatus replaced the deprecated status, whose values were spelled both ways.
    return str(info.get("versionStatus") or info.get("status") or "").upper().replace("-", "_")


def support_status(versions: list[dict[str, Any]], version: str) -> str:
    """STANDARD_SUPPORT, EXTENDED_SUPPORT or UNSUPPORTED (also for a version EKS does not list)."""
    return next((_support(v) for v in versions if v["clusterVersion"] == version), "UNSUPPORTED")


def default_version(versions: list[dict[str, Any]]) -> str:
    """EKS's default version when it is in standard support, else the newest that is."""
    standard = sorted((v for v in versions if _support(v) == STANDARD_SUPPORT),
                      key=lambda v: tuple(int(p) for p in v["clusterVersion"].split(".")))
    chosen = [v for v in standard if v.get("defaultVersion")] or standard[-1:]
    if not chosen:
        raise RadstreamError("EKS lists no Kubernetes version in standard support", hint="set cluster.version")
    return chosen[0]["clusterVersion"]


# --- who can reach the cluster ---------------------------------------------------------------------

def admin_policy_arn(cluster: dict[str, Any]) -> str:
    partition = cluster["arn"].split(":")[1]
    return f"arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def _associated_policies(eks: Any, cluster: str, principal: str) -> list[dict[str, Any]] | None:
    """The principal's access policies; None when it has no access entry."""
    try:
        pages = eks.get_paginator("list_associated_access_policies").paginate(clusterName=cluster,
                                                                              principalArn=principal)
        return [p for page in pages for p in page["associatedAccessPolicies"]]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def access_entry_drift(eks: Any, cluster: str, principal: str, policy_arn: str) -> list[str]:
    """"missing" without an access entry; "policy" when it lacks policy_arn at cluster scope."""
    policies = _associated_policies(eks, cluster, principal)
    if policies is None:
        return ["missing"]
    cluster_wide = any(p["policyArn"] == policy_arn and p["accessScope"]["type"] == "cluster" for p in policies)
    return [] if cluster_wide else ["policy"]


def ensure_access_entry(eks: Any, cluster: str, principal: str, policy_arn: str, tags: dict[str, str]) -> bool:
    drift = access_entry_drift(eks, cluster, principal, policy_arn)
    if "missing" in drift:
        eks.create_access_entry(clusterName=cluster, principalArn=principal, type="STANDARD", tags=tags)
    if drift:
        eks.associate_access_policy(clusterName=cluster, principalArn=principal, policyArn=policy_arn,
                                    accessScope={"type": "cluster"})
    return bool(drift)


def iam_principal(caller_arn: str) -> str:
    """The IAM role or user an access entry names for a caller (an assumed-role session -> its role;
    a role path, absent from session ARNs, is not recovered)."""
    match = re.match(r"^arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/", caller_arn)
    return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else caller_arn


def operator_access(eks: Any, cluster: dict[str, Any], caller_arn: str) -> tuple[bool | None, str]:
    """Whether the caller can reach an adopted cluster's Kubernetes API: True, False, or None when
    the EKS API cannot tell (aws-auth is only readable from inside the cluster); and what it needs."""
    principal, name = iam_principal(caller_arn), cluster["name"]
    mode = (cluster.get("accessConfig") or {}).get("authenticationMode", "CONFIG_MAP")
    mapping = f"an aws-auth ConfigMap entry mapping {principal} to system:masters"
    if mode == "CONFIG_MAP":
        return None, f"cluster {name} authenticates through aws-auth only: the operator needs {mapping}"
    try:
        policies = _associated_policies(eks, name, principal)
    except Exception as exc:
        if error_code(exc) != "AccessDeniedException":
            raise
        return None, f"cannot read access entries of cluster {name} ({exc}); the operator {principal} needs one"
    if policies is None:
        needs = f"an access entry with {admin_policy_arn(cluster)}"
        if mode == "API":
            return False, f"the operator {principal} has no access entry on cluster {name}: it needs {needs}"
        return None, f"the operator {principal} has no access entry on cluster {name}: it needs {needs}, or {mapping}"
    if not policies:
        return None, (f"the operator {principal} has an access entry on cluster {name} without access policies: "
                      "its Kubernetes groups must grant cluster-admin")
    return True, (f"the operator {principal} reaches cluster {name} through its access entry "
                  f"({', '.join(p['policyArn'].rpartition('/')[2] for p in policies)})")

# --- nodegroups ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodegroupSpec:
    """What a managed nodegroup should be. Instance type, capacity type and disk size cannot change
    in place."""

    instance_type: str
    capacity_type: str
    min_size: int
    desired_size: int
    max_size: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)  # EKS effects: NO_SCHEDULE, ...
    gpu: bool = False  # picks the AMI with the NVIDIA driver
    disk_gib: int = 20  # the root volume, which holds the pulled images; 20 is EKS's default

    @property
    def scaling(self) -> dict[str, int]:
        return {"minSize": self.min_size, "maxSize": self.max_size, "desiredSize": self.desired_size}


def describe_nodegroup(eks: Any, cluster: str, name: str) -> dict[str, Any] | None:
    found = unless_absent(eks.describe_nodegroup, "ResourceNotFoundException", clusterName=cluster, nodegroupName=name)
    return None if found is None else found["nodegroup"]


def update_nodegroup_scaling(eks: Any, cluster: str, name: str, scaling: dict[str, int]) -> None:
    """Ask EKS for new minSize/maxSize/desiredSize; the update runs on after this returns."""
    eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name, scalingConfig=scaling)


# Statuses a nodegroup never leaves by itself: waiting on one is waiting forever.
FAILED_STATUSES = ("CREATE_FAILED", "DELETE_FAILED")


def health_issues(nodegroup: dict[str, Any]) -> str:
    """What EKS reports is wrong with a nodegroup: "code: message (resource ids)", "; "-joined."""
    issues = [f"{i.get('code', '?')}: {i.get('message', '')}"
              + (f" ({', '.join(i['resourceIds'])})" if i.get("resourceIds") else "")
              for i in (nodegroup.get("health") or {}).get("issues") or []]
    return "; ".join(issues) or "EKS reports no health issue"


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


def nodegroup_disk_gib(found: dict[str, Any], ec2: Any) -> int | None:
    """The nodes' root volume: the launch template's when there is one (AWS then reports no diskSize;
    None when no ec2 client is given to read it), else diskSize."""
    template = found.get("launchTemplate")
    if not template:
        return int(found["diskSize"]) if found.get("diskSize") is not None else None
    from radstream.aws.launch_template import describe_version, template_disk_gib

    version = describe_version(ec2, template_id=template["id"], version=str(template.get("version") or "$Default")) \
        if ec2 is not None else None
    return template_disk_gib(version["data"]) if version else None


def nodegroup_drift(eks: Any, cluster: str, name: str, spec: NodegroupSpec, tags: dict[str, str],
                    ec2: Any = None) -> list[str]:
    """What differs; "missing" when absent (or being deleted); "replace: ..." for immutable fields
    (the disk is read from the nodegroup's launch template with `ec2`)."""
    found = describe_nodegroup(eks, cluster, name)
    if found is None or found["status"] == "DELETING":
        return ["missing"]
    drift = []
    if found.get("instanceTypes") != [spec.instance_type]:
        drift.append(f"replace: instance type {found.get('instanceTypes')} -> {spec.instance_type}")
    if found.get("capacityType", "ON_DEMAND") != spec.capacity_type:
        drift.append(f"replace: capacity type {found.get('capacityType')} -> {spec.capacity_type}")
    if (disk := nodegroup_disk_gib(found, ec2)) is not None and disk != spec.disk_gib:
        drift.append(f"replace: disk size {disk} GiB -> {spec.disk_gib} GiB")
    if found.get("scalingConfig") != spec.scaling:
        drift.append("scaling")
    if (found.get("labels") or {}) != spec.labels:
        drift.append("labels")
    if _taint_set(found.get("taints") or []) != _taint_set(spec.taints):
        drift.append("taints")
    if missing(found.get("tags") or {}, tags):
        drift.append("tags")
    return drift


def refuse_foreign_nodegroup(eks: Any, cluster: str, name: str, deployment: str) -> None:
    """Raises ForeignNodegroup when a nodegroup `name` exists that `deployment` did not create."""
    found = describe_nodegroup(eks, cluster, name)
    if found is not None and found["status"] != "DELETING" and not is_owned(found, deployment):
        raise ForeignNodegroup(f"nodegroup {name} of cluster {cluster} exists and was not created by deployment "
                               f"{deployment}: RadStream does not change it",
                               hint="set nodegroup.name to another name (and list this one in nodegroup.replace "
                                    "if phase 1 should drain and delete it)")


def ensure_nodegroup(eks: Any, cluster: str, name: str, spec: NodegroupSpec, *, node_role_arn: str,
                     subnet_ids: list[str], tags: dict[str, str], launch_template: dict[str, str] | None = None,
                     ec2: Any = None) -> bool:
    """Create the nodegroup or update what can change in place (the caller waits for ACTIVE).
    With `launch_template` ({"id", "version"}, holding the root volume) no diskSize is sent: EKS
    refuses both. Refuses one of that name this deployment did not create: it is someone else's."""
    refuse_foreign_nodegroup(eks, cluster, name, tags[TAG_DEPLOYMENT])
    drift = nodegroup_drift(eks, cluster, name, spec, tags, ec2)
    if "missing" in drift:
        disk = {"launchTemplate": launch_template} if launch_template else {"diskSize": spec.disk_gib}
        _create(eks.create_nodegroup,
            clusterName=cluster, nodegroupName=name, nodeRole=node_role_arn, subnets=subnet_ids,
            instanceTypes=[spec.instance_type], capacityType=spec.capacity_type, scalingConfig=spec.scaling,
            labels=spec.labels, taints=spec.taints, tags=tags, amiType="AL2023_x86_64_NVIDIA" if spec.gpu else "AL2023_x86_64_STANDARD",
            **disk,
        )
        return True
    immutable = [d for d in drift if d.startswith("replace:")]
    if immutable:
        raise RadstreamError(
            f"nodegroup {name} cannot be changed in place ({'; '.join(d[9:] for d in immutable)})",
            hint="give nodegroup.name a new value: phase 1 then creates that nodegroup, drains this one and deletes it",
        )
    found = describe_nodegroup(eks, cluster, name)
    if found is None:
        raise RadstreamError(f"nodegroup {name} of cluster {cluster} was deleted while RadStream was updating it")
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
        unless_absent(eks.delete_nodegroup, "ResourceNotFoundException", clusterName=cluster, nodegroupName=name)
    return True
