"""Everything carrying radstream:deployment=<id>, so teardown can prove nothing is left.

The Resource Groups Tagging API answers for most services in one paginated call; IAM roles,
Kinesis streams, ECR repositories, EKS clusters, EventBridge rules, SQS queues, ACM certificates and Secrets
Manager secrets are also listed per service (neither every emulator nor every AWS partition reports
them there). A secret scheduled for deletion counts as gone: it bills nothing and cannot be read. Lambda layers cannot carry
tags at all: they are found by their name.

Every resource found is then read directly from its own service: the tagging API keeps listing a
resource for a while after its deletion (moto's Glue forever; the sandbox reproduces the lag for
every service, radstream.sandbox.tagging_lag), and Kinesis, Step Functions, Firehose and EKS finish
deletes in the background, so a resource is "gone", "deleting" or "present". Teardown waits, for a
bounded time, while anything is still "deleting" (`settled_leftovers`).

Below that, the read-only facts phase 7 prices: what still bills by the hour or by the GB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from radstream.aws import error_code
from radstream.aws.tags import from_list
from radstream.errors import WaitTimeout
from radstream.names import TAG_DEPLOYMENT

ClientFactory = Callable[[str], Any]

GONE, DELETING, PRESENT = "gone", "deleting", "present"
# Kinesis, Step Functions and EKS take minutes to finish a delete on AWS; the sandbox none at all.
LEFTOVER_TIMEOUT_S = 900
LEFTOVER_INTERVAL_S = 10.0


def _tagging_api(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    pages = client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
        TagFilters=[{"Key": TAG_DEPLOYMENT, "Values": [deployment]}]
    )
    for page in pages:
        for item in page["ResourceTagMappingList"]:
            arn = item["ResourceARN"]
            yield arn.split(":")[2], arn


@dataclass(frozen=True)
class _Listing:
    """A service whose resources carry our name prefix and are listed, then checked for our tag."""

    service: str
    operation: str
    items: str
    name: Callable[[dict], str]
    arn: Callable[[dict], str]
    tags: Callable[[Any, dict], list]


_LISTINGS = (
    _Listing("iam", "list_roles", "Roles", lambda r: r["RoleName"], lambda r: r["Arn"],
             lambda iam, r: iam.list_role_tags(RoleName=r["RoleName"])["Tags"]),
    _Listing("kinesis", "list_streams", "StreamSummaries", lambda s: s["StreamName"], lambda s: s["StreamARN"],
             lambda kinesis, s: kinesis.list_tags_for_stream(StreamName=s["StreamName"])["Tags"]),
    _Listing("ecr", "describe_repositories", "repositories", lambda r: r["repositoryName"],
             lambda r: r["repositoryArn"],
             lambda ecr, r: ecr.list_tags_for_resource(resourceArn=r["repositoryArn"])["tags"]),
    _Listing("events", "list_rules", "Rules", lambda r: r["Name"], lambda r: r["Arn"],
             lambda events, r: events.list_tags_for_resource(ResourceARN=r["Arn"])["Tags"]),
)


def _listed(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    for listing in _LISTINGS:
        service = client(listing.service)
        for page in service.get_paginator(listing.operation).paginate():
            for item in page.get(listing.items, []):
                if not listing.name(item).startswith(f"{deployment}-"):
                    continue
                if from_list(listing.tags(service, item)).get(TAG_DEPLOYMENT) == deployment:
                    yield listing.service, listing.arn(item)


def _eks_clusters(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    eks = client("eks")
    for page in eks.get_paginator("list_clusters").paginate():
        for name in page["clusters"]:
            cluster = eks.describe_cluster(name=name)["cluster"]
            if cluster.get("tags", {}).get(TAG_DEPLOYMENT) == deployment:
                yield "eks", cluster["arn"]


def _sqs_queues(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    sqs = client("sqs")
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=f"{deployment}-"):
        for url in page.get("QueueUrls", []):
            if sqs.list_queue_tags(QueueUrl=url).get("Tags", {}).get(TAG_DEPLOYMENT) == deployment:
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
                yield "sqs", attributes["QueueArn"]


def deployment_secrets(secrets: Any, deployment: str) -> list[dict[str, Any]]:
    """The deployment's live secrets (ListSecrets leaves out those scheduled for deletion)."""
    pages = secrets.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [f"{deployment}-"]}])
    return [secret for page in pages for secret in page["SecretList"]
            if from_list(secret.get("Tags", [])).get(TAG_DEPLOYMENT) == deployment]


def _secrets(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    for secret in deployment_secrets(client("secretsmanager"), deployment):
        yield "secretsmanager", secret["ARN"]


def _untaggable_monitoring(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    """Dashboards and budgets carry no tags: found by their name."""
    cw = client("cloudwatch")
    for page in cw.get_paginator("list_dashboards").paginate(DashboardNamePrefix=f"{deployment}-"):
        for dashboard in page["DashboardEntries"]:
            yield "cloudwatch", dashboard["DashboardArn"]
    account = client("sts").get_caller_identity()["Account"]
    budgets = client("budgets")
    for page in budgets.get_paginator("describe_budgets").paginate(AccountId=account):
        for budget in page.get("Budgets", []):
            if budget["BudgetName"].startswith(f"{deployment}-"):
                yield "budgets", f"arn:{budgets.meta.partition}:budgets::{account}:budget/{budget['BudgetName']}"


def _lambda_layers(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    lam = client("lambda")
    for page in lam.get_paginator("list_layers").paginate():
        for layer in page["Layers"]:
            if layer["LayerName"].startswith(f"{deployment}-"):
                yield "lambda", layer["LatestMatchingVersion"]["LayerVersionArn"]


def _acm_certificates(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    from radstream.aws.acm import deployment_certificates

    for arn in deployment_certificates(client("acm"), deployment):
        yield "acm", arn


def _vpc_pieces(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    """The deployment's VPCs, and every ENI in them: Lambda's carry no tag (nor do the endpoints'),
    and they hold the subnets until released."""
    ec2 = client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": f"tag:{TAG_DEPLOYMENT}", "Values": [deployment]}])["Vpcs"]
    for vpc in vpcs:
        prefix = f"arn:{ec2.meta.partition}:ec2:{ec2.meta.region_name}:{vpc['OwnerId']}"
        yield "ec2", f"{prefix}:vpc/{vpc['VpcId']}"
        for eni in ec2.describe_network_interfaces(
                Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["NetworkInterfaces"]:
            yield "ec2", f"{prefix}:network-interface/{eni['NetworkInterfaceId']}"


def _web_acls(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    # The tagging API does not list WAF's web ACLs everywhere; WAF itself does.
    wafv2 = client("wafv2")
    for acl in wafv2.list_web_acls(Scope="REGIONAL", Limit=100).get("WebACLs", []):
        if acl["Name"].startswith(f"{deployment}-"):
            tags = wafv2.list_tags_for_resource(ResourceARN=acl["ARN"])["TagInfoForResource"].get("TagList", [])
            if from_list(tags).get(TAG_DEPLOYMENT) == deployment:
                yield "wafv2", acl["ARN"]


_SOURCES = (_tagging_api, _listed, _eks_clusters, _sqs_queues, _secrets, _untaggable_monitoring, _lambda_layers, _acm_certificates, _vpc_pieces, _web_acls)


# -- is it still there? ---------------------------------------------------------------------------
def _status(read: Callable[[], Any], status: Callable[[Any], str | None] = lambda _: None,
            missing: tuple[str, ...] = ("ResourceNotFoundException",)) -> str:
    """GONE when the read answers not-found, DELETING when the resource says so, else PRESENT."""
    try:
        answer = read()
    except Exception as exc:
        if error_code(exc) in missing:
            return GONE
        raise
    return DELETING if status(answer) == "DELETING" else PRESENT


def _resource(arn: str) -> str:
    """The part after the region and account: "stream/x", "stateMachine:x", "cluster/x"…"""
    return arn.split(":", 5)[5]


def _glue(client: ClientFactory, arn: str) -> str:
    kind, _, name = _resource(arn).partition("/")
    glue = client("glue")
    read = {"database": lambda: glue.get_database(Name=name), "crawler": lambda: glue.get_crawler(Name=name)}.get(kind)
    return _status(read, missing=("EntityNotFoundException",)) if read else PRESENT


def _kinesis(client: ClientFactory, arn: str) -> str:
    kinesis, name = client("kinesis"), _resource(arn).partition("/")[2]
    return _status(lambda: kinesis.describe_stream_summary(StreamName=name),
                   lambda r: r["StreamDescriptionSummary"]["StreamStatus"])


def _states(client: ClientFactory, arn: str) -> str:
    if not _resource(arn).startswith("stateMachine:"):
        return PRESENT
    sfn = client("stepfunctions")
    return _status(lambda: sfn.describe_state_machine(stateMachineArn=arn), lambda r: r.get("status"),
                   missing=("StateMachineDoesNotExist",))


def _firehose(client: ClientFactory, arn: str) -> str:
    firehose, name = client("firehose"), _resource(arn).partition("/")[2]
    return _status(lambda: firehose.describe_delivery_stream(DeliveryStreamName=name),
                   lambda r: r["DeliveryStreamDescription"]["DeliveryStreamStatus"])


def _eks(client: ClientFactory, arn: str) -> str:
    kind, _, rest = _resource(arn).partition("/")
    eks = client("eks")
    if kind == "cluster":
        return _status(lambda: eks.describe_cluster(name=rest), lambda r: r["cluster"]["status"])
    if kind == "nodegroup":
        cluster, name = rest.split("/")[:2]
        return _status(lambda: eks.describe_nodegroup(clusterName=cluster, nodegroupName=name),
                       lambda r: r["nodegroup"]["status"])
    return PRESENT


def _s3(client: ClientFactory, arn: str) -> str:
    s3 = client("s3")
    return _status(lambda: s3.head_bucket(Bucket=_resource(arn)), missing=("404", "NoSuchBucket", "NotFound"))


def _lambda(client: ClientFactory, arn: str) -> str:
    if not _resource(arn).startswith("function:"):
        return PRESENT  # layer versions come from list_layers itself
    lam = client("lambda")
    return _status(lambda: lam.get_function(FunctionName=arn))


def _logs(client: ClientFactory, arn: str) -> str:
    kind, _, name = _resource(arn).partition(":")
    if kind != "log-group":
        return PRESENT
    name = name.removesuffix(":*")  # DescribeLogGroups writes a group's ARN with its streams' ":*"
    groups = client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return PRESENT if any(g["logGroupName"] == name for g in groups) else GONE


def _athena(client: ClientFactory, arn: str) -> str:
    kind, _, name = _resource(arn).partition("/")
    if kind != "workgroup":
        return PRESENT
    try:
        found = client("athena").get_work_group(WorkGroup=name).get("WorkGroup")
    except Exception as exc:
        # AWS refuses a missing workgroup as an invalid request; moto answers it as null.
        if error_code(exc) != "InvalidRequestException":
            raise
        found = None
    return PRESENT if found else GONE


def _ecr(client: ClientFactory, arn: str) -> str:
    kind, _, name = _resource(arn).partition("/")
    if kind != "repository":
        return PRESENT
    ecr = client("ecr")
    return _status(lambda: ecr.describe_repositories(repositoryNames=[name]), missing=("RepositoryNotFoundException",))


def _events(client: ClientFactory, arn: str) -> str:
    kind, _, rest = _resource(arn).partition("/")
    if kind != "rule":
        return PRESENT
    bus, _, name = rest.rpartition("/")  # rule/<name> on the default bus, rule/<bus>/<name> elsewhere
    events = client("events")
    return _status(lambda: events.describe_rule(Name=name, EventBusName=bus or "default"))


def _sqs(client: ClientFactory, arn: str) -> str:
    sqs = client("sqs")
    return _status(lambda: sqs.get_queue_url(QueueName=_resource(arn)),
                   missing=("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"))


def _iam(client: ClientFactory, arn: str) -> str:
    kind, _, rest = _resource(arn).partition("/")
    if kind != "role":
        return PRESENT
    iam = client("iam")
    return _status(lambda: iam.get_role(RoleName=rest.rpartition("/")[2]), missing=("NoSuchEntity",))  # after its path


class _NotFound(Exception):
    """A describe that answers with nothing (or a deleted resource), read as its not-found error."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


def _ec2(client: ClientFactory, arn: str) -> str:
    kind, _, resource_id = _resource(arn).partition("/")
    ec2 = client("ec2")
    if kind == "security-group":
        return _status(lambda: ec2.describe_security_groups(GroupIds=[resource_id]),
                       missing=("InvalidGroup.NotFound",))
    reads = {  # kind -> (describe operation, its ID filter, result key, not-found code)
        "vpc": ("describe_vpcs", "VpcIds", "Vpcs", "InvalidVpcID.NotFound"),
        "subnet": ("describe_subnets", "SubnetIds", "Subnets", "InvalidSubnetID.NotFound"),
        "internet-gateway": ("describe_internet_gateways", "InternetGatewayIds", "InternetGateways",
                             "InvalidInternetGatewayID.NotFound"),
        "route-table": ("describe_route_tables", "RouteTableIds", "RouteTables", "InvalidRouteTableID.NotFound"),
        "elastic-ip": ("describe_addresses", "AllocationIds", "Addresses", "InvalidAllocationID.NotFound"),
        "natgateway": ("describe_nat_gateways", "NatGatewayIds", "NatGateways", "NatGatewayNotFound"),
        "vpc-endpoint": ("describe_vpc_endpoints", "VpcEndpointIds", "VpcEndpoints", "InvalidVpcEndpointId.NotFound"),
        "network-interface": ("describe_network_interfaces", "NetworkInterfaceIds", "NetworkInterfaces",
                              "InvalidNetworkInterfaceID.NotFound"),
    }
    if kind in reads:
        operation, ids, key, not_found = reads[kind]

        def state() -> str | None:
            found = getattr(ec2, operation)(**{ids: [resource_id]})[key]
            if not found or str(found[0].get("State", "")).lower() == "deleted":
                raise _NotFound(not_found)
            return "DELETING" if str(found[0].get("State", "")).lower() == "deleting" else None

        return _status(state, lambda answer: answer, missing=(not_found,))
    if kind == "instance":
        # A terminated instance stays listed for about an hour; the nodegroup's go with its ASG.
        def instance_state() -> str | None:
            found = [i for r in ec2.describe_instances(InstanceIds=[resource_id])["Reservations"] for i in r["Instances"]]
            state = found[0]["State"]["Name"] if found else "terminated"
            if state == "terminated":
                raise _NotFound("InvalidInstanceID.NotFound")
            return "DELETING" if state == "shutting-down" else None

        return _status(instance_state, lambda answer: answer, missing=("InvalidInstanceID.NotFound",))
    if kind == "launch-template":
        return _status(lambda: ec2.describe_launch_template_versions(LaunchTemplateId=resource_id,
                                                                     Versions=["$Latest"]),
                       missing=("InvalidLaunchTemplateId.NotFound",))
    return PRESENT


def _acm(client: ClientFactory, arn: str) -> str:
    acm = client("acm")
    return _status(lambda: acm.describe_certificate(CertificateArn=arn))


def _load_balancing(client: ClientFactory, arn: str) -> str:
    """Classic load balancers are loadbalancer/<name>; v2 ones loadbalancer/app|net|gwy/<name>/<id>."""
    kind, _, rest = _resource(arn).partition("/")
    if kind == "targetgroup":
        elbv2 = client("elbv2")
        return _status(lambda: elbv2.describe_target_groups(TargetGroupArns=[arn]), missing=("TargetGroupNotFound",))
    if kind == "listener":
        elbv2 = client("elbv2")
        return _status(lambda: elbv2.describe_listeners(ListenerArns=[arn]), missing=("ListenerNotFound",))
    if kind != "loadbalancer":
        return PRESENT
    if "/" not in rest:
        elb = client("elb")
        return _status(lambda: elb.describe_load_balancers(LoadBalancerNames=[rest]), missing=("LoadBalancerNotFound",))
    elbv2 = client("elbv2")
    return _status(lambda: elbv2.describe_load_balancers(LoadBalancerArns=[arn]), missing=("LoadBalancerNotFound",))


def _wafv2(client: ClientFactory, arn: str) -> str:
    """regional/webacl/<name>/<id>"""
    _, _, name, acl_id = _resource(arn).split("/", 3)
    wafv2 = client("wafv2")
    return _status(lambda: wafv2.get_web_acl(Name=name, Scope="REGIONAL", Id=acl_id),
                   missing=("WAFNonexistentItemException",))


def _secretsmanager(client: ClientFactory, arn: str) -> str:
    from radstream.aws.secrets import describe_key

    found = describe_key(client("secretsmanager"), arn)
    return PRESENT if found and not found.get("DeletedDate") else GONE


def _sns(client: ClientFactory, arn: str) -> str:
    sns = client("sns")
    return _status(lambda: sns.get_topic_attributes(TopicArn=arn), missing=("NotFound",))


def _cloudwatch(client: ClientFactory, arn: str) -> str:
    """alarm:<name> or dashboard/<name>"""
    resource = _resource(arn)
    cw = client("cloudwatch")
    if resource.startswith("alarm:"):
        return PRESENT if cw.describe_alarms(AlarmNames=[resource.split(":", 1)[1]])["MetricAlarms"] else GONE
    if resource.startswith("dashboard/"):
        return _status(lambda: cw.get_dashboard(DashboardName=resource.split("/", 1)[1]), missing=("ResourceNotFound",))
    return PRESENT


def _budgets(client: ClientFactory, arn: str) -> str:
    budgets, account = client("budgets"), arn.split(":")[4]
    return _status(lambda: budgets.describe_budget(AccountId=account, BudgetName=_resource(arn).split("/", 1)[1]),
                   missing=("NotFoundException",))


# A service missing here is reported as present: a leftover that cannot be confirmed is not hidden.
_STATUS: dict[str, Callable[[ClientFactory, str], str]] = {
    "glue": _glue, "kinesis": _kinesis, "states": _states, "firehose": _firehose, "eks": _eks, "s3": _s3,
    "lambda": _lambda, "logs": _logs, "athena": _athena, "ecr": _ecr, "events": _events, "iam": _iam,
    "ec2": _ec2, "elasticloadbalancing": _load_balancing, "acm": _acm, "wafv2": _wafv2, "sqs": _sqs,
    "secretsmanager": _secretsmanager, "sns": _sns, "cloudwatch": _cloudwatch, "budgets": _budgets,
}


def deployment_resources(client: ClientFactory, deployment: str) -> list[dict[str, str]]:
    """[{"service", "arn", "status"}] of every resource of this deployment still there, sorted by ARN;
    status is "deleting" while a delete finishes in the background, else "present"."""
    found = {arn: service for source in _SOURCES for service, arn in source(client, deployment)}
    resources = []
    for arn in sorted(found):
        read = _STATUS.get(found[arn])
        status = read(client, arn) if read else PRESENT
        if status != GONE:
            resources.append({"service": found[arn], "arn": arn, "status": status})
    return resources


def settled_leftovers(client: ClientFactory, deployment: str, wait: Callable[..., Any],
                      timeout: float = LEFTOVER_TIMEOUT_S, interval: float = LEFTOVER_INTERVAL_S) -> list[dict[str, str]]:
    """What still carries this deployment's tag once background deletes have finished. Polls through
    `wait` (the context's, which shows progress) while anything is "deleting", at most `timeout`
    seconds; a resource that is present and not being deleted ends the wait at once."""
    latest: list[dict[str, str]] = []

    def settled() -> bool:
        nonlocal latest
        latest = deployment_resources(client, deployment)
        return not any(r["status"] == DELETING for r in latest)

    if not settled():
        deleting = sum(r["status"] == DELETING for r in latest)
        try:
            wait(f"{deleting} resource(s) of {deployment} to finish deleting", settled, timeout=timeout,
                 interval=interval)
        except WaitTimeout:
            pass  # reported as leftovers, with their status
    return latest


# -- what still bills (phase 7 prices these) ------------------------------------------------------
def stream_capacity(kinesis: Any, name: str) -> dict[str, Any] | None:
    """{"mode": "PROVISIONED"|"ON_DEMAND", "shards": open shards} of a stream, None when it is gone
    or being deleted."""
    try:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    if summary["StreamStatus"] == "DELETING":
        return None
    return {"mode": (summary.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED"),
            "shards": summary.get("OpenShardCount", 0)}


def stored_bytes(s3: Any, bucket: str) -> int | None:
    """Bytes a bucket stores, every object version included (noncurrent versions bill too); None
    when the bucket is gone."""
    total = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            total += sum(v.get("Size", 0) for v in page.get("Versions", []))
    except Exception as exc:
        if error_code(exc) == "NoSuchBucket":
            return None
        raise
    return total


def repository_bytes(ecr: Any, repository: str) -> int | None:
    """Bytes of the images in an ECR repository (layers shared between images are counted once per
    image: an upper bound); None when the repository is gone."""
    total = 0
    try:
        for page in ecr.get_paginator("describe_images").paginate(repositoryName=repository):
            total += sum(image.get("imageSizeInBytes", 0) for image in page.get("imageDetails", []))
    except Exception as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        raise
    return total
