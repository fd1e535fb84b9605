"""`radstream cost` tells the truth: after a real `up` on the sandbox through the CLI, each idle cost
line is checked against what the emulated account holds, read with boto3 (the nodegroup's instance
type, size and disk, the load balancers tagged for the cluster, the Kinesis shards, the bytes in our
buckets), and nothing the account does not hold is priced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_up_teardown_sandbox import aws, radstream

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-cost"
CLUSTER = f"{DEPLOYMENT}-cluster"
GIB = 1024**3


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from radstream.sandbox import daemon

    path = tmp_path_factory.mktemp("cost-truth")
    (path / "radstream.yaml").write_text(f"target: sandbox\ndeployment: {DEPLOYMENT}\n")
    try:
        code, result, _ = radstream(path, "up", "--yes")
        assert code == 0, result["error"]
        yield path
    finally:
        daemon.stop(path / ".radstream")


@pytest.fixture(scope="module")
def lines(project: Path) -> dict[str, list[dict[str, Any]]]:
    code, result, _ = radstream(project, "cost")
    assert code == 0 and result["ok"], result.get("error")
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for line in result["idle"]["lines"]:
        assert line["source"], f"{line['item']} does not say where its quantity came from"
        by_resource.setdefault(line["resource"], []).append(line)
    assert result["idle"]["per_hour"] == pytest.approx(sum(li["per_hour"] for li in result["idle"]["lines"]), abs=1e-5)
    return by_resource


def test_the_nodegroup_is_priced_from_its_instance_type_size_and_disk(project: Path, lines):
    found = aws(project, "eks").describe_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng")["nodegroup"]
    count, kind = found["scalingConfig"]["desiredSize"], found["instanceTypes"][0]
    nodes, disks = lines["eks nodegroup cpu-ng"]
    assert (nodes["item"], nodes["quantity"]) == (f"EC2 {kind} nodes", count)
    # The root volume is the nodes' launch template's (EKS then reports no diskSize).
    template = found["launchTemplate"]
    (version,) = aws(project, "ec2").describe_launch_template_versions(
        LaunchTemplateId=template["id"], Versions=[template["version"]])["LaunchTemplateVersions"]
    disk = version["LaunchTemplateData"]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
    assert "diskSize" not in found
    assert disks["quantity"] == count * disk and disks["unit"] == "GB-month"


def test_the_control_plane_is_priced_at_its_version_support(project: Path, lines):
    cluster = aws(project, "eks").describe_cluster(name=CLUSTER)["cluster"]
    (line,) = lines[f"eks cluster {CLUSTER}"]
    assert line["quantity"] == 1
    code, status, _ = radstream(project, "status")
    extended = status["outputs"].get("cluster_support") == "EXTENDED_SUPPORT"
    assert line["item"] == ("EKS control plane (extended support)" if extended else "EKS control plane"), cluster["version"]


def test_exactly_the_load_balancers_tagged_for_the_cluster_are_priced(project: Path, lines):
    elb = aws(project, "elb")
    names = [d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]]
    tagged = [d for d in (elb.describe_tags(LoadBalancerNames=names)["TagDescriptions"] if names else [])
              if any(t["Key"] == f"kubernetes.io/cluster/{CLUSTER}" for t in d["Tags"])]
    priced = [li for group in lines.values() for li in group if li["kind"] == "load_balancer"]
    assert len(priced) == len(tagged)
    assert all(li["item"] == "Load balancer (CLB)" and li["quantity"] == 1 for li in priced)
    assert sorted(next(d["LoadBalancerName"] for d in tagged if d["LoadBalancerName"] in li["source"]) for li in priced) \
        == sorted(d["LoadBalancerName"] for d in tagged)


def test_the_stream_is_priced_from_its_open_shards(project: Path, lines):
    summary = aws(project, "kinesis").describe_stream_summary(StreamName=f"{DEPLOYMENT}-telemetry")
    (line,) = lines[f"kinesis stream {DEPLOYMENT}-telemetry"]
    assert line["item"] == "Kinesis shards" and line["quantity"] == summary["StreamDescriptionSummary"]["OpenShardCount"]


def test_every_byte_our_buckets_hold_is_priced_and_empty_buckets_are_not(project: Path, lines):
    s3 = aws(project, "s3")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"{DEPLOYMENT}-")]
    assert buckets
    stored = {b: sum(v["Size"] for page in s3.get_paginator("list_object_versions").paginate(Bucket=b)
                     for v in page.get("Versions", [])) for b in buckets}
    assert any(stored.values())  # up's wiring and telemetry checks leave objects behind
    for bucket, size in stored.items():
        priced = lines.get(f"s3 bucket {bucket}", [])
        if size:
            (line,) = priced
            assert line["quantity"] * GIB == pytest.approx(size)
        else:
            assert priced == []
