"""The sandbox's Kubernetes API emulator, driven only through the official `kubernetes` client over HTTP."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.exceptions import ApiException

from radstream.sandbox.kube import KubeEmulator
from tests.support.kube import sandbox_api_client as api_client

pytestmark = pytest.mark.slow

FAST = {"node_ready_delay": 0.05, "pod_start_delay": 0.05, "pod_ready_delay": 0.1,
        "load_balancer_delay": 0.1, "probe_period": 0.05}


def wait_for(description: str, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until predicate() is truthy (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {description}")


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., tuple[KubeEmulator, client.ApiClient]]]:
    """Start emulators (always stopped afterwards) and return each with a client."""
    started: list[tuple[KubeEmulator, client.ApiClient]] = []

    def make(**options: Any) -> tuple[KubeEmulator, client.ApiClient]:
        emulator = KubeEmulator(**{**FAST, **options})
        pair = (emulator, api_client(emulator.start()))
        started.append(pair)
        return pair

    yield make
    for emulator, api in started:
        api.close()
        emulator.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[KubeEmulator, client.ApiClient]]:
    """One emulator with two roomy nodes, shared by the tests that do not reshape the cluster."""
    emulator = KubeEmulator(**FAST)
    api = api_client(emulator.start())
    emulator.add_nodegroup("workers", "t3.large", 2)
    yield emulator, api
    api.close()
    emulator.stop()


@pytest.fixture
def namespace(cluster: tuple[KubeEmulator, client.ApiClient]) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(cluster[1]).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def deployment(name: str, replicas: int, cpu: str = "100m", memory: str = "64Mi") -> client.V1Deployment:
    labels = {"app": name}
    container = client.V1Container(
        name="main", image="nvcr.io/nvidia/tritonserver:24.08-py3",
        resources=client.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory}),
        ports=[client.V1ContainerPort(container_port=8000)],
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                              spec=client.V1PodSpec(containers=[container])),
        ),
    )


def ready_pods(core: client.CoreV1Api, ns: str, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(ns, label_selector=f"app={app}").items
    return [p for p in pods if p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]


def status_body(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


# --- API surface --------------------------------------------------------------------------------


def test_requests_without_the_bearer_token_are_refused(cluster):
    emulator, api = cluster
    info = {"kubernetes_endpoint": emulator.endpoint, "kubernetes_ca": api.configuration.ssl_ca_cert}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api_client(info, token="wrong")).list_namespace()
    assert caught.value.status == 401
    assert status_body(caught.value)["reason"] == "Unauthorized"


def test_version_and_discovery_serve_the_dynamic_client(cluster, tmp_path):
    _, api = cluster
    assert client.VersionApi(api).get_code().major == "1"
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and deployments.name == "deployments"
    assert dyn.resources.get(api_version="policy/v1", kind="PodDisruptionBudget").name == "poddisruptionbudgets"
    names = {ns.metadata.name for ns in dyn.resources.get(api_version="v1", kind="Namespace").get().items}
    assert {"default", "kube-system"} <= names


def test_create_get_list_patch_delete_with_metadata(cluster, namespace):
    core = client.CoreV1Api(cluster[1])
    created = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"tier": "a"}), data={"k": "v"}))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and int(meta.resource_version) > 0
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="other", labels={"tier": "b"})))

    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector="tier=a").items] == ["settings"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector="tier in (a,b),tier!=a").items] == ["other"]
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace, field_selector="metadata.name=other").items] == ["other"]

    patched = core.patch_namespaced_config_map("settings", namespace, {"data": {"k": None, "n": "1"}},
                                               _content_type="application/merge-patch+json")
    assert patched.data == {"n": "1"}
    assert int(patched.metadata.resource_version) > int(meta.resource_version)
    assert patched.metadata.uid == meta.uid

    core.delete_namespaced_config_map("settings", namespace)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("settings", namespace)
    assert caught.value.status == 404
    assert status_body(caught.value)["reason"] == "NotFound"


def test_conflicts_and_invalid_objects_are_status_errors(cluster, namespace):
    core = client.CoreV1Api(cluster[1])
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="creds"), string_data={"password": "x"})
    stale = core.create_namespaced_secret(namespace, secret)
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_secret(namespace, secret)
    assert (caught.value.status, status_body(caught.value)["reason"]) == (409, "AlreadyExists")

    core.patch_namespaced_secret("creds", namespace, {"metadata": {"labels": {"rotated": "yes"}}})
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("creds", namespace, stale)
    assert (caught.value.status, status_body(caught.value)["reason"]) == (409, "Conflict")

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(labels={"a": "b"})))
    assert (caught.value.status, status_body(caught.value)["reason"]) == (422, "Invalid")
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="x", labels={"not a key!": "v"})))
    body = status_body(caught.value)
    assert caught.value.status == 422 and body["details"]["causes"][0]["field"] == "metadata.labels"

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("no-such-namespace", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert caught.value.status == 404


def test_server_side_apply_creates_then_updates_and_drops_removed_fields(cluster, namespace, tmp_path):
    _, api = cluster
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    services = dyn.resources.get(api_version="v1", kind="Service")
    manifest = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "triton", "namespace": namespace, "labels": {"app": "triton", "stage": "one"}},
        "spec": {"selector": {"app": "triton"}, "ports": [{"name": "http", "port": 80, "targetPort": 8000},
                                                          {"name": "grpc", "port": 8001}]},
    }
    created = services.server_side_apply(manifest, field_manager="radstream")
    assert created.spec.clusterIP and created.spec.type == "ClusterIP"

    again = services.server_side_apply(manifest, field_manager="radstream")
    assert again.metadata.resourceVersion == created.metadata.resourceVersion  # a no-op apply writes nothing

    manifest["metadata"]["labels"] = {"app": "triton"}
    manifest["spec"]["ports"] = [{"name": "http", "port": 80, "targetPort": 8000}]
    updated = services.server_side_apply(manifest, field_manager="radstream")
    assert dict(updated.metadata.labels) == {"app": "triton"}
    assert [p.port for p in updated.spec.ports] == [80]
    assert updated.spec.clusterIP == created.spec.clusterIP
    assert [f.manager for f in updated.metadata.managedFields] == ["radstream"]

    # The typed API with a dict body: the way radstream.kube applies manifests.
    apps = client.AppsV1Api(api)
    body = api.sanitize_for_serialization(deployment("applied", 1))
    body.update(apiVersion="apps/v1", kind="Deployment")
    first = apps.patch_namespaced_deployment("applied", namespace, body, field_manager="radstream",
                                             _content_type="application/apply-patch+yaml")
    body["spec"]["replicas"] = 2
    second = apps.patch_namespaced_deployment("applied", namespace, body, field_manager="radstream",
                                              _content_type="application/apply-patch+yaml")
    assert (first.spec.replicas, second.spec.replicas) == (1, 2)
    assert second.metadata.generation == first.metadata.generation + 1


def test_json_patch_and_strategic_merge_of_containers(cluster, namespace):
    apps = client.AppsV1Api(cluster[1])
    apps.create_namespaced_deployment(namespace, deployment("web", 0))
    patched = apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox:1.36"}]}}}})
    containers = patched.spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("main", "nginx:1.27"), ("sidecar", "busybox:1.36")]
    assert containers[0].ports[0].container_port == 8000  # merged by name, not replaced

    patched = apps.patch_namespaced_deployment("web", namespace, [
        {"op": "replace", "path": "/spec/replicas", "value": 0},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
        {"op": "add", "path": "/metadata/labels/team", "value": "radiology"}])
    assert len(patched.spec.template.spec.containers) == 1 and patched.metadata.labels["team"] == "radiology"


# --- the simulated cluster ----------------------------------------------------------------------


def test_deployment_gets_running_ready_pods_and_scales(cluster, namespace):
    emulator, api = cluster
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("triton", 2))

    status = wait_for("2 ready replicas",
                      lambda: (s := apps.read_namespaced_deployment_status("triton", namespace).status).ready_replicas == 2 and s)
    assert status.observed_generation == 1 and status.updated_replicas == 2
    assert {c.type: c.status for c in status.conditions}["Available"] == "True"
    pods = ready_pods(core, namespace, "triton")
    assert len(pods) == 2
    assert all(p.metadata.name.startswith("triton-") and p.spec.node_name and p.status.pod_ip for p in pods)
    node = pods[0].spec.node_name
    on_node = core.list_namespaced_pod(namespace, field_selector=f"spec.nodeName={node}").items
    assert {p.spec.node_name for p in on_node} == {node}

    apps.patch_namespaced_deployment_scale("triton", namespace, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment_scale("triton", namespace).spec.replicas == 3
    wait_for("3 ready pods", lambda: len(ready_pods(core, namespace, "triton")) == 3)
    apps.replace_namespaced_deployment_scale("triton", namespace, client.V1Scale(
        metadata=client.V1ObjectMeta(name="triton", namespace=namespace), spec=client.V1ScaleSpec(replicas=1)))
    wait_for("1 pod left", lambda: len(core.list_namespaced_pod(namespace, label_selector="app=triton").items) == 1)


def test_rolling_update_replaces_every_pod(cluster, namespace):
    core, apps = client.CoreV1Api(cluster[1]), client.AppsV1Api(cluster[1])
    apps.create_namespaced_deployment(namespace, deployment("roll", 2))
    wait_for("first rollout", lambda: len(ready_pods(core, namespace, "roll")) == 2)
    before = {p.metadata.name for p in ready_pods(core, namespace, "roll")}
    apps.patch_namespaced_deployment("roll", namespace, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nvcr.io/nvidia/tritonserver:24.09-py3"}]}}}})

    def rolled_out() -> bool:
        status = apps.read_namespaced_deployment("roll", namespace).status
        pods = ready_pods(core, namespace, "roll")
        return (status.observed_generation == 2 and status.updated_replicas == 2 and status.ready_replicas == 2
                and len(pods) == 2 and not before & {p.metadata.name for p in pods})

    wait_for("second rollout", rolled_out)
    images = {p.spec.containers[0].image for p in core.list_namespaced_pod(namespace, label_selector="app=roll").items}
    assert images == {"nvcr.io/nvidia/tritonserver:24.09-py3"}


def test_watch_streams_added_then_modified(cluster, namespace):
    core = client.CoreV1Api(cluster[1])
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="probe", labels={"app": "probe"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_pod, namespace, label_selector="app=probe", timeout_seconds=10):
        seen.append((event["type"], event["object"].status.phase))
        if event["object"].status.phase == "Running":
            stream.stop()
    assert seen[0][0] == "ADDED" and ("MODIFIED", "Running") in seen

    latest = core.list_namespaced_pod(namespace).metadata.resource_version
    core.delete_namespaced_pod("probe", namespace)
    events = list(watch.Watch().stream(core.list_namespaced_pod, namespace, resource_version=latest, timeout_seconds=3))  # a loaded machine may take over a second
    assert [e["type"] for e in events] == ["DELETED"]


def test_load_balancer_service_gets_a_hostname(cluster, namespace):
    core = client.CoreV1Api(cluster[1])
    core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="edge"),
        spec=client.V1ServiceSpec(type="LoadBalancer", selector={"app": "triton"},
                                  ports=[client.V1ServicePort(name="http", port=80, target_port=8000)])))
    ingress = wait_for("a load balancer hostname",
                       lambda: (core.read_namespaced_service_status("edge", namespace).status.load_balancer.ingress or [None])[0])
    assert ingress.hostname.endswith(".elb.amazonaws.com")
    assert core.read_namespaced_service("edge", namespace).spec.ports[0].node_port >= 30000


def test_hpa_keeps_its_target_within_bounds(cluster, namespace):
    apps, autoscaling = client.AppsV1Api(cluster[1]), client.AutoscalingV2Api(cluster[1])
    apps.create_namespaced_deployment(namespace, deployment("scaled", 1))
    autoscaling.create_namespaced_horizontal_pod_autoscaler(namespace, client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="scaled"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            min_replicas=2, max_replicas=4,
            scale_target_ref=client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="scaled"))))
    wait_for("the HPA to raise replicas to its minimum",
             lambda: apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 2)
    status = wait_for("HPA status", lambda: autoscaling.read_namespaced_horizontal_pod_autoscaler_status("scaled", namespace).status)
    assert status.desired_replicas == 2


def test_cordon_and_eviction_respect_the_disruption_budget(cluster, namespace):
    _, api = cluster
    core, apps, policy = client.CoreV1Api(api), client.AppsV1Api(api), client.PolicyV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("guarded", 2))
    policy.create_namespaced_pod_disruption_budget(namespace, client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="guarded"),
        spec=client.V1PodDisruptionBudgetSpec(min_available=2, selector=client.V1LabelSelector(match_labels={"app": "guarded"}))))
    victim = wait_for("2 ready pods", lambda: len(p := ready_pods(core, namespace, "guarded")) == 2 and p)[0]
    old_node = victim.spec.node_name
    core.patch_node(old_node, {"spec": {"unschedulable": True}})
    try:
        eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=victim.metadata.name, namespace=namespace))
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_pod_eviction(victim.metadata.name, namespace, eviction)
        assert caught.value.status == 429
        body = status_body(caught.value)
        assert body["reason"] == "TooManyRequests" and "guarded" in body["details"]["causes"][0]["message"]

        policy.patch_namespaced_pod_disruption_budget("guarded", namespace, {"spec": {"minAvailable": 1}})
        wait_for("the budget to allow a disruption", lambda: policy.read_namespaced_pod_disruption_budget_status(
            "guarded", namespace).status.disruptions_allowed == 1)
        core.create_namespaced_pod_eviction(victim.metadata.name, namespace, eviction)

        def replaced() -> list[client.V1Pod]:
            pods = ready_pods(core, namespace, "guarded")
            return len(pods) == 2 and victim.metadata.name not in {p.metadata.name for p in pods} and pods

        pods = wait_for("a replacement on a schedulable node", replaced)
        newcomer = next(p for p in pods if p.metadata.creation_timestamp >= victim.metadata.creation_timestamp
                        and p.metadata.name != victim.metadata.name)
        assert newcomer.spec.node_name != old_node
    finally:
        core.patch_node(old_node, {"spec": {"unschedulable": False}})


def test_a_t3_micro_leaves_a_triton_pod_pending_until_a_bigger_nodegroup_arrives(make_emulator):
    emulator, api = make_emulator()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    [node] = emulator.add_nodegroup("old", "t3.micro", 1)
    assert core.read_node(node).status.allocatable["pods"] == "4"
    wait_for("coredns on the micro node", lambda: apps.read_namespaced_deployment("coredns", "kube-system").status.ready_replicas == 2)

    apps.create_namespaced_deployment("default", deployment("triton", 1, cpu="500m", memory="256Mi"))
    pod = wait_for("a FailedScheduling condition", lambda: next(
        (p for p in core.list_namespaced_pod("default", label_selector="app=triton").items
         if any(c.type == "PodScheduled" and c.status == "False" for c in p.status.conditions or [])), None))
    condition = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert pod.status.phase == "Pending" and condition.reason == "Unschedulable"
    assert "Too many pods" in condition.message
    events = core.list_namespaced_event("default").items
    assert any(e.reason == "FailedScheduling" and e.involved_object.name == pod.metadata.name for e in events)

    emulator.add_nodegroup("new", "t3.medium", 1)
    assert wait_for("the pod to run on the new node", lambda: ready_pods(core, "default", "triton"))[0].spec.node_name != node


def test_hooks_drive_readiness_pod_start_and_the_load_balancer(make_emulator):
    model_ready = threading.Event()
    started: list[str] = []
    stopped: list[str] = []
    emulator, api = make_emulator(
        readiness_hook=lambda pod: pod["metadata"]["namespace"] == "kube-system" or model_ready.is_set(),
        pod_start_hook=lambda pod: started.append(pod["metadata"]["name"]),
        pod_stop_hook=lambda pod: stopped.append(pod["metadata"]["name"]),
        load_balancer_hook=lambda service: {"hostname": "localhost", "ports": [{"port": 18000, "protocol": "TCP"}]},
    )
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    emulator.add_nodegroup("gpu", "g4dn.xlarge", 1, labels={"role": "inference"},
                           taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}])
    spec = deployment("triton", 1)
    spec.spec.template.spec.tolerations = [client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    spec.spec.template.spec.node_selector = {"role": "inference"}
    apps.create_namespaced_deployment("default", spec)

    wait_for("coredns to be kept off the tainted node", lambda: any(
        "untolerated taint {nvidia.com/gpu: present}" in (c.message or "")
        for p in core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items
        for c in p.status.conditions or [] if c.type == "PodScheduled" and c.status == "False"))
    running = wait_for("the pod to run", lambda: next(
        (p for p in core.list_namespaced_pod("default").items if p.status.phase == "Running"), None))
    assert running.metadata.name in started
    assert not ready_pods(core, "default", "triton")  # the hook says the model is not ready yet
    model_ready.set()
    wait_for("readiness through the hook", lambda: ready_pods(core, "default", "triton"))

    core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="edge"),
        spec=client.V1ServiceSpec(type="LoadBalancer", ports=[client.V1ServicePort(port=80)])))
    ingress = wait_for("the hook's hostname", lambda: (core.read_namespaced_service("edge", "default")
                                                       .status.load_balancer.ingress or [None])[0])
    assert (ingress.hostname, ingress.ports[0].port) == ("localhost", 18000)

    apps.delete_namespaced_deployment("triton", "default")
    wait_for("the stop hook", lambda: running.metadata.name in stopped)


# --- resource metrics (metrics-server) and the HPA controller ------------------------------------

METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"
MEBIBYTE = 2**20


def metrics_server() -> client.V1Deployment:
    """What the EKS metrics-server add-on installs, as far as the emulator looks: a Deployment
    `kube-system/metrics-server` with one small pod."""
    return deployment("metrics-server", 1, cpu="50m", memory="32Mi")


def list_pod_metrics(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    answer: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(METRICS_GROUP, METRICS_VERSION, ns, "pods")
    return answer["items"]


def metrics_api_status(api: client.ApiClient, ns: str = "default") -> int:
    try:
        list_pod_metrics(api, ns)
    except ApiException as error:
        return error.status
    return 200


def cpu_hpa(name: str, min_replicas: int, max_replicas: int, utilization: int = 50,
            scale_down_window: int | None = None) -> client.V2HorizontalPodAutoscaler:
    behavior = (None if scale_down_window is None else client.V2HorizontalPodAutoscalerBehavior(
        scale_down=client.V2HPAScalingRules(stabilization_window_seconds=scale_down_window)))
    return client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V2HorizontalPodAutoscalerSpec(
            min_replicas=min_replicas, max_replicas=max_replicas, behavior=behavior,
            scale_target_ref=client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name=name),
            metrics=[client.V2MetricSpec(type="Resource", resource=client.V2ResourceMetricSource(
                name="cpu", target=client.V2MetricTarget(type="Utilization", average_utilization=utilization)))]))


def hpa_conditions(hpa: client.V2HorizontalPodAutoscaler) -> dict[str, tuple[str, str | None]]:
    return {c.type: (c.status, c.reason) for c in (hpa.status.conditions if hpa.status else None) or []}


def hpa_utilization(hpa: client.V2HorizontalPodAutoscaler) -> int | None:
    metrics = (hpa.status.current_metrics if hpa.status else None) or []
    resource = metrics[0].resource if metrics else None
    return resource.current.average_utilization if resource and resource.current else None


class Usage:
    """A usage_hook the test steers: `millicores` for every running pod labelled app=<app>, nothing
    for any other pod (as metrics-server has nothing to scrape there); it records each call."""

    def __init__(self, app: str, millicores: float, memory: float = 64 * MEBIBYTE) -> None:
        self.app, self.millicores, self.memory = app, millicores, memory
        self.calls: list[list[str]] = []

    def __call__(self, running: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
        self.calls.append([p["metadata"]["name"] for p in running])
        return {p["metadata"]["uid"]: (self.millicores, self.memory) for p in running
                if (p["metadata"].get("labels") or {}).get("app") == self.app}


METRICS_FAST = {"metric_resolution": 0.2, "hpa_sync_period": 0.2}


def test_without_metrics_server_the_metrics_api_is_absent_and_the_hpa_cannot_scale(make_emulator):
    usage = Usage("web", 150.0)
    emulator, api = make_emulator(usage_hook=usage, **METRICS_FAST)
    core, apps, autoscaling = client.CoreV1Api(api), client.AppsV1Api(api), client.AutoscalingV2Api(api)
    emulator.add_nodegroup("workers", "t3.large", 2)
    apps.create_namespaced_deployment("default", deployment("web", 1))
    wait_for("the pod to be ready", lambda: ready_pods(core, "default", "web"), timeout=60)

    with pytest.raises(ApiException) as caught:
        list_pod_metrics(api, "default")
    assert caught.value.status == 404
    assert status_body(caught.value)["reason"] == "NotFound"

    autoscaling.create_namespaced_horizontal_pod_autoscaler("default", cpu_hpa("web", 1, 3))
    hpa = wait_for("the HPA to report ScalingActive", lambda: "ScalingActive" in hpa_conditions(
        h := autoscaling.read_namespaced_horizontal_pod_autoscaler_status("web", "default")) and h, timeout=60)
    assert hpa_conditions(hpa)["ScalingActive"] == ("False", "FailedGetResourceMetric")
    assert hpa_utilization(hpa) is None
    assert hpa.status.desired_replicas == 1
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 1
    assert usage.calls == []  # no metrics-server, so nobody measures the pods


def test_metrics_server_serves_pod_metrics_once_ready(make_emulator):
    serving = threading.Event()
    usage = Usage("web", 123.4, 48 * MEBIBYTE)
    emulator, api = make_emulator(
        usage_hook=usage, **METRICS_FAST,
        readiness_hook=lambda pod: serving.is_set() if pod["metadata"]["name"].startswith("metrics-server-") else True)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    emulator.add_nodegroup("workers", "t3.large", 2)
    apps.create_namespaced_deployment("default", deployment("web", 2))
    apps.create_namespaced_deployment("default", deployment("idle", 1))
    wait_for("the workloads to be ready", lambda: len(ready_pods(core, "default", "web")) == 2
             and ready_pods(core, "default", "idle"), timeout=60)
    assert metrics_api_status(api) == 404

    apps.create_namespaced_deployment("kube-system", metrics_server())
    wait_for("metrics-server's pod to run", lambda: any(
        p.status.phase == "Running" for p in core.list_namespaced_pod("kube-system", label_selector="app=metrics-server").items),
        timeout=60)
    with pytest.raises(ApiException) as caught:
        list_pod_metrics(api, "default")
    assert caught.value.status == 503  # held unready by the readiness hook: an unavailable APIService
    assert status_body(caught.value)["reason"] == "ServiceUnavailable"
    assert usage.calls == []

    serving.set()
    wait_for("the metrics API once metrics-server is ready", lambda: metrics_api_status(api) == 200, timeout=60)
    items = wait_for("PodMetrics for the measured pods", lambda: len(m := list_pod_metrics(api, "default")) == 2 and m,
                     timeout=60)
    web = {p.metadata.name: p for p in ready_pods(core, "default", "web")}
    assert {m["metadata"]["name"] for m in items} == set(web)  # none for the idle pod the hook skips
    assert list_pod_metrics(api, "kube-system") == []  # nor for the system pods
    assert usage.calls and all(set(web) <= set(names) for names in usage.calls)
    for item in items:
        assert (item["apiVersion"], item["kind"]) == ("metrics.k8s.io/v1beta1", "PodMetrics")
        assert item["metadata"]["namespace"] == "default" and item["metadata"]["labels"]["app"] == "web"
        assert item["timestamp"] and item["window"]
        [container] = item["containers"]
        assert container["name"] == "main"
        cpu, memory = container["usage"]["cpu"], container["usage"]["memory"]
        assert cpu.endswith("n") and cpu[:-1].isdigit()
        assert int(cpu[:-1]) / 1e6 == pytest.approx(123.4, abs=0.001)
        assert memory == f"{48 * 1024}Ki"
    one = client.CustomObjectsApi(api).get_namespaced_custom_object(
        METRICS_GROUP, METRICS_VERSION, "default", "pods", items[0]["metadata"]["name"])
    assert one["containers"][0]["usage"]["cpu"] == items[0]["containers"][0]["usage"]["cpu"]


def test_pod_metrics_are_read_only(make_emulator):
    usage = Usage("web", 10.0)
    emulator, api = make_emulator(usage_hook=usage, **METRICS_FAST)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    emulator.add_nodegroup("workers", "t3.large", 1)
    apps.create_namespaced_deployment("kube-system", metrics_server())
    apps.create_namespaced_deployment("default", deployment("web", 1))
    wait_for("the metrics API", lambda: metrics_api_status(api) == 200, timeout=60)
    wait_for("the pod to be ready", lambda: ready_pods(core, "default", "web"), timeout=60)
    name = wait_for("a PodMetrics", lambda: (m := list_pod_metrics(api, "default")) and m[0]["metadata"]["name"], timeout=60)

    body = {"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
            "metadata": {"name": "forged", "namespace": "default"},
            "containers": [{"name": "main", "usage": {"cpu": "1n", "memory": "1Ki"}}]}
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(METRICS_GROUP, METRICS_VERSION, "default", "pods", body)
    assert caught.value.status == 405
    assert status_body(caught.value)["reason"] == "MethodNotAllowed"
    with pytest.raises(ApiException) as caught:
        custom.delete_namespaced_custom_object(METRICS_GROUP, METRICS_VERSION, "default", "pods", name)
    assert caught.value.status == 405
    assert "forged" not in {m["metadata"]["name"] for m in list_pod_metrics(api, "default")}


def test_hpa_scales_up_on_cpu_then_down_after_its_stabilization_window(make_emulator):
    usage = Usage("web", 150.0)
    emulator, api = make_emulator(usage_hook=usage, **METRICS_FAST)
    core, apps, autoscaling = client.CoreV1Api(api), client.AppsV1Api(api), client.AutoscalingV2Api(api)
    emulator.add_nodegroup("workers", "t3.large", 2)
    apps.create_namespaced_deployment("kube-system", metrics_server())
    wait_for("the metrics API", lambda: metrics_api_status(api) == 200, timeout=60)
    apps.create_namespaced_deployment("default", deployment("web", 1, cpu="100m"))
    wait_for("the pod to be ready", lambda: ready_pods(core, "default", "web"), timeout=60)

    # 150m of a 100m request against a 50 % target: ceil(1 × 150 / 50) = 3, the maximum.
    autoscaling.create_namespaced_horizontal_pod_autoscaler("default", cpu_hpa("web", 1, 3, 50, scale_down_window=2))
    wait_for("the HPA to scale the Deployment to 3",
             lambda: apps.read_namespaced_deployment("web", "default").spec.replicas == 3, timeout=60)
    wait_for("3 ready pods", lambda: len(ready_pods(core, "default", "web")) == 3, timeout=60)

    def limited_at_three() -> Any:
        hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler_status("web", "default")
        return (hpa_conditions(hpa).get("ScalingLimited") == ("True", "TooManyReplicas")
                and hpa_utilization(hpa) == 150 and hpa.status.current_replicas == 3 and hpa)

    hpa = wait_for("the HPA to be limited at its maximum with every pod measured", limited_at_three, timeout=60)
    assert hpa_conditions(hpa)["ScalingActive"] == ("True", "ValidMetricFound")
    assert hpa_conditions(hpa)["AbleToScale"][0] == "True"
    assert hpa.status.desired_replicas == 3
    assert hpa.status.current_metrics[0].type == "Resource" and hpa.status.current_metrics[0].resource.name == "cpu"
    assert hpa.status.last_scale_time is not None

    # Every version of the HPA from here on, so the order is seen whatever this thread's timing.
    since = hpa.metadata.resource_version
    usage.millicores = 5.0
    seen: list[tuple[int | None, int]] = []
    stream = watch.Watch()
    for event in stream.stream(autoscaling.list_namespaced_horizontal_pod_autoscaler, "default",
                               resource_version=since, timeout_seconds=60):
        obj = event["object"]
        seen.append((hpa_utilization(obj), obj.status.desired_replicas))
        if obj.status.desired_replicas == 1:
            stream.stop()
    assert seen and seen[-1][1] == 1, f"the HPA never scaled down: {seen}"
    first_low = next(i for i, (utilization, _) in enumerate(seen) if utilization == 5)
    first_down = next(i for i, (_, desired) in enumerate(seen) if desired == 1)
    assert first_low < first_down, seen  # the low usage was seen, and held at 3, before scaling down
    assert all(desired == 3 for _, desired in seen[:first_down]), seen
    assert seen[first_down][0] == 5

    wait_for("the Deployment back at 1", lambda: apps.read_namespaced_deployment("web", "default").spec.replicas == 1,
             timeout=60)
    wait_for("one pod left", lambda: len(core.list_namespaced_pod("default", label_selector="app=web").items) == 1,
             timeout=60)
    final = wait_for("the HPA at its minimum", lambda: hpa_conditions(
        h := autoscaling.read_namespaced_horizontal_pod_autoscaler_status("web", "default")).get("ScalingLimited")
        == ("True", "TooFewReplicas") and h, timeout=60)
    assert final.status.desired_replicas == 1 and hpa_utilization(final) == 5
