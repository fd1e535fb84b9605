"""Rendering the Kubernetes manifests from the config: pure, no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from radstream.config import validate
from radstream.errors import ConfigError
from radstream.kube import manifests
from radstream.kube.apply import contains
from radstream.kube.capacity import INSTANCE_TYPES, Preflight, smallest_fitting

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = manifests.template_dir(ROOT)
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rs-triton:model-abc@sha256:" + "f" * 64


def config(**sections):
    return validate({"deployment": "rs-test", **sections}, "test")


def pod_spec(cfg) -> dict:
    return manifests.deployment(cfg, TEMPLATES, IMAGE)["spec"]["template"]["spec"]


def test_deployment_runs_the_pushed_digest_as_non_root_with_a_read_only_root():
    spec = pod_spec(config())
    container = spec["containers"][0]
    assert container["image"] == IMAGE
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    # A read-only root still needs somewhere to write: /tmp is an emptyDir.
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])


def test_probes_ask_for_liveness_and_for_the_configured_model():
    container = pod_spec(config(triton={"model_name": "my_model"}))["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/my_model/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert {p["httpGet"]["port"] for p in (container["livenessProbe"], container["readinessProbe"])} == {"http"}


@pytest.mark.parametrize(("instance", "requests", "limits"), [
    ("t3.medium", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "2Gi"}),
    ("t3.micro", {"cpu": "500m", "memory": "256Mi"}, {"cpu": "1", "memory": "512Mi"}),
    ("m5.xlarge", {"cpu": "1", "memory": "4Gi"}, {"cpu": "2", "memory": "8Gi"}),
    ("g4dn.xlarge", {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": "1"},
     {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}),
])
def test_resources_are_sized_to_the_instance_type(instance, requests, limits):
    resources = pod_spec(config(nodegroup={"instance_type": instance}))["containers"][0]["resources"]
    assert resources == {"requests": requests, "limits": limits}


def test_unknown_instance_type_names_the_known_ones():
    with pytest.raises(ConfigError, match="t3.medium"):
        manifests.serving_resources("x9.huge")


def test_labels_selector_and_placement():
    cfg = config(nodegroup={"name": "gpu-ng", "instance_type": "g4dn.xlarge",
                            "taints": [{"key": "dedicated", "value": "inference", "effect": "NO_SCHEDULE"}]})
    deployment = manifests.deployment(cfg, TEMPLATES, IMAGE)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == "triton"
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spec = deployment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "gpu-ng"}
    assert {"key": "dedicated", "operator": "Equal", "value": "inference", "effect": "NoSchedule"} in spec["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    # The HPA owns the replica count; the applied Deployment must not fight it.
    assert "replicas" not in deployment["spec"]


def test_cpu_profile_has_no_tolerations_and_no_device_plugin_need():
    cfg = config()
    assert "tolerations" not in pod_spec(cfg)
    assert not manifests.is_gpu(cfg)


def test_disruption_budget_never_forbids_every_eviction():
    single = manifests.disruption_budget(config(), TEMPLATES)["spec"]
    assert single == {"maxUnavailable": 1, "selector": {"matchLabels": manifests.selector(config())}}
    several = manifests.disruption_budget(config(triton={"replicas": 3}), TEMPLATES)["spec"]
    assert several["minAvailable"] == 1 and "maxUnavailable" not in several


def test_autoscaler_targets_the_deployment_at_70_percent_cpu():
    hpa = manifests.autoscaler(config(triton={"replicas": 2}, nodegroup={"max_size": 4, "desired_size": 1}), TEMPLATES)
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": manifests.DEPLOYMENT}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 4)
    assert spec["metrics"][0]["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}


CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/abc"


def test_service_is_a_load_balancer_from_443_to_8000_only():
    cfg = config(triton={"namespace": "serving"})
    svc = manifests.service(cfg, TEMPLATES, CERTIFICATE)
    assert svc["metadata"]["namespace"] == "serving"
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["selector"] == manifests.selector(cfg)
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("https", 443, 8000)]


def test_namespace_enforces_the_restricted_pod_security_standard():
    ns = manifests.namespace(config(), TEMPLATES)
    assert ns["metadata"]["name"] == "radstream"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_device_plugin_runs_on_the_gpu_nodegroup_only():
    plugin = manifests.device_plugin(config(nodegroup={"name": "gpu-ng", "instance_type": "g4dn.xlarge"}), TEMPLATES)
    assert plugin["kind"] == "DaemonSet" and plugin["metadata"]["namespace"] == "kube-system"
    spec = plugin["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["template"]["spec"]["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "gpu-ng"}


@pytest.mark.parametrize(("status", "expected"), [
    ({}, None),
    ({"loadBalancer": {"ingress": [{"hostname": "internal-a1.elb.amazonaws.com"}]}},
     "https://internal-a1.elb.amazonaws.com:443"),
    ({"loadBalancer": {"ingress": [{"hostname": "127.0.0.1", "ports": [{"port": 41000}]}]}},
     "https://127.0.0.1:41000"),
    ({"loadBalancer": {"ingress": [{"ip": "10.0.0.5", "hostname": "a1", "ports": [{"port": 41000}]}]}},
     "https://10.0.0.5:41000"),
])
def test_endpoint_from_the_load_balancer_status(status, expected):
    svc = manifests.service(config(), TEMPLATES, CERTIFICATE) | {"status": status}
    assert manifests.endpoint(svc) == expected


def test_contains_ignores_server_defaults_but_not_changed_values():
    desired = manifests.deployment(config(), TEMPLATES, IMAGE)
    live = manifests.deployment(config(), TEMPLATES, IMAGE)
    live["metadata"]["uid"] = "abc"
    live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    live["status"] = {"readyReplicas": 1}
    assert contains(live, desired)
    changed = manifests.deployment(config(), TEMPLATES, IMAGE.replace("f" * 64, "e" * 64))
    assert not contains(live, changed)


def test_t3_micro_is_full_before_triton_arrives():
    micro = Preflight("t3.micro", nodes=1, daemonset_pods_per_node=2, cluster_pods=2, serving_pods=1)
    assert INSTANCE_TYPES["t3.micro"].max_pods == 4
    assert not micro.fits and "only 4 fit" in micro.explain()
    medium = Preflight("t3.medium", 1, 2, 2, 1)
    assert medium.fits and medium.capacity == 17
    assert smallest_fitting(micro) == "t3.small"
