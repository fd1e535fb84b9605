"""The public door against moto: every piece made once and tagged, nothing open but 443, a node
port change moving the listener to a new target group, the web ACL on before the listener opens,
and teardown leaving nothing (quiet the second time)."""

from __future__ import annotations

import dataclasses

import boto3
import pytest
from moto import mock_aws

from radstream.aws import network, public_door, waf
from radstream.config import validate
from radstream.documents import web_acl
from radstream.names import Names
from tests.support.aws import record_mutations

REGION, DEPLOYMENT = "us-east-1", "rs-door"
TAGS = {"radstream:deployment": DEPLOYMENT, "radstream:phase": "3"}


def no_wait(description, predicate, timeout, interval=2.0, max_interval=None):
    import time

    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, description
        time.sleep(0.05)


@pytest.fixture
def aws(monkeypatch):
    from radstream.sandbox import vpc_parity

    monkeypatch.setenv(vpc_parity.NAT_ENV, "0.1")
    with mock_aws():
        clients = {name: boto3.client(name, region_name=REGION) for name in ("ec2", "elbv2", "autoscaling", "wafv2", "acm")}
        yield clients


def certificate(acm, directory) -> str:
    from radstream.certificates import ensure

    files = ensure(directory, "door-ca", "door", dns_names=(f"*.{REGION}.elb.amazonaws.com",), ips=())
    return acm.import_certificate(Certificate=files.server_cert.read_bytes(), PrivateKey=files.server_key.read_bytes(),
                                  CertificateChain=files.ca_cert.read_bytes())["CertificateArn"]


@pytest.fixture
def door(aws, tmp_path) -> public_door.Door:
    ec2 = aws["ec2"]
    layout = network.Layout(DEPLOYMENT, REGION, "10.42.0.0/16", network.choose_zones(ec2, "t3.medium", 2), True,
                            door=True)
    network.ensure_network(ec2, layout, {**TAGS, "radstream:phase": "0"}, no_wait)
    public = network.created_public_subnets(ec2, layout)
    vpc = network.vpc_of(ec2, public)
    private = sorted(network.created_subnets(ec2, layout))
    # What EKS made: the nodegroup's Auto Scaling group and the cluster's security group.
    ec2.create_launch_template(LaunchTemplateName="eks-nodes", LaunchTemplateData={"InstanceType": "t3.medium",
                                                                                  "ImageId": "ami-12c6146b"})
    aws["autoscaling"].create_auto_scaling_group(
        AutoScalingGroupName="eks-cpu-ng-1", LaunchTemplate={"LaunchTemplateName": "eks-nodes"}, MinSize=1, MaxSize=2,
        DesiredCapacity=1, VPCZoneIdentifier=",".join(private))
    cluster_group = ec2.create_security_group(GroupName="eks-cluster-sg-c", Description="EKS", VpcId=vpc["VpcId"])
    return public_door.Door(DEPLOYMENT, vpc["VpcId"], vpc["CidrBlock"], tuple(public), ("203.0.113.0/24",),
                            certificate(aws["acm"], tmp_path), 30080, ("eks-cpu-ng-1",), cluster_group["GroupId"])


def ensure(aws, door: public_door.Door, events: list[str] | None = None) -> dict[str, str]:
    config = validate({"deployment": DEPLOYMENT, "expose": {"public": True, "rate_limit": 10}}, "test")
    acl = waf.ensure_web_acl(aws["wafv2"], f"{DEPLOYMENT}-door", web_acl(Names(DEPLOYMENT, "123456789012", REGION), config),
                             TAGS)

    def protect(lb_arn: str) -> None:
        # The listener does not exist yet when the web ACL goes on.
        assert public_door._https_listener(aws["elbv2"], lb_arn) is None or events is None
        waf.associate(aws["wafv2"], acl, lb_arn, no_wait)
        if events is not None:
            events.append("web acl on")

    return public_door.ensure_door(aws["ec2"], aws["elbv2"], aws["autoscaling"], door, TAGS, before_listener=protect)


def test_the_door_is_made_once_tagged_and_opens_only_443(aws, door):
    made = ensure(aws, door)
    ec2, elbv2 = aws["ec2"], aws["elbv2"]
    assert [d for d in public_door.door_drift(ec2, elbv2, aws["autoscaling"], door) if d[2]] == []
    lb = elbv2.describe_load_balancers(Names=[door.name])["LoadBalancers"][0]
    assert lb["Scheme"] == "internet-facing" and lb["Type"] == "application"
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(door.subnets)
    listener = elbv2.describe_listeners(LoadBalancerArn=made["arn"])["Listeners"]
    assert [(item["Port"], item["Protocol"], item["SslPolicy"]) for item in listener] == [
        (443, "HTTPS", public_door.SSL_POLICY)]
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [door.name]}])["SecurityGroups"][0]
    # In: 443 from the allowed ranges only. Out: Triton's node port inside the VPC only (not AWS's default all-traffic).
    assert public_door._rules(group["IpPermissions"]) == {("tcp", 443, 443, "203.0.113.0/24")}
    assert public_door._rules(group["IpPermissionsEgress"]) == {("tcp", 30080, 30080, door.vpc_cidr)}
    assert public_door._node_port_open(ec2, door, group["GroupId"])
    # The nodegroup's instances are the targets, through its Auto Scaling group.
    health = elbv2.describe_target_health(TargetGroupArn=made["target_group_arn"])["TargetHealthDescriptions"]
    assert [t["Target"]["Port"] for t in health] == [30080]
    assert waf.associated_web_acl(aws["wafv2"], made["arn"]) == waf.web_acl_arn(aws["wafv2"], f"{DEPLOYMENT}-door")
    tags = {t["Key"]: t["Value"] for d in elbv2.describe_tags(ResourceArns=[made["arn"], made["target_group_arn"]])[
        "TagDescriptions"] for t in d["Tags"]}
    assert tags["radstream:deployment"] == DEPLOYMENT

    mutations = [*record_mutations(ec2), *record_mutations(elbv2), *record_mutations(aws["autoscaling"])]
    ensure(aws, door)
    assert [m for m in mutations if m != "ModifyLoadBalancerAttributes"] == []


def test_a_new_node_port_moves_the_listener_to_a_new_target_group_and_drops_the_old(aws, door):
    first = ensure(aws, door)
    moved = dataclasses.replace(door, node_port=31999)
    assert ("target group", moved.target_group, ["missing"]) in public_door.door_drift(
        aws["ec2"], aws["elbv2"], aws["autoscaling"], moved)
    second = ensure(aws, moved)
    assert second["target_group_arn"] != first["target_group_arn"]
    names = [g["TargetGroupName"] for g in aws["elbv2"].describe_target_groups()["TargetGroups"]]
    assert names == [moved.target_group]
    asg = aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=["eks-cpu-ng-1"])["AutoScalingGroups"][0]
    assert asg["TargetGroupARNs"] == [second["target_group_arn"]]
    assert [d for d in public_door.door_drift(aws["ec2"], aws["elbv2"], aws["autoscaling"], moved) if d[2]] == []


def test_the_web_acl_goes_on_before_the_listener_opens_the_door(aws, door):
    events: list[str] = []
    made = ensure(aws, door, events)
    assert events == ["web acl on"]
    assert aws["elbv2"].describe_listeners(LoadBalancerArn=made["arn"])["Listeners"]


def test_teardown_leaves_nothing_of_the_door_and_is_quiet_the_second_time(aws, door):
    ensure(aws, door)
    waf.delete_web_acl(aws["wafv2"], f"{DEPLOYMENT}-door", no_wait)
    public_door.delete_door(aws["ec2"], aws["elbv2"], aws["autoscaling"], DEPLOYMENT, no_wait)
    assert aws["elbv2"].describe_load_balancers()["LoadBalancers"] == []
    assert aws["elbv2"].describe_target_groups()["TargetGroups"] == []
    assert aws["wafv2"].list_web_acls(Scope="REGIONAL")["WebACLs"] == []
    assert not aws["ec2"].describe_security_groups(Filters=[{"Name": "group-name", "Values": [door.name]}])["SecurityGroups"]
    cluster = aws["ec2"].describe_security_groups(GroupIds=[door.cluster_security_group])["SecurityGroups"][0]
    assert cluster["IpPermissions"] == []  # the node port rule went with the door's group
    waf.delete_web_acl(aws["wafv2"], f"{DEPLOYMENT}-door", no_wait)
    public_door.delete_door(aws["ec2"], aws["elbv2"], aws["autoscaling"], DEPLOYMENT, no_wait)


def test_a_changed_rate_limit_updates_the_web_acl_in_place(aws):
    names = Names(DEPLOYMENT, "123456789012", REGION)
    wafv2, name = aws["wafv2"], f"{DEPLOYMENT}-door"
    before = web_acl(names, validate({"deployment": DEPLOYMENT, "expose": {"public": True}}, "test"))
    arn = waf.ensure_web_acl(wafv2, name, before, TAGS)
    assert waf.web_acl_drift(wafv2, name, before) == []
    after = web_acl(names, validate({"deployment": DEPLOYMENT, "expose": {"public": True, "rate_limit": 50}}, "test"))
    assert waf.web_acl_drift(wafv2, name, after) == ["Rules"]
    assert waf.ensure_web_acl(wafv2, name, after, TAGS) == arn
    assert waf.web_acl_drift(wafv2, name, after) == []
