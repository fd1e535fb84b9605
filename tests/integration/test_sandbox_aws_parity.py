"""Where moto is more lenient than AWS, the sandbox answers as AWS does: a role just created cannot be
assumed yet (each service refuses with its own error, the helpers retry), and Glue reads a
crawler's role back as a name."""

from __future__ import annotations

import json

import pytest

from radstream.aws.propagation import role_not_yet_assumable
from radstream.counters import MutationCounter
from radstream.sandbox.role_propagation import WINDOW_ENV
from tests.integration.sandbox_fixtures import ACCOUNT, REGION, client, sandbox, zip_of  # noqa: F401

pytestmark = pytest.mark.slow

WINDOW_S = 4
TAGS = {"radstream:deployment": "parity", "radstream:phase": "0"}


@pytest.fixture(scope="module", autouse=True)
def role_window():
    # Module-scoped autouse: set before the sandbox daemon (which inherits it) starts.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WINDOW_ENV, str(WINDOW_S))
        yield


def _new_role(sandbox, name: str, service: str) -> str:  # noqa: F811
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": f"{service}.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    return client(sandbox, "iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def _refused(call) -> Exception:
    with pytest.raises(Exception) as refused:
        call()
    assert role_not_yet_assumable(refused.value), refused.value
    return refused.value


def test_services_refuse_a_new_role_and_the_helpers_retry_until_it_propagates(sandbox):  # noqa: F811
    from radstream.aws.eks import NodegroupSpec, ensure_cluster, ensure_nodegroup
    from radstream.aws.firehose import ensure_delivery_stream
    from radstream.aws.lambda_ import RUNTIME, ensure_function
    from radstream.aws.stepfunctions import ensure_state_machine

    lam, sfn, firehose, eks = (client(sandbox, s) for s in ("lambda", "stepfunctions", "firehose", "eks"))
    roles = {purpose: _new_role(sandbox, f"parity-{purpose}", service) for purpose, service in
             [("lambda", "lambda"), ("sfn", "states"), ("firehose", "firehose"), ("cluster", "eks"), ("nodes", "ec2")]}
    client(sandbox, "s3").create_bucket(Bucket="parity-telemetry")
    client(sandbox, "kinesis").create_stream(StreamName="parity", ShardCount=1)
    stream_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/parity"
    code = zip_of({"handler.py": "def handler(event, context):\n    return event\n"})
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    destination = {"RoleARN": roles["firehose"], "BucketARN": "arn:aws:s3:::parity-telemetry"}

    # Without a retry, each creation is refused as AWS refuses it, with that service's own error.
    assert "cannot be assumed by Lambda" in str(_refused(lambda: lam.create_function(
        FunctionName="parity-raw", Runtime=RUNTIME, Role=roles["lambda"], Handler="handler.handler",
        Code={"ZipFile": code})))
    assert "states.amazonaws.com" in str(_refused(lambda: sfn.create_state_machine(
        name="parity-raw", definition=json.dumps(definition), roleArn=roles["sfn"])))
    assert "Firehose is unable to assume role" in str(_refused(lambda: firehose.create_delivery_stream(
        DeliveryStreamName="parity-raw", DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": roles["firehose"]},
        ExtendedS3DestinationConfiguration=destination)))
    assert "could not be assumed" in str(_refused(lambda: eks.create_cluster(
        name="parity-raw", roleArn=roles["cluster"], resourcesVpcConfig={"subnetIds": ["subnet-1", "subnet-2"]})))

    # Through the helpers, the same creations succeed once the roles have propagated.
    assert ensure_function(lam, "parity-fn", role_arn=roles["lambda"], zip_bytes=code, env={}, layers=[], tags=TAGS)
    sfn_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:parity"
    assert ensure_state_machine(sfn, sfn_arn, definition, roles["sfn"], TAGS)
    assert ensure_delivery_stream(firehose, "parity", stream_arn=stream_arn, role_arn=roles["firehose"],
                                  bucket_arn=destination["BucketARN"], prefix="raw/", size_mb=1, interval_s=60,
                                  tags=TAGS)
    assert ensure_cluster(eks, "parity", role_arn=roles["cluster"], version="1.32", tags=TAGS,
                          subnets={"subnet-1": "us-east-1a", "subnet-2": "us-east-1b"})
    nodes_role = _new_role(sandbox, "parity-nodes-late", "ec2")
    assert "trust relationships of nodeRole" in str(_refused(lambda: eks.create_nodegroup(
        clusterName="parity", nodegroupName="raw", nodeRole=nodes_role, subnets=["subnet-1"])))
    spec = NodegroupSpec("t3.medium", "ON_DEMAND", 0, 0, 1)
    assert ensure_nodegroup(eks, "parity", "ng", spec, node_role_arn=nodes_role, subnet_ids=["subnet-1"], tags=TAGS)
    assert lam.get_function(FunctionName="parity-fn")["Configuration"]["Role"] == roles["lambda"]
    assert sfn.describe_state_machine(stateMachineArn=sfn_arn)["roleArn"] == roles["sfn"]
    assert eks.describe_nodegroup(clusterName="parity", nodegroupName="ng")["nodegroup"]["nodeRole"] == nodes_role


def test_glue_reads_the_crawler_role_back_as_a_name_and_a_second_ensure_changes_nothing(sandbox):  # noqa: F811
    from radstream.aws.glue import ensure_crawler, ensure_database, ensure_table, glue_arn
    from radstream.pipeline.results import TELEMETRY_COLUMNS

    glue = client(sandbox, "glue")
    counter = MutationCounter()
    glue.meta.events.register("after-call", counter.botocore_hook)
    role = f"arn:aws:iam::{ACCOUNT}:role/parity-crawler-role"
    ensure_database(glue, "parity_analytics", glue_arn(REGION, ACCOUNT, "database", "parity_analytics"), TAGS)
    ensure_table(glue, "parity_analytics", "raw_telemetry", "s3://parity-telemetry/raw/", TELEMETRY_COLUMNS)
    arn = glue_arn(REGION, ACCOUNT, "crawler", "parity-crawler")
    assert ensure_crawler(glue, "parity-crawler", arn, role, "parity_analytics", "raw_telemetry", TAGS)
    assert glue.get_crawler(Name="parity-crawler")["Crawler"]["Role"] == "parity-crawler-role"  # as Glue answers

    before = counter.total
    assert not ensure_crawler(glue, "parity-crawler", arn, role, "parity_analytics", "raw_telemetry", TAGS)
    assert counter.total == before
