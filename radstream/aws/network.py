"""The private path: the deployment's own VPC, or subnets the user names, so radiographs never cross
the internet.

Created (network.mode create): a VPC over two or more zones EKS and the node type can use, one private
subnet per zone for the nodes and the Lambdas, and the cheapest egress that works: one NAT gateway
(in the only public subnet, with an Elastic IP and an internet gateway), or none at all
(no_internet_egress) with interface endpoints for what nodes call instead. Either way an S3 gateway
endpoint (free; S3 traffic never reaches the NAT) and a Kinesis interface endpoint: the Lambdas'
security group has no rule to 0.0.0.0/0, so their telemetry needs a private way to Kinesis.

Every piece is found by its Name tag among the resources tagged radstream:deployment=<id>; the
Lambdas' security group is also made for an adopted network (it is theirs, not the network's).
Deleted in reverse order; subnets and security groups only once the ENIs in them are gone (Lambda's
stay minutes after their function, and EC2 refuses with DependencyViolation meanwhile)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from radstream.aws import error_code, unless_absent
from radstream.aws.tags import from_list, missing, to_list
from radstream.errors import RadstreamError
from radstream.names import TAG_DEPLOYMENT

Wait = Callable[..., Any]
ANYWHERE = "0.0.0.0/0"
# What nodes call without internet egress: images from ECR (api for the token and manifests, dkr
# for the registry; layers come from S3, the gateway endpoint), STS for IAM roles of service
# accounts, EC2 for the VPC CNI's ENIs and addresses, CloudWatch Logs for node and pod logs.
NODE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts", "ec2", "logs")
# What the Lambdas call besides S3: PutRecord of send-telemetry.
LAMBDA_ENDPOINTS = ("kinesis-streams",)
# The Lambdas reach the interface endpoints and the (TLS) load balancer on 443, Triton's plain HTTP
# listener on 80 and its pods on 8000: all inside the VPC.
LAMBDA_PORTS = (80, 443, 8000)
# Lambda's hyperplane ENIs stay for minutes after their function is gone (up to 20 on AWS).
ENI_RELEASE_TIMEOUT_S = 1800
NAT_DELETE_TIMEOUT_S = 900
# Polls start short (the sandbox's lags are a second) and back off (AWS's take minutes).
POLL = {"interval": 0.5, "max_interval": 15.0}
# Free addresses each adopted subnet must have beyond the nodes' (Lambda ENIs, load balancer nodes).
SPARE_IPS = 16


@dataclass(frozen=True)
class Layout:
    """The network network.mode create makes: pure, so `plan` and `render` show it before it exists."""

    deployment: str
    region: str
    cidr: str
    zones: tuple[str, ...]
    nat: bool  # False: no_internet_egress
    door: bool = False  # expose.public: the door's load balancer needs a public subnet in every zone

    def _blocks(self) -> list[str]:
        network = ipaddress.ip_network(self.cidr)
        return [str(b) for b in network.subnets(new_prefix=network.prefixlen + 4)]

    def private(self) -> dict[str, tuple[str, str]]:
        """Subnet name -> (zone, CIDR): the first blocks, one per zone."""
        return {f"{self.deployment}-private-{z}": (z, self._blocks()[i]) for i, z in enumerate(self.zones)}

    def public(self) -> dict[str, tuple[str, str]]:
        """One per zone for the public door; else the NAT gateway's, the first zone's (none without
        internet egress). The first zone's is the same subnet either way."""
        zones = self.zones if self.door else self.zones[:1] if self.nat else ()
        return {f"{self.deployment}-public-{z}": (z, self._blocks()[8 + i]) for i, z in enumerate(zones)}

    def interface_services(self) -> tuple[str, ...]:
        return LAMBDA_ENDPOINTS if self.nat else NODE_ENDPOINTS + LAMBDA_ENDPOINTS

    def name(self, piece: str) -> str:
        return f"{self.deployment}-{piece}"

    def service(self, short: str) -> str:
        return f"com.amazonaws.{self.region}.{short}"


def choose_zones(ec2: Any, instance_type: str, count: int) -> tuple[str, ...]:
    """The first `count` zones of the region that EKS and `instance_type` can use."""
    from radstream.aws.eks import unusable_zones

    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones(
        Filters=[{"Name": "zone-type", "Values": ["availability-zone"]},
                 {"Name": "state", "Values": ["available"]}])["AvailabilityZones"])
    unusable = unusable_zones(ec2, zones, instance_type)
    usable = [z for z in zones if z not in unusable]
    if len(usable) < count:
        raise RadstreamError(f"network.zones is {count}, and only {len(usable)} zone(s) of this region can hold EKS "
                             f"and {instance_type}: " + ("; ".join(unusable.values()) or "the region has fewer"),
                             hint="lower network.zones (2 at least), or another nodegroup.instance_type")
    return tuple(usable[:count])


# -- finding our pieces --------------------------------------------------------------------------
_KINDS = {  # kind -> (describe operation, result key, id key)
    "vpc": ("describe_vpcs", "Vpcs", "VpcId"),
    "subnet": ("describe_subnets", "Subnets", "SubnetId"),
    "internet gateway": ("describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
    "route table": ("describe_route_tables", "RouteTables", "RouteTableId"),
    "elastic ip": ("describe_addresses", "Addresses", "AllocationId"),
    "nat gateway": ("describe_nat_gateways", "NatGateways", "NatGatewayId"),
    "vpc endpoint": ("describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId"),
    "security group": ("describe_security_groups", "SecurityGroups", "GroupId"),
}
_GONE_STATES = {"deleted", "deleting", "failed", "Deleted", "Deleting", "Failed"}


def _ours(ec2: Any, kind: str, deployment: str, *, settling: bool = False) -> dict[str, dict[str, Any]]:
    """Name tag -> resource of this deployment. The tag is checked here too: moto's
    DescribeNatGateways ignores tag filters. NAT gateways and endpoints being deleted count only
    when `settling` (teardown waits for them)."""
    operation, key, _ = _KINDS[kind]
    items = getattr(ec2, operation)(Filters=[{"Name": f"tag:{TAG_DEPLOYMENT}", "Values": [deployment]}])[key]
    found = {}
    for item in items:
        tags = from_list(item.get("Tags", []))
        state = item.get("State") or ""
        if tags.get(TAG_DEPLOYMENT) == deployment and (settling and state not in ("deleted", "Deleted", "failed")
                                                       or state not in _GONE_STATES):
            found[tags.get("Name", item[_KINDS[kind][2]])] = item
    return found


def _id(kind: str, resource: dict[str, Any]) -> str:
    return str(resource[_KINDS[kind][2]])


def _tag_spec(kind: str, name: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": to_list({**tags, "Name": name})}]


def _tag_drift(resource: dict[str, Any], name: str, tags: dict[str, str]) -> list[str]:
    return ["tags"] if missing(from_list(resource.get("Tags", [])), {**tags, "Name": name}) else []


def s3_prefix_list(ec2: Any, region: str) -> str:
    """The AWS-managed prefix list of S3 in the region (what the S3 gateway endpoint routes)."""
    lists = ec2.describe_prefix_lists(Filters=[{"Name": "prefix-list-name",
                                                "Values": [f"com.amazonaws.{region}.s3"]}])["PrefixLists"]
    if not lists:
        raise RadstreamError(f"EC2 lists no S3 prefix list in {region}")
    return str(lists[0]["PrefixListId"])


# -- the security groups' rules (documents: render writes them) --------------------------------------
def lambda_egress(cidr: str, s3_prefix: str) -> list[dict[str, Any]]:
    """IpPermissions of the Lambdas' security group, egress only: the VPC and S3, nothing else."""
    rules = [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "IpRanges": [{"CidrIp": cidr}]} for p in LAMBDA_PORTS]
    return rules + [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": s3_prefix}]}]


def endpoint_ingress(cidr: str) -> list[dict[str, Any]]:
    """IpPermissions of the interface endpoints' security group: HTTPS from inside the VPC."""
    return [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": cidr}]}]


def _rule_keys(permissions: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    keys = set()
    for p in permissions:
        port = (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"))
        keys |= {(*port, r["CidrIp"]) for r in p.get("IpRanges", [])}
        keys |= {(*port, r["PrefixListId"]) for r in p.get("PrefixListIds", [])}
    return keys


@dataclass(frozen=True)
class Group:
    name: str
    description: str
    ingress: list[dict[str, Any]]
    egress: list[dict[str, Any]]


def groups(cidr: str, deployment: str, s3_prefix: str, endpoints: bool) -> list[Group]:
    """The Lambdas' security group, and the interface endpoints' one when the network has endpoints."""
    found = [Group(f"{deployment}-lambda", "RadStream Lambdas: egress to the VPC and S3 only", [],
                   lambda_egress(cidr, s3_prefix))]
    if endpoints:
        found.append(Group(f"{deployment}-endpoints", "RadStream interface endpoints: HTTPS from the VPC",
                           endpoint_ingress(cidr), []))
    return found


def _group_drift(ec2: Any, group: dict[str, Any], wanted: Group, tags: dict[str, str]) -> list[str]:
    drift = _tag_drift(group, wanted.name, tags)
    if _rule_keys(group.get("IpPermissions", [])) != _rule_keys(wanted.ingress) or \
            _rule_keys(group.get("IpPermissionsEgress", [])) != _rule_keys(wanted.egress):
        drift.append("rules")
    return drift


def _ensure_group(ec2: Any, vpc_id: str, existing: dict[str, Any] | None, wanted: Group,
                  tags: dict[str, str]) -> str:
    if existing is None:
        group_id = ec2.create_security_group(GroupName=wanted.name, Description=wanted.description, VpcId=vpc_id,
                                             TagSpecifications=_tag_spec("security-group", wanted.name, tags))["GroupId"]
        existing = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    group_id = existing["GroupId"]
    if _tag_drift(existing, wanted.name, tags):
        ec2.create_tags(Resources=[group_id], Tags=to_list({**tags, "Name": wanted.name}))
    # A new group allows all egress: replaced by the wanted rules (revoking everything else).
    for direction, current, desired in (("ingress", existing.get("IpPermissions", []), wanted.ingress),
                                        ("egress", existing.get("IpPermissionsEgress", []), wanted.egress)):
        if _rule_keys(current) == _rule_keys(desired):
            continue
        revoke = ec2.revoke_security_group_ingress if direction == "ingress" else ec2.revoke_security_group_egress
        authorize = ec2.authorize_security_group_ingress if direction == "ingress" \
            else ec2.authorize_security_group_egress
        if current:
            revoke(GroupId=group_id, IpPermissions=[{k: v for k, v in p.items() if k != "UserIdGroupPairs" or v}
                                                    for p in current])
        if desired:
            authorize(GroupId=group_id, IpPermissions=desired)
    return str(group_id)


# -- drift and repair ------------------------------------------------------------------------------
def _vpc(ec2: Any, layout: Layout) -> dict[str, Any] | None:
    return _ours(ec2, "vpc", layout.deployment).get(layout.name("vpc"))


def _dns_drift(ec2: Any, vpc_id: str) -> list[str]:
    """The VPC's DNS attributes that are off. Private DNS of the interface endpoints and EKS's private
    endpoint both need them; a new VPC has hostnames off, and a run stopped right after CreateVpc
    leaves them so."""
    return [a for a in ("EnableDnsSupport", "EnableDnsHostnames")
            if not ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=a[0].lower() + a[1:])[a]["Value"]]


def network_drift(ec2: Any, layout: Layout, tags: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """[(kind, name, drift)] of every piece of the created network; read-only."""
    vpc = _vpc(ec2, layout)
    dep = layout.deployment
    if vpc is None:
        return [("vpc", layout.name("vpc"), ["missing", layout.cidr])] + [
            (kind, name, ["missing", detail]) for kind, name, detail in _pieces(layout)]
    found: list[tuple[str, str, list[str]]] = [("vpc", layout.name("vpc"), _tag_drift(vpc, layout.name("vpc"), tags)
                                                 + _dns_drift(ec2, vpc["VpcId"]))]
    subnets, tables = _ours(ec2, "subnet", dep), _ours(ec2, "route table", dep)
    for name, (zone, cidr) in {**layout.private(), **layout.public()}.items():
        found.append(("subnet", name, _tag_drift(subnets[name], name, tags) if name in subnets
                      else ["missing", f"{cidr} in {zone}"]))
    gateways, nats = _ours(ec2, "internet gateway", dep), _ours(ec2, "nat gateway", dep)
    addresses, endpoints = _ours(ec2, "elastic ip", dep), _ours(ec2, "vpc endpoint", dep)
    if layout.public():
        igw = gateways.get(layout.name("igw"))
        found.append(("internet gateway", layout.name("igw"), ["missing"] if igw is None else
                      [] if any(a["VpcId"] == vpc["VpcId"] for a in igw.get("Attachments", [])) else ["attachment"]))
    else:  # nothing public any more: the internet gateway and the public route table go
        found += [("internet gateway", name, ["remove"]) for name in gateways]
        found += [("route table", name, ["remove"]) for name in tables if name == layout.name("public")]
    if layout.nat:
        found.append(("elastic ip", layout.name("nat-ip"), [] if layout.name("nat-ip") in addresses else ["missing"]))
        found.append(("nat gateway", layout.name("nat"), [] if layout.name("nat") in nats else ["missing"]))
    else:  # switched to no_internet_egress: the NAT gateway and its address go
        found += [(kind, name, ["remove"]) for kind, pieces in (("nat gateway", nats), ("elastic ip", addresses))
                  for name in pieces]
    found += [("subnet", name, ["remove"]) for name in subnets
              if name.startswith(f"{dep}-public-") and name not in layout.public()]
    for name, subnet_names, route in _tables(layout):
        table = tables.get(name)
        if table is None:
            found.append(("route table", name, ["missing"]))
            continue
        drift = _tag_drift(table, name, tags)
        if route and not _default_route(table, route, gateways, nats, layout):
            drift.append(f"route {ANYWHERE}")
        associated = {a.get("SubnetId") for a in table.get("Associations", [])}
        if {subnets[s]["SubnetId"] for s in subnet_names if s in subnets} - associated:
            drift.append("associations")
        found.append(("route table", name, drift))
    found += groups_drift(ec2, vpc["VpcId"], groups(layout.cidr, dep, s3_prefix_list(ec2, layout.region), True), tags)
    for name, service in _endpoints(layout):
        found.append(("vpc endpoint", name, [] if name in endpoints else ["missing", service]))
    return found


def _pieces(layout: Layout) -> list[tuple[str, str, str]]:
    """What a new network is made of, for the plan: (kind, name, detail)."""
    pieces = [("subnet", name, f"{cidr} in {zone}") for name, (zone, cidr) in {**layout.private(),
                                                                                **layout.public()}.items()]
    if layout.public():
        pieces.append(("internet gateway", layout.name("igw"), ""))
    if layout.nat:
        pieces += [("elastic ip", layout.name("nat-ip"), ""),
                   ("nat gateway", layout.name("nat"), f"in {next(iter(layout.public()))}")]
    pieces += [("route table", name, f"{len(subnets)} subnet(s)" + (f", {ANYWHERE} via {route}" if route else ""))
               for name, subnets, route in _tables(layout)]
    pieces += [("security group", g.name, f"{len(g.ingress)} ingress, {len(g.egress)} egress rule(s)")
               for g in groups(layout.cidr, layout.deployment, "(S3 prefix list)", True)]
    return pieces + [("vpc endpoint", name, service) for name, service in _endpoints(layout)]


def _tables(layout: Layout) -> list[tuple[str, list[str], str | None]]:
    """(route table name, its subnets' names, where 0.0.0.0/0 goes: "igw", "nat" or nowhere)."""
    tables = [(layout.name("private"), list(layout.private()), "nat" if layout.nat else None)]
    if layout.public():
        tables.append((layout.name("public"), list(layout.public()), "igw"))
    return tables


def _endpoints(layout: Layout) -> list[tuple[str, str]]:
    return [(layout.name("s3"), layout.service("s3"))] + [
        (layout.name(short.replace(".", "-")), layout.service(short)) for short in layout.interface_services()]


def _default_route(table: dict[str, Any], route: str, gateways: dict[str, Any], nats: dict[str, Any],
                   layout: Layout) -> bool:
    target = (gateways.get(layout.name("igw")) or {}).get("InternetGatewayId") if route == "igw" else \
        (nats.get(layout.name("nat")) or {}).get("NatGatewayId")
    return any(r.get("DestinationCidrBlock") == ANYWHERE and target in (r.get("GatewayId"), r.get("NatGatewayId"))
               for r in table.get("Routes", []))


def ensure_network(ec2: Any, layout: Layout, tags: dict[str, str], wait: Wait) -> str:
    """Create or repair the network; no mutating call when nothing drifted. The VPC's ID."""
    dep = layout.deployment
    vpc = _vpc(ec2, layout)
    if vpc is None:
        vpc = ec2.create_vpc(CidrBlock=layout.cidr, TagSpecifications=_tag_spec("vpc", layout.name("vpc"), tags))["Vpc"]
    elif _tag_drift(vpc, layout.name("vpc"), tags):
        ec2.create_tags(Resources=[vpc["VpcId"]], Tags=to_list({**tags, "Name": layout.name("vpc")}))
    vpc_id = vpc["VpcId"]
    for attribute in _dns_drift(ec2, vpc_id):
        ec2.modify_vpc_attribute(VpcId=vpc_id, **{attribute: {"Value": True}})
    subnets = _ours(ec2, "subnet", dep)
    for name, (zone, cidr) in {**layout.private(), **layout.public()}.items():
        if name not in subnets:
            extra = {"Key": "kubernetes.io/role/internal-elb" if "-private-" in name else "kubernetes.io/role/elb",
                     "Value": "1"}  # where the cloud controller puts the Service's load balancer
            spec = _tag_spec("subnet", name, tags)
            spec[0]["Tags"].append(extra)
            subnets[name] = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone,
                                              TagSpecifications=spec)["Subnet"]
        elif _tag_drift(subnets[name], name, tags):
            ec2.create_tags(Resources=[subnets[name]["SubnetId"]], Tags=to_list({**tags, "Name": name}))
    targets: dict[str, str] = {}
    if layout.public():
        targets["igw"] = _ensure_internet_gateway(ec2, layout, vpc_id, tags)
    if layout.nat:
        targets["nat"] = _ensure_nat(ec2, layout, subnets, tags, wait)
    else:
        _delete_nat(ec2, dep, wait)
    _delete_public(ec2, dep, keep=set(layout.public()))
    tables = _ours(ec2, "route table", dep)
    for name, subnet_names, route in _tables(layout):
        table = tables.get(name)
        if table is None:
            table = ec2.create_route_table(VpcId=vpc_id,
                                           TagSpecifications=_tag_spec("route-table", name, tags))["RouteTable"]
        elif _tag_drift(table, name, tags):
            ec2.create_tags(Resources=[table["RouteTableId"]], Tags=to_list({**tags, "Name": name}))
        if route and not any(r.get("DestinationCidrBlock") == ANYWHERE and targets[route] in
                             (r.get("GatewayId"), r.get("NatGatewayId")) for r in table.get("Routes", [])):
            key = "GatewayId" if route == "igw" else "NatGatewayId"
            if any(r.get("DestinationCidrBlock") == ANYWHERE for r in table.get("Routes", [])):
                ec2.replace_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock=ANYWHERE,
                                  **{key: targets[route]})
            else:
                ec2.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock=ANYWHERE,
                                 **{key: targets[route]})
        associated = {a.get("SubnetId") for a in table.get("Associations", [])}
        for subnet in subnet_names:
            if subnets[subnet]["SubnetId"] not in associated:
                ec2.associate_route_table(RouteTableId=table["RouteTableId"], SubnetId=subnets[subnet]["SubnetId"])
        tables[name] = table
    ensure_groups(ec2, vpc_id, groups(layout.cidr, dep, s3_prefix_list(ec2, layout.region), True), tags)
    _ensure_endpoints(ec2, layout, vpc_id, subnets, tables[layout.name("private")]["RouteTableId"], tags)
    return str(vpc_id)


def _ensure_internet_gateway(ec2: Any, layout: Layout, vpc_id: str, tags: dict[str, str]) -> str:
    igw = _ours(ec2, "internet gateway", layout.deployment).get(layout.name("igw"))
    if igw is None:
        igw = ec2.create_internet_gateway(
            TagSpecifications=_tag_spec("internet-gateway", layout.name("igw"), tags))["InternetGateway"]
    if not any(a["VpcId"] == vpc_id for a in igw.get("Attachments", [])):
        ec2.attach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc_id)
    return str(igw["InternetGatewayId"])


def _ensure_nat(ec2: Any, layout: Layout, subnets: dict[str, Any], tags: dict[str, str], wait: Wait) -> str:
    dep = layout.deployment
    address = _ours(ec2, "elastic ip", dep).get(layout.name("nat-ip"))
    if address is None:
        address = ec2.allocate_address(Domain="vpc",
                                       TagSpecifications=_tag_spec("elastic-ip", layout.name("nat-ip"), tags))
    nat = _ours(ec2, "nat gateway", dep).get(layout.name("nat"))
    if nat is None:
        nat = ec2.create_nat_gateway(SubnetId=subnets[next(iter(layout.public()))]["SubnetId"],
                                     AllocationId=address["AllocationId"],
                                     TagSpecifications=_tag_spec("natgateway", layout.name("nat"), tags))["NatGateway"]
    if nat["State"] != "available":
        nat_id = nat["NatGatewayId"]
        wait(f"NAT gateway {nat_id} available", lambda nat_id=nat_id: _nat_state(ec2, nat_id) == "available",
             timeout=NAT_DELETE_TIMEOUT_S, **POLL)
    return str(nat["NatGatewayId"])


def _nat_state(ec2: Any, nat_id: str) -> str | None:
    found = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
    if found and found[0]["State"] == "failed":
        raise RadstreamError(f"NAT gateway {nat_id} failed: {found[0].get('FailureMessage', '')}",
                             hint="run `radstream up` again")
    return found[0]["State"] if found else None


def _ensure_endpoints(ec2: Any, layout: Layout, vpc_id: str, subnets: dict[str, Any], private_table: str,
                      tags: dict[str, str]) -> None:
    existing = _ours(ec2, "vpc endpoint", layout.deployment)
    interface = {name: service for name, service in _endpoints(layout)[1:]}
    group_id = None
    if interface and any(name not in existing for name in interface):
        group_id = _ours(ec2, "security group", layout.deployment)[layout.name("endpoints")]["GroupId"]
    s3 = layout.name("s3")
    if s3 not in existing:
        ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=vpc_id, ServiceName=layout.service("s3"),
                                RouteTableIds=[private_table], TagSpecifications=_tag_spec("vpc-endpoint", s3, tags))
    private_subnets = [subnets[name]["SubnetId"] for name in layout.private()]
    for name, service in interface.items():
        if name not in existing:
            ec2.create_vpc_endpoint(VpcEndpointType="Interface", VpcId=vpc_id, ServiceName=service,
                                    SubnetIds=private_subnets, SecurityGroupIds=[group_id], PrivateDnsEnabled=True,
                                    TagSpecifications=_tag_spec("vpc-endpoint", name, tags))


def ensure_groups(ec2: Any, vpc_id: str, wanted: list[Group], tags: dict[str, str]) -> dict[str, str]:
    """Create or repair the security groups in the VPC; group name -> ID."""
    existing = {g["GroupName"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": f"tag:{TAG_DEPLOYMENT}",
                                                          "Values": [tags[TAG_DEPLOYMENT]]}])["SecurityGroups"]}
    return {g.name: _ensure_group(ec2, vpc_id, existing.get(g.name), g, tags) for g in wanted}


def groups_drift(ec2: Any, vpc_id: str | None, wanted: list[Group],
                 tags: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    existing = {} if vpc_id is None else {g["GroupName"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]}
    return [("security group", g.name, _group_drift(ec2, existing[g.name], g, tags) if g.name in existing
             else ["missing", f"{len(g.ingress)} ingress, {len(g.egress)} egress rule(s)"]) for g in wanted]


# -- what the cluster, nodes and Lambdas use -------------------------------------------------------
def created_subnets(ec2: Any, layout: Layout) -> dict[str, str] | None:
    """Private subnet ID -> zone of the created network; None before it is complete."""
    subnets = _ours(ec2, "subnet", layout.deployment)
    if any(name not in subnets for name in layout.private()):
        return None
    return {subnets[name]["SubnetId"]: zone for name, (zone, _) in layout.private().items()}


def created_public_subnets(ec2: Any, layout: Layout) -> list[str] | None:
    """The public subnets' IDs (the door's load balancer goes in them); None before they exist."""
    subnets = _ours(ec2, "subnet", layout.deployment)
    if any(name not in subnets for name in layout.public()):
        return None
    return sorted(subnets[name]["SubnetId"] for name in layout.public())


def _routes_to_internet(tables: list[dict[str, Any]], subnet_id: str) -> bool:
    main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    table = next((t for t in tables if any(a.get("SubnetId") == subnet_id for a in t.get("Associations", []))), main)
    return table is not None and any(str(r.get("GatewayId", "")).startswith("igw-") for r in table.get("Routes", []))


def _named_subnets(ec2: Any, subnet_ids: list[str], setting: str) -> list[dict[str, Any]]:
    """The subnets a setting names; a clear error naming the setting when one does not exist."""
    try:
        return list(ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"])
    except Exception as exc:
        if error_code(exc) not in ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"):
            raise
        raise RadstreamError(f"{setting}: {exc}", hint="name existing subnets of this region") from None


def check_adopted_public(ec2: Any, subnet_ids: list[str], vpc_id: str) -> list[str]:
    """The door's subnets the user named, refused unless they exist in the cluster's VPC, span two
    zones (an application load balancer needs two) and route to an internet gateway."""
    subnets = _named_subnets(ec2, subnet_ids, "network.public_subnet_ids")
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    problems = [f"{s['SubnetId']} is in {s['VpcId']}, not the cluster's {vpc_id}" for s in subnets
                if s["VpcId"] != vpc_id]
    if len({s["AvailabilityZone"] for s in subnets}) < 2:
        problems.append("they span one zone, an application load balancer needs two")
    problems += [f"{s['SubnetId']} has no route to an internet gateway" for s in subnets
                 if not _routes_to_internet(tables, s["SubnetId"])]
    if problems:
        raise RadstreamError("network.public_subnet_ids cannot be used: " + "; ".join(problems),
                             hint="name public subnets of the cluster's VPC in two zones or more")
    return sorted(subnet_ids)


def vpc_of(ec2: Any, subnet_ids: list[str]) -> dict[str, Any]:
    """The VPC holding the subnets (which must all be in one)."""
    vpcs = {s["VpcId"] for s in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
    if len(vpcs) != 1:
        raise RadstreamError(f"subnets {', '.join(subnet_ids)} are in {len(vpcs)} VPCs, not one",
                             hint="name subnets of one VPC in network.subnet_ids")
    return ec2.describe_vpcs(VpcIds=list(vpcs))["Vpcs"][0]


def group_id(ec2: Any, vpc_id: str, name: str) -> str | None:
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                  {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    return found[0]["GroupId"] if found else None


def check_adopted(ec2: Any, subnet_ids: list[str], needed_ips: int) -> dict[str, str]:
    """Subnet ID -> zone of subnets the user named, refused unless they exist, span two zones, are
    private (no route to an internet gateway) and have the free addresses the nodes and Lambdas need."""
    subnets = _named_subnets(ec2, subnet_ids, "network.subnet_ids")
    problems = []
    zones = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
    if len(set(zones.values())) < 2:
        problems.append(f"they span {len(set(zones.values()))} zone(s), EKS needs two")
    vpc_id = vpc_of(ec2, subnet_ids)["VpcId"]
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    problems += [f"{s['SubnetId']} is public (its route table routes to an internet gateway)" for s in subnets
                 if _routes_to_internet(tables, s["SubnetId"])]
    free = sum(s["AvailableIpAddressCount"] for s in subnets)
    if free < needed_ips + SPARE_IPS * len(subnets):
        problems.append(f"they have {free} free addresses, the nodes and Lambdas need "
                        f"{needed_ips + SPARE_IPS * len(subnets)}")
    if problems:
        raise RadstreamError("network.subnet_ids cannot be used: " + "; ".join(problems),
                             hint="name private subnets (no route to an internet gateway) in two zones or more, "
                                  "or set network.mode: create")
    return zones


# -- teardown --------------------------------------------------------------------------------------
def _interfaces(ec2: Any, vpc_id: str) -> list[dict[str, Any]]:
    return ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkInterfaces"]


def wait_interfaces_released(ec2: Any, vpc_id: str, wait: Wait, only_groups: set[str] | None = None) -> None:
    """Wait (bounded) until no ENI remains in the VPC, or none with one of `only_groups`: Lambda
    deletes its ENIs minutes after the function, and EC2 refuses the subnet or group until then."""
    def held() -> list[str]:
        return [e["NetworkInterfaceId"] for e in _interfaces(ec2, vpc_id)
                if only_groups is None or {g["GroupId"] for g in e.get("Groups", [])} & only_groups]

    if held():
        wait(f"{len(held())} network interface(s) in {vpc_id} released (Lambda keeps them minutes after "
             "its functions)", lambda: not held(), timeout=ENI_RELEASE_TIMEOUT_S, **POLL)


def delete_groups(ec2: Any, deployment: str, wait: Wait) -> None:
    """Delete the security groups groups() makes once no ENI uses them; quiet when gone. Another
    group carrying the deployment's tag is not ours to delete: teardown reports it as a leftover."""
    made = {g.name for g in groups("", deployment, "", True)}
    for name, group in _ours(ec2, "security group", deployment).items():
        if name not in made:
            continue
        wait_interfaces_released(ec2, group["VpcId"], wait, {group["GroupId"]})
        unless_absent(ec2.delete_security_group, "InvalidGroup.NotFound", GroupId=group["GroupId"])



def _delete_nat(ec2: Any, deployment: str, wait: Wait) -> None:
    """NAT gateway (waited for: its address stays in use while it is deleting) and its Elastic IP."""
    for nat in _ours(ec2, "nat gateway", deployment, settling=True).values():
        nat_id = nat["NatGatewayId"]
        if nat["State"] != "deleting":
            unless_absent(ec2.delete_nat_gateway, "NatGatewayNotFound", NatGatewayId=nat_id)
        wait(f"NAT gateway {nat_id} deleted", lambda nat_id=nat_id: _nat_state(ec2, nat_id) in (None, "deleted"),
             timeout=NAT_DELETE_TIMEOUT_S, **POLL)
    for address in _ours(ec2, "elastic ip", deployment).values():
        unless_absent(ec2.release_address, "InvalidAllocationID.NotFound", AllocationId=address["AllocationId"])


def _delete_public(ec2: Any, deployment: str, keep: set[str]) -> None:
    """The public subnets not in `keep`; with none kept, the internet gateway and public route table too."""
    if not keep:
        for igw in _ours(ec2, "internet gateway", deployment).values():
            for attachment in igw.get("Attachments", []):
                unless_absent(ec2.detach_internet_gateway, "Gateway.NotAttached",
                              InternetGatewayId=igw["InternetGatewayId"], VpcId=attachment["VpcId"])
            unless_absent(ec2.delete_internet_gateway, "InvalidInternetGatewayID.NotFound",
                          InternetGatewayId=igw["InternetGatewayId"])
        table = _ours(ec2, "route table", deployment).get(f"{deployment}-public")
        if table is not None:
            _delete_table(ec2, table)
    for name, subnet in _ours(ec2, "subnet", deployment).items():
        if name.startswith(f"{deployment}-public-") and name not in keep:
            try:
                unless_absent(ec2.delete_subnet, "InvalidSubnetID.NotFound", SubnetId=subnet["SubnetId"])
            except Exception as exc:
                # The door's load balancer still in it (phase 3 removes it after phase 0 runs): the
                # next `up` finds it as drift and removes it then.
                if error_code(exc) != "DependencyViolation" or not keep:
                    raise


def _delete_table(ec2: Any, table: dict[str, Any]) -> None:
    for association in table.get("Associations", []):
        if not association.get("Main"):
            unless_absent(ec2.disassociate_route_table, "InvalidAssociationID.NotFound",
                   AssociationId=association["RouteTableAssociationId"])
    unless_absent(ec2.delete_route_table, "InvalidRouteTableID.NotFound", RouteTableId=table["RouteTableId"])


def delete_network(ec2: Any, deployment: str, wait: Wait) -> None:
    """Everything ensure_network made, in reverse order; quiet when already gone."""
    endpoints = _ours(ec2, "vpc endpoint", deployment)
    if endpoints:
        ec2.delete_vpc_endpoints(VpcEndpointIds=[e["VpcEndpointId"] for e in endpoints.values()])
    _delete_nat(ec2, deployment, wait)
    _delete_public(ec2, deployment, keep=set())
    for table in _ours(ec2, "route table", deployment).values():
        _delete_table(ec2, table)
    delete_groups(ec2, deployment, wait)
    for vpc in _ours(ec2, "vpc", deployment).values():
        # The endpoints' and Lambdas' ENIs hold their subnets until released.
        wait_interfaces_released(ec2, vpc["VpcId"], wait)
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
            unless_absent(ec2.delete_subnet, "InvalidSubnetID.NotFound", SubnetId=subnet["SubnetId"])
        unless_absent(ec2.delete_vpc, "InvalidVpcID.NotFound", VpcId=vpc["VpcId"])
