"""What the deployment costs: a built-in us-east-1 price table, the idle cost of what is deployed,
the marginal cost per 1000 images from measured durations, and (on aws) Cost Explorer by tag.

Pure arithmetic on plain dicts, except `cost_explorer` (a Cost Explorer client) and the functions
under "from a live deployment", which read the account."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

PRICES_AS_OF = "2025-01-15"
PRICE_SOURCE = "AWS public on-demand prices, us-east-1, Linux, shared tenancy (USD)"
HOURS_PER_MONTH = 730  # AWS's own convention for monthly estimates
GIB = 1024**3

# USD. Per-unit prices (a request, a transition) are the published per-million/-thousand prices divided.
PRICES: dict[str, Any] = {
    "eks_cluster_hour": 0.10,  # standard Kubernetes version support
    "eks_cluster_extended_hour": 0.60,  # a version past its 14 months of standard support
    "ec2_hour": {
        "t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416,
        "t3.large": 0.0832, "t3.xlarge": 0.1664, "t3.2xlarge": 0.3328,
        "t3a.medium": 0.0376, "t3a.large": 0.0752,
        "m5.large": 0.096, "m5.xlarge": 0.192, "m5.2xlarge": 0.384,
        "m6i.large": 0.096, "m6i.xlarge": 0.192,
        "c5.large": 0.085, "c5.xlarge": 0.17, "c5.2xlarge": 0.34,
        "c6i.large": 0.085, "c6i.xlarge": 0.17,
        "r5.large": 0.126,
        "g4dn.xlarge": 0.526, "g4dn.2xlarge": 0.752,
        "g5.xlarge": 1.006,
        "p3.2xlarge": 3.06,
    },
    "ebs_gp3_gb_month": 0.08,  # node root volumes
    "public_ipv4_hour": 0.005,  # every public IPv4 address, in use or not
    "nat_gateway_hour": 0.045,  # plus $0.045 per GB processed
    "vpc_endpoint_zone_hour": 0.01,  # an interface endpoint bills in every zone it has a network interface in
    "lambda_gb_second": 0.0000166667,  # x86
    "lambda_request": 0.20 / 1e6,
    "stepfunctions_transition": 0.025 / 1000,  # standard workflows
    "kinesis_shard_hour": 0.015,  # provisioned mode
    "kinesis_on_demand_stream_hour": 0.04,  # on-demand mode, plus data in and out
    "kinesis_put_unit": 0.014 / 1e6,
    "kinesis_put_unit_bytes": 25 * 1024,
    "firehose_gb": 0.029,  # first 500 TB/month
    "firehose_record_rounding_bytes": 5 * 1024,  # each record is billed as a multiple of 5 KB
    "s3_gb_month": 0.023,  # Standard, first 50 TB
    "s3_put_request": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_get_request": 0.0004 / 1000,  # GET, HEAD, SELECT
    "elb_hour": {"clb": 0.025, "nlb": 0.0225, "alb": 0.0225},
    "waf_web_acl_month": 5.00,  # plus $0.60 per million requests
    "waf_rule_month": 1.00,  # each rule, a managed rule group counting as one
    "secret_month": 0.40,  # nothing while scheduled for deletion
    "elb_capacity_unit_hour": {"clb": 0.0, "nlb": 0.006, "alb": 0.008},  # CLB bills $0.008/GB instead
    "ecr_gb_month": 0.10,
    "athena_tb_scanned": 5.0,  # 10 MB minimum per query
}


def _line(kind: str, item: str, resource: str, quantity: float, unit: str, unit_price: float | None,
          source: str | None, *, monthly: bool = False) -> dict[str, Any]:
    """One priced item; hourly prices and GB-month prices both end up per hour and per month."""
    cost = 0.0 if unit_price is None else quantity * unit_price
    per_hour, per_month = (cost / HOURS_PER_MONTH, cost) if monthly else (cost, cost * HOURS_PER_MONTH)
    return {"kind": kind, "item": item, "resource": resource, "quantity": quantity, "unit": unit,
            "unit_price": unit_price, "per_hour": round(per_hour, 6), "per_month": round(per_month, 4),
            "source": source}


def _cluster_lines(inventory: Mapping[str, Any], prices: Mapping[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    count, source = inventory.get("clusters"), (inventory.get("sources") or {}).get("clusters")
    if not count:
        return []
    resource = f"eks cluster {inventory.get('cluster_name') or ''}".strip()
    if inventory.get("cluster_support") == "EXTENDED_SUPPORT":
        notes.append(f"Kubernetes {inventory.get('cluster_version') or 'version'} is past standard support: "
                     "the control plane costs six times as much; upgrade cluster.version")
        return [_line("cluster", "EKS control plane (extended support)", resource, count, "cluster-hour",
                      prices["eks_cluster_extended_hour"], source)]
    return [_line("cluster", "EKS control plane", resource, count, "cluster-hour", prices["eks_cluster_hour"], source)]


def _node_lines(inventory: Mapping[str, Any], prices: Mapping[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    lines = []
    for group in inventory.get("nodegroups", []):
        kind, count = group["instance_type"], group.get("count", 0)
        if not count:
            continue
        resource = f"eks nodegroup {group['name']}" if group.get("name") else f"{kind} nodes"
        price = prices["ec2_hour"].get(kind)
        if price is None:
            notes.append(f"no built-in price for instance type {kind}: its {count} node(s) are not counted")
        elif group.get("capacity_type") == "SPOT":
            notes.append(f"{kind} nodes are spot: priced at on-demand, an upper bound")
        lines.append(_line("nodes", f"EC2 {kind} nodes", resource, count, "instance-hour", price, group.get("source")))
        if group.get("disk_gb"):
            lines.append(_line("disks", f"EBS gp3 root volumes ({kind})", resource, count * group["disk_gb"], "GB-month",
                               prices["ebs_gp3_gb_month"], group.get("source"), monthly=True))
    return lines


# (inventory key, kind, item, resource, unit, price key) of the counts priced by the hour.
_HOURLY = (
    ("public_ipv4", "public_ipv4", "Public IPv4 addresses", "public IPv4 addresses", "address-hour", "public_ipv4_hour"),
    ("nat_gateways", "nat", "NAT gateways", "nat gateways", "gateway-hour", "nat_gateway_hour"),
    ("vpc_endpoints", "endpoints", "VPC interface endpoints", "vpc interface endpoints", "endpoint-zone-hour",
     "vpc_endpoint_zone_hour"),
    ("kinesis_shards", "kinesis", "Kinesis shards", "kinesis stream", "shard-hour", "kinesis_shard_hour"),
    ("kinesis_on_demand_streams", "kinesis", "Kinesis on-demand stream", "kinesis stream", "stream-hour",
     "kinesis_on_demand_stream_hour"),
)


def idle_cost(inventory: Mapping[str, Any], prices: Mapping[str, Any] = PRICES) -> dict[str, Any]:
    """What the deployed resources cost with no traffic at all: one line per billed thing found,
    none for what the inventory does not hold.

    inventory (absent keys count as none): clusters, cluster_name, cluster_version,
    cluster_support ("STANDARD_SUPPORT"|"EXTENDED_SUPPORT"); nodegroups [{name, instance_type,
    count, disk_gb, capacity_type, source}]; counts public_ipv4, nat_gateways, vpc_endpoints (one per
    endpoint and zone), kinesis_shards or kinesis_on_demand_streams (with kinesis_stream);
    load_balancers [{name, kind: clb|nlb|alb, service, source}]; web_acls [{name, rules, source}];
    secrets [{name, source}]; buckets and repositories [{name,
    bytes, source}]; sources {count key: where it was read}; notes [what could not be read]."""
    notes = list(inventory.get("notes") or [])
    sources = inventory.get("sources") or {}
    lines = _cluster_lines(inventory, prices, notes) + _node_lines(inventory, prices, notes)
    for key, kind, item, resource, unit, price in _HOURLY:
        if inventory.get(key):
            if kind == "kinesis" and inventory.get("kinesis_stream"):
                resource = f"kinesis stream {inventory['kinesis_stream']}"
            lines.append(_line(kind, item, resource, inventory[key], unit, prices[price], sources.get(key)))
    for lb in inventory.get("load_balancers") or []:
        price = prices["elb_hour"].get(lb["kind"])
        if price is None:
            notes.append(f"no built-in price for a {lb['kind']} load balancer: {lb['name']} is not counted")
        resource = f"load balancer of service {lb['service']}" if lb.get("service") else f"load balancer {lb['name']}"
        lines.append(_line("load_balancer", f"Load balancer ({lb['kind'].upper()})", resource, 1, "LB-hour", price,
                           lb.get("source")))
    for acl in inventory.get("web_acls") or []:
        lines.append(_line("waf", f"WAF web ACL and its {acl['rules']} rules", f"web acl {acl['name']}", 1, "web-ACL-month",
                           prices["waf_web_acl_month"] + acl["rules"] * prices["waf_rule_month"], acl.get("source"),
                           monthly=True))
    for secret in inventory.get("secrets") or []:
        lines.append(_line("secrets", "Secrets Manager secret", f"secret {secret['name']}", 1, "secret-month",
                           prices["secret_month"], secret.get("source"), monthly=True))
    for kind, key, item, label, price in (("s3", "buckets", "S3 storage", "s3 bucket", "s3_gb_month"),
                                          ("ecr", "repositories", "ECR image storage", "ecr repository", "ecr_gb_month")):
        for found in inventory.get(key) or []:
            lines.append(_line(kind, item, f"{label} {found['name']}", found["bytes"] / GIB, "GB-month", prices[price],
                               found.get("source"), monthly=True))
    return {
        "lines": lines,
        "per_hour": round(sum(line["per_hour"] for line in lines), 6),
        "per_month": round(sum(line["per_month"] for line in lines), 2),
        "notes": notes,
        "prices_as_of": PRICES_AS_OF,
        "price_source": PRICE_SOURCE,
    }


@dataclass
class ImageWorkload:
    """What one image costs to push through the pipeline, in billable units.

    lambda_ms: mean billed duration of each Lambda invocation, by stage (measured from telemetry).
    The request counts follow the pipeline: the client PUTs image and sidecar; validate GETs the
    sidecar and HEADs the image; prepare GETs the image and PUTs the tensor; inference GETs the
    tensor; store PUTs the result."""

    lambda_ms: dict[str, float]
    lambda_memory_mb: int = 1024
    lambda_invocations: int = 5
    transitions: int = 5
    s3_puts: int = 4
    s3_gets: int = 4
    telemetry_records: int = 1
    telemetry_record_bytes: int = 700
    notes: list[str] = field(default_factory=list)


def cost_per_1000_images(work: ImageWorkload, prices: Mapping[str, Any] = PRICES, *,
                         fixed_per_hour: float | None = None, images_per_hour: float | None = None) -> dict[str, Any]:
    """Marginal cost of 1000 images; with a measured throughput, also the fixed infrastructure's
    share (idle cost per hour spread over the images one hour carries)."""
    n = 1000
    gb_seconds = n * sum(work.lambda_ms.values()) / 1000 * work.lambda_memory_mb / 1024
    record_units = math.ceil(work.telemetry_record_bytes / prices["kinesis_put_unit_bytes"])
    billed_record = math.ceil(work.telemetry_record_bytes / prices["firehose_record_rounding_bytes"]) \
        * prices["firehose_record_rounding_bytes"]
    items = [
        ("Lambda duration", gb_seconds, "GB-second", prices["lambda_gb_second"]),
        ("Lambda requests", n * work.lambda_invocations, "request", prices["lambda_request"]),
        ("Step Functions transitions", n * work.transitions, "transition", prices["stepfunctions_transition"]),
        ("S3 PUT requests", n * work.s3_puts, "request", prices["s3_put_request"]),
        ("S3 GET requests", n * work.s3_gets, "request", prices["s3_get_request"]),
        ("Kinesis PUT payload units", n * work.telemetry_records * record_units, "unit", prices["kinesis_put_unit"]),
        ("Firehose ingestion", n * work.telemetry_records * billed_record / GIB, "GB", prices["firehose_gb"]),
    ]
    lines = [{"item": item, "quantity": round(q, 9), "unit": unit, "unit_price": price, "cost": round(q * price, 8)}
             for item, q, unit, price in items]
    notes = list(work.notes)
    if fixed_per_hour is not None and images_per_hour:
        share = fixed_per_hour * n / images_per_hour
        lines.append({"item": f"fixed infrastructure at {images_per_hour:.0f} images/hour", "quantity": n / images_per_hour,
                      "unit": "hour", "unit_price": fixed_per_hour, "cost": round(share, 8)})
    else:
        notes.append("fixed costs (cluster, nodes, shards, load balancer) are in the idle cost, not here")
    total = sum(line["cost"] for line in lines)
    return {"lines": lines, "per_1000_images": round(total, 6), "per_image": round(total / n, 9), "notes": notes,
            "prices_as_of": PRICES_AS_OF}


def success_path(asl: Mapping[str, Any]) -> list[str]:
    """The states a successful execution enters, in order (following Next from StartAt)."""
    states, path = asl["States"], []
    current: str | None = asl["StartAt"]
    while current is not None:
        if current in path:
            raise ValueError(f"the state machine loops back to {current!r}; cannot count transitions")
        path.append(current)
        state = states[current]
        current = None if state.get("End") or state["Type"] in ("Succeed", "Fail") else state.get("Next")
    return path


def workload_from_measurements(stage_rows: Sequence[Mapping[str, Any]], asl: Mapping[str, Any],
                               lambda_memory_mb: int) -> ImageWorkload:
    """An ImageWorkload from the `events_by_stage` rows (mean ms per stage) and the state machine."""
    measured = {row["stage"]: float(row["avg_ms"]) for row in stage_rows if row.get("avg_ms") is not None}
    return _workload(measured, asl, lambda_memory_mb,
                     "Lambda durations: the pipeline's own stage timings in the telemetry (mean per stage); "
                     "the telemetry stage does not time itself, so its duration is not counted")


def workload_from_durations(durations_ms: Mapping[str, float], asl: Mapping[str, Any], lambda_memory_mb: int,
                            measured_at: str) -> ImageWorkload:
    """An ImageWorkload from each Task state's handler duration, as `radstream bench pipeline`
    measured them calling the handlers directly (radstream.bench.DURATIONS_FILE)."""
    return _workload(dict(durations_ms), asl, lambda_memory_mb,
                     f"Lambda durations: every function's handler as `radstream bench pipeline` measured it at "
                     f"{measured_at} (mean of its direct run)")


def _workload(lambda_ms: dict[str, float], asl: Mapping[str, Any], lambda_memory_mb: int, note: str) -> ImageWorkload:
    path = success_path(asl)
    tasks = sum(1 for s in path if asl["States"][s]["Type"] == "Task")
    return ImageWorkload(lambda_ms=lambda_ms, lambda_memory_mb=lambda_memory_mb, lambda_invocations=tasks,
                         transitions=len(path), notes=[note])


def bench_durations(path: Path) -> tuple[dict[str, float], str] | None:
    """(durations per Task state, when measured) from bench pipeline's record; None without one."""
    try:
        record = json.loads(path.read_text())
        return {str(k): float(v) for k, v in record["durations_ms"].items()}, str(record["measured_at"])
    except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
        return None


def cost_explorer(ce: Any, deployment: str, start: date, end: date, granularity: str = "DAILY") -> dict[str, Any]:
    """Unblended cost of everything tagged with this deployment, per service and per period
    (read by radstream.aws.costing.deployment_costs, which says what the data needs and costs)."""
    from radstream.aws.costing import deployment_costs

    by_service: dict[str, float] = {}
    periods = []
    currency = "USD"
    for result in deployment_costs(ce, deployment, start, end, granularity):
        period_total = 0.0
        for group in result.get("Groups", []):
            metric = group["Metrics"]["UnblendedCost"]
            amount, currency = float(metric["Amount"]), metric.get("Unit", currency)
            by_service[group["Keys"][0]] = by_service.get(group["Keys"][0], 0.0) + amount
            period_total += amount
        periods.append({"start": result["TimePeriod"]["Start"], "end": result["TimePeriod"]["End"],
                        "cost": round(period_total, 6)})
    return {
        "start": start.isoformat(), "end": end.isoformat(), "currency": currency,
        "total": round(sum(by_service.values()), 6),
        "by_service": {k: round(v, 6) for k, v in sorted(by_service.items(), key=lambda kv: -kv[1])},
        "by_period": periods,
    }


# -- from a live deployment -----------------------------------------------------------------------
def deployment_inventory(ctx: Any) -> dict[str, Any]:
    """idle_cost's inventory of what the account holds now for this deployment."""
    from radstream.aws.costing import live_inventory

    return live_inventory(ctx.client, deployment=ctx.config.deployment, cluster=ctx.config.cluster_name,
                          stream=ctx.names.kinesis_stream, buckets=list(ctx.names.buckets().values()),
                          repository=ctx.names.ecr_repository)


def deployment_cost(ctx: Any, *, images_per_hour: float | None = None, explorer_days: int | None = None) -> dict[str, Any]:
    """Idle cost of what the account holds; cost per 1000 images from measured Lambda durations: on the
    sandbox each handler's as `radstream bench pipeline` last measured it, else the telemetry's stage
    times (when there are any); Cost Explorer over the last `explorer_days` days on aws."""
    from radstream.analytics.runner import run_query
    from radstream.aws.lambda_ import LAMBDA_MEMORY_MB
    from radstream.bench import DURATIONS_FILE

    idle = idle_cost(deployment_inventory(ctx))
    summary: dict[str, Any] = {"idle": idle, "per_1000_images": None, "duration_source": None, "cost_explorer": None,
                               "notes": []}
    asl = json.loads((ctx.root / "manifests" / "stepfunctions" / "pipeline.asl.json").read_text())
    # bench pipeline's durations are this machine's: priced only for a target that runs here.
    benched = bench_durations(ctx.state_dir / DURATIONS_FILE) if ctx.target.runs_on_this_machine else None
    work = None
    if benched:
        durations, measured_at = benched
        work = workload_from_durations(durations, asl, LAMBDA_MEMORY_MB, measured_at)
        summary["duration_source"] = "bench pipeline"
    else:
        try:
            stages = run_query(ctx, name="events_by_stage").rows
        except Exception as exc:  # noqa: BLE001 - the idle cost stands without telemetry
            stages = []
            summary["notes"].append(f"telemetry could not be read ({str(exc).splitlines()[0]}): no cost per image")
        if any(row.get("timed_events") for row in stages):
            work, summary["duration_source"] = workload_from_measurements(stages, asl, LAMBDA_MEMORY_MB), "telemetry"
        elif not summary["notes"]:
            summary["notes"].append("no measured durations yet: `radstream bench pipeline` (sandbox), `radstream demo` "
                                    "or `radstream load` measures the cost per image")
    if work is not None:
        summary["per_1000_images"] = cost_per_1000_images(work, fixed_per_hour=idle["per_hour"],
                                                          images_per_hour=images_per_hour)
    if explorer_days and ctx.target.has_cost_explorer:
        end = date.today()
        summary["cost_explorer"] = cost_explorer(ctx.client("ce"), ctx.config.deployment, end - timedelta(days=explorer_days), end)
    return summary
