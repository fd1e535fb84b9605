"""The public door: an internet-facing application load balancer (HTTPS only) in front of Triton's
HTTP API, made with boto3 alone (no in-cluster load balancer controller).

Traffic: client -443/TLS-> load balancer (its own security group: 443 from expose.allowed_cidrs,
egress only to the node port inside the VPC) -HTTP-> the Triton Service's node port on every node
(the target group is attached to the nodegroup's Auto Scaling groups, so nodes EKS adds or replaces
register themselves) -> kube-proxy -> a Triton pod. The nodes admit the door's group on that port
through the cluster security group EKS made (it holds the nodes of a managed nodegroup).

The target group's name carries the node port (a target group's port cannot change): a Service made
anew with another node port gets a new target group, the listener moves to it, the old one goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from radstream.aws import error_code, unless_absent
from radstream.aws.tags import from_list, to_list
from radstream.names import TAG_DEPLOYMENT

Wait = Callable[..., Any]
HTTPS = 443
# TLS 1.2 and 1.3 only, forward-secret ciphers: AWS's recommended policy for an HTTPS listener.
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
HEALTH_PATH = "/v2/health/ready"
# A deleted load balancer's network interfaces hold its security group for a few minutes.
RELEASE_TIMEOUT_S = 900
POLL = {"interval": 1.0, "max_interval": 15.0}


@dataclass(frozen=True)
class Door:
    """What the door is made of, pure, so `plan` and `render` show it before it exists."""

    deployment: str
    vpc_id: str
    vpc_cidr: str
    subnets: tuple[str, ...]
    allowed_cidrs: tuple[str, ...]
    certificate_arn: str
    node_port: int
    auto_scaling_groups: tuple[str, ...]
    cluster_security_group: str | None

    @property
    def name(self) -> str:
        return f"{self.deployment}-door"

    @property
    def target_group(self) -> str:
        return f"{self.deployment}-tg-{self.node_port}"

    def ingress(self) -> list[dict[str, Any]]:
        return [{"IpProtocol": "tcp", "FromPort": HTTPS, "ToPort": HTTPS,
                 "IpRanges": [{"CidrIp": cidr, "Description": "the public door (TLS)"} for cidr in self.allowed_cidrs]}]

    def egress(self) -> list[dict[str, Any]]:
        return [{"IpProtocol": "tcp", "FromPort": self.node_port, "ToPort": self.node_port,
                 "IpRanges": [{"CidrIp": self.vpc_cidr, "Description": "Triton's node port on the nodes"}]}]


def _rules(permissions: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(p.get("IpProtocol"), p.get("FromPort"), p.get("ToPort"), r["CidrIp"])
            for p in permissions for r in p.get("IpRanges", [])}


def _group(ec2: Any, door: Door) -> dict[str, Any] | None:
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [door.vpc_id]},
                                                  {"Name": "group-name", "Values": [door.name]}])["SecurityGroups"]
    return found[0] if found else None


def _load_balancer(elbv2: Any, name: str) -> dict[str, Any] | None:
    found = unless_absent(elbv2.describe_load_balancers, "LoadBalancerNotFound", Names=[name])
    return found["LoadBalancers"][0] if found else None


def _our_target_groups(elbv2: Any, deployment: str) -> dict[str, dict[str, Any]]:
    groups = [g for page in elbv2.get_paginator("describe_target_groups").paginate() for g in page["TargetGroups"]
              if g["TargetGroupName"].startswith(f"{deployment}-tg-")]
    ours = {}
    for i in range(0, len(groups), 20):  # DescribeTags takes at most 20 resources
        for described in elbv2.describe_tags(ResourceArns=[g["TargetGroupArn"] for g in groups[i:i + 20]])["TagDescriptions"]:
            if from_list(described.get("Tags", [])).get(TAG_DEPLOYMENT) == deployment:
                ours[described["ResourceArn"]] = next(g for g in groups if g["TargetGroupArn"] == described["ResourceArn"])
    return {g["TargetGroupName"]: g for g in ours.values()}


def _https_listener(elbv2: Any, lb_arn: str) -> dict[str, Any] | None:
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    return next((item for item in listeners if item["Port"] == HTTPS), None)


def door_drift(ec2: Any, elbv2: Any, autoscaling: Any, door: Door) -> list[tuple[str, str, list[str]]]:
    """[(kind, name, drift)] of every piece; read-only."""
    group = _group(ec2, door)
    found: list[tuple[str, str, list[str]]] = [("security group", door.name, ["missing"] if group is None else [
        *(["ingress"] if _rules(group["IpPermissions"]) != _rules(door.ingress()) else []),
        *(["egress"] if _rules(group["IpPermissionsEgress"]) != _rules(door.egress()) else [])])]
    if door.cluster_security_group:
        found.append(("security group rule", f"{door.cluster_security_group} <- {door.name}:{door.node_port}",
                      [] if group and _node_port_open(ec2, door, group["GroupId"]) else ["missing"]))
    groups = _our_target_groups(elbv2, door.deployment)
    target = groups.get(door.target_group)
    found.append(("target group", door.target_group, [] if target else ["missing"]))
    found += [("target group", name, ["remove"]) for name in groups if name != door.target_group]
    lb = _load_balancer(elbv2, door.name)
    found.append(("load balancer", door.name, ["missing"] if lb is None else
                  [] if sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(door.subnets) else ["subnets"]))
    listener = _https_listener(elbv2, lb["LoadBalancerArn"]) if lb else None
    found.append(("listener", f"{door.name}:{HTTPS}", ["missing"] if listener is None else
                  _listener_drift(listener, door, target)))
    attached = _attached(autoscaling, door.auto_scaling_groups)
    for asg in door.auto_scaling_groups:
        found.append(("target group attachment", f"{asg} -> {door.target_group}",
                      [] if target and target["TargetGroupArn"] in attached.get(asg, ()) else ["missing"]))
    return found


def _listener_drift(listener: dict[str, Any], door: Door, target: dict[str, Any] | None) -> list[str]:
    drift = []
    if [c["CertificateArn"] for c in listener.get("Certificates", [])] != [door.certificate_arn]:
        drift.append("certificate")
    if listener.get("SslPolicy") != SSL_POLICY:
        drift.append("ssl policy")
    forwards = [a.get("TargetGroupArn") for a in listener.get("DefaultActions", [])]
    if not target or forwards != [target["TargetGroupArn"]]:
        drift.append("target group")
    return drift


def _attached(autoscaling: Any, names: tuple[str, ...]) -> dict[str, set[str]]:
    if not names:
        return {}
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=list(names))["AutoScalingGroups"]
    return {g["AutoScalingGroupName"]: set(g.get("TargetGroupARNs", [])) for g in groups}


def _node_port_open(ec2: Any, door: Door, door_group: str) -> bool:
    cluster = ec2.describe_security_groups(GroupIds=[door.cluster_security_group])["SecurityGroups"][0]
    return any(p.get("FromPort") == door.node_port and p.get("ToPort") == door.node_port
               and any(pair.get("GroupId") == door_group for pair in p.get("UserIdGroupPairs", []))
               for p in cluster["IpPermissions"])


def _node_port_rule(door: Door, door_group: str) -> list[dict[str, Any]]:
    return [{"IpProtocol": "tcp", "FromPort": door.node_port, "ToPort": door.node_port,
             "UserIdGroupPairs": [{"GroupId": door_group, "Description": f"{door.name}: Triton's node port"}]}]


def _ensure_group(ec2: Any, door: Door, tags: dict[str, str]) -> str:
    group = _group(ec2, door)
    if group is None:
        group_id = ec2.create_security_group(
            GroupName=door.name, VpcId=door.vpc_id, Description="RadStream public door: HTTPS in, Triton's node port out",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": to_list({**tags, "Name": door.name})}])["GroupId"]
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    for key, wanted, authorize, revoke in (
            ("IpPermissions", door.ingress(), ec2.authorize_security_group_ingress, ec2.revoke_security_group_ingress),
            ("IpPermissionsEgress", door.egress(), ec2.authorize_security_group_egress, ec2.revoke_security_group_egress)):
        if _rules(group[key]) != _rules(wanted) or any(p.get("UserIdGroupPairs") for p in group[key]):
            if group[key]:  # a new group's egress is "all traffic to 0.0.0.0/0": replaced by the node port only
                revoke(GroupId=group["GroupId"], IpPermissions=group[key])
            authorize(GroupId=group["GroupId"], IpPermissions=wanted)
    return str(group["GroupId"])


def ensure_door(ec2: Any, elbv2: Any, autoscaling: Any, door: Door, tags: dict[str, str],
                before_listener: Callable[[str], None]) -> dict[str, str]:
    """Create or repair every piece; {"arn", "dns_name", "target_group_arn"} of the door.
    `before_listener(load balancer ARN)` runs before the listener opens it (the web ACL goes on)."""
    group_id = _ensure_group(ec2, door, tags)
    if door.cluster_security_group and not _node_port_open(ec2, door, group_id):
        ec2.authorize_security_group_ingress(GroupId=door.cluster_security_group,
                                             IpPermissions=_node_port_rule(door, group_id))
    target = _our_target_groups(elbv2, door.deployment).get(door.target_group) or elbv2.create_target_group(
        Name=door.target_group, Protocol="HTTP", Port=door.node_port, VpcId=door.vpc_id, TargetType="instance",
        HealthCheckProtocol="HTTP", HealthCheckPath=HEALTH_PATH, Matcher={"HttpCode": "200"},
        Tags=to_list(tags))["TargetGroups"][0]
    lb = _load_balancer(elbv2, door.name) or elbv2.create_load_balancer(
        Name=door.name, Subnets=list(door.subnets), SecurityGroups=[group_id], Scheme="internet-facing",
        Type="application", IpAddressType="ipv4", Tags=to_list(tags))["LoadBalancers"][0]
    if sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) != sorted(door.subnets):
        elbv2.set_subnets(LoadBalancerArn=lb["LoadBalancerArn"], Subnets=list(door.subnets))
    # Headers that are not valid HTTP are dropped rather than passed to Triton (request smuggling).
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
        {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"}])
    before_listener(lb["LoadBalancerArn"])
    listener = _https_listener(elbv2, lb["LoadBalancerArn"])
    settings = {"Protocol": "HTTPS", "Port": HTTPS, "SslPolicy": SSL_POLICY,
                "Certificates": [{"CertificateArn": door.certificate_arn}],
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": target["TargetGroupArn"]}]}
    if listener is None:
        elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Tags=to_list(tags), **settings)
    elif _listener_drift(listener, door, target):
        elbv2.modify_listener(ListenerArn=listener["ListenerArn"], **settings)
    attached = _attached(autoscaling, door.auto_scaling_groups)
    for asg in door.auto_scaling_groups:
        if target["TargetGroupArn"] not in attached.get(asg, ()):
            autoscaling.attach_load_balancer_target_groups(AutoScalingGroupName=asg,
                                                           TargetGroupARNs=[target["TargetGroupArn"]])
    for name, stale in _our_target_groups(elbv2, door.deployment).items():
        if name != door.target_group:
            _delete_target_group(elbv2, autoscaling, stale)
    return {"arn": lb["LoadBalancerArn"], "dns_name": lb["DNSName"], "target_group_arn": target["TargetGroupArn"]}


def load_balancer(elbv2: Any, deployment: str) -> dict[str, Any] | None:
    return _load_balancer(elbv2, f"{deployment}-door")


def _delete_target_group(elbv2: Any, autoscaling: Any, group: dict[str, Any]) -> None:
    arn = group["TargetGroupArn"]
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate():
        for asg in page["AutoScalingGroups"]:
            if arn in asg.get("TargetGroupARNs", []):
                autoscaling.detach_load_balancer_target_groups(AutoScalingGroupName=asg["AutoScalingGroupName"],
                                                               TargetGroupARNs=[arn])
    unless_absent(elbv2.delete_target_group, "TargetGroupNotFound", TargetGroupArn=arn)


def delete_door(ec2: Any, elbv2: Any, autoscaling: Any, deployment: str, wait: Wait) -> None:
    """Load balancer (its listener with it), target groups (detached from the ASGs first), the node
    port rule, the security group once the load balancer's interfaces let it go; quiet when gone."""
    name = f"{deployment}-door"
    lb = _load_balancer(elbv2, name)
    if lb is not None:
        unless_absent(elbv2.delete_load_balancer, "LoadBalancerNotFound", LoadBalancerArn=lb["LoadBalancerArn"])
        wait(f"load balancer {name} deleted", lambda: _load_balancer(elbv2, name) is None, timeout=RELEASE_TIMEOUT_S,
             **POLL)
    for group in _our_target_groups(elbv2, deployment).values():
        _delete_target_group(elbv2, autoscaling, group)
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]},
                                                   {"Name": f"tag:{TAG_DEPLOYMENT}", "Values": [deployment]}])
    for group in groups["SecurityGroups"]:
        _revoke_references(ec2, group["GroupId"], group["VpcId"])
        wait(f"security group {group['GroupId']} ({name}) deleted",
             lambda group_id=group["GroupId"]: _deleted_group(ec2, group_id), timeout=RELEASE_TIMEOUT_S, **POLL)


def _revoke_references(ec2: Any, group_id: str, vpc_id: str) -> None:
    """Rules of other groups in the VPC that admit this one (the cluster group's node port rule)."""
    for other in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]:
        referring = [p for p in other["IpPermissions"] if any(pair.get("GroupId") == group_id
                                                               for pair in p.get("UserIdGroupPairs", []))]
        if referring and other["GroupId"] != group_id:
            ec2.revoke_security_group_ingress(GroupId=other["GroupId"], IpPermissions=[
                {**{k: p[k] for k in ("IpProtocol", "FromPort", "ToPort") if k in p},
                 "UserIdGroupPairs": [pair for pair in p["UserIdGroupPairs"] if pair.get("GroupId") == group_id]}
                for p in referring])


def _deleted_group(ec2: Any, group_id: str) -> bool:
    try:
        unless_absent(ec2.delete_security_group, "InvalidGroup.NotFound", GroupId=group_id)
    except Exception as exc:
        if error_code(exc) == "DependencyViolation":
            return False  # the deleted load balancer's interfaces still hold it
        raise
    return True
