"""The private path against moto: the created network, its idempotence, adopted subnets refused
when unfit, and teardown in reverse order."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from radstream.aws import network
from radstream.errors import RadstreamError
from tests.support.aws import record_mutations

REGION, DEPLOYMENT = "us-east-1", "rs-net"
TAGS = {"radstream:deployment": DEPLOYMENT, "radstream:phase": "0"}


@pytest.fixture
def ec2(monkeypatch):
    from radstream.sandbox import vpc_parity

    # NAT gateways stay "deleting" and Lambda's ENIs linger, as on AWS, but briefly.
    monkeypatch.setenv(vpc_parity.NAT_ENV, "0.2")
    monkeypatch.setenv(vpc_parity.ENI_ENV, "0.2")
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def no_wait(description, predicate, timeout, interval=2.0, max_interval=None):
    """ctx.wait, polling fast for at most 5 s."""
    import time

    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, description
        time.sleep(0.05)


def layout(ec2, nat: bool = True) -> network.Layout:
    return network.Layout(DEPLOYMENT, REGION, "10.42.0.0/16", network.choose_zones(ec2, "t3.medium", 2), nat)


def test_zones_leave_out_the_zone_eks_refuses(ec2):
    zone_ids = {z["ZoneName"]: z["ZoneId"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    chosen = network.choose_zones(ec2, "t3.medium", 3)
    assert len(chosen) == 3 and "use1-az3" not in {zone_ids[z] for z in chosen}
    with pytest.raises(RadstreamError, match="network.zones"):
        network.choose_zones(ec2, "t3.medium", 6)


def test_created_network_is_private_and_a_second_ensure_changes_nothing(ec2):
    wanted = layout(ec2)
    assert {kind for kind, _, drift in network.network_drift(ec2, wanted, TAGS) if "missing" in drift} >= {
        "vpc", "subnet", "nat gateway", "vpc endpoint", "security group"}
    vpc_id = network.ensure_network(ec2, wanted, TAGS, no_wait)
    assert [d for d in network.network_drift(ec2, wanted, TAGS) if d[2]] == []
    subnets = network.created_subnets(ec2, wanted)
    assert sorted(subnets.values()) == sorted(wanted.zones)
    # Private: their route table sends 0.0.0.0/0 to the NAT gateway, never to the internet gateway.
    assert network.check_adopted(ec2, list(subnets), needed_ips=100) == subnets
    nat = ec2.describe_nat_gateways()["NatGateways"][0]
    assert nat["SubnetId"] not in subnets and nat["VpcId"] == vpc_id
    endpoints = {e["ServiceName"]: e["VpcEndpointType"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]}
    assert endpoints == {f"com.amazonaws.{REGION}.s3": "Gateway", f"com.amazonaws.{REGION}.kinesis-streams": "Interface"}
    lambda_group = ec2.describe_security_groups(GroupIds=[network.group_id(ec2, vpc_id, f"{DEPLOYMENT}-lambda")])
    rules = lambda_group["SecurityGroups"][0]
    assert rules["IpPermissions"] == []
    assert network.ANYWHERE not in str(rules["IpPermissionsEgress"])
    allowed = {(p["FromPort"], r.get("CidrIp") or r.get("PrefixListId")) for p in rules["IpPermissionsEgress"]
               for r in p.get("IpRanges", []) + p.get("PrefixListIds", [])}
    s3 = network.s3_prefix_list(ec2, REGION)
    assert allowed == {(80, "10.42.0.0/16"), (443, "10.42.0.0/16"), (8000, "10.42.0.0/16"), (443, s3)}
    mutations = record_mutations(ec2)
    assert network.ensure_network(ec2, wanted, TAGS, no_wait) == vpc_id
    assert mutations == []


def test_dns_hostnames_left_off_by_a_stopped_run_are_drift_and_repaired(ec2):
    # A run killed between CreateVpc and ModifyVpcAttribute: the VPC exists, private DNS cannot work.
    wanted = layout(ec2)
    vpc_id = network.ensure_network(ec2, wanted, TAGS, no_wait)
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})
    assert ("vpc", f"{DEPLOYMENT}-vpc", ["EnableDnsHostnames"]) in network.network_drift(ec2, wanted, TAGS)
    network.ensure_network(ec2, wanted, TAGS, no_wait)
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"]
    assert [d for d in network.network_drift(ec2, wanted, TAGS) if d[2]] == []


def test_no_internet_egress_has_endpoints_and_no_nat_and_removes_one(ec2):
    network.ensure_network(ec2, layout(ec2, nat=True), TAGS, no_wait)
    private = layout(ec2, nat=False)
    assert {("nat gateway", "remove"), ("internet gateway", "remove")} <= {
        (kind, d) for kind, _, drift in network.network_drift(ec2, private, TAGS) for d in drift}
    network.ensure_network(ec2, private, TAGS, no_wait)
    assert [d for d in network.network_drift(ec2, private, TAGS) if d[2]] == []
    assert [g for g in ec2.describe_nat_gateways()["NatGateways"] if g["State"] != "deleted"] == []
    assert ec2.describe_internet_gateways(Filters=[{"Name": "tag:radstream:deployment",
                                                    "Values": [DEPLOYMENT]}])["InternetGateways"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    services = {e["ServiceName"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"] != "deleted"}
    assert services == {f"com.amazonaws.{REGION}.{s}" for s in ("s3", "kinesis-streams", *network.NODE_ENDPOINTS)}


def test_adopted_subnets_are_refused_when_public_single_zone_or_full(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    public = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{8 + i}.0/24", AvailabilityZone=f"us-east-1{z}")
              ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public[1])
    with pytest.raises(RadstreamError, match=f"{public[1]} is public") as refused:
        network.check_adopted(ec2, public, needed_ips=10)
    assert public[0] not in str(refused.value)  # the main route table has no internet route
    one = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/28", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    two = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/28", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    with pytest.raises(RadstreamError, match="1 zone.*free addresses"):
        network.check_adopted(ec2, [one, two], needed_ips=40)
    with pytest.raises(RadstreamError, match="network.subnet_ids"):
        network.check_adopted(ec2, ["subnet-00000000000000000"], needed_ips=1)


def test_delete_goes_in_reverse_and_is_quiet_when_gone(ec2):
    vpc_id = network.ensure_network(ec2, layout(ec2), TAGS, no_wait)
    network.delete_network(ec2, DEPLOYMENT, no_wait)
    assert ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"] == []
    assert ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert [e for e in ec2.describe_vpc_endpoints()["VpcEndpoints"] if e["State"] != "deleted"] == []
    mutations = record_mutations(ec2)
    network.delete_network(ec2, DEPLOYMENT, no_wait)
    assert mutations == []


def _function_in(vpc_id: str, ec2) -> str:
    """A function with the Lambdas' security group in the private subnets; its name."""
    import io
    import json
    import zipfile

    iam, lam = boto3.client("iam", region_name=REGION), boto3.client("lambda", region_name=REGION)
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
               if "-private-" in str(s.get("Tags"))]
    lam.create_function(FunctionName=f"{DEPLOYMENT}-fn", Runtime="python3.12", Role=role["Role"]["Arn"],
                        Handler="handler.handler", Code={"ZipFile": code.getvalue()},
                        VpcConfig={"SubnetIds": subnets,
                                   "SecurityGroupIds": [network.group_id(ec2, vpc_id, f"{DEPLOYMENT}-lambda")]})
    return f"{DEPLOYMENT}-fn"


def test_teardown_right_after_the_functions_waits_for_their_enis(ec2, monkeypatch):
    from radstream.sandbox import vpc_parity

    # Longer than the NAT gateway's deletion, so the ENIs are still there when the groups go.
    monkeypatch.setenv(vpc_parity.ENI_ENV, "1.5")
    vpc_id = network.ensure_network(ec2, layout(ec2), TAGS, no_wait)
    name = _function_in(vpc_id, ec2)
    enis = [e for e in ec2.describe_network_interfaces()["NetworkInterfaces"] if name in e.get("Description", "")]
    assert len(enis) == 2 and {e["InterfaceType"] for e in enis} == {"lambda"}
    boto3.client("lambda", region_name=REGION).delete_function(FunctionName=name)

    waited = []

    def recording_wait(description, predicate, timeout, **pace):
        waited.append(description)
        no_wait(description, predicate, timeout, **pace)

    network.delete_network(ec2, DEPLOYMENT, recording_wait)
    assert any("network interface(s)" in w for w in waited)
    assert ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"] == []
    assert ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkInterfaces"] == []


def test_without_the_eni_wait_teardown_meets_dependency_violation(ec2, monkeypatch):
    # What the wait above is for: EC2 (and the sandbox, vpc_parity) refuses the Lambdas' security
    # group while the deleted function's ENIs linger.
    from radstream.sandbox import vpc_parity

    monkeypatch.setenv(vpc_parity.ENI_ENV, "30")
    vpc_id = network.ensure_network(ec2, layout(ec2), TAGS, no_wait)
    boto3.client("lambda", region_name=REGION).delete_function(FunctionName=_function_in(vpc_id, ec2))
    monkeypatch.setattr(network, "wait_interfaces_released", lambda *args, **kwargs: None)
    with pytest.raises(Exception, match="DependencyViolation"):
        network.delete_network(ec2, DEPLOYMENT, no_wait)


@pytest.mark.parametrize("nat", [True, False])
def test_the_door_gets_a_public_subnet_per_zone_and_closing_it_keeps_only_what_egress_needs(ec2, nat):
    import dataclasses

    door = dataclasses.replace(layout(ec2, nat=nat), door=True)
    network.ensure_network(ec2, door, TAGS, no_wait)
    public = network.created_public_subnets(ec2, door)
    assert public is not None and len(public) == len(door.zones)
    # Public: each routes to the internet gateway (an internet-facing load balancer needs it), in every zone.
    assert network.check_adopted_public(ec2, public, network.vpc_of(ec2, public)["VpcId"]) == public
    assert [d for d in network.network_drift(ec2, door, TAGS) if d[2]] == []

    closed = dataclasses.replace(door, door=False)
    assert {name for kind, name, drift in network.network_drift(ec2, closed, TAGS) if "remove" in drift} >= {
        f"{DEPLOYMENT}-public-{door.zones[1]}"}
    network.ensure_network(ec2, closed, TAGS, no_wait)
    assert [d for d in network.network_drift(ec2, closed, TAGS) if d[2]] == []
    left = network.created_public_subnets(ec2, closed)
    # The NAT gateway's subnet stays (the same one the door used in the first zone); without egress none.
    assert set(left) <= set(public) and len(left) == (1 if nat else 0)
    assert bool(ec2.describe_internet_gateways(
        Filters=[{"Name": "tag:radstream:deployment", "Values": [DEPLOYMENT]}])["InternetGateways"]) == nat


def test_adopted_door_subnets_must_be_public_and_in_two_zones(ec2):
    wanted = layout(ec2)
    network.ensure_network(ec2, wanted, TAGS, no_wait)
    private = sorted(network.created_subnets(ec2, wanted))
    vpc_id = network.vpc_of(ec2, private)["VpcId"]
    with pytest.raises(RadstreamError, match="no route to an internet gateway"):
        network.check_adopted_public(ec2, private, vpc_id)
    single = network.created_public_subnets(ec2, wanted)
    with pytest.raises(RadstreamError, match="one zone"):
        network.check_adopted_public(ec2, single, vpc_id)
