"""EKS add-ons the deployment installs: metrics-server (the resource-metrics API the Triton HPA
scales on) and amazon-cloudwatch-observability (Container Insights: node and pod CPU and memory for
the dashboard). Each at the version EKS names the default for the cluster's Kubernetes version."""

from __future__ import annotations

from typing import Any

from radstream.aws import error_code, unless_absent
from radstream.aws.eks import health_issues

METRICS_SERVER = "metrics-server"
CONTAINER_INSIGHTS = "amazon-cloudwatch-observability"
ADDONS = (METRICS_SERVER, CONTAINER_INSIGHTS)
# What the CloudWatch agent the observability add-on runs on every node needs: the node role's
# permission to put metrics and logs (AWS's documented option when neither IRSA nor Pod Identity is set up).
CONTAINER_INSIGHTS_POLICY = "CloudWatchAgentServerPolicy"
FAILED = ("CREATE_FAILED", "DELETE_FAILED", "UPDATE_FAILED")
# The pods each add-on runs, (per node, in the cluster): what phase 1's preflight must fit before
# they exist. metrics-server is one Deployment pod; the observability add-on runs its operator and
# two DaemonSets (the CloudWatch agent and Fluent Bit).
PODS = {METRICS_SERVER: (0, 1), CONTAINER_INSIGHTS: (2, 1)}


def describe_addon(eks: Any, cluster: str, name: str) -> dict[str, Any] | None:
    found = unless_absent(eks.describe_addon, "ResourceNotFoundException", clusterName=cluster, addonName=name)
    return None if found is None else found["addon"]


def default_version(eks: Any, name: str, kubernetes_version: str) -> str:
    """The version EKS installs by default for this Kubernetes version (the newest compatible one
    when none is marked default)."""
    from radstream.errors import RadstreamError

    found = eks.describe_addon_versions(addonName=name, kubernetesVersion=kubernetes_version).get("addons") or []
    versions = [v for addon in found for v in addon.get("addonVersions") or []
                if any(c.get("clusterVersion") == kubernetes_version for c in v.get("compatibilities") or [])]
    if not versions:
        raise RadstreamError(f"EKS offers no {name} add-on for Kubernetes {kubernetes_version}",
                             hint="check `aws eks describe-addon-versions --addon-name " + name + "`")
    marked = [v for v in versions if any(c.get("defaultVersion") for c in v.get("compatibilities") or [])]
    return (marked or versions)[0]["addonVersion"]


def addon_drift(eks: Any, cluster: str, name: str) -> list[str]:
    found = describe_addon(eks, cluster, name)
    if found is None:
        return ["missing"]
    if found["status"] != "ACTIVE":
        return [f"status {found['status']}" + (f" ({health_issues(found)})" if found.get("health", {}).get("issues") else "")]
    return []


def create_addon(eks: Any, cluster: str, name: str, version: str, tags: dict[str, str]) -> None:
    """Create it unless it exists; OVERWRITE takes over fields a previous manual install of the same
    software set (EKS refuses otherwise, with a conflict per field)."""
    try:
        eks.create_addon(clusterName=cluster, addonName=name, addonVersion=version, resolveConflicts="OVERWRITE", tags=tags)
    except Exception as error:
        if error_code(error) != "ResourceInUseException":
            raise


def addon_settled(eks: Any, cluster: str, name: str) -> bool:
    """ACTIVE yet? Raises on a status EKS never leaves by itself, with its health issues."""
    from radstream.errors import RadstreamError

    found = describe_addon(eks, cluster, name) or {}
    if found.get("status") in FAILED:
        raise RadstreamError(f"EKS add-on {name} is {found['status']}: {health_issues(found)}",
                             hint="fix what EKS reports, then run the phase again")
    return found.get("status") == "ACTIVE"


def delete_addon(eks: Any, cluster: str, name: str) -> bool:
    """Start deleting it; False when it (or its cluster) is already gone."""
    try:
        eks.delete_addon(clusterName=cluster, addonName=name)
    except Exception as error:
        if error_code(error) == "ResourceNotFoundException":
            return False
        raise
    return True
