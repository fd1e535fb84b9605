"""What an on-call engineer watches: the alarms, the pipeline's CloudWatch dashboard, the SNS topic
they notify and the monthly budget. Pure builders from the names and the config; phase 5 applies
them (radstream.aws.alarms), `radstream render` shows them.

Alarms on the pipeline's own metrics read radstream.pipeline.metrics (EMF lines of SendTelemetry
and StoreFailure); the others read what AWS publishes for Lambda, Kinesis, Firehose, EventBridge
and Step Functions. Missing data is "not breaching": an idle pipeline is healthy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from radstream.names import LAMBDA_FUNCTIONS
from radstream.pipeline.metrics import DIMENSION, END_TO_END, FAILED, NAMESPACE, STUDIES, stage_metric
from radstream.pipeline.results import TIMED_STAGES

if TYPE_CHECKING:
    from radstream.config import Config
    from radstream.names import Names

PERIOD_S = 300
FAILURE_RATE = 0.01  # the plan's "success rate > 99 %"
P95_MS = 5000.0  # the plan's "p95 < 5 s"
ITERATOR_AGE_MS = 60_000.0  # telemetry a minute behind
BUDGET_ALERTS = (("FORECASTED", 80.0), ("ACTUAL", 100.0))


@dataclass(frozen=True)
class Alarm:
    purpose: str
    description: str
    comparison: str
    threshold: float
    # Either one metric (namespace, name, dimensions, statistic) or metric math queries.
    metric: dict[str, Any] = field(default_factory=dict)
    queries: list[dict[str, Any]] = field(default_factory=list)

    def request(self, names: Names, topic_arn: str) -> dict[str, Any]:
        """PutMetricAlarm's arguments (tags apart)."""
        request: dict[str, Any] = {
            "AlarmName": alarm_name(names, self.purpose), "AlarmDescription": self.description,
            "ComparisonOperator": self.comparison, "Threshold": self.threshold, "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1, "TreatMissingData": "notBreaching", "ActionsEnabled": True,
            "AlarmActions": [topic_arn], "OKActions": [topic_arn],
        }
        if self.queries:
            return {**request, "Metrics": self.queries}
        statistic = self.metric["statistic"]
        request.update(Namespace=self.metric["namespace"], MetricName=self.metric["name"], Period=PERIOD_S,
                       Dimensions=[{"Name": k, "Value": v} for k, v in self.metric["dimensions"].items()])
        request["ExtendedStatistic" if statistic.startswith("p") else "Statistic"] = statistic
        return request


def alarm_name(names: Names, purpose: str) -> str:
    return f"{names.deployment}-{purpose}"


def topic_name(names: Names) -> str:
    return f"{names.deployment}-alarms"


def dashboard_name(names: Names) -> str:
    return f"{names.deployment}-pipeline"


def budget_name(names: Names) -> str:
    return f"{names.deployment}-monthly"


def state_machine_arn(names: Names) -> str:
    from radstream.aws import make_arn

    return make_arn(names.partition, "states", names.region, names.account_id, f"stateMachine:{names.state_machine}")


def _ours(names: Names) -> dict[str, str]:
    return {DIMENSION: names.deployment}


def _stat(metric_id: str, namespace: str, name: str, dimensions: dict[str, str], statistic: str,
          returned: bool = False) -> dict[str, Any]:
    return {"Id": metric_id, "ReturnData": returned, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": name,
                   "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]},
        "Period": PERIOD_S, "Stat": statistic}}


def alarms(names: Names) -> list[Alarm]:
    functions = [names.lambda_function(f) for f in LAMBDA_FUNCTIONS]
    throttles = [_stat(f"t{i}", "AWS/Lambda", "Throttles", {"FunctionName": f}, "Sum") for i, f in enumerate(functions)]
    uploads_without_runs = [
        _stat("uploads", "AWS/Events", "TriggeredRules", {"RuleName": names.event_rule("image-uploaded")}, "Sum"),
        _stat("started", "AWS/States", "ExecutionsStarted", {"StateMachineArn": state_machine_arn(names)}, "Sum"),
        {"Id": "stalled", "Expression": "IF(uploads > 0 AND started == 0, 1, 0)", "ReturnData": True,
         "Label": "uploads with no execution"},
    ]
    return [
        Alarm("failure-rate", "More than 1 % of studies failed in 5 minutes", "GreaterThanThreshold", FAILURE_RATE,
              metric={"namespace": NAMESPACE, "name": FAILED, "dimensions": _ours(names), "statistic": "Average"}),
        Alarm("p95-latency", "Upload-to-result p95 over 5 s in 5 minutes", "GreaterThanThreshold", P95_MS,
              metric={"namespace": NAMESPACE, "name": END_TO_END, "dimensions": _ours(names), "statistic": "p95"}),
        Alarm("lambda-throttles", "A pipeline function was throttled", "GreaterThanThreshold", 0.0,
              queries=[*throttles, {"Id": "throttles", "Expression": f"SUM([{','.join(q['Id'] for q in throttles)}])",
                                    "ReturnData": True, "Label": "throttles"}]),
        Alarm("telemetry-iterator-age", "Telemetry waits more than a minute on the Kinesis stream",
              "GreaterThanThreshold", ITERATOR_AGE_MS,
              metric={"namespace": "AWS/Kinesis", "name": "GetRecords.IteratorAgeMilliseconds",
                      "dimensions": {"StreamName": names.kinesis_stream}, "statistic": "Maximum"}),
        Alarm("firehose-delivery", "Firehose failed to deliver telemetry to S3", "LessThanThreshold", 1.0,
              metric={"namespace": "AWS/Firehose", "name": "DeliveryToS3.Success",
                      "dimensions": {"DeliveryStreamName": names.firehose_stream}, "statistic": "Minimum"}),
        Alarm("uploads-without-executions", "Uploads arrived and no execution started", "GreaterThanThreshold", 0.0,
              queries=uploads_without_runs),
    ]


def topic_policy(topic_arn: str, account_id: str) -> dict[str, Any]:
    """CloudWatch and Budgets may publish to the topic for this account only. (Left unencrypted on
    purpose: CloudWatch cannot publish to a topic under the AWS managed aws/sns key, and the
    messages name alarms and figures, never a study.)"""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": f"{service.capitalize()}Publishes", "Effect": "Allow",
         "Principal": {"Service": f"{service}.amazonaws.com"}, "Action": "SNS:Publish", "Resource": topic_arn,
         "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}
        for service in ("cloudwatch", "budgets")]}


def budget(names: Names, config: Config) -> dict[str, Any] | None:
    """CreateBudget's Budget, or None when observability.monthly_budget_usd is 0."""
    from radstream.names import TAG_DEPLOYMENT

    amount = config.observability.monthly_budget_usd
    if not amount:
        return None
    return {"BudgetName": budget_name(names), "BudgetType": "COST", "TimeUnit": "MONTHLY",
            "BudgetLimit": {"Amount": f"{amount:.2f}", "Unit": "USD"},
            # Cost allocation tags are filtered as "user:<key>$<value>" once the tag is activated.
            "CostFilters": {"TagKeyValue": [f"user:{TAG_DEPLOYMENT}${names.deployment}"]}}


def budget_notifications(topic_arn: str, email: str | None) -> list[dict[str, Any]]:
    subscribers = [{"SubscriptionType": "SNS", "Address": topic_arn}]
    if email:
        subscribers.append({"SubscriptionType": "EMAIL", "Address": email})
    return [{"Notification": {"NotificationType": kind, "ComparisonOperator": "GREATER_THAN", "Threshold": percent,
                              "ThresholdType": "PERCENTAGE"}, "Subscribers": subscribers}
            for kind, percent in BUDGET_ALERTS]


def _widget(title: str, metrics: list[list[Any]], x: int, y: int, region: str, stat: str = "Sum") -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": 60, "view": "timeSeries",
                           "metrics": metrics}}


def dashboard(names: Names, config: Config) -> dict[str, Any]:
    """The pipeline's dashboard body: what the issue's on-call engineer reads first."""
    region, sm, ours = names.region, state_machine_arn(names), names.deployment
    functions = [names.lambda_function(f) for f in LAMBDA_FUNCTIONS]
    cluster, namespace = config.cluster_name, config.triton.namespace
    rows: list[tuple[str, list[list[Any]], str]] = [
        ("Executions started, succeeded, failed",
         [["AWS/States", m, "StateMachineArn", sm] for m in ("ExecutionsStarted", "ExecutionsSucceeded",
                                                               "ExecutionsFailed", "ExecutionsTimedOut")], "Sum"),
        ("Upload to result, p50 and p95 (ms)",
         [[NAMESPACE, END_TO_END, DIMENSION, ours, {"stat": s, "label": s}] for s in ("p50", "p95")], "p50"),
        ("Per-stage duration, average (ms)",
         [[NAMESPACE, stage_metric(s), DIMENSION, ours] for s in TIMED_STAGES], "Average"),
        ("Studies and failure rate",
         [[NAMESPACE, STUDIES, DIMENSION, ours], [NAMESPACE, FAILED, DIMENSION, ours, {"stat": "Average"}]], "Sum"),
        ("Lambda errors", [["AWS/Lambda", "Errors", "FunctionName", f] for f in functions], "Sum"),
        ("Lambda throttles", [["AWS/Lambda", "Throttles", "FunctionName", f] for f in functions], "Sum"),
        ("Kinesis iterator age (ms)",
         [["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", names.kinesis_stream]], "Maximum"),
        ("Firehose freshness (s) and deliveries",
         [["AWS/Firehose", "DeliveryToS3.DataFreshness", "DeliveryStreamName", names.firehose_stream],
          ["AWS/Firehose", "DeliveryToS3.Success", "DeliveryStreamName", names.firehose_stream]], "Maximum"),
        ("Inference calls and latency (ms)",
         [[NAMESPACE, stage_metric("inference"), DIMENSION, ours, {"stat": "SampleCount", "label": "calls"}],
          [NAMESPACE, stage_metric("inference"), DIMENSION, ours, {"stat": "p95", "label": "p95"}]], "Average"),
        ("Triton pods: CPU and memory (Container Insights)",
         [["ContainerInsights", m, "ClusterName", cluster, "Namespace", namespace]
          for m in ("pod_cpu_utilization", "pod_memory_utilization")], "Average"),
        ("Nodes: CPU and memory (Container Insights)",
         [["ContainerInsights", m, "ClusterName", cluster] for m in ("node_cpu_utilization", "node_memory_utilization")],
         "Average"),
    ]
    widgets = [_widget(title, metrics, 12 * (i % 2), 6 * (i // 2), region, stat)
               for i, (title, metrics, stat) in enumerate(rows)]
    return {"widgets": widgets}


def dashboard_body(names: Names, config: Config) -> str:
    return json.dumps(dashboard(names, config), sort_keys=True, separators=(",", ":"))
