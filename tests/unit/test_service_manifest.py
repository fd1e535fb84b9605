"""The LoadBalancer Service's manifest: what the cloud controller reads from it (pure, no cluster)."""

from __future__ import annotations

from pathlib import Path

from radstream.config import validate
from radstream.kube import manifests
from radstream.sandbox.cloud_controller import (
    ADDITIONAL_TAGS_ANNOTATION,
    additional_tags,
    is_internal,
    listeners,
    resource_tags,
)

TEMPLATES = manifests.template_dir(Path(__file__).resolve().parents[2])
ARN = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def _service():
    return manifests.service(validate({"deployment": "rs-lb"}, "test"), TEMPLATES, ARN)


def test_the_service_asks_for_its_load_balancer_to_carry_the_deployment_tags():
    svc = _service()
    assert svc["metadata"]["annotations"][ADDITIONAL_TAGS_ANNOTATION] == "radstream:deployment=rs-lb,radstream:phase=3"


def test_the_controller_tags_with_the_annotation_plus_its_own_ownership_tags():
    svc = _service()
    svc["metadata"]["uid"] = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert additional_tags(svc) == {"radstream:deployment": "rs-lb", "radstream:phase": "3"}
    assert resource_tags(svc, "rs-lb-cluster") == {
        "radstream:deployment": "rs-lb", "radstream:phase": "3", "kubernetes.io/cluster/rs-lb-cluster": "owned",
        "kubernetes.io/service-name": "radstream/triton-svc"}


def test_an_ingress_ip_is_preferred_to_a_hostname_that_may_not_resolve():
    svc = _service()
    svc["status"] = {"loadBalancer": {"ingress": [{"hostname": "a1.elb.amazonaws.com", "ip": "127.0.0.1",
                                                   "ports": [{"port": 41000}]}]}}
    assert manifests.endpoint(svc) == "https://127.0.0.1:41000"


def test_the_service_is_internal_tls_only_and_reachable_from_private_ranges_only():
    svc = _service()
    annotations = svc["metadata"]["annotations"]
    assert annotations[manifests.INTERNAL_ANNOTATION] == "true"
    assert annotations[manifests.SSL_CERT_ANNOTATION] == ARN
    assert annotations[manifests.SSL_PORTS_ANNOTATION] == "443"
    assert annotations[manifests.BACKEND_PROTOCOL_ANNOTATION] == "http"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(443, 8000)]
    narrow = manifests.service(validate({"deployment": "rs-lb"}, "test"), TEMPLATES, ARN, ("10.20.0.0/16",))
    assert narrow["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16"]


def test_the_controller_makes_an_internal_https_listener_to_plain_http_behind_it():
    svc = _service()
    svc["spec"]["ports"][0]["nodePort"] = 31443
    assert is_internal(svc)
    assert listeners(svc) == [{"LoadBalancerPort": 443, "InstancePort": 31443, "Protocol": "HTTPS",
                               "InstanceProtocol": "HTTP", "SSLCertificateId": ARN}]
    plain = {"metadata": {"annotations": {}}, "spec": {"ports": [{"port": 80, "nodePort": 30080}]}}
    assert not is_internal(plain)
    assert listeners(plain) == [{"LoadBalancerPort": 80, "InstancePort": 30080, "Protocol": "TCP",
                                 "InstanceProtocol": "TCP"}]
    assert manifests.endpoint({**plain, "status": {"loadBalancer": {"ingress": [{"hostname": "a.elb"}]}}}) == \
        "http://a.elb:80"


def test_a_live_service_made_with_other_creation_annotations_must_be_replaced():
    desired, live = _service(), _service()
    assert manifests.creation_annotations_differ(live, desired) == []
    del live["metadata"]["annotations"][manifests.INTERNAL_ANNOTATION]
    live["metadata"]["annotations"][manifests.SSL_CERT_ANNOTATION] = ARN.replace("0f1e", "ffff")
    assert manifests.creation_annotations_differ(live, desired) == [manifests.INTERNAL_ANNOTATION,
                                                                    manifests.SSL_CERT_ANNOTATION]
