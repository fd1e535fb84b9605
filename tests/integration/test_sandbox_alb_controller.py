"""The ALB controller against an in-process moto server and an emulator store: an ALB's door opens
once its target group has the nodegroup's instances and leads to a Triton node port, enforces the
associated web ACL, is named in load-balancers.json and goes with its load balancer."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from radstream import certificates
from radstream.sandbox.alb_controller import AlbController, why_shut
from radstream.sandbox.cluster import TritonBridge
from radstream.sandbox.tls_front import TlsFronts, missing_waf_software, nginx_binary
from tests.integration.sandbox_fixtures import loopback_moto
from tests.integration.test_sandbox_waf_front import Door, radstream_like_web_acl, upstream  # noqa: F401

REGION = "us-east-1"
NODE_PORT = 31080


def test_why_a_door_stays_shut():
    assert why_shut(0, NODE_PORT, {NODE_PORT}) == "no registered targets"
    assert why_shut(2, 8000, {NODE_PORT}) == "target group port 8000 is no Triton Service's node port"
    assert why_shut(2, NODE_PORT, {NODE_PORT}) is None


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    with loopback_moto() as endpoint:
        yield endpoint


def triton_store() -> Any:
    from radstream.sandbox.kube.store import Store

    store = Store()
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "radstream"}})
    store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "triton", "namespace": "radstream"},
                  "spec": {"type": "NodePort", "selector": {"app.kubernetes.io/name": "triton"},
                           "ports": [{"name": "http", "port": 8000, "targetPort": 8000, "nodePort": NODE_PORT}]}})
    return store


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(nginx_binary() is None or missing_waf_software() is not None,
                    reason="needs nginx with ModSecurity (apt-get install nginx libnginx-mod-http-modsecurity modsecurity-crs)")
def test_the_door_follows_the_load_balancer_its_targets_and_web_acl(
        aws_endpoint: str, upstream: int, tmp_path: Path, caplog: pytest.LogCaptureFixture):  # noqa: F811
    import boto3

    from radstream.sandbox import SANDBOX_CREDENTIALS

    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=aws_endpoint, **SANDBOX_CREDENTIALS)

    ec2, autoscaling, acm, elbv2, wafv2 = (client(s) for s in ("ec2", "autoscaling", "acm", "elbv2", "wafv2"))
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")
               ["Subnet"]["SubnetId"] for i, zone in enumerate("ab")]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.create_launch_template(LaunchTemplateName="nodes", LaunchTemplateData={"ImageId": image,
                                                                              "InstanceType": "t3.medium"})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName="nodes", MinSize=1, MaxSize=2, DesiredCapacity=1,
                                          LaunchTemplate={"LaunchTemplateName": "nodes", "Version": "$Latest"},
                                          VPCZoneIdentifier=",".join(subnets))
    issued = certificates.ensure(tmp_path / "ca", "door CA", "door", ips=("127.0.0.1",))
    certificate = acm.import_certificate(Certificate=issued.server_cert.read_bytes(),
                                         PrivateKey=issued.server_key.read_bytes())["CertificateArn"]
    balancer = elbv2.create_load_balancer(Name="radstream-door", Subnets=subnets, Type="application",
                                          Scheme="internet-facing")["LoadBalancers"][0]
    group = elbv2.create_target_group(Name="triton", Protocol="HTTP", Port=NODE_PORT, VpcId=vpc,
                                      TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTPS", Port=443,
                          Certificates=[{"CertificateArn": certificate}],
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    visibility = {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": "door"}
    web_acl = radstream_like_web_acl()
    acl_arn = wafv2.create_web_acl(Name="door", Scope="REGIONAL", DefaultAction=web_acl["DefaultAction"],
                                   Rules=[{**rule, "VisibilityConfig": {**visibility, "MetricName": rule["Name"]}}
                                          for rule in web_acl["Rules"]],
                                   VisibilityConfig=visibility)["Summary"]["ARN"]
    wafv2.associate_web_acl(WebACLArn=acl_arn, ResourceArn=balancer["LoadBalancerArn"])

    store = triton_store()
    published = {"aws_endpoint": aws_endpoint, "triton_http": f"http://127.0.0.1:{upstream}"}
    index_path = tmp_path / "load-balancers.json"
    fronts = TlsFronts(tmp_path / "fronts")
    controller = AlbController(store, published, REGION, fronts, index_path,
                               TritonBridge(store, published).is_triton_service, interval=0.2)
    caplog.set_level(logging.INFO, logger="radstream.sandbox.alb_controller")
    controller.start()
    try:
        wait_until(lambda: "no registered targets" in caplog.text, "the controller to judge the load balancer")
        time.sleep(0.5)  # a few more passes: still shut, said once
        assert json.loads(index_path.read_text()) == {} and controller.open == {}
        assert caplog.text.count("no registered targets") == 1

        autoscaling.attach_load_balancer_target_groups(AutoScalingGroupName="nodes", TargetGroupARNs=[group])
        opened = wait_until(lambda: json.loads(index_path.read_text()), "the door to open")
        entry = opened[balancer["DNSName"]]
        assert entry["arn"] == balancer["LoadBalancerArn"] and entry["url"].startswith("https://127.0.0.1:")
        port = int(entry["url"].rsplit(":", 1)[1])
        door = Door(port, issued.ca_cert)
        assert door.status("GET", "/v2/health/ready") == 200
        assert door.status("GET", "/v2/models/radstream_cxr?id=1%27%20OR%20%271%27=%271") == 403

        elbv2.delete_load_balancer(LoadBalancerArn=balancer["LoadBalancerArn"])
        wait_until(lambda: json.loads(index_path.read_text()) == {}, "the door to close")
        assert not listens(port) and controller.open == {}
    finally:
        controller.stop()
        fronts.stop()
