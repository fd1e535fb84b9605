"""Nodes: EKS nodegroups launch, resize and terminate them (named, labelled, tainted and sized as
EKS's are), and the node controller turns them Ready after `node_ready_delay` unless their
nodegroup never joins."""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field

from radstream.kube.capacity import INSTANCE_TYPES
from radstream.sandbox.kube.kinds import Obj, kind_of
from radstream.sandbox.kube.metadata import now_iso
from radstream.sandbox.kube.status import condition, node_ready

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
_EKS_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


@dataclass
class Nodegroup:
    name: str
    instance_type: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    capacity_type: str = "ON_DEMAND"
    joins: bool = True  # False: its nodes register but never turn Ready (EKS: NodeCreationFailure)


class Nodes:
    """Nodegroups and the node controller. Mixed into Kubelet, whose __init__ makes the state these methods
    share (store, api, timers, hooks)."""

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
                "conditions": [condition([], "Ready", "False", "KubeletNotReady", not_ready,
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

    def _nodes(self) -> None:
        never = {name for name, group in self._nodegroups.items() if not group.joins}
        for node in self.store.list("v1", "Node"):
            if (node["metadata"].get("labels") or {}).get(NODEGROUP_LABEL) in never:
                continue
            if not node_ready(node) and self._since("node", node["metadata"]["uid"]) >= self.node_ready_delay:
                def ready(n: Obj) -> None:
                    n["status"]["conditions"] = [condition([], "Ready", "True", "KubeletReady",
                                                           "kubelet is posting ready status", lastHeartbeatTime=now_iso())]
                self.store.mutate("v1", "Node", None, node["metadata"]["name"], ready)
