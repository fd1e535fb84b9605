"""Phase 7: cost control.

Scale the target nodegroup to zero (minimum 0, desired 0; the maximum stays, EKS needs it >= 1) and
wait until its nodes are gone, then report what still costs money while idle, read from the world
(not from the state file) and priced with radstream.analytics.cost. The cluster, the Kinesis stream,
the buckets and the load balancer stay: deleting them is teardown's job, and the report says what
each of them costs and why it still exists. Destroy gives the nodegroup back its configured scaling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.context import Context

PHASE = 7
# EKS drains nodes honouring PodDisruptionBudgets (up to 15 minutes) before terminating them.
SCALE_TIMEOUT_S = 1800
GIB = 1024**3
LB_TYPE_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"


def _nodegroup(ctx: Context) -> dict[str, Any] | None:
    """The target nodegroup, unless it is absent or already being deleted (then nothing to scale)."""
    from radstream.aws.eks import describe_nodegroup

    found = describe_nodegroup(ctx.client("eks"), ctx.config.cluster_name, ctx.config.nodegroup.name)
    return None if found is None or found["status"] == "DELETING" else found


def _nodes(ctx: Context) -> list[str]:
    from radstream.kube.apply import kube_api, list_objects
    from radstream.kube.manifests import NODEGROUP_LABEL

    nodes = list_objects(kube_api(ctx), "Node", labels={NODEGROUP_LABEL: ctx.config.nodegroup.name})
    return sorted(n["metadata"]["name"] for n in nodes)


def _at_zero(nodegroup: dict[str, Any]) -> bool:
    scaling = nodegroup.get("scalingConfig") or {}
    return scaling.get("minSize") == 0 and scaling.get("desiredSize") == 0


def _configured_scaling(ctx: Context) -> dict[str, int]:
    ng = ctx.config.nodegroup
    return {"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size}


def _set_scaling(ctx: Context, scaling: dict[str, int]) -> None:
    """Change the nodegroup's scaling and wait until EKS is done updating it (EKS refuses another
    update, or a delete, while one runs)."""
    eks, cluster, name = ctx.client("eks"), ctx.config.cluster_name, ctx.config.nodegroup.name

    def active() -> bool:
        found = _nodegroup(ctx)
        return found is None or found["status"] == "ACTIVE"

    ctx.wait(f"nodegroup {name} ACTIVE", active, timeout=SCALE_TIMEOUT_S, interval=5.0)
    found = _nodegroup(ctx)
    if found is None or found.get("scalingConfig") == scaling:
        return
    eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name, scalingConfig=scaling)
    ctx.wait(f"nodegroup {name} scaled to {scaling['desiredSize']}", active, timeout=SCALE_TIMEOUT_S, interval=5.0)


class ScaleToZeroStep(Step):
    name = "nodegroup-to-zero"
    description = "scale the target nodegroup to 0 nodes and wait until they are gone"

    def check(self, ctx: Context) -> bool:
        found = _nodegroup(ctx)
        return found is None or (_at_zero(found) and found["status"] == "ACTIVE" and not _nodes(ctx))

    def plan(self, ctx: Context) -> list[Change]:
        found = _nodegroup(ctx) or {}
        scaling = found.get("scalingConfig") or {}
        return [Change("update", "eks nodegroup", ctx.config.nodegroup.name,
                       f"min/desired/max {scaling.get('minSize')}/{scaling.get('desiredSize')}/{scaling.get('maxSize')}"
                       f" -> 0/0/{scaling.get('maxSize')}; its {len(_nodes(ctx))} node(s) are drained and terminated")]

    def apply(self, ctx: Context) -> dict[str, Any]:
        found = _nodegroup(ctx)
        if found is None:
            return {}
        maximum = found["scalingConfig"]["maxSize"]
        _set_scaling(ctx, {"minSize": 0, "maxSize": maximum, "desiredSize": 0})
        ctx.wait(f"the nodes of {ctx.config.nodegroup.name} gone", lambda: not _nodes(ctx),
                 timeout=SCALE_TIMEOUT_S, interval=2.0)
        return {"parked_nodegroup": ctx.config.nodegroup.name}

    def verify(self, ctx: Context) -> None:
        if not self.check(ctx):
            raise VerifyFailed(f"nodegroup {ctx.config.nodegroup.name} is not at 0 nodes")

    def destroy(self, ctx: Context) -> None:
        """Back to config.nodegroup's scaling; the nodes themselves are awaited by phase 1's next run."""
        if _nodegroup(ctx) is not None:
            _set_scaling(ctx, _configured_scaling(ctx))


# -- what still costs money -------------------------------------------------------------------------
@dataclass(frozen=True)
class Billable:
    """One deployed thing that bills while idle, in radstream.analytics.cost.idle_cost's inventory terms."""

    resource: str
    why: str
    inventory: dict[str, Any]


def cost_report(items: list[Billable]) -> dict[str, Any]:
    """still_costing rows and the idle totals, priced by the built-in price table. Pure."""
    from radstream.analytics.cost import PRICES_AS_OF, idle_cost

    rows = []
    for item in items:
        priced = idle_cost(item.inventory)
        rows.append({"resource": item.resource, "why": item.why, "usd_per_hour": priced["per_hour"],
                     "usd_per_month": priced["per_month"]})
    return {"still_costing": rows,
            "idle_usd_per_hour": round(sum(r["usd_per_hour"] for r in rows), 6),
            "idle_usd_per_month": round(sum(r["usd_per_month"] for r in rows), 2),
            "prices_as_of": PRICES_AS_OF}


def _size(num_bytes: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1024**2)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes / 1024:.1f} KiB"


def _cluster_items(ctx: Context) -> list[Billable]:
    from radstream.aws.eks import (
        describe_cluster,
        describe_nodegroup,
        is_owned,
        list_nodegroups,
    )

    eks, cluster_name = ctx.client("eks"), ctx.config.cluster_name
    cluster = describe_cluster(eks, cluster_name)
    if cluster is None or cluster["status"] == "DELETING":
        return []
    why = ("the control plane bills by the hour while the cluster exists; teardown deletes it"
           if is_owned(cluster, ctx.names.deployment) else
           "adopted cluster: its control plane bills by the hour, and teardown leaves it (RadStream did not create it)")
    items = [Billable(f"eks cluster {cluster_name}", why, {"clusters": 1})]
    for name in list_nodegroups(eks, cluster_name):
        found = describe_nodegroup(eks, cluster_name, name)
        count = (found or {}).get("scalingConfig", {}).get("desiredSize", 0)
        if not count or found["status"] == "DELETING":
            continue
        instance = (found.get("instanceTypes") or ["?"])[0]
        group = {"instance_type": instance, "count": count, "disk_gb": found.get("diskSize") or 20,
                 "capacity_type": found.get("capacityType", "ON_DEMAND")}
        # Nodes in public subnets each hold a billed public IPv4 address.
        items.append(Billable(f"eks nodegroup {name}", f"{count} x {instance} node(s) running, with disks and public IPs",
                              {"nodegroups": [group], "public_ipv4": count}))
    service = _load_balancer_service(ctx)
    if service is not None:
        annotation = (service["metadata"].get("annotations") or {}).get(LB_TYPE_ANNOTATION, "")
        kind = "nlb" if annotation in ("nlb", "external", "nlb-ip") else "clb"
        items.append(Billable(f"load balancer of service {service['metadata']['namespace']}/{service['metadata']['name']}",
                              f"the LoadBalancer Service keeps an AWS {kind.upper()}; phase 3's destroy or teardown removes it",
                              {"load_balancers": {kind: 1}}))
    return items


def _load_balancer_service(ctx: Context) -> dict[str, Any] | None:
    from radstream.kube.apply import get, kube_api
    from radstream.kube.manifests import SERVICE

    service = get(kube_api(ctx), "Service", SERVICE, ctx.config.triton.namespace)
    return service if service and service["spec"].get("type") == "LoadBalancer" else None


def _data_items(ctx: Context) -> list[Billable]:
    from radstream.aws.inventory import repository_bytes, stored_bytes, stream_capacity

    items = []
    stream = stream_capacity(ctx.client("kinesis"), ctx.names.kinesis_stream)
    if stream and stream["mode"] == "PROVISIONED":
        items.append(Billable(f"kinesis stream {ctx.names.kinesis_stream}",
                              f"provisioned: {stream['shards']} shard(s) bill by the hour with or without traffic; "
                              "kept for the pipeline's telemetry, teardown deletes it",
                              {"kinesis_shards": stream["shards"]}))
    elif stream:
        items.append(Billable(f"kinesis stream {ctx.names.kinesis_stream}",
                              "on-demand: billed per stream-hour at a rate the built-in price table does not carry "
                              "(not counted here); teardown deletes it", {}))
    s3 = ctx.client("s3")
    for bucket in ctx.names.buckets().values():
        stored = stored_bytes(s3, bucket)
        if stored:
            items.append(Billable(f"s3 bucket {bucket}", f"{_size(stored)} stored (every version); teardown empties and deletes it",
                                  {"s3_gb": stored / GIB}))
    images = repository_bytes(ctx.client("ecr"), ctx.names.ecr_repository)
    if images:
        items.append(Billable(f"ecr repository {ctx.names.ecr_repository}", f"{_size(images)} of images; teardown deletes it",
                              {"ecr_gb": images / GIB}))
    return items


class CostReportStep(Step):
    name = "still-costing"
    description = "what still costs money while idle, read from the world and priced"

    def check(self, ctx: Context) -> bool:
        return True  # a report: nothing to change; outputs() reads and prices the world on every run

    def outputs(self, ctx: Context) -> dict[str, Any]:
        report = cost_report(_cluster_items(ctx) + _data_items(ctx))
        for row in report["still_costing"]:
            ctx.log(f"still costing ${row['usd_per_hour']:.4f}/h: {row['resource']} ({row['why']})")
        ctx.log(f"idle cost: ${report['idle_usd_per_hour']:.4f}/hour, ${report['idle_usd_per_month']:.2f}/month "
                f"(AWS prices of {report['prices_as_of']}; `radstream teardown` brings it to 0)")
        return report


class CleanupPhase(Phase):
    number = PHASE
    name = "cleanup"
    summary = "cost control: scale the nodegroup to 0, report what still costs money"

    def steps(self, ctx: Context) -> list[Step]:
        return [ScaleToZeroStep(), CostReportStep()]
