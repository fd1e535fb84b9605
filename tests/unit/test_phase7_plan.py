"""Phase 7 (cost control) and teardown's leftover check, against in-process moto and the project's
Kubernetes API emulator (in process, on a free loopback port), mirrored from the emulated EKS as the
sandbox does: plan, scale to zero until the nodes are gone, the priced still-costing report, a
converged second run, destroy restoring the configured scaling; then the bounded wait for deletes
that finish in the background."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from radstream import config
from radstream.analytics.cost import PRICES
from radstream.aws.inventory import deployment_resources, settled_leftovers
from radstream.context import Context
from radstream.engine import Engine
from radstream.errors import WaitTimeout
from radstream.kube.apply import apply, kube_api, list_objects
from radstream.kube.manifests import NODEGROUP_LABEL, namespace, service, template_dir
from radstream.phases.p7_cleanup import CleanupPhase, cost_report
from radstream.state import State

pytestmark = pytest.mark.slow  # starts the Kubernetes API emulator

DEPLOYMENT = "rs-p7"
REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER = f"{DEPLOYMENT}-cluster"
TAGS = {"radstream:deployment": DEPLOYMENT, "radstream:phase": "0"}
FAST = {"node_ready_delay": 0.05, "pod_start_delay": 0.05, "pod_ready_delay": 0.1,
        "load_balancer_delay": 0.1, "probe_period": 0.05}


def make_ctx(project: Path) -> Context:
    loaded = config.load(project / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "sandbox"))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """An emulated account holding what phases 0-3 leave behind, and a Kubernetes API whose nodes
    follow the emulated EKS nodegroups."""
    from radstream.sandbox.cluster import EksSync
    from radstream.sandbox.kube import KubeEmulator

    (tmp_path / "radstream.yaml").write_text(f"target: sandbox\ndeployment: {DEPLOYMENT}\n")
    with mock_aws():
        emulator = KubeEmulator(**FAST)
        info = emulator.start()
        sync = EksSync(emulator, aws_endpoint="(in-process moto)", region=REGION, interval=0.1)
        sync._client = boto3.client("eks", region_name=REGION)  # moto in this process, not over HTTP
        sync.start()
        try:
            state_dir = tmp_path / ".radstream"
            state_dir.mkdir()
            # No aws_endpoint: boto3 goes to the default AWS endpoints, which moto intercepts in-process.
            (state_dir / "sandbox.json").write_text(json.dumps({"running": True, "aws_endpoint": None, **info}))
            deploy_leftovers_of_phases_0_to_3(make_ctx(tmp_path))
            yield tmp_path
        finally:
            sync.stop()
            emulator.stop()


def deploy_leftovers_of_phases_0_to_3(ctx: Context) -> None:
    eks = ctx.client("eks")
    subnets = [s["SubnetId"] for s in ctx.client("ec2").describe_subnets()["Subnets"]][:2]
    eks.create_cluster(name=CLUSTER, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", tags=TAGS,
                       resourcesVpcConfig={"subnetIds": subnets})
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng", nodeRole=f"arn:aws:iam::{ACCOUNT}:role/n",
                         subnets=subnets, instanceTypes=["t3.medium"], diskSize=20,
                         scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1})
    ctx.client("kinesis").create_stream(StreamName=f"{DEPLOYMENT}-telemetry", ShardCount=1,
                                        StreamModeDetails={"StreamMode": "PROVISIONED"})
    images = ctx.names.bucket("images")
    ctx.client("s3").create_bucket(Bucket=images)
    ctx.client("s3").put_object(Bucket=images, Key="incoming/a.png", Body=b"x" * 4096)
    # What the Kubernetes cloud provider (not the operator) creates for the LoadBalancer Service on AWS.
    boto3.client("elb", region_name=REGION).create_load_balancer(
        LoadBalancerName="a1b2c3d4", AvailabilityZones=["us-east-1a"],
        Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 8000, "InstancePort": 30800}],
        Tags=[{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"},
              {"Key": "kubernetes.io/service-name", "Value": "radstream/triton-svc"}])
    api = kube_api(ctx)
    apply(api, namespace(ctx.config, template_dir(ctx.root)))
    apply(api, service(ctx.config, template_dir(ctx.root), "arn:aws:acm:us-east-1:123456789012:certificate/abc"))
    ctx.wait("the node of cpu-ng", lambda: cpu_nodes(ctx), timeout=20, interval=0.1)


def cpu_nodes(ctx: Context) -> list[str]:
    return [n["metadata"]["name"] for n in list_objects(kube_api(ctx), "Node", labels={NODEGROUP_LABEL: "cpu-ng"})]


def scaling(ctx: Context) -> dict[str, int]:
    return ctx.client("eks").describe_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng")["nodegroup"]["scalingConfig"]


def test_plan_scales_the_running_nodegroup_to_zero_and_changes_nothing(project: Path):
    ctx = make_ctx(project)
    result = Engine(ctx, [CleanupPhase()]).plan([7])
    (phase,) = result.phases
    assert phase.error is None
    assert [s["status"] for s in phase.steps] == ["would change", "up to date"]
    (change,) = phase.changes
    assert change["action"] == "update" and change["name"] == "cpu-ng"
    assert "1/1/2 -> 0/0/2" in change["detail"] and "its 1 node(s)" in change["detail"]
    assert ctx.counter.total == 0
    assert scaling(ctx) == {"minSize": 1, "maxSize": 2, "desiredSize": 1}


def test_apply_parks_the_nodegroup_and_prices_what_still_costs(project: Path):
    ctx = make_ctx(project)
    result = Engine(ctx, [CleanupPhase()]).run([7])
    assert result.ok, result.error
    assert result.mutations == 1  # one UpdateNodegroupConfig
    assert scaling(ctx) == {"minSize": 0, "maxSize": 2, "desiredSize": 0}
    assert cpu_nodes(ctx) == []

    outputs = ctx.state.outputs(7)
    by_resource = {row["resource"]: row for row in outputs["still_costing"]}
    assert set(by_resource) == {f"eks cluster {CLUSTER}", "load balancer of service radstream/triton-svc",
                                f"kinesis stream {DEPLOYMENT}-telemetry", f"s3 bucket {ctx.names.bucket('images')}"}
    assert by_resource[f"eks cluster {CLUSTER}"]["usd_per_hour"] == PRICES["eks_cluster_hour"]
    assert by_resource[f"kinesis stream {DEPLOYMENT}-telemetry"]["usd_per_hour"] == PRICES["kinesis_shard_hour"]
    assert "PROVISIONED, 1 open shard(s)" in by_resource[f"kinesis stream {DEPLOYMENT}-telemetry"]["source"]
    assert by_resource[f"s3 bucket {ctx.names.bucket('images')}"]["source"].startswith("s3 ListObjectVersions")
    assert by_resource["load balancer of service radstream/triton-svc"]["usd_per_hour"] == PRICES["elb_hour"]["clb"]
    assert all(row["why"] for row in outputs["still_costing"])
    assert outputs["idle_usd_per_hour"] == pytest.approx(sum(r["usd_per_hour"] for r in outputs["still_costing"]))
    assert outputs["idle_usd_per_month"] == pytest.approx(outputs["idle_usd_per_hour"] * 730, abs=0.01)

    again = Engine(make_ctx(project), [CleanupPhase()]).run([7])
    assert again.ok and again.mutations == 0
    assert [s["status"] for s in again.phases[0].steps] == ["skipped", "skipped"]


def test_a_running_nodegroup_is_one_row_with_its_nodes_disks_and_sources():
    report = cost_report({"nodegroups": [{"name": "cpu-ng", "instance_type": "t3.medium", "count": 2, "disk_gb": 20,
                                          "capacity_type": "ON_DEMAND", "source": "eks DescribeNodegroup cpu-ng"}],
                          "public_ipv4": 2, "sources": {"public_ipv4": "ec2 DescribeInstances"}})
    nodes, addresses = report["still_costing"]
    assert nodes["resource"] == "eks nodegroup cpu-ng" and nodes["source"] == "eks DescribeNodegroup cpu-ng"
    assert nodes["usd_per_hour"] == pytest.approx(2 * PRICES["ec2_hour"]["t3.medium"] + 2 * 20 * PRICES["ebs_gp3_gb_month"] / 730,
                                                  abs=1e-5)
    assert addresses["usd_per_hour"] == pytest.approx(2 * PRICES["public_ipv4_hour"])
    assert report["idle_usd_per_hour"] == pytest.approx(nodes["usd_per_hour"] + addresses["usd_per_hour"], abs=1e-5)
    assert cost_report({}) | {"prices_as_of": None} == {"still_costing": [], "idle_usd_per_hour": 0, "notes": [],
                                                         "idle_usd_per_month": 0, "prices_as_of": None}


def test_every_kind_of_idle_cost_says_why_it_is_still_there():
    everything = {
        "clusters": 1, "cluster_name": "c", "nodegroups": [{"name": "ng", "instance_type": "t3.medium", "count": 1,
                                                             "disk_gb": 20}],
        "public_ipv4": 1, "nat_gateways": 1, "vpc_endpoints": 2, "kinesis_shards": 1, "kinesis_stream": "s",
        "load_balancers": [{"name": "lb", "kind": "alb"}], "web_acls": [{"name": "acl", "rules": 4}],
        "secrets": [{"name": "rs-deid-key"}], "buckets": [{"name": "b", "bytes": 10**9}],
        "repositories": [{"name": "r", "bytes": 10**9}],
    }
    rows = cost_report(everything)["still_costing"]
    assert len(rows) == 11 and all(row["why"] for row in rows)
    [key] = [row for row in rows if row["resource"] == "secret rs-deid-key"]
    assert "schedules its deletion" in key["why"]


def test_an_adopted_cluster_is_said_to_stay_after_teardown():
    (row,) = cost_report({"clusters": 1, "cluster_name": "theirs", "cluster_owned": False})["still_costing"]
    assert row["resource"] == "eks cluster theirs" and "teardown leaves it" in row["why"]


def test_destroy_restores_the_configured_scaling_and_is_quiet_when_the_nodegroup_is_gone(project: Path):
    ctx = make_ctx(project)
    assert Engine(ctx, [CleanupPhase()]).run([7]).ok
    destroyed = Engine(make_ctx(project), [CleanupPhase()]).destroy([7])
    assert destroyed.ok, destroyed.error
    assert scaling(ctx) == {"minSize": 1, "maxSize": 2, "desiredSize": 1}
    assert ctx.wait("cpu-ng's node back", lambda: cpu_nodes(ctx), timeout=20, interval=0.1)

    ctx.client("eks").delete_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng")
    assert Engine(make_ctx(project), [CleanupPhase()]).destroy([7]).ok
    # Nothing to scale any more: the phase is satisfied and still reports the cluster's cost.
    run = Engine(make_ctx(project), [CleanupPhase()]).run([7])
    assert run.ok and run.mutations == 0


# -- teardown's leftover check ----------------------------------------------------------------------
@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        clients: dict[str, Any] = {}
        yield lambda service: clients.setdefault(service, boto3.client(service, region_name=REGION))


def tagged_stream(client: Any, name: str) -> None:
    client("kinesis").create_stream(StreamName=name, ShardCount=1)
    client("kinesis").add_tags_to_stream(StreamName=name, Tags=TAGS)


def kinesis_stream(name: str) -> Any:
    from moto.kinesis.models import kinesis_backends

    return kinesis_backends[ACCOUNT][REGION].streams[name]


class Waits:
    """ctx.wait's contract (poll until truthy, WaitTimeout at the deadline), run step by step, with
    something happening to the world between two polls."""

    def __init__(self, between_polls: Any = None):
        self.between_polls, self.descriptions = between_polls, []

    def __call__(self, description: str, predicate: Any, timeout: float, interval: float = 2.0) -> Any:
        self.descriptions.append(description)
        for _ in range(3):
            if value := predicate():
                return value
            if self.between_polls:
                self.between_polls()
        raise WaitTimeout(f"timed out waiting for: {description}")


def test_leftovers_wait_for_a_delete_finishing_in_the_background(aws):
    tagged_stream(aws, f"{DEPLOYMENT}-telemetry")
    kinesis_stream(f"{DEPLOYMENT}-telemetry").status = "DELETING"
    (found,) = deployment_resources(aws, DEPLOYMENT)
    assert found["service"] == "kinesis" and found["status"] == "deleting"

    waits = Waits(between_polls=lambda: aws("kinesis").delete_stream(StreamName=f"{DEPLOYMENT}-telemetry"))
    assert settled_leftovers(aws, DEPLOYMENT, waits) == []
    assert waits.descriptions == [f"1 resource(s) of {DEPLOYMENT} to finish deleting"]


def test_leftovers_still_deleting_at_the_deadline_are_reported(aws):
    tagged_stream(aws, f"{DEPLOYMENT}-telemetry")
    kinesis_stream(f"{DEPLOYMENT}-telemetry").status = "DELETING"
    leftovers = settled_leftovers(aws, DEPLOYMENT, Waits())
    assert [(r["service"], r["status"]) for r in leftovers] == [("kinesis", "deleting")]


def test_a_present_leftover_ends_the_check_without_waiting_and_others_are_ignored(aws):
    tagged_stream(aws, f"{DEPLOYMENT}-telemetry")
    aws("kinesis").create_stream(StreamName=f"{DEPLOYMENT}-untagged", ShardCount=1)
    aws("kinesis").create_stream(StreamName="other-telemetry", ShardCount=1)
    aws("kinesis").add_tags_to_stream(StreamName="other-telemetry", Tags={**TAGS, "radstream:deployment": "other"})
    waits = Waits()
    started = time.monotonic()
    leftovers = settled_leftovers(aws, DEPLOYMENT, waits)
    assert [r["arn"].rsplit("/", 1)[1] for r in leftovers] == [f"{DEPLOYMENT}-telemetry"]
    assert leftovers[0]["status"] == "present" and waits.descriptions == []
    print(f"\nleftover check with one present resource: {time.monotonic() - started:.2f}s")

