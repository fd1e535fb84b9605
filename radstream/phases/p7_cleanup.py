"""Phase 7: cost control.

Scale the target nodegroup to zero (minimum 0, desired 0; the maximum stays, EKS needs it >= 1) and
wait until its nodes are gone, then report what still costs money while idle, read from the account
(radstream.aws.costing, not the state file) and priced by radstream.analytics.cost.idle_cost, the
model `radstream cost` uses too. The cluster, the Kinesis stream (it keeps billing: phase 7 does not
stop it), the buckets and the load balancer stay: deleting them is teardown's job, and the report says what
each of them costs and why it still exists. Destroy gives the nodegroup back its configured scaling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.context import Context

PHASE = 7
# EKS drains nodes honouring PodDisruptionBudgets (up to 15 minutes) before terminating them.
SCALE_TIMEOUT_S = 1800


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
    from radstream.aws.eks import update_nodegroup_scaling

    eks, cluster, name = ctx.client("eks"), ctx.config.cluster_name, ctx.config.nodegroup.name

    def active() -> bool:
        found = _nodegroup(ctx)
        return found is None or found["status"] == "ACTIVE"

    ctx.wait(f"nodegroup {name} ACTIVE", active, timeout=SCALE_TIMEOUT_S, interval=5.0)
    found = _nodegroup(ctx)
    if found is None or found.get("scalingConfig") == scaling:
        return
    update_nodegroup_scaling(eks, cluster, name, scaling)
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

    # A teardown deletes the nodegroup next (phase 1): scaling it back up first would only start nodes.
    teardown_skips = True

    def destroy(self, ctx: Context) -> None:
        """Back to config.nodegroup's scaling; the nodes themselves are awaited by phase 1's next run."""
        if _nodegroup(ctx) is not None:
            _set_scaling(ctx, _configured_scaling(ctx))


# -- what still costs money -------------------------------------------------------------------------
# Why each kind of idle cost line is still there after phase 7, and what removes it.
WHY = {
    "cluster": "the control plane bills by the hour while the cluster exists; teardown deletes it",
    "adopted": "adopted cluster: its control plane bills by the hour, and teardown leaves it (RadStream did not create it)",
    "nodes": "its nodes still run (phase 7 parks only nodegroup.name); phase 1 deletes other nodegroups",
    "disks": "each running node's root volume bills by the GB-month",
    "public_ipv4": "every public IPv4 address bills by the hour, in use or not",
    "nat": "tagged with this deployment: bills by the hour until it is deleted",
    "endpoints": "tagged with this deployment: bills per zone and hour until it is deleted",
    "kinesis": "kept for the pipeline's telemetry, billed with or without traffic; teardown deletes it",
    "load_balancer": "the LoadBalancer Service or the public door keeps it; phase 3's destroy or teardown removes it",
    "waf": "the public door's web ACL bills by the month with its rules; phase 3's destroy or teardown removes it",
    "secrets": "the de-identification key bills by the month while it lives; teardown schedules its deletion "
               "(not billed meanwhile)",
    "s3": "stored bytes, every version; teardown empties and deletes the bucket",
    "ecr": "the serving images; teardown deletes the repository",
}


def cost_report(inventory: dict[str, Any]) -> dict[str, Any]:
    """still_costing rows (one per resource, with why it bills and where its quantities were read)
    and the idle totals, priced by radstream.analytics.cost.idle_cost. Pure."""
    from radstream.analytics.cost import idle_cost

    idle = idle_cost(inventory)
    rows: dict[str, dict[str, Any]] = {}
    for line in idle["lines"]:
        kind = "adopted" if line["kind"] == "cluster" and inventory.get("cluster_owned") is False else line["kind"]
        row = rows.setdefault(line["resource"], {"resource": line["resource"], "why": WHY[kind], "source": [],
                                                 "usd_per_hour": 0.0, "usd_per_month": 0.0})
        row["usd_per_hour"] = round(row["usd_per_hour"] + line["per_hour"], 6)
        row["usd_per_month"] = round(row["usd_per_month"] + line["per_month"], 4)
        if line["source"] and line["source"] not in row["source"]:
            row["source"].append(line["source"])
    return {"still_costing": [row | {"source": "; ".join(row["source"])} for row in rows.values()],
            "idle_usd_per_hour": idle["per_hour"], "idle_usd_per_month": idle["per_month"],
            "notes": idle["notes"], "prices_as_of": idle["prices_as_of"]}


class CostReportStep(Step):
    name = "still-costing"
    description = "what still costs money while idle, read from the account and priced"

    def check(self, ctx: Context) -> bool:
        return True  # a report: nothing to change; outputs() reads and prices the account on every run

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.analytics.cost import deployment_inventory

        report = cost_report(deployment_inventory(ctx))
        for row in report["still_costing"]:
            ctx.log(f"still costing ${row['usd_per_hour']:.4f}/h: {row['resource']} ({row['why']})")
        for note in report["notes"]:
            ctx.log(f"note: {note}")
        ctx.log(f"idle cost: ${report['idle_usd_per_hour']:.4f}/hour, ${report['idle_usd_per_month']:.2f}/month "
                f"(AWS prices of {report['prices_as_of']}; `radstream teardown` brings it to 0)")
        return report


class CleanupPhase(Phase):
    number = PHASE
    name = "cleanup"
    summary = "cost control: scale the nodegroup to 0, report what still costs money"

    def steps(self, ctx: Context) -> list[Step]:
        return [ScaleToZeroStep(), CostReportStep()]
