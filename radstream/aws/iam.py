"""IAM roles: a trust policy, one inline least-privilege policy and (for EKS only) AWS managed
policies. The documents live in manifests/iam/ as templates (${Account}, ${Region}, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from radstream.aws import error_code, make_arn
from radstream.aws.tags import from_list, missing, to_list
from radstream.templating import substitute

ROLE_PURPOSES = ("lambda", "sfn", "events", "firehose", "glue-crawler", "eks-cluster", "eks-nodes")
INLINE_POLICY = "radstream"
# EKS documents its control plane and nodes with these AWS managed policies. Nodes also pull the
# cluster add-ons' images (aws-node, kube-proxy, CoreDNS) from AWS's own registries in other
# accounts, which our inline policy (our repository only) cannot grant; and the Container Insights
# agent on every node puts metrics and logs with the node's role (CloudWatchAgentServerPolicy).
MANAGED_POLICIES = {
    "eks-cluster": ["AmazonEKSClusterPolicy"],
    "eks-nodes": ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryPullOnly",
                  "CloudWatchAgentServerPolicy"],
}
# AWS accepts only Resource "*" for these actions; everything else must name our resources.
UNSCOPABLE_ACTIONS = frozenset({"ecr:GetAuthorizationToken", "ec2:DescribeNetworkInterfaces"})


def render_document(path: Path, variables: dict[str, str]) -> dict[str, Any]:
    """Load a JSON policy template, substituting ${Name} placeholders (an unknown one raises)."""
    return json.loads(substitute(path.read_text(), variables))


def role_documents(manifest_dir: Path, purpose: str, variables: dict[str, str]) -> tuple[dict, dict | None]:
    """(trust policy, inline policy or None) for one role purpose."""
    trust = render_document(manifest_dir / f"{purpose}.trust.json", variables)
    inline_path = manifest_dir / f"{purpose}.json"
    return trust, render_document(inline_path, variables) if inline_path.exists() else None


def role_arn(account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "iam", "", account_id, f"role/{name}")


def managed_policy_arns(purpose: str, partition: str = "aws") -> list[str]:
    """The AWS managed policies a role purpose attaches, as ARNs in the caller's partition."""
    return [make_arn(partition, "iam", "", "aws", f"policy/{name}") for name in MANAGED_POLICIES.get(purpose, [])]


def role_name_with_path(role: str) -> str:
    """"path/name" of a role ARN (just "name" at the default path); a name is returned as it is."""
    return role.split(":role/", 1)[1] if role.startswith("arn:") and ":role/" in role else role


def _document(raw: Any) -> dict[str, Any]:
    # The API returns URL-encoded JSON; botocore usually decodes it, emulators do not always.
    return json.loads(unquote(raw)) if isinstance(raw, str) else raw


def role_drift(
    iam: Any, name: str, trust: dict, policy: dict | None, managed: list[str], tags: dict[str, str]
) -> list[str]:
    """What differs from the desired role; ["missing"] when it does not exist."""
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except Exception as exc:
        if error_code(exc) == "NoSuchEntity":
            return ["missing"]
        raise
    drift = []
    if _document(role["AssumeRolePolicyDocument"]) != trust:
        drift.append("trust")
    inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
    wanted = [INLINE_POLICY] if policy is not None else []
    if sorted(inline) != wanted or (
        policy is not None
        and _document(iam.get_role_policy(RoleName=name, PolicyName=INLINE_POLICY)["PolicyDocument"]) != policy
    ):
        drift.append("policy")
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]]
    if sorted(attached) != sorted(managed):
        drift.append("managed-policies")
    if missing(from_list(iam.list_role_tags(RoleName=name)["Tags"]), tags):
        drift.append("tags")
    return drift


def ensure_role(
    iam: Any, name: str, trust: dict, policy: dict | None, managed: list[str], tags: dict[str, str]
) -> bool:
    """Create or repair the role: trust, exactly our inline policy, exactly our managed policies."""
    drift = role_drift(iam, name, trust, policy, managed, tags)
    if "missing" in drift:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Tags=to_list(tags))
        drift = ["policy", "managed-policies"]
    if "trust" in drift:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    if "policy" in drift:
        for other in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            if policy is None or other != INLINE_POLICY:
                iam.delete_role_policy(RoleName=name, PolicyName=other)
        if policy is not None:
            iam.put_role_policy(RoleName=name, PolicyName=INLINE_POLICY, PolicyDocument=json.dumps(policy))
    if "managed-policies" in drift:
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
        for arn in attached - set(managed):
            iam.detach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in set(managed) - attached:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    if "tags" in drift:
        iam.tag_role(RoleName=name, Tags=to_list(tags))
    return bool(drift)


def delete_role(iam: Any, name: str) -> None:
    """Detach and delete its policies, leave instance profiles, delete the role; quiet when gone."""
    try:
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            for p in page["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=name, PolicyArn=p["PolicyArn"])
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for profile in iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
            iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
        iam.delete_role(RoleName=name)
    except Exception as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
