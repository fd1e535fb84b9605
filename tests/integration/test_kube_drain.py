"""Cordon and drain through the real `kubernetes` client against the sandbox's API emulator:
DaemonSet pods stay, PodDisruptionBudgets are honoured, a blocking budget is named at the timeout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from radstream.kube.apply import apply, get, list_objects, path, request
from radstream.kube.drain import DrainBlocked, drain, must_move, pods_to_move
from radstream.sandbox.kube import KubeEmulator
from tests.support.kube import sandbox_api_client

pytestmark = pytest.mark.slow

FAST = {"node_ready_delay": 0.05, "pod_start_delay": 0.05, "pod_ready_delay": 0.1,
        "load_balancer_delay": 0.1, "probe_period": 0.05}


def wait_until(predicate: Any, timeout: float = 20.0) -> Any:
    from radstream.kube.drain import poll

    return poll("test condition", predicate, timeout, interval=0.05)


@pytest.fixture
def cluster() -> Iterator[tuple[KubeEmulator, client.ApiClient]]:
    emulator = KubeEmulator(**FAST)
    api = sandbox_api_client(emulator.start())
    try:
        yield emulator, api
    finally:
        api.close()
        emulator.stop()


def nodes_of(api: client.ApiClient, nodegroup: str) -> list[str]:
    return [n["metadata"]["name"] for n in list_objects(api, "Node", labels={"eks.amazonaws.com/nodegroup": nodegroup})]


def ready_pods(api: client.ApiClient, namespace: str, labels: dict[str, str]) -> list[dict]:
    return [p for p in list_objects(api, "Pod", namespace, labels=labels)
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def guarded_app(api: client.ApiClient, nodegroup: str, min_available: int) -> None:
    labels = {"app": "guarded"}
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    apply(api, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guarded", "namespace": "apps"},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {
                             "nodeSelector": {"eks.amazonaws.com/nodegroup": nodegroup},
                             "containers": [{"name": "main", "image": "registry.example/app:1",
                                             "resources": {"requests": {"cpu": "100m"}}}]}}}})
    apply(api, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded", "namespace": "apps"},
                "spec": {"minAvailable": min_available, "selector": {"matchLabels": labels}}})
    wait_until(lambda: ready_pods(api, "apps", labels))


def test_drain_moves_coredns_off_a_full_t3_micro_and_keeps_daemonset_pods(cluster):
    emulator, api = cluster
    emulator.add_nodegroup("old-ng", "t3.micro", 1)
    (old,) = nodes_of(api, "old-ng")
    wait_until(lambda: len(ready_pods(api, "kube-system", {"k8s-app": "kube-dns"})) == 2)
    assert len(list_objects(api, "Pod", field_selector=f"spec.nodeName={old}")) == 4  # the t3.micro is full
    emulator.add_nodegroup("cpu-ng", "t3.medium", 1)
    (new,) = nodes_of(api, "cpu-ng")

    messages: list[str] = []
    report = drain(api, [old], timeout=30, interval=0.1, log=messages.append)

    assert get(api, "Node", old)["spec"]["unschedulable"] is True
    assert pods_to_move(api, old) == []
    left = list_objects(api, "Pod", field_selector=f"spec.nodeName={old}")
    assert len(left) == 2 and not any(must_move(p) for p in left)  # aws-node and kube-proxy stay
    assert sorted(k.split("/")[0] for k in report.evicted) == ["kube-system", "kube-system"]
    # The coredns budget (maxUnavailable 1) let one go at a time; both end up Ready on the new node.
    dns = wait_until(lambda: (pods := ready_pods(api, "kube-system", {"k8s-app": "kube-dns"})) and len(pods) == 2 and pods)
    assert {p["spec"]["nodeName"] for p in dns} == {new}
    assert any(m.startswith("cordoned") for m in messages)


def test_a_blocking_budget_is_named_at_the_timeout_and_a_relaxed_one_lets_the_drain_finish(cluster):
    emulator, api = cluster
    emulator.add_nodegroup("old-ng", "t3.large", 1)
    (old,) = nodes_of(api, "old-ng")
    guarded_app(api, "old-ng", min_available=1)
    emulator.add_nodegroup("new-ng", "t3.large", 1)  # where coredns can go

    with pytest.raises(DrainBlocked) as blocked:
        drain(api, [old], timeout=1.5, interval=0.2)
    message = str(blocked.value)
    assert "PodDisruptionBudget guarded" in message and "apps/guarded-" in message
    assert "relax" in message  # says what to do
    assert pods_to_move(api, old)  # nothing was forced out

    request(api, "PATCH", path("PodDisruptionBudget", "guarded", "apps"), body={"spec": {"minAvailable": 0}},
            content_type="application/merge-patch+json")
    report = drain(api, [old], timeout=30, interval=0.1)
    assert any(k.startswith("apps/guarded-") for k in report.evicted)
    assert pods_to_move(api, old) == []


def test_draining_a_drained_node_again_writes_nothing(cluster):
    emulator, api = cluster
    emulator.add_nodegroup("first", "t3.large", 1)
    emulator.add_nodegroup("second", "t3.large", 1)
    (node,) = nodes_of(api, "first")
    wait_until(lambda: len(ready_pods(api, "kube-system", {"k8s-app": "kube-dns"})) == 2)
    drain(api, [node], timeout=30, interval=0.1)
    version = get(api, "Node", node)["metadata"]["resourceVersion"]
    again = drain(api, [node], timeout=10, interval=0.1)
    assert again.evicted == []
    assert get(api, "Node", node)["metadata"]["resourceVersion"] == version
