import json

import boto3
import pytest
from moto import mock_aws

from radstream.aws.inventory import deployment_resources

REGION = "us-east-1"


def tags(deployment: str) -> dict[str, str]:
    return {"radstream:deployment": deployment, "radstream:phase": "0"}


def tag_list(deployment: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags(deployment).items()]


@pytest.fixture
def client():
    with mock_aws():
        clients: dict[str, object] = {}

        def factory(service: str):
            return clients.setdefault(service, boto3.client(service, region_name=REGION))

        yield factory


def make_resources(client, deployment: str) -> None:
    """One resource per service, tagged for `deployment` (the EKS cluster of t2 is untagged: adopted)."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    role = client("iam").create_role(RoleName=f"{deployment}-eks-cluster-role", AssumeRolePolicyDocument=trust,
                                     Tags=tag_list(deployment))["Role"]["Arn"]
    bucket = f"{deployment}-images-123456789012"
    client("s3").create_bucket(Bucket=bucket)
    client("s3").put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_list(deployment)})
    client("kinesis").create_stream(StreamName=f"{deployment}-telemetry", ShardCount=1)
    client("kinesis").add_tags_to_stream(StreamName=f"{deployment}-telemetry", Tags=tags(deployment))
    client("ecr").create_repository(repositoryName=f"{deployment}-triton", tags=tag_list(deployment))
    client("events").put_rule(Name=f"{deployment}-image-uploaded", EventPattern='{"source": ["aws.s3"]}',
                              Tags=tag_list(deployment))
    client("glue").create_database(DatabaseInput={"Name": f"{deployment}_analytics"}, Tags=tags(deployment))
    client("lambda").publish_layer_version(LayerName=f"{deployment}-pipeline-deps", Content={"ZipFile": b"PK"})
    client("sqs").create_queue(QueueName=f"{deployment}-undelivered", tags=tags(deployment))
    subnets = [s["SubnetId"] for s in client("ec2").describe_subnets()["Subnets"]][:2]
    client("eks").create_cluster(name=f"{deployment}-cluster", roleArn=role, resourcesVpcConfig={"subnetIds": subnets},
                                 tags=tags(deployment) if deployment == "t1" else {})


def test_finds_exactly_this_deployments_resources(client):
    make_resources(client, "t1")
    make_resources(client, "t2")
    found = deployment_resources(client, "t1")
    assert all("t1" in r["arn"] and "t2" not in r["arn"] for r in found), found
    assert sorted(r["service"] for r in found) == sorted(
        ["iam", "s3", "kinesis", "ecr", "events", "glue", "lambda", "eks", "sqs"])
    assert [r["service"] for r in deployment_resources(client, "t2")].count("eks") == 0  # adopted: not ours


def test_deleted_resources_are_not_reported(client):
    make_resources(client, "t1")
    client("glue").delete_database(Name="t1_analytics")
    client("kinesis").delete_stream(StreamName="t1-telemetry")
    client("ecr").delete_repository(repositoryName="t1-triton", force=True)
    client("eks").delete_cluster(name="t1-cluster")
    client("events").delete_rule(Name="t1-image-uploaded")
    client("lambda").delete_layer_version(LayerName="t1-pipeline-deps", VersionNumber=1)
    client("iam").delete_role(RoleName="t1-eks-cluster-role")
    client("s3").delete_bucket(Bucket="t1-images-123456789012")
    client("sqs").delete_queue(QueueUrl=client("sqs").get_queue_url(QueueName="t1-undelivered")["QueueUrl"])
    assert deployment_resources(client, "t1") == []


@pytest.fixture
def tagging_lag(monkeypatch):
    """The sandbox's tagging API lag (radstream.sandbox.tagging_lag) on in-process moto: deleted
    resources stay listed, with their tags, for longer than any test."""
    from radstream.sandbox import tagging_lag

    monkeypatch.setenv(tagging_lag.WINDOW_ENV, "600")
    def wrap(owner, attribute, fix):
        monkeypatch.setattr(owner, attribute, fix(getattr(owner, attribute)))

    tagging_lag.install(wrap)


def tagged_arns(client, deployment: str) -> set[str]:
    pages = client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
        TagFilters=[{"Key": "radstream:deployment", "Values": [deployment]}])
    return {item["ResourceARN"] for page in pages for item in page["ResourceTagMappingList"]}


def make_network_resources(client, deployment: str) -> dict[str, str]:
    """One tagged resource of each type the tagging API lists and only a direct read can confirm."""
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    in_vpc = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    subnets = [s["SubnetId"] for s in in_vpc][:2]
    client("logs").create_log_group(logGroupName=f"/radstream/{deployment}/failures", tags=tags(deployment))
    client("athena").create_work_group(Name=f"{deployment}-analytics", Tags=tag_list(deployment))
    group = ec2.create_security_group(GroupName=f"{deployment}-lb", Description="lb", VpcId=vpc, TagSpecifications=[
        {"ResourceType": "security-group", "Tags": tag_list(deployment)}])["GroupId"]
    client("elb").create_load_balancer(LoadBalancerName=f"{deployment}-classic", AvailabilityZones=[f"{REGION}a"],
                                       Listeners=[{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 8000}],
                                       Tags=tag_list(deployment))
    elbv2 = client("elbv2")
    nlb = elbv2.create_load_balancer(Name=f"{deployment}-nlb", Type="network", Subnets=subnets,
                                     Tags=tag_list(deployment))["LoadBalancers"][0]["LoadBalancerArn"]
    target = elbv2.create_target_group(Name=f"{deployment}-tg", Protocol="TCP", Port=8000, VpcId=vpc,
                                       Tags=tag_list(deployment))["TargetGroups"][0]["TargetGroupArn"]
    return {"security_group": group, "nlb": nlb, "target_group": target}


def test_resources_only_the_tagging_api_lists_are_confirmed_present(client):
    made = make_network_resources(client, "t3")
    found = {r["arn"]: r for r in deployment_resources(client, "t3")}
    assert {r["service"] for r in found.values()} == {"logs", "athena", "ec2", "elasticloadbalancing"}
    assert {made["nlb"], made["target_group"]} <= found.keys()
    assert {r["status"] for r in found.values()} == {"present"}


def test_deleted_resources_the_tagging_api_still_lists_are_not_reported(client, tagging_lag):
    make_resources(client, "t3")
    made = make_network_resources(client, "t3")
    listed = tagged_arns(client, "t3")
    client("logs").delete_log_group(logGroupName="/radstream/t3/failures")
    client("athena").delete_work_group(WorkGroup="t3-analytics")
    client("elb").delete_load_balancer(LoadBalancerName="t3-classic")
    client("elbv2").delete_load_balancer(LoadBalancerArn=made["nlb"])
    client("elbv2").delete_target_group(TargetGroupArn=made["target_group"])
    client("ec2").delete_security_group(GroupId=made["security_group"])
    client("glue").delete_database(Name="t3_analytics")
    client("events").delete_rule(Name="t3-image-uploaded")
    client("s3").delete_bucket(Bucket="t3-images-123456789012")
    # As on AWS, the tagging API still answers them: only the services' own reads know better.
    assert tagged_arns(client, "t3") == listed
    assert {r["service"] for r in deployment_resources(client, "t3")} == {"iam", "kinesis", "ecr", "lambda", "sqs"}


def test_the_tagging_lag_keeps_the_tag_filter_and_is_off_at_zero(client, tagging_lag, monkeypatch):
    from radstream.sandbox.tagging_lag import WINDOW_ENV

    make_network_resources(client, "t4")
    client("logs").delete_log_group(logGroupName="/radstream/t4/failures")
    arn = f"arn:aws:logs:{REGION}:123456789012:log-group:/radstream/t4/failures"
    assert any(a.startswith(arn) for a in tagged_arns(client, "t4"))
    assert not any(a.startswith(arn) for a in tagged_arns(client, "other"))  # the tag filter still applies
    monkeypatch.setenv(WINDOW_ENV, "0")
    client("athena").delete_work_group(WorkGroup="t4-analytics")
    assert not any(":workgroup/" in a for a in tagged_arns(client, "t4"))


def test_a_terminated_node_instance_is_not_a_leftover_and_a_running_one_is(client):
    # The nodegroup's instances carry the deployment's tag (its launch template tags them); EC2 keeps
    # listing a terminated one for about an hour.
    ec2 = client("ec2")
    launched = ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2, TagSpecifications=[
        {"ResourceType": "instance", "Tags": tag_list("t9")}])["Instances"]
    gone, running = (i["InstanceId"] for i in launched)
    ec2.terminate_instances(InstanceIds=[gone])
    found = {r["arn"].rsplit("/", 1)[1] for r in deployment_resources(client, "t9") if ":instance/" in r["arn"]}
    assert found == {running}
