"""What of the deployment bills while idle, read from the account: the inventory that
radstream.analytics.cost.idle_cost prices. Read-only. Every quantity says where it was read
("source"), so a priced line can be checked against the account."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from radstream.aws.tags import from_list
from radstream.names import TAG_DEPLOYMENT

ClientFactory = Callable[[str], Any]

EKS_DEFAULT_DISK_GIB = 20  # what EKS gives a nodegroup created without diskSize or launch template
# What the Kubernetes cloud provider tags a Service's load balancer with.
CLUSTER_TAG = "kubernetes.io/cluster/{}"
SERVICE_TAG = "kubernetes.io/service-name"
ELBV2_KINDS = {"network": "nlb", "application": "alb", "gateway": "gwlb"}
TAGS_PER_CALL = 20  # DescribeTags takes at most 20 load balancers


def _nodegroups(client: ClientFactory, cluster: str) -> list[dict[str, Any]]:
    from radstream.aws.eks import describe_nodegroup, list_nodegroups, nodegroup_disk_gib

    eks, groups = client("eks"), []
    for name in list_nodegroups(eks, cluster):
        found = describe_nodegroup(eks, cluster, name)
        if found is None or found["status"] == "DELETING":  # gone since the listing, or going
            continue
        count = (found.get("scalingConfig") or {}).get("desiredSize", 0)
        if not count:
            continue
        if found.get("launchTemplate") or found.get("diskSize"):
            disk = nodegroup_disk_gib(found, client("ec2"))
            disk_source = "its launch template" if found.get("launchTemplate") else "diskSize"
        else:
            disk, disk_source = EKS_DEFAULT_DISK_GIB, "EKS's default"
        groups.append({"name": name, "instance_type": (found.get("instanceTypes") or ["?"])[0], "count": count,
                       "disk_gb": disk, "capacity_type": found.get("capacityType", "ON_DEMAND"),
                       "source": f"eks DescribeNodegroup {name}: desiredSize, instanceTypes, capacityType; "
                                 f"disk from {disk_source}"})
    return groups


def _node_addresses(ec2: Any, cluster: str) -> tuple[int, int]:
    """(running instances EKS tagged as this cluster's nodes, how many of them hold a public IPv4)."""
    instances = [i for page in ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag:eks:cluster-name", "Values": [cluster]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        for reservation in page["Reservations"] for i in reservation["Instances"]]
    return len(instances), sum(1 for i in instances if i.get("PublicIpAddress"))


def _tagged(resource: dict[str, Any], deployment: str) -> bool:
    # Checked here, not by a tag: filter, which moto's DescribeNatGateways ignores.
    return from_list(resource.get("Tags", [])).get(TAG_DEPLOYMENT) == deployment


def _nat_gateways(ec2: Any, deployment: str) -> list[dict[str, Any]]:
    return [g for page in ec2.get_paginator("describe_nat_gateways").paginate()
            for g in page["NatGateways"] if g["State"] in ("pending", "available") and _tagged(g, deployment)]


def _interface_endpoints(ec2: Any, deployment: str) -> list[dict[str, Any]]:
    filters = [{"Name": "vpc-endpoint-type", "Values": ["Interface"]}]
    return [e for page in ec2.get_paginator("describe_vpc_endpoints").paginate(Filters=filters)
            for e in page["VpcEndpoints"]
            if e["State"].lower() not in ("deleting", "deleted", "failed", "rejected") and _tagged(e, deployment)]


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), TAGS_PER_CALL):
        yield items[start:start + TAGS_PER_CALL]


def _ours(tags: dict[str, str], cluster: str, deployment: str) -> bool:
    return CLUSTER_TAG.format(cluster) in tags or tags.get(TAG_DEPLOYMENT) == deployment


def _load_balancers(client: ClientFactory, cluster: str, deployment: str) -> list[dict[str, Any]]:
    """Classic and v2 load balancers tagged for the cluster or the deployment."""
    found = []
    elb = client("elb")
    names = [lb["LoadBalancerName"] for page in elb.get_paginator("describe_load_balancers").paginate()
             for lb in page["LoadBalancerDescriptions"]]
    for chunk in _chunks(names):
        for described in elb.describe_tags(LoadBalancerNames=chunk)["TagDescriptions"]:
            tags = from_list(described.get("Tags", []))
            if _ours(tags, cluster, deployment):
                found.append({"name": described["LoadBalancerName"], "kind": "clb", "service": tags.get(SERVICE_TAG),
                              "source": f"elb DescribeLoadBalancers + DescribeTags {described['LoadBalancerName']}"})
    elbv2 = client("elbv2")
    kinds = {lb["LoadBalancerArn"]: (lb["LoadBalancerName"], ELBV2_KINDS.get(lb.get("Type", ""), lb.get("Type", "?")))
             for page in elbv2.get_paginator("describe_load_balancers").paginate() for lb in page["LoadBalancers"]}
    for chunk in _chunks(sorted(kinds)):
        for described in elbv2.describe_tags(ResourceArns=chunk)["TagDescriptions"]:
            tags = from_list(described.get("Tags", []))
            if _ours(tags, cluster, deployment):
                name, kind = kinds[described["ResourceArn"]]
                found.append({"name": name, "kind": kind, "service": tags.get(SERVICE_TAG),
                              "source": f"elbv2 DescribeLoadBalancers + DescribeTags {name}"})
    return sorted(found, key=lambda lb: lb["name"])


def _web_acls(wafv2: Any, deployment: str) -> list[dict[str, Any]]:
    """The deployment's web ACLs (its public door's) with their rule counts: WAF bills both monthly."""
    found = []
    for acl in wafv2.list_web_acls(Scope="REGIONAL", Limit=100).get("WebACLs", []):
        if acl["Name"].startswith(f"{deployment}-"):
            rules = wafv2.get_web_acl(Name=acl["Name"], Scope="REGIONAL", Id=acl["Id"])["WebACL"].get("Rules", [])
            found.append({"name": acl["Name"], "rules": len(rules),
                          "source": f"wafv2 ListWebACLs + GetWebACL {acl['Name']}: {len(rules)} rules"})
    return found


def _cluster(client: ClientFactory, cluster: str, deployment: str) -> dict[str, Any]:
    from radstream.aws.eks import cluster_versions, describe_cluster, is_owned, support_status

    eks = client("eks")
    found = describe_cluster(eks, cluster)
    if found is None or found["status"] == "DELETING":
        return {}
    return {"clusters": 1, "cluster_name": cluster, "cluster_owned": is_owned(found, deployment),
            "cluster_version": found["version"], "cluster_support": support_status(cluster_versions(eks), found["version"]),
            "nodegroups": _nodegroups(client, cluster)}


def live_inventory(client: ClientFactory, *, deployment: str, cluster: str, stream: str, buckets: list[str],
                   repository: str) -> dict[str, Any]:
    """The idle-cost inventory of what the account holds now (see idle_cost for its keys)."""
    from radstream.aws.inventory import deployment_secrets, repository_bytes, stored_bytes, stream_capacity

    ec2 = client("ec2")
    inventory: dict[str, Any] = {**_cluster(client, cluster, deployment), "notes": [], "sources": {}}
    sources, notes = inventory["sources"], inventory["notes"]
    if inventory.get("clusters"):
        sources["clusters"] = f"eks DescribeCluster {cluster}, support from DescribeClusterVersions"
    nodes = sum(g["count"] for g in inventory.get("nodegroups", []))
    instances, node_ips = _node_addresses(ec2, cluster) if nodes else (0, 0)
    if instances < nodes:
        notes.append(f"{nodes - instances} of {nodes} node(s) have no EC2 instance to read: "
                     "their public IPv4 address, if any, is not counted")
    nats = _nat_gateways(ec2, deployment)
    nat_ips = sum(1 for g in nats for a in g.get("NatGatewayAddresses", []) if a.get("PublicIp"))
    inventory["public_ipv4"] = node_ips + nat_ips
    sources["public_ipv4"] = (f"ec2 DescribeInstances tagged eks:cluster-name={cluster}: {node_ips} node address(es); "
                              f"DescribeNatGateways: {nat_ips} NAT address(es)")
    inventory["nat_gateways"] = len(nats)
    sources["nat_gateways"] = f"ec2 DescribeNatGateways tagged {TAG_DEPLOYMENT}={deployment}: " \
                              + (", ".join(g["NatGatewayId"] for g in nats) or "none")
    endpoints = _interface_endpoints(ec2, deployment)
    inventory["vpc_endpoints"] = sum(max(1, len(e.get("SubnetIds", []))) for e in endpoints)
    sources["vpc_endpoints"] = f"ec2 DescribeVpcEndpoints (Interface) tagged {TAG_DEPLOYMENT}={deployment}: " \
                               + (", ".join(f"{e['VpcEndpointId']} in {len(e.get('SubnetIds', []))} zone(s)"
                                            for e in endpoints) or "none")
    inventory["load_balancers"] = _load_balancers(client, cluster, deployment)
    inventory["web_acls"] = _web_acls(client("wafv2"), deployment)
    inventory["secrets"] = [{"name": found["Name"], "source": f"secretsmanager ListSecrets {found['Name']}"}
                            for found in deployment_secrets(client("secretsmanager"), deployment)]
    capacity = stream_capacity(client("kinesis"), stream)
    if capacity:
        key = "kinesis_shards" if capacity["mode"] == "PROVISIONED" else "kinesis_on_demand_streams"
        inventory[key] = capacity["shards"] if key == "kinesis_shards" else 1
        inventory["kinesis_stream"] = stream
        sources[key] = f"kinesis DescribeStreamSummary {stream}: {capacity['mode']}, {capacity['shards']} open shard(s)"
    s3 = client("s3")
    inventory["buckets"] = [{"name": b, "bytes": n, "source": f"s3 ListObjectVersions {b}: every version's Size"}
                            for b in buckets if (n := stored_bytes(s3, b))]
    images = repository_bytes(client("ecr"), repository)
    inventory["repositories"] = [{"name": repository, "bytes": images,
                                  "source": f"ecr DescribeImages {repository}: imageSizeInBytes"}] if images else []
    return inventory


def deployment_costs(ce: Any, deployment: str, start: date, end: date, granularity: str) -> list[dict[str, Any]]:
    """Cost Explorer's ResultsByTime over every page: the unblended cost of everything tagged with
    this deployment, grouped by service, from start up to (not including) end.

    Works once radstream:deployment is activated as a cost allocation tag; the data lags about a
    day; each Cost Explorer request is billed ($0.01)."""
    request: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": granularity,
        "Metrics": ["UnblendedCost"],
        "Filter": {"Tags": {"Key": TAG_DEPLOYMENT, "Values": [deployment], "MatchOptions": ["EQUALS"]}},
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    results: list[dict[str, Any]] = []
    while True:
        page = ce.get_cost_and_usage(**request)
        results += page.get("ResultsByTime", [])
        if not page.get("NextPageToken"):
            return results
        request["NextPageToken"] = page["NextPageToken"]
