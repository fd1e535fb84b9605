"""moto's EKS, made to treat a cluster as AWS does where RadStream depends on it:

- CreateCluster refuses subnets in the zone IDs where EKS places no control plane
  (UnsupportedAvailabilityZoneException, naming the zones that work, in EKS's wording);
- a cluster keeps the accessConfig it was created with (AWS's API default: CONFIG_MAP, creator
  bootstrapped) and reports health; without a version it gets EKS's default version;
- access entries: Create/Describe/List/DeleteAccessEntry, AssociateAccessPolicy and
  ListAssociatedAccessPolicies with EKS's shapes and errors, the creator's entry bootstrapped;
- DescribeClusterVersions from a table of real EKS releases, support status computed from today;
- UpdateClusterConfig changes only the resourcesVpcConfig fields it is given (moto replaces the
  whole configuration, subnets included);
- "Every managed node is provisioned as part of an Amazon EC2 Auto Scaling group that's managed for
  you by Amazon EKS": CreateNodegroup makes it (eks-<nodegroup>-<uuid>, from EKS's launch template
  eks-<uuid>, in the nodegroup's subnets, sized by its scalingConfig, tagged by EKS; the
  nodegroup's own tags stay on the nodegroup), UpdateNodegroupConfig resizes it and DeleteNodegroup
  deletes it with its nodes (moto reports an ASG name and makes none).

Installed by moto_fixes.install() before the server starts (routes are read when moto builds its
EKS app) and by the unit tests' conftest for in-process moto."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable

# Zone IDs where EKS places no control plane (the same IDs radstream.aws.eks avoids).
UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3", "usw1-az2", "cac1-az3"})
# Kubernetes minor versions as EKS released them. Standard support ends 14 months after release,
# extended support 12 months after that.
RELEASES = {
    "1.23": "2022-08-11", "1.24": "2022-11-15", "1.25": "2023-02-21", "1.26": "2023-04-11",
    "1.27": "2023-05-24", "1.28": "2023-09-26", "1.29": "2024-01-23", "1.30": "2024-05-23",
    "1.31": "2024-09-26", "1.32": "2025-01-23", "1.33": "2025-05-29", "1.34": "2025-10-02",
    "1.35": "2026-01-27",
}
STANDARD_MONTHS, EXTENDED_MONTHS = 14, 12
_PRINCIPAL = re.compile(r"^arn:(aws[a-z-]*):(iam|sts)::(\d{12}):(role|user|assumed-role)/(.+)$")
_POLICY = re.compile(r"^arn:aws[a-z-]*:eks::aws:cluster-access-policy/[A-Za-z]+$")
_CONFIG_MAP_ONLY = ("The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] "
                    "to perform this operation.")


# -- versions -------------------------------------------------------------------------------------

def _months_later(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def cluster_versions(today: datetime | None = None) -> list[dict[str, Any]]:
    """Every released version, newest first, with its status on `today` (default: now)."""
    today = today or datetime.now(timezone.utc)
    versions: list[dict[str, Any]] = []
    for version, released in RELEASES.items():
        release = datetime.fromisoformat(released).replace(tzinfo=timezone.utc)
        standard_end = _months_later(release, STANDARD_MONTHS)
        extended_end = _months_later(standard_end, EXTENDED_MONTHS)
        if release > today:
            continue
        status = ("STANDARD_SUPPORT" if today < standard_end else
                  "EXTENDED_SUPPORT" if today < extended_end else "UNSUPPORTED")
        versions.append({"clusterVersion": version, "clusterType": "eks", "defaultVersion": False,
                         "releaseDate": release, "endOfStandardSupportDate": standard_end,
                         "endOfExtendedSupportDate": extended_end, "status": status, "versionStatus": status})
    versions.sort(key=lambda v: int(v["clusterVersion"].split(".")[1]), reverse=True)
    # EKS names one default; here the newest version in standard support.
    default = next((v for v in versions if v["versionStatus"] == "STANDARD_SUPPORT"), None)
    if default:
        default["defaultVersion"] = True
    return versions


def _default_version() -> str:
    return next(v["clusterVersion"] for v in cluster_versions() if v["defaultVersion"])


def describe_cluster_versions(self):
    from moto.core.responses import ActionResult

    def flag(name: str) -> bool:
        return str(self._get_param(name, "false")).lower() == "true"

    wanted = self.querystring.get("clusterVersions") or []
    status = (self._get_param("versionStatus") or self._get_param("status") or "").upper().replace("-", "_")
    versions = [v for v in cluster_versions()
                if (flag("includeAll") or v["versionStatus"] != "UNSUPPORTED")
                and (not flag("defaultOnly") or v["defaultVersion"])
                and (not wanted or v["clusterVersion"] in wanted)
                and (not status or v["versionStatus"] == status)]
    return ActionResult({"clusterVersions": versions})


# -- CreateCluster ----------------------------------------------------------------------------------

def _error(kind: str, message: str, **fields: Any) -> Exception:
    from moto.eks import exceptions

    if kind == "UnsupportedAvailabilityZoneException":
        cls = type(kind, (exceptions.EKSError,), {"TYPE": kind, "STATUS": 400})
    else:
        cls = getattr(exceptions, kind)
    return cls(message=message, **fields)


def _refuse_unsupported_zones(account: str, region: str, name: str, subnet_ids: list[str]) -> None:
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[account][region]
    zones = {z.name: z.zone_id for z in ec2.describe_availability_zones()}
    try:
        subnets = ec2.describe_subnets(subnet_ids=subnet_ids)
    except Exception:  # noqa: BLE001 - unknown subnets stay moto's business
        return
    refused = sorted({s.availability_zone for s in subnets if zones.get(s.availability_zone) in UNSUPPORTED_ZONE_IDS})
    if refused:
        valid = sorted(zone for zone, zone_id in zones.items() if zone_id not in UNSUPPORTED_ZONE_IDS)
        raise _error("UnsupportedAvailabilityZoneException",
                     f"Cannot create cluster '{name}' because {refused[0]}, the targeted availability zone, does "
                     "not currently have sufficient capacity to support the cluster. Retry and choose from these "
                     f"availability zones: {', '.join(valid)}", clusterName=name, validZones=valid)


def create_cluster_like_eks(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_cluster(self):
        from moto.sts.models import sts_backends

        name = self._get_param("name")
        subnet_ids = (self._get_param("resourcesVpcConfig") or {}).get("subnetIds") or []
        _refuse_unsupported_zones(self.current_account, self.region, name, subnet_ids)
        result = original(self)
        cluster = self.eks_backend.clusters[name]
        requested = self._get_param("accessConfig") or {}
        cluster.access_config = {"authenticationMode": requested.get("authenticationMode", "CONFIG_MAP"),
                                 "bootstrapClusterCreatorAdminPermissions":
                                     requested.get("bootstrapClusterCreatorAdminPermissions", True)}
        if not hasattr(cluster, "health"):
            cluster.health = {"issues": []}
        cluster.radstream_access_entries = {}
        if not self._get_param("version"):
            cluster.version = _default_version()
        if (cluster.access_config["authenticationMode"] != "CONFIG_MAP"
                and cluster.access_config["bootstrapClusterCreatorAdminPermissions"]):
            _, caller, _ = sts_backends[self.current_account]["global"].get_caller_identity(
                self.get_access_key(), self.region)
            entry = _new_entry(cluster, _iam_principal(caller), [], {})
            _associate(entry, f"arn:{cluster.arn.split(':')[1]}:eks::aws:cluster-access-policy/"
                              "AmazonEKSClusterAdminPolicy", {"type": "cluster"})
        return result

    return create_cluster


def create_nodegroup_like_eks(original: Callable[..., Any]) -> Callable[..., Any]:
    """EKS reports no diskSize for a nodegroup launched from a launch template (the disk is the
    template's); moto reports its default of 20."""
    def create_nodegroup(self):
        result = original(self)
        if self._get_param("launchTemplate"):
            cluster = self.eks_backend.clusters[self._get_param("name")]
            cluster.nodegroups[self._get_param("nodegroupName")].disk_size = None
        return result

    return create_nodegroup


# -- access entries ---------------------------------------------------------------------------------

def _iam_principal(arn: str) -> str:
    """The IAM role or user behind a caller ARN (an assumed-role session names its role)."""
    match = _PRINCIPAL.match(arn)
    if not match:
        return arn
    partition, _, account, kind, rest = match.groups()
    if kind == "assumed-role":
        kind, rest = "role", rest.split("/")[0]
    return f"arn:{partition}:iam::{account}:{kind}/{rest}"


def _cluster(self) -> Any:
    name = self._get_param("name")
    cluster = self.eks_backend.clusters.get(name)
    if cluster is None:
        raise _error("ResourceNotFoundException", f"No cluster found for name: {name}.", clusterName=name)
    if getattr(cluster, "access_config", {}).get("authenticationMode", "CONFIG_MAP") == "CONFIG_MAP":
        raise _error("InvalidRequestException", _CONFIG_MAP_ONLY, clusterName=name)
    return cluster


def _entries(cluster: Any) -> dict[str, dict[str, Any]]:
    if not hasattr(cluster, "radstream_access_entries"):
        cluster.radstream_access_entries = {}
    return cluster.radstream_access_entries


def _principal_arn(self) -> str:
    from urllib.parse import unquote

    return unquote(self._get_param("principalArn") or "")


def _entry(self, cluster: Any) -> dict[str, Any]:
    entry = _entries(cluster).get(_principal_arn(self))
    if entry is None:
        raise _error("ResourceNotFoundException", "The specified access entry resource could not be found.",
                     clusterName=cluster.name)
    return entry


def _new_entry(cluster: Any, principal: str, groups: list[str], tags: dict[str, str]) -> dict[str, Any]:
    from moto.core.utils import utcnow
    from moto.moto_api._internal import mock_random

    match = _PRINCIPAL.match(principal)
    if not match or match.group(2) != "iam" or match.group(4) not in ("role", "user"):
        raise _error("InvalidParameterException", "The specified principalArn is invalid: invalid ARN.",
                     clusterName=cluster.name)
    if principal in _entries(cluster):
        raise _error("ResourceInUseException", "The specified access entry resource is already in use on this cluster.",
                     clusterName=cluster.name)
    partition, _, account, kind, name = match.groups()
    prefix = cluster.arn.split(":cluster/")[0]
    now = utcnow()
    entry = {
        "clusterName": cluster.name, "principalArn": principal, "kubernetesGroups": groups,
        "accessEntryArn": f"{prefix}:access-entry/{cluster.name}/{kind}/{account}/{name.split('/')[-1]}/"
                          f"{mock_random.uuid4()}",
        "createdAt": now, "modifiedAt": now, "tags": tags, "type": "STANDARD",
        "username": (f"arn:{partition}:sts::{account}:assumed-role/{name.split('/')[-1]}/{{{{SessionName}}}}"
                     if kind == "role" else principal),
        "policies": {},
    }
    _entries(cluster)[principal] = entry
    return entry


def _associate(entry: dict[str, Any], policy_arn: str, scope: dict[str, Any]) -> dict[str, Any]:
    from moto.core.utils import utcnow

    known = entry["policies"].get(policy_arn)
    now = utcnow()
    entry["policies"][policy_arn] = {"policyArn": policy_arn, "accessScope": scope,
                                     "associatedAt": known["associatedAt"] if known else now, "modifiedAt": now}
    return entry["policies"][policy_arn]


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key != "policies"}


def create_access_entry(self):
    from moto.core.responses import ActionResult

    cluster = _cluster(self)
    entry = _new_entry(cluster, self._get_param("principalArn") or "", self._get_param("kubernetesGroups") or [],
                       self._get_param("tags") or {})
    if self._get_param("username"):
        entry["username"] = self._get_param("username")
    return ActionResult({"accessEntry": _public(entry)})


def describe_access_entry(self):
    from moto.core.responses import ActionResult

    return ActionResult({"accessEntry": _public(_entry(self, _cluster(self)))})


def list_access_entries(self):
    from moto.core.responses import ActionResult

    policy = self._get_param("associatedPolicyArn")
    entries = [arn for arn, entry in _entries(_cluster(self)).items() if not policy or policy in entry["policies"]]
    return ActionResult({"accessEntries": sorted(entries)})


def delete_access_entry(self):
    from moto.core.responses import EmptyResult

    cluster = _cluster(self)
    del _entries(cluster)[_entry(self, cluster)["principalArn"]]
    return EmptyResult()


def associate_access_policy(self):
    from moto.core.responses import ActionResult

    cluster = _cluster(self)
    entry = _entry(self, cluster)
    policy_arn, scope = self._get_param("policyArn") or "", self._get_param("accessScope") or {}
    if not _POLICY.match(policy_arn):
        raise _error("InvalidParameterException", f"The policyArn {policy_arn} is invalid.", clusterName=cluster.name)
    kind = scope.get("type")
    if kind not in ("cluster", "namespace") or (kind == "namespace") != bool(scope.get("namespaces")):
        raise _error("InvalidParameterException",
                     "accessScope must be type cluster, or type namespace with namespaces.", clusterName=cluster.name)
    associated = _associate(entry, policy_arn, {"type": scope["type"], "namespaces": scope.get("namespaces") or []})
    return ActionResult({"clusterName": cluster.name, "principalArn": entry["principalArn"],
                         "associatedAccessPolicy": associated})


def list_associated_access_policies(self):
    from moto.core.responses import ActionResult

    cluster = _cluster(self)
    entry = _entry(self, cluster)
    return ActionResult({"clusterName": cluster.name, "principalArn": entry["principalArn"],
                         "associatedAccessPolicies": list(entry["policies"].values())})


# EKS's paths for what moto lacks; a principal ARN holds "/", so it is matched greedily.
ROUTES = (
    "{0}/cluster-versions$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>.+)/access-policies$",
    "{0}/clusters/(?P<name>[^/]+)/access-entries/(?P<principalArn>.+)$",
)
HANDLERS = (describe_cluster_versions, create_access_entry, describe_access_entry, list_access_entries,
            delete_access_entry, associate_access_policy, list_associated_access_policies)


def update_merges_vpc_config(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_cluster_config(self: Any, name: str, resources_vpc_config: dict[str, Any], *args: Any,
                              **kwargs: Any) -> Any:
        cluster = self.clusters.get(name)
        if cluster is not None and resources_vpc_config:
            resources_vpc_config = {**(cluster.resources_vpc_config or {}), **resources_vpc_config}
        return original(self, name, resources_vpc_config, *args, **kwargs)

    return update_cluster_config


# -- the nodegroup's Auto Scaling group -------------------------------------------------------------

def _ec2_and_autoscaling(backend: Any) -> tuple[Any, Any]:
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends

    return (ec2_backends[backend.account_id][backend.region_name],
            autoscaling_backends[backend.account_id][backend.region_name])


def _eks_tags(nodegroup: Any) -> dict[str, str]:
    """The tags EKS puts on a nodegroup's ASG (propagated to its nodes), the cluster autoscaler's
    discovery tags among them."""
    cluster = nodegroup.cluster_name
    return {"eks:cluster-name": cluster, "eks:nodegroup-name": nodegroup.nodegroup_name,
            "k8s.io/cluster-autoscaler/enabled": "true", f"k8s.io/cluster-autoscaler/{cluster}": "owned",
            f"kubernetes.io/cluster/{cluster}": "owned"}


def nodegroup_gets_an_asg(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_nodegroup(self: Any, *args: Any, **kwargs: Any) -> Any:
        nodegroup = original(self, *args, **kwargs)
        ec2, autoscaling = _ec2_and_autoscaling(self)
        try:
            ec2.describe_subnets(subnet_ids=nodegroup.subnets)
        except Exception:  # noqa: BLE001 - unknown subnets stay moto's business
            return nodegroup
        # EKS launches from its own copy of the given launch template, with the nodegroup's type.
        data = {"InstanceType": nodegroup.instance_types[0]}
        given = nodegroup.launch_template or {}
        if given.get("id"):
            data = {**ec2.get_launch_template(given["id"]).get_version(given.get("version", "$Default")).data, **data}
        tags = _eks_tags(nodegroup)
        template = ec2.create_launch_template(f"eks-{nodegroup.uuid}", "", data, {"launch-template": tags})
        name = f"eks-{nodegroup.nodegroup_name}-{nodegroup.uuid}"
        scaling = nodegroup.scaling_config
        autoscaling.create_auto_scaling_group(
            name=name, availability_zones=[], desired_capacity=scaling.get("desiredSize"),
            max_size=scaling.get("maxSize"), min_size=scaling.get("minSize"), launch_config_name=None,
            launch_template={"LaunchTemplateId": template.id, "Version": str(template.default_version_number)},
            vpc_zone_identifier=",".join(nodegroup.subnets), default_cooldown=None, health_check_period=None,
            health_check_type="EC2", load_balancers=[], target_group_arns=[], placement_group=None,
            termination_policies=[], tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": key,
                                            "Value": value, "PropagateAtLaunch": "true"}
                                           for key, value in tags.items()])
        nodegroup.resources["autoScalingGroups"] = [{"name": name}]
        nodegroup.radstream_launch_template = template.id
        return nodegroup

    return create_nodegroup


def _asg_of(autoscaling: Any, nodegroup: Any) -> Any:
    return autoscaling.autoscaling_groups.get(nodegroup.resources["autoScalingGroups"][0]["name"])


def _nodes_take_their_interfaces(group: Any) -> None:
    """A node's primary ENI goes with it on EC2; moto keeps it, holding the subnet forever."""
    for state in group.instance_states:
        for eni in state.instance.nics.values():
            eni.delete_on_termination = True


def scaling_config_resizes_the_asg(original: Callable[..., Any]) -> Callable[..., Any]:
    def update_nodegroup_config(self: Any, cluster_name: str, nodegroup_name: str, *args: Any, **kwargs: Any) -> Any:
        update = original(self, cluster_name, nodegroup_name, *args, **kwargs)
        _, autoscaling = _ec2_and_autoscaling(self)
        nodegroup = self.clusters[cluster_name].nodegroups[nodegroup_name]
        group = _asg_of(autoscaling, nodegroup)
        if group is not None:
            scaling = nodegroup.scaling_config
            group.min_size = scaling.get("minSize", group.min_size)
            group.max_size = scaling.get("maxSize", group.max_size)
            _nodes_take_their_interfaces(group)  # scaling in terminates nodes
            autoscaling.set_desired_capacity(group.name, scaling.get("desiredSize", group.desired_capacity))
        return update

    return update_nodegroup_config


def deleted_nodegroup_takes_its_asg(original: Callable[..., Any]) -> Callable[..., Any]:
    def delete_nodegroup(self: Any, cluster_name: str, nodegroup_name: str) -> Any:
        nodegroup = original(self, cluster_name, nodegroup_name)
        ec2, autoscaling = _ec2_and_autoscaling(self)
        group = _asg_of(autoscaling, nodegroup)
        if group is not None:
            _nodes_take_their_interfaces(group)
            autoscaling.delete_auto_scaling_group(group.name)
            ec2.delete_launch_template(None, nodegroup.radstream_launch_template)
        return nodegroup

    return delete_nodegroup


def install(wrap: Callable[[type, str, Callable[..., Any]], None]) -> None:
    """Apply through moto_fixes' wrap(owner, attribute, fix); adding routes and handlers twice is harmless."""
    from moto.eks import urls
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    for route in ROUTES:
        urls.url_paths.setdefault(route, urls.response.dispatch)
    for handler in HANDLERS:
        if not hasattr(EKSResponse, handler.__name__):
            setattr(EKSResponse, handler.__name__, handler)
    wrap(EKSResponse, "create_cluster", create_cluster_like_eks)
    wrap(EKSResponse, "create_nodegroup", create_nodegroup_like_eks)
    wrap(EKSBackend, "update_cluster_config", update_merges_vpc_config)
    wrap(EKSBackend, "create_nodegroup", nodegroup_gets_an_asg)
    wrap(EKSBackend, "update_nodegroup_config", scaling_config_resizes_the_asg)
    wrap(EKSBackend, "delete_nodegroup", deleted_nodegroup_takes_its_asg)
