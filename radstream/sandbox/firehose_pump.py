"""Kinesis -> Firehose -> S3 delivery, which moto's Firehose does not do for a Kinesis source.

A background thread finds every delivery stream of type KinesisStreamAsSource, reads its source
stream's shards with iterators (from the moment the delivery stream was created, as Firehose
does), buffers the records and writes one S3 object per flush when the buffer reaches
BufferingHints.SizeInMBs or its oldest record is IntervalInSeconds old. Records are newline
delimited; the key follows Firehose: `<prefix>YYYY/MM/DD/HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>`,
or the prefix alone when it carries `!{timestamp:...}` expressions. Everything goes through the
public API of the endpoint it is given."""

from __future__ import annotations

import gzip
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DISCOVERY_SECONDS = 2.0
# Firehose reads a Kinesis source once per second per shard.
POLL_SECONDS = 1.0
_EXPRESSION = re.compile(r"!\{([^}:]+):([^}]*)\}")
# Java DateTimeFormatter letters Firehose users write, longest first so "yyyy" wins over "yy".
_DATE_TOKENS = (("yyyy", "%Y"), ("yy", "%y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))


def java_date(pattern: str, moment: datetime) -> str:
    """Format `moment` with a DateTimeFormatter pattern: the common letters and 'quoted' text."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "'":
            end = pattern.find("'", i + 1)
            end = len(pattern) if end < 0 else end
            out.append(pattern[i + 1 : end])
            i = end + 1
            continue
        for token, directive in _DATE_TOKENS:
            if pattern.startswith(token, i):
                out.append(moment.strftime(directive))
                i += len(token)
                break
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def object_key(prefix: str, stream: str, version: str, moment: datetime, suffix: str = "") -> str:
    """Where Firehose puts one flush. `moment` is the arrival time of the buffer's first record."""
    def expand(match: re.Match[str]) -> str:
        namespace, argument = match.group(1), match.group(2)
        if namespace == "timestamp":
            return java_date(argument, moment)
        if namespace == "firehose" and argument == "random-string":
            return uuid.uuid4().hex[:11]
        raise ValueError(f"unsupported Firehose prefix expression !{{{namespace}:{argument}}}")

    expanded = _EXPRESSION.sub(expand, prefix)
    if expanded == prefix:  # no expression: Firehose appends the UTC hour path itself
        expanded = f"{prefix}{moment:%Y/%m/%d/%H}/"
    return f"{expanded}{stream}-{version}-{moment:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{suffix}"


def frame(records: list[bytes]) -> bytes:
    return b"".join(r if r.endswith(b"\n") else r + b"\n" for r in records)


@dataclass
class Delivery:
    """One delivery stream's source position and buffer."""

    region: str
    name: str
    version: str
    created: datetime
    source_stream_arn: str
    bucket: str
    prefix: str
    size_bytes: int
    interval_seconds: float
    gzip: bool
    iterators: dict[str, str | None] = field(default_factory=dict)  # shard id -> next iterator
    records: list[bytes] = field(default_factory=list)
    buffered_bytes: int = 0
    first_arrival: datetime | None = None
    buffer_started: float = 0.0

    def add(self, data: bytes, arrival: datetime) -> None:
        if not self.records:
            self.first_arrival = arrival
            self.buffer_started = time.monotonic()
        self.records.append(data)
        self.buffered_bytes += len(data)

    def due(self) -> bool:
        if not self.records:
            return False
        return self.buffered_bytes >= self.size_bytes or time.monotonic() - self.buffer_started >= self.interval_seconds


def delivery_from_description(region: str, description: dict[str, Any]) -> Delivery | None:
    source = description.get("Source", {}).get("KinesisStreamSourceDescription")
    if description.get("DeliveryStreamType") != "KinesisStreamAsSource" or not source:
        return None
    destinations = description.get("Destinations") or [{}]
    s3 = destinations[0].get("ExtendedS3DestinationDescription") or destinations[0].get("S3DestinationDescription")
    if not s3:
        return None
    hints = s3.get("BufferingHints") or {}
    return Delivery(
        region=region,
        name=description["DeliveryStreamName"],
        version=str(description.get("VersionId", "1")),
        created=description.get("CreateTimestamp") or datetime.now(timezone.utc),
        source_stream_arn=source["KinesisStreamARN"],
        bucket=s3["BucketARN"].split(":::")[-1],
        prefix=s3.get("Prefix", ""),
        size_bytes=int(hints.get("SizeInMBs", 5)) * MIB,
        interval_seconds=float(hints.get("IntervalInSeconds", 300)),
        gzip=s3.get("CompressionFormat") == "GZIP",
    )


class FirehosePump:
    def __init__(self, endpoint_url: str, regions: tuple[str, ...], poll_seconds: float = POLL_SECONDS) -> None:
        self.endpoint_url = endpoint_url
        self.regions = regions
        self.poll_seconds = poll_seconds
        self._deliveries: dict[tuple[str, str], Delivery] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="firehose-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for delivery in self._deliveries.values():  # what was accepted is still delivered
            try:
                self._flush(delivery)
            except Exception:
                log.exception("firehose %s could not deliver its last buffer", delivery.name)

    def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            self._clients[key] = boto3.client(
                service,
                region_name=region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"max_attempts": 2}),
            )
        return self._clients[key]

    def _loop(self) -> None:
        last_discovery = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_discovery >= DISCOVERY_SECONDS:
                    self._discover()
                    last_discovery = time.monotonic()
                for delivery in list(self._deliveries.values()):
                    self._read(delivery)
                    if delivery.due():
                        self._flush(delivery)
            except Exception:  # keep pumping; the next tick retries
                log.exception("firehose pump tick failed")
            self._stop.wait(self.poll_seconds)

    def _discover(self) -> None:
        seen: set[tuple[str, str]] = set()
        for region in self.regions:
            firehose = self._client("firehose", region)
            for name in self._stream_names(firehose):
                description = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
                found = delivery_from_description(region, description)
                if found is None:
                    continue
                key = (region, name)
                seen.add(key)
                current = self._deliveries.get(key)
                if current is None or current.created != found.created:  # new, or deleted and recreated
                    self._deliveries[key] = found
                else:  # destination settings may have been updated
                    current.bucket, current.prefix, current.gzip = found.bucket, found.prefix, found.gzip
                    current.size_bytes, current.interval_seconds = found.size_bytes, found.interval_seconds
        for key in set(self._deliveries) - seen:
            del self._deliveries[key]

    @staticmethod
    def _stream_names(firehose: Any) -> list[str]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"DeliveryStreamType": "KinesisStreamAsSource"}
        while True:
            page = firehose.list_delivery_streams(**kwargs)
            names += page["DeliveryStreamNames"]
            if not page.get("HasMoreDeliveryStreams") or not page["DeliveryStreamNames"]:
                return names
            kwargs["ExclusiveStartDeliveryStreamName"] = names[-1]

    def _read(self, delivery: Delivery) -> None:
        kinesis = self._client("kinesis", delivery.region)
        shards = kinesis.list_shards(StreamARN=delivery.source_stream_arn)["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in delivery.iterators:
                delivery.iterators[shard_id] = kinesis.get_shard_iterator(
                    StreamARN=delivery.source_stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType="AT_TIMESTAMP",
                    Timestamp=delivery.created,
                )["ShardIterator"]
            iterator = delivery.iterators[shard_id]
            while iterator:
                page = kinesis.get_records(StreamARN=delivery.source_stream_arn, ShardIterator=iterator, Limit=10000)
                for record in page["Records"]:
                    delivery.add(record["Data"], record["ApproximateArrivalTimestamp"])
                iterator = page.get("NextShardIterator")  # None once a closed shard is drained
                if not page["Records"]:
                    break
            delivery.iterators[shard_id] = iterator

    def _flush(self, delivery: Delivery) -> None:
        if not delivery.records or delivery.first_arrival is None:
            return
        body = frame(delivery.records)
        if delivery.gzip:
            body = gzip.compress(body)
        moment = delivery.first_arrival.astimezone(timezone.utc)
        key = object_key(delivery.prefix, delivery.name, delivery.version, moment, ".gz" if delivery.gzip else "")
        # On failure the buffer is kept and the next tick retries, as Firehose retries delivery.
        self._client("s3", delivery.region).put_object(Bucket=delivery.bucket, Key=key, Body=body)
        log.info("firehose %s delivered %d records to s3://%s/%s", delivery.name, len(delivery.records), delivery.bucket, key)
        delivery.records, delivery.buffered_bytes, delivery.first_arrival = [], 0, None
