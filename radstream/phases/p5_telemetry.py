"""Phase 5: prove telemetry flows, and watch it. Kinesis and Firehose are ACTIVE; a probe record
with a unique id put on the stream lands under raw_telemetry/ in the telemetry bucket and is read
back through the query engine (Athena on aws, DuckDB over the same objects on the sandbox). Then
what an operator watches the pipeline with (radstream.monitoring): the alarms and their SNS topic,
the dashboard and the monthly budget. They are here, not in phase 0, because they read the
telemetry path and everything phase 0 made, and the pipeline's own metrics come from it."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from radstream import monitoring
from radstream.names import TELEMETRY_PREFIX
from radstream.phases.base import Change, DriftStep, Phase, Step, VerifyFailed

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


class MonitoringStep(DriftStep):
    name = "monitoring"
    description = ("alarms (failure rate, p95, throttling, iterator age, Firehose delivery, uploads without "
                   "executions) notifying an SNS topic, the pipeline's dashboard and a monthly budget")

    def _topic(self, ctx: Context) -> str:
        from radstream.aws.alarms import topic_arn

        names = ctx.names
        return topic_arn(names.region, names.account_id, monitoring.topic_name(names), names.partition)

    def _budget(self, ctx: Context) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        return (monitoring.budget(ctx.names, ctx.config),
                monitoring.budget_notifications(self._topic(ctx), ctx.config.observability.alarm_email))

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.alarms import alarm_drift, budget_drift, dashboard_drift, topic_drift

        names, topic, tags = ctx.names, self._topic(ctx), ctx.names.tags(PHASE)
        cw = ctx.client("cloudwatch")
        found = [("sns topic", monitoring.topic_name(names),
                  topic_drift(ctx.client("sns"), topic, tags, monitoring.topic_policy(topic, names.account_id),
                              ctx.config.observability.alarm_email))]
        found += [("cloudwatch alarm", monitoring.alarm_name(names, a.purpose),
                   alarm_drift(cw, a.request(names, topic), tags)) for a in monitoring.alarms(names)]
        found.append(("cloudwatch dashboard", monitoring.dashboard_name(names),
                      dashboard_drift(cw, monitoring.dashboard_name(names), monitoring.dashboard_body(names, ctx.config))))
        budget, notifications = self._budget(ctx)
        if budget is not None:
            found.append(("budget", budget["BudgetName"],
                          budget_drift(ctx.client("budgets"), names.account_id, budget, notifications)))
        return found

    def apply(self, ctx: Context) -> None:
        from radstream.aws.alarms import ensure_alarm, ensure_budget, ensure_dashboard, ensure_topic

        names, topic, tags = ctx.names, self._topic(ctx), ctx.names.tags(PHASE)
        cw = ctx.client("cloudwatch")
        ensure_topic(ctx.client("sns"), topic, tags, monitoring.topic_policy(topic, names.account_id),
                     ctx.config.observability.alarm_email)
        for alarm in monitoring.alarms(names):
            ensure_alarm(cw, alarm.request(names, topic), tags)
        ensure_dashboard(cw, monitoring.dashboard_name(names), monitoring.dashboard_body(names, ctx.config))
        budget, notifications = self._budget(ctx)
        if budget is not None:
            ensure_budget(ctx.client("budgets"), names.account_id, budget, notifications)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        names = ctx.names
        return {"alarm_topic_arn": self._topic(ctx), "dashboard": monitoring.dashboard_name(names),
                "alarms": [monitoring.alarm_name(names, a.purpose) for a in monitoring.alarms(names)],
                "budget": monitoring.budget_name(names) if ctx.config.observability.monthly_budget_usd else None}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.alarms import delete_alarms, delete_budget, delete_dashboard, delete_topic

        names, cw = ctx.names, ctx.client("cloudwatch")
        delete_alarms(cw, [monitoring.alarm_name(names, a.purpose) for a in monitoring.alarms(names)])
        delete_dashboard(cw, monitoring.dashboard_name(names))
        delete_budget(ctx.client("budgets"), names.account_id, monitoring.budget_name(names))
        delete_topic(ctx.client("sns"), self._topic(ctx))


class TelemetryPhase(Phase):
    number = PHASE
    name = "telemetry"
    summary = ("Kinesis and Firehose active, a probe record lands in S3 and is queried; alarms, their SNS topic, "
               "the dashboard and the monthly budget")

    def steps(self, ctx: Context) -> list[Step]:
        return [StreamsActiveStep(), ProbeStep(), MonitoringStep()]
