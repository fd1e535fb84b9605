import boto3
import pytest
from moto import mock_aws

from radstream.aws import error_code
from radstream.aws.kinesis import delete_stream, ensure_stream, stream_arn, stream_drift, stream_status
from tests.support.aws import record_mutations

TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}


@pytest.fixture
def kinesis():
    with mock_aws():
        yield boto3.client("kinesis", region_name="us-east-1")


def test_create_no_op_retag_delete(kinesis):
    assert stream_drift(kinesis, "t1-telemetry", TAGS) == ["missing"]
    assert ensure_stream(kinesis, "t1-telemetry", TAGS) is True
    summary = kinesis.describe_stream_summary(StreamName="t1-telemetry")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["OpenShardCount"] == 1
    assert stream_arn("us-east-1", "123456789012", "t1-telemetry") == summary["StreamARN"]

    seen = record_mutations(kinesis)
    assert ensure_stream(kinesis, "t1-telemetry", TAGS) is False
    assert seen == []

    kinesis.remove_tags_from_stream(StreamName="t1-telemetry", TagKeys=["radstream:deployment"])
    assert stream_drift(kinesis, "t1-telemetry", TAGS) == ["tags"]
    assert ensure_stream(kinesis, "t1-telemetry", TAGS) is True
    assert stream_drift(kinesis, "t1-telemetry", TAGS) == []

    delete_stream(kinesis, "t1-telemetry")
    assert stream_drift(kinesis, "t1-telemetry", TAGS) == ["missing"]
    delete_stream(kinesis, "t1-telemetry")


def test_status_of_a_stream_and_an_absent_one_raises(kinesis):
    ensure_stream(kinesis, "t1-telemetry", TAGS)
    assert stream_status(kinesis, "t1-telemetry") == "ACTIVE"
    # Absence is an error, not a status to wait for: phase 5 must not wait on a stream phase 0 never made.
    with pytest.raises(Exception) as raised:
        stream_status(kinesis, "t1-other")
    assert error_code(raised.value) == "ResourceNotFoundException"
