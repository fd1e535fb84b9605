"""The controllers: garbage collection, DaemonSets (a pod per eligible node), Deployments (rolling or
recreating pods directly: no ReplicaSet objects, pods are named `<deployment>-<template hash>-<random>`
and owned by the Deployment), the status of Deployments,
DaemonSets and PDBs, LoadBalancer Services (the service controller), and the system workloads EKS
installs."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

from radstream.kube.manifests import LOAD_BALANCER_CLEANUP
from radstream.sandbox.kube.errors import ApiError
from radstream.sandbox.kube.kinds import Obj, kind_of
from radstream.sandbox.kube.kubelet_state import KubeletState
from radstream.sandbox.kube.metadata import random_suffix
from radstream.sandbox.kube.scheduler import tolerates
from radstream.sandbox.kube.selectors import Requirement, labels_match
from radstream.sandbox.kube.status import condition, pod_ready


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


# Changes for Store.mutate that bind their values when made: the controllers make them in loops
# (a lambda with default arguments would bind them too, but mypy cannot infer its type).
def _set_status(status: Obj) -> Callable[[Obj], None]:
    return lambda obj: obj.update(status=status)


def _owner_reference(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


class Controllers(KubeletState):
    """The controllers. Mixed into Kubelet, whose __init__ makes the state
    declared on KubeletState."""

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
        selector: list[Requirement] = [(k, "In", (v,)) for k, v in (spec.get("nodeSelector") or {}).items()]
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
                              _set_status(status))

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
            condition(previous, "Available", "True" if available else "False",
                      "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                      "Deployment has minimum availability." if available else "Deployment does not have minimum availability."),
            condition(previous, "Progressing", "True", progress,
                      f'ReplicaSet "{meta["name"]}-{current}" ' + ("has successfully progressed." if complete else "is progressing.")),
        ]
        for entry in status["conditions"]:
            entry["lastUpdateTime"] = entry["lastTransitionTime"]
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
                "conditions": [condition(previous, "DisruptionAllowed", "True" if allowed else "False",
                                         "SufficientPods" if allowed else "InsufficientPods", "",
                                         observedGeneration=generation)],
            }
            self.store.mutate("policy/v1", "PodDisruptionBudget", pdb["metadata"]["namespace"], pdb["metadata"]["name"],
                              _set_status(status))

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
                                  _set_status({"loadBalancer": {"ingress": [entry]}}))

    @staticmethod
    def _released(service: Obj) -> bool:
        return True  # a made-up hostname holds nothing to release

    def _fake_elb_hostname(self, service: Obj) -> str:
        digest = hashlib.sha256(service["metadata"]["uid"].encode()).hexdigest()
        return f"a{digest[:31]}-{int(digest[31:40], 16) % 10**10}.{self.region}.elb.amazonaws.com"

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
