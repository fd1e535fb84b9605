"""Phase 5: prove telemetry flows. Kinesis and Firehose are ACTIVE; a probe record with a unique id
put on the stream lands under raw_telemetry/ in the telemetry bucket and is read back through the
query engine (Athena on aws, DuckDB over the same objects on the sandbox)."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from radstream.names import TELEMETRY_PREFIX
from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.context import Context

PHASE = 5
PROBE_PREFIX = "probe-"
# Firehose holds records up to its buffering interval; give it that plus time to write.
LANDING_GRACE_S = 120


def _streams_active(ctx: Context) -> dict[str, str]:
    from radstream.aws.firehose import delivery_stream_status
    from radstream.aws.kinesis import stream_status

    return {
        "kinesis": stream_status(ctx.client("kinesis"), ctx.names.kinesis_stream),
        "firehose": delivery_stream_status(ctx.client("firehose"), ctx.names.firehose_stream),
    }


class StreamsActiveStep(Step):
    name = "streams-active"
    description = "the Kinesis stream and the Firehose delivery stream are ACTIVE"

    def check(self, ctx: Context) -> bool:
        return set(_streams_active(ctx).values()) == {"ACTIVE"}

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("run", "wait", "streams ACTIVE", json.dumps(_streams_active(ctx)))]

    def apply(self, ctx: Context) -> None:
        ctx.wait("Kinesis and Firehose ACTIVE", lambda: self.check(ctx), timeout=600, interval=5)


def find_probe(s3: Any, bucket: str, probe_id: str, newer_than: float = 0.0) -> str | None:
    """The key of the telemetry object holding the probe, if it has landed."""
    from radstream.aws.s3 import list_objects, read_object

    for item in list_objects(s3, bucket, TELEMETRY_PREFIX):
        if item["LastModified"].timestamp() < newer_than:
            continue
        if probe_id.encode() in read_object(s3, bucket, item["Key"]):
            return item["Key"]
    return None


class ProbeStep(Step):
    name = "probe"
    description = "a probe record travels Kinesis → Firehose → S3 and is queried back"

    def check(self, ctx: Context) -> bool:
        """Done when the recorded probe is still in S3: a second `up` sends nothing new."""
        recorded = ctx.outputs(PHASE)
        if not recorded.get("probe_key"):
            return False
        from radstream.aws.wiring import object_exists

        return object_exists(ctx.client("s3"), ctx.names.bucket("telemetry"), recorded["probe_key"])

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("run", "kinesis record", ctx.names.kinesis_stream,
                       f"probe record, then wait for it under s3://{ctx.names.bucket('telemetry')}/{TELEMETRY_PREFIX}")]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.kinesis import put_record
        from radstream.pipeline.results import telemetry_event, telemetry_line

        probe_id = f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}"
        event = telemetry_event(study_id=probe_id, status="SUCCESS", stage_ms={}, input_key="radstream:telemetry-probe")
        sent = time.time()
        put_record(ctx.client("kinesis"), ctx.names.kinesis_stream, telemetry_line(event), probe_id)
        s3, bucket = ctx.client("s3"), ctx.names.bucket("telemetry")
        timeout = ctx.config.pipeline.firehose_buffer_seconds + LANDING_GRACE_S
        key = ctx.wait(f"probe {probe_id} in s3://{bucket}/{TELEMETRY_PREFIX}",
                       lambda: find_probe(s3, bucket, probe_id, newer_than=sent - 60), timeout=timeout, interval=2)
        return {"probe_id": probe_id, "probe_key": key, "probe_landing_seconds": round(time.time() - sent, 1)}

    def verify(self, ctx: Context) -> None:
        from radstream.analytics.runner import run_query

        probe_id = ctx.outputs(PHASE)["probe_id"]
        rows = run_query(ctx, name="study_events", params={"study_id": probe_id}).rows
        if not rows:
            raise VerifyFailed(f"the probe {probe_id} is in S3 but the query engine does not return it")


class TelemetryPhase(Phase):
    number = PHASE
    name = "telemetry"
    summary = "Kinesis and Firehose active, a probe record lands in S3 and is queried"

    def steps(self, ctx: Context) -> list[Step]:
        return [StreamsActiveStep(), ProbeStep()]
