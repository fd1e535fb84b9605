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
    subnets = [s["SubnetId"] for s in client("ec2").describe_subnets()["Subnets"]][:2]
    client("eks").create_cluster(name=f"{deployment}-cluster", roleArn=role, resourcesVpcConfig={"subnetIds": subnets},
                                 tags=tags(deployment) if deployment == "t1" else {})


def test_finds_exactly_this_deployments_resources(client):
    make_resources(client, "t1")
    make_resources(client, "t2")
    found = deployment_resources(client, "t1")
    assert all("t1" in r["arn"] and "t2" not in r["arn"] for r in found), found
    assert sorted(r["service"] for r in found) == sorted(
        ["iam", "s3", "kinesis", "ecr", "events", "glue", "lambda", "eks"])
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
    assert deployment_resources(client, "t1") == []
