"""The sandbox as the cluster phases see it: EKS nodegroups created in the emulated AWS become nodes
in the Kubernetes emulator, a Triton Deployment turns Ready from the real local Triton, its
LoadBalancer Service reaches that Triton, the OCI registry holds the base image, and sandbox.json
keeps the Kubernetes token private. Driven over HTTP with boto3 and the official kubernetes client."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radstream.sandbox.cluster import NodegroupSpec, TritonBridge, nodegroup_spec, sync_plan
from tests.integration.sandbox_fixtures import REGION, client, wait_for
from tests.support.kube import sandbox_api_client

REPO = Path(__file__).resolve().parents[2]
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
TRITON_LABELS = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": "rs-test"}


# --- pure: what the EKS sync does ---------------------------------------------------------------
def test_nodegroup_spec_reads_eks_and_skips_nodegroups_without_nodes() -> None:
    described = {"status": "ACTIVE", "instanceTypes": ["g4dn.xlarge"], "capacityType": "SPOT",
                 "scalingConfig": {"minSize": 0, "maxSize": 3, "desiredSize": 2},
                 "labels": {"b": "2", "a": "1"}, "taints": [{"key": "gpu", "value": "yes", "effect": "NO_SCHEDULE"}]}
    assert nodegroup_spec(described) == NodegroupSpec("g4dn.xlarge", 2, (("a", "1"), ("b", "2")),
                                                      (("gpu", "yes", "NO_SCHEDULE"),), "SPOT")
    assert nodegroup_spec({**described, "status": "CREATING"}) is None
    assert nodegroup_spec({**described, "status": "DELETING"}) is None


def test_sync_plan_removes_then_adds_then_resizes() -> None:
    small, big = NodegroupSpec("t3.micro", 2), NodegroupSpec("t3.medium", 2)
    mirrored = {"old": small, "keep": big, "grow": big}
    wanted = {"keep": big, "grow": NodegroupSpec("t3.medium", 3), "new": big}
    assert sync_plan(mirrored, wanted) == [("remove", "old", None), ("add", "new", big),
                                           ("resize", "grow", NodegroupSpec("t3.medium", 3))]
    assert sync_plan(wanted, wanted) == []


def test_registry_is_skipped_with_a_hint_without_docker_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from radstream.sandbox.registry import SandboxRegistry

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    service = SandboxRegistry(tmp_path / "registry", tmp_path / "logs")
    assert service.start() == {}  # so sandbox.json says registry: null
    assert "apt-get install docker-registry" in caplog.text
    service.stop()


# --- the running sandbox ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory, so the CLI finds the daemon's state in .radstream/."""
    root = tmp_path_factory.mktemp("cluster-project")
    (root / "radstream.yaml").write_text("target: sandbox\ndeployment: rs-test\n")
    return root


@pytest.fixture(scope="module")
def sandbox(project: Path) -> Iterator[dict[str, Any]]:
    from radstream.sandbox import daemon

    state_dir = project / ".radstream"
    try:
        yield daemon.start(state_dir, timeout=120, region=REGION)
    finally:
        daemon.stop(state_dir)


@pytest.fixture(scope="module")
def kube(sandbox: dict[str, Any]) -> Iterator[Any]:
    api = sandbox_api_client(sandbox)
    yield api
    api.close()


@pytest.fixture(scope="module")
def eks_cluster(sandbox: dict[str, Any]) -> str:
    # Real subnets: the cloud controller puts the Service's load balancer in the cluster's.
    subnets = [s["SubnetId"] for s in client(sandbox, "ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]]
    eks = client(sandbox, "eks")
    eks.create_cluster(name="rs-test", roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets[:2]})
    return "rs-test"


def create_nodegroup(sandbox: dict[str, Any], cluster: str, name: str, size: int, instance_type: str = "t3.medium",
                     **extra: Any) -> None:
    client(sandbox, "eks").create_nodegroup(
        clusterName=cluster, nodegroupName=name, nodeRole="arn:aws:iam::123456789012:role/nodes",
        subnets=["subnet-1"], instanceTypes=[instance_type],
        scalingConfig={"minSize": 0, "maxSize": 3, "desiredSize": size}, **extra)


def ready_nodes(kube: Any, nodegroup: str) -> list[Any]:
    from kubernetes import client as k8s

    nodes = k8s.CoreV1Api(kube).list_node(label_selector=f"{NODEGROUP_LABEL}={nodegroup}").items
    return [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]


def node_count(kube: Any, nodegroup: str) -> int:
    from kubernetes import client as k8s

    return len(k8s.CoreV1Api(kube).list_node(label_selector=f"{NODEGROUP_LABEL}={nodegroup}").items)


@pytest.mark.slow
def test_sandbox_json_is_private_and_status_hides_the_token(sandbox: dict[str, Any], project: Path) -> None:
    path = project / ".radstream" / "sandbox.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    recorded = json.loads(path.read_text())
    secret = recorded["kubernetes_access_key_id"]
    assert len(secret) >= 32
    assert recorded["registry"] and recorded["base_image"] == f"{recorded['registry']}/sandbox/tritonserver-base:1"

    env = {k: v for k, v in os.environ.items() if not k.startswith("RADSTREAM_")}
    env["PYTHONPATH"] = str(REPO)
    shown = subprocess.run([sys.executable, "-m", "radstream.cli", "sandbox", "status", "--json"], cwd=project,
                           env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert secret not in shown.stdout + shown.stderr
    status = json.loads(shown.stdout)
    assert status["running"] is True
    assert status["triton_http"] == sandbox["triton_http"] and status["triton_grpc"] == sandbox["triton_grpc"]


@pytest.mark.slow
def test_registry_serves_the_base_image_and_takes_pushes(sandbox: dict[str, Any], tmp_path: Path) -> None:
    from radstream.inference.image import build_and_push
    from radstream.inference.oci import RegistryClient

    with urllib.request.urlopen(f"http://{sandbox['registry']}/v2/", timeout=5) as response:
        assert response.status == 200
    registry = RegistryClient(sandbox["registry"])
    try:
        manifest, _ = registry.get_manifest("sandbox/tritonserver-base", "1")
        config = json.loads(registry.get_blob("sandbox/tritonserver-base", json.loads(manifest)["config"]["digest"]))
        assert config["os"] == "linux" and config["architecture"] == "amd64"
    finally:
        registry.close()

    # What phase 2 does on the sandbox: the model layer on top of the base image, base layer mounted.
    model_repo = tmp_path / "model_repo"
    (model_repo / "radstream_cxr" / "1").mkdir(parents=True)
    (model_repo / "radstream_cxr" / "1" / "model.onnx").write_bytes(b"weights")
    pushed = build_and_push(model_repo, sandbox["base_image"], f"{sandbox['registry']}/rs-test-triton")
    assert (pushed["pushed_blobs"], pushed["mounted_blobs"], pushed["skipped"]) == (2, 1, False)


@pytest.mark.slow
def test_nodegroups_become_nodes_scale_and_go(sandbox: dict[str, Any], kube: Any, eks_cluster: str) -> None:
    eks = client(sandbox, "eks")
    create_nodegroup(sandbox, eks_cluster, "workers", 2, labels={"role": "inference"})
    create_nodegroup(sandbox, eks_cluster, "gpu", 1, "g4dn.xlarge", capacityType="SPOT",
                     taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}])

    workers = wait_for(lambda: len(ready_nodes(kube, "workers")) == 2 and ready_nodes(kube, "workers"))
    for node in workers:
        assert node.metadata.labels["node.kubernetes.io/instance-type"] == "t3.medium"
        assert node.metadata.labels["role"] == "inference"
        assert node.status.allocatable["pods"] == "17"  # what EKS allows a t3.medium
    (gpu,) = wait_for(lambda: ready_nodes(kube, "gpu"))
    assert gpu.metadata.labels["eks.amazonaws.com/capacityType"] == "SPOT"
    assert [(t.key, t.value, t.effect) for t in gpu.spec.taints] == [("nvidia.com/gpu", "true", "NoSchedule")]
    assert gpu.status.allocatable["nvidia.com/gpu"] == "1"

    eks.update_nodegroup_config(clusterName=eks_cluster, nodegroupName="workers",
                                scalingConfig={"minSize": 0, "maxSize": 3, "desiredSize": 1})
    wait_for(lambda: node_count(kube, "workers") == 1)

    eks.delete_nodegroup(clusterName=eks_cluster, nodegroupName="workers")
    eks.delete_nodegroup(clusterName=eks_cluster, nodegroupName="gpu")
    wait_for(lambda: node_count(kube, "workers") == node_count(kube, "gpu") == 0)


@pytest.mark.slow
def test_triton_readiness_comes_from_the_local_triton(sandbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from radstream.sandbox import cluster

    assert TritonBridge(None, {}).model_ready() is False
    assert TritonBridge(None, {"triton_http": "http://127.0.0.1:9"}).model_ready() is False  # discard port: closed
    monkeypatch.setattr(cluster, "READY_CACHE_SECONDS", 0.0)
    published = {"triton_http": sandbox["triton_http"]}
    bridge = TritonBridge(None, published)
    assert bridge.model_ready() is True
    published["triton_http"] = "http://127.0.0.1:9"
    # Unready only after failureThreshold (3) failed checks in a row.
    assert [bridge.model_ready() for _ in range(3)] == [True, True, False]


@pytest.mark.slow
def test_triton_deployment_and_load_balancer_reach_the_local_triton(sandbox: dict[str, Any], kube: Any,
                                                                    eks_cluster: str, tmp_path: Path) -> None:
    from kubernetes import client as k8s

    from radstream.inference.image import build_and_push
    from radstream.inference.repository import build_repository

    build_repository(tmp_path / "model_repo")  # a pod is Ready only once its image's model is served
    image = build_and_push(tmp_path / "model_repo", sandbox["base_image"], f"{sandbox['registry']}/rs-test-serving")["image"]
    create_nodegroup(sandbox, eks_cluster, "serving", 1)
    core, apps = k8s.CoreV1Api(kube), k8s.AppsV1Api(kube)
    core.create_namespace({"metadata": {"name": "radstream"}})
    apps.create_namespaced_deployment("radstream", {
        "metadata": {"name": "triton", "labels": TRITON_LABELS},
        "spec": {"replicas": 1, "selector": {"matchLabels": TRITON_LABELS},
                 "template": {"metadata": {"labels": TRITON_LABELS}, "spec": {"containers": [{
                     "name": "triton", "image": image,
                     "ports": [{"name": "http", "containerPort": 8000}, {"name": "grpc", "containerPort": 8001},
                               {"name": "metrics", "containerPort": 8002}],
                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}}},
    })
    wait_for(lambda: (apps.read_namespaced_deployment_status("triton", "radstream").status.ready_replicas or 0) == 1)

    core.create_namespaced_service("radstream", {
        "metadata": {"name": "triton"},
        "spec": {"type": "LoadBalancer", "selector": TRITON_LABELS, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "grpc", "port": 8001, "targetPort": 8001},
            {"name": "metrics", "port": 8002, "targetPort": "metrics"}]},
    })
    other = {"app": "other"}
    core.create_namespaced_service("radstream", {
        "metadata": {"name": "other"},
        "spec": {"type": "LoadBalancer", "selector": other, "ports": [{"port": 80, "targetPort": 8080}]},
    })
    (ingress,) = wait_for(lambda: core.read_namespaced_service("triton", "radstream").status.load_balancer.ingress)
    http_port = ingress.ports[0].port if ingress.ports else 80  # the documented convention
    # The hostname is the load balancer's DNS name, as on AWS; the address it stands for here is the ip.
    assert ingress.hostname.endswith(f".{REGION}.elb.amazonaws.com")
    with urllib.request.urlopen(f"http://{ingress.ip}:{http_port}/v2/health/ready", timeout=5) as response:
        assert response.status == 200
    assert f"{ingress.ip}:{ingress.ports[1].port}" == sandbox["triton_grpc"]
    assert (ingress.ports[2].port, ingress.ports[2].error) == (8002, "NoLocalEndpoint")

    (elb,) = wait_for(lambda: core.read_namespaced_service("other", "radstream").status.load_balancer.ingress)
    assert elb.hostname.endswith(f".{REGION}.elb.amazonaws.com") and not elb.ports


def served_model(sandbox: dict[str, Any]) -> tuple[list[str], list[int]]:
    """(versions, output dims) of the model the local Triton serves."""
    base = f"{sandbox['triton_http']}/v2/models/radstream_cxr"
    with urllib.request.urlopen(base, timeout=5) as metadata, urllib.request.urlopen(f"{base}/config", timeout=5) as config:
        return json.load(metadata)["versions"], json.load(config)["output"][0]["dims"]


@pytest.mark.slow
def test_the_local_triton_serves_the_model_of_the_image_the_deployment_names(sandbox: dict[str, Any], kube: Any,
                                                                              eks_cluster: str, tmp_path: Path) -> None:
    """A new image rolls out only once its model answers; an image the registry lacks backs off, named,
    and the model before it keeps serving."""
    from kubernetes import client as k8s

    from radstream.inference.image import build_and_push
    from radstream.inference.repository import build_repository, import_model
    from tests.unit.test_model_repository import labels_file, tiny_model

    repository, repo = f"{sandbox['registry']}/rs-test-switch", tmp_path / "model_repo"
    build_repository(repo)
    first = build_and_push(repo, sandbox["base_image"], repository)["image"]
    import_model(tiny_model(tmp_path / "tiny.onnx"), labels_file(tmp_path / "labels.txt", ["Effusion", "Mass", "Nodule"]),
                 repo, trained=False)
    second = build_and_push(repo, sandbox["base_image"], repository)["image"]
    create_nodegroup(sandbox, eks_cluster, "switch", 1)
    core, apps = k8s.CoreV1Api(kube), k8s.AppsV1Api(kube)
    core.create_namespace({"metadata": {"name": "switch"}})
    labels = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": "switch"}

    def deploy(image: str) -> None:
        template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "triton", "image": image}]}}
        body = {"metadata": {"name": "triton"}, "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                                                         "template": template}}
        if apps.list_namespaced_deployment("switch").items:
            apps.patch_namespaced_deployment("triton", "switch", body)
        else:
            apps.create_namespaced_deployment("switch", body)

    def rolled_out_on(image: str) -> bool:
        pods = core.list_namespaced_pod("switch", label_selector="app.kubernetes.io/instance=switch").items
        return len(pods) == 1 and pods[0].spec.containers[0].image == image and bool(pods[0].status.container_statuses) \
            and pods[0].status.container_statuses[0].ready

    deploy(first)
    wait_for(lambda: rolled_out_on(first), timeout=60, what="the first image rolled out")
    assert served_model(sandbox) == (["1"], [14])
    deploy(second)
    wait_for(lambda: rolled_out_on(second), timeout=60, what="the second image rolled out")
    assert served_model(sandbox) == (["2"], [3])

    missing = f"{repository}:serving-000000000000"
    deploy(missing)

    def backing_off() -> str | None:
        for pod in core.list_namespaced_pod("switch", label_selector="app.kubernetes.io/instance=switch").items:
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting
                if status.image == missing and waiting and waiting.reason == "ImagePullBackOff":
                    return waiting.message
        return None

    message = wait_for(backing_off, timeout=30, what="the missing image backing off")
    assert f'"{missing}"' in message and "not found" in message
    assert rolled_out_on(second) is False  # two pods now: the old one still Ready beside the one backing off
    assert (apps.read_namespaced_deployment_status("triton", "switch").status.ready_replicas or 0) == 1
    assert served_model(sandbox) == (["2"], [3])
