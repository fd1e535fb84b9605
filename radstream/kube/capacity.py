"""How much an EKS node of a given instance type can hold, and whether the cluster's pods fit.

Pure: a small table of instance types and the arithmetic EKS uses. The pod limit, not CPU, is what
makes a t3.micro useless: the VPC CNI gives every pod its own IP, and a t3.micro has 2 network
interfaces of 2 addresses each, so it takes 2 * (2 - 1) + 2 = 4 pods — exactly the two DaemonSet
pods and the two CoreDNS replicas every EKS cluster runs, and nothing for the workload."""

from __future__ import annotations

from dataclasses import dataclass

from radstream.errors import ConfigError


@dataclass(frozen=True)
class InstanceType:
    enis: int
    ipv4_per_eni: int
    vcpus: int
    memory_gib: int
    gpus: int = 0

    @property
    def max_pods(self) -> int:
        # Each ENI's primary address is the node's own; +2 for the host-network pods (aws-node, kube-proxy).
        return self.enis * (self.ipv4_per_eni - 1) + 2

    def capacity(self) -> dict[str, str]:
        capacity = {"cpu": str(self.vcpus), "memory": f"{self.memory_gib * 1024 * 1024}Ki",
                    "pods": str(self.max_pods), "ephemeral-storage": "20959212Ki"}
        if self.gpus:
            capacity["nvidia.com/gpu"] = str(self.gpus)
        return capacity

    def allocatable(self) -> dict[str, str]:
        # EKS kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the next two,
        # 0.25% of the rest; memory: 255 MiB + 11 MiB per pod, plus a 100 MiB eviction threshold.
        reserved_mcpu = 60 + (10 if self.vcpus > 1 else 0) + 5 * max(0, min(self.vcpus, 4) - 2) + 2.5 * max(0, self.vcpus - 4)
        memory_mib = self.memory_gib * 1024 - (255 + 11 * self.max_pods) - 100
        return {**self.capacity(), "cpu": f"{int(self.vcpus * 1000 - reserved_mcpu)}m", "memory": f"{memory_mib}Mi",
                "ephemeral-storage": "18242267924"}


# ENIs and addresses per ENI as EC2 documents them for the VPC CNI.
INSTANCE_TYPES: dict[str, InstanceType] = {
    "t3.micro": InstanceType(2, 2, 2, 1),
    "t3.small": InstanceType(3, 4, 2, 2),
    "t3.medium": InstanceType(3, 6, 2, 4),
    "t3.large": InstanceType(3, 12, 2, 8),
    "t3.xlarge": InstanceType(4, 15, 4, 16),
    "t3.2xlarge": InstanceType(4, 15, 8, 32),
    "m5.large": InstanceType(3, 10, 2, 8),
    "m5.xlarge": InstanceType(4, 15, 4, 16),
    "m5.2xlarge": InstanceType(4, 15, 8, 32),
    "m6i.large": InstanceType(3, 10, 2, 8),
    "m6i.xlarge": InstanceType(4, 15, 4, 16),
    "c5.large": InstanceType(3, 10, 2, 4),
    "c5.xlarge": InstanceType(4, 15, 4, 8),
    "g4dn.xlarge": InstanceType(3, 10, 4, 16, gpus=1),
    "g4dn.2xlarge": InstanceType(3, 10, 8, 32, gpus=1),
    "g5.xlarge": InstanceType(4, 15, 4, 16, gpus=1),
}


def instance_type(name: str) -> InstanceType:
    try:
        return INSTANCE_TYPES[name]
    except KeyError:
        raise ConfigError(
            f"nodegroup.instance_type {name!r} is not in RadStream's sizing table",
            hint=f"use one of {', '.join(INSTANCE_TYPES)}",
        ) from None


@dataclass(frozen=True)
class Preflight:
    """Do the pods the cluster must run fit on `nodes` nodes of `instance`?"""

    instance: str
    nodes: int
    daemonset_pods_per_node: int  # one per DaemonSet on every node
    cluster_pods: int  # everything else that must run somewhere (CoreDNS, ...)
    serving_pods: int  # Triton replicas

    @property
    def capacity(self) -> int:
        return INSTANCE_TYPES[self.instance].max_pods * self.nodes

    @property
    def needed(self) -> int:
        return self.daemonset_pods_per_node * self.nodes + self.cluster_pods + self.serving_pods

    @property
    def fits(self) -> bool:
        return self.nodes > 0 and self.needed <= self.capacity

    def explain(self) -> str:
        spec = INSTANCE_TYPES[self.instance]
        per_node = (f"{self.instance} takes {spec.max_pods} pods per node "
                    f"({spec.enis} ENIs x ({spec.ipv4_per_eni} IPs - 1) + 2)")
        need = (f"{self.nodes} node(s) must run {self.needed} pods: {self.daemonset_pods_per_node} DaemonSet pods "
                f"per node, {self.cluster_pods} cluster pods and {self.serving_pods} Triton")
        if self.fits:
            return f"{per_node}; {need} of {self.capacity} — fits"
        return f"{per_node}; {need} but only {self.capacity} fit — Triton would stay Pending"


def smallest_fitting(preflight: Preflight) -> str | None:
    """The cheapest-looking instance type (fewest vCPUs, then memory) on which the same pods fit."""
    candidates = sorted((t for t, spec in INSTANCE_TYPES.items() if not spec.gpus),
                        key=lambda t: (INSTANCE_TYPES[t].vcpus, INSTANCE_TYPES[t].memory_gib))
    for name in candidates:
        trial = Preflight(name, preflight.nodes, preflight.daemonset_pods_per_node, preflight.cluster_pods,
                          preflight.serving_pods)
        if trial.fits:
            return name
    return None
