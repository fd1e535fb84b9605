"""EKS add-ons, which moto lacks: Create/Describe/List/DeleteAddon and DescribeAddonVersions with
EKS's shapes and errors, for a catalog of the add-ons RadStream installs.

As on EKS, an add-on is CREATING until its workloads run: the sandbox's EKS sync (cluster.py)
installs each add-on's Deployments and DaemonSets into the Kubernetes emulator (`workloads`) and
reports it ACTIVE once every one has its pods Ready, DEGRADED with InsufficientNumberOfReplicas
when they stop being so (no nodes, say), and removes them once the add-on is deleted.

Installed by moto_fixes.install() (routes before moto builds its EKS app)."""

from __future__ import annotations

from typing import Any

from radstream.sandbox.eks_parity import RELEASES, _error

CONTAINER_INSIGHTS = "amazon-cloudwatch-observability"
# name -> (type, the version this sandbox offers). The versions are the sandbox's own catalog.
CATALOG = {
    "metrics-server": ("observability", "v0.7.2-eksbuild.1"),
    CONTAINER_INSIGHTS: ("observability", "v2.6.0-eksbuild.1"),
}
INSUFFICIENT_REPLICAS = ("InsufficientNumberOfReplicas",
                         "The add-on is unhealthy because it doesn't have the desired number of replicas.")


def _records(cluster: Any) -> dict[str, dict[str, Any]]:
    if not hasattr(cluster, "radstream_addons"):
        cluster.radstream_addons = {}
    return cluster.radstream_addons


def _cluster(self: Any) -> Any:
    name = self._get_param("name")
    cluster = self.eks_backend.clusters.get(name)
    if cluster is None:
        raise _error("ResourceNotFoundException", f"No cluster found for name: {name}.", clusterName=name)
    return cluster


def _addon(self: Any, cluster: Any) -> dict[str, Any]:
    name = self._get_param("addonName")
    found = _records(cluster).get(name)
    if found is None:
        raise _error("ResourceNotFoundException", f"No addon: {name} found in cluster: {cluster.name}",
                     clusterName=cluster.name, addonName=name)
    return found


def create_addon(self):
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.moto_api._internal import mock_random

    cluster = _cluster(self)
    name, version = self._get_param("addonName") or "", self._get_param("addonVersion")
    if name not in CATALOG:
        raise _error("InvalidParameterException", f"Addon {name} specified is not supported in "
                     f"{cluster.version} kubernetes version", clusterName=cluster.name, addonName=name)
    if version and version != CATALOG[name][1]:
        raise _error("InvalidParameterException", f"Addon version specified is not supported, addonName: {name}, "
                     f"addonVersion: {version}", clusterName=cluster.name, addonName=name)
    if name in _records(cluster):
        raise _error("ResourceInUseException", "Addon already exists.", clusterName=cluster.name, addonName=name)
    now = utcnow()
    prefix = cluster.arn.split(":cluster/")[0]
    record = {"addonName": name, "clusterName": cluster.name, "status": "CREATING", "addonVersion": CATALOG[name][1],
              "health": {"issues": []}, "addonArn": f"{prefix}:addon/{cluster.name}/{name}/{mock_random.uuid4()}",
              "createdAt": now, "modifiedAt": now, "tags": self._get_param("tags") or {}}
    for key in ("serviceAccountRoleArn", "configurationValues"):
        if self._get_param(key):
            record[key] = self._get_param(key)
    _records(cluster)[name] = record
    return ActionResult({"addon": record})


def describe_addon(self):
    from moto.core.responses import ActionResult

    return ActionResult({"addon": _addon(self, _cluster(self))})


def list_addons(self):
    from moto.core.responses import ActionResult

    return ActionResult({"addons": sorted(_records(_cluster(self)))})


def delete_addon(self):
    """EKS answers DELETING; the sandbox's add-on is gone at once (its workloads go on the next sync)."""
    from moto.core.responses import ActionResult

    cluster = _cluster(self)
    record = _records(cluster).pop(_addon(self, cluster)["addonName"])
    return ActionResult({"addon": {**record, "status": "DELETING"}})


def describe_addon_versions(self):
    from moto.core.responses import ActionResult

    wanted, kubernetes = self._get_param("addonName"), self._get_param("kubernetesVersion")
    clusters = [kubernetes] if kubernetes else sorted(RELEASES)
    addons = [{"addonName": name, "type": kind, "owner": "aws", "publisher": "eks",
               "addonVersions": [{"addonVersion": version, "architecture": ["amd64", "arm64"],
                                  "compatibilities": [{"clusterVersion": v, "platformVersions": ["*"], "defaultVersion": True}
                                                      for v in clusters if v in RELEASES],
                                  "requiresConfiguration": False}]}
              for name, (kind, version) in CATALOG.items() if not wanted or wanted == name]
    return ActionResult({"addons": [a for a in addons if a["addonVersions"][0]["compatibilities"]]})


ROUTES = (
    "{0}/addons/supported-versions$",
    "{0}/clusters/(?P<name>[^/]+)/addons$",
    "{0}/clusters/(?P<name>[^/]+)/addons/(?P<addonName>[^/]+)$",
)
HANDLERS = (create_addon, describe_addon, list_addons, delete_addon, describe_addon_versions)


def install() -> None:
    from moto.eks import urls
    from moto.eks.responses import EKSResponse

    for route in ROUTES:
        urls.url_paths.setdefault(route, urls.response.dispatch)
    for handler in HANDLERS:
        if not hasattr(EKSResponse, handler.__name__):
            setattr(EKSResponse, handler.__name__, handler)


# -- what the add-ons run, and how they fare (the EKS sync's side) ----------------------------------
def workloads(name: str, region: str) -> list[dict[str, Any]]:
    """The objects an add-on installs, with the requests its manifests set (capacity is real)."""
    registry = f"602401143452.dkr.ecr.{region}.amazonaws.com"

    def pod_spec(container: str, image: str, cpu: str, memory: str) -> dict[str, Any]:
        return {"priorityClassName": "system-cluster-critical",
                "containers": [{"name": container, "image": f"{registry}/{image}",
                                "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}

    def workload(kind: str, namespace: str, workload_name: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": workload_name, "app.kubernetes.io/managed-by": "EKS"}
        return {"apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": workload_name, "namespace": namespace, "labels": labels},
                "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": spec},
                         **extra}}

    if name == "metrics-server":
        return [workload("Deployment", "kube-system", "metrics-server",
                         pod_spec("metrics-server", "eks/metrics-server:v0.7.2-eksbuild.1", "100m", "200Mi"), replicas=1)]
    if name == CONTAINER_INSIGHTS:
        everywhere = {"tolerations": [{"operator": "Exists"}]}
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "amazon-cloudwatch"}},
            workload("Deployment", "amazon-cloudwatch", "amazon-cloudwatch-observability-controller-manager",
                     pod_spec("manager", "cloudwatch-agent-operator:2.6.0", "100m", "64Mi"), replicas=1),
            workload("DaemonSet", "amazon-cloudwatch", "cloudwatch-agent",
                     {**pod_spec("cloudwatch-agent", "cloudwatch-agent:1.300049.1", "250m", "128Mi"), **everywhere}),
            workload("DaemonSet", "amazon-cloudwatch", "fluent-bit",
                     {**pod_spec("fluent-bit", "aws-for-fluent-bit:2.32.5", "50m", "25Mi"), **everywhere}),
        ]
    return []


def moto_addon(region: str, account: str, cluster: str, name: str) -> dict[str, Any] | None:
    """moto's own record of an add-on, or None when it is not served by this process's moto."""
    from moto.eks.models import eks_backends

    if account not in eks_backends or region not in eks_backends[account]:
        return None
    found = eks_backends[account][region].clusters.get(cluster)
    return _records(found).get(name) if found is not None else None


def judge(record: dict[str, Any], ready: bool) -> None:
    """An add-on's status from whether its workloads are Ready: ACTIVE, or CREATING until first
    Ready and DEGRADED after."""
    if ready:
        record.update(status="ACTIVE", health={"issues": []})
    elif record["status"] in ("ACTIVE", "DEGRADED"):
        code, message = INSUFFICIENT_REPLICAS
        record.update(status="DEGRADED", health={"issues": [{"code": code, "message": message, "resourceIds": []}]})
