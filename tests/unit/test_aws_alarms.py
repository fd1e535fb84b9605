"""The monitoring helpers against moto: the alarms, their SNS topic (policy, e-mail subscription),
the dashboard and the budget are made once, changed by nothing the second time, repaired when
edited, and deleted quietly; and the inventory finds the untagged dashboard and budget by name."""

import json

import boto3
import pytest
from moto import mock_aws

from radstream import config, monitoring
from radstream.aws import alarms
from radstream.aws.inventory import deployment_resources
from radstream.names import Names
from tests.support.aws import record_mutations

REGION = "us-east-1"
NAMES = Names("rs-mon", "123456789012", REGION)
TAGS = NAMES.tags(5)
TOPIC = alarms.topic_arn(REGION, NAMES.account_id, monitoring.topic_name(NAMES))
POLICY = monitoring.topic_policy(TOPIC, NAMES.account_id)
EMAIL = "oncall@example.org"


@pytest.fixture
def aws():
    with mock_aws():
        clients: dict[str, object] = {}
        yield lambda service: clients.setdefault(service, boto3.client(service, region_name=REGION))


def conf(**observability) -> config.Config:
    return config.Config(target="sandbox", deployment=NAMES.deployment, observability=observability)


def apply_all(aws, settings: config.Config) -> None:
    alarms.ensure_topic(aws("sns"), TOPIC, TAGS, POLICY, settings.observability.alarm_email)
    for alarm in monitoring.alarms(NAMES):
        alarms.ensure_alarm(aws("cloudwatch"), alarm.request(NAMES, TOPIC), TAGS)
    alarms.ensure_dashboard(aws("cloudwatch"), monitoring.dashboard_name(NAMES), monitoring.dashboard_body(NAMES, settings))
    alarms.ensure_budget(aws("budgets"), NAMES.account_id, monitoring.budget(NAMES, settings),
                         monitoring.budget_notifications(TOPIC, settings.observability.alarm_email))


def test_everything_is_made_once_and_a_second_apply_changes_nothing(aws):
    settings = conf(alarm_email=EMAIL, monthly_budget_usd=250)
    apply_all(aws, settings)
    cw, sns = aws("cloudwatch"), aws("sns")
    found = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
    assert set(found) == {f"rs-mon-{a.purpose}" for a in monitoring.alarms(NAMES)}
    assert all(a["AlarmActions"] == [TOPIC] and a["TreatMissingData"] == "notBreaching" for a in found.values())
    failure = found["rs-mon-failure-rate"]
    assert (failure["Namespace"], failure["MetricName"], failure["Statistic"], failure["Threshold"]) == \
        ("RadStream", "StudyFailed", "Average", 0.01)
    assert found["rs-mon-p95-latency"]["ExtendedStatistic"] == "p95"
    assert json.loads(sns.get_topic_attributes(TopicArn=TOPIC)["Attributes"]["Policy"]) == POLICY
    [subscription] = sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", EMAIL)
    budget = aws("budgets").describe_budget(AccountId=NAMES.account_id, BudgetName="rs-mon-monthly")["Budget"]
    assert float(budget["BudgetLimit"]["Amount"]) == 250 and budget["TimeUnit"] == "MONTHLY"
    assert budget["CostFilters"] == {"TagKeyValue": ["user:radstream:deployment$rs-mon"]}

    seen = [record_mutations(aws(s)) for s in ("cloudwatch", "sns", "budgets")]
    apply_all(aws, settings)
    assert seen == [[], [], []]


def test_an_edited_alarm_dashboard_and_budget_are_repaired(aws):
    settings = conf(monthly_budget_usd=100)
    apply_all(aws, settings)
    cw = aws("cloudwatch")
    request = monitoring.alarms(NAMES)[0].request(NAMES, TOPIC)
    cw.put_metric_alarm(**{**request, "Threshold": 0.5})
    cw.put_dashboard(DashboardName="rs-mon-pipeline", DashboardBody=json.dumps({"widgets": []}))
    assert alarms.alarm_drift(cw, request, TAGS) == ["Threshold"]
    assert alarms.dashboard_drift(cw, "rs-mon-pipeline", monitoring.dashboard_body(NAMES, settings)) == ["widgets"]
    bigger = conf(monthly_budget_usd=300)
    assert alarms.budget_drift(aws("budgets"), NAMES.account_id, monitoring.budget(NAMES, bigger),
                               monitoring.budget_notifications(TOPIC, None)) == ["BudgetLimit"]
    apply_all(aws, bigger)
    assert alarms.alarm_drift(cw, request, TAGS) == []
    assert alarms.dashboard_drift(cw, "rs-mon-pipeline", monitoring.dashboard_body(NAMES, bigger)) == []


def test_the_inventory_sees_them_until_they_are_deleted_and_deleting_twice_is_quiet(aws):
    apply_all(aws, conf())
    services = {r["service"] for r in deployment_resources(aws, "rs-mon")}
    assert {"cloudwatch", "sns", "budgets"} <= services
    for _ in range(2):
        alarms.delete_alarms(aws("cloudwatch"), [monitoring.alarm_name(NAMES, a.purpose) for a in monitoring.alarms(NAMES)])
        alarms.delete_dashboard(aws("cloudwatch"), monitoring.dashboard_name(NAMES))
        alarms.delete_budget(aws("budgets"), NAMES.account_id, monitoring.budget_name(NAMES))
        alarms.delete_topic(aws("sns"), TOPIC)
    assert deployment_resources(aws, "rs-mon") == []


def test_no_budget_when_its_amount_is_zero():
    assert monitoring.budget(NAMES, conf(monthly_budget_usd=0)) is None


def test_the_dashboard_shows_what_the_on_call_engineer_needs():
    body = json.loads(monitoring.dashboard_body(NAMES, conf()))
    metrics = {m[1] for widget in body["widgets"] for m in widget["properties"]["metrics"]}
    assert {"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "EndToEndLatency", "ValidateLatency",
            "InferenceLatency", "Errors", "Throttles", "GetRecords.IteratorAgeMilliseconds",
            "DeliveryToS3.DataFreshness", "pod_cpu_utilization", "node_memory_utilization"} <= metrics
