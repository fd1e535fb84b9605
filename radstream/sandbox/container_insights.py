"""What the amazon-cloudwatch-observability add-on's CloudWatch agent reports, in the sandbox:
Container Insights' pod and node CPU and memory (namespace ContainerInsights), computed from the
resource metrics the emulated metrics-server measured (the local Triton's real use), put into the
emulated account's CloudWatch every agent interval. As on EKS, the agent puts metrics with the node
role: without CloudWatchAgentServerPolicy on it, nothing arrives (the agent logs AccessDenied)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from radstream.sandbox.kube.kinds import Obj

log = logging.getLogger(__name__)

AGENT_INTERVAL_S = 60.0  # the agent's default metrics_collection_interval
AGENT_POLICY = "CloudWatchAgentServerPolicy"


def _usage(metrics: Obj) -> tuple[float, float]:
    from radstream.sandbox.kube.scheduler import parse_quantity

    containers = metrics.get("containers") or []
    return (sum(parse_quantity(c["usage"]["cpu"]) for c in containers),
            sum(parse_quantity(c["usage"]["memory"]) for c in containers))


def datapoints(cluster: str, pod_metrics: list[Obj], pods: dict[tuple[str, str], Obj], nodes: dict[str, Obj]) -> list[dict[str, Any]]:
    """pod_/node_ cpu and memory utilisation, in percent of the node's capacity as Container
    Insights defines them, by (ClusterName, Namespace, PodName), (ClusterName, Namespace) and
    (ClusterName) for pods, (ClusterName) and (ClusterName, NodeName) for nodes."""
    from radstream.sandbox.kube.scheduler import parse_quantity

    at = datetime.now(timezone.utc).replace(tzinfo=None)  # moto keeps metric times naive (UTC)
    points: list[dict[str, Any]] = []
    by_node: dict[str, list[float]] = {name: [0.0, 0.0] for name in nodes}

    def put(name: str, value: float, **dimensions: str) -> None:
        points.append({"MetricName": name, "Value": round(value, 3), "Unit": "Percent", "Timestamp": at,
                       "Dimensions": [{"Name": "ClusterName", "Value": cluster},
                                      *({"Name": k, "Value": v} for k, v in dimensions.items())]})

    for metrics in pod_metrics:
        meta = metrics["metadata"]
        pod = pods.get((meta["namespace"], meta["name"]))
        node = nodes.get((pod or {}).get("spec", {}).get("nodeName", ""))
        if pod is None or node is None:
            continue
        capacity = node["status"]["capacity"]
        cpu, memory = _usage(metrics)
        by_node[node["metadata"]["name"]][0] += cpu
        by_node[node["metadata"]["name"]][1] += memory
        cpu_pct, memory_pct = cpu * 100 / parse_quantity(capacity["cpu"]), memory * 100 / parse_quantity(capacity["memory"])
        for dimensions in ({"Namespace": meta["namespace"], "PodName": meta["name"]}, {"Namespace": meta["namespace"]}, {}):
            put("pod_cpu_utilization", cpu_pct, **dimensions)
            put("pod_memory_utilization", memory_pct, **dimensions)
    for name, (cpu, memory) in by_node.items():
        capacity = nodes[name]["status"]["capacity"]
        for dimensions in ({"NodeName": name}, {}):
            put("node_cpu_utilization", cpu * 100 / parse_quantity(capacity["cpu"]), **dimensions)
            put("node_memory_utilization", memory * 100 / parse_quantity(capacity["memory"]), **dimensions)
    return points


def node_role_may_put(account: str, role_arns: list[str]) -> bool:
    """Whether every node role carries the agent's managed policy (this process's moto IAM)."""
    from moto.iam.models import iam_backends

    iam = iam_backends[account]["global"]
    for arn in role_arns:
        role = iam.roles.get(next((rid for rid, r in iam.roles.items() if r.arn == arn), ""))
        if role is None or not any(p.endswith(f"/{AGENT_POLICY}") for p in role.managed_policies):
            return False
    return bool(role_arns)


def publish(account: str, region: str, points: list[dict[str, Any]]) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    if points:
        cloudwatch_backends[account][region].put_metric_data("ContainerInsights", points)
