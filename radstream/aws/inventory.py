"""Everything carrying radstream:deployment=<id>, so teardown can prove nothing is left.

The Resource Groups Tagging API answers for most services in one paginated call; IAM roles,
Kinesis streams, ECR repositories, EKS clusters and EventBridge rules are also listed per service
(neither every emulator nor every AWS partition reports them there). Lambda layers cannot carry
tags at all: they are found by their name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from radstream.aws import error_code
from radstream.aws.tags import from_list
from radstream.names import TAG_DEPLOYMENT

ClientFactory = Callable[[str], Any]


def _glue_exists(client: ClientFactory, arn: str) -> bool:
    kind, _, name = arn.split(":", 5)[5].partition("/")
    glue = client("glue")
    read = {"database": lambda: glue.get_database(Name=name), "crawler": lambda: glue.get_crawler(Name=name)}
    if kind not in read:
        return True
    try:
        read[kind]()
        return True
    except Exception as exc:
        if error_code(exc) == "EntityNotFoundException":
            return False
        raise


# The tagging API may still list a resource for a while after its deletion (moto's Glue forever):
# confirm those services' answers with a direct read.
_STILL_EXISTS = {"glue": _glue_exists}


def _tagging_api(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    pages = client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
        TagFilters=[{"Key": TAG_DEPLOYMENT, "Values": [deployment]}]
    )
    for page in pages:
        for item in page["ResourceTagMappingList"]:
            arn = item["ResourceARN"]
            service = arn.split(":")[2]
            if service not in _STILL_EXISTS or _STILL_EXISTS[service](client, arn):
                yield service, arn


def _iam_roles(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    iam = client("iam")
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if role["RoleName"].startswith(f"{deployment}-"):
                tags = from_list(iam.list_role_tags(RoleName=role["RoleName"])["Tags"])
                if tags.get(TAG_DEPLOYMENT) == deployment:
                    yield "iam", role["Arn"]


def _kinesis_streams(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    kinesis = client("kinesis")
    for page in kinesis.get_paginator("list_streams").paginate():
        for summary in page.get("StreamSummaries", []):
            name = summary["StreamName"]
            if name.startswith(f"{deployment}-"):
                tags = from_list(kinesis.list_tags_for_stream(StreamName=name)["Tags"])
                if tags.get(TAG_DEPLOYMENT) == deployment:
                    yield "kinesis", summary["StreamARN"]


def _ecr_repositories(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    ecr = client("ecr")
    for page in ecr.get_paginator("describe_repositories").paginate():
        for repo in page["repositories"]:
            if repo["repositoryName"].startswith(f"{deployment}-"):
                tags = from_list(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"])
                if tags.get(TAG_DEPLOYMENT) == deployment:
                    yield "ecr", repo["repositoryArn"]


def _eks_clusters(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    eks = client("eks")
    for page in eks.get_paginator("list_clusters").paginate():
        for name in page["clusters"]:
            cluster = eks.describe_cluster(name=name)["cluster"]
            if cluster.get("tags", {}).get(TAG_DEPLOYMENT) == deployment:
                yield "eks", cluster["arn"]


def _event_rules(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    events = client("events")
    for page in events.get_paginator("list_rules").paginate(NamePrefix=f"{deployment}-"):
        for rule in page["Rules"]:
            tags = from_list(events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"])
            if tags.get(TAG_DEPLOYMENT) == deployment:
                yield "events", rule["Arn"]


def _lambda_layers(client: ClientFactory, deployment: str) -> Iterator[tuple[str, str]]:
    lam = client("lambda")
    for page in lam.get_paginator("list_layers").paginate():
        for layer in page["Layers"]:
            if layer["LayerName"].startswith(f"{deployment}-"):
                yield "lambda", layer["LatestMatchingVersion"]["LayerVersionArn"]


_SOURCES = (_tagging_api, _iam_roles, _kinesis_streams, _ecr_repositories, _eks_clusters, _event_rules,
            _lambda_layers)


def deployment_resources(client: ClientFactory, deployment: str) -> list[dict[str, str]]:
    """[{"service", "arn"}] of every resource of this deployment still present, sorted by ARN."""
    found = {arn: service for source in _SOURCES for service, arn in source(client, deployment)}
    return [{"service": found[arn], "arn": arn} for arn in sorted(found)]
