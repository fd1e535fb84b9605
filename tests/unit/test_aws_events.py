import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.events.models import EventPattern

from radstream.aws.events import (
    delete_log_group,
    delete_logs_resource_policy,
    delete_rule,
    ensure_log_group,
    ensure_logs_resource_policy,
    ensure_rule,
    execution_failed_pattern,
    image_uploaded_pattern,
    log_group_drift,
    logs_resource_policy_drift,
    rule_drift,
)
from tests.support.aws import record_mutations

REGION, ACCOUNT = "us-east-1", "123456789012"
TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
SM = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:t1-pipeline"
TARGETS = [{"Id": "pipeline", "Arn": SM, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/t1-events-role"}]


def s3_event(bucket: str, key: str) -> dict:
    return {"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}


@pytest.mark.parametrize("key,starts", [
    ("incoming/TEST-001.jpg", True), ("incoming/a/b.DCM", True), ("incoming/x.png", True),
    # Named otherwise, still a study to the content check: none may be left out.
    ("incoming/1.2.840.113619.2.55", True), ("incoming/X.Png", True), ("incoming/X.tif", True),
    ("incoming/X.dcm.gz", True), ("incoming/notes.txt", True), ("incoming/X.JSON", True),
    # ValidateInput refuses what is outside incoming/, with a record, rather than the rule ignoring it.
    ("other/TEST-001.jpg", True),
    ("incoming/TEST-001.json", False), ("incoming/a/b.json", False),
])
def test_every_upload_but_a_sidecar_starts_the_pipeline(key, starts):
    pattern = EventPattern.load(json.dumps(image_uploaded_pattern("t1-images")))
    assert pattern.matches_event(s3_event("t1-images", key)) is starts
    assert pattern.matches_event(s3_event("another-bucket", "incoming/a.jpg")) is False


def test_failed_executions_of_our_machine_only():
    pattern = EventPattern.load(json.dumps(execution_failed_pattern(SM)))
    event = {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
             "detail": {"status": "FAILED", "stateMachineArn": SM}}
    assert pattern.matches_event(event)
    assert not pattern.matches_event({**event, "detail": {"status": "SUCCEEDED", "stateMachineArn": SM}})
    assert not pattern.matches_event({**event, "detail": {"status": "FAILED", "stateMachineArn": SM + "x"}})


@pytest.fixture
def clients():
    with mock_aws():
        yield boto3.client("events", region_name=REGION), boto3.client("logs", region_name=REGION)


def test_rule_create_no_op_repair_delete(clients):
    events, _ = clients
    pattern = image_uploaded_pattern("t1-images")
    assert rule_drift(events, "t1-image-uploaded", pattern, TARGETS, TAGS) == ["missing"]
    assert ensure_rule(events, "t1-image-uploaded", pattern, TARGETS, TAGS) is True
    assert rule_drift(events, "t1-image-uploaded", pattern, TARGETS, TAGS) == []

    seen = record_mutations(events)
    assert ensure_rule(events, "t1-image-uploaded", pattern, TARGETS, TAGS) is False
    assert seen == []

    events.disable_rule(Name="t1-image-uploaded")
    events.put_targets(Rule="t1-image-uploaded", Targets=[{"Id": "stray", "Arn": SM}])
    assert rule_drift(events, "t1-image-uploaded", pattern, TARGETS, TAGS) == ["pattern", "targets"]
    ensure_rule(events, "t1-image-uploaded", pattern, TARGETS, TAGS)
    assert [t["Id"] for t in events.list_targets_by_rule(Rule="t1-image-uploaded")["Targets"]] == ["pipeline"]
    assert rule_drift(events, "t1-image-uploaded", pattern, TARGETS, TAGS) == []

    delete_rule(events, "t1-image-uploaded")
    assert rule_drift(events, "t1-image-uploaded", pattern, TARGETS, TAGS) == ["missing"]
    delete_rule(events, "t1-image-uploaded")


def test_failure_log_group_and_its_resource_policy(clients):
    _, logs = clients
    name = "/aws/events/t1/execution-failed"
    assert ensure_log_group(logs, name, TAGS, 30) is True
    seen = record_mutations(logs)
    assert ensure_log_group(logs, name, TAGS, 30) is False
    logs.delete_retention_policy(logGroupName=name)
    assert log_group_drift(logs, name, TAGS, 30) == ["retention"]
    ensure_log_group(logs, name, TAGS, 30)
    assert log_group_drift(logs, name, TAGS, 30) == []

    statement = {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "logs:PutLogEvents",
                 "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"}
    document = {"Version": "2012-10-17", "Statement": [statement]}
    seen.clear()
    assert ensure_logs_resource_policy(logs, "t1-events-to-logs", document) is True
    assert ensure_logs_resource_policy(logs, "t1-events-to-logs", document) is False
    assert seen == ["PutResourcePolicy"]

    delete_logs_resource_policy(logs, "t1-events-to-logs")
    delete_log_group(logs, name)
    assert logs_resource_policy_drift(logs, "t1-events-to-logs", document) == ["missing"]
    assert log_group_drift(logs, name, TAGS, 30) == ["missing"]
    delete_logs_resource_policy(logs, "t1-events-to-logs")
    delete_log_group(logs, name)


def test_events_resource_policy_manifest_names_only_the_failure_log_group():
    from radstream.aws.iam import render_document

    path = Path(__file__).resolve().parents[2] / "manifests" / "iam" / "events-to-logs.resource-policy.json"
    doc = render_document(path, {"Partition": "aws", "Region": REGION, "Account": ACCOUNT, "FailureLogGroup": "/aws/events/t1/f"})
    assert doc["Statement"][0]["Resource"] == [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/events/t1/f:*"]


def test_a_changed_or_removed_retry_policy_or_dead_letter_queue_is_drift(clients):
    events, _ = clients
    pattern = image_uploaded_pattern("t1-images")
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:t1-undelivered"
    wanted = [{**TARGETS[0], "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
               "DeadLetterConfig": {"Arn": queue}}]
    ensure_rule(events, "t1-image-uploaded", pattern, wanted, TAGS)
    [target] = events.list_targets_by_rule(Rule="t1-image-uploaded")["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": queue} and target["RetryPolicy"]["MaximumRetryAttempts"] == 185
    assert rule_drift(events, "t1-image-uploaded", pattern, wanted, TAGS) == []

    events.put_targets(Rule="t1-image-uploaded", Targets=TARGETS)  # someone drops the dead-letter queue
    assert rule_drift(events, "t1-image-uploaded", pattern, wanted, TAGS) == ["targets"]
    assert ensure_rule(events, "t1-image-uploaded", pattern, wanted, TAGS) is True
    events.put_targets(Rule="t1-image-uploaded", Targets=[{**wanted[0], "RetryPolicy": {"MaximumRetryAttempts": 0}}])
    assert rule_drift(events, "t1-image-uploaded", pattern, wanted, TAGS) == ["targets"]
    ensure_rule(events, "t1-image-uploaded", pattern, wanted, TAGS)
    assert rule_drift(events, "t1-image-uploaded", pattern, wanted, TAGS) == []
