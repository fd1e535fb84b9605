"""The sandbox's alarm evaluation over moto's stored datapoints: the failure-rate alarm goes to
ALARM when more than 1 % of the window's studies failed, back to OK on a clean window, and missing
data is judged as the alarm says."""

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from radstream import monitoring
from radstream.names import Names
from radstream.sandbox.alarm_evaluator import evaluate, statistic

REGION = "us-east-1"
NAMES = Names("rs-alarm", "123456789012", REGION)


@pytest.fixture
def cw():
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


def backend():
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[NAMES.account_id][REGION]


def failed(cw, values: list[int], at: datetime) -> None:
    cw.put_metric_data(Namespace="RadStream", MetricData=[
        {"MetricName": "StudyFailed", "Value": v, "Dimensions": [{"Name": "Deployment", "Value": NAMES.deployment}],
         "Timestamp": at} for v in values])


def state(cw, purpose: str) -> str:
    return cw.describe_alarms(AlarmNames=[monitoring.alarm_name(NAMES, purpose)])["MetricAlarms"][0]["StateValue"]


def test_the_failure_rate_alarm_follows_the_window(cw):
    topic = f"arn:aws:sns:{REGION}:{NAMES.account_id}:rs-alarm-alarms"
    for alarm in monitoring.alarms(NAMES):
        cw.put_metric_alarm(**alarm.request(NAMES, topic))
    now = datetime.now(timezone.utc)
    failed(cw, [0] * 99, now - timedelta(seconds=30))
    evaluate(backend(), now)
    assert state(cw, "failure-rate") == "OK"  # 0 of 99
    failed(cw, [1, 1], now - timedelta(seconds=10))
    evaluate(backend(), now)
    assert state(cw, "failure-rate") == "ALARM"  # 2 of 101 is over 1 %
    assert state(cw, "p95-latency") == "OK"  # no latency at all: not breaching
    evaluate(backend(), now + timedelta(seconds=monitoring.PERIOD_S + 60))
    assert state(cw, "failure-rate") == "OK"  # the window moved past them: missing data is not breaching


def test_statistics_as_cloudwatch_computes_them():
    values = [float(v) for v in range(1, 101)]
    assert (statistic(values, "Average"), statistic(values, "Sum"), statistic(values, "p95")) == (50.5, 5050.0, 95.0)
    assert (statistic(values, "Minimum"), statistic(values, "Maximum"), statistic(values, "SampleCount")) == \
        (1.0, 100.0, 100.0)
