"""The sandbox's Kubernetes service: the API emulator, fed by the emulated EKS and wired to the
local Triton, so the cluster phases run the same code as on AWS.

EKS → Kubernetes. A thread lists the emulated account's EKS clusters and nodegroups about once a
second (boto3 against the sandbox's own AWS endpoint) and mirrors them into the emulator's kubelet
simulation: a new ACTIVE nodegroup launches `desiredSize` nodes of its first instance type with its
labels, taints and capacity type; a new desiredSize adds or removes nodes; a nodegroup that is gone
(or DELETING) takes its nodes and pods with it, so pods are evicted and rescheduled as on EKS; a
nodegroup replaced under the same name (a new ARN) gets new nodes. moto creates nodegroups ACTIVE
and deletes them at once. One exception, judged once per nodegroup in this process's moto: when the
node role cannot pull AWS's add-on images (radstream.sandbox.node_join), the nodegroup is CREATING
at once, its nodes stay NotReady, and after `join_timeout` seconds it is CREATE_FAILED with
NodeCreationFailure naming their instances — as on EKS. The whole emulated account is one Kubernetes
cluster; label, taint and instance-type changes of an existing nodegroup are not mirrored (EKS
cannot change the instance type either).

Which pods are Triton. Exactly the pods labelled `app.kubernetes.io/name=triton`. Their first
container's image is the serving image, pulled from the sandbox's registry, whose model the local
Triton then serves (radstream.sandbox.served_image: the sandbox has no container runtime, so one
local Triton stands for every Triton pod). Such a running pod is Ready while its image's model is
the one loaded and the local Triton reports it ready (GET <triton_http>/v2/models/radstream_cxr/ready,
cached for a second), and turns unready after 3 failed checks in a row, as a readinessProbe with
failureThreshold 3 would; every other pod keeps the emulator's default readiness and pulls.

Load balancers. Every LoadBalancer Service gets a Classic ELB and security group in the emulated
account (radstream.sandbox.cloud_controller) and its DNS name as ingress hostname. A LoadBalancer
Service is Triton's when its selector selects a Triton pod or itself asks for
`app.kubernetes.io/name=triton`. Its ingress entry is
    {"hostname": <ELB DNS name>, "ip": "127.0.0.1", "ports": [{"port": <local port>, "protocol": "TCP"}, ...]}
with one `ports` entry per Service port, in the Service's port order: a Service port whose target is
Triton's HTTP port (8000, or a port named `http`) gets the local Triton's HTTP port, one targeting
gRPC (8001 / `grpc`) its gRPC port; any other keeps its own number and carries
`"error": "NoLocalEndpoint"`. A port the load balancer terminates TLS on (ssl-cert and ssl-ports)
leads instead to the nginx front the cloud controller runs for its HTTPS listener, itself proxying
to the local Triton; until that front listens the Service gets no ingress. The convention for clients, true on EKS too (where `ports` is absent):
Service port i is reached at <ip, else hostname>:<ports[i].port if ports is present else the Service
port> — the HTTP endpoint URL is http://<ip or hostname>:<ports[0].port, or 80> when HTTP is the
first port. The local Triton runs from the sandbox's start, whether Triton pods exist or not.

Application Load Balancers made in the emulated account get their doors from the ALB controller
(radstream.sandbox.alb_controller), which reads Triton's node ports from this emulator."""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from radstream.inference.model import MODEL_NAME
from radstream.kube.manifests import is_ssl_port
from radstream.sandbox.alb_controller import AlbController
from radstream.sandbox.cloud_controller import CloudController
from radstream.sandbox.process_usage import CpuMeter
from radstream.sandbox.served_image import ServedImage, pull_failure
from radstream.sandbox.tls_front import TlsFronts

log = logging.getLogger(__name__)

TRITON_LABEL = ("app.kubernetes.io/name", "triton")
# Triton's container ports, and the names manifests conventionally give them.
TRITON_HTTP_PORT, TRITON_GRPC_PORT = 8000, 8001
TRITON_PORT_NAMES = {"http": TRITON_HTTP_PORT, "grpc": TRITON_GRPC_PORT}
LOCAL_HOSTNAME = "127.0.0.1"
READY_CACHE_SECONDS = 1.0
# Like a kubelet's readinessProbe failureThreshold: one slow answer under load does not unready pods.
READY_FAILURE_THRESHOLD = 3
SYNC_INTERVAL = 1.0
# EKS takes minutes to give up on nodes that do not join; the sandbox, a few seconds.
JOIN_TIMEOUT = 5.0
# EKS statuses in which a nodegroup has nodes (CREATING has none yet, DELETING none any more).
_RUNNING_STATUSES = ("ACTIVE", "UPDATING", "DEGRADED")
# ...except nodes that never join: they run NotReady while EKS waits for them, and after it gave up.
_NOT_JOINING_STATUSES = ("CREATING", "CREATE_FAILED")

Obj = dict[str, Any]


# --- EKS → Kubernetes (pure part) -----------------------------------------------------------------
@dataclass(frozen=True)
class NodegroupSpec:
    """What the emulator needs of an EKS nodegroup."""

    instance_type: str
    size: int
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[tuple[str, str, str], ...] = ()  # (key, value, EKS effect)
    capacity_type: str = "ON_DEMAND"
    joins: bool = True  # False: the nodes never turn Ready
    arn: str = ""  # a new nodegroup under an old name is another nodegroup


def nodegroup_spec(described: Obj, joins: bool = True) -> NodegroupSpec | None:
    """The spec of a `describe_nodegroup()["nodegroup"]`, or None when it has no nodes to mirror."""
    status = described.get("status")
    if status not in _RUNNING_STATUSES and (joins or status not in _NOT_JOINING_STATUSES):
        return None
    return NodegroupSpec(
        instance_type=(described.get("instanceTypes") or ["t3.medium"])[0],
        size=int((described.get("scalingConfig") or {}).get("desiredSize", 0)),
        labels=tuple(sorted((described.get("labels") or {}).items())),
        taints=tuple((t["key"], t.get("value", ""), t["effect"]) for t in described.get("taints") or []),
        capacity_type=described.get("capacityType") or "ON_DEMAND",
        joins=joins,
        arn=described.get("nodegroupArn") or "",
    )


Action = tuple[str, str, NodegroupSpec | None]  # (remove|add|resize, nodegroup name, wanted spec)


def sync_plan(mirrored: Mapping[str, NodegroupSpec], wanted: Mapping[str, NodegroupSpec]) -> list[Action]:
    """Actions turning the mirrored nodegroups into the wanted ones: removals first (their pods
    reschedule onto what remains or is added), then additions, then size changes. A nodegroup
    replaced under the same name is removed, then added."""
    replaced = {name for name, spec in wanted.items() if name in mirrored and mirrored[name].arn != spec.arn}
    plan: list[Action] = [("remove", name, None) for name in sorted(mirrored) if name not in wanted or name in replaced]
    plan += [("add", name, spec) for name, spec in sorted(wanted.items()) if name not in mirrored or name in replaced]
    plan += [("resize", name, spec) for name, spec in sorted(wanted.items())
             if name in mirrored and name not in replaced and mirrored[name].size != spec.size]
    return plan


# --- EKS → Kubernetes (the thread) ----------------------------------------------------------------
class EksSync:
    """Mirrors the emulated account's EKS nodegroups and add-ons into a KubeEmulator, every
    `interval` seconds."""

    def __init__(self, kube: Any, aws_endpoint: str, region: str, interval: float = SYNC_INTERVAL,
                 join_timeout: float = JOIN_TIMEOUT) -> None:
        self.kube, self.aws_endpoint, self.region, self.interval = kube, aws_endpoint, region, interval
        self.join_timeout = join_timeout
        self.mirrored: dict[str, NodegroupSpec] = {}
        self._judged: dict[str, tuple[bool, float]] = {}  # nodegroup ARN -> (nodes join, first seen)
        self._refused: dict[str, NodegroupSpec] = {}  # specs the emulator rejected, not retried unchanged
        self._failing = False
        self._insights_at = float("-inf")
        self._client: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="eks-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
                if self._failing:
                    log.info("EKS sync: %s answers again", self.aws_endpoint)
                self._failing = False
            except Exception as error:  # the endpoint may be down or busy: keep the cluster as it is
                if not self._failing:
                    log.warning("EKS sync: cannot read nodegroups from %s (%s); retrying", self.aws_endpoint, error)
                self._failing = True
            self._stop.wait(self.interval)

    def _eks(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            from radstream.sandbox import SANDBOX_CREDENTIALS

            self._client = boto3.client(
                "eks", region_name=self.region, endpoint_url=self.aws_endpoint, **SANDBOX_CREDENTIALS,
                config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
            )
        return self._client

    def read_nodegroups(self) -> dict[str, NodegroupSpec]:
        """Every running nodegroup of every cluster, by nodegroup name."""
        eks = self._eks()
        found: dict[str, NodegroupSpec] = {}
        seen: set[str] = set()
        for page in eks.get_paginator("list_clusters").paginate():
            for cluster in page["clusters"]:
                for ng_page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster):
                    for name in ng_page["nodegroups"]:
                        try:
                            described = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
                        except eks.exceptions.ResourceNotFoundException:
                            continue  # deleted between the list and the describe
                        seen.add(described.get("nodegroupArn", ""))
                        spec = nodegroup_spec(described, self._joins(described))
                        if spec is not None and found.setdefault(name, spec) is not spec:
                            log.warning("EKS sync: nodegroup %s exists in two clusters; mirroring one", name)
        self._judged = {arn: judged for arn, judged in self._judged.items() if arn in seen}
        return found

    def _joins(self, described: Obj) -> bool:
        """Whether the nodegroup's nodes join, judged when first seen. One whose nodes do not is
        CREATING at once (EKS never calls it ACTIVE) and CREATE_FAILED after `join_timeout`;
        `described` is updated to match."""
        from radstream.sandbox import node_join

        arn = described.get("nodegroupArn", "")
        if arn not in self._judged:
            missing = node_join.missing_rights(described, self.region)
            if missing:
                log.warning("EKS sync: nodes of %s cannot pull AWS's add-on images (%s lacks %s); they stay NotReady",
                            described.get("nodegroupName"), described.get("nodeRole"), "; ".join(missing))
            self._judged[arn] = (not missing, time.monotonic())
        joins, since = self._judged[arn]
        moto = None if joins else node_join.moto_nodegroup(described)
        if moto is not None and moto.status in ("ACTIVE", "CREATING"):
            if time.monotonic() - since < self.join_timeout:
                moto.status = "CREATING"
            else:
                moto.status = "CREATE_FAILED"
                moto.health = node_join.join_failure(self._instance_ids(described["nodegroupName"]))
                log.warning("EKS sync: nodegroup %s is CREATE_FAILED (%s)", described["nodegroupName"],
                            node_join.JOIN_FAILURE_CODE)
            described["status"] = moto.status
        return joins

    def _instance_ids(self, nodegroup: str) -> list[str]:
        from radstream.sandbox.kube.nodes import NODEGROUP_LABEL

        nodes = self.kube.store.list("v1", "Node", label_selector=[(NODEGROUP_LABEL, "In", (nodegroup,))])
        return [n["spec"]["providerID"].rpartition("/")[2] for n in nodes if n.get("spec", {}).get("providerID")]

    def sync_addons(self) -> None:
        """Each add-on's workloads run while EKS lists it, and its status follows their readiness."""
        from radstream.sandbox import eks_addons
        from radstream.sandbox.kube.errors import ApiError
        from radstream.sandbox.kube.kinds import kind_of

        eks, listed = self._eks(), {}
        for page in eks.get_paginator("list_clusters").paginate():
            for cluster in page["clusters"]:
                arn = eks.describe_cluster(name=cluster)["cluster"]["arn"]
                listed.update({name: (cluster, arn.split(":")[4]) for name in eks.list_addons(clusterName=cluster)["addons"]})
        api = self.kube.api
        for name in eks_addons.CATALOG:
            objects = eks_addons.workloads(name, self.region)
            if name not in listed:
                for obj in reversed(objects):
                    if obj["kind"] != "Namespace":  # kept, as EKS keeps the namespace an add-on created
                        meta = obj["metadata"]
                        if self.kube.store.find(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]):
                            api.delete(kind_of(obj["apiVersion"], obj["kind"]), meta.get("namespace"), meta["name"])
                continue
            for obj in objects:
                meta = obj["metadata"]
                if self.kube.store.find(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]) is None:
                    try:
                        api.create(obj)
                    except ApiError as error:
                        if error.code != 409:
                            raise
            cluster, account = listed[name]
            record = eks_addons.moto_addon(self.region, account, cluster, name)
            ready = all(self._workload_ready(obj) for obj in objects if obj["kind"] != "Namespace")
            if record is not None:
                eks_addons.judge(record, ready)
            if ready and name == eks_addons.CONTAINER_INSIGHTS:
                self._report_container_insights(cluster, account)

    def _report_container_insights(self, cluster: str, account: str) -> None:
        """The add-on's agent, every AGENT_INTERVAL_S, with the node roles' permission."""
        from radstream.sandbox import container_insights
        from radstream.sandbox.kube.resource_metrics import METRICS_API

        if time.monotonic() - self._insights_at < container_insights.AGENT_INTERVAL_S:
            return
        self._insights_at = time.monotonic()
        eks, store = self._eks(), self.kube.store
        roles = [eks.describe_nodegroup(clusterName=cluster, nodegroupName=n)["nodegroup"].get("nodeRole", "")
                 for n in eks.list_nodegroups(clusterName=cluster)["nodegroups"]]
        if not container_insights.node_role_may_put(account, roles):
            log.warning("Container Insights: the node role lacks %s; the agent's PutMetricData is denied",
                        container_insights.AGENT_POLICY)
            return
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in store.list("v1", "Pod")}
        nodes = {n["metadata"]["name"]: n for n in store.list("v1", "Node")}
        container_insights.publish(account, self.region, container_insights.datapoints(
            cluster, store.list(METRICS_API, "PodMetrics"), pods, nodes))

    def _workload_ready(self, obj: Obj) -> bool:
        meta = obj["metadata"]
        found = self.kube.store.find(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]) or {}
        status = found.get("status") or {}
        if obj["kind"] == "DaemonSet":
            return bool(status.get("desiredNumberScheduled")) and status.get("numberReady") == status["desiredNumberScheduled"]
        return (status.get("readyReplicas") or 0) >= (found.get("spec") or {}).get("replicas", 1)

    def sync_once(self) -> None:
        self.sync_addons()
        wanted = self.read_nodegroups()
        self._refused = {n: s for n, s in self._refused.items() if wanted.get(n) == s}
        wanted = {n: s for n, s in wanted.items() if n not in self._refused}
        for action, name, spec in sync_plan(self.mirrored, wanted):
            if action == "remove":
                self.kube.remove_nodegroup(name)
                del self.mirrored[name]
                log.info("EKS sync: nodegroup %s deleted; its nodes are gone", name)
            elif action == "add":
                assert spec is not None
                try:
                    self.kube.kubelet.add_nodegroup(name, spec.instance_type, spec.size, dict(spec.labels),
                                                    [{"key": k, "value": v, "effect": e} for k, v, e in spec.taints],
                                                    spec.capacity_type, joins=spec.joins)
                except ValueError as error:
                    log.warning("EKS sync: nodegroup %s cannot be emulated: %s", name, error)
                    self._refused[name] = spec
                    continue
                self.mirrored[name] = spec
                log.info("EKS sync: nodegroup %s launched %d x %s", name, spec.size, spec.instance_type)
            else:
                assert spec is not None
                self.kube.resize_nodegroup(name, spec.size)
                self.mirrored[name] = replace(self.mirrored[name], size=spec.size)
                log.info("EKS sync: nodegroup %s resized to %d", name, spec.size)


# --- Triton pods and their load balancers ---------------------------------------------------------
def is_triton_pod(pod: Obj) -> bool:
    key, value = TRITON_LABEL
    return (pod.get("metadata", {}).get("labels") or {}).get(key) == value


def serving_image(pod: Obj) -> str:
    """The image a Triton pod serves: its first container's."""
    containers = pod.get("spec", {}).get("containers") or [{}]
    return str(containers[0].get("image") or "")


def _port_of(address: str | None) -> int | None:
    if not address:
        return None
    return urlsplit(address if "://" in address else f"//{address}").port


class TritonBridge:
    """Kubelet hooks: Triton pods pull their image from the sandbox's registry, have the local Triton
    serve its model (`served`), follow that model's readiness and show Triton's log, and their
    LoadBalancer Services get an ingress reaching it. `published` is the daemon's endpoint map, read
    at call time."""

    def __init__(self, store: Any, published: Mapping[str, str], model_name: str = MODEL_NAME,
                 tls_port: Callable[[Obj, int, int], int | None] | None = None,
                 served: ServedImage | None = None) -> None:
        self.store, self.published, self.model_name, self.served = store, published, model_name, served
        # (service, service port, local upstream port) -> where its load balancer terminates TLS, if it does
        self.tls_port = tls_port
        self._ready = False
        self._failures = 0
        self._checked_at = float("-inf")
        self._meter: CpuMeter | None = None

    def install(self, kubelet: Any) -> None:
        """Wrap the kubelet's hooks: Triton objects are handled here, all others as before."""
        def for_triton(mine: Callable[..., Any], default: Callable[..., Any] | None) -> Callable[..., Any]:
            return lambda pod, *args: mine(pod, *args) if is_triton_pod(pod) else (default(pod, *args) if default else None)

        kubelet.readiness_hook = for_triton(self.serves, kubelet.readiness_hook)
        kubelet.image_pull_hook = for_triton(self.pull_failure, kubelet.image_pull_hook)
        kubelet.pod_start_hook = for_triton(self.started, kubelet.pod_start_hook)
        kubelet.pod_stop_hook = for_triton(self.stopped, kubelet.pod_stop_hook)
        kubelet.container_log_hook = for_triton(lambda _pod, _container: self.log(), None)
        default_lb = kubelet.load_balancer_hook
        kubelet.load_balancer_hook = lambda service: (
            self.ingress(service, default_lb(service)) if self.is_triton_service(service) else default_lb(service))
        kubelet.usage_hook = self.usage

    def pull_failure(self, pod: Obj, image: str) -> str | None:
        """The serving image comes from the sandbox's registry (radstream.sandbox.served_image)."""
        return pull_failure(image, self.published.get("registry")) if image == serving_image(pod) else None

    def started(self, pod: Obj) -> None:
        if self.served is not None:
            self.served.started(pod["metadata"]["uid"], serving_image(pod))

    def stopped(self, pod: Obj) -> None:
        if self.served is not None:
            self.served.stopped(pod["metadata"]["uid"])

    def usage(self, running: list[Obj]) -> dict[str, tuple[float, float]]:
        """The local Triton's real CPU and memory since the last reading, shared evenly by the running
        Triton pods (they all reach that one server, as a Service spreads requests over its pods).
        Other pods run no process: metrics-server has nothing to report for them."""
        pods = [p for p in running if is_triton_pod(p)]
        pid = self.published.get("triton_pid")
        if not pods or not pid:
            return {}
        if self._meter is None or self._meter.pid != int(pid):
            self._meter = CpuMeter(int(pid))
            return {}  # the first reading only starts the clock
        reading = self._meter.read()
        if reading is None:
            return {}
        millicores, memory = reading
        return {p["metadata"]["uid"]: (millicores / len(pods), memory / len(pods)) for p in pods}

    def log(self) -> bytes | None:
        """The local Triton's log: what every Triton pod's container prints."""
        path = self.published.get("triton_log")
        try:
            return Path(path).read_bytes() if path else None
        except FileNotFoundError:
            return None

    def serves(self, pod: Obj) -> bool:
        """A Triton pod's readiness: its image's model is the one the local Triton serves, and ready."""
        return (self.served is None or self.served.serves(serving_image(pod))) and self.model_ready()

    def model_ready(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at < READY_CACHE_SECONDS:
            return self._ready
        answered = False
        http = self.published.get("triton_http")
        if http:
            try:
                with urllib.request.urlopen(f"{http}/v2/models/{self.model_name}/ready", timeout=0.5) as response:
                    answered = response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                answered = False
        self._failures = 0 if answered else self._failures + 1
        self._ready = answered or (self._ready and self._failures < READY_FAILURE_THRESHOLD)
        self._checked_at = now
        return self._ready

    def _selected_triton_pods(self, service: Obj) -> list[Obj]:
        selector = service["spec"].get("selector") or {}
        if not selector:
            return []
        pods = self.store.list("v1", "Pod", service["metadata"]["namespace"],
                               label_selector=[(k, "In", (v,)) for k, v in selector.items()])
        return [p for p in pods if is_triton_pod(p)]

    def is_triton_service(self, service: Obj) -> bool:
        key, value = TRITON_LABEL
        return (service["spec"].get("selector") or {}).get(key) == value or bool(self._selected_triton_pods(service))

    def ingress(self, service: Obj, hostname: str | None) -> Obj | None:
        """The ingress entry for the load balancer named `hostname`, or None (not provisioned yet)
        while there is none or the local Triton has no endpoint."""
        local = {TRITON_HTTP_PORT: _port_of(self.published.get("triton_http")),
                 TRITON_GRPC_PORT: _port_of(self.published.get("triton_grpc"))}
        if local[TRITON_HTTP_PORT] is None or not hostname:
            return None
        pods = self._selected_triton_pods(service)
        named = {p["name"]: p["containerPort"] for pod in pods[:1] for c in pod["spec"].get("containers") or []
                 for p in c.get("ports") or [] if p.get("name")}
        ports = []
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                target = int(target) if target.isdigit() else named.get(target, TRITON_PORT_NAMES.get(target))
            upstream = local.get(target)
            if upstream is not None and is_ssl_port(service, port):
                upstream = self.tls_port(service, port["port"], upstream) if self.tls_port else None
                if upstream is None:
                    return None  # its TLS listener is not serving yet: no address that would fail the handshake
            entry: Obj = {"port": upstream or port["port"], "protocol": port.get("protocol", "TCP")}
            if upstream is None:
                entry["error"] = "NoLocalEndpoint"
            ports.append(entry)
        # The load balancer's DNS name does not resolve here: `ip` (preferred by clients) is where it leads.
        return {"hostname": hostname, "ip": LOCAL_HOSTNAME, "ports": ports}


# --- the daemon's service -------------------------------------------------------------------------
class SandboxKubernetes:
    """The Kubernetes API emulator with the EKS sync and the Triton hooks. Publishes
    `kubernetes_endpoint` and `kubernetes_access_key_id`; reads `aws_endpoint` and the Triton
    endpoints from `published` (services started before it). Its tokens live 15 minutes, as on
    EKS, unless RADSTREAM_SANDBOX_TOKEN_SECONDS says otherwise."""

    name = "kubernetes"

    def __init__(self, published: Mapping[str, str], region: str, ca_dir: Path | None = None,
                 sync_interval: float = SYNC_INTERVAL, tls_dir: Path | None = None,
                 load_balancers_path: Path | None = None, served: ServedImage | None = None) -> None:
        self.published, self.region, self.sync_interval = published, region, sync_interval
        self.ca_dir, self.tls_dir, self.load_balancers_path = ca_dir, tls_dir, load_balancers_path
        self.served = served
        self.fronts: TlsFronts | None = None
        self.emulator: Any = None
        self.sync: EksSync | None = None
        self.albs: AlbController | None = None

    def start(self) -> dict[str, str]:
        from radstream.kube.client import EKS_TOKEN_LIFETIME_SECONDS
        from radstream.sandbox.kube import KubeEmulator
        from radstream.sandbox.kube.eks_auth import TOKEN_SECONDS_ENV

        lifetime = float(os.environ.get(TOKEN_SECONDS_ENV) or EKS_TOKEN_LIFETIME_SECONDS)
        self.emulator = KubeEmulator(region=self.region, token_seconds=lifetime, ca_dir=self.ca_dir)
        self.fronts = TlsFronts(self.tls_dir) if self.tls_dir else None
        cloud = CloudController(self.published["aws_endpoint"], self.region, self.fronts)
        self.emulator.kubelet.load_balancer_hook = cloud.provision
        self.emulator.kubelet.load_balancer_release_hook = cloud.release
        bridge = TritonBridge(self.emulator.store, self.published, tls_port=cloud.tls_port, served=self.served)
        bridge.install(self.emulator.kubelet)
        if self.served is not None:
            self.served.start()
        endpoints = self.emulator.start()
        self.sync = EksSync(self.emulator, self.published["aws_endpoint"], self.region, self.sync_interval)
        self.sync.start()
        if self.fronts is not None and self.load_balancers_path is not None:
            self.albs = AlbController(self.emulator.store, self.published, self.region, self.fronts,
                                      self.load_balancers_path, bridge.is_triton_service, self.sync_interval)
            self.albs.start()
        log.info("Kubernetes emulator serving on %s", endpoints["kubernetes_endpoint"])
        return endpoints

    def stop(self) -> None:
        if self.sync is not None:
            self.sync.stop()
        if self.served is not None:
            self.served.stop()
        if self.albs is not None:
            self.albs.stop()
        if self.emulator is not None:
            self.emulator.stop()
        if self.fronts is not None:
            self.fronts.stop()  # the load balancers' nginx processes: never left running
