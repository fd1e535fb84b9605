"""`radstream watch`'s figures: executions per minute and their duration from Step Functions'
listing, a failed source named without blanking the others, and failures by reason summed from the
pipeline's EMF metric in CloudWatch (moto)."""

from datetime import datetime, timedelta, timezone

import boto3
from moto import mock_aws

from radstream.aws.activity import sums_by
from radstream.pipeline.metrics import DIMENSION, FAILED, NAMESPACE, REASON_DIMENSION
from radstream.watch import execution_figures, snapshot

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def execution(status: str, seconds: float | None, ago: float) -> dict:
    start = NOW - timedelta(seconds=ago)
    return {"status": status, "startDate": start, "stopDate": start + timedelta(seconds=seconds) if seconds is not None else None}


def test_executions_are_counted_by_status_per_minute_with_the_finished_ones_percentiles():
    runs = [execution("SUCCEEDED", 1.0, 200), execution("SUCCEEDED", 3.0, 100), execution("FAILED", 2.0, 50),
            execution("TIMED_OUT", 4.0, 40), execution("RUNNING", None, 5)]
    figures = execution_figures(runs, window_s=300)
    assert figures == {"started": 5, "per_minute": 1.0, "running": 1, "succeeded": 2, "failed": 2,
                       "p50_ms": 2500.0, "p95_ms": 3850.0}


def test_a_source_that_failed_is_null_and_named_and_the_rest_still_show():
    view = snapshot("rs-w", "sandbox", NOW, 300, {"executions": [], "scaling": {"replicas": 1}},
                    {"triton": "no Prometheus scrapes Triton"})
    assert view["ok"] is False and view["triton"] is None and view["errors"] == {"triton": "no Prometheus scrapes Triton"}
    assert view["executions"]["started"] == 0 and view["scaling"] == {"replicas": 1}


def test_failures_by_reason_come_from_the_metric_s_error_type_dimension():
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        at = datetime.now(timezone.utc)
        for reason, count in (("CorruptImage", 2), ("InvalidMetadata", 1)):
            cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
                {"MetricName": FAILED, "Value": 1, "Timestamp": at,
                 "Dimensions": [{"Name": DIMENSION, "Value": "rs-w"}, {"Name": REASON_DIMENSION, "Value": reason}]}] * count)
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=[  # another deployment's failure is not ours
            {"MetricName": FAILED, "Value": 1, "Timestamp": at,
             "Dimensions": [{"Name": DIMENSION, "Value": "rs-other"}, {"Name": REASON_DIMENSION, "Value": "Timeout"}]}])
        found = sums_by(cw, NAMESPACE, FAILED, {DIMENSION: "rs-w"}, REASON_DIMENSION, at - timedelta(minutes=5),
                        at + timedelta(minutes=1))
    assert found == {"CorruptImage": 2, "InvalidMetadata": 1}
