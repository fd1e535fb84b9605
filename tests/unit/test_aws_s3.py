import json

import boto3
import pytest
from moto import mock_aws

from radstream.aws.s3 import (
    bucket_drift,
    delete_bucket,
    delete_object,
    ensure_bucket,
    list_objects,
    tls_only_policy,
)
from radstream.aws.wiring import object_exists
from tests.support.aws import record_mutations

REGION = "eu-west-1"
TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}


@pytest.fixture
def moto_s3_eventbridge_readback(monkeypatch):
    from moto.s3.responses import S3Response

    from radstream.sandbox.moto_fixes import bucket_notification_reports_eventbridge

    monkeypatch.setattr(S3Response, "get_bucket_notification",
                        bucket_notification_reports_eventbridge(S3Response.get_bucket_notification))


@pytest.fixture
def moto_conditioned_deny(monkeypatch):
    from moto.iam.access_control import IAMPolicyStatement

    from radstream.sandbox.moto_fixes import deny_needs_its_condition_keys

    monkeypatch.setattr(IAMPolicyStatement, "is_action_permitted",
                        deny_needs_its_condition_keys(IAMPolicyStatement.is_action_permitted))


@pytest.fixture
def s3(moto_s3_eventbridge_readback, moto_conditioned_deny):
    with mock_aws():
        yield boto3.client("s3", region_name=REGION)


def test_create_then_no_op_then_repair(s3):
    name = "t1-images-123456789012"
    assert bucket_drift(s3, name, TAGS, eventbridge=True) == ["missing"]
    assert ensure_bucket(s3, name, REGION, TAGS, eventbridge=True) is True
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == REGION
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    assert json.loads(s3.get_bucket_policy(Bucket=name)["Policy"]) == tls_only_policy(name)
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket=name)
    assert bucket_drift(s3, name, TAGS, eventbridge=True) == []

    seen = record_mutations(s3)
    assert ensure_bucket(s3, name, REGION, TAGS, eventbridge=True) is False
    assert seen == []

    # Someone suspends versioning, removes the policy and a tag; someone else adds their own tag.
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_bucket_policy(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "owner", "Value": "ops"}]})
    assert bucket_drift(s3, name, TAGS, eventbridge=True) == ["versioning", "policy", "tags"]
    seen.clear()
    assert ensure_bucket(s3, name, REGION, TAGS, eventbridge=True) is True
    assert sorted(seen) == ["PutBucketPolicy", "PutBucketTagging", "PutBucketVersioning"]
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags == {**TAGS, "owner": "ops"}
    assert bucket_drift(s3, name, TAGS, eventbridge=True) == []


def test_tls_policy_denies_insecure_transport_only():
    statement = tls_only_policy("b")["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]


def test_eventbridge_added_without_dropping_other_notifications(s3):
    name = "t1-other-123456789012"
    ensure_bucket(s3, name, REGION, TAGS)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_arn = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="q")["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    assert bucket_drift(s3, name, TAGS, eventbridge=True) == ["eventbridge"]
    ensure_bucket(s3, name, REGION, TAGS, eventbridge=True)
    config = s3.get_bucket_notification_configuration(Bucket=name)
    assert "EventBridgeConfiguration" in config
    assert config["QueueConfigurations"][0]["QueueArn"] == queue_arn


def test_delete_empties_every_version_and_is_quiet_when_gone(s3):
    name = "t1-results-123456789012"
    ensure_bucket(s3, name, REGION, TAGS)
    for body in (b"1", b"2"):
        s3.put_object(Bucket=name, Key="results/a.json", Body=body)
    s3.delete_object(Bucket=name, Key="results/a.json")  # leaves a delete marker
    delete_bucket(s3, name)
    assert bucket_drift(s3, name, TAGS) == ["missing"]
    delete_bucket(s3, name)


def test_delete_empties_a_bucket_of_more_versions_than_one_listing_holds(s3):
    """ListObjectVersions gives 1,000 at most: a bucket after a load test holds thousands. Paging on
    while deleting what was listed skips versions on moto; listing again from the start never does."""
    from radstream.aws.runs import delete_prefixes

    name = "t1-images-123456789012"
    ensure_bucket(s3, name, REGION, TAGS)
    for i in range(1300):
        s3.put_object(Bucket=name, Key=f"incoming/LOAD-r-{i:05d}.json", Body=b"{}")
    s3.put_object(Bucket=name, Key="incoming/KEEP.json", Body=b"{}")
    assert delete_prefixes(s3, name, ["incoming/LOAD-r-"]) == 1300
    assert [o["Key"] for o in list_objects(s3, name)] == ["incoming/KEEP.json"]
    for i in range(1200):
        s3.put_object(Bucket=name, Key=f"results/{i:05d}.json", Body=b"{}")
    delete_bucket(s3, name)
    assert bucket_drift(s3, name, TAGS) == ["missing"]


def test_list_objects_pages_on_demand(s3):
    name = "t1-telemetry-123456789012"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    for n in range(1001):  # one more than a ListObjectsV2 page
        s3.put_object(Bucket=name, Key=f"raw_telemetry/{n:04d}", Body=b"x")
    s3.put_object(Bucket=name, Key="athena-results/other.csv", Body=b"x")
    listings = []
    s3.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: listings.append(1))

    assert next(list_objects(s3, name, "raw_telemetry/"))["Key"] == "raw_telemetry/0000"
    assert len(listings) == 1  # stopping early lists no further page
    keys = [item["Key"] for item in list_objects(s3, name, "raw_telemetry/")]
    assert len(keys) == 1001 and keys[-1] == "raw_telemetry/1000" and len(listings) == 3


def test_delete_object_leaves_a_marker_and_is_quiet_when_the_bucket_is_gone(s3):
    name = "t1-images-123456789012"
    ensure_bucket(s3, name, REGION, TAGS)
    s3.put_object(Bucket=name, Key="incoming/a.png", Body=b"png")
    delete_object(s3, name, "incoming/a.png")
    assert not object_exists(s3, name, "incoming/a.png")
    versions = s3.list_object_versions(Bucket=name)
    assert len(versions["Versions"]) == 1 and len(versions["DeleteMarkers"]) == 1
    delete_bucket(s3, name)
    delete_object(s3, name, "incoming/a.png")


def test_object_exists_is_false_for_a_missing_key_or_bucket(s3):
    name = "t1-results-123456789012"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=name, Key="results/a.json", Body=b"{}")
    assert object_exists(s3, name, "results/a.json")
    assert not object_exists(s3, name, "results/b.json")
    assert not object_exists(s3, "t1-gone-123456789012", "results/a.json")
