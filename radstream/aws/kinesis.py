"""The telemetry Kinesis data stream (provisioned: one shard is the cheapest always-on option)."""

from __future__ import annotations

from typing import Any

from radstream.aws import error_code, make_arn, unless_absent
from radstream.aws.tags import missing


def stream_drift(kinesis: Any, name: str, tags: dict[str, str]) -> list[str]:
    try:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return ["missing"]
        raise
    if summary["StreamStatus"] == "DELETING":
        return ["missing"]
    current = {t["Key"]: t["Value"] for t in kinesis.list_tags_for_stream(StreamName=name)["Tags"]}
    return ["tags"] if missing(current, tags) else []


def ensure_stream(kinesis: Any, name: str, tags: dict[str, str], shards: int = 1) -> bool:
    """Create (and wait until ACTIVE) or re-tag the stream."""
    drift = stream_drift(kinesis, name, tags)
    if "missing" in drift:
        kinesis.create_stream(StreamName=name, ShardCount=shards, StreamModeDetails={"StreamMode": "PROVISIONED"})
        # Tagging needs an ACTIVE stream; tags passed to CreateStream are not honoured everywhere.
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        drift = ["tags"]
    if "tags" in drift:
        kinesis.add_tags_to_stream(StreamName=name, Tags=tags)
    return bool(drift)


def stream_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "kinesis", region, account_id, f"stream/{name}")


def delete_stream(kinesis: Any, name: str) -> None:
    unless_absent(kinesis.delete_stream, "ResourceNotFoundException", StreamName=name, EnforceConsumerDeletion=True)


def stream_status(kinesis: Any, name: str) -> str:
    """CREATING, ACTIVE, UPDATING or DELETING; an absent stream raises (ResourceNotFoundException)."""
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]


def put_record(kinesis: Any, name: str, data: bytes, partition_key: str) -> None:
    kinesis.put_record(StreamName=name, Data=data, PartitionKey=partition_key)
