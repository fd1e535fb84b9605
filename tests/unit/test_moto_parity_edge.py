"""Where moto let an ALB with a web ACL in front of the nodegroup's ASG pass while AWS would not:
the ASG EKS makes for a managed nodegroup (radstream.sandbox.eks_parity, installed by conftest),
and what ELBv2 and WAFv2 refuse (radstream.sandbox.elb_waf_parity, also installed by conftest),
against in-process moto."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/eks"
VISIBILITY = {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": "acl"}


@pytest.fixture
def aws():
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def _zones(ec2) -> dict[str, str]:
    default = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return {s["AvailabilityZone"]: s["SubnetId"] for s in default}


def _refused(call, **params) -> dict:
    with pytest.raises(ClientError) as refused:
        call(**params)
    return {**refused.value.response["Error"], "Status": refused.value.response["ResponseMetadata"]["HTTPStatusCode"]}


def _nodegroup(aws, **extra) -> dict:
    subnets = [_zones(aws("ec2"))[z] for z in ("us-east-1a", "us-east-1b")]
    eks = aws("eks")
    eks.create_cluster(name="c", roleArn=ROLE, resourcesVpcConfig={"subnetIds": subnets})
    return eks.create_nodegroup(clusterName="c", nodegroupName="ng", nodeRole=ROLE, subnets=subnets,
                                instanceTypes=["t3.large"], scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 2},
                                tags={"team": "radiology"}, **extra)["nodegroup"]


def _group(aws, nodegroup: dict) -> dict | None:
    name = nodegroup["resources"]["autoScalingGroups"][0]["name"]
    groups = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return groups[0] if groups else None


def _running(aws) -> list[dict]:
    return [i for r in aws("ec2").describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] == "running"]


# -- EKS: the nodegroup's Auto Scaling group ------------------------------------------------------

def test_a_nodegroup_comes_with_the_auto_scaling_group_eks_names(aws):
    nodegroup = _nodegroup(aws)
    uuid = nodegroup["nodegroupArn"].rsplit("/", 1)[1]
    group = _group(aws, nodegroup)
    assert group is not None and group["AutoScalingGroupName"] == f"eks-ng-{uuid}"
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 3, 2)
    assert set(group["VPCZoneIdentifier"].split(",")) == set(nodegroup["subnets"])
    assert group["LaunchTemplate"]["LaunchTemplateName"] == f"eks-{uuid}"
    tags = {t["Key"]: t["Value"] for t in group["Tags"] if t["PropagateAtLaunch"]}
    assert tags == {"eks:cluster-name": "c", "eks:nodegroup-name": "ng", "k8s.io/cluster-autoscaler/enabled": "true",
                    "k8s.io/cluster-autoscaler/c": "owned", "kubernetes.io/cluster/c": "owned"}
    assert [i["InstanceType"] for i in _running(aws)] == ["t3.large", "t3.large"]

    # What RadStream does with it: the ALB's target group gets the nodes.
    target_group = aws("elbv2").create_target_group(Name="web", Protocol="HTTP", Port=30080,
                                                    VpcId=aws("ec2").describe_vpcs()["Vpcs"][0]["VpcId"])
    arn = target_group["TargetGroups"][0]["TargetGroupArn"]
    aws("autoscaling").attach_load_balancer_target_groups(AutoScalingGroupName=group["AutoScalingGroupName"],
                                                          TargetGroupARNs=[arn])
    assert len(aws("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]) == 2


def test_eks_launches_from_its_copy_of_the_given_launch_template(aws):
    disk = [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 100}}]
    template = aws("ec2").create_launch_template(LaunchTemplateName="ours",
                                                 LaunchTemplateData={"BlockDeviceMappings": disk})
    nodegroup = _nodegroup(aws, launchTemplate={"id": template["LaunchTemplate"]["LaunchTemplateId"], "version": "1"})
    copy = _group(aws, nodegroup)["LaunchTemplate"]  # type: ignore[index]
    data = aws("ec2").describe_launch_template_versions(LaunchTemplateId=copy["LaunchTemplateId"])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["InstanceType"] == "t3.large"
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 100


def test_a_new_scaling_config_resizes_the_auto_scaling_group(aws):
    nodegroup = _nodegroup(aws)
    aws("eks").update_nodegroup_config(clusterName="c", nodegroupName="ng",
                                       scalingConfig={"minSize": 2, "maxSize": 5, "desiredSize": 4})
    group = _group(aws, nodegroup)
    assert group is not None and (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (2, 5, 4)
    assert len(_running(aws)) == 4


def test_nodes_a_scale_to_zero_terminates_take_their_interfaces_with_them(aws):
    # Phase 7 parks the nodegroup at zero; the network's teardown later waits for its subnets' ENIs.
    nodegroup = _nodegroup(aws)
    aws("eks").update_nodegroup_config(clusterName="c", nodegroupName="ng",
                                       scalingConfig={"minSize": 0, "maxSize": 3, "desiredSize": 0})
    assert _running(aws) == []
    held = aws("ec2").describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": nodegroup["subnets"]}])
    assert [e for e in held["NetworkInterfaces"] if e.get("Attachment", {}).get("InstanceId")] == []


def test_a_deleted_nodegroup_takes_its_group_nodes_and_template_and_frees_its_subnets(aws):
    nodegroup = _nodegroup(aws)
    template = _group(aws, nodegroup)["LaunchTemplate"]["LaunchTemplateName"]  # type: ignore[index]
    aws("eks").delete_nodegroup(clusterName="c", nodegroupName="ng")
    assert _group(aws, nodegroup) is None
    assert _running(aws) == []
    assert template not in [t["LaunchTemplateName"] for t in aws("ec2").describe_launch_templates()["LaunchTemplates"]]
    for subnet in nodegroup["subnets"]:  # the nodes' ENIs went with them (vpc_parity refuses a subnet in use)
        aws("ec2").delete_subnet(SubnetId=subnet)


# -- ELBv2 ------------------------------------------------------------------------------------------

def test_an_application_load_balancer_needs_subnets_in_two_zones(aws):
    elbv2, ec2 = aws("elbv2"), aws("ec2")
    zones = _zones(ec2)
    vpc = ec2.describe_subnets(SubnetIds=[zones["us-east-1a"]])["Subnets"][0]["VpcId"]
    second_in_a = ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.200.0/24", AvailabilityZone="us-east-1a")
    for subnets in ([zones["us-east-1a"]], [zones["us-east-1a"], second_in_a["Subnet"]["SubnetId"]]):
        error = _refused(elbv2.create_load_balancer, Name="web", Subnets=subnets, Scheme="internet-facing")
        assert (error["Code"], error["Message"], error["Status"]) == (
            "ValidationError", "At least two subnets in two different Availability Zones must be specified", 400)
    elbv2.create_load_balancer(Name="web", Subnets=[zones["us-east-1a"], zones["us-east-1b"]])
    elbv2.create_load_balancer(Name="nlb", Type="network", Subnets=[zones["us-east-1a"]])  # an NLB may use one zone


def _alb(aws) -> tuple[str, str]:
    zones = _zones(aws("ec2"))
    balancer = aws("elbv2").create_load_balancer(Name="web", Subnets=[zones["us-east-1a"], zones["us-east-1b"]])
    return balancer["LoadBalancers"][0]["LoadBalancerArn"], balancer["LoadBalancers"][0]["VpcId"]


def test_a_target_group_a_listener_or_rule_forwards_to_is_kept_in_elbv2s_words(aws):
    elbv2 = aws("elbv2")
    alb, vpc = _alb(aws)
    default, routed = (elbv2.create_target_group(Name=n, Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]
                       ["TargetGroupArn"] for n in ("default", "routed"))
    listener = elbv2.create_listener(LoadBalancerArn=alb, Protocol="HTTP", Port=80,
                                     DefaultActions=[{"Type": "forward", "TargetGroupArn": default}])
    listener_arn = listener["Listeners"][0]["ListenerArn"]
    elbv2.create_rule(ListenerArn=listener_arn, Priority=1, Conditions=[{"Field": "path-pattern", "Values": ["/v1/*"]}],
                      Actions=[{"Type": "forward", "TargetGroupArn": routed}])
    for arn in (default, routed):
        error = _refused(elbv2.delete_target_group, TargetGroupArn=arn)
        assert (error["Code"], error["Message"]) == (
            "ResourceInUse", f"Target group '{arn}' is currently in use by a listener or a rule")
    elbv2.delete_listener(ListenerArn=listener_arn)
    elbv2.delete_target_group(TargetGroupArn=default)


# -- WAFv2 ------------------------------------------------------------------------------------------

def _web_acl(waf, name: str = "acl") -> dict:
    return waf.create_web_acl(Name=name, Scope="REGIONAL", DefaultAction={"Allow": {}},
                              VisibilityConfig=VISIBILITY)["Summary"]


def test_a_web_acl_attaches_to_an_alb_but_not_to_a_classic_elb_or_an_nlb(aws):
    waf, elbv2 = aws("wafv2"), aws("elbv2")
    acl = _web_acl(waf)
    alb, _ = _alb(aws)
    zones = _zones(aws("ec2"))
    nlb = elbv2.create_load_balancer(Name="nlb", Type="network", Subnets=[zones["us-east-1a"], zones["us-east-1b"]])
    aws("elb").create_load_balancer(LoadBalancerName="classic", AvailabilityZones=["us-east-1a"],
                                    Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])
    assert ":loadbalancer/net/nlb/" in nlb["LoadBalancers"][0]["LoadBalancerArn"]
    for arn in (nlb["LoadBalancers"][0]["LoadBalancerArn"],
                f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/classic"):
        error = _refused(waf.associate_web_acl, WebACLArn=acl["ARN"], ResourceArn=arn)
        assert (error["Code"], error["Status"]) == ("WAFInvalidParameterException", 400)
        assert "field: RESOURCE_ARN" in error["Message"]
        assert waf.get_web_acl_for_resource(ResourceArn=arn).get("WebACL") is None
    waf.associate_web_acl(WebACLArn=acl["ARN"], ResourceArn=alb)
    assert waf.get_web_acl_for_resource(ResourceArn=alb)["WebACL"]["ARN"] == acl["ARN"]


def test_associating_another_web_acl_moves_the_resource_to_it(aws):
    waf = aws("wafv2")
    old, new = _web_acl(waf, "old"), _web_acl(waf, "new")
    alb, _ = _alb(aws)
    waf.associate_web_acl(WebACLArn=old["ARN"], ResourceArn=alb)
    waf.associate_web_acl(WebACLArn=new["ARN"], ResourceArn=alb)
    assert waf.get_web_acl_for_resource(ResourceArn=alb)["WebACL"]["ARN"] == new["ARN"]
    waf.disassociate_web_acl(ResourceArn=alb)
    assert waf.get_web_acl_for_resource(ResourceArn=alb).get("WebACL") is None


def test_a_web_acl_still_associated_is_not_deleted(aws):
    waf = aws("wafv2")
    acl = _web_acl(waf)
    alb, _ = _alb(aws)
    waf.associate_web_acl(WebACLArn=acl["ARN"], ResourceArn=alb)
    token = waf.get_web_acl(Name="acl", Scope="REGIONAL", Id=acl["Id"])["LockToken"]
    error = _refused(waf.delete_web_acl, Name="acl", Scope="REGIONAL", Id=acl["Id"], LockToken=token)
    assert (error["Code"], error["Status"]) == ("WAFAssociatedItemException", 400)
    assert "associated with another resource" in error["Message"]
    assert waf.get_web_acl_for_resource(ResourceArn=alb)["WebACL"]["ARN"] == acl["ARN"]
    waf.disassociate_web_acl(ResourceArn=alb)
    waf.delete_web_acl(Name="acl", Scope="REGIONAL", Id=acl["Id"], LockToken=token)
    assert waf.list_web_acls(Scope="REGIONAL")["WebACLs"] == []


def test_list_resources_for_web_acl_names_what_it_protects(aws):
    ec2, elbv2, wafv2 = aws("ec2"), aws("elbv2"), aws("wafv2")
    zones = sorted(_zones(ec2))[:2]
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    lb = elbv2.create_load_balancer(Name="door", Subnets=subnets, Type="application")["LoadBalancers"][0]
    acl = wafv2.create_web_acl(Name="acl", Scope="REGIONAL", DefaultAction={"Allow": {}}, Rules=[],
                               VisibilityConfig=VISIBILITY)["Summary"]
    assert wafv2.list_resources_for_web_acl(WebACLArn=acl["ARN"])["ResourceArns"] == []
    wafv2.associate_web_acl(WebACLArn=acl["ARN"], ResourceArn=lb["LoadBalancerArn"])
    assert wafv2.list_resources_for_web_acl(WebACLArn=acl["ARN"])["ResourceArns"] == [lb["LoadBalancerArn"]]
