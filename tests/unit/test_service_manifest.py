"""The LoadBalancer Service's manifest: what the cloud controller reads from it (pure, no cluster)."""

from __future__ import annotations

from pathlib import Path

from radstream.config import validate
from radstream.kube import manifests
from radstream.sandbox.cloud_controller import ADDITIONAL_TAGS_ANNOTATION, additional_tags, resource_tags

TEMPLATES = manifests.template_dir(Path(__file__).resolve().parents[2])


def test_the_service_asks_for_its_load_balancer_to_carry_the_deployment_tags():
    svc = manifests.service(validate({"deployment": "rs-lb"}, "test"), TEMPLATES)
    assert svc["metadata"]["annotations"][ADDITIONAL_TAGS_ANNOTATION] == "radstream:deployment=rs-lb,radstream:phase=3"


def test_the_controller_tags_with_the_annotation_plus_its_own_ownership_tags():
    svc = manifests.service(validate({"deployment": "rs-lb"}, "test"), TEMPLATES)
    svc["metadata"]["uid"] = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert additional_tags(svc) == {"radstream:deployment": "rs-lb", "radstream:phase": "3"}
    assert resource_tags(svc, "rs-lb-cluster") == {
        "radstream:deployment": "rs-lb", "radstream:phase": "3", "kubernetes.io/cluster/rs-lb-cluster": "owned",
        "kubernetes.io/service-name": "radstream/triton-svc"}


def test_an_ingress_ip_is_preferred_to_a_hostname_that_may_not_resolve():
    svc = manifests.service(validate({"deployment": "rs-lb"}, "test"), TEMPLATES)
    svc["status"] = {"loadBalancer": {"ingress": [{"hostname": "a1.elb.amazonaws.com", "ip": "127.0.0.1",
                                                   "ports": [{"port": 41000}, {"port": 41001}]}]}}
    assert manifests.endpoints(svc) == ("http://127.0.0.1:41000", "127.0.0.1:41001")
