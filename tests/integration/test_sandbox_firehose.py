"""Kinesis -> Firehose -> S3 in the sandbox: records put on the stream land in the telemetry bucket
as newline-delimited objects, laid out and buffered as Firehose does."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from radstream.sandbox.firehose_pump import frame, java_date, object_key
from tests.integration.sandbox_fixtures import ACCOUNT, REGION, client, sandbox, wait_for  # noqa: F401

pytestmark = pytest.mark.slow

FIREHOSE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/firehose"


def _pipe(sandbox, name: str, bucket: str, prefix: str, interval: int, size_mb: int, shards: int = 1) -> None:  # noqa: F811
    kinesis, firehose = client(sandbox, "kinesis"), client(sandbox, "firehose")
    client(sandbox, "s3").create_bucket(Bucket=bucket)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    stream_arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    firehose.create_delivery_stream(
        DeliveryStreamName=f"{name}-firehose",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": FIREHOSE_ROLE},
        ExtendedS3DestinationConfiguration={
            "RoleARN": FIREHOSE_ROLE,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": prefix,
            "BufferingHints": {"IntervalInSeconds": interval, "SizeInMBs": size_mb},
        },
    )


def _objects(sandbox, bucket: str, prefix: str) -> list[str]:  # noqa: F811
    return [o["Key"] for o in client(sandbox, "s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_records_on_the_stream_land_under_raw_telemetry(sandbox):  # noqa: F811
    _pipe(sandbox, "telemetry", "telemetry-bucket", "raw_telemetry/", interval=1, size_mb=1, shards=2)
    kinesis = client(sandbox, "kinesis")
    records = [{"study": f"S-{i}", "stage": "inference", "ms": 10 * i} for i in range(5)]
    for i, record in enumerate(records):
        # One record already ends with a newline: it must not gain a second one.
        data = json.dumps(record) + ("\n" if i == 0 else "")
        kinesis.put_record(StreamName="telemetry", Data=data.encode(), PartitionKey=record["study"])

    def delivered() -> list[dict]:
        s3 = client(sandbox, "s3")
        lines = []
        for key in _objects(sandbox, "telemetry-bucket", "raw_telemetry/"):
            body = s3.get_object(Bucket="telemetry-bucket", Key=key)["Body"].read().decode()
            assert body.endswith("\n") and "\n\n" not in body
            lines += [json.loads(line) for line in body.splitlines()]
        return lines if len(lines) >= len(records) else []

    lines = wait_for(delivered, timeout=30)
    assert sorted(lines, key=lambda r: r["study"]) == records
    for key in _objects(sandbox, "telemetry-bucket", "raw_telemetry/"):
        assert re.fullmatch(
            r"raw_telemetry/\d{4}/\d{2}/\d{2}/\d{2}/telemetry-firehose-1-\d{4}(-\d{2}){5}-[0-9a-f-]{36}", key
        ), key


def test_a_full_buffer_is_flushed_before_its_interval(sandbox):  # noqa: F811
    _pipe(sandbox, "bulk", "bulk-bucket", "by_date/year=!{timestamp:yyyy}/month=!{timestamp:MM}/", interval=900, size_mb=1)
    kinesis = client(sandbox, "kinesis")
    for part in "ab":
        kinesis.put_record(StreamName="bulk", Data=part.encode() * 600_000, PartitionKey=part)
    [key] = wait_for(lambda: _objects(sandbox, "bulk-bucket", "by_date/"), timeout=30)
    now = datetime.now(timezone.utc)
    assert key.startswith(f"by_date/year={now:%Y}/month={now:%m}/bulk-firehose-1-")
    body = client(sandbox, "s3").get_object(Bucket="bulk-bucket", Key=key)["Body"].read()
    assert body == b"a" * 600_000 + b"\n" + b"b" * 600_000 + b"\n"


def test_object_keys_follow_firehose():
    moment = datetime(2024, 3, 7, 9, 5, 2, tzinfo=timezone.utc)
    key = object_key("raw_telemetry/", "hose", "1", moment)
    assert re.fullmatch(r"raw_telemetry/2024/03/07/09/hose-1-2024-03-07-09-05-02-[0-9a-f-]{36}", key)
    key = object_key("t/dt=!{timestamp:yyyy-MM-dd}/h=!{timestamp:HH}/", "hose", "2", moment, ".gz")
    assert key.startswith("t/dt=2024-03-07/h=09/hose-2-2024-03-07-09-05-02-") and key.endswith(".gz")
    assert java_date("'year='yyyy'/day='dd", moment) == "year=2024/day=07"
    with pytest.raises(ValueError, match="unsupported"):
        object_key("x/!{partitionKeyFromQuery:id}/", "hose", "1", moment)


def test_records_are_newline_delimited_once():
    assert frame([b"a", b"b\n", b""]) == b"a\nb\n\n"
