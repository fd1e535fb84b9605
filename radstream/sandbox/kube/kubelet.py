"""The cluster behind the emulated API: nodes from nodegroups, scheduler, kubelet and controllers.

One thread reconciles everything whenever the store changes (and on a short tick for timers):
nodes become Ready, DaemonSets get a pod per eligible node, Deployments get pods directly (no
ReplicaSet objects: pods are named `<deployment>-<template hash>-<random>` and owned by the
Deployment), the scheduler binds pending pods to schedulable nodes with room, pods start and turn
Ready through a pluggable hook, and status is written back for Deployments, DaemonSets, HPAs, PDBs
and LoadBalancer Services.

Hooks (all optional, called on the controller thread, so they must return quickly):
  readiness_hook(pod) -> bool         is this running pod Ready? (default: after `pod_ready_delay`)
  pod_start_hook(pod) -> None         a pod has just started running on its node
  pod_stop_hook(pod) -> None          a pod that ran is gone (deleted, evicted, node removed)
  load_balancer_hook(service) -> str | dict | None
                                      a LoadBalancer Service's hostname, or a whole ingress entry
                                      ({"hostname": ..., "ports": [{"port": .., "protocol": "TCP"}]});
                                      None = not provisioned yet, asked again on the next pass
  load_balancer_release_hook(service) -> bool
                                      a deleted LoadBalancer Service's load balancer is gone (True:
                                      its cleanup finalizer is removed; False: asked again)
  image_pull_hook(image) -> str | None
                                      why a container image cannot be pulled (None: it can); such a
                                      pod waits in ErrImagePull, then ImagePullBackOff, asked again
                                      every `probe_period`, with the kubelet's Pulling/Failed events
  container_log_hook(pod, container) -> bytes | None
                                      what a running container printed (`kubectl logs`); None: nothing
The sandbox plugs the local Triton server into the first three and the last, its registry into
image_pull_hook.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radstream.kube.capacity import INSTANCE_TYPES
from radstream.kube.manifests import LOAD_BALANCER_CLEANUP
from radstream.sandbox.kube.server import Api, pod_ready
from radstream.sandbox.kube.store import (
    ApiError,
    Obj,
    kind_of,
    labels_match,
    now_iso,
    random_suffix,
    selector_requirements,
)

log = logging.getLogger(__name__)

ReadinessHook = Callable[[Obj], bool]
PodHook = Callable[[Obj], None]
LoadBalancerHook = Callable[[Obj], "str | Obj | None"]
LogHook = Callable[[Obj, str], "bytes | None"]
ImagePullHook = Callable[[str], "str | None"]
ReleaseHook = Callable[[Obj], bool]

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
_EKS_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
_TERMINAL = ("Succeeded", "Failed")


_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity ("500m", "2", "1Gi", "512Mi") as a number of cores or bytes."""
    match = re.fullmatch(r"\s*([0-9.]+)([A-Za-z]*)\s*", str(value))
    if not match or match.group(2) not in ("", *_SUFFIXES):
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _SUFFIXES.get(match.group(2), 1)


def pod_requests(pod: Obj) -> Counter[str]:
    total: Counter[str] = Counter()
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for name, quantity in {**(resources.get("limits") or {}), **(resources.get("requests") or {})}.items():
            total[name] += parse_quantity(quantity)
    return total


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if t.get("operator", "Equal") == "Equal" and t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:10])


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def _controller_of(obj: Obj) -> Obj | None:
    return next((o for o in obj["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def _owner_reference(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _condition(previous: list[Obj], kind: str, status: str, reason: str | None = None, message: str | None = None,
               **extra: Any) -> Obj:
    """A condition that keeps its lastTransitionTime while its status stays the same."""
    old = next((c for c in previous if c.get("type") == kind), None)
    condition = {"type": kind, "status": status, **extra}
    if reason is not None:
        condition["reason"] = reason
    if message is not None:
        condition["message"] = message
    keep = old is not None and old.get("status") == status
    condition["lastTransitionTime"] = old.get("lastTransitionTime", now_iso()) if keep else now_iso()
    return condition


@dataclass
class Nodegroup:
    name: str
    instance_type: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    capacity_type: str = "ON_DEMAND"
    joins: bool = True  # False: its nodes register but never turn Ready (EKS: NodeCreationFailure)


class Kubelet:
    """All the cluster-side behaviour, driven by one reconcile thread."""

    def __init__(
        self,
        api: Api,
        *,
        region: str = "us-east-1",
        readiness_hook: ReadinessHook | None = None,
        pod_start_hook: PodHook | None = None,
        pod_stop_hook: PodHook | None = None,
        load_balancer_hook: LoadBalancerHook | None = None,
        node_ready_delay: float = 1.0,
        pod_start_delay: float = 0.5,
        pod_ready_delay: float = 0.5,
        load_balancer_delay: float = 1.0,
        probe_period: float = 0.2,
        system_pods: bool = True,
        interval: float = 0.1,
    ) -> None:
        self.api, self.store, self.region = api, api.store, region
        self.readiness_hook = readiness_hook or self._ready_after_delay
        self.pod_start_hook = pod_start_hook
        self.pod_stop_hook = pod_stop_hook
        self.load_balancer_hook = load_balancer_hook or self._fake_elb_hostname
        self.load_balancer_release_hook: ReleaseHook = self._released
        self.image_pull_hook: ImagePullHook | None = None
        self.container_log_hook: LogHook | None = None
        api.container_log = self.container_log  # the API server asks the kubelet for logs
        self.node_ready_delay, self.pod_start_delay = node_ready_delay, pod_start_delay
        self.pod_ready_delay, self.load_balancer_delay = pod_ready_delay, load_balancer_delay
        self.probe_period, self.system_pods, self.interval = probe_period, system_pods, interval
        self._nodegroups: dict[str, Nodegroup] = {}
        self._timers: dict[tuple[str, str], float] = {}  # (what, uid) -> when first noticed
        self._running: dict[str, Obj] = {}  # uid -> last seen running pod, for pod_stop_hook
        self._addresses = itertools.count(10)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> None:
        if self.system_pods:
            self._install_system_workloads()
        self._thread = threading.Thread(target=self._run, name="kube-emulator-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        seen = -1
        while not self._stop.is_set():
            try:
                self.reconcile()
            except ApiError as error:  # an object vanished mid-pass; the next pass sees the new world
                log.debug("kubelet pass interrupted: %s", error)
            except Exception:
                log.exception("kubelet pass failed")
            seen = self.store.wait_for_change(seen, self.interval)

    def reconcile(self) -> None:
        """One pass of every controller, in the order a pod's life needs them."""
        self._nodes()
        self._collect_garbage()
        self._daemonsets()
        self._deployments()
        self._autoscalers()
        self._schedule()
        self._pods()
        self._workload_status()
        self._disruption_budgets()
        self._services()

    def container_log(self, pod: Obj, container: str) -> bytes:
        return (self.container_log_hook(pod, container) if self.container_log_hook else None) or b""

    def _since(self, what: str, uid: str) -> float:
        return time.monotonic() - self._timers.setdefault((what, uid), time.monotonic())

    def _probe_due(self, uid: str) -> bool:
        """Readiness is probed every `probe_period`, not on every pass (passes follow every write)."""
        now = time.monotonic()
        if now - self._timers.get(("probe", uid), 0.0) < self.probe_period:
            return False
        self._timers[("probe", uid)] = now
        return True

    # nodegroups (the sandbox's EKS calls these)

    def add_nodegroup(self, name: str, instance_type: str, count: int, labels: dict[str, str] | None = None,
                      taints: list[Obj] | None = None, capacity_type: str = "ON_DEMAND", joins: bool = True) -> list[str]:
        """Launch `count` nodes of `instance_type`; returns their names.

        Taints are [{key, value, effect}] with Kubernetes (NoSchedule) or EKS (NO_SCHEDULE) effect names.
        Nodes of a nodegroup that does not join stay NotReady, as when their CNI never starts.
        """
        if instance_type not in INSTANCE_TYPES:
            raise ValueError(f"unknown instance type {instance_type!r}; the sandbox knows {', '.join(INSTANCE_TYPES)}")
        if name in self._nodegroups:
            raise ValueError(f"nodegroup {name!r} already exists; use resize_nodegroup to change its size")
        taints = [{**t, "effect": _EKS_TAINT_EFFECTS.get(t.get("effect", ""), t.get("effect"))} for t in taints or []]
        self._nodegroups[name] = Nodegroup(name, instance_type, dict(labels or {}), taints, capacity_type, joins)
        return self.resize_nodegroup(name, count)

    def resize_nodegroup(self, name: str, count: int) -> list[str]:
        """Add or remove (newest first) nodes so the nodegroup has `count`; returns the node names."""
        group = self._nodegroups[name]
        nodes = self.nodegroup_nodes(name)
        for _ in range(count - len(nodes)):
            nodes.append(self._launch_node(group))
        for extra in nodes[count:]:
            self.api.delete(kind_of("v1", "Node"), None, extra)
        return nodes[:count]

    def remove_nodegroup(self, name: str) -> None:
        """Terminate the nodegroup's nodes (their pods go with them); silent when already gone."""
        if name in self._nodegroups:
            self.resize_nodegroup(name, 0)
            del self._nodegroups[name]

    def nodegroup_nodes(self, name: str) -> list[str]:
        nodes = self.store.list("v1", "Node", label_selector=[(NODEGROUP_LABEL, "In", (name,))])
        return [n["metadata"]["name"] for n in sorted(nodes, key=lambda n: int(n["metadata"]["resourceVersion"]))]

    def _launch_node(self, group: Nodegroup) -> str:
        n = next(self._addresses)
        ip = f"10.0.{n // 250}.{n % 250 + 1}"
        name = f"ip-{ip.replace('.', '-')}.{self.region}.compute.internal"
        zone = f"{self.region}{'abc'[n % 3]}"
        spec = INSTANCE_TYPES[group.instance_type]
        labels = {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": group.instance_type, "topology.kubernetes.io/region": self.region,
            "topology.kubernetes.io/zone": zone, NODEGROUP_LABEL: group.name,
            "eks.amazonaws.com/capacityType": group.capacity_type, **group.labels,
        }
        node_spec: Obj = {"providerID": f"aws:///{zone}/i-{secrets.token_hex(9)[:17]}"}
        if group.taints:
            node_spec["taints"] = copy.deepcopy(group.taints)
        self.api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": node_spec})

        # What a kubelet reports while aws-node, the CNI, is not running (forever when it cannot be pulled).
        not_ready = "container runtime is starting" if group.joins else (
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
            "message:Network plugin returns error: cni plugin not initialized")

        def status(node: Obj) -> None:
            node["status"] = {
                "capacity": spec.capacity(), "allocatable": spec.allocatable(),
                "conditions": [_condition([], "Ready", "False", "KubeletNotReady", not_ready,
                                          lastHeartbeatTime=now_iso())],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name},
                              {"type": "InternalDNS", "address": name}],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": secrets.token_hex(16), "containerRuntimeVersion": "containerd://1.7.11",
                    "kernelVersion": "5.10.210-201.852.amzn2.x86_64", "kubeProxyVersion": "v1.30.0-eks",
                    "kubeletVersion": "v1.30.0-eks", "machineID": secrets.token_hex(16),
                    "operatingSystem": "linux", "osImage": "Amazon Linux 2", "systemUUID": secrets.token_hex(16),
                },
            }

        self.store.mutate("v1", "Node", None, name, status)
        return name

    # controllers

    def _nodes(self) -> None:
        never = {name for name, group in self._nodegroups.items() if not group.joins}
        for node in self.store.list("v1", "Node"):
            if (node["metadata"].get("labels") or {}).get(NODEGROUP_LABEL) in never:
                continue
            if not node_ready(node) and self._since("node", node["metadata"]["uid"]) >= self.node_ready_delay:
                def ready(n: Obj) -> None:
                    n["status"]["conditions"] = [_condition([], "Ready", "True", "KubeletReady",
                                                            "kubelet is posting ready status", lastHeartbeatTime=now_iso())]
                self.store.mutate("v1", "Node", None, node["metadata"]["name"], ready)

    def _collect_garbage(self) -> None:
        """Delete pods whose node or controlling owner is gone, and report pods that stopped."""
        nodes = {n["metadata"]["name"] for n in self.store.list("v1", "Node")}
        owners = {o["metadata"]["uid"] for kind in ("Deployment", "DaemonSet") for o in self.store.list("apps/v1", kind)}
        pods = self.store.list("v1", "Pod")
        for pod in pods:
            node, owner = pod["spec"].get("nodeName"), _controller_of(pod)
            if (node and node not in nodes) or (owner and owner["uid"] not in owners):
                self.api.delete(kind_of("v1", "Pod"), pod["metadata"]["namespace"], pod["metadata"]["name"])
        alive = {o["metadata"]["uid"] for kind in ("Pod", "Node", "Service") for o in self.store.list("v1", kind)}
        for uid in [u for u in self._running if u not in alive]:
            pod = self._running.pop(uid)
            self._call(self.pod_stop_hook, pod)
        for timer in [t for t in self._timers if t[1] not in alive]:
            del self._timers[timer]

    def _new_pod(self, owner: Obj, name: str, extra_labels: dict[str, str], node: str | None = None) -> None:
        template = owner["spec"]["template"]
        meta = template.get("metadata") or {}
        pod: Obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"],
                         "labels": {**(meta.get("labels") or {}), **extra_labels},
                         "ownerReferences": [_owner_reference(owner)]},
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(meta["annotations"])
        if node:
            pod["spec"]["nodeName"] = node
        self.api.create(pod)

    def _owned_pods(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [p for p in self.store.list("v1", "Pod", owner["metadata"]["namespace"])
                if (_controller_of(p) or {}).get("uid") == uid]

    @staticmethod
    def _eligible_nodes(ds: Obj, nodes: list[Obj]) -> set[str]:
        """Nodes a DaemonSet runs on: selector matched and NoSchedule taints tolerated. Like the real
        controller, its pods tolerate cordons and not-ready nodes."""
        spec = ds["spec"]["template"].get("spec") or {}
        selector = [(k, "In", (v,)) for k, v in (spec.get("nodeSelector") or {}).items()]
        return {n["metadata"]["name"] for n in nodes
                if labels_match(selector, n["metadata"].get("labels"))
                and all(tolerates(spec.get("tolerations") or [], t) for t in (n["spec"].get("taints") or [])
                        if t.get("effect") in ("NoSchedule", "NoExecute"))}

    def _daemonsets(self) -> None:
        nodes = self.store.list("v1", "Node")
        for ds in self.store.list("apps/v1", "DaemonSet"):
            eligible = self._eligible_nodes(ds, nodes)
            current = template_hash(ds["spec"]["template"])
            placed = set()
            for pod in self._owned_pods(ds):
                node = pod["spec"].get("nodeName")
                if node not in eligible or node in placed or pod["metadata"]["labels"].get("controller-revision-hash") != current:
                    self.api.delete(kind_of("v1", "Pod"), pod["metadata"]["namespace"], pod["metadata"]["name"])
                else:
                    placed.add(node)
            for node in sorted(eligible - placed):
                self._new_pod(ds, f"{ds['metadata']['name']}-{random_suffix()}", {"controller-revision-hash": current}, node)

    def _deployments(self) -> None:
        for deployment in self.store.list("apps/v1", "Deployment"):
            self._roll(deployment)

    def _roll(self, deployment: Obj) -> None:
        """Converge a Deployment's pods on its template: surge new pods, retire old ones as budgets allow."""
        spec, name = deployment["spec"], deployment["metadata"]["name"]
        replicas = spec.get("replicas", 1)
        current = template_hash(spec["template"])
        pods = self._owned_pods(deployment)
        new = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == current]
        old = [p for p in pods if p not in new]
        kill = lambda pod: self.api.delete(kind_of("v1", "Pod"), pod["metadata"]["namespace"], pod["metadata"]["name"])  # noqa: E731
        create = lambda: self._new_pod(deployment, f"{name}-{current}-{random_suffix()}", {"pod-template-hash": current})  # noqa: E731
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            for pod in old:
                kill(pod)
            if not old:
                for _ in range(replicas - len(new)):
                    create()
        else:
            rolling = strategy.get("rollingUpdate") or {}
            surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
            unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
            if surge == 0 and unavailable == 0:
                unavailable = 1
            for _ in range(max(0, min(replicas - len(new), replicas + surge - len(pods)))):
                create()
            available = sum(1 for p in pods if pod_ready(p))
            for pod in sorted(old, key=pod_ready):  # not-ready old pods go first and cost nothing
                if not pod_ready(pod):
                    kill(pod)
                elif available - 1 >= replicas - unavailable:
                    kill(pod)
                    available -= 1
        # Scaling down: drop surplus new pods, unscheduled and not-ready ones first.
        surplus = sorted(new, key=lambda p: (pod_ready(p), bool(p["spec"].get("nodeName"))))[: max(0, len(new) - replicas)]
        for pod in surplus:
            kill(pod)

    def _autoscalers(self) -> None:
        """Keep each HPA's target within [minReplicas, maxReplicas]; metrics are not emulated."""
        for hpa in self.store.list("autoscaling/v2", "HorizontalPodAutoscaler"):
            spec, ns = hpa["spec"], hpa["metadata"]["namespace"]
            target = spec.get("scaleTargetRef") or {}
            deployment = self.store.find("apps/v1", "Deployment", ns, target.get("name", "")) if target.get("kind") == "Deployment" else None
            status: Obj = {"currentReplicas": 0, "desiredReplicas": 0}
            if deployment:
                current = deployment["spec"].get("replicas", 1)
                desired = min(max(current, spec.get("minReplicas", 1)), spec["maxReplicas"])
                if desired != current:
                    self.store.mutate("apps/v1", "Deployment", ns, target["name"], lambda d: d["spec"].update(replicas=desired))
                status = {"currentReplicas": (deployment.get("status") or {}).get("replicas", 0), "desiredReplicas": desired}
            previous = hpa.get("status") or {}
            status["conditions"] = [_condition(previous.get("conditions") or [], "AbleToScale", "True" if deployment else "False",
                                               "SucceededGetScale" if deployment else "FailedGetScale")]
            self.store.mutate("autoscaling/v2", "HorizontalPodAutoscaler", ns, hpa["metadata"]["name"],
                              lambda h: h.update(status=status))

    def _schedule(self) -> None:
        nodes = [n for n in self.store.list("v1", "Node")]
        pods = self.store.list("v1", "Pod")
        usage: dict[str, Counter[str]] = {n["metadata"]["name"]: Counter() for n in nodes}
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node in usage and pod["status"].get("phase") not in _TERMINAL:
                usage[node] += pod_requests(pod) + Counter(pods=1)
        pending = [p for p in pods if not p["spec"].get("nodeName") and p["status"].get("phase") == "Pending"]
        # System-critical pods (coredns) first, then oldest first: the order the real scheduler's queue uses.
        pending.sort(key=lambda p: ("critical" not in (p["spec"].get("priorityClassName") or ""),
                                    int(p["metadata"]["resourceVersion"])))
        for pod in pending:
            fits, reasons = [], Counter()
            for node in nodes:
                reason = self._unfit(pod, node, usage[node["metadata"]["name"]])
                if reason:
                    reasons[reason] += 1
                else:
                    fits.append(node)
            if fits:
                node = min(fits, key=lambda n: (usage[n["metadata"]["name"]]["pods"], n["metadata"]["name"]))
                usage[node["metadata"]["name"]] += pod_requests(pod) + Counter(pods=1)
                self._bind(pod, node["metadata"]["name"])
            else:
                detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
                message = f"0/{len(nodes)} nodes are available: {detail or 'no nodes available to schedule pods'}."
                self._unschedulable(pod, message)

    @staticmethod
    def _unfit(pod: Obj, node: Obj, used: Counter[str]) -> str | None:
        """Why `pod` cannot go to `node` (the phrases the real scheduler uses), or None if it fits."""
        spec, labels = pod["spec"], node["metadata"].get("labels") or {}
        tolerations = spec.get("tolerations") or []
        if not node_ready(node):
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        if node["spec"].get("unschedulable") and not tolerates(tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
            return "node(s) were unschedulable"
        selector = [(k, "In", (v,)) for k, v in (spec.get("nodeSelector") or {}).items()]
        terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
                  .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
        if not labels_match(selector, labels) or (terms and not any(
                labels_match(selector_requirements({"matchExpressions": t.get("matchExpressions")}), labels) for t in terms)):
            return "node(s) didn't match Pod's node affinity/selector"
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
                return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
        allocatable = node["status"].get("allocatable") or {}
        if used["pods"] + 1 > parse_quantity(allocatable.get("pods", 0)):
            return "Too many pods"
        for resource, amount in sorted(pod_requests(pod).items()):
            if used[resource] + amount > parse_quantity(allocatable.get(resource, 0)):
                return f"Insufficient {resource}"
        return None

    def _bind(self, pod: Obj, node: str) -> None:
        def bind(p: Obj) -> None:
            p["spec"]["nodeName"] = node
            p["status"]["conditions"] = [_condition(p["status"].get("conditions") or [], "PodScheduled", "True")]
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], bind)

    def _unschedulable(self, pod: Obj, message: str) -> None:
        previous = pod["status"].get("conditions") or []
        if any(c.get("type") == "PodScheduled" and c.get("message") == message for c in previous):
            return
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"],
                          lambda p: p["status"].update(conditions=[_condition(previous, "PodScheduled", "False", "Unschedulable", message)]))
        self._event(pod, "FailedScheduling", message, "Warning", "default-scheduler")

    def _event(self, pod: Obj, reason: str, message: str, type_: str = "Normal", component: str = "kubelet") -> None:
        stamp = now_iso()
        self.api.create({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pod['metadata']['name']}.{secrets.token_hex(8)}", "namespace": pod["metadata"]["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                               "namespace": pod["metadata"]["namespace"], "uid": pod["metadata"]["uid"]},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "source": {"component": component}, "reportingComponent": component,
            "firstTimestamp": stamp, "lastTimestamp": stamp,
        })

    def _pods(self) -> None:
        """The kubelet proper: start bound pods after a delay, then follow the readiness hook."""
        nodes = {n["metadata"]["name"]: n for n in self.store.list("v1", "Node")}
        for pod in self.store.list("v1", "Pod"):
            node = nodes.get(pod["spec"].get("nodeName") or "")
            phase, uid = pod["status"].get("phase"), pod["metadata"]["uid"]
            if node is None or phase in _TERMINAL:
                continue
            if phase == "Pending":
                if ("pulling", uid) not in self._timers:
                    self._since("pulling", uid)
                    for c in pod["spec"]["containers"]:
                        self._event(pod, "Pulling", f'Pulling image "{c.get("image", "")}"')
                if self._since("bound", uid) >= self.pod_start_delay:
                    if self._pull_failed(pod):
                        continue
                    for c in pod["spec"]["containers"]:
                        self._event(pod, "Pulled", f'Successfully pulled image "{c.get("image", "")}"')
                    pod = self._set_running(pod, node)
                    self._running[uid] = pod
                    self._call(self.pod_start_hook, pod)
                else:
                    self._set_creating(pod)
                continue
            self._running[uid] = pod
            if not self._probe_due(uid):
                continue
            ready = bool(self._call(self.readiness_hook, pod))
            if ready != pod_ready(pod):
                self._set_ready(pod, ready)

    def _pull_failed(self, pod: Obj) -> bool:
        """Ask the image pull hook (every `probe_period`); a failure turns the containers
        ErrImagePull, then ImagePullBackOff, as a kubelet backing off does."""
        uid = pod["metadata"]["uid"]
        if self.image_pull_hook is None:
            return False
        if not self._probe_due(uid):
            return ("pull-failed", uid) in self._timers
        failures = {}
        for c in pod["spec"]["containers"]:
            try:
                failure = self.image_pull_hook(c.get("image", ""))
            except Exception:  # a broken hook must not stop the cluster: treat the image as pullable
                log.exception("kube emulator image pull hook failed on %s", c.get("image"))
                failure = None
            if failure:
                failures[c["name"]] = failure
        if not failures:
            self._timers.pop(("pull-failed", uid), None)
            return False
        backing_off = ("pull-failed", uid) in self._timers
        self._since("pull-failed", uid)
        images = {c["name"]: c.get("image", "") for c in pod["spec"]["containers"]}
        if not backing_off:
            for name, failure in failures.items():
                self._event(pod, "Failed", f'Failed to pull image "{images[name]}": {failure}', "Warning")
                self._event(pod, "Failed", "Error: ErrImagePull", "Warning")
        elif any(((s.get("state") or {}).get("waiting") or {}).get("reason") == "ErrImagePull"
                 for s in pod["status"].get("containerStatuses") or []):
            for name in failures:
                self._event(pod, "BackOff", f'Back-off pulling image "{images[name]}"')
        else:
            return True  # already backing off: nothing new to write
        reason = "ImagePullBackOff" if backing_off else "ErrImagePull"

        def waiting(p: Obj) -> None:
            for status in p["status"].get("containerStatuses") or []:
                if status["name"] in failures:
                    failure = failures[status["name"]]
                    # As recent kubelets word it: the back-off names the error it backs off from.
                    message = f'Back-off pulling image "{images[status["name"]]}": ErrImagePull: {failure}' \
                        if backing_off else failure
                    status["state"] = {"waiting": {"reason": reason, "message": message}}
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], waiting)
        return True

    def _set_creating(self, pod: Obj) -> None:
        def creating(p: Obj) -> None:
            previous = p["status"].get("conditions") or []
            p["status"]["conditions"] = [_condition(previous, "PodScheduled", "True")]
            p["status"]["containerStatuses"] = [
                {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "restartCount": 0,
                 "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
                for c in p["spec"]["containers"]]
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], creating)

    def _set_running(self, pod: Obj, node: Obj) -> Obj:
        host_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        n = next(self._addresses)
        pod_ip = f"10.0.{128 + (n // 250) % 128}.{n % 250 + 1}"
        started = now_iso()

        def running(p: Obj) -> None:
            previous = p["status"].get("conditions") or []
            p["status"].update(
                phase="Running", hostIP=host_ip, hostIPs=[{"ip": host_ip}], podIP=pod_ip, podIPs=[{"ip": pod_ip}],
                startTime=started,
                conditions=[_condition(previous, t, s) for t, s in (("PodScheduled", "True"), ("Initialized", "True"),
                                                                   ("ContainersReady", "False"), ("Ready", "False"))],
                containerStatuses=[
                    {"name": c["name"], "image": c.get("image", ""), "imageID": f"{c.get('image', '')}@sha256:{'0' * 64}",
                     "containerID": f"containerd://{secrets.token_hex(32)}", "ready": False, "restartCount": 0,
                     "started": True, "state": {"running": {"startedAt": started}}}
                    for c in p["spec"]["containers"]],
            )
        self._timers[("started", pod["metadata"]["uid"])] = time.monotonic()
        return self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], running)

    def _set_ready(self, pod: Obj, ready: bool) -> None:
        value = "True" if ready else "False"

        def readiness(p: Obj) -> None:
            previous = p["status"].get("conditions") or []
            p["status"]["conditions"] = [
                _condition(previous, c["type"], value) if c["type"] in ("Ready", "ContainersReady") else c for c in previous]
            for status in p["status"].get("containerStatuses") or []:
                status["ready"] = ready
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], readiness)

    def _ready_after_delay(self, pod: Obj) -> bool:
        return self._since("started", pod["metadata"]["uid"]) >= self.pod_ready_delay

    def _workload_status(self) -> None:
        for deployment in self.store.list("apps/v1", "Deployment"):
            self._deployment_status(deployment)
        nodes = self.store.list("v1", "Node")
        for ds in self.store.list("apps/v1", "DaemonSet"):
            eligible = self._eligible_nodes(ds, nodes)
            pods = [p for p in self._owned_pods(ds) if p["spec"].get("nodeName") in eligible]
            current = template_hash(ds["spec"]["template"])
            ready = sum(1 for p in pods if pod_ready(p))
            status = {"currentNumberScheduled": len(pods), "desiredNumberScheduled": len(eligible),
                      "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                      "updatedNumberScheduled": sum(1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == current),
                      "observedGeneration": ds["metadata"]["generation"]}
            self.store.mutate("apps/v1", "DaemonSet", ds["metadata"]["namespace"], ds["metadata"]["name"],
                              lambda d: d.update(status=status))

    def _deployment_status(self, deployment: Obj) -> None:
        spec, meta = deployment["spec"], deployment["metadata"]
        replicas = spec.get("replicas", 1)
        current = template_hash(spec["template"])
        pods = self._owned_pods(deployment)
        updated = sum(1 for p in pods if p["metadata"]["labels"].get("pod-template-hash") == current)
        ready = sum(1 for p in pods if pod_ready(p))
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        tolerated = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        previous = (deployment.get("status") or {}).get("conditions") or []
        complete = updated == replicas == len(pods) == ready
        status: Obj = {"observedGeneration": meta["generation"]}
        # Like the real controller, zero counts are omitted.
        for name, value in (("replicas", len(pods)), ("updatedReplicas", updated), ("readyReplicas", ready),
                            ("availableReplicas", ready), ("unavailableReplicas", max(0, replicas - ready))):
            if value:
                status[name] = value
        available = ready >= replicas - tolerated
        progress = "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated"
        status["conditions"] = [
            _condition(previous, "Available", "True" if available else "False",
                       "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                       "Deployment has minimum availability." if available else "Deployment does not have minimum availability."),
            _condition(previous, "Progressing", "True", progress,
                       f'ReplicaSet "{meta["name"]}-{current}" ' + ("has successfully progressed." if complete else "is progressing.")),
        ]
        for condition in status["conditions"]:
            condition["lastUpdateTime"] = condition["lastTransitionTime"]
        self.store.mutate("apps/v1", "Deployment", meta["namespace"], meta["name"], lambda d: d.update(status=status))

    def _disruption_budgets(self) -> None:
        for pdb in self.store.list("policy/v1", "PodDisruptionBudget"):
            budget = self.api.disruption_budget(pdb)
            generation = pdb["metadata"]["generation"]
            previous = (pdb.get("status") or {}).get("conditions") or []
            allowed = budget.allowed > 0
            status = {
                "observedGeneration": generation, "expectedPods": budget.expected, "currentHealthy": budget.healthy,
                "desiredHealthy": budget.desired, "disruptionsAllowed": budget.allowed,
                "conditions": [_condition(previous, "DisruptionAllowed", "True" if allowed else "False",
                                          "SufficientPods" if allowed else "InsufficientPods", "",
                                          observedGeneration=generation)],
            }
            self.store.mutate("policy/v1", "PodDisruptionBudget", pdb["metadata"]["namespace"], pdb["metadata"]["name"],
                              lambda p: p.update(status=status))

    def _services(self) -> None:
        for service in self.store.list("v1", "Service"):
            meta = service["metadata"]
            ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            finalizers = meta.get("finalizers") or []
            if meta.get("deletionTimestamp"):
                # The service controller releases the load balancer, then lets the deletion complete.
                if LOAD_BALANCER_CLEANUP in finalizers and self._probe_due(meta["uid"]) \
                        and self._call(self.load_balancer_release_hook, service):
                    self.store.mutate("v1", "Service", meta["namespace"], meta["name"], lambda s: s["metadata"].update(
                        finalizers=[f for f in s["metadata"].get("finalizers") or [] if f != LOAD_BALANCER_CLEANUP]))
                continue
            if service["spec"].get("type") == "LoadBalancer" and LOAD_BALANCER_CLEANUP not in finalizers:
                service = self.store.mutate("v1", "Service", meta["namespace"], meta["name"], lambda s: s["metadata"].update(
                    finalizers=[*(s["metadata"].get("finalizers") or []), LOAD_BALANCER_CLEANUP]))
            if service["spec"].get("type") != "LoadBalancer":
                if ingress:
                    self.store.mutate("v1", "Service", meta["namespace"], meta["name"], lambda s: s.update(status={"loadBalancer": {}}))
                continue
            if ingress or self._since("load-balancer", meta["uid"]) < self.load_balancer_delay \
                    or not self._probe_due(meta["uid"]):
                continue
            found = self._call(self.load_balancer_hook, service)
            if found:
                entry = found if isinstance(found, dict) else {"hostname": found}
                self.store.mutate("v1", "Service", meta["namespace"], meta["name"],
                                  lambda s: s.update(status={"loadBalancer": {"ingress": [entry]}}))

    @staticmethod
    def _released(service: Obj) -> bool:
        return True  # a made-up hostname holds nothing to release

    def _fake_elb_hostname(self, service: Obj) -> str:
        digest = hashlib.sha256(service["metadata"]["uid"].encode()).hexdigest()
        return f"a{digest[:31]}-{int(digest[31:40], 16) % 10**10}.{self.region}.elb.amazonaws.com"

    @staticmethod
    def _call(hook: Callable[[Obj], Any] | None, obj: Obj) -> Any:
        if hook is None:
            return None
        try:
            return hook(copy.deepcopy(obj))
        except Exception:
            log.exception("kube emulator hook %r failed on %s", hook, obj["metadata"].get("name"))
            return None

    # the cluster EKS brings up

    def _install_system_workloads(self) -> None:
        """aws-node and kube-proxy on every node, coredns x2 with its PDB: they fill a t3.micro."""
        def container(name: str, image: str, cpu: str, memory: str | None = None) -> Obj:
            requests = {"cpu": cpu, **({"memory": memory} if memory else {})}
            return {"name": name, "image": f"602401143452.dkr.ecr.{self.region}.amazonaws.com/{image}",
                    "resources": {"requests": requests}}

        def workload(kind: str, name: str, app: str, pod_spec: Obj, **spec: Any) -> Obj:
            return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "kube-system", "labels": {"k8s-app": app}},
                    "spec": {"selector": {"matchLabels": {"k8s-app": app}},
                             "template": {"metadata": {"labels": {"k8s-app": app}}, "spec": pod_spec}, **spec}}

        everywhere = [{"operator": "Exists"}]
        objects = [
            workload("DaemonSet", "aws-node", "aws-node", {"hostNetwork": True, "priorityClassName": "system-node-critical", "tolerations": everywhere,
                                                           "containers": [container("aws-node", "amazon-k8s-cni:v1.18.1-eksbuild.1", "25m")]}),
            workload("DaemonSet", "kube-proxy", "kube-proxy", {"hostNetwork": True, "priorityClassName": "system-node-critical", "tolerations": everywhere,
                                                               "containers": [container("kube-proxy", "eks/kube-proxy:v1.30.0-eksbuild.3", "100m")]}),
            workload("Deployment", "coredns", "kube-dns", {
                "priorityClassName": "system-cluster-critical",
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                "containers": [container("coredns", "eks/coredns:v1.11.1-eksbuild.9", "100m", "70Mi")]}, replicas=2),
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
             "metadata": {"name": "coredns", "namespace": "kube-system"},
             "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}}}},
        ]
        for obj in objects:
            try:
                self.api.create(obj)
            except ApiError as error:
                if error.code != 409:
                    raise
