"""The live cost inventory (radstream.aws.costing) against in-process moto: only what is tagged for
this deployment or its cluster is counted, and each count says where it was read."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from radstream.aws.costing import deployment_costs, live_inventory

REGION = "us-east-1"
OURS = [{"Key": "radstream:deployment", "Value": "rs-c"}]


@pytest.fixture
def client():
    with mock_aws():
        clients: dict = {}
        yield lambda service: clients.setdefault(service, boto3.client(service, region_name=REGION))


def inventory(client) -> dict:
    return live_inventory(client, deployment="rs-c", cluster="rs-c-cluster", stream="rs-c-telemetry",
                          buckets=["rs-c-images"], repository="rs-c-triton")


def test_nothing_deployed_is_an_empty_inventory(client):
    found = inventory(client)
    assert not found.get("clusters") and found["load_balancers"] == [] and found["buckets"] == []
    assert found["nat_gateways"] == 0 and found["vpc_endpoints"] == 0 and found["public_ipv4"] == 0
    assert "kinesis_shards" not in found


def test_tagged_nat_gateways_endpoints_and_load_balancers_are_counted_and_others_not(client):
    ec2 = client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    for tags in (OURS, [{"Key": "radstream:deployment", "Value": "other"}]):
        address = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=address,
                               TagSpecifications=[{"ResourceType": "natgateway", "Tags": tags}])
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.ecr.api", VpcEndpointType="Interface",
                                SubnetIds=subnets, TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": tags}])
    elb = client("elb")
    listeners = [{"Protocol": "TCP", "LoadBalancerPort": 80, "InstancePort": 30080}]
    elb.create_load_balancer(LoadBalancerName="ours", Listeners=listeners, AvailabilityZones=["us-east-1a"],
                             Tags=[{"Key": "kubernetes.io/cluster/rs-c-cluster", "Value": "owned"},
                                   {"Key": "kubernetes.io/service-name", "Value": "radstream/triton-svc"}])
    elb.create_load_balancer(LoadBalancerName="theirs", Listeners=listeners, AvailabilityZones=["us-east-1a"],
                             Tags=[{"Key": "kubernetes.io/cluster/another", "Value": "owned"}])
    found = inventory(client)
    assert found["nat_gateways"] == 1 and found["public_ipv4"] == 1  # the NAT gateway's address bills too
    assert found["vpc_endpoints"] == 2  # one endpoint, a network interface in each of two zones
    assert [(lb["name"], lb["kind"], lb["service"]) for lb in found["load_balancers"]] == [
        ("ours", "clb", "radstream/triton-svc")]
    assert "DescribeNatGateways" in found["sources"]["nat_gateways"]


def test_deployment_costs_follow_every_page_filtered_by_the_deployment_tag(client):
    from datetime import date

    from moto.moto_api._internal.models import moto_api_backend

    def page(start: str, token: str | None = None) -> dict:
        result = {"ResultsByTime": [{"TimePeriod": {"Start": start, "End": "2025-03-03"}, "Groups": []}]}
        return result | ({"NextPageToken": token} if token else {})

    moto_api_backend.set_ce_cost_usage(page("2025-03-01", "p2"), "123456789012")
    moto_api_backend.set_ce_cost_usage(page("2025-03-02"), "123456789012")
    ce, requests = client("ce"), []
    ce.meta.events.register("provide-client-params.ce.GetCostAndUsage", lambda params, **_: requests.append(dict(params)))
    results = deployment_costs(ce, "rs-c", date(2025, 3, 1), date(2025, 3, 3), "DAILY")
    assert [r["TimePeriod"]["Start"] for r in results] == ["2025-03-01", "2025-03-02"]
    assert [r.get("NextPageToken") for r in requests] == [None, "p2"]
    assert all(r["Filter"] == {"Tags": {"Key": "radstream:deployment", "Values": ["rs-c"], "MatchOptions": ["EQUALS"]}}
               and r["TimePeriod"] == {"Start": "2025-03-01", "End": "2025-03-03"} for r in requests)
