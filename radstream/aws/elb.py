"""What Kubernetes' cloud controller made for a cluster's LoadBalancer Services: Classic and v2
load balancers and their security groups, all tagged `kubernetes.io/cluster/<cluster>`=owned. They
outlive a cluster deleted before its Services (and bill), so phase 0 sweeps them after the cluster."""

from __future__ import annotations

from typing import Any

from radstream.aws import error_code

CLUSTER_TAG_PREFIX = "kubernetes.io/cluster/"
_TAGS_PER_CALL = 20  # DescribeTags takes at most 20 load balancers


def _owned(tag_descriptions: list[dict[str, Any]], cluster: str) -> list[dict[str, Any]]:
    return [d for d in tag_descriptions
            if {"Key": CLUSTER_TAG_PREFIX + cluster, "Value": "owned"} in d.get("Tags", [])]


def cluster_load_balancers(elb: Any, elbv2: Any, cluster: str) -> list[str]:
    """Names of the classic and ARNs of the v2 load balancers the cluster owns."""
    found: list[str] = []
    names = [lb["LoadBalancerName"] for page in elb.get_paginator("describe_load_balancers").paginate()
             for lb in page["LoadBalancerDescriptions"]]
    for i in range(0, len(names), _TAGS_PER_CALL):
        tagged = elb.describe_tags(LoadBalancerNames=names[i:i + _TAGS_PER_CALL])["TagDescriptions"]
        found += [d["LoadBalancerName"] for d in _owned(tagged, cluster)]
    arns = [lb["LoadBalancerArn"] for page in elbv2.get_paginator("describe_load_balancers").paginate()
            for lb in page["LoadBalancers"]]
    for i in range(0, len(arns), _TAGS_PER_CALL):
        tagged = elbv2.describe_tags(ResourceArns=arns[i:i + _TAGS_PER_CALL])["TagDescriptions"]
        found += [d["ResourceArn"] for d in _owned(tagged, cluster)]
    return found


def delete_load_balancer(elb: Any, elbv2: Any, name_or_arn: str) -> None:
    """Quiet when already gone (classic deletes are idempotent; v2 answers LoadBalancerNotFound)."""
    if not name_or_arn.startswith("arn:"):
        elb.delete_load_balancer(LoadBalancerName=name_or_arn)
        return
    try:
        elbv2.delete_load_balancer(LoadBalancerArn=name_or_arn)
    except Exception as exc:
        if error_code(exc) != "LoadBalancerNotFound":
            raise


def cluster_security_groups(ec2: Any, cluster: str) -> list[str]:
    """Ids of the security groups the cluster owns (its load balancers')."""
    pages = ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": f"tag:{CLUSTER_TAG_PREFIX}{cluster}", "Values": ["owned"]}])
    return [g["GroupId"] for page in pages for g in page["SecurityGroups"]]


def delete_security_group(ec2: Any, group_id: str) -> bool:
    """True when gone; False while a deleted load balancer's interfaces still hold it (AWS answers
    DependencyViolation for a while)."""
    try:
        ec2.delete_security_group(GroupId=group_id)
    except Exception as exc:
        code = error_code(exc)
        if code == "DependencyViolation":
            return False
        if code != "InvalidGroup.NotFound":
            raise
    return True
