"""The Firehose delivery stream: Kinesis telemetry stream -> S3 telemetry bucket."""

from __future__ import annotations

from typing import Any

from radstream.aws import error_code, unless_absent
from radstream.aws.propagation import retry_while_role_propagates
from radstream.aws.tags import from_list, missing, to_list


def _destination(bucket_arn: str, role_arn: str, prefix: str, size_mb: int, interval_s: int) -> dict[str, Any]:
    return {
        "RoleARN": role_arn,
        "BucketARN": bucket_arn,
        "Prefix": prefix,
        "BufferingHints": {"SizeInMBs": size_mb, "IntervalInSeconds": interval_s},
    }


def delivery_stream_drift(
    firehose: Any, name: str, *, stream_arn: str, role_arn: str, bucket_arn: str, prefix: str,
    size_mb: int, interval_s: int, tags: dict[str, str],
) -> list[str]:
    try:
        found = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return ["missing"]
        raise
    source = found.get("Source", {}).get("KinesisStreamSourceDescription", {})
    if found["DeliveryStreamStatus"] == "DELETING":
        return ["missing"]
    if source.get("KinesisStreamARN") != stream_arn or source.get("RoleARN") != role_arn:
        return ["source"]  # the source cannot be changed in place
    drift = []
    current = found["Destinations"][0].get("ExtendedS3DestinationDescription", {})
    wanted = _destination(bucket_arn, role_arn, prefix, size_mb, interval_s)
    if {k: current.get(k) for k in wanted} != wanted:
        drift.append("destination")
    current_tags = from_list(firehose.list_tags_for_delivery_stream(DeliveryStreamName=name)["Tags"])
    if missing(current_tags, tags):
        drift.append("tags")
    return drift


def ensure_delivery_stream(
    firehose: Any, name: str, *, stream_arn: str, role_arn: str, bucket_arn: str, prefix: str,
    size_mb: int, interval_s: int, tags: dict[str, str], wait: Any = None,
) -> bool:
    """Create, update the S3 destination in place, or replace when the source changed.

    `wait(description, predicate)` is called while a replaced stream is being deleted."""
    kwargs: dict[str, Any] = dict(stream_arn=stream_arn, role_arn=role_arn, bucket_arn=bucket_arn, prefix=prefix,
                                  size_mb=size_mb, interval_s=interval_s)
    drift = delivery_stream_drift(firehose, name, tags=tags, **kwargs)
    if "source" in drift:
        delete_delivery_stream(firehose, name)
        if wait is not None:
            wait(f"firehose {name} deleted", lambda: delivery_stream_gone(firehose, name))
        drift = ["missing"]
    if "missing" in drift:
        retry_while_role_propagates(lambda: firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": role_arn},
            ExtendedS3DestinationConfiguration=_destination(bucket_arn, role_arn, prefix, size_mb, interval_s),
            Tags=to_list(tags),
        ))
        return True
    if "destination" in drift:
        found = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        firehose.update_destination(
            DeliveryStreamName=name,
            CurrentDeliveryStreamVersionId=found["VersionId"],
            DestinationId=found["Destinations"][0]["DestinationId"],
            ExtendedS3DestinationUpdate=_destination(bucket_arn, role_arn, prefix, size_mb, interval_s),
        )
    if "tags" in drift:
        firehose.tag_delivery_stream(DeliveryStreamName=name, Tags=to_list(tags))
    return bool(drift)


def delivery_stream_status(firehose: Any, name: str) -> str:
    """CREATING, ACTIVE, DELETING…; an absent stream raises (ResourceNotFoundException)."""
    return firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["DeliveryStreamStatus"]


def delivery_stream_gone(firehose: Any, name: str) -> bool:
    try:
        firehose.describe_delivery_stream(DeliveryStreamName=name)
        return False
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return True
        raise


def delete_delivery_stream(firehose: Any, name: str) -> None:
    unless_absent(firehose.delete_delivery_stream, "ResourceNotFoundException", DeliveryStreamName=name)
