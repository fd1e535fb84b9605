"""What a real `up` leaves in the emulated account and how `teardown` takes it away, through the real
CLI against a real sandbox daemon, read back with boto3. One deployment, in this order:

- after `up`: the cloud controller's Classic ELB and its security group are tagged with the
  deployment; /aws/lambda/<function> exists for the six functions, tagged and kept
  `pipeline.log_retention_days`; `cost` prices exactly what the account holds (the nodegroup's
  instance type, size and launch-template disk, the load balancers tagged for the cluster, the
  Kinesis shards, the bytes in our buckets) and nothing else;
- a study logs every invocation in its function's group (START … REPORT); a group Lambda created
  itself (a function invoked while its group was missing: untagged, never expiring) is drift that
  `status --refresh` reports and `up` repairs;
- a Service whose deletion cannot finish fails teardown, the cluster kept and the Service named; once
  it can, teardown leaves no load balancer, security group or log group, deletes only our stream in
  the account's shared /aws-glue/crawlers group, and leaves nothing tagged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sandbox_fixtures import sandbox_project, wait_for
from tests.integration.test_up_teardown_sandbox import aws, radstream
from tests.unit.pipeline_fixtures import CR_FILES, DEID_KEY, sample_path

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-leaves"
CLUSTER = f"{DEPLOYMENT}-cluster"
RETENTION_DAYS = 7
HOLD = "radstream.test/hold"
GIB = 1024**3
FUNCTIONS = ("validate-metadata", "prepare-tensors", "invoke-inference", "store-results", "send-telemetry",
             "store-failure")
GROUPS = sorted(f"/aws/lambda/{DEPLOYMENT}-{fn}" for fn in FUNCTIONS)
REPAIRED = f"/aws/lambda/{DEPLOYMENT}-validate-metadata"
CRAWLERS = "/aws-glue/crawlers"
OUR_CRAWLER = f"{DEPLOYMENT}-telemetry-crawler"
OURS = {"radstream:deployment": DEPLOYMENT, "radstream:phase": "0"}


# --- reading the account ------------------------------------------------------------------------
def load_balancers(project: Path) -> dict[str, dict[str, str]]:
    elb = aws(project, "elb")
    names = [d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]]
    tagged = elb.describe_tags(LoadBalancerNames=names)["TagDescriptions"] if names else []
    return {d["LoadBalancerName"]: {t["Key"]: t["Value"] for t in d["Tags"]} for d in tagged}


def security_groups(project: Path) -> dict[str, dict[str, str]]:
    groups = aws(project, "ec2").describe_security_groups()["SecurityGroups"]
    return {g["GroupName"]: {t["Key"]: t["Value"] for t in g.get("Tags", [])} for g in groups
            if g["GroupName"].startswith("k8s-elb-")}


def lambda_groups(project: Path) -> dict[str, dict[str, Any]]:
    found = aws(project, "logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{DEPLOYMENT}-")
    return {g["logGroupName"]: g for g in found["logGroups"]}


def tags_of(project: Path, group: dict[str, Any]) -> dict[str, str]:
    return aws(project, "logs").list_tags_for_resource(resourceArn=group["arn"].removesuffix(":*"))["tags"]


def messages(project: Path, group: str) -> list[str]:
    return [e["message"] for e in aws(project, "logs").filter_log_events(logGroupName=group)["events"]]


def bucket_bytes(project: Path) -> dict[str, int]:
    s3 = aws(project, "s3")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"{DEPLOYMENT}-")]
    return {b: sum(v["Size"] for page in s3.get_paginator("list_object_versions").paginate(Bucket=b)
                   for v in page.get("Versions", [])) for b in buckets}


# --- acting on it -------------------------------------------------------------------------------
def hold_service(project: Path, finalizers: list[str] | None) -> None:
    """Set the Service's finalizers with the kubernetes client (a test-only one no controller removes)."""
    from kubernetes import client as k8s

    from tests.support.kube import sandbox_api_client

    info = json.loads((project / ".radstream" / "sandbox.json").read_text())
    core = k8s.CoreV1Api(sandbox_api_client(info))
    core.patch_namespaced_service("triton-svc", "radstream", {"metadata": {"finalizers": finalizers}})


def upload_study(project: Path, tmp: Path, name: str) -> str:
    """One de-identified DICOM through `radstream ingest`; returns its study id once its result is in."""
    source = tmp / name
    shutil.copy(sample_path(CR_FILES[0]), source)
    (tmp / "deid.key").write_bytes(DEID_KEY)
    code, report, _ = radstream(project, "ingest", str(source), "--key-file", str(tmp / "deid.key"))
    assert code == 0 and report["counts"]["uploaded"] == 1, report
    study_id = report["studies"][0]["study_id"]
    s3, bucket = aws(project, "s3"), f"{DEPLOYMENT}-results-123456789012"
    wait_for(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=f"results/{study_id}/").get("KeyCount"),
             timeout=180, what=f"the result of study {study_id}")
    return study_id


# --- the deployment's life, one stage per fixture -----------------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    config_yaml = f"target: sandbox\ndeployment: {DEPLOYMENT}\npipeline:\n  log_retention_days: {RETENTION_DAYS}\n"
    with sandbox_project(tmp_path_factory.mktemp("what-up-leaves"), config_yaml) as path:
        yield path


@pytest.fixture(scope="module")
def deployed(project: Path) -> dict[str, Any]:
    code, result, _ = radstream(project, "up", "--yes")
    assert code == 0, result["error"]
    return {"load_balancers": load_balancers(project), "security_groups": security_groups(project),
            "groups": {name: (group, tags_of(project, group)) for name, group in lambda_groups(project).items()}}


@pytest.fixture(scope="module")
def costed(project: Path, deployed: dict[str, Any]) -> dict[str, Any]:
    """`cost` and the bytes it must match, read together, before anything else is uploaded."""
    code, result, _ = radstream(project, "cost")
    assert code == 0 and result["ok"], result.get("error")
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for line in result["idle"]["lines"]:
        assert line["source"], f"{line['item']} does not say where its quantity came from"
        by_resource.setdefault(line["resource"], []).append(line)
    assert result["idle"]["per_hour"] == pytest.approx(sum(li["per_hour"] for li in result["idle"]["lines"]), abs=1e-5)
    return {"lines": by_resource, "stored": bucket_bytes(project)}


@pytest.fixture(scope="module")
def studied(project: Path, costed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # As on an account where a function ran before its group existed: Lambda makes the group itself.
    aws(project, "logs").delete_log_group(logGroupName=REPAIRED)
    study = upload_study(project, tmp_path_factory.mktemp("study"), "CR-LOGS")
    made = lambda_groups(project)[REPAIRED]
    return {"study": study, "lambda_made": made, "lambda_made_tags": tags_of(project, made)}


@pytest.fixture(scope="module")
def repaired(project: Path, studied: dict[str, Any]) -> dict[str, Any]:
    refresh_code, status, _ = radstream(project, "status", "--refresh")
    code, result, _ = radstream(project, "up", "--yes")
    assert code == 0, result["error"]
    return {"refresh_code": refresh_code, "drift": [d for d in status["drift"] if d["drift"]],
            "up": result, "groups": lambda_groups(project)}


@pytest.fixture(scope="module")
def held_teardown(project: Path, repaired: dict[str, Any]) -> dict[str, Any]:
    # What Glue writes when crawlers run: one stream per crawler in one shared group.
    logs = aws(project, "logs")
    logs.create_log_group(logGroupName=CRAWLERS)
    for crawler in (OUR_CRAWLER, "someone-elses-crawler"):
        logs.create_log_stream(logGroupName=CRAWLERS, logStreamName=crawler)
    hold_service(project, ["service.kubernetes.io/load-balancer-cleanup", HOLD])
    code, result, _ = radstream(project, "teardown", "--yes")
    return {"code": code, "result": result}


@pytest.fixture(scope="module")
def released_teardown(project: Path, held_teardown: dict[str, Any]) -> dict[str, Any]:
    hold_service(project, None)
    code, result, _ = radstream(project, "teardown", "--yes")
    streams = aws(project, "logs").describe_log_streams(logGroupName=CRAWLERS)["logStreams"]
    return {"code": code, "result": result, "groups": lambda_groups(project),
            "crawler_streams": [s["logStreamName"] for s in streams]}


# --- after up -----------------------------------------------------------------------------------
def test_up_leaves_a_load_balancer_and_security_group_tagged_with_the_deployment(deployed: dict[str, Any]):
    cluster = {f"kubernetes.io/cluster/{CLUSTER}": "owned", "kubernetes.io/service-name": "radstream/triton-svc",
               "radstream:deployment": DEPLOYMENT, "radstream:phase": "3"}
    (name, tags), = deployed["load_balancers"].items()
    assert tags == tags | cluster
    assert deployed["security_groups"][f"k8s-elb-{name}"] == deployed["security_groups"][f"k8s-elb-{name}"] | cluster


def test_up_creates_the_six_log_groups_tagged_and_with_the_configured_retention(deployed: dict[str, Any]):
    groups = deployed["groups"]
    assert sorted(groups) == GROUPS
    for group, tags in groups.values():
        assert group["retentionInDays"] == RETENTION_DAYS
        assert tags == OURS


def test_the_nodegroup_is_priced_from_its_instance_type_size_and_disk(project: Path, costed: dict[str, Any]):
    found = aws(project, "eks").describe_nodegroup(clusterName=CLUSTER, nodegroupName="cpu-ng")["nodegroup"]
    count, kind = found["scalingConfig"]["desiredSize"], found["instanceTypes"][0]
    nodes, disks = costed["lines"]["eks nodegroup cpu-ng"]
    assert (nodes["item"], nodes["quantity"]) == (f"EC2 {kind} nodes", count)
    # The root volume is the nodes' launch template's (EKS then reports no diskSize).
    template = found["launchTemplate"]
    (version,) = aws(project, "ec2").describe_launch_template_versions(
        LaunchTemplateId=template["id"], Versions=[template["version"]])["LaunchTemplateVersions"]
    disk = version["LaunchTemplateData"]["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"]
    assert "diskSize" not in found
    assert disks["quantity"] == count * disk and disks["unit"] == "GB-month"


def test_the_control_plane_is_priced_at_its_version_support(project: Path, costed: dict[str, Any]):
    cluster = aws(project, "eks").describe_cluster(name=CLUSTER)["cluster"]
    (line,) = costed["lines"][f"eks cluster {CLUSTER}"]
    assert line["quantity"] == 1
    code, status, _ = radstream(project, "status")
    extended = status["outputs"].get("cluster_support") == "EXTENDED_SUPPORT"
    assert line["item"] == ("EKS control plane (extended support)" if extended else "EKS control plane"), cluster["version"]


def test_exactly_the_load_balancers_tagged_for_the_cluster_are_priced(costed: dict[str, Any], deployed: dict[str, Any]):
    tagged = sorted(name for name, tags in deployed["load_balancers"].items() if f"kubernetes.io/cluster/{CLUSTER}" in tags)
    priced = [li for group in costed["lines"].values() for li in group if li["kind"] == "load_balancer"]
    assert tagged and len(priced) == len(tagged)
    assert all(li["item"] == "Load balancer (CLB)" and li["quantity"] == 1 for li in priced)
    assert sorted(next(name for name in tagged if name in li["source"]) for li in priced) == tagged


def test_the_stream_is_priced_from_its_open_shards(project: Path, costed: dict[str, Any]):
    summary = aws(project, "kinesis").describe_stream_summary(StreamName=f"{DEPLOYMENT}-telemetry")
    (line,) = costed["lines"][f"kinesis stream {DEPLOYMENT}-telemetry"]
    assert line["item"] == "Kinesis shards" and line["quantity"] == summary["StreamDescriptionSummary"]["OpenShardCount"]


def test_every_byte_our_buckets_hold_is_priced_and_empty_buckets_are_not(costed: dict[str, Any]):
    stored = costed["stored"]
    assert stored and any(stored.values())  # up's wiring and telemetry checks leave objects behind
    for bucket, size in stored.items():
        priced = costed["lines"].get(f"s3 bucket {bucket}", [])
        if size:
            (line,) = priced
            assert line["quantity"] * GIB == pytest.approx(size)
        else:
            assert priced == []


# --- a study, and a log group Lambda made itself ------------------------------------------------
def test_a_study_logs_every_invocation_in_its_functions_group(project: Path, studied: dict[str, Any]):
    for fn in ("validate-metadata", "prepare-tensors", "invoke-inference", "store-results"):
        lines = messages(project, f"/aws/lambda/{DEPLOYMENT}-{fn}")
        starts = {line.split()[2] for line in lines if line.startswith("START RequestId: ")}
        reports = {line.split()[2] for line in lines if line.startswith("REPORT RequestId: ")}
        assert starts and starts == reports, (fn, lines)
        assert {line.split()[2] for line in lines if line.startswith("END RequestId: ")} == starts


def test_a_group_lambda_made_itself_is_drift_that_up_repairs(project: Path, studied: dict[str, Any],
                                                               repaired: dict[str, Any]):
    assert "retentionInDays" not in studied["lambda_made"] and studied["lambda_made_tags"] == {}  # as Lambda's
    assert repaired["refresh_code"] == 1
    assert {(d["phase"], d["step"]) for d in repaired["drift"]} == {(0, "lambda-log-groups")}
    assert repaired["up"]["mutations"] > 0
    group = repaired["groups"][REPAIRED]
    assert group["retentionInDays"] == RETENTION_DAYS
    assert tags_of(project, group) == OURS
    # Repaired in place: the study's logs are still there.
    assert any(line.startswith("REPORT RequestId: ") for line in messages(project, REPAIRED))


# --- teardown -----------------------------------------------------------------------------------
def test_a_service_that_cannot_go_fails_teardown_and_keeps_the_cluster(held_teardown: dict[str, Any]):
    result = held_teardown["result"]
    assert held_teardown["code"] == 1 and not result["ok"]
    errors = {p["number"]: p.get("error") or "" for p in result["phases"]}
    assert HOLD in errors[3]
    # Phase 0 refuses to strand the load balancer: it names the Service and what to run.
    assert "radstream/triton-svc" in errors[0] and "radstream phase destroy 3" in errors[0]
    assert any(r["arn"].endswith(f":cluster/{CLUSTER}") for r in result["leftovers"])


def test_teardown_once_the_service_can_go_leaves_nothing_of_ours(project: Path, released_teardown: dict[str, Any]):
    result = released_teardown["result"]
    assert released_teardown["code"] == 0, result["error"]
    assert result["leftovers"] == []
    assert load_balancers(project) == {} and security_groups(project) == {}
    assert released_teardown["groups"] == {}
    assert released_teardown["crawler_streams"] == ["someone-elses-crawler"]
