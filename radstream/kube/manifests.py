"""The Kubernetes objects RadStream applies, rendered from the YAML templates in manifests/k8s/.

Pure: templates hold the fixed structure with ${...} placeholders for scalars; what depends on the
configuration as a structure (labels, selector, resources sized to the instance type, placement,
the disruption budget's rule) is set here. Quantities are written in the canonical form the API
server stores ("1" not "1000m", "1Gi" not "1024Mi") so re-reading an applied object compares equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstream.kube.capacity import instance_type
from radstream.names import TAG_DEPLOYMENT, TAG_PHASE

if TYPE_CHECKING:
    from radstream.config import Config

APP_NAME = "triton"  # app.kubernetes.io/name: the sandbox connects pods with this label to its Triton
DEPLOYMENT = "triton"
SERVICE = "triton-svc"
SERVICE_PHASE = 3  # the phase that creates the Service, and so its load balancer
# The cloud controller's finalizer: a LoadBalancer Service stays until its load balancer is released.
LOAD_BALANCER_CLEANUP = "service.kubernetes.io/load-balancer-cleanup"
_LB_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-"
INTERNAL_ANNOTATION, SSL_CERT_ANNOTATION = f"{_LB_ANNOTATION}internal", f"{_LB_ANNOTATION}ssl-cert"
SSL_PORTS_ANNOTATION, BACKEND_PROTOCOL_ANNOTATION = f"{_LB_ANNOTATION}ssl-ports", f"{_LB_ANNOTATION}backend-protocol"
# Read by the cloud controller only when it creates the load balancer (kubernetes/kubernetes#64251,
# #39593: adding the internal annotation later leaves the load balancer internet-facing).
CREATION_ANNOTATIONS = (INTERNAL_ANNOTATION, SSL_CERT_ANNOTATION, SSL_PORTS_ANNOTATION, BACKEND_PROTOCOL_ANNOTATION)
# Who may reach the load balancer when the VPC's own CIDR is not known: RFC 1918's private ranges.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
DEVICE_PLUGIN = "nvidia-device-plugin"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
GPU_RESOURCE = "nvidia.com/gpu"
# EKS spells taint effects differently from Kubernetes.
_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}

Manifest = dict[str, Any]


def template_dir(root: Path) -> Path:
    return root / "manifests" / "k8s"


def load(directory: Path, name: str, variables: dict[str, Any]) -> Manifest:
    """manifests/k8s/<name>.yaml with every ${Var} replaced (an unknown one raises KeyError)."""
    import yaml

    from radstream.templating import substitute

    text = (directory / f"{name}.yaml").read_text()
    return yaml.safe_load(substitute(text, {k: str(v) for k, v in variables.items()}))


def labels(config: Config) -> dict[str, str]:
    return {**selector(config), "app.kubernetes.io/part-of": "radstream", "app.kubernetes.io/managed-by": "radstream"}


def selector(config: Config) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": config.deployment}


def _cpu(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def _memory(mebibytes: int) -> str:
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"


def serving_resources(instance: str) -> dict[str, dict[str, str]]:
    """Requests a quarter of the node, limits half: room for system pods, a surge pod during a rollout
    and a second replica. On a t3.medium: 500m/1Gi requested, 1 CPU/2Gi limit."""
    spec = instance_type(instance)
    cpu, memory = spec.vcpus * 1000, spec.memory_gib * 1024
    requests = {"cpu": _cpu(cpu // 4), "memory": _memory(memory // 4)}
    limits = {"cpu": _cpu(cpu // 2), "memory": _memory(memory // 2)}
    if spec.gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = "1"
    return {"requests": requests, "limits": limits}


def is_gpu(config: Config) -> bool:
    return instance_type(config.nodegroup.instance_type).gpus > 0


def tolerations(config: Config) -> list[dict[str, str]]:
    """Tolerate the nodegroup's own taints (and the GPU taint on GPU profiles) so Triton lands there."""
    found = [{"key": t["key"], "operator": "Equal", "value": t.get("value", ""),
              "effect": _TAINT_EFFECTS.get(t.get("effect", ""), t.get("effect", ""))}
             for t in config.nodegroup.taints]
    if is_gpu(config):
        found.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return found


def namespace(config: Config, directory: Path) -> Manifest:
    manifest = load(directory, "namespace", {"Namespace": config.triton.namespace})
    manifest["metadata"]["labels"].update(labels(config))
    return manifest


def deployment(config: Config, directory: Path, image: str) -> Manifest:
    manifest = load(directory, "deployment", {"Name": DEPLOYMENT, "Namespace": config.triton.namespace,
                                              "Image": image, "Model": config.triton.model_name})
    manifest["metadata"]["labels"] = labels(config)
    spec = manifest["spec"]
    spec["selector"] = {"matchLabels": selector(config)}
    pod = spec["template"]
    pod["metadata"] = {"labels": labels(config)}
    pod["spec"]["nodeSelector"] = {NODEGROUP_LABEL: config.nodegroup.name}
    if tolerations(config):
        pod["spec"]["tolerations"] = tolerations(config)
    pod["spec"]["containers"][0]["resources"] = serving_resources(config.nodegroup.instance_type)
    return manifest


def disruption_budget(config: Config, directory: Path) -> Manifest:
    manifest = load(directory, "pdb", {"Name": DEPLOYMENT, "Namespace": config.triton.namespace})
    manifest["metadata"]["labels"] = labels(config)
    # With one replica, minAvailable 1 would forbid every eviction and block node drains for good;
    # maxUnavailable 1 lets a drain move it (a short gap). With more, one always keeps serving.
    rule = {"minAvailable": 1} if config.triton.replicas > 1 else {"maxUnavailable": 1}
    manifest["spec"] = {**rule, "selector": {"matchLabels": selector(config)}}
    return manifest


def autoscaler(config: Config, directory: Path) -> Manifest:
    # More serving pods than nodes would only share the same cores.
    maximum = max(config.triton.replicas, config.nodegroup.max_size)
    manifest = load(directory, "hpa", {"Name": DEPLOYMENT, "Namespace": config.triton.namespace,
                                       "MinReplicas": config.triton.replicas, "MaxReplicas": maximum,
                                       "TargetCpu": config.triton.target_cpu_utilization,
                                       "ScaleDownWindow": config.triton.scale_down_window_seconds})
    manifest["metadata"]["labels"] = labels(config)
    return manifest


def workloads(config: Config, directory: Path, image: str) -> list[Manifest]:
    """Phase 2's objects in apply order (the HPA last: it scales what exists)."""
    return [deployment(config, directory, image), disruption_budget(config, directory), autoscaler(config, directory)]


def service(config: Config, directory: Path, certificate_arn: str,
            source_ranges: tuple[str, ...] = PRIVATE_RANGES) -> Manifest:
    """Triton's Service: an internal load balancer terminating TLS with `certificate_arn`,
    reachable from `source_ranges` only (the VPC's CIDR when known)."""
    tags = f"{TAG_DEPLOYMENT}={config.deployment},{TAG_PHASE}={SERVICE_PHASE}"
    manifest = load(directory, "service", {"ServiceName": SERVICE, "Namespace": config.triton.namespace,
                                           "AdditionalTags": tags, "CertificateArn": certificate_arn})
    manifest["metadata"]["labels"] = labels(config)
    manifest["spec"]["selector"] = selector(config)
    manifest["spec"]["loadBalancerSourceRanges"] = list(source_ranges)
    return manifest


def creation_annotations_differ(live: Manifest, desired: Manifest) -> list[str]:
    """The annotations read only at the load balancer's creation whose live value is not the desired one."""
    have = live["metadata"].get("annotations") or {}
    want = desired["metadata"].get("annotations") or {}
    return [key for key in CREATION_ANNOTATIONS if have.get(key) != want.get(key)]


def device_plugin(config: Config, directory: Path) -> Manifest:
    manifest = load(directory, "nvidia-device-plugin", {})
    plugin_labels = {"app.kubernetes.io/name": DEVICE_PLUGIN, "app.kubernetes.io/managed-by": "radstream"}
    manifest["metadata"]["labels"] = plugin_labels
    manifest["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/name": DEVICE_PLUGIN}}
    manifest["spec"]["template"]["metadata"] = {"labels": plugin_labels}
    manifest["spec"]["template"]["spec"]["nodeSelector"] = {NODEGROUP_LABEL: config.nodegroup.name}
    return manifest


def endpoint(service_obj: Manifest) -> str | None:
    """The URL of a LoadBalancer Service's first port once it has an ingress, else None: https://
    when that port is one of its ssl-ports, else http://.

    An ingress entry may list the ports it really listens on (in the Service's port order); when it
    does not, the Service's own ports apply. Its IP, when it has one, needs no DNS lookup."""
    ingress = ((service_obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if not ingress:
        return None
    entry = ingress[0]
    host = entry.get("ip") or entry.get("hostname")
    if not host:
        return None
    declared = ((service_obj.get("spec") or {}).get("ports") or [])[:1]
    listening = [p["port"] for p in entry.get("ports") or []][:1]
    port = (listening or [p["port"] for p in declared] or [80])[0]
    scheme = "https" if declared and is_ssl_port(service_obj, declared[0]) else "http"
    return f"{scheme}://{host}:{port}"


def is_ssl_port(service_obj: Manifest, port: Manifest) -> bool:
    """Whether the load balancer terminates TLS on this Service port: the ssl-cert annotation is set
    and ssl-ports (numbers or names, "*" for all; absent means all) lists it."""
    annotations = (service_obj.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(SSL_CERT_ANNOTATION):
        return False
    listed = {item.strip() for item in annotations.get(SSL_PORTS_ANNOTATION, "*").split(",") if item.strip()}
    return bool(listed & {"*", str(port["port"]), str(port.get("name"))})
