"""The dead-letter queue step's helpers against moto: the queue made encrypted, retained 14 days and
closed to all but one rule, repaired when changed, deleted quietly; and its mapping onto a function."""

import json

import boto3
import pytest
from moto import mock_aws

from radstream.aws.packaging import deterministic_zip
from radstream.aws.sqs import (
    BATCH_SIZE,
    RETENTION_SECONDS,
    dead_letter_policy,
    delete_mapping,
    delete_queue,
    ensure_mapping,
    ensure_queue,
    mapping_drift,
    queue_arn,
    queue_attributes,
    queue_drift,
)
from tests.support.aws import record_mutations

REGION, ACCOUNT = "us-east-1", "123456789012"
TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
QUEUE = "t1-undelivered"
ARN = queue_arn(REGION, ACCOUNT, QUEUE)
RULE = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/t1-image-uploaded"
ATTRIBUTES = queue_attributes(dead_letter_policy(ARN, RULE))


@pytest.fixture
def sqs():
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def test_the_policy_admits_eventbridge_for_one_rule_only():
    [statement] = dead_letter_policy(ARN, RULE)["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == ARN and statement["Condition"] == {"ArnEquals": {"aws:SourceArn": RULE}}


def test_create_no_op_repair_delete(sqs):
    assert queue_drift(sqs, QUEUE, ATTRIBUTES, TAGS) == ["missing"]
    assert ensure_queue(sqs, QUEUE, ATTRIBUTES, TAGS) is True
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert found["QueueArn"] == ARN and found["SqsManagedSseEnabled"] == "true"
    assert found["MessageRetentionPeriod"] == str(RETENTION_SECONDS) == str(14 * 86400)
    assert json.loads(found["Policy"]) == dead_letter_policy(ARN, RULE)
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == TAGS

    seen = record_mutations(sqs)
    assert ensure_queue(sqs, QUEUE, ATTRIBUTES, TAGS) is False
    assert seen == []

    open_policy = {**dead_letter_policy(ARN, RULE), "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": ARN}]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(open_policy), "MessageRetentionPeriod": "60"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["radstream:deployment"])
    assert queue_drift(sqs, QUEUE, ATTRIBUTES, TAGS) == ["MessageRetentionPeriod", "Policy", "tags"]
    assert ensure_queue(sqs, QUEUE, ATTRIBUTES, TAGS) is True
    assert queue_drift(sqs, QUEUE, ATTRIBUTES, TAGS) == []

    delete_queue(sqs, QUEUE)
    assert queue_drift(sqs, QUEUE, ATTRIBUTES, TAGS) == ["missing"]
    delete_queue(sqs, QUEUE)


def test_the_mapping_is_made_once_and_deleted_quietly(sqs):
    iam, lam = boto3.client("iam", region_name=REGION), boto3.client("lambda", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="t1-lambda-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    lam.create_function(FunctionName="t1-store-failure", Runtime="python3.12", Role=role, Handler="handler.handler",
                        Code={"ZipFile": deterministic_zip({"handler.py": b"def handler(e, c): pass\n"})})
    ensure_queue(sqs, QUEUE, ATTRIBUTES, TAGS)

    assert mapping_drift(lam, ARN, "t1-store-failure") == ["missing"]
    assert ensure_mapping(lam, ARN, "t1-store-failure") is True
    [mapping] = lam.list_event_source_mappings(EventSourceArn=ARN)["EventSourceMappings"]
    assert mapping["BatchSize"] == BATCH_SIZE and mapping["FunctionArn"].endswith(":function:t1-store-failure")
    assert ensure_mapping(lam, ARN, "t1-store-failure") is False

    delete_mapping(lam, ARN, "t1-store-failure")
    assert mapping_drift(lam, ARN, "t1-store-failure") == ["missing"]
    delete_mapping(lam, ARN, "t1-store-failure")
