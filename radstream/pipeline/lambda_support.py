"""Glue the thin Lambda handlers share: configuration from the environment, AWS clients built once
per container, where a study lives, stage timing and the telemetry send.

Only the handlers import this module; everything else in radstream.pipeline stays cloud-free.
boto3 comes from the Lambda runtime (or the sandbox's interpreter), not from the layer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from radstream.pipeline.readers import Limits
from radstream.pipeline.results import telemetry_line

# The state names of manifests/stepfunctions/pipeline.asl.json -> the stage they run.
STATE_STAGES = {
    "ValidateInput": "validate",
    "PrepareImage": "prepare",
    "InvokeInference": "inference",
    "StoreResults": "store",
    "SendTelemetry": "telemetry",
}

_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """A boto3 client reused by every invocation of this container (creating one costs ~25 ms)."""
    if service not in _clients:
        import boto3
        from botocore.config import Config

        # Standard retries absorb S3/Kinesis throttling; short timeouts leave time to report failure.
        config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=20)
        _clients[service] = boto3.client(service, config=config)
    return _clients[service]


def setting(name: str) -> str:
    """A required environment variable; phase 0 sets them all on every function."""
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set: re-run phase 0 (`radstream phase run 0`)")
    return value


def input_limits() -> Limits:
    """The size limits phase 0 sets from pipeline.max_image_bytes and pipeline.max_pixels."""
    return Limits(max_bytes=int(setting("MAX_IMAGE_BYTES")), max_pixels=int(setting("MAX_PIXELS")))


def split_s3_path(s3_path: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    parts = urlsplit(s3_path)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.lstrip("/"):
        raise ValueError(f"not an s3://bucket/key path: {s3_path[:200]!r}")
    return parts.netloc, parts.path.lstrip("/")


def input_location(event: Mapping[str, Any]) -> tuple[str, str]:
    """(bucket, key) of the study: `s3_path` once ValidateInput ran (or in a direct start), else the
    EventBridge S3 "Object Created" detail that started the execution."""
    if event.get("s3_path"):
        return split_s3_path(str(event["s3_path"]))
    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key")
    if not bucket or not key:
        raise ValueError("the input has neither s3_path nor an S3 Object Created detail (detail.bucket.name, detail.object.key)")
    return str(bucket), str(key)


def input_version(event: Mapping[str, Any]) -> str | None:
    """The version of the study object the execution is about: `version_id` once ValidateInput ran,
    else the trigger's detail.object.version-id (present when the bucket is versioned). Every stage
    reads this version, so an overwrite between stages cannot mix two uploads; None (or S3's "null"
    of an unversioned bucket) reads the current object."""
    if event.get("s3_path"):
        version = event.get("version_id")
    else:
        version = ((event.get("detail") or {}).get("object") or {}).get("version-id")
    return str(version) if version and version != "null" else None


def version_argument(version_id: str | None) -> dict[str, str]:
    """S3 GetObject/HeadObject/CopySource's VersionId, only when there is one."""
    return {"VersionId": version_id} if version_id else {}


@contextmanager
def stage_timer(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the milliseconds the block takes as timings[stage]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round((time.perf_counter() - started) * 1000, 3)


def timings_of(event: Mapping[str, Any]) -> dict[str, float]:
    """A copy of the per-stage latencies the earlier states recorded."""
    return dict(event.get("processing_time_ms") or {})


def read_object(bucket: str, key: str, version_id: str | None = None) -> bytes:
    return client("s3").get_object(Bucket=bucket, Key=key, **version_argument(version_id))["Body"].read()


def put_object(bucket: str, key: str, body: bytes, content_type: str) -> None:
    client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def send_telemetry(event: Mapping[str, Any]) -> None:
    """One record on the telemetry stream, partitioned by study id (a study's events stay in order),
    and the study's metrics as one embedded-metric-format line in this function's log."""
    from radstream.pipeline.metrics import embedded_metrics_line

    client("kinesis").put_record(
        StreamName=setting("TELEMETRY_STREAM"), Data=telemetry_line(event), PartitionKey=str(event["study_id"])
    )
    print(embedded_metrics_line(event, setting("DEPLOYMENT"), int(time.time() * 1000)), flush=True)
