"""The load balancer the cloud controller makes for phase 3's Service, through the real CLI against a
real sandbox: `up` leaves a Classic ELB and its security group in the emulated account tagged with the
deployment; a Service whose deletion cannot finish fails teardown (the cluster is kept, naming the
Service); once it can, teardown removes the load balancer, its security group and everything else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_up_teardown_sandbox import aws, radstream

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-lbl"
HOLD = "radstream.test/hold"


def load_balancers(project: Path) -> dict[str, dict[str, str]]:
    elb = aws(project, "elb")
    names = [d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]]
    tagged = elb.describe_tags(LoadBalancerNames=names)["TagDescriptions"] if names else []
    return {d["LoadBalancerName"]: {t["Key"]: t["Value"] for t in d["Tags"]} for d in tagged}


def security_groups(project: Path) -> dict[str, dict[str, str]]:
    groups = aws(project, "ec2").describe_security_groups()["SecurityGroups"]
    return {g["GroupName"]: {t["Key"]: t["Value"] for t in g.get("Tags", [])} for g in groups
            if g["GroupName"].startswith("k8s-elb-")}


def hold_service(project: Path, finalizers: list[str] | None) -> None:
    """Set the Service's finalizers with the kubernetes client (a test-only one no controller removes)."""
    import json

    from kubernetes import client as k8s

    from tests.support.kube import sandbox_api_client

    info = json.loads((project / ".radstream" / "sandbox.json").read_text())
    core = k8s.CoreV1Api(sandbox_api_client(info))
    core.patch_namespaced_service("triton-svc", "radstream", {"metadata": {"finalizers": finalizers}})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from radstream.sandbox import daemon

    path = tmp_path_factory.mktemp("lb-lifecycle")
    (path / "radstream.yaml").write_text(f"target: sandbox\ndeployment: {DEPLOYMENT}\n")
    try:
        yield path
    finally:
        daemon.stop(path / ".radstream")


@pytest.fixture(scope="module")
def deployed(project: Path) -> dict[str, Any]:
    code, result, _ = radstream(project, "up", "--yes")
    assert code == 0, result["error"]
    return {"load_balancers": load_balancers(project), "security_groups": security_groups(project)}


def test_up_leaves_a_load_balancer_and_security_group_tagged_with_the_deployment(deployed: dict[str, Any]):
    cluster = {f"kubernetes.io/cluster/{DEPLOYMENT}-cluster": "owned", "kubernetes.io/service-name": "radstream/triton-svc",
               "radstream:deployment": DEPLOYMENT, "radstream:phase": "3"}
    (name, tags), = deployed["load_balancers"].items()
    assert tags == tags | cluster
    assert deployed["security_groups"][f"k8s-elb-{name}"] == deployed["security_groups"][f"k8s-elb-{name}"] | cluster


@pytest.fixture(scope="module")
def held_teardown(deployed: dict[str, Any], project: Path) -> dict[str, Any]:
    hold_service(project, ["service.kubernetes.io/load-balancer-cleanup", HOLD])
    code, result, _ = radstream(project, "teardown", "--yes")
    return {"code": code, "result": result, "load_balancers": load_balancers(project)}


@pytest.fixture(scope="module")
def released_teardown(held_teardown: dict[str, Any], project: Path) -> dict[str, Any]:
    hold_service(project, None)
    code, result, _ = radstream(project, "teardown", "--yes")
    return {"code": code, "result": result}


def test_a_service_that_cannot_go_fails_teardown_and_keeps_the_cluster(held_teardown: dict[str, Any]):
    result = held_teardown["result"]
    assert held_teardown["code"] == 1 and not result["ok"]
    errors = {p["number"]: p.get("error") or "" for p in result["phases"]}
    assert HOLD in errors[3]
    # Phase 0 refuses to strand the load balancer: it names the Service and what to run.
    assert "radstream/triton-svc" in errors[0] and "radstream phase destroy 3" in errors[0]
    assert any(r["arn"].endswith(f":cluster/{DEPLOYMENT}-cluster") for r in result["leftovers"])


def test_teardown_once_the_service_can_go_leaves_no_load_balancer_and_nothing_tagged(
        project: Path, released_teardown: dict[str, Any]):
    result = released_teardown["result"]
    assert released_teardown["code"] == 0, result["error"]
    assert result["leftovers"] == []
    assert load_balancers(project) == {} and security_groups(project) == {}
