import boto3
import pytest
from moto import mock_aws

from radstream.aws import error_code
from radstream.aws.firehose import (
    delete_delivery_stream,
    delivery_stream_drift,
    delivery_stream_status,
    ensure_delivery_stream,
)
from tests.support.aws import record_mutations

TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
ROLE = "arn:aws:iam::123456789012:role/t1-firehose-role"


@pytest.fixture
def setup():
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        arns = []
        for name in ("t1-telemetry", "t1-other"):
            kinesis.create_stream(StreamName=name, ShardCount=1)
            arns.append(kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"])
        settings = dict(stream_arn=arns[0], role_arn=ROLE, bucket_arn="arn:aws:s3:::t1-telemetry-123456789012",
                        prefix="raw_telemetry/", size_mb=1, interval_s=60, tags=TAGS)
        yield boto3.client("firehose", region_name="us-east-1"), settings, arns[1]


def test_create_no_op_update_destination_and_delete(setup):
    firehose, settings, _ = setup
    assert delivery_stream_drift(firehose, "t1-fh", **settings) == ["missing"]
    assert ensure_delivery_stream(firehose, "t1-fh", **settings) is True
    found = firehose.describe_delivery_stream(DeliveryStreamName="t1-fh")["DeliveryStreamDescription"]
    assert found["DeliveryStreamType"] == "KinesisStreamAsSource"
    destination = found["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert destination["Prefix"] == "raw_telemetry/"
    assert destination["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 60}

    seen = record_mutations(firehose)
    assert ensure_delivery_stream(firehose, "t1-fh", **settings) is False
    assert seen == []

    faster = {**settings, "interval_s": 10}
    assert delivery_stream_drift(firehose, "t1-fh", **faster) == ["destination"]
    assert ensure_delivery_stream(firehose, "t1-fh", **faster) is True
    assert seen == ["UpdateDestination"]
    assert delivery_stream_drift(firehose, "t1-fh", **faster) == []

    delete_delivery_stream(firehose, "t1-fh")
    assert delivery_stream_drift(firehose, "t1-fh", **settings) == ["missing"]
    delete_delivery_stream(firehose, "t1-fh")


def test_changed_source_replaces_the_stream(setup):
    firehose, settings, other_stream = setup
    ensure_delivery_stream(firehose, "t1-fh", **settings)
    moved = {**settings, "stream_arn": other_stream}
    assert delivery_stream_drift(firehose, "t1-fh", **moved) == ["source"]
    waited = []
    ensure_delivery_stream(firehose, "t1-fh", **moved, wait=lambda what, done: waited.append(done()))
    assert waited == [True]
    assert delivery_stream_drift(firehose, "t1-fh", **moved) == []


def test_status_of_a_delivery_stream_and_an_absent_one_raises(setup):
    firehose, settings, _ = setup
    ensure_delivery_stream(firehose, "t1-telemetry-firehose", **settings)
    assert delivery_stream_status(firehose, "t1-telemetry-firehose") == "ACTIVE"
    with pytest.raises(Exception) as raised:
        delivery_stream_status(firehose, "t1-other-firehose")
    assert error_code(raised.value) == "ResourceNotFoundException"
