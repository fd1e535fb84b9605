"""The cluster behind the emulated API: the kubelet proper (here) with the nodes, the scheduler and
the controllers (nodes.py, scheduler.py, controllers.py, mixed into `Kubelet`).

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
  image_pull_hook(pod, image) -> str | None
                                      why a pod's container image cannot be pulled (None: it can); such a
                                      pod waits in ErrImagePull, then ImagePullBackOff, asked again
                                      every `probe_period`, with the kubelet's Pulling/Failed events
  container_log_hook(pod, container) -> bytes | None
                                      what a running container printed (`kubectl logs`); None: nothing
  usage_hook(running pods) -> {uid: (millicores, bytes)}
                                      what the pods really use, read every `metric_resolution` s
                                      while metrics-server runs (resource_metrics.py); the HPAs
                                      (hpa_controller.py) act on it every `hpa_sync_period` s
The sandbox plugs the local Triton server into the first three, the last two and the log hook, its
registry into image_pull_hook (radstream.sandbox.served_image).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time

from radstream.sandbox.kube.api import Api
from radstream.sandbox.kube.autoscaling import SYNC_PERIOD_S
from radstream.sandbox.kube.controllers import Controllers
from radstream.sandbox.kube.errors import ApiError
from radstream.sandbox.kube.hpa_controller import HpaController
from radstream.sandbox.kube.kinds import Obj
from radstream.sandbox.kube.kubelet_state import ImagePullHook, LoadBalancerHook, LogHook, PodHook, ReadinessHook
from radstream.sandbox.kube.metadata import now_iso
from radstream.sandbox.kube.nodes import Nodes
from radstream.sandbox.kube.resource_metrics import METRIC_RESOLUTION_S, ResourceMetrics, UsageHook
from radstream.sandbox.kube.scheduler import Scheduler
from radstream.sandbox.kube.status import TERMINAL_PHASES, condition, node_ready, pod_ready

log = logging.getLogger(__name__)


class Kubelet(Nodes, Scheduler, Controllers, ResourceMetrics, HpaController):
    """All the cluster-side behaviour, driven by one reconcile thread; this class is the kubelet
    proper (pods start, pull, turn Ready) and the loop, the mixins the rest."""

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
        usage_hook: UsageHook | None = None,
        metric_resolution: float = METRIC_RESOLUTION_S,
        hpa_sync_period: float = SYNC_PERIOD_S,
        system_pods: bool = True,
        interval: float = 0.1,
        idle_interval: float = 1.0,
    ) -> None:
        self.api, self.store, self.region = api, api.store, region
        self.readiness_hook = readiness_hook or self._ready_after_delay
        self.pod_start_hook = pod_start_hook
        self.pod_stop_hook = pod_stop_hook
        self.load_balancer_hook = load_balancer_hook or self._fake_elb_hostname
        self.load_balancer_release_hook = self._released
        self.image_pull_hook: ImagePullHook | None = None
        self.container_log_hook: LogHook | None = None
        api.container_log = self.container_log  # the API server asks the kubelet for logs
        self.node_ready_delay, self.pod_start_delay = node_ready_delay, pod_start_delay
        self.pod_ready_delay, self.load_balancer_delay = pod_ready_delay, load_balancer_delay
        self.probe_period, self.system_pods, self.interval = probe_period, system_pods, interval
        self.idle_interval = idle_interval
        self.usage_hook, self.metric_resolution, self.hpa_sync_period = usage_hook, metric_resolution, hpa_sync_period
        self._metrics_scraped = float("-inf")
        self._hpa_synced, self._hpa_history = {}, {}
        self._nodegroups = {}
        self._timers = {}
        self._running = {}
        self._addresses = itertools.count(10)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
            # Every change wakes the next pass at once; between changes only what waits on a timer
            # needs frequent passes. An idle cluster's passes were most of an idle sandbox's CPU.
            seen = self.store.wait_for_change(seen, self.interval if self._in_motion() else self.idle_interval)

    def _in_motion(self) -> bool:
        """Whether a pod, node or load balancer is on its way somewhere (its next step is due on a
        timer, not on a change): a pod pending, not yet ready or going, a node not yet Ready, a
        LoadBalancer Service without its address."""
        for pod in self.store.list("v1", "Pod"):
            if pod["status"].get("phase") not in TERMINAL_PHASES and (
                    pod["status"].get("phase") != "Running" or not pod_ready(pod) or pod["metadata"].get("deletionTimestamp")):
                return True
        if not all(node_ready(n) for n in self.store.list("v1", "Node")):
            return True
        return any(s["spec"].get("type") == "LoadBalancer" and not (s.get("status") or {}).get("loadBalancer", {}).get("ingress")
                   or s["metadata"].get("deletionTimestamp") for s in self.store.list("v1", "Service"))

    def reconcile(self) -> None:
        """One pass of every controller, in the order a pod's life needs them."""
        self._nodes()
        self._collect_garbage()
        self._daemonsets()
        self._deployments()
        self._resource_metrics()
        self._autoscalers()
        self._schedule()
        self._pods()
        self._workload_status()
        self._disruption_budgets()
        self._services()

    def container_log(self, pod: Obj, container: str) -> bytes:
        return (self.container_log_hook(pod, container) if self.container_log_hook else None) or b""

    def _pods(self) -> None:
        """The kubelet proper: start bound pods after a delay, then follow the readiness hook."""
        nodes = {n["metadata"]["name"]: n for n in self.store.list("v1", "Node")}
        for pod in self.store.list("v1", "Pod"):
            node = nodes.get(pod["spec"].get("nodeName") or "")
            phase, uid = pod["status"].get("phase"), pod["metadata"]["uid"]
            if node is None or phase in TERMINAL_PHASES:
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
                failure = self.image_pull_hook(pod, c.get("image", ""))
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
            p["status"]["conditions"] = [condition(previous, "PodScheduled", "True")]
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
                conditions=[condition(previous, t, s) for t, s in (("PodScheduled", "True"), ("Initialized", "True"),
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
                condition(previous, c["type"], value) if c["type"] in ("Ready", "ContainersReady") else c for c in previous]
            for status in p["status"].get("containerStatuses") or []:
                status["ready"] = ready
        self.store.mutate("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], readiness)

    def _ready_after_delay(self, pod: Obj) -> bool:
        return self._since("started", pod["metadata"]["uid"]) >= self.pod_ready_delay

