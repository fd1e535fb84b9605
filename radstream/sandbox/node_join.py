"""Would an EKS nodegroup's nodes join the cluster? The sandbox's answer, as AWS gives it.

On AWS a node turns Ready only once the VPC CNI (aws-node) runs on it, and the kubelet pulls that
add-on's image from AWS's own ECR registry with the node role's credentials. A node role without
ECR pull rights there (AmazonEC2ContainerRegistryPullOnly, or an equivalent statement) leaves the
nodes NotReady, and EKS ends the managed nodegroup CREATE_FAILED with the health issue
NodeCreationFailure. moto accepts any role and reports every nodegroup ACTIVE, so the sandbox
judges the role itself, with moto's own policy evaluation over the role's effective policies
(inline and attached) in moto's IAM backend — this runs in the daemon, next to moto."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# The registry account EKS serves its add-on images from in most regions (a few opt-in regions
# use their own account; a statement scoped to one of those is not what this check looks at).
ADDON_REGISTRY_ACCOUNT = "602401143452"
ADDON_REPOSITORY = "amazon-k8s-cni"  # aws-node: without it no node turns Ready
# What a kubelet's ECR credential provider and pull call, and on which resource.
REPOSITORY_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
TOKEN_ACTION = "ecr:GetAuthorizationToken"  # AWS only accepts Resource "*" for it
JOIN_FAILURE_CODE = "NodeCreationFailure"
JOIN_FAILURE_MESSAGE = "Instances failed to join the kubernetes cluster"


def addon_repository_arn(region: str) -> str:
    return f"arn:aws:ecr:{region}:{ADDON_REGISTRY_ACCOUNT}:repository/{ADDON_REPOSITORY}"


def missing_pull_rights(documents: Iterable[str | dict[str, Any]], region: str) -> list[str]:
    """The pull actions the policy documents do not allow on the add-on repository (an explicit
    Deny wins, no Allow means denied), as "action on resource"."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    policies = [IAMPolicy(d if isinstance(d, str) else json.dumps(d)) for d in documents]
    wanted = [(TOKEN_ACTION, "*"), *((a, addon_repository_arn(region)) for a in REPOSITORY_ACTIONS)]
    missing = []
    for action, resource in wanted:
        results = {p.is_action_permitted(action, resource) for p in policies}
        if PermissionResult.DENIED in results or PermissionResult.PERMITTED not in results:
            missing.append(f"{action} on {resource}")
    return missing


def role_policy_documents(role_arn: str) -> list[str] | None:
    """The role's effective policy documents in moto's IAM backend (inline ones, then the default
    version of each attached one); None when moto does not know the role."""
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    if len(parts) < 6 or parts[4] not in iam_backends:
        return None
    role = next((r for r in iam_backends[parts[4]][parts[1]].roles.values() if r.arn == role_arn), None)
    if role is None:
        return None
    documents = list(role.policies.values())
    for policy in role.managed_policies.values():
        documents += [v.document for v in policy.versions if v.is_default]
    return documents


def moto_nodegroup(described: dict[str, Any]) -> Any:
    """moto's own object for a described nodegroup, or None when it is not served by this
    process's moto (an external emulator through aws.endpoint_url)."""
    from moto.eks.models import eks_backends

    arn = described.get("nodegroupArn") or ""
    parts = arn.split(":")
    if len(parts) < 6 or parts[4] not in eks_backends:
        return None
    cluster = eks_backends[parts[4]][parts[3]].clusters.get(described.get("clusterName", ""))
    found = cluster.nodegroups.get(described.get("nodegroupName", "")) if cluster else None
    return found if found is not None and found.arn == arn else None


def missing_rights(described: dict[str, Any], region: str) -> list[str]:
    """What the nodegroup's node role lacks to pull the add-on images; nothing when it lacks
    nothing, or when there is nothing to judge: a nodegroup another emulator serves, or a role
    moto does not know (moto takes any ARN; AWS refuses an unknown role at CreateNodegroup)."""
    if moto_nodegroup(described) is None:
        return []
    documents = role_policy_documents(described.get("nodeRole") or "")
    return [] if documents is None else missing_pull_rights(documents, region)


def join_failure(instance_ids: list[str]) -> dict[str, Any]:
    """The nodegroup health EKS reports when its instances never join."""
    return {"issues": [{"code": JOIN_FAILURE_CODE, "message": JOIN_FAILURE_MESSAGE,
                        "resourceIds": sorted(instance_ids)}]}
